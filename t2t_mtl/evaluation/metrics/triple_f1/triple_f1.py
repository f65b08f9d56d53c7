"""Micro precision, recall and F1 of relation triples ("type: head, tail; ..." or "None")."""

import evaluate

from t2t_mtl.evaluation.scoring import pair_info, parse_all, set_prf


class TripleF1(evaluate.Metric):
    """Triple F1; precision and recall as extras."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        scores = set_prf(parse_all("triples", predictions), parse_all("triples", references))
        return {"triple_f1": scores.pop("f1"), **scores}
