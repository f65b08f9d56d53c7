"""Checkpoints that survive crashes: written aside, marked complete last, renamed into place."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from accelerate import Accelerator
from torch import nn

from t2t_mtl.modeling.adapters import load_weights_into, save_trained
from t2t_mtl.run_dir import COMPLETE, RunDir

logger = logging.getLogger(__name__)


class Checkpointer:
    """Saves and restores the full training state of a run through Accelerate.

    Accelerate's `save_state` holds optimizer, scheduler and every rank's RNG states; the
    model part is replaced by what is trained (the adapter), so frozen backbone weights
    are never copied into checkpoints.
    """

    def __init__(self, accelerator: Accelerator, run: RunDir, keep_last: int | None) -> None:
        self.accelerator = accelerator
        self.run = run
        self.keep_last = keep_last
        accelerator.register_save_state_pre_hook(self._save_trained_only)
        accelerator.register_load_state_pre_hook(self._load_trained_only)

    def _save_trained_only(self, models: list[nn.Module], weights: list[dict], output_dir: str) -> None:
        if self.accelerator.is_main_process:
            for model in models:
                save_trained(self.accelerator.unwrap_model(model), Path(output_dir) / "model")
        weights.clear()

    def _load_trained_only(self, models: list[nn.Module], input_dir: str) -> None:
        for model in models:
            load_weights_into(self.accelerator.unwrap_model(model), Path(input_dir) / "model")
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
            _fsync_tree(temporary)
            (temporary / COMPLETE).touch()
            shutil.rmtree(final, ignore_errors=True)
            os.replace(temporary, final)
            self._prune()
        self.accelerator.wait_for_everyone()
        return final

    def _prune(self) -> None:
        if self.keep_last:
            for old in self.run.checkpoints()[: -self.keep_last]:
                shutil.rmtree(old)
        for leftover in self.run.checkpoints_dir.glob(".tmp-step-*"):
            shutil.rmtree(leftover, ignore_errors=True)

    def restore(self) -> int:
        """Load the latest complete checkpoint; returns its step (0 when there is none)."""
        checkpoints = self.run.checkpoints()
        if not checkpoints:
            logger.warning("--resume: no complete checkpoint in %s; starting from step 0", self.run.checkpoints_dir)
            return 0
        latest = checkpoints[-1]
        state = json.loads((latest / "trainer_state.json").read_text())
        if state["world_size"] != self.accelerator.num_processes:
            logger.warning("%s was written by %d processes, resuming with %d: RNG streams differ from an "
                           "uninterrupted run", latest, state["world_size"], self.accelerator.num_processes)
        self.accelerator.load_state(str(latest))
        if self.accelerator.is_main_process:
            print(f"resumed from {latest} at step {state['step']}")
        return int(state["step"])


def _fsync_tree(folder: Path) -> None:
    """Flush every file of a folder to disk before it is marked complete."""
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
