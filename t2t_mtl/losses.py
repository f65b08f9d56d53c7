"""Token-level objectives of a seq2seq batch: cross-entropy on labels, entropy of the model's own answers."""

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


def target_token_losses(model: nn.Module, batch: dict[str, torch.Tensor], head: nn.Module | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """The cross-entropy (fp32) of every target token of `batch`, and the batch row of each.

    With `head` (the model's output embedding), logits are computed at target positions only.
    """
    labels = batch["labels"]
    targets = labels != -100
    with head_at(head, targets) if head is not None else contextlib.nullcontext():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       decoder_input_ids=batch["decoder_input_ids"]).logits
    if logits.dim() == 3:
        logits = logits[targets]
    rows = torch.arange(labels.shape[0], device=labels.device)[:, None].expand_as(labels)[targets]
    return F.cross_entropy(logits.float(), labels[targets], reduction="none"), rows


def token_loss_sum(model: nn.Module, batch: dict[str, torch.Tensor], head: nn.Module | None = None) -> torch.Tensor:
    """Summed cross-entropy over target tokens (callers normalise, e.g. over a global step)."""
    return target_token_losses(model, batch, head)[0].sum()


def mean_token_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy averaged over the batch's target tokens."""
    return token_loss_sum(model, batch) / (batch["labels"] != -100).sum().clamp_min(1)


@torch.no_grad()
def greedy_continuation(model: nn.Module, batch: dict[str, torch.Tensor], max_new_tokens: int
                        ) -> dict[str, torch.Tensor]:
    """`batch` with the model's own greedy continuation as decoder inputs, and the mask of its predicted positions.

    Position t predicts token t + 1 of the continuation; positions up to and including the
    first end-of-sequence token count, the padding after it does not.
    """
    generated = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                               num_beams=1, do_sample=False, max_new_tokens=max_new_tokens)
    predicted = generated[:, 1:]
    eos = model.generation_config.eos_token_id
    ended = torch.isin(predicted, torch.tensor(eos if isinstance(eos, list) else [eos], device=predicted.device))
    before_end = (ended.cumsum(dim=1) - ended.long()) == 0
    return {**batch, "decoder_input_ids": generated[:, :-1], "predicted": before_end}


def prediction_entropy(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean entropy of the model's next-token distributions over the predicted positions of `batch`.

    With `greedy_continuation`'s decoder inputs this is the sequence-level entropy of the
    model's own greedy answer (AdaMerging's objective, for generation).
    """
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   decoder_input_ids=batch["decoder_input_ids"]).logits.float()
    log_p = F.log_softmax(logits, dim=-1)
    entropy = -(log_p.exp() * log_p).sum(dim=-1)
    mask = batch["predicted"].to(entropy.dtype)
    return (entropy * mask).sum() / mask.sum().clamp_min(1)
