"""`t2t-mtl merge`: combine trained LoRA runs into a new run folder that evaluate, predict and export use unchanged.

The new folder is a run like any other (recipe.yaml, tasks.json with the union of the inputs'
tasks, template and data locks, final/ with a manifest) plus merge.json, which records the
method, the coefficients and each input (its run id and the hash of the weights merged).
It is written beside its destination and renamed into place, so a failed merge leaves nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import set_peft_model_state_dict
from safetensors.torch import load_file
from transformers import AutoTokenizer

from t2t_mtl.adapters.full.settings import FullSettings
from t2t_mtl.adapters.lora.settings import LoraSettings
from t2t_mtl.adapters.saved import reading_weights, refuse_unexpected, saved_adapter_config
from t2t_mtl.composition.task_vectors import (
    FOLDED,
    METHODS,
    SavedLora,
    averaged_full_modules,
    folded_deltas,
    stacked,
)
from t2t_mtl.errors import T2TError, closest
from t2t_mtl.manifest import read_manifest
from t2t_mtl.modeling.backbone import load_backbone
from t2t_mtl.recipe import Recipe
from t2t_mtl.run_dir import COMPLETE, RunDir
from t2t_mtl.task_table import TaskRow
from t2t_mtl.tasks.registry import entry_for

logger = logging.getLogger(__name__)

PREFIX = "base_model.model."  # PEFT's prefix of the backbone's names in a saved seq2seq adapter
# Defaults: methods that sum the task vectors scale them by 0.3 (FusionBench's Task Arithmetic
# setting); averaging ones (linear's 1/n weights, TIES' disjoint mean) by 1.
DEFAULT_LAMBDA = {"linear": 1.0, "task_arithmetic": 0.3, "ties": 1.0, "dare_linear": 0.3, "dare_ties": 1.0}
DEFAULT_DENSITY = {"ties": 0.2, "dare_linear": 0.5, "dare_ties": 0.5}  # TIES keeps the top 20%; DARE drops half


@dataclass(frozen=True)
class MergeSettings:
    """How to merge: the method, one weight per run (default 1/n for linear, else 1), λ, density, DARE's seed."""

    method: str = "linear"
    weights: list[float] | None = None
    scale: float | None = None  # λ; None: DEFAULT_LAMBDA of the method
    density: float | None = None  # None: DEFAULT_DENSITY of the method
    seed: int = 0

    def check(self, runs: int) -> None:
        """Refuse an unknown method, a weight count that is not one per run, or a density outside (0, 1]."""
        if self.method not in METHODS:
            raise T2TError(f"--method {self.method} is not a merge method.{closest(self.method, METHODS)} "
                           f"Methods: {', '.join(METHODS)}")
        if self.weights is not None and len(self.weights) != runs:
            raise T2TError(f"--weights gives {len(self.weights)} values for {runs} runs: give one weight per run, "
                           f"in the order of the runs")
        if self.density is not None:
            if self.method not in FOLDED:
                raise T2TError(f"--density applies to {', '.join(FOLDED)} (the fraction of each task vector "
                               f"kept); --method {self.method} keeps every entry")
            if not 0 < self.density <= 1:
                raise T2TError(f"--density {self.density} must be in (0, 1]: the fraction of each task vector kept")

    def coefficients(self, runs: int) -> list[float]:
        """c_i = λ · weight_i, the factor of each run's task vector."""
        weights = self.weights or [1.0 / runs if self.method == "linear" else 1.0] * runs
        scale = DEFAULT_LAMBDA[self.method] if self.scale is None else self.scale
        return [scale * w for w in weights]

    def kept(self) -> float:
        """The density an elementwise method keeps."""
        return DEFAULT_DENSITY[self.method] if self.density is None else self.density


@dataclass
class InputRun:
    """One run to merge: its folder, recipe, task table, verified weights folder and saved adapter."""

    run: RunDir
    recipe: Recipe
    table: list[TaskRow]
    weights: Path
    adapter: SavedLora
    config: dict[str, Any] = field(repr=False)


def _input_run(path: Path) -> InputRun:
    """Load and check one input: a LoRA run with verified trained weights."""
    run = RunDir(path)
    recipe = run.recipe()  # "not a run folder" when it has no recipe.yaml
    table = run.tasks()
    weights = run.trained_weights()
    if recipe.adapter.type != "lora":
        raise T2TError(f"{path} trained adapter.type: {recipe.adapter.type}; merge combines LoRA runs "
                       f"(adapter.type: lora) trained on the same backbone")
    config = saved_adapter_config(weights)
    if config.get("rank_pattern") or config.get("alpha_pattern") or config.get("use_dora"):
        raise T2TError(f"{weights / 'adapter_config.json'} uses per-layer ranks or DoRA, which merge does not support")
    with reading_weights(weights):
        state = load_file(weights / "adapter_model.safetensors")
    rank = int(config["r"])
    scale = config["lora_alpha"] / (rank ** 0.5 if config.get("use_rslora") else rank)
    return InputRun(run, recipe, table, weights, SavedLora(str(path), state, rank, scale), config)


def _check_compatible(inputs: list[InputRun]) -> None:
    """Refuse runs of different backbones or adapter placements; warn about differing sequence lengths."""
    first = inputs[0]
    for other in inputs[1:]:
        for what, ours, theirs in (
            ("model.name_or_path", first.recipe.model.name_or_path, other.recipe.model.name_or_path),
            ("model.dtype", first.recipe.model.dtype, other.recipe.model.dtype),
            ("adapter.targets", first.config.get("target_modules"), other.config.get("target_modules")),
        ):
            if ours != theirs:
                raise T2TError(f"{first.run.root} and {other.run.root} differ in {what} ({ours!r} and {theirs!r}): "
                               f"merge combines runs trained on the same backbone with the same adapter.targets")
        if (other.recipe.model.max_source_length, other.recipe.model.max_target_length) != (
                first.recipe.model.max_source_length, first.recipe.model.max_target_length):
            logger.warning("%s and %s were trained with different model.max_source_length/max_target_length; the "
                           "merged run uses the first's", first.run.root, other.run.root)
    if len({i.recipe.train.seed for i in inputs}) > 1 and first.adapter.trained_in_full():
        logger.warning("the runs were trained with different train.seed, so the modules they trained in full (%s, ...) "
                       "started from different random values; their average may be poor", first.adapter.trained_in_full()[0])


def _check_out(out: Path, inputs: list[Path]) -> None:
    """Refuse an --out that holds anything, or that is or lies inside an input run."""
    target = out.resolve()
    for path in inputs:
        run = path.resolve()
        if target == run or run in target.parents:
            raise T2TError(f"--out {out} is inside the input run {path}; writing there would change that run. "
                           f"Choose a new folder, e.g. {path.parent / (path.name + '_merged')}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a run" if RunDir(out).exists() else "a file" if not out.is_dir() else "files"
        raise T2TError(f"--out {out} already holds {what}; merge writes a new run folder. Choose a new folder.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise T2TError(f"--out {out}: cannot make its folder {out.parent} ({error.strerror})") from error
    if not os.access(out.parent, os.W_OK):
        raise T2TError(f"--out {out}: the folder {out.parent} is not writable. Choose another folder.")


def _union(inputs: list[InputRun]) -> tuple[list[TaskRow], dict[str, Any], dict[str, Any], list[Any]]:
    """The union of the inputs' tasks (a task trained by any input is trained), locks and recipe entries."""
    rows: dict[str, TaskRow] = {}
    templates: dict[str, Any] = {}
    data: dict[str, Any] = {}
    entries: dict[str, Any] = {}
    for item in inputs:
        locks = item.run.inputs()
        for row in item.table:
            known = rows.get(row.name)
            if known is None or (known.held_out and not row.held_out):
                rows[row.name] = row.model_copy(update={"id": known.id if known else len(rows)})
                entries[row.name] = entry_for(item.recipe, row.name).model_copy(update={"name": row.name})
            for lock, found in ((templates, locks["templates"]), (data, locks["data"])):
                if row.name in found and lock.setdefault(row.name, found[row.name]) != found[row.name]:
                    logger.warning("%s: its templates or data differ between the merged runs; the merged run "
                                   "records those of the first run that has it", row.name)
    return sorted(rows.values(), key=lambda r: r.id), templates, data, [entries[n] for n in rows]


def _weights_sha(item: InputRun) -> str | None:
    """The recorded sha256 of the adapter weights merged from `item` (None before manifests)."""
    manifest = read_manifest(item.weights if item.weights.name != "model" else item.weights.parent)
    files = (manifest or {}).get("files", {})
    return next((f["sha256"] for name, f in files.items() if name.endswith("adapter_model.safetensors")), None)


def merge_runs(paths: list[Path], out: Path, settings: MergeSettings) -> Path:
    """Merge the LoRA runs at `paths` into a new run folder `out`; returns it."""
    if not paths:
        raise T2TError("merge needs at least one run folder")
    settings.check(len(paths))
    inputs = [_input_run(path) for path in paths]
    _check_compatible(inputs)
    _check_out(out, paths)  # the last check: it makes the folder --out goes in
    coefficients = settings.coefficients(len(inputs))
    table, templates, data, entries = _union(inputs)
    first = inputs[0]
    folded = settings.method in FOLDED
    adapters = [i.adapter for i in inputs]
    if folded:
        adapter_settings = FullSettings()
    else:
        rank = sum(a.rank for a in adapters)
        adapter_settings = LoraSettings(rank=rank, alpha=first.adapter.scale * rank, dropout=first.recipe.adapter.dropout,
                                        targets=first.recipe.adapter.targets)
    recipe = first.recipe.model_copy(update={"adapter": adapter_settings, "tasks": entries, "output_dir": str(out),
                                             "eval": first.recipe.eval.model_copy(update={"tasks": None})})
    record = {"method": settings.method, "coefficients": coefficients, "seed": settings.seed,
              "density": settings.kept() if folded else None,
              "stored_as": "full weights (the merge is full rank)" if folded else f"LoRA of rank {recipe.adapter.rank}",
              "inputs": [{"run": str(i.run.root.resolve()), "run_id": i.run.recorded_run_id(),
                          "weights": str(i.weights.resolve()), "adapter_sha256": _weights_sha(i),
                          "tasks": [row.name for row in i.table]} for i in inputs]}
    staging = out.parent / f".{out.name}.merging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        run = RunDir(staging)
        staging.mkdir()
        run.recipe_file.write_text(recipe.to_yaml(), encoding="utf-8")
        run.write_tables(table, templates, data or None)
        run.merge_file.write_text(json.dumps(record, indent=2), encoding="utf-8")
        _write_final(run, recipe, inputs, coefficients, settings)
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _write_final(run: RunDir, recipe: Recipe, inputs: list[InputRun], coefficients: list[float],
                 settings: MergeSettings) -> None:
    """final/: the merged weights (a PEFT LoRA, or full weights), the tokenizer, the manifest and the marker."""
    adapters = [i.adapter for i in inputs]
    backbone = load_backbone(recipe.model.name_or_path, recipe.model.dtype)
    full_modules = averaged_full_modules(adapters, coefficients)
    if settings.method in FOLDED:
        model = backbone.model
        deltas = folded_deltas(adapters, coefficients, settings.method, settings.kept(), settings.seed)
        with torch.no_grad():
            for module, delta in deltas.items():
                weight = model.get_submodule(module.removeprefix(PREFIX)).weight
                weight.copy_((weight.float() + delta).to(weight.dtype))
            unexpected = model.load_state_dict({k.removeprefix(PREFIX): v for k, v in full_modules.items()},
                                               strict=False).unexpected_keys
    else:
        model = recipe.method.build(backbone, recipe.adapter, n_tasks=1)
        state = {**stacked(adapters, coefficients, adapters[0].scale), **full_modules}
        unexpected = getattr(set_peft_model_state_dict(model, state), "unexpected_keys", [])
    refuse_unexpected(inputs[0].weights, unexpected)
    final = run.fresh_final()
    recipe.method.save(model, final)
    tokenizer_folder = inputs[0].weights
    tokenizer = (AutoTokenizer.from_pretrained(tokenizer_folder) if (tokenizer_folder / "tokenizer_config.json").is_file()
                 else backbone.tokenizer)
    tokenizer.save_pretrained(final)
    run.write_manifest(final)
    (final / COMPLETE).touch()
