"""The shipped quickstart recipes start and finish on the offline MiniLM backbone (a few steps)."""

import json
from pathlib import Path

import pytest

from t2t_mtl.cli import main

from conftest import ROOT


@pytest.mark.parametrize("recipe", ["quickstart.yaml", "quickstart_mhr.yaml"])
def test_quickstart_recipe_runs_offline(recipe: str, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "run"
    overrides = ["train.max_steps=2", "train.eval_every=null", "train.save_every=2", "eval.max_examples=2",
                 "eval.max_new_tokens=4", f"output_dir={out}"]
    assert main(["train", f"recipes/{recipe}", *overrides]) == 0
    results = json.loads((out / "results.json").read_text())
    tasks = {t["task"]: t for t in results["tasks"]}
    assert {"demo/ner", "demo/relations", "demo/intent", "demo/code", "demo/biomed", "demo/ner_places"} <= set(tasks)
    assert tasks["demo/ner_places"]["held_out"]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert log and all(r["loss"] > 0 for r in log)
