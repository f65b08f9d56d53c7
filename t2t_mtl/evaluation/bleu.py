"""BLEU-4: corpus BLEU through sacrebleu, and CodeXGLUE's smoothed sentence BLEU for code summarisation."""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from collections.abc import Sequence

from sacrebleu.metrics import BLEU

ORDER = 4
_TINY = sys.float_info.min
_WORD_OR_SYMBOL = re.compile(r"\w+|[^\s\w]")


def corpus_bleu(predictions: Sequence[str], references: Sequence[Sequence[str]], tokenize: str = "13a",
                smooth_method: str = "exp") -> float:
    """sacreBLEU corpus BLEU-4 (0-100); examples may have different numbers of references."""
    width = max(len(refs) for refs in references)
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]
    return BLEU(tokenize=tokenize, smooth_method=smooth_method).corpus_score(list(predictions), streams).score


def _ngrams(tokens: list[str]) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for n in range(1, ORDER + 1) for i in range(len(tokens) - n + 1))


def summary_tokens(text: str) -> list[str]:
    """CodeXGLUE code-to-text tokenisation: lowercase, then runs of word characters and single symbols."""
    return _WORD_OR_SYMBOL.findall(text.strip().lower())


def smoothed_sentence_bleu(prediction: str, references: Sequence[str]) -> float:
    """Sentence BLEU-4 (0-1) as CodeXGLUE's code-to-text evaluator computes it.

    Clipped n-gram counts against the most generous reference; add-one smoothing of
    the 2- to 4-gram precisions (Lin and Och, 2004); brevity penalty
    exp(min(0, 1 - (r + 1) / (c + 1))) with r the shortest reference length.
    """
    hypothesis = summary_tokens(prediction)
    tokenized = [summary_tokens(r) for r in references]
    allowed: Counter = Counter()
    for ref in tokenized:
        allowed |= _ngrams(ref)
    found = _ngrams(hypothesis)
    log_precision = 0.0
    for n in range(1, ORDER + 1):
        correct = sum(min(count, allowed[gram]) for gram, count in found.items() if len(gram) == n)
        guessed = max(len(hypothesis) - n + 1, 0)
        add = 1 if n > 1 else 0
        log_precision += math.log(correct + add + _TINY) - math.log(guessed + add + _TINY)
    shortest = min(len(ref) for ref in tokenized)
    brevity = min(0.0, 1 - (shortest + 1) / (len(hypothesis) + 1))
    return math.exp(log_precision / ORDER + brevity)
