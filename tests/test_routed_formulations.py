"""The routed delta's exact formulations agree (outputs, gradients, generation), and the rule picks by shape."""

import pytest
import torch
from test_routed import randomise_routing, routed, tiny_t5

from t2t_mtl.modeling.routed import Routing, routed_call, routed_layers, task_weights
from t2t_mtl.modeling.routed.formulations import FORMULATIONS, choose

METHODS = {"poly": {}, "mhr": {"n_splits": 4}, "cpoly": {"n_exclusive_skills": 1}}
TASKS = torch.tensor([2, 0, 2, 1, 0])


def model_of(method: str, sample: bool, dtype: torch.dtype):
    model = routed(tiny_t5(), sample_routing=sample, **METHODS[method])
    randomise_routing(model)
    return model.to(dtype)


def forward(model, formulation: str, routing: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and every gradient of one training step under a forced formulation."""
    torch.manual_seed(3)  # the same relaxed-Bernoulli draw for every formulation
    ids, labels = torch.randint(2, 100, (5, 7)), torch.randint(2, 100, (5, 4))
    value = Routing.tasks(TASKS, formulation) if routing == "tasks" else \
        Routing.fixed(task_weights(model)[1], task=1, formulation=formulation)
    model.zero_grad(set_to_none=True)
    with routed_call(model, value):
        out = model(input_ids=ids, labels=labels)
        (out.logits.square().mean() + out.loss).backward()
    return out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("routing", ["tasks", "fixed"])
@pytest.mark.parametrize("sample", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_formulations_give_the_same_outputs_and_gradients(method: str, sample: bool, routing: str):
    for dtype, tolerance in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        model = model_of(method, sample, dtype)
        model.train()
        expected_logits, expected_grads = forward(model, "concat", routing)
        assert any("lora_routing" in n for n in expected_grads) == (routing == "tasks")
        for formulation in FORMULATIONS[1:]:
            logits, grads = forward(model, formulation, routing)
            torch.testing.assert_close(logits, expected_logits, rtol=tolerance, atol=tolerance)
            assert grads.keys() == expected_grads.keys()
            for name in grads:
                torch.testing.assert_close(grads[name], expected_grads[name], rtol=tolerance, atol=tolerance,
                                           msg=lambda m, n=name, f=formulation: f"{f} {n}: {m}")


@pytest.mark.parametrize("method", METHODS)
def test_layers_of_different_scales_mix_each_with_its_own(method: str):
    """The LoRA scale that rides in the B-mixing weights (made once per call) is each layer's own."""
    model = model_of(method, sample=False, dtype=torch.float64).train()
    for i, layer in enumerate(routed_layers(model)):
        layer.scaling["default"] *= 1 + i / 3
    expected_logits, expected_grads = forward(model, "concat", "tasks")
    for formulation in FORMULATIONS[1:]:
        logits, grads = forward(model, formulation, "tasks")
        torch.testing.assert_close(logits, expected_logits, rtol=1e-12, atol=1e-12)
        for name in grads:
            torch.testing.assert_close(grads[name], expected_grads[name], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_formulations_train_under_bf16_autocast(method: str):
    """Autocast runs the GEMMs in bf16 and the base output's accumulation follows its dtype."""
    model = model_of(method, sample=False, dtype=torch.float32).train()
    expected, _ = forward(model, "concat", "tasks")
    scale = expected.abs().max()
    for formulation in FORMULATIONS:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits, grads = forward(model, formulation, "tasks")
        assert any("lora_routing" in n for n in grads) and all(g.isfinite().all() for g in grads.values())
        torch.testing.assert_close(logits.float(), expected, rtol=0.0, atol=0.05 * float(scale))


@pytest.mark.parametrize("method", METHODS)
def test_formulations_generate_the_same_beams(method: str):
    model = model_of(method, sample=False, dtype=torch.float64).eval()
    ids = torch.randint(2, 100, (5, 6))
    settings = {"num_beams": 3, "num_return_sequences": 2, "max_new_tokens": 5, "do_sample": False}
    outputs = {}
    for formulation in FORMULATIONS:
        with routed_call(model, Routing.tasks(TASKS, formulation)):
            outputs[formulation] = model.generate(input_ids=ids, **settings)
    for formulation in FORMULATIONS[1:]:
        assert torch.equal(outputs[formulation], outputs["concat"]), formulation
    with routed_call(model, Routing.tasks(TASKS)):  # the chosen formulation (per_task, factors kept per call)
        assert torch.equal(model.generate(input_ids=ids, **settings), outputs["concat"])
    assert all(layer.routing_channel.current is None for layer in routed_layers(model))


def test_the_rule_picks_by_rows_and_gradients():
    # Training with several routings in the batch: mix per example (rows gathered once per call).
    assert choose(rows=8, grad=True) == "per_example"
    # One routing for the whole batch: LoRA's own two GEMMs after one mix.
    assert choose(rows=1, grad=True) == "per_task"
    # Without gradients the factors are kept for the whole call: mixing once per row always pays.
    assert choose(rows=8, grad=False) == "per_task"


def test_an_unknown_formulation_is_refused():
    from t2t_mtl.errors import T2TError

    with pytest.raises(T2TError, match="unknown routed formulation 'fused'; one of concat, per_example, per_task"):
        Routing.tasks(TASKS, "fused")
