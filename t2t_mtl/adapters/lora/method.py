"""LoRA through PEFT: build on the block linears, load with shape checks, resume, merge for serving."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file
from torch import nn

from t2t_mtl.adapters.base import AdapterMethod
from t2t_mtl.adapters.lora.settings import LoraSettings
from t2t_mtl.adapters.saved import check_same_shape, reading_weights, refuse_unexpected, saved_adapter_config
from t2t_mtl.errors import T2TError
from t2t_mtl.modeling.backbone import Backbone
from t2t_mtl.modeling.routed.routing import Routing

BLOCK = re.compile(r"\.(layer|layers|block)\.\d+\.")


def target_pattern(model: nn.Module, targets: str | list[str], new_modules: list[str]) -> str:
    """A regex over module names: the chosen linears inside repeated blocks, minus new modules.

    `all-linear` takes every linear inside the encoder/decoder blocks; a list takes linears
    whose last name part is listed (e.g. [q, v]). Heads, poolers and the freshly
    initialised modules (trained in full instead) are left out.
    """
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and BLOCK.search(n)]
    linears = [n for n in linears if not any(new in n for new in new_modules)]
    leaves = sorted({n.rsplit(".", 1)[-1] for n in linears})
    if targets != "all-linear":
        unknown = sorted(set(targets) - set(leaves))
        if unknown:
            raise T2TError(f"adapter.targets {unknown} name no linear layer of this model; its linears are {leaves}")
        leaves = list(targets)
    if not linears:
        raise T2TError("adapter: the model has no linear layers inside numbered blocks to adapt")
    excluded = "|".join(re.escape(n) for n in new_modules)
    guard = f"(?!.*(?:{excluded}))" if excluded else ""
    return rf"^{guard}.*\.(?:layer|layers|block)\.\d+\..*\b(?:{'|'.join(map(re.escape, leaves))})$"


class LoraMethod(AdapterMethod):
    """PEFT LoRA; the backbone's freshly initialised modules (if any) are trained in full beside it."""

    # adapter_config.json keys that fix the shape and placement of the saved weights.
    shape_keys: tuple[str, ...] = ("r", "lora_alpha", "target_modules")

    def lora_settings(self, backbone: Backbone, settings: LoraSettings) -> dict[str, Any]:
        """The PEFT LoraConfig keys every LoRA-based method shares."""
        return {"lora_alpha": settings.alpha, "lora_dropout": settings.dropout,
                "target_modules": target_pattern(backbone.model, settings.targets, backbone.new_modules),
                "modules_to_save": backbone.new_modules or None, "task_type": "SEQ_2_SEQ_LM"}

    def peft_config(self, backbone: Backbone, settings: LoraSettings, n_tasks: int) -> LoraConfig:
        """The PEFT config of this adapter on this backbone."""
        return LoraConfig(r=settings.rank, **self.lora_settings(backbone, settings))

    def build(self, backbone: Backbone, settings: LoraSettings, n_tasks: int) -> nn.Module:
        return get_peft_model(backbone.model, self.peft_config(backbone, settings, n_tasks))

    def load(self, backbone: Backbone, settings: LoraSettings, folder: Path) -> nn.Module:
        saved = saved_adapter_config(folder)
        expected = self.peft_config(backbone, settings, n_tasks=saved.get("n_tasks", 1))
        check_same_shape(folder, saved, expected.to_dict(), self.shape_keys,
                         f"adapter.type: {self.name}, rank: {settings.rank}, targets: {settings.targets}")
        with reading_weights(folder):
            return self.from_saved(backbone, folder, expected)

    def from_saved(self, backbone: Backbone, folder: Path, config: LoraConfig) -> nn.Module:
        """The PEFT model of a checked saved folder."""
        return PeftModel.from_pretrained(backbone.model, folder)

    def load_weights(self, model: nn.Module, folder: Path) -> None:
        with reading_weights(folder):
            weights = load_file(folder / "adapter_model.safetensors", device=str(model.device))
            unexpected = getattr(set_peft_model_state_dict(model, weights), "unexpected_keys", [])
        refuse_unexpected(folder, unexpected)

    def export(self, model: nn.Module, routing: Routing | None, merge: bool) -> nn.Module:
        return model.merge_and_unload() if merge else model
