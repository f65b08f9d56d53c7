"""Fit a few new parameters of a frozen model: routing logits, merge coefficients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from tqdm.auto import tqdm


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Inside: every parameter of `model` frozen, the model in eval mode; after: both as they were."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    model.eval()
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
        model.train(was_training)


def minimise(parameters: list[torch.Tensor], backward_at: Callable[[int], torch.Tensor], steps: int, lr: float,
             desc: str, progress: bool = True) -> list[float]:
    """Adam on `parameters` for `steps` steps; returns the loss of each step (shown in a bar).

    `backward_at(step)` computes the step's loss, runs its backward and returns it (the
    backward may need a context, such as a routed call, that only the caller can open).
    """
    optimizer = torch.optim.Adam(parameters, lr=lr)
    losses: list[float] = []
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    for step in bar:
        optimizer.zero_grad()
        loss = backward_at(step)
        optimizer.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    return losses
