"""`t2t-mtl report`: one self-contained HTML page (figures embedded) and its Markdown twin (figures beside it)."""

from __future__ import annotations

import base64
import html
import time
from dataclasses import dataclass
from pathlib import Path

from t2t_mtl.errors import T2TError
from t2t_mtl.evaluation.report import markdown_table
from t2t_mtl.reporting.history import RunHistory, read_history
from t2t_mtl.reporting.plots import Figure, draw_all
from t2t_mtl.textfiles import writable_folder

HTML_NAME, MARKDOWN_NAME, PLOTS = "report.html", "report.md", "plots"
STYLE = ("body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.2em .6em;"
         "text-align:left}th{background:#f3f3f3}img{max-width:100%}.missing{color:#777;font-style:italic}")


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


Block = str | Table | Figure  # a paragraph, a table or a figure, each under the heading before it


def _runs_table(runs: list[RunHistory]) -> Table:
    rows = []
    for run in runs:
        recipe = run.run.recipe()
        seen = sum(not row.held_out for row in run.tasks)
        best = run.best
        kept = (f"{best['select']} {best['score']:.2f} at step {best['step']} ({best['folder']})" if best else "—")
        rows.append([run.label, str(run.run.root), recipe.adapter.type, f"{seen} seen, {len(run.tasks) - seen} held out",
                     run.status(), kept])
    return Table(["run", "folder", "adapter", "tasks", "status", "best kept (eval.select)"], rows)


def _scores_table(runs: list[RunHistory]) -> Table | str:
    latest = [{s.task: s for s in run.latest_scores()[1]} for run in runs]
    tasks = list(dict.fromkeys(task for scores in latest for task in scores))
    if not tasks:
        return "No evaluation yet: scores appear after the first evaluation (train.eval_every) or at the end."
    held_out = {row.name: row.held_out for run in runs for row in run.tasks}
    rows = []
    for task in tasks:
        metric = next(scores[task].metric for scores in latest if task in scores)
        cells = [f"{scores[task].score:.2f}" if task in scores else "—" for scores in latest]
        rows.append([task, "held-out" if held_out.get(task) else "seen", metric, *cells])
    steps = [run.latest_scores()[0] for run in runs]
    labels = [f"{run.label} (step {step})" if step is not None else run.label for run, step in zip(runs, steps)]
    return Table(["task", "split", "metric", *labels], rows)


def _best_steps_table(runs: list[RunHistory]) -> Table | str:
    rows = [[task, run.label, str(step), f"{score:.2f}"]
            for run in runs for task, (step, score) in run.best_steps().items()]
    if not rows:
        return "No evaluation yet."
    return Table(["task", "run", "best step", "score"], rows)


def report_blocks(runs: list[RunHistory], figures: list[Figure]) -> list[tuple[str, list[Block]]]:
    """The report's sections: (heading, blocks)."""
    return [
        ("Runs", [_runs_table(runs)]),
        ("Scores", [_scores_table(runs)]),
        ("Best evaluated step of each task", [_best_steps_table(runs)]),
        *((figure.title, [figure]) for figure in figures),
    ]


def to_markdown(title: str, sections: list[tuple[str, list[Block]]], folder: Path) -> str:
    """The Markdown twin: figures as links to the PNGs beside it."""
    lines = [f"# {title}", ""]
    for heading, blocks in sections:
        lines += [f"## {heading}", ""]
        for block in blocks:
            if isinstance(block, Table):
                lines += markdown_table(block.header, [[c.replace("|", "\\|") for c in row] for row in block.rows])
            elif isinstance(block, Figure):
                image = block.image.relative_to(folder).as_posix() if block.image else None
                lines.append(f"![{block.title}]({image})" if image else f"*Not drawn: {block.missing}.*")
            else:
                lines.append(block)
            lines.append("")
    return "\n".join(lines)


def to_html(title: str, sections: list[tuple[str, list[Block]]]) -> str:
    """The page: every figure embedded as a PNG data URI, so the file alone is the whole report."""
    parts = [(f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>")]
    for heading, blocks in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        for block in blocks:
            if isinstance(block, Table):
                head = "".join(f"<th>{html.escape(cell)}</th>" for cell in block.header)
                body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                               for row in block.rows)
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif isinstance(block, Figure) and block.image is not None:
                data = base64.b64encode(block.image.read_bytes()).decode("ascii")
                parts.append(f"<img alt=\"{html.escape(block.title)}\" src=\"data:image/png;base64,{data}\">")
            elif isinstance(block, Figure):
                parts.append(f"<p class=\"missing\">Not drawn: {html.escape(block.missing)}.</p>")
            else:
                parts.append(f"<p>{html.escape(block)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_folders: list[Path], out: Path | None = None) -> Path:
    """Write report.html, report.md and plots/*.png for the runs into `out` (one run: its own folder);
    returns the HTML page."""
    if out is None and len(run_folders) > 1:
        raise T2TError("a report of several runs needs --out DIR (one run's report goes into its own folder)")
    names = [folder.name for folder in run_folders]
    labels = names if len(set(names)) == len(names) else [str(folder) for folder in run_folders]
    runs = [read_history(folder, label) for folder, label in zip(run_folders, labels)]
    out = out or run_folders[0]
    if out.exists() and not out.is_dir():
        raise T2TError(f"--out {out} is a file; the report is a folder (report.html, report.md, plots/): give a folder")
    writable_folder(out / HTML_NAME, "--out")
    figures = draw_all(runs, out / PLOTS)
    title = f"t2t-mtl report: {', '.join(labels)}"
    sections = report_blocks(runs, figures)
    stamp = f"Written {time.strftime('%Y-%m-%d %H:%M')} from the run folders as they were then."
    sections[0][1].insert(0, stamp)
    (out / MARKDOWN_NAME).write_text(to_markdown(title, sections, out), encoding="utf-8")
    page = out / HTML_NAME
    page.write_text(to_html(title, sections), encoding="utf-8")
    return page
