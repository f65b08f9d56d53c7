"""Per-task and per-domain result reports: results.json and results.md in a run folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from t2t_mtl.errors import T2TError

JSON_NAME = "results.json"
MARKDOWN_NAME = "results.md"
GROUP_LABELS = {"seen": "seen", "held_out": "held-out", "overall": "overall"}


@dataclass
class TaskResult:
    """The scores of one task; ``primary`` names the score that summarises it."""

    task: str
    domain: str
    held_out: bool
    examples: int
    scores: dict[str, float]
    primary: str

    def __post_init__(self) -> None:
        if self.primary not in self.scores:
            raise T2TError(f"Task '{self.task}' has no score for its primary metric '{self.primary}'.")

    @property
    def score(self) -> float:
        """The primary score."""
        return self.scores[self.primary]

    def to_dict(self) -> dict[str, Any]:
        """The fields and the primary score, as results.json lists a task."""
        return {**asdict(self), "score": self.score}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskResult:
        """The result ``to_dict`` wrote (its derived ``score`` dropped)."""
        return cls(**{key: value for key, value in data.items() if key != "score"})


@dataclass
class Average:
    """The macro average of the primary scores of a group of tasks."""

    tasks: int
    score: float

    @classmethod
    def of(cls, results: list[TaskResult]) -> Average:
        """The average over `results` (at least one)."""
        return cls(tasks=len(results), score=sum(r.score for r in results) / len(results))


@dataclass
class Averages:
    """Macro averages by domain, over seen and over held-out tasks, and overall; None for a group without tasks."""

    by_domain: dict[str, Average]
    seen: Average | None = None
    held_out: Average | None = None
    overall: Average | None = None

    def groups(self) -> dict[str, Average]:
        """The seen, held-out and overall averages that have tasks, by field name."""
        return {name: group for name in GROUP_LABELS if (group := getattr(self, name)) is not None}

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout: ``by_domain``, then each group that has tasks."""
        by_domain = {domain: asdict(average) for domain, average in self.by_domain.items()}
        return {"by_domain": by_domain, **{name: asdict(group) for name, group in self.groups().items()}}

    @classmethod
    def of(cls, results: list[TaskResult]) -> Averages:
        """The averages of `results`' primary scores (domains sorted by name)."""
        groups = {"seen": [r for r in results if not r.held_out], "held_out": [r for r in results if r.held_out],
                  "overall": results}
        by_domain = {d: Average.of([r for r in results if r.domain == d]) for d in sorted({r.domain for r in results})}
        return cls(by_domain, **{name: Average.of(group) for name, group in groups.items() if group})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Averages:
        """The averages ``to_dict`` wrote."""
        groups = {name: Average(**data[name]) for name in GROUP_LABELS if name in data}
        return cls({domain: Average(**average) for domain, average in data["by_domain"].items()}, **groups)


@dataclass
class Summary:
    """An evaluation: each task's result, the macro averages, and the metric preset and step when given."""

    tasks: list[TaskResult]
    averages: Averages
    metric_preset: str | None = None
    step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The layout of results.json; ``metric_preset`` and ``step`` only when set."""
        data: dict[str, Any] = {"tasks": [t.to_dict() for t in self.tasks], "averages": self.averages.to_dict()}
        if self.metric_preset is not None:
            data["metric_preset"] = self.metric_preset
        if self.step is not None:
            data["step"] = self.step
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        """The summary ``to_dict`` wrote."""
        return cls(tasks=[TaskResult.from_dict(t) for t in data["tasks"]],
                   averages=Averages.from_dict(data["averages"]),
                   metric_preset=data.get("metric_preset"), step=data.get("step"))


def summarize(results: list[TaskResult], metric_preset: str | None = None, step: int | None = None) -> Summary:
    """The tasks and macro averages of their primary scores.

    Averages are given by domain, over seen and over held-out tasks, and overall;
    a group without tasks is left out.
    """
    return Summary(tasks=list(results), averages=Averages.of(results), metric_preset=metric_preset, step=step)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table."""
    lines = [header, ["---"] * len(header), *rows]
    return ["| " + " | ".join(cells) + " |" for cells in lines]


def to_markdown(summary: Summary) -> str:
    """A table of the tasks, then a table of the macro averages."""
    task_rows = [
        [
            t.task,
            t.domain,
            "held-out" if t.held_out else "seen",
            str(t.examples),
            t.primary,
            f"{t.score:.2f}",
            ", ".join(f"{k} {v:.2f}" for k, v in t.scores.items() if k != t.primary),
        ]
        for t in summary.tasks
    ]
    averages = summary.averages
    groups = [(f"domain {d}", a) for d, a in averages.by_domain.items()]
    groups += [(GROUP_LABELS[name], a) for name, a in averages.groups().items()]
    average_rows = [[label, str(a.tasks), f"{a.score:.2f}"] for label, a in groups]
    lines = [
        "## Tasks",
        "",
        *markdown_table(["task", "domain", "split", "examples", "metric", "score", "other metrics"], task_rows),
        "",
        "## Macro averages of the primary scores",
        "",
        *markdown_table(["group", "tasks", "score"], average_rows),
    ]
    if summary.metric_preset:
        lines += ["", f"Scored with the metric preset `{summary.metric_preset}` (see the README's metric table)."]
    return "\n".join(lines) + "\n"


def write_report(summary: Summary, out_dir: Path) -> None:
    """Write results.json and results.md into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / JSON_NAME).write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    (out_dir / MARKDOWN_NAME).write_text(to_markdown(summary), encoding="utf-8")


def read_report(out_dir: Path) -> Summary:
    """The summary written by ``write_report`` into ``out_dir``."""
    path = Path(out_dir) / JSON_NAME
    if not path.is_file():
        raise T2TError(f"No {JSON_NAME} in {out_dir}: run `t2t-mtl evaluate {out_dir}` first.")
    return Summary.from_dict(json.loads(path.read_text(encoding="utf-8")))
