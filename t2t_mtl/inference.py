"""Batched generation, and the Predictor that answers seen and unseen tasks from a run."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from t2t_mtl.data import Seq2SeqCollator, TokenizerSettings, render_rows, tokenize
from t2t_mtl.errors import T2TError
from t2t_mtl.modeling.adapters import load_trained
from t2t_mtl.modeling.backbone import load_backbone
from t2t_mtl.recipe import EvalSpec
from t2t_mtl.run_dir import RunDir
from t2t_mtl.tasks.schema import TaskSpec, TemplateSpec, load_task_file

logger = logging.getLogger(__name__)


@torch.no_grad()
def generate(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[dict[str, Any]],
    spec: EvalSpec,
    progress: bool = True,
    synced_gpus: bool = False,
) -> list[str]:
    """Generate one text per example (`input_ids`, `task_id`), longest first, in input order.

    `synced_gpus` keeps ranks of a sharded model (ZeRO-3, FSDP) stepping together.
    """
    model.eval()
    device = next(model.parameters()).device
    collate = Seq2SeqCollator(pad_id=tokenizer.pad_token_id)
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    outputs: list[str] = [""] * len(examples)
    for start in tqdm(range(0, len(order), spec.batch_size), desc="generate", disable=not progress, leave=False):
        chunk = order[start : start + spec.batch_size]
        batch = collate([{"input_ids": examples[i]["input_ids"], "task_id": examples[i]["task_id"]} for i in chunk])
        generated = model.generate(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            num_beams=spec.num_beams,
            max_new_tokens=spec.max_new_tokens,
            synced_gpus=synced_gpus,
        )
        for i, text in zip(chunk, tokenizer.batch_decode(generated, skip_special_tokens=True)):
            outputs[i] = text.strip()
    return outputs


def adhoc_task(instruction: str) -> TaskSpec:
    """A one-template task for a single instruction typed on the command line."""
    return TaskSpec(
        name="adhoc", domain="adhoc", source={"path": "-"}, held_out=True,
        templates=[TemplateSpec(id="adhoc", instruction=instruction, input="{{ text }}", target="")],
    )


class Predictor:
    """A trained run, ready to answer any task file's rows."""

    def __init__(self, run: RunDir, model: nn.Module, tokenizer: PreTrainedTokenizerBase) -> None:
        self.run = run
        self.model = model
        self.tokenizer = tokenizer
        self.recipe = run.recipe()
        self.task_table = {row["name"]: row for row in run.tasks()}

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str | None = None) -> Predictor:
        """Load the run's backbone and trained weights (final, else latest checkpoint)."""
        run = RunDir(run_dir)
        recipe = run.recipe()
        weights = run.trained_weights()
        backbone = load_backbone(recipe.model.name_or_path, recipe.model.dtype)
        model = load_trained(backbone, recipe.adapter, weights)
        tokenizer = AutoTokenizer.from_pretrained(weights) if (weights / "tokenizer_config.json").is_file() else backbone.tokenizer
        model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        return cls(run, model, tokenizer)

    def _task(self, task: TaskSpec | str | Path) -> TaskSpec:
        if isinstance(task, TaskSpec):
            return task
        if str(task).endswith((".yaml", ".yml")):
            return load_task_file(task)
        known = self.task_table.get(str(task))
        if known is None:
            raise T2TError(f"task '{task}' is not in run {self.run.root}; pass its task file (.yaml) instead")
        return load_task_file(known["file"])

    def predict(
        self, task: TaskSpec | str | Path, rows: list[dict[str, Any]], template: str | None = None, progress: bool = True
    ) -> list[str]:
        """One prediction per row, rendered with the task's evaluation template (or `template`)."""
        spec = self._task(task)
        if not rows:
            return []
        changed = self.run.changed_templates(spec)
        if changed:
            logger.warning("%s: templates %s changed since run %s was trained", spec.where, changed, self.run.root)
        known = self.task_table.get(spec.name)
        task_id = known["id"] if known else -1
        rows_ds = datasets.Dataset.from_list(rows)
        rendered = render_rows(spec, task_id, rows_ds, seed=None, template_id=template, with_target=False)
        settings = TokenizerSettings(self.tokenizer, self.recipe.model.max_source_length, self.recipe.model.max_target_length)
        encoded = tokenize(rendered, settings)
        truncated = sum(encoded["source_truncated"])
        if truncated:
            logger.warning("%s: %d of %d inputs were longer than max_source_length=%d and were truncated",
                           spec.name, truncated, len(rows), settings.max_source_length)
        return generate(self.model, self.tokenizer, list(encoded), self.recipe.eval, progress)
