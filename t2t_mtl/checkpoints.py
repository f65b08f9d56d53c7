"""Checkpoints that survive crashes: written aside, marked complete last, renamed into place."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from torch import nn

from t2t_mtl.adapters.base import AdapterMethod
from t2t_mtl.errors import T2TError
from t2t_mtl.run_dir import COMPLETE, RunDir, input_changes
from t2t_mtl.selection import BEST_FILE

logger = logging.getLogger(__name__)


class Checkpointer:
    """Saves and restores the full training state of a run through Accelerate.

    Accelerate's `save_state` holds optimizer, scheduler and every rank's RNG states; the
    model part is replaced by what is trained (the adapter), so frozen backbone weights
    are never copied into checkpoints.
    """

    def __init__(self, accelerator: Accelerator, run: RunDir, keep_last: int | None, method: AdapterMethod) -> None:
        self.accelerator = accelerator
        self.method = method
        self.run = run
        self.keep_last = keep_last
        self.best: Path | None = None  # the best evaluated checkpoint (train.keep_best): never pruned
        accelerator.register_save_state_pre_hook(self._save_trained_only)
        accelerator.register_load_state_pre_hook(self._load_trained_only)

    def _save_trained_only(self, models: list[nn.Module], weights: list[dict], output_dir: str) -> None:
        if self.accelerator.is_main_process:
            for model in models:
                self.method.save(self.accelerator.unwrap_model(model), Path(output_dir) / "model")
        weights.clear()

    def _load_trained_only(self, models: list[nn.Module], input_dir: str) -> None:
        for model in models:
            self.method.load_weights(self.accelerator.unwrap_model(model), Path(input_dir) / "model")
        models.clear()

    def save(self, step: int, steps: int) -> Path:
        """Write the checkpoint of `step`; it becomes visible only once complete."""
        final = self.run.checkpoints_dir / f"step-{step:06d}"
        temporary = self.run.checkpoints_dir / f".tmp-step-{step:06d}"
        main = self.accelerator.is_main_process
        if main:
            shutil.rmtree(temporary, ignore_errors=True)
            temporary.mkdir(parents=True)
        self.accelerator.wait_for_everyone()
        self.accelerator.save_state(str(temporary))
        self.accelerator.wait_for_everyone()
        if main:
            state = {"step": step, "steps": steps, "world_size": self.accelerator.num_processes,
                     "distributed_type": str(self.accelerator.distributed_type.value)}
            (temporary / "trainer_state.json").write_text(json.dumps(state))
            self.run.write_manifest(temporary)
            _fsync_tree(temporary)
            (temporary / COMPLETE).touch()
            shutil.rmtree(final, ignore_errors=True)
            os.replace(temporary, final)
            self._prune()
        self.accelerator.wait_for_everyone()
        return final

    def keep_best(self, folder: Path, record: dict[str, Any]) -> None:
        """Make `folder` (a checkpoint or final/) the best one, recorded in checkpoints/best.json (main process);
        the previous best goes when it is not among the last `keep_last`."""
        self.best = folder
        if self.accelerator.is_main_process:
            self.run.checkpoints_dir.mkdir(parents=True, exist_ok=True)
            (self.run.checkpoints_dir / BEST_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
            self._prune()

    def _prune(self) -> None:
        if self.keep_last:
            for old in self.run.checkpoints()[: -self.keep_last]:
                if old != self.best:
                    shutil.rmtree(old)
        for leftover in self.run.checkpoints_dir.glob(".tmp-step-*"):
            shutil.rmtree(leftover, ignore_errors=True)

    def restore(self, inputs: dict[str, Any] | None = None, allow_changed: bool = False) -> int:
        """Load the newest intact checkpoint; returns its step (0 when there is none).

        The main process chooses for every rank: damaged checkpoints are skipped, with a
        warning; one from another run, or trained on other templates or data than `inputs`
        (this start's `input_lock`; unless `allow_changed`), is refused.
        """
        chosen = self._choose(inputs, allow_changed) if self.accelerator.is_main_process else None
        latest, error = broadcast_object_list([chosen])[0]
        if error is not None:
            raise T2TError(error)
        if latest is None:
            return 0
        state = json.loads((latest / "trainer_state.json").read_text())
        if state["world_size"] != self.accelerator.num_processes:
            logger.warning("%s was written by %d processes, resuming with %d: RNG streams differ from an "
                           "uninterrupted run", latest, state["world_size"], self.accelerator.num_processes)
        self.accelerator.load_state(str(latest))
        if self.accelerator.is_main_process:
            print(f"resumed from {latest} at step {state['step']}")
        return int(state["step"])

    def _choose(self, inputs: dict[str, Any] | None, allow_changed: bool) -> tuple[Path | None, str | None]:
        """(the newest intact checkpoint or None, the refusal message or None), on the main process."""
        checkpoints = self.run.checkpoints()
        try:
            for checkpoint in reversed(checkpoints):
                manifest, damaged = self._inspect(checkpoint)
                if not damaged:
                    self._check_inputs(checkpoint, manifest, inputs, allow_changed)
                    return checkpoint, None
                logger.warning("--resume: skipping damaged checkpoint %s: %s", checkpoint, "; ".join(damaged))
        except T2TError as error:
            return None, str(error)
        found = f"none of its {len(checkpoints)} complete checkpoints is intact" if checkpoints else "no complete checkpoint"
        logger.warning("--resume: %s has %s; starting from step 0", self.run.checkpoints_dir, found)
        return None, None

    def _inspect(self, checkpoint: Path) -> tuple[dict[str, Any] | None, list[str]]:
        """(manifest, what is damaged) of one checkpoint; one without a manifest is checked as far as it can be."""
        manifest, damaged = self.run.verify(checkpoint)
        if damaged:
            return manifest, damaged
        if manifest is None:
            logger.warning("--resume: %s has no manifest (written before checkpoints recorded hashes): it cannot be "
                           "verified", checkpoint)
        try:
            json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))["step"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            return manifest, [f"trainer_state.json is missing or unreadable ({error})"]
        if manifest is not None:
            self.run.check_recipe(checkpoint, manifest)
        return manifest, []

    def _check_inputs(self, checkpoint: Path, manifest: dict[str, Any] | None, inputs: dict[str, Any] | None,
                      allow_changed: bool) -> None:
        """Refuse (or with `allow_changed`, report) templates and data that changed since `checkpoint`."""
        changes = input_changes(manifest.get("inputs", {}), inputs) if manifest and inputs else []
        if not changes:
            return
        listed = "\n  - ".join(changes)
        if not allow_changed:
            raise T2TError(f"cannot resume from {checkpoint}: its templates or data changed since it was written:"
                           f"\n  - {listed}\nPut them back, pass --allow-changed to continue training on the changed "
                           f"inputs, or start again with --overwrite.")
        logger.warning("--allow-changed: resuming from %s on changed inputs:\n  - %s", checkpoint, listed)


def _fsync_tree(folder: Path) -> None:
    """Flush every file of a folder to disk before it is marked complete."""
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
