"""Routed LoRA skills (Poly, MHR, C-Poly) as a PEFT LoRA adapter whose layers route per call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig
from torch import nn
from transformers import PreTrainedTokenizerBase

from t2t_mtl.adapters.base import EvalSettings, RoutingPlan
from t2t_mtl.adapters.lora.method import LoraMethod
from t2t_mtl.adapters.routed.plan import RoutedPlan
from t2t_mtl.adapters.routed.settings import RoutedSettings
from t2t_mtl.modeling.backbone import Backbone
from t2t_mtl.modeling.routed.config import RoutedLoraConfig
from t2t_mtl.modeling.routed.model import (
    ADAPTER,
    as_lora,
    build_routed_model,
    load_routed_model,
    merge_routed,
    routed_layers,
    skill_major_moments,
)
from t2t_mtl.modeling.routed.routing import Routing
from t2t_mtl.task_table import TaskRow


class RoutedMethod(LoraMethod):
    """Poly, MHR and C-Poly: one implementation, told apart by their settings (splits, exclusive skills)."""

    shape_keys = (*LoraMethod.shape_keys, "skill_rank", "n_skills", "n_splits", "n_exclusive_skills")

    def peft_config(self, backbone: Backbone, settings: RoutedSettings, n_tasks: int) -> LoraConfig:
        return RoutedLoraConfig(
            n_tasks=n_tasks, n_skills=settings.n_skills, skill_rank=settings.rank, n_splits=settings.n_splits,
            n_exclusive_skills=settings.n_exclusive_skills, routing_temperature=settings.routing_temperature,
            sample_routing=settings.sample_routing, **self.lora_settings(backbone, settings),
        )

    def build(self, backbone: Backbone, settings: RoutedSettings, n_tasks: int) -> nn.Module:
        return build_routed_model(backbone.model, self.peft_config(backbone, settings, n_tasks))

    def from_saved(self, backbone: Backbone, folder: Path, config: LoraConfig) -> nn.Module:
        return load_routed_model(backbone.model, folder, config)

    def restored(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Checkpoints written before the routed layers held their skills skill-major hold the moments in that layout."""
        skill_major_moments(model, optimizer)

    def param_groups(self, model: nn.Module, settings: RoutedSettings, lr: float) -> list[dict[str, Any]]:
        """The routing logits learn at their own (usually much larger) rate, without weight decay."""
        logits = {id(layer.lora_routing[ADAPTER]) for layer in routed_layers(model)}
        trained = [p for p in model.parameters() if p.requires_grad]
        return [{"params": [p for p in trained if id(p) not in logits]},
                {"params": [p for p in trained if id(p) in logits], "lr": settings.routing_lr or 10 * lr,
                 "weight_decay": 0.0}]

    def routing_plan(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, table: list[TaskRow],
                     spec: EvalSettings, run_root: Path | None = None) -> RoutingPlan:
        return RoutedPlan(self.name, model, tokenizer, table, spec, run_root)

    def export(self, model: nn.Module, routing: Routing | None, merge: bool) -> nn.Module:
        """Merged plain weights, or a plain PEFT LoRA (rank = skill rank), of one routing."""
        return merge_routed(model, routing) if merge else as_lora(model, routing)
