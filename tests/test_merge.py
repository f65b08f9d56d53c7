"""`t2t-mtl merge`: task-vector merges of LoRA runs into run folders that evaluate, predict and export."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM

from t2t_mtl.cli import main
from t2t_mtl.inference import Predictor
from t2t_mtl.modeling.routed import Routing, routed_call, routed_layers
from t2t_mtl.run_dir import RunDir

from conftest import colour_rows, make_recipe, write_task


@pytest.fixture(scope="module")
def lora_runs(tmp_path_factory, tiny_t5: Path) -> tuple[Path, Path]:
    """Two single-backbone LoRA runs: one on toy/colours, one on toy/colours_b (with toy/unseen held out)."""
    root = tmp_path_factory.mktemp("merge")
    task_dir = root / "instructions"
    write_task(task_dir / "toy", "toy/colours", colour_rows(40))
    write_task(task_dir / "toy", "toy/colours_b", colour_rows(24))
    write_task(task_dir / "toy", "toy/unseen", colour_rows(8), held_out=True)
    runs = []
    for name, tasks, alpha in (("a", ["toy/colours"], 8), ("b", ["toy/colours_b", "toy/unseen"], 12)):
        recipe = make_recipe(root / name, tiny_t5, task_dir, tasks=tasks, adapter={"alpha": alpha},
                             train={"max_steps": 6, "lr": 3e-2})
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe))
        assert main(["train", str(path)]) == 0
        runs.append(Path(recipe["output_dir"]))
    return runs[0], runs[1]


IDS = torch.randint(1000, 2000, (3, 9), generator=torch.Generator().manual_seed(0))
DECODER = torch.randint(1000, 2000, (3, 4), generator=torch.Generator().manual_seed(1))


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=IDS, decoder_input_ids=DECODER).logits


def lora_delta(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every adapted linear's weight update, in float64."""
    return {name: layer.get_delta_weight("default").double() for name, layer in model.named_modules()
            if hasattr(layer, "get_delta_weight") and "default" in getattr(layer, "lora_A", {})}


def test_one_run_at_weight_one_reproduces_it(lora_runs, tmp_path: Path):
    run, _ = lora_runs
    assert main(["merge", str(run), "--weights", "1", "--out", str(tmp_path / "m")]) == 0
    original, merged = Predictor.from_run(run, device="cpu"), Predictor.from_run(tmp_path / "m", device="cpu")
    assert torch.equal(logits(merged.model), logits(original.model))
    settings = {"max_new_tokens": 6, "num_beams": 3, "num_return_sequences": 2}
    assert torch.equal(merged.model.generate(input_ids=IDS, **settings), original.model.generate(input_ids=IDS, **settings))
    rows = [{"text": r["text"]} for r in colour_rows(5)]
    assert merged.predict("toy/colours", rows) == original.predict("toy/colours", rows)


def test_stacked_merge_is_the_weighted_task_vector_sum_and_equals_peft_cat(lora_runs, tmp_path: Path, tiny_t5: Path):
    a, b = lora_runs
    assert main(["merge", str(a), str(b), "--method", "task_arithmetic", "--weights", "1", "2", "--lambda", "0.5",
                 "--out", str(tmp_path / "m")]) == 0
    merged = Predictor.from_run(tmp_path / "m", device="cpu").model
    inputs = [Predictor.from_run(run, device="cpu").model for run in (a, b)]
    expected = {name: 0.5 * lora_delta(inputs[0])[name] + 1.0 * lora_delta(inputs[1])[name] for name in lora_delta(merged)}
    for name, delta in lora_delta(merged).items():
        torch.testing.assert_close(delta, expected[name], rtol=1e-6, atol=1e-7)
    # PEFT's own exact combination (`cat`) of the same adapters gives the same model.
    peft = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(tiny_t5), a / "final", adapter_name="a")
    peft.load_adapter(b / "final", adapter_name="b")
    peft.add_weighted_adapter(["a", "b"], [0.5, 1.0], "m", combination_type="cat")
    peft.set_adapter("m")
    torch.testing.assert_close(logits(peft.double()), logits(merged.double()), rtol=1e-9, atol=1e-9)


def folded_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "final" / "model.safetensors")


def test_elementwise_merges_reduce_to_the_sums_they_generalise(lora_runs, tmp_path: Path):
    a, b = lora_runs
    def merge(name: str, *flags: str, runs: tuple[Path, ...] = (a, b)) -> dict[str, torch.Tensor]:
        assert main(["merge", *map(str, runs), *flags, "--out", str(tmp_path / name)]) == 0
        return folded_weights(tmp_path / name)

    assert main(["merge", str(a), str(b), "--method", "task_arithmetic", "--lambda", "1", "--out",
                 str(tmp_path / "sum")]) == 0
    summed = Predictor.from_run(tmp_path / "sum", device="cpu").model.merge_and_unload().state_dict()
    dare = merge("dare", "--method", "dare_linear", "--density", "1", "--lambda", "1")
    for key, value in dare.items():  # no entry dropped, none rescaled: the plain sum of the task vectors
        torch.testing.assert_close(value, summed[key], rtol=1e-5, atol=1e-6)
    ties = merge("ties", "--method", "ties", "--density", "1")
    assert all(torch.equal(value, ties[key]) for key, value in merge("dare_ties", "--method", "dare_ties",
                                                                        "--density", "1").items())
    alone = Predictor.from_run(a, device="cpu").model.merge_and_unload().state_dict()
    for key, value in merge("ties_a", "--method", "ties", "--density", "1", runs=(a,)).items():
        torch.testing.assert_close(value, alone[key], rtol=1e-5, atol=1e-6)  # one task vector: itself
    trimmed = merge("ties_trimmed", "--method", "ties", "--density", "0.2")
    assert any(not torch.allclose(value, ties[key]) for key, value in trimmed.items())
    first, again = merge("d0", "--method", "dare_ties"), merge("d0_again", "--method", "dare_ties")
    assert all(torch.equal(first[k], again[k]) for k in first)  # DARE's drops come from --seed
    other = merge("d1", "--method", "dare_ties", "--seed", "1")
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_merged_runs_evaluate_predict_and_export(lora_runs, tmp_path: Path, capsys):
    a, b = lora_runs
    for method in ("ties", "linear"):
        merged = tmp_path / method
        assert main(["merge", str(a), str(b), "--method", method, "--out", str(merged)]) == 0
        assert f"t2t-mtl evaluate {merged}" in capsys.readouterr().out
        table = {row["name"]: row for row in json.loads((merged / "tasks.json").read_text())}
        assert {n: r["held_out"] for n, r in table.items()} == {"toy/colours": False, "toy/colours_b": False,
                                                               "toy/unseen": True}
        assert main(["evaluate", str(merged)]) == 0
        results = json.loads((merged / "results.json").read_text())
        assert sorted(t["task"] for t in results["tasks"]) == sorted(table)
        rows = tmp_path / "rows.jsonl"
        rows.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in colour_rows(3)))
        output = tmp_path / f"{method}.jsonl"
        assert main(["predict", str(merged), "--task", "toy/colours_b", "--input", str(rows),
                     "--output", str(output)]) == 0
        assert len(output.read_text().splitlines()) == 3
        assert main(["export", str(merged), "--merge", str(tmp_path / f"{method}_export")]) == 0
        record = json.loads((merged / "merge.json").read_text())
        assert [i["run"] for i in record["inputs"]] == [str(a.resolve()), str(b.resolve())]
        assert all(len(i["adapter_sha256"]) == 64 for i in record["inputs"])
    recipe = tmp_path / "linear" / "recipe.yaml"
    assert main(["train", str(recipe), "--resume"]) == 2
    assert "made by `t2t-mtl merge`" in capsys.readouterr().err


def test_bad_merges_name_the_problem_and_write_nothing(lora_runs, tmp_path: Path, capsys):
    a, b = lora_runs
    other = tmp_path / "other_backbone"
    shutil.copytree(b, other)
    recipe = yaml.safe_load((other / "recipe.yaml").read_text())
    recipe["model"]["name_or_path"] = str(tmp_path / "elsewhere")
    (other / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    cases = [
        ([str(tmp_path)], "is not a run folder"),
        ([str(a), str(b), "--weights", "1"], "gives 1 values for 2 runs"),
        ([str(a), str(b), "--density", "0.5"], "--density applies to ties"),
        ([str(a), str(b), "--method", "ties", "--density", "1.5"], "must be in (0, 1]"),
        ([str(a), str(b), "--method", "tie"], "Did you mean 'ties'"),
        ([str(a), str(other)], "differ in model.name_or_path"),
    ]
    for flags, message in cases:
        assert main(["merge", *flags, "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert main(["merge", str(a), "--out", str(b)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["merge", str(a), "--out", str(a / "merged")]) == 2
    assert "inside the input run" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".out.merging-*"))


@pytest.fixture(scope="module", params=["cpoly", "mhr"])
def routed_runs(request, tmp_path_factory, tiny_t5: Path) -> tuple[Path, Path]:
    """Two routed runs of one backbone with inventories of 2 and 3 skills, on different tasks."""
    root = tmp_path_factory.mktemp(f"merge_{request.param}")
    task_dir = root / "instructions"
    write_task(task_dir / "toy", "toy/colours", colour_rows(40))
    write_task(task_dir / "toy", "toy/colours_b", colour_rows(24), templates=[
        {"id": "other", "instruction": "Which colour is it?", "input": "{{ text }}", "target": "{{ label }}"}])
    write_task(task_dir / "toy", "toy/unseen", colour_rows(8), held_out=True)
    shape = {"cpoly": {"n_exclusive_skills": 1}, "mhr": {"n_splits": 2}}[request.param]
    runs = []
    for name, tasks, skills in (("a", ["toy/colours"], 2), ("b", ["toy/colours_b", "toy/unseen"], 3)):
        recipe = make_recipe(root / name, tiny_t5, task_dir, tasks=tasks, train={"max_steps": 6, "lr": 3e-2},
                             adapter={"type": request.param, "rank": 4, "n_skills": skills, **shape})
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe))
        assert main(["train", str(path)]) == 0
        runs.append(Path(recipe["output_dir"]))
    return runs[0], runs[1]


def test_concatenated_routed_runs_answer_each_task_as_its_own_run(routed_runs, tmp_path: Path):
    a, b = (Path(shutil.copytree(run.parent, tmp_path / run.parent.name)) / "run" for run in routed_runs)
    with torch.no_grad():  # make every skill and routing matter, so a wrong placement shows
        for run in (a, b):
            predictor = Predictor.from_run(run, device="cpu")
            for layer in routed_layers(predictor.model):
                layer.lora_routing["default"].normal_()
                layer.lora_B["default"].weight.normal_(std=0.3)
                for table in layer.lora_exclusive_B.values():
                    table.normal_(std=0.3)
            predictor.model.save_pretrained(run / "final")
            RunDir(run).write_manifest(run / "final")
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "m")]) == 0
    merged = Predictor.from_run(tmp_path / "m", device="cpu")
    assert merged.recipe.adapter.n_skills == 5
    rows = [{"text": r["text"]} for r in colour_rows(6)]
    for run, task in ((a, "toy/colours"), (b, "toy/colours_b")):
        own = Predictor.from_run(run, device="cpu")
        assert merged.predict(task, rows) == own.predict(task, rows)
        batch = merged.labelled_batches(merged.task(task), colour_rows(4))[0]
        outputs = []
        for predictor in (own, merged):  # in float64: equal up to the order of fp sums over 3 or 5 skills
            model, ids = predictor.model.double(), torch.full((4,), predictor.task_table[task].id)
            with torch.no_grad(), routed_call(model, Routing.tasks(ids)):
                outputs.append(model(**{k: v for k, v in batch.items() if k != "task_ids"}).logits)
        torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-9, atol=1e-9)
    assert main(["evaluate", str(tmp_path / "m")]) == 0  # the held-out task routes zero-shot over all 5 skills
    assert main(["merge", str(a), str(b), "--method", "ties", "--out", str(tmp_path / "x")]) == 2


def test_adamerging_fits_one_coefficient_per_layer_and_run_on_unlabelled_rows(lora_runs, tmp_path: Path):
    a, b = lora_runs
    rows = tmp_path / "unlabelled.jsonl"
    rows.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in colour_rows(8)))
    assert main(["merge", str(a), str(b), "--method", "adamerging", "--fit-data", str(rows), "--fit-steps", "12",
                 "--out", str(tmp_path / "ada")]) == 0
    assert main(["merge", str(a), str(b), "--method", "task_arithmetic", "--out", str(tmp_path / "ta")]) == 0
    entropies = [json.loads(line)["entropy"] for line in (tmp_path / "ada" / "log.jsonl").read_text().splitlines()]
    assert len(entropies) == 12 and entropies[-1] < entropies[0]
    record = json.loads((tmp_path / "ada" / "merge.json").read_text())
    assert record["fit_task"] == "toy/unseen" and len(record["coefficients_per_layer"]) > 0
    fitted, start = (load_file(tmp_path / run / "final" / "adapter_model.safetensors") for run in ("ada", "ta"))
    assert fitted.keys() == start.keys()
    for key, value in fitted.items():  # only each run's block of A moved, by one factor per layer and run
        if key.endswith("lora_A.weight"):
            for block in (value[:4] / start[key][:4], value[4:] / start[key][4:]):
                torch.testing.assert_close(block, torch.full_like(block, float(block.flatten()[0])))
        else:
            assert torch.equal(value, start[key])
    assert main(["evaluate", str(tmp_path / "ada")]) == 0
    assert main(["merge", str(a), "--method", "adamerging", "--out", str(tmp_path / "x")]) == 2


def test_lora_runs_joined_as_skills_answer_each_task_as_its_own_run_and_route_the_rest(lora_runs, tmp_path: Path):
    a, b = lora_runs
    assert main(["merge", str(a), str(b), "--method", "concat", "--out", str(tmp_path / "skills")]) == 0
    merged = Predictor.from_run(tmp_path / "skills", device="cpu")
    assert (merged.recipe.adapter.type, merged.recipe.adapter.n_skills) == ("poly", 2)
    rows = [{"text": r["text"]} for r in colour_rows(6)]
    for run, task in ((a, "toy/colours"), (b, "toy/colours_b")):
        own = Predictor.from_run(run, device="cpu")
        assert merged.predict(task, rows) == own.predict(task, rows)
    for mode in ("average", "similar", "arrow", "fit-unlabelled"):  # the held-out task, over both runs' adapters
        assert len(merged.predict("toy/unseen", rows, routing=mode)) == 6
    assert main(["merge", str(a), str(b), "--method", "concat", "--weights", "1", "2", "--out",
                 str(tmp_path / "x")]) == 2


def test_compare_prints_common_tasks_side_by_side_with_differences(lora_runs, tmp_path: Path, capsys):
    a, b = lora_runs
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "m")]) == 0
    assert main(["evaluate", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "m"), str(b), "--out", str(tmp_path / "cmp.md")]) == 0
    printed = capsys.readouterr().out
    merged = {t["task"]: t["score"] for t in json.loads((tmp_path / "m" / "results.json").read_text())["tasks"]}
    own = {t["task"]: t["score"] for t in json.loads((b / "results.json").read_text())["tasks"]}
    row = next(line for line in printed.splitlines() if line.startswith("| toy/colours_b |"))
    assert row == (f"| toy/colours_b | accuracy | {merged['toy/colours_b']:.2f} | {own['toy/colours_b']:.2f} | "
                   f"{own['toy/colours_b'] - merged['toy/colours_b']:+.2f} |")
    assert "Only in m (not compared): toy/colours" in printed  # b never evaluated it
    assert (tmp_path / "cmp.md").read_text() == printed
    assert main(["compare", str(a), str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    assert main(["compare", str(a)]) == 2
