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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from peft import set_peft_model_state_dict
from safetensors.torch import load_file
from transformers import AutoTokenizer

from t2t_mtl.adapters.full.settings import FullSettings
from t2t_mtl.adapters.lora.settings import LoraSettings
from t2t_mtl.adapters.routed.settings import PolySettings, RoutedSettings
from t2t_mtl.adapters.saved import reading_weights, refuse_unexpected, saved_adapter_config
from t2t_mtl.composition.adamerging import fit_multipliers, lora_layers
from t2t_mtl.composition.skills import concatenated_skills, lora_skill_routing
from t2t_mtl.composition.task_vectors import (
    FOLDED,
    METHODS,
    SavedLora,
    averaged_full_modules,
    folded_deltas,
    same_modules,
    stacked,
)
from t2t_mtl.errors import T2TError, closest
from t2t_mtl.inference import Predictor
from t2t_mtl.manifest import read_manifest
from t2t_mtl.modeling.backbone import load_backbone
from t2t_mtl.recipe import Recipe, parse_recipe
from t2t_mtl.run_dir import COMPLETE, RunDir
from t2t_mtl.task_table import TaskRow
from t2t_mtl.tasks.registry import entry_for
from t2t_mtl.textfiles import writable_folder

logger = logging.getLogger(__name__)

CONCAT = "concat"  # skill inventories side by side (a LoRA run is one skill), every task routed as before
ADAMERGING = "adamerging"  # task arithmetic with per-layer coefficients fitted on unlabelled rows
LORA_METHODS = (*METHODS, ADAMERGING)
FIT_STEPS, FIT_LR = 30, 0.05
PREFIX = "base_model.model."  # PEFT's prefix of the backbone's names in a saved seq2seq adapter
# Defaults: methods that sum the task vectors scale them by 0.3 (FusionBench's Task Arithmetic
# setting); averaging ones (linear's 1/n weights, TIES' disjoint mean) by 1.
DEFAULT_LAMBDA = {"linear": 1.0, "task_arithmetic": 0.3, "ties": 1.0, "dare_linear": 0.3, "dare_ties": 1.0,
                  ADAMERGING: 0.3}  # AdaMerging starts from Task Arithmetic's λ
DEFAULT_DENSITY = {"ties": 0.2, "dare_linear": 0.5, "dare_ties": 0.5}  # TIES keeps the top 20%; DARE drops half


@dataclass(frozen=True)
class MergeSettings:
    """How to merge: the method, one weight per run (default 1/n for linear, else 1), λ, density, DARE's seed.

    `method` None is `linear` for LoRA runs and `concat` (the only way) for routed runs.
    """

    method: str | None = None
    weights: list[float] | None = None
    scale: float | None = None  # λ; None: DEFAULT_LAMBDA of the method
    density: float | None = None  # None: DEFAULT_DENSITY of the method
    seed: int = 0
    fit_rows: list[dict[str, Any]] | None = None  # adamerging: unlabelled rows of `fit_task`
    fit_task: str | None = None  # a task of the runs or a task file; None: the runs' one held-out task
    fit_steps: int = FIT_STEPS

    def for_inputs(self, routed: bool) -> MergeSettings:
        """These settings with the method of the inputs' kind resolved and checked."""
        if not routed and self.method != CONCAT:
            return replace(self, method=self.method or "linear")
        if self.method not in (None, CONCAT):
            raise T2TError(f"--method {self.method} merges LoRA task vectors; routed runs merge by putting their "
                           f"skills side by side (--method {CONCAT}, the default for routed runs)")
        given = [flag for flag, value in (("--weights", self.weights), ("--lambda", self.scale),
                                          ("--density", self.density)) if value is not None]
        if given:
            raise T2TError(f"{', '.join(given)}: --method {CONCAT} puts the runs' skills side by side and keeps every "
                           f"task's own routing; there is nothing to weight")
        return replace(self, method=CONCAT)

    def check(self, runs: int) -> None:
        """Refuse an unknown method, a weight count that is not one per run, or a density outside (0, 1]."""
        if self.method == CONCAT:
            return
        if self.method not in LORA_METHODS:
            raise T2TError(f"--method {self.method} is not a merge method.{closest(self.method, LORA_METHODS)} "
                           f"Methods: {', '.join(LORA_METHODS)}")
        if (self.method == ADAMERGING) != bool(self.fit_rows):
            raise T2TError("--method adamerging fits its coefficients on unlabelled rows: give --fit-data ROWS.jsonl"
                           if self.method == ADAMERGING else
                           f"--fit-data is read by --method adamerging only, not {self.method}")
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
        """c_i = λ · weight_i, the factor of each run's task vector (1 for `concat`, which keeps every run whole)."""
        if self.method == CONCAT:
            return [1.0] * runs
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

    @property
    def routed(self) -> bool:
        """Whether the run trained routed skills (Poly, MHR, C-Poly) rather than one LoRA."""
        return isinstance(self.recipe.adapter, RoutedSettings)


def _input_run(path: Path) -> InputRun:
    """Load and check one input: a LoRA or routed run with verified trained weights."""
    run = RunDir(path)
    recipe = run.recipe()  # "not a run folder" when it has no recipe.yaml
    table = run.tasks()
    weights = run.trained_weights()
    if not isinstance(recipe.adapter, LoraSettings):
        raise T2TError(f"{path} trained adapter.type: {recipe.adapter.type}; merge combines LoRA runs, or routed "
                       f"runs (poly, mhr, cpoly), trained on the same backbone")
    config = saved_adapter_config(weights)
    if config.get("rank_pattern") or config.get("alpha_pattern") or config.get("use_dora"):
        raise T2TError(f"{weights / 'adapter_config.json'} uses per-layer ranks or DoRA, which merge does not support")
    with reading_weights(weights):
        state = load_file(weights / "adapter_model.safetensors")
    rank = int(config.get("skill_rank", config["r"]))
    scale = config["lora_alpha"] / (rank ** 0.5 if config.get("use_rslora") else rank)
    return InputRun(run, recipe, table, weights, SavedLora(str(path), state, int(config["r"]), scale), config)


def _check_compatible(inputs: list[InputRun]) -> None:
    """Refuse runs of different kinds, backbones or adapter shapes; warn about differing sequence lengths."""
    first = inputs[0]
    keys = ["target_modules"]
    if first.routed:
        keys += ["skill_rank", "n_splits", "n_exclusive_skills"]
    for other in inputs[1:]:
        if other.routed != first.routed:
            raise T2TError(f"{first.run.root} trained adapter.type: {first.recipe.adapter.type} and {other.run.root} "
                           f"adapter.type: {other.recipe.adapter.type}: merge combines LoRA runs with LoRA runs, "
                           f"routed runs with routed runs")
        differ = [(f"model.{key}", getattr(first.recipe.model, key), getattr(other.recipe.model, key))
                  for key in ("name_or_path", "dtype")]
        differ += [(f"{key} (adapter_config.json)", first.config.get(key), other.config.get(key)) for key in keys]
        for what, ours, theirs in differ:
            if ours != theirs:
                raise T2TError(f"{first.run.root} and {other.run.root} differ in {what} ({ours!r} and {theirs!r}): "
                               f"merge combines runs trained on the same backbone with adapters of the same shape "
                               f"and adapter.targets")
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
    writable_folder(out, "--out")


@dataclass
class Union:
    """The merged task table (a task trained by any input is trained), where each row came from, locks, entries."""

    table: list[TaskRow]
    sources: list[tuple[int, int]]  # per merged row: (input, that input's row id)
    templates: dict[str, Any]
    data: dict[str, Any]
    entries: list[Any]


def _union(inputs: list[InputRun]) -> Union:
    """The union of the inputs' tasks, in input order; a task in several runs keeps its first trained row."""
    rows: dict[str, tuple[TaskRow, tuple[int, int]]] = {}
    templates: dict[str, Any] = {}
    data: dict[str, Any] = {}
    entries: dict[str, Any] = {}
    for index, item in enumerate(inputs):
        locks = item.run.inputs()
        for row in item.table:
            known = rows.get(row.name)
            if item.routed and known is not None and not known[0].held_out and not row.held_out:
                logger.warning("%s is a trained task of several merged runs; the merged run routes it as %s did",
                               row.name, inputs[known[1][0]].run.root)
            if known is None or (known[0].held_out and not row.held_out):
                new_id = known[0].id if known else len(rows)
                rows[row.name] = (row.model_copy(update={"id": new_id}), (index, row.id))
                entries[row.name] = entry_for(item.recipe, row.name).model_copy(update={"name": row.name})
            for lock, found in ((templates, locks["templates"]), (data, locks["data"])):
                if row.name in found and lock.setdefault(row.name, found[row.name]) != found[row.name]:
                    logger.warning("%s: its templates or data differ between the merged runs; the merged run "
                                   "records those of the first run that has it", row.name)
    ordered = sorted(rows.values(), key=lambda pair: pair[0].id)
    return Union([row for row, _ in ordered], [source for _, source in ordered], templates, data,
                 [entries[row.name] for row, _ in ordered])


def _weights_sha(item: InputRun) -> str | None:
    """The recorded sha256 of the adapter weights merged from `item` (None before manifests)."""
    manifest = read_manifest(item.weights if item.weights.name != "model" else item.weights.parent)
    files = (manifest or {}).get("files", {})
    return next((f["sha256"] for name, f in files.items() if name.endswith("adapter_model.safetensors")), None)


def merge_runs(paths: list[Path], out: Path, settings: MergeSettings) -> dict[str, Any]:
    """Merge the LoRA runs (or the routed runs) at `paths` into a new run folder `out`; returns its merge.json."""
    if not paths:
        raise T2TError("merge needs at least one run folder")
    inputs = [_input_run(path) for path in paths]
    _check_compatible(inputs)
    settings = settings.for_inputs(inputs[0].routed)
    ranks = sorted({i.adapter.rank for i in inputs})
    if settings.method == CONCAT and not inputs[0].routed and len(ranks) > 1:
        raise T2TError(f"--method concat makes each LoRA run one skill, and skills share one rank; these runs have "
                       f"ranks {ranks}. Merge them by task vectors instead (e.g. --method task_arithmetic)")
    settings.check(len(paths))
    union = _union(inputs)
    fit_task = _fit_task(settings, union) if settings.method == ADAMERGING else None
    _check_out(out, paths)  # the last check: it makes the folder --out goes in
    recipe = _merged_recipe(inputs, settings, union, out)
    stored = {CONCAT: f"{recipe.adapter.type} with {getattr(recipe.adapter, 'n_skills', 0)} skills per layer",
              **dict.fromkeys(FOLDED, "full weights (the merge is full rank)")}
    record = {"method": settings.method, "coefficients": settings.coefficients(len(inputs)), "seed": settings.seed,
              "density": settings.kept() if settings.method in FOLDED else None,
              "stored_as": stored.get(settings.method, f"LoRA of rank {getattr(recipe.adapter, 'rank', 0)}"),
              "tasks": [row.name for row in union.table],
              "inputs": [{"run": str(i.run.root.resolve()), "run_id": i.run.recorded_run_id(),
                          "weights": str(i.weights.resolve()), "adapter_sha256": _weights_sha(i),
                          "tasks": [row.name for row in i.table]} for i in inputs]}
    staging = out.parent / f".{out.name}.merging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        run = RunDir(staging)
        staging.mkdir()
        run.recipe_file.write_text(recipe.to_yaml(), encoding="utf-8")
        run.write_tables(union.table, union.templates, union.data or None)
        record.update(_write_final(run, recipe, inputs, union, settings, fit_task))
        run.merge_file.write_text(json.dumps(record, indent=2), encoding="utf-8")
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return record


def _merged_recipe(inputs: list[InputRun], settings: MergeSettings, union: Union, out: Path) -> Recipe:
    """The first input's recipe with the merged adapter, the union of the tasks and `out`."""
    first = inputs[0]
    adapter = first.recipe.adapter
    if settings.method == CONCAT and first.routed:
        adapter = adapter.model_copy(update={"n_skills": sum(i.recipe.adapter.n_skills for i in inputs)})
    elif settings.method == CONCAT:  # each LoRA run becomes one skill of a Poly inventory
        adapter = PolySettings(rank=first.adapter.rank, alpha=first.adapter.scale * first.adapter.rank,
                               dropout=adapter.dropout, targets=adapter.targets, n_skills=len(inputs),
                               sample_routing=False)
    elif settings.method in FOLDED:
        adapter = FullSettings()
    else:
        rank = sum(i.adapter.rank for i in inputs)
        adapter = LoraSettings(rank=rank, alpha=first.adapter.scale * rank, dropout=adapter.dropout,
                               targets=adapter.targets)
    raw = first.recipe.model_dump(mode="json")
    raw.update(adapter=adapter.model_dump(mode="json"), tasks=[e.model_dump(mode="json") for e in union.entries],
               output_dir=str(out), eval={**raw["eval"], "tasks": None})
    return parse_recipe(raw, f"the recipe merged from {first.run.recipe_file}")  # typed for its adapter method


def _write_final(run: RunDir, recipe: Recipe, inputs: list[InputRun], union: Union, settings: MergeSettings,
                 fit_task: str | None) -> dict[str, Any]:
    """final/: the merged weights (a PEFT adapter, or full weights), the tokenizer, the manifest and the marker.

    With `fit_task` (AdaMerging), the coefficients are fitted first; returns what merge.json adds about the fit.
    """
    adapters = [i.adapter for i in inputs]
    backbone = load_backbone(recipe.model.name_or_path, recipe.model.dtype)
    coefficients = settings.coefficients(len(inputs))
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
        if settings.method == CONCAT and inputs[0].routed:
            merged = concatenated_skills([a.name for a in adapters], [a.state for a in adapters],
                                         [i.recipe.adapter.n_skills for i in inputs], union.sources)
        elif settings.method == CONCAT:
            trained_by = [None if row.held_out else source for row, (source, _) in zip(union.table, union.sources)]
            merged = {**stacked(adapters, coefficients, adapters[0].scale),
                      **lora_skill_routing(same_modules(adapters), trained_by, len(inputs))}
        else:
            merged = stacked(adapters, coefficients, adapters[0].scale)
        model = recipe.method.build(backbone, recipe.adapter, n_tasks=len(union.table))
        unexpected = getattr(set_peft_model_state_dict(model, {**merged, **full_modules}), "unexpected_keys", [])
    refuse_unexpected(inputs[0].weights, unexpected)
    tokenizer_folder = inputs[0].weights
    tokenizer = (AutoTokenizer.from_pretrained(tokenizer_folder) if (tokenizer_folder / "tokenizer_config.json").is_file()
                 else backbone.tokenizer)
    fitted = {} if fit_task is None else _fit_coefficients(Predictor(run, model, tokenizer), inputs, fit_task, settings)
    final = run.fresh_final()
    recipe.method.save(model, final)
    tokenizer.save_pretrained(final)
    recipe.method.routing_plan(model, tokenizer, union.table, recipe.eval).save(run.root)
    run.write_manifest(final)
    (final / COMPLETE).touch()
    return fitted


def _fit_task(settings: MergeSettings, union: Union) -> str:
    """The task whose rows AdaMerging fits on: --fit-task (a task of the runs, or a task file), else the one
    held-out task of the runs."""
    names = [row.name for row in union.table]
    if settings.fit_task is not None:
        if settings.fit_task not in names and not settings.fit_task.endswith((".yaml", ".yml")):
            raise T2TError(f"--fit-task {settings.fit_task} is not a task of the merged runs."
                           f"{closest(settings.fit_task, names)} Give one of {', '.join(names)}, or a task file")
        return settings.fit_task
    held_out = [row.name for row in union.table if row.held_out]
    if len(held_out) != 1:
        raise T2TError(f"--method adamerging: name the task of the --fit-data rows with --fit-task (the runs hold "
                       f"{len(held_out)} held-out tasks{': ' + ', '.join(held_out) if held_out else ''})")
    return held_out[0]


def _fit_coefficients(predictor: Predictor, inputs: list[InputRun], task: str, settings: MergeSettings
                      ) -> dict[str, Any]:
    """AdaMerging on the stacked merge `predictor` holds (in its staging run): fit it in place, log the curve;
    returns merge.json's additions."""
    run = predictor.run
    batches = predictor.labelled_batches(predictor.task(task), settings.fit_rows or [], labelled=False)
    multipliers, losses = fit_multipliers(predictor.model, [i.adapter.rank for i in inputs], batches,
                                          settings.fit_steps, FIT_LR, predictor.recipe.eval.max_new_tokens)
    with run.log_file.open("w", encoding="utf-8") as log:
        log.writelines(json.dumps({"fit_step": step, "entropy": loss}) + "\n" for step, loss in enumerate(losses))
    start = torch.tensor(settings.coefficients(len(inputs)))
    return {"fit_task": task, "fit_rows": len(settings.fit_rows or []), "fit_steps": settings.fit_steps,
            "entropy": {"first": losses[0], "last": losses[-1]},
            "coefficients_per_layer": [f"{layer}: {', '.join(f'{c:.4f}' for c in row)}" for layer, row in
                                       zip(lora_layers(predictor.model), (multipliers * start).tolist())]}
