"""Scores behind the metric modules, in percent (0-100).

Every metric takes, per prediction, one reference or a list of them; with several,
an example counts with the reference that suits the prediction best (the
Super-NaturalInstructions and SGD convention).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence

import datasets
import evaluate

from t2t_mtl.evaluation.parsers import Item, get_parser, item_parser

References = Sequence[str | Sequence[str]]
Projection = Callable[[list[Item]], list[Hashable]]


def pair_info(description: str) -> evaluate.MetricInfo:
    """MetricInfo for string predictions against one reference string or a list of them each."""
    return evaluate.MetricInfo(
        description=description,
        citation="",
        features=[
            datasets.Features({"predictions": datasets.Value("string"),
                               "references": datasets.Sequence(datasets.Value("string"))}),
            datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        ],
    )


def reference_lists(references: References) -> list[list[str]]:
    """Each example's references as a list (a lone string becomes a list of one)."""
    return [[refs] if isinstance(refs, str) else list(refs) for refs in references]


def percent(part: float, whole: float) -> float:
    """100 * part / whole, or 0 when whole is 0."""
    return 100.0 * part / whole if whole else 0.0


def parse_all(parser: str, texts: Sequence[str]) -> list[Hashable]:
    """Parse every text with the named parser."""
    return [get_parser(parser).parse(text) for text in texts]


def mean_best(score: Callable[[str, str], float], predictions: Sequence[str], references: References) -> float:
    """Mean over examples of the best ``score(prediction, reference)`` (0-1) over its references, in percent."""
    pairs = zip(predictions, reference_lists(references))
    return percent(sum(max(score(p, r) for r in refs) for p, refs in pairs), len(predictions))


def matches(parser: str) -> Callable[[str, str], float]:
    """A score of 1 when prediction and reference parse to the same structure, else 0."""
    parse = get_parser(parser).parse
    return lambda prediction, reference: float(parse(prediction) == parse(reference))


def best_labels(predictions: Sequence[str], references: References) -> tuple[list[Hashable], list[Hashable]]:
    """Parsed labels, each example's gold being the reference it matches, else its first."""
    predicted, gold = parse_all("label", predictions), []
    for label, refs in zip(predicted, reference_lists(references)):
        parsed = parse_all("label", refs)
        gold.append(label if label in parsed else parsed[0])
    return predicted, gold


def macro_f1(predicted: Sequence[Hashable], gold: Sequence[Hashable]) -> float:
    """Mean F1 over the labels that occur in ``gold``."""
    labels = set(gold)
    scores = [
        percent(
            2 * sum(p == g == label for p, g in zip(predicted, gold)),
            list(predicted).count(label) + list(gold).count(label),
        )
        for label in labels
    ]
    return sum(scores) / len(scores) if scores else 0.0


def micro_prf(predicted: Sequence[Counter], gold: Sequence[Counter]) -> dict[str, float]:
    """Micro precision, recall and F1 of predicted against gold item multisets.

    An item predicted twice counts twice (as two spans at two places would). An empty
    prediction on an empty reference adds nothing; when no item is predicted or expected
    anywhere, all three are 100.
    """
    n_predicted, n_gold = sum(c.total() for c in predicted), sum(c.total() for c in gold)
    if not n_predicted and not n_gold:
        return {"precision": 100.0, "recall": 100.0, "f1": 100.0}
    hits = sum((p & g).total() for p, g in zip(predicted, gold))
    return {
        "precision": percent(hits, n_predicted),
        "recall": percent(hits, n_gold),
        "f1": percent(2 * hits, n_predicted + n_gold),
    }


def _example_f1(predicted: Counter, gold: Counter) -> float:
    whole = predicted.total() + gold.total()
    return 2 * (predicted & gold).total() / whole if whole else 1.0


def item_prf(parser: str, predictions: Sequence[str], references: References,
             project: Projection | None = None) -> dict[str, float]:
    """Micro P/R/F1 of the items ``parser`` reads, optionally projected (e.g. events to triggers)."""
    read = item_parser(parser).items

    def counts(text: str) -> Counter:
        items = read(text)
        return Counter(project(items) if project else items)

    predicted, gold = [], []
    for prediction, refs in zip(predictions, reference_lists(references)):
        mine = counts(prediction)
        predicted.append(mine)
        gold.append(max((counts(r) for r in refs), key=lambda g: _example_f1(mine, g)))
    return micro_prf(predicted, gold)


def prf_result(name: str, scores: dict[str, float]) -> dict[str, float]:
    """A P/R/F1 result with F1 as the metric's main value under its own name."""
    return {name: scores["f1"], "precision": scores["precision"], "recall": scores["recall"]}
