"""The task file schema: everything about one task, validated on load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from t2t_mtl.errors import T2TError
from t2t_mtl.validation import describe_validation_error


class Strict(BaseModel):
    """Base for schema objects: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class SourceSpec(Strict):
    """Where a task's rows come from.

    `format` is a file format that `datasets` reads (json, jsonl, csv, parquet), `hub` (then
    `path` is a Hugging Face dataset id), or the name of an importer for a benchmark's own
    layout (see `t2t_mtl.tasks.importers`), configured by `options`. Local paths are
    relative to the task file. Without `eval_path`, evaluation uses a
    fixed random `eval_size` share of the training source's rows (a fraction when below 1,
    else a count) and training the rest.
    """

    format: str = "jsonl"
    path: str
    options: dict[str, Any] = Field(default_factory=dict)
    split: str = "train"
    eval_path: str | None = None
    eval_split: str | None = None
    eval_size: float = Field(default=0.1, gt=0)


class LabelSpec(Strict):
    """A label space: inline values or a JSON list in a file (relative to the task file)."""

    values: list[str] | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> LabelSpec:
        if (self.values is None) == (self.file is None):
            raise ValueError("give exactly one of 'values' or 'file'")
        return self


class TemplateSpec(Strict):
    """One instruction template; every field is Jinja over the task's columns and `labels`."""

    id: str
    instruction: str
    input: str = ""
    target: str


class TaskSpec(Strict):
    """A task file (`instructions/<domain>/<name>.yaml`)."""

    name: str
    domain: str
    description: str = ""
    source: SourceSpec
    columns: dict[str, str] = Field(default_factory=dict)
    labels: LabelSpec | list[str] | None = None
    templates: list[TemplateSpec] = Field(min_length=1)
    eval_template: str | None = None
    output: str = "text"
    metrics: list[str] = Field(default_factory=lambda: ["exact_match"])
    # A template field holding each row's list of reference outputs: evaluation scores a
    # prediction against all of them (best match) instead of only the rendered target.
    references: str | None = None
    held_out: bool = False
    _file: Path | None = PrivateAttr(default=None)

    @field_validator("templates")
    @classmethod
    def _unique_ids(cls, templates: list[TemplateSpec]) -> list[TemplateSpec]:
        ids = [t.id for t in templates]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"template ids must be unique, repeated: {duplicates}")
        return templates

    @model_validator(mode="after")
    def _eval_template_exists(self) -> TaskSpec:
        ids = [t.id for t in self.templates]
        if self.eval_template is not None and self.eval_template not in ids:
            raise ValueError(f"eval_template '{self.eval_template}' is not one of the template ids {ids}")
        return self

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
            values = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise T2TError(f"{self.where}: label file {path} does not exist") from error
        except json.JSONDecodeError as error:
            raise T2TError(f"{self.where}: label file {path} is not valid JSON ({error})") from error
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise T2TError(f"{self.where}: label file {path} must hold a JSON list of strings")
        return values


def load_task_file(path: str | Path) -> TaskSpec:
    """Read and validate one task file; errors name the file and the offending key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise T2TError(f"task file {path} does not exist") from error
    except yaml.YAMLError as error:
        raise T2TError(f"task file {path} is not valid YAML: {error}") from error
    if not isinstance(raw, dict):
        raise T2TError(f"task file {path} must be a YAML mapping of keys (name, domain, source, ...)")
    try:
        spec = TaskSpec.model_validate(raw)
    except ValidationError as error:
        raise T2TError(describe_validation_error(error, f"task file {path}", TaskSpec)) from error
    spec._file = path.resolve()
    return spec
