"""The Accelerate training loop: prepare, accumulate, clip, schedule, log, evaluate, checkpoint."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, broadcast_object_list, set_seed
from torch import nn
from transformers import PretrainedConfig, get_scheduler

from t2t_mtl.adapters.base import Router
from t2t_mtl.checkpoints import Checkpointer
from t2t_mtl.data import EvalSet, Seq2SeqCollator, TokenizerSettings, build_task_data
from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation.report import Summary
from t2t_mtl.evaluator import evaluate_sets
from t2t_mtl.losses import target_token_losses
from t2t_mtl.modeling.backbone import load_backbone
from t2t_mtl.plan import make_plan, mixture_record, print_mixture
from t2t_mtl.recipe import ModelSpec, Recipe
from t2t_mtl.run_dir import COMPLETE, RunDir, input_lock, task_table
from t2t_mtl.selection import Selection, check_select, selection_score
from t2t_mtl.step_log import StepLog
from t2t_mtl.tasks.mixture import MixtureRow
from t2t_mtl.tasks.registry import select_tasks

logger = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
REPEAT_GRACE_S = 1.0  # a repeat this soon is the same request (launchers forward the terminal's Ctrl-C)


class Stopped(BaseException):
    """Training was stopped by a signal; a BaseException, like KeyboardInterrupt, so nothing swallows it.

    `checkpoint` is set when the loop stopped after a step and saved it there; `final` when
    the stop came after the final weights were written; `started` is False when the stop came
    before the run folder was touched.
    """

    def __init__(self, signum: int, step: int | None = None, checkpoint: Path | None = None,
                 final: Path | None = None, started: bool = True) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum, self.step, self.checkpoint, self.final, self.started = signum, step, checkpoint, final, started

    @property
    def exit_status(self) -> int:
        """128 + the signal's number, as a shell reports a process ended by it (143 SIGTERM, 130 SIGINT)."""
        return 128 + self.signum

    def line(self, command: str) -> str:
        """The one line to show the user; `command` is how the run was started (without --resume)."""
        name = signal.Signals(self.signum).name
        if self.checkpoint is not None:
            return (f"stopped at step {self.step} by {name}; checkpoint written to {self.checkpoint}; "
                    f"resume with: {command} --resume")
        if self.final is not None:
            return (f"stopped by {name} after training; the final weights are in {self.final}; "
                    f"evaluate them with: t2t-mtl evaluate {self.final.parent}")
        if not self.started:
            return f"stopped by {name} before training started; nothing was written"
        return (f"stopped at once by a second {name}, without a checkpoint of this step; resume from the "
                f"latest checkpoint with: {command} --resume")


class StopRequest:
    """What SIGTERM and SIGINT asked of a run (see `handling_stops`, which installs `handle`).

    Inside `deferring()` (the loop) the first signal only asks to stop after the current step;
    a second one, or any outside (start-up: nothing to save yet), raises `Stopped` at once.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._at = 0.0
        self._deferring = False

    def handle(self, signum: int, frame: object) -> None:
        """The signal handler: record a first request while deferring, else stop now."""
        now = time.monotonic()
        if self.signum is not None and now - self._at < REPEAT_GRACE_S:
            return
        if self._deferring and self.signum is None:
            self.signum, self._at = signum, now
            return
        raise Stopped(signum, started=self._deferring)

    @contextlib.contextmanager
    def deferring(self) -> Iterator[None]:
        """While inside, a first signal waits for the loop to act on it."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False


@contextlib.contextmanager
def handling_stops() -> Iterator[StopRequest]:
    """Route SIGTERM and SIGINT to a `StopRequest` while inside (main thread only), then restore the handlers."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {signum: signal.signal(signum, stop.handle) for signum in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class StepResult(NamedTuple):
    """What one optimizer step did on this rank."""

    loss_sum: torch.Tensor
    tokens: int
    examples: int
    applied: bool  # False when a non-finite step was skipped (train.skip_nonfinite)
    by_task: torch.Tensor  # (3, tasks): each task's summed target-token loss, target tokens and examples


def check_positions(config: PretrainedConfig, spec: ModelSpec) -> None:
    """Refuse lengths beyond the model's learned positions (relative-attention models such as T5 have none)."""
    encoder, decoder = getattr(config, "encoder", None), getattr(config, "decoder", None)
    composite = isinstance(encoder, PretrainedConfig) and isinstance(decoder, PretrainedConfig)
    sides = [("model.max_source_length", spec.max_source_length, encoder if composite else config,
              ("max_encoder_position_embeddings", "max_position_embeddings")),
             ("model.max_target_length", spec.max_target_length, decoder if composite else config,
              ("max_decoder_position_embeddings", "max_position_embeddings"))]
    for key, length, side, names in sides:
        name = next((n for n in names if isinstance(getattr(side, n, None), int)), None)
        if name is not None and length > getattr(side, name):
            limit = getattr(side, name)
            raise T2TError(f"{key} is {length} but model '{spec.name_or_path}' has {limit} positions "
                           f"({name} in its config): set {key}={limit} or less")


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def _check_process_group(accelerator: Accelerator) -> None:
    """Refuse ranks that were launched together but did not join one process group."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        raise T2TError(
            f"{launched} processes were launched but each runs alone (world size {accelerator.num_processes}); "
            f"they would overwrite each other's run. On a machine without GPUs, set ACCELERATE_USE_CPU=1 "
            f"(or pass --cpu) so the ranks join over gloo."
        )


class Trainer:
    """One training run of a recipe under Accelerate.

    Start-up checks everything first (output folder, tasks, templates and data, metrics,
    parsers, model positions, adapter targets, the checkpoint to resume) and only then claims
    the run folder: a bad recipe never touches an existing run. `recipe_file` is protected
    from being inside output_dir; `stop` carries SIGTERM/SIGINT requests to the loop.
    """

    def __init__(self, recipe: Recipe, anchors: list[Path], resume: bool = False, overwrite: bool = False,
                 recipe_file: Path | None = None, stop: StopRequest | None = None,
                 allow_changed: bool = False) -> None:
        self.recipe = recipe
        self.run = RunDir(recipe.output_dir)
        self.stop = stop or StopRequest()
        set_seed(recipe.train.seed)
        selected = select_tasks(recipe, anchors)
        protected = [p for p in (recipe_file, *(s.spec.file for s in selected)) if p is not None]
        self.resume = self.run.check(recipe, resume=resume, overwrite=overwrite, protected=protected)
        self.backbone = load_backbone(recipe.model.name_or_path, recipe.model.dtype)
        check_positions(self.backbone.model.config, recipe.model)
        settings = TokenizerSettings(self.backbone.tokenizer, recipe.model.max_source_length,
                                     recipe.model.max_target_length)
        self.accelerator = Accelerator(log_with=["tensorboard"] if _has_tensorboard() else None,
                                       project_dir=str(self.run.root))
        self.main = self.accelerator.is_main_process
        _check_process_group(self.accelerator)
        with self.accelerator.main_process_first():
            self.data = build_task_data(selected, settings, recipe)
        self.plan, mixture = make_plan(self.data, recipe, self.accelerator.num_processes)
        self.table = task_table(self.data.selected, self.data.instructions)
        self.method = recipe.method
        self._deepspeed = self.accelerator.distributed_type == DistributedType.DEEPSPEED
        self.model, self.optimizer, self.scheduler = self._prepare()  # builds the adapter: bad targets fail here
        self.routing_plan = self.method.routing_plan(self.accelerator.unwrap_model(self.model), self.backbone.tokenizer,
                                                     self.table, recipe.eval)
        self.train_router = self.routing_plan.learned()
        self.collate = Seq2SeqCollator(pad_id=self.backbone.tokenizer.pad_token_id,
                                       decoder_inputs=self.backbone.model.prepare_decoder_input_ids_from_labels)
        self.checkpointer = Checkpointer(self.accelerator, self.run, recipe.train.keep_last, self.method)
        inputs = input_lock(self.data.selected, self.data.fingerprints)  # checked against the checkpoint's
        self.start_step = self.checkpointer.restore(inputs, allow_changed) if self.resume else 0
        if self.start_step:
            self.method.restored(self.accelerator.unwrap_model(self.model), self.optimizer)
        self.selection = self._selection()
        self.stopped_early = False  # train.early_stopping ended the loop
        self.skipped = 0  # non-finite steps skipped since this start (train.skip_nonfinite)
        self.stopping = 0  # the signal every rank agreed to stop on after this step (0: none)
        self._claim(mixture)

    def _selection(self) -> Selection | None:
        """What picks the best evaluation (eval.select), checked against the evaluated tasks; None when the run
        keeps no best. A resumed run replays the evaluations its log holds up to the checkpoint."""
        train, select = self.recipe.train, self.recipe.eval.select
        if select != "mean" or train.tracks_best:
            check_select(select, {s.task.name: s.task.held_out for s in self.data.eval_sets})
        if not train.tracks_best:
            return None
        stopping = train.early_stopping
        selection = Selection(select, stopping.patience if stopping else None, stopping.min_delta if stopping else 0.0)
        if self.resume:
            selection.replay(self.run.log_file, self.start_step)
            best = self.run.checkpoints_dir / f"step-{selection.best_step or 0:06d}"
            self.checkpointer.best = best if best in self.run.checkpoints() else None
            if selection.best_step is not None and self.checkpointer.best is None:
                logger.warning("the best evaluation so far (step %d) has no checkpoint in %s any more: the next "
                               "best one will be kept", selection.best_step, self.run.checkpoints_dir)
                selection = Selection(select, selection.patience, selection.min_delta)
        return selection

    def _claim(self, mixture: list[MixtureRow]) -> None:
        """Take the run folder (main process): the first write of the run, after every check."""
        try:
            if self.main:
                self.run.claim(self.recipe, replace=not self.resume)
                self.run.write_task_table(self.table, self.data.selected, self.data.fingerprints)
                self.run.write_mixture(mixture_record(mixture, self.data.truncated))
                print_mixture(mixture, self.data.truncated)
            self.accelerator.wait_for_everyone()
        except BaseException:
            self.run.restore_replaced()
            raise

    def _prepare(self) -> tuple[nn.Module, torch.optim.Optimizer, Any]:
        train = self.recipe.train
        adapter = self.recipe.adapter
        model = self.method.build(self.backbone, adapter, n_tasks=len(self.data.tasks))
        if self.recipe.model.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        groups = self.method.param_groups(model, adapter, train.lr)
        # The fused kernel (CPU and CUDA) updates all tensors in one pass, as HF Trainer's default does.
        optimizer = torch.optim.AdamW(groups, lr=train.lr, weight_decay=train.weight_decay, fused=True)
        scheduler = get_scheduler(train.scheduler, optimizer, train.warmup, self.plan.steps)
        plugin = self.accelerator.state.deepspeed_plugin
        if plugin is not None:  # we batch ourselves, so DeepSpeed's "auto" batch sizes are filled here
            plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = train.batch_size
            plugin.deepspeed_config["gradient_accumulation_steps"] = train.grad_accum
        model, optimizer = self.accelerator.prepare(model, optimizer)
        self.accelerator.register_for_checkpointing(scheduler)
        self.trained = [p for p in model.parameters() if p.requires_grad]
        self.head = self.backbone.model.get_output_embeddings()
        return model, optimizer, scheduler

    # -- one step ----------------------------------------------------------------------
    def _batch(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """The padded micro-batch of `rows` (task, example), on the host."""
        return self.collate([self.data.train_sets[int(t)][int(e)] for t, e in rows])

    def train_step(self, step: int) -> StepResult:
        """One optimizer step over this rank's micro-batches.

        The step is applied only when its loss and gradient norm are finite on every rank (else it
        is skipped while train.skip_nonfinite allows, or the run stops with a T2TError); the same
        read tells every rank whether to stop after this step (`self.stopping`).
        """
        loss_sum, tokens, examples, by_task = self._accumulate(step)
        applied = self._healthy(step, loss_sum, self._grad_norm())
        if applied:
            self.optimizer.step()
            self.scheduler.step()
        elif self.accelerator.scaler is not None:  # fp16: close the scaler's unscale_ of this step, unapplied
            self.accelerator.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return StepResult(loss_sum, tokens, examples, applied, by_task)

    def _accumulate(self, step: int) -> tuple[torch.Tensor, int, int, torch.Tensor]:
        """Forward and backward over this rank's micro-batches: (loss sum, tokens, examples, per-task sums).

        The per-task loss and token sums come from the per-token losses the step computes anyway,
        and stay on the device (read once per log line).
        """
        micro = self.plan.micro_batches(step, self.accelerator.process_index)
        scale = self.accelerator.num_processes / int(self.plan.target_tokens[step])
        deepspeed = self._deepspeed
        loss_sum = torch.zeros((), device=self.accelerator.device)
        by_task = torch.zeros(3, len(self.table), device=self.accelerator.device, dtype=torch.float64)
        tokens = examples = 0
        self.model.train()
        for k, rows in enumerate(micro):
            batch = self._batch(rows)
            tokens += int(batch["attention_mask"].sum()) + int((batch["labels"] != -100).sum())
            examples += len(rows)
            last = k == len(micro) - 1
            no_sync = contextlib.nullcontext() if last or deepspeed else self.accelerator.no_sync(self.model)
            # The routing (task ids checked on the host) holds for this forward and its backward.
            with no_sync, self.train_router.applied(batch["task_ids"]):
                batch = {key: value.to(self.accelerator.device) for key, value in batch.items()}
                with self.accelerator.autocast():
                    losses, rows = target_token_losses(self.model, batch, self.head)
                summed = losses.sum()
                # DeepSpeed divides by its accumulation steps itself; undo that to keep the global-token mean.
                self.accelerator.backward(summed * scale * (len(micro) if deepspeed else 1))
            loss_sum += summed.detach()
            self._count_by_task(by_task, batch["task_ids"], losses.detach(), rows)
        return loss_sum, tokens, examples, by_task

    @staticmethod
    def _count_by_task(by_task: torch.Tensor, task_ids: torch.Tensor, losses: torch.Tensor, rows: torch.Tensor) -> None:
        """Add each target token's loss and a count of 1, and each example's count of 1, to its task's column
        of `by_task` (on the device)."""
        task_of_token = task_ids[rows]
        by_task[0].index_add_(0, task_of_token, losses.double())
        by_task[1].index_add_(0, task_of_token, torch.ones_like(losses, dtype=torch.float64))
        by_task[2].index_add_(0, task_ids, torch.ones_like(task_ids, dtype=torch.float64))

    def _grad_norm(self) -> torch.Tensor | None:
        """Clip to train.grad_clip when set and return the global gradient norm (None under DeepSpeed,
        whose engine clips and steps inside backward)."""
        if self._deepspeed:
            return None
        return self.accelerator.clip_grad_norm_(self.trained, self.recipe.train.grad_clip or math.inf)

    def _agreed_flags(self, loss_sum: torch.Tensor, norm: torch.Tensor | None) -> tuple[bool, bool, int]:
        """(loss not finite, gradient norm not finite, stop signal or 0) over all ranks, in one small read."""
        device = loss_sum.device
        norm_bad = norm.isfinite().logical_not() if norm is not None else torch.zeros((), device=device)
        flags = torch.stack([loss_sum.isfinite().logical_not().float(), norm_bad.float(),
                             torch.full((), float(self.stop.signum or 0), device=device)])
        if self.accelerator.num_processes > 1:
            flags = self.accelerator.gather(flags[None]).amax(0)
        loss_bad, norm_bad, signum = flags.tolist()
        return bool(loss_bad), bool(norm_bad), int(signum)

    def _healthy(self, step: int, loss_sum: torch.Tensor, norm: torch.Tensor | None) -> bool:
        """Whether this step may be applied; a non-finite one is skipped (train.skip_nonfinite) or stops the run."""
        checked = norm if self.accelerator.scaler is None else None  # fp16: the grad scaler skips overflows itself
        loss_bad, norm_bad, self.stopping = self._agreed_flags(loss_sum, checked)
        if not (loss_bad or norm_bad):
            return True
        what = "loss" if loss_bad else "gradient norm"
        lr = self.scheduler.get_last_lr()[0]
        budget = self.recipe.train.skip_nonfinite
        if self.skipped < budget and not self._deepspeed:
            self.skipped += 1
            if self.main:
                logger.warning("step %d: the %s is not finite (lr %.3g); step skipped (%d of train.skip_nonfinite=%d)",
                               step + 1, what, lr, self.skipped, budget)
            return False
        raise T2TError(f"training diverged at step {step + 1}: the {what} is not finite (lr {lr:.3g}); nothing was "
                       f"saved from it{self._latest_note()}. {self._divergence_fix()}")

    def _check_weights(self, done: int) -> None:
        """Refuse to save weights that are not finite (a huge lr can overflow them while the loss is finite)."""
        bad = torch.stack([p.isfinite().all() for p in self.trained]).logical_not().any().float()[None]
        if self.accelerator.num_processes > 1:
            bad = self.accelerator.reduce(bad, "sum")
        if bad.item():
            raise T2TError(f"after step {done} the trained weights are not finite (lr "
                           f"{self.scheduler.get_last_lr()[0]:.3g}); nothing was saved from them"
                           f"{self._latest_note()}. {self._divergence_fix()}")

    def _latest_note(self) -> str:
        checkpoints = self.run.checkpoints()
        return f" (the latest good checkpoint is {checkpoints[-1]})" if checkpoints else ""

    def _divergence_fix(self) -> str:
        return (f"Lower train.lr (now {self.recipe.train.lr:g}), raise train.warmup or set train.grad_clip, "
                f"or skip rare bad batches with train.skip_nonfinite=K")

    # -- the run -----------------------------------------------------------------------
    def _router_for(self, eval_set: EvalSet) -> Router:
        """The router of a task in evaluation: learned when trained, the recipe's eval.routing when held out."""
        instruction = next(row.instruction for row in self.table if row.name == eval_set.task.name)
        return self.routing_plan.router(eval_set.task.name, instruction)

    def evaluate(self, step: int | None) -> Summary | None:
        """Evaluate every evaluation set; returns the summary on the main process."""
        return evaluate_sets(self.accelerator, self.model, self.backbone.tokenizer, self.data.eval_sets,
                             self.recipe.eval, self.run, self._router_for, step)

    def save_final(self) -> None:
        """The trained weights and tokenizer in final/, marked complete."""
        weights = self.accelerator.get_state_dict(self.model) if self._sharded() else None
        if self.main:
            final = self.run.fresh_final()
            self.method.save(self.accelerator.unwrap_model(self.model), final, state_dict=weights)
            self.backbone.tokenizer.save_pretrained(final)
            self.routing_plan.save(self.run.root)
            self.run.write_manifest(final)
            (final / COMPLETE).touch()
        self.accelerator.wait_for_everyone()

    def _sharded(self) -> bool:
        return self.accelerator.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP)

    def fit(self) -> Summary | None:
        """Train to the end of the plan, then save and evaluate; returns the final summary.

        SIGTERM/SIGINT finish the current step, write a checkpoint and raise `Stopped`. A failure
        before the first applied step puts back the run this one replaces (--overwrite).
        """
        train, steps = self.recipe.train, self.plan.steps
        with self.stop.deferring():
            try:
                if self.main:
                    self.accelerator.init_trackers("tensorboard",
                                                   config={k: str(v) for k, v in train.model_dump().items()})
                tasks = [row.name for row in sorted(self.table, key=lambda row: row.id)]
                with contextlib.closing(StepLog(self.accelerator, self.run, train.log_every, steps,
                                                self.start_step, tasks)) as log:
                    done = self._train(log)
                    if self.stopped_early:
                        self._restore_best(done, log)
            except BaseException:
                self.run.restore_replaced()
                raise
            self._check_weights(done)
            self.save_final()
        if self.stop.signum is not None:
            raise Stopped(self.stop.signum, final=self.run.final_dir)
        try:
            summary = self.evaluate(self.selection.best_step if self.stopped_early else steps)
        except Stopped as stop:
            raise Stopped(stop.signum, final=self.run.final_dir) from None
        if not self.stopped_early:  # an early stop's final weights are those of an evaluation already logged
            record = log.evaluation(steps, summary)
            if self.selection is not None and self._select(steps, record):
                self.checkpointer.keep_best(self.run.final_dir, self.selection.record("final"))
        self.accelerator.wait_for_everyone()  # no rank tears the process group down while another still writes
        self.accelerator.end_training()
        return summary

    def _train(self, log: StepLog) -> int:
        """The loop over the plan's steps from `start_step`; returns the last step done (early stopping ends it
        before the plan's last)."""
        done = self.start_step
        for step in range(self.start_step, self.plan.steps):
            result = self.train_step(step)
            if result.applied:
                self.run.drop_replaced()  # the new run has made a step: the run it replaces goes now
                log.add(result.tokens, result.examples, int(self.plan.target_tokens[step]), result.by_task)
            else:
                log.skip()
            done = step + 1
            self._after_step(done, log)
            if self.stopped_early:
                break
        return done

    def _after_step(self, done: int, log: StepLog) -> None:
        """Log, checkpoint and evaluate on their cadences; on an agreed stop request, checkpoint and stop."""
        train, steps = self.recipe.train, self.plan.steps
        if done % train.log_every == 0 or done == steps or self.stopping:
            log.flush(done, self.scheduler.get_last_lr()[0], self.routing_plan.snapshot() if self.main else None)
        saved = self.stopping or (train.save_every and (done % train.save_every == 0 or done == steps))
        if saved:
            self._check_weights(done)
            self.run.drop_replaced()  # a checkpoint of the new run is about to exist
            checkpoint = self.checkpointer.save(done, steps)
            if self.stopping:
                self.accelerator.end_training()
                raise Stopped(self.stopping, step=done, checkpoint=checkpoint)
        if train.eval_every and done % train.eval_every == 0 and done < steps:
            with log.excluding():  # the evaluation's time is not training throughput
                record = log.evaluation(done, self.evaluate(done))
            if self.selection is not None and self._select(done, record) and not saved:
                self._check_weights(done)
                self.checkpointer.save(done, steps)  # the new best needs a checkpoint of its own
            if self.selection is not None and self.selection.best_step == done:
                self.checkpointer.keep_best(self.run.checkpoints_dir / f"step-{done:06d}",
                                            self.selection.record(f"checkpoints/step-{done:06d}"))
            self.stopped_early = self.selection is not None and self.selection.exhausted

    def _select(self, done: int, record: dict[str, Any] | None) -> bool:
        """Account the evaluation of step `done` (its log record, on the main process) on every rank; whether
        it is the new best."""
        assert self.selection is not None
        score = selection_score(record, self.selection.select) if record is not None else None
        score = broadcast_object_list([score])[0] if self.accelerator.num_processes > 1 else score
        return self.selection.update(done, score)

    def _restore_best(self, done: int, log: StepLog) -> None:
        """Early stopping: load the best evaluated checkpoint, whose weights become the final ones."""
        assert self.selection is not None and self.checkpointer.best is not None
        self.accelerator.load_state(str(self.checkpointer.best))
        log.early_stop(done, self.selection.record(f"checkpoints/{self.checkpointer.best.name}"),
                       self.selection.waited)


def train(recipe: Recipe, anchors: list[Path], resume: bool = False, overwrite: bool = False,
          recipe_file: Path | None = None, allow_changed: bool = False) -> Summary | None:
    """Run a recipe from start (or the latest checkpoint) to its evaluated final weights.

    `train.resume: auto` resumes whenever the output folder already holds this run;
    `--resume` with `--overwrite` is refused. SIGTERM/SIGINT end the run with `Stopped`.
    Resuming on templates or data changed since the checkpoint needs `allow_changed`.
    """
    if resume and overwrite:
        raise T2TError("--resume continues the run in output_dir and --overwrite replaces it: pass only one")
    resume = resume or (not overwrite and recipe.train.resume == "auto" and RunDir(recipe.output_dir).exists())
    with handling_stops() as stop:
        return Trainer(recipe, anchors, resume=resume, overwrite=overwrite, recipe_file=recipe_file, stop=stop,
                       allow_changed=allow_changed).fit()
