"""Routing as a value of one call: `Routing`, resolved for all layers at once by `routed_call`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.distributions import RelaxedBernoulli

from t2t_mtl.errors import T2TError
from t2t_mtl.modeling.routed.formulations import FORMULATIONS, placed_weights

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
    the weights cover beyond the shared ones. `formulation` forces one of
    `formulations.FORMULATIONS` (for benchmarks); by default each layer picks the cheapest.
    """

    task_ids: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    task: int | None = None
    formulation: str | None = None
    arrow: Arrow | None = None

    def __post_init__(self) -> None:
        if self.formulation is not None and self.formulation not in FORMULATIONS:
            raise T2TError(f"unknown routed formulation '{self.formulation}'; one of {', '.join(FORMULATIONS)}")

    @classmethod
    def tasks(cls, task_ids: torch.Tensor, formulation: str | None = None) -> Routing:
        """Route each example by its own task id."""
        return cls(task_ids=task_ids, formulation=formulation)

    @classmethod
    def fixed(cls, weights: torch.Tensor, task: int | None = None, formulation: str | None = None) -> Routing:
        """Route every example with `weights` (layers, splits, skills)."""
        return cls(weights=weights, task=task, formulation=formulation)

    @classmethod
    def per_token(cls, arrow: Arrow) -> Routing:
        """Route every token of every layer by Arrow."""
        return cls(arrow=arrow)


@dataclass(frozen=True)
class Arrow:
    """Arrow routing: every token of every layer mixes its `top_k` shared skills closest to it.

    `prototypes[l]` (skills, in) are layer l's skill prototypes (`formulations.skill_prototypes`);
    closeness is |x · v|, and the k closest skills get softmax(closeness / temperature).
    """

    prototypes: tuple[torch.Tensor, ...]
    top_k: int = 3
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.temperature <= 0:
            raise T2TError(f"Arrow needs top_k >= 1 and temperature > 0 (got {self.top_k}, {self.temperature})")


@dataclass(frozen=True)
class LayerRouting:
    """One layer's routing in a call: R routing rows and the row of each example of its batch.

    `weights` (R, splits, K) the rows over all K skills; `a_weights` (R, splits, S) their shared
    skills' columns, which mix A, and `b_weights` those times the layer's LoRA scale, which mix
    B; `row_tasks` (R,) the task of each row (for exclusive skills) or None; `a_placed`,
    `b_placed` (R, tasks · exclusive skills) the rows' exclusive weights placed at their task
    (`formulations.placed_weights`), unscaled and scaled, or None; `rows` (batch,) each
    example's row, or None when no gather is needed: one row serves every example (R = 1), or
    row i is example i's.
    """

    weights: torch.Tensor
    a_weights: torch.Tensor
    b_weights: torch.Tensor
    row_tasks: torch.Tensor | None
    a_placed: torch.Tensor | None
    b_placed: torch.Tensor | None
    rows: torch.Tensor | None


class ResolvedRouting:
    """A call's routing for every layer: weights (layers, R, splits, skills) of R routing rows.

    Rows are the distinct tasks of the call (deterministic routing), its examples (sampled
    routing), or one fixed routing. Decoder batches expanded for beam search or several
    return sequences (`k × examples`, each example's copies adjacent) reuse each example's
    row. Every layer's routing for a batch (its shared and exclusive columns, scaled for B,
    and per-example copies of the rows) is made once per call for all layers, and without
    gradients layers keep their mixed factors here for the whole call.
    """

    def __init__(self, weights: torch.Tensor, row_tasks: torch.Tensor | None, rows: torch.Tensor | None,
                 formulation: str | None, scales: torch.Tensor | float,
                 exclusive: tuple[int, int] | None = None) -> None:
        """`rows` (examples,): each example's row; None when row i is example i's, or one row serves all.

        `scales`: the layers' LoRA scales (layers,), or the one scale they all have. `exclusive` =
        (shared skills, tasks) when the layers hold exclusive skills (C-Poly).
        """
        self.weights = weights
        self.row_tasks = row_tasks
        self.formulation = formulation
        self._given = rows
        self.examples = len(rows) if rows is not None else weights.shape[1]
        self._rows: dict[int, torch.Tensor | None] = {self.examples: rows}
        shared = weights[..., :exclusive[0]].contiguous() if exclusive is not None else weights
        self.mixing = [weights, shared, scaled(shared, scales), None, None]
        if exclusive is not None and row_tasks is not None:
            placed = placed_weights(weights[:, :, 0, exclusive[0]:], row_tasks, exclusive[1])
            self.mixing[3:] = placed, scaled(placed, scales)
        self._layers: dict[tuple[int, bool], tuple[LayerRouting, ...]] = {}
        self.kept: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def n_rows(self) -> int:
        """R, the number of routing rows of the call."""
        return self.weights.shape[1]

    def rows_for(self, batch: int) -> torch.Tensor | None:
        """Each example's row in a layer batch of `batch` (None: no gather needed, see `LayerRouting`)."""
        if self._given is None and self.n_rows == 1:
            return None
        if batch not in self._rows:
            if batch % self.examples:
                raise T2TError(f"routed layer got a batch of {batch} for a routing of {self.examples} examples")
            given = self._given
            if given is None:
                given = torch.arange(self.examples, device=self.weights.device)
            self._rows[batch] = given.repeat_interleave(batch // self.examples)
        return self._rows[batch]

    def layer(self, index: int, batch: int, per_example: bool = False) -> LayerRouting:
        """The routing of layer `index` for its input batch; `per_example`: row i is example i's."""
        key = (batch, per_example)
        if key not in self._layers:
            self._layers[key] = self._all_layers(batch, per_example)
        return self._layers[key][index]

    def _all_layers(self, batch: int, per_example: bool) -> tuple[LayerRouting, ...]:
        """Every layer's routing for a batch, split off the stacked weights by one `unbind` each (whose backward
        is one stack, where indexing each layer would zero-fill the whole stack once per layer)."""
        rows, row_tasks, mixing = self.rows_for(batch), self.row_tasks, self.mixing
        if per_example and not (rows is None and self.n_rows == batch):
            rows = rows if rows is not None else torch.zeros(batch, dtype=torch.long, device=self.weights.device)
            mixing = [t[:, rows] if t is not None else None for t in mixing]
            row_tasks = row_tasks[rows] if row_tasks is not None else None
            rows = None
        layers = len(self.weights)
        weights, a_weights, b_weights, a_placed, b_placed = (
            t.unbind(0) if t is not None else (None,) * layers for t in mixing)
        return tuple(LayerRouting(*per_layer[:3], row_tasks, *per_layer[3:], rows)
                     for per_layer in zip(weights, a_weights, b_weights, a_placed, b_placed, strict=True))


def scaled(weights: torch.Tensor, scales: torch.Tensor | float) -> torch.Tensor:
    """Every layer's `weights` (layers, …) times its LoRA scale."""
    if isinstance(scales, float):
        return weights * scales
    return weights * scales.to(weights.device, weights.dtype).view(-1, *(1,) * (weights.dim() - 1))


class RoutingChannel:
    """What the routed layers of one model share: their logits, and the routing of the call in progress.

    `current` is set only inside `routed_call`; a routed layer called outside one raises.
    """

    def __init__(self, layers: list, adapter: str, n_tasks: int) -> None:
        self.layers = layers
        self.adapter = adapter
        self.n_tasks = n_tasks
        self.current: ResolvedRouting | Arrow | None = None

    def logits(self) -> torch.Tensor:
        """All layers' routing logits stacked: (layers, tasks, splits, skills)."""
        return torch.stack([layer.lora_routing[self.adapter] for layer in self.layers])

    def resolve(self, routing: Routing) -> ResolvedRouting | Arrow:
        """Every layer's weights of `routing`, computed now (task ids checked before any device work);
        per-token routing (Arrow) is resolved by each layer from its input."""
        if routing.arrow is not None:
            if len(routing.arrow.prototypes) != len(self.layers):
                raise T2TError(f"Arrow routing holds prototypes of {len(routing.arrow.prototypes)} layers for a model "
                               f"of {len(self.layers)} routed layers")
            return routing.arrow
        first = self.layers[0]
        device = first.lora_routing[self.adapter].device
        exclusive, scales = self._exclusive(), self._scales()
        if routing.weights is not None:
            row_tasks = None if routing.task is None else self._checked(torch.tensor([routing.task])).to(device)
            weights = routing.weights.to(device)[:, None]
            if exclusive is not None and weights.shape[-1] <= exclusive[0]:
                exclusive = None  # shared skills only
            return ResolvedRouting(weights, row_tasks, None, routing.formulation, scales, exclusive)
        if routing.task_ids is None:
            raise T2TError("a Routing needs task ids (Routing.tasks) or weights (Routing.fixed)")
        task_ids = self._checked(routing.task_ids.cpu())
        if first.training and first.sample_routing[self.adapter]:  # a draw per example: row i is example i's
            row_tasks = task_ids.to(device, non_blocking=True)
            weights = skill_weights(self.logits()[:, row_tasks], True, first.routing_temperature[self.adapter])
            return ResolvedRouting(weights, row_tasks, None, routing.formulation, scales, exclusive)
        row_tasks, rows = torch.unique(task_ids, return_inverse=True)  # one row per distinct task
        row_tasks = row_tasks.to(device, non_blocking=True)
        weights = skill_weights(self.logits()[:, row_tasks], False, 1.0)
        return ResolvedRouting(weights, row_tasks, rows.to(device, non_blocking=True), routing.formulation, scales,
                               exclusive)

    def _scales(self) -> torch.Tensor | float:
        """The layers' LoRA scales (layers,) in float64 on the CPU, or the one scale they all have."""
        scales = [layer.scaling[self.adapter] for layer in self.layers]
        if len(set(scales)) == 1:
            return float(scales[0])
        return torch.tensor(scales, dtype=torch.float64)

    def _exclusive(self) -> tuple[int, int] | None:
        """(shared skills, tasks) when the layers hold exclusive skills (C-Poly), else None."""
        first = self.layers[0]
        if self.adapter not in first.lora_exclusive_A:
            return None
        return first.lora_A[self.adapter].weight.shape[0], self.n_tasks

    def _checked(self, task_ids: torch.Tensor) -> torch.Tensor:
        if task_ids.numel() and (int(task_ids.min()) < 0 or int(task_ids.max()) >= self.n_tasks):
            raise T2TError(
                f"task id {int(task_ids.max())} is outside the routing table (tasks 0..{self.n_tasks - 1}); "
                "unseen tasks need a zero-shot routing (average, similar, fit or task=NAME)"
            )
        return task_ids

    def call(self) -> ResolvedRouting | Arrow:
        """The routing of the call in progress; outside a call, a T2TError."""
        if self.current is None:
            raise T2TError(NO_ROUTING)
        return self.current


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
