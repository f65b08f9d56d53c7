"""Micro precision, recall and F1 of relation triples ("type: head, tail; ..." or "None"), strict match.

Reference: UIE's scorer (universal-ie/UIE ``uie/extraction/scorer.py``, string match) and
seqeval; options and the InstructUIE convention as in ``scoring.ItemF1Metric``.
"""

from t2t_mtl.evaluation import scoring


class TripleF1(scoring.ItemF1Metric):
    """Triple F1 over exact (head, relation, tail); precision and recall as extras."""

    metric = "triple_f1"
    parser = "triples"
