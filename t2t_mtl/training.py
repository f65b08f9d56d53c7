"""The Accelerate training loop: plan, accumulate, clip, schedule, log, evaluate, checkpoint."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from tqdm.auto import tqdm
from transformers import get_scheduler

from t2t_mtl.data import Seq2SeqCollator, TaskData, TokenizerSettings, build_task_data
from t2t_mtl.evaluation.report import to_markdown
from t2t_mtl.evaluation.runner import evaluate_sets
from t2t_mtl.modeling.adapters import apply_adapter, load_weights_into, save_trained
from t2t_mtl.modeling.backbone import load_backbone
from t2t_mtl.recipe import Recipe
from t2t_mtl.run_dir import COMPLETE, RunDir
from t2t_mtl.tasks.mixture import MixtureRow, group_batches, mixture_shares, sample_stream
from t2t_mtl.tasks.registry import select_tasks

logger = logging.getLogger(__name__)
GROUP_WINDOW = 64  # micro-batches sorted together by length


@dataclass
class TrainingPlan:
    """Every micro-batch of the run, fixed up front: (task id, example index) per slot.

    `batches[k]` is the k-th global micro-batch (batch_size × world rows); step s uses
    micro-batches s·accum … s·accum+accum-1, and rank r takes rows r·batch_size onwards.
    """

    batches: np.ndarray  # (micro-batches, batch_size × world, 2)
    steps: int
    accum: int
    batch_size: int

    def micro_batches(self, step: int, rank: int) -> list[np.ndarray]:
        """This rank's (task id, example index) rows for each micro-batch of a step."""
        first = step * self.accum
        rows = slice(rank * self.batch_size, (rank + 1) * self.batch_size)
        return [self.batches[k, rows] for k in range(first, first + self.accum)]

    def step_batches(self, step: int) -> np.ndarray:
        """All ranks' rows of a step (for counting global tokens)."""
        return self.batches[step * self.accum : (step + 1) * self.accum].reshape(-1, 2)


def make_plan(data: TaskData, recipe: Recipe, world: int) -> tuple[TrainingPlan, list[MixtureRow]]:
    """Sample the mixture stream for the whole run and group it into batches."""
    ids = sorted(data.train_sets)
    sizes = [len(data.train_sets[i]) for i in ids]
    shares = mixture_shares(sizes, [data.rates[i] for i in ids], recipe.mixture)
    train = recipe.train
    micro = train.batch_size * world
    per_step = micro * train.grad_accum
    steps = train.max_steps or max(1, math.ceil(float(train.epochs or 0) * sum(sizes) / per_step))
    # Sample whole grouping windows so the plan of a longer run starts with that of a shorter one.
    micro_batches = -(-steps * train.grad_accum // GROUP_WINDOW) * GROUP_WINDOW
    stream = sample_stream(sizes, shares, micro_batches * micro, train.seed)
    stream[:, 0] = np.asarray(ids)[stream[:, 0]]
    if train.group_by_length:
        lengths_of = {i: np.asarray([len(a) + len(b) for a, b in zip(d["input_ids"], d["labels"])])
                      for i, d in data.train_sets.items()}
        lengths = np.fromiter((lengths_of[t][e] for t, e in stream), dtype=np.int64, count=len(stream))
        order = group_batches(lengths, micro, train.seed, window=GROUP_WINDOW)
    else:
        order = np.arange(len(stream)).reshape(-1, micro)
    table = [MixtureRow(data.tasks[i].name, n, data.rates[i], float(s)) for i, n, s in zip(ids, sizes, shares)]
    return TrainingPlan(stream[order], steps, train.grad_accum, train.batch_size), table


def _print_table(table: list[MixtureRow], truncated: dict[str, tuple[int, int]]) -> None:
    width = max(len(r.task) for r in table)
    print(f"\n{'task':<{width}}  examples   rate   share  truncated(src/tgt)")
    for row in table:
        src, tgt = truncated.get(row.task, (0, 0))
        print(f"{row.task:<{width}}  {row.examples:>8}  {row.rate:>5.2f}  {row.share:>6.1%}  {src}/{tgt}")
    print()


def _token_loss_sum(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed cross-entropy over target tokens (normalised by the caller over the global step)."""
    labels = batch["labels"]
    outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    decoder_input_ids=batch["decoder_input_ids"])
    logits = outputs.logits
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1), ignore_index=-100, reduction="sum")


class Trainer:
    """One training run of a recipe under Accelerate."""

    def __init__(self, recipe: Recipe, anchors: list[Path], resume: bool = False, overwrite: bool = False) -> None:
        self.recipe = recipe
        self.run = RunDir(recipe.output_dir)
        self.run.check(recipe, resume=resume, overwrite=overwrite)
        set_seed(recipe.train.seed)
        selected = select_tasks(recipe, anchors)
        self.backbone = load_backbone(recipe.model.name_or_path, recipe.model.dtype)
        self.settings = TokenizerSettings(self.backbone.tokenizer, recipe.model.max_source_length, recipe.model.max_target_length)
        trackers = ["tensorboard"] if _has_tensorboard() else None
        self.accelerator = Accelerator(log_with=trackers, project_dir=str(self.run.root))
        self.main = self.accelerator.is_main_process
        with self.accelerator.main_process_first():
            self.data = build_task_data(selected, self.settings, recipe)
        self.plan, table = make_plan(self.data, recipe, self.accelerator.num_processes)
        if self.main:
            self.run.claim(recipe, overwrite=overwrite)
            self.run.write_task_table(self.data.tasks)
            _print_table(table, self.data.truncated)
        self.accelerator.wait_for_everyone()
        model = apply_adapter(self.backbone, recipe.adapter)
        if recipe.model.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=recipe.train.lr, weight_decay=recipe.train.weight_decay)
        self.scheduler = get_scheduler(recipe.train.scheduler, optimizer, recipe.train.warmup, self.plan.steps)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.accelerator.register_for_checkpointing(self.scheduler)
        self.accelerator.register_save_state_pre_hook(self._save_trained_only)
        self.accelerator.register_load_state_pre_hook(self._load_trained_only)
        self.collate = Seq2SeqCollator(pad_id=self.backbone.tokenizer.pad_token_id)
        self.start_step = self._resume() if resume else 0

    # -- checkpoints -------------------------------------------------------------------
    def _save_trained_only(self, models: list[nn.Module], weights: list[dict], output_dir: str) -> None:
        """Keep frozen backbone weights out of checkpoints: save only what is trained."""
        if self.main:
            for model in models:
                save_trained(self.accelerator.unwrap_model(model), Path(output_dir) / "model")
        weights.clear()

    def _load_trained_only(self, models: list[nn.Module], input_dir: str) -> None:
        for model in models:
            load_weights_into(self.accelerator.unwrap_model(model), Path(input_dir) / "model")
        models.clear()

    def _resume(self) -> int:
        checkpoints = self.run.checkpoints()
        if not checkpoints:
            logger.warning("--resume: no complete checkpoint in %s; starting from step 0", self.run.checkpoints_dir)
            return 0
        latest = checkpoints[-1]
        state = json.loads((latest / "trainer_state.json").read_text())
        if state["steps"] != self.plan.steps and self.recipe.train.scheduler != "constant":
            logger.warning("resuming with a different run length (%d → %d steps)", state["steps"], self.plan.steps)
        self.accelerator.load_state(str(latest))
        if self.main:
            print(f"resumed from {latest} at step {state['step']}")
        return int(state["step"])

    def save_checkpoint(self, step: int) -> None:
        """Write a checkpoint in a temporary folder, mark it complete, then rename it into place."""
        final = self.run.checkpoints_dir / f"step-{step:06d}"
        temporary = self.run.checkpoints_dir / f".tmp-step-{step:06d}"
        if self.main:
            shutil.rmtree(temporary, ignore_errors=True)
            temporary.mkdir(parents=True)
        self.accelerator.wait_for_everyone()
        self.accelerator.save_state(str(temporary))
        if self.main:
            state = {"step": step, "steps": self.plan.steps, "world_size": self.accelerator.num_processes}
            (temporary / "trainer_state.json").write_text(json.dumps(state))
            (temporary / COMPLETE).touch()
            shutil.rmtree(final, ignore_errors=True)
            os.replace(temporary, final)
            self._prune()
        self.accelerator.wait_for_everyone()

    def _prune(self) -> None:
        keep = self.recipe.train.keep_last
        if keep:
            for old in self.run.checkpoints()[:-keep]:
                shutil.rmtree(old)

    def save_final(self) -> None:
        """The trained weights and tokenizer in final/, marked complete."""
        if self.main:
            final = self.run.final_dir
            shutil.rmtree(final, ignore_errors=True)
            save_trained(self.accelerator.unwrap_model(self.model), final)
            self.backbone.tokenizer.save_pretrained(final)
            (final / COMPLETE).touch()
        self.accelerator.wait_for_everyone()

    # -- the loop ----------------------------------------------------------------------
    def _batch(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        examples = [self.data.train_sets[int(t)][int(e)] for t, e in rows]
        batch = self.collate(examples)
        batch["decoder_input_ids"] = self.backbone.model.prepare_decoder_input_ids_from_labels(labels=batch["labels"])
        return {k: v.to(self.accelerator.device) for k, v in batch.items()}

    def _global_tokens(self, step: int) -> int:
        return sum(len(self.data.train_sets[int(t)][int(e)]["labels"]) for t, e in self.plan.step_batches(step))

    def train_step(self, step: int) -> tuple[torch.Tensor, int]:
        """One optimizer step over this rank's micro-batches; returns (loss sum, tokens seen)."""
        micro = self.plan.micro_batches(step, self.accelerator.process_index)
        scale = self.accelerator.num_processes / self._global_tokens(step)
        loss_sum = torch.zeros((), device=self.accelerator.device)
        tokens = 0
        self.model.train()
        for k, rows in enumerate(micro):
            batch = self._batch(rows)
            tokens += int(batch["attention_mask"].sum()) + int((batch["labels"] != -100).sum())
            sync = k == len(micro) - 1
            with contextlib.nullcontext() if sync else self.accelerator.no_sync(self.model):
                with self.accelerator.autocast():
                    summed = _token_loss_sum(self.model, batch)
                self.accelerator.backward(summed * scale)
            loss_sum += summed.detach()
        if self.recipe.train.grad_clip:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.recipe.train.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum, tokens

    def evaluate(self, step: int | None) -> dict[str, Any] | None:
        """Evaluate every evaluation set; returns the summary on the main process."""
        model = self.accelerator.unwrap_model(self.model)
        return evaluate_sets(self.accelerator, model, self.backbone.tokenizer, self.data.eval_sets,
                             self.recipe.eval, self.run, step)

    def fit(self) -> dict[str, Any] | None:
        """Train to the end of the plan, then save and evaluate; returns the final summary."""
        train = self.recipe.train
        if self.main:
            flat = {k: str(v) for k, v in self.recipe.model_dump(mode="json")["train"].items()}
            self.accelerator.init_trackers("tensorboard", config=flat)
        bar = tqdm(total=self.plan.steps, initial=self.start_step, disable=not self.main, desc="train")
        window_loss, window_tokens, window_start = torch.zeros((), device=self.accelerator.device), 0, time.perf_counter()
        for step in range(self.start_step, self.plan.steps):
            loss_sum, tokens = self.train_step(step)
            window_loss += loss_sum
            window_tokens += tokens
            done = step + 1
            if done % train.log_every == 0 or done == self.plan.steps:
                self._log(done, window_loss, window_tokens, time.perf_counter() - window_start, bar)
                window_loss, window_tokens, window_start = torch.zeros_like(window_loss), 0, time.perf_counter()
            bar.update(1)
            if train.save_every and done % train.save_every == 0 and done < self.plan.steps:
                self.save_checkpoint(done)
            if train.eval_every and done % train.eval_every == 0 and done < self.plan.steps:
                self._log_eval(done, self.evaluate(done))
        bar.close()
        if train.save_every:
            self.save_checkpoint(self.plan.steps)
        self.save_final()
        summary = self.evaluate(self.plan.steps)
        self._log_eval(self.plan.steps, summary)
        self.accelerator.end_training()
        return summary

    def _log(self, step: int, loss_sum: torch.Tensor, tokens: int, seconds: float, bar: tqdm) -> None:
        totals = self.accelerator.reduce(torch.stack([loss_sum, torch.tensor(float(tokens), device=loss_sum.device)]), "sum")
        steps = self.recipe.train.log_every if step % self.recipe.train.log_every == 0 else step % self.recipe.train.log_every
        target_tokens = sum(self._global_tokens(s) for s in range(step - steps, step))
        record = {"step": step, "loss": float(totals[0]) / target_tokens, "lr": self.scheduler.get_last_lr()[0],
                  "tokens_per_s": float(totals[1]) / max(seconds, 1e-9), "seconds": seconds}
        if self.main:
            with self.run.log_file.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
            self.accelerator.log({"train/loss": record["loss"], "train/lr": record["lr"],
                                  "train/tokens_per_s": record["tokens_per_s"]}, step=step)

    def _log_eval(self, step: int, summary: dict[str, Any] | None) -> None:
        if summary is None:
            return
        averages = summary["averages"]
        flat = {f"eval/{name}": group["score"] for name, group in averages.items() if name != "by_domain"}
        flat.update({f"eval/domain/{name}": group["score"] for name, group in averages["by_domain"].items()})
        self.accelerator.log(flat, step=step)
        with self.run.log_file.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": step, "eval": summary["averages"]}) + "\n")
        print("\n" + to_markdown(summary))


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def train(recipe: Recipe, anchors: list[Path], resume: bool = False, overwrite: bool = False) -> dict[str, Any] | None:
    """Run a recipe from start (or the latest checkpoint) to its evaluated final weights."""
    return Trainer(recipe, anchors, resume=resume, overwrite=overwrite).fit()
