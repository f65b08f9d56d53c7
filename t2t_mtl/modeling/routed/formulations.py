"""Exact formulations of the routed LoRA delta, and the rule that picks the cheapest one for a call.

Shapes: h (batch, tokens, in); skills S of rank r, stacked skill by skill in `a` (S·r × in:
A_s is rows s·r…) and `b` (S·out × r: B_s is rows s·out…), so that every mix reads them as
(S, ·) without a copy (`stacked_b`); splits Q cut in/out features into blocks; a routing row
is (Q, K) weights over the K = S shared (+ E exclusive) skills. Every formulation computes,
per example with row w,

    Δy = B_mix(w) · A_mix(w) · h,   A_mix = per split q: Σ_k w[q,k] A_k[:, block q],
                                     B_mix = per split q: Σ_k scale · w[q,k] B_k[block q, :]

- `concat`: one GEMM against all S skills (S× LoRA's GEMM work per token), mixed in rank space;
- `per_example`: A_mix/B_mix for every example, then LoRA-sized batched matmuls;
- `per_task`: A_mix/B_mix once per distinct routing row (a task, or one fixed routing), then
  LoRA's own two GEMMs when the call has one row, else the rows' factors gathered per example.

LoRA's `scale` rides in B_mix and the second GEMM accumulates into the base output, so a
routed layer runs no elementwise pass over its activations (a LoRA layer runs two).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FORMULATIONS = ("concat", "per_example", "per_task")


def stacked_b(weight: torch.Tensor, rank: int) -> torch.Tensor:
    """The shared skills' B stacked skill by skill (S·out × r) from PEFT's LoRA layout (out × S·r), in which
    routed adapters were saved before they stacked it; a weight already stacked (its second size is the
    rank) is returned as it is."""
    if weight.shape[1] == rank:
        return weight
    skills = weight.shape[1] // rank
    return weight.reshape(weight.shape[0], skills, rank).transpose(0, 1).reshape(-1, rank)


def placed_weights(own: torch.Tensor, row_tasks: torch.Tensor, tasks: int) -> torch.Tensor:
    """Exclusive-skill weights `own` (…, R, E) of rows owned by `row_tasks` (R,), placed at their task: (…, R, T·E).

    A row's exclusive skills then mix with one matmul against the whole table of every
    task's skills, so no gather runs in the backward.
    """
    placed = own.new_zeros(*own.shape[:-1], tasks, own.shape[-1])
    placed[..., torch.arange(len(row_tasks), device=own.device), row_tasks, :] = own
    return placed.flatten(-2)


def mix_factors(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor, rank: int, splits: int, scale: float = 1.0,
                exclusive: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(A_mix (N, r, in), scale · B_mix (N, out, r)) of N routing rows `weights` (N, Q, K).

    `exclusive` = (A table (T, E·r, in), B table (T, out, E·r), placed weights (N, T·E) from
    `placed_weights`): every task's exclusive skills (C-Poly, Q = 1). Each split mixes with
    one matmul (N × S)·(S × ·).
    """
    shared = a.shape[0] // rank
    n, d_in, d_out = weights.shape[0], a.shape[1], b.shape[0] // shared
    w = weights if weights.shape[-1] == shared else weights[..., :shared]
    w = w if w.dtype == a.dtype else w.to(a.dtype)
    if splits == 1:
        w = w.flatten(1)  # (N, S): a view, unless the exclusive columns were sliced off
        a_mix = (w @ a.view(shared, -1)).view(n, rank, d_in)
        b_mix = ((w * scale) @ b.view(shared, -1)).view(n, d_out, rank)
    else:
        per_split = w.transpose(0, 1)  # (Q, N, S)
        a_skills = a.view(shared, rank, splits, -1).permute(2, 0, 1, 3).reshape(splits, shared, -1)  # (Q, S, r·in/Q)
        b_skills = b.view(shared, splits, -1).transpose(0, 1)  # (Q, S, out/Q·r), a view
        a_mix = torch.matmul(per_split, a_skills).view(splits, n, rank, -1).permute(1, 2, 0, 3).reshape(n, rank, d_in)
        b_mix = torch.matmul(per_split * scale, b_skills).view(splits, n, -1, rank).transpose(0, 1)
        b_mix = b_mix.reshape(n, d_out, rank)
    if exclusive is not None:
        table_a, table_b, placed = exclusive
        placed = placed.to(a.dtype)
        a_mix = a_mix + (placed @ table_a.view(-1, rank * d_in)).view(n, rank, d_in)
        b_table = table_b.view(table_b.shape[0], d_out, -1, rank).transpose(1, 2).reshape(-1, d_out * rank)
        b_mix = b_mix + ((placed * scale) @ b_table).view(n, d_out, rank)
    return a_mix, b_mix


def add_factors(result: torch.Tensor, h: torch.Tensor, a_mix: torch.Tensor, b_mix: torch.Tensor) -> torch.Tensor:
    """`result` (batch, tokens, out) + B_mix · A_mix · h: LoRA's two GEMMs for one shared row, else batched
    matmuls; the second accumulates into `result` when the dtypes agree."""
    shape = result.shape
    if a_mix.shape[0] == 1:
        z = F.linear(h, a_mix[0])
        if result.dtype != z.dtype:
            return result + F.linear(z, b_mix[0]).to(result.dtype)
        return torch.addmm(result.reshape(-1, shape[-1]), z.reshape(-1, z.shape[-1]), b_mix[0].t()).view(shape)
    z = torch.bmm(h, a_mix.transpose(1, 2))
    if result.dtype != z.dtype:
        return result + torch.bmm(z, b_mix.transpose(1, 2)).to(result.dtype)
    return torch.baddbmm(result, z, b_mix.transpose(1, 2))


def concat_delta(h: torch.Tensor, a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor, rank: int, splits: int,
                 scale: float = 1.0, own_a: torch.Tensor | None = None, own_b: torch.Tensor | None = None
                 ) -> torch.Tensor:
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
    mixed = torch.einsum("blr,bqk->blqkr", z, w * scale)  # (B, L, Q, K, r)
    if splits == 1:
        out = torch.einsum("blsr,sor->blo", mixed[:, :, 0, :shared], b.view(shared, -1, rank))
    else:
        out = torch.einsum("blqsr,sqor->blqo", mixed, b.view(shared, splits, -1, rank)).flatten(2)
    if own_a is not None:
        out = out + torch.bmm(mixed[:, :, 0, shared:].flatten(2), own_b.transpose(1, 2))
    return out


def skill_prototypes(a: torch.Tensor, b: torch.Tensor, rank: int) -> torch.Tensor:
    """Arrow's prototype of every skill of a layer: the top right singular vector of B_s A_s, (skills, in), float32.

    B_s = Q R (QR), so B_s A_s = Q (R A_s) has the right singular vectors of the r × in matrix
    R A_s: exact, without forming the out × in update. A vector's sign is arbitrary; Arrow
    uses |x · v|.
    """
    skills = a.shape[0] // rank
    a_skills = a.double().view(skills, rank, -1)
    b_skills = b.double().view(skills, -1, rank)  # (S, out, r)
    r_factors = torch.linalg.qr(b_skills, mode="r").R
    return torch.linalg.svd(r_factors @ a_skills, full_matrices=False).Vh[:, 0].float()


def arrow_delta(h: torch.Tensor, a: torch.Tensor, b: torch.Tensor, prototypes: torch.Tensor, rank: int, top_k: int,
                temperature: float, scale: float = 1.0) -> torch.Tensor:
    """Arrow's per-token delta: Σ_s c_s(x) · scale · B_s A_s x, with c = softmax over the top-k skills of |x · v_s|.

    Each skill is used whole (as its own LoRA), so the mix is of the skills' outputs, token by token.
    """
    skills = a.shape[0] // rank
    closeness = (h @ prototypes.to(h.dtype).t()).abs()  # (batch, tokens, S)
    top, chosen = closeness.topk(min(top_k, skills), dim=-1)
    coefficients = torch.zeros_like(closeness).scatter_(-1, chosen, torch.softmax(top / temperature, dim=-1))
    per_skill = F.linear(h, a).unflatten(-1, (skills, rank)) * (coefficients * scale).unsqueeze(-1)
    return torch.einsum("blsr,sor->blo", per_skill, b.view(skills, -1, rank))


def choose(rows: int, grad: bool) -> str:
    """The cheapest exact formulation for a call of `rows` distinct routing rows
    (`python bench/routed_adapters.py --only layers`; README, "Numbers").

    Measured on the 2-core CPU: from 32 tokens on, the mixed formulations train at 0.85–1.10× a
    PEFT LoRA layer and `concat` at 0.54–0.98×; at one token at 0.40–0.57× against 0.33–0.46×;
    without gradients, mixed factors kept for the call run at 0.93–1.17× LoRA against
    0.26–0.81× for `concat`. So `concat` is never picked (it stays the reference, and can be
    forced). With gradients and several rows, mixing per example beats mixing per row and
    gathering: the gather's backward is an index_put per layer, while the examples' rows are
    gathered once per call for all layers. Otherwise (one row, or no gradients, where the
    mixed factors serve every decoding step and beam) `per_task`.
    """
    return "per_example" if grad and rows > 1 else "per_task"
