"""`t2t-mtl tasks list | show | validate | preview`: look at task files without training."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import datasets
import yaml

from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation.metrics import check_metrics
from t2t_mtl.roundtrip import round_trip_problems
from t2t_mtl.tasks.registry import TaskRegistry, resolve_folders
from t2t_mtl.tasks.schema import TaskSpec
from t2t_mtl.tasks.sources import load_rows, row_fields
from t2t_mtl.templates import compile_templates, environment


def _folders(args: argparse.Namespace) -> list[Path]:
    return resolve_folders(args.task_dir or ["instructions"], [Path.cwd()])


def _registry(args: argparse.Namespace) -> TaskRegistry:
    return TaskRegistry(_folders(args))


def _tasks_for(registry: TaskRegistry, names: list[str]) -> tuple[list[TaskSpec], dict[Path, str]]:
    """The named tasks (loaded strictly: a broken one is a T2TError), or, without names, every task that
    loads and the error of each file that does not."""
    if not names:
        return registry.load_all()
    return [task for name in names for task in registry.select(name)], {}


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No `datasets` progress bars or log lines below errors inside; both settings restored after."""
    bars, verbosity = datasets.is_progress_bar_enabled(), datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    try:
        yield
    finally:
        if bars:
            datasets.enable_progress_bars()
        datasets.logging.set_verbosity(verbosity)


def _sample_rows(task: TaskSpec, n: int) -> list[dict]:
    with _quiet_datasets():
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

    The metrics' names and options must be valid. Each rendered target must be non-empty, use only labels of the label space, and parse
    back to the row's gold structure (the round trip). Rows are skipped when the task's
    data is absent (`missing_data`); the templates are still checked. Rows that do not load
    and a template that does not render (checked on no further rows) are problems too.
    """
    problems = []
    for scored in task.parts or [task]:
        try:
            check_metrics(scored.metrics, scored.where)
        except T2TError as error:
            problems.append(str(error))
    templates = compile_templates(task)
    space = task.label_space()
    check = task.label_check()
    used = set().union(*(t.variables() for t in templates.values()))
    unused = sorted(set(task.columns) - used)
    if unused:
        problems.append(f"columns {unused} are mapped but no template uses them")
    if task.columns:
        unmapped = sorted(used - set(task.columns) - {"labels", "subtasks"} - set(environment().globals))
        if unmapped:
            problems.append(f"templates use fields {unmapped} that 'columns:' does not map")
    if missing_data(task):
        return problems
    try:
        rows = [row_fields(task, row, space) for row in _sample_rows(task, n)]
    except T2TError as error:
        return [*problems, str(error)]
    for template_id, template in templates.items():
        for row_number, fields in enumerate(rows):
            where = f"template '{template_id}', row {row_number}"
            try:
                example = template.render(fields)
            except T2TError as error:
                problems.append(f"{where}: {error}")
                break
            if not example.target:
                problems.append(f"{where}: empty target")
            if check is not None:
                outside = check.outside(example.target)
                if outside:
                    problems.append(f"{where}: target labels {sorted(outside)} are outside the label space")
            problems += [f"{where}: {problem}" for problem in round_trip_problems(task, template.spec, fields)]
    return problems


def _named_tasks(registry: TaskRegistry, names: list[str]) -> tuple[dict[str, TaskSpec], dict[str, str]]:
    """The tasks each name or glob selects, and the error of each name that selects none or a broken file."""
    tasks: dict[str, TaskSpec] = {}
    failures = {}
    broken = registry.broken  # what the index saw; other files are not loaded
    for name in names:
        try:
            tasks.update((task.name, task) for task in registry.select(name))
        except T2TError as error:
            unloaded = f" ({len(broken)} task file(s) did not load: {sorted(map(str, broken))})" if broken else ""
            failures[name] = f"{error}{unloaded}"
    return tasks, failures


def _report(label: str, status: str, problems: list[str]) -> None:
    print(f"{label}: {status}")
    for problem in problems:
        print("  - " + problem.replace("\n", "\n    "))


def validate_tasks(folders: list[Path], names: list[str], n: int) -> None:
    """Validate the named tasks (every task under `folders` when none), print each one's problems and a summary.

    A task file that does not load, a name that matches nothing and a check that stops on an error
    are reported as problems, and the other tasks are still checked. T2TError when any has problems.
    """
    registry = TaskRegistry(folders)
    if not names:
        loaded, broken = registry.load_all()
        tasks, failures = {task.name: task for task in loaded}, {str(path): error for path, error in broken.items()}
    else:
        tasks, failures = _named_tasks(registry, names)
    for label, error in failures.items():
        _report(label, "could not be loaded", [error])
    failed, unchecked = len(failures), 0
    for task in tasks.values():
        try:
            problems = validate_task(task, n)
        except Exception as error:  # noqa: BLE001 - datasets' own errors too (hub offline): this task's problem only
            problems = [str(error) if isinstance(error, T2TError) else f"{type(error).__name__}: {error}"]
        missing = missing_data(task)
        note = f" (templates only; rows not checked: no data at {missing})" if missing else ""
        _report(task.name, f"{f'{len(problems)} problem(s)' if problems else 'ok'}{note}", problems)
        failed, unchecked = failed + bool(problems), unchecked + bool(missing)
    total = len(failures) + len(tasks)
    print(f"\n{total} checked: {total - failed} ok, {failed} with problems"
          + (f"; {unchecked} without data (templates only)" if unchecked else ""))
    if failed:
        raise T2TError(f"{failed} of {total} tasks have problems (listed above)")


def run_tasks_command(args: argparse.Namespace) -> None:
    """Dispatch one `tasks` action."""
    if args.action == "validate":
        validate_tasks(_folders(args), args.names, args.n)
        return
    tasks, broken = _tasks_for(_registry(args), args.names)
    if args.action == "list":
        width = max((len(t.name) for t in tasks), default=4)
        print(f"{'task':<{width}}  {'domain':<10} {'output':<12} {'templates':>9}  held_out  metrics")
        for t in tasks:
            metrics = [f"{part.name}:{metric}" for part in t.parts for metric in part.metrics] or t.metrics
            print(f"{t.name:<{width}}  {t.domain:<10} {t.output:<12} {len(t.templates):>9}  {t.held_out!s:<8}  "
                  f"{', '.join(map(str, metrics))}")
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
    if broken:  # after the tasks that load: a broken file hides none of them
        raise T2TError(f"{len(broken)} task file(s) could not be loaded (the tasks that load are above):\n"
                       + "\n".join(f"  - {error}" for error in broken.values()))
