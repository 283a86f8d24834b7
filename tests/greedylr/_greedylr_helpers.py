"""Shared helpers for the GreedyLR tests (imported by file name; not a test module)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from greedylr import GreedyLR


def make_optimizer(lrs: Sequence[float] = (1.0,)) -> torch.optim.SGD:
    """An SGD optimizer with one 2-element parameter per entry of ``lrs``."""
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in lrs]
    return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)])


def make_scheduler(lrs: Sequence[float] = (1.0,), **kwargs: Any) -> GreedyLR:
    return GreedyLR(make_optimizer(lrs), **kwargs)


def trajectory(scheduler: GreedyLR, metrics: Iterable[float]) -> list[list[float]]:
    """LRs of every group after each ``step`` (read from the optimizer, not the scheduler)."""
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in metrics:
            scheduler.step(m)
            out.append([float(g["lr"]) for g in scheduler.optimizer.param_groups])
    return out


def lrs_of(metrics: Iterable[float], lr0: float = 1.0, **kwargs: Any) -> list[float]:
    """Single-group LR trajectory for ``metrics``."""
    return [row[0] for row in trajectory(make_scheduler((lr0,), **kwargs), metrics)]
