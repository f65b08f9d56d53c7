"""The run folder: what a training run writes and how later commands find it."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import yaml

from t2t_mtl.errors import T2TError
from t2t_mtl.recipe import Recipe, parse_recipe
from t2t_mtl.tasks.registry import SelectedTask
from t2t_mtl.tasks.schema import TaskSpec
from t2t_mtl.templates import template_hash

logger = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
# Recipe sections that may change when resuming; everything else defines the run.
RESUMABLE_CHANGES = {"train.max_steps", "train.epochs", "train.eval_every", "train.save_every",
                     "train.log_every", "train.keep_last", "train.resume", "eval", "output_dir"}


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def task_table(selected: list[SelectedTask], instructions: list[str]) -> list[dict[str, Any]]:
    """One row per task: name, id (its routing row), domain, held_out, instruction, file, data paths."""
    return [{"name": s.spec.name, "id": i, "domain": s.spec.domain, "held_out": s.spec.held_out,
             "instruction": instruction, "file": str(s.spec.file), "data": s.entry.data, "eval_data": s.entry.eval_data}
            for i, (s, instruction) in enumerate(zip(selected, instructions, strict=True))]


class RunDir:
    """Paths and records of one run folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    recipe_file = property(lambda self: self.root / "recipe.yaml")
    tasks_file = property(lambda self: self.root / "tasks.json")
    lock_file = property(lambda self: self.root / "templates.lock.json")
    log_file = property(lambda self: self.root / "log.jsonl")
    checkpoints_dir = property(lambda self: self.root / "checkpoints")
    final_dir = property(lambda self: self.root / "final")
    predictions_dir = property(lambda self: self.root / "predictions")
    embeddings_file = property(lambda self: self.root / "task_embeddings.safetensors")

    def exists(self) -> bool:
        """Whether a run was started here."""
        return self.recipe_file.is_file()

    def recipe(self) -> Recipe:
        """The resolved recipe the run was trained with."""
        if not self.exists():
            raise T2TError(f"{self.root} is not a run folder (no recipe.yaml). Train first: t2t-mtl train RECIPE")
        return parse_recipe(yaml.safe_load(self.recipe_file.read_text(encoding="utf-8")), str(self.recipe_file))

    def tasks(self) -> list[dict[str, Any]]:
        """The task table: name, id, domain, held_out, instruction, file."""
        return json.loads(self.tasks_file.read_text(encoding="utf-8"))

    def check(self, recipe: Recipe, resume: bool, overwrite: bool) -> None:
        """Refuse to mix two runs in one folder: an existing run needs --resume or --overwrite."""
        if not self.exists() or overwrite:
            return
        if not resume:
            raise T2TError(
                f"output folder {self.root} already holds a run. Pass --resume to continue it or "
                f"--overwrite to replace it, or choose another output_dir=..."
            )
        changed = self._defining_changes(recipe)
        if changed:
            raise T2TError(f"cannot resume {self.root}: the recipe differs in {changed}. "
                           f"Use another output_dir or --overwrite.")

    def claim(self, recipe: Recipe, overwrite: bool) -> None:
        """Take the folder for this recipe (after `check` and once the inputs are known good)."""
        if self.exists() and overwrite:
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.recipe_file.write_text(recipe.to_yaml(), encoding="utf-8")

    def _defining_changes(self, recipe: Recipe) -> list[str]:
        old = _flatten(self.recipe().model_dump(mode="json"))
        new = _flatten(recipe.model_dump(mode="json"))
        keys = sorted(set(old) | set(new))
        return [k for k in keys if old.get(k) != new.get(k)
                and k not in RESUMABLE_CHANGES and k.split(".")[0] not in RESUMABLE_CHANGES]

    def write_task_table(self, table: list[dict[str, Any]], selected: list[SelectedTask]) -> None:
        """Record the task table and a lock of every template's text."""
        self.tasks_file.write_text(json.dumps(table, indent=2), encoding="utf-8")
        lock = {s.spec.name: {t.id: template_hash(t) for t in s.spec.templates} for s in selected}
        self.lock_file.write_text(json.dumps(lock, indent=2, sort_keys=True), encoding="utf-8")

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

    def trained_weights(self) -> Path:
        """The folder to load trained weights from: final/, else the latest checkpoint's."""
        if (self.final_dir / COMPLETE).is_file():
            return self.final_dir
        checkpoints = self.checkpoints()
        if checkpoints:
            logger.warning("%s has no final weights; using %s", self.root, checkpoints[-1].name)
            return checkpoints[-1] / "model"
        raise T2TError(f"{self.root} holds no trained weights yet (no final/ and no complete checkpoint)")
