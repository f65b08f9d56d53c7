"""Exact match: percent of predictions equal to one of their references after normalisation.

No external scorer: t2t_mtl's ``normalize_text`` (lowercase, accents stripped, words split from
punctuation) on both sides. Super-NaturalInstructions tasks use ``ni_exact_match``, the official one.
"""

import evaluate

from t2t_mtl.evaluation.scoring import matches, mean_best, pair_info


class ExactMatch(evaluate.Metric):
    """Percent of predictions whose normalised text equals a reference's."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        return {"exact_match": mean_best(matches("text"), predictions, references)}
