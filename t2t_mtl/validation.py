"""The strict pydantic base, and validation errors turned into messages that name the place and the fix."""

from __future__ import annotations

from typing import Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from t2t_mtl.errors import closest


class Strict(BaseModel):
    """Base for schema objects (recipe sections, task files): unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


# What Hugging Face TrainingArguments, PEFT's LoraConfig and seq2seq scripts call our keys.
KEY_ALIASES = {
    "learning_rate": "lr", "lr_scheduler_type": "scheduler", "warmup_steps": "warmup",
    "per_device_train_batch_size": "batch_size", "train_batch_size": "batch_size",
    "per_device_eval_batch_size": "batch_size", "eval_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum", "num_train_epochs": "epochs", "max_grad_norm": "grad_clip",
    "logging_steps": "log_every", "eval_steps": "eval_every", "save_steps": "save_every",
    "save_total_limit": "keep_last",
    "r": "rank", "lora_r": "rank", "lora_alpha": "alpha", "lora_dropout": "dropout", "target_modules": "targets",
    "model_name_or_path": "name_or_path", "max_input_length": "max_source_length",
    "max_seq_length": "max_source_length", "max_output_length": "max_target_length",
    "generation_num_beams": "num_beams", "max_eval_samples": "max_examples", "output": "output_dir",
}


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Follow a location path through nested models; None where it leaves models."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _first_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _first_model(annotation: Any) -> Any:
    """The first pydantic model inside an annotation such as `list[X] | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None:
        for arg in get_args(annotation):
            found = _first_model(arg)
            if found is not None:
                return found
    return None


def describe_validation_error(error: ValidationError, where: str, model: type[BaseModel]) -> str:
    """One line per problem: `where: key.path: message`, suggesting the closest valid key."""
    lines = []
    for item in error.errors():
        loc = tuple(part for part in item["loc"] if not str(part).startswith("function-after"))
        dotted = ".".join(str(part) for part in loc) or "(top level)"
        if item["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            hint = closest(str(loc[-1]), parent.model_fields, KEY_ALIASES) if parent else ""
            valid = f" Valid keys here: {', '.join(sorted(parent.model_fields))}." if parent else ""
            lines.append(f"unknown key '{dotted}'.{hint}{valid}")
        else:
            got = item.get("input")
            shown = f" (got {got!r})" if not isinstance(got, dict | list) else ""
            lines.append(f"{dotted}: {item['msg']}{shown}")
    return f"{where}:\n  " + "\n  ".join(lines)
