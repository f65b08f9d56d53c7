"""Parsers of the domain outputs: tolerant of spacing, casing, order, duplicates and garbage; never raising."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from t2t_mtl.evaluation.parsers import ItemParser, available_parsers, get_parser

events = get_parser("events")
states = get_parser("slot_values")
acts = get_parser("dialogue_acts")
mentions = get_parser("mentions")


def test_events_tolerance() -> None:
    expected = frozenset({("attack", "fired", (("attacker", "troops"), ("place", "gaza city"))),
                          ("die", "killed", ())})
    assert events.parse("Attack: fired | Attacker: troops | Place: Gaza City; Die: killed") == expected
    assert events.parse(" die :killed ;attack : fired|place:gaza city |attacker: Troops; die: killed;") == expected
    noisy = "Attack: fired | Attacker: troops | garbage | : x | Place: Gaza City; Die: killed; junk"
    assert events.parse(noisy) == expected
    assert events.parse("Life:Die: killed | Victim: man") == {("life : die", "killed", (("victim", "man"),))}
    for empty in ["None", "", "attack:", ": fired", "| a: b", ";;"]:
        assert events.parse(empty) == frozenset()
    assert events.labels_of(expected) == {"attack", "die"}
    twice = events.parse("die: killed | victim: man | victim: man")  # a repeated argument counts twice
    assert twice == {("die", "killed", (("victim", "man"), ("victim", "man")))}


def test_slot_values_tolerance() -> None:
    expected = frozenset({("genre", "thriller"), ("title", "the heat")})
    assert states.parse("genre=thriller; title=The Heat") == expected
    assert states.parse(" TITLE = the heat ;genre= Thriller;genre=thriller; noise; =x; slot=") == expected
    assert states.parse("equation=a=b") == {("equation", "a = b")}
    assert states.parse("None") == frozenset() and states.labels_of(expected) == {"genre", "title"}


def test_dialogue_acts_tolerance() -> None:
    expected = frozenset({("inform", "genre", "thriller"), ("request", "title", ""), ("thank _ you", "", "")})
    assert acts.parse("INFORM(genre=thriller); REQUEST(title); THANK_YOU") == expected
    assert acts.parse("thank_you ;request ( title ) ; inform(GENRE = Thriller; None") == expected
    assert acts.parse("OFFER(title=Heat (1995))") == {("offer", "title", "heat ( 1995 )")}
    assert acts.parse("None") == frozenset() and acts.labels_of(expected) == {"inform", "request", "thank _ you"}


def test_mentions_tolerance() -> None:
    assert mentions.parse("Ann Lee; oslo ;OSLO; ;") == {("ann lee",), ("oslo",)}
    assert mentions.items("Oslo; oslo") == [("oslo",), ("oslo",)]
    assert mentions.parse("None") == frozenset()


separators = st.text(alphabet=";|:=(), \nNnoe", max_size=40)


@given(text=st.one_of(st.text(), separators))
def test_item_parsers_never_raise(text: str) -> None:
    for name in available_parsers():
        parser = get_parser(name)
        if isinstance(parser, ItemParser):
            assert set(parser.items(text)) == parser.parse(text)
            assert all(isinstance(label, str) for label in parser.labels_of(parser.parse(text)))
