"""YAML from user files, bounded: aliases may not expand a document past MAX_NODES, nor may it nest past MAX_DEPTH.

`yaml.safe_load` runs no code, but an alias bomb (anchors that repeat anchors) of a few
lines expands to billions of values in whatever reads the result, and deep nesting ends in
a RecursionError. `load` refuses both while composing, before anything is built.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.error import Mark

from t2t_mtl.errors import T2TError

MAX_NODES = 100_000  # values in the document with every alias expanded
MAX_DEPTH = 100  # levels of nested lists and mappings


class YAMLLimit(yaml.YAMLError):
    """A document that would expand past MAX_NODES or nests past MAX_DEPTH."""

    def __init__(self, problem: str, mark: Mark) -> None:
        super().__init__(f"line {mark.line + 1}, column {mark.column + 1}: {problem}")


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that sizes every node as it is composed (an alias counts as all it stands for)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        """Compose one node; refuse it when too deep, too large expanded, or an alias inside its own anchor."""
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self._sizes:
                raise YAMLLimit("an alias refers to the anchor it is inside of; write the value out", mark)
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YAMLLimit(f"the document nests more than {MAX_DEPTH} levels deep", mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._sizes[id(node)] = size = 1 + sum(self._sizes[id(child)] for child in _children(node))
        if size > MAX_NODES:
            raise YAMLLimit(f"with its aliases (*name) expanded, this part holds more than {MAX_NODES:,} values; "
                            f"write the values out instead of repeating anchors", mark)
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load(text: str, where: str, fix: str = "") -> Any:
    """Parse YAML text from `where` (e.g. "task file x.yaml"); any problem is a T2TError naming it, then `fix`."""
    try:
        return yaml.load(text, Loader=BoundedLoader)  # BoundedLoader is a SafeLoader
    except YAMLLimit as error:
        raise T2TError(f"{where}: refused, {error}.{fix}") from error
    except yaml.YAMLError as error:
        raise T2TError(f"{where} is not valid YAML: {error}{fix}") from error
