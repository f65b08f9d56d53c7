"""The demo data generator and the committed demo tasks (instructions/demo)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from t2t_mtl import templates
from t2t_mtl.demo import write_demo_data
from t2t_mtl.tasks import sources
from t2t_mtl.tasks.schema import load_task_file

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "instructions" / "demo"
TASK_FILES = sorted(DEMO.glob("*.yaml"))
DATA_FILES = sorted((DEMO / "data").glob("*.jsonl"))
TASK_NAMES = ["demo/biomed", "demo/code", "demo/intent", "demo/ner", "demo/ner_places", "demo/relations"]


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def task_files(task) -> list[Path]:
    return sorted({task.base_dir / p for p in (task.source.path, task.source.eval_path) if p})


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    first = write_demo_data(tmp_path / "a", seed=3)
    second = write_demo_data(tmp_path / "b", seed=3)
    assert first == second
    for name in first:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    other = write_demo_data(tmp_path / "c", seed=4)
    assert (tmp_path / "c" / "ner.train.jsonl").read_bytes() != (tmp_path / "a" / "ner.train.jsonl").read_bytes()
    assert other == first  # row counts do not depend on the seed


def test_committed_data_is_the_generator_output(tmp_path: Path) -> None:
    counts = write_demo_data(tmp_path)
    assert sorted(counts) == [p.name for p in DATA_FILES], "regenerate: python -m t2t_mtl.demo instructions/demo/data"
    for path in DATA_FILES:
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), f"{path.name} differs from the generator"
        assert len(read_rows(path)) == counts[path.name]


def test_row_counts_and_size() -> None:
    for path in DATA_FILES:
        rows = read_rows(path)
        if path.name.endswith(".eval.jsonl"):
            assert 40 <= len(rows) <= 60, path.name
        else:
            assert 250 <= len(rows) <= 500, path.name
    assert sum(p.stat().st_size for p in DATA_FILES) < 500 * 1024


def test_train_and_eval_inputs_do_not_overlap() -> None:
    for train in (DEMO / "data").glob("*.train.jsonl"):
        key = next(iter(read_rows(train)[0]))
        evaluation = train.with_name(train.name.replace(".train.", ".eval."))
        assert not {r[key] for r in read_rows(train)} & {r[key] for r in read_rows(evaluation)}, train.name


def names_in(path: Path, types: set[str] | None = None) -> set[str]:
    return {e["name"] for row in read_rows(path) for e in entities_of(row) if types is None or e["type"] in types}


def test_eval_names_are_mostly_new() -> None:
    """Names are composed from large pools, so a model must copy spans rather than recall them."""
    data = DEMO / "data"
    for task in ("ner", "relations"):
        new = names_in(data / f"{task}.eval.jsonl", {"person", "organization"})
        seen = new & names_in(data / f"{task}.train.jsonl")
        assert len(new) >= 30 and len(seen) <= 0.2 * len(new), (task, sorted(seen))
    trained = set().union(*(names_in(path) for path in data.glob("*.train.jsonl")))
    places = names_in(data / "ner_places.eval.jsonl")
    assert len(places) >= 15 and not places & trained, sorted(places & trained)


@pytest.mark.parametrize("task", ["ner", "biomed"])
def test_rows_ask_for_varying_subsets_of_the_types(task: str) -> None:
    space = load_task_file(DEMO / f"{task}.yaml").label_space()
    subsets = [row["types"] for path in (DEMO / "data").glob(f"{task}.*.jsonl") for row in read_rows(path)]
    for types in subsets:
        assert types and types == [label for label in space if label in types], types  # label-space order
    share_all = sum(types == space for types in subsets) / len(subsets)
    assert 0.3 < share_all < 0.6 and any(len(types) == 1 for types in subsets)


def entities_of(row: dict) -> list[dict]:
    found = list(row.get("entities", []))
    for relation in row.get("relations", []):
        found += [relation["head"], relation["tail"]]
    return found


@pytest.mark.parametrize("path", [p for p in DATA_FILES if "entities" in read_rows(p)[0]], ids=lambda p: p.name)
def test_entity_offsets_match_the_sentence(path: Path) -> None:
    for row in read_rows(path):
        text = row.get("sentence", row.get("text"))
        for entity in entities_of(row):
            start, end = entity["pos"]
            assert text[start:end] == entity["name"], (text, entity)
        names = [e["name"] for e in row.get("entities", [])]
        assert all(r["head"]["name"] in names and r["tail"]["name"] in names for r in row.get("relations", []))


def test_texts_are_lowercase_and_short() -> None:
    for path in DATA_FILES:
        for row in read_rows(path):
            for value in row.values():
                if isinstance(value, str):
                    assert value == value.lower() and len(value.split()) <= 40, (path.name, value)


def test_every_demo_task_file_validates() -> None:
    tasks = [load_task_file(path) for path in TASK_FILES]
    assert sorted(t.name for t in tasks) == TASK_NAMES
    for task in tasks:
        assert task.name == f"demo/{task.file.stem}"
        assert 2 <= len(task.templates) <= 3
        assert task.held_out == (task.name == "demo/ner_places")
        for path in task_files(task):
            assert path.is_file(), path
            columns = read_rows(path)[0].keys()
            assert {c.split(".")[0] for c in task.columns.values()} <= columns


@pytest.mark.parametrize("task_file", TASK_FILES, ids=lambda p: p.stem)
def test_labels_in_data_are_in_the_label_space(task_file: Path) -> None:
    task = load_task_file(task_file)
    space = task.label_space()
    for path in task_files(task):
        for row in read_rows(path):
            if task.output == "typed_spans":
                used = {e["type"] for e in row["entities"]}
            elif task.output == "triples":
                used = {r["type"] for r in row["relations"]}
            elif task.output == "label":
                used = {row["intent"]}
            else:
                assert space is None
                continue
            assert used <= set(space), (path.name, used)


@pytest.mark.parametrize("task_file", TASK_FILES, ids=lambda p: p.stem)
def test_every_template_renders_every_row(task_file: Path) -> None:
    """With the package's real renderer."""
    task = load_task_file(task_file)
    compiled = templates.compile_templates(task)
    for path in task_files(task):
        for row in read_rows(path):
            for template in compiled.values():
                example = template.render(sources.row_fields(task, row, task.label_space()))
                assert example.target and len(example.target.split()) <= 30
                if "types" in row:  # only the entities of the asked-for types
                    wanted = [f"{e['type']}: {e['name']}" for e in row["entities"] if e["type"] in row["types"]]
                    assert example.target == ("; ".join(wanted) or "None"), (row, example.target)
