"""Exact formulations of the routed LoRA delta, and the rule that picks the cheapest one for a call.

Shapes: h (batch, tokens, in); skills S of rank r, held skill-major and transposed: `a`
(S, in, r) holds A_s^T and `b` (S, r, out) holds B_s^T, so that every mix reads them as
(S, ·) and every mixed factor meets its matmul, forward and backward, without a copy
(`skill_major_a`, `skill_major_b` read the layouts of earlier saves); splits Q cut in/out
features into blocks; a routing row is (Q, K) weights over the K = S shared (+ E exclusive)
skills. Every formulation computes, per example with row w,

    Δy = B_mix(w) · A_mix(w) · h,   A_mix = per split q: Σ_k w[q,k] A_k[:, block q],
                                     B_mix = per split q: Σ_k scale · w[q,k] B_k[block q, :]

- `concat`: one GEMM against all S skills (S× LoRA's GEMM work per token), mixed in rank space;
- `per_example`: A_mix/B_mix for every example, then LoRA-sized batched matmuls;
- `per_task`: A_mix/B_mix once per distinct routing row (a task, or one fixed routing), then
  LoRA's own two GEMMs when the call has one row, else the rows' factors gathered per example.

LoRA's `scale` rides in the routing weights that mix B (scaled once per call for all layers),
and the second GEMM accumulates into the base output, so a routed layer runs no elementwise
pass over its activations or its mixed factors (a LoRA layer runs two over its activations).
"""

from __future__ import annotations

import torch

FORMULATIONS = ("concat", "per_example", "per_task")


def skill_major_a(weight: torch.Tensor, rank: int, batched: bool = False) -> torch.Tensor:
    """Skills' A as (…, K, in, r) from the (…, K·r, in) of PEFT's LoRA layout, in which routed adapters were
    saved before they held their skills skill-major; `batched`: one leading task dimension (exclusive skills).
    A weight already skill-major is returned as it is, else a view."""
    if weight.dim() == 3 + batched:
        return weight
    return weight.unflatten(-2, (-1, rank)).transpose(-1, -2)


def skill_major_b(weight: torch.Tensor, rank: int, skills: int, batched: bool = False) -> torch.Tensor:
    """Skills' B as (…, K, r, out) from PEFT's LoRA layout (…, out, K·r) or from the stacked (K·out, r) that
    routed adapters saved before they held their skills skill-major (the two agree when K = 1); `batched`:
    one leading task dimension (exclusive skills). A weight already skill-major is returned as it is, else a view."""
    if weight.dim() == 3 + batched:
        return weight
    if weight.shape[-1] == rank:  # stacked skill by skill: (K·out, r)
        return weight.unflatten(-2, (skills, -1)).transpose(-1, -2)
    return weight.unflatten(-1, (skills, rank)).movedim(-3, -1)


def placed_weights(own: torch.Tensor, row_tasks: torch.Tensor, tasks: int) -> torch.Tensor:
    """Exclusive-skill weights `own` (…, R, E) of rows owned by `row_tasks` (R,), placed at their task: (…, R, T·E).

    A row's exclusive skills then mix with one matmul against the whole table of every
    task's skills, so no gather runs in the backward.
    """
    placed = own.new_zeros(*own.shape[:-1], tasks, own.shape[-1])
    placed[..., torch.arange(len(row_tasks), device=own.device), row_tasks, :] = own
    return placed.flatten(-2)


def mix_factors(a: torch.Tensor, b: torch.Tensor, a_weights: torch.Tensor, b_weights: torch.Tensor, rank: int,
                splits: int, exclusive: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(A_mix^T (N, in, r), B_mix^T (N, r, out)) of N routing rows over the S shared skills: `a_weights` (N, Q, S)
    mix the skills' A, `b_weights` their B (the rows times LoRA's scale, made once per call for every layer).

    `exclusive` = (A table (T, E, in, r), B table (T, E, r, out), the rows' placed weights (N, T·E) for A and for
    B, from `placed_weights`): every task's exclusive skills (C-Poly, Q = 1), accumulated by the same matmul
    that mixes them. Each split mixes with one matmul (N × S)·(S × ·).
    """
    shared, d_in, d_out, n = a.shape[0], a.shape[1], b.shape[2], a_weights.shape[0]
    if a_weights.dtype != a.dtype:
        a_weights, b_weights = a_weights.to(a.dtype), b_weights.to(a.dtype)
    if splits == 1:
        a_mix = a_weights.reshape(n, shared) @ a.view(shared, -1)
        b_mix = b_weights.reshape(n, shared) @ b.view(shared, -1)
        if exclusive is not None:
            table_a, table_b, a_placed, b_placed = exclusive
            a_mix = torch.addmm(a_mix, a_placed.to(a.dtype), table_a.view(-1, d_in * rank))
            b_mix = torch.addmm(b_mix, b_placed.to(a.dtype), table_b.view(-1, rank * d_out))
        return a_mix.view(n, d_in, rank), b_mix.view(n, rank, d_out)
    a_blocks = a.view(shared, splits, -1).transpose(0, 1)  # (Q, S, in/Q·r), a view
    a_mix = torch.matmul(a_weights.transpose(0, 1), a_blocks).transpose(0, 1).reshape(n, d_in, rank)
    b_blocks = b.view(shared, rank, splits, -1).permute(2, 0, 1, 3).reshape(splits, shared, -1)  # (Q, S, r·out/Q)
    b_mix = torch.matmul(b_weights.transpose(0, 1), b_blocks).view(splits, n, rank, -1).permute(1, 2, 0, 3)
    return a_mix, b_mix.reshape(n, rank, d_out)


def add_factors(result: torch.Tensor, h: torch.Tensor, a_mix: torch.Tensor, b_mix: torch.Tensor) -> torch.Tensor:
    """`result` (batch, tokens, out) + h · A_mix^T · B_mix^T: LoRA's two GEMMs for one shared row, else batched
    matmuls; the second accumulates into `result` when the dtypes agree."""
    shape = result.shape
    if a_mix.shape[0] == 1:
        z = h.reshape(-1, h.shape[-1]) @ a_mix[0]
        if result.dtype != z.dtype:
            return result + (z @ b_mix[0]).view(shape).to(result.dtype)
        return torch.addmm(result.reshape(-1, shape[-1]), z, b_mix[0]).view(shape)
    z = torch.bmm(h, a_mix)
    if result.dtype != z.dtype:
        return result + torch.bmm(z, b_mix).to(result.dtype)
    return torch.baddbmm(result, z, b_mix)


def concat_delta(h: torch.Tensor, a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor, rank: int, splits: int,
                 scale: float = 1.0, own_a: torch.Tensor | None = None, own_b: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """The delta by one GEMM against the concatenated skills, mixed in rank space; weights (batch, Q, K),
    `own_a` (batch, E, in, r) and `own_b` (batch, E, r, out) each example's exclusive skills.

    x·Σ w A = Σ w (x·A), and Σ w (z·B) = [w_1 z, …, w_K z]·[B_1; …; B_K].
    """
    shared = a.shape[0]
    w = weights.to(a.dtype)
    if splits == 1:
        u = torch.einsum("bli,sir->blsr", h, a)[:, :, None]  # (B, L, 1, S, r)
    else:
        u = torch.einsum("blqd,sqdr->blqsr", h.unflatten(-1, (splits, -1)), a.view(shared, splits, -1, rank))
    if own_a is not None:
        u = torch.cat([u, torch.einsum("bli,beir->bler", h, own_a)[:, :, None]], dim=3)
    else:
        w = w[..., :shared]
    z = torch.einsum("blqkr,bqk->blr", u, w)  # rank-space mix, shared over splits
    mixed = torch.einsum("blr,bqk->blqkr", z, w * scale)  # (B, L, Q, K, r)
    if splits == 1:
        out = torch.einsum("blsr,sro->blo", mixed[:, :, 0, :shared], b)
    else:
        out = torch.einsum("blqsr,srqo->blqo", mixed, b.view(shared, rank, splits, -1)).flatten(2)
    if own_a is not None:
        out = out + torch.einsum("bler,bero->blo", mixed[:, :, 0, shared:], own_b)
    return out


def skill_prototypes(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Arrow's prototype of every skill of a layer: the top right singular vector of B_s A_s, (skills, in), float32.

    B_s = Q R (QR), so B_s A_s = Q (R A_s) has the right singular vectors of the r × in matrix
    R A_s: exact, without forming the out × in update. A vector's sign is arbitrary; Arrow
    uses |x · v|.
    """
    r_factors = torch.linalg.qr(b.double().transpose(1, 2), mode="r").R  # B_s (out × r)
    return torch.linalg.svd(r_factors @ a.double().transpose(1, 2), full_matrices=False).Vh[:, 0].float()


def arrow_delta(h: torch.Tensor, a: torch.Tensor, b: torch.Tensor, prototypes: torch.Tensor, top_k: int,
                temperature: float, scale: float = 1.0) -> torch.Tensor:
    """Arrow's per-token delta: Σ_s c_s(x) · scale · B_s A_s x, with c = softmax over the top-k skills of |x · v_s|.

    Each skill is used whole (as its own LoRA), so the mix is of the skills' outputs, token by token.
    """
    closeness = (h @ prototypes.to(h.dtype).t()).abs()  # (batch, tokens, S)
    top, chosen = closeness.topk(min(top_k, a.shape[0]), dim=-1)
    coefficients = torch.zeros_like(closeness).scatter_(-1, chosen, torch.softmax(top / temperature, dim=-1))
    per_skill = torch.einsum("bli,sir->blsr", h, a) * (coefficients * scale).unsqueeze(-1)
    return torch.einsum("blsr,sro->blo", per_skill, b)


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
