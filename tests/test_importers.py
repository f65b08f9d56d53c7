"""Importers for benchmark layouts: rows, options, and clear errors on bad input."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from t2t_mtl.errors import T2TError
from t2t_mtl.tasks.importers import IMPORTERS
from t2t_mtl.tasks.importers.conll import bio2
from t2t_mtl.tasks.schema import TaskSpec, load_task_file
from t2t_mtl.tasks.sources import load_rows

from domain_fixtures import (
    write_conll03,
    write_ie_ee,
    write_ie_ner,
    write_ni,
    write_pubmedqa,
    write_sgd,
)


def task_for(fmt: str, path: Path, split: str = "train", **options: object) -> TaskSpec:
    """A minimal task reading `path` with the importer `fmt`."""
    return TaskSpec(name="t/t", domain="t", source={"format": fmt, "path": str(path), "split": split,
                                                     "options": options},
                    templates=[{"id": "t", "instruction": "x", "target": "y"}])


def rows_of(fmt: str, path: Path, split: str = "train", **options: object) -> list[dict]:
    task = task_for(fmt, path, split, **options)
    return list(IMPORTERS[fmt](path, task.source.options, task))


def test_importers_are_registered() -> None:
    assert {"ie_instructions", "natural_instructions", "conll", "sgd", "pubmedqa"} <= set(IMPORTERS)


def test_ie_instructions_split_picks_the_file(tmp_path: Path) -> None:
    folder = write_ie_ner(tmp_path / "NER" / "toy")
    rows = rows_of("ie_instructions", folder)
    assert len(rows) == 3 and len(rows_of("ie_instructions", folder, split="test")) == 1
    assert rows[0]["entities"][0] == {"name": "Ann Lee", "type": "person", "pos": [0, 7]}
    assert rows[1]["entities"] == []
    assert len(rows_of("ie_instructions", folder / "dev.json")) == 1
    with pytest.raises(T2TError, match="no file for split 'valid'.*dev.json"):
        rows_of("ie_instructions", folder, split="valid")


def test_ie_instructions_entity_type_subset(tmp_path: Path) -> None:
    rows = rows_of("ie_instructions", write_ie_ner(tmp_path / "toy"), entity_types=["person"])
    assert [[e["name"] for e in r["entities"]] for r in rows] == [["Ann Lee"], [], ["Bob", "Ann Lee"]]


def test_ie_instructions_bad_offsets_skip_and_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = write_ie_ner(tmp_path / "toy")
    rows = json.loads((folder / "train.json").read_text())
    rows[0]["entities"][1]["pos"] = [1, 5]
    rows[2]["entities"][0]["pos"] = [0, 2]
    (folder / "train.json").write_text(json.dumps(rows))
    with caplog.at_level(logging.WARNING):
        kept = rows_of("ie_instructions", folder)
    assert [r["sentence"] for r in kept] == ["nothing to see here"]
    assert "skipped 2 record(s)" in caplog.text and "'Acme' at [1, 5] reads 'nn L'" in caplog.text
    with pytest.raises(T2TError, match=r"train.json: character offsets.*instance 0: 'Acme' at \[1, 5\]"):
        rows_of("ie_instructions", folder, bad_offsets="fail")


def test_ie_instructions_relations(tmp_path: Path) -> None:
    sentence = "Ann works for Acme ."
    ann = {"name": "Ann", "type": "people", "pos": [0, 3]}
    acme = {"name": "Acme", "type": "organization", "pos": [14, 18]}
    path = tmp_path / "RE" / "train.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps([{"sentence": sentence, "entities": [ann, acme],
                                 "relations": [{"head": ann, "type": "work for", "tail": acme}]}]))
    (row,) = rows_of("ie_instructions", path)
    assert row["relations"] == [{"head": ann, "type": "work for", "tail": acme}]


def test_ie_instructions_events_with_labels(tmp_path: Path) -> None:
    folder = write_ie_ee(tmp_path / "CASIE")
    rows = rows_of("ie_instructions", folder)
    assert rows[0]["events"][0]["arguments"][1] == {"name": "the bank", "role": "victim", "pos": [17, 25]}
    assert rows[0]["event_types"] == ["databreach", "patch vulnerability"] and "victim" in rows[0]["roles"]
    (folder / "labels.json").unlink()
    with pytest.raises(T2TError, match=r"labels.json: an event extraction folder needs labels.json"):
        rows_of("ie_instructions", folder)


def test_ie_instructions_rejects_other_json_and_unknown_options(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"sentence": "not a list"}))
    with pytest.raises(T2TError, match="must be a JSON list of objects with a 'sentence'"):
        rows_of("ie_instructions", path)
    with pytest.raises(T2TError, match="'entity_type' is not an option.*Did you mean 'entity_types'"):
        rows_of("ie_instructions", write_ie_ner(tmp_path / "toy"), entity_type=["x"])


def test_conll_repairs_iob1_and_reports(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        rows = rows_of("conll", write_conll03(tmp_path / "conll03"))
    assert [r["sentence"] for r in rows] == ["EU rejects German call .", "Peter Blackburn lives in New York"]
    assert rows[0]["tags"] == ["B-ORG", "O", "B-MISC", "O", "O"]
    assert rows[1]["entities"] == [{"name": "Peter Blackburn", "type": "PER", "pos": [0, 15]},
                                   {"name": "New York", "type": "LOC", "pos": [25, 33]}]
    assert "2 I- tag(s) did not continue an entity" in caplog.text


def test_bio2_repairs_only_broken_continuations() -> None:
    assert bio2(["I-A", "I-A", "I-B", "O", "I-B", "B-B", "I-B"]) == (["B-A", "I-A", "B-B", "O", "B-B", "B-B", "I-B"], 3)


def test_conll_tab_separated_and_bad_tags(tmp_path: Path) -> None:
    path = tmp_path / "test.tsv"
    path.write_text("Aspirin\tB-Chemical\ncauses\tO\nulcers\tB-Disease\n\nnone\tO\n")
    rows = rows_of("conll", path, delimiter="\t")
    assert [e["name"] for e in rows[0]["entities"]] == ["Aspirin", "ulcers"] and rows[1]["entities"] == []
    path.write_text("Aspirin\tChemical\n")
    with pytest.raises(T2TError, match=r"test.tsv, line 1: tag 'Chemical' is not O, B-type or I-type"):
        rows_of("conll", path, delimiter="\t")
    path.write_text("Aspirin\n")
    with pytest.raises(T2TError, match=r"line 1: expected a token and a tag"):
        rows_of("conll", path, delimiter="\t", tag_column=1)


@pytest.mark.parametrize("line", ["{token}\t{tag}", "{token} {tag}", "{token}   NNP  B-NP {tag}  ", "{token}\tNNP\t{tag}"])
def test_conll_splits_columns_only_at_tabs_or_ascii_spaces(tmp_path: Path, line: str) -> None:
    words = [("New\u00a0York", "B-LOC"), ("is", "O"), ("10\u2009km", "O"), ("wide\u00a0", "O")]
    path = tmp_path / "test.txt"
    path.write_text("".join(line.format(token=t, tag=g) + "\n" for t, g in words) + "\n", encoding="utf-8")
    (row,) = rows_of("conll", path)
    assert row["tokens"] == [t for t, _ in words] and row["tags"] == [g for _, g in words]
    assert row["sentence"] == "New\u00a0York is 10\u2009km wide\u00a0"
    assert row["entities"] == [{"name": "New\u00a0York", "type": "LOC", "pos": [0, 8]}]


def test_conll_line_of_only_a_unicode_space_is_not_blank(tmp_path: Path) -> None:
    path = tmp_path / "test.txt"
    path.write_text("Oslo B-LOC\n\u00a0\n", encoding="utf-8")
    with pytest.raises(T2TError, match=r"test.txt, line 2: tag '' is not O, B-type or I-type"):
        rows_of("conll", path)


def test_natural_instructions_rows_and_examples(tmp_path: Path) -> None:
    path = write_ni(tmp_path / "task0_toy.json")
    rows = rows_of("natural_instructions", path)
    assert len(rows) == 4 and rows[0]["task"] == "task0_toy"
    assert rows[0]["output"] == "negative" and rows[0]["outputs"] == ["negative", "neg"]
    assert len(rows[0]["positive_examples"]) == 2 and rows[0]["negative_examples"] == []
    assert rows[0]["positive_examples"][0] == {"input": "good 0", "output": "positive", "explanation": "It praises."}
    negative = rows_of("natural_instructions", path, pos_examples=0, neg_examples=1)[0]["negative_examples"]
    assert negative == [{"input": "bad", "output": "great", "explanation": "Not a label."}]


@pytest.mark.parametrize("missing", ["Definition", "Instances"])
def test_natural_instructions_missing_key_names_file(tmp_path: Path, missing: str) -> None:
    path = write_ni(tmp_path / "task0_toy.json")
    data = json.loads(path.read_text())
    del data[missing]
    path.write_text(json.dumps(data))
    with pytest.raises(T2TError, match=rf"task0_toy.json: not a Super-NaturalInstructions task file: .*no {missing}"):
        rows_of("natural_instructions", path)


def test_natural_instructions_instance_without_output(tmp_path: Path) -> None:
    path = write_ni(tmp_path / "task0_toy.json")
    data = json.loads(path.read_text())
    data["Instances"][1]["output"] = []
    path.write_text(json.dumps(data))
    with pytest.raises(T2TError, match="instance 1 needs an 'input' and at least one 'output'"):
        rows_of("natural_instructions", path)


def test_sgd_user_turns_carry_cumulative_state(tmp_path: Path) -> None:
    rows = rows_of("sgd", write_sgd(tmp_path / "train"))
    assert [r["turn"] for r in rows] == [0, 2]
    last = rows[1]
    assert last["history"] == ["User: Find me a thriller.", "System: How about Heat or Ronin?"]
    assert last["state"] == [{"slot": "genre", "value": "thriller"}, {"slot": "theater", "value": "Grand"},
                             {"slot": "title", "value": "Heat"}]
    canonical, structured = last["state_reference"]
    assert canonical == "genre=thriller; theater=Grand; title=Heat"
    # every slot of the schema with is_categorical, every listed value in the data's order
    assert json.loads(structured) == {"service_slots": {"genre": True, "title": False, "theater": False},
                                      "slot_values": {"genre": ["thriller"], "title": ["Heat", "heat"],
                                                      "theater": ["Grand"]}}
    assert last["actions"] == [{"act": "SELECT", "slot": "", "value": ""},
                               {"act": "INFORM", "slot": "theater", "value": "Grand"}]
    assert last["service_description"] == "Find movies and showtimes" and last["slots"][0]["name"] == "genre"
    assert json.loads(rows[0]["state_reference"][1])["slot_values"] == {"genre": ["thriller"]}
    with pytest.raises(T2TError, match="'max_references' is not an option of format 'sgd'"):
        rows_of("sgd", write_sgd(tmp_path / "b"), max_references=1)


def test_sgd_system_turns(tmp_path: Path) -> None:
    rows = rows_of("sgd", write_sgd(tmp_path / "train") / "dialogues_001.json", speaker="system")
    assert [r["utterance"] for r in rows] == ["How about Heat or Ronin?", "Enjoy the film."]
    assert rows[0]["actions"] == [{"act": "OFFER", "slot": "title", "value": "Heat"},
                                  {"act": "OFFER", "slot": "title", "value": "Ronin"}]
    assert "state" not in rows[0]


def test_sgd_turn_without_frames(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = write_sgd(tmp_path / "train", frameless_turn=True)
    with caplog.at_level(logging.WARNING):
        assert len(rows_of("sgd", folder)) == 1
    assert "skipped 1 record(s) with turns without frames or state; first: dialogue 1_00000, turn 2 has no frames" \
        in caplog.text
    with pytest.raises(T2TError, match="dialogue 1_00000, turn 2 has no frames"):
        rows_of("sgd", folder, missing_frames="fail")


def test_sgd_schema_errors(tmp_path: Path) -> None:
    folder = write_sgd(tmp_path / "train")
    (folder / "schema.json").write_text("[]")
    with pytest.raises(T2TError, match="service 'Movies_9' is not in the SGD schema"):
        rows_of("sgd", folder)
    (folder / "schema.json").unlink()
    with pytest.raises(T2TError, match="cannot tell which file is the SGD schema"):
        rows_of("sgd", folder)
    with pytest.raises(T2TError, match="speaker must be one of"):
        rows_of("sgd", write_sgd(tmp_path / "b"), speaker="bot")


def test_pubmedqa(tmp_path: Path) -> None:
    rows = rows_of("pubmedqa", write_pubmedqa(tmp_path / "ori_pqal.json"))
    assert [r["final_decision"] for r in rows] == ["yes", "no", "maybe", "yes"]
    assert rows[0]["context"] == "Patients took it. It worked." and rows[0]["id"] == "100"


def test_corrupt_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "task9.json"
    path.write_text('{"Definition": ["x"],\n "Instances": [\n')
    with pytest.raises(T2TError, match=r"task9.json, line 3: corrupt JSON"):
        rows_of("natural_instructions", path)


def test_importer_through_a_task_file_and_missing_path(tmp_path: Path) -> None:
    write_ie_ner(tmp_path / "data" / "toy")
    spec = {"name": "t/ner", "domain": "t", "source": {"format": "ie_instructions", "path": "data/toy", "eval_size": 1},
            "columns": {"text": "sentence", "entities": "entities"},
            "templates": [{"id": "t", "instruction": "x", "input": "{{ text }}",
                           "target": "{{ entities | format_spans }}"}]}
    (tmp_path / "ner.yaml").write_text(yaml.safe_dump(spec))
    task = load_task_file(tmp_path / "ner.yaml")
    assert len(load_rows(task, "train")) == 2 and len(load_rows(task, "eval")) == 1
    with pytest.raises(T2TError, match=r"ner.yaml \(task t/ner\): .*nowhere does not exist"):
        load_rows(task, "train", data="nowhere")


def test_csv_missing_mapped_column_is_named(tmp_path: Path) -> None:
    (tmp_path / "intents.csv").write_text("text,label\nwhere is my card,card_arrival\nlost it,lost_or_stolen_card\n")
    spec = {"name": "t/intent", "domain": "t", "source": {"format": "csv", "path": "intents.csv"},
            "columns": {"text": "text", "intent": "category"},
            "templates": [{"id": "t", "instruction": "x", "input": "{{ text }}", "target": "{{ intent }}"}]}
    (tmp_path / "intent.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(T2TError, match=r"columns.intent maps to column 'category', but the data has .*'label'"):
        load_rows(load_task_file(tmp_path / "intent.yaml"), "train")
