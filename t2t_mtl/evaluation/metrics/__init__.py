"""Metrics shipped as `evaluate` modules: one folder ``<name>/<name>.py`` per metric.

Each module returns its main value under its own name and any extra values under
other keys; ``compute_metrics`` reports the extras as "name/key". Keyword arguments of a
module's ``_compute`` are its options (a task file sets them: ``{name: span_f1, counting: set}``). Loading works
offline: ``evaluate.load`` on a local folder copies the script into its modules
cache and imports it from there (the script imports ``t2t_mtl``, which must be
importable).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

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


class MetricRequest(Protocol):
    """A metric by name with keyword options (a task file's ``metrics:`` entry)."""

    name: str
    options: Mapping[str, Any]


# Named sets of metric options that reproduce another project's scorer, per metric; a task
# file's own options win. InstructUIE (BeyonderXX/InstructUIE src/evaluation/evaluator.py) scores
# NER and RE as sets per sentence, and for NER only its "None" is an item that "None" matches
# (its event scorers read another output format: no preset for them).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "ie_instructuie": {
        "span_f1": {"counting": "set", "empty_match": True},
        "triple_f1": {"counting": "set"},
    },
}


def metric_options(name: str) -> dict[str, Any]:
    """The keyword options a shipped metric takes, with their defaults."""
    parameters = inspect.signature(load_metric(name)._compute).parameters
    return {key: p.default for key, p in parameters.items() if key not in ("predictions", "references")}


def resolve_metric(request: str | MetricRequest, preset: str | None = None) -> tuple[str, dict[str, Any]]:
    """(name, options) of a request, the preset filling options it leaves unset; T2TError when invalid."""
    name, options = (request, {}) if isinstance(request, str) else (request.name, dict(request.options))
    if preset is not None and preset not in PRESETS:
        raise T2TError(f"Unknown metric preset '{preset}'; available: {', '.join(PRESETS)}." + closest(preset, PRESETS))
    accepted = metric_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join(f"{key} (default {value!r})" for key, value in accepted.items()) or "no options"
        raise T2TError(f"Metric '{name}' has no option {', '.join(unknown)}; it takes {takes}."
                       + closest(unknown[0], accepted))
    return name, {**PRESETS.get(preset or "", {}).get(name, {}), **options}


def check_metrics(metrics: Sequence[str | MetricRequest], where: str, preset: str | None = None) -> None:
    """Fail early, naming ``where``, when a metric name, option or option value is wrong.

    Each metric scores one dummy example with its options, so a bad value fails here, not
    after training.
    """
    try:
        compute_metrics(metrics, ["None"], [["None"]], preset)
    except T2TError as error:
        raise T2TError(f"{where}, metrics: {error}") from error


def compute_metrics(
    metrics: Sequence[str | MetricRequest], predictions: list[str], references: Sequence[str | Sequence[str]],
    preset: str | None = None,
) -> dict[str, float]:
    """Scores of the requested metrics: main values keyed by name, extras by "name/key".

    A request is a metric name or a name with options; ``preset`` names a set of options
    (see ``PRESETS``). Each reference is a string or a non-empty list of strings (metrics take
    the best of them).
    """
    if len(predictions) != len(references):
        raise T2TError(
            f"Cannot score {len(predictions)} predictions against {len(references)} references:"
            " the counts must match."
        )
    if not references:
        raise T2TError("No examples to score: the predictions and references are empty.")
    from t2t_mtl.evaluation.scoring import reference_lists  # imports `evaluate`: only when scoring

    lists = reference_lists(references)
    empty = [i for i, refs in enumerate(lists) if not refs]
    if empty:
        raise T2TError(f"Examples {empty[:10]} have an empty list of references: give each at least one.")
    scores: dict[str, float] = {}
    for name, options in (resolve_metric(request, preset) for request in metrics):
        result = load_metric(name).compute(predictions=predictions, references=lists, **options)
        scores[name] = float(result.pop(name))
        scores.update({f"{name}/{key}": float(value) for key, value in result.items()})
    return scores
