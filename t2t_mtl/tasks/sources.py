"""Load a task's rows as a `datasets.Dataset`, checking files before `datasets` sees them."""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np
from datasets.packaged_modules.csv.csv import Csv
from datasets.packaged_modules.json.json import Json
from datasets.packaged_modules.parquet.parquet import Parquet

from t2t_mtl.errors import T2TError, closest
from t2t_mtl.tasks.importers import IMPORTERS
from t2t_mtl.tasks.importers.common import ColumnKinds, OptionError, check_options, jsonl_objects
from t2t_mtl.tasks.nulls import NullValue
from t2t_mtl.tasks.schema import TaskSpec
from t2t_mtl.textfiles import not_text

Split = Literal["train", "eval"]
EVAL_SPLIT_SEED = 0  # which rows a task without an evaluation file holds out
logger = logging.getLogger(__name__)


_ENCODING_FIX = ", or set source.options.encoding to the file's encoding"


def _check_local_file(path: Path, task: TaskSpec) -> None:
    """Fail early, naming the file and line, on a missing, empty, undecodable or corrupt data file."""
    where, fmt, options = task.where, task.source.format, task.source.options
    if not path.is_file():
        raise T2TError(f"{where}: data file {path} does not exist. Fix 'source.path' or pass data= in the recipe.")
    if path.stat().st_size == 0:
        raise T2TError(f"{where}: data file {path} is empty.")
    if fmt not in ("json", "jsonl"):
        return
    kinds = ColumnKinds(f"{where}: {path}", {c.split(".", 1)[0] for c in task.columns.values()} or None)
    encoding = options.get("encoding", "utf-8")
    try:
        if fmt == "jsonl":
            _check_jsonl(path, where, options, kinds)
        else:
            _check_json_document(path, where, options, kinds)
    except UnicodeDecodeError as error:
        raise T2TError(f"{where}: {not_text(path, error, encoding, _ENCODING_FIX)}") from error


def _check_jsonl(path: Path, where: str, options: dict[str, Any], kinds: ColumnKinds) -> None:
    """One JSON object per line, at least one, each mapped column of one type."""
    if "field" in options:
        raise T2TError(f"{where}: source.options.field picks the rows out of one JSON document, but format "
                       f"'jsonl' reads one object per line of {path}. Remove the option, or use format: json.")
    rows = 0
    try:
        for number, row in jsonl_objects(path, options.get("encoding", "utf-8")):
            kinds.add(row, f"line {number}")
            rows += 1
    except T2TError as error:
        raise T2TError(f"{where}: {error}") from error
    if rows == 0:
        raise T2TError(f"{where}: data file {path} holds no rows.")


def _check_json_document(path: Path, where: str, options: dict[str, Any], kinds: ColumnKinds) -> None:
    """The document, or its key `options.field` when set, must be a non-empty list of rows, each column of one type."""
    field = options.get("field")
    try:
        document = json.loads(path.read_text(encoding=options.get("encoding", "utf-8")))
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
    for number, row in enumerate(document):
        if not isinstance(row, dict):
            raise T2TError(f"{where}: {path}, row {number} (from 0) is not a JSON object.")
        kinds.add(row, f"row {number} (from 0)")


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
        try:
            return datasets.load_dataset(location, split=split_name, **task.source.options)
        except Exception as error:  # offline, unknown id, unknown split: datasets raises many types
            raise T2TError(f"{task.where}: could not load hub dataset '{location}' (split '{split_name}'): {error}. "
                           "Without network, download it where there is one, or point source.path at local "
                           "files (format jsonl, json, csv or parquet).") from error
    path = Path(location)
    path = path if path.is_absolute() else task.base_dir / path
    if fmt in IMPORTERS:
        if not path.exists():
            raise T2TError(f"{task.where}: {path} does not exist. Fix 'source.path' or pass data= in the recipe.")
        with _options_of(task):
            try:
                return IMPORTERS[fmt](path, task.source.options, task)
            except UnicodeDecodeError as error:
                raise T2TError(f"{task.where}: {not_text(path, error)}") from error
    if fmt not in FILE_FORMATS:
        known = [*FILE_FORMATS, "hub", *sorted(IMPORTERS)]
        raise T2TError(f"{task.where}: unknown source.format '{fmt}'.{closest(fmt, known)} Known formats: {known}")
    with _options_of(task):
        check_options(task.source.options, builder_options(fmt), fmt)
    _check_local_file(path, task)
    builder = "json" if fmt in ("json", "jsonl") else fmt
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train", **task.source.options)
    except Exception as error:  # datasets raises many types for unreadable files
        undecodable = _undecodable(error)
        if undecodable is not None:
            encoding = task.source.options.get("encoding", "utf-8")
            raise T2TError(f"{task.where}: {not_text(path, undecodable, encoding, _ENCODING_FIX)}") from error
        raise T2TError(f"{task.where}: could not read {path} as {fmt}: {error}") from error


def _undecodable(error: BaseException | None) -> UnicodeDecodeError | None:
    """The UnicodeDecodeError in the chain of exceptions that raised `error` (itself included), if any."""
    while error is not None and not isinstance(error, UnicodeDecodeError):
        error = error.__cause__ or error.__context__
    return error


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


def row_fields(task: TaskSpec, row: dict[str, Any], labels: list[str] | None, required: bool = True,
               number: int | None = None) -> dict[str, Any]:
    """The template variables for one row: mapped columns (dotted paths followed), `labels`, and for a composite
    task `subtasks` (each subtask's `labels` by its name).

    A mapped column the row lacks is an error when `required` (labelled rows). A null value,
    or a missing one in unlabelled rows, never renders as "None": with `source.nulls: error`
    it is a `NullValue`, which a template may test (`is defined`, `default`) but fails to
    read, naming the row (`number`, from 0, when given) and the column; with `empty` it is "".
    """
    fields = {name: _not_null(task, row, name, value, number) for name, value in _columns(task, row, required).items()}
    if labels is not None:
        fields["labels"] = labels
    if task.subtasks is not None:
        fields["subtasks"] = {subtask.name: {"labels": subtask.label_space()} for subtask in task.parts}
    return fields


def _columns(task: TaskSpec, row: dict[str, Any], required: bool) -> dict[str, Any]:
    """The row's values by field name: mapped columns (None where unlabelled rows lack one), else every column."""
    if not task.columns:
        return dict(row)
    fields = {}
    for field, column in task.columns.items():
        try:
            fields[field] = _follow(row, column)
        except (KeyError, IndexError, TypeError) as error:
            if required:
                raise T2TError(f"{task.where}: columns.{field}: a row has no '{column}' ({error!r})") from error
            fields[field] = None
    return fields


def _not_null(task: TaskSpec, row: dict[str, Any], field: str, value: Any, number: int | None) -> Any:
    """`value`, or what a null stands for under `source.nulls`."""
    if value is not None:
        return value
    column = task.columns.get(field, field)
    if task.source.nulls == "empty":
        _warn_empty(task.where, column)
        return ""
    which = f"row {number} (from 0)" if number is not None else "a row"
    mapped = f" (columns.{field})" if column != field else ""
    return NullValue(f"{which} {_excerpt(row)}: column '{column}'{mapped} is null or missing. Fix the data, give "
                     f"the template a fallback ({{{{ {field} | default('') }}}}), or set source.nulls: empty in the "
                     f"task file to render nulls as empty text.", field)


@cache
def _warn_empty(where: str, column: str) -> None:
    """Say once per task and column that its nulls render as empty text."""
    logger.warning("%s: column '%s' is null or missing in some rows; they render it as empty text "
                   "(source.nulls: empty).", where, column)


def _excerpt(row: dict[str, Any]) -> str:
    """A few of the row's values, to find it by: {"id": 7, "text": "Ann met Bob...", "tags": "[...]"}."""
    def short(value: Any) -> Any:
        if isinstance(value, str):
            return value if len(value) <= 30 else value[:30] + "..."
        return value if isinstance(value, (int, float, bool)) or value is None else "[...]"

    return json.dumps({key: short(value) for key, value in islice(row.items(), 4)}, ensure_ascii=False)


def _follow(row: dict[str, Any], dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        if value is None:  # a null on the way is a null
            return None
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value
