"""Export a run for serving: merged plain weights, or a plain PEFT LoRA adapter for one routing."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import ModulesToSaveWrapper
from transformers import PreTrainedTokenizerBase

from t2t_mtl.errors import T2TError, closest
from t2t_mtl.modeling.backbone import load_backbone
from t2t_mtl.modeling.routed.model import routed_layers, task_weights
from t2t_mtl.modeling.routed.zero_shot import TaskRouting
from t2t_mtl.recipe import Recipe
from t2t_mtl.run_dir import RunDir


def _routing_for_export(model: PeftModel, run: RunDir, routing_plan: TaskRouting, task: str | None,
                        routing: str | None, instruction: str | None) -> tuple[torch.Tensor, int | None]:
    """(weights (layers, splits, skills), task id for exclusive skills or None) to fold in."""
    if task is not None:
        known = {r["name"]: r for r in run.tasks() if not r["held_out"]}
        if task not in known:
            raise T2TError(f"export --task: '{task}' is not a trained task of this run.{closest(task, known)}")
        return task_weights(model)[known[task]["id"]], known[task]["id"]
    if routing is None:
        raise T2TError("exporting a routed run needs --task NAME or --routing MODE (average, similar, task=NAME)")
    if routing == "similar" and not instruction:
        raise T2TError("export --routing similar needs --instruction TEXT (the new task's instruction)")
    router = routing_plan.router("export", instruction or "", routing)
    if router.task is not None:
        return task_weights(model)[router.task], router.task
    return router.weights, None


def _as_lora(recipe: Recipe, model: PeftModel) -> PeftModel:
    """A plain PEFT LoRA model (rank = skill rank) holding the routed model's mixed skills."""
    routed_config = model.peft_config["default"]
    config = LoraConfig(r=routed_config.skill_rank, lora_alpha=routed_config.lora_alpha, lora_dropout=0.0,
                        target_modules=routed_config.target_modules, modules_to_save=routed_config.modules_to_save,
                        task_type="SEQ_2_SEQ_LM")
    plain = get_peft_model(load_backbone(recipe.model.name_or_path, recipe.model.dtype).model, config)
    sources = dict(model.named_modules())
    routed = {id(layer) for layer in routed_layers(model)}
    with torch.no_grad():
        for name, target in plain.named_modules():
            source = sources.get(name)
            if isinstance(target, ModulesToSaveWrapper):
                target.modules_to_save["default"].load_state_dict(source.modules_to_save["default"].state_dict())
            elif hasattr(target, "lora_A") and id(source) in routed:
                weights, task = source.routing_context.merge_routing(source.layer_index)
                b_mix, a_mix = source.mixed_factors("default", weights, task)
                target.lora_A["default"].weight.copy_(a_mix)
                target.lora_B["default"].weight.copy_(b_mix)
    return plain


def check_out_folder(out: Path) -> None:
    """Refuse to export into a run folder, or into a run's final/ or checkpoints/ (its files would be mixed in)."""
    if RunDir(out).exists():
        raise T2TError(f"export: {out} is a run folder (it holds recipe.yaml); writing there would mix the export "
                       f"into that run. Choose a new folder, e.g. {out}/export.")
    for folder in [out.resolve(), *out.resolve().parents]:
        if folder.name in ("final", "checkpoints") and RunDir(folder.parent).exists():
            raise T2TError(f"export: {out} is inside {folder} of the run in {folder.parent}; writing there would "
                           f"change that run's weights. Choose a folder outside it, e.g. {folder.parent}/export.")


def export_model(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, run: RunDir,
                 routing_plan: TaskRouting | None, out: Path, merge: bool, task: str | None = None,
                 routing: str | None = None, instruction: str | None = None) -> Path:
    """Write `out`: merged plain weights (`merge`) or a PEFT adapter, for one task's routing.

    `model`, `tokenizer` and `routing_plan` are the run's, loaded (`Predictor.from_run`);
    `routing_plan` is None for a run without routing. A merged export loads with
    `AutoModelForSeq2SeqLM.from_pretrained(out)`; an adapter export with
    `PeftModel.from_pretrained(base, out)` (routed runs become plain LoRA).
    """
    check_out_folder(out)
    recipe = run.recipe()
    if routing_plan is not None:
        weights, task_id = _routing_for_export(model, run, routing_plan, task, routing, instruction)
        model.routing.set_merge_routing(weights, task_id)
        if not merge:
            model = _as_lora(recipe, model)
    elif task is not None or routing is not None:
        raise T2TError(f"--task/--routing choose a routing; this run trained adapter.type: "
                       f"{recipe.adapter.type}, which has none")
    if merge and isinstance(model, PeftModel):
        model = model.merge_and_unload()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
