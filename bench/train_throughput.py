"""Training throughput: our Accelerate loop vs HF Seq2SeqTrainer + PEFT LoRA, same model/data/batch.

Both train the same LoRA (same backbone, targets, new modules trained in full) on the same
mixture of examples (our sampled stream), with the same batch size and learning rate.
The Trainer uses its best setting for mixed-length data, `train_sampling_strategy=
"group_by_length"`. Throughput counts real (non-padding) source + target tokens.

    python bench/train_throughput.py                       # CPU, offline MiniLM, quickstart tasks
    python bench/train_throughput.py --bf16 --batch-size 64 --steps 60   # on a GPU

It also prints what the per-task logging costs, as a share of the step time: the per-task loss,
token and example accounting inside each step, and (routed recipes) the routing snapshot each
log line records. A routed recipe is timed on our loop only (the HF Trainer cannot route):

    python bench/train_throughput.py --recipe recipes/quickstart_poly.yaml
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback

from t2t_mtl.modeling.backbone import load_backbone
from t2t_mtl.plan import TrainingPlan, make_plan
from t2t_mtl.recipe import load_recipe
from t2t_mtl.training import Trainer

ROOT = Path(__file__).resolve().parents[1]


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def padding_fraction(trainer: Trainer, group: bool) -> float:
    """Share of padded positions over the plan's batches, with or without length grouping."""
    plan = trainer.plan if group else _ungrouped_plan(trainer)
    lengths = {i: (np.asarray(d["source_length"]), np.asarray(d["target_length"]))
               for i, d in trainer.data.train_sets.items()}
    padded = real = 0
    for batch in plan.batches:
        for side in (0, 1):
            sizes = np.asarray([lengths[int(t)][side][int(e)] for t, e in batch])
            real += sizes.sum()
            padded += sizes.max() * len(sizes) - sizes.sum()
    return padded / (padded + real)


def _ungrouped_plan(trainer: Trainer) -> TrainingPlan:
    recipe = trainer.recipe.model_copy(deep=True)
    recipe.train.group_by_length = False
    return make_plan(trainer.data, recipe, 1)[0]


def bench_ours(trainer: Trainer, steps: int, warmup: int) -> float:
    """Tokens/s of our train_step over steps [warmup, steps)."""
    tokens = 0
    for step in range(steps):
        if step == warmup:
            synchronize()
            start = time.perf_counter()
            tokens = 0
        tokens += trainer.train_step(step)[1]
    synchronize()
    return tokens / (time.perf_counter() - start)


def per_task_cost(trainer: Trainer, steps: int, warmup: int) -> tuple[float, float, float]:
    """(seconds inside the per-task accounting, seconds taking the routing snapshots of the log lines, seconds
    of the whole steps) over steps [warmup, steps).

    Both are timed where they run (synchronised on a GPU), so the share does not drown in the
    step-to-step noise of the machine; a snapshot is taken every train.log_every steps, as the loop does.
    """
    account = trainer._count_by_task
    spent = [0.0]

    def timed_account(*args: torch.Tensor) -> None:
        synchronize()
        start = time.perf_counter()
        account(*args)
        synchronize()
        spent[0] += time.perf_counter() - start

    trainer._count_by_task = timed_account  # this instance only
    snapshots = 0.0
    try:
        total = 0.0
        for step in range(steps):
            if step == warmup:
                spent[0] = 0.0
            synchronize()
            start = time.perf_counter()
            trainer.train_step(step)
            synchronize()
            total += time.perf_counter() - start if step >= warmup else 0.0
            if step >= warmup and (step + 1) % trainer.recipe.train.log_every == 0:
                start = time.perf_counter()
                trainer.routing_plan.snapshot()
                snapshots += time.perf_counter() - start
    finally:
        del trainer._count_by_task
    return spent[0], snapshots, total


class _Clock(TrainerCallback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.warmup:
            synchronize()
            self.start = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        synchronize()
        self.end = time.perf_counter()


class _CountingCollator(DataCollatorForSeq2Seq):
    def __call__(self, features, return_tensors=None):
        self.counts.append(sum(len(f["input_ids"]) + len(f["labels"]) for f in features))
        return super().__call__(features, return_tensors)


def bench_hf(trainer: Trainer, args: argparse.Namespace) -> float:
    """Tokens/s of Seq2SeqTrainer + PEFT LoRA on the same examples, group_by_length sampling."""
    stream = trainer.plan.batches.reshape(-1, 2)
    rows = [trainer.data.train_sets[int(t)][int(e)] for t, e in stream]
    dataset = datasets.Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows],
                                          "labels": [r["labels"] for r in rows]})
    backbone = load_backbone(trainer.recipe.model.name_or_path)
    adapter = trainer.recipe.adapter
    model = trainer.recipe.method.build(backbone, adapter, n_tasks=1)
    collator = _CountingCollator(backbone.tokenizer, model=None, label_pad_token_id=-100)
    collator.counts = []
    clock = _Clock(args.warmup)
    with tempfile.TemporaryDirectory() as out:
        hf_args = Seq2SeqTrainingArguments(
            output_dir=out, per_device_train_batch_size=args.batch_size, max_steps=args.steps,
            learning_rate=trainer.recipe.train.lr, lr_scheduler_type="constant", bf16=args.bf16,
            train_sampling_strategy="group_by_length", save_strategy="no", report_to=[], logging_steps=10**6,
            dataloader_num_workers=0, disable_tqdm=True, seed=0, max_grad_norm=trainer.recipe.train.grad_clip,
        )
        Seq2SeqTrainer(model=model, args=hf_args, train_dataset=dataset, data_collator=collator,
                       callbacks=[clock]).train()
    return sum(collator.counts[args.warmup : args.steps]) / (clock.end - clock.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(ROOT / "recipes/quickstart.yaml"))
    parser.add_argument("--model", help="override model.name_or_path")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    if args.bf16:
        os.environ["ACCELERATE_MIXED_PRECISION"] = "bf16"
    overrides = [f"train.batch_size={args.batch_size}", f"train.max_steps={args.steps}", "train.scheduler=constant",
                 "train.warmup=0", "train.save_every=null", "train.eval_every=null"]
    if args.model:
        overrides.append(f"model.name_or_path={args.model}")
    with tempfile.TemporaryDirectory() as out:
        recipe = load_recipe(args.recipe, [*overrides, f"output_dir={out}/run"])
        trainer = Trainer(recipe, [ROOT])
        grouped, ungrouped = padding_fraction(trainer, True), padding_fraction(trainer, False)
        ours = bench_ours(trainer, args.steps, args.warmup)
        accounting, snapshots, stepping = per_task_cost(trainer, args.steps, args.warmup)
    routed = trainer.routing_plan.snapshot() is not None
    hf = None if routed else bench_hf(trainer, args)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    print(f"\nmodel {recipe.model.name_or_path} · adapter {recipe.adapter.type} · batch {args.batch_size} · "
          f"{args.steps - args.warmup} timed steps · {'bf16' if args.bf16 else 'fp32'} · {device}")
    print(f"{'trainer':<46} {'tokens/s':>10} {'ratio':>7}")
    if hf is not None:
        print(f"{'HF Seq2SeqTrainer + PEFT LoRA (group_by_length)':<46} {hf:>10.0f} {1.0:>7.2f}")
    ratio = f"{ours / hf:>7.2f}" if hf is not None else "   (HF cannot route)"
    print(f"{f't2t_mtl loop + {recipe.adapter.type} (length-grouped)':<46} {ours:>10.0f} {ratio}")
    print(f"padded share of tokens in our batches: {grouped:.1%} grouped vs {ungrouped:.1%} ungrouped")
    timed = args.steps - args.warmup
    print(f"per-task logging: {(accounting + snapshots) / stepping:.3%} of the step time: accounting "
          f"{accounting * 1e3 / timed:.3f} ms and routing snapshots {snapshots * 1e3 / timed:.3f} ms (one per "
          f"{recipe.train.log_every} steps) per step of {stepping * 1e3 / timed:.1f} ms")


if __name__ == "__main__":
    main()
