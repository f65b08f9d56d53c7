"""Event trigger classification F1: micro P/R/F1 of (event type, trigger) pairs.

"None" on a sentence without events predicts nothing and so earns nothing.
"""

import evaluate

from t2t_mtl.evaluation.parsers import Item
from t2t_mtl.evaluation.scoring import item_prf, pair_info, prf_result


def triggers(events: list[Item]) -> list[tuple]:
    """(type, trigger) of each event."""
    return [(kind, trigger) for kind, trigger, _ in events]


class TriggerF1(evaluate.Metric):
    """Trigger F1; precision and recall as extras."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        return prf_result("trigger_f1", item_prf("events", predictions, references, triggers))
