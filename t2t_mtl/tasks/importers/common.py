"""What importers share: reading files with clear errors, checking options, and counting bad records."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa

from t2t_mtl.errors import T2TError, closest
from t2t_mtl.textfiles import not_text

logger = logging.getLogger("t2t_mtl.importers")


def read_json(path: Path) -> Any:
    """Parse a JSON file; errors name the file and line."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise T2TError(f"{path}, line {error.lineno}: corrupt JSON ({error.msg}).") from error
    except UnicodeDecodeError as error:
        raise not_text(path, error) from error
    except OSError as error:
        raise T2TError(f"could not read {path}: {error}") from error


def jsonl_objects(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of each non-blank line of a JSONL file; a line that is not a JSON object is a
    T2TError naming the file and line."""
    with path.open(encoding=encoding) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise T2TError(f"{path}, line {number}: corrupt JSON ({error.msg})") from error
            if not isinstance(row, dict):
                raise T2TError(f"{path}, line {number}: a JSON {json_kind(row) or 'null'}, but each line must be a "
                               f"JSON object of the task's columns, such as {{\"text\": \"...\"}}.")
            yield number, row


def json_kind(value: Any) -> str | None:
    """A value's JSON type as a user reads it (integers and decimals are both numbers); None for null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


def _kinds(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, kind) for a value and everything inside it: `col.key` in objects, `col[]` in lists."""
    kind = json_kind(value)
    if kind is None:
        return
    yield path, kind
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _kinds(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from _kinds(item, f"{path}[]")


class ColumnKinds:
    """Checks that a column holds one JSON type in every row (nulls aside), as an Arrow column must.

    `columns` limits the check to those columns (the ones a task maps); every column when None.
    """

    def __init__(self, source: Path | str, columns: Iterable[str] | None = None) -> None:
        self.source = source
        self.columns = set(columns) if columns is not None else None
        self.first: dict[str, tuple[str, str]] = {}  # path -> (kind, place where first seen)

    def add(self, row: dict[str, Any], place: str) -> None:
        """Check one row; T2TError naming both places when a value's type differs from earlier rows'."""
        for column, value in row.items():
            if self.columns is not None and column not in self.columns:
                continue
            for path, kind in _kinds(value, column):
                seen_kind, seen_place = self.first.setdefault(path, (kind, place))
                if kind != seen_kind:
                    raise T2TError(
                        f"{self.source}, {place}, column '{path}': {_a(kind)} ({_shown(value)}), but {seen_place} "
                        f"holds {_a(seen_kind)} there; a column must hold one type in every row. Give every row "
                        f"the same type (for example quote numbers as strings), or null for no value.")


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def split_file(path: Path, split: str) -> Path:
    """`path` itself when it is a file; in a folder, the one file named `<split>.<ext>`."""
    if path.is_file():
        return path
    found = sorted(p for p in path.glob(f"{split}.*") if p.is_file())
    if len(found) != 1:
        present = sorted(p.name for p in path.iterdir())
        what = "no file" if not found else f"several files ({[p.name for p in found]})"
        raise T2TError(f"{path}: {what} for split '{split}' (looked for {split}.*; the folder has {present}). "
                       "Set source.split, or point the path at the file.")
    return found[0]


class OptionError(T2TError):
    """An unknown `source.options` key; the loader adds which task file holds it."""


def check_options(options: dict[str, Any], known: dict[str, Any], fmt: str) -> dict[str, Any]:
    """The options with defaults filled in; an unknown option (OptionError) names the known ones."""
    for key in options:
        if key not in known:
            raise OptionError(f"source.options: '{key}' is not an option of format '{fmt}'.{closest(key, known)} "
                             f"Options: {sorted(known)}.")
    return {**known, **options}


class BadRecords:
    """Counts records an importer cannot use; `skip` drops them with one warning, `fail` stops at the first."""

    POLICIES = ("skip", "fail")

    def __init__(self, source: Path, what: str, policy: str) -> None:
        if policy not in self.POLICIES:
            raise T2TError(f"{source}: '{policy}' is not a way to handle {what}; use one of {self.POLICIES}.")
        self.source, self.what, self.policy = source, what, policy
        self.count = 0
        self.first = ""

    def add(self, detail: str) -> None:
        """Record one bad record; raises under the `fail` policy."""
        if self.policy == "fail":
            raise T2TError(f"{self.source}: {self.what}: {detail} (the importer option is set to fail).")
        self.count += 1
        self.first = self.first or detail

    def report(self) -> None:
        """Warn once with the count and the first example."""
        if self.count:
            logger.warning("%s: skipped %d record(s) with %s; first: %s",
                           self.source, self.count, self.what, self.first)


def to_dataset(rows: list[dict[str, Any]], source: Path) -> datasets.Dataset:
    """Rows as a Dataset; an import that yields nothing, or mixes types in a column, is an error."""
    if not rows:
        raise T2TError(f"{source}: no usable rows were imported.")
    try:
        return datasets.Dataset.from_list(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        kinds = ColumnKinds(source)
        for number, row in enumerate(rows):  # names the column and row when types are mixed
            kinds.add(row, f"imported row {number}")
        raise T2TError(f"{source}: the imported rows do not fit one table ({error}).") from error
