"""Event argument classification F1: micro P/R/F1 of (event type, role, argument) triples.

The argument counts when its event type and role are right: UIE's ``EventScorer`` role score
(universal-ie/UIE ``uie/extraction/scorer.py``, string match, the Text2Event convention);
options as in ``scoring.ItemF1Metric``.
"""

from t2t_mtl.evaluation import scoring
from t2t_mtl.evaluation.parsers import Item


def arguments(events: list[Item]) -> list[tuple]:
    """(event type, role, argument) of each argument of each event."""
    return [(kind, role, name) for kind, _, args in events for role, name in args]


class ArgumentF1(scoring.ItemF1Metric):
    """Argument F1; precision and recall as extras."""

    metric = "argument_f1"
    parser = "events"
    project = arguments
