"""Event argument classification F1: micro P/R/F1 of (event type, role, argument) triples.

The argument counts when its event type and role are right (the Text2Event / UIE convention).
"""

import evaluate

from t2t_mtl.evaluation.parsers import Item
from t2t_mtl.evaluation.scoring import item_prf, pair_info, prf_result


def arguments(events: list[Item]) -> list[tuple]:
    """(event type, role, argument) of each argument of each event."""
    return [(kind, role, name) for kind, _, args in events for role, name in args]


class ArgumentF1(evaluate.Metric):
    """Argument F1; precision and recall as extras."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        return prf_result("argument_f1", item_prf("events", predictions, references, arguments))
