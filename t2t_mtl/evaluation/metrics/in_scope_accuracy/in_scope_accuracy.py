"""In-scope accuracy for intent sets with an out-of-scope class (CLINC150's first number).

Reference: Larson et al. (2019), "An Evaluation Dataset for Intent Classification and
Out-of-Scope Prediction", section 4 (clinc/oos-eval ships data, no scorer): accuracy over the
examples whose gold intent is in scope; predicting ``oos_label`` (default "oos") there is wrong.
The out-of-scope recall is the extra ``oos_recall``; the example counts are extras too.
"""

import evaluate

from t2t_mtl.evaluation.scoring import oos_rates, pair_info


class InScopeAccuracy(evaluate.Metric):
    """Percent of in-scope examples labelled right."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list, oos_label: str = "oos") -> dict[str, float]:
        rates = oos_rates(predictions, references, oos_label)
        return {"in_scope_accuracy": rates.pop("in_scope_accuracy"), **rates}
