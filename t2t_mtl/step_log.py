"""What the loop reports: log.jsonl, tracker scalars and the progress bar, per window of steps."""

from __future__ import annotations

import contextlib
import json
import resource
import time
from collections.abc import Iterator
from typing import Any

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from t2t_mtl.evaluation.report import Summary, to_markdown
from t2t_mtl.run_dir import RunDir


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory since the last reset: GPU allocations, or the process's peak RSS on CPU."""
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StepLog:
    """Accumulates loss and throughput over `every` steps and reports them on the main process."""

    def __init__(self, accelerator: Accelerator, run: RunDir, every: int, total: int, start: int,
                 tasks: list[str]) -> None:
        self.accelerator = accelerator
        self.tasks = tasks  # by task id: the names of the per-task losses
        self.run = run
        self.every = every
        self.main = accelerator.is_main_process
        self.bar = tqdm(total=total, initial=start, disable=not self.main, desc="train")
        if self.main and start:
            self._forget_after(start)
        self._reset()

    def _reset(self) -> None:
        device = self.accelerator.device
        self.counts = torch.zeros(3, device=device, dtype=torch.float64)  # tokens, examples, target tokens
        self.by_task = torch.zeros(3, len(self.tasks), device=device, dtype=torch.float64)  # loss, tokens, examples
        self.skipped = 0  # steps not applied because their loss or gradient norm was not finite
        self.started = time.perf_counter()

    def _forget_after(self, step: int) -> None:
        """On resume, drop records of steps past the checkpoint so the log has each step once."""
        if self.run.log_file.is_file():
            lines = self.run.log_file.read_text(encoding="utf-8").splitlines()
            kept = [line for line in lines if json.loads(line)["step"] <= step]
            self.run.log_file.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")

    def add(self, tokens: int, examples: int, target_tokens: int, by_task: torch.Tensor) -> None:
        """Account one step (this rank's counts and per-task loss and token sums; target tokens are global)."""
        self.by_task += by_task
        self.counts += torch.tensor([tokens, examples, 0], device=self.counts.device, dtype=self.counts.dtype)
        self.counts[2] += target_tokens / self.accelerator.num_processes
        self.bar.update(1)

    @contextlib.contextmanager
    def excluding(self) -> Iterator[None]:
        """Time spent inside (an evaluation) does not count in the window's tokens/s and examples/s."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.started += time.perf_counter() - start

    def skip(self) -> None:
        """Account one step that was skipped (non-finite, train.skip_nonfinite): counted, not averaged."""
        self.skipped += 1
        self.bar.update(1)

    def flush(self, step: int, lr: float, routing: dict[str, Any] | None = None) -> None:
        """Write one record for the window ending at `step` (all ranks must call); `routing` is the
        trained tasks' routing now (routed runs, main process)."""
        seconds = time.perf_counter() - self.started
        totals = self.accelerator.reduce(torch.cat([self.counts, self.by_task.flatten()]), "sum")
        values = totals.tolist()  # the window's one read of the device
        tokens, examples, target_tokens = values[:3]
        n = len(self.tasks)
        task_losses, task_tokens, task_examples = values[3 : 3 + n], values[3 + n : 3 + 2 * n], values[3 + 2 * n :]
        loss = sum(task_losses)  # the step's per-token losses, summed in float64 per task
        record = {"step": step, "loss": loss / target_tokens if target_tokens else None, "lr": lr,
                  "tokens_per_s": tokens / seconds, "examples_per_s": examples / seconds,
                  "peak_memory_mb": peak_memory_mb(self.accelerator.device), "seconds": seconds}
        present = [i for i, count in enumerate(task_tokens) if count]
        if present and record["loss"] is not None:  # token-weighted: they average to `loss`
            record["loss_by_task"] = {self.tasks[i]: task_losses[i] / task_tokens[i] for i in present}
            record["target_tokens_by_task"] = {self.tasks[i]: int(task_tokens[i]) for i in present}
            record["examples_by_task"] = {self.tasks[i]: int(task_examples[i]) for i in present}
        if self.skipped:
            record["skipped_steps"] = self.skipped
        if routing is not None:
            record["routing"] = routing
        if self.main:
            self._write(record)
            loss = "-" if record["loss"] is None else f"{record['loss']:.3f}"
            self.bar.set_postfix(loss=loss, tok_s=f"{record['tokens_per_s']:.0f}")
            scalars = {f"train/{k}": v for k, v in record.items() if isinstance(v, float | int) and k != "step"}
            scalars.update({f"train/loss/{task}": v for task, v in record.get("loss_by_task", {}).items()})
            self.accelerator.log(scalars, step=step)
        self._reset()

    def evaluation(self, step: int, summary: Summary | None) -> dict[str, Any] | None:
        """Record an evaluation summary (main process only has one); returns the record written."""
        if summary is None:
            return None
        averages = summary.averages
        by_task = {result.task: result.scores for result in summary.tasks}
        flat = {f"eval/{name}": group.score for name, group in averages.groups().items()}
        flat.update({f"eval/domain/{name}": group.score for name, group in averages.by_domain.items()})
        flat.update({f"eval/{task}/{metric}": score for task, scores in by_task.items()
                     for metric, score in scores.items()})
        self.accelerator.log(flat, step=step)
        primary = {result.task: result.primary for result in summary.tasks}
        record = {"step": step, "eval": averages.to_dict(), "eval_by_task": by_task, "eval_primary": primary}
        self._write(record)
        self.bar.write("\n" + to_markdown(summary))
        return record

    def early_stop(self, step: int, best: dict[str, Any], patience: int) -> None:
        """Record and say (main process) that the run stopped early at `step`, its final weights `best`'s."""
        if not self.main:
            return
        self._write({"step": step, "early_stopped": {**best, "patience": patience}})
        self.bar.write(f"early stopping at step {step}: eval.select {best['select']} has not improved on "
                       f"{best['score']:.2f} (step {best['step']}) for {patience} evaluations; the final weights "
                       f"are those of step {best['step']}")

    def _write(self, record: dict[str, Any]) -> None:
        with self.run.log_file.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def close(self) -> None:
        """Close the progress bar."""
        self.bar.close()
