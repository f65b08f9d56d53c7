"""Dialogue act F1: micro P/R/F1 of (act, slot, value) triples ("ACT(slot=value); ..." or "None").

No official scorer for SGD system acts: t2t_mtl's own item F1, counted as UIE counts items
(multisets, pieces normalised; see ``scoring.ItemF1Metric``), options as there.
"""

from t2t_mtl.evaluation import scoring


class ActF1(scoring.ItemF1Metric):
    """Dialogue act F1; precision and recall as extras."""

    metric = "act_f1"
    parser = "dialogue_acts"
