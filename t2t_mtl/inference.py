"""Batched generation, and the Predictor that answers seen and unseen tasks from a run."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoTokenizer, LogitsProcessorList, PreTrainedTokenizerBase

from t2t_mtl.adapters.base import Router
from t2t_mtl.constraints import ConstrainedLogits, Constraint, end_tokens, task_constraints
from t2t_mtl.data import (
    Seq2SeqCollator,
    TokenizerSettings,
    count_truncation,
    render_rows,
    task_instruction,
    tokenize,
)
from t2t_mtl.errors import T2TError, closest
from t2t_mtl.evaluation.answers import structured_answer
from t2t_mtl.evaluation.parsers import split_parts
from t2t_mtl.modeling.backbone import load_backbone
from t2t_mtl.recipe import EvalSpec
from t2t_mtl.run_dir import RunDir
from t2t_mtl.tasks.registry import load_task, reopen
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
    router: Router | None = None,
    constraints: Sequence[Constraint | None] | None = None,
    groups: Sequence[int] | None = None,
) -> list[str]:
    """Generate one text per example (`input_ids`, `task_id`), longest first, in input order.

    `router` routes each batch's `generate` by its task ids (routed adapters); `constraints`
    (one per example, None for free) mask what each example may decode; `groups` (one per
    example) batches each group's examples together, longest first, the groups in order (so
    only the batches at a group's edges mix groups); `synced_gpus` keeps ranks of a sharded
    model (ZeRO-3, FSDP) stepping together.
    """
    router = router or Router()
    model.eval()
    device = next(model.parameters()).device
    collate = Seq2SeqCollator(pad_id=tokenizer.pad_token_id)
    group_of = groups if groups is not None else [0] * len(examples)
    order = sorted(range(len(examples)), key=lambda i: (group_of[i], -len(examples[i]["input_ids"])))
    outputs: list[str] = [""] * len(examples)
    for start in tqdm(range(0, len(order), spec.batch_size), desc="generate", disable=not progress, leave=False):
        chunk = order[start : start + spec.batch_size]
        batch = collate([{"input_ids": examples[i]["input_ids"], "task_id": examples[i]["task_id"]} for i in chunk])
        masks = [constraints[i] for i in chunk] if constraints is not None else []
        processors = LogitsProcessorList([ConstrainedLogits(masks, spec.num_beams)] if any(masks) else [])
        with router.applied(batch["task_ids"]):
            generated = model.generate(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
                num_beams=spec.num_beams,
                max_new_tokens=spec.max_new_tokens,
                synced_gpus=synced_gpus,
                logits_processor=processors,
            )
        for i, text in zip(chunk, tokenizer.batch_decode(generated, skip_special_tokens=True)):
            outputs[i] = text.strip()
    return outputs


@dataclass
class Prediction:
    """One answer: the decoded `text` and the `answer` read from it (`evaluation.answers.structured_answer`)."""

    text: str
    answer: Any

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "answer": self.answer}


def adhoc_task(instruction: str) -> TaskSpec:
    """A one-template task for a single instruction typed on the command line, taken as plain text (not Jinja)."""
    return TaskSpec(
        name="adhoc", domain="adhoc", source={"path": "-"}, held_out=True,
        templates=[TemplateSpec(id="adhoc", instruction=literal_template(instruction), input="{{ text }}", target="")],
    )


class Predictor:
    """A trained run, ready to answer any task file's rows (routed runs route unseen tasks zero-shot)."""

    def __init__(self, run: RunDir, model: nn.Module, tokenizer: PreTrainedTokenizerBase,
                 eval_overrides: dict[str, Any] | None = None) -> None:
        self.run = run
        self.model = model
        self.tokenizer = tokenizer
        self.recipe = run.recipe()
        if eval_overrides:  # settings of this use (e.g. --top-k), not the run's
            self.recipe = self.recipe.model_copy(update={"eval": self.recipe.eval.model_copy(update=eval_overrides)})
        table = run.tasks()
        self.task_table = {row.name: row for row in table}
        self.routing_plan = self.recipe.method.routing_plan(model, tokenizer, table, self.recipe.eval, run.root)

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str | None = None,
                 eval_overrides: dict[str, Any] | None = None, checkpoint: str | None = None) -> Predictor:
        """Load the run's backbone and trained weights (`checkpoint`: last, the default, is final/ else the
        latest checkpoint; best; step-N); `eval_overrides` change the recipe's `eval` settings for this predictor."""
        run = RunDir(run_dir)
        recipe = run.recipe()
        run.tasks()  # a missing or corrupt task table is named here, before the model loads
        weights = run.trained_weights(checkpoint)  # verified against its manifest
        backbone = load_backbone(recipe.model.name_or_path, recipe.model.dtype)
        model = recipe.method.load(backbone, recipe.adapter, weights)
        saved_tokenizer = (weights / "tokenizer_config.json").is_file()
        tokenizer = AutoTokenizer.from_pretrained(weights) if saved_tokenizer else backbone.tokenizer
        model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        return cls(run, model, tokenizer, eval_overrides)

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
        return reopen(known)

    def encode(self, spec: TaskSpec, rows: list[dict[str, Any]], template: str | None, labelled: bool) -> datasets.Dataset:
        """Render and tokenize rows of a task as the run's settings dictate."""
        known = self.task_table.get(spec.name)
        settings = TokenizerSettings(self.tokenizer, self.recipe.model.max_source_length,
                                     self.recipe.model.max_target_length)
        rendered = render_rows(spec, known.id if known else -1, datasets.Dataset.from_list(rows), seed=None,
                               template_id=template, with_target=labelled, settings=settings)
        encoded = tokenize(rendered, settings)
        count_truncation(spec, encoded, settings)  # warns, naming the task, when an instance was cut
        return encoded

    def labelled_batches(self, spec: TaskSpec, rows: list[dict[str, Any]], template: str | None = None,
                         labelled: bool = True) -> list[dict[str, torch.Tensor]]:
        """Rows of a task as batches on the model's device, with labels (training batches) or without (for
        fitting a routing)."""
        return self.batches(list(self.encode(spec, rows, template, labelled=labelled)) if rows else [])

    def batches(self, encoded: list[dict[str, Any]]) -> list[dict[str, torch.Tensor]]:
        """Tokenized examples as batches of eval.batch_size on the model's device (labelled ones with decoder inputs)."""
        collate = Seq2SeqCollator(pad_id=self.tokenizer.pad_token_id,
                                  decoder_inputs=self.model.prepare_decoder_input_ids_from_labels)
        device = next(self.model.parameters()).device
        size = self.recipe.eval.batch_size
        return [{k: v.to(device) for k, v in collate(encoded[start : start + size]).items()}
                for start in range(0, len(encoded), size)]

    def router(self, spec: TaskSpec, routing: str | None, fit_rows: list[dict[str, Any]] | None = None,
               template: str | None = None, rows: list[dict[str, Any]] | None = None,
               inputs: list[dict[str, Any]] | None = None) -> Router:
        """How a task is routed: learned when trained, else `routing` (default: the recipe's eval.routing).

        `similar` compares the task's instruction, rendered on its first row, with the trained tasks'.
        `fit` learns on the labelled `fit_rows`; `fit-unlabelled` on `fit_rows`, else on `rows`
        themselves, else on the tokenized `inputs` (an evaluation set's examples).
        """
        known = self.task_table.get(spec.name)
        instruction = known.instruction if known and template is None else task_instruction(spec, rows or [], template)

        def fit(labelled: bool) -> list[dict[str, torch.Tensor]]:
            if not labelled and not fit_rows and not rows and inputs:
                return self.batches(inputs)
            chosen = fit_rows if labelled or fit_rows else rows
            return self.labelled_batches(spec, chosen or [], template, labelled=labelled)

        return self.routing_plan.router(spec.name, instruction, routing, fit=fit)

    def fit_router(self, spec: TaskSpec, rows: list[dict[str, Any]], steps: int = 30, template: str | None = None
                   ) -> tuple[Router, list[float]]:
        """MHR-z: fit an unseen task's routing on labelled rows; returns its router and per-step losses."""
        return self.routing_plan.fit(self.labelled_batches(spec, rows, template), steps)

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
        `routing`: average, similar, fit (on `fit_rows`), fit-unlabelled (on `fit_rows`, else
        on `rows`) or task=NAME.
        """
        spec = self.task(task)
        if not rows:
            return []
        changed = self.run.changed_templates(spec)
        if changed:
            logger.warning("%s: templates %s changed since run %s was trained", spec.where, changed, self.run.root)
        router = self.router(spec, routing, fit_rows, template=template, rows=rows)
        encoded = list(self.encode(spec, rows, template, labelled=False))
        return generate(self.model, self.tokenizer, encoded, self.recipe.eval, progress, router=router,
                        constraints=self.constraints(spec, encoded))

    def answers(self, task: TaskSpec | str | Path, rows: list[dict[str, Any]], texts: list[str]) -> list[Prediction]:
        """The decoded `texts` of `rows` with their answers: labels canonical, spans snapped into the row's text
        columns (its string values, for a task without a column map); a composite task's answer holds each
        subtask's answer by subtask name."""
        spec = self.task(task)
        columns = list(spec.columns.values()) or [key for row in rows[:1] for key in row]
        readers = [(part.name, part.output, part.label_space()) for part in spec.parts or [spec]]
        predictions = []
        for row, text in zip(rows, texts):
            fields = {c: row[c] for c in columns if isinstance(row.get(c), str)}
            answers = {name: structured_answer(output, answer, labels, fields)
                       for (name, output, labels), answer in zip(readers, split_parts(text, len(readers)))}
            predictions.append(Prediction(text, answers if spec.subtasks is not None else answers[spec.name]))
        return predictions

    def predict_many(self, tasks: Sequence[TaskSpec | str | Path], rows: list[dict[str, Any]],
                     routing: str | None = None, progress: bool = True) -> list[dict[str, Prediction]]:
        """Every row answered by every task in one generation: per row, each task's prediction by task name.

        The (row, task) pairs of the tasks routed by their own task ids (every task of an unrouted
        run; a routed run's trained tasks) are generated together, task after task, each task's
        longest first: a batch mixes tasks only where one task's pairs end and the next one's begin
        (a task's outputs are alike in length, so a batch of one task stops early as a separate call
        would). A task routed zero-shot (`routing`, else eval.routing) is generated in batches of
        its own.
        """
        specs = [self.task(task) for task in tasks]
        names = [spec.name for spec in specs]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise T2TError(f"each task may be asked once per call; repeated: {', '.join(repeated)}")
        if not rows:
            return []
        encoded = [list(self.encode(spec, rows, None, labelled=False)) for spec in specs]
        routers = [self.router(spec, routing, rows=rows) for spec in specs]
        constraints = [self.constraints(spec, examples) for spec, examples in zip(specs, encoded)]
        texts: list[list[str]] = [[] for _ in specs]
        together = [k for k, router in enumerate(routers) if router.by_task_ids]
        groups = [together] * bool(together) + [[k] for k, router in enumerate(routers) if not router.by_task_ids]
        for group in groups:
            examples = [example for k in group for example in encoded[k]]
            masks = [mask for k in group for mask in constraints[k]]
            generated = generate(self.model, self.tokenizer, examples, self.recipe.eval, progress,
                                 router=routers[group[0]], constraints=masks,
                                 groups=[k for k in group for _ in rows])
            for offset, k in enumerate(group):
                texts[k] = generated[offset * len(rows) : (offset + 1) * len(rows)]
        answers = [self.answers(spec, rows, task_texts) for spec, task_texts in zip(specs, texts)]
        return [{name: answers[k][i] for k, name in enumerate(names)} for i in range(len(rows))]

    def constraints(self, spec: TaskSpec, encoded: list[dict[str, Any]]) -> list[Constraint | None]:
        """What each encoded example of `spec` may decode under the recipe's eval.constrain."""
        return task_constraints(spec, self.recipe.eval.constrain, self.tokenizer, end_tokens(self.model),
                                [example["instance"] for example in encoded])
