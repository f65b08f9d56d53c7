"""What importers share: reading files with clear errors, checking options, and counting bad records."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import datasets

from t2t_mtl.errors import T2TError, closest

logger = logging.getLogger("t2t_mtl.importers")


def read_json(path: Path) -> Any:
    """Parse a JSON file; errors name the file and line."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise T2TError(f"{path}, line {error.lineno}: corrupt JSON ({error.msg}).") from error
    except (OSError, UnicodeDecodeError) as error:
        raise T2TError(f"could not read {path}: {error}") from error


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
    """Rows as a Dataset; an import that yields nothing is an error."""
    if not rows:
        raise T2TError(f"{source}: no usable rows were imported.")
    return datasets.Dataset.from_list(rows)
