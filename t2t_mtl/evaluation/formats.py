"""Output formats that templates render targets in (Jinja filters), with the structure each must parse back to.

Rows use the IE-INSTRUCTIONS shapes, other keys ignored:

- entity ``{"name", "type"}``; relation ``{"head": {"name"}, "type", "tail": {"name"}}``;
- event ``{"type", "trigger", "arguments": [{"role", "name"}]}``;
- dialogue state ``[{"slot", "value"}]``; dialogue act ``[{"act", "slot", "value"}]`` (slot and value may be "").

A ";" inside a name or value would split its item, so it is written as "," (and a
"|" inside an event's part as "/"): a few biomedical entity names hold one.

Each format names the parser that reads it back and a ``gold`` function: the items
(a multiset) that parser must find in the rendered text. ``gold`` is written from
the data's side, so comparing it with the parse is a real round-trip check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from t2t_mtl.evaluation.normalize import normalize_text

NONE = "None"

Rows = Sequence[Mapping[str, Any]]


def _join(items: list[str]) -> str:
    return "; ".join(items) if items else NONE


def _s(value: Any) -> str:
    """A name or value made safe inside an item: no ";" (the item separator)."""
    return str(value).replace(";", ",")


def _e(value: Any) -> str:
    """A part of an event made safe: no ";" and no "|" (the part separator)."""
    return _s(value).replace("|", "/")


def _g(value: Any) -> str:
    """How a name or value must read back: made safe, then normalised."""
    return normalize_text(_s(value))


def _ge(value: Any) -> str:
    """How a part of an event must read back."""
    return normalize_text(_e(value))


def format_spans(entities: Rows) -> str:
    """Render entities as "type: name; type: name", or "None" when there are none."""
    return _join([f"{_s(e['type'])}: {_s(e['name'])}" for e in entities or ()])


def format_triples(relations: Rows) -> str:
    """Render relations as "type: head, tail; type: head, tail", or "None"."""
    return _join([f"{_s(r['type'])}: {_s(r['head']['name'])}, {_s(r['tail']['name'])}" for r in relations or ()])


def format_mentions(entities: Rows) -> str:
    """Render entity names without types: "name; name", or "None"."""
    return _join([_s(e["name"]) for e in entities or ()])


def format_events(events: Rows) -> str:
    """Render events as "type: trigger | role: argument | ...; ...", or "None"."""
    rendered = []
    for event in events or ():
        arguments = [f" | {_e(a['role'])}: {_e(a['name'])}" for a in event.get("arguments") or ()]
        rendered.append(f"{_e(event['type'])}: {_e(event['trigger'])}{''.join(arguments)}")
    return _join(rendered)


def format_state(state: Rows) -> str:
    """Render a dialogue state as "slot=value; slot=value", or "None" when empty."""
    return _join([f"{_s(s['slot'])}={_s(s['value'])}" for s in state or ()])


def format_acts(acts: Rows) -> str:
    """Render dialogue acts as "ACT(slot=value); ACT(slot); ACT", or "None"."""
    rendered = []
    for a in acts or ():
        inside = f"{_s(a['slot'])}={_s(a['value'])}" if a.get("value") else _s(a.get("slot") or "")
        rendered.append(f"{_s(a['act'])}({inside})" if inside else _s(a["act"]))
    return _join(rendered)


def _gold_spans(entities: Rows) -> Counter:
    return Counter((_g(e["type"]), _g(e["name"])) for e in entities or ())


def _gold_triples(relations: Rows) -> Counter:
    return Counter((_g(r["head"]["name"]), _g(r["type"]), _g(r["tail"]["name"])) for r in relations or ())


def _gold_mentions(entities: Rows) -> Counter:
    return Counter((_g(e["name"]),) for e in entities or ())


def _gold_events(events: Rows) -> Counter:
    return Counter(
        (_ge(e["type"]), _ge(e["trigger"]),
         frozenset((_ge(a["role"]), _ge(a["name"])) for a in e.get("arguments") or ()))
        for e in events or ()
    )


def _gold_state(state: Rows) -> Counter:
    return Counter((_g(s["slot"]), _g(s["value"])) for s in state or ())


def _gold_acts(acts: Rows) -> Counter:
    return Counter((_g(a["act"]), _g(a.get("slot") or ""), _g(a.get("value") or "")) for a in acts or ())


@dataclass(frozen=True)
class OutputFormat:
    """A target format: its Jinja filter, the parser that reads it, and the items it must yield."""

    render: Callable[[Rows], str]
    parser: str
    gold: Callable[[Rows], Counter]


FORMATS: dict[str, OutputFormat] = {
    "format_spans": OutputFormat(format_spans, "typed_spans", _gold_spans),
    "format_triples": OutputFormat(format_triples, "triples", _gold_triples),
    "format_mentions": OutputFormat(format_mentions, "mentions", _gold_mentions),
    "format_events": OutputFormat(format_events, "events", _gold_events),
    "format_state": OutputFormat(format_state, "slot_values", _gold_state),
    "format_acts": OutputFormat(format_acts, "dialogue_acts", _gold_acts),
}

FILTERS: dict[str, Callable[..., str]] = {name: fmt.render for name, fmt in FORMATS.items()}
