"""Checkpoints that prove themselves: resume skips damaged ones and refuses foreign ones or changed
inputs; predict, evaluate and export verify final/ and name the file at fault."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from t2t_mtl.cli import main

from conftest import colour_rows, make_recipe, write_task

STEPS = 4
NEWEST = f"step-{STEPS:06d}"


def train(recipe: Path, *flags: str) -> int:
    return main(["train", str(recipe), *flags])


def build(base: Path, tiny_t5: Path, name: str, **train_settings) -> Path:
    """A finished run of the colour tasks in base/name (a checkpoint every step); returns its recipe file."""
    tasks = base / "instructions"
    if not tasks.exists():
        write_task(tasks / "toy", "toy/colours", colour_rows(40))
        write_task(tasks / "toy", "toy/unseen", colour_rows(6), held_out=True)
    recipe = make_recipe(base, tiny_t5, tasks, output_dir=str(base / name),
                         train={"max_steps": STEPS, "save_every": 1, **train_settings},
                         eval={"max_examples": 2, "max_new_tokens": 1})
    path = base / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert train(path) == 0
    return path


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, tiny_t5: Path) -> Path:
    """base/work: a run, a same-shape run of another seed, a rank-8 run; base/copy keeps them pristine."""
    base = tmp_path_factory.mktemp("integrity")
    work = base / "work"
    build(work, tiny_t5, "run")
    build(work, tiny_t5, "other_seed", seed=1)
    recipe = make_recipe(work, tiny_t5, work / "instructions", output_dir=str(work / "rank8"),
                         adapter={"rank": 8}, train={"max_steps": 1}, eval={"max_examples": 1, "max_new_tokens": 1})
    (work / "rank8.yaml").write_text(yaml.safe_dump(recipe))
    assert train(work / "rank8.yaml") == 0
    shutil.copytree(work, base / "copy")
    return base


@pytest.fixture
def work(pristine: Path) -> Path:
    """The pristine runs put back in place (same paths, so their recipes resume), for one test to change."""
    shutil.rmtree(pristine / "work")
    shutil.copytree(pristine / "copy", pristine / "work")
    return pristine / "work"


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "final/adapter_model.safetensors")


def interrupted(run: Path) -> Path:
    """The run as if killed after its last checkpoint (no final/ yet); returns its newest checkpoint."""
    shutil.rmtree(run / "final")
    return run / "checkpoints" / NEWEST


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def zero_fill(path: Path) -> None:
    """Zero every tensor byte of a safetensors file, keeping its header (it still loads)."""
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")
    data[start:] = bytes(len(data) - start)
    path.write_bytes(bytes(data))


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated adapter": (lambda c: truncate(c / "model/adapter_model.safetensors"),
                          "model/adapter_model.safetensors has"),
    "truncated optimizer": (lambda c: truncate(c / "optimizer.bin"), "optimizer.bin has"),
    "missing trainer state": (lambda c: (c / "trainer_state.json").unlink(), "trainer_state.json is missing"),
    "zero-filled tensor": (lambda c: zero_fill(c / "model/adapter_model.safetensors"),
                           "model/adapter_model.safetensors does not match its sha256"),
    "corrupt manifest": (lambda c: truncate(c / "manifest.json"), "manifest.json is corrupt"),
}


def assert_same(resumed: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
    assert resumed.keys() == reference.keys()
    for key, expected in reference.items():
        torch.testing.assert_close(resumed[key], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_newest_checkpoint_resumes_from_the_previous(work: Path, kind: str, caplog):
    reference = weights(work / "run")
    damage, reason = DAMAGE[kind]
    damage(interrupted(work / "run"))
    with caplog.at_level(logging.WARNING):
        assert train(work / "run.yaml", "--resume") == 0
    assert f"skipping damaged checkpoint {work / 'run/checkpoints' / NEWEST}" in caplog.text
    assert reason in caplog.text
    assert_same(weights(work / "run"), reference)


def test_no_intact_checkpoint_starts_from_step_0_and_says_so(work: Path, caplog):
    reference = weights(work / "run")
    interrupted(work / "run")
    for checkpoint in (work / "run/checkpoints").iterdir():
        truncate(checkpoint / "optimizer.bin")
    with caplog.at_level(logging.WARNING):
        assert train(work / "run.yaml", "--resume") == 0
    assert f"none of its {STEPS} complete checkpoints is intact; starting from step 0" in caplog.text
    assert_same(weights(work / "run"), reference)


def test_checkpoints_without_manifest_resume_unverified(work: Path, caplog):
    reference = weights(work / "run")
    interrupted(work / "run")
    for manifest in (work / "run/checkpoints").glob("*/manifest.json"):
        manifest.unlink()
    (work / "run/run.json").unlink()
    with caplog.at_level(logging.WARNING):
        assert train(work / "run.yaml", "--resume") == 0
    assert f"{NEWEST} has no manifest (written before checkpoints recorded hashes): it cannot be verified" in caplog.text
    assert_same(weights(work / "run"), reference)


def test_checkpoint_from_another_run_is_refused(work: Path, capsys):
    newest = interrupted(work / "run")
    shutil.rmtree(newest)
    shutil.copytree(work / "other_seed/checkpoints" / NEWEST, newest)
    assert train(work / "run.yaml", "--resume") == 2
    err = capsys.readouterr().err
    assert f"{newest} was written by another run" in err and "Traceback" not in err
    assert not (work / "run/final").exists()


def edit_template(work: Path) -> None:
    task = work / "instructions/toy/colours.yaml"
    spec = yaml.safe_load(task.read_text())
    spec["templates"][0]["instruction"] = "Which colour is it?"
    task.write_text(yaml.safe_dump(spec, sort_keys=False))


def cut_data(work: Path) -> None:
    data = work / "instructions/toy/colours.jsonl"
    data.write_text("".join(data.read_text().splitlines(keepends=True)[:20]))


CHANGES = {
    "template edited": (edit_template, "toy/colours: template 'ask' edited in {work}/instructions/toy/colours.yaml"),
    "data file cut": (cut_data, "toy/colours: data {work}/instructions/toy/colours.jsonl changed (30 rows then, 15"),
}


@pytest.mark.parametrize("kind", CHANGES)
def test_inputs_changed_mid_run_are_refused_unless_allowed(work: Path, kind: str, capsys, caplog):
    change, message = CHANGES[kind]
    message = message.format(work=work)
    interrupted(work / "run")
    change(work)
    assert train(work / "run.yaml", "--resume") == 2
    err = capsys.readouterr().err
    assert f"cannot resume from {work / 'run/checkpoints' / NEWEST}" in err and message in err
    assert "--allow-changed" in err and not (work / "run/final").exists()
    with caplog.at_level(logging.WARNING):
        assert train(work / "run.yaml", "--resume", "--allow-changed") == 0
    assert "--allow-changed: resuming from" in caplog.text and message in caplog.text
    assert (work / "run/final/COMPLETE").is_file()


def other_rank_final(work: Path) -> None:
    shutil.rmtree(work / "run/final")
    shutil.copytree(work / "rank8/final", work / "run/final")


def unverified(damage: Callable[[Path], None]) -> Callable[[Path], None]:
    """The same damage to a final/ written before manifests (nothing to check hashes against)."""
    def apply(work: Path) -> None:
        damage(work)
        (work / "run/final/manifest.json").unlink()
    return apply


def rank_in_config(work: Path) -> None:
    """A rank-8 final/ whose adapter_config.json was edited to claim the run's rank 4."""
    config = work / "run/final/adapter_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "r": 4}))


BROKEN_RUNS: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated weights": (lambda w: truncate(w / "run/final/adapter_model.safetensors"),
                          "final is damaged: adapter_model.safetensors has"),
    "garbage weights, unverified": (unverified(lambda w: (w / "run/final/adapter_model.safetensors")
                                               .write_bytes(b"garbage" * 99)),
                                    "final: the saved weights (adapter_model.safetensors) cannot be read"),
    "missing tasks.json": (lambda w: (w / "run/tasks.json").unlink(), "run/tasks.json is missing"),
    "corrupt tasks.json": (lambda w: (w / "run/tasks.json").write_text("[{"), "run/tasks.json is corrupt"),
    "corrupt adapter_config.json": (lambda w: (w / "run/final/adapter_config.json").write_text("{"),
                                    "final is damaged: adapter_config.json has 1 bytes"),
    "corrupt adapter_config.json, unverified": (unverified(lambda w: (w / "run/final/adapter_config.json")
                                                           .write_text("{")),
                                                "final/adapter_config.json is corrupt"),
    "corrupt recipe.yaml": (lambda w: (w / "run/recipe.yaml").write_text("model: [\n"), "run/recipe.yaml is corrupt"),
    "recipe.yaml with another rank": (lambda w: (w / "run/recipe.yaml").write_text(
        (w / "run/recipe.yaml").read_text().replace("rank: 4", "rank: 8")), "adapter.rank: 4 when trained, 8 now"),
    "final/ of another run": (other_rank_final, "final was written by another run"),
    "final/ of another run, unverified": (unverified(other_rank_final), "r: 8 saved, 4 from the recipe"),
    "final/ of another rank, config edited": (unverified(lambda w: (other_rank_final(w), rank_in_config(w))),
                                              "holds weights of other shapes than this model"),
}


@pytest.mark.parametrize("kind", BROKEN_RUNS)
def test_predict_on_a_broken_run_names_the_file(work: Path, kind: str, capsys):
    breaks, message = BROKEN_RUNS[kind]
    breaks(work)
    rows = work / "rows.jsonl"
    rows.write_text(json.dumps({"text": "the sky"}) + "\n")
    assert main(["predict", str(work / "run"), "--task", "toy/colours", "--input", str(rows)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["evaluate", "export"])
@pytest.mark.parametrize("kind", ["truncated weights", "missing tasks.json", "final/ of another run"])
def test_evaluate_and_export_on_a_broken_run_name_the_file(work: Path, command: str, kind: str, capsys):
    breaks, message = BROKEN_RUNS[kind]
    breaks(work)
    flags = ["--merge", str(work / "merged")] if command == "export" else []
    assert main([command, str(work / "run"), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_recipe_edits_outside_the_adapter_are_warned_about(work: Path, caplog):
    recipe = work / "run/recipe.yaml"
    recipe.write_text(recipe.read_text().replace("lr: 0.01", "lr: 0.5"))
    rows = work / "rows.jsonl"
    rows.write_text(json.dumps({"text": "the sky"}) + "\n")
    with caplog.at_level(logging.WARNING):
        assert main(["predict", str(work / "run"), "--task", "toy/colours", "--input", str(rows)]) == 0
    assert "recipe.yaml was edited after" in caplog.text and "train.lr: 0.01 when trained, 0.5 now" in caplog.text


def test_export_refuses_to_write_into_a_run(work: Path, capsys):
    assert main(["export", str(work / "run"), "--merge", str(work / "other_seed")]) == 2
    assert f"export: {work / 'other_seed'} is a run folder" in capsys.readouterr().err
    assert main(["export", str(work / "run"), "--out", str(work / "other_seed/final/x")]) == 2
    assert "is inside" in capsys.readouterr().err
    assert not (work / "other_seed/config.json").exists()
    assert main(["export", str(work / "run"), "--merge", str(work / "merged")]) == 0


def test_symlinked_final_is_replaced_not_written_through(work: Path, caplog):
    target = work / "elsewhere"
    shutil.move(work / "run/final", target)
    (work / "run/final").symlink_to(target, target_is_directory=True)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    with caplog.at_level(logging.WARNING):
        assert train(work / "run.yaml", "--resume") == 0
    assert "is a symbolic link to" in caplog.text
    final = work / "run/final"
    assert not final.is_symlink() and (final / "COMPLETE").is_file() and (final / "manifest.json").is_file()
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
