"""Exact match: percent of predictions equal to their reference after normalisation."""

import evaluate

from t2t_mtl.evaluation.scoring import agreement, pair_info, parse_all


class ExactMatch(evaluate.Metric):
    """Percent of predictions whose normalised text equals the reference's."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        return {"exact_match": agreement(parse_all("text", predictions), parse_all("text", references))}
