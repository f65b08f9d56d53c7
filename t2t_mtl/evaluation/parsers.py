"""Output parsers: generated text to a hashable, order-free structure.

Parsers never raise: malformed pieces of an output are dropped, so a bad
generation scores low instead of stopping an evaluation.

Structured outputs (the inverse of ``formats``) are items separated by ";", or
"None" when there are none. Inside an item:

- typed span ``type: span``: the type ends at the first ":";
- triple ``type: head, tail``: the head ends at the first "," after the type;
- mention ``span``: the whole item;
- event ``type: trigger | role: argument | ...``: parts split at "|", the type
  ends at the last ":" of the first part (ACE types such as "Life:Die" keep
  theirs), a role at the first ":" of its part;
- slot value ``slot=value``: the slot ends at the first "=";
- dialogue act ``ACT(slot=value)``, ``ACT(slot)`` or ``ACT``.

So names contain no ";", types no ":" (event types may), triple heads no ",",
event parts no "|", and slots no "=". Every piece is compared after
``normalize_text``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable

from t2t_mtl.errors import T2TError, closest
from t2t_mtl.evaluation.normalize import normalize_text

Item = tuple[Hashable, ...]


class OutputParser(ABC):
    """Turns a generated or reference text into a comparable structure."""

    name: str

    @abstractmethod
    def parse(self, text: str) -> Hashable:
        """Parse ``text``; never raises."""

    def labels_of(self, parsed: Hashable) -> set[str]:
        """The label values (classes, entity or relation types) used in ``parsed``."""
        return set()


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


class ItemParser(OutputParser):
    """Outputs that list items separated by ";" ("None" when empty).

    ``items`` keeps duplicates and order (metrics count them); ``parse`` is the set.
    """

    label_index = 0

    @abstractmethod
    def item(self, piece: str) -> Item | None:
        """One item from the text between two ";", or None when it is malformed."""

    def items(self, text: str) -> list[Item]:
        """Every well-formed item of ``text``, in order, duplicates kept; never raises."""
        return [item for piece in text.split(";") if (item := self.item(piece)) is not None]

    def parse(self, text: str) -> frozenset[Item]:
        return frozenset(self.items(text))

    def labels_of(self, parsed: frozenset[Item]) -> set[str]:
        return {str(item[self.label_index]) for item in parsed}


def _split_typed(piece: str) -> tuple[str, str] | None:
    """(normalised type, raw rest) of a "type: rest" piece; None without a type."""
    kind, colon, rest = piece.partition(":")
    kind = normalize_text(kind)
    return (kind, rest) if colon and kind else None


class TypedSpansParser(ItemParser):
    """Typed spans: "type: span; type: span" or "None" to (type, span) items."""

    name = "typed_spans"

    def item(self, piece: str) -> Item | None:
        typed = _split_typed(piece)
        span = normalize_text(typed[1]) if typed else ""
        return (typed[0], span) if typed and span else None


class TriplesParser(ItemParser):
    """Relations: "type: head, tail; ..." or "None" to (head, type, tail) items."""

    name = "triples"
    label_index = 1

    def item(self, piece: str) -> Item | None:
        typed = _split_typed(piece)
        if typed is None:
            return None
        head, _, tail = (normalize_text(part) for part in typed[1].partition(","))
        return (head, typed[0], tail) if head and tail else None


class MentionsParser(ItemParser):
    """Untyped spans: "span; span" or "None" to (span,) items (a span "None" is no span)."""

    name = "mentions"

    def item(self, piece: str) -> Item | None:
        span = normalize_text(piece)
        return (span,) if span and span != "none" else None


class EventsParser(ItemParser):
    """Events: "type: trigger | role: argument; ..." or "None" to (type, trigger, arguments) items.

    ``arguments`` is a frozenset of (role, argument) pairs.
    """

    name = "events"

    def item(self, piece: str) -> Item | None:
        head, *parts = piece.split("|")
        kind, colon, trigger = head.rpartition(":")
        kind, trigger = normalize_text(kind), normalize_text(trigger)
        if not (colon and kind and trigger):
            return None
        arguments = set()
        for part in parts:
            typed = _split_typed(part)
            argument = normalize_text(typed[1]) if typed else ""
            if typed and argument:
                arguments.add((typed[0], argument))
        return (kind, trigger, frozenset(arguments))


class SlotValuesParser(ItemParser):
    """Dialogue states: "slot=value; slot=value" or "None" to (slot, value) items."""

    name = "slot_values"

    def item(self, piece: str) -> Item | None:
        slot, equals, value = piece.partition("=")
        slot, value = normalize_text(slot), normalize_text(value)
        return (slot, value) if equals and slot and value else None


class DialogueActsParser(ItemParser):
    """Dialogue acts: "ACT(slot=value); ACT(slot); ACT" or "None" to (act, slot, value) items.

    A missing slot or value is "". The bare word "None" is no act.
    """

    name = "dialogue_acts"

    def item(self, piece: str) -> Item | None:
        act, _, inside = piece.partition("(")
        act = normalize_text(act)
        if not act or act == "none":
            return None
        body = inside.rpartition(")")[0] if ")" in inside else inside
        slot, _, value = body.partition("=")
        return (act, normalize_text(slot), normalize_text(value))


_PARSERS: dict[str, OutputParser] = {
    p.name: p
    for p in (
        TextParser(), LabelParser(), TypedSpansParser(), TriplesParser(), MentionsParser(),
        EventsParser(), SlotValuesParser(), DialogueActsParser(),
    )
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


def item_parser(name: str) -> ItemParser:
    """The parser called ``name``, which must read a list of items (not free text or a label)."""
    parser = get_parser(name)
    if not isinstance(parser, ItemParser):
        items = sorted(n for n, p in _PARSERS.items() if isinstance(p, ItemParser))
        raise T2TError(f"Output parser '{name}' does not read a list of items; those that do: {', '.join(items)}.")
    return parser
