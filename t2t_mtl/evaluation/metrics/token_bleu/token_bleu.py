"""CodeXGLUE's BLEU-4 for code generation and repair (Bugs2Fix, Java-C# translation, CONCODE).

Reference: microsoft/CodeXGLUE ``evaluator/bleu.py`` ``_bleu`` (the same file in
Code-Code/code-refinement, Code-Code/code-to-code-trans and Text-Code/text-to-code), which
calls ``compute_bleu(..., smooth=True)`` (Google's NMT BLEU). Corpus BLEU over whitespace
tokens of the stripped lines, case kept, nothing else normalised; every n-gram precision is
add-one smoothed (Lin and Och, 2004), unigrams included; with several references, n-grams clip
against the most generous one and the shortest one sets the brevity penalty. The script rounds
to 2 decimals; this does not.
"""

import evaluate

from t2t_mtl.evaluation.bleu import code_corpus_bleu
from t2t_mtl.evaluation.scoring import pair_info, reference_lists


class TokenBleu(evaluate.Metric):
    """Smoothed corpus BLEU of whitespace-tokenised code, 0-100."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        return {"token_bleu": code_corpus_bleu(predictions, reference_lists(references))}
