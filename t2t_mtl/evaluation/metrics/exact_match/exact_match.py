"""Exact match: percent of predictions equal to one of their references after normalisation."""

import evaluate

from t2t_mtl.evaluation.scoring import matches, mean_best, pair_info


class ExactMatch(evaluate.Metric):
    """Percent of predictions whose normalised text equals a reference's."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        return {"exact_match": mean_best(matches("text"), predictions, references)}
