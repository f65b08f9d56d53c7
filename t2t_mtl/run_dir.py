"""The run folder: what a training run writes and how later commands find it."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from t2t_mtl import safe_yaml
from t2t_mtl.errors import T2TError
from t2t_mtl.manifest import MANIFEST, CorruptManifest, damage, read_manifest, write_manifest
from t2t_mtl.recipe import Recipe, parse_recipe
from t2t_mtl.selection import read_best
from t2t_mtl.task_table import TaskRow
from t2t_mtl.tasks.registry import SelectedTask
from t2t_mtl.tasks.schema import TaskSpec
from t2t_mtl.templates import template_hash

logger = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
# Recipe sections that may change when resuming; everything else defines the run.
RESUMABLE_CHANGES = {"train.max_steps", "train.epochs", "train.eval_every", "train.save_every",
                     "train.log_every", "train.keep_last", "train.keep_best", "train.early_stopping", "train.resume",
                     "train.skip_nonfinite", "eval", "output_dir"}


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def task_table(selected: list[SelectedTask], instructions: list[str]) -> list[TaskRow]:
    """One row per task: name, id (its routing row), domain, held_out, instruction, file, data paths."""
    return [TaskRow(name=s.spec.name, id=i, domain=s.spec.domain, held_out=s.spec.held_out, instruction=instruction,
                    file=str(s.spec.file), data=s.entry.data, eval_data=s.entry.eval_data)
            for i, (s, instruction) in enumerate(zip(selected, instructions, strict=True))]


def defining_settings(recipe: Recipe) -> dict[str, Any]:
    """The recipe's settings that define a run (those a resume may not change), flattened."""
    def resumable(key: str) -> bool:
        return any(key == change or key.startswith(change + ".") for change in RESUMABLE_CHANGES)

    return {k: v for k, v in _flatten(recipe.model_dump(mode="json")).items() if not resumable(k)}


def read_json(path: Path, fix: str) -> Any:
    """A JSON file of a run; a missing or corrupt one is a T2TError naming it and `fix`."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise T2TError(f"{path} is missing. {fix}") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise T2TError(f"{path} is corrupt ({error}). {fix}") from error


def input_lock(selected: list[SelectedTask], data: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """What a start of a run reads: every template's hash and (given) every task's data fingerprint."""
    return {"templates": {s.spec.name: {t.id: template_hash(t) for t in s.spec.templates} for s in selected},
            "data": data or {}}


def input_changes(then: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """How the templates and data of `now` differ from `then` (two `input_lock`s), one line per change."""
    files = {task: entry["file"] for task, entry in now["data"].items()}
    return (_template_changes(then.get("templates", {}), now["templates"], files)
            + _data_changes(then.get("data", {}), now["data"]))


def _template_changes(then: dict[str, Any], now: dict[str, Any], files: dict[str, str]) -> list[str]:
    """Tasks that joined or left, and templates added, removed or edited, between two template locks."""
    changes = []
    for task in sorted(set(then) | set(now)):
        where = files.get(task, "its task file")
        if task not in then or task not in now:
            changes.append(f"task {task} ({where}) {'joined' if task in now else 'left'} the run")
            continue
        for template in sorted(set(then[task]) | set(now[task])):
            if then[task].get(template) != now[task].get(template):
                how = "added" if template not in then[task] else "removed" if template not in now[task] else "edited"
                changes.append(f"{task}: template '{template}' {how} in {where}")
    return changes


def _data_changes(then: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Tasks whose loaded rows differ between two data locks, naming their data and row counts."""
    return [f"{task}: data {now[task]['source']} changed ({then[task]['rows']} rows then, {now[task]['rows']} now)"
            for task in sorted(set(then) & set(now)) if then[task]["sha256"] != now[task]["sha256"]]


class RunDir:
    """Paths and records of one run folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.replaced: Path | None = None  # the run this one replaces, moved aside until its first step

    recipe_file = property(lambda self: self.root / "recipe.yaml")
    tasks_file = property(lambda self: self.root / "tasks.json")
    lock_file = property(lambda self: self.root / "templates.lock.json")
    log_file = property(lambda self: self.root / "log.jsonl")
    checkpoints_dir = property(lambda self: self.root / "checkpoints")
    final_dir = property(lambda self: self.root / "final")
    predictions_dir = property(lambda self: self.root / "predictions")
    run_file = property(lambda self: self.root / "run.json")
    data_lock_file = property(lambda self: self.root / "data.lock.json")
    mixture_file = property(lambda self: self.root / "mixture.json")  # configured shares and truncation per task
    merge_file = property(lambda self: self.root / "merge.json")  # a run made by `t2t-mtl merge`, not trained

    def exists(self) -> bool:
        """Whether a run was started here."""
        return self.recipe_file.is_file()

    def recipe(self) -> Recipe:
        """The resolved recipe the run was trained with."""
        if not self.exists():
            raise T2TError(f"{self.root} is not a run folder (no recipe.yaml). Train first: t2t-mtl train RECIPE")
        try:
            raw = yaml.load(self.recipe_file.read_text(encoding="utf-8"), Loader=safe_yaml.BoundedLoader)
        except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as error:
            raise T2TError(f"{self.recipe_file} is corrupt ({error}). It is the resolved recipe this run was "
                           f"trained with: restore it from a backup or from the recipe you trained with.") from error
        return parse_recipe(raw, str(self.recipe_file))

    def tasks(self) -> list[TaskRow]:
        """The task table: name, id, domain, held_out, instruction, file, data paths."""
        fix = f"Resume the run to write it again (t2t-mtl train RECIPE output_dir={self.root} --resume)."
        table = read_json(self.tasks_file, f"Training writes it when it starts. {fix}")
        try:
            return TypeAdapter(list[TaskRow]).validate_python(table)
        except ValidationError as error:
            raise T2TError(f"{self.tasks_file} is not a task table (a list of rows with name, id, held_out; "
                           f"{error.errors()[0]['msg']} at {'.'.join(map(str, error.errors()[0]['loc']))}). "
                           f"{fix}") from error

    def has_progress(self) -> bool:
        """Whether the run got anywhere: a checkpoint folder or final weights.

        A run folder without either is a stub (a run that failed or stopped before its first
        checkpoint); a new run may replace it without --overwrite.
        """
        return self.final_dir.exists() or (self.checkpoints_dir.is_dir()
                                           and any(self.checkpoints_dir.glob("step-*")))

    def check(self, recipe: Recipe, resume: bool, overwrite: bool, protected: list[Path]) -> bool:
        """Refuse unsafe or mixed output folders; returns whether an existing run is continued.

        Read-only: nothing is written or deleted. `protected` are paths the run must never
        contain (the working folder, the recipe file, the task files). An existing run needs
        --resume or --overwrite, unless it is a stub.
        """
        self._check_place(protected)
        self._warn_replaced_leftovers()
        if not self.exists():
            return False
        if not self.has_progress():
            if resume:
                logger.warning("%s holds no checkpoint yet: starting that run again from step 0", self.root)
            return False
        if overwrite:
            return False
        if resume and self.merge_file.is_file():
            raise T2TError(f"{self.root} was made by `t2t-mtl merge` ({self.merge_file}), not by training: it has no "
                           f"training to resume. Train into another output_dir=..., or pass --overwrite to replace it.")
        if not resume:
            raise T2TError(
                f"output folder {self.root} already holds a run. Pass --resume to continue it or "
                f"--overwrite to replace it, or choose another output_dir=..."
            )
        changed = self._defining_changes(recipe)
        if changed:
            raise T2TError(f"cannot resume {self.root}: the recipe differs in {changed}. "
                           f"Use another output_dir or --overwrite.")
        return True

    def _check_place(self, protected: list[Path]) -> None:
        """Refuse an output_dir that is a file, holds the working folder or a protected path, or holds no run.

        The run's own recipe.yaml is not protected: `t2t-mtl train RUN/recipe.yaml --resume` is fine.
        """
        root = self.root.resolve()
        if root.exists() and not root.is_dir():
            raise T2TError(f"output_dir {self.root} is a file, not a folder: choose a folder, e.g. output_dir=runs/NAME")
        if root == Path.cwd().resolve():
            raise T2TError(f"output_dir '{self.root}' is the current folder: a run needs a folder of its own, "
                           f"e.g. output_dir=runs/NAME")
        for path in [Path.cwd(), *protected]:
            path = path.resolve()
            if (root == path or root in path.parents) and path != self.recipe_file.resolve():
                raise T2TError(f"output_dir {self.root} contains {path}, which the run must never replace: "
                               f"choose a folder of its own, e.g. output_dir=runs/NAME")
        if root.is_dir() and any(root.iterdir()) and not (self.exists() and self.tasks_file.is_file()):
            raise T2TError(f"output_dir {self.root} already holds files but no run (a run folder has recipe.yaml "
                           f"and tasks.json); nothing was changed. Choose a new or empty folder, e.g. "
                           f"output_dir=runs/NAME")

    def _warn_replaced_leftovers(self) -> None:
        for leftover in sorted(self.root.parent.glob(f".{self.root.name}.replaced-*")):
            logger.warning("%s is a run that an interrupted --overwrite moved aside; move it back with "
                           "`mv %s %s` (after removing %s) or delete it", leftover, leftover, self.root, self.root)

    def claim(self, recipe: Recipe, replace: bool) -> None:
        """Take the folder for this recipe, once every input is known good (after `check`).

        With `replace`, an existing run is moved aside atomically (a sibling
        `.NAME.replaced-<time>`), to be dropped by `drop_replaced` once the new run has made
        its first step, or put back by `restore_replaced` if it fails before.
        """
        if replace and self.root.is_dir() and any(self.root.iterdir()):
            aside = self.root.parent / f".{self.root.name}.replaced-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
            os.rename(self.root, aside)
            self.replaced = aside
        self.root.mkdir(parents=True, exist_ok=True)
        self.recipe_file.write_text(recipe.to_yaml(), encoding="utf-8")

    def drop_replaced(self) -> None:
        """Delete the run this one replaced (call once the new run has made its first step)."""
        aside, self.replaced = self.replaced, None
        if aside is not None:
            shutil.rmtree(aside)

    def restore_replaced(self) -> None:
        """Put the replaced run back where it was, untouched, removing what the new run wrote."""
        aside, self.replaced = self.replaced, None
        if aside is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            os.rename(aside, self.root)
            logger.warning("the new run failed before its first step: %s is back as it was", self.root)

    def _defining_changes(self, recipe: Recipe) -> list[str]:
        old, new = defining_settings(self.recipe()), defining_settings(recipe)
        return [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]

    def write_task_table(self, table: list[TaskRow], selected: list[SelectedTask],
                         data: dict[str, dict[str, Any]] | None = None) -> None:
        """Record the task table, a lock of every template's text and (given) a lock of each task's data."""
        self.write_tables(table, input_lock(selected)["templates"], data)

    def write_tables(self, table: list[TaskRow], templates: dict[str, Any],
                     data: dict[str, dict[str, Any]] | None = None) -> None:
        """Write tasks.json, templates.lock.json and (given) data.lock.json."""
        self.tasks_file.write_text(json.dumps([row.model_dump() for row in table], indent=2), encoding="utf-8")
        self.lock_file.write_text(json.dumps(templates, indent=2, sort_keys=True), encoding="utf-8")
        if data is not None:
            self.data_lock_file.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")

    def write_mixture(self, rows: list[dict[str, Any]]) -> None:
        """Record the mixture table (`plan.mixture_record`) in mixture.json."""
        self.mixture_file.write_text(json.dumps(rows, indent=2), encoding="utf-8")

    def changed_templates(self, task: TaskSpec) -> list[str]:
        """Template ids of a trained task whose text differs from the lock (empty when unknown)."""
        if not self.lock_file.is_file():
            return []
        locked = json.loads(self.lock_file.read_text(encoding="utf-8")).get(task.name, {})
        return [s.id for s in task.templates if s.id in locked and locked[s.id] != template_hash(s)]

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first; a folder without its marker is ignored."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = [p for p in self.checkpoints_dir.glob("step-*") if (p / COMPLETE).is_file()]
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def trained_weights(self, checkpoint: str | None = None) -> Path:
        """The folder to load trained weights from, verified.

        `checkpoint` is `last` (the default: final/, else the latest checkpoint), `best` (the best
        evaluated weights, train.keep_best) or `step-N` (the checkpoint of step N).
        """
        folder = self.checkpoint_folder(checkpoint or "last")
        self._check_weights(folder)
        return folder if folder == self.final_dir else folder / "model"

    def checkpoint_folder(self, checkpoint: str) -> Path:
        """final/ or the checkpoint folder that `checkpoint` (last, best or step-N) names; a T2TError when none."""
        checkpoints = self.checkpoints()
        steps = ", ".join(p.name for p in checkpoints) or "none"
        if checkpoint == "last":
            if (self.final_dir / COMPLETE).is_file():
                return self.final_dir
            if checkpoints:
                logger.warning("%s has no final weights; using %s", self.root, checkpoints[-1].name)
                return checkpoints[-1]
            raise T2TError(f"{self.root} holds no trained weights yet (no final/ and no complete checkpoint)")
        if checkpoint == "best":
            best = read_best(self.checkpoints_dir)
            if best is None:
                raise T2TError(f"{self.root} kept no best checkpoint: train with train.keep_best=true and "
                               f"train.eval_every=N, or choose --checkpoint last or step-N (its checkpoints: {steps})")
            folder = self.root / best["folder"]
            if not (folder / COMPLETE).is_file():
                raise T2TError(f"the best weights of {self.root} (step {best['step']}, {best['select']} "
                               f"{best['score']:.2f}) were in {folder}, which is gone; its checkpoints: {steps}")
            return folder
        number = checkpoint.removeprefix("step-")
        if not checkpoint.startswith("step-") or not number.isdigit():
            raise T2TError(f"--checkpoint {checkpoint}: choose best, last or step-N (its checkpoints: {steps})")
        folder = self.checkpoints_dir / f"step-{int(number):06d}"
        if folder not in checkpoints:
            raise T2TError(f"{self.root} has no complete checkpoint of step {int(number)}; its checkpoints: {steps}")
        return folder

    def _check_weights(self, folder: Path) -> None:
        """Refuse a damaged folder, another run's, or one whose adapter recipe.yaml no longer describes."""
        manifest, damaged = self.verify(folder)
        if damaged:
            raise T2TError(f"{folder} is damaged: {'; '.join(damaged)}. Restore it from a backup, or write it again "
                           f"from the run's checkpoints: t2t-mtl train RECIPE output_dir={self.root} --resume")
        if manifest is None:
            logger.warning("%s has no %s (written before checkpoints recorded hashes): its weights cannot be "
                           "verified", folder, MANIFEST)
            return
        self.check_recipe(folder, manifest)

    def run_id(self) -> str:
        """This run's id (kept in run.json), created the first time it is asked for."""
        recorded = self.recorded_run_id()
        if recorded is None:
            recorded = uuid.uuid4().hex
            self.run_file.write_text(json.dumps({"run_id": recorded}), encoding="utf-8")
        return recorded

    def recorded_run_id(self) -> str | None:
        """The run's id, or None before it wrote its first checkpoint."""
        if not self.run_file.is_file():
            return None
        fix = (f"It holds this run's id, which its checkpoints and final/ record in {MANIFEST}: restore it as "
               f'{{"run_id": "<the run_id of checkpoints/*/{MANIFEST}>"}}.')
        record = read_json(self.run_file, fix)
        if not isinstance(record, dict) or not isinstance(record.get("run_id"), str):
            raise T2TError(f"{self.run_file} holds no run_id. {fix}")
        return record["run_id"]

    def inputs(self) -> dict[str, Any]:
        """The templates and data of this start of the run, as its lock files record them."""
        fix = "Training writes it when it starts: resume the run to write it again."
        return {"templates": read_json(self.lock_file, fix) if self.lock_file.is_file() else {},
                "data": read_json(self.data_lock_file, fix) if self.data_lock_file.is_file() else {}}

    def write_manifest(self, folder: Path) -> None:
        """Record in `folder` the run's id, defining recipe settings, inputs, and every file's hash."""
        write_manifest(folder, {"run_id": self.run_id(), "recipe": defining_settings(self.recipe()),
                                "inputs": self.inputs()})

    def verify(self, folder: Path) -> tuple[dict[str, Any] | None, list[str]]:
        """(manifest, damage found) of a saved folder; (None, []) when it predates manifests.

        A folder written by another run (another run id) is refused.
        """
        try:
            manifest = read_manifest(folder)
        except CorruptManifest as error:
            return None, [str(error)]
        if manifest is None:
            return None, []
        ours = self.recorded_run_id()
        if manifest.get("run_id") != ours:
            theirs = manifest.get("run_id")
            mine = (f"this run's id is {ours} ({self.run_file})" if ours else
                    f"this run has no {self.run_file}; if {folder} is its own, write {{\"run_id\": \"{theirs}\"}} there")
            raise T2TError(f"{folder} was written by another run (run id {theirs}; {mine}): it was copied in from "
                           f"elsewhere. Move it back to its own run folder, or delete it, and try again.")
        return manifest, damage(folder, manifest)

    def check_recipe(self, folder: Path, manifest: dict[str, Any]) -> None:
        """Refuse when recipe.yaml's adapter differs from the one `folder` was trained with; warn about other edits."""
        trained, now = manifest.get("recipe", {}), defining_settings(self.recipe())
        changes = [f"{key}: {trained[key]!r} when trained, {now[key]!r} now"
                   for key in sorted(set(trained) & set(now)) if trained[key] != now[key]]
        fatal = [change for change in changes if change.startswith("adapter.")]
        if fatal:
            raise T2TError(f"{self.recipe_file} was edited after {folder} was written: {'; '.join(fatal)}. The adapter "
                           f"settings define the weights: put back the trained values, or train a new run.")
        if changes:
            logger.warning("%s was edited after %s was written (%s): the weights were trained with the earlier "
                           "values", self.recipe_file, folder, "; ".join(changes))

    def fresh_final(self) -> Path:
        """An empty final/ to write into; a symlinked final/ is replaced by a folder, its target left alone."""
        final = self.final_dir
        if final.is_symlink():
            logger.warning("%s is a symbolic link to %s: replacing the link by a folder of this run (the target is "
                           "left untouched)", final, os.readlink(final))
            final.unlink()
        shutil.rmtree(final, ignore_errors=True)
        final.mkdir(parents=True)
        return final
