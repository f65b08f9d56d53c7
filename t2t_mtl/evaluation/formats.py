"""Output formats that templates render targets in (Jinja filters).

Rows use the IE-INSTRUCTIONS shapes: an entity is ``{"name": str, "type": str, ...}``
and a relation is ``{"head": {"name": str}, "type": str, "tail": {"name": str}}``;
other keys are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

NONE = "None"


def _join(items: list[str]) -> str:
    return "; ".join(items) if items else NONE


def format_spans(entities: Sequence[Mapping[str, Any]]) -> str:
    """Render entities as "type: name; type: name", or "None" when there are none."""
    return _join([f"{e['type']}: {e['name']}" for e in entities or ()])


def format_triples(relations: Sequence[Mapping[str, Any]]) -> str:
    """Render relations as "type: head, tail; type: head, tail", or "None"."""
    return _join([f"{r['type']}: {r['head']['name']}, {r['tail']['name']}" for r in relations or ()])


FILTERS: dict[str, Callable[..., str]] = {
    "format_spans": format_spans,
    "format_triples": format_triples,
}
