"""Routed adapters: PEFT Poly parity, generation, checkpointing, zero-shot routing, export."""

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from peft import PeftModel, PolyConfig, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSeq2SeqLM, T5Config, T5ForConditionalGeneration

from t2t_mtl.cli import main
from t2t_mtl.errors import T2TError
from t2t_mtl.inference import Predictor
from t2t_mtl.modeling.routed import (
    RoutedLoraConfig,
    Routing,
    build_routed_model,
    load_routed_model,
    merge_routed,
    routed_call,
    routed_layers,
    skill_major_moments,
    task_weights,
)
from t2t_mtl.run_dir import RunDir

from conftest import colour_rows, train_toy_run

TARGETS = ["q", "v", "wi", "wo"]


def tiny_t5() -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    config = T5Config(vocab_size=100, d_model=32, d_ff=64, d_kv=8, num_layers=2, num_heads=4, dropout_rate=0.0,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    return T5ForConditionalGeneration(config)


def routed(model, **config) -> PeftModel:
    settings = {"n_skills": 4, "skill_rank": 2, "n_tasks": 3, "lora_alpha": 1, "lora_dropout": 0.0,
                "target_modules": TARGETS, "init_lora_weights": False, **config}
    return build_routed_model(model, RoutedLoraConfig(**settings))


def randomise_routing(model: PeftModel) -> None:
    with torch.no_grad():
        for layer in routed_layers(model):
            layer.lora_routing["default"].normal_()


@pytest.mark.parametrize("splits", [1, 4])
def test_forward_equals_peft_poly(splits: int):
    base = tiny_t5()
    peft = get_peft_model(copy.deepcopy(base), PolyConfig(r=2, n_skills=4, n_splits=splits, n_tasks=3,
                                                          target_modules=TARGETS, init_weights=False))
    ours = routed(copy.deepcopy(base), n_splits=splits)
    theirs = [m for m in peft.modules() if hasattr(m, "poly_lora_A")]
    with torch.no_grad():
        for poly, layer in zip(theirs, routed_layers(ours), strict=True):
            a, b = poly.poly_lora_A["default"], poly.poly_lora_B["default"]  # (Q,S,in/Q,r), (Q,S,r,out/Q)
            our_a = layer.lora_A["default"].weight.view(4, splits, -1, 2)  # (S, Q, in/Q, r)
            our_b = layer.lora_B["default"].weight.view(4, 2, splits, -1)  # (S, r, Q, out/Q)
            our_a.copy_(a.transpose(0, 1))
            our_b.copy_(b.permute(1, 2, 0, 3))
            poly.poly_router["default"].module_logits.normal_()
            layer.lora_routing["default"].copy_(poly.poly_router["default"].module_logits.view(3, splits, 4))
    # float64: PEFT and we sum in different orders (einsum vs. matmul shapes), so fp32 results would
    # differ by a CPU- and thread-dependent n*eps32*sum|terms|; in float64 that is below 1e-13 here.
    peft.double().eval()
    ours.double().eval()
    ids, decoder = torch.randint(2, 100, (5, 7)), torch.randint(2, 100, (5, 4))
    tasks = torch.tensor([0, 2, 1, 1, 0])
    with torch.no_grad():
        expected = peft.base_model(input_ids=ids, decoder_input_ids=decoder, task_ids=tasks).logits
        with routed_call(ours, Routing.tasks(tasks)):
            got = ours(input_ids=ids, decoder_input_ids=decoder).logits
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def earlier_layout(key: str, value: torch.Tensor, b_stacked: bool) -> torch.Tensor:
    """A skill tensor of `routed()` as routed adapters saved it before they held skills skill-major: A as PEFT's
    (S·r × in), B as PEFT's (out × S·r) or, with `b_stacked`, (S·out × r); exclusive tables likewise per task."""
    if "lora_A" in key:
        return value.transpose(1, 2).flatten(0, 1).contiguous()
    if "lora_B" in key:
        return (value.transpose(1, 2).flatten(0, 1) if b_stacked else value.permute(2, 0, 1).flatten(1)).contiguous()
    if "lora_exclusive_A" in key:
        return value.transpose(2, 3).flatten(1, 2).contiguous()
    if "lora_exclusive_B" in key:
        return value.permute(0, 3, 1, 2).flatten(2).contiguous()
    return value


LAYOUTS = [{"b_stacked": False}, {"b_stacked": True}]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("extra", [{}, {"n_splits": 2}, {"n_exclusive_skills": 1}])
def test_adapter_saved_in_an_earlier_layout_loads_skill_major(tmp_path: Path, extra: dict, layout: dict):
    """Routed adapters saved before their skills were held skill-major load to the same model."""
    model = routed(tiny_t5(), **extra)
    randomise_routing(model)
    model.save_pretrained(tmp_path)
    saved = tmp_path / "adapter_model.safetensors"
    state = load_file(saved)
    legacy = {key: earlier_layout(key, value, **layout) for key, value in state.items()}
    assert sum(legacy[k].shape != state[k].shape for k in legacy) == len(routed_layers(model)) * (4 if extra.get(
        "n_exclusive_skills") else 2)
    save_file(legacy, saved)
    config = RoutedLoraConfig(n_skills=4, skill_rank=2, n_tasks=3, lora_alpha=1, lora_dropout=0.0,
                              target_modules=TARGETS, **extra)
    loaded = load_routed_model(tiny_t5(), tmp_path, config)
    for (name, ours), theirs in zip(loaded.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs), name
    model.eval(), loaded.eval()
    ids, decoder, tasks = torch.randint(2, 100, (3, 6)), torch.randint(2, 100, (3, 4)), torch.tensor([2, 0, 1])
    with torch.no_grad():
        with routed_call(model, Routing.tasks(tasks)):
            expected = model(input_ids=ids, decoder_input_ids=decoder).logits
        with routed_call(loaded, Routing.tasks(tasks)):
            got = loaded(input_ids=ids, decoder_input_ids=decoder).logits
    assert torch.equal(got, expected)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("extra", [{"n_splits": 2}, {"n_exclusive_skills": 1}])
def test_checkpoint_in_an_earlier_layout_resumes_exactly(extra: dict, layout: dict):
    """Weights and AdamW moments checkpointed before the skills were held skill-major continue the run bit for bit."""
    def step(model: PeftModel, optimizer: torch.optim.Optimizer, seed: int) -> None:
        torch.manual_seed(seed)
        ids, labels = torch.randint(2, 100, (4, 6)), torch.randint(2, 100, (4, 3))
        with routed_call(model, Routing.tasks(torch.tensor([0, 1, 2, 1]))):
            model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def trained(model: PeftModel) -> list[torch.nn.Parameter]:
        return [p for p in model.parameters() if p.requires_grad]

    model = routed(tiny_t5(), **extra).train()
    optimizer = torch.optim.AdamW(trained(model), lr=1e-2, fused=True)
    step(model, optimizer, 0), step(model, optimizer, 1)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    saved = copy.deepcopy(optimizer.state_dict())
    for index, name in enumerate(names):
        for key in ("exp_avg", "exp_avg_sq"):
            saved["state"][index][key] = earlier_layout(name, saved["state"][index][key], **layout)
    resumed = routed(tiny_t5(), **extra).train()
    resumed.load_state_dict({k: earlier_layout(k, v, **layout) for k, v in model.state_dict().items()})
    restored = torch.optim.AdamW(trained(resumed), lr=1e-2, fused=True)
    restored.load_state_dict(saved)
    skill_major_moments(resumed, restored)
    step(model, optimizer, 2), step(resumed, restored, 2)
    for (name, ours), theirs in zip(resumed.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs), name


@pytest.mark.parametrize("extra", [{"n_splits": 2}, {"n_exclusive_skills": 1}])
def test_beam_search_with_several_returns_routes_each_example(extra: dict):
    model = routed(tiny_t5(), **extra)
    randomise_routing(model)
    model.eval()
    ids, tasks = torch.randint(2, 100, (3, 6)), torch.tensor([2, 0, 1])
    settings = {"num_beams": 3, "num_return_sequences": 2, "max_new_tokens": 5, "do_sample": False}
    with routed_call(model, Routing.tasks(tasks)):
        together = model.generate(input_ids=ids, **settings)
    assert together.shape[0] == 6
    for row in range(3):
        with routed_call(model, Routing.tasks(tasks[row : row + 1])):
            alone = model.generate(input_ids=ids[row : row + 1], **settings)
        assert torch.equal(alone, together[2 * row : 2 * row + 2, : alone.shape[1]])


def test_gradient_checkpointing_gives_the_same_gradients():
    def gradients(checkpointing: bool) -> dict[str, torch.Tensor]:
        model = routed(tiny_t5(), n_splits=2)
        model.train()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        torch.manual_seed(1)  # the relaxed-Bernoulli routing sample is drawn once per forward
        ids = torch.randint(2, 100, (4, 6))
        with routed_call(model, Routing.tasks(torch.tensor([0, 1, 2, 1]))):  # the backward recomputes inside
            model(input_ids=ids, labels=torch.randint(2, 100, (4, 3))).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, checkpointed = gradients(False), gradients(True)
    assert plain.keys() == checkpointed.keys() and any("lora_routing" in k for k in plain)
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-6)

    model = routed(tiny_t5(), n_splits=2)  # a backward left outside the call cannot recompute silently
    model.train()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    with routed_call(model, Routing.tasks(torch.tensor([0, 1]))):
        loss = model(input_ids=torch.randint(2, 100, (2, 6)), labels=torch.randint(2, 100, (2, 3))).loss
    with pytest.raises(T2TError, match="called without a routing"):
        loss.backward()


def test_routing_lives_for_one_call_only():
    model = routed(tiny_t5(), n_exclusive_skills=1)
    randomise_routing(model)
    model.eval()
    ids, decoder = torch.randint(2, 100, (2, 5)), torch.randint(2, 100, (2, 3))

    def logits(routing: Routing) -> torch.Tensor:
        with torch.no_grad(), routed_call(model, routing):
            return model(input_ids=ids, decoder_input_ids=decoder).logits

    with pytest.raises(T2TError, match="routed adapter called without a routing"):
        model(input_ids=ids, decoder_input_ids=decoder)
    first = logits(Routing.tasks(torch.tensor([0, 1])))
    with pytest.raises(T2TError, match="without a routing"):  # nothing of the call before survives it
        model(input_ids=ids, decoder_input_ids=decoder)
    # Consecutive calls with other routings (other tasks, the same batch size; one fixed routing) see only their own.
    second = logits(Routing.tasks(torch.tensor([2, 2])))
    fixed = logits(Routing.fixed(task_weights(model)[2], task=2))
    torch.testing.assert_close(fixed, second)
    assert not torch.allclose(first, second)
    torch.testing.assert_close(logits(Routing.tasks(torch.tensor([0, 1]))), first, rtol=0, atol=0)
    with pytest.raises(ValueError), routed_call(model, Routing.tasks(torch.tensor([0, 1]))):
        raise ValueError("a failing call")
    with pytest.raises(T2TError, match="without a routing"):  # an error inside a call leaves no routing either
        model(input_ids=ids, decoder_input_ids=decoder)
    outer, inner = Routing.tasks(torch.tensor([0])), Routing.tasks(torch.tensor([1]))
    with pytest.raises(T2TError, match="one routing per call"), routed_call(model, outer), routed_call(model, inner):
        pass
    with pytest.raises(T2TError, match="merging folds one routing"):
        merge_routed(model, Routing.tasks(torch.tensor([0, 1])))


def test_bad_routing_inputs():
    model = routed(tiny_t5())
    with pytest.raises(T2TError, match="task id 3 is outside the routing table"), \
            routed_call(model, Routing.tasks(torch.tensor([0, 3]))):
        pass
    with pytest.raises(T2TError, match=r"n_splits=3 does not divide the input size 32 of layer"):
        routed(tiny_t5(), n_splits=3)


# -- a trained routed run ----------------------------------------------------------------


@pytest.fixture(scope="module")
def routed_run(tmp_path_factory, tiny_t5: Path) -> Path:
    return train_toy_run(tmp_path_factory.mktemp("routed"), tiny_t5, {"type": "cpoly", "rank": 4, "n_skills": 3},
                         train={"max_steps": 6, "save_every": 3})


def own_copy(run: Path, tmp_path: Path) -> Path:
    """A copy of the module's run for a test that writes into it: no test changes the shared run."""
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def test_saved_run_predicts_what_training_evaluated(routed_run: Path):
    records = [json.loads(line) for line in (routed_run / "predictions/toy__colours_b.jsonl").read_text().splitlines()]
    rows = [{"text": r["input"].split("\n", 1)[1]} for r in records]
    assert Predictor.from_run(routed_run).predict("toy/colours_b", rows) == [r["prediction"] for r in records]
    assert (routed_run / "task_embeddings.safetensors").is_file()


def test_evaluate_reproduces_the_routed_results(routed_run: Path, tmp_path: Path):
    routed_run = own_copy(routed_run, tmp_path)  # evaluate rewrites results.json
    before = json.loads((routed_run / "results.json").read_text())
    assert main(["evaluate", str(routed_run)]) == 0
    after = json.loads((routed_run / "results.json").read_text())
    assert [(t["task"], t["scores"]) for t in after["tasks"]] == [(t["task"], t["scores"]) for t in before["tasks"]]
    table = {row["name"]: row for row in json.loads((routed_run / "tasks.json").read_text())}
    assert table["toy/colours"]["instruction"] == "Name the colour: red, green, blue."  # rendered, not Jinja


def test_every_zero_shot_mode_runs_and_fit_lowers_the_loss(routed_run: Path):
    predictor = Predictor.from_run(routed_run)
    rows = [{"text": r["text"]} for r in colour_rows(4)]
    for mode in ("average", "similar", "task=toy/colours"):
        assert len(predictor.predict("toy/unseen", rows, routing=mode)) == 4
    spec = predictor.task("toy/unseen")
    router, losses = predictor.fit_router(spec, colour_rows(8), steps=15)
    assert losses[-1] < losses[0]
    assert router.weights.shape == task_weights(predictor.model)[0, ..., :3].shape
    assert len(predictor.predict("toy/unseen", rows, routing="fit", fit_rows=colour_rows(8))) == 4
    with pytest.raises(T2TError, match="unknown routing mode 'avrage'.*Did you mean 'average'"):
        predictor.predict("toy/unseen", rows, routing="avrage")


def test_merged_and_lora_exports_match_the_routed_model(routed_run: Path, tmp_path: Path):
    routed_run = own_copy(routed_run, tmp_path)  # final/ is rewritten below
    predictor = Predictor.from_run(routed_run, device="cpu")
    with torch.no_grad():  # give the routing and skills some shape, then export the changed run
        for layer in routed_layers(predictor.model):
            layer.lora_routing["default"].normal_()
            layer.lora_B["default"].weight.normal_(std=0.05)
            layer.lora_exclusive_B["default"].normal_(std=0.05)
    predictor.model.save_pretrained(routed_run / "final")
    RunDir(routed_run).write_manifest(routed_run / "final")  # final/ changed on purpose: record its new hashes
    assert main(["export", str(routed_run), "--task", "toy/colours_b", "--merge", str(tmp_path / "merged")]) == 0
    assert main(["export", str(routed_run), "--task", "toy/colours_b", "--out", str(tmp_path / "lora")]) == 0
    ids = torch.randint(1000, 2000, (3, 9))
    decoder = torch.randint(1000, 2000, (3, 4))
    # All three run in float64: then they differ only by the fp32 rounding of the exported weights
    # (eps32 relative each), not by CPU- and thread-dependent fp32 sums over differently shaped GEMMs.
    model = predictor.model.double().eval()
    with torch.no_grad(), routed_call(model, Routing.tasks(torch.tensor([1, 1, 1]))):
        expected = model(input_ids=ids, decoder_input_ids=decoder).logits
    with torch.no_grad():
        merged = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "merged").double().eval()
        torch.testing.assert_close(merged(input_ids=ids, decoder_input_ids=decoder).logits, expected,
                                   rtol=1e-4, atol=1e-4)
        lora = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(predictor.recipe.model.name_or_path),
                                         tmp_path / "lora").double().eval()
        torch.testing.assert_close(lora(input_ids=ids, decoder_input_ids=decoder).logits, expected,
                                   rtol=1e-4, atol=1e-4)
    settings = {"max_new_tokens": 6, "num_beams": 2}
    with routed_call(model, Routing.tasks(torch.tensor([1, 1, 1]))):
        routed_beams = model.generate(input_ids=ids, **settings)
    assert torch.equal(merged.generate(input_ids=ids, **settings), routed_beams)


def test_run_level_errors(routed_run: Path, tmp_path: Path, capsys):
    assert main(["export", str(routed_run), "--task", "toy/colour", "--merge", str(tmp_path / "x")]) == 2
    assert "Did you mean 'toy/colours'" in capsys.readouterr().err
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"text": "the sky", "label": "blue"}) + "\n")
    assert main(["predict", str(routed_run), "--task", "toy/unseen", "--input", str(rows), "--routing", "fit",
                 "--fit-data", str(rows), "--fit-examples", "4"]) == 2
    assert "asks for 4 labelled rows" in capsys.readouterr().err
    recipe = yaml.safe_load((routed_run / "recipe.yaml").read_text())
    other = tmp_path / "other_run"
    other.mkdir()
    (other / "recipe.yaml").write_text(yaml.safe_dump({**recipe, "adapter": {"type": "lora", "rank": 4}}))
    (other / "tasks.json").write_text((routed_run / "tasks.json").read_text())
    shutil.copytree(routed_run / "final", other / "final")
    with pytest.raises(T2TError, match="final was written by another run"):
        Predictor.from_run(other)
    (other / "final/manifest.json").unlink()  # as written before manifests: the adapter's shape still tells
    with pytest.raises(T2TError, match="r: 12 saved, 4 from the recipe.*another run, recipe or adapter method"):
        Predictor.from_run(other)
