"""Micro precision, recall and F1 of typed spans ("type: span; ..." or "None")."""

import evaluate

from t2t_mtl.evaluation.scoring import pair_info, parse_all, set_prf


class SpanF1(evaluate.Metric):
    """Typed-span F1; precision and recall as extras."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        scores = set_prf(parse_all("typed_spans", predictions), parse_all("typed_spans", references))
        return {"span_f1": scores.pop("f1"), **scores}
