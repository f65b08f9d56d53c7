"""Crash safety: SIGKILL mid-run or mid-checkpoint, then --resume, ends where an unbroken run ends."""

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from t2t_mtl.run_dir import RunDir

from conftest import finish_training, make_recipe, start_training

STEPS = 10


def recipe_for(tmp_path: Path, tiny_t5: Path, task_dir: Path, name: str) -> Path:
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, output_dir=str(tmp_path / name),
                         train={"max_steps": STEPS, "save_every": 1, "keep_last": 3},
                         eval={"max_examples": 2, "max_new_tokens": 2})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def kill_when(process: subprocess.Popen, ready, timeout: float = 120) -> None:
    """SIGKILL the run as soon as `ready()` holds; fail if it ends first."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline, "timed out waiting to kill the run"
        time.sleep(0.0005)
    process.send_signal(signal.SIGKILL)
    process.wait()


def final_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "final/adapter_model.safetensors")


@pytest.fixture
def reference(tmp_path: Path, tiny_t5: Path, task_dir: Path) -> dict[str, torch.Tensor]:
    finish_training(recipe_for(tmp_path, tiny_t5, task_dir, "reference"))
    return final_weights(tmp_path / "reference")


def assert_same(weights: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
    assert weights.keys() == reference.keys()
    for key, expected in reference.items():
        torch.testing.assert_close(weights[key], expected, rtol=0, atol=1e-6)


def test_sigkill_at_a_random_step_then_resume(tmp_path: Path, tiny_t5: Path, task_dir: Path, reference):
    recipe = recipe_for(tmp_path, tiny_t5, task_dir, "crashed")
    run = RunDir(tmp_path / "crashed")
    kill_at = random.randint(2, STEPS - 3)
    kill_when(start_training(recipe), lambda: any(p.name == f"step-{kill_at:06d}" for p in run.checkpoints()))
    assert not (run.final_dir / "COMPLETE").exists()
    finish_training(recipe, "--resume")
    assert_same(final_weights(run.root), reference)
    assert len(run.checkpoints()) == 3  # keep_last
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in run.log_file.read_text().splitlines()
             if '"loss"' in line]
    assert steps == list(range(1, STEPS + 1))  # each step logged once across the crash


def test_sigkill_while_writing_a_checkpoint_is_never_resumed_from(tmp_path: Path, tiny_t5: Path, task_dir: Path,
                                                                     reference):
    for attempt in range(5):  # the writer may finish its rename between seeing it write and the kill: try again
        recipe = recipe_for(tmp_path, tiny_t5, task_dir, f"torn{attempt}")
        run = RunDir(tmp_path / f"torn{attempt}")
        kill_when(start_training(recipe),
                  lambda run=run: any(run.checkpoints_dir.glob(".tmp-step-*")) and len(run.checkpoints()) >= 2)
        torn = sorted(run.checkpoints_dir.glob(".tmp-step-*"))
        if torn:
            break
    assert torn and not (torn[0] / "COMPLETE").exists()
    assert torn[0].name.removeprefix(".tmp-") not in [p.name for p in run.checkpoints()]
    finish_training(recipe, "--resume")
    assert_same(final_weights(run.root), reference)
    assert not any(run.checkpoints_dir.glob(".tmp-step-*"))
