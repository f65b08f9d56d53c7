"""Routed LoRA adapters: Poly, MHR (per-head routing) and C-Poly (plus task-exclusive skills)."""

from t2t_mtl.modeling.routed.config import RoutedLoraConfig
from t2t_mtl.modeling.routed.layer import RoutedLinear
from t2t_mtl.modeling.routed.model import (
    as_lora,
    build_routed_model,
    load_routed_model,
    merge_routed,
    routed_call,
    routed_layers,
    skill_major_moments,
    task_weights,
)
from t2t_mtl.modeling.routed.routing import Routing

__all__ = ["RoutedLinear", "RoutedLoraConfig", "Routing", "as_lora", "build_routed_model", "load_routed_model",
           "merge_routed", "routed_call", "routed_layers", "skill_major_moments", "task_weights"]
