"""Importers: read a benchmark's own file layout into rows, selected by `source.format`.

An importer is a function `(path: Path, options: dict, task: TaskSpec) -> datasets.Dataset`
registered under a format name with `@register("name")`. `datasets`' own formats
(json, jsonl, csv, parquet) and `hub` need no importer. Shipped: `ie_instructions`
(InstructUIE's IE-INSTRUCTIONS folders), `natural_instructions` (Super-NI task files),
`conll` (CoNLL/BIO token files), `sgd` (Schema-Guided Dialogue) and `pubmedqa`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets

Importer = Callable[[Path, dict[str, Any], Any], datasets.Dataset]
IMPORTERS: dict[str, Importer] = {}


def register(name: str) -> Callable[[Importer], Importer]:
    """Register an importer under a `source.format` name."""

    def decorate(function: Importer) -> Importer:
        IMPORTERS[name] = function
        return function

    return decorate


# The importers register themselves on import.
from t2t_mtl.tasks.importers import conll, ie_instructions, natural_instructions, pubmedqa, sgd  # noqa: F401
