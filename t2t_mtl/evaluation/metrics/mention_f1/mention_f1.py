"""Micro precision, recall and F1 of untyped entity mentions ("span; span" or "None")."""

import evaluate

from t2t_mtl.evaluation.scoring import item_prf, pair_info, prf_result


class MentionF1(evaluate.Metric):
    """Mention (span without type) F1; precision and recall as extras."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        return prf_result("mention_f1", item_prf("mentions", predictions, references))
