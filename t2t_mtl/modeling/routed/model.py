"""Build, load and drive routed adapters on a PEFT model."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import PeftModel, get_peft_model
from transformers import PreTrainedModel

from t2t_mtl.errors import T2TError
from t2t_mtl.modeling.routed.config import RoutedLoraConfig
from t2t_mtl.modeling.routed.layer import RoutedLinear
from t2t_mtl.modeling.routed.routing import RoutingContext, skill_weights


def routed_layers(model: torch.nn.Module) -> list[RoutedLinear]:
    """The routed layers of a model, in module order (their index in the routing stack)."""
    return [m for m in model.modules() if isinstance(m, RoutedLinear)]


def attach_routing(model: PeftModel, adapter: str = "default") -> RoutingContext:
    """Give every routed layer one shared routing context; returns it (also `model.routing`)."""
    layers = routed_layers(model)
    if not layers:
        raise T2TError("the model has no routed layers")
    config: RoutedLoraConfig = model.peft_config[adapter]
    context = RoutingContext(layers, adapter, config.n_tasks)
    for index, layer in enumerate(layers):
        layer.routing_context = context
        layer.layer_index = index
    model.routing = context
    return context


def build_routed_model(model: PreTrainedModel, config: RoutedLoraConfig) -> PeftModel:
    """Wrap a transformers model with a routed adapter (a PEFT LoRA adapter with routed layers)."""
    peft_model = get_peft_model(model, config)
    attach_routing(peft_model)
    return peft_model


def load_routed_config(folder: Path) -> RoutedLoraConfig:
    """Read a saved routed adapter's config (adapter_config.json)."""
    raw = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    if "n_skills" not in raw:
        raise T2TError(f"{folder} holds a plain LoRA adapter, not a routed one (no n_skills in adapter_config.json)")
    fields = RoutedLoraConfig.__dataclass_fields__
    return RoutedLoraConfig(**{k: v for k, v in raw.items() if k in fields and fields[k].init})


def load_routed_model(model: PreTrainedModel, folder: Path) -> PeftModel:
    """Load a routed adapter saved with `save_pretrained` onto its base model."""
    peft_model = PeftModel.from_pretrained(model, folder, config=load_routed_config(folder))
    attach_routing(peft_model)
    return peft_model


def task_weights(model: PeftModel) -> torch.Tensor:
    """Every task's routing in eval mode: (tasks, layers, splits, skills), normalised."""
    with torch.no_grad():
        logits = model.routing.logits().float()  # (layers, tasks, splits, skills)
        return skill_weights(logits, sample=False, temperature=1.0).transpose(0, 1)
