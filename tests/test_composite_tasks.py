"""Composite tasks: several subtasks' answers in one target, split back and scored as each subtask's."""

import json
from pathlib import Path

import datasets
import pytest
import yaml

from t2t_mtl.cli import main
from t2t_mtl.data import check_labels, render_rows
from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation.metrics import compute_metrics
from t2t_mtl.evaluation.parsers import TypedSpansParser, get_parser, split_parts
from t2t_mtl.evaluator import score_task
from t2t_mtl.inference import Predictor
from t2t_mtl.task_commands import validate_task
from t2t_mtl.tasks import sources
from t2t_mtl.tasks.registry import load_task
from t2t_mtl.templates import compile_templates

from conftest import ROOT, span_rows, train_toy_run

BANKING = ROOT / "instructions" / "banking"


@pytest.mark.parametrize(("text", "count", "parts"), [
    ("pay_bill || amount: 50 dollars; bill: rent", 2, ["pay_bill", "amount: 50 dollars; bill: rent"]),
    ("pay _ bill | | amount : 50 dollars", 2, ["pay _ bill", "amount : 50 dollars"]),  # tokenizer spacing
    ("pay_bill", 2, ["pay_bill", ""]),  # a missing answer is empty
    ("a || b || c", 2, ["a", "b || c"]),  # the rest stays in the last answer
    (r"a \|| b || c", 2, [r"a \|| b", "c"]),  # an escaped bar is text
    ("die: x | victim: y || None", 2, ["die: x | victim: y", "None"]),  # an event's single bars are not cuts
])
def test_answers_split_at_double_bars(text: str, count: int, parts: list[str]):
    assert split_parts(text, count) == parts


def test_the_banking_composite_round_trips_its_gold():
    """Each answer of every rendered composite target parses as its subtask's own target for the same row does."""
    composite = load_task(BANKING / "request.yaml")
    assert [part.name for part in composite.parts] == ["banking/intent", "banking/details"]
    for task in (composite, *composite.parts):
        assert validate_task(task, 40) == [], task.name
    rows = sources.load_rows(composite, "eval")
    assert len(rows) == 40
    for row in rows:
        fields = sources.row_fields(composite, row, None)
        for template in compile_templates(composite).values():
            answers = split_parts(template.render(fields).target, len(composite.parts))
            for part, answer in zip(composite.parts, answers):
                own = next(iter(compile_templates(part).values()))
                gold = own.render(sources.row_fields(part, row, part.label_space())).target
                assert get_parser(part.output).parse(answer) == get_parser(part.output).parse(gold), (row, answer)


def write_composite(folder: Path, name: str = "toy/both", **overrides) -> Path:
    """A composite of the colour label task and the typed-span task over rows holding both answers."""
    rows = [{**row, "label": ["red", "green", "blue"][i % 3]} for i, row in enumerate(span_rows(24))]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "both.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    spec = {"name": name, "domain": "toy", "source": {"path": "both.jsonl", "eval_size": 0.25},
            "columns": {"text": "text", "label": "label", "entities": "entities"},
            "subtasks": ["toy/colours", "places.yaml"], "output": "composite",
            "templates": [{"id": "both", "input": "{{ text }}",
                           "instruction": "Colour ({{ subtasks['toy/colours'].labels | join(', ') }}) || places.",
                           "target": "{{ label }} || {{ entities | format_spans }}"}],
            **overrides}
    path = folder / f"{name.split('/')[-1]}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def toy_tasks(tmp_path: Path) -> Path:
    from conftest import colour_rows, write_span_task, write_task

    folder = tmp_path / "instructions" / "toy"
    write_task(folder, "toy/colours", colour_rows(12))
    write_span_task(folder)
    return folder


@pytest.mark.parametrize(("target", "problem"), [
    ("{{ label }}", "holds 1 answer(s) separated by '||'; the subtasks ['toy/colours', 'places.yaml'] need 2"),
    ("{{ label }} || {{ entities | format_spans }} || {{ label }}", "holds 3 answer(s)"),
    ("purple || {{ entities | format_spans }}", "labels ['purple'] are outside its label space"),
    ("{{ label }} || {{ entities | format_mentions }}", "uses ['format_mentions'], which output 'typed_spans'"),
    ("{{ label }} || {{ entities[:1] | format_spans }}; location: mars", "added [('location', 'mars')]"),
])
def test_a_composite_target_that_does_not_split_into_its_gold_is_a_problem(toy_tasks: Path, target: str,
                                                                           problem: str):
    path = write_composite(toy_tasks)
    spec = yaml.safe_load(path.read_text())
    spec["templates"][0]["target"] = target
    path.write_text(yaml.safe_dump(spec))
    problems = validate_task(load_task(path), 3)
    assert any(problem in p for p in problems), problems


def test_composite_task_files_name_what_to_fix(toy_tasks: Path):
    with pytest.raises(T2TError, match=r"subtask 'toy/colour': no task named 'toy/colour'.*toy/colours.*"
                                       r"Fix 'subtasks:'.*relative to"):
        load_task(write_composite(toy_tasks, subtasks=["toy/colour", "places.yaml"]))
    with pytest.raises(T2TError, match="subtask 'missing.yaml'.*missing.yaml"):
        load_task(write_composite(toy_tasks, subtasks=["toy/colours", "missing.yaml"]))
    write_composite(toy_tasks, name="toy/inner")
    with pytest.raises(T2TError, match="is itself composite"):
        load_task(write_composite(toy_tasks, subtasks=["toy/colours", "toy/inner"]))
    with pytest.raises(T2TError, match="remove 'metrics:'"):
        load_task(write_composite(toy_tasks, metrics=["exact_match"]))
    with pytest.raises(T2TError, match="give both or neither"):
        load_task(write_composite(toy_tasks, output="label"))
    with pytest.raises(T2TError, match="at least two"):
        load_task(write_composite(toy_tasks, subtasks=["toy/colours"]))


def test_training_targets_are_checked_answer_by_answer(toy_tasks: Path):
    """A label outside the colour subtask's space is counted; the same word as a span is not."""
    composite = load_task(write_composite(toy_tasks))
    rows = datasets.Dataset.from_list([{"text": "a yellow cab", "label": "yellow", "entities": []},
                                       {"text": "anna", "label": "red",
                                        "entities": [{"type": "person", "name": "yellow"}]}])
    rendered = render_rows(composite, 0, rows, seed=0)
    assert check_labels(composite, rendered, strict=False) == {"yellow": 1}
    with pytest.raises(T2TError, match="outside the label space"):
        check_labels(composite, rendered, strict=True)


def test_a_composite_task_scores_each_answer_as_its_subtask_does(toy_tasks: Path):
    composite = load_task(write_composite(toy_tasks))
    gold = ["red || person: anna; location: riga", "green || None", "blue || location: oslo"]
    scores, primary = score_task(composite, gold, gold)
    assert primary == "subtasks_mean" and scores[primary] == scores["all_correct"] == 100.0
    predictions = ["red || location: riga", "blue | | None", "blue"]  # spans half right, a label wrong, one cut
    scores, _ = score_task(composite, predictions, [[g] for g in gold])
    labels = compute_metrics(["accuracy"], ["red", "blue", "blue"], ["red", "green", "blue"])
    spans = compute_metrics(["span_f1"], ["location: riga", "None", ""],
                            ["person: anna; location: riga", "None", "location: oslo"])
    assert scores["toy/colours:accuracy"] == labels["accuracy"] == pytest.approx(200 / 3)
    assert scores["toy/places:span_f1"] == spans["span_f1"] and scores["toy/places:span_f1/recall"] == 100 / 3
    assert scores["all_correct"] == 0.0
    assert scores["subtasks_mean"] == pytest.approx((labels["accuracy"] + spans["span_f1"]) / 2)


def test_a_run_trains_evaluates_and_answers_a_composite_task(tmp_path: Path, tiny_t5: Path, capsys):
    write_composite(tmp_path / "instructions" / "toy")
    run = train_toy_run(tmp_path, tiny_t5, {"type": "lora", "rank": 4}, with_spans=True,
                        train={"max_steps": 3}, eval={"max_examples": 3, "max_new_tokens": 12})
    results = json.loads((run / "results.json").read_text())
    both = next(task for task in results["tasks"] if task["task"] == "toy/both")
    assert both["primary"] == "subtasks_mean"
    assert {"toy/colours:accuracy", "toy/places:span_f1", "all_correct"} <= set(both["scores"])
    rows = [{"text": "anna flew to oslo on day 3"}]
    predictor = Predictor.from_run(run)
    [prediction] = predictor.answers("toy/both", rows, ["green || person: ANNA; location: oslo"])
    assert prediction.answer == {
        "toy/colours": {"label": "green", "in_label_space": True},
        "toy/places": [{"type": "person", "text": "anna", "start": 0, "end": 4, "field": "text"},
                       {"type": "location", "text": "oslo", "start": 13, "end": 17, "field": "text"}]}
    for beams in (1, 3):  # a barely trained model, constrained: every answer of every output inside its space
        constrained = Predictor.from_run(run, eval_overrides={"constrain": "schema", "num_beams": beams})
        for text in constrained.predict("toy/both", span_rows(8)):
            label, spans = split_parts(text, 2)
            assert label in {"red", "green", "blue"} and "||" in text.replace(" ", ""), text
            assert all(kind in {"person", "location"} for kind, _ in TypedSpansParser().parse(spans)), text
    rows_file, out = tmp_path / "rows.jsonl", tmp_path / "out.jsonl"
    rows_file.write_text(json.dumps(rows[0]) + "\n")
    assert main(["predict", str(run), "--task", "toy/both", "--input", str(rows_file), "--output", str(out)]) == 0
    [written] = map(json.loads, out.read_text().splitlines())
    assert set(written["answer"]) == {"toy/colours", "toy/places"}
