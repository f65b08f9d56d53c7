"""The routed LoRA layer: a PEFT LoRA Linear whose rank is an inventory of routed skills.

Shapes: `x` (batch, tokens, in); skills s = 1..S of rank r; splits q = 1..Q (MHR heads)
cut the input and output features into Q blocks; w (batch, Q, K) are the routing weights
(K = S shared skills, plus E exclusive skills of the example's task for C-Poly).

    A_mix(b) = per split q: Σ_k w[b,q,k] A_k[:, block q]      (rank r × in)
    B_mix(b) = per split q: Σ_k w[b,q,k] B_k[block q, :]      (out × rank r)
    Δy = scale · B_mix(b) A_mix(b) x                           (as PEFT's Poly computes)

Each call picks the cheapest exact way to compute it from its shapes (`formulations.py`).
"""

from __future__ import annotations

from typing import Any

import torch
from peft.tuners.lora.layer import Linear as LoraLinear
from torch import nn

from t2t_mtl.errors import T2TError
from t2t_mtl.modeling.routed.formulations import (
    add_factors,
    arrow_delta,
    choose,
    concat_delta,
    mix_factors,
    placed_weights,
    skill_major_a,
    skill_major_b,
)
from t2t_mtl.modeling.routed.routing import Arrow, LayerRouting


class RoutedLinear(LoraLinear):
    """PEFT LoRA Linear with routed skills; `lora_A` (S, in, r) and `lora_B` (S, r, out) hold the shared skills
    skill-major and transposed, and `lora_exclusive_A` (T, E, in, r), `lora_exclusive_B` (T, E, r, out) each
    task's exclusive skills (`formulations.skill_major_a`, `skill_major_b`)."""

    adapter_layer_names = (*LoraLinear.adapter_layer_names, "lora_routing", "lora_exclusive_A", "lora_exclusive_B")
    other_param_names = (*LoraLinear.other_param_names, "skill_rank", "n_splits", "sample_routing",
                         "routing_temperature")

    def _ensure_routing_containers(self) -> None:
        """Create the routing containers once (update_layer runs inside LoRA's __init__)."""
        if "lora_routing" in self._modules:
            return
        self.lora_routing = nn.ParameterDict()
        self.lora_exclusive_A = nn.ParameterDict()
        self.lora_exclusive_B = nn.ParameterDict()
        self.skill_rank: dict[str, int] = {}
        self.n_splits: dict[str, int] = {}
        self.sample_routing: dict[str, bool] = {}
        self.routing_temperature: dict[str, float] = {}
        self.routing_channel = None  # set by attach_routing(): one channel shared by all layers
        self.layer_index = -1

    def update_layer(self, adapter_name: str, r: int, lora_alpha: int, config: Any, **kwargs: Any) -> None:
        """Create the routing logits and exclusive skills, then the shared skills as LoRA A/B."""
        self._ensure_routing_containers()
        splits, rank = config.n_splits, config.skill_rank
        name = kwargs.get("target_name") or type(self.get_base_layer()).__name__
        for size, side in ((self.in_features, "input"), (self.out_features, "output")):
            if size % splits:
                raise T2TError(f"adapter.n_splits={splits} does not divide the {side} size {size} of layer {name}")
        if config.n_exclusive_skills and splits != 1:
            raise T2TError("C-Poly (n_exclusive_skills > 0) routes without splits: set adapter.n_splits=1")
        self.skill_rank[adapter_name] = rank
        self.n_splits[adapter_name] = splits
        self.sample_routing[adapter_name] = config.sample_routing
        self.routing_temperature[adapter_name] = config.routing_temperature
        logits = torch.empty(config.n_tasks, splits, config.skills_per_task)
        self.lora_routing[adapter_name] = nn.Parameter(nn.init.uniform_(logits, -1e-3, 1e-3))
        exclusive = config.n_exclusive_skills
        if exclusive:
            a = torch.empty(config.n_tasks, exclusive * rank, self.in_features)
            for task in range(config.n_tasks):
                nn.init.kaiming_uniform_(a[task], a=5**0.5)  # as PEFT initialises a LoRA A (E·r × in)
            self.lora_exclusive_A[adapter_name] = nn.Parameter(skill_major_a(a, rank, batched=True).contiguous())
            self.lora_exclusive_B[adapter_name] = nn.Parameter(
                torch.zeros(config.n_tasks, exclusive, rank, self.out_features))
        super().update_layer(adapter_name, r, lora_alpha, config=config, **kwargs)
        self.scaling[adapter_name] = lora_alpha / rank
        a, b = self.lora_A[adapter_name], self.lora_B[adapter_name]  # PEFT's (S·r × in), (out × S·r), initialised
        for factor, weight in ((a, skill_major_a(a.weight.detach(), rank)),
                               (b, skill_major_b(b.weight.detach(), rank, config.n_skills))):
            factor.weight = nn.Parameter(weight.contiguous(), requires_grad=factor.weight.requires_grad)

    def _load_from_state_dict(self, state_dict: dict[str, torch.Tensor], prefix: str, *args: Any) -> None:
        """Read skills saved in earlier layouts (PEFT's, or `lora_B` stacked as (S·out × r)) as skill-major."""
        for adapter in self.skill_rank:
            for key in self.skill_tensors(adapter):
                if f"{prefix}{key}" in state_dict:
                    saved = state_dict[f"{prefix}{key}"]
                    state_dict[f"{prefix}{key}"] = self.skill_major(adapter, key, saved).contiguous()
        super()._load_from_state_dict(state_dict, prefix, *args)

    def skill_tensors(self, adapter: str) -> dict[str, torch.Tensor]:
        """This adapter's skill parameters by state-dict key (relative to the layer)."""
        tensors = {f"lora_A.{adapter}.weight": self.lora_A[adapter].weight,
                   f"lora_B.{adapter}.weight": self.lora_B[adapter].weight}
        if adapter in self.lora_exclusive_A:
            tensors[f"lora_exclusive_A.{adapter}"] = self.lora_exclusive_A[adapter]
            tensors[f"lora_exclusive_B.{adapter}"] = self.lora_exclusive_B[adapter]
        return tensors

    def skill_major(self, adapter: str, key: str, saved: torch.Tensor) -> torch.Tensor:
        """`saved` (the tensor or an optimizer moment of skill parameter `key`, in any layout it was saved in)
        skill-major, as the parameter holds it (a view)."""
        rank, batched = self.skill_rank[adapter], key.startswith("lora_exclusive")
        if key.startswith(("lora_A", "lora_exclusive_A")):
            return skill_major_a(saved, rank, batched)
        skills = self.lora_exclusive_B[adapter].shape[1] if batched else self.lora_A[adapter].weight.shape[0]
        return skill_major_b(saved, rank, skills, batched)

    # -- forward ---------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        result = self.base_layer(x, *args, **kwargs)
        if self.disable_adapters or self.merged:
            return result
        for adapter in self.active_adapters:
            if adapter in self.lora_routing:
                result = self._add_routed(result, x, adapter)
        return result

    def _add_routed(self, result: torch.Tensor, x: torch.Tensor, adapter: str) -> torch.Tensor:
        """`result` plus this adapter's routed delta, computed the way the call's shapes make cheapest."""
        call = self.routing_channel.call()
        batch = x.shape[0]
        h = self.lora_dropout[adapter](x).to(self.lora_A[adapter].weight.dtype).reshape(batch, -1, x.shape[-1])
        if isinstance(call, Arrow):
            delta = arrow_delta(h, self.lora_A[adapter].weight, self.lora_B[adapter].weight,
                                call.prototypes[self.layer_index], call.top_k, call.temperature,
                                self.scaling[adapter])
            return result + delta.reshape(result.shape).to(result.dtype)
        grad = torch.is_grad_enabled()
        formulation = call.formulation or choose(call.n_rows, grad)
        route = call.layer(self.layer_index, batch, per_example=formulation != "per_task")
        if formulation == "concat":
            delta = self._concat(h, adapter, route)
            return result + delta.reshape(*result.shape[:-1], -1).to(result.dtype)
        if grad:
            factors = self._factors(adapter, route)
        else:  # kept for the whole call: every decoding step and beam reuses them
            key = (self.layer_index, formulation, batch)
            if key not in call.kept:
                call.kept[key] = self._factors(adapter, route)
            factors = call.kept[key]
        return add_factors(result.reshape(batch, h.shape[1], -1), h, *factors).view(result.shape)

    def _concat(self, h: torch.Tensor, adapter: str, route: LayerRouting) -> torch.Tensor:
        """The delta of `concat`; `route` has one row per example."""
        own_a = own_b = None
        if route.row_tasks is not None and adapter in self.lora_exclusive_A:
            own_a = self.lora_exclusive_A[adapter][route.row_tasks]
            own_b = self.lora_exclusive_B[adapter][route.row_tasks]
        return concat_delta(h, self.lora_A[adapter].weight, self.lora_B[adapter].weight, route.weights,
                            self.skill_rank[adapter], self.n_splits[adapter], self.scaling[adapter], own_a, own_b)

    def _factors(self, adapter: str, route: LayerRouting) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixed factors for a batch: one pair serving all, one per example, or the rows' gathered per example."""
        exclusive = None
        if route.a_placed is not None and adapter in self.lora_exclusive_A:
            exclusive = (self.lora_exclusive_A[adapter], self.lora_exclusive_B[adapter], route.a_placed, route.b_placed)
        a_mix, b_mix = mix_factors(self.lora_A[adapter].weight, self.lora_B[adapter].weight, route.a_weights,
                                   route.b_weights, self.skill_rank[adapter], self.n_splits[adapter], exclusive)
        if route.rows is None or a_mix.shape[0] == 1:
            return a_mix, b_mix
        return a_mix[route.rows], b_mix[route.rows]

    # -- merging -----------------------------------------------------------------------------
    def mixed_factors(self, adapter: str, weights: torch.Tensor, task: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(A_mix (r × in), B_mix (out × r)) in float32 of one routing (splits, K); exclusive skills of `task` if given."""
        a, b = self.lora_A[adapter].weight.float(), self.lora_B[adapter].weight.float()
        shared, exclusive = weights[None, :, :a.shape[0]].float(), None
        if task is not None and adapter in self.lora_exclusive_A:
            table_a = self.lora_exclusive_A[adapter].float()
            own = weights[None, 0, a.shape[0]:].float()  # (1, E)
            placed = placed_weights(own, torch.tensor([task], device=a.device), table_a.shape[0])
            exclusive = (table_a, self.lora_exclusive_B[adapter].float(), placed, placed)
        a_mix, b_mix = mix_factors(a, b, shared, shared, self.skill_rank[adapter], self.n_splits[adapter], exclusive)
        return a_mix[0].t(), b_mix[0].t()

    def routed_delta_weight(self, adapter: str, weights: torch.Tensor, task: int | None) -> torch.Tensor:
        """The weight update (out × in) of one routing (splits, K), in the weights' dtype."""
        a_mix, b_mix = self.mixed_factors(adapter, weights, task)
        return ((b_mix @ a_mix) * self.scaling[adapter]).to(self.lora_B[adapter].weight.dtype)

    def get_delta_weight(self, adapter: str) -> torch.Tensor:
        """PEFT's merge has no routing to fold in: routed adapters merge with `merge_routed(model, routing)`."""
        raise T2TError("a routed adapter merges one routing: use t2t_mtl.modeling.routed.merge_routed(model, "
                       "routing), not PEFT's merge_and_unload")
