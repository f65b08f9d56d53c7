"""Per-task and per-domain result reports: results.json and results.md in a run folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from t2t_mtl.errors import T2TError

JSON_NAME = "results.json"
MARKDOWN_NAME = "results.md"
_GROUP_LABELS = {"seen": "seen", "held_out": "held-out", "overall": "overall"}


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


def _average(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"tasks": len(entries), "score": sum(e["score"] for e in entries) / len(entries)}


def summarize(results: list[TaskResult]) -> dict[str, Any]:
    """JSON-able summary: the tasks and macro averages of their primary scores.

    Averages are given by domain, over seen and over held-out tasks, and overall;
    a group without tasks is left out.
    """
    tasks = [{**asdict(r), "score": r.scores[r.primary]} for r in results]
    groups = {
        "seen": [t for t in tasks if not t["held_out"]],
        "held_out": [t for t in tasks if t["held_out"]],
        "overall": tasks,
    }
    domains = sorted({t["domain"] for t in tasks})
    return {
        "tasks": tasks,
        "averages": {
            "by_domain": {d: _average([t for t in tasks if t["domain"] == d]) for d in domains},
            **{name: _average(entries) for name, entries in groups.items() if entries},
        },
    }


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [header, ["---"] * len(header), *rows]
    return ["| " + " | ".join(cells) + " |" for cells in lines]


def to_markdown(summary: dict[str, Any]) -> str:
    """A table of the tasks, then a table of the macro averages."""
    task_rows = [
        [
            t["task"],
            t["domain"],
            "held-out" if t["held_out"] else "seen",
            str(t["examples"]),
            t["primary"],
            f"{t['score']:.2f}",
            ", ".join(f"{k} {v:.2f}" for k, v in t["scores"].items() if k != t["primary"]),
        ]
        for t in summary["tasks"]
    ]
    averages = summary["averages"]
    groups = [(f"domain {d}", a) for d, a in averages["by_domain"].items()]
    groups += [(label, averages[key]) for key, label in _GROUP_LABELS.items() if key in averages]
    average_rows = [[label, str(a["tasks"]), f"{a['score']:.2f}"] for label, a in groups]
    lines = [
        "## Tasks",
        "",
        *_table(["task", "domain", "split", "examples", "metric", "score", "other metrics"], task_rows),
        "",
        "## Macro averages of the primary scores",
        "",
        *_table(["group", "tasks", "score"], average_rows),
    ]
    if summary.get("metric_preset"):
        lines += ["", f"Scored with the metric preset `{summary['metric_preset']}` (see the README's metric table)."]
    return "\n".join(lines) + "\n"


def write_report(summary: dict[str, Any], out_dir: Path) -> None:
    """Write results.json and results.md into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / JSON_NAME).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out_dir / MARKDOWN_NAME).write_text(to_markdown(summary), encoding="utf-8")


def read_report(out_dir: Path) -> dict[str, Any]:
    """The summary written by ``write_report`` into ``out_dir``."""
    path = Path(out_dir) / JSON_NAME
    if not path.is_file():
        raise T2TError(f"No {JSON_NAME} in {out_dir}: run `t2t-mtl evaluate {out_dir}` first.")
    return json.loads(path.read_text(encoding="utf-8"))
