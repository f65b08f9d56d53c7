r"""Output parsers: generated text to a hashable, order-free structure.

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
- dialogue act ``ACT(slot=value)``, ``ACT(slot)`` or ``ACT``: the act ends at the
  first "(", the slot at the first "=", the value at the last ")".

A separator character preceded by a backslash is part of the text, not a
separator, and so is a backslash preceded by one: ``\;`` ``\,`` ``\:`` ``\|``
``\=`` ``\(`` ``\)`` ``\\`` read as ``;`` ``,`` ``:`` ``|`` ``=`` ``(`` ``)`` ``\``. A
backslash before any other character is kept as it is. So
``organization: Dead & amp \; Company`` is one span. Every piece is compared after
unescaping and ``normalize_text``.
"""

from __future__ import annotations

import itertools
import re
from abc import ABC, abstractmethod
from collections.abc import Hashable

from t2t_mtl.errors import T2TError, closest
from t2t_mtl.normalize import normalize_text

Item = tuple[Hashable, ...]

ESCAPABLE = "\\;,:|=()"
"""The characters a backslash escapes: the separators of every structured output, and itself."""
_ESCAPED = re.compile(r"\\([" + re.escape(ESCAPABLE) + "])")


def unescape(raw: str) -> str:
    r"""``raw`` with every escaped character (``\;``, ``\\``, ...) back to itself."""
    return _ESCAPED.sub(r"\1", raw)


def _cuts(raw: str, separator: str) -> list[int]:
    """Where ``separator`` stands unescaped in ``raw``."""
    escaped = {match.start() + 1 for match in _ESCAPED.finditer(raw)}
    return [i for i, char in enumerate(raw) if char == separator and i not in escaped]


def split_unescaped(raw: str, separator: str) -> list[str]:
    """``raw.split(separator)`` at unescaped separators only; the pieces stay escaped."""
    bounds = [-1, *_cuts(raw, separator), len(raw)]
    return [raw[start + 1 : end] for start, end in itertools.pairwise(bounds)]


def partition_unescaped(raw: str, separator: str, last: bool = False) -> tuple[str, str, str]:
    """``raw.partition(separator)`` (``rpartition`` when ``last``) at an unescaped separator."""
    cuts = _cuts(raw, separator)
    if not cuts:
        return ("", "", raw) if last else (raw, "", "")
    cut = cuts[-1] if last else cuts[0]
    return raw[:cut], separator, raw[cut + 1 :]


PART_SEPARATOR = " || "
"""Between the answers of a composite task's subtasks."""


def split_parts(raw: str, count: int | None = None) -> list[str]:
    """The `count` answers of a composite output (None: as many as it holds): cut at the first `count - 1`
    unescaped ``||`` (spaces between its bars allowed), stripped; missing answers are empty, the rest of the text
    stays in the last."""
    bars, cuts = _cuts(raw, "|"), []
    limit = len(bars) if count is None else count - 1
    for left, right in itertools.pairwise(bars):
        if len(cuts) < limit and not raw[left + 1 : right].strip() and (not cuts or left > cuts[-1][1]):
            cuts.append((left, right))
    bounds = [(-1, -1), *cuts, (len(raw), len(raw))]
    parts = [raw[start[1] + 1 : end[0]].strip() for start, end in itertools.pairwise(bounds)]
    return parts + [""] * ((count or 0) - len(parts))


def _text(raw: str) -> str:
    """An escaped piece as it is compared: unescaped, then normalised."""
    return normalize_text(unescape(raw))


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


class CompositeParser(OutputParser):
    """A composite task's output, read without its subtasks: its ``||``-separated answers, each normalised.

    Scoring reads each answer with its subtask's own parser (``evaluator.score_task``).
    """

    name = "composite"

    def parse(self, text: str) -> tuple[str, ...]:
        return tuple(normalize_text(part) for part in split_parts(text) if part)


class ItemParser(OutputParser):
    """Outputs that list items separated by ";" ("None" when empty).

    ``items`` keeps duplicates and order (metrics count them); ``parse`` is the set.
    """

    label_index = 0

    @abstractmethod
    def item(self, piece: str) -> Item | None:
        """One item from the (still escaped) text between two unescaped ";", or None when it is malformed."""

    def items(self, text: str) -> list[Item]:
        """Every well-formed item of ``text``, in order, duplicates kept; never raises."""
        return [item for piece in split_unescaped(text, ";") if (item := self.item(piece)) is not None]

    def parse(self, text: str) -> frozenset[Item]:
        return frozenset(self.items(text))

    def labels_of(self, parsed: frozenset[Item]) -> set[str]:
        return {str(item[self.label_index]) for item in parsed}


def _split_typed(piece: str) -> tuple[str, str] | None:
    """(compared type, escaped rest) of a "type: rest" piece; None without a type."""
    kind, colon, rest = partition_unescaped(piece, ":")
    kind = _text(kind)
    return (kind, rest) if colon and kind else None


class TypedSpansParser(ItemParser):
    """Typed spans: "type: span; type: span" or "None" to (type, span) items."""

    name = "typed_spans"

    def item(self, piece: str) -> Item | None:
        typed = _split_typed(piece)
        span = _text(typed[1]) if typed else ""
        return (typed[0], span) if typed and span else None


class TriplesParser(ItemParser):
    """Relations: "type: head, tail; ..." or "None" to (head, type, tail) items."""

    name = "triples"
    label_index = 1

    def item(self, piece: str) -> Item | None:
        typed = _split_typed(piece)
        if typed is None:
            return None
        head, _, tail = (_text(part) for part in partition_unescaped(typed[1], ","))
        return (head, typed[0], tail) if head and tail else None


class MentionsParser(ItemParser):
    """Untyped spans: "span; span" or "None" to (span,) items (a span "None" is no span)."""

    name = "mentions"

    def item(self, piece: str) -> Item | None:
        span = _text(piece)
        return (span,) if span and span != "none" else None


class EventsParser(ItemParser):
    """Events: "type: trigger | role: argument; ..." or "None" to (type, trigger, arguments) items.

    ``arguments`` is the sorted tuple of (role, argument) pairs: order-free, a repeated argument kept
    (UIE's scorer counts each).
    """

    name = "events"

    def item(self, piece: str) -> Item | None:
        head, *parts = split_unescaped(piece, "|")
        kind, colon, trigger = partition_unescaped(head, ":", last=True)
        kind, trigger = _text(kind), _text(trigger)
        if not (colon and kind and trigger):
            return None
        arguments = []
        for part in parts:
            typed = _split_typed(part)
            argument = _text(typed[1]) if typed else ""
            if typed and argument:
                arguments.append((typed[0], argument))
        return (kind, trigger, tuple(sorted(arguments)))


class SlotValuesParser(ItemParser):
    """Dialogue states: "slot=value; slot=value" or "None" to (slot, value) items."""

    name = "slot_values"

    def item(self, piece: str) -> Item | None:
        slot, equals, value = partition_unescaped(piece, "=")
        slot, value = _text(slot), _text(value)
        return (slot, value) if equals and slot and value else None


class DialogueActsParser(ItemParser):
    """Dialogue acts: "ACT(slot=value); ACT(slot); ACT" or "None" to (act, slot, value) items.

    A missing slot or value is "". The bare word "None" is no act.
    """

    name = "dialogue_acts"

    def item(self, piece: str) -> Item | None:
        act, _, inside = partition_unescaped(piece, "(")
        act = _text(act)
        if not act or act == "none":
            return None
        before, closed, _ = partition_unescaped(inside, ")", last=True)
        slot, _, value = partition_unescaped(before if closed else inside, "=")
        return (act, _text(slot), _text(value))


_PARSERS: dict[str, OutputParser] = {
    p.name: p
    for p in (
        TextParser(), LabelParser(), TypedSpansParser(), TriplesParser(), MentionsParser(),
        EventsParser(), SlotValuesParser(), DialogueActsParser(), CompositeParser(),
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
