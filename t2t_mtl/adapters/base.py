"""What an adapter method is: its recipe settings, and the operations the trainer, predictor and export call."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from t2t_mtl.errors import T2TError
from t2t_mtl.validation import Strict

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from t2t_mtl.modeling.backbone import Backbone
    from t2t_mtl.modeling.routed.routing import Routing
    from t2t_mtl.task_table import TaskRow


class AdapterSettings(Strict):
    """A recipe's `adapter:` section; each method's settings add their own keys (unknown keys are errors)."""

    type: str


class EvalSettings(Protocol):
    """What a routing plan reads of a recipe's `eval:` section (`t2t_mtl.recipe.EvalSpec`)."""

    routing: str  # the zero-shot routing of tasks the run did not train
    max_new_tokens: int  # the length of the greedy answers fit-unlabelled scores
    arrow_top_k: int  # the skills each token mixes under Arrow


class Router:
    """How the calls of one task are routed; this one, for methods without routing, routes nothing."""

    @property
    def by_task_ids(self) -> bool:
        """Whether each example is routed by its own task id, so that examples of such tasks share a batch."""
        return True

    def applied(self, task_ids: torch.Tensor) -> AbstractContextManager[None]:
        """The scope of one forward (and its backward) or one `generate` over examples of `task_ids`."""
        return nullcontext()


class RoutingPlan:
    """Which router each task of a run gets; this one, for methods without routing, refuses routing modes."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.fits: dict[str, tuple[str, list[float]]] = {}  # task -> (mode, loss per step) of the routings fitted

    def router(self, task: str, instruction: str, mode: str | None = None,
               fit: Callable[[bool], list[dict[str, torch.Tensor]]] | None = None) -> Router:
        """The router of `task` under `mode` (None: the run's own choice); `fit(labelled)` gives the task's
        batches to fit a routing on, with labels or without."""
        if mode is not None:
            raise T2TError(f"--routing applies to routed adapters; this run trained adapter.type: {self.method}")
        return Router()

    def fit(self, batches: list[dict[str, torch.Tensor]], steps: int) -> tuple[Router, list[float]]:
        """Fit a routing on labelled batches: only methods that route can."""
        raise T2TError(f"routing 'fit' applies to routed adapters; this run trained adapter.type: {self.method}")

    def learned(self) -> Router:
        """The router of training: each example by its own task."""
        return Router()

    def single(self, task: str | None, mode: str | None, instruction: str | None) -> Routing | None:
        """One routing to export (None for methods without routing, which take no --task/--routing)."""
        if task is not None or mode is not None:
            raise T2TError(f"--task/--routing choose a routing; this run trained adapter.type: {self.method}, "
                           f"which has none")
        return None

    def save(self, run_root: Path) -> None:
        """Write what the plan needs to route again after loading (nothing here)."""

    def snapshot(self) -> dict[str, Any] | None:
        """The trained tasks' current routing for the log: {"skills": [...], "tasks": {task: [weight per
        skill]}}; None for methods without routing."""
        return None


class AdapterMethod(ABC):
    """One way of training a backbone: build, checkpoint, load, route and export it.

    The trainer, predictor, evaluator and export call only these; a method that routes
    returns its own `RoutingPlan`.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def build(self, backbone: Backbone, settings: AdapterSettings, n_tasks: int) -> nn.Module:
        """Wrap the backbone for training (n_tasks: the rows of a routing table)."""

    @abstractmethod
    def load(self, backbone: Backbone, settings: AdapterSettings, folder: Path) -> nn.Module:
        """Rebuild the trained model from the backbone and a saved folder (checked against `settings`)."""

    @abstractmethod
    def load_weights(self, model: nn.Module, folder: Path) -> None:
        """Load saved trained weights into a live model of the same shape (resuming)."""

    def restored(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Bring the optimizer state of a resumed checkpoint to the live parameters' layout (none to change here)."""

    def save(self, model: nn.Module, folder: Path, state_dict: dict | None = None) -> None:
        """Write what was trained (safetensors); `state_dict` is the gathered state of a sharded model."""
        model.save_pretrained(folder, safe_serialization=True, state_dict=state_dict)

    def param_groups(self, model: nn.Module, settings: AdapterSettings, lr: float) -> list[dict[str, Any]]:
        """The optimizer's parameter groups (one by default: every trained parameter)."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def routing_plan(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, table: list[TaskRow],
                     spec: EvalSettings, run_root: Path | None = None) -> RoutingPlan:
        """How the run's tasks are routed in evaluation and prediction (`spec`); `run_root` holds what a saved
        plan wrote."""
        return RoutingPlan(self.name)

    def export(self, model: nn.Module, routing: Routing | None, merge: bool) -> nn.Module:
        """The model to save for serving: merged plain weights (`merge`) or an adapter, for one routing."""
        if merge:
            raise T2TError(f"adapter.type {self.name} has no merged export: export it without --merge")
        return model
