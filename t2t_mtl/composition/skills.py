"""One routed adapter from several: the runs' skill inventories side by side, each task routing over its own run's.

LoRA runs join as one skill each: the stacked LoRA tensors (`task_vectors.stacked`, in PEFT's
layout, which the routed layers hold skill-major as they load it) are the inventory, and a task trained
by run i routes with weight 1 on skill i and 0 elsewhere, so its update is run i's.


A routed layer of run i holds S_i shared skills (`lora_A` (S_i, in, r), `lora_B` (S_i, r, out), read
from any layout a run was saved in by `formulations.skill_major_a` / `skill_major_b`),
routing logits (T_i, Q, S_i + E) and, for C-Poly, E exclusive skills per task. The merged
layer holds the S = Σ S_i shared skills in the inputs' order; a task of run i keeps its
logits on run i's block and its exclusive skills, and gets the logit `OFF` elsewhere:
sigmoid(OFF) is exactly 0 in every float type, so each task's weights, and its outputs,
are those of its own run.
"""

from __future__ import annotations

import torch

from t2t_mtl.composition.task_vectors import LORA_A, LORA_B
from t2t_mtl.errors import T2TError
from t2t_mtl.modeling.routed.formulations import skill_major_a, skill_major_b

ROUTING, EXCLUSIVE_A, EXCLUSIVE_B = ".lora_routing", ".lora_exclusive_A", ".lora_exclusive_B"
OFF, ON = -1.0e4, 1.0e4  # routing logits whose sigmoid is exactly 0 and exactly 1


def routed_modules(state: dict[str, torch.Tensor]) -> list[str]:
    """The key prefixes of a saved routed adapter's layers."""
    return sorted(key[: -len(ROUTING)] for key in state if key.endswith(ROUTING))


def concatenated_skills(names: list[str], states: list[dict[str, torch.Tensor]], skills: list[int],
                        rows: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
    """The tensors of the merged routed adapter; `rows[j]` = (input, its routing row) of merged task j."""
    modules = routed_modules(states[0])
    for name, state in zip(names[1:], states[1:]):
        if routed_modules(state) != modules:
            raise T2TError(f"{names[0]} and {name} route different layers: merge runs trained with the same "
                           f"adapter.targets on the same backbone")
    starts = [sum(skills[:i]) for i in range(len(skills))]
    total = sum(skills)
    merged: dict[str, torch.Tensor] = {}
    for module in modules:
        ranks = [skill_rank(s[module + LORA_A], k) for s, k in zip(states, skills)]
        merged[module + LORA_A] = torch.cat([skill_major_a(s[module + LORA_A], r) for s, r in zip(states, ranks)])
        merged[module + LORA_B] = torch.cat([skill_major_b(s[module + LORA_B], r, k)
                                             for s, r, k in zip(states, ranks, skills)])
        logits = [s[module + ROUTING] for s in states]
        splits, exclusive = logits[0].shape[1], logits[0].shape[2] - skills[0]
        routing = torch.full((len(rows), splits, total + exclusive), OFF, dtype=logits[0].dtype)
        for j, (i, task) in enumerate(rows):
            routing[j, :, starts[i] : starts[i] + skills[i]] = logits[i][task, :, : skills[i]]
            routing[j, :, total:] = logits[i][task, :, skills[i] :]
        merged[module + ROUTING] = routing
        if exclusive:
            merged[module + EXCLUSIVE_A] = torch.stack([
                skill_major_a(states[i][module + EXCLUSIVE_A], ranks[i], batched=True)[task] for i, task in rows])
            merged[module + EXCLUSIVE_B] = torch.stack([
                skill_major_b(states[i][module + EXCLUSIVE_B], ranks[i], exclusive, batched=True)[task]
                for i, task in rows])
    return {key: value.contiguous() for key, value in merged.items()}


def skill_rank(a: torch.Tensor, skills: int) -> int:
    """The rank of each skill of a saved `lora_A`: skill-major (S, in, r), or PEFT's (S·r × in)."""
    return a.shape[-1] if a.dim() == 3 else a.shape[0] // skills


def lora_skill_routing(modules: list[str], trained_by: list[int | None], skills: int) -> dict[str, torch.Tensor]:
    """Routing logits (tasks, 1, skills) of every module for LoRA runs joined as skills: task j on skill
    `trained_by[j]` alone; a task no run trained (None) starts uniform, for the zero-shot routings to replace."""
    routing = torch.zeros(len(trained_by), 1, skills)
    for task, skill in enumerate(trained_by):
        if skill is not None:
            routing[task] = OFF
            routing[task, 0, skill] = ON
    return {module + ROUTING: routing.clone() for module in modules}
