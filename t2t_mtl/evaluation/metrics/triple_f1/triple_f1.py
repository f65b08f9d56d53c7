"""Micro precision, recall and F1 of relation triples ("type: head, tail; ..." or "None"), strict match."""

import evaluate

from t2t_mtl.evaluation.scoring import item_prf, pair_info, prf_result


class TripleF1(evaluate.Metric):
    """Triple F1 over exact (head, relation, tail); precision and recall as extras."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        return prf_result("triple_f1", item_prf("triples", predictions, references))
