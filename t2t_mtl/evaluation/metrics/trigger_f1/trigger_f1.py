"""Event trigger classification F1: micro P/R/F1 of (event type, trigger) pairs.

Reference: UIE's ``EventScorer`` trigger score (universal-ie/UIE ``uie/extraction/scorer.py``,
string match); options as in ``scoring.ItemF1Metric``. "None" on a sentence without events
predicts nothing and so earns nothing (unless ``empty_match``).
"""

from t2t_mtl.evaluation import scoring
from t2t_mtl.evaluation.parsers import Item


def triggers(events: list[Item]) -> list[tuple]:
    """(type, trigger) of each event."""
    return [(kind, trigger) for kind, trigger, _ in events]


class TriggerF1(scoring.ItemF1Metric):
    """Trigger F1; precision and recall as extras."""

    metric = "trigger_f1"
    parser = "events"
    project = triggers
