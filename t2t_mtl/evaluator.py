"""Evaluate a model on tasks' evaluation sets: generate (sharded over ranks), score, report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
from accelerate import Accelerator
from accelerate.utils import DistributedType, gather_object
from torch import nn
from transformers import PreTrainedTokenizerBase

from t2t_mtl.adapters.base import Router
from t2t_mtl.constraints import Constraint, check_mode, end_tokens, task_constraints
from t2t_mtl.data import EvalSet, TokenizerSettings, build_eval_sets
from t2t_mtl.evaluation.metrics import compute_metrics
from t2t_mtl.evaluation.parsers import get_parser, split_parts
from t2t_mtl.evaluation.report import Summary, TaskResult, summarize, write_report
from t2t_mtl.evaluation.scoring import References, reference_lists
from t2t_mtl.inference import Predictor, generate
from t2t_mtl.recipe import EvalSpec
from t2t_mtl.run_dir import RunDir
from t2t_mtl.tasks.registry import from_task_table
from t2t_mtl.tasks.schema import TaskSpec


def _generate_sharded(
    accelerator: Accelerator, model: nn.Module, tokenizer: PreTrainedTokenizerBase,
    examples: datasets.Dataset, spec: EvalSpec, router: Router, constraints: list[Constraint | None],
) -> list[str]:
    """Each rank generates every world-size-th example; the gathered list is in input order.

    Every rank gets the same number of examples (the short ones repeat one), so sharded
    models (ZeRO-3, FSDP) can generate with synchronised ranks without hanging.
    """
    rank, world = accelerator.process_index, accelerator.num_processes
    mine = list(range(rank, len(examples), world))
    mine += mine[-1:] * (-(-len(examples) // world) - len(mine)) if mine else [0] * (len(examples) > 0)
    synced = accelerator.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP) and world > 1
    texts = generate(accelerator.unwrap_model(model), tokenizer, [examples[i] for i in mine], spec,
                     progress=accelerator.is_main_process, synced_gpus=synced, router=router,
                     constraints=[constraints[i] for i in mine])
    pairs = list(zip(mine, texts))
    by_index = dict(gather_object(pairs) if world > 1 else pairs)
    return [by_index[i] for i in range(len(examples))]


def evaluate_sets(
    accelerator: Accelerator, model: nn.Module, tokenizer: PreTrainedTokenizerBase,
    eval_sets: list[EvalSet], spec: EvalSpec, run: RunDir, router_for: Callable[[EvalSet], Router],
    step: int | None = None, out_dir: Path | None = None,
) -> Summary | None:
    """Score every task; the main process writes predictions and the report (into `out_dir`, default the run
    folder) and returns the summary.

    `router_for` gives the router of each task's (capped) set (routed adapters: learned or zero-shot).
    """
    out_dir = out_dir or run.root
    results = []
    for eval_set in eval_sets:
        examples = eval_set.examples
        if spec.max_examples is not None:
            examples = examples.select(range(min(spec.max_examples, len(examples))))
        router = router_for(EvalSet(eval_set.task, examples))
        constraints = task_constraints(eval_set.task, spec.constrain, tokenizer, end_tokens(accelerator.unwrap_model(model)),
                                       examples["instance"])
        predictions = _generate_sharded(accelerator, model, tokenizer, examples, spec, router, constraints)
        if not accelerator.is_main_process:
            continue
        task = eval_set.task
        scores, primary = score_task(task, predictions, examples["references"], spec.metric_preset)
        results.append(TaskResult(task=task.name, domain=task.domain, held_out=task.held_out,
                                  examples=len(examples), scores=scores, primary=primary))
        _write_predictions(out_dir / run.predictions_dir.name, task, examples, predictions)
    if not accelerator.is_main_process:
        return None
    summary = summarize(results, metric_preset=spec.metric_preset, step=step)
    write_report(summary, out_dir)
    return summary


def score_task(task: TaskSpec, predictions: list[str], references: References, preset: str | None = None
               ) -> tuple[dict[str, float], str]:
    """A task's scores and the name of its primary one.

    A composite task's outputs are split into their subtasks' answers, each scored with its
    subtask's metrics under "<subtask>:<metric>"; `all_correct` is the share of examples whose
    every answer parses to one of its references' (as its subtask's parser reads them), and the
    primary `subtasks_mean` is the mean of the subtasks' primary scores.
    """
    if task.subtasks is None:
        return compute_metrics(task.metrics, predictions, references, preset), task.metrics[0].name
    count, lists = len(task.parts), reference_lists(references)
    answers = [split_parts(prediction, count) for prediction in predictions]
    gold = [[split_parts(reference, count) for reference in refs] for refs in lists]
    scores, primaries = {}, []
    for k, subtask in enumerate(task.parts):
        part = compute_metrics(subtask.metrics, [a[k] for a in answers], [[g[k] for g in refs] for refs in gold],
                               preset)
        scores.update({f"{subtask.name}:{key}": value for key, value in part.items()})
        primaries.append(part[subtask.metrics[0].name])
    parsers = [get_parser(subtask.output).parse for subtask in task.parts]
    correct = sum(any(all(parse(a) == parse(g) for parse, a, g in zip(parsers, row, ref)) for ref in refs)
                  for row, refs in zip(answers, gold))
    scores["all_correct"] = 100.0 * correct / len(predictions)
    scores["subtasks_mean"] = sum(primaries) / len(primaries)
    return scores, "subtasks_mean"


def _write_predictions(folder: Path, task: TaskSpec, examples: datasets.Dataset, predictions: list[str]) -> None:
    path = folder / f"{task.name.replace('/', '__')}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for example, prediction in zip(examples, predictions):
            record = {"id": example["row"], "task": task.name, "template": example["template"],
                      "input": example["source"], "prediction": prediction, "target": example["target"]}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def evaluate_run(run_dir: str | Path, tasks: list[str] | None = None, max_examples: int | None = None,
                 metric_preset: str | None = None, routing: str | None = None,
                 fit_rows: list[dict[str, Any]] | None = None, top_k: int | None = None,
                 checkpoint: str | None = None, constrain: str | None = None) -> Summary | None:
    """Re-evaluate a run's trained weights on its tasks (sharded when launched on several ranks).

    `checkpoint` (best, step-N; last is the default) evaluates other weights than the last: the
    report then goes to RUN/evaluations/<checkpoint>/; `constrain` (eval.constrain) decodes under
    another constraint, into RUN/constrain/<mode>/ (under the checkpoint's folder).

    `tasks`, `max_examples` and `metric_preset` override the recipe's `eval` settings. `routing`
    routes the tasks the run did not train (routed runs): `fit` learns on the labelled `fit_rows`,
    `fit-unlabelled` on the task's evaluation inputs, `arrow` mixes `top_k` skills per token; the
    report then goes to RUN/routing/<mode>/ (under the checkpoint's folder), beside the run's own.
    """
    accelerator = Accelerator()
    overrides = {"tasks": tasks, "max_examples": max_examples, "metric_preset": metric_preset, "arrow_top_k": top_k,
                 "constrain": constrain}
    predictor = Predictor.from_run(run_dir, device=str(accelerator.device),
                                   eval_overrides={k: v for k, v in overrides.items() if v is not None},
                                   checkpoint=checkpoint)
    recipe, spec = predictor.recipe, predictor.recipe.eval
    selected = from_task_table(predictor.run.tasks(), recipe)
    settings = TokenizerSettings(predictor.tokenizer, recipe.model.max_source_length, recipe.model.max_target_length)
    eval_sets = build_eval_sets(selected, settings, spec)
    if constrain is not None:
        check_mode([eval_set.task for eval_set in eval_sets], constrain)
    trained = {row.name for row in predictor.task_table.values() if not row.held_out}

    def router_for(eval_set: EvalSet) -> Router:
        if routing is None or eval_set.task.name in trained:
            return predictor.router(eval_set.task, None)
        inputs = [{"input_ids": e["input_ids"], "task_id": e["task_id"]} for e in eval_set.examples]  # no labels
        return predictor.router(eval_set.task, routing, fit_rows, inputs=inputs)

    base = predictor.run.root
    if checkpoint not in (None, "last"):
        name = checkpoint if checkpoint == "best" else predictor.run.checkpoint_folder(checkpoint).name
        base = base / "evaluations" / name
    if constrain is not None:
        base = base / "constrain" / constrain
    out_dir = base / "routing" / routing.replace("=", "-").replace("/", "__") if routing else base
    summary = evaluate_sets(accelerator, predictor.model, predictor.tokenizer, eval_sets, spec, predictor.run,
                            router_for, out_dir=out_dir)
    if predictor.routing_plan.fits and accelerator.is_main_process:
        curves = {task: {"routing": mode, "loss_per_step": losses}
                  for task, (mode, losses) in predictor.routing_plan.fits.items()}
        (out_dir / "fits.json").write_text(json.dumps(curves, indent=2), encoding="utf-8")
    return summary
