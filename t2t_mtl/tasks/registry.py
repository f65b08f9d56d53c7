"""Find task files by name, glob or path under the task folders."""

from __future__ import annotations

import fnmatch
import glob
from dataclasses import dataclass
from pathlib import Path

from t2t_mtl.errors import T2TError, closest
from t2t_mtl.recipe import GLOB_CHARS, Recipe, TaskEntry
from t2t_mtl.tasks.schema import TaskSpec, load_task_file


class TaskRegistry:
    """All task files found under some folders, indexed by task name."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders = folders
        self._tasks: dict[str, TaskSpec] = {}
        for folder in folders:
            for path in sorted(folder.rglob("*.yaml")):
                self.add(load_task_file(path))

    def add(self, task: TaskSpec) -> None:
        """Register one task; two files with the same task name are an error."""
        known = self._tasks.get(task.name)
        if known is not None and known.file != task.file:
            raise T2TError(f"task name '{task.name}' is defined twice: {known.file} and {task.file}")
        self._tasks[task.name] = task

    @property
    def names(self) -> list[str]:
        """Every registered task name, sorted."""
        return sorted(self._tasks)

    def get(self, name: str) -> TaskSpec:
        """The task with this name; a near miss suggests the closest name."""
        if name not in self._tasks:
            raise T2TError(
                f"no task named '{name}' in {', '.join(map(str, self.folders))}.{closest(name, self.names)}"
                f" Run `t2t-mtl tasks list` to see them."
            )
        return self._tasks[name]

    def select(self, pattern: str) -> list[TaskSpec]:
        """Tasks matching a name, a glob (`ie/*`), or a path to a task file."""
        if pattern.endswith((".yaml", ".yml")):
            task = load_task_file(pattern)  # names the file when it does not exist
            self.add(task)
            return [task]
        if any(ch in pattern for ch in "*?["):
            matched = [self._tasks[n] for n in self.names if fnmatch.fnmatchcase(n, pattern)]
            if not matched:
                domains = sorted({t.domain for t in self._tasks.values()})
                raise T2TError(f"no task matches '{pattern}'. Domains present: {domains}.")
            return matched
        return [self.get(pattern)]


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


def from_task_table(rows: list[dict], recipe: Recipe) -> list[SelectedTask]:
    """A trained run's tasks as its task table recorded them (names, files, data, held-out)."""
    selected = []
    for row in rows:
        spec = load_task_file(row["file"]).model_copy(update={"name": row["name"], "held_out": row["held_out"]})
        entry = entry_for(recipe, row["name"]).model_copy(update={"data": row["data"], "eval_data": row["eval_data"]})
        selected.append(SelectedTask(spec, entry))
    return selected


def entry_for(recipe: Recipe, name: str) -> TaskEntry:
    """The recipe entry (name or glob) that selected a task; a plain entry when none did."""
    for entry in recipe.tasks:
        if entry.name == name or fnmatch.fnmatchcase(name, entry.name):
            return entry
    return TaskEntry(name=name)
