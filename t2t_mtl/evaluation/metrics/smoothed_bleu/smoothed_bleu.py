"""CodeXGLUE's smoothed sentence BLEU-4 for code summarisation, mean over examples.

Reference: microsoft/CodeXGLUE Code-Text/code-to-text/evaluator/evaluator.py
(``computeMaps`` and ``bleuFromMaps``, after MOSES/NIST ``bleu.py``). Texts are stripped and
lowercased, split into runs of word characters and single symbols (``splitPuncts``), then
re-tokenised by NIST ``normalize()``, which also splits off ``_``. Each example scores
exp(mean log precision + log brevity) with add-one smoothing of the 2- to 4-gram precisions
only and the brevity penalty exp(min(0, 1 - (r + 1) / (c + 1))), r the shortest reference;
an empty output therefore scores exp(-r), not 0. With several references (repeated ids in the
script's gold file), n-grams clip against the most generous one. Unrounded, as the script prints it.
"""

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
