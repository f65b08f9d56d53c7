"""Code exact match (percent), as CodeXGLUE's evaluators count it; case and everything else kept.

``compare="string"`` (default): the stripped prediction equals the stripped reference, so
``a  b`` does not match ``a b``. Reference: microsoft/CodeXGLUE
Code-Code/code-refinement/evaluator/evaluator.py (Bugs2Fix) and
Code-Code/code-to-code-trans/evaluator/evaluator.py (Java-C#), ``r == p`` on stripped lines.
``compare="tokens"``: the whitespace tokens are equal. Reference: microsoft/CodeXGLUE
Text-Code/text-to-code/evaluator/evaluator.py (CONCODE), ``pred.split() == gt.split()``.
The scripts round to 2 decimals; this does not. With several references, the best one counts.
"""

from collections.abc import Callable

import evaluate

from t2t_mtl.evaluation.scoring import check_choice, mean_best, pair_info

COMPARISONS: dict[str, Callable[[str, str], float]] = {
    "string": lambda prediction, reference: float(prediction.strip() == reference.strip()),
    "tokens": lambda prediction, reference: float(prediction.split() == reference.split()),
}


class CodeExactMatch(evaluate.Metric):
    """Percent of predictions equal to a reference, as strings or as whitespace tokens."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list, compare: str = "string") -> dict[str, float]:
        check_choice("code_exact_match", "compare", compare, list(COMPARISONS))
        return {"code_exact_match": mean_best(COMPARISONS[compare], predictions, references)}
