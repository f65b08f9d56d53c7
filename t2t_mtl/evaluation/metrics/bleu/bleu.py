"""Corpus BLEU-4 with sacreBLEU's defaults (13a tokenisation, exponential smoothing), several references allowed.

Reference: sacreBLEU ``BLEU().corpus_score`` itself (signature nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp);
code tasks use ``token_bleu`` and ``smoothed_bleu``, CodeXGLUE's own.
"""

import evaluate

from t2t_mtl.evaluation.bleu import corpus_bleu
from t2t_mtl.evaluation.scoring import pair_info, reference_lists


class Bleu(evaluate.Metric):
    """sacreBLEU corpus score, 0-100."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        return {"bleu": corpus_bleu(predictions, reference_lists(references))}
