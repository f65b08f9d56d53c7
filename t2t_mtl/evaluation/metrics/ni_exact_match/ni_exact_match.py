"""Super-NaturalInstructions exact match: lowercase, drop punctuation, squeeze spaces; best over references."""

import evaluate

from t2t_mtl.evaluation.scoring import mean_best, pair_info
from t2t_mtl.normalize import normalize_answer


def same_answer(prediction: str, reference: str) -> float:
    """1 when the normalised answers are equal, else 0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


class NiExactMatch(evaluate.Metric):
    """Percent of predictions equal to a reference after answer normalisation (Tk-Instruct)."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        return {"ni_exact_match": mean_best(same_answer, predictions, references)}
