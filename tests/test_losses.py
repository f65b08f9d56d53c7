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
    model, head = loaded.model.eval(), loaded.model.get_output_embeddings()
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
    torch.testing.assert_close(selected, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(selected_grad, full_grad, rtol=1e-5, atol=1e-6)
    assert not head._forward_pre_hooks and not head._forward_hooks  # the hook is gone after the forward
