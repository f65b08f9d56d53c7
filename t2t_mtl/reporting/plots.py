"""The report's figures, drawn with matplotlib from run histories; each says why when it has nothing to draw."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from t2t_mtl.reporting.history import RunHistory

DPI = 90
WIDTH = 9.0  # inches; every figure is this wide, so the page reads as one column
NO_ROUTING = "no routed run among these (LoRA and full fine-tuning do not route)"


@dataclass
class Figure:
    """One figure of the report: its section title, the PNG written (None with the reason it is missing)."""

    title: str
    image: Path | None
    missing: str = ""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:
    if figure.get_layout_engine() is None:
        figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    _pyplot().close(figure)
    return path


def _panels(count: int, height: float = 3.2):
    """A figure of `count` panels side by side (at most 3 a row), as a flat list of axes."""
    columns = min(count, 3)
    rows = -(-count // columns)
    figure, axes = _pyplot().subplots(rows, columns, figsize=(WIDTH, height * rows), squeeze=False)
    for extra in axes.flat[count:]:
        extra.set_visible(False)
    return figure, list(axes.flat[:count])


def _run_panels(runs: list[RunHistory], keep: Callable[[RunHistory], bool]):
    """(a figure with a panel for each run that `keep`s, [(run, its axes)]), or (None, []) when none does."""
    drawn = [run for run in runs if keep(run)]
    if not drawn:
        return None, []
    figure, panels = _panels(len(drawn))
    return figure, list(zip(drawn, panels))


def _legend(axes, entries: int) -> None:
    if entries:
        axes.legend(fontsize=7, ncol=1 if entries < 8 else 2)


def training_loss(runs: list[RunHistory], path: Path) -> Figure:
    """Every run's training loss over steps."""
    title = "Training loss"
    if not any(run.train for run in runs):
        return Figure(title, None, "no training step has been logged yet")
    figure, (axes,) = _panels(1)
    for run in runs:
        points = [(r["step"], r["loss"]) for r in run.train if r["loss"] is not None]
        if points:
            axes.plot(*zip(*points), label=run.label)
    axes.set(xlabel="step", ylabel="loss (per target token)")
    _legend(axes, len(runs))
    return Figure(title, _save(figure, path))


def task_loss(runs: list[RunHistory], path: Path) -> Figure:
    """Each task's training loss over steps, a panel per run."""
    title = "Training loss per task"
    if not any("loss_by_task" in r for run in runs for r in run.train):
        return Figure(title, None, "no per-task loss has been logged yet")
    figure, panels = _panels(len(runs))
    for run, axes in zip(runs, panels):
        tasks = sorted({task for r in run.train for task in r.get("loss_by_task", {})})
        for task in tasks:
            points = [(r["step"], r["loss_by_task"][task]) for r in run.train if task in r.get("loss_by_task", {})]
            axes.plot(*zip(*points), label=task, linewidth=1)
        axes.set(title=run.label, xlabel="step", ylabel="loss")
        _legend(axes, len(tasks))
    return Figure(title, _save(figure, path))


def evaluation_curves(runs: list[RunHistory], path: Path) -> Figure:
    """Each task's primary score at every evaluation, a panel per run (held-out tasks dashed)."""
    title = "Evaluation scores per task over training"
    if not any(run.evaluations for run in runs):
        return Figure(title, None, "no evaluation yet: the run evaluates every train.eval_every steps and at the end")
    figure, panels = _panels(len(runs))
    for run, axes in zip(runs, panels):
        held_out = {row.name for row in run.tasks if row.held_out}
        curves: dict[tuple[str, str], list[tuple[int, float]]] = {}
        for record in run.evaluations:
            for score in run.task_scores(record):
                curves.setdefault((score.task, score.metric), []).append((record["step"], score.score))
        for (task, metric), points in curves.items():
            label = f"{task} ({metric}{', held out' if task in held_out else ''})"
            axes.plot(*zip(*points), marker="o", markersize=3, linewidth=1, label=label,
                      linestyle="--" if task in held_out else "-")
        axes.set(title=run.label, xlabel="step", ylabel="primary score")
        _legend(axes, len(curves))
    return Figure(title, _save(figure, path))


def _grouped_bars(axes, names: list[str], series: dict[str, list[float]]) -> None:
    """Bars of each series side by side for every name."""
    width = 0.8 / max(len(series), 1)
    positions = np.arange(len(names))
    for index, (label, values) in enumerate(series.items()):
        axes.bar(positions + index * width - 0.4 + width / 2, values, width, label=label)
    axes.set_xticks(positions, names, rotation=30, ha="right", fontsize=8)
    _legend(axes, len(series))


def final_scores(runs: list[RunHistory], path: Path) -> Figure:
    """Each task's latest primary score, the runs side by side."""
    title = "Scores per task (final weights, else the latest evaluation)"
    latest = {run.label: {s.task: s.score for s in run.latest_scores()[1]} for run in runs}
    tasks = list(dict.fromkeys(task for scores in latest.values() for task in scores))
    if not tasks:
        return Figure(title, None, "no evaluation yet")
    figure, (axes,) = _panels(1, height=3.8)
    _grouped_bars(axes, tasks, {label: [scores.get(t, np.nan) for t in tasks] for label, scores in latest.items()})
    axes.set(ylabel="primary score")
    return Figure(title, _save(figure, path))


def seen_held_out(runs: list[RunHistory], path: Path) -> Figure:
    """Macro averages over seen tasks, held-out tasks and all, the runs side by side."""
    title = "Seen vs held-out tasks (macro averages of the primary scores)"
    groups = {"seen": [], "held-out": [], "overall": []}
    for run in runs:
        _, scores = run.latest_scores()
        held_out = {row.name: row.held_out for row in run.tasks}
        for name, keep in (("seen", False), ("held-out", True), ("overall", None)):
            chosen = [s.score for s in scores if keep is None or held_out.get(s.task) == keep]
            groups[name].append(float(np.mean(chosen)) if chosen else np.nan)
    if all(np.isnan(v) for v in groups["overall"]):
        return Figure(title, None, "no evaluation yet")
    figure, (axes,) = _panels(1, height=3.0)
    _grouped_bars(axes, [run.label for run in runs], groups)
    axes.set(ylabel="macro average")
    return Figure(title, _save(figure, path))


def _per_task_bars(runs: list[RunHistory], path: Path, title: str, ylabel: str,
                   series_of: Callable[[RunHistory], dict[str, list[float]]]) -> Figure:
    """Bars of `series_of(run)` for each task of the run's mixture.json, a panel per run."""
    figure, panels = _run_panels(runs, lambda run: bool(run.mixture))
    if figure is None:
        return Figure(title, None, "the run folder has no mixture.json (written when training starts)")
    for run, axes in panels:
        _grouped_bars(axes, [row["task"] for row in run.mixture], series_of(run))
        axes.set(title=run.label, ylabel=ylabel)
    return Figure(title, _save(figure, path))


def _shares(run: RunHistory) -> dict[str, list[float]]:
    """Each task's configured share, and (once logged) its share of the examples trained on."""
    seen: dict[str, int] = {}
    for record in run.train:
        for task, count in record.get("examples_by_task", {}).items():
            seen[task] = seen.get(task, 0) + count
    series = {"configured": [row["share"] for row in run.mixture]}
    if seen:
        series["sampled"] = [seen.get(row["task"], 0) / sum(seen.values()) for row in run.mixture]
    return series


def _truncated(run: RunHistory) -> dict[str, list[float]]:
    """Per task, the % of training rows whose prompt was shortened (instance whole), instance cut, target cut."""
    labels = {"shortened": "prompt shortened", "instance_cut": "instance cut", "target_cut": "target cut"}
    return {label: [100 * row["truncation"][key] / max(row["truncation"]["rows"], 1) for row in run.mixture]
            for key, label in labels.items()}


def mixture(runs: list[RunHistory], path: Path) -> Figure:
    """Each task's configured sampling share and the share of examples actually trained on."""
    return _per_task_bars(runs, path, "Mixture: configured vs sampled share of examples", "share", _shares)


def truncation(runs: list[RunHistory], path: Path) -> Figure:
    """Per task, the training rows whose prompt was shortened (instance whole), whose instance or target was cut."""
    return _per_task_bars(runs, path, "Truncation of training rows per task", "% of training rows", _truncated)


def throughput(runs: list[RunHistory], path: Path) -> Figure:
    """Tokens per second and peak memory over steps."""
    title = "Throughput and memory"
    if not any(run.train for run in runs):
        return Figure(title, None, "no training step has been logged yet")
    figure, (speed, memory) = _panels(2)
    for run in runs:
        steps = [r["step"] for r in run.train]
        speed.plot(steps, [r["tokens_per_s"] for r in run.train], label=run.label)
        memory.plot(steps, [r["peak_memory_mb"] for r in run.train], label=run.label)
    speed.set(xlabel="step", ylabel="tokens / s")
    memory.set(xlabel="step", ylabel="peak memory (MB)")
    _legend(speed, len(runs))
    return Figure(title, _save(figure, path))


def _matrix(routing: dict) -> np.ndarray:
    return np.array(list(routing["tasks"].values()))


def _heatmap(axes, routing: dict, title: str, limits: tuple[float, float] | None = None):
    tasks = list(routing["tasks"])
    low, high = limits or (None, None)
    image = axes.imshow(_matrix(routing), cmap="viridis", aspect="auto", vmin=low, vmax=high)
    axes.set_xticks(range(len(routing["skills"])), routing["skills"], fontsize=7)
    axes.set_yticks(range(len(tasks)), tasks, fontsize=7)
    axes.set_title(title, fontsize=9)
    return image


def routing(runs: list[RunHistory], path: Path) -> Figure:
    """The latest logged routing (task x skill) of every routed run."""
    title = "Routing: each trained task's weight on each skill (mean over layers)"
    figure, panels = _run_panels(runs, lambda run: bool(run.routed))
    if figure is None:
        return Figure(title, None, NO_ROUTING)
    for run, axes in panels:
        last = run.routed[-1]
        figure.colorbar(_heatmap(axes, last["routing"], f"{run.label}, step {last['step']}"), ax=axes)
    return Figure(title, _save(figure, path))


def routing_over_training(runs: list[RunHistory], path: Path) -> Figure:
    """How the routing changed: a routed run's heatmap at up to four logged steps, from first to last, on one
    colour scale."""
    title = "Routing over training (one colour scale per run)"
    drawn = [run for run in runs if run.routed]
    if not drawn:
        return Figure(title, None, NO_ROUTING)
    plt = _pyplot()
    figure, grid = plt.subplots(len(drawn), 4, figsize=(WIDTH, 2.6 * len(drawn)), squeeze=False, layout="constrained")
    for run, row in zip(drawn, grid):
        picks = [run.routed[i] for i in sorted({round(i) for i in np.linspace(0, len(run.routed) - 1, 4)})]
        values = np.concatenate([_matrix(record["routing"]).ravel() for record in picks])
        for axes, record in zip(row, picks):
            image = _heatmap(axes, record["routing"], f"{run.label}, step {record['step']}",
                             (float(values.min()), float(values.max())))
        figure.colorbar(image, ax=list(row[:len(picks)]))
        for axes in row[len(picks):]:
            axes.set_visible(False)
    return Figure(title, _save(figure, path))


FIGURES: list[tuple[str, Callable[[list[RunHistory], Path], Figure]]] = [
    ("loss", training_loss), ("task_loss", task_loss), ("eval_curves", evaluation_curves),
    ("scores", final_scores), ("seen_held_out", seen_held_out), ("mixture", mixture),
    ("truncation", truncation), ("throughput", throughput), ("routing", routing),
    ("routing_over_training", routing_over_training),
]


def draw_all(runs: list[RunHistory], folder: Path) -> list[Figure]:
    """Every figure of the report, as PNGs in `folder`."""
    return [draw(runs, folder / f"{name}.png") for name, draw in FIGURES]
