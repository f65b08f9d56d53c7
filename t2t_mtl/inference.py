"""Batched generation, and the Predictor that answers seen and unseen tasks from a run."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import datasets
import torch
from safetensors.torch import load_file
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from t2t_mtl.data import (
    Seq2SeqCollator,
    TokenizerSettings,
    count_truncation,
    render_rows,
    task_instruction,
    tokenize,
)
from t2t_mtl.errors import T2TError, closest
from t2t_mtl.losses import mean_token_loss
from t2t_mtl.modeling.adapters import load_trained
from t2t_mtl.modeling.backbone import load_backbone
from t2t_mtl.modeling.routed.zero_shot import Router, TaskRouting, average_routing, fit_routing
from t2t_mtl.recipe import EvalSpec
from t2t_mtl.run_dir import RunDir
from t2t_mtl.tasks.registry import load_task
from t2t_mtl.tasks.schema import TaskSpec, TemplateSpec
from t2t_mtl.templates import literal_template

logger = logging.getLogger(__name__)


@torch.no_grad()
def generate(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[dict[str, Any]],
    spec: EvalSpec,
    progress: bool = True,
    synced_gpus: bool = False,
    route: Callable[[torch.Tensor], None] | None = None,
) -> list[str]:
    """Generate one text per example (`input_ids`, `task_id`), longest first, in input order.

    `route` sets a routed adapter's routing from each batch's task ids; `synced_gpus`
    keeps ranks of a sharded model (ZeRO-3, FSDP) stepping together.
    """
    model.eval()
    device = next(model.parameters()).device
    collate = Seq2SeqCollator(pad_id=tokenizer.pad_token_id)
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    outputs: list[str] = [""] * len(examples)
    for start in tqdm(range(0, len(order), spec.batch_size), desc="generate", disable=not progress, leave=False):
        chunk = order[start : start + spec.batch_size]
        batch = collate([{"input_ids": examples[i]["input_ids"], "task_id": examples[i]["task_id"]} for i in chunk])
        if route is not None:
            route(batch["task_ids"])
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
    """A one-template task for a single instruction typed on the command line, taken as plain text (not Jinja)."""
    return TaskSpec(
        name="adhoc", domain="adhoc", source={"path": "-"}, held_out=True,
        templates=[TemplateSpec(id="adhoc", instruction=literal_template(instruction), input="{{ text }}", target="")],
    )


class Predictor:
    """A trained run, ready to answer any task file's rows (routed runs route unseen tasks zero-shot)."""

    def __init__(self, run: RunDir, model: nn.Module, tokenizer: PreTrainedTokenizerBase) -> None:
        self.run = run
        self.model = model
        self.tokenizer = tokenizer
        self.recipe = run.recipe()
        self.task_table = {row["name"]: row for row in run.tasks()}
        self.routing = None
        if self.recipe.adapter.routed:
            saved = run.embeddings_file
            embeddings = load_file(str(saved))["embeddings"] if saved.is_file() else None
            self.routing = TaskRouting(model, tokenizer, run.tasks(), embeddings)

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str | None = None) -> Predictor:
        """Load the run's backbone and trained weights (final, else latest checkpoint)."""
        run = RunDir(run_dir)
        recipe = run.recipe()
        run.tasks()  # a missing or corrupt task table is named here, before the model loads
        weights = run.trained_weights()  # verified against its manifest
        backbone = load_backbone(recipe.model.name_or_path, recipe.model.dtype)
        model = load_trained(backbone, recipe.adapter, weights)
        saved_tokenizer = (weights / "tokenizer_config.json").is_file()
        tokenizer = AutoTokenizer.from_pretrained(weights) if saved_tokenizer else backbone.tokenizer
        model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        return cls(run, model, tokenizer)

    def task(self, task: TaskSpec | str | Path) -> TaskSpec:
        """A task spec from a spec, a task file path, or the name of a task of the run."""
        if isinstance(task, TaskSpec):
            return task
        if str(task).endswith((".yaml", ".yml")):
            return load_task(task)  # strict: schema, output parser, metric names
        known = self.task_table.get(str(task))
        if known is None:
            raise T2TError(f"task '{task}' is not in run {self.run.root}.{closest(str(task), self.task_table)} "
                           f"Its tasks: {', '.join(self.task_table)}; or pass a task file (.yaml).")
        return load_task(known["file"]).model_copy(update={"name": known["name"], "held_out": known["held_out"]})

    def encode(self, spec: TaskSpec, rows: list[dict[str, Any]], template: str | None, labelled: bool) -> datasets.Dataset:
        """Render and tokenize rows of a task as the run's settings dictate."""
        known = self.task_table.get(spec.name)
        settings = TokenizerSettings(self.tokenizer, self.recipe.model.max_source_length,
                                     self.recipe.model.max_target_length)
        rendered = render_rows(spec, known["id"] if known else -1, datasets.Dataset.from_list(rows), seed=None,
                               template_id=template, with_target=labelled, settings=settings)
        encoded = tokenize(rendered, settings)
        count_truncation(spec, encoded, settings)  # warns, naming the task, when an instance was cut
        return encoded

    def router(self, spec: TaskSpec, routing: str | None, fit_rows: list[dict[str, Any]] | None = None,
               fit_steps: int = 30, template: str | None = None, rows: list[dict[str, Any]] | None = None
               ) -> Router | None:
        """How a task is routed: learned when trained, else `routing` (default average); None for LoRA.

        `similar` compares the task's instruction, rendered on its first row, with the trained tasks'.
        """
        if self.routing is None:
            if routing is not None:
                raise T2TError(f"--routing applies to routed adapters; this run trained adapter.type: "
                               f"{self.recipe.adapter.type}")
            return None
        trained = spec.name in self.task_table and not self.task_table[spec.name]["held_out"]
        if routing is None and not trained:
            logger.warning("%s was not trained in this run: routing it with 'average' (see --routing)", spec.name)
            routing = "average"
        if routing == "fit":
            return self.fit_router(spec, fit_rows or [], fit_steps, template)[0]
        known = self.task_table.get(spec.name)
        instruction = known["instruction"] if known and template is None else task_instruction(spec, rows or [], template)
        return self.routing.router(spec.name, instruction, routing)

    def fit_router(self, spec: TaskSpec, rows: list[dict[str, Any]], steps: int = 30, template: str | None = None
                   ) -> tuple[Router, list[float]]:
        """MHR-z: fit an unseen task's routing on labelled rows; returns its router and per-step losses."""
        if not rows:
            raise T2TError("routing 'fit' needs labelled rows of the task (--fit-data FILE.jsonl)")
        encoded = self.encode(spec, rows, template, labelled=True)
        collate = Seq2SeqCollator(pad_id=self.tokenizer.pad_token_id)
        device = next(self.model.parameters()).device
        base = self.model.get_base_model()
        batches = []
        for start in range(0, len(encoded), self.recipe.eval.batch_size):
            batch = collate(list(encoded.select(range(start, min(start + self.recipe.eval.batch_size, len(encoded))))))
            batch["decoder_input_ids"] = base.prepare_decoder_input_ids_from_labels(labels=batch["labels"])
            batches.append({k: v.to(device) for k, v in batch.items()})
        start_weights = average_routing(self.model, self.routing.trained)
        weights, losses = fit_routing(self.model, batches, mean_token_loss, start_weights, steps, lr=0.1)
        return Router(self.model, weights=weights), losses

    def predict(
        self,
        task: TaskSpec | str | Path,
        rows: list[dict[str, Any]],
        template: str | None = None,
        routing: str | None = None,
        fit_rows: list[dict[str, Any]] | None = None,
        progress: bool = True,
    ) -> list[str]:
        """One prediction per row, rendered with the task's evaluation template (or `template`).

        Routed runs route a trained task by its learned routing and any other task by
        `routing`: average, similar, fit (on `fit_rows`) or task=NAME.
        """
        spec = self.task(task)
        if not rows:
            return []
        changed = self.run.changed_templates(spec)
        if changed:
            logger.warning("%s: templates %s changed since run %s was trained", spec.where, changed, self.run.root)
        route = self.router(spec, routing, fit_rows, template=template, rows=rows)
        encoded = self.encode(spec, rows, template, labelled=False)
        return generate(self.model, self.tokenizer, list(encoded), self.recipe.eval, progress, route=route)
