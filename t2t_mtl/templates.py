"""Sandboxed Jinja rendering of task templates into (source, target) text pairs."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.sandbox import SandboxedEnvironment

from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation.formats import FILTERS
from t2t_mtl.tasks.schema import TaskSpec, TemplateSpec

TEMPLATE_FIELDS = ("instruction", "input", "target")
WORD = re.compile(r"\S+")

Fits = Callable[[str], bool]
"""Whether a rendered source is short enough (in data.py: at most `max_source_length` tokens)."""
Shortener = tuple[str, int, Callable[[int], Any]]
"""A `fit` field, its number of shorter versions k = 0..n-1, and the k-th (0: emptied)."""


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
    shortened: tuple[str, ...] = ()  # the `fit` fields shortened so that the source fits


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
        self._check_fit()

    def variables(self, fields: tuple[str, ...] = TEMPLATE_FIELDS) -> set[str]:
        """Names the template's `fields` read from the row (beyond filters and `labels`)."""
        env = environment()
        names: set[str] = set()
        for field in fields:
            names |= meta.find_undeclared_variables(env.parse(getattr(self.spec, field)))
        return names

    def render(self, fields: Mapping[str, Any], with_target: bool = True, fits: Fits | None = None
               ) -> RenderedExample:
        """Render one row's fields; a missing field names the task file, template and field.

        Without target (prediction on unlabelled rows) the target is left empty. With `fits`,
        a template that declares `fit:` shortens those parts until the source fits (`FitSpec`);
        the target is always rendered from the full fields.
        """
        if fits is None or self.spec.fit is None:
            source, shortened = self.source(fields), ()
        else:
            source, shortened = self._fit(fields, fits)
        target = self._render("target", fields) if with_target else ""
        return RenderedExample(source=source, target=target, template_id=self.spec.id, shortened=shortened)

    def source(self, fields: Mapping[str, Any]) -> str:
        """The source text: instruction, then input on the next line when there is one."""
        instruction, text = self._render("instruction", fields), self._render("input", fields)
        return f"{instruction}\n{text}" if text else instruction

    def instruction(self, fields: Mapping[str, Any]) -> str:
        """The instruction alone, rendered on one row's fields."""
        return self._render("instruction", fields)

    def _check_fit(self) -> None:
        """Every `fit` field must be one the instruction or input reads."""
        if self.spec.fit is None:
            return
        used = self.variables(("instruction", "input"))
        unknown = [name for name in (*self.spec.fit.drop, *self.spec.fit.cut) if name not in used]
        if unknown:
            raise T2TError(f"{self.task.where}: template '{self.spec.id}': fit names {unknown}, which its "
                           f"instruction and input do not use; they use {sorted(used)}.")

    def _fit(self, fields: Mapping[str, Any], fits: Fits) -> tuple[str, tuple[str, ...]]:
        """The source with `fit` parts shortened in order, each as little as needed, until it fits.

        Each part's longest fitting version is found by binary search; a part that cannot
        make the source fit is emptied and the next one shortened. When nothing fits, the
        source with every part emptied is returned (and cut from the right by `tokenize`).
        """
        fields = dict(fields)
        shortened: list[str] = []
        fitting = fits(self.source(fields))
        for shortener in self._shorteners(fields):
            if fitting:
                break
            fitting = self._shorten(fields, shortener, fits)
            shortened.append(shortener[0])
        return self.source(fields), tuple(shortened)

    def _shorten(self, fields: dict[str, Any], shortener: Shortener, fits: Fits) -> bool:
        """Set the field to its longest version with which the source fits (emptied when none); whether one does."""
        name, count, version = shortener
        keep = _longest(count, lambda k: fits(self.source({**fields, name: version(k)})))
        fields[name] = version(max(keep, 0))
        return keep >= 0

    def _shorteners(self, fields: Mapping[str, Any]) -> Iterator[Shortener]:
        """The `fit` fields in the order they are shortened: `drop` lists, then `cut` texts."""
        fit = self.spec.fit
        assert fit is not None
        for name in fit.drop:
            items = self._fit_value(fields, name, list)
            yield name, len(items), lambda k, items=items: items[:k]
        for name in fit.cut:
            text = self._fit_value(fields, name, str)
            ends = [match.end() for match in WORD.finditer(text)]
            yield name, len(ends), lambda k, text=text, ends=ends: text[: ends[k - 1]] if k else ""

    def _fit_value(self, fields: Mapping[str, Any], name: str, kind: type) -> Any:
        value = fields.get(name)
        if not isinstance(value, kind):
            what = "drop" if kind is list else "cut"
            raise T2TError(f"{self.task.where}: template '{self.spec.id}': fit.{what} field '{name}' must hold a "
                           f"{kind.__name__} in every row, got {type(value).__name__}.")
        return value

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
    """A stable hash of a template's text and `fit`, for the run's template lock."""
    content: dict[str, Any] = {field: getattr(spec, field) for field in TEMPLATE_FIELDS}
    if spec.fit is not None:
        content["fit"] = spec.fit.model_dump()
    text = json.dumps(content, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _longest(count: int, fits: Callable[[int], bool]) -> int:
    """The largest k < count with fits(k), by binary search (fits holds up to some k); -1 when none does."""
    low, high = -1, count  # fits(low) is taken to hold, fits(high) to fail
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return low
