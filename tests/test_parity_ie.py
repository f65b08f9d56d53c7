"""IE metrics equal UIE's scorer by default and InstructUIE's evaluator under the ``ie_instructuie`` preset.

Expected values (F1, precision, recall, in percent, rounded to 4 decimals) were computed once with:
- UIE: universal-ie/UIE ``uie/extraction/scorer.py`` ``Metric`` in its default "normal" match mode
  (the same class in zjunlp/AdaKGC at commit 9959240), fed the gold and predicted tuples;
- InstructUIE: BeyonderXX/InstructUIE ``src/evaluation/evaluator.py`` (commit e919e88), ``MetricF1``
  with ``EvaluatorNER._extract`` / ``EvaluatorRE._extract`` on the rendered target strings.
Names are lowercase words, so the scorers' text normalisations agree. Tolerance 0.01 points.
"""

import pytest

from t2t_mtl.evaluation import compute_metrics
from t2t_mtl.evaluation.formats import format_spans, format_triples

# sentences as (gold, predicted) lists of (type, name); then (UIE F1, P, R), (InstructUIE F1, P, R)
NER = [
    ([([('person', 'ann lee')], [('person', 'ann lee')])],
     (100.0, 100.0, 100.0), (100.0, 100.0, 100.0)),
    ([([('person', 'ann lee')], [('location', 'ann lee')])],
     (0.0, 0.0, 0.0), (0, 0.0, 0.0)),
    ([([('person', 'ann lee'), ('location', 'oslo')], [('person', 'ann lee')])],
     (66.6667, 100.0, 50.0), (66.6667, 100.0, 50.0)),
    ([([('person', 'ann lee')], [('person', 'ann lee'), ('location', 'oslo')])],
     (66.6667, 50.0, 100.0), (66.6667, 50.0, 100.0)),
    ([([('location', 'oslo'), ('location', 'oslo')], [('location', 'oslo')])],
     (66.6667, 100.0, 50.0), (100.0, 100.0, 100.0)),
    ([([('location', 'oslo')], [('location', 'oslo'), ('location', 'oslo')])],
     (66.6667, 50.0, 100.0), (100.0, 100.0, 100.0)),
    ([([('location', 'oslo'), ('location', 'oslo')], [('location', 'oslo'), ('location', 'oslo'), ('location', 'oslo')])],
     (80.0, 66.6667, 100.0), (100.0, 100.0, 100.0)),
    ([([], [])],
     (0.0, 0.0, 0.0), (100.0, 100.0, 100.0)),
    ([([], []), ([], [])],
     (0.0, 0.0, 0.0), (100.0, 100.0, 100.0)),
    ([([], []), ([('person', 'bob')], [('person', 'bob')])],
     (100.0, 100.0, 100.0), (100.0, 100.0, 100.0)),
    ([([], [('person', 'bob')])],
     (0.0, 0.0, 0.0), (0, 0.0, 0.0)),
    ([([('person', 'bob')], [])],
     (0.0, 0.0, 0.0), (0, 0.0, 0.0)),
    ([([], []), ([('person', 'bob')], [])],
     (0.0, 0.0, 0.0), (50.0, 50.0, 50.0)),
    ([([], [('person', 'bob')]), ([('person', 'bob')], [('person', 'bob')])],
     (66.6667, 50.0, 100.0), (50.0, 50.0, 50.0)),
    ([([('organization', 'acme'), ('person', 'bob')], [('organization', 'acme'), ('person', 'bob')]), ([], []), ([('location', 'rome')], [('person', 'rome')])],
     (66.6667, 66.6667, 66.6667), (75.0, 75.0, 75.0)),
    ([([('person', 'x'), ('person', 'y'), ('person', 'z')], [('person', 'x'), ('person', 'y')]), ([('location', 'a')], [('location', 'a'), ('location', 'b')])],
     (75.0, 75.0, 75.0), (75.0, 75.0, 75.0)),
    ([([('person', 'x')], [('person', 'x'), ('person', 'x')]), ([], [('organization', 'q')]), ([('organization', 'q')], [('organization', 'q')])],
     (66.6667, 50.0, 100.0), (66.6667, 66.6667, 66.6667)),
    ([([('location', 'paris'), ('organization', 'paris')], [('location', 'paris')])],
     (66.6667, 100.0, 50.0), (66.6667, 100.0, 50.0)),
    ([([('location', 'new york city')], [('location', 'new york')])],
     (0.0, 0.0, 0.0), (0, 0.0, 0.0)),
    ([([], []), ([], []), ([], [('location', 'mars')]), ([('location', 'venus')], [('location', 'venus')])],
     (66.6667, 50.0, 100.0), (75.0, 75.0, 75.0)),
    ([([('person', 'al'), ('person', 'al'), ('person', 'bo')], [('person', 'al'), ('person', 'bo'), ('person', 'bo')])],
     (66.6667, 66.6667, 66.6667), (100.0, 100.0, 100.0)),
    ([([('organization', 'un')], [('organization', 'un')]), ([('organization', 'eu')], []), ([], []), ([], [])],
     (66.6667, 100.0, 50.0), (75.0, 75.0, 75.0)),
]
# sentences as (gold, predicted) lists of (head, type, tail)
RE = [
    ([([('ann', 'work for', 'acme')], [('ann', 'work for', 'acme')])],
     (100.0, 100.0, 100.0), (100.0, 100.0, 100.0)),
    ([([('ann', 'work for', 'acme')], [('ann', 'live in', 'acme')])],
     (0.0, 0.0, 0.0), (0, 0.0, 0.0)),
    ([([('ann', 'work for', 'acme')], [('acme', 'work for', 'ann')])],
     (0.0, 0.0, 0.0), (0, 0.0, 0.0)),
    ([([], [])],
     (0.0, 0.0, 0.0), (0, 0, 0)),
    ([([], []), ([('ann', 'live in', 'oslo')], [('ann', 'live in', 'oslo')])],
     (100.0, 100.0, 100.0), (100.0, 100.0, 100.0)),
    ([([('ann', 'live in', 'oslo')], [('ann', 'live in', 'oslo'), ('ann', 'live in', 'oslo')])],
     (66.6667, 50.0, 100.0), (100.0, 100.0, 100.0)),
    ([([('a', 'live in', 'b'), ('c', 'live in', 'd')], [('a', 'live in', 'b')]), ([], [('e', 'work for', 'f')])],
     (50.0, 50.0, 50.0), (50.0, 50.0, 50.0)),
    ([([('a', 'work for', 'b')], []), ([], [])],
     (0.0, 0.0, 0.0), (0, 0, 0.0)),
    ([([('a', 'work for', 'b'), ('a', 'work for', 'b')], [('a', 'work for', 'b')])],
     (66.6667, 100.0, 50.0), (100.0, 100.0, 100.0)),
    ([([('x', 'live in', 'y')], [('x', 'live in', 'y'), ('x', 'work for', 'y')]), ([('p', 'work for', 'q')], [('p', 'work for', 'q')])],
     (80.0, 66.6667, 100.0), (80.0, 66.6667, 100.0)),
]


def _spans(items: list[tuple[str, str]]) -> str:
    return format_spans([{"type": kind, "name": name} for kind, name in items])


def _triples(items: list[tuple[str, str, str]]) -> str:
    return format_triples([{"head": {"name": h}, "type": kind, "tail": {"name": t}} for h, kind, t in items])


def _scores(metric: str, render, case: list, preset: str | None) -> tuple[float, float, float]:
    predictions, references = [render(pred) for _, pred in case], [render(gold) for gold, _ in case]
    scores = compute_metrics([metric], predictions, references, preset)
    return scores[metric], scores[f"{metric}/precision"], scores[f"{metric}/recall"]


@pytest.mark.parametrize(("case", "uie", "instructuie"), NER)
def test_span_f1_equals_uie_and_instructuie(case: list, uie: tuple, instructuie: tuple) -> None:
    assert _scores("span_f1", _spans, case, None) == pytest.approx(uie, abs=0.01)
    assert _scores("span_f1", _spans, case, "ie_instructuie") == pytest.approx(instructuie, abs=0.01)


@pytest.mark.parametrize(("case", "uie", "instructuie"), RE)
def test_triple_f1_equals_uie_and_instructuie(case: list, uie: tuple, instructuie: tuple) -> None:
    assert _scores("triple_f1", _triples, case, None) == pytest.approx(uie, abs=0.01)
    assert _scores("triple_f1", _triples, case, "ie_instructuie") == pytest.approx(instructuie, abs=0.01)
