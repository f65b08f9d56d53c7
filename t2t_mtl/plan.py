"""The training plan: every micro-batch of a run, fixed before the first step.

The plan is a pure function of the data, the recipe and the world size, so every rank
and every resumed run computes the same one, and the step number is all the sampler
state a checkpoint needs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from t2t_mtl.data import TaskData, Truncation
from t2t_mtl.recipe import Recipe
from t2t_mtl.tasks.mixture import MixtureRow, group_batches, mixture_shares, sample_stream

GROUP_WINDOW = 64  # micro-batches sorted together by length


@dataclass
class TrainingPlan:
    """(task id, example index) for every slot of every global micro-batch.

    `batches[k]` is the k-th global micro-batch (batch_size × world rows); step s uses
    micro-batches s·accum … s·accum+accum-1, and rank r takes rows r·batch_size onwards.
    `target_tokens[s]` counts the target tokens of step s over all ranks, so the loss can
    be normalised by the global count without communication.
    """

    batches: np.ndarray
    target_tokens: np.ndarray
    steps: int
    accum: int
    batch_size: int

    def micro_batches(self, step: int, rank: int) -> list[np.ndarray]:
        """This rank's (task id, example index) rows for each micro-batch of a step."""
        first = step * self.accum
        rows = slice(rank * self.batch_size, (rank + 1) * self.batch_size)
        return [self.batches[k, rows] for k in range(first, first + self.accum)]


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
    source_len = {i: np.asarray(d["source_length"]) for i, d in data.train_sets.items()}
    target_len = {i: np.asarray(d["target_length"]) for i, d in data.train_sets.items()}
    targets = np.fromiter((target_len[t][e] for t, e in stream), dtype=np.int64, count=len(stream))
    if train.group_by_length:
        sources = np.fromiter((source_len[t][e] for t, e in stream), dtype=np.int64, count=len(stream))
        # Sort by source length, ties by target length: 11% padding on the quickstart mixture, 18% by their sum.
        order = group_batches(sources * (targets.max() + 1) + targets, micro, train.seed, window=GROUP_WINDOW)
    else:
        order = np.arange(len(stream)).reshape(-1, micro)
    per_step_tokens = targets[order].reshape(-1, train.grad_accum * micro).sum(axis=1)
    table = [MixtureRow(data.tasks[i].name, n, data.rates[i], float(s)) for i, n, s in zip(ids, sizes, shares)]
    plan = TrainingPlan(stream[order], per_step_tokens, steps, train.grad_accum, train.batch_size)
    return plan, table


def mixture_record(table: list[MixtureRow], truncated: dict[str, Truncation]) -> list[dict[str, Any]]:
    """The mixture table as mixture.json records it: each task's training examples, rate, configured share
    and truncation counts."""
    return [{**asdict(row), "truncation": asdict(truncated[row.task])} for row in table]


def print_mixture(table: list[MixtureRow], truncated: dict[str, Truncation]) -> None:
    """The mixture table printed at start-up: task, examples, rate, share and truncation.

    `shortened` counts the training rows whose prompt was shortened to fit, instance whole;
    `cut(instance/target)` those whose instance or target was cut (see `Truncation`).
    """
    width = max(len(r.task) for r in table)
    print(f"\n{'task':<{width}}  examples   rate   share  shortened  cut(instance/target)")
    for row in table:
        counts = truncated[row.task]
        print(f"{row.task:<{width}}  {row.examples:>8}  {row.rate:>5.2f}  {row.share:>6.1%}  {counts.shortened:>9}  "
              f"{counts.instance_cut}/{counts.target_cut}")
    print()
