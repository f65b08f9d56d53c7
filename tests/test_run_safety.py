"""Run safety: check before touching, safe --overwrite, graceful stop, divergence guard (issue 15)."""

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_distributed import free_port
from transformers import BartConfig, BertConfig, EncoderDecoderConfig, T5Config

from t2t_mtl import training
from t2t_mtl.cli import main
from t2t_mtl.errors import T2TError
from t2t_mtl.recipe import ModelSpec, parse_recipe
from t2t_mtl.run_dir import RunDir

from conftest import colour_rows, finish_training, make_recipe, raise_signal_at, start_training, write_task


def tree(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder`: relative path -> sha256 of the bytes ('' for a folder)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
            for p in sorted(folder.rglob("*"))}


def write_recipe(path: Path, recipe: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe))
    return path


def logged_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines() if '"loss"' in line]


@pytest.fixture
def old_run(tmp_path: Path, tiny_t5: Path, task_dir: Path) -> tuple[Path, dict]:
    """A finished run (2 steps, a checkpoint each) and its recipe."""
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, train={"max_steps": 2, "save_every": 1},
                         eval={"max_examples": 2, "max_new_tokens": 2})
    path = write_recipe(tmp_path / "recipe.yaml", recipe)
    assert main(["train", str(path)]) == 0
    return path, recipe


def bad_task_dir(tmp_path: Path, **overrides) -> Path:
    folder = tmp_path / "bad_tasks"
    write_task(folder / "toy", "toy/colours", colour_rows(40), **overrides)
    return folder


BAD_TEMPLATE = [{"id": "ask", "instruction": "Colour?", "input": "{{ text }}", "target": "{{ colour }}"}]


@pytest.mark.parametrize("case", ["adapter target", "metric typo", "bad template"])
def test_overwrite_with_a_failing_recipe_leaves_the_old_run_byte_identical(tmp_path: Path, old_run, case: str,
                                                                           capsys):
    path, recipe = old_run
    run = Path(recipe["output_dir"])
    before = tree(run)
    override, message = {
        "adapter target": ("adapter.targets=[zzz]", "adapter.targets ['zzz'] name no linear layer"),
        "metric typo": (f"task_dirs=[{bad_task_dir(tmp_path, metrics=['acuracy'])}]", "colours.yaml"),
        "bad template": (f"task_dirs=[{bad_task_dir(tmp_path, templates=BAD_TEMPLATE)}]", "colour"),
    }[case]
    capsys.readouterr()
    assert main(["train", str(path), "--overwrite", override]) == 2  # an override after the flag is accepted
    assert message in capsys.readouterr().err
    assert tree(run) == before
    assert not list(tmp_path.glob(".run.replaced-*"))


def test_a_failure_before_the_first_step_puts_the_old_run_back(old_run, monkeypatch):
    path, recipe = old_run
    run = Path(recipe["output_dir"])
    before = tree(run)

    def broken(self, step):
        assert not (run / "checkpoints").exists() and any(run.parent.glob(".run.replaced-*"))  # moved aside
        raise RuntimeError("out of memory")

    monkeypatch.setattr(training.Trainer, "train_step", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        main(["train", str(path), "--overwrite"])
    assert tree(run) == before
    assert not list(run.parent.glob(".run.replaced-*"))


def test_overwrite_replaces_the_old_run_once_the_new_one_has_stepped(old_run, monkeypatch):
    path, recipe = old_run
    run = Path(recipe["output_dir"])
    (run / "stale.txt").write_text("from the old run")
    aside = []  # whether the old run is still kept aside: before the first step, then after it
    step_once, after_step = training.Trainer.train_step, training.Trainer._after_step
    monkeypatch.setattr(training.Trainer, "train_step",
                        lambda self, i: aside.append(any(run.parent.glob(".run.replaced-*"))) or step_once(self, i))
    monkeypatch.setattr(training.Trainer, "_after_step",
                        lambda self, done, log: aside.append(any(run.parent.glob(".run.replaced-*")))
                        or after_step(self, done, log))
    assert main(["train", str(path), "--overwrite", "train.max_steps=1"]) == 0
    assert aside == [True, False]
    assert not (run / "stale.txt").exists() and (run / "final/COMPLETE").is_file()
    assert logged_steps(run) == [1]
    assert not list(run.parent.glob(".run.replaced-*"))


def test_the_runs_own_recipe_resumes_it(old_run):
    _, recipe = old_run
    run = Path(recipe["output_dir"])
    assert main(["train", str(run / "recipe.yaml"), "--resume", "train.max_steps=3"]) == 0
    assert logged_steps(run) == [1, 2, 3]


@pytest.mark.parametrize("where", [".", "", "parent of cwd", "recipe's parent", "recipe folder", "task folder",
                                   "task subfolder", "non-run folder", "a file"])
def test_unsafe_output_dirs_are_refused_and_nothing_is_touched(tmp_path: Path, tiny_t5: Path, task_dir: Path,
                                                               where: str, monkeypatch, capsys):
    project, work = tmp_path / "project", tmp_path / "work"
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes/todo.txt").write_text("keep me")
    (tmp_path / "a_file.txt").write_text("keep me too")
    output_dir = {".": ".", "": "", "parent of cwd": str(tmp_path), "recipe's parent": str(project),
                  "recipe folder": str(project / "recipes"), "task folder": str(task_dir),
                  "task subfolder": str(task_dir / "toy"), "non-run folder": str(tmp_path / "notes"),
                  "a file": str(tmp_path / "a_file.txt")}[where]
    # recipes/recipe.yaml would be the run's own recipe for output_dir=project/recipes: still no run folder
    path = write_recipe(project / "recipes/recipe.yaml",
                        make_recipe(tmp_path, tiny_t5, task_dir, output_dir=output_dir))
    write_recipe(work / "notes.yaml", {"keep": True})
    monkeypatch.chdir(work)
    before = tree(tmp_path)
    assert main(["train", str(path), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "output_dir" in err and "e.g. output_dir=runs/NAME" in err
    assert tree(tmp_path) == before


def test_resume_with_overwrite_is_refused(tmp_path: Path, tiny_t5: Path, task_dir: Path, capsys):
    recipe = make_recipe(tmp_path, tiny_t5, task_dir)
    path = write_recipe(tmp_path / "recipe.yaml", recipe)
    with pytest.raises(SystemExit) as exit_:
        main(["train", str(path), "--resume", "--overwrite"])
    assert exit_.value.code == 2 and "not allowed with argument --resume" in capsys.readouterr().err
    with pytest.raises(T2TError, match="pass only one"):
        training.train(parse_recipe(recipe, "test"), [tmp_path], resume=True, overwrite=True)
    assert not Path(recipe["output_dir"]).exists()


def test_positions_beyond_the_model_are_refused():
    spec = ModelSpec(name_or_path="m", max_source_length=600, max_target_length=64)
    with pytest.raises(T2TError, match=r"model.max_source_length is 600 .* 512 positions \(max_position_embeddings"):
        training.check_positions(EncoderDecoderConfig.from_encoder_decoder_configs(BertConfig(), BertConfig()), spec)
    with pytest.raises(T2TError, match="model.max_target_length is 64 .* 32 positions"):
        training.check_positions(BartConfig(max_position_embeddings=32), spec.model_copy(update={"max_source_length": 8}))
    training.check_positions(T5Config(), spec)  # relative attention: no limit


# -- graceful stop ---------------------------------------------------------------------

STEPS = 12


def wait_for_step(process: subprocess.Popen, run: Path, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (run / "log.jsonl").is_file() or len(logged_steps(run)) < step:
        assert process.poll() is None, f"the run ended before it could be signalled: {process.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.001)


def stop_recipe(tmp_path: Path, tiny_t5: Path, task_dir: Path, name: str) -> Path:
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, output_dir=str(tmp_path / name),
                         train={"max_steps": STEPS, "scheduler": "linear"}, eval={"max_examples": 2, "max_new_tokens": 2})
    return write_recipe(tmp_path / f"{name}.yaml", recipe)


def test_sigterm_at_a_random_step_checkpoints_and_resumes_to_the_unbroken_weights(tmp_path: Path, tiny_t5: Path,
                                                                                   task_dir: Path):
    finish_training(stop_recipe(tmp_path, tiny_t5, task_dir, "unbroken"))
    path = stop_recipe(tmp_path, tiny_t5, task_dir, "stopped")
    run = tmp_path / "stopped"
    process = start_training(path)
    wait_for_step(process, run, random.randint(1, 5))
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err[-3000:]
    assert "Traceback" not in err
    line = next(line for line in err.splitlines() if line.startswith("stopped at step"))
    step = int(line.split()[3])
    checkpoint = run / f"checkpoints/step-{step:06d}"
    assert line == (f"stopped at step {step} by SIGTERM; checkpoint written to {checkpoint}; "
                    f"resume with: t2t-mtl train {path} --resume")
    assert (checkpoint / "COMPLETE").is_file() and not (run / "final").exists()  # save_every is unset
    finish_training(path, "--resume")
    unbroken = load_file(tmp_path / "unbroken/final/adapter_model.safetensors")
    resumed = load_file(run / "final/adapter_model.safetensors")
    assert resumed.keys() == unbroken.keys()
    for key, expected in unbroken.items():
        torch.testing.assert_close(resumed[key], expected, rtol=0, atol=1e-6)
    assert logged_steps(run) == list(range(1, STEPS + 1))


def test_sigint_finishes_the_step_and_writes_a_checkpoint(tmp_path: Path, tiny_t5: Path, task_dir: Path,
                                                          monkeypatch, capsys):
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, train={"max_steps": 6})
    path = write_recipe(tmp_path / "recipe.yaml", recipe)
    raise_signal_at(monkeypatch, 2, signal.SIGINT)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit) as exit_:
        main(["train", str(path), "train.log_every=5"])
    assert exit_.value.code == 130
    run = Path(recipe["output_dir"])
    assert f"stopped at step 3 by SIGINT; checkpoint written to {run}/checkpoints/step-000003" in capsys.readouterr().err
    assert [p.name for p in RunDir(run).checkpoints()] == ["step-000003"]
    assert logged_steps(run) == [3]  # the partial log window is written
    assert signal.getsignal(signal.SIGINT) is handler  # the run's handlers are gone


def test_a_second_signal_stops_at_once(tmp_path: Path, tiny_t5: Path, task_dir: Path, monkeypatch, capsys):
    path = write_recipe(tmp_path / "recipe.yaml", make_recipe(tmp_path, tiny_t5, task_dir, train={"max_steps": 6}))
    monkeypatch.setattr(training, "REPEAT_GRACE_S", 0.0)
    raise_signal_at(monkeypatch, 1, signal.SIGTERM, signal.SIGTERM)
    with pytest.raises(SystemExit) as exit_:
        main(["train", str(path)])
    assert exit_.value.code == 143
    assert "stopped at once by a second SIGTERM" in capsys.readouterr().err
    assert not RunDir(tmp_path / "run").checkpoints()


def worker_pid(launcher: int, rank: int) -> int | None:
    """The pid of the launched process with this RANK (a child of the launcher)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) != launcher:
                continue
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if f"RANK={rank}".encode() in environ:
            return int(stat.parent.name)
    return None


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the ranks through /proc")
def test_sigterm_to_one_rank_stops_every_rank_at_the_same_step(tmp_path: Path, tiny_t5: Path, task_dir: Path):
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, output_dir=str(tmp_path / "ddp"),
                         train={"max_steps": 40, "log_every": 1}, eval={"max_examples": 2, "max_new_tokens": 2})
    path = write_recipe(tmp_path / "ddp.yaml", recipe)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               str(free_port()), "-m", "t2t_mtl", "train", str(path)]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_step(launcher, tmp_path / "ddp", 2, timeout=300)
    os.kill(worker_pid(launcher.pid, 1), signal.SIGTERM)  # rank 1 only: rank 0 learns it from the step's flags
    _, err = launcher.communicate(timeout=300)
    assert launcher.returncode != 0
    step = int(next(line for line in err.splitlines() if line.startswith("stopped at step")).split()[3])
    checkpoint = tmp_path / f"ddp/checkpoints/step-{step:06d}"
    assert (checkpoint / "COMPLETE").is_file() and (checkpoint / "random_states_1.pkl").is_file()
    assert step < 40 and not (tmp_path / "ddp/final").exists()


# -- divergence ------------------------------------------------------------------------

@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_non_finite_lr_fails_at_validation(tmp_path: Path, tiny_t5: Path, task_dir: Path, value: str, capsys):
    path = write_recipe(tmp_path / "recipe.yaml", make_recipe(tmp_path, tiny_t5, task_dir))
    assert main(["train", str(path), f"train.lr={value}"]) == 2
    assert "train.lr: Input should be a finite number" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_an_overflowing_lr_stops_naming_the_step_and_keeps_the_good_checkpoint(tmp_path: Path, tiny_t5: Path,
                                                                              task_dir: Path, capsys):
    recipe = make_recipe(tmp_path, tiny_t5, task_dir,
                         train={"lr": 1e30, "scheduler": "constant", "max_steps": 4, "save_every": 1})
    path = write_recipe(tmp_path / "recipe.yaml", recipe)
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert "training diverged at step 2: the loss is not finite (lr 1e+30)" in err
    run = RunDir(recipe["output_dir"])
    assert [p.name for p in run.checkpoints()] == ["step-000001"] and not run.final_dir.exists()
    weights = load_file(run.checkpoints()[0] / "model/adapter_model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())
    before = tree(run.checkpoints_dir)
    assert main(["train", str(path), "--resume"]) == 2  # resumes from step 1 and stops there again
    assert "diverged at step 2" in capsys.readouterr().err
    assert tree(run.checkpoints_dir) == before and not run.final_dir.exists()


def test_skip_nonfinite_skips_bad_steps_and_counts_them(tmp_path: Path, tiny_t5: Path, task_dir: Path,
                                                        monkeypatch):
    real_losses = training.target_token_losses
    calls = iter(range(10**6))

    def once_nan(model, batch, head):
        losses, rows = real_losses(model, batch, head)
        return (losses * float("nan") if next(calls) == 1 else losses), rows  # the second step's losses

    monkeypatch.setattr(training, "target_token_losses", once_nan)
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, train={"max_steps": 3, "skip_nonfinite": 1})
    assert main(["train", str(write_recipe(tmp_path / "recipe.yaml", recipe))]) == 0
    records = [json.loads(line) for line in Path(recipe["output_dir"], "log.jsonl").read_text().splitlines()
               if '"loss"' in line]
    assert [(r["step"], r["loss"] is None, r.get("skipped_steps")) for r in records] == \
        [(1, False, None), (2, True, 1), (3, False, None)]
    weights = load_file(Path(recipe["output_dir"], "final/adapter_model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_a_stub_left_by_a_failed_run_does_not_block_the_corrected_recipe(tmp_path: Path, tiny_t5: Path,
                                                                        task_dir: Path):
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, train={"lr": 1e30, "max_steps": 3})
    path = write_recipe(tmp_path / "recipe.yaml", recipe)
    assert main(["train", str(path)]) == 2  # diverges before any checkpoint: a stub stays
    assert RunDir(recipe["output_dir"]).exists()
    assert main(["train", str(path), "train.lr=1e-2", "--resume"]) == 0
    assert logged_steps(Path(recipe["output_dir"])) == [1, 2, 3]
