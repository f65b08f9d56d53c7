"""Projecting only target positions onto the vocabulary changes neither the loss nor its gradients."""

from __future__ import annotations

import pytest
import torch

from t2t_mtl.losses import token_loss_sum
from t2t_mtl.modeling.backbone import load_backbone


def _batch(tokenizer, model) -> dict[str, torch.Tensor]:
    sources = tokenizer(["a short one", "a much longer source sentence with many words in it"],
                        padding=True, return_tensors="pt")
    labels = tokenizer(["x", "three target words"], padding=True, return_tensors="pt").input_ids
    labels[labels == tokenizer.pad_token_id] = -100
    decoder_inputs = model.prepare_decoder_input_ids_from_labels(labels=labels)
    return {**sources, "labels": labels, "decoder_input_ids": decoder_inputs}


@pytest.mark.parametrize("backbone", ["tiny_t5", "offline:minilm"])
def test_loss_at_target_positions_equals_full_logits(backbone: str, request: pytest.FixtureRequest):
    name = str(request.getfixturevalue("tiny_t5")) if backbone == "tiny_t5" else backbone
    loaded = load_backbone(name)
    # float64: the two runs use different GEMM shapes, so their sums are reordered (and differently
    # again per SIMD width and thread count); in fp32 that moved gradients by up to 9.4e-6 on an
    # AVX-512 CPU with 2 threads. See the tolerances below.
    model, head = loaded.model.double().eval(), loaded.model.get_output_embeddings()
    batch = _batch(loaded.tokenizer, model)
    assert (batch["labels"] == -100).any()  # the batch has padded target positions to skip

    results, projected = [], []
    watch = head.register_forward_hook(lambda _m, _a, out: projected.append(out.shape[:-1]))
    for use_head in (None, head):
        model.zero_grad()
        loss = token_loss_sum(model, batch, use_head)
        loss.backward()
        results.append((loss.detach(), head.weight.grad.clone()))
    watch.remove()
    assert projected == [batch["labels"].shape, ((batch["labels"] != -100).sum(),)]
    (full, full_grad), (selected, selected_grad) = results
    # Tolerances from rounding error, not from one CPU. A reordered sum of n terms moves by at most
    # n*eps*sum|terms|. Everything except the cross-entropy runs in float64 (eps64 = 2.2e-16), which
    # keeps these moves below 1e-12 here. token_loss_sum computes the cross-entropy in fp32 on the
    # cast logits. That step is row-wise over the vocabulary, so one position's terms and dL/dlogits
    # do not depend on the batch shape. Only the final sum over the n = labels.numel() non-negative
    # per-position losses is reordered. Each fp32 sum is within (n-1)*eps32*loss of the exact sum,
    # so the two losses differ by at most 2*n*eps32*loss (relative). The gradients see float64
    # reordering only. We still allow a few fp32 roundings of the largest entry, 4*eps32*max|grad|.
    # eps32/eps64 = 5e8, so this bound is far above the float64 error on any x86-64/ARM CPU and
    # thread count.
    eps32 = torch.finfo(torch.float32).eps
    torch.testing.assert_close(selected, full, rtol=2 * batch["labels"].numel() * eps32, atol=0)
    torch.testing.assert_close(selected_grad, full_grad, rtol=0, atol=4 * eps32 * full_grad.abs().max().item())
    assert not head._forward_pre_hooks and not head._forward_hooks  # the hook is gone after the forward
