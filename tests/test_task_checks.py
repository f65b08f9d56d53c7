"""Task files are indexed cheaply and only the selected ones are checked strictly, when a command starts."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import yaml

from t2t_mtl.cli import main
from t2t_mtl.errors import T2TError
from t2t_mtl.recipe import load_recipe
from t2t_mtl.tasks.registry import TaskRegistry, select_tasks

from conftest import colour_rows, make_recipe, write_task


def _recipe(tmp_path: Path, model: Path, task_dir: Path, tasks: list[str]) -> Path:
    recipe = make_recipe(tmp_path, model, task_dir, tasks=tasks, train={"max_steps": 2}, eval={"max_examples": 2})
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """One sound task, a file that is not valid YAML, and one that names itself other than its path."""
    folder = tmp_path / "tasks"
    write_task(folder / "toy", "toy/good", colour_rows(16))
    write_task(folder / "toy", "other/renamed", colour_rows(8))  # toy/renamed.yaml declares other/renamed
    (folder / "toy" / "broken.yaml").write_text("name: toy/broken\ntemplates: [unclosed\n", encoding="utf-8")
    return folder


def test_index_reads_names_and_notes_broken_files(folder: Path) -> None:
    registry = TaskRegistry([folder.resolve()])
    assert registry.names == ["other/renamed", "toy/broken", "toy/good"]
    assert list(registry.broken) == [(folder / "toy" / "broken.yaml").resolve()]
    assert registry.select("other/*")[0].file == (folder / "toy" / "renamed.yaml").resolve()


def test_broken_unselected_file_is_a_warning_not_a_blocker(tmp_path: Path, tiny_t5: Path, folder: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="t2t_mtl.tasks.registry"):
        assert main(["train", str(_recipe(tmp_path, tiny_t5, folder, ["toy/good"]))]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "t2t_mtl.tasks.registry"]
    assert len(warnings) == 1 and str(folder / "toy" / "broken.yaml") in warnings[0]
    assert "not valid YAML" in warnings[0] and "\n" not in warnings[0]
    assert (tmp_path / "run" / "final").is_dir()


@pytest.mark.parametrize("pattern", ["toy/broken", "toy/*"])
def test_selected_broken_file_fails_naming_it(tmp_path: Path, folder: Path, pattern: str) -> None:
    recipe = load_recipe(_recipe(tmp_path, tmp_path, folder, [pattern]))
    with pytest.raises(T2TError, match=r"broken\.yaml is not valid YAML"):
        select_tasks(recipe, [tmp_path])


@pytest.mark.parametrize(("override", "message"), [
    ({"output": "typed_span"}, r"renamed\.yaml \(task other/renamed\), output: .*Did you mean 'typed_spans'"),
    ({"metrics": ["spanf1"]}, r"renamed\.yaml \(task other/renamed\), metrics: .*Did you mean 'span_f1'"),
])
def test_unknown_output_or_metric_fails_at_start_with_closest_name(
        tmp_path: Path, tiny_t5: Path, folder: Path, capsys: pytest.CaptureFixture,
        override: dict, message: str) -> None:
    write_task(folder / "toy", "other/renamed", colour_rows(8), **override)
    assert main(["train", str(_recipe(tmp_path, tiny_t5, folder, ["toy/good", "other/renamed"]))]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not (tmp_path / "run").exists()  # nothing trained, no run folder
    assert main(["tasks", "show", "other/renamed", "--task-dir", str(folder)]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_tasks_list_lists_loadable_tasks_and_reports_broken(folder: Path, capsys: pytest.CaptureFixture) -> None:
    write_task(folder / "bad", "bad/no_templates", colour_rows(4), templates=[])
    assert main(["tasks", "list", "--task-dir", str(folder)]) == 2  # listed, but the broken files fail the command
    out, err = capsys.readouterr()
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["other/renamed", "toy/good"]
    assert "2 task file(s) could not be loaded" in err
    assert f"task file {folder / 'toy' / 'broken.yaml'} is not valid YAML" in err
    assert f"task file {folder / 'bad' / 'no_templates.yaml'}" in err and "templates" in err


def test_tasks_validate_names_a_bad_metric_with_the_closest(folder: Path, capsys: pytest.CaptureFixture) -> None:
    write_task(folder / "toy", "toy/good", colour_rows(16), metrics=["accuracy", "exact_mach"])
    assert main(["tasks", "validate", "toy/good", "--task-dir", str(folder)]) == 2
    assert "Did you mean 'exact_match'" in capsys.readouterr().out


def test_a_name_defined_twice_blocks_only_when_selected(tmp_path: Path, folder: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    write_task(folder / "copy", "other/renamed", colour_rows(8))
    with caplog.at_level(logging.WARNING, logger="t2t_mtl.tasks.registry"):
        assert [s.spec.name for s in select_tasks(load_recipe(_recipe(tmp_path, tmp_path, folder, ["toy/good"])),
                                                  [tmp_path])] == ["toy/good"]
    assert any("'other/renamed' is defined twice" in r.getMessage() for r in caplog.records)
    with pytest.raises(T2TError, match=r"'other/renamed' is defined twice: .*renamed\.yaml and .*renamed\.yaml"):
        select_tasks(load_recipe(_recipe(tmp_path, tmp_path, folder, ["other/*"])), [tmp_path])
