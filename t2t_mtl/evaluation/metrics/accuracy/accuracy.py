"""Accuracy and macro F1 (over the reference labels) of normalised class labels."""

import evaluate

from t2t_mtl.evaluation.scoring import best_labels, macro_f1, matches, mean_best, pair_info


class Accuracy(evaluate.Metric):
    """Percent of predictions equal to one of their labels, and the mean per-label F1."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        return {"accuracy": mean_best(matches("label"), predictions, references),
                "macro_f1": macro_f1(*best_labels(predictions, references))}
