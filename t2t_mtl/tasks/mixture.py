"""Mixture sampling: which task and which example at every position of training.

The whole stream is a pure function of (sizes, weights, seed), so every rank and every
resumed run computes the same stream and a position is all the state a sampler needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from t2t_mtl.recipe import MixtureSpec


@dataclass(frozen=True)
class MixtureRow:
    """One task's line in the mixture table."""

    task: str
    examples: int
    rate: float
    share: float


def mixture_shares(sizes: list[int], rates: list[float], spec: MixtureSpec) -> np.ndarray:
    """Sampling probability of each task: rate × (size, size^(1/T) or 1), normalised."""
    size = np.asarray(sizes, dtype=np.float64)
    if spec.strategy == "proportional":
        base = size
    elif spec.strategy == "temperature":
        base = size ** (1.0 / spec.temperature)
    else:
        base = np.ones_like(size)
    weights = base * np.asarray(rates, dtype=np.float64)
    return weights / weights.sum()


def sample_stream(sizes: list[int], shares: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` (task index, example index) pairs.

    Tasks are drawn by share; within a task, examples follow a fresh seeded permutation
    per pass, so no example repeats before its task's pass is complete.
    """
    rng = np.random.default_rng(seed)
    tasks = rng.choice(len(sizes), size=count, p=shares)
    examples = np.empty(count, dtype=np.int64)
    for task, size in enumerate(sizes):
        where = np.flatnonzero(tasks == task)
        passes = -(-len(where) // size) if len(where) else 0
        order = [np.random.default_rng([seed, task, p]).permutation(size) for p in range(passes)]
        examples[where] = np.concatenate(order)[: len(where)] if order else []
    return np.stack([tasks, examples], axis=1)


def group_batches(lengths: np.ndarray, batch_size: int, seed: int, window: int = 64) -> np.ndarray:
    """Reorder stream positions into batches of similar length.

    Within each window of `window` batches, positions are sorted by length, cut into
    batches, and the batches shuffled (seeded): padding falls, randomness stays.
    Returns an array of shape (batches, batch_size) of positions into the stream.
    """
    usable = len(lengths) - len(lengths) % batch_size
    positions = np.arange(usable)
    rng = np.random.default_rng([seed, 7])
    batches = []
    span = window * batch_size
    for start in range(0, usable, span):
        chunk = positions[start : start + span]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        grouped = chunk.reshape(-1, batch_size)
        batches.append(grouped[rng.permutation(len(grouped))])
    return np.concatenate(batches) if batches else np.empty((0, batch_size), dtype=np.int64)
