"""Micro precision, recall and F1 of typed spans ("type: span; ..." or "None"), strict (type, span) match.

Reference: UIE's scorer (universal-ie/UIE ``uie/extraction/scorer.py``, string match) and
seqeval; options and the InstructUIE convention as in ``scoring.ItemF1Metric``.
"""

from t2t_mtl.evaluation import scoring


class SpanF1(scoring.ItemF1Metric):
    """Typed-span F1; precision and recall as extras."""

    metric = "span_f1"
    parser = "typed_spans"
