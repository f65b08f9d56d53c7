"""The task × skill routing of a routed model (`t2t-mtl routing RUN_DIR`), as a table and a heatmap."""

from __future__ import annotations

from pathlib import Path

import torch

from t2t_mtl.errors import T2TError
from t2t_mtl.modeling.routed.model import routed_layers, task_weights
from t2t_mtl.task_table import TaskRow, trained_rows


def _table(names: list[str], matrix: torch.Tensor, skill_names: list[str]) -> str:
    width = max(len(n) for n in names)
    lines = [f"{'task':<{width}}  " + " ".join(f"{s:>6}" for s in skill_names)]
    lines += [f"{name:<{width}}  " + " ".join(f"{v:6.3f}" for v in row.tolist()) for name, row in zip(names, matrix)]
    return "\n".join(lines)


def _heatmap(names: list[str], matrix: torch.Tensor, skill_names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(1.0 + 0.6 * len(skill_names), 1.0 + 0.45 * len(names)))
    image = axes.imshow(matrix.numpy(), cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(skill_names)), skill_names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_title("routing weight per task and skill (mean over layers and heads)")
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def skill_names(model: torch.nn.Module) -> list[str]:
    """The skills' column names: shared s0, s1, ... then each task's own skills own0, own1, ..."""
    config = model.peft_config["default"]
    return [f"s{i}" for i in range(config.n_skills)] + [f"own{i}" for i in range(config.n_exclusive_skills)]


def trained_routing(model: torch.nn.Module, table: list[TaskRow]) -> tuple[list[str], torch.Tensor]:
    """(the trained tasks' names, their routing (tasks, layers, splits, skills)) of a routed `model`."""
    if not routed_layers(model):
        raise T2TError("this model has no routing: its adapter has no routed layers")
    rows = trained_rows(table)
    return [row.name for row in rows], task_weights(model)[[row.id for row in rows]]


def show_routing(model: torch.nn.Module, table: list[TaskRow], image: Path, per_layer: bool = False) -> torch.Tensor:
    """Print the trained tasks' mean routing over skills (and per layer) of a routed `model`, write a heatmap.

    Returns the (tasks, skills) mean routing.
    """
    names, weights = trained_routing(model, table)
    columns = skill_names(model)
    matrix = weights.mean(dim=(1, 2))
    print(_table(names, matrix, columns))
    if per_layer:
        layer_names = {id(m): n for n, m in model.named_modules()}
        for index, layer in enumerate(routed_layers(model)):
            print(f"\n{layer_names[id(layer)]}")
            print(_table(names, weights[:, index].mean(dim=1), columns))
    _heatmap(names, matrix, columns, image)
    print(f"\nheatmap: {image}")
    return matrix
