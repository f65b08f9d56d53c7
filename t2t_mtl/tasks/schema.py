"""The task file schema: everything about one task, validated on load."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from t2t_mtl import safe_yaml
from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation.parsers import OutputParser, get_parser
from t2t_mtl.normalize import normalize_text
from t2t_mtl.textfiles import read_text
from t2t_mtl.validation import Strict, describe_validation_error


@dataclass(frozen=True)
class LabelCheck:
    """Checks targets against a label space; labels are compared normalised."""

    parser: OutputParser
    allowed: frozenset[str]

    def outside(self, target: str) -> set[str]:
        """The labels `target` uses (as the task's output parser reads them) that are outside the label space."""
        return self.parser.labels_of(self.parser.parse(target)) - self.allowed


def _refuse_repeats(values: list[str], rule: str) -> None:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{rule}, repeated: {repeated}")


class SourceSpec(Strict):
    """Where a task's rows come from.

    `format` is a file format that `datasets` reads (json, jsonl, csv, parquet), `hub` (then
    `path` is a Hugging Face dataset id), or the name of an importer for a benchmark's own
    layout (see `t2t_mtl.tasks.importers`), configured by `options`. Local paths are
    relative to the task file. Without `eval_path`, evaluation uses a
    fixed random `eval_size` share of the training source's rows (a fraction when below 1,
    else a count) and training the rest.

    `nulls` says what a null or missing value in a mapped column renders as: with `error`
    (the default) a template that reads it fails, naming the row and column (a template can
    give a fallback itself: ``{{ text | default('') }}``); with `empty` it is empty text, and
    a warning names the column. Never the text "None".
    """

    format: str = "jsonl"
    path: str
    options: dict[str, Any] = Field(default_factory=dict)
    split: str = "train"
    eval_path: str | None = None
    eval_split: str | None = None
    eval_size: float = Field(default=0.1, gt=0)
    nulls: Literal["error", "empty"] = "error"


class LabelSpec(Strict):
    """A label space: inline values or a JSON list in a file (relative to the task file)."""

    values: list[str] | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> LabelSpec:
        if (self.values is None) == (self.file is None):
            raise ValueError("give exactly one of 'values' or 'file'")
        return self


class FitSpec(Strict):
    """The parts of a template's prompt that may be shortened to fit `model.max_source_length`.

    Everything else is the instance (in particular the `input` part) and is never cut.
    When the rendered source is too long, items are dropped from the end of each `drop`
    field (a list, such as demonstrations), in the order listed, until the source fits;
    then each `cut` field (a text, such as a context or the definition) is shortened from
    the right at word boundaries, in the order listed: put the definition last. Only a
    source that is too long with all of them emptied is cut from the right; its row counts
    as one whose instance did not fit even alone.
    """

    drop: list[str] = Field(default_factory=list)
    cut: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fields_once(self) -> FitSpec:
        names = [*self.drop, *self.cut]
        if not names:
            raise ValueError("name at least one field under 'drop' (lists) or 'cut' (texts)")
        _refuse_repeats(names, "a field is either dropped or cut, once")
        return self


class MetricSpec(BaseModel):
    """A metric of a task: its name and keyword options (``{name: span_f1, counting: set}``).

    A plain name in the task file is a metric with its default options.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @property
    def options(self) -> dict[str, Any]:
        """The options given beside the name."""
        return dict(self.model_extra or {})

    def __str__(self) -> str:
        extra = ", ".join(f"{key}={value}" for key, value in self.options.items())
        return f"{self.name}({extra})" if extra else self.name


class TemplateSpec(Strict):
    """One instruction template; every field is Jinja over the task's columns and `labels`.

    `fit` declares which fields may be shortened when the source is too long (see `FitSpec`);
    without it a long source is cut from the right.
    """

    id: str
    instruction: str
    input: str = ""
    target: str
    fit: FitSpec | None = None


TASK_NAME = re.compile(r"[A-Za-z0-9_.\-/]+")


class TaskSpec(Strict):
    """A task file (`instructions/<domain>/<name>.yaml`).

    A composite task (`output: composite`) asks for the answers of its `subtasks` (task names,
    or task file paths relative to this file) in one target, in order, separated by " || "
    (MTI Bench's multi-part style); each answer is read and scored as its subtask's, so the
    task gives no `metrics` of its own.
    """

    name: str
    domain: str
    description: str = ""
    source: SourceSpec
    columns: dict[str, str] = Field(default_factory=dict)
    labels: LabelSpec | list[str] | None = None
    templates: list[TemplateSpec] = Field(min_length=1)
    eval_template: str | None = None
    output: str = "text"
    metrics: list[MetricSpec] = Field(default_factory=lambda: [MetricSpec(name="exact_match")], min_length=1)
    # A template field holding each row's list of reference outputs: evaluation scores a
    # prediction against all of them (best match) instead of only the rendered target.
    references: str | None = None
    held_out: bool = False
    subtasks: list[str] | None = None
    _file: Path | None = PrivateAttr(default=None)
    _parts: list[TaskSpec] | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        """Names become file names (predictions/<name>.jsonl): relative, plain characters, no empty or dot parts."""
        parts = name.split("/")
        if not TASK_NAME.fullmatch(name) or any(part in ("", ".", "..") for part in parts):
            raise ValueError("task names are words of letters, digits, '_', '.' and '-' joined by '/' "
                             "(such as ie/ner_conll03), without empty, '.' or '..' parts")
        return name

    @field_validator("templates")
    @classmethod
    def _unique_ids(cls, templates: list[TemplateSpec]) -> list[TemplateSpec]:
        _refuse_repeats([t.id for t in templates], "template ids must be unique")
        return templates

    @field_validator("metrics")
    @classmethod
    def _unique_metrics(cls, metrics: list[MetricSpec]) -> list[MetricSpec]:
        _refuse_repeats([m.name for m in metrics], "each metric may be listed once (its scores are keyed by name)")
        return metrics

    @model_validator(mode="after")
    def _eval_template_exists(self) -> TaskSpec:
        ids = [t.id for t in self.templates]
        if self.eval_template is not None and self.eval_template not in ids:
            raise ValueError(f"eval_template '{self.eval_template}' is not one of the template ids {ids}")
        return self

    @model_validator(mode="after")
    def _composite_shape(self) -> TaskSpec:
        if (self.output == "composite") != (self.subtasks is not None):
            raise ValueError("a composite task has both 'output: composite' and 'subtasks: [task, task, ...]'; "
                             "give both or neither")
        if self.subtasks is not None:
            if len(self.subtasks) < 2:
                raise ValueError("'subtasks' lists the tasks a composite task answers together: at least two")
            _refuse_repeats(self.subtasks, "each subtask is listed once")
            if "metrics" in self.model_fields_set:
                raise ValueError("a composite task is scored with its subtasks' metrics on their answers: "
                                 "remove 'metrics:'")
            if self.labels is not None or self.references is not None:
                raise ValueError("a composite task's label spaces and references are its subtasks': remove "
                                 "'labels:' and 'references:'")
        return self

    @property
    def parts(self) -> list[TaskSpec]:
        """The subtasks of a composite task, loaded (empty for other tasks)."""
        if self.subtasks is None:
            return []
        if self._parts is None:
            raise T2TError(f"{self.where}: its subtasks were not loaded; load the task with "
                           f"t2t_mtl.tasks.registry.load_task")
        return self._parts

    @property
    def file(self) -> Path | None:
        """The task file this spec was read from, when it came from one."""
        return self._file

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in this task file are resolved against."""
        return self.file.parent if self.file else Path.cwd()

    def template(self, template_id: str | None = None) -> TemplateSpec:
        """The template with this id; the evaluation template (default: the first) when None."""
        wanted = template_id or self.eval_template or self.templates[0].id
        for template in self.templates:
            if template.id == wanted:
                return template
        raise T2TError(
            f"{self.where}: no template '{wanted}'; templates are {[t.id for t in self.templates]}"
        )

    @property
    def where(self) -> str:
        """How to name this task in messages: its file when known."""
        return f"{self.file} (task {self.name})" if self.file else f"task {self.name}"

    def label_space(self) -> list[str] | None:
        """The label values, reading the label file when the task names one."""
        if self.labels is None:
            return None
        if isinstance(self.labels, list):
            return self.labels
        if self.labels.values is not None:
            return self.labels.values
        path = self.base_dir / str(self.labels.file)
        try:
            values = json.loads(read_text(path, f"{self.where}: label file"))
        except json.JSONDecodeError as error:
            raise T2TError(f"{self.where}: label file {path} is not valid JSON ({error})") from error
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise T2TError(f"{self.where}: label file {path} must hold a JSON list of strings")
        return values

    def label_check(self) -> LabelCheck | None:
        """The check of targets against the label space; None when the task has no label space."""
        space = self.label_space()
        if space is None:
            return None
        return LabelCheck(get_parser(self.output), frozenset(normalize_text(label) for label in space))


def load_task_file(path: str | Path) -> TaskSpec:
    """Read and validate one task file; errors name the file and the offending key."""
    path = Path(path)
    raw = safe_yaml.load(read_text(path, "task file"), f"task file {path}")
    if not isinstance(raw, dict):
        raise T2TError(f"task file {path} must be a YAML mapping of keys (name, domain, source, ...)")
    try:
        spec = TaskSpec.model_validate(raw)
    except ValidationError as error:
        raise T2TError(describe_validation_error(error, f"task file {path}", TaskSpec)) from error
    spec._file = path.resolve()
    return spec
