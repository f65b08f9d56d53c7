"""Constrained decoding (`eval.constrain`): outputs that cannot leave the task's label space.

`labels`: a label task decodes only the tokenised labels of its label space (a token trie).
`schema`: besides, a typed-span task writes only type names of its label space ("None" or
`type: span` items separated by ";"), its spans free. `substrings`: besides, every span is a
run of the input's own tokens, as extractive IE needs. `none` turns constraints off; the
default is `labels`. A mode constrains the tasks it fits and leaves the others free; a
composite task's answers are each constrained as their subtask's, and separated by " || ".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessor, PreTrainedTokenizerBase

from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation.parsers import PART_SEPARATOR
from t2t_mtl.tasks.schema import TaskSpec

MODES = ("none", "labels", "schema", "substrings")  # each constrains what the one before does, and more
CONSTRAINED_OUTPUTS = {"labels": ("label",), "schema": ("label", "typed_spans"), "substrings": ("label", "typed_spans")}


@dataclass
class Trie:
    """Token sequences by their prefixes; `ends` marks where a whole sequence ends."""

    children: dict[int, Trie] = field(default_factory=dict)
    ends: bool = False

    @classmethod
    def of(cls, sequences: Sequence[Sequence[int]]) -> Trie:
        root = cls()
        for sequence in sequences:
            node = root
            for token in sequence:
                node = node.children.setdefault(token, cls())
            node.ends = True
        return root

    def walk(self, tokens: Sequence[int]) -> Trie | None:
        """The node after `tokens`, or None when no sequence starts with them."""
        node: Trie | None = self
        for token in tokens:
            node = node.children.get(token) if node is not None else None
        return node


class Constraint:
    """What one example may decode next, given what it has decoded (None: anything)."""

    def allowed(self, decoded: list[int]) -> list[int] | None:
        raise NotImplementedError


@dataclass
class OneOf(Constraint):
    """Exactly one of the trie's sequences, then the end of the sequence."""

    trie: Trie
    eos: list[int]

    def allowed(self, decoded: list[int]) -> list[int] | None:
        node = self.trie.walk(decoded)
        options = [*node.children, *(self.eos if node.ends else [])] if node is not None else []
        return options or self.eos


@dataclass
class TypedSpans(Constraint):
    """`none`, or `type: span` items separated by `separator`: each type with its ":" one of the sequences of
    `first` (the first item) or `later` (after a separator); spans free, or runs of `source` when given."""

    first: Trie
    later: Trie
    none: list[int]
    separator: int
    eos: list[int]
    source: list[int] | None = None

    def allowed(self, decoded: list[int]) -> list[int] | None:
        cuts = [i for i, token in enumerate(decoded) if token == self.separator]
        item = decoded[cuts[-1] + 1 :] if cuts else decoded
        node: Trie | None = self.later if cuts else self.first
        for at, token in enumerate(item):
            node = node.children.get(token) if node is not None else None
            if node is not None and node.ends:  # the item's type is written: the rest is its span
                return self._span(item[at + 1 :])
        options = set(node.children) if node is not None else set()
        if not cuts and item == self.none:
            return self.eos
        if not cuts and self.none[: len(item)] == item:
            options.add(self.none[len(item)])
        return sorted(options) or self.eos

    def _span(self, span: list[int]) -> list[int] | None:
        """What may follow a span begun as `span`: anything, or the source's continuations of it (and, once it
        has a token, the separator or the end)."""
        if self.source is None:
            return None
        follows = {self.source[i + len(span)] for i in range(len(self.source) - len(span))
                   if self.source[i : i + len(span)] == span}
        return sorted(follows | ({self.separator, *self.eos} if span else set()))


@dataclass
class Parts(Constraint):
    """A composite task's answers, each under its subtask's constraint (None: free), joined by the `separator`
    tokens: where a constrained answer could end, the separator follows instead (the last answer ends)."""

    parts: list[Constraint | None]
    separator: list[int]
    eos: list[int]

    def allowed(self, decoded: list[int]) -> list[int] | None:
        size, start, index = len(self.separator), 0, 0
        for at in range(len(decoded) - size + 1):
            if index < len(self.parts) - 1 and at >= start and decoded[at : at + size] == self.separator:
                start, index = at + size, index + 1
        answer, part = decoded[start:], self.parts[index]
        if part is None:
            return None
        last = index == len(self.parts) - 1
        for begun in range(min(size - 1, len(answer)), 0, -1):  # a separator begun where the answer could end
            if not last and answer[-begun:] == self.separator[:begun] and self._ends(part, answer[:-begun]):
                return [self.separator[begun]]
        allowed = part.allowed(answer)
        if allowed is None or last:
            return allowed
        ends = [token for token in allowed if token in self.eos]
        return sorted({token for token in allowed if token not in self.eos} | ({self.separator[0]} if ends else set()))

    def _ends(self, part: Constraint, answer: list[int]) -> bool:
        allowed = part.allowed(answer)
        return allowed is not None and any(token in self.eos for token in allowed)


class ConstrainedLogits(LogitsProcessor):
    """Masks, for each beam of each example, every token its constraint does not allow (None: none masked)."""

    def __init__(self, constraints: Sequence[Constraint | None], beams: int) -> None:
        self.constraints = list(constraints)
        self.beams = beams

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row, decoded in enumerate(input_ids[:, 1:].tolist()):  # past the decoder's start token
            constraint = self.constraints[row // self.beams]
            allowed = constraint.allowed(decoded) if constraint is not None else None
            if allowed is not None:
                keep = scores[row, allowed].clone()
                scores[row] = -torch.inf
                scores[row, allowed] = keep
        return scores


def mode_of(task: TaskSpec, requested: str | None) -> str:
    """The constraint `task` decodes under when `requested` (None: the default, labels) applies to it."""
    mode = requested or "labels"
    if mode not in MODES:
        raise T2TError(f"unknown constraint '{mode}'; choose one of {', '.join(MODES)}")
    if task.subtasks is not None:
        return mode if any(mode_of(part, mode) != "none" for part in task.parts) else "none"
    fits = task.output in CONSTRAINED_OUTPUTS.get(mode, ()) and task.label_space() is not None
    return ("labels" if task.output == "label" else mode) if fits else "none"


def check_mode(tasks: Sequence[TaskSpec], requested: str | None) -> None:
    """Refuse an explicitly requested constraint that none of `tasks` can decode under."""
    if requested in (None, "none") or any(mode_of(task, requested) != "none" for task in tasks):
        return
    outputs = " or ".join(CONSTRAINED_OUTPUTS.get(requested, ("label",)))
    names = ", ".join(f"{task.name} (output {task.output}, {'a' if task.label_space() else 'no'} label space)"
                      for task in tasks)
    raise T2TError(f"constrain: {requested} needs a task with output {outputs} and a label space (labels: in its "
                   f"task file); {names} has none. Use constrain: none, or give the task a label space.")


def end_tokens(model: torch.nn.Module) -> list[int]:
    """The token ids that end a generation of `model`."""
    eos = model.generation_config.eos_token_id
    return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)


def _tokens(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def task_constraints(task: TaskSpec, requested: str | None, tokenizer: PreTrainedTokenizerBase, eos: list[int],
                     instances: Sequence[str]) -> list[Constraint | None]:
    """One constraint per example of `task` (the text fields of its row, `instances`), or Nones when the mode
    does not fit it."""
    mode = mode_of(task, requested)
    if mode == "none":
        return [None] * len(instances)
    if task.subtasks is not None:
        separator = _between(tokenizer, "x", PART_SEPARATOR, "y")
        answers = [task_constraints(part, mode, tokenizer, eos, instances) for part in task.parts]
        return [Parts(list(parts), separator, eos) for parts in zip(*answers)]
    labels = task.label_space() or []
    if mode == "labels":
        shared = OneOf(Trie.of([_tokens(tokenizer, label) for label in labels]), eos)
        return [shared] * len(instances)
    separator = _separator(tokenizer)
    first = [_tokens(tokenizer, f"{label}:") for label in labels]
    later = [_after_separator(tokenizer, f"x; {label}:", separator) for label in labels]
    first_trie, later_trie, none = Trie.of(first), Trie.of(later), _tokens(tokenizer, "None")
    if mode == "schema":
        return [TypedSpans(first_trie, later_trie, none, separator, eos)] * len(instances)
    return [TypedSpans(first_trie, later_trie, none, separator, eos, _tokens(tokenizer, instance))
            for instance in instances]


def _separator(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token id of ";" between two items, as targets tokenise it."""
    for token in _tokens(tokenizer, "x; y"):
        if tokenizer.decode([token]).strip() == ";":
            return token
    raise T2TError(f"the tokenizer {type(tokenizer).__name__} has no token of its own for ';': typed spans cannot be "
                   f"constrained with it; use constrain: labels or none")


def _between(tokenizer: PreTrainedTokenizerBase, head: str, separator: str, tail: str) -> list[int]:
    """The tokens of `separator` between `head` and `tail`, as the tokenizer writes them in one text."""
    whole, first, last = (_tokens(tokenizer, text) for text in (head + separator + tail, head, tail))
    middle = whole[len(first) : len(whole) - len(last)]
    if whole[: len(first)] != first or whole[len(whole) - len(last) :] != last or not middle:
        raise T2TError(f"the tokenizer {type(tokenizer).__name__} does not write {separator!r} as tokens of its own: "
                       f"composite tasks cannot be constrained with it; use constrain: none")
    return middle


def _after_separator(tokenizer: PreTrainedTokenizerBase, text: str, separator: int) -> list[int]:
    tokens = _tokens(tokenizer, text)
    return tokens[tokens.index(separator) + 1 :]
