"""Task-vector merges of LoRA adapters, computed on their saved tensors.

A LoRA adapter i holds, per adapted linear, A_i (r_i × in), B_i (out × r_i) and its scale
s_i = alpha_i / r_i: its task vector is τ_i = s_i B_i A_i. With per-adapter weights c_i:

- `linear` and `task_arithmetic` give Σ c_i τ_i, exactly, as one LoRA of rank Σ r_i: the
  A_i (scaled by c_i s_i / s) stacked over the B_i side by side (PEFT's `cat` combination);
- `ties`, `dare_linear`, `dare_ties` act on each entry of the task vectors (trim or drop,
  elect a sign, merge disjointly), so their result is full rank: it is computed with
  `peft.utils.merge_utils` on the τ_i and folded into the backbone's weights.

Modules that the backbone adds untrained and that runs train in full (BERT2BERT's new
cross-attention) have no pre-trained value to take a task vector from: they are averaged
with the weights normalised to sum 1.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from peft.utils import merge_utils

from t2t_mtl.errors import T2TError

LORA_A, LORA_B = ".lora_A.weight", ".lora_B.weight"
STACKED = ("linear", "task_arithmetic")  # exact as one LoRA of the summed ranks
FOLDED = ("ties", "dare_linear", "dare_ties")  # elementwise: full rank, folded into the weights
METHODS = (*STACKED, *FOLDED)


@dataclass(frozen=True)
class SavedLora:
    """One saved LoRA adapter: its tensors (adapter_model.safetensors), rank and scale alpha / r."""

    name: str
    state: dict[str, torch.Tensor]
    rank: int
    scale: float

    def modules(self) -> list[str]:
        """The key prefixes of the adapted linears."""
        return sorted(key[: -len(LORA_A)] for key in self.state if key.endswith(LORA_A))

    def task_vector(self, module: str) -> torch.Tensor:
        """τ = scale · B A of one adapted linear, in float32."""
        return self.scale * (self.state[module + LORA_B].float() @ self.state[module + LORA_A].float())

    def trained_in_full(self) -> list[str]:
        """Keys of the modules trained in full beside the adapter (PEFT's modules_to_save)."""
        return sorted(key for key in self.state if ".lora_" not in key)


def same_modules(adapters: list[SavedLora]) -> list[str]:
    """The adapted linears, which every adapter must share, as must the modules trained in full."""
    first = adapters[0]
    for other in adapters[1:]:
        for what, ours, theirs in (("adapted linears", first.modules(), other.modules()),
                                   ("modules trained in full", first.trained_in_full(), other.trained_in_full())):
            if ours != theirs:
                differ = sorted(set(ours) ^ set(theirs))
                raise T2TError(f"{first.name} and {other.name} adapt different {what} ({len(differ)} differ, such as "
                               f"{differ[0]}): merge runs trained with the same adapter.targets on the same backbone")
    return first.modules()


def stacked(adapters: list[SavedLora], weights: list[float], scale: float) -> dict[str, torch.Tensor]:
    """The LoRA tensors of Σ c_i τ_i as one adapter of rank Σ r_i and scale `scale` (exact)."""
    merged = {}
    for module in same_modules(adapters):
        merged[module + LORA_A] = torch.cat([a.state[module + LORA_A] * (c * a.scale / scale)
                                             for a, c in zip(adapters, weights)])
        merged[module + LORA_B] = torch.cat([a.state[module + LORA_B] for a in adapters], dim=1)
    return merged


def _elementwise(method: str, density: float) -> Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor]:
    """PEFT's merge function of `method` at `density` (the fraction of each task vector kept)."""
    if method == "ties":
        return lambda tensors, weights: merge_utils.ties(tensors, weights, density)
    if method == "dare_ties":
        return lambda tensors, weights: merge_utils.dare_ties(tensors, weights, density)
    return lambda tensors, weights: merge_utils.dare_linear(tensors, weights, density)


def folded_deltas(adapters: list[SavedLora], weights: list[float], method: str, density: float,
                  seed: int) -> dict[str, torch.Tensor]:
    """The merged weight update (out × in, float32) of every adapted linear under an elementwise `method`.

    DARE's random drops are drawn from `seed`, so a merge is repeatable.
    """
    merge = _elementwise(method, density)
    coefficients = torch.tensor(weights, dtype=torch.float32)
    deltas = {}
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        torch.manual_seed(seed)
        warnings.filterwarnings("ignore", message="The density .* no pruning")  # density 1 keeps every entry
        for module in same_modules(adapters):
            deltas[module] = merge([a.task_vector(module) for a in adapters], coefficients)
    return deltas


def averaged_full_modules(adapters: list[SavedLora], weights: list[float]) -> dict[str, torch.Tensor]:
    """The modules trained in full, averaged with the weights normalised to sum 1."""
    keys = adapters[0].trained_in_full()
    if not keys:
        return {}
    total = sum(weights)
    if total == 0:
        raise T2TError("the merge weights sum to 0, so the modules the runs trained in full (such as "
                       f"{keys[0]}) cannot be averaged: give weights with a non-zero sum")
    return {key: sum((c / total) * a.state[key].float() for a, c in zip(adapters, weights)).to(adapters[0].state[key].dtype)
            for key in keys}
