"""What gets trained: PEFT LoRA on the backbone's block linears, or the full model."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn
from transformers import AutoModelForSeq2SeqLM, PreTrainedModel

from t2t_mtl.errors import T2TError
from t2t_mtl.modeling.backbone import Backbone
from t2t_mtl.modeling.routed.config import RoutedLoraConfig
from t2t_mtl.modeling.routed.model import build_routed_model, load_routed_model
from t2t_mtl.recipe import AdapterSpec

BLOCK = re.compile(r"\.(layer|layers|block)\.\d+\.")
# adapter_config.json keys that fix the shape and placement of the saved weights.
SHAPE_KEYS = ("r", "skill_rank", "lora_alpha", "target_modules", "n_skills", "n_splits", "n_exclusive_skills")
REWRITE = "Restore the folder from a backup, or write it again by resuming its run (t2t-mtl train RECIPE --resume)."


def target_pattern(model: nn.Module, spec: AdapterSpec, new_modules: list[str]) -> str:
    """A regex over module names: the chosen linears inside repeated blocks, minus new modules.

    `all-linear` takes every linear inside the encoder/decoder blocks; a list takes linears
    whose last name part is listed (e.g. [q, v]). Heads, poolers and the freshly
    initialised modules (trained in full instead) are left out.
    """
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and BLOCK.search(n)]
    linears = [n for n in linears if not any(new in n for new in new_modules)]
    leaves = sorted({n.rsplit(".", 1)[-1] for n in linears})
    if spec.targets != "all-linear":
        unknown = sorted(set(spec.targets) - set(leaves))
        if unknown:
            raise T2TError(f"adapter.targets {unknown} name no linear layer of this model; its linears are {leaves}")
        leaves = list(spec.targets)
    if not linears:
        raise T2TError("adapter: the model has no linear layers inside numbered blocks to adapt")
    excluded = "|".join(re.escape(n) for n in new_modules)
    guard = f"(?!.*(?:{excluded}))" if excluded else ""
    return rf"^{guard}.*\.(?:layer|layers|block)\.\d+\..*\b(?:{'|'.join(map(re.escape, leaves))})$"


def adapter_config(backbone: Backbone, spec: AdapterSpec, n_tasks: int) -> LoraConfig:
    """The PEFT config of a LoRA or routed adapter on this backbone."""
    common = {
        "lora_alpha": spec.alpha,
        "lora_dropout": spec.dropout,
        "target_modules": target_pattern(backbone.model, spec, backbone.new_modules),
        "modules_to_save": backbone.new_modules or None,
        "task_type": "SEQ_2_SEQ_LM",
    }
    if not spec.routed:
        return LoraConfig(r=spec.rank, **common)
    return RoutedLoraConfig(
        n_tasks=n_tasks, n_skills=spec.n_skills, skill_rank=spec.rank, n_splits=spec.n_splits,
        n_exclusive_skills=spec.n_exclusive_skills, routing_temperature=spec.routing_temperature,
        sample_routing=spec.sample_routing, **common,
    )


def apply_adapter(backbone: Backbone, spec: AdapterSpec, n_tasks: int = 1) -> nn.Module:
    """Wrap the backbone for training; new modules are always trained in full."""
    model = backbone.model
    if spec.type == "full":
        model.requires_grad_(True)
        return model
    config = adapter_config(backbone, spec, n_tasks)
    return build_routed_model(model, config) if spec.routed else get_peft_model(model, config)


def save_trained(model: nn.Module, folder: Path, state_dict: dict | None = None) -> None:
    """Write what was trained: a PEFT adapter (safetensors) or the full model.

    `state_dict` is the gathered full state when the live weights are sharded (ZeRO-3, FSDP).
    """
    model.save_pretrained(folder, safe_serialization=True, state_dict=state_dict)


@contextmanager
def _loading(folder: Path) -> Iterator[None]:
    """Turn unreadable or mis-shaped saved weights into a T2TError naming the folder and the fix."""
    try:
        yield
    except (OSError, SafetensorError, ValueError) as error:
        files = ", ".join(p.name for p in sorted(folder.glob("*.safetensors"))) or "no *.safetensors file"
        raise T2TError(f"{folder}: the saved weights ({files}) cannot be read ({error}); a file is missing, "
                       f"truncated or not safetensors. {REWRITE}") from error
    except RuntimeError as error:
        if "size mismatch" not in str(error):
            raise
        mismatch = next(line.strip() for line in str(error).splitlines() if "size mismatch" in line)
        raise T2TError(f"{folder} holds weights of other shapes than this model ({mismatch}): they were trained "
                       f"with another adapter rank or model, in another run. {REWRITE}") from error


def _saved_config(folder: Path) -> dict[str, Any]:
    """A saved adapter's adapter_config.json; a missing or corrupt one is a T2TError naming it."""
    path = folder / "adapter_config.json"
    if not path.is_file():
        raise T2TError(f"{folder} holds no PEFT adapter (adapter_config.json missing). {REWRITE}")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise T2TError(f"{path} is corrupt ({error}). {REWRITE}") from error
    if not isinstance(saved, dict):
        raise T2TError(f"{path} is not a PEFT adapter config (a JSON mapping). {REWRITE}")
    return saved


def _check_shape(folder: Path, saved: dict[str, Any], backbone: Backbone, spec: AdapterSpec) -> None:
    """Refuse a saved adapter whose rank, targets or skills differ from what the recipe's adapter builds."""
    expected = adapter_config(backbone, spec, n_tasks=saved.get("n_tasks", 1)).to_dict()
    differ = [f"{key}: {saved[key]!r} saved, {expected[key]!r} from the recipe" for key in SHAPE_KEYS
              if key in saved and key in expected and saved[key] != expected[key]]
    if differ:
        raise T2TError(f"{folder / 'adapter_config.json'} does not match the run's recipe (adapter.type: {spec.type}, "
                       f"rank: {spec.rank}, targets: {spec.targets}): {'; '.join(differ)}. These weights come from "
                       f"another run or recipe: {REWRITE}")


def load_trained(backbone: Backbone, spec: AdapterSpec, folder: Path) -> PreTrainedModel | PeftModel:
    """Rebuild the trained model from the backbone and a saved folder, for inference."""
    if spec.type == "full":
        with _loading(folder):
            return AutoModelForSeq2SeqLM.from_pretrained(folder)
    saved = _saved_config(folder)
    saved_routed = "n_skills" in saved
    if saved_routed != spec.routed:
        kind = "a routed" if saved_routed else "a plain LoRA"
        raise T2TError(f"{folder} holds {kind} adapter but the recipe says adapter.type: {spec.type}")
    _check_shape(folder, saved, backbone, spec)
    with _loading(folder):
        if spec.routed:
            return load_routed_model(backbone.model, folder)
        return PeftModel.from_pretrained(backbone.model, folder)


def load_weights_into(model: nn.Module, folder: Path) -> None:
    """Load saved trained weights into a live model of the same shape (for resuming)."""
    with _loading(folder):
        if isinstance(model, PeftModel):
            weights = load_file(folder / "adapter_model.safetensors", device=str(model.device))
            unexpected = getattr(set_peft_model_state_dict(model, weights), "unexpected_keys", [])
        else:
            weights = load_file(folder / "model.safetensors", device=str(next(model.parameters()).device))
            unexpected = model.load_state_dict(weights, strict=False).unexpected_keys
    if unexpected:
        raise T2TError(f"{folder} does not belong to this model: unexpected weights {unexpected[:3]}...")
