"""Output formats, normalisation and parsers."""

from collections.abc import Hashable

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation import (
    available_parsers,
    format_spans,
    format_triples,
    get_parser,
    normalize_text,
)

spans = get_parser("typed_spans")
triples = get_parser("triples")


def test_normalize_matches_uncased_wordpiece_decode() -> None:
    assert normalize_text("Acme Corp.") == normalize_text("acme corp .") == "acme corp ."
    assert normalize_text("acme corp.") == "acme corp ."
    assert normalize_text("  Café   l'été ") == normalize_text("cafe l ' ete")
    assert normalize_text("org_based_in") == normalize_text("org _ based _ in")
    assert normalize_text("$5,000.00") == normalize_text("$ 5, 000. 00")


def test_format_spans() -> None:
    ents = [{"name": "Acme Corp.", "type": "organization", "pos": [0, 10]}, {"name": "Bob", "type": "person"}]
    assert format_spans(ents) == "organization: Acme Corp.; person: Bob"
    assert format_spans([]) == "None"


def test_format_triples() -> None:
    rels = [{"head": {"name": "Bob"}, "type": "works for", "tail": {"name": "Acme"}}]
    assert format_triples(rels) == "works for: Bob, Acme"
    assert format_triples([]) == "None"


def test_typed_spans_tolerance() -> None:
    expected = frozenset({("person", "bob"), ("organization", "acme corp .")})
    assert spans.parse("person: Bob; organization: Acme Corp.") == expected
    assert spans.parse("organization : acme corp. ; person : bob ;") == expected
    assert spans.parse("PERSON:Bob;person: bob; garbage; organization: Acme Corp.") == expected
    assert spans.parse("time: 10:30") == {("time", "10 : 30")}
    for empty in ["None", "none", "", "   ", ";;", ": x", "person:", "no separators here"]:
        assert spans.parse(empty) == frozenset()


def test_triples_tolerance() -> None:
    assert triples.parse("works for : bob , acme corp. ; located in: Springfield, Illinois") == {
        ("bob", "works for", "acme corp ."),
        ("springfield", "located in", "illinois"),
    }
    in_state = ("acme", "located in", "springfield , illinois")
    assert triples.parse("located in: Acme, Springfield, Illinois") == {in_state}
    for empty in ["None", "", "works for: bob", "works for: , acme", "bob, acme"]:
        assert triples.parse(empty) == frozenset()


def test_labels_of() -> None:
    assert spans.labels_of(spans.parse("person: a; org: b; person: c")) == {"person", "org"}
    assert triples.labels_of(triples.parse("works for: a, b")) == {"works for"}
    assert get_parser("label").labels_of(get_parser("label").parse(" Positive ")) == {"positive"}
    assert get_parser("label").labels_of("") == set()
    assert get_parser("text").labels_of(get_parser("text").parse("Some text")) == set()


def test_unknown_parser_names_the_available_ones() -> None:
    names = "composite, dialogue_acts, events, label, mentions, slot_values, text, triples, typed_spans"
    with pytest.raises(T2TError, match=f"available: {names}.*Did you mean 'typed_spans'"):
        get_parser("typed_span")


parts = st.text(st.one_of(st.sampled_from("\\;,:"), st.characters()), min_size=1)  # separators are escaped


@given(st.lists(st.tuples(parts, parts)))
def test_spans_round_trip(pairs: list[tuple[str, str]]) -> None:
    assume(all(normalize_text(t) and normalize_text(n) for t, n in pairs))
    text = format_spans([{"type": t, "name": n} for t, n in pairs])
    assert spans.parse(text) == {(normalize_text(t), normalize_text(n)) for t, n in pairs}


@given(st.lists(st.tuples(parts, parts, parts)))
def test_triples_round_trip(items: list[tuple[str, str, str]]) -> None:
    assume(all(normalize_text(part) for item in items for part in item))
    rels = [{"head": {"name": h}, "type": t, "tail": {"name": n}} for h, t, n in items]
    expected = {(normalize_text(h), normalize_text(t), normalize_text(n)) for h, t, n in items}
    assert triples.parse(format_triples(rels)) == expected


@pytest.mark.parametrize("name", available_parsers())
@given(text=st.text())
def test_parsers_never_raise(name: str, text: str) -> None:
    parser = get_parser(name)
    parsed = parser.parse(text)
    assert isinstance(parsed, Hashable)
    hash(parsed)
    assert all(isinstance(label, str) for label in parser.labels_of(parsed))
