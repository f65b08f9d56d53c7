"""ROUGE-L F-measure (rouge-score, Porter stemming), best over the references, mean over examples.

As Super-NaturalInstructions scores it; rouge-score's tokenizer lowercases and drops
punctuation. Accents are stripped first so an uncased model is not penalised for them.
"""

import evaluate
from rouge_score import rouge_scorer

from t2t_mtl.evaluation.normalize import normalize_text
from t2t_mtl.evaluation.scoring import mean_best, pair_info


class RougeL(evaluate.Metric):
    """Mean best-reference ROUGE-L F-measure, in percent."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)

        def rouge(prediction: str, reference: str) -> float:
            return scorer.score(normalize_text(reference), normalize_text(prediction))["rougeL"].fmeasure

        return {"rouge_l": mean_best(rouge, predictions, references)}
