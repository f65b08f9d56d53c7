"""Routings for tasks the model never trained on: the average, by instruction similarity, or fitted."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from t2t_mtl.errors import T2TError
from t2t_mtl.modeling.fitting import frozen, minimise
from t2t_mtl.modeling.routed.formulations import skill_prototypes
from t2t_mtl.modeling.routed.model import ADAPTER, routed_call, routed_layers, task_weights
from t2t_mtl.modeling.routed.routing import Routing, skill_weights


def shared_part(weights: torch.Tensor, shared: int) -> torch.Tensor:
    """Keep the shared skills of a routing and renormalise (exclusive skills belong to one task)."""
    part = weights[..., :shared]
    return part / part.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def n_shared(model: PeftModel) -> int:
    """Shared skills per layer of a routed model."""
    return model.peft_config[ADAPTER].n_skills


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
def arrow_prototypes(model: PeftModel) -> tuple[torch.Tensor, ...]:
    """Every routed layer's shared-skill prototypes for Arrow, (skills, in) each, in layer order."""
    return tuple(skill_prototypes(layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight).cpu()
                 for layer in routed_layers(model))


def skills_fingerprint(model: PeftModel) -> str:
    """The sha256 of every routed layer's shared skills: what Arrow's prototypes are computed from."""
    digest = hashlib.sha256()
    for layer in routed_layers(model):
        for weight in (layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight):
            digest.update(weight.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


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
    prepare: Callable[[PeftModel, dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, list[float]]:
    """Learn only a new task's routing logits on a few batches (MHR-z, or entropy minimisation).

    Starts from the logits of `start` (a routing); returns the fitted routing and the loss
    of each step. Every model weight stays frozen. `prepare(model, batch)`, run without
    gradients under the current routing, completes a batch before its step (e.g. with the
    model's own greedy answer, for an objective on unlabelled rows).
    """
    logits = torch.logit(start.clamp(1e-4, 1 - 1e-4)).detach().clone().requires_grad_(True)
    batches = list(batches)

    def backward_at(step: int) -> torch.Tensor:
        batch = batches[step % len(batches)]
        if prepare is not None:
            with torch.no_grad(), routed_call(model, Routing.fixed(skill_weights(logits.detach(), False, 1.0))):
                batch = prepare(model, batch)
        with routed_call(model, Routing.fixed(skill_weights(logits, sample=False, temperature=1.0))):
            loss = loss_fn(model, batch)
            loss.backward()  # inside the call: gradient checkpointing recomputes with this routing
        return loss

    with frozen(model):
        losses = minimise([logits], backward_at, steps, lr, "fit routing", progress)
    return skill_weights(logits.detach(), sample=False, temperature=1.0), losses
