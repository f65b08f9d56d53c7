"""Load a task's rows as a `datasets.Dataset`, checking files before `datasets` sees them."""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np
from datasets.packaged_modules.csv.csv import Csv
from datasets.packaged_modules.json.json import Json
from datasets.packaged_modules.parquet.parquet import Parquet

from t2t_mtl.errors import T2TError, closest
from t2t_mtl.tasks.importers import IMPORTERS
from t2t_mtl.tasks.importers.common import OptionError, check_options
from t2t_mtl.tasks.schema import TaskSpec

Split = Literal["train", "eval"]
EVAL_SPLIT_SEED = 0  # which rows a task without an evaluation file holds out


def _check_local_file(path: Path, fmt: str, where: str, options: dict[str, Any]) -> None:
    """Fail early, naming the file and line, on a missing, empty or corrupt data file."""
    if not path.is_file():
        raise T2TError(f"{where}: data file {path} does not exist. Fix 'source.path' or pass data= in the recipe.")
    if path.stat().st_size == 0:
        raise T2TError(f"{where}: data file {path} is empty.")
    if fmt == "jsonl":
        if "field" in options:
            raise T2TError(f"{where}: source.options.field picks the rows out of one JSON document, but format "
                           f"'jsonl' reads one object per line of {path}. Remove the option, or use format: json.")
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
        _check_json_document(path, where, options.get("field"))


def _check_json_document(path: Path, where: str, field: str | None) -> None:
    """The document, or its key `field` when set, must be a non-empty list of rows."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise T2TError(f"{where}: {path}, line {error.lineno}: corrupt JSON ({error.msg}).") from error
    keys = sorted(document) if isinstance(document, dict) else None
    if field is not None:
        if keys is None:
            raise T2TError(f"{where}: source.options.field is '{field}', but {path} is not a JSON object "
                           f"(it holds a {type(document).__name__}). Remove source.options.field.")
        if field not in document:
            raise T2TError(f"{where}: source.options.field is '{field}', but {path} has no such key (its keys: "
                           f"{keys}).{closest(field, keys)} Set it to the key that holds the list of rows.")
        document = document[field]
    if not isinstance(document, list) or not document:
        held = f"{path}, key '{field}'," if field is not None else str(path)
        hint = (f" It is an object with keys {keys}: set source.options.field to the key that holds the rows."
                if keys and field is None else "")
        raise T2TError(f"{where}: {held} must hold a non-empty JSON list of objects.{hint}")


FILE_FORMATS = ("json", "jsonl", "csv", "parquet")
_BUILDERS = {"json": Json, "jsonl": Json, "csv": Csv, "parquet": Parquet}
_SET_HERE = {"path", "name", "version", "description", "data_dir", "data_files", "split", "streaming", "config_kwargs"}


def builder_options(fmt: str) -> dict[str, None]:
    """The `source.options` a file format passes on to `datasets.load_dataset`.

    Its builder config's fields and the loader's own keywords, less those the source sets itself.
    """
    config = {field.name for field in dataclasses.fields(_BUILDERS[fmt].BUILDER_CONFIG_CLASS)}
    loader = set(inspect.signature(datasets.load_dataset).parameters)
    return dict.fromkeys((config | loader) - _SET_HERE)


@contextmanager
def _options_of(task: TaskSpec) -> Iterator[None]:
    """An unknown option's error also names the task file that sets it."""
    try:
        yield
    except OptionError as error:
        raise T2TError(f"{task.where}: {error}") from error


def _load(task: TaskSpec, location: str, split_name: str) -> datasets.Dataset:
    fmt = task.source.format
    if fmt == "hub":
        return datasets.load_dataset(location, split=split_name, **task.source.options)
    path = Path(location)
    path = path if path.is_absolute() else task.base_dir / path
    if fmt in IMPORTERS:
        if not path.exists():
            raise T2TError(f"{task.where}: {path} does not exist. Fix 'source.path' or pass data= in the recipe.")
        with _options_of(task):
            return IMPORTERS[fmt](path, task.source.options, task)
    if fmt not in FILE_FORMATS:
        known = [*FILE_FORMATS, "hub", *sorted(IMPORTERS)]
        raise T2TError(f"{task.where}: unknown source.format '{fmt}'.{closest(fmt, known)} Known formats: {known}")
    with _options_of(task):
        check_options(task.source.options, builder_options(fmt), fmt)
    _check_local_file(path, fmt, task.where, task.source.options)
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
