"""AdaMerging for LoRA task vectors: a coefficient per adapted linear and per run, fitted on unlabelled rows.

The merged model is the stacked LoRA of the runs' task vectors (`task_vectors.stacked`);
block i of every layer l's A is scaled by a multiplier m[l, i] (1 at the start), so layer l
adds Σ_i m[l, i] c_i τ_i. Only the multipliers learn, by minimising the mean token entropy
of the model's own greedy answers on the rows (`losses.prediction_entropy`), as AdaMerging
fits its layer-wise coefficients on unlabelled test inputs.
"""

from __future__ import annotations

import torch
from peft.tuners.lora import LoraLayer
from torch import nn
from torch.nn.utils import parametrize

from t2t_mtl.losses import greedy_continuation, prediction_entropy
from t2t_mtl.modeling.fitting import frozen, minimise

ADAPTER = "default"


class BlockScale(nn.Module):
    """Parametrizes a stacked LoRA A (Σ r_i × in): the rows of run i scaled by `multipliers[layer, i]`."""

    def __init__(self, multipliers: nn.Parameter, layer: int, ranks: list[int]) -> None:
        super().__init__()
        self.multipliers = multipliers
        self.layer = layer
        self.register_buffer("ranks", torch.tensor(ranks), persistent=False)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        rows = self.multipliers[self.layer].repeat_interleave(self.ranks.to(a.device))
        return a * rows.to(a.dtype)[:, None]


def lora_layers(model: nn.Module) -> dict[str, LoraLayer]:
    """The model's adapted linears by name, in module order (the rows of the multipliers)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer) and ADAPTER in m.lora_A}


def fit_multipliers(model: nn.Module, ranks: list[int], batches: list[dict[str, torch.Tensor]], steps: int,
                    lr: float, max_new_tokens: int) -> tuple[torch.Tensor, list[float]]:
    """Fit m (layers, runs) on unlabelled batches and fold it into the A factors; (m, mean entropy per step).

    Every other weight stays as it was.
    """
    layers = list(lora_layers(model).values())
    multipliers = nn.Parameter(torch.ones(len(layers), len(ranks), device=next(model.parameters()).device))

    def backward_at(step: int) -> torch.Tensor:
        loss = prediction_entropy(model, greedy_continuation(model, batches[step % len(batches)], max_new_tokens))
        loss.backward()
        return loss

    with frozen(model):
        for index, layer in enumerate(layers):
            parametrize.register_parametrization(layer.lora_A[ADAPTER], "weight", BlockScale(multipliers, index, ranks))
        try:
            losses = minimise([multipliers], backward_at, steps, lr, "fit merge coefficients")
        finally:
            for layer in layers:
                parametrize.remove_parametrizations(layer.lora_A[ADAPTER], "weight", leave_parametrized=True)
    return multipliers.detach().cpu(), losses
