"""Learning-rate controllers the studies wrap around a torch optimizer.

One home for every schedule a study drives by name:

* :func:`torch_schedule` -- the closed-form shapes of :mod:`torch.optim.lr_scheduler` over a
  budget of steps (warmup, linear, cosine, polynomial, step, exponential);
* :func:`metric_schedule` -- the schedules that read a metric: torch's ``ReduceLROnPlateau``
  (optionally fed a moving average) and :class:`greedylr.GreedyLR`;
* :class:`ChunkSchedule` -- the per-chunk controller of the DNN study (closed forms in the
  chunk index, the metric schedules stepped once per chunk, or a learned policy).

The NMF study's schedules are :mod:`nmf.schedules` (plain callables of the step index).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from nmf import schedules

StepFn = Callable[[float], None]
"""Called after every optimizer step (or chunk) with the loss the schedule may look at."""

TORCH_SHAPES: tuple[str, ...] = (
    "warmup",
    "linear",
    "cosine",
    "polynomial",
    "step",
    "exponential",
)
METRIC_SCHEDULES: tuple[str, ...] = ("plateau", "greedy")

PLATEAU_FLOOR = 1e-3
"""ReduceLROnPlateau's ``min_lr``, as a fraction of each group's initial rate."""


def torch_schedule(name: str, optimizer: torch.optim.Optimizer, budget: int) -> StepFn:
    """A closed-form shape of :mod:`torch.optim.lr_scheduler` over ``budget`` steps.

    ``warmup`` is linear from ``1/w`` to 1 over ``w = budget/10`` steps, then constant
    (``LambdaLR``); ``linear`` (``LinearLR``), ``cosine`` (``CosineAnnealingLR``) and
    ``polynomial`` (power 2, ``PolynomialLR``) decay to 0; ``step`` multiplies by 0.1 every
    third of the budget (``StepLR``); ``exponential`` ends at 1% of the initial rate
    (``ExponentialLR``). The returned function ignores its argument.
    """
    from torch.optim import lr_scheduler as sch

    if name == "warmup":
        w = max(1, budget // 10)
        scheduler: Any = sch.LambdaLR(optimizer, lambda t: min(1.0, (t + 1) / w))
    elif name == "linear":
        scheduler = sch.LinearLR(optimizer, 1.0, 0.0, total_iters=budget)
    elif name == "cosine":
        scheduler = sch.CosineAnnealingLR(optimizer, T_max=budget)
    elif name == "polynomial":
        scheduler = sch.PolynomialLR(optimizer, total_iters=budget, power=2.0)
    elif name == "step":
        scheduler = sch.StepLR(optimizer, step_size=max(1, math.ceil(budget / 3)), gamma=0.1)
    elif name == "exponential":
        scheduler = sch.ExponentialLR(optimizer, gamma=0.01 ** (1.0 / budget))
    else:
        raise ValueError(f"name must be one of {TORCH_SHAPES}, got {name!r}")
    return lambda loss: scheduler.step()


def metric_schedule(
    name: str,
    optimizer: torch.optim.Optimizer,
    *,
    plateau: Mapping[str, Any],
    greedy: Mapping[str, Any],
    window: int | None = None,
) -> StepFn:
    """ReduceLROnPlateau (``"plateau"``) or GreedyLR (``"greedy"``), stepped with a loss.

    ``plateau`` / ``greedy`` are the keyword arguments of ``ReduceLROnPlateau`` (its floor is
    :data:`PLATEAU_FLOOR` x each group's initial rate) / :class:`greedylr.GreedyLR`. With
    ``window``, ReduceLROnPlateau sees the moving average of the last ``window`` losses.
    """
    if name == "greedy":
        from greedylr import GreedyLR

        return GreedyLR(optimizer, **greedy).step
    if name != "plateau":
        raise ValueError(f"name must be one of {METRIC_SCHEDULES}, got {name!r}")
    floor = [PLATEAU_FLOOR * float(g["lr"]) for g in optimizer.param_groups]
    rop = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, min_lr=floor, **plateau)
    if window is None:
        return rop.step
    recent: deque[float] = deque(maxlen=window)

    def step_on_average(loss: float) -> None:
        recent.append(loss)
        rop.step(sum(recent) / len(recent))

    return step_on_average


class ChunkSchedule:
    """The learning rate of each chunk ``k = 0 .. n_chunks - 1`` from the stats seen so far.

    ``constant``, ``step`` and ``cosine`` are the closed forms of :mod:`nmf.schedules` evaluated
    at the chunk index (:class:`~nmf.schedules.Constant`; :class:`~nmf.schedules.StepDecay`,
    x0.1 every ``ceil(f * n_chunks)`` chunks for evenly spaced ``step_milestones = (f, 2f, ...)``;
    :class:`~nmf.schedules.Cosine` to 0 over ``n_chunks``), so both studies share one definition
    of each shape; ``plateau`` and ``greedy`` (:func:`metric_schedule`) drive a one-parameter
    stand-in optimizer and are stepped with the validation loss after every chunk; ``agent`` is a
    :class:`rl_scheduler.policy.LearnedSchedule` fed the task's stats.
    """

    def __init__(
        self,
        name: str,
        lr: float,
        n_chunks: int,
        steps_per_chunk: int,
        *,
        step_milestones: Sequence[float],
        plateau: Mapping[str, Any],
        greedy: Mapping[str, Any],
        policy: Any = None,
    ) -> None:
        self.name, self.lr0, self.n_chunks, self.steps = name, lr, n_chunks, steps_per_chunk
        self.policy = policy
        self._closed: Callable[[int], float] | None = None
        if name == "constant":
            self._closed = schedules.Constant(lr)
        elif name == "step":
            self._closed = schedules.StepDecay(lr, 0.1, _step_every(step_milestones, n_chunks))
        elif name == "cosine":
            self._closed = schedules.Cosine(lr, total_steps=n_chunks)
        elif name in METRIC_SCHEDULES:
            self._opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
            self._step = metric_schedule(name, self._opt, plateau=plateau, greedy=greedy)

    def __call__(self, k: int, stats: Any) -> float:
        """The rate of chunk ``k``, given the stats after chunk ``k - 1`` (after the reset)."""
        if self._closed is not None:
            return self._closed(k)
        if self.name == "agent":
            self.policy.observe(stats)
            return float(self.policy(k * self.steps))
        if k > 0:
            self._step(float(stats.val_loss))
        return float(self._opt.param_groups[0]["lr"])


def _step_every(milestones: Sequence[float], n_chunks: int) -> int:
    """Chunks between decays for evenly spaced milestones ``(f, 2f, ...)`` (fractions of the run)."""
    f = float(milestones[0]) if len(milestones) else 0.0
    even = all(math.isclose(m, (i + 1) * f) for i, m in enumerate(milestones))
    if not (0 < f < 1 and even):
        raise ValueError(
            f"step_milestones must be evenly spaced fractions (f, 2f, ...) with 0 < f < 1 "
            f"(nmf.schedules.StepDecay decays periodically), got {tuple(milestones)}"
        )
    return max(1, math.ceil(f * n_chunks - 1e-9))
