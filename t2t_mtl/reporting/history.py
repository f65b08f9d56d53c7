"""What a run folder holds so far, read for a report: its log, task table, mixture, evaluations and best weights."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation.report import JSON_NAME, Summary, read_report
from t2t_mtl.run_dir import COMPLETE, RunDir
from t2t_mtl.selection import primary_metric, read_best
from t2t_mtl.task_table import TaskRow


@dataclass
class TaskScore:
    """One task's primary score in one evaluation."""

    task: str
    metric: str
    score: float


@dataclass
class RunHistory:
    """A run as far as it got: training log lines, evaluations (by step), and what the folder records."""

    label: str
    run: RunDir
    tasks: list[TaskRow]
    planned_steps: int | None
    train: list[dict[str, Any]] = field(default_factory=list)  # log lines with a loss
    evaluations: list[dict[str, Any]] = field(default_factory=list)  # log lines with eval scores
    mixture: list[dict[str, Any]] = field(default_factory=list)
    final: Summary | None = None  # results.json of the final weights
    best: dict[str, Any] | None = None  # checkpoints/best.json
    early_stopped: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        """Whether the run wrote its final weights."""
        return (self.run.final_dir / COMPLETE).is_file()

    @property
    def last_step(self) -> int:
        """The last step the log recorded (0 before the first log line)."""
        return max((record["step"] for record in self.train + self.evaluations), default=0)

    @property
    def routed(self) -> list[dict[str, Any]]:
        """The log lines that recorded the routing (routed runs)."""
        return [record for record in self.train if "routing" in record]

    def status(self) -> str:
        """One line: finished, stopped early, or how far an unfinished run got."""
        planned = f" of {self.planned_steps}" if self.planned_steps else ""
        if self.run.merge_file.is_file():
            return f"made by `t2t-mtl merge` ({self.run.merge_file.name}), not trained"
        if self.early_stopped is not None:
            stop = self.early_stopped
            return (f"stopped early (train.early_stopping) at step {stop['at']}{planned}: the final weights are "
                    f"those of step {stop['step']}")
        if self.finished:
            return f"finished: {self.last_step}{planned} steps"
        return f"not finished (still training, or interrupted): step {self.last_step}{planned} logged"

    def task_scores(self, record: dict[str, Any]) -> list[TaskScore]:
        """Each task's primary score in an evaluation record (its primary metric named in the record)."""
        metrics = {task: primary_metric(record, task) for task in record["eval_by_task"]}
        return [TaskScore(task, metric, record["eval_by_task"][task][metric]) for task, metric in metrics.items()]

    def latest_scores(self) -> tuple[int | None, list[TaskScore]]:
        """(step, each task's primary score) of the final weights, else of the last evaluation; (None, []) if none."""
        if self.final is not None:
            return self.final.step, [TaskScore(t.task, t.primary, t.score) for t in self.final.tasks]
        if self.evaluations:
            return self.evaluations[-1]["step"], self.task_scores(self.evaluations[-1])
        return None, []

    def best_steps(self) -> dict[str, tuple[int, float]]:
        """Per task, the evaluated step of its best primary score (the first, on ties) and that score."""
        best: dict[str, tuple[int, float]] = {}
        for record in self.evaluations:
            for score in self.task_scores(record):
                if score.task not in best or score.score > best[score.task][1]:
                    best[score.task] = (record["step"], score.score)
        return best


def read_history(folder: str | Path, label: str) -> RunHistory:
    """The history of the run in `folder`; a folder that is not a run is a T2TError naming it."""
    run = RunDir(folder)
    if not Path(folder).is_dir():
        raise T2TError(f"{folder} is not a folder; give a run folder (the output_dir of `t2t-mtl train`)")
    recipe = run.recipe()  # "not a run folder" when there is no recipe.yaml
    history = RunHistory(label, run, run.tasks(), recipe.train.max_steps)
    lines = run.log_file.read_text(encoding="utf-8").splitlines() if run.log_file.is_file() else []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                continue  # the last line of a run killed while writing it
            raise T2TError(f"{run.log_file}, line {number}, is not JSON: the log is damaged") from None
        if "eval" in record:
            history.evaluations.append(record)
        elif "early_stopped" in record:
            history.early_stopped = {"at": record["step"], **record["early_stopped"]}
        elif "loss" in record:
            history.train.append(record)
    if run.mixture_file.is_file():
        history.mixture = json.loads(run.mixture_file.read_text(encoding="utf-8"))
    if history.finished and (run.root / JSON_NAME).is_file():
        final = read_report(run.root)  # each evaluation writes it: the final one's, unless that one did not end
        if history.early_stopped is not None or final.step in (None, history.last_step):  # None: `evaluate`
            history.final = final
    history.best = read_best(run.checkpoints_dir)
    return history
