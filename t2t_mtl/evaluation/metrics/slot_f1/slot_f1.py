"""Slot F1 for dialogue state tracking: micro P/R/F1 of (slot, value) pairs over turns.

No official scorer: t2t_mtl's own item F1. Slots and values are compared after
``normalize_text``; a pair predicted twice counts twice; every predicted pair counts,
in the service's schema or not. With several references, each example counts with the one
that suits it best. A structured SGD reference (``state_reference``, see
``t2t_mtl.evaluation.dialogue_state``) stands for every combination of its listed values:
each gold slot takes the listed value the prediction gave it, else its first.
"""

import evaluate

from t2t_mtl.evaluation.dialogue_state import plain_references
from t2t_mtl.evaluation.scoring import item_prf, pair_info, prf_result, reference_lists


class SlotF1(evaluate.Metric):
    """Slot-value F1; precision and recall as extras."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        plain = plain_references(predictions, reference_lists(references))
        return prf_result("slot_f1", item_prf("slot_values", predictions, plain))
