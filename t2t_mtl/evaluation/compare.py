"""Runs side by side: each common task's primary score per run, the differences to the first run, and the
macro averages recomputed over the common tasks (by domain, seen, held out, overall)."""

from __future__ import annotations

from dataclasses import dataclass

from t2t_mtl.evaluation.report import GROUP_LABELS, Averages, Summary, markdown_table


@dataclass
class Comparison:
    """Runs' summaries under their labels; the first is the reference the differences are taken from."""

    labels: list[str]
    summaries: list[Summary]

    def common(self) -> list[str]:
        """The tasks every run evaluated, in the first run's order."""
        names = [{t.task for t in s.tasks} for s in self.summaries]
        return [t.task for t in self.summaries[0].tasks if all(t.task in n for n in names)]

    def only_in_some(self) -> dict[str, list[str]]:
        """Per run label, its evaluated tasks that not every run has."""
        common = set(self.common())
        return {label: [t.task for t in s.tasks if t.task not in common]
                for label, s in zip(self.labels, self.summaries) if any(t.task not in common for t in s.tasks)}

    def to_markdown(self) -> str:
        """A table of the common tasks, then of their macro averages, each run a column and each difference one."""
        common = self.common()
        results = [{t.task: t for t in s.tasks} for s in self.summaries]
        header = ["task", "metric", *self.labels, *(f"Δ {label}" for label in self.labels[1:])]
        rows = [[task, results[0][task].primary, *self._cells([r[task].score for r in results])] for task in common]
        averages = [Averages.of([r[task] for task in common]) for r in results]
        average_rows = [[label, "", *self._cells(scores)] for label, scores in self._average_rows(averages)]
        lines = ["## Tasks evaluated by every run", "", *markdown_table(header, rows), "",
                 "## Macro averages over those tasks", "", *markdown_table(["group", "", *header[2:]], average_rows)]
        for label, tasks in self.only_in_some().items():
            lines += ["", f"Only in {label} (not compared): {', '.join(tasks)}"]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _cells(scores: list[float | None]) -> list[str]:
        """The scores, then each one's difference to the first."""
        shown = ["—" if s is None else f"{s:.2f}" for s in scores]
        first = scores[0]
        return shown + ["—" if s is None or first is None else f"{s - first:+.2f}" for s in scores[1:]]

    @staticmethod
    def _average_rows(averages: list[Averages]) -> list[tuple[str, list[float | None]]]:
        """(group label, each run's average or None) for the domains and the seen / held-out / overall groups."""
        rows = [(f"domain {domain}", [a.by_domain[domain].score if domain in a.by_domain else None for a in averages])
                for domain in averages[0].by_domain]
        for name, label in GROUP_LABELS.items():
            groups = [getattr(a, name) for a in averages]
            if groups[0] is not None:
                rows.append((label, [g.score if g is not None else None for g in groups]))
        return rows

