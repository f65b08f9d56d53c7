"""ROUGE-L F-measure (rouge-score, Porter stemming) of normalised texts, mean over examples."""

import evaluate
from rouge_score import rouge_scorer

from t2t_mtl.evaluation.scoring import pair_info, parse_all, percent


class RougeL(evaluate.Metric):
    """Mean ROUGE-L F-measure, in percent."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
        pairs = zip(parse_all("text", references), parse_all("text", predictions))
        total = sum(scorer.score(ref, pred)["rougeL"].fmeasure for ref, pred in pairs)
        return {"rouge_l": percent(total, len(references))}
