r"""Output formats that templates render targets in (Jinja filters), with the structure each must parse back to.

Rows use the IE-INSTRUCTIONS shapes, other keys ignored:

- entity ``{"name", "type"}``; relation ``{"head": {"name"}, "type", "tail": {"name"}}``;
- event ``{"type", "trigger", "arguments": [{"role", "name"}]}``;
- dialogue state ``[{"slot", "value"}]``; dialogue act ``[{"act", "slot", "value"}]`` (slot and value may be "").

A character inside a name or value that the parser would read as a separator
there is written with a backslash before it, and so is every backslash: ";" in
any part (``\;``), ":" in a span's or triple's type, an event's trigger or an
argument's role (``\:``), "," in a triple's head (``\,``), "|" in an event's part
(``\|``), "=" in a slot (``\=``), "(" in a dialogue act (``\(``), and ``\\``. CrossNER's entity
"Dead & amp ; Company" is written ``organization: Dead & amp \; Company`` and the
parser reads back exactly that name. Text without these characters is written as
it is (``time: 10:30``, ``located in: Acme, Springfield, Illinois``).

Each format names the parser that reads it back and a ``gold`` function: the items
(a multiset) that parser must find in the rendered text: the data's names and
values, normalised. ``gold`` is written from the data's side, so comparing it with
the parse is a real round-trip check.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from t2t_mtl.normalize import normalize_text

NONE = "None"

Rows = Sequence[Mapping[str, Any]]

ALWAYS = "\\;"  # every part escapes the backslash and the item separator; some parts also escape:
TYPE = ":"  # a span's or triple's type ends at the first ":"
HEAD = ","  # a triple's head at the first ","
SLOT = "="  # a slot at the first "="
ACT = "("  # a dialogue act at the first "("
PART = "|"  # an event's parts are split at "|"
LABEL = "|:"  # an event's type ends at the last ":" before its trigger, a role at the first ":"


def _join(items: list[str]) -> str:
    return "; ".join(items) if items else NONE


def escape(value: Any, separators: str = "") -> str:
    """``value`` as text inside an item: the characters of ``ALWAYS`` and ``separators`` backslash-escaped."""
    return re.sub(f"[{re.escape(ALWAYS + separators)}]", r"\\\g<0>", str(value))


def _g(value: Any) -> str:
    """How a name or value must read back: exactly, normalised."""
    return normalize_text(str(value))


def format_spans(entities: Rows) -> str:
    """Render entities as "type: name; type: name", or "None" when there are none."""
    return _join([f"{escape(e['type'], TYPE)}: {escape(e['name'])}" for e in entities or ()])


def format_triples(relations: Rows) -> str:
    """Render relations as "type: head, tail; type: head, tail", or "None"."""
    return _join([f"{escape(r['type'], TYPE)}: {escape(r['head']['name'], HEAD)}, {escape(r['tail']['name'])}"
                  for r in relations or ()])


def format_mentions(entities: Rows) -> str:
    """Render entity names without types: "name; name", or "None"."""
    return _join([escape(e["name"]) for e in entities or ()])


def format_events(events: Rows) -> str:
    """Render events as "type: trigger | role: argument | ...; ...", or "None"."""
    rendered = []
    for event in events or ():
        arguments = [f" | {escape(a['role'], LABEL)}: {escape(a['name'], PART)}" for a in event.get("arguments") or ()]
        rendered.append(f"{escape(event['type'], PART)}: {escape(event['trigger'], LABEL)}{''.join(arguments)}")
    return _join(rendered)


def format_state(state: Rows) -> str:
    """Render a dialogue state as "slot=value; slot=value", or "None" when empty."""
    return _join([f"{escape(s['slot'], SLOT)}={escape(s['value'])}" for s in state or ()])


def format_acts(acts: Rows) -> str:
    """Render dialogue acts as "ACT(slot=value); ACT(slot); ACT", or "None"."""
    rendered = []
    for a in acts or ():
        slot = escape(a.get("slot") or "", SLOT)
        inside = f"{slot}={escape(a['value'])}" if a.get("value") else slot
        rendered.append(f"{escape(a['act'], ACT)}({inside})" if inside else escape(a["act"], ACT))
    return _join(rendered)


def _gold_spans(entities: Rows) -> Counter:
    return Counter((_g(e["type"]), _g(e["name"])) for e in entities or ())


def _gold_triples(relations: Rows) -> Counter:
    return Counter((_g(r["head"]["name"]), _g(r["type"]), _g(r["tail"]["name"])) for r in relations or ())


def _gold_mentions(entities: Rows) -> Counter:
    return Counter((_g(e["name"]),) for e in entities or ())


def _gold_events(events: Rows) -> Counter:
    return Counter(
        (_g(e["type"]), _g(e["trigger"]),
         tuple(sorted((_g(a["role"]), _g(a["name"])) for a in e.get("arguments") or ())))
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
