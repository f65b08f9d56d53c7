"""Corpus BLEU-4 over whitespace tokens, cased, unsmoothed: CodeXGLUE's BLEU for code generation and repair.

Computed by sacreBLEU with tokenize="none" and smooth_method="none".
"""

import evaluate

from t2t_mtl.evaluation.bleu import corpus_bleu
from t2t_mtl.evaluation.scoring import pair_info, reference_lists


class TokenBleu(evaluate.Metric):
    """Corpus BLEU of pre-tokenized code, 0-100."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        return {"token_bleu": corpus_bleu(predictions, reference_lists(references), "none", "none")}
