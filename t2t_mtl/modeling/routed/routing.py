"""Routing: turn per-task logits into per-example skill weights, once per forward for all layers."""

from __future__ import annotations

import torch
from torch.distributions import RelaxedBernoulli

from t2t_mtl.errors import T2TError

EPS = 1e-12


def skill_weights(logits: torch.Tensor, sample: bool, temperature: float) -> torch.Tensor:
    """Normalised skill weights from routing logits (last dim = skills).

    In training with `sample`, a relaxed-Bernoulli draw (Polytropon); otherwise sigmoid.
    """
    if sample:
        gates = RelaxedBernoulli(temperature=torch.tensor(temperature, device=logits.device), logits=logits).rsample()
    else:
        gates = torch.sigmoid(logits)
    return gates / (gates.sum(dim=-1, keepdim=True) + EPS)


class RoutingContext:
    """The routing of the current batch, shared by every routed layer of one model.

    Set it before a forward or `generate`: `set_tasks(task_ids)` for known tasks, or
    `set_weights(weights)` with explicit per-layer skill weights (zero-shot routings). The
    weights of all layers are computed at once, right there (outside any checkpointed
    region), and kept until the next call, so gradient checkpointing recomputes layers
    with the very same routing. Decoder batches expanded for beam search or several
    return sequences (`k × batch`) reuse each example's weights.
    """

    def __init__(self, layers: list, adapter: str, n_tasks: int) -> None:
        self.layers = layers
        self.adapter = adapter
        self.n_tasks = n_tasks
        self._by_batch: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._merge: tuple[torch.Tensor, int | None] | None = None

    def set_merge_routing(self, weights: torch.Tensor, task: int | None) -> None:
        """The single routing that merging folds into the weights: (layers, splits, skills)."""
        self._merge = (weights, task)

    def merge_routing(self, index: int) -> tuple[torch.Tensor, int | None]:
        """One layer's merge routing (splits, skills) and the task whose exclusive skills it uses."""
        if self._merge is None:
            raise T2TError("merging a routed adapter needs a routing: call set_merge_routing(...) first")
        weights, task = self._merge
        return weights[index], task

    def set_tasks(self, task_ids: torch.Tensor) -> None:
        """Route each example by its task's learned logits (ids checked before any device work).

        Training layers draw a relaxed-Bernoulli routing when configured; eval layers use sigmoid.
        """
        if task_ids.numel() and (int(task_ids.min()) < 0 or int(task_ids.max()) >= self.n_tasks):
            raise T2TError(
                f"task id {int(task_ids.max())} is outside the routing table (tasks 0..{self.n_tasks - 1}); "
                "unseen tasks need a zero-shot routing (average, similar, fit or task=NAME)"
            )
        first = self.layers[0]
        device = first.lora_routing[self.adapter].device
        task_ids = task_ids.to(device, non_blocking=True)
        sample = first.training and first.sample_routing[self.adapter]
        weights = skill_weights(self.logits()[:, task_ids], sample, first.routing_temperature[self.adapter])
        self._by_batch = {len(task_ids): (weights, task_ids)}

    def set_weights(self, weights: torch.Tensor) -> None:
        """Route every example with explicit weights over the shared skills, (layers, splits, skills)."""
        self._by_batch = {1: (weights[:, None], None)}

    def logits(self) -> torch.Tensor:
        """All layers' routing logits stacked: (layers, tasks, splits, skills)."""
        return torch.stack([layer.lora_routing[self.adapter] for layer in self.layers])

    def for_layer(self, index: int, batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weights (batch, splits, skills), task ids or None) for one layer and its input batch."""
        if not self._by_batch:
            raise T2TError("routed adapter called without a routing: call set_tasks(task_ids) or set_weights(...) "
                           "on the model's routing context first")
        if batch not in self._by_batch:
            rows, (weights, task_ids) = next(iter(self._by_batch.items()))
            if batch % rows:
                raise T2TError(f"routed layer got a batch of {batch} for a routing of {rows} examples")
            factor = batch // rows
            if task_ids is None:
                weights = weights.expand(-1, batch, -1, -1)
            else:
                weights, task_ids = weights.repeat_interleave(factor, 1), task_ids.repeat_interleave(factor)
            self._by_batch[batch] = (weights, task_ids)
        weights, task_ids = self._by_batch[batch]
        return weights[index], task_ids
