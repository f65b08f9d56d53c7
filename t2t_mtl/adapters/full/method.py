"""Full fine-tuning: the backbone itself is trained and saved."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file
from torch import nn
from transformers import AutoModelForSeq2SeqLM

from t2t_mtl.adapters.base import AdapterMethod, AdapterSettings
from t2t_mtl.adapters.saved import reading_weights, refuse_unexpected
from t2t_mtl.modeling.backbone import Backbone
from t2t_mtl.modeling.routed.routing import Routing


class FullMethod(AdapterMethod):
    """Every weight trains; a saved folder is a plain transformers model."""

    def build(self, backbone: Backbone, settings: AdapterSettings, n_tasks: int) -> nn.Module:
        backbone.model.requires_grad_(True)
        return backbone.model

    def load(self, backbone: Backbone, settings: AdapterSettings, folder: Path) -> nn.Module:
        with reading_weights(folder):
            return AutoModelForSeq2SeqLM.from_pretrained(folder)

    def load_weights(self, model: nn.Module, folder: Path) -> None:
        with reading_weights(folder):
            weights = load_file(folder / "model.safetensors", device=str(next(model.parameters()).device))
            unexpected = model.load_state_dict(weights, strict=False).unexpected_keys
        refuse_unexpected(folder, unexpected)

    def export(self, model: nn.Module, routing: Routing | None, merge: bool) -> nn.Module:
        """The trained model itself: its weights are plain already, merged or not."""
        return model
