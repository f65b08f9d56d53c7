"""Scores behind the metric modules, in percent (0-100).

Every metric takes, per prediction, one reference or a list of them; with several,
an example counts with the reference that suits the prediction best (the
Super-NaturalInstructions and SGD convention).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Hashable, Sequence

import datasets
import evaluate

from t2t_mtl.errors import T2TError
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


def oos_rates(predictions: Sequence[str], references: References, oos_label: str) -> dict[str, float]:
    """CLINC150's pair (Larson et al., 2019, section 4): in-scope accuracy and out-of-scope recall.

    In-scope accuracy is the accuracy over examples whose gold label is not ``oos_label`` (an
    in-scope query answered "oos" is wrong); out-of-scope recall is the share of examples whose
    gold label is ``oos_label`` predicted as it. Labels are compared normalised, each example
    against the reference it matches (else its first); a rate without examples is 0.
    """
    if not isinstance(oos_label, str) or not oos_label.strip():
        raise T2TError(f"option oos_label must name the out-of-scope label (a non-empty string), not {oos_label!r}.")
    oos = get_parser("label").parse(oos_label)
    predicted, gold = best_labels(predictions, references)
    in_scope = [p == g for p, g in zip(predicted, gold) if g != oos]
    out_of_scope = [p == oos for p, g in zip(predicted, gold) if g == oos]
    return {"in_scope_accuracy": percent(sum(in_scope), len(in_scope)),
            "oos_recall": percent(sum(out_of_scope), len(out_of_scope)),
            "in_scope_examples": float(len(in_scope)), "oos_examples": float(len(out_of_scope))}


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


COUNTING = ("multiset", "set")
EMPTY = ("__empty__",)  # the pseudo-item "None" under empty_match: an empty output as one item


def check_choice(metric: str, option: str, value: object, allowed: Sequence[object]) -> None:
    """Raise T2TError unless ``value`` is one of ``allowed`` for the metric's ``option``."""
    if value not in allowed:
        raise T2TError(f"metric {metric}: option {option} must be one of {list(allowed)}, not {value!r}. "
                       f"Fix the metric's options in the task file (metrics: [{{name: {metric}, {option}: ...}}]).")


def micro_prf(predicted: Sequence[Counter], gold: Sequence[Counter]) -> dict[str, float]:
    """Micro precision, recall and F1 of predicted against gold item multisets.

    UIE's ``Metric`` (universal-ie/UIE ``uie/extraction/scorer.py``) and seqeval: each is 0
    when its denominator is 0, so a set with nothing predicted and nothing expected scores 0.
    """
    n_predicted, n_gold = sum(c.total() for c in predicted), sum(c.total() for c in gold)
    hits = sum((p & g).total() for p, g in zip(predicted, gold))
    return {
        "precision": percent(hits, n_predicted),
        "recall": percent(hits, n_gold),
        "f1": percent(2 * hits, n_predicted + n_gold),
    }


def _example_f1(predicted: Counter, gold: Counter) -> float:
    whole = predicted.total() + gold.total()
    return 2 * (predicted & gold).total() / whole if whole else 1.0


def item_prf(parser: str, predictions: Sequence[str], references: References, project: Projection | None = None,
             counting: str = "multiset", empty_match: bool = False, metric: str = "") -> dict[str, float]:
    """Micro P/R/F1 of the items ``parser`` reads, optionally projected (e.g. events to triggers).

    ``counting="multiset"`` (UIE's default "normal" match mode): an item predicted twice counts
    twice, each gold item matches once. ``counting="set"`` (UIE's "set" mode, InstructUIE):
    duplicates within an example collapse. ``empty_match=True`` (InstructUIE's evaluator):
    an output with no items is the item "None", so "None" for "None" is a hit, "None" for a
    non-empty gold a false positive, and items for an empty gold miss its "None".
    """
    check_choice(metric or parser, "counting", counting, COUNTING)
    check_choice(metric or parser, "empty_match", empty_match, (False, True))
    read = item_parser(parser).items

    def counts(text: str) -> Counter:
        items = project(read(text)) if project else read(text)
        found = Counter(set(items) if counting == "set" else items)
        return Counter([EMPTY]) if empty_match and not found else found

    predicted, gold = [], []
    for prediction, refs in zip(predictions, reference_lists(references)):
        mine = counts(prediction)
        predicted.append(mine)
        gold.append(max((counts(r) for r in refs), key=lambda g: _example_f1(mine, g)))
    return micro_prf(predicted, gold)


def prf_result(name: str, scores: dict[str, float]) -> dict[str, float]:
    """A P/R/F1 result with F1 as the metric's main value under its own name."""
    return {name: scores["f1"], "precision": scores["precision"], "recall": scores["recall"]}


class ItemF1Metric(evaluate.Metric):
    """Base of the item F1 metrics: micro P/R/F1 of the items ``parser`` reads, F1 as the main value.

    The reference is UIE's scorer (universal-ie/UIE ``uie/extraction/scorer.py``, ``Metric`` in its
    default "normal" match mode on strings), which equals seqeval's entity F1 on BIO tags: items
    counted as multisets, P/R/F1 0 when their denominator is 0, pieces compared after
    ``normalize_text``. Options (task file or preset): ``counting`` and ``empty_match`` (see
    ``item_prf``); ``counting: set`` with ``empty_match: true`` (the ``ie_instructuie`` preset)
    counts as InstructUIE's evaluator (BeyonderXX/InstructUIE ``src/evaluation/evaluator.py``).
    A subclass names the metric, the parser and optionally a projection of the items.
    """

    metric: str
    parser: str
    project: Projection | None = None

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(sys.modules[type(self).__module__].__doc__ or "")

    def _compute(self, predictions: list[str], references: list, counting: str = "multiset",
                 empty_match: bool = False) -> dict[str, float]:
        scores = item_prf(self.parser, predictions, references, type(self).project, counting=counting,
                          empty_match=empty_match, metric=self.metric)
        return prf_result(self.metric, scores)
