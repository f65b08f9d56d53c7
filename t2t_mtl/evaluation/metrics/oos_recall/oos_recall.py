"""Out-of-scope recall for intent sets with an out-of-scope class (CLINC150's second number).

Reference: Larson et al. (2019), section 4: the share of examples whose gold label is
``oos_label`` (default "oos") that are predicted as out of scope. Use it beside
``in_scope_accuracy``; the out-of-scope example count is an extra.
"""

import evaluate

from t2t_mtl.evaluation.scoring import oos_rates, pair_info


class OosRecall(evaluate.Metric):
    """Percent of out-of-scope examples predicted as out of scope."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list, oos_label: str = "oos") -> dict[str, float]:
        rates = oos_rates(predictions, references, oos_label)
        return {"oos_recall": rates["oos_recall"], "oos_examples": rates["oos_examples"]}
