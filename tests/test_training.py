"""End to end on a tiny T5: train → checkpoints → evaluate → predict, reload and resume."""

import json
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from t2t_mtl.cli import main
from t2t_mtl.inference import Predictor

from conftest import colour_rows, make_recipe


def run_train(tmp_path: Path, recipe: dict, *flags: str, name: str = "recipe.yaml") -> int:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(recipe))
    return main(["train", str(path), *flags])


@pytest.fixture
def trained(tmp_path: Path, tiny_t5: Path, task_dir: Path) -> Path:
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, train={"save_every": 2, "eval_every": 2})
    assert run_train(tmp_path, recipe) == 0
    return Path(recipe["output_dir"])


def test_run_folder_is_complete(trained: Path):
    log = [json.loads(line) for line in (trained / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 4 and all(r["tokens_per_s"] > 0 for r in log if "loss" in r)
    assert [p.name for p in sorted((trained / "checkpoints").iterdir())] == ["step-000002", "step-000004"]
    assert (trained / "checkpoints/step-000002/COMPLETE").is_file()
    assert (trained / "final/adapter_model.safetensors").is_file()
    results = json.loads((trained / "results.json").read_text())
    assert {t["task"] for t in results["tasks"]} == {"toy/colours", "toy/colours_b", "toy/unseen"}
    assert all("accuracy" in t["scores"] for t in results["tasks"])
    assert "| toy/unseen |" in (trained / "results.md").read_text()
    tasks = json.loads((trained / "tasks.json").read_text())
    assert [t["id"] for t in tasks] == [0, 1, 2] and tasks[2]["held_out"]
    assert set(json.loads((trained / "templates.lock.json").read_text())["toy/colours"]) == {"ask", "plain"}


def test_per_task_losses_average_token_weighted_to_the_logged_loss(tmp_path: Path, tiny_t5: Path, task_dir: Path):
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, train={"max_steps": 6, "log_every": 2, "batch_size": 6})
    assert run_train(tmp_path, recipe) == 0
    records = [json.loads(line) for line in Path(recipe["output_dir"], "log.jsonl").read_text().splitlines()]
    records = [r for r in records if "loss" in r]
    assert len(records) == 3 and all(set(r["loss_by_task"]) <= {"toy/colours", "toy/colours_b"} for r in records)
    assert any(len(r["loss_by_task"]) == 2 for r in records)  # batches that mix the tasks are split by task
    for record in records:
        losses, tokens = record["loss_by_task"], record["target_tokens_by_task"]
        weighted = sum(losses[task] * tokens[task] for task in losses) / sum(tokens.values())
        assert weighted == pytest.approx(record["loss"], rel=1e-9)
        assert sum(record["examples_by_task"].values()) == 2 * 6  # every example of the window's two steps
    mixture = json.loads(Path(recipe["output_dir"], "mixture.json").read_text())
    assert [row["task"] for row in mixture] == ["toy/colours", "toy/colours_b"]
    assert sum(row["share"] for row in mixture) == pytest.approx(1.0) and mixture[0]["truncation"]["rows"] == 30
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next(Path(recipe["output_dir"], "tensorboard").rglob("events.*")).parent))
    events.Reload()
    assert "train/loss/toy/colours" in events.Tags()["scalars"]


def test_evaluations_log_the_scores_of_every_task(trained: Path):
    records = [json.loads(line) for line in (trained / "log.jsonl").read_text().splitlines() if '"eval"' in line]
    results = {t["task"]: t["scores"] for t in json.loads((trained / "results.json").read_text())["tasks"]}
    assert records and set(records[0]["eval_by_task"]) == set(results)
    assert all(set(scores) == set(results[task]) for task, scores in records[0]["eval_by_task"].items())


def test_reloaded_run_predicts_what_training_evaluated(trained: Path):
    records = [json.loads(line) for line in (trained / "predictions/toy__colours.jsonl").read_text().splitlines()]
    predictor = Predictor.from_run(trained)
    rows = [{"text": r["input"].split("\n", 1)[1]} for r in records]
    assert predictor.predict("toy/colours", rows) == [r["prediction"] for r in records]


def test_evaluate_reproduces_results(trained: Path):
    before = json.loads((trained / "results.json").read_text())
    (trained / "results.json").unlink()
    assert main(["evaluate", str(trained)]) == 0
    after = json.loads((trained / "results.json").read_text())
    assert [t["scores"] for t in after["tasks"]] == [t["scores"] for t in before["tasks"]]


def test_predict_writes_one_line_per_row(trained: Path, task_dir: Path, tmp_path: Path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in colour_rows(5)))
    out = tmp_path / "out.jsonl"
    code = main(["predict", str(trained), "--task", str(task_dir / "toy/unseen.yaml"), "--input", str(rows),
                 "--output", str(out)])
    assert code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 5 and all("prediction" in line for line in lines)
    assert main(["predict", str(trained), "--instruction", "Colour?", "--text", "the sky"]) == 0
    assert capsys.readouterr().out.strip()


def test_existing_run_is_refused_without_flag(trained: Path, tmp_path: Path, tiny_t5: Path, task_dir: Path, capsys):
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, train={"lr": 0.5})
    assert run_train(tmp_path, recipe, name="other.yaml") == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (trained / "final/COMPLETE").is_file()
    assert run_train(tmp_path, recipe, "--resume", name="other.yaml") == 2
    assert "differs in ['train.lr']" in capsys.readouterr().err


def test_resume_continues_to_the_same_weights(tmp_path: Path, tiny_t5: Path, task_dir: Path):
    def recipe(folder: str, steps: int) -> dict:
        return make_recipe(tmp_path, tiny_t5, task_dir, output_dir=str(tmp_path / folder),
                           train={"max_steps": steps, "save_every": 2, "scheduler": "constant"},
                           eval={"max_examples": 1, "max_new_tokens": 1})

    assert run_train(tmp_path, recipe("straight", 4)) == 0
    assert run_train(tmp_path, recipe("split", 2)) == 0
    assert run_train(tmp_path, recipe("split", 4), "--resume") == 0
    straight = load_file(tmp_path / "straight/final/adapter_model.safetensors")
    resumed = load_file(tmp_path / "split/final/adapter_model.safetensors")
    assert straight.keys() == resumed.keys()
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=1e-6)


def test_bad_data_fails_before_claiming_the_output_folder(tmp_path: Path, tiny_t5: Path, task_dir: Path, capsys):
    data = task_dir / "toy/colours.jsonl"
    good = data.read_text()
    data.write_text(good + "{not json\n")
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, train={"max_steps": 1})
    assert run_train(tmp_path, recipe) == 2
    assert "colours.jsonl, line 41: corrupt JSON" in capsys.readouterr().err
    assert not Path(recipe["output_dir"], "recipe.yaml").exists()
    data.write_text(good)
    assert run_train(tmp_path, recipe) == 0


def test_data_glob_trains_one_task_per_file(tmp_path: Path, tiny_t5: Path, task_dir: Path):
    """`data: folder/*.jsonl` instantiates the task once per file (as Tk-Instruct trains on NI task files)."""
    files = tmp_path / "recipe_data"
    files.mkdir()
    for name, count in (("first", 20), ("second", 16), ("unseen_file", 8)):
        (files / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in colour_rows(count)))
    (files / "unseen_file.jsonl").rename(tmp_path / "unseen_file.jsonl")
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, tasks=[
        {"name": "toy/colours", "data": "recipe_data/*.jsonl"},
        {"name": "toy/colours_b", "data": "unseen_*.jsonl", "held_out": True},
    ])
    assert run_train(tmp_path, recipe) == 0
    run = Path(recipe["output_dir"])
    table = json.loads((run / "tasks.json").read_text())
    assert [(t["name"], t["held_out"]) for t in table] == [
        ("toy/colours/first", False), ("toy/colours/second", False), ("toy/colours_b/unseen_file", True)]
    assert table[1]["data"] == str(files / "second.jsonl")
    before = json.loads((run / "results.json").read_text())
    assert main(["evaluate", str(run)]) == 0  # evaluation finds each file again from the task table
    after = json.loads((run / "results.json").read_text())
    assert [(t["task"], t["examples"], t["scores"]) for t in after["tasks"]] == \
        [(t["task"], t["examples"], t["scores"]) for t in before["tasks"]]
    assert len(Predictor.from_run(run).predict("toy/colours/second", colour_rows(3))) == 3


def test_data_glob_matching_nothing_is_named(tmp_path: Path, tiny_t5: Path, task_dir: Path, capsys):
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, tasks=[{"name": "toy/colours", "data": "none/*.jsonl"}])
    assert run_train(tmp_path, recipe) == 2 and not Path(recipe["output_dir"]).exists()
    assert "recipe task 'toy/colours': data '" in capsys.readouterr().err


def test_evaluation_time_is_not_counted_as_training_time(tmp_path: Path, tiny_t5: Path, task_dir: Path, monkeypatch):
    from t2t_mtl import training

    evaluate = training.Trainer.evaluate

    def slow_evaluate(self, step):
        time.sleep(2.0)
        return evaluate(self, step)

    monkeypatch.setattr(training.Trainer, "evaluate", slow_evaluate)
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, train={"max_steps": 4, "eval_every": 2})
    assert run_train(tmp_path, recipe) == 0
    windows = [json.loads(line) for line in Path(recipe["output_dir"], "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in windows if "loss" in r] == [1, 2, 3, 4]
    assert all(r["seconds"] < 2.0 for r in windows if "loss" in r)  # step 3's window began before the evaluation
