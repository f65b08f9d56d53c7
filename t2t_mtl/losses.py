"""Token-level cross-entropy of a seq2seq batch (with precomputed decoder inputs)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


@contextlib.contextmanager
def head_at(head: nn.Module, positions: torch.Tensor) -> Iterator[None]:
    """Inside the block, `head` sees only the decoder states at `positions` (a [batch, length] mask).

    The vocabulary projection is the largest matrix product of a small decoder; padded
    target positions never reach it, so they cost nothing there and in the softmax.
    """

    def select(_module: nn.Module, args: tuple) -> tuple | None:
        if not args or args[0].shape[:2] != positions.shape:  # not the states we know: project them all
            return None
        return (args[0][positions], *args[1:])

    hook = head.register_forward_pre_hook(select)
    try:
        yield
    finally:
        hook.remove()


def token_loss_sum(model: nn.Module, batch: dict[str, torch.Tensor], head: nn.Module | None = None) -> torch.Tensor:
    """Summed cross-entropy over target tokens (callers normalise, e.g. over a global step).

    With `head` (the model's output embedding), logits are computed at target positions only.
    """
    labels = batch["labels"]
    targets = labels != -100
    with head_at(head, targets) if head is not None else contextlib.nullcontext():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       decoder_input_ids=batch["decoder_input_ids"]).logits
    labels = labels[targets] if logits.dim() == 2 else labels.reshape(-1)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels, ignore_index=-100, reduction="sum")


def mean_token_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy averaged over the batch's target tokens."""
    return token_loss_sum(model, batch) / (batch["labels"] != -100).sum().clamp_min(1)
