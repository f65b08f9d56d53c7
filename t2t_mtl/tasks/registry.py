"""Find task files by name, glob or path under the task folders.

The folders are indexed cheaply: each file is only parsed as YAML events to read its
top-level `name:` (a file without one is indexed by its path, `<domain>/<task>.yaml`).
Only the tasks a command selects are loaded and checked strictly (`load_task`), so a
broken file that nothing selects is a warning (`select_tasks`), never a blocker.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from t2t_mtl import safe_yaml
from t2t_mtl.errors import T2TError, closest
from t2t_mtl.evaluation.metrics import available_metrics
from t2t_mtl.evaluation.parsers import get_parser
from t2t_mtl.recipe import GLOB_CHARS, Recipe, TaskEntry
from t2t_mtl.task_table import TaskRow
from t2t_mtl.tasks.schema import TaskSpec, load_task_file
from t2t_mtl.textfiles import read_text

logger = logging.getLogger(__name__)


def check_names(task: TaskSpec) -> None:
    """The task's `output` is a parser and each `metrics` name a shipped metric; else T2TError with the closest name.

    Names only (cheap, no `evaluate`): metric options are checked by `check_metrics` when a command scores.
    """
    try:
        get_parser(task.output)
    except T2TError as error:
        raise T2TError(f"{task.where}, output: {error} Fix 'output:' in the task file.") from None
    names = available_metrics()
    for metric in task.metrics:
        if metric.name not in names:
            raise T2TError(f"{task.where}, metrics: Unknown metric '{metric.name}'; available: {', '.join(names)}."
                           f"{closest(metric.name, names)} Fix 'metrics:' in the task file.")


def load_task(path: str | Path) -> TaskSpec:
    """Load one task file strictly: the schema, then its output parser and metric names (`check_names`), and a
    composite task's subtasks (`load_subtasks`)."""
    task = load_task_file(path)
    check_names(task)
    if task.subtasks is not None:
        task._parts = load_subtasks(task)
    return task


def task_root(task: TaskSpec) -> Path:
    """The task folder a task file's name is relative to (`instructions/` for `instructions/demo/x.yaml` named
    `demo/x`); the file's own folder when its path does not end with its name."""
    parts = tuple(task.name.split("/"))
    if task.file is not None and task.file.with_suffix("").parts[-len(parts):] == parts:
        return task.file.parents[len(parts) - 1]
    return task.base_dir


def load_subtasks(task: TaskSpec) -> list[TaskSpec]:
    """A composite task's subtasks: each a task file path relative to its file, or a task name under its task
    folder (`task_root`); a subtask cannot itself be composite."""
    root, registry, subtasks = task_root(task), None, []
    fix = (f"Fix 'subtasks:' in the task file: each entry is a task name under {root} or a task file path "
           f"(.yaml) relative to {task.base_dir}.")
    for entry in task.subtasks or []:
        try:
            if entry.endswith((".yaml", ".yml")):
                subtask = load_task(task.base_dir / entry)
            else:
                registry = registry or TaskRegistry([root])
                subtask = registry.get(entry)
        except T2TError as error:
            raise T2TError(f"{task.where}, subtask '{entry}': {error} {fix}") from None
        if subtask.subtasks is not None:
            raise T2TError(f"{task.where}, subtask '{entry}': {subtask.where} is itself composite; list its own "
                           f"subtasks instead. {fix}")
        subtasks.append(subtask)
    return subtasks


def declared_name(path: Path) -> tuple[str | None, str | None]:
    """The task name a file declares (None when unreadable), and why the file is broken (None: not seen).

    Reads YAML events only (no values built, aliases not expanded), so indexing stays cheap and bounded;
    schema problems are found when the task is loaded.
    """
    try:
        name, problem = _top_level_name(yaml.parse(read_text(path, "task file"), Loader=yaml.SafeLoader))
    except T2TError as error:
        return None, str(error)
    return name, problem and f"task file {path} {problem}"


def _top_level_name(events: Iterable[yaml.Event]) -> tuple[str | None, str | None]:
    """(the top-level mapping's `name` scalar, a problem); reads every event so that YAML errors surface."""
    name, depth, position, value_of_name, top_is_mapping = None, 0, 0, False, None
    try:
        for event in events:
            if isinstance(event, yaml.NodeEvent) and depth == 0:
                top_is_mapping = isinstance(event, yaml.MappingStartEvent)
            if isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent, yaml.CollectionStartEvent)) and depth == 1:
                if value_of_name:
                    name = event.value if isinstance(event, yaml.ScalarEvent) else None
                value_of_name = position % 2 == 0 and isinstance(event, yaml.ScalarEvent) and event.value == "name"
                position += 1
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > safe_yaml.MAX_DEPTH:  # stop reading: loading the task refuses it with the details
                    return name, f"is refused: it nests more than {safe_yaml.MAX_DEPTH} levels deep"
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as error:  # the name read before the error still indexes the file
        return name, f"is not valid YAML: {error}"
    if not top_is_mapping:
        return None, "must be a YAML mapping of keys (name, domain, source, ...)"
    return (name, None) if name else (None, "has no 'name:' (a task name such as ie/ner)")


class TaskRegistry:
    """The task files under some folders, indexed by task name; a task is loaded when first selected."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders = folders
        self._files: dict[str, list[Path]] = {}  # task name -> the files that declare it
        self._tasks: dict[str, TaskSpec] = {}  # the tasks loaded so far
        self.broken: dict[Path, str] = {}  # files the index saw are broken (bad YAML, no name), with why
        self.unnamed: set[Path] = set()  # files indexed by their path (`<domain>/<task>`): no name could be read
        for folder in folders:
            for path in sorted(folder.rglob("*.yaml")):
                name, problem = declared_name(path)
                by_path, path = path.relative_to(folder).with_suffix("").as_posix(), path.resolve()
                if name is None:
                    self.unnamed.add(path)
                self._files.setdefault(name or by_path, []).append(path)
                if problem:
                    self.broken[path] = problem

    @property
    def files(self) -> list[Path]:
        """Every indexed task file (a name defined twice: each of its files)."""
        return [path for paths in self._files.values() for path in paths]

    def add(self, task: TaskSpec) -> None:
        """Register one loaded task; two files with the same task name are an error."""
        known = self._tasks.get(task.name)
        if known is not None and known.file != task.file:
            raise T2TError(f"task name '{task.name}' is defined twice: {known.file} and {task.file}")
        self._tasks[task.name] = task

    def load_all(self) -> tuple[list[TaskSpec], dict[Path, str]]:
        """Every task that loads (sorted by name), and the error of each file that does not."""
        broken = {}
        for path in self.files:
            try:
                self.add(load_task(path))
            except T2TError as error:
                broken[path] = str(error)
        return [self._tasks[name] for name in sorted(self._tasks)], broken

    @property
    def names(self) -> list[str]:
        """Every indexed task name, sorted."""
        return sorted(self._files)

    def get(self, name: str) -> TaskSpec:
        """The task with this name, loaded strictly; a near miss suggests the closest name."""
        if name in self._tasks:
            return self._tasks[name]
        files = self._files.get(name)
        if not files:
            raise T2TError(
                f"no task named '{name}' in {', '.join(map(str, self.folders))}.{closest(name, self.names)}"
                f" Run `t2t-mtl tasks list` to see them.{self._unnamed_note()}"
            )
        if len(files) > 1:
            raise T2TError(f"task name '{name}' is defined twice: {files[0]} and {files[1]}; rename one.")
        task = load_task(files[0])
        if task.name != name:  # cannot happen for a file that loads: the index read its name
            raise T2TError(f"task file {files[0]} declares name '{task.name}', indexed as '{name}'")
        self.add(task)
        return task

    def select(self, pattern: str) -> list[TaskSpec]:
        """Tasks matching a name, a glob (`ie/*`), or a path to a task file."""
        if pattern.endswith((".yaml", ".yml")):
            task = load_task(pattern)  # names the file when it does not exist
            others = [f for f in self._files.get(task.name, []) if f != task.file]
            if others:
                raise T2TError(f"task name '{task.name}' is defined twice: {others[0]} and {task.file}")
            self.add(task)
            return [task]
        if any(ch in pattern for ch in "*?["):
            matched = [self.get(n) for n in self.names if fnmatch.fnmatchcase(n, pattern)]
            if not matched:
                domains = sorted({n.split("/")[0] for n in self.names})
                raise T2TError(f"no task matches '{pattern}'. Domains present: {domains}.{self._unnamed_note()}")
            return matched
        return [self.get(pattern)]

    def _unnamed_note(self) -> str:
        """The problems of the files whose task name could not be read (one of them may be the task looked for)."""
        problems = [self.broken[path] for path in sorted(self.unnamed) if path in self.broken]
        return f" Task files whose name could not be read: {'; '.join(problems)}" if problems else ""

    def warn_unselected(self, selected: list[TaskSpec]) -> None:
        """One warning line per broken indexed file, and per name defined twice, that no selected task comes from."""
        used = {task.file for task in selected}
        for path, problem in self.broken.items():
            if path not in used:
                logger.warning("%s (not selected: skipped)", " ".join(problem.split()))
        for name, paths in self._files.items():
            if len(paths) > 1 and not used & set(paths):
                logger.warning("task name '%s' is defined twice: %s and %s (not selected: skipped)", name, *paths[:2])


def resolve_folders(entries: list[str], anchors: list[Path]) -> list[Path]:
    """Resolve task folders: absolute paths as given, relative ones against each anchor in turn."""
    folders = []
    for entry in entries:
        candidates = [Path(entry)] if Path(entry).is_absolute() else [a / entry for a in anchors]
        found = next((c for c in candidates if c.is_dir()), None)
        if found is None:
            raise T2TError(f"task folder '{entry}' not found (looked in {[str(c) for c in candidates]})")
        folders.append(found.resolve())
    return folders


@dataclass(frozen=True)
class SelectedTask:
    """A task chosen by a recipe, with that recipe's entry (data overrides, rate, cap)."""

    spec: TaskSpec
    entry: TaskEntry


def select_tasks(recipe: Recipe, anchors: list[Path]) -> list[SelectedTask]:
    """The recipe's tasks in recipe order, name and data globs expanded, each task once."""
    registry = TaskRegistry(resolve_folders(recipe.task_dirs, anchors))
    chosen: dict[str, SelectedTask] = {}
    for entry in recipe.tasks:
        for spec in registry.select(entry.name):
            for item in _instances(spec, entry):
                chosen.setdefault(item.spec.name, item)
    check_eval_tasks(recipe.eval.tasks, list(chosen))
    registry.warn_unselected([item.spec for item in chosen.values()])
    return list(chosen.values())


def check_eval_tasks(patterns: list[str] | None, names: list[str]) -> None:
    """Each `eval.tasks` name or glob must match a selected task; the error names those that match none."""
    unmatched = [p for p in patterns or [] if not any(fnmatch.fnmatchcase(name, p) for name in names)]
    if unmatched:
        raise T2TError(f"eval.tasks (or evaluate --tasks): {unmatched} match none of the selected tasks {names}."
                       f"{closest(unmatched[0], names)} Fix or remove them; without eval.tasks every task is "
                       f"evaluated.")


def _instances(spec: TaskSpec, entry: TaskEntry) -> list[SelectedTask]:
    """The task as the entry configures it: one per file when `data` is a glob."""
    if entry.held_out is not None:
        spec = spec.model_copy(update={"held_out": entry.held_out})
    if entry.eval_data and any(c in entry.eval_data for c in GLOB_CHARS):
        raise T2TError(f"recipe task '{entry.name}': eval_data '{entry.eval_data}' cannot be a glob; put the glob "
                       f"in data: (with held_out: true for evaluation-only tasks)")
    if not entry.data or not any(c in entry.data for c in GLOB_CHARS):
        return [SelectedTask(spec, entry)]
    matches = sorted(glob.glob(entry.data))
    if not matches:
        raise T2TError(f"recipe task '{entry.name}': data '{entry.data}' matches no file")
    return [SelectedTask(spec.model_copy(update={"name": f"{spec.name}/{Path(m).stem}"}),
                         entry.model_copy(update={"data": m})) for m in matches]


def reopen(row: TaskRow) -> TaskSpec:
    """A trained run's task as its task table recorded it: the task file, under the recorded name and held-out flag."""
    return load_task(row.file).model_copy(update={"name": row.name, "held_out": row.held_out})


def from_task_table(rows: list[TaskRow], recipe: Recipe) -> list[SelectedTask]:
    """A trained run's tasks as its task table recorded them (names, files, data, held-out)."""
    return [SelectedTask(reopen(row), entry_for(recipe, row.name).model_copy(
                update={"data": row.data, "eval_data": row.eval_data}))
            for row in rows]


def entry_for(recipe: Recipe, name: str) -> TaskEntry:
    """The recipe entry (name or glob) that selected a task; a plain entry when none did."""
    for entry in recipe.tasks:
        if entry.name == name or fnmatch.fnmatchcase(name, entry.name):
            return entry
    return TaskEntry(name=name)
