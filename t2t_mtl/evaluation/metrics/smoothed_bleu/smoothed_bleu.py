"""Smoothed sentence BLEU-4, mean over examples: CodeXGLUE's code summarisation metric (case-insensitive)."""

import evaluate

from t2t_mtl.evaluation.bleu import smoothed_sentence_bleu
from t2t_mtl.evaluation.scoring import pair_info, percent, reference_lists


class SmoothedBleu(evaluate.Metric):
    """Mean smoothed sentence BLEU, 0-100."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        pairs = zip(predictions, reference_lists(references))
        return {"smoothed_bleu": percent(sum(smoothed_sentence_bleu(p, refs) for p, refs in pairs), len(predictions))}
