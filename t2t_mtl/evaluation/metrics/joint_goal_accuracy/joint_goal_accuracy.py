"""Joint goal accuracy: percent of turns whose whole dialogue state ("slot=value; ...") is right.

With several references (SGD lists equivalent values of a slot), any of them counts.
"""

import evaluate

from t2t_mtl.evaluation.scoring import matches, mean_best, pair_info


class JointGoalAccuracy(evaluate.Metric):
    """Percent of predicted states equal, as sets of (slot, value), to a reference state."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list) -> dict[str, float]:
        return {"joint_goal_accuracy": mean_best(matches("slot_values"), predictions, references)}
