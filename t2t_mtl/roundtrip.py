"""Round trip: the target a template renders from a row must parse back to the row's gold structure.

The target is rendered once more with each format filter recording what it was
given; the items the task's parser reads from the target must equal the items the
format's `gold` says that input holds. With `references:`, the target must also
match one of the row's references. A composite task's target must hold one answer per
subtask, each checked as its subtask's own output.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from jinja2.sandbox import SandboxedEnvironment

from t2t_mtl.evaluation.parsers import ItemParser, OutputParser, get_parser, item_parser, split_parts
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
    target, calls = _render_recorded(spec, fields)
    if task.subtasks is not None:
        return _composite_problems(task, target, calls)
    problems = _output_problems(task.output, target, calls)
    if task.references:
        parser = get_parser(task.output)
        references = fields.get(task.references) or []
        mine = _structure(parser, target)
        if not any(_structure(parser, str(r)) == mine for r in references):
            problems.append(f"the target {target!r} matches none of the references {list(references)[:3]}")
    return problems


def _output_problems(output: str, target: str, calls: list[tuple[str, Any]]) -> list[str]:
    """Why `target`, rendered with the format `calls`, does not parse back to their gold under `output`."""
    wrong = sorted({name for name, _ in calls if FORMATS[name].parser != output})
    if wrong:
        return [f"the target uses {wrong}, which output '{output}' does not read"]
    if calls:
        expected = sum((FORMATS[name].gold(value) for name, value in calls), Counter())
        found = Counter(item_parser(output).items(target))
        if found != expected:
            lost, added = expected - found, found - expected
            return [f"round trip: parsing the target {target!r} lost [{_readable(lost)}] and added [{_readable(added)}]"]
    elif isinstance(get_parser(output), ItemParser):
        fits = sorted(name for name, fmt in FORMATS.items() if fmt.parser == output)
        return [f"output '{output}' is structured: render the target with {fits} so it can be checked"]
    return []


def _composite_problems(task: TaskSpec, target: str, calls: list[tuple[str, Any]]) -> list[str]:
    """A composite target must hold one answer per subtask, each parsing back to its gold as the subtask's output
    (a format call counts for the answer its rendered text stands in; labels must be in the subtask's space)."""
    subtasks = task.parts
    answers = split_parts(target, len(subtasks) + 1)
    if answers[-1] or not all(answers[:-1]):
        found = len([answer for answer in split_parts(target) if answer])
        problem = (f"the target {target!r} holds {found} answer(s) separated by '||'; the subtasks "
                   f"{task.subtasks} need {len(subtasks)}")
        return [problem]
    starts, cursor = [], 0
    for answer in answers[:-1]:
        cursor = target.find(answer, cursor)
        starts.append(cursor)
    by_answer: list[list[tuple[str, Any]]] = [[] for _ in subtasks]
    position = 0
    for name, value in calls:  # in render order, which is the target's order
        position = max(target.find(FORMATS[name].render(value), position), position)
        by_answer[max(bisect.bisect_right(starts, position) - 1, 0)].append((name, value))
    problems = []
    for subtask, answer, answer_calls in zip(subtasks, answers, by_answer):
        check = subtask.label_check()
        outside = check.outside(answer) if check is not None else set()
        if outside:
            problems.append(f"answer {answer!r} (subtask {subtask.name}): labels {sorted(outside)} are outside its "
                            f"label space")
        problems += [f"answer {answer!r} (subtask {subtask.name}): {problem}"
                     for problem in _output_problems(subtask.output, answer, answer_calls)]
    return problems
