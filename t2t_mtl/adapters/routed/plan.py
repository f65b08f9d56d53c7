"""How a routed run routes each task: learned routings for trained tasks, zero-shot ones for the rest."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedTokenizerBase

from t2t_mtl.adapters.base import EvalSettings, Router, RoutingPlan
from t2t_mtl.errors import T2TError, closest
from t2t_mtl.losses import greedy_continuation, mean_token_loss, prediction_entropy
from t2t_mtl.modeling.routed.inspect import skill_names, trained_routing
from t2t_mtl.modeling.routed.model import routed_call, task_weights
from t2t_mtl.modeling.routed.routing import Arrow, Routing
from t2t_mtl.modeling.routed.zero_shot import (
    arrow_prototypes,
    average_routing,
    fit_routing,
    instruction_embeddings,
    similar_routing,
    skills_fingerprint,
)
from t2t_mtl.task_table import TaskRow

logger = logging.getLogger(__name__)
EMBEDDINGS_FILE = "task_embeddings.safetensors"  # in the run folder: the task table's instruction embeddings
PROTOTYPES_FILE = "arrow_prototypes.safetensors"  # in the run folder: the skills' Arrow prototypes
ROUTING_MODES = ("average", "similar", "fit", "fit-unlabelled", "arrow", "task=NAME")
FIT_STEPS, FIT_LR = 30, 0.1


@dataclass
class RoutedRouter(Router):
    """Routes each call by the examples' own task ids, a borrowed task's id, one fixed routing
    (layers, splits, shared skills) for every example, or per token (Arrow)."""

    model: nn.Module
    weights: torch.Tensor | None = None
    task: int | None = None
    arrow: Arrow | None = None

    def routing(self, task_ids: torch.Tensor) -> Routing:
        """The routing of one call over examples of `task_ids`."""
        if self.arrow is not None:
            return Routing.per_token(self.arrow)
        if self.weights is not None:
            return Routing.fixed(self.weights)
        if self.task is not None:
            return Routing.tasks(torch.full_like(task_ids, self.task))
        return Routing.tasks(task_ids)

    @property
    def by_task_ids(self) -> bool:
        return self.arrow is None and self.weights is None and self.task is None

    def applied(self, task_ids: torch.Tensor) -> AbstractContextManager[None]:
        return routed_call(self.model, self.routing(task_ids))


class RoutedPlan(RoutingPlan):
    """Chooses how any task is routed in a routed run.

    A trained task uses its learned routing unless a mode is given; any other task uses
    `mode`, else the run's eval.routing: `average`, `similar` (by instruction similarity),
    `fit` (learned on labelled batches), `fit-unlabelled` (learned on unlabelled batches by
    minimising the entropy of the model's own greedy answers, of up to eval.max_new_tokens),
    `arrow` (per token, the eval.arrow_top_k closest skills) or `task=NAME` (a trained task's routing).
    """

    def __init__(self, method: str, model: nn.Module, tokenizer: PreTrainedTokenizerBase, table: list[TaskRow],
                 spec: EvalSettings, run_root: Path | None = None) -> None:
        super().__init__(method)
        self.model = model
        self.tokenizer = tokenizer
        self.table = table
        self.ids = {row.name: row.id for row in table}
        self.trained = [row.id for row in table if not row.held_out]
        self.held_out = {row.name for row in table if row.held_out}
        self.instructions = [row.instruction for row in table]
        self.default_mode = spec.routing
        self.max_new_tokens = spec.max_new_tokens
        self.top_k = spec.arrow_top_k
        self.run_root = run_root
        saved = run_root / EMBEDDINGS_FILE if run_root is not None else None
        self._embeddings = load_file(str(saved))["embeddings"] if saved is not None and saved.is_file() else None

    @property
    def embeddings(self) -> torch.Tensor:
        """Instruction embeddings of the task table (computed on first use when not saved)."""
        if self._embeddings is None:
            self._embeddings = instruction_embeddings(self.model, self.tokenizer, self.instructions)
        return self._embeddings

    def prototypes(self) -> tuple[torch.Tensor, ...]:
        """Arrow's skill prototypes: cached in the run folder, recomputed when the skills changed."""
        device = next(self.model.parameters()).device
        fingerprint = skills_fingerprint(self.model)
        cache = self.run_root / PROTOTYPES_FILE if self.run_root is not None else None
        if cache is not None and cache.is_file():
            with safe_open(str(cache), "pt") as saved:
                if (saved.metadata() or {}).get("skills_sha256") == fingerprint:
                    return tuple(saved.get_tensor(f"layer.{i}").to(device) for i in range(len(saved.keys())))
        prototypes = arrow_prototypes(self.model)
        if cache is not None:
            try:
                save_file({f"layer.{i}": p.contiguous() for i, p in enumerate(prototypes)}, str(cache),
                          metadata={"skills_sha256": fingerprint})
            except OSError as error:  # a read-only run folder: the prototypes are computed again next time
                logger.warning("could not cache Arrow prototypes in %s (%s)", cache, error.strerror)
        return tuple(p.to(device) for p in prototypes)

    def save(self, run_root: Path) -> None:
        save_file({"embeddings": self.embeddings.contiguous()}, str(run_root / EMBEDDINGS_FILE))

    def learned(self) -> Router:
        return RoutedRouter(self.model)

    def snapshot(self) -> dict[str, Any]:
        """The trained tasks' routing over skills (mean over layers and splits), in one read of the device."""
        names, weights = trained_routing(self.model, self.table)
        matrix = weights.mean(dim=(1, 2)).tolist()
        return {"skills": skill_names(self.model),
                "tasks": {name: [round(w, 5) for w in row] for name, row in zip(names, matrix)}}

    def router(self, task: str, instruction: str, mode: str | None = None,
               fit: Callable[[bool], list[dict[str, torch.Tensor]]] | None = None) -> Router:
        if mode is None:
            if task in self.ids and self.ids[task] in self.trained:
                return RoutedRouter(self.model)
            if task not in self.held_out:
                logger.warning("%s was not trained in this run: routing it with '%s' (eval.routing; see --routing)",
                               task, self.default_mode)
            mode = self.default_mode
        if mode not in ("fit", "fit-unlabelled"):
            return self._zero_shot(mode, instruction)
        batches = fit(mode == "fit") if fit is not None else []  # the fits name what an empty one lacks
        router, losses = self.fit(batches) if mode == "fit" else self.fit_unlabelled(batches)
        self.fits[task] = (mode, losses)
        return router

    def _zero_shot(self, mode: str, instruction: str) -> RoutedRouter:
        """The router of a zero-shot mode other than `fit`."""
        if mode == "average":
            return RoutedRouter(self.model, weights=average_routing(self.model, self.trained))
        if mode == "similar":
            query = instruction_embeddings(self.model, self.tokenizer, [instruction])[0]
            return RoutedRouter(self.model, weights=similar_routing(self.model, self.trained, self.embeddings, query,
                                                                    temperature=0.1))
        if mode.startswith("task="):
            return RoutedRouter(self.model, task=self._trained_id(mode))
        if mode == "arrow":
            return RoutedRouter(self.model, arrow=Arrow(self.prototypes(), top_k=self.top_k))
        raise T2TError(f"unknown routing mode '{mode}'.{closest(mode, ROUTING_MODES)} Modes: {', '.join(ROUTING_MODES)}")

    def _trained_id(self, mode: str) -> int:
        name = mode.removeprefix("task=")
        if name not in self.ids or self.ids[name] not in self.trained:
            known = [n for n, i in self.ids.items() if i in self.trained]
            raise T2TError(f"routing {mode}: '{name}' is not a trained task of this run.{closest(name, known)}")
        return self.ids[name]

    def fit(self, batches: list[dict[str, torch.Tensor]], steps: int = FIT_STEPS) -> tuple[RoutedRouter, list[float]]:
        """MHR-z: fit an unseen task's routing on labelled batches, from the average; (router, per-step losses)."""
        if not batches:
            raise T2TError("routing 'fit' needs labelled rows of the task (--fit-data FILE.jsonl)")
        start = average_routing(self.model, self.trained)
        weights, losses = fit_routing(self.model, batches, mean_token_loss, start, steps, lr=FIT_LR)
        return RoutedRouter(self.model, weights=weights), losses

    def fit_unlabelled(self, batches: list[dict[str, torch.Tensor]], steps: int = FIT_STEPS
                       ) -> tuple[RoutedRouter, list[float]]:
        """Fit an unseen task's routing on unlabelled batches, from the average, by minimising the mean token
        entropy of the model's own greedy answers; (router, per-step mean entropies)."""
        if not batches:
            raise T2TError("routing 'fit-unlabelled' needs rows of the task (its --input, or --fit-data FILE.jsonl)")
        start = average_routing(self.model, self.trained)
        weights, losses = fit_routing(self.model, batches, prediction_entropy, start, steps, lr=FIT_LR,
                                      prepare=lambda model, batch: greedy_continuation(model, batch,
                                                                                       self.max_new_tokens),
                                      progress=True)
        return RoutedRouter(self.model, weights=weights), losses

    def single(self, task: str | None, mode: str | None, instruction: str | None) -> Routing:
        """The one routing an export folds in: a trained task's (`task`), or a zero-shot `mode`'s."""
        if task is not None:
            if task not in self.ids or self.ids[task] not in self.trained:
                known = [n for n, i in self.ids.items() if i in self.trained]
                raise T2TError(f"export --task: '{task}' is not a trained task of this run.{closest(task, known)}")
            return Routing.fixed(task_weights(self.model)[self.ids[task]], task=self.ids[task])
        if mode is None:
            raise T2TError("exporting a routed run needs --task NAME or --routing MODE (average, similar, task=NAME)")
        if mode == "similar" and not instruction:
            raise T2TError("export --routing similar needs --instruction TEXT (the new task's instruction)")
        if mode in ("fit", "fit-unlabelled"):
            raise T2TError(f"export --routing {mode} is not supported: fit a routing with predict, or use --task NAME")
        if mode == "arrow":
            raise T2TError("export --routing arrow is not possible: Arrow routes every token on its own, so no single "
                           "routing folds into the weights. Use average, similar or task=NAME")
        router = self._zero_shot(mode, instruction or "")
        if router.task is not None:
            return Routing.fixed(task_weights(self.model)[router.task], task=router.task)
        return Routing.fixed(router.weights)
