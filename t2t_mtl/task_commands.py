"""`t2t-mtl tasks list | show | validate | preview`: look at task files without training."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation.normalize import normalize_text
from t2t_mtl.evaluation.parsers import get_parser
from t2t_mtl.evaluation.roundtrip import round_trip_problems
from t2t_mtl.tasks.registry import TaskRegistry, resolve_folders
from t2t_mtl.tasks.schema import TaskSpec
from t2t_mtl.tasks.sources import load_rows, row_fields
from t2t_mtl.templates import compile_templates, environment


def _registry(args: argparse.Namespace) -> TaskRegistry:
    return TaskRegistry(resolve_folders(args.task_dir or ["instructions"], [Path.cwd()]))


def _selected(registry: TaskRegistry, names: list[str]) -> list[TaskSpec]:
    if not names:
        return [registry.get(n) for n in registry.names]
    return [task for name in names for task in registry.select(name)]


def _sample_rows(task: TaskSpec, n: int) -> list[dict]:
    rows = load_rows(task, "eval" if task.held_out else "train")
    return [rows[i] for i in range(min(n, len(rows)))]


def missing_data(task: TaskSpec) -> Path | None:
    """The local data file or folder the task reads by default, when it does not exist."""
    if task.source.format == "hub":
        return None
    location = task.source.eval_path if task.held_out and task.source.eval_path else task.source.path
    path = (task.base_dir / location).resolve()
    return None if path.exists() else path


def validate_task(task: TaskSpec, n: int) -> list[str]:
    """Problems found by linting the templates and rendering `n` rows with every template; empty when sound.

    Each rendered target must be non-empty, use only labels of the label space, and parse
    back to the row's gold structure (the round trip). Rows are skipped when the task's
    data is absent (`missing_data`); the templates are still checked.
    """
    problems = []
    templates = compile_templates(task)
    parser = get_parser(task.output)
    space = task.label_space()
    allowed = {normalize_text(label) for label in space} if space else None
    used = set().union(*(t.variables() for t in templates.values()))
    unused = sorted(set(task.columns) - used)
    if unused:
        problems.append(f"columns {unused} are mapped but no template uses them")
    if task.columns:
        unmapped = sorted(used - set(task.columns) - {"labels"} - set(environment().globals))
        if unmapped:
            problems.append(f"templates use fields {unmapped} that 'columns:' does not map")
    if missing_data(task):
        return problems
    for row_number, row in enumerate(_sample_rows(task, n)):
        fields = row_fields(task, row, space)
        for template_id, template in templates.items():
            example = template.render(fields)
            where = f"template '{template_id}', row {row_number}"
            if not example.target:
                problems.append(f"{where}: empty target")
            if allowed is not None:
                outside = parser.labels_of(parser.parse(example.target)) - allowed
                if outside:
                    problems.append(f"{where}: target labels {sorted(outside)} are outside the label space")
            problems += [f"{where}: {problem}" for problem in round_trip_problems(task, template.spec, fields)]
    return problems


def run_tasks_command(args: argparse.Namespace) -> None:
    """Dispatch one `tasks` action."""
    registry = _registry(args)
    tasks = _selected(registry, args.names)
    if args.action == "list":
        width = max((len(t.name) for t in tasks), default=4)
        print(f"{'task':<{width}}  {'domain':<10} {'output':<12} {'templates':>9}  held_out  metrics")
        for t in tasks:
            print(f"{t.name:<{width}}  {t.domain:<10} {t.output:<12} {len(t.templates):>9}  {t.held_out!s:<8}  "
                  f"{', '.join(t.metrics)}")
    elif args.action == "show":
        for t in tasks:
            print(f"# {t.file}")
            print(yaml.safe_dump(t.model_dump(mode="json", exclude_none=True), sort_keys=False))
    elif args.action == "preview":
        for t in tasks:
            fields_rows = [row_fields(t, row, t.label_space()) for row in _sample_rows(t, args.n)]
            for template_id, template in compile_templates(t).items():
                for number, fields in enumerate(fields_rows):
                    example = template.render(fields)
                    print(f"--- {t.name} · template {template_id} · row {number}")
                    print(f"SOURCE: {example.source}\nTARGET: {example.target}")
    else:
        failed = 0
        for t in tasks:
            problems = validate_task(t, args.n)
            status = "ok" if not problems else f"{len(problems)} problem(s)"
            missing = missing_data(t)
            if missing:
                status += f" (templates only; rows not checked: no data at {missing})"
            print(f"{t.name}: {status}")
            for problem in problems:
                print(f"  - {problem}")
            failed += bool(problems)
        if failed:
            raise T2TError(f"{failed} of {len(tasks)} task files have problems (listed above)")
