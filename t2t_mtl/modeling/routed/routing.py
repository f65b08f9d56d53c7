"""Routing as a value of one call: `Routing`, resolved for all layers at once by `routed_call`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.distributions import RelaxedBernoulli

from t2t_mtl.errors import T2TError

EPS = 1e-12
NO_ROUTING = ("routed adapter called without a routing: run the forward (and, with gradient checkpointing, its "
              "backward) or the generate inside `with routed_call(model, Routing.tasks(task_ids)):` "
              "(or Routing.fixed(weights))")


def skill_weights(logits: torch.Tensor, sample: bool, temperature: float) -> torch.Tensor:
    """Normalised skill weights from routing logits (last dim = skills).

    In training with `sample`, a relaxed-Bernoulli draw (Polytropon); otherwise sigmoid.
    """
    if sample:
        gates = RelaxedBernoulli(temperature=torch.tensor(temperature, device=logits.device), logits=logits).rsample()
    else:
        gates = torch.sigmoid(logits)
    return gates / (gates.sum(dim=-1, keepdim=True) + EPS)


@dataclass(frozen=True)
class Routing:
    """How the examples of one call are routed.

    `Routing.tasks(ids)`: each example by its task's learned logits (a relaxed-Bernoulli draw
    in training when the adapter samples). `Routing.fixed(weights, task)`: every example with
    one routing (layers, splits, skills); `task` names the task whose exclusive skills (C-Poly)
    the weights cover beyond the shared ones.
    """

    task_ids: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    task: int | None = None

    @classmethod
    def tasks(cls, task_ids: torch.Tensor) -> Routing:
        """Route each example by its own task id."""
        return cls(task_ids=task_ids)

    @classmethod
    def fixed(cls, weights: torch.Tensor, task: int | None = None) -> Routing:
        """Route every example with `weights` (layers, splits, skills)."""
        return cls(weights=weights, task=task)


class ResolvedRouting:
    """A call's routing for every layer: weights (layers, rows, splits, skills) and task ids (rows) or None.

    Decoder batches expanded for beam search or several return sequences (`k × rows`, each
    example's copies adjacent) reuse each example's weights.
    """

    def __init__(self, weights: torch.Tensor, task_ids: torch.Tensor | None) -> None:
        self._by_batch = {weights.shape[1]: (weights, task_ids)}
        self._rows = weights.shape[1]

    def for_layer(self, index: int, batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weights (batch, splits, skills), task ids or None) of one layer for its input batch."""
        if batch not in self._by_batch:
            if batch % self._rows:
                raise T2TError(f"routed layer got a batch of {batch} for a routing of {self._rows} examples")
            weights, task_ids = self._by_batch[self._rows]
            factor = batch // self._rows
            if self._rows == 1:
                weights = weights.expand(-1, batch, -1, -1)
                task_ids = task_ids.expand(batch) if task_ids is not None else None
            else:
                weights, task_ids = weights.repeat_interleave(factor, 1), task_ids.repeat_interleave(factor)
            self._by_batch[batch] = (weights, task_ids)
        weights, task_ids = self._by_batch[batch]
        return weights[index], task_ids


class RoutingChannel:
    """What the routed layers of one model share: their logits, and the routing of the call in progress.

    `current` is set only inside `routed_call`; a routed layer called outside one raises.
    """

    def __init__(self, layers: list, adapter: str, n_tasks: int) -> None:
        self.layers = layers
        self.adapter = adapter
        self.n_tasks = n_tasks
        self.current: ResolvedRouting | None = None

    def logits(self) -> torch.Tensor:
        """All layers' routing logits stacked: (layers, tasks, splits, skills)."""
        return torch.stack([layer.lora_routing[self.adapter] for layer in self.layers])

    def resolve(self, routing: Routing) -> ResolvedRouting:
        """Every layer's weights of `routing`, computed now (task ids checked before any device work)."""
        first = self.layers[0]
        device = first.lora_routing[self.adapter].device
        if routing.weights is not None:
            task_ids = None if routing.task is None else self._checked(torch.tensor([routing.task])).to(device)
            return ResolvedRouting(routing.weights.to(device)[:, None], task_ids)
        if routing.task_ids is None:
            raise T2TError("a Routing needs task ids (Routing.tasks) or weights (Routing.fixed)")
        task_ids = self._checked(routing.task_ids).to(device, non_blocking=True)
        sample = first.training and first.sample_routing[self.adapter]
        weights = skill_weights(self.logits()[:, task_ids], sample, first.routing_temperature[self.adapter])
        return ResolvedRouting(weights, task_ids)

    def _checked(self, task_ids: torch.Tensor) -> torch.Tensor:
        if task_ids.numel() and (int(task_ids.min()) < 0 or int(task_ids.max()) >= self.n_tasks):
            raise T2TError(
                f"task id {int(task_ids.max())} is outside the routing table (tasks 0..{self.n_tasks - 1}); "
                "unseen tasks need a zero-shot routing (average, similar, fit or task=NAME)"
            )
        return task_ids

    def for_layer(self, index: int, batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The current call's routing of one layer; outside a call, a T2TError."""
        if self.current is None:
            raise T2TError(NO_ROUTING)
        return self.current.for_layer(index, batch)


@contextmanager
def channel_call(channel: RoutingChannel, routing: Routing) -> Iterator[None]:
    """Inside: `routing`, resolved once for every layer; after (or on an error): no routing at all."""
    if channel.current is not None:
        raise T2TError("routed_call inside another routed_call of the same model: one routing per call")
    channel.current = channel.resolve(routing)
    try:
        yield
    finally:
        channel.current = None
