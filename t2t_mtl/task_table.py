"""The task table of a run (tasks.json): one typed row per task, its routing row and where it came from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class TaskRow(BaseModel):
    """One trained or held-out task of a run; `id` is its row of the routing table."""

    model_config = ConfigDict(frozen=True)

    name: str
    id: int
    held_out: bool
    domain: str = ""
    instruction: str = ""
    file: str = ""
    data: str | None = None
    eval_data: str | None = None


def trained_rows(table: list[TaskRow]) -> list[TaskRow]:
    """The rows of the tasks the run trained on (not held out)."""
    return [row for row in table if not row.held_out]
