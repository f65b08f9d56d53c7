"""Slot F1 for dialogue state tracking: micro P/R/F1 of (slot, value) pairs over turns."""

import evaluate

from t2t_mtl.evaluation.scoring import item_prf, pair_info, prf_result


class SlotF1(evaluate.Metric):
    """Slot-value F1; precision and recall as extras."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        return prf_result("slot_f1", item_prf("slot_values", predictions, references))
