"""Joint goal accuracy: percent of frames whose whole dialogue state is right, DSTC8-style for SGD.

Official reference: the DSTC8 schema-guided DST metric, google-research/google-research
``schema_guided_dst/metrics.py`` (commit c81395588a6132b39676c5f11ece4e56dff2317d) run by
``schema_guided_dst/evaluate.py`` (commit 1acdadcc599feeb5321fb9b7a3a39a2b19f0bfdf) with
fuzzywuzzy 0.17/0.18 and no python-Levenshtein, "#ALL_SERVICES" joint goal accuracy x 100.

With a structured SGD reference (the importer's ``state_reference``: the service's slots and
all listed values of each active slot) a frame scores the product, over the slots of the
service's schema, of: exact, case-sensitive equality with the first listed value for a
categorical slot; the best fuzzywuzzy ``token_sort_ratio`` / 100 over all listed values for a
non-categorical one (partial credit); 1 for a slot neither gold nor predicted, 0 for one only
on one side. Predicted slots outside the schema are ignored; a slot predicted twice counts
with its first value. See ``t2t_mtl.evaluation.dialogue_state`` for the details.

Option ``fuzzy``: ``difflib`` (default; fuzzywuzzy as the DSTC8 requirements install it),
``levenshtein`` (fuzzywuzzy with python-Levenshtein, via rapidfuzz's InDel ratio) or
``exact`` (the official ``use_fuzzy_match=False``).

With plain "slot=value; ..." references (other dialogue tasks) a frame counts 1 when its
(slot, value) set equals a reference's after ``normalize_text``, the best reference counting.
Plain references beside a structured one (the importer's rendered canonical state) are not scored.
"""

import evaluate

from t2t_mtl.evaluation.dialogue_state import joint_goal_accuracy
from t2t_mtl.evaluation.scoring import pair_info, reference_lists


class JointGoalAccuracy(evaluate.Metric):
    """Percent of frames with the whole state right (DSTC8 fuzzy scoring with structured SGD references)."""

    def _info(self) -> evaluate.MetricInfo:
        return pair_info(__doc__)

    def _compute(self, predictions: list[str], references: list, fuzzy: str = "difflib") -> dict[str, float]:
        return {"joint_goal_accuracy": joint_goal_accuracy(predictions, reference_lists(references), fuzzy)}
