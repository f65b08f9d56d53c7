"""Scores behind the metric modules, in percent (0-100)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import datasets
import evaluate

from t2t_mtl.evaluation.parsers import get_parser


def pair_info(description: str) -> evaluate.MetricInfo:
    """MetricInfo for a metric over string predictions and references."""
    return evaluate.MetricInfo(
        description=description,
        citation="",
        features=datasets.Features(
            {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
        ),
    )


def percent(part: float, whole: float) -> float:
    """100 * part / whole, or 0 when whole is 0."""
    return 100.0 * part / whole if whole else 0.0


def parse_all(parser: str, texts: Sequence[str]) -> list[Hashable]:
    """Parse every text with the named parser."""
    return [get_parser(parser).parse(text) for text in texts]


def agreement(predicted: Sequence[Hashable], gold: Sequence[Hashable]) -> float:
    """Share of predictions equal to their reference."""
    return percent(sum(p == g for p, g in zip(predicted, gold)), len(gold))


def macro_f1(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """Mean F1 over the labels that occur in ``gold``."""
    labels = set(gold)
    scores = [
        percent(
            2 * sum(p == g == label for p, g in zip(predicted, gold)),
            predicted.count(label) + gold.count(label),
        )
        for label in labels
    ]
    return sum(scores) / len(scores) if scores else 0.0


def set_prf(predicted: Sequence[frozenset], gold: Sequence[frozenset]) -> dict[str, float]:
    """Micro precision, recall and F1 of predicted against gold item sets.

    An empty prediction on an empty reference adds nothing; when no item is
    predicted or expected anywhere, all three are 100.
    """
    n_predicted, n_gold = sum(map(len, predicted)), sum(map(len, gold))
    if not n_predicted and not n_gold:
        return {"precision": 100.0, "recall": 100.0, "f1": 100.0}
    hits = sum(len(p & g) for p, g in zip(predicted, gold))
    return {
        "precision": percent(hits, n_predicted),
        "recall": percent(hits, n_gold),
        "f1": percent(2 * hits, n_predicted + n_gold),
    }
