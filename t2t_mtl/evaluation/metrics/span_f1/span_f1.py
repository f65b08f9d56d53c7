"""Micro precision, recall and F1 of typed spans ("type: span; ..." or "None"), strict (type, span) match."""

import evaluate

from t2t_mtl.evaluation.scoring import item_prf, pair_info, prf_result


class SpanF1(evaluate.Metric):
    """Typed-span F1; precision and recall as extras."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        return prf_result("span_f1", item_prf("typed_spans", predictions, references))
