"""Classic learning-rate schedules as small callables of the step index.

A *schedule* is anything with ``__call__(step) -> lr``, for an integer step >= 0 (the schedules
below raise a ``ValueError`` for anything else). It may also define ``observe(stats)``;
:func:`nmf.run_sgd` then hands it the statistics of the current iterate (loss, gradient norm,
stability bound, ...) before asking for the learning rate of that step. :class:`FollowBound` and
learned policies use this; the fixed schedules below ignore it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from nmf.validation import check_integer, check_real


@runtime_checkable
class Schedule(Protocol):
    def __call__(self, step: int) -> float: ...


def _positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    check_real(name, value, low=0.0, low_open=not allow_zero)


def _fraction(name: str, value: Any) -> None:
    check_real(name, value, low=0.0, high=1.0, low_open=True)


def _steps(name: str, value: Any) -> None:
    check_integer(name, value, low=1)


def _step(step: Any) -> None:
    """The step a schedule is asked about: an integer >= 0."""
    check_integer("step", step, low=0)


@dataclass(frozen=True)
class Constant:
    """``lr(t) = lr``."""

    lr: float

    def __post_init__(self) -> None:
        _positive("lr", self.lr)

    def __call__(self, step: int) -> float:
        _step(step)
        return float(self.lr)


@dataclass(frozen=True)
class StepDecay:
    """``lr(t) = lr * factor ** (t // every)``: multiply by ``factor`` every ``every`` steps."""

    lr: float
    factor: float = 0.5
    every: int = 100

    def __post_init__(self) -> None:
        _positive("lr", self.lr)
        _fraction("factor", self.factor)
        _steps("every", self.every)

    def __call__(self, step: int) -> float:
        _step(step)
        return float(self.lr * self.factor ** (step // self.every))


@dataclass(frozen=True)
class Exponential:
    """``lr(t) = lr * gamma ** t``."""

    lr: float
    gamma: float = 0.99

    def __post_init__(self) -> None:
        _positive("lr", self.lr)
        _fraction("gamma", self.gamma)

    def __call__(self, step: int) -> float:
        _step(step)
        return float(self.lr * self.gamma**step)


@dataclass(frozen=True)
class InverseTime:
    """``lr(t) = lr / (1 + decay * t)`` (the classic 1/t schedule of SGD theory)."""

    lr: float
    decay: float = 0.01

    def __post_init__(self) -> None:
        _positive("lr", self.lr)
        _positive("decay", self.decay, allow_zero=True)

    def __call__(self, step: int) -> float:
        _step(step)
        return float(self.lr / (1.0 + self.decay * step))


@dataclass(frozen=True)
class Cosine:
    """``lr(t) = min_lr + (lr - min_lr) (1 + cos(pi t / total_steps)) / 2``, then ``min_lr``."""

    lr: float
    total_steps: int = 1000
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        _positive("lr", self.lr)
        _steps("total_steps", self.total_steps)
        _positive("min_lr", self.min_lr, allow_zero=True)
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr must be <= lr, got min_lr={self.min_lr!r} > lr={self.lr!r}.")

    def __call__(self, step: int) -> float:
        _step(step)
        progress = min(step, self.total_steps) / self.total_steps
        return float(
            self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))
        )


@dataclass
class FollowBound:
    """``lr(t) = fraction * bound(t)``, a fixed fraction of the current stability bound.

    Reads the bound from the statistics that :func:`nmf.run_sgd` passes to :meth:`observe`
    (``stats.bound``), so ``run_sgd`` must compute bounds (its default).
    """

    fraction: float = 0.9
    _bound: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        _positive("fraction", self.fraction)

    def observe(self, stats: Any) -> None:
        self._bound = stats.bound

    def __call__(self, step: int) -> float:
        _step(step)
        if self._bound is None or not math.isfinite(self._bound):
            raise RuntimeError(
                f"FollowBound needs a finite stats.bound, got {self._bound!r}: observe(stats) "
                "must come first, and nmf.run_sgd must run with compute_bound=True."
            )
        return float(self.fraction * self._bound)


SCHEDULES: dict[str, type] = {
    "constant": Constant,
    "step": StepDecay,
    "exponential": Exponential,
    "inverse_time": InverseTime,
    "cosine": Cosine,
    "follow_bound": FollowBound,
}


def make_schedule(name: str, **params: Any) -> Schedule:
    """Build a schedule by name (one of :data:`SCHEDULES`) from keyword parameters."""
    try:
        cls = SCHEDULES[name]
    except KeyError:
        raise ValueError(
            f"schedule name must be one of {sorted(SCHEDULES)}, got {name!r}."
        ) from None
    return cls(**params)
