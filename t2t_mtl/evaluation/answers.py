"""Answers a program can use: a generated text read as its task's output, with labels in their canonical
spelling and spans snapped to the exact substring of the input (with character offsets).

Decoded text carries the tokenizer's spacing and case (`location : vienna`, `pay _ bill`);
labels are matched to the label space ignoring case, accents and spaces, and spans are
found in the row's text the same way, then reported as the input writes them.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from t2t_mtl.evaluation.parsers import partition_unescaped, split_unescaped, unescape


def fold(text: str) -> tuple[str, list[int]]:
    """`text` lowercased, without accents or whitespace, and the index in `text` of each folded character."""
    folded, positions = [], []
    for index, char in enumerate(text):
        for piece in unicodedata.normalize("NFKD", char).lower():
            if not piece.isspace() and not unicodedata.combining(piece):
                folded.append(piece)
                positions.append(index)
    return "".join(folded), positions


class SpanFinder:
    """Finds spans in the texts of one row, as exact substrings with offsets; repeated spans take later places."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = {name: (text, *fold(text)) for name, text in fields.items()}
        self.used: dict[tuple[str, str], int] = {}  # (field, folded span) -> where the next search starts

    def find(self, span: str) -> dict[str, Any]:
        """`{text, start, end, field}` of the span's first unused place in a field, or `{text, found: False}`."""
        wanted = fold(span)[0]
        for name, (text, folded, positions) in self.fields.items():
            at = folded.find(wanted, self.used.get((name, wanted), 0)) if wanted else -1
            if at < 0:
                continue
            self.used[(name, wanted)] = at + 1
            start, end = positions[at], positions[at + len(wanted) - 1] + 1
            return {"text": text[start:end], "start": start, "end": end, "field": name}
        return {"text": span, "found": False}


class LabelSpace:
    """A task's labels, looked up ignoring case, accents and spacing."""

    def __init__(self, labels: list[str] | None) -> None:
        self.by_key = {fold(label)[0]: label for label in labels or []}

    def canonical(self, text: str) -> str | None:
        """The label `text` spells, or None when it is outside the label space (or there is none)."""
        return self.by_key.get(fold(text)[0])

    def type_of(self, text: str) -> str:
        """A type name as the label space spells it, else as written (trimmed)."""
        return self.canonical(text) or text.strip()


def _pieces(text: str) -> list[str]:
    """The items of a structured output, unescaped separators only; "None" is no item."""
    pieces = [piece.strip() for piece in split_unescaped(text, ";")]
    return [piece for piece in pieces if piece and piece.lower() != "none"]


def _typed(piece: str) -> tuple[str, str] | None:
    kind, colon, rest = partition_unescaped(piece, ":")
    return (unescape(kind).strip(), rest) if colon and kind.strip() else None


def structured_answer(output: str, text: str, labels: list[str] | None, fields: dict[str, str]) -> Any:
    """The answer of a task whose `output` parser reads `text`: JSON-ready, spans snapped into `fields` (the row's
    texts by column)."""
    space, finder = LabelSpace(labels), SpanFinder(fields)
    if output == "label":
        label = space.canonical(text)
        return {"label": label, "in_label_space": True} if label else {"label": text, "in_label_space": False}
    if output == "typed_spans":
        return [{"type": space.type_of(kind), **finder.find(unescape(rest).strip())}
                for kind, rest in filter(None, map(_typed, _pieces(text)))]
    if output == "mentions":
        return [finder.find(unescape(piece)) for piece in _pieces(text)]
    if output == "triples":
        triples = []
        for kind, rest in filter(None, map(_typed, _pieces(text))):
            head, _, tail = partition_unescaped(rest, ",")
            triples.append({"type": space.type_of(kind), "head": finder.find(unescape(head).strip()),
                            "tail": finder.find(unescape(tail).strip())})
        return triples
    if output == "events":
        return [_event(piece, space, finder) for piece in _pieces(text)]
    if output == "slot_values":
        state = {}
        for piece in _pieces(text):
            slot, equals, value = partition_unescaped(piece, "=")
            if equals and slot.strip():
                state[unescape(slot).strip()] = unescape(value).strip()
        return state
    if output == "dialogue_acts":
        acts = []
        for piece in _pieces(text):
            act, _, inside = partition_unescaped(piece, "(")
            before, closed, _ = partition_unescaped(inside, ")", last=True)
            slot, _, value = partition_unescaped(before if closed else inside, "=")
            acts.append({"act": unescape(act).strip(), "slot": unescape(slot).strip(), "value": unescape(value).strip()})
        return acts
    return text


def _event(piece: str, space: LabelSpace, finder: SpanFinder) -> dict[str, Any]:
    head, *parts = split_unescaped(piece, "|")
    kind, _, trigger = partition_unescaped(head, ":", last=True)
    arguments = [{"role": role, **finder.find(unescape(rest).strip())}
                 for role, rest in filter(None, map(_typed, parts))]
    return {"type": space.type_of(unescape(kind)), "trigger": finder.find(unescape(trigger).strip()),
            "arguments": arguments}
