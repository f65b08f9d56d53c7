"""The `adapter:` keys of routed LoRA skills: Poly, MHR and C-Poly."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from t2t_mtl.adapters.lora.settings import LoraSettings


class RoutedSettings(LoraSettings):
    """LoRA skills routed per task; `rank` is the rank of each skill.

    `n_splits` > 1 routes per head (MHR); `n_exclusive_skills` gives each task skills of its
    own beside the shared ones (C-Poly); the routing logits learn at `routing_lr` (default
    10 × train.lr), without weight decay. A variant says which of the two it uses.
    """

    routes_per_head: ClassVar[bool] = False
    owns_skills: ClassVar[bool] = False

    type: Literal["poly", "mhr", "cpoly"]
    n_skills: int = Field(default=4, gt=0)
    n_splits: int = Field(default=1, gt=0)
    n_exclusive_skills: int = Field(default=0, ge=0)
    routing_lr: float | None = Field(default=None, gt=0)
    routing_temperature: float = Field(default=1.0, gt=0)
    sample_routing: bool = True

    @model_validator(mode="after")
    def _fits_the_variant(self) -> RoutedSettings:
        if self.routes_per_head and self.n_splits < 2:
            raise ValueError(f"adapter.type {self.type} routes per head: n_splits must be at least 2")
        if not self.routes_per_head and self.n_splits != 1:
            raise ValueError(f"adapter.type {self.type} has one routing per layer: use type mhr for n_splits > 1")
        if self.owns_skills and self.n_exclusive_skills < 1:
            raise ValueError(f"adapter.type {self.type} needs n_exclusive_skills >= 1")
        if not self.owns_skills and self.n_exclusive_skills:
            raise ValueError("n_exclusive_skills is a C-Poly setting: use adapter.type cpoly")
        return self


class PolySettings(RoutedSettings):
    """Polytropon: one routing per layer over the shared skills."""

    type: Literal["poly"] = "poly"


class MhrSettings(RoutedSettings):
    """Multi-head routing: the layer's features are cut into `n_splits` blocks, each routed on its own."""

    routes_per_head = True
    type: Literal["mhr"] = "mhr"
    n_splits: int = Field(default=8, gt=0)


class CpolySettings(RoutedSettings):
    """C-Poly: shared skills plus `n_exclusive_skills` skills owned by each task."""

    owns_skills = True
    type: Literal["cpoly"] = "cpoly"
    n_exclusive_skills: int = Field(default=1, ge=0)
