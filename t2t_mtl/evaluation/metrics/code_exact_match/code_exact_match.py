"""Code exact match (CodeXGLUE): the prediction's whitespace tokens equal a reference's, case kept."""

import evaluate

from t2t_mtl.evaluation.scoring import mean_best, pair_info


def same_tokens(prediction: str, reference: str) -> float:
    """1 when both split on whitespace into the same tokens, else 0."""
    return float(prediction.split() == reference.split())


class CodeExactMatch(evaluate.Metric):
    """Percent of predictions token-for-token equal to a reference."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        return {"code_exact_match": mean_best(same_tokens, predictions, references)}
