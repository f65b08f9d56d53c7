"""ROUGE-L F-measure, best over the references, mean over examples, in percent.

Reference: Super-NaturalInstructions ``eval/automatic/evaluation.py`` (allenai/natural-instructions,
commit 8540acd): rouge-score's ``RougeScorer(["rougeL"], use_stemmer=True)`` on the raw
prediction and reference (its tokenizer lowercases and keeps only ASCII letters and digits, so
accents are not folded: "Suárez" is "su rez"). ``tokenizer: xlingual`` is the official
cross-lingual track: GPT-2 byte-level BPE tokens with the "Ġ" space mark removed, no stemming
(``xlingual_tokenizer`` names the tokenizer to load, "gpt2" from the Hub or a local folder).
"""

import functools

import evaluate
from rouge_score import rouge_scorer

from t2t_mtl.evaluation.scoring import check_choice, mean_best, pair_info


class _SpaceFreeBPE:
    """A Hugging Face tokenizer's tokens without the leading "Ġ" of byte-level BPE."""

    def __init__(self, name_or_path: str) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)

    def tokenize(self, text: str) -> list[str]:
        return [token.lstrip("Ġ") for token in self.tokenizer.tokenize(text)]


@functools.cache
def _scorer(tokenizer: str, xlingual_tokenizer: str) -> rouge_scorer.RougeScorer:
    if tokenizer == "xlingual":
        return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_SpaceFreeBPE(xlingual_tokenizer))
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


class RougeL(evaluate.Metric):
    """Mean best-reference ROUGE-L F-measure, in percent."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list, tokenizer: str = "default",
                 xlingual_tokenizer: str = "gpt2") -> dict[str, float]:
        check_choice("rouge_l", "tokenizer", tokenizer, ("default", "xlingual"))
        scorer = _scorer(tokenizer, xlingual_tokenizer)

        def rouge(prediction: str, reference: str) -> float:
            return scorer.score(target=reference, prediction=prediction)["rougeL"].fmeasure

        return {"rouge_l": mean_best(rouge, predictions, references)}
