"""Output parsers: generated text to a hashable, order-free structure.

Parsers never raise: malformed pieces of an output are dropped, so a bad
generation scores low instead of stopping an evaluation.

Grammar (the inverse of ``formats``): items are separated by ";"; in an item the
type ends at the first ":"; in a triple the head ends at the first "," after it.
So types contain no ":" or ";", names no ";", and triple heads no ","
(tails may: "located in: Springfield, Illinois" keeps the whole tail).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator

from t2t_mtl.errors import T2TError, closest
from t2t_mtl.evaluation.normalize import normalize_text


class OutputParser(ABC):
    """Turns a generated or reference text into a comparable structure."""

    name: str

    @abstractmethod
    def parse(self, text: str) -> Hashable:
        """Parse ``text``; never raises."""

    def labels_of(self, parsed: Hashable) -> set[str]:
        """The label values (classes, entity or relation types) used in ``parsed``."""
        return set()


def _typed_items(text: str) -> Iterator[tuple[str, str]]:
    """Yield (normalised type, raw rest) for each "type: rest" item of ``text``."""
    for item in text.split(";"):
        kind, colon, rest = item.partition(":")
        kind = normalize_text(kind)
        if colon and kind:
            yield kind, rest


class TextParser(OutputParser):
    """Free text, normalised."""

    name = "text"

    def parse(self, text: str) -> str:
        return normalize_text(text)


class LabelParser(TextParser):
    """One class label, normalised."""

    name = "label"

    def labels_of(self, parsed: str) -> set[str]:
        return {parsed} if parsed else set()


class TypedSpansParser(OutputParser):
    """Typed spans, from "type: span; type: span" or "None" to a frozenset of (type, span)."""

    name = "typed_spans"

    def parse(self, text: str) -> frozenset[tuple[str, str]]:
        pairs = ((kind, normalize_text(rest)) for kind, rest in _typed_items(text))
        return frozenset((kind, span) for kind, span in pairs if span)

    def labels_of(self, parsed: frozenset[tuple[str, str]]) -> set[str]:
        return {kind for kind, _ in parsed}


class TriplesParser(OutputParser):
    """Relations, from "type: head, tail; ..." or "None" to a frozenset of (head, type, tail)."""

    name = "triples"

    def parse(self, text: str) -> frozenset[tuple[str, str, str]]:
        triples = set()
        for kind, rest in _typed_items(text):
            head, _, tail = (normalize_text(part) for part in rest.partition(","))
            if head and tail:
                triples.add((head, kind, tail))
        return frozenset(triples)

    def labels_of(self, parsed: frozenset[tuple[str, str, str]]) -> set[str]:
        return {kind for _, kind, _ in parsed}


_PARSERS: dict[str, OutputParser] = {
    p.name: p for p in (TextParser(), LabelParser(), TypedSpansParser(), TriplesParser())
}


def available_parsers() -> list[str]:
    """Names of the registered parsers."""
    return sorted(_PARSERS)


def get_parser(name: str) -> OutputParser:
    """The parser called ``name``; T2TError naming the available ones otherwise."""
    try:
        return _PARSERS[name]
    except KeyError:
        raise T2TError(
            f"Unknown output parser '{name}'; available: {', '.join(available_parsers())}."
            + closest(name, _PARSERS)
        ) from None
