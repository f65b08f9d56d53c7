"""Many instructions, one input: `predict --task A --task B ...` and `Predictor.predict_many`."""

import json
from pathlib import Path

import pytest

from t2t_mtl.cli import main
from t2t_mtl.errors import T2TError
from t2t_mtl.inference import Predictor

from conftest import span_rows, train_toy_run

TASKS = ["toy/colours", "toy/colours_b", "toy/places"]


def train(tmp_path: Path, tiny_t5: Path, adapter: dict) -> Path:
    return train_toy_run(tmp_path, tiny_t5, adapter, with_spans=True, train={"max_steps": 6, "lr": 1e-2},
                         eval={"max_examples": 2, "max_new_tokens": 10, "batch_size": 5})


@pytest.mark.parametrize("adapter", [{"type": "lora", "rank": 4}, {"type": "poly", "rank": 4, "n_skills": 2}],
                         ids=["lora", "poly"])
def test_one_call_answers_as_separate_calls_do(tmp_path: Path, tiny_t5: Path, adapter: dict):
    run = train(tmp_path, tiny_t5, adapter)
    predictor = Predictor.from_run(run)
    rows = [{"text": row["text"]} for row in span_rows(7)]
    tasks = [*TASKS, "toy/unseen"]  # the held-out task is routed zero-shot (poly) in batches of its own
    together = predictor.predict_many(tasks, rows)
    assert len(together) == len(rows) and all(list(answers) == tasks for answers in together)
    for task in tasks:
        separate = predictor.answers(task, rows, predictor.predict(task, rows))
        assert [answers[task] for answers in together] == separate, task


def test_predict_with_several_tasks_writes_every_answer(tmp_path: Path, tiny_t5: Path, capsys):
    run = train(tmp_path, tiny_t5, {"type": "lora", "rank": 4})
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in span_rows(3)))
    out = tmp_path / "out.jsonl"
    flags = [arg for task in TASKS for arg in ("--task", task)]
    assert main(["predict", str(run), *flags, "--input", str(rows), "--output", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 3 and all(set(r["predictions"]) == set(TASKS) for r in records)
    for record in records:
        colour = record["predictions"]["toy/colours"]
        assert colour["answer"]["label"] in {"red", "green", "blue"} and colour["answer"]["in_label_space"]
        for span in record["predictions"]["toy/places"]["answer"]:
            assert set(span) in ({"type", "text", "start", "end", "field"}, {"type", "text", "found"})
            if "start" in span:
                assert record["text"][span["start"]:span["end"]] == span["text"]

    capsys.readouterr()
    assert main(["predict", str(run), "--task", "toy/colours", "--task", "toy/colour", "--input", str(rows)]) == 2
    assert "task 'toy/colour' is not in run" in capsys.readouterr().err and "Did you mean 'toy/colours'?"
    assert main(["predict", str(run), "--task", "toy/colours", "--task", "toy/colours_b", "--input", str(rows),
                 "--template", "ask"]) == 2
    assert "--template, --routing fit/fit-unlabelled and --fit-data apply to one --task" in capsys.readouterr().err
    with pytest.raises(T2TError, match="repeated: toy/colours"):
        Predictor.from_run(run).predict_many(["toy/colours", "toy/colours"], [{"text": "x"}])
