"""The `adapter:` keys of routed LoRA skills: Poly, MHR and C-Poly."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from t2t_mtl.adapters.lora.settings import LoraSettings


class RoutedSettings(LoraSettings):
    """LoRA skills routed per task; `rank` is the rank of each skill.

    `n_splits` > 1 routes per head (MHR); `n_exclusive_skills` gives each task skills of its
    own beside the shared ones (C-Poly); the routing logits learn at `routing_lr` (default
    10 × train.lr), without weight decay.
    """

    type: Literal["poly", "mhr", "cpoly"]
    n_skills: int = Field(default=4, gt=0)
    n_splits: int = Field(default=1, gt=0)
    n_exclusive_skills: int = Field(default=0, ge=0)
    routing_lr: float | None = Field(default=None, gt=0)
    routing_temperature: float = Field(default=1.0, gt=0)
    sample_routing: bool = True


class PolySettings(RoutedSettings):
    """Polytropon: one routing per layer over the shared skills."""

    type: Literal["poly"] = "poly"

    @model_validator(mode="after")
    def _one_routing_per_layer(self) -> PolySettings:
        if self.n_splits != 1:
            raise ValueError("adapter.type poly has one routing per layer: use type mhr for n_splits > 1")
        if self.n_exclusive_skills:
            raise ValueError("n_exclusive_skills is a C-Poly setting: use adapter.type cpoly")
        return self


class MhrSettings(RoutedSettings):
    """Multi-head routing: the layer's features are cut into `n_splits` blocks, each routed on its own."""

    type: Literal["mhr"] = "mhr"
    n_splits: int = Field(default=8, gt=0)

    @model_validator(mode="after")
    def _several_heads(self) -> MhrSettings:
        if self.n_splits < 2:
            raise ValueError("adapter.type mhr routes per head: n_splits must be at least 2")
        if self.n_exclusive_skills:
            raise ValueError("n_exclusive_skills is a C-Poly setting: use adapter.type cpoly")
        return self


class CpolySettings(RoutedSettings):
    """C-Poly: shared skills plus `n_exclusive_skills` skills owned by each task."""

    type: Literal["cpoly"] = "cpoly"
    n_exclusive_skills: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _own_skills(self) -> CpolySettings:
        if self.n_splits != 1:
            raise ValueError("adapter.type cpoly has one routing per layer: use type mhr for n_splits > 1")
        if self.n_exclusive_skills < 1:
            raise ValueError("adapter.type cpoly needs n_exclusive_skills >= 1")
        return self
