"""Export a run for serving: merged plain weights, or a PEFT adapter (plain LoRA for routed runs), of one routing."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from t2t_mtl.adapters.base import RoutingPlan
from t2t_mtl.errors import T2TError
from t2t_mtl.run_dir import RunDir


def check_out_folder(out: Path) -> None:
    """Refuse to export into a run folder, or into a run's final/ or checkpoints/ (its files would be mixed in)."""
    if RunDir(out).exists():
        raise T2TError(f"export: {out} is a run folder (it holds recipe.yaml); writing there would mix the export "
                       f"into that run. Choose a new folder, e.g. {out}/export.")
    for folder in [out.resolve(), *out.resolve().parents]:
        if folder.name in ("final", "checkpoints") and RunDir(folder.parent).exists():
            raise T2TError(f"export: {out} is inside {folder} of the run in {folder.parent}; writing there would "
                           f"change that run's weights. Choose a folder outside it, e.g. {folder.parent}/export.")


def export_model(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, run: RunDir, routing_plan: RoutingPlan,
                 out: Path, merge: bool, task: str | None = None, routing: str | None = None,
                 instruction: str | None = None) -> Path:
    """Write `out`: merged plain weights (`merge`) or a PEFT adapter, for one task's routing.

    `model`, `tokenizer` and `routing_plan` are the run's, loaded (`Predictor.from_run`); the
    loaded model is consumed. A merged export loads with `AutoModelForSeq2SeqLM.from_pretrained(out)`,
    an adapter export with `PeftModel.from_pretrained(base, out)`.
    """
    check_out_folder(out)
    chosen = routing_plan.single(task, routing, instruction)
    exported = run.recipe().method.export(model, chosen, merge)
    exported.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
