"""Recipes: validation, dotted overrides, and errors that suggest the fix."""

from pathlib import Path

import pytest
import yaml

from t2t_mtl.errors import T2TError
from t2t_mtl.recipe import load_recipe
from t2t_mtl.tasks.registry import select_tasks

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_quickstart_loads_with_overrides():
    recipe = load_recipe(ROOT / "recipes/quickstart.yaml", ["train.lr=3e-4", "tasks.0.rate=2", "eval.tasks=[demo/ner]"])
    assert recipe.train.lr == 3e-4
    assert recipe.tasks[0].rate == 2
    assert recipe.eval.tasks == ["demo/ner"]
    assert recipe.model.name_or_path == "offline:minilm"


def test_unknown_key_suggests_closest(tmp_path: Path):
    path = write(tmp_path, "tasks: [a]\ntrain: {max_steps: 1, lerning_rate: 1}\noutput_dir: x\n")
    with pytest.raises(T2TError, match=r"unknown key 'train.lerning_rate'"):
        load_recipe(path)
    with pytest.raises(T2TError, match=r"unknown key 'trian'. Did you mean 'train'"):
        load_recipe(ROOT / "recipes/quickstart.yaml", ["trian.lr=1"])


def test_wrong_type_names_key_and_value(tmp_path: Path):
    with pytest.raises(T2TError, match=r"train.batch_size: .*integer.*'many'"):
        load_recipe(ROOT / "recipes/quickstart.yaml", ["train.batch_size=many"])


def test_needs_exactly_one_run_length():
    with pytest.raises(T2TError, match="exactly one of train.max_steps or train.epochs"):
        load_recipe(ROOT / "recipes/quickstart.yaml", ["train.epochs=2"])


def test_missing_recipe_file_is_named(tmp_path: Path):
    with pytest.raises(T2TError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")


def test_unknown_task_name_suggests_closest(tmp_path: Path):
    recipe = load_recipe(ROOT / "recipes/quickstart.yaml", ["tasks=[demo/nerr]"])
    with pytest.raises(T2TError, match=r"no task named 'demo/nerr'.*Did you mean 'demo/ner'"):
        select_tasks(recipe, [ROOT])


def test_globs_expand_in_recipe_order():
    recipe = load_recipe(ROOT / "recipes/quickstart.yaml", ["tasks=[demo/ner, demo/*]"])
    names = [s.spec.name for s in select_tasks(recipe, [ROOT])]
    assert names[0] == "demo/ner" and len(names) == len(set(names)) == 6


def test_resolved_recipe_round_trips(tmp_path: Path):
    recipe = load_recipe(ROOT / "recipes/quickstart.yaml")
    again = load_recipe(write(tmp_path, recipe.to_yaml()))
    assert again == recipe
    assert yaml.safe_load(recipe.to_yaml())["tasks"][0]["name"] == "demo/*"
