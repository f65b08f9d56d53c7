"""Dialogue act F1: micro P/R/F1 of (act, slot, value) triples ("ACT(slot=value); ..." or "None")."""

import evaluate

from t2t_mtl.evaluation.scoring import item_prf, pair_info, prf_result


class ActF1(evaluate.Metric):
    """Dialogue act F1; precision and recall as extras."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        return prf_result("act_f1", item_prf("dialogue_acts", predictions, references))
