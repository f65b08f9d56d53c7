"""Real multi-process runs on CPU: `accelerate launch` with gloo, two ranks against one."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from conftest import ROOT, make_recipe


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(recipe: dict, folder: Path, processes: int, *launch_args: str) -> subprocess.CompletedProcess:
    path = folder / f"recipe-{processes}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    distributed = ["--multi_gpu"] if processes > 1 else []
    command = [sys.executable, "-m", "accelerate.commands.launch", *launch_args, *distributed,
               "--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", str(free_port()), "-m", "t2t_mtl", "train", str(path)]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=folder, check=False)
    assert done.returncode == 0, done.stderr[-8000:]
    return done


def test_two_ranks_match_one_rank_with_the_same_global_batch(tmp_path: Path, tiny_t5: Path, task_dir: Path):
    def recipe(name: str, batch: int) -> dict:
        return make_recipe(tmp_path, tiny_t5, task_dir, output_dir=str(tmp_path / name),
                           train={"batch_size": batch, "max_steps": 3, "save_every": 3})

    launch(recipe("one", 8), tmp_path, 1)
    launch(recipe("two", 4), tmp_path, 2)
    state = json.loads((tmp_path / "two/checkpoints/step-000003/trainer_state.json").read_text())
    assert state["world_size"] == 2
    assert (tmp_path / "two/checkpoints/step-000003/random_states_1.pkl").is_file()
    one = load_file(tmp_path / "one/final/adapter_model.safetensors")
    two = load_file(tmp_path / "two/final/adapter_model.safetensors")
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-5)
    scores = [json.loads((tmp_path / f"{run}/results.json").read_text())["tasks"] for run in ("one", "two")]
    assert [(t["task"], t["examples"], t["scores"]) for t in scores[0]] == \
           [(t["task"], t["examples"], t["scores"]) for t in scores[1]]


def test_shipped_accelerate_config_runs_on_cpu(tmp_path: Path, tiny_t5: Path, task_dir: Path):
    recipe = make_recipe(tmp_path, tiny_t5, task_dir, train={"max_steps": 2})
    launch(recipe, tmp_path, 1, "--config_file", str(ROOT / "accelerate_config.yaml"), "--cpu")
    assert (Path(recipe["output_dir"]) / "final/COMPLETE").is_file()


def test_quickstart_mhr_two_ranks_match_one_rank(tmp_path: Path, tiny_t5: Path, task_dir: Path):
    shipped = yaml.safe_load((ROOT / "recipes/quickstart_mhr.yaml").read_text())

    def recipe(name: str, batch: int) -> dict:
        adapter = {**shipped["adapter"], "sample_routing": False, "dropout": 0.0}
        return make_recipe(tmp_path, tiny_t5, task_dir, adapter=adapter, output_dir=str(tmp_path / name),
                           train={**shipped["train"], "batch_size": batch, "max_steps": 3, "warmup": 1,
                                  "eval_every": None, "save_every": None},
                           eval={"max_examples": 2, "max_new_tokens": 2})

    launch(recipe("one", 8), tmp_path, 1)
    launch(recipe("two", 4), tmp_path, 2)
    one = load_file(tmp_path / "one/final/adapter_model.safetensors")
    two = load_file(tmp_path / "two/final/adapter_model.safetensors")
    assert any("lora_routing" in key for key in one)
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-5)
