"""Data pipeline: render + tokenize (cached), truncation, labels, mixture, length grouping, collator."""

import logging
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from t2t_mtl.data import Seq2SeqCollator, TokenizerSettings, check_labels, render_rows, tokenize
from t2t_mtl.errors import T2TError
from t2t_mtl.recipe import MixtureSpec
from t2t_mtl.tasks.mixture import group_batches, mixture_shares, sample_stream
from t2t_mtl.tasks.schema import load_task_file
from t2t_mtl.tasks.sources import load_rows

from conftest import colour_rows, write_task


@pytest.fixture(scope="module")
def tokenizer(tiny_t5):
    return AutoTokenizer.from_pretrained(tiny_t5)


def test_training_render_samples_templates_deterministically(tmp_path: Path):
    task = load_task_file(write_task(tmp_path, "toy/c", colour_rows(40)))
    rows = load_rows(task, "train")
    first, again = render_rows(task, 0, rows, seed=1), render_rows(task, 0, rows, seed=1)
    assert first["template"] == again["template"] and set(first["template"]) == {"ask", "plain"}
    assert first["target"] == rows["label"]  # targets stay with their rows
    evaluation = render_rows(task, 0, rows, seed=None)
    assert set(evaluation["template"]) == {"ask"}


def test_tokenize_appends_eos_and_counts_truncation(tmp_path: Path, tokenizer):
    task = load_task_file(write_task(tmp_path, "toy/c", colour_rows(8)))
    rendered = render_rows(task, 0, load_rows(task, "train"), seed=None)
    short = tokenize(rendered, TokenizerSettings(tokenizer, 8, 8))
    assert all(len(ids) == 8 for ids in short["input_ids"])
    assert sum(short["source_truncated"]) == len(short)
    assert all(labels[-1] == tokenizer.sep_token_id for labels in short["labels"])
    roomy = tokenize(rendered, TokenizerSettings(tokenizer, 64, 8))
    assert sum(roomy["source_truncated"]) == 0
    assert tokenizer.decode(roomy["labels"][0], skip_special_tokens=True) == rendered["target"][0]


def test_label_outside_space_warns_or_fails(tmp_path: Path, caplog):
    rows = colour_rows(8) + [{"text": "the sun", "label": "yellow"}] * 3
    task = load_task_file(write_task(tmp_path, "toy/c", rows, source={"path": "c.jsonl", "eval_size": 1}))
    rendered = render_rows(task, 0, load_rows(task, "train"), seed=0)
    yellow = rendered["target"].count("yellow")
    with caplog.at_level(logging.WARNING):
        assert yellow >= 2 and check_labels(task, rendered, strict=False)["yellow"] == yellow
    assert f"'yellow' ×{yellow}" in caplog.text
    with pytest.raises(T2TError, match="outside the label space.*strict_labels"):
        check_labels(task, rendered, strict=True)


def test_mixture_strategies():
    sizes = [100, 1]
    assert mixture_shares(sizes, [1, 1], MixtureSpec(strategy="proportional"))[0] == pytest.approx(100 / 101)
    assert mixture_shares(sizes, [1, 1], MixtureSpec(strategy="temperature", temperature=2))[0] == pytest.approx(10 / 11)
    assert mixture_shares(sizes, [1, 3], MixtureSpec(strategy="equal"))[1] == pytest.approx(0.75)


def test_stream_is_deterministic_and_covers_each_pass():
    shares = np.array([0.5, 0.5])
    stream = sample_stream([10, 7], shares, 200, seed=3)
    assert np.array_equal(stream, sample_stream([10, 7], shares, 200, seed=3))
    first_pass = stream[stream[:, 0] == 0][:10, 1]
    assert sorted(first_pass) == list(range(10))
    assert not np.array_equal(stream, sample_stream([10, 7], shares, 200, seed=4))


def test_length_grouping_cuts_padding():
    lengths = np.random.default_rng(0).integers(5, 200, size=4096)
    batches = group_batches(lengths, 16, seed=0)
    assert sorted(batches.ravel()) == list(range(4096))

    def padding(groups):
        return sum(int(lengths[g].max() * len(g) - lengths[g].sum()) for g in groups)

    assert padding(batches) < 0.2 * padding(np.arange(4096).reshape(-1, 16))


def test_collator_pads_and_carries_task_ids():
    batch = Seq2SeqCollator(pad_id=0)([
        {"input_ids": [5, 6, 7], "labels": [1, 2], "task_id": 3},
        {"input_ids": [5], "labels": [1, 2, 3], "task_id": 1},
    ])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[1, 2, -100], [1, 2, 3]]
    assert batch["task_ids"].tolist() == [3, 1]
