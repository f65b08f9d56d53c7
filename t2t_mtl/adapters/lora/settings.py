"""The `adapter:` keys of LoRA (and of the methods built on it)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from t2t_mtl.adapters.base import AdapterSettings


class LoraSettings(AdapterSettings):
    """LoRA of `rank` on the chosen linears of the backbone's blocks (`all-linear`, or leaf names such as [q, v])."""

    type: Literal["lora"] = "lora"
    rank: int = Field(default=16, gt=0)
    alpha: float = Field(default=32.0, gt=0)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    targets: Literal["all-linear"] | list[str] = "all-linear"
