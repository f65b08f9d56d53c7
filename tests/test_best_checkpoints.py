"""The best evaluated checkpoint (eval.select, train.keep_best), early stopping, and --checkpoint best|last|step-N."""

import json
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from t2t_mtl.cli import main
from t2t_mtl.selection import Selection, selection_score

from conftest import make_recipe


def run_train(tmp_path: Path, recipe: dict, *flags: str) -> int:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return main(["train", str(path), *flags])


def log_records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def expected_best(records: list[dict], select: str, patience: int | None = None, min_delta: float = 0.0):
    """(best step, step where patience ran out or None), recomputed from the logged evaluations."""
    best, waited = None, 0
    for record in (r for r in records if "eval" in r):
        score = selection_score(record, select)
        if best is None or score > best[1] + min_delta:
            best, waited = (record["step"], score), 0
        else:
            waited += 1
            if patience is not None and waited >= patience:
                return best[0], record["step"]
    return best[0], None


def test_early_stopping_on_a_scripted_score_series():
    scores = [10.0, 30.0, 30.5, 29.0, 31.2, 40.0, 39.0, 40.4, 38.0]  # evaluations at steps 1, 2, ...
    selection = Selection("mean", patience=3, min_delta=1.0)
    stopped = None
    for step, score in enumerate(scores, start=1):
        selection.update(step, score)
        if selection.exhausted:
            stopped = step
            break
    # 40.4 (step 8) is not more than 1.0 above 40.0 (step 6): steps 7, 8, 9 wait, and 9 stops.
    assert (selection.best_step, selection.best_score, stopped) == (6, 40.0, 9)
    never = Selection("mean")
    assert not any(never.update(s, 0.0) and never.exhausted for s in range(1, 50)) and not never.exhausted


def test_selection_reads_groups_and_tasks():
    record = {"eval": {"overall": {"score": 50.0}, "seen": {"score": 60.0}, "held_out": {"score": 30.0}},
              "eval_by_task": {"a": {"f1/precision": 9.0, "f1": 70.0}}, "eval_primary": {"a": "f1"}}
    assert [selection_score(record, s) for s in ("mean", "seen", "held_out", "a")] == [50.0, 60.0, 30.0, 70.0]


def test_keep_best_survives_keep_last_and_checkpoint_flags(tmp_path: Path, tiny_t5: Path, task_dir: Path, capsys):
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, train={"max_steps": 6, "eval_every": 1, "save_every": 3,
                                                             "keep_last": 1, "keep_best": True, "lr": 3e-2})
    recipe["eval"]["select"] = "toy/colours"
    assert run_train(tmp_path, recipe) == 0
    run = Path(recipe["output_dir"])
    best_step, _ = expected_best(log_records(run), "toy/colours")
    best = json.loads((run / "checkpoints/best.json").read_text())
    assert best["step"] == best_step and best["select"] == "toy/colours"
    kept = sorted(p.name for p in (run / "checkpoints").glob("step-*"))
    if best_step == 6:
        assert best["folder"] == "final" and kept == ["step-000006"]
    else:  # the best got a checkpoint of its own, which keep_last: 1 does not prune
        assert best["folder"] == f"checkpoints/step-{best_step:06d}"
        assert kept == sorted({f"step-{best_step:06d}", "step-000006"})

    capsys.readouterr()
    assert main(["evaluate", str(run), "--checkpoint", "best"]) == 0
    assert json.loads((run / "evaluations/best/results.json").read_text())["tasks"]
    assert main(["evaluate", str(run), "--checkpoint", "step-6"]) == 0
    assert (run / "evaluations/step-000006/results.json").is_file()
    assert main(["export", str(run), "--out", str(tmp_path / "best_lora"), "--checkpoint", "best"]) == 0
    exported = load_file(tmp_path / "best_lora/adapter_model.safetensors")
    folder = run / best["folder"]
    trained = load_file(folder / "adapter_model.safetensors" if best["folder"] == "final"
                        else folder / "model/adapter_model.safetensors")
    assert exported.keys() == trained.keys() and all((exported[k] == trained[k]).all() for k in trained)

    capsys.readouterr()
    assert main(["evaluate", str(run), "--checkpoint", "step-2"]) == 2
    assert "no complete checkpoint of step 2; its checkpoints: " in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["predict", str(run), "--checkpoint", "newest", "--task", "toy/colours", "--input", "x.jsonl"])
    assert "choose best, last or step-N (such as step-500), got 'newest'" in capsys.readouterr().err


def test_early_stopping_ends_on_the_best_weights(tmp_path: Path, tiny_t5: Path, task_dir: Path, capsys):
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, train={"max_steps": 40, "eval_every": 2, "lr": 3e-2,
                                                             "early_stopping": {"patience": 2}})
    assert run_train(tmp_path, recipe) == 0
    run = Path(recipe["output_dir"])
    records = log_records(run)
    best_step, stop_step = expected_best(records, "mean", patience=2)
    assert stop_step is not None  # scores plateau within 40 steps: the run stops early
    stopped = [r for r in records if "early_stopped" in r]
    assert len(stopped) == 1 and stopped[0]["step"] == stop_step
    assert stopped[0]["early_stopped"]["step"] == best_step
    assert max(r["step"] for r in records if "loss" in r) == stop_step  # no step trained after it
    assert f"the final weights are those of step {best_step}" in capsys.readouterr().out
    final = load_file(run / "final/adapter_model.safetensors")
    kept = load_file(run / f"checkpoints/step-{best_step:06d}/model/adapter_model.safetensors")
    assert all((final[k] == kept[k]).all() for k in kept)
    assert json.loads((run / "results.json").read_text())["step"] == best_step


def test_best_without_keep_best_and_bad_select(tmp_path: Path, tiny_t5: Path, task_dir: Path, capsys):
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, train={"max_steps": 2, "save_every": 2})
    assert run_train(tmp_path, recipe) == 0
    capsys.readouterr()
    assert main(["evaluate", recipe["output_dir"], "--checkpoint", "best"]) == 2
    assert "kept no best checkpoint: train with train.keep_best=true" in capsys.readouterr().err

    fresh = {**recipe, "output_dir": str(tmp_path / "fresh")}
    assert run_train(tmp_path, fresh, "eval.select=toy/colour", "train.keep_best=true", "train.eval_every=1") == 2
    assert "'toy/colour' is not a task this run evaluates. Did you mean 'toy/colours'?" in capsys.readouterr().err
    assert run_train(tmp_path, fresh, "train.keep_best=true") == 2
    assert "train.keep_best compares the evaluations made every train.eval_every steps" in capsys.readouterr().err
    assert run_train(tmp_path, fresh, "train.early_stopping={patience: 0}", "train.eval_every=1") == 2
    assert "patience" in capsys.readouterr().err
    assert not Path(fresh["output_dir"]).exists()
