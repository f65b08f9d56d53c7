"""Output formats: separators inside names are backslash-escaped, and every name reads back exactly."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from t2t_mtl.evaluation.parsers import ESCAPABLE, get_parser, item_parser
from t2t_mtl.formats import (
    ACT,
    FORMATS,
    HEAD,
    LABEL,
    PART,
    SLOT,
    TYPE,
    escape,
    format_acts,
    format_events,
    format_mentions,
    format_spans,
    format_state,
    format_triples,
)
from t2t_mtl.normalize import normalize_text
from t2t_mtl.roundtrip import round_trip_problems
from t2t_mtl.tasks.schema import TaskSpec

CROSSNER = {"type": "organization", "name": "Dead & amp ; Company"}


def test_crossner_name_with_a_semicolon_round_trips() -> None:
    text = format_spans([CROSSNER, {"type": "person", "name": "Jerry Garcia"}])
    assert text == r"organization: Dead & amp \; Company; person: Jerry Garcia"
    assert get_parser("typed_spans").parse(text) == {("organization", "dead & amp ; company"),
                                                     ("person", "jerry garcia")}


def test_outputs_without_separators_in_names_are_unchanged() -> None:
    assert format_spans([{"type": "time", "name": "10:30"}, {"type": "org", "name": "Acme, Inc."}]) == \
        "time: 10:30; org: Acme, Inc."
    assert format_triples([{"type": "located in", "head": {"name": "Acme"}, "tail": {"name": "Springfield, IL"}}]) \
        == "located in: Acme, Springfield, IL"
    assert format_mentions([{"name": "Ann Lee"}, {"name": "Oslo: city"}]) == "Ann Lee; Oslo: city"
    event = {"type": "Life:Die", "trigger": "killed", "arguments": [{"role": "Victim", "name": "man: 30"}]}
    assert format_events([event]) == "Life:Die: killed | Victim: man: 30"
    assert format_state([{"slot": "equation", "value": "a=b"}]) == "equation=a=b"
    assert format_acts([{"act": "OFFER", "slot": "title", "value": "Heat (1995)"}, {"act": "REQUEST", "slot": "date"},
                        {"act": "THANK_YOU"}]) == "OFFER(title=Heat (1995)); REQUEST(date); THANK_YOU"
    assert format_spans([]) == format_events([]) == format_acts([]) == "None"


def test_each_part_escapes_what_would_end_it() -> None:
    assert format_spans([{"type": "a:b", "name": "x;y"}]) == r"a\:b: x\;y"
    assert format_triples([{"type": "t", "head": {"name": "Smith, J."}, "tail": {"name": "x, y"}}]) == \
        r"t: Smith\, J., x, y"
    assert format_events([{"type": "a|b", "trigger": "x:y", "arguments": [{"role": "r:s", "name": "u|v:w"}]}]) == \
        r"a\|b: x\:y | r\:s: u\|v:w"
    assert format_state([{"slot": "a=b", "value": "c=d;e"}]) == r"a\=b=c=d\;e"
    assert format_acts([{"act": "A(B", "slot": "s=t", "value": "v)"}, {"act": "C", "slot": "x=y"}]) == \
        r"A\(B(s\=t=v)); C(x\=y)"
    assert escape("C:\\temp\\") == r"C:\\temp\\"


def test_parser_keeps_a_backslash_before_other_characters() -> None:
    assert get_parser("typed_spans").parse(r"path: C:\temp\new") == {("path", normalize_text(r"C:\temp\new"))}
    assert get_parser("mentions").parse(r"a\\; b\; c") == {(normalize_text("a\\"),), ("b ; c",)}


def test_crossner_target_passes_the_round_trip_check() -> None:
    task = TaskSpec(name="t/ner", domain="t", columns={"entities": "entities"}, output="typed_spans",
                    source={"format": "jsonl", "path": "x.jsonl"},
                    templates=[{"id": "t", "instruction": "x", "target": "{{ entities | format_spans }}"}])
    assert round_trip_problems(task, task.templates[0], {"entities": [CROSSNER]}) == []


SEPARATORS = "\\;,:|=() "
part = st.text(st.one_of(st.sampled_from(SEPARATORS), st.characters()), min_size=1, max_size=12).filter(
    lambda s: normalize_text(s) not in ("", "none"))  # the parsers drop empty parts and the word None
optional = st.one_of(st.just(""), part)
ROWS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "format_spans": st.fixed_dictionaries({"type": part, "name": part}),
    "format_triples": st.fixed_dictionaries({"head": st.fixed_dictionaries({"name": part}), "type": part,
                                             "tail": st.fixed_dictionaries({"name": part})}),
    "format_mentions": st.fixed_dictionaries({"name": part}),
    "format_events": st.fixed_dictionaries({"type": part, "trigger": part, "arguments": st.lists(
        st.fixed_dictionaries({"role": part, "name": part}), max_size=3)}),
    "format_state": st.fixed_dictionaries({"slot": part, "value": part}),
    "format_acts": st.fixed_dictionaries({"act": part, "slot": optional, "value": optional}),
}


def test_every_format_has_a_row_strategy() -> None:
    assert set(ROWS) == set(FORMATS)


@pytest.mark.parametrize("name", sorted(FORMATS))
@given(data=st.data())
def test_any_names_round_trip_exactly(name: str, data: st.DataObject) -> None:
    rows = data.draw(st.lists(ROWS[name], max_size=4))
    fmt = FORMATS[name]
    assert Counter(item_parser(fmt.parser).items(fmt.render(rows))) == fmt.gold(rows)


@given(st.text(st.characters()), st.sampled_from(["", TYPE, HEAD, SLOT, ACT, PART, LABEL]))
def test_only_escapable_characters_are_escaped(value: str, separators: str) -> None:
    escaped = escape(value, separators)
    assert set(re.findall(r"\\(.)", escaped, re.DOTALL)) <= set(ESCAPABLE)
    assert re.sub(r"\\(.)", r"\1", escaped, flags=re.DOTALL) == value


@pytest.mark.parametrize("name", sorted({fmt.parser for fmt in FORMATS.values()}))
@given(text=st.text(SEPARATORS + "\\Nnoeab"))
def test_parsers_never_raise_on_escapes(name: str, text: str) -> None:
    parser = item_parser(name)
    assert set(parser.items(text)) == parser.parse(text)
