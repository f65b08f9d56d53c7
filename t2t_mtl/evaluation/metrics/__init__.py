"""Metrics shipped as `evaluate` modules: one folder ``<name>/<name>.py`` per metric.

Each module returns its main value under its own name and any extra values under
other keys; ``compute_metrics`` reports the extras as "name/key". Loading works
offline: ``evaluate.load`` on a local folder copies the script into its modules
cache and imports it from there (the script imports ``t2t_mtl``, which must be
importable).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from t2t_mtl.errors import T2TError, closest

if TYPE_CHECKING:
    import evaluate

_ROOT = Path(__file__).parent


def available_metrics() -> list[str]:
    """Names of the shipped metrics."""
    return sorted(d.name for d in _ROOT.iterdir() if (d / f"{d.name}.py").is_file())


@functools.cache
def load_metric(name: str) -> evaluate.EvaluationModule:
    """Load a shipped metric by name (once per process)."""
    names = available_metrics()
    if name not in names:
        raise T2TError(f"Unknown metric '{name}'; available: {', '.join(names)}." + closest(name, names))
    import evaluate  # slow to import: only when a metric is needed

    return evaluate.load(str(_ROOT / name), keep_in_memory=True)


def compute_metrics(
    names: list[str], predictions: list[str], references: Sequence[str | Sequence[str]]
) -> dict[str, float]:
    """Scores of the named metrics: main values keyed by name, extras by "name/key".

    Each reference is a string or a non-empty list of strings (metrics take the best of them).
    """
    if len(predictions) != len(references):
        raise T2TError(
            f"Cannot score {len(predictions)} predictions against {len(references)} references:"
            " the counts must match."
        )
    if not references:
        raise T2TError("No examples to score: the predictions and references are empty.")
    lists = [[refs] if isinstance(refs, str) else list(refs) for refs in references]
    empty = [i for i, refs in enumerate(lists) if not refs]
    if empty:
        raise T2TError(f"Examples {empty[:10]} have an empty list of references: give each at least one.")
    scores: dict[str, float] = {}
    for name in names:
        result = load_metric(name).compute(predictions=predictions, references=lists)
        scores[name] = float(result.pop(name))
        scores.update({f"{name}/{key}": float(value) for key, value in result.items()})
    return scores
