"""Sandboxed Jinja rendering of task templates into (source, target) text pairs.

Templates are untrusted input. They run in Jinja's immutable sandbox (no code, no changes
to fields or labels), compiling one evaluates nothing, and each render of a field runs on
a `Budget`: the limits below bound its output, what it builds, its steps and its time.
Going over one is a `T2TError` naming the task file, template and field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache, update_wrapper
from typing import Any, TypeVar

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateSyntaxError,
    Undefined,
    UndefinedError,
    meta,
    nodes,
    pass_context,
)
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg
from jinja2.visitor import NodeTransformer

from t2t_mtl.errors import T2TError
from t2t_mtl.formats import FILTERS
from t2t_mtl.tasks.nulls import NullFieldError
from t2t_mtl.tasks.schema import TaskSpec, TemplateSpec

TEMPLATE_FIELDS = ("instruction", "input", "target")
WORD = re.compile(r"\S+")

Fits = Callable[[str], bool]
"""Whether a rendered source is short enough (in data.py: at most `max_source_length` tokens)."""
Shortener = tuple[str, int, Callable[[int], Any]]
"""A `fit` field, its number of shorter versions k = 0..n-1, and the k-th (0: emptied)."""
T = TypeVar("T")

# Limits on one render of one template field.
MAX_OUTPUT = 1_000_000  # characters rendered, set blocks and macro bodies included
MAX_BUILT = 10_000_000  # characters and items that operators, filters, calls and literals build
MAX_STEPS = 1_000_000  # loop iterations, calls, filters, operators and outputs
MAX_SECONDS = 1.0  # wall time
MAX_RANGE = 10_000  # items of one range()
MAX_INT_BITS = 4_096  # bits of an integer that ** or * builds


class TemplateLimit(SecurityError):
    """A render went over one of the limits."""


@dataclass
class Budget:
    """What one render has spent: every operator, call, filter, loop iteration and output charges it."""

    deadline: float = dataclasses.field(default_factory=lambda: time.monotonic() + MAX_SECONDS)
    steps: int = 0
    built: int = 0
    output: int = 0
    sizes: dict[int, tuple[Any, int]] = dataclasses.field(default_factory=dict)  # containers sized so far, kept alive

    def step(self) -> None:
        """Count one step; every 64 steps, refuse past MAX_STEPS or MAX_SECONDS."""
        self.steps += 1
        if not self.steps & 63:
            self._check_steps()

    def _check_steps(self) -> None:
        if self.steps > MAX_STEPS:
            raise TemplateLimit(f"it took more than {MAX_STEPS:,} steps (loop iterations, calls, filters, operators)")
        if time.monotonic() > self.deadline:
            raise TemplateLimit(f"it ran for more than {MAX_SECONDS:g} s")

    def afford(self, size: int, what: str) -> None:
        """Refuse `what` when building `size` more would go over MAX_BUILT."""
        if self.built + size > MAX_BUILT:
            raise TemplateLimit(f"{what} would build {size:,} more characters or items, past the {MAX_BUILT:,} "
                                f"a render may build")

    def charge(self, value: T, what: str) -> T:
        """Count a value the template built."""
        size = self.size(value)
        self.afford(size, what)
        self.built += size
        return value

    def emit(self, text: str) -> str:
        """Count rendered text, as one step; refuse past MAX_OUTPUT."""
        self.output += len(text)
        if self.output > MAX_OUTPUT:
            raise TemplateLimit(f"it renders more than {MAX_OUTPUT:,} characters")
        self.step()
        return text

    def size(self, value: Any) -> int:
        """About the length of `value` as text: characters, digits and items of all it holds (stops past MAX_BUILT)."""
        if isinstance(value, (str, bytes)):
            return len(value)
        if isinstance(value, int):
            return value.bit_length() // 3 + 1
        if not isinstance(value, (list, tuple, dict, set, frozenset)):
            return 1
        known = self.sizes.get(id(value))
        if known is not None:
            return known[1]
        self.sizes[id(value)] = (value, MAX_BUILT + 1)  # a container holding itself is too big
        total = 1 + len(value)
        for item in _members(value):
            total += self.size(item)
            if total > MAX_BUILT:
                break
        self.sizes[id(value)] = (value, total)
        return total


def _members(value: Any) -> Iterable[Any]:
    return (part for pair in value.items() for part in pair) if isinstance(value, dict) else value


_ACTIVE: ContextVar[Budget | None] = ContextVar("template_budget", default=None)


def current_budget() -> Budget:
    """The budget of the render in progress (a fresh one outside renders)."""
    return _ACTIVE.get() or Budget()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_bits(bits: int, what: str) -> None:
    if bits > MAX_INT_BITS:
        raise TemplateLimit(f"{what} would build an integer of about {bits:,} bits; templates may build "
                            f"{MAX_INT_BITS:,}")


def _check_binop(budget: Budget, operator: str, left: Any, right: Any) -> None:
    """Refuse `left <operator> right` before it runs when its result would be too big."""
    what = f"'{operator}'"
    if operator == "**" and _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
        _check_bits(left.bit_length() * right, what)
    elif operator == "*" and _is_int(left) and _is_int(right):
        _check_bits(left.bit_length() + right.bit_length(), what)
    elif operator == "*":
        sequence, count = (right, left) if _is_int(left) else (left, right)
        if _is_int(count) and isinstance(sequence, (str, bytes, list, tuple)):
            budget.afford(budget.size(sequence) * max(count, 0), what)
    elif operator == "%" and isinstance(left, (str, bytes)):
        budget.afford(_percent_size(budget, left, right), what)


PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def _percent_size(budget: Budget, text: str | bytes, values: Any) -> int:
    """An upper bound of the length of `text % values`; `*` widths are refused."""
    specs = PERCENT_SPEC.findall(text.decode("latin-1") if isinstance(text, bytes) else text)
    if any("*" in spec for spec in specs):
        raise TemplateLimit("'%' formatting with a '*' width or precision is not allowed in templates; "
                            "write the number in the format")
    widths = sum(int(number or 0) for spec in specs for number in spec)
    return len(text) + widths + len(specs) * budget.size(values)


def _format_size(budget: Budget, text: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """An upper bound of the length of `text.format(...)`; widths given by fields ({:{w}}) are refused."""
    try:
        parts = [(name, spec) for _, name, spec, _ in string.Formatter().parse(text) if name is not None]
    except ValueError:  # the call itself reports the broken format
        return 0
    if any("{" in (spec or "") for _, spec in parts):
        raise TemplateLimit("str.format with a width or precision taken from a field ({:{w}}) is not allowed "
                            "in templates; write the number in the format")
    widths = sum(int(number) for _, spec in parts for number in re.findall(r"\d+", spec or ""))
    largest = max(map(budget.size, [*args, *kwargs.values()]), default=0)
    return len(text) + widths + len(parts) * largest


def _replace_size(text: Any, old: Any, new: Any, count: Any = -1) -> int:
    if not (all(isinstance(part, str) for part in (text, old, new))
            or all(isinstance(part, bytes) for part in (text, old, new))):
        return 0
    found = text.count(old) if old else len(text) + 1
    if _is_int(count) and count >= 0:
        found = min(found, count)
    return len(text) + found * len(new)


def _join_size(budget: Budget, items: Any, separator: Any = "", attribute: Any = None) -> int:
    if not isinstance(items, Sized):
        return 0
    return sum(map(budget.size, items)) + len(items) * budget.size(separator)


def _indent_size(text: Any, width: Any = 4, *flags: Any, **options: Any) -> int:
    if not isinstance(text, str):
        return 0
    return len(text) + (text.count("\n") + 1) * (width if _is_int(width) else len(str(width)))


def _wordwrap_size(text: Any, width: Any = 79, breaks: Any = True, wrapstring: Any = None, *flags: Any,
                   **options: Any) -> int:
    if not isinstance(text, str) or not _is_int(width):
        return 0
    lines = len(text) // max(width, 1) + text.count("\n") + 1
    return len(text) + lines * len(str(options.get("wrapstring", wrapstring) or "\n"))


def _sum_size(budget: Budget, items: Any, attribute: Any = None, start: Any = 0) -> int:
    """Adding up sequences (from a list or tuple `start`) copies the running total each time: count that work."""
    if not isinstance(items, Sized) or not isinstance(start, (list, tuple)):
        return 0
    return len(items) * sum(map(budget.size, items))


def _width_size(text: Any, width: Any = 80, *args: Any) -> int:
    return max(len(text), width) if isinstance(text, (str, bytes)) and _is_int(width) else 0


def _tabs_size(text: Any, tabsize: Any = 8) -> int:
    if not isinstance(text, (str, bytes)) or not _is_int(tabsize):
        return 0
    return len(text) + text.count("\t" if isinstance(text, str) else b"\t") * tabsize


def _translate_size(text: Any, table: Any) -> int:
    if not isinstance(text, str) or not isinstance(table, Mapping):
        return 0
    return len(text) * max([1, *(len(v) for v in table.values() if isinstance(v, str))])


Sizer = Callable[..., int]
# Filters and str methods whose result can be far larger than what they are given: (sizer, needs the budget).
FILTER_SIZES: dict[str, tuple[Sizer, bool]] = {
    "join": (_join_size, True), "sum": (_sum_size, True), "replace": (_replace_size, False),
    "indent": (_indent_size, False), "wordwrap": (_wordwrap_size, False), "center": (_width_size, False),
    "format": (lambda budget, text, *args, **kwargs: _percent_size(budget, text, kwargs or args)
               if isinstance(text, str) else 0, True),
}
METHOD_SIZES: dict[str, tuple[Sizer, bool]] = {
    "join": (lambda budget, separator, items: _join_size(budget, items, separator), True),
    "replace": (_replace_size, False), "center": (_width_size, False), "ljust": (_width_size, False),
    "rjust": (_width_size, False), "zfill": (_width_size, False), "expandtabs": (_tabs_size, False),
    "translate": (_translate_size, False),
}
CONSUMED = {"join", "sum"}  # these read a whole iterable: it is made a list first, to be sized


def _afford(budget: Budget, sizer: tuple[Sizer, bool], what: str, *args: Any, **kwargs: Any) -> None:
    function, needs_budget = sizer
    try:
        size = function(budget, *args, **kwargs) if needs_budget else function(*args, **kwargs)
    except (TypeError, ValueError, AttributeError):  # wrong arguments: the call itself reports them
        return
    budget.afford(size, what)


def _listed(value: Any) -> Any:
    return value if isinstance(value, Sized) else list(value)


def _check_int_args(what: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if _is_int(value) and abs(value) > MAX_OUTPUT:
            raise TemplateLimit(f"{what} was given {value:,}; templates may pass numbers up to {MAX_OUTPUT:,}")


_PASS_ARGS: dict[_PassArg, Callable[[Context], tuple[Any, ...]]] = {
    _PassArg.context: lambda context: (context,),
    _PassArg.eval_context: lambda context: (context.eval_ctx,),
    _PassArg.environment: lambda context: (context.environment,),
}


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` as a filter that charges the budget (and, taking the context, is never run at compile time)."""
    head = _PASS_ARGS.get(_PassArg.from_obj(function), lambda context: ())
    sizer = FILTER_SIZES.get(name)
    what = f"filter '{name}'"

    @pass_context
    def bounded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = current_budget()
        budget.step()
        _check_int_args(what, args, kwargs)
        if name in CONSUMED:
            value = _listed(value)
        if sizer is not None:
            _afford(budget, sizer, what, value, *args, **kwargs)
        return budget.charge(function(*head(context), value, *args, **kwargs), what)

    return bounded


def _bounded_range(*args: int) -> range:
    """range() with at most MAX_RANGE items."""
    items = range(*args)
    if len(items) > MAX_RANGE:
        raise TemplateLimit(f"range() of {len(items):,} items; templates may use {MAX_RANGE:,}")
    return items


LOOP, CONCAT, BUILT = "_bounded_loop", "_bounded_concat", "_bounded_literal"


@pass_context
def _loop(context: Context, iterable: Iterable[Any]) -> Iterator[Any]:
    """What a {% for %} loop iterates: one step per item."""
    budget = current_budget()
    for item in iterable:
        budget.step()
        yield item


@pass_context
def _concat(context: Context, parts: list[Any]) -> str:
    """The `~` operator, sized before it joins."""
    budget = current_budget()
    budget.step()
    budget.afford(sum(map(budget.size, parts)), "'~'")
    return budget.charge("".join(map(str, parts)), "'~'")


@pass_context
def _literal(context: Context, value: T) -> T:
    """A list, tuple or dict written in the template, charged like anything built."""
    budget = current_budget()
    budget.step()
    return budget.charge(value, "a literal")


@pass_context
def _finalize(context: Context, value: Any) -> str:
    """Every piece of output, literal text included (taking the context, it is never run at compile time)."""
    budget = current_budget()
    if not isinstance(value, str):
        budget.afford(budget.size(value), "output")
        value = str(value)
    return budget.emit(value)


def _through(name: str, node: nodes.Expr) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _Bounder(NodeTransformer):
    """Routes through the budget what a compiled template would do unseen: loops, `~`, literals, text in loops.

    Text outside loops is as long as the task file allows; in a loop it is output as often as the loop runs.
    """

    def __init__(self) -> None:
        self.loops = 0

    def visit_For(self, node: nodes.For) -> nodes.For:
        self.loops += 1
        self.generic_visit(node)
        self.loops -= 1
        node.iter = _through(LOOP, node.iter)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        self.generic_visit(node)
        return _through(CONCAT, nodes.List(node.nodes, lineno=node.lineno))

    def visit_List(self, node: nodes.List) -> nodes.Expr:
        self.generic_visit(node)
        return _through(BUILT, node)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Expr:
        self.generic_visit(node)
        return _through(BUILT, node)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Expr:
        self.generic_visit(node)
        return _through(BUILT, node) if node.ctx == "load" else node

    def visit_TemplateData(self, node: nodes.TemplateData) -> nodes.Expr:
        return nodes.Const(node.data, lineno=node.lineno) if self.loops else node


class BoundedTemplate(Template):
    """A template whose every render runs on a fresh `Budget`."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        """Render on a fresh budget (see `Template.render`)."""
        budget = _ACTIVE.set(Budget())
        try:
            return super().render(*args, **kwargs)
        finally:
            _ACTIVE.reset(budget)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, evaluating nothing at compile time and every render on a `Budget`.

    Constant folding is off everywhere: no optimizer, output through a context-taking
    `finalize`, filters taking the context and intercepted operators (which Jinja never folds).
    """

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    template_class = BoundedTemplate

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False,
                         optimized=False, finalize=_finalize)
        del self.globals["lipsum"]  # random filler text; lipsum(n=10**6) took 38 s and 1.9 GB
        self.globals["range"] = _bounded_range
        self.filters = {name: _bounded_filter(name, f) for name, f in {**self.filters, **FILTERS}.items()}
        self.filters.update({LOOP: _loop, CONCAT: _concat, BUILT: _literal})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = _Bounder().visit(super()._parse(source, name, filename))
        tree.set_environment(self)
        return tree

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """An operator, refused before it runs when its result would be too big."""
        budget = current_budget()
        budget.step()
        _check_binop(budget, operator, left, right)
        return budget.charge(super().call_binop(context, operator, left, right), f"'{operator}'")

    def call(self, context: Context, function: Any, /, *args: Any, **kwargs: Any) -> Any:
        """A call, sized beforehand when it is a str method that can grow its text."""
        budget = current_budget()
        budget.step()
        name = getattr(function, "__name__", "")
        what = f"{name or 'a call'}()"
        if isinstance(getattr(function, "__self__", None), (str, bytes)) and name in METHOD_SIZES:
            if name in CONSUMED and args:
                args = (_listed(args[0]), *args[1:])
            _afford(budget, METHOD_SIZES[name], what, function.__self__, *args, **kwargs)
        return budget.charge(super().call(context, function, *args, **kwargs), what)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """str.format and format_map, sized before they run."""
        formatter = super().wrap_str_format(value)
        if formatter is None:
            return None
        text = value.__self__

        def bounded(*args: Any, **kwargs: Any) -> str:
            budget = current_budget()
            budget.afford(_format_size(budget, text, args, kwargs), "str.format()")
            return formatter(*args, **kwargs)

        return update_wrapper(bounded, value)


@lru_cache(maxsize=1)
def environment() -> BoundedSandbox:
    """The one Jinja environment: bounded immutable sandbox, strict about undefined names, no escaping."""
    return BoundedSandbox()


def literal_template(text: str) -> str:
    """Jinja source that renders `text` exactly, braces included."""
    return text.replace("{", "{{ '{' }}")


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
            self._compiled[field] = self._compile(field)
        self._check_fit()

    def _compile(self, field: str) -> BoundedTemplate:
        """Compile one field; compiling evaluates nothing (see `BoundedSandbox`)."""
        try:
            return environment().from_string(getattr(self.spec, field))
        except TemplateSyntaxError as error:
            raise T2TError(f"{self._where(field)}, line {error.lineno}: Jinja syntax error: {error.message}. "
                           f"Fix the template text.") from error
        except Exception as error:  # the text is untrusted: RecursionError, MemoryError, ...
            raise T2TError(f"{self._where(field)}: could not be compiled ({_describe(error, NESTING)}). Simplify "
                           f"the template.") from error

    def _where(self, field: str) -> str:
        return f"{self.task.where}: template '{self.spec.id}', field '{field}'"

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
        if isinstance(value, Undefined):
            try:
                str(value)
            except UndefinedError as error:
                raise T2TError(f"{self.task.where}: template '{self.spec.id}': fit field '{name}': "
                               f"{error.message}") from error
        if not isinstance(value, kind):
            what = "drop" if kind is list else "cut"
            raise T2TError(f"{self.task.where}: template '{self.spec.id}': fit.{what} field '{name}' must hold a "
                           f"{kind.__name__} in every row, got {type(value).__name__}.")
        return value

    def _render(self, field: str, fields: Mapping[str, Any]) -> str:
        """Render one field (on a fresh `Budget`); every failure is a `T2TError` naming the place."""
        try:
            return self._compiled[field].render(fields).strip()
        except NullFieldError as error:
            raise T2TError(f"{self._where(field)}: {error.message}") from error
        except UndefinedError as error:
            raise T2TError(
                f"{self._where(field)}: {error.message}. Fields available from the data: {sorted(fields)}. "
                f"Map the missing field with 'columns:' in the task file or fix the template."
            ) from error
        except TemplateLimit as error:
            raise T2TError(f"{self._where(field)}: refused, {error}. Templates format a row; they cannot compute "
                           f"much: simplify the template.") from error
        except T2TError:
            raise
        except Exception as error:  # an untrusted template on untrusted data: sandbox refusals, ...
            raise T2TError(f"{self._where(field)}: rendering failed ({_describe(error, RECURSION)}). Fix the "
                           f"template or the row's data.") from error


NESTING = "it nests too deeply"
RECURSION = "it recursed too deeply, e.g. a macro that calls itself without end"


def _describe(error: Exception, deep: str) -> str:
    """An error from an untrusted template in words; `deep` says what a RecursionError means here."""
    if isinstance(error, RecursionError):
        return deep
    if isinstance(error, MemoryError):
        return "it ran out of memory"
    if isinstance(error, SecurityError):
        return f"the sandbox refused: {error} Templates may read fields and labels, not change them or reach Python"
    return f"{type(error).__name__}: {error}"


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
