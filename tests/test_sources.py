"""Data sources: clear errors for missing, empty and corrupt files, wrong options and wrong column maps."""

import json
from pathlib import Path

import pytest

from t2t_mtl.errors import T2TError
from t2t_mtl.tasks.schema import load_task_file
from t2t_mtl.tasks.sources import load_rows

from conftest import colour_rows, write_task


def test_train_and_eval_rows_split_without_overlap(tmp_path: Path):
    task = load_task_file(write_task(tmp_path, "toy/c", colour_rows(20)))
    train, evaluation = load_rows(task, "train"), load_rows(task, "eval")
    assert len(train) == 15 and len(evaluation) == 5
    assert not set(train["text"]) & set(evaluation["text"])


def test_eval_rows_of_a_file_sorted_by_label_cover_several_labels(tmp_path: Path):
    rows = sorted(colour_rows(60), key=lambda r: r["label"])  # like BANKING77's test.csv
    task = load_task_file(write_task(tmp_path, "toy/c", rows))
    evaluation = load_rows(task, "eval")
    assert len(set(evaluation["label"])) == 3  # a tail split would hold only the last label
    assert list(evaluation["text"]) == list(load_rows(task, "eval")["text"])  # the same rows every time
    train_order = [rows.index(r) for r in load_rows(task, "train").to_list()]
    assert train_order == sorted(train_order)  # training keeps file order


def test_missing_file(tmp_path: Path):
    task = load_task_file(write_task(tmp_path, "toy/c", colour_rows(4)))
    with pytest.raises(T2TError, match=r"c.yaml \(task toy/c\): data file .*other.jsonl does not exist"):
        load_rows(task, "train", data="other.jsonl")


def test_empty_file(tmp_path: Path):
    task = load_task_file(write_task(tmp_path, "toy/c", colour_rows(4)))
    (tmp_path / "c.jsonl").write_text("")
    with pytest.raises(T2TError, match="is empty"):
        load_rows(task, "train")


def test_corrupt_jsonl_line_is_named(tmp_path: Path):
    task = load_task_file(write_task(tmp_path, "toy/c", colour_rows(4)))
    path = tmp_path / "c.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:-3]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(T2TError, match=r"c.jsonl, line 3: corrupt JSON"):
        load_rows(task, "train")


def test_column_mapping_to_absent_column(tmp_path: Path):
    task = load_task_file(write_task(tmp_path, "toy/c", colour_rows(4), columns={"text": "txt", "label": "label"}))
    with pytest.raises(T2TError, match=r"columns.text maps to column 'txt'.*Did you mean 'text'"):
        load_rows(task, "train")


def test_csv_source_and_held_out_rules(tmp_path: Path):
    (tmp_path / "c.csv").write_text("text,label\nthe sky,blue\nthe leaf,green\n")
    task = load_task_file(write_task(tmp_path, "toy/c", [], source={"format": "csv", "path": "c.csv"}, held_out=True))
    assert load_rows(task, "eval")["label"] == ["blue", "green"]
    with pytest.raises(T2TError, match="held out"):
        load_rows(task, "train")


def test_json_rows_under_a_field(tmp_path: Path):
    rows = colour_rows(8)
    (tmp_path / "c.json").write_text(json.dumps({"version": "1.0", "data": rows}))
    source = {"format": "json", "path": "c.json", "eval_size": 0.25, "options": {"field": "data"}}
    task = load_task_file(write_task(tmp_path, "toy/c", [], source=source))
    train, evaluation = load_rows(task, "train"), load_rows(task, "eval")
    assert len(train) == 6 and sorted([*train["text"], *evaluation["text"]]) == sorted(r["text"] for r in rows)


@pytest.mark.parametrize(("document", "field", "message"), [
    ({"version": "1.0", "data": []}, None, r"c.json must hold .* keys \['data', 'version'\]: set source.options.field"),
    ({"version": "1.0", "data": []}, "data", r"c.json, key 'data', must hold a non-empty JSON list"),
    ({"version": "1.0", "rows": [{"text": "x"}]}, "row", r"'row', but .*c.json has no such key .* Did you mean 'rows'"),
    ([{"text": "x", "label": "red"}], "data", r"'data', but .*c.json is not a JSON object \(it holds a list\)"),
])
def test_json_field_errors_name_the_task_file_and_the_fix(tmp_path: Path, document: object, field: str | None,
                                                           message: str):
    (tmp_path / "c.json").write_text(json.dumps(document))
    options = {"field": field} if field else {}
    task = load_task_file(write_task(tmp_path, "toy/c", [], source={"format": "json", "path": "c.json",
                                                                     "options": options}))
    with pytest.raises(T2TError, match=r"c.yaml \(task toy/c\): .*" + message):
        load_rows(task, "train")


def test_field_on_a_jsonl_source_is_refused(tmp_path: Path):
    source = {"format": "jsonl", "path": "c.jsonl", "options": {"field": "data"}}
    task = load_task_file(write_task(tmp_path, "toy/c", colour_rows(4), source=source))
    with pytest.raises(T2TError, match=r"c.yaml \(task toy/c\): source.options.field .* use format: json"):
        load_rows(task, "train")


def test_builder_options_pass_through_and_a_wrong_one_is_named(tmp_path: Path):
    (tmp_path / "c.csv").write_text("text;label\nthe sky;blue\nthe leaf;green\n")
    source = {"format": "csv", "path": "c.csv", "options": {"sep": ";", "keep_in_memory": True}}
    task = load_task_file(write_task(tmp_path, "toy/c", [], source=source, held_out=True))
    assert load_rows(task, "eval")["label"] == ["blue", "green"]
    wrong = load_task_file(write_task(tmp_path, "toy/c", [], held_out=True,
                                      source={**source, "options": {"delimter": ";"}}))
    with pytest.raises(T2TError, match=r"c.yaml \(task toy/c\): source.options: 'delimter' is not an option of "
                                       r"format 'csv'. Did you mean 'delimiter'\? Options: \[.*'sep'"):
        load_rows(wrong, "eval")


def test_wrong_importer_option_names_the_task_file(tmp_path: Path):
    (tmp_path / "train.txt").write_text("Oslo B-LOC\n")
    task = load_task_file(write_task(tmp_path, "toy/c", [], source={"format": "conll", "path": "train.txt",
                                                                     "options": {"tag_col": 1}}))
    with pytest.raises(T2TError, match=r"c.yaml \(task toy/c\): source.options: 'tag_col' .*'tag_column'"):
        load_rows(task, "train")
