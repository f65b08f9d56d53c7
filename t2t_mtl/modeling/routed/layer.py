"""The routed LoRA layer: a PEFT LoRA Linear whose rank is an inventory of routed skills.

Shapes: `x` (batch, tokens, in); skills s = 1..S of rank r; splits q = 1..Q (MHR heads)
cut the input and output features into Q blocks; w (batch, Q, K) are the routing weights
(K = S shared skills, plus E exclusive skills of the example's task for C-Poly).

    A_mix(b) = per split q: Σ_k w[b,q,k] A_k[:, block q]      (rank r × in)
    B_mix(b) = per split q: Σ_k w[b,q,k] B_k[block q, :]      (out × rank r)
    Δy = scale · B_mix(b) A_mix(b) x                           (as PEFT's Poly computes)

The mixing is linear, so instead of materialising A_mix/B_mix per example the layer runs
one GEMM against the concatenated skills, mixes the small rank-space result with w, and
one GEMM back: x·Σ w A = Σ w (x·A), and Σ w (z·B) = [w_1 z, …, w_K z]·[B_1; …; B_K].
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from peft.tuners.lora.layer import Linear as LoraLinear
from torch import nn

from t2t_mtl.errors import T2TError


class RoutedLinear(LoraLinear):
    """PEFT LoRA Linear with routed skills; `lora_A`/`lora_B` hold the concatenated shared skills."""

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
        exclusive = config.n_exclusive_skills * rank
        if exclusive:
            a = torch.empty(config.n_tasks, exclusive, self.in_features)
            for task in range(config.n_tasks):
                nn.init.kaiming_uniform_(a[task], a=5**0.5)
            self.lora_exclusive_A[adapter_name] = nn.Parameter(a)
            self.lora_exclusive_B[adapter_name] = nn.Parameter(torch.zeros(config.n_tasks, self.out_features, exclusive))
        super().update_layer(adapter_name, r, lora_alpha, config=config, **kwargs)
        self.scaling[adapter_name] = lora_alpha / rank

    # -- forward ---------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        result = self.base_layer(x, *args, **kwargs)
        if self.disable_adapters or self.merged:
            return result
        for adapter in self.active_adapters:
            if adapter in self.lora_routing:
                result = result + self._routed_delta(x, adapter).to(result.dtype)
        return result

    def _routed_delta(self, x: torch.Tensor, adapter: str) -> torch.Tensor:
        weights, task_ids = self.routing_channel.for_layer(self.layer_index, x.shape[0])
        a, b = self.lora_A[adapter].weight, self.lora_B[adapter].weight
        rank, splits = self.skill_rank[adapter], self.n_splits[adapter]
        shared = a.shape[0] // rank
        shape = x.shape
        h = self.lora_dropout[adapter](x).to(a.dtype).reshape(shape[0], -1, shape[-1])  # (B, L, in)
        w = weights.to(a.dtype)
        if splits == 1:
            u = F.linear(h, a).unflatten(-1, (1, shared, rank))  # (B, L, 1, S, r)
        else:
            u = torch.einsum("blqd,srqd->blqsr", h.unflatten(-1, (splits, -1)), a.view(shared, rank, splits, -1))
        exclusive = self.lora_exclusive_A.get(adapter) if task_ids is not None else None
        if exclusive is not None:
            u_own = torch.bmm(h, exclusive[task_ids].transpose(1, 2)).unflatten(-1, (1, -1, rank))
            u = torch.cat([u, u_own], dim=3)
        else:
            w = w[..., :shared]
        z = torch.einsum("blqkr,bqk->blr", u, w)  # rank-space mix, shared over splits
        mixed = torch.einsum("blr,bqk->blqkr", z, w)  # (B, L, Q, K, r)
        if splits == 1:
            out = F.linear(mixed[:, :, 0, :shared].flatten(2), b)
        else:
            out = torch.einsum("blqsr,qosr->blqo", mixed, b.view(splits, -1, shared, rank)).flatten(2)
        if exclusive is not None:
            own_b = self.lora_exclusive_B[adapter][task_ids]  # (B, out, E·r)
            out = out + torch.bmm(mixed[:, :, 0, shared:].flatten(2), own_b.transpose(1, 2))
        return (out * self.scaling[adapter]).reshape(*shape[:-1], -1)

    # -- merging -----------------------------------------------------------------------------
    def mixed_factors(self, adapter: str, weights: torch.Tensor, task: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B_mix (out × r), A_mix (r × in)) of one routing (splits, K); exclusive skills of `task` if given."""
        a, b = self.lora_A[adapter].weight.float(), self.lora_B[adapter].weight.float()
        rank, splits = self.skill_rank[adapter], self.n_splits[adapter]
        shared = a.shape[0] // rank
        w = weights.float()
        a_mix = torch.einsum("qs,srqd->rqd", w[:, :shared], a.view(shared, rank, splits, -1)).flatten(1)
        b_mix = torch.einsum("qs,qosr->qor", w[:, :shared], b.view(splits, -1, shared, rank)).flatten(0, 1)
        if task is not None and adapter in self.lora_exclusive_A:
            own_a = self.lora_exclusive_A[adapter][task].float().view(-1, rank, a.shape[1])
            own_b = self.lora_exclusive_B[adapter][task].float().view(b.shape[0], -1, rank)
            a_mix = a_mix + torch.einsum("e,erd->rd", w[0, shared:], own_a)
            b_mix = b_mix + torch.einsum("e,oer->or", w[0, shared:], own_b)
        return b_mix, a_mix

    def routed_delta_weight(self, adapter: str, weights: torch.Tensor, task: int | None) -> torch.Tensor:
        """The weight update (out × in) of one routing (splits, K), in the weights' dtype."""
        b_mix, a_mix = self.mixed_factors(adapter, weights, task)
        return ((b_mix @ a_mix) * self.scaling[adapter]).to(self.lora_B[adapter].weight.dtype)

    def get_delta_weight(self, adapter: str) -> torch.Tensor:
        """PEFT's merge has no routing to fold in: routed adapters merge with `merge_routed(model, routing)`."""
        raise T2TError("a routed adapter merges one routing: use t2t_mtl.modeling.routed.merge_routed(model, "
                       "routing), not PEFT's merge_and_unload")
