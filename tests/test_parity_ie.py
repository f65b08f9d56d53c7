"""IE metrics equal UIE's scorer by default and InstructUIE's evaluator under the ``ie_instructuie`` preset.

Expected values (F1, precision, recall, in percent, rounded to 4 decimals) were computed once with:
- UIE: universal-ie/UIE ``uie/extraction/scorer.py`` ``Metric`` in its default "normal" match mode
  (the same class in zjunlp/AdaKGC at commit 9959240), fed the gold and predicted tuples: entities
  (type, name), mentions (name), relations (head, type, tail), and as its ``EventScorer`` does,
  triggers (type, trigger) and roles (type, role, argument);
- InstructUIE: BeyonderXX/InstructUIE ``src/evaluation/evaluator.py`` (commit e919e88), ``MetricF1``
  with ``EvaluatorNER._extract`` / ``EvaluatorRE._extract`` on the rendered target strings.
Names are lowercase words, so the scorers' text normalisations agree. Tolerance 0.01 points.
"""

from collections.abc import Callable

import pytest

from t2t_mtl.evaluation import compute_metrics
from t2t_mtl.formats import format_events, format_mentions, format_spans, format_triples

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
# sentences as (gold, predicted) lists of (head, type, tail); then UIE, InstructUIE
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
    ([([('a', 'live in', 'b')], [('a', 'live in', 'b')]), ([('c', 'work for', 'd')], [('c', 'work for', 'd')])],
     (100.0, 100.0, 100.0), (100.0, 100.0, 100.0)),
    ([([('a', 'live in', 'b')], []), ([], [('c', 'work for', 'd')]), ([], [])],
     (0.0, 0.0, 0.0), (0, 0.0, 0.0)),
    ([([('a', 'live in', 'b'), ('a', 'work for', 'b')], [('a', 'work for', 'b'), ('a', 'live in', 'b')])],
     (100.0, 100.0, 100.0), (100.0, 100.0, 100.0)),
    ([([('ann lee', 'work for', 'acme corp')], [('ann lee', 'work for', 'acme')])],
     (0.0, 0.0, 0.0), (0, 0.0, 0.0)),
    ([([('x', 'live in', 'y')], [('y', 'live in', 'x'), ('x', 'live in', 'y')])],
     (66.6667, 50.0, 100.0), (66.6667, 50.0, 100.0)),
    ([([], [('a', 'live in', 'b'), ('a', 'live in', 'b')])],
     (0.0, 0.0, 0.0), (0, 0.0, 0)),
    ([([('p', 'work for', 'q'), ('p', 'work for', 'q')], [('p', 'work for', 'q'), ('p', 'work for', 'q')])],
     (100.0, 100.0, 100.0), (100.0, 100.0, 100.0)),
    ([([('h', 'live in', 't')], [('h', 'live in', 't')]), ([], []), ([], []), ([('u', 'work for', 'v')], [])],
     (66.6667, 100.0, 50.0), (66.6667, 100.0, 50.0)),
    ([([('m', 'work for', 'n'), ('o', 'work for', 'n'), ('m', 'live in', 'k')], [('m', 'work for', 'n'), ('m', 'live in', 'k'), ('z', 'live in', 'k')])],
     (66.6667, 66.6667, 66.6667), (66.6667, 66.6667, 66.6667)),
    ([([('a', 'live in', 'b')], [('a', 'work for', 'c')]), ([('d', 'live in', 'e')], [('d', 'live in', 'e'), ('d', 'live in', 'e')])],
     (40.0, 33.3333, 50.0), (50.0, 50.0, 50.0)),
    ([([], []), ([('s', 'work for', 't')], [('s', 'work for', 't')]), ([('s', 'work for', 't')], [('t', 'work for', 's')])],
     (50.0, 50.0, 50.0), (50.0, 50.0, 50.0)),
]
# the NER sentences without types; then UIE
MENTIONS = [
    ([([('person', 'ann lee')], [('person', 'ann lee')])], (100.0, 100.0, 100.0)),
    ([([('person', 'ann lee')], [('location', 'ann lee')])], (100.0, 100.0, 100.0)),
    ([([('person', 'ann lee'), ('location', 'oslo')], [('person', 'ann lee')])], (66.6667, 100.0, 50.0)),
    ([([('person', 'ann lee')], [('person', 'ann lee'), ('location', 'oslo')])], (66.6667, 50.0, 100.0)),
    ([([('location', 'oslo'), ('location', 'oslo')], [('location', 'oslo')])], (66.6667, 100.0, 50.0)),
    ([([('location', 'oslo')], [('location', 'oslo'), ('location', 'oslo')])], (66.6667, 50.0, 100.0)),
    ([([('location', 'oslo'), ('location', 'oslo')], [('location', 'oslo'), ('location', 'oslo'), ('location', 'oslo')])], (80.0, 66.6667, 100.0)),
    ([([], [])], (0.0, 0.0, 0.0)),
    ([([], []), ([], [])], (0.0, 0.0, 0.0)),
    ([([], []), ([('person', 'bob')], [('person', 'bob')])], (100.0, 100.0, 100.0)),
    ([([], [('person', 'bob')])], (0.0, 0.0, 0.0)),
    ([([('person', 'bob')], [])], (0.0, 0.0, 0.0)),
    ([([], []), ([('person', 'bob')], [])], (0.0, 0.0, 0.0)),
    ([([], [('person', 'bob')]), ([('person', 'bob')], [('person', 'bob')])], (66.6667, 50.0, 100.0)),
    ([([('organization', 'acme'), ('person', 'bob')], [('organization', 'acme'), ('person', 'bob')]), ([], []), ([('location', 'rome')], [('person', 'rome')])], (100.0, 100.0, 100.0)),
    ([([('person', 'x'), ('person', 'y'), ('person', 'z')], [('person', 'x'), ('person', 'y')]), ([('location', 'a')], [('location', 'a'), ('location', 'b')])], (75.0, 75.0, 75.0)),
    ([([('person', 'x')], [('person', 'x'), ('person', 'x')]), ([], [('organization', 'q')]), ([('organization', 'q')], [('organization', 'q')])], (66.6667, 50.0, 100.0)),
    ([([('location', 'paris'), ('organization', 'paris')], [('location', 'paris')])], (66.6667, 100.0, 50.0)),
    ([([('location', 'new york city')], [('location', 'new york')])], (0.0, 0.0, 0.0)),
    ([([], []), ([], []), ([], [('location', 'mars')]), ([('location', 'venus')], [('location', 'venus')])], (66.6667, 50.0, 100.0)),
    ([([('person', 'al'), ('person', 'al'), ('person', 'bo')], [('person', 'al'), ('person', 'bo'), ('person', 'bo')])], (66.6667, 66.6667, 66.6667)),
    ([([('organization', 'un')], [('organization', 'un')]), ([('organization', 'eu')], []), ([], []), ([], [])], (66.6667, 100.0, 50.0)),
]
# sentences as (gold, predicted) lists of (type, trigger, ((role, argument), ...)); then UIE trigger, role
EVENTS = [
    ([([('attack', 'fired', (('attacker', 'troops'),))], [('attack', 'fired', (('attacker', 'troops'),))])],
     (100.0, 100.0, 100.0), (100.0, 100.0, 100.0)),
    ([([('attack', 'fired', (('attacker', 'troops'), ('place', 'city')))], [('attack', 'fired', (('attacker', 'troops'),))])],
     (100.0, 100.0, 100.0), (66.6667, 100.0, 50.0)),
    ([([('attack', 'fired', (('attacker', 'troops'),))], [('die', 'fired', (('attacker', 'troops'),))])],
     (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ([([('attack', 'fired', ())], [('attack', 'shot', ())])],
     (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ([([], [])],
     (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ([([], [('die', 'killed', (('victim', 'man'),))])],
     (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ([([('die', 'killed', (('victim', 'man'),))], [])],
     (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ([([('die', 'killed', (('victim', 'man'),))], [('die', 'killed', (('victim', 'man'), ('victim', 'man')))])],
     (100.0, 100.0, 100.0), (66.6667, 50.0, 100.0)),
    ([([('die', 'killed', ()), ('die', 'killed', ())], [('die', 'killed', ())])],
     (66.6667, 100.0, 50.0), (0.0, 0.0, 0.0)),
    ([([('die', 'killed', ())], [('die', 'killed', ()), ('die', 'killed', ())])],
     (66.6667, 50.0, 100.0), (0.0, 0.0, 0.0)),
    ([([('attack', 'hit', (('target', 'crowd'),)), ('die', 'died', (('victim', 'man'),))], [('attack', 'hit', (('target', 'man'),)), ('die', 'died', (('victim', 'man'),))])],
     (100.0, 100.0, 100.0), (50.0, 50.0, 50.0)),
    ([([('transport', 'moved', (('artifact', 'tanks'), ('destination', 'border')))], [('transport', 'moved', (('artifact', 'tanks'), ('origin', 'border')))])],
     (100.0, 100.0, 100.0), (50.0, 50.0, 50.0)),
    ([([('attack', 'fired', (('attacker', 'troops'),))], [('attack', 'fired', (('target', 'troops'),))]), ([], [])],
     (100.0, 100.0, 100.0), (0.0, 0.0, 0.0)),
    ([([], []), ([('meet', 'met', (('entity', 'leaders'),))], [('meet', 'met', (('entity', 'leaders'),))])],
     (100.0, 100.0, 100.0), (100.0, 100.0, 100.0)),
    ([([('meet', 'met', (('entity', 'a'), ('entity', 'b')))], [('meet', 'met', (('entity', 'b'), ('entity', 'a')))])],
     (100.0, 100.0, 100.0), (100.0, 100.0, 100.0)),
    ([([('sue', 'sued', (('plaintiff', 'x'),))], [('sue', 'sued', (('defendant', 'x'),)), ('sue', 'filed', ())])],
     (66.6667, 50.0, 100.0), (0.0, 0.0, 0.0)),
    ([([('elect', 'won', (('person', 'ann'),))], [('elect', 'won', (('person', 'ann'),))]), ([('elect', 'won', (('person', 'bo'),))], [('elect', 'won', (('person', 'al'),))])],
     (100.0, 100.0, 100.0), (50.0, 50.0, 50.0)),
    ([([('attack', 'a', ()), ('attack', 'b', ()), ('attack', 'c', ())], [('attack', 'a', ()), ('attack', 'b', ())])],
     (80.0, 100.0, 66.6667), (0.0, 0.0, 0.0)),
    ([([('die', 'd', (('victim', 'v'), ('place', 'p'), ('instrument', 'i')))], [('die', 'd', (('victim', 'v'), ('place', 'q')))])],
     (100.0, 100.0, 100.0), (40.0, 50.0, 33.3333)),
    ([([], [('die', 'd', ())]), ([('die', 'd', ())], [('die', 'd', ())]), ([('die', 'e', ())], [])],
     (50.0, 50.0, 50.0), (0.0, 0.0, 0.0)),
    ([([('arrest', 'held', (('person', 'man'),))], [('arrest', 'held', (('person', 'man'),)), ('arrest', 'held', (('person', 'man'),))])],
     (66.6667, 50.0, 100.0), (66.6667, 50.0, 100.0)),
]


def _spans(items: list) -> str:
    return format_spans([{"type": kind, "name": name} for kind, name in items])


def _mentions(items: list) -> str:
    return format_mentions([{"name": name} for _, name in items])


def _triples(items: list) -> str:
    return format_triples([{"head": {"name": h}, "type": kind, "tail": {"name": t}} for h, kind, t in items])


def _events(items: list) -> str:
    return format_events([{"type": kind, "trigger": trigger, "arguments": [{"role": r, "name": a} for r, a in args]}
                          for kind, trigger, args in items])


def _scores(metric: str, render: Callable[[list], str], case: list, preset: str | None = None) -> tuple:
    predictions, references = [render(pred) for _, pred in case], [render(gold) for gold, _ in case]
    scores = compute_metrics([metric], predictions, references, preset)
    return scores[metric], scores[f"{metric}/precision"], scores[f"{metric}/recall"]


@pytest.mark.parametrize(("case", "uie", "instructuie"), NER)
def test_span_f1_equals_uie_and_instructuie(case: list, uie: tuple, instructuie: tuple) -> None:
    assert _scores("span_f1", _spans, case) == pytest.approx(uie, abs=0.01)
    assert _scores("span_f1", _spans, case, "ie_instructuie") == pytest.approx(instructuie, abs=0.01)


@pytest.mark.parametrize(("case", "uie", "instructuie"), RE)
def test_triple_f1_equals_uie_and_instructuie(case: list, uie: tuple, instructuie: tuple) -> None:
    assert _scores("triple_f1", _triples, case) == pytest.approx(uie, abs=0.01)
    assert _scores("triple_f1", _triples, case, "ie_instructuie") == pytest.approx(instructuie, abs=0.01)


@pytest.mark.parametrize(("case", "uie"), MENTIONS)
def test_mention_f1_equals_uie(case: list, uie: tuple) -> None:
    assert _scores("mention_f1", _mentions, case) == pytest.approx(uie, abs=0.01)


@pytest.mark.parametrize(("case", "trigger", "role"), EVENTS)
def test_trigger_and_argument_f1_equal_uie(case: list, trigger: tuple, role: tuple) -> None:
    assert _scores("trigger_f1", _events, case) == pytest.approx(trigger, abs=0.01)
    assert _scores("argument_f1", _events, case) == pytest.approx(role, abs=0.01)
