"""Micro precision, recall and F1 of untyped entity mentions ("span; span" or "None").

Reference: UIE's scorer (universal-ie/UIE ``uie/extraction/scorer.py``, string match) and
seqeval; options and the InstructUIE convention as in ``scoring.ItemF1Metric``.
"""

from t2t_mtl.evaluation import scoring


class MentionF1(scoring.ItemF1Metric):
    """Mention (span without type) F1; precision and recall as extras."""

    metric = "mention_f1"
    parser = "mentions"
