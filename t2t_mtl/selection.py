"""Which evaluation of a run is best (`eval.select`), and when to stop for want of progress (`train.early_stopping`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2t_mtl.errors import T2TError, closest

GROUPS = {"mean": "overall", "seen": "seen", "held_out": "held_out"}  # eval.select -> the average it reads
BEST_FILE = "best.json"  # in checkpoints/: the best evaluated weights so far


def check_select(select: str, evaluated: dict[str, bool]) -> None:
    """Refuse an `eval.select` that no evaluation of the run can score (`evaluated`: task -> held out)."""
    if select in GROUPS:
        wanted = {"seen": False, "held_out": True}.get(select)
        if not evaluated or (wanted is not None and wanted not in evaluated.values()):
            what = {"seen": "seen (trained)", "held_out": "held-out", "mean": ""}[select]
            raise T2TError(f"eval.select: {select} averages the {what} tasks evaluated, but this run evaluates none; "
                           f"choose mean, seen, held_out or a task's name")
        return
    if select not in evaluated:
        raise T2TError(f"eval.select: '{select}' is not a task this run evaluates.{closest(select, evaluated)} Choose "
                       f"mean, seen, held_out or one of: {', '.join(evaluated)}")


def primary_metric(record: dict[str, Any], task: str) -> str:
    """The primary metric of `task` in an evaluation record of log.jsonl (logs before `eval_primary`: the first)."""
    return record.get("eval_primary", {}).get(task) or next(iter(record["eval_by_task"][task]))


def selection_score(record: dict[str, Any], select: str) -> float:
    """The score `select` reads from an evaluation record of log.jsonl (eval, eval_by_task, eval_primary)."""
    if select in GROUPS:
        return float(record["eval"][GROUPS[select]]["score"])
    return float(record["eval_by_task"][select][primary_metric(record, select)])


@dataclass
class Selection:
    """The best evaluation so far and how many evaluations have passed without beating it by `min_delta`.

    `patience` (train.early_stopping) is the number of such evaluations that ends the run; None never does.
    """

    select: str
    patience: int | None = None
    min_delta: float = 0.0
    best_step: int | None = None
    best_score: float | None = None
    waited: int = 0

    def update(self, step: int, score: float) -> bool:
        """Account the evaluation of `step`; whether it is the new best."""
        if self.best_score is None or score > self.best_score + self.min_delta:
            self.best_step, self.best_score, self.waited = step, score, 0
            return True
        self.waited += 1
        return False

    @property
    def exhausted(self) -> bool:
        """Whether `patience` evaluations in a row did not improve on the best."""
        return self.patience is not None and self.waited >= self.patience

    def replay(self, log_file: Path, until: int) -> None:
        """Account the evaluations log.jsonl recorded up to step `until` (a resumed run)."""
        if not log_file.is_file():
            return
        for line in log_file.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if "eval" in record and record["step"] <= until:
                self.update(record["step"], selection_score(record, self.select))

    def record(self, folder: str) -> dict[str, Any]:
        """What best.json says: the selection, the best step and score, and the folder holding its weights."""
        return {"select": self.select, "step": self.best_step, "score": self.best_score, "folder": folder}


def read_best(checkpoints_dir: Path) -> dict[str, Any] | None:
    """The best.json of a run's checkpoints folder, or None when the run kept no best."""
    path = checkpoints_dir / BEST_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise T2TError(f"{path} is corrupt ({error}); it names the best checkpoint. Delete it and resume the run "
                       f"(t2t-mtl train RECIPE --resume) to write it again.") from error
