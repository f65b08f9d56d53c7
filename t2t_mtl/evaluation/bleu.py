"""BLEU-4: sacreBLEU's corpus BLEU, and the two BLEUs of CodeXGLUE's evaluators (code generation, summarisation)."""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from collections.abc import Sequence

from sacrebleu.metrics import BLEU

ORDER = 4
_TINY = sys.float_info.min
_SUMMARY_TOKEN = re.compile(r"[^\W_]+|\S")


def corpus_bleu(predictions: Sequence[str], references: Sequence[Sequence[str]], tokenize: str = "13a",
                smooth_method: str = "exp") -> float:
    """sacreBLEU corpus BLEU-4 (0-100); examples may have different numbers of references."""
    width = max(len(refs) for refs in references)
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]
    return BLEU(tokenize=tokenize, smooth_method=smooth_method).corpus_score(list(predictions), streams).score


def _ngrams(tokens: list[str]) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for n in range(1, ORDER + 1) for i in range(len(tokens) - n + 1))


def _matches(hypothesis: list[str], references: list[list[str]]) -> tuple[list[int], list[int]]:
    """Per order 1-4: hypothesis n-grams found in the references (each clipped by its most generous
    reference), and hypothesis n-grams in all."""
    allowed: Counter = Counter()
    for reference in references:
        allowed |= _ngrams(reference)
    correct = [0] * ORDER
    for gram, count in (_ngrams(hypothesis) & allowed).items():
        correct[len(gram) - 1] += count
    return correct, [max(len(hypothesis) - n + 1, 0) for n in range(1, ORDER + 1)]


def code_corpus_bleu(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU-4 (0-100) of whitespace tokens, cased, as CodeXGLUE's ``evaluator/bleu.py`` ``_bleu``.

    N-gram matches and counts are summed over the corpus; every precision, unigrams included,
    is smoothed as (matches + 1) / (n-grams + 1); the brevity penalty is exp(1 - r / c) while
    c < r, with c the output length and r the sum of each example's shortest reference length.
    Unrounded (the script rounds to 2 decimals).
    """
    correct, total, length, reference_length = [0] * ORDER, [0] * ORDER, 0, 0
    for prediction, refs in zip(predictions, references):
        hypothesis, tokenized = prediction.split(), [r.split() for r in refs]
        found, possible = _matches(hypothesis, tokenized)
        correct = [a + b for a, b in zip(correct, found)]
        total = [a + b for a, b in zip(total, possible)]
        length += len(hypothesis)
        reference_length += min(len(r) for r in tokenized)
    log_precision = sum(math.log((c + 1) / (t + 1)) for c, t in zip(correct, total)) / ORDER
    return 100.0 * math.exp(log_precision + _log_brevity(length, reference_length))


def _log_brevity(length: int, reference_length: int) -> float:
    """Log of the penalty exp(1 - r / c) for c < r; 0 (no penalty) for c >= r, where the official
    script divides by zero at r = 0; -inf (a score of 0) for an empty output, where it divides by zero too."""
    if length >= reference_length:
        return 0.0
    return 1 - reference_length / length if length else -math.inf


def summary_tokens(text: str) -> list[str]:
    """CodeXGLUE code-to-text tokens: lowercased; runs of letters and digits, and each other non-space character.

    The same tokens as the evaluator's ``splitPuncts`` (runs of word characters and single
    symbols) followed by the NIST ``normalize()`` (which, after ``splitPuncts``, only splits
    off ``_``): ``project_dir`` gives ``project _ dir``.
    """
    return _SUMMARY_TOKEN.findall(text.lower())


def smoothed_sentence_bleu(prediction: str, references: Sequence[str]) -> float:
    """Sentence BLEU-4 (0-1) as CodeXGLUE's code-to-text evaluator computes it.

    Clipped n-gram counts against the most generous reference; add-one smoothing of
    the 2- to 4-gram precisions (Lin and Och, 2004); brevity penalty
    exp(min(0, 1 - (r + 1) / (c + 1))) with r the shortest reference length.
    """
    hypothesis = summary_tokens(prediction)
    tokenized = [summary_tokens(r) for r in references]
    correct, total = _matches(hypothesis, tokenized)
    smooth = [0] + [1] * (ORDER - 1)
    log_precision = sum(math.log(c + s + _TINY) - math.log(t + s + _TINY) for c, t, s in zip(correct, total, smooth))
    shortest = min(len(ref) for ref in tokenized)
    brevity = min(0.0, 1 - (shortest + 1) / (len(hypothesis) + 1))
    return math.exp(log_precision / ORDER + brevity)
