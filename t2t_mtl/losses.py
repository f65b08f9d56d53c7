"""Token-level cross-entropy of a seq2seq batch (with precomputed decoder inputs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def token_loss_sum(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed cross-entropy over target tokens (callers normalise, e.g. over a global step)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   decoder_input_ids=batch["decoder_input_ids"]).logits
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), batch["labels"].reshape(-1),
                           ignore_index=-100, reduction="sum")


def mean_token_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy averaged over the batch's target tokens."""
    return token_loss_sum(model, batch) / (batch["labels"] != -100).sum().clamp_min(1)
