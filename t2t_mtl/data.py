"""Rendering and tokenization with `datasets`, label-space checks, and the batch collator."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from t2t_mtl import __version__
from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation.metrics import check_metrics
from t2t_mtl.evaluation.parsers import split_parts
from t2t_mtl.recipe import EvalSpec, Recipe
from t2t_mtl.tasks.registry import SelectedTask, check_eval_tasks
from t2t_mtl.tasks.schema import TaskSpec
from t2t_mtl.tasks.sources import load_rows, row_fields
from t2t_mtl.templates import compile_templates, template_hash

logger = logging.getLogger(__name__)


@dataclass
class TokenizerSettings:
    """Everything about tokenization that changes the cached result."""

    tokenizer: PreTrainedTokenizerBase
    max_source_length: int
    max_target_length: int

    @property
    def eos_id(self) -> int:
        """The id that ends a target: EOS, or SEP for BERT-style tokenizers."""
        eos = self.tokenizer.eos_token_id
        return eos if eos is not None else self.tokenizer.sep_token_id

    def fingerprint(self) -> str:
        """Identifies the tokenizer and lengths inside cache keys."""
        tok = self.tokenizer
        return f"{type(tok).__name__}:{tok.name_or_path}:{len(tok)}:{self.max_source_length}:{self.max_target_length}"

    def fits_source(self, source: str) -> bool:
        """Whether a source, tokenized as `tokenize` does, keeps within `max_source_length` tokens."""
        return len(self.tokenizer(source, truncation=False)["input_ids"]) <= self.max_source_length


@dataclass(frozen=True)
class Truncation:
    """How a task's tokenized rows met the length limits.

    `shortened` sources dropped demonstrations or cut the parts their template declares
    under `fit:` and so kept the instance whole; `instance_cut` sources were cut from the
    right, losing the end of the instance (with `fit:`, only those whose instance did not
    fit even alone); `target_cut` targets were cut.
    """

    rows: int
    shortened: int
    instance_cut: int
    target_cut: int


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()[:32]


def reference_outputs(task: TaskSpec, fields: dict[str, Any]) -> list[str]:
    """The row's reference outputs, from the field the task names in `references:`."""
    value = fields.get(str(task.references))
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise T2TError(f"{task.where}: references: field '{task.references}' must hold a non-empty list of "
                       f"strings in every row, got {value!r}. Fields: {sorted(fields)}.")
    return [v.strip() for v in value]


def task_instruction(task: TaskSpec, rows: datasets.Dataset | list[dict[str, Any]], template_id: str | None = None
                     ) -> str:
    """The task's instruction as routing reads it: the evaluation template's instruction on the first row.

    Rendering matters where the instruction comes from the data (a Super-NI definition, a
    label list); without rows, the template text stands in.
    """
    spec = task.template(template_id)
    if len(rows) == 0:
        return spec.instruction
    fields = row_fields(task, rows[0], task.label_space(), required=False)
    return compile_templates(task)[spec.id].instruction(fields)


def render_rows(
    task: TaskSpec,
    task_id: int,
    rows: datasets.Dataset,
    seed: int | None,
    template_id: str | None = None,
    with_target: bool = True,
    settings: TokenizerSettings | None = None,
) -> datasets.Dataset:
    """Render every row to `source`/`target` text, with the `references` evaluation scores against.

    With a seed (training), each row samples one of the task's templates; without
    (evaluation), every row uses `template_id` or the task's evaluation template.
    Without target (unlabelled rows), only the source is rendered. `instance` holds the row's
    text fields, which decoding under `constrain: substrings` copies spans from. With `settings`,
    templates that declare `fit:` shorten their declared parts until the source fits in
    `max_source_length` tokens; `shortened` names the parts shortened ("a,b"; "" for none).
    """
    templates = compile_templates(task)
    ids = list(templates)
    if seed is None:
        chosen = np.full(len(rows), ids.index(task.template(template_id).id))
    else:
        chosen = np.random.default_rng([seed, task_id]).integers(len(ids), size=len(rows))
    labels = task.label_space()
    fitted = settings if settings is not None and any(t.fit for t in task.templates) else None
    fits = fitted.fits_source if fitted else None

    def render(row: dict[str, Any], index: int) -> dict[str, Any]:
        fields = row_fields(task, row, labels, required=with_target, number=index)
        example = templates[ids[chosen[index]]].render(fields, with_target, fits)
        references = reference_outputs(task, fields) if task.references and with_target else [example.target]
        instance = "\n".join(value for value in fields.values() if isinstance(value, str))
        return {"source": example.source, "target": example.target, "template": example.template_id,
                "task_id": task_id, "row": index, "references": references, "shortened": ",".join(example.shortened),
                "instance": instance}

    key = _digest(__version__, "instance", task.name, str(task_id), str(seed), str(template_id),
                  *(template_hash(t) for t in task.templates), str(labels), str(task.columns), task.source.nulls,
                  str(with_target),
                  str(task.references), fitted.fingerprint() if fitted else "unfitted",
                  rows._fingerprint)
    return rows.map(render, with_indices=True, remove_columns=rows.column_names, new_fingerprint=key,
                    desc=f"render {task.name}")


def _clip(ids: list[int], limit: int) -> list[int]:
    """Truncate to `limit` tokens, keeping the final special token (EOS/SEP)."""
    return ids if len(ids) <= limit else ids[: limit - 1] + ids[-1:]


def tokenize(rendered: datasets.Dataset, settings: TokenizerSettings) -> datasets.Dataset:
    """Add `input_ids`, `labels` (target + EOS), their lengths and truncation flags; cached by content.

    Too long sources and targets are cut from the right. `source_truncated` thus means the
    instance was cut: for sources rendered with `fit:`, only those whose instance did not fit even alone.
    """
    tok = settings.tokenizer

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        sources = tok(batch["source"], truncation=False)["input_ids"]
        targets = [ids + [settings.eos_id] for ids in tok(batch["target"], add_special_tokens=False)["input_ids"]]
        out: dict[str, list[Any]] = {"input_ids": [], "labels": [], "source_truncated": [], "target_truncated": []}
        for src, tgt in zip(sources, targets):
            out["source_truncated"].append(len(src) > settings.max_source_length)
            out["target_truncated"].append(len(tgt) > settings.max_target_length)
            out["input_ids"].append(_clip(src, settings.max_source_length))
            out["labels"].append(_clip(tgt, settings.max_target_length))
        out["source_length"] = [len(ids) for ids in out["input_ids"]]
        out["target_length"] = [len(ids) for ids in out["labels"]]
        return out

    key = _digest(__version__, settings.fingerprint(), rendered._fingerprint)
    return rendered.map(encode, batched=True, new_fingerprint=key, desc="tokenize")


def count_truncation(task: TaskSpec, encoded: datasets.Dataset, settings: TokenizerSettings) -> Truncation:
    """Count the task's shortened and cut rows (rendered with `settings`); warn, naming the task, when any was cut."""
    fitted = {t.id for t in task.templates if t.fit}
    cut = [template for template, flag in zip(encoded["template"], encoded["source_truncated"]) if flag]
    alone = sum(template in fitted for template in cut)
    whole = [names for names, flag in zip(encoded["shortened"], encoded["source_truncated"]) if names and not flag]
    counts = Truncation(len(encoded), len(whole), len(cut), sum(encoded["target_truncated"]))
    limit = f"model.max_source_length={settings.max_source_length}"
    if whole:
        parts = Counter(name for names in whole for name in names.split(","))
        shown = ", ".join(f"{name} ×{n}" for name, n in parts.most_common())
        logger.info("%s: %d of %d sources were shortened to fit %s (%s); their instances are whole.",
                    task.name, counts.shortened, counts.rows, limit, shown)
    if alone:
        logger.warning("%s: in %d of %d rows the instance did not fit in %s tokens even alone (with every part its "
                       "template declares under 'fit:' removed), so the source was cut from the right; these are "
                       "the only rows cut. Raise model.max_source_length to keep them whole.",
                       task.where, alone, counts.rows, limit)
    if len(cut) > alone:
        logger.warning("%s: %d of %d sources were longer than %s tokens and were cut from the right, losing the end "
                       "of the instance. Raise model.max_source_length, or declare the template's shortenable parts "
                       "under 'fit:' so that only they are cut.", task.where, len(cut) - alone, counts.rows, limit)
    return counts


def encode_task_rows(task: TaskSpec, task_id: int, rows: datasets.Dataset, settings: TokenizerSettings,
                     seed: int | None, template_id: str | None = None, strict_labels: bool | None = None
                     ) -> tuple[datasets.Dataset, Truncation]:
    """Render (fitted to `settings`), check labels when `strict_labels` is given, tokenize and count truncation."""
    rendered = render_rows(task, task_id, rows, seed=seed, template_id=template_id, settings=settings)
    if strict_labels is not None:
        check_labels(task, rendered, strict_labels)
    encoded = tokenize(rendered, settings)
    return encoded, count_truncation(task, encoded, settings)


def check_labels(task: TaskSpec, rendered: datasets.Dataset, strict: bool) -> Counter[str]:
    """Count target labels outside the task's label space (a composite's: each answer's outside its subtask's);
    fail when strict, else warn."""
    parts = task.parts or [task]
    checks = [part.label_check() for part in parts]
    if not any(checks):
        return Counter()
    outside: Counter[str] = Counter()
    for target in rendered["target"]:
        for check, answer in zip(checks, split_parts(target, len(parts))):
            outside.update(check.outside(answer) if check is not None else ())
    if outside:
        shown = ", ".join(f"'{label}' ×{count}" for label, count in outside.most_common(10))
        message = (f"{task.where}: training targets use labels outside the label space: {shown}. "
                   f"Add them to 'labels:' or fix the data.")
        if strict:
            raise T2TError(message + " (train.strict_labels is true)")
        logger.warning(message)
    return outside


@dataclass
class Seq2SeqCollator:
    """Pads a list of tokenized examples into tensors; labels pad with -100.

    With `decoder_inputs` (the model's `prepare_decoder_input_ids_from_labels`), labelled
    batches also get their `decoder_input_ids`, as training and routing fits feed them.
    """

    pad_id: int
    decoder_inputs: Callable[..., torch.Tensor] | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = {"input_ids": _pad([e["input_ids"] for e in examples], self.pad_id)}
        batch["attention_mask"] = _pad([[1] * len(e["input_ids"]) for e in examples], 0)
        if "labels" in examples[0]:
            batch["labels"] = _pad([e["labels"] for e in examples], -100)
            if self.decoder_inputs is not None:
                batch["decoder_input_ids"] = self.decoder_inputs(labels=batch["labels"])
        batch["task_ids"] = torch.tensor([e["task_id"] for e in examples], dtype=torch.long)
        return batch


def _pad(sequences: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in sequences)
    out = torch.full((len(sequences), width), value, dtype=torch.long)
    for i, seq in enumerate(sequences):
        out[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


@dataclass
class EvalSet:
    """A task's tokenized evaluation examples (with `source`, `target`, `template`, `row`)."""

    task: TaskSpec
    examples: datasets.Dataset


@dataclass
class TaskData:
    """Everything a run trains and evaluates on; a task's id is its index in `tasks`."""

    selected: list[SelectedTask]
    train_sets: dict[int, datasets.Dataset]
    eval_sets: list[EvalSet]
    rates: dict[int, float]
    truncated: dict[str, Truncation]  # by task name, training rows
    instructions: list[str]
    fingerprints: dict[str, dict[str, Any]] = field(default_factory=dict)  # by task name, see `data_fingerprint`

    @property
    def tasks(self) -> list[TaskSpec]:
        """Every task of the run, in id order."""
        return [s.spec for s in self.selected]


def data_fingerprint(item: SelectedTask, rows: datasets.Dataset) -> dict[str, Any]:
    """A task's loaded rows by content (not by path or time): task file, data source, row count, sha256."""
    task, entry = item.spec, item.entry
    held_out_source = (entry.eval_data or task.source.eval_path) if task.held_out else None
    source = held_out_source or entry.data or task.source.path
    if task.source.format != "hub" and not Path(source).is_absolute():
        source = str(task.base_dir / source)
    digest = hashlib.sha256(str(rows.features).encode("utf-8"))
    for batch in rows.with_format("arrow").iter(batch_size=1024):
        digest.update(json.dumps(batch.to_pylist(), sort_keys=True, default=str).encode("utf-8"))
    return {"file": str(task.file), "source": source, "rows": len(rows), "sha256": digest.hexdigest()}


def check_task_metrics(selected: list[SelectedTask], spec: EvalSpec) -> None:
    """Every selected task's metric names and options (a composite task's: its subtasks') are valid (checked before
    any rendering)."""
    for item in selected:
        for scored in item.spec.parts or [item.spec]:
            check_metrics(scored.metrics, scored.where, spec.metric_preset)


def build_eval_sets(selected: list[SelectedTask], settings: TokenizerSettings, spec: EvalSpec) -> list[EvalSet]:
    """Render and tokenize the evaluation rows of the selected tasks that `spec.tasks` keeps."""
    check_eval_tasks(spec.tasks, [item.spec.name for item in selected])
    check_task_metrics(selected, spec)
    eval_sets = []
    for task_id, item in enumerate(selected):
        task, entry = item.spec, item.entry
        if spec.tasks and not any(fnmatch.fnmatchcase(task.name, p) for p in spec.tasks):
            continue
        rows = load_rows(task, "eval", entry.data, entry.eval_data)
        encoded, _ = encode_task_rows(task, task_id, rows, settings, seed=None, template_id=spec.template)
        eval_sets.append(EvalSet(task, encoded))
    return eval_sets


def build_task_data(selected: list[SelectedTask], settings: TokenizerSettings, recipe: Recipe) -> TaskData:
    """Load, render and tokenize every selected task's training and evaluation rows."""
    check_task_metrics(selected, recipe.eval)
    train_sets, rates, truncated, instructions, fingerprints = {}, {}, {}, [], {}
    for task_id, item in enumerate(selected):
        task, entry = item.spec, item.entry
        rows = load_rows(task, "eval" if task.held_out else "train", entry.data, entry.eval_data)
        fingerprints[task.name] = data_fingerprint(item, rows)
        instructions.append(task_instruction(task, rows))
        if task.held_out:
            continue
        if entry.max_examples is not None:
            rows = rows.select(range(min(entry.max_examples, len(rows))))
        train_sets[task_id], truncated[task.name] = encode_task_rows(
            task, task_id, rows, settings, seed=recipe.train.seed, strict_labels=recipe.train.strict_labels)
        rates[task_id] = entry.rate
    if not train_sets:
        raise T2TError("the recipe selects only held-out tasks: nothing to train on. Add a task with held_out: false.")
    eval_sets = build_eval_sets(selected, settings, recipe.eval)
    return TaskData(selected, train_sets, eval_sets, rates, truncated, instructions, fingerprints)
