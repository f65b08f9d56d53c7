"""Accuracy and macro F1 (over the reference labels) of normalised class labels.

Reference: scikit-learn's ``accuracy_score`` and ``f1_score(average="macro", labels=<gold labels>)``
on the labels after ``normalize_text`` (case, accents and punctuation spacing folded), each
example counting with the reference label it matches (else its first).
"""

import evaluate

from t2t_mtl.evaluation.scoring import best_labels, macro_f1, matches, mean_best, pair_info


class Accuracy(evaluate.Metric):
    """Percent of predictions equal to one of their labels, and the mean per-label F1."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        return {"accuracy": mean_best(matches("label"), predictions, references),
                "macro_f1": macro_f1(*best_labels(predictions, references))}
