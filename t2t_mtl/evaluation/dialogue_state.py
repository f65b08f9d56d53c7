"""Schema-guided dialogue state scoring: DSTC8 joint goal accuracy and structured SGD references.

Official reference: google-research/google-research, ``schema_guided_dst/metrics.py``
(commit c81395588a6132b39676c5f11ece4e56dff2317d: ``compare_slot_values``,
``noncat_slot_value_match``, ``fuzzy_string_match``, ``get_average_and_joint_goal_accuracy``)
run by ``schema_guided_dst/evaluate.py`` (commit 1acdadcc599feeb5321fb9b7a3a39a2b19f0bfdf,
defaults ``use_fuzzy_match=True``, ``joint_acc_across_turn=False``), installed from its
``requirements.txt`` (``fuzzywuzzy>=0.17.0``, without python-Levenshtein).

Per frame (one user turn, one service) every slot of the service's schema gets a score:

- not in the reference state and not predicted: 1; predicted but not in the reference,
  or in the reference but not predicted: 0;
- in both, categorical: 1 when the predicted value equals the *first* listed reference value
  exactly (case-sensitive; the other listed values do not count), else 0;
- in both, non-categorical: the best over *all* listed reference values of fuzzywuzzy's
  ``token_sort_ratio(reference, prediction) / 100``, a partial credit between 0 and 1.

The frame's joint goal accuracy is the product of these scores; predicted slots that are not
in the service's schema are ignored. The corpus value is the mean over frames (here in
percent, unrounded, as ``evaluate.py`` writes its means). A service without slots gives the
official "NA": such a frame is left out of the mean.

``token_sort_ratio`` as fuzzywuzzy 0.17/0.18 computes it: drop the characters U+0080-U+00FF
(``force_ascii``), replace every non-word character (``\\W``) by a space, lowercase, sort the
whitespace-separated tokens and join them with one space; two equal results score 100, an
empty one 0, otherwise ``int(round(100 * ratio))``. Without python-Levenshtein, fuzzywuzzy's
ratio is ``difflib.SequenceMatcher(None, reference, prediction).ratio()``; that is the default
here (``fuzzy="difflib"``) and equals fuzzywuzzy 0.17.0 and 0.18.0 on every pair tested.
With python-Levenshtein (``fuzzywuzzy[speedup]``) the ratio is the normalised InDel similarity
``(n - d) / n`` (``n`` both lengths, ``d`` the insertions and deletions), with rapidfuzz's
InDel distance here (``fuzzy="levenshtein"``, equal to python-Levenshtein 0.12.2; 0.27, built
on rapidfuzz, computes ``1 - d / n`` and rounds an exact half down in rare cases). The two
ratios differ on 16% of 7,129 test pairs (6.5% of SGD values against copies with typos), by
up to a third of the scale, the InDel one never lower. rapidfuzz's own ``fuzz.token_sort_ratio``
with ``utils.default_process`` differs from both (it keeps U+0080-U+00FF and splits at "_").
``fuzzy="exact"`` is the official ``use_fuzzy_match=False``: a non-categorical value must equal
one listed value.

The reference of a frame is a JSON object (in ``state_reference``, written by the SGD importer):
``{"service_slots": {slot: is_categorical, ...}, "slot_values": {slot: [value, ...], ...}}``,
the service's slots in schema order and each active slot's listed values, the first being the
canonical one. The importer puts the canonical state, rendered by ``format_state``, before it
in the same list (for reading and for the round-trip check of ``tasks validate``): where an
example has a structured reference, plain references beside it are not scored.

A prediction is "slot=value; slot=value" (or "None"), as ``format_state`` writes it: pieces
split at unescaped ";", the slot ending at the first unescaped "=", backslash escapes undone
(see ``t2t_mtl.evaluation.parsers``), slot and value stripped of surrounding whitespace and
otherwise kept as they are (slot names match case-sensitively). A piece without "=", slot or value is dropped (as
the output parsers drop malformed pieces); a slot given twice keeps its first value, as the
official script takes the first of a frame's predicted values.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from t2t_mtl.evaluation.parsers import get_parser, item_parser, partition_unescaped, split_unescaped, unescape
from t2t_mtl.evaluation.scoring import check_choice
from t2t_mtl.formats import format_state
from t2t_mtl.normalize import normalize_text

FUZZY = ("difflib", "levenshtein", "exact")

_LATIN1 = {code: None for code in range(128, 256)}
_NON_WORD = re.compile(r"\W")


@dataclass(frozen=True)
class StateReference:
    """A frame's gold state with what DSTC8 scoring needs from the schema."""

    service_slots: dict[str, bool]
    """Every slot of the frame's service, in schema order, to whether it is categorical."""
    slot_values: dict[str, list[str]]
    """Each active slot's listed values (the first is the canonical one)."""

    def to_json(self) -> str:
        """The reference as one JSON string (the form a task's ``references:`` field holds)."""
        return json.dumps({"service_slots": self.service_slots, "slot_values": self.slot_values}, ensure_ascii=False)


def state_reference(service_slots: Mapping[str, bool], slot_values: Mapping[str, Sequence[str]]) -> str:
    """The JSON reference of one frame: the service's slots (name to is_categorical) and the gold values."""
    return StateReference({str(k): bool(v) for k, v in service_slots.items()},
                          {str(k): [str(x) for x in v] for k, v in slot_values.items()}).to_json()


def parse_state_reference(text: str) -> StateReference | None:
    """The structured reference in ``text``, or None when it is a plain "slot=value; ..." state."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not (isinstance(data, dict) and isinstance(data.get("service_slots"), dict)
            and isinstance(data.get("slot_values"), dict)):
        return None
    values = {str(k): [v] if isinstance(v, str) else [str(x) for x in v] for k, v in data["slot_values"].items()}
    return StateReference({str(k): bool(v) for k, v in data["service_slots"].items()},
                          {k: v for k, v in values.items() if v})


def parse_prediction(text: str) -> dict[str, str]:
    """A predicted state as slot to value: unescaped, whitespace stripped, case kept, a repeated slot's first value."""
    state: dict[str, str] = {}
    for piece in split_unescaped(text, ";"):
        slot, equals, value = partition_unescaped(piece, "=")
        slot, value = unescape(slot).strip(), unescape(value).strip()
        if equals and slot and value:
            state.setdefault(slot, value)
    return state


def _sorted_tokens(text: str) -> str:
    """fuzzywuzzy's ``_process_and_sort`` with ``force_ascii=True, full_process=True``."""
    return " ".join(sorted(_NON_WORD.sub(" ", text.translate(_LATIN1)).lower().split()))


def token_sort_ratio(reference: str, prediction: str, fuzzy: str = "difflib") -> int:
    """fuzzywuzzy's ``fuzz.token_sort_ratio(reference, prediction)``, 0-100 (see the module docstring)."""
    a, b = _sorted_tokens(reference), _sorted_tokens(prediction)
    if a == b:
        return 100
    if not a or not b:
        return 0
    if fuzzy == "levenshtein":
        from rapidfuzz.distance import Indel

        total = len(a) + len(b)  # python-Levenshtein 0.12's ratio: (total - InDel distance) / total
        return round(100 * ((total - Indel.distance(a, b)) / total))
    return round(100 * difflib.SequenceMatcher(None, a, b).ratio())


def slot_score(slot: str, categorical: bool, predicted: Mapping[str, str], reference: StateReference,
               fuzzy: str = "difflib") -> float:
    """One schema slot's DSTC8 score, 0-1."""
    gold, value = reference.slot_values.get(slot), predicted.get(slot)
    if gold is None or value is None:
        return float(gold is None and value is None)
    if categorical:
        return float(value == gold[0])
    if fuzzy == "exact":
        return float(value in gold)
    return max(token_sort_ratio(g, value, fuzzy) for g in gold) / 100.0


def frame_goal_accuracy(prediction: str, reference: StateReference, fuzzy: str = "difflib") -> float | None:
    """The frame's DSTC8 joint goal accuracy (0-1): the product over the service's slots; None without slots."""
    if not reference.service_slots:
        return None
    predicted = parse_prediction(prediction)
    score = 1.0
    for slot, categorical in reference.service_slots.items():
        score *= slot_score(slot, categorical, predicted, reference, fuzzy)
    return score


def _plain_match(prediction: str, reference: str) -> float:
    parse = get_parser("slot_values").parse
    return float(parse(prediction) == parse(reference))


def _scored(references: Sequence[str]) -> list[tuple[str, StateReference | None]]:
    """The references that are scored: the structured ones when there are any (plain ones beside them
    are renderings of the same state, for reading and the round-trip check), else all."""
    parsed = [(text, parse_state_reference(text)) for text in references]
    structured = [(text, ref) for text, ref in parsed if ref is not None]
    return structured or parsed


def joint_goal_accuracy(predictions: Sequence[str], references: Sequence[Sequence[str]],
                        fuzzy: str = "difflib") -> float:
    """Mean over frames of the best reference's score, in percent.

    A structured reference scores the DSTC8 way; a plain "slot=value; ..." reference counts 1
    when prediction and reference hold the same (slot, value) set after ``normalize_text``.
    When an example has structured references, its plain ones are not scored. Frames whose
    references are services without slots are left out (the official "NA").
    """
    check_choice("joint_goal_accuracy", "fuzzy", fuzzy, FUZZY)
    scores = []
    for prediction, refs in zip(predictions, references):
        options = [_plain_match(prediction, text) if ref is None else frame_goal_accuracy(prediction, ref, fuzzy)
                   for text, ref in _scored(refs)]
        defined = [score for score in options if score is not None]
        if defined:
            scores.append(max(defined))
    return 100.0 * sum(scores) / len(scores) if scores else 0.0


def best_rendered_state(prediction: str, reference: StateReference) -> str:
    """The reference state as "slot=value; ..." with, per active slot, the listed value the prediction gave.

    A slot takes the listed value equal (after ``normalize_text``) to one the prediction gives it,
    else its first: the best of every combination of listed values for item-level F1.
    """
    predicted: dict[str, set[str]] = {}
    for slot, value in item_parser("slot_values").items(prediction):
        predicted.setdefault(str(slot), set()).add(str(value))
    state = []
    for slot in sorted(reference.slot_values):
        values = reference.slot_values[slot]
        given = predicted.get(normalize_text(slot), set())
        chosen = next((v for v in values if normalize_text(v) in given), values[0])
        state.append({"slot": slot, "value": chosen})
    return format_state(state)


def plain_references(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[list[str]]:
    """Each example's scored references as plain states, a structured one rendered to suit the prediction."""
    return [[text if ref is None else best_rendered_state(prediction, ref) for text, ref in _scored(refs)]
            for prediction, refs in zip(predictions, references)]
