"""Routed LoRA adapters: Poly, MHR (per-head routing) and C-Poly (plus task-exclusive skills)."""

from t2t_mtl.modeling.routed.config import RoutedLoraConfig
from t2t_mtl.modeling.routed.layer import RoutedLinear
from t2t_mtl.modeling.routed.model import attach_routing, build_routed_model, load_routed_model, routed_layers
from t2t_mtl.modeling.routed.routing import RoutingContext

__all__ = ["RoutedLinear", "RoutedLoraConfig", "RoutingContext", "attach_routing", "build_routed_model",
           "load_routed_model", "routed_layers"]
