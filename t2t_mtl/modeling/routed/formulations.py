"""Exact formulations of the routed LoRA delta, and the rule that picks the cheapest one for a call.

Shapes: h (batch, tokens, in); skills S of rank r, concatenated in `a` (S·r × in) and `b`
(out × S·r); splits Q cut in/out features into blocks; a routing row is (Q, K) weights over
the K = S shared (+ E exclusive) skills. Every formulation computes, per example with row w,

    Δy = B_mix(w) · A_mix(w) · h,   A_mix = per split q: Σ_k w[q,k] A_k[:, block q],
                                     B_mix = per split q: Σ_k w[q,k] B_k[block q, :]

- `concat`: one GEMM against all S skills (S× LoRA's GEMM work per token), mixed in rank space;
- `per_example`: A_mix/B_mix for every example, then LoRA-sized batched matmuls;
- `per_task`: A_mix/B_mix once per distinct routing row (a task, or one fixed routing), then
  LoRA's own two GEMMs when the call has one row, else the rows' factors gathered per example.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FORMULATIONS = ("concat", "per_example", "per_task")


def mix_factors(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor, rank: int, splits: int,
                own_a: torch.Tensor | None = None, own_b: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(A_mix (N, r, in), B_mix (N, out, r)) of N routing rows `weights` (N, Q, K).

    `own_a` (N, E·r, in) / `own_b` (N, out, E·r) are the rows' exclusive skills (C-Poly, Q = 1),
    weighted by the last E weights of each row.
    """
    shared = a.shape[0] // rank
    w = weights.to(a.dtype)
    a_mix = torch.einsum("nqs,srqd->nrqd", w[..., :shared], a.view(shared, rank, splits, -1)).flatten(2)
    b_mix = torch.einsum("nqs,qosr->nqor", w[..., :shared], b.view(splits, -1, shared, rank)).flatten(1, 2)
    if own_a is not None:
        n, own = w.shape[0], w[:, 0, shared:]
        a_mix = a_mix + torch.einsum("ne,nerd->nrd", own, own_a.view(n, -1, rank, a.shape[1]))
        b_mix = b_mix + torch.einsum("ne,noer->nor", own, own_b.view(n, b.shape[0], -1, rank))
    return a_mix, b_mix


def apply_factors(h: torch.Tensor, a_mix: torch.Tensor, b_mix: torch.Tensor) -> torch.Tensor:
    """B_mix · A_mix · h per example: LoRA's two GEMMs for one shared row, else batched matmuls."""
    if a_mix.shape[0] == 1:
        return F.linear(F.linear(h, a_mix[0]), b_mix[0])
    return torch.bmm(torch.bmm(h, a_mix.transpose(1, 2)), b_mix.transpose(1, 2))


def concat_delta(h: torch.Tensor, a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor, rank: int, splits: int,
                 own_a: torch.Tensor | None = None, own_b: torch.Tensor | None = None) -> torch.Tensor:
    """The delta by one GEMM against the concatenated skills, mixed in rank space; weights (batch, Q, K).

    x·Σ w A = Σ w (x·A), and Σ w (z·B) = [w_1 z, …, w_K z]·[B_1; …; B_K].
    """
    shared = a.shape[0] // rank
    w = weights.to(a.dtype)
    if splits == 1:
        u = F.linear(h, a).unflatten(-1, (1, shared, rank))  # (B, L, 1, S, r)
    else:
        u = torch.einsum("blqd,srqd->blqsr", h.unflatten(-1, (splits, -1)), a.view(shared, rank, splits, -1))
    if own_a is not None:
        u = torch.cat([u, torch.bmm(h, own_a.transpose(1, 2)).unflatten(-1, (1, -1, rank))], dim=3)
    else:
        w = w[..., :shared]
    z = torch.einsum("blqkr,bqk->blr", u, w)  # rank-space mix, shared over splits
    mixed = torch.einsum("blr,bqk->blqkr", z, w)  # (B, L, Q, K, r)
    if splits == 1:
        out = F.linear(mixed[:, :, 0, :shared].flatten(2), b)
    else:
        out = torch.einsum("blqsr,qosr->blqo", mixed, b.view(splits, -1, shared, rank)).flatten(2)
    if own_a is not None:
        out = out + torch.bmm(mixed[:, :, 0, shared:].flatten(2), own_b.transpose(1, 2))
    return out


def choose(batch: int, tokens: int, rows: int, skills: int, grad: bool) -> str:
    """The cheapest exact formulation for a call's shapes (see `bench/routed_adapters.py --layers`).

    Counted in units of r·(in + out) multiply-adds: `concat` costs batch·tokens·K; mixing
    costs rows·K (`per_task`, rows = distinct routings) or batch·K (`per_example`), plus the
    LoRA GEMMs' batch·tokens and, with several rows, a gather of batch factors. Without
    gradients the mixed factors are kept for the whole call (every decoding step and beam),
    so mixing is paid once: `per_task` then always wins.
    """
    if not grad:
        return "per_task"
    concat = batch * tokens * skills
    gather = batch if rows > 1 else 0
    per_task = rows * skills + batch * tokens + gather
    per_example = batch * skills + batch * tokens + batch
    costs = {"concat": concat, "per_task": per_task, "per_example": per_example}
    return min(costs, key=costs.__getitem__)
