"""Accuracy and macro F1 (over the reference labels) of normalised class labels."""

import evaluate

from t2t_mtl.evaluation.scoring import agreement, macro_f1, pair_info, parse_all


class Accuracy(evaluate.Metric):
    """Percent of correct labels, and the mean per-label F1."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        predicted, gold = parse_all("label", predictions), parse_all("label", references)
        return {"accuracy": agreement(predicted, gold), "macro_f1": macro_f1(predicted, gold)}
