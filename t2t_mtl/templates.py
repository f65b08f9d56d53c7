"""Sandboxed Jinja rendering of task templates into (source, target) text pairs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.sandbox import SandboxedEnvironment

from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation.formats import FILTERS
from t2t_mtl.tasks.schema import TaskSpec, TemplateSpec

TEMPLATE_FIELDS = ("instruction", "input", "target")


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    """The one Jinja environment: sandboxed, strict about undefined names, no escaping."""
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters.update(FILTERS)
    return env


@dataclass(frozen=True)
class RenderedExample:
    """One example as the model sees it."""

    source: str
    target: str
    template_id: str


class CompiledTemplate:
    """A task template with its three Jinja fields compiled once."""

    def __init__(self, task: TaskSpec, spec: TemplateSpec) -> None:
        self.task = task
        self.spec = spec
        self._compiled = {}
        for field in TEMPLATE_FIELDS:
            text = getattr(spec, field)
            try:
                self._compiled[field] = environment().from_string(text)
            except TemplateSyntaxError as error:
                raise T2TError(
                    f"{task.where}: template '{spec.id}', field '{field}', line {error.lineno}: "
                    f"Jinja syntax error: {error.message}. Fix the template text."
                ) from error

    def variables(self) -> set[str]:
        """Names the template reads from the row (beyond filters and `labels`)."""
        env = environment()
        names: set[str] = set()
        for field in TEMPLATE_FIELDS:
            names |= meta.find_undeclared_variables(env.parse(getattr(self.spec, field)))
        return names

    def render(self, fields: Mapping[str, Any], with_target: bool = True) -> RenderedExample:
        """Render one row's fields; a missing field names the task file, template and field.

        Without target (prediction on unlabelled rows) the target is left empty.
        """
        parts = {field: self._render(field, fields) for field in TEMPLATE_FIELDS if with_target or field != "target"}
        source = f"{parts['instruction']}\n{parts['input']}" if parts["input"] else parts["instruction"]
        return RenderedExample(source=source, target=parts.get("target", ""), template_id=self.spec.id)

    def instruction(self, fields: Mapping[str, Any]) -> str:
        """The instruction alone, rendered on one row's fields."""
        return self._render("instruction", fields)

    def _render(self, field: str, fields: Mapping[str, Any]) -> str:
        try:
            return self._compiled[field].render(fields).strip()
        except UndefinedError as error:
            raise T2TError(
                f"{self.task.where}: template '{self.spec.id}', field '{field}': {error.message}. "
                f"Fields available from the data: {sorted(fields)}. Map the missing field with "
                f"'columns:' in the task file or fix the template."
            ) from error


def compile_templates(task: TaskSpec) -> dict[str, CompiledTemplate]:
    """Compile every template of a task, keyed by template id."""
    return {spec.id: CompiledTemplate(task, spec) for spec in task.templates}


def template_hash(spec: TemplateSpec) -> str:
    """A stable hash of a template's text, for the run's template lock."""
    text = json.dumps({field: getattr(spec, field) for field in TEMPLATE_FIELDS}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
