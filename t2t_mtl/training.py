"""The Accelerate training loop: prepare, accumulate, clip, schedule, log, evaluate, checkpoint."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed
from safetensors.torch import save_file
from torch import nn
from transformers import get_scheduler

from t2t_mtl.checkpoints import Checkpointer
from t2t_mtl.data import Seq2SeqCollator, TokenizerSettings, build_task_data
from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation.runner import evaluate_sets
from t2t_mtl.losses import token_loss_sum
from t2t_mtl.modeling.adapters import apply_adapter, save_trained
from t2t_mtl.modeling.backbone import load_backbone
from t2t_mtl.modeling.routed.zero_shot import Router, TaskRouting
from t2t_mtl.plan import make_plan, print_mixture
from t2t_mtl.recipe import Recipe
from t2t_mtl.run_dir import COMPLETE, RunDir, task_table
from t2t_mtl.step_log import StepLog
from t2t_mtl.tasks.registry import select_tasks
from t2t_mtl.tasks.schema import TaskSpec


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def _check_process_group(accelerator: Accelerator) -> None:
    """Refuse ranks that were launched together but did not join one process group."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        raise T2TError(
            f"{launched} processes were launched but each runs alone (world size {accelerator.num_processes}); "
            f"they would overwrite each other's run. On a machine without GPUs, set ACCELERATE_USE_CPU=1 "
            f"(or pass --cpu) so the ranks join over gloo."
        )


class Trainer:
    """One training run of a recipe under Accelerate."""

    def __init__(self, recipe: Recipe, anchors: list[Path], resume: bool = False, overwrite: bool = False) -> None:
        self.recipe = recipe
        self.run = RunDir(recipe.output_dir)
        self.run.check(recipe, resume=resume, overwrite=overwrite)
        set_seed(recipe.train.seed)
        selected = select_tasks(recipe, anchors)
        self.backbone = load_backbone(recipe.model.name_or_path, recipe.model.dtype)
        settings = TokenizerSettings(self.backbone.tokenizer, recipe.model.max_source_length,
                                     recipe.model.max_target_length)
        self.accelerator = Accelerator(log_with=["tensorboard"] if _has_tensorboard() else None,
                                       project_dir=str(self.run.root))
        self.main = self.accelerator.is_main_process
        _check_process_group(self.accelerator)
        with self.accelerator.main_process_first():
            self.data = build_task_data(selected, settings, recipe)
        self.plan, table = make_plan(self.data, recipe, self.accelerator.num_processes)
        self.table = task_table(self.data.selected, self.data.instructions)
        if self.main:
            self.run.claim(recipe, overwrite=overwrite)
            self.run.write_task_table(self.table, self.data.selected)
            print_mixture(table, self.data.truncated)
        self.accelerator.wait_for_everyone()
        self.model, self.optimizer, self.scheduler = self._prepare()
        unwrapped = self.accelerator.unwrap_model(self.model)
        self.routing = TaskRouting(unwrapped, self.backbone.tokenizer, self.table) \
            if recipe.adapter.routed else None
        self.collate = Seq2SeqCollator(pad_id=self.backbone.tokenizer.pad_token_id)
        self.checkpointer = Checkpointer(self.accelerator, self.run, recipe.train.keep_last)
        self.start_step = self.checkpointer.restore() if resume else 0

    def _prepare(self) -> tuple[nn.Module, torch.optim.Optimizer, Any]:
        train = self.recipe.train
        adapter = self.recipe.adapter
        model = apply_adapter(self.backbone, adapter, n_tasks=len(self.data.tasks))
        if self.recipe.model.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        routing = [p for n, p in trained if "lora_routing" in n]
        groups = [{"params": [p for n, p in trained if "lora_routing" not in n]}]
        if routing:  # routing logits learn at their own (usually much larger) rate, without decay
            groups.append({"params": routing, "lr": adapter.routing_lr or 10 * train.lr, "weight_decay": 0.0})
        # The fused kernel (CPU and CUDA) updates all tensors in one pass, as HF Trainer's default does.
        optimizer = torch.optim.AdamW(groups, lr=train.lr, weight_decay=train.weight_decay, fused=True)
        scheduler = get_scheduler(train.scheduler, optimizer, train.warmup, self.plan.steps)
        plugin = self.accelerator.state.deepspeed_plugin
        if plugin is not None:  # we batch ourselves, so DeepSpeed's "auto" batch sizes are filled here
            plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = train.batch_size
            plugin.deepspeed_config["gradient_accumulation_steps"] = train.grad_accum
        model, optimizer = self.accelerator.prepare(model, optimizer)
        self.accelerator.register_for_checkpointing(scheduler)
        self.trained = [p for p in model.parameters() if p.requires_grad]
        self.head = self.backbone.model.get_output_embeddings()
        return model, optimizer, scheduler

    # -- one step ----------------------------------------------------------------------
    def _batch(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        batch = self.collate([self.data.train_sets[int(t)][int(e)] for t, e in rows])
        if self.routing is not None:  # task ids are checked on the host, before the batch moves
            self.routing.model.routing.set_tasks(batch["task_ids"])
        batch["decoder_input_ids"] = self.backbone.model.prepare_decoder_input_ids_from_labels(labels=batch["labels"])
        return {k: v.to(self.accelerator.device) for k, v in batch.items()}

    def train_step(self, step: int) -> tuple[torch.Tensor, int, int]:
        """One optimizer step over this rank's micro-batches: (loss sum, tokens, examples)."""
        micro = self.plan.micro_batches(step, self.accelerator.process_index)
        scale = self.accelerator.num_processes / int(self.plan.target_tokens[step])
        deepspeed = self.accelerator.distributed_type == DistributedType.DEEPSPEED
        loss_sum = torch.zeros((), device=self.accelerator.device)
        tokens = examples = 0
        self.model.train()
        for k, rows in enumerate(micro):
            batch = self._batch(rows)
            tokens += int(batch["attention_mask"].sum()) + int((batch["labels"] != -100).sum())
            examples += len(rows)
            last = k == len(micro) - 1
            no_sync = contextlib.nullcontext() if last or deepspeed else self.accelerator.no_sync(self.model)
            with no_sync:
                with self.accelerator.autocast():
                    summed = token_loss_sum(self.model, batch, self.head)
                # DeepSpeed divides by its accumulation steps itself; undo that to keep the global-token mean.
                self.accelerator.backward(summed * scale * (len(micro) if deepspeed else 1))
            loss_sum += summed.detach()
        if self.recipe.train.grad_clip:
            self.accelerator.clip_grad_norm_(self.trained, self.recipe.train.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum, tokens, examples

    # -- the run -----------------------------------------------------------------------
    def _router_for(self, task: TaskSpec) -> Router | None:
        """Learned routing for trained tasks, the recipe's zero-shot mode for held-out ones."""
        if self.routing is None:
            return None
        mode = self.recipe.eval.routing if task.held_out else None
        instruction = next(row["instruction"] for row in self.table if row["name"] == task.name)
        return self.routing.router(task.name, instruction, mode)

    def evaluate(self, step: int | None) -> dict[str, Any] | None:
        """Evaluate every evaluation set; returns the summary on the main process."""
        return evaluate_sets(self.accelerator, self.model, self.backbone.tokenizer, self.data.eval_sets,
                             self.recipe.eval, self.run, step, router_for=self._router_for)

    def save_final(self) -> None:
        """The trained weights and tokenizer in final/, marked complete."""
        weights = self.accelerator.get_state_dict(self.model) if self._sharded() else None
        if self.main:
            final = self.run.final_dir
            shutil.rmtree(final, ignore_errors=True)
            save_trained(self.accelerator.unwrap_model(self.model), final, state_dict=weights)
            self.backbone.tokenizer.save_pretrained(final)
            if self.routing is not None:
                save_file({"embeddings": self.routing.embeddings.contiguous()}, str(self.run.embeddings_file))
            (final / COMPLETE).touch()
        self.accelerator.wait_for_everyone()

    def _sharded(self) -> bool:
        return self.accelerator.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP)

    def fit(self) -> dict[str, Any] | None:
        """Train to the end of the plan, then save and evaluate; returns the final summary."""
        train, steps = self.recipe.train, self.plan.steps
        if self.main:
            self.accelerator.init_trackers("tensorboard", config={k: str(v) for k, v in train.model_dump().items()})
        log = StepLog(self.accelerator, self.run, train.log_every, steps, self.start_step)
        for step in range(self.start_step, steps):
            loss_sum, tokens, examples = self.train_step(step)
            log.add(loss_sum, tokens, examples, int(self.plan.target_tokens[step]))
            done = step + 1
            if done % train.log_every == 0 or done == steps:
                log.flush(done, self.scheduler.get_last_lr()[0])
            if train.save_every and (done % train.save_every == 0 or done == steps):
                self.checkpointer.save(done, steps)
            if train.eval_every and done % train.eval_every == 0 and done < steps:
                log.evaluation(done, self.evaluate(done))
        log.close()
        self.save_final()
        summary = self.evaluate(steps)
        log.evaluation(steps, summary)
        self.accelerator.wait_for_everyone()  # no rank tears the process group down while another still writes
        self.accelerator.end_training()
        return summary


def train(recipe: Recipe, anchors: list[Path], resume: bool = False, overwrite: bool = False) -> dict[str, Any] | None:
    """Run a recipe from start (or the latest checkpoint) to its evaluated final weights.

    `train.resume: auto` resumes whenever the output folder already holds this run.
    """
    resume = resume or (not overwrite and recipe.train.resume == "auto" and RunDir(recipe.output_dir).exists())
    return Trainer(recipe, anchors, resume=resume, overwrite=overwrite).fit()
