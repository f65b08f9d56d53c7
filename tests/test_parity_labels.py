"""Label metrics equal scikit-learn on the definitions they implement.

CLINC150 (Larson et al., 2019, section 4; clinc/oos-eval ships no scorer) defines in-scope accuracy
(accuracy over queries whose gold intent is in scope) and out-of-scope recall (recall of the "oos"
class); ``accuracy`` reports accuracy and macro F1 over the gold labels. Expected values were
computed once with scikit-learn 1.9.1: ``accuracy_score`` on the in-scope subset,
``recall_score`` on "is oos" booleans, ``accuracy_score`` and
``f1_score(average="macro", labels=sorted(set(gold)))`` on all rows. Tolerance 0.01 points.
"""

import pytest

from t2t_mtl.evaluation import compute_metrics
from t2t_mtl.tasks.schema import MetricSpec

# (predictions, gold, in-scope accuracy, OOS recall, accuracy, macro F1)
CASES = [
    (['oos', 'weather'], ['oos', 'weather'], 100.0, 100.0, 100.0, 100.0),
    (['weather', 'oos'], ['oos', 'weather'], 0.0, 0.0, 0.0, 0.0),
    (['oos', 'oos', 'oos'], ['weather', 'play_music', 'oos'], 0.0, 100.0, 33.3333, 16.6667),
    (['weather', 'weather'], ['weather', 'oos'], 100.0, 0.0, 50.0, 33.3333),
    (['book_flight'], ['book_flight'], 100.0, 0.0, 100.0, 100.0),
    (['oos'], ['oos'], 0.0, 100.0, 100.0, 100.0),
    (['oos', 'book_flight', 'oos', 'oos'], ['weather', 'book_flight', 'oos', 'play_music'], 33.3333, 100.0, 50.0, 37.5),
    (['play_music', 'oos', 'play_music', 'weather', 'weather', 'oos', 'play_music'], ['oos', 'oos', 'weather', 'weather', 'weather', 'oos', 'play_music'], 75.0, 66.6667, 71.4286, 70.0),
    (['oos', 'oos', 'oos', 'book_flight', 'book_flight', 'book_flight'], ['oos', 'oos', 'oos', 'weather', 'book_flight', 'play_music'], 33.3333, 100.0, 66.6667, 37.5),
    (['play_music', 'weather', 'book_flight', 'play_music', 'book_flight', 'oos', 'book_flight'], ['oos', 'weather', 'book_flight', 'play_music', 'book_flight', 'weather', 'book_flight'], 83.3333, 0.0, 71.4286, 58.3333),
    (['play_music', 'oos', 'weather', 'play_music', 'book_flight', 'oos', 'book_flight', 'play_music', 'play_music'], ['play_music', 'oos', 'weather', 'play_music', 'book_flight', 'oos', 'oos', 'play_music', 'play_music'], 100.0, 66.6667, 88.8889, 86.6667),
    (['book_flight', 'weather', 'oos', 'book_flight', 'oos', 'play_music', 'book_flight'], ['play_music', 'weather', 'oos', 'book_flight', 'book_flight', 'weather', 'play_music'], 33.3333, 100.0, 42.8571, 43.3333),
    (['weather', 'book_flight', 'oos', 'book_flight', 'weather', 'book_flight'], ['weather', 'book_flight', 'oos', 'book_flight', 'book_flight', 'book_flight'], 80.0, 100.0, 83.3333, 84.127),
    (['play_music', 'book_flight', 'book_flight', 'book_flight', 'book_flight', 'oos', 'play_music', 'play_music'], ['book_flight', 'oos', 'book_flight', 'book_flight', 'book_flight', 'oos', 'play_music', 'play_music'], 83.3333, 50.0, 75.0, 73.8889),
    (['book_flight', 'book_flight', 'oos', 'play_music', 'play_music', 'play_music', 'book_flight'], ['book_flight', 'book_flight', 'oos', 'play_music', 'play_music', 'weather', 'book_flight'], 83.3333, 100.0, 85.7143, 70.0),
    (['weather', 'oos', 'weather', 'play_music', 'weather', 'book_flight', 'play_music', 'book_flight'], ['weather', 'oos', 'weather', 'play_music', 'book_flight', 'weather', 'oos', 'book_flight'], 66.6667, 50.0, 62.5, 62.5),
    (['weather', 'oos', 'book_flight', 'book_flight', 'oos', 'book_flight', 'oos'], ['weather', 'oos', 'book_flight', 'book_flight', 'oos', 'book_flight', 'oos'], 100.0, 100.0, 100.0, 100.0),
    (['book_flight', 'play_music', 'oos', 'book_flight', 'weather', 'oos', 'play_music'], ['weather', 'play_music', 'oos', 'book_flight', 'book_flight', 'weather', 'play_music'], 50.0, 100.0, 57.1429, 54.1667),
    (['oos', 'play_music', 'weather'], ['oos', 'play_music', 'weather'], 100.0, 100.0, 100.0, 100.0),
    (['play_music', 'play_music', 'play_music', 'book_flight', 'weather', 'book_flight', 'oos'], ['oos', 'play_music', 'play_music', 'book_flight', 'weather', 'book_flight', 'oos'], 100.0, 50.0, 85.7143, 86.6667),
    (['weather', 'play_music', 'play_music', 'play_music', 'play_music', 'book_flight', 'play_music', 'book_flight', 'oos'], ['weather', 'play_music', 'oos', 'oos', 'play_music', 'book_flight', 'weather', 'book_flight', 'oos'], 83.3333, 33.3333, 66.6667, 68.4524),
    (['book_flight', 'play_music', 'book_flight', 'oos'], ['book_flight', 'play_music', 'book_flight', 'oos'], 100.0, 100.0, 100.0, 100.0),
]


@pytest.mark.parametrize(("predictions", "gold", "in_scope", "oos_recall", "accuracy", "macro_f1"), CASES)
def test_intent_metrics_equal_scikit_learn(predictions: list[str], gold: list[str], in_scope: float,
                                           oos_recall: float, accuracy: float, macro_f1: float) -> None:
    scores = compute_metrics(["in_scope_accuracy", "oos_recall", "accuracy"], predictions, gold)
    assert scores["in_scope_accuracy"] == pytest.approx(in_scope, abs=0.01)
    assert scores["oos_recall"] == pytest.approx(oos_recall, abs=0.01)
    assert scores["accuracy"] == pytest.approx(accuracy, abs=0.01)
    assert scores["accuracy/macro_f1"] == pytest.approx(macro_f1, abs=0.01)


def test_the_out_of_scope_label_is_an_option() -> None:
    metrics = [MetricSpec(name="in_scope_accuracy", oos_label="Out of Scope"), MetricSpec(name="oos_recall",
                                                                                        oos_label="Out of Scope")]
    scores = compute_metrics(metrics, ["out of scope", "weather", "weather"], ["Out of Scope", "oos", "weather"])
    assert scores["in_scope_accuracy"] == 50.0 and scores["oos_recall"] == 100.0  # "oos" is an intent here
    assert scores["in_scope_accuracy/oos_examples"] == 1.0
