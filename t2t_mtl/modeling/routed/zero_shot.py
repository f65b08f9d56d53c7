"""Routings for tasks the model never trained on: average, similar, fit, or a borrowed task's."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from t2t_mtl.errors import T2TError, closest
from t2t_mtl.modeling.routed.model import task_weights
from t2t_mtl.modeling.routed.routing import skill_weights


@dataclass
class Router:
    """Routes each generation or training batch: by the examples' own task ids, a borrowed
    task's id, or one fixed routing (layers, splits, shared skills) for every example."""

    model: PeftModel
    weights: torch.Tensor | None = None
    task: int | None = None

    def __call__(self, task_ids: torch.Tensor) -> None:
        context = self.model.routing
        if self.weights is not None:
            context.set_weights(self.weights)
        elif self.task is not None:
            context.set_tasks(torch.full_like(task_ids, self.task))
        else:
            context.set_tasks(task_ids)


def shared_part(weights: torch.Tensor, shared: int) -> torch.Tensor:
    """Keep the shared skills of a routing and renormalise (exclusive skills belong to one task)."""
    part = weights[..., :shared]
    return part / part.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def n_shared(model: PeftModel) -> int:
    """Shared skills per layer of a routed model."""
    return model.peft_config[model.routing.adapter].n_skills


def average_routing(model: PeftModel, trained: list[int]) -> torch.Tensor:
    """MHR-µ: the mean of the trained tasks' routings."""
    if not trained:
        raise T2TError("routing 'average' needs at least one trained task")
    return shared_part(task_weights(model)[trained], n_shared(model)).mean(dim=0)


def similar_routing(
    model: PeftModel, trained: list[int], embeddings: torch.Tensor, query: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Mix the trained tasks' routings by softmax(cosine(query, task instruction) / temperature)."""
    sims = F.cosine_similarity(embeddings[trained].float(), query.float()[None], dim=-1)
    mix = torch.softmax(sims / temperature, dim=0)
    routings = shared_part(task_weights(model)[trained], n_shared(model))
    return torch.einsum("t,tlqs->lqs", mix, routings)


@torch.no_grad()
def instruction_embeddings(model: PeftModel, tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> torch.Tensor:
    """Mean-pooled, L2-normalised encoder states of each text, from the backbone without adapters."""
    device = next(model.parameters()).device
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt").to(device)
    encoder = model.get_base_model().get_encoder()
    was_training = model.training
    model.eval()
    with model.disable_adapter():
        states = encoder(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).last_hidden_state
    model.train(was_training)
    mask = encoded["attention_mask"].unsqueeze(-1).to(states.dtype)
    pooled = (states * mask).sum(1) / mask.sum(1).clamp_min(1)
    return F.normalize(pooled.float(), dim=-1).cpu()


def fit_routing(
    model: PeftModel,
    batches: Iterable[dict[str, torch.Tensor]],
    loss_fn: Callable[[PeftModel, dict[str, torch.Tensor]], torch.Tensor],
    start: torch.Tensor,
    steps: int,
    lr: float,
) -> tuple[torch.Tensor, list[float]]:
    """MHR-z: learn only a new task's routing logits on a few labelled batches.

    Starts from the logits of `start` (a routing); returns the fitted routing and the loss
    of each step. Every model weight stays frozen.
    """
    logits = torch.logit(start.clamp(1e-4, 1 - 1e-4)).detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([logits], lr=lr)
    frozen = [(p, p.requires_grad) for p in model.parameters()]
    for parameter, _ in frozen:
        parameter.requires_grad_(False)
    batches = list(batches)
    losses: list[float] = []
    was_training = model.training
    model.eval()
    try:
        for step in range(steps):
            batch = batches[step % len(batches)]
            model.routing.set_weights(skill_weights(logits, sample=False, temperature=1.0))
            loss = loss_fn(model, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    finally:
        for parameter, flag in frozen:
            parameter.requires_grad_(flag)
        model.train(was_training)
    return skill_weights(logits.detach(), sample=False, temperature=1.0), losses


ROUTING_MODES = ("average", "similar", "fit", "task=NAME")


class TaskRouting:
    """Chooses how any task is routed in a routed run.

    A trained task uses its learned routing unless a mode is given; an unseen one needs a
    mode: `average`, `similar` (by instruction similarity, `temperature`), `task=NAME`
    (borrow a trained task's routing) or a fitted routing passed in as weights.
    """

    def __init__(self, model: PeftModel, tokenizer: PreTrainedTokenizerBase, table: list[dict],
                 embeddings: torch.Tensor | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.ids = {row["name"]: row["id"] for row in table}
        self.trained = [row["id"] for row in table if not row["held_out"]]
        self.instructions = [row["instruction"] for row in table]
        self._embeddings = embeddings

    @property
    def embeddings(self) -> torch.Tensor:
        """Instruction embeddings of the task table (computed on first use when not saved)."""
        if self._embeddings is None:
            self._embeddings = instruction_embeddings(self.model, self.tokenizer, self.instructions)
        return self._embeddings

    def router(self, task: str, instruction: str, mode: str | None = None, temperature: float = 0.1) -> Router:
        """The router for one task under a mode (None: learned if trained, else an error)."""
        if mode is None:
            if task in self.ids and self.ids[task] in self.trained:
                return Router(self.model)
            raise T2TError(f"task '{task}' was not trained in this run: choose a routing mode, one of {ROUTING_MODES}")
        if mode == "average":
            return Router(self.model, weights=average_routing(self.model, self.trained))
        if mode == "similar":
            query = instruction_embeddings(self.model, self.tokenizer, [instruction])[0]
            return Router(self.model, weights=similar_routing(self.model, self.trained, self.embeddings, query,
                                                              temperature))
        if mode.startswith("task="):
            name = mode.removeprefix("task=")
            if name not in self.ids or self.ids[name] not in self.trained:
                known = [n for n, i in self.ids.items() if i in self.trained]
                raise T2TError(f"routing {mode}: '{name}' is not a trained task of this run.{closest(name, known)}")
            return Router(self.model, task=self.ids[name])
        raise T2TError(f"unknown routing mode '{mode}'.{closest(mode, ROUTING_MODES)} Modes: {', '.join(ROUTING_MODES)}")
