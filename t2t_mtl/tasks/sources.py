"""Load a task's rows as a `datasets.Dataset`, checking files before `datasets` sees them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np

from t2t_mtl.errors import T2TError, closest
from t2t_mtl.tasks.importers import IMPORTERS
from t2t_mtl.tasks.schema import TaskSpec

Split = Literal["train", "eval"]
EVAL_SPLIT_SEED = 0  # which rows a task without an evaluation file holds out


def _check_local_file(path: Path, fmt: str, where: str) -> None:
    """Fail early, naming the file and line, on a missing, empty or corrupt data file."""
    if not path.is_file():
        raise T2TError(f"{where}: data file {path} does not exist. Fix 'source.path' or pass data= in the recipe.")
    if path.stat().st_size == 0:
        raise T2TError(f"{where}: data file {path} is empty.")
    if fmt == "jsonl":
        rows = 0
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise T2TError(f"{where}: {path}, line {number}: corrupt JSON ({error.msg}).") from error
                if not isinstance(row, dict):
                    raise T2TError(f"{where}: {path}, line {number}: each line must be a JSON object.")
                rows += 1
        if rows == 0:
            raise T2TError(f"{where}: data file {path} holds no rows.")
    elif fmt == "json":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise T2TError(f"{where}: {path}, line {error.lineno}: corrupt JSON ({error.msg}).") from error
        if not isinstance(rows, list) or not rows:
            raise T2TError(f"{where}: {path} must hold a non-empty JSON list of objects.")


FILE_FORMATS = ("json", "jsonl", "csv", "parquet")


def _load(task: TaskSpec, location: str, split_name: str) -> datasets.Dataset:
    fmt = task.source.format
    if fmt == "hub":
        return datasets.load_dataset(location, split=split_name, **task.source.options)
    path = Path(location)
    path = path if path.is_absolute() else task.base_dir / path
    if fmt in IMPORTERS:
        if not path.exists():
            raise T2TError(f"{task.where}: {path} does not exist. Fix 'source.path' or pass data= in the recipe.")
        return IMPORTERS[fmt](path, task.source.options, task)
    if fmt not in FILE_FORMATS:
        known = [*FILE_FORMATS, "hub", *sorted(IMPORTERS)]
        raise T2TError(f"{task.where}: unknown source.format '{fmt}'.{closest(fmt, known)} Known formats: {known}")
    _check_local_file(path, fmt, task.where)
    builder = "json" if fmt in ("json", "jsonl") else fmt
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train", **task.source.options)
    except Exception as error:  # datasets raises many types for unreadable files
        raise T2TError(f"{task.where}: could not read {path} as {fmt}: {error}") from error


def _eval_count(task: TaskSpec, total: int) -> int:
    size = task.source.eval_size
    return min(total - 1, max(1, round(total * size) if size < 1 else int(size)))


def _carve(task: TaskSpec, rows: datasets.Dataset, split: Split) -> datasets.Dataset:
    """A seeded random `eval_size` share of the rows for evaluation, the rest for training.

    The draw ignores the training seed, so every run of a task scores the same rows; each
    side keeps file order. Random, not the tail: files sorted by label would otherwise
    evaluate on labels that training never saw.
    """
    held = np.zeros(len(rows), dtype=bool)
    held[np.random.default_rng(EVAL_SPLIT_SEED).permutation(len(rows))[: _eval_count(task, len(rows))]] = True
    return rows.select(np.flatnonzero(held if split == "eval" else ~held))


def load_rows(task: TaskSpec, split: Split, data: str | None = None, eval_data: str | None = None) -> datasets.Dataset:
    """The task's training or evaluation rows, with column mappings checked.

    Held-out tasks have only evaluation rows. Without an evaluation file, evaluation takes
    a fixed random `source.eval_size` share of the training source and training the rest.
    """
    source = task.source
    train_location = data or source.path
    eval_location = eval_data or source.eval_path
    if split == "train" and task.held_out:
        raise T2TError(f"{task.where} is held out (held_out: true) and cannot be trained on.")
    if split == "eval" and (eval_location or task.held_out):
        rows = _load(task, eval_location or train_location, source.eval_split or source.split)
    else:
        rows = _load(task, train_location, source.split)
        if not eval_location:
            rows = _carve(task, rows, split)
    check_columns(task, rows.column_names)
    return rows


def check_columns(task: TaskSpec, available: list[str]) -> None:
    """Every mapped column must exist in the data (the first part of a dotted path)."""
    for field, column in task.columns.items():
        head = column.split(".", 1)[0]
        if head not in available:
            raise T2TError(
                f"{task.where}: columns.{field} maps to column '{column}', but the data has "
                f"columns {available}.{closest(head, available)}"
            )


def row_fields(task: TaskSpec, row: dict[str, Any], labels: list[str] | None, required: bool = True) -> dict[str, Any]:
    """The template variables for one row: mapped columns (dotted paths followed) and `labels`.

    When not `required` (unlabelled rows), mapped columns the row lacks are left out.
    """
    if task.columns:
        fields = {}
        for field, column in task.columns.items():
            try:
                fields[field] = _follow(row, column)
            except (KeyError, IndexError, TypeError) as error:
                if required:
                    raise T2TError(f"{task.where}: columns.{field}: a row has no '{column}' ({error!r})") from error
    else:
        fields = dict(row)
    if labels is not None:
        fields["labels"] = labels
    return fields


def _follow(row: dict[str, Any], dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value
