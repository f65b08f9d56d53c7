"""The domain task packs: every task file validates (round trip included) on real or format fixtures,
and every shared data set loads through a task file with the counts of its README."""

from __future__ import annotations

import argparse
import glob
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from t2t_mtl.data import render_rows
from t2t_mtl.evaluation import available_metrics, available_parsers
from t2t_mtl.evaluation.parsers import item_parser
from t2t_mtl.formats import FORMATS
from t2t_mtl.recipe import load_recipe
from t2t_mtl.task_commands import missing_data, run_tasks_command, validate_task
from t2t_mtl.tasks.registry import select_tasks
from t2t_mtl.tasks.schema import TaskSpec, load_task_file
from t2t_mtl.tasks.sources import load_rows

from conftest import SHARED_DATA
from domain_fixtures import FIXTURES, INSTRUCTIONS, SHARED_PATHS, shared, shipped_task_files, write_ni, write_sgd

needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")
TASKS = {load_task_file(path).name: path for path in shipped_task_files()}


def task(name: str) -> TaskSpec:
    return load_task_file(TASKS[name])


def pointed_at(spec: TaskSpec, path: Path) -> TaskSpec:
    """The task reading `path` instead of its default data."""
    moved = spec.model_copy(update={"source": spec.source.model_copy(update={"path": str(path)})})
    moved._file = spec.file
    return moved


def all_rows(name: str, path: Path) -> list[dict]:
    """Training and evaluation rows of a task reading `path`, in file order."""
    spec = task(name)
    return [*load_rows(spec, "train", str(path)), *load_rows(spec, "eval", str(path))]


def test_every_task_is_covered_and_well_formed() -> None:
    assert set(TASKS) == set(SHARED_PATHS) | set(FIXTURES)
    for name, path in TASKS.items():
        spec = load_task_file(path)
        assert path.relative_to(path.parents[1]).as_posix() == f"{spec.domain}/{name.split('/')[1]}.yaml"
        assert len(spec.templates) >= 3, name
        prompts = {(t.instruction, t.input) for t in spec.templates}
        assert len(prompts) == len(spec.templates), f"{name}: templates must differ"
        assert {m.name for m in spec.metrics} <= set(available_metrics()) and spec.output in available_parsers()


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_tasks_validate_on_format_fixtures(tmp_path: Path, name: str) -> None:
    spec = pointed_at(task(name), FIXTURES[name](tmp_path))
    assert validate_task(spec, n=5) == []


@needs_shared
@pytest.mark.parametrize("name", sorted(SHARED_PATHS))
def test_tasks_validate_on_shared_data(name: str) -> None:
    assert validate_task(pointed_at(task(name), shared(name)), n=5) == []


def test_validate_without_data_checks_templates_only(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = task("ie/ner_mit_restaurant")
    absent = pointed_at(spec, tmp_path / "absent")
    assert missing_data(absent) == tmp_path / "absent" and validate_task(absent, n=3) == []
    broken = absent.model_copy(update={"columns": {"entities": "entities"}})
    assert validate_task(broken, n=3) == ["templates use fields ['text'] that 'columns:' does not map"]
    args = argparse.Namespace(action="validate", names=["ie/ee_casie"], task_dir=[str(INSTRUCTIONS)], n=2)
    run_tasks_command(args)
    if missing_data(task("ie/ee_casie")):
        assert "ie/ee_casie: ok (templates only; rows not checked: no data at" in capsys.readouterr().out


def test_round_trip_catches_a_mismatched_format(tmp_path: Path) -> None:
    folder = FIXTURES["ie/ee_casie"](tmp_path)
    spec = pointed_at(task("ie/ee_casie"), folder)
    wrong = spec.model_copy(update={"output": "typed_spans"})
    problems = validate_task(wrong, n=1)
    assert any("uses ['format_events'], which output 'typed_spans' does not read" in p for p in problems)
    template = spec.templates[0].model_copy(update={"target": "Events: {{ events | format_events }}"})
    problems = validate_task(spec.model_copy(update={"templates": [template, *spec.templates[1:]]}), n=1)
    assert any("round trip: parsing the target 'Events: databreach: breached" in p for p in problems)


def test_ni_prompt_has_k_examples_and_all_references(tmp_path: Path) -> None:
    spec = pointed_at(task("ni/ni_task"), write_ni(tmp_path / "task0_toy.json"))
    rows = load_rows(spec, "eval")
    first = render_rows(spec, 0, rows, seed=None)[0]
    definition = "Definition: Say whether the review is positive or negative."
    assert first["source"].startswith(f"{definition}\n\nPositive Example 1 -")
    assert "Positive Example 2 -" in first["source"] and "Positive Example 3" not in first["source"]
    assert re.search(r"Now complete the following example -\nInput: review \d+\nOutput:$", first["source"])
    assert first["target"] == "negative" and first["references"] == ["negative", "neg"]
    none = render_rows(spec, 0, rows, seed=None, template_id="definition_only")[0]["source"]
    assert "Example" not in none.replace("complete the following example", "")
    zero = spec.model_copy(update={"source": spec.source.model_copy(update={"options": {"pos_examples": 0}})})
    zero._file = spec.file
    assert "Positive Example" not in render_rows(zero, 0, load_rows(zero, "eval"), seed=None)[0]["source"]


def test_dst_references_flow_to_rendered_rows(tmp_path: Path) -> None:
    spec = pointed_at(task("dialogue/dst_sgd"), write_sgd(tmp_path / "train")).model_copy(update={"held_out": True})
    last = render_rows(spec, 0, load_rows(spec, "eval"), seed=None)[-1]  # held out: every turn, in order
    assert last["target"] == "genre=thriller; theater=Grand; title=Heat"
    # the canonical state, then the DSTC8 reference: every listed value, the schema's slots
    assert last["references"][0] == last["target"]
    assert json.loads(last["references"][1])["slot_values"]["title"] == ["Heat", "heat"]


# Sentences (instances, turns) and annotations per shared data set, as its README and SOURCE.json state.
NER_BIO = {"ncbi": (940, 960), "bc5cdr": (4797, 9809), "AnatEM": (3830, 4616), "JNLPBA": (3856, 8662),
           "bc2gm": (5038, 6325), "linnaeus": (7142, 1433), "BioNLP09": (2446, 3589)}
NER_BIO_TASKS = {"ncbi": "biomed/ner_ncbi_disease", "bc5cdr": "biomed/ner_bc5cdr", "AnatEM": "biomed/ner_anatem",
                 "JNLPBA": "biomed/ner_jnlpba", "bc2gm": "biomed/ner_bc2gm", "linnaeus": "biomed/ner_linnaeus",
                 "BioNLP09": "biomed/ner_bionlp09"}


@needs_shared
def test_ie_counts() -> None:
    rows = all_rows("ie/ner_mit_restaurant", shared("ie/ner_mit_restaurant"))
    assert len(rows) == 1520 and sum(len(r["entities"]) for r in rows) == 3150
    labels = json.loads((SHARED_DATA / "ie/NER/mit-restaurant/labels.json").read_text())
    assert task("ie/ner_mit_restaurant").label_space() == labels and len(labels) == 8
    rows = all_rows("ie/re_conll04", shared("ie/re_conll04"))
    assert len(rows) == 288 and sum(len(r["relations"]) for r in rows) == 422
    assert {rel["type"] for r in rows for rel in r["relations"]} == set(task("ie/re_conll04").label_space())
    assert len(task("ie/re_conll04").label_space()) == 5
    assert {e["type"] for r in rows for e in r["entities"]} == set(task("ie/et_conll04").label_space())


@needs_shared
@pytest.mark.parametrize("dataset", sorted(NER_BIO))
def test_ner_bio_counts(dataset: str) -> None:
    name = NER_BIO_TASKS[dataset]
    rows = all_rows(name, shared(name))
    assert (len(rows), sum(len(r["entities"]) for r in rows)) == NER_BIO[dataset]
    labels = json.loads((SHARED_DATA / "ie/NER_bio" / dataset / "labels.json").read_text())
    assert task(name).label_space() == labels
    assert {e["type"] for r in rows for e in r["entities"]} <= set(labels)


@needs_shared
def test_ner_bio_sizes_span_the_readme_range_and_subsets_split_bc5cdr() -> None:
    assert min(n for n, _ in NER_BIO.values()) == 940 and max(n for n, _ in NER_BIO.values()) == 7142
    chemical = all_rows("biomed/ner_bc5cdr_chemical", shared("biomed/ner_bc5cdr_chemical"))
    disease = all_rows("biomed/ner_bc5cdr_disease", shared("biomed/ner_bc5cdr_disease"))
    assert len(chemical) == len(disease) == 4797
    counts = [sum(len(r["entities"]) for r in rows) for rows in (chemical, disease)]
    assert sum(counts) == 9809 and min(counts) > 0
    assert {e["type"] for r in chemical for e in r["entities"]} == {"Chemical"}


@needs_shared
def test_ni_counts() -> None:
    index = json.loads((SHARED_DATA / "ni/INDEX.json").read_text())
    assert len(index) == 18
    for entry in index:
        rows = all_rows("ni/ni_task", SHARED_DATA / "ni" / f"{entry['task']}.json")
        assert len(rows) == entry["n_test"] == 100
        assert len(rows[0]["positive_examples"]) == min(2, entry["n_pos_examples"])
        assert all(r["outputs"] for r in rows)
    spec = task("ni/ni_task")
    dev = spec.model_copy(update={"source": spec.source.model_copy(update={"options": {"instances": "Dev_Instances"}})})
    dev._file = spec.file
    assert len(load_rows(dev, "train", str(SHARED_DATA / "ni" / f"{index[0]['task']}.json"))) + 1 == index[0]["n_dev"]


@needs_shared
def test_code_and_dialogue_counts() -> None:
    assert len(all_rows("code/repair_bugs2fix", shared("code/repair_bugs2fix"))) == 5835
    assert len(all_rows("code/summarize_ruby", shared("code/summarize_ruby"))) == 1261
    intents = all_rows("dialogue/intent_banking77", shared("dialogue/intent_banking77"))
    categories = json.loads((SHARED_DATA / "dialogue/banking77/categories.json").read_text())
    assert len(intents) == 3080 and task("dialogue/intent_banking77").label_space() == categories
    assert len(categories) == 77 and {r["category"] for r in intents} == set(categories)
    user = all_rows("dialogue/dst_sgd", shared("dialogue/dst_sgd"))
    system = all_rows("dialogue/response_sgd", shared("dialogue/response_sgd"))
    assert len({r["dialogue_id"] for r in user}) == 128 and len(user) + len(system) == 1304
    assert {r["service"] for r in user} == {"Media_3", "Movies_3", "Hotels_2"}
    acts = {a["act"] for r in all_rows("dialogue/act_sgd", shared("dialogue/act_sgd")) for a in r["actions"]}
    assert acts == set(task("dialogue/act_sgd").label_space())


@needs_shared
@pytest.mark.parametrize("folder", ["NER/mit-restaurant", "RE/conll04", *(f"NER_bio/{d}" for d in sorted(NER_BIO))])
def test_every_shared_ie_row_round_trips(folder: str) -> None:
    rows = json.loads((SHARED_DATA / "ie" / folder / "test.json").read_text())
    spans, triples = FORMATS["format_spans"], FORMATS["format_triples"]
    for row in rows:
        assert Counter(item_parser("typed_spans").items(spans.render(row["entities"]))) == spans.gold(row["entities"])
        relations = row.get("relations", [])
        assert Counter(item_parser("triples").items(triples.render(relations))) == triples.gold(relations)


@needs_shared
@pytest.mark.parametrize("recipe", ["domains_cpu.yaml", "domains_flan_t5_base.yaml"])
def test_domain_recipes_select_shipped_tasks_on_shared_data(recipe: str) -> None:
    path = INSTRUCTIONS.parent / "recipes" / recipe
    loaded = load_recipe(path)
    selected = select_tasks(loaded, [path.parent.parent])
    globbed = [e for e in loaded.tasks if e.data and "*" in e.data]  # one task per matching file
    assert len(selected) == len(loaded.tasks) - len(globbed) + sum(len(glob.glob(e.data)) for e in globbed)
    assert {s.spec.domain for s in selected} >= {"ie", "dialogue", "code", "biomed"}
    for item in selected:
        assert Path(item.entry.data).is_file(), item.entry.data
