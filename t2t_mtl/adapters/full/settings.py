"""The `adapter:` keys of full fine-tuning (none beyond the type)."""

from __future__ import annotations

from typing import Literal

from t2t_mtl.adapters.base import AdapterSettings


class FullSettings(AdapterSettings):
    """Every weight of the backbone is trained."""

    type: Literal["full"] = "full"
