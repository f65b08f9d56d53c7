"""Round trip: the target a template renders from a row must parse back to the row's gold structure.

The target is rendered once more with each format filter recording what it was
given; the items the task's parser reads from the target must equal the items the
format's `gold` says that input holds. With `references:`, the target must also
match one of the row's references.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from jinja2.sandbox import SandboxedEnvironment

from t2t_mtl.evaluation.parsers import ItemParser, OutputParser, get_parser, item_parser
from t2t_mtl.formats import FORMATS, OutputFormat
from t2t_mtl.tasks.schema import TaskSpec, TemplateSpec
from t2t_mtl.templates import environment


def _recording(name: str, fmt: OutputFormat, calls: list[tuple[str, Any]]) -> Callable[[Any], str]:
    def render(value: Any) -> str:
        calls.append((name, value))
        return fmt.render(value)

    return render


def _render_recorded(spec: TemplateSpec, fields: Mapping[str, Any]) -> tuple[str, list[tuple[str, Any]]]:
    """The rendered target and the (format name, input) of every format filter it used."""
    calls: list[tuple[str, Any]] = []
    env: SandboxedEnvironment = environment().overlay()
    env.filters = {**env.filters, **{name: _recording(name, fmt, calls) for name, fmt in FORMATS.items()}}
    return env.from_string(spec.target).render(fields).strip(), calls


def _readable(items: Counter) -> str:
    return ", ".join(repr(item) for item in sorted(items.elements(), key=repr)[:3])


def _structure(parser: OutputParser, text: str) -> Any:
    """What must agree: item multisets for structured outputs, the parse otherwise."""
    return Counter(parser.items(text)) if isinstance(parser, ItemParser) else parser.parse(text)


def round_trip_problems(task: TaskSpec, spec: TemplateSpec, fields: Mapping[str, Any]) -> list[str]:
    """Why rendering this row's target with this template does not parse back to its gold; empty when it does."""
    parser = get_parser(task.output)
    target, calls = _render_recorded(spec, fields)
    problems = []
    wrong = sorted({name for name, _ in calls if FORMATS[name].parser != task.output})
    if wrong:
        problems.append(f"the target uses {wrong}, which output '{task.output}' does not read")
    elif calls:
        expected = sum((FORMATS[name].gold(value) for name, value in calls), Counter())
        found = Counter(item_parser(task.output).items(target))
        if found != expected:
            lost, added = expected - found, found - expected
            problems.append(f"round trip: parsing the target {target!r} lost [{_readable(lost)}] "
                            f"and added [{_readable(added)}]")
    elif isinstance(parser, ItemParser):
        fits = sorted(name for name, fmt in FORMATS.items() if fmt.parser == task.output)
        problems.append(f"output '{task.output}' is structured: render the target with {fits} so it can be checked")
    if task.references:
        references = fields.get(task.references) or []
        mine = _structure(parser, target)
        if not any(_structure(parser, str(r)) == mine for r in references):
            problems.append(f"the target {target!r} matches none of the references {list(references)[:3]}")
    return problems
