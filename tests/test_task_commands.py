"""`t2t-mtl tasks validate` through the real command line: every task reported, a summary, the exit status."""

from __future__ import annotations

import shutil
from pathlib import Path

import datasets
import pytest
import yaml

from t2t_mtl.cli import main
from t2t_mtl.tasks.schema import load_task_file

from conftest import SHARED_DATA, colour_rows, write_task
from domain_fixtures import FIXTURES, INSTRUCTIONS, SHARED_PATHS, shared

PROGRESS = ("Generating", "examples/s", "it/s", "%|")


def validate(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    """Exit status and stdout of `t2t-mtl tasks validate ARGV`; stderr must hold no progress bar."""
    status = main(["tasks", "validate", *argv])
    captured = capsys.readouterr()
    assert not [bar for bar in PROGRESS if bar in captured.out + captured.err], captured.err
    return status, captured.out


@pytest.fixture
def mixed_tasks(tmp_path: Path) -> Path:
    """Two sound tasks (one without its data file) and three broken ones."""
    folder = tmp_path / "tasks"
    write_task(folder, "toy/good", colour_rows(12))
    write_task(folder, "toy/no_data", colour_rows(4))
    (folder / "no_data.jsonl").unlink()
    (folder / "bad_yaml.yaml").write_text("name: toy/bad_yaml\ntemplates: [unclosed\n")
    write_task(folder, "toy/bad_field", colour_rows(8),
               templates=[{"id": "ask", "instruction": "Colour?", "input": "{{ txt }}", "target": "{{ label }}"}])
    write_task(folder, "toy/corrupt", colour_rows(4))
    (folder / "corrupt.jsonl").write_text('{"text": "sky", "label": "blue"}\n{"text": \n')
    write_task(folder, "toy/bad_metric", colour_rows(8), metrics=["accuracy", {"name": "oos_recall", "oos_lable": "x"}])
    return folder


def test_every_task_is_reported_even_when_some_fail(mixed_tasks: Path, capsys: pytest.CaptureFixture) -> None:
    status, out = validate(capsys, "--task-dir", str(mixed_tasks), "-n", "2")
    assert status == 2
    assert "toy/good: ok\n" in out
    assert f"toy/no_data: ok (templates only; rows not checked: no data at {mixed_tasks / 'no_data.jsonl'})" in out
    assert f"{mixed_tasks / 'bad_yaml.yaml'}: could not be loaded\n  - task file " in out and "not valid YAML" in out
    assert "toy/bad_field: 3 problem(s)" in out
    assert "templates use fields ['txt'] that 'columns:' does not map" in out
    assert "template 'ask', row 0: " in out and "'txt'" in out
    assert "toy/corrupt: 1 problem(s)\n  - " in out and "corrupt.jsonl, line 2: corrupt JSON" in out
    assert "toy/bad_metric: 1 problem(s)" in out and "Metric 'oos_recall' has no option oos_lable" in out
    assert out.endswith("\n6 checked: 2 ok, 4 with problems; 1 without data (templates only)\n")
    assert datasets.is_progress_bar_enabled()  # the quiet spell is over


def test_failure_is_on_stderr_with_exit_status_2(mixed_tasks: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["tasks", "validate", "--task-dir", str(mixed_tasks)]) == 2
    assert capsys.readouterr().err.endswith("error: 4 of 6 tasks have problems (listed above)\n")


@pytest.mark.parametrize("argv", [
    ["--task-dir", "{folder}", "toy/good", "toy/no_data"],
    ["toy/good", "-n", "1", "--task-dir", "{folder}", "toy/no_data"],
    ["-n", "1", "toy/good", "toy/no_data", "toy/good", "--task-dir", "{folder}"],
])
def test_names_before_or_after_options(mixed_tasks: Path, capsys: pytest.CaptureFixture, argv: list[str]) -> None:
    status, out = validate(capsys, *(a.format(folder=mixed_tasks) for a in argv))
    assert status == 0
    assert out.splitlines()[0] == "toy/good: ok" and "bad_yaml" not in out
    assert out.endswith("\n2 checked: 2 ok, 0 with problems; 1 without data (templates only)\n")


def test_a_name_that_matches_nothing_names_the_files_that_did_not_load(mixed_tasks: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    status, out = validate(capsys, "toy/nothing", "toy/good", "--task-dir", str(mixed_tasks))
    assert status == 2
    assert "toy/nothing: could not be loaded\n  - no task named 'toy/nothing'" in out
    assert f"1 task file(s) did not load: ['{mixed_tasks / 'bad_yaml.yaml'}']" in out
    assert "toy/good: ok" in out and out.endswith("\n2 checked: 1 ok, 1 with problems\n")


def _shipped_copy(tmp_path: Path) -> tuple[Path, int]:
    """The project's instructions/ copied (their ../../data is then absent) and how many task files it has."""
    copy = tmp_path / "instructions"
    shutil.copytree(INSTRUCTIONS, copy)
    return copy, len(list(copy.rglob("*.yaml")))


def test_shipped_tasks_validate_without_their_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    copy, count = _shipped_copy(tmp_path)
    status, out = validate(capsys, "--task-dir", str(copy), "-n", "1")
    assert status == 0, out
    assert {line.split(":")[0] for line in out.splitlines()[:-2]} == {
        load_task_file(path).name for path in copy.rglob("*.yaml")}
    assert f"\n{count} checked: {count} ok, 0 with problems" in out


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")
def test_shipped_tasks_validate_on_shared_data_and_fixtures(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    copy, count = _shipped_copy(tmp_path)
    data = {name: shared(name) for name in SHARED_PATHS} | {
        name: write(tmp_path / "fixtures") for name, write in FIXTURES.items()}
    for path in copy.rglob("*.yaml"):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if raw["name"] in data:
            raw["source"]["path"] = str(data[raw["name"]])
            path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    status, out = validate(capsys, "--task-dir", str(copy), "-n", "2")
    assert status == 0, out
    assert out.endswith(f"\n{count} checked: {count} ok, 0 with problems\n")
