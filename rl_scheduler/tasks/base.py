"""The Task protocol: something being trained that a learning-rate controller can drive.

A *task* owns a model, its data, its loss and its optimizer. A controller (an RL agent, a classic
schedule, GreedyLR) only ever asks it to take a chunk of optimizer steps at a given learning rate
and reads back a :class:`TaskStats`. The NMF task lives in :mod:`rl_scheduler.tasks.nmf_task`;
deep-network tasks implement the same protocol, so every comparison runs the same training code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any, Protocol, runtime_checkable

import numpy as np

from nmf.validation import is_integer as is_int  # one rule for integers: not bools


@dataclass(frozen=True)
class TaskStats:
    """What a task reports about its current iterate (after a reset or a chunk of steps).

    Attributes
    ----------
    loss : float
        Training loss of the current iterate (``inf`` or ``nan`` once training broke down).
    val_loss : float
        Held-out loss, or ``nan`` when the task has no validation data.
    grad_norm : float
        Euclidean norm of the (full or mini-batch) gradient at the current iterate.
    lr : float
        Learning rate used for the chunk that led here; ``nan`` right after a reset.
    bound : float
        Largest learning rate whose exact-gradient step the task's descent inequality certifies
        at the current iterate (its stability bound), or ``nan`` when the task has none. This is the only way a task reports a bound:
        the environment's shield and the observation features read it here.
    steps_done : int
        Optimizer steps taken since the last reset.
    diverged : bool
        Whether training broke down (non-finite loss or loss blow-up); the task then refuses to
        advance until it is reset.
    grad_noise : float
        RMS size of the gradient's noise, ``sqrt(E||g_hat - g||^2)``, when the task knows it
        (NMF: exactly; 0 for exact gradients), else ``nan``.
    """

    loss: float
    val_loss: float = math.nan
    grad_norm: float = math.nan
    lr: float = math.nan
    bound: float = math.nan
    steps_done: int = 0
    diverged: bool = False
    grad_noise: float = math.nan

    @property
    def has_bound(self) -> bool:
        """Whether :attr:`bound` is a usable (finite, positive) learning rate."""
        return math.isfinite(self.bound) and self.bound > 0


@runtime_checkable
class Task(Protocol):
    """A training run that advances by chunks of optimizer steps at a learning rate it is given.

    Implementations are expected to be deterministic given the ``seed`` of :meth:`reset`.
    A task with a stability bound reports it in :attr:`TaskStats.bound`; one without leaves it
    ``nan``.
    """

    @property
    def initial_lr(self) -> float:
        """A sensible learning rate to start the current run with (valid after :meth:`reset`)."""
        ...

    def reset(self, seed: int | None = None, **options: Any) -> TaskStats:
        """Start a fresh run (possibly on a new problem instance) and report its first stats."""
        ...

    def advance(self, lr: float, n_steps: int) -> TaskStats:
        """Take ``n_steps`` optimizer steps at learning rate ``lr``; stop early on divergence."""
        ...


SPLITS = ("train", "test")
"""Names of the instance splits of every task's instance sets."""

SPLIT_SEED_OFFSET = {"train": 0, "test": 1_000_000}
"""Instance seeds of a split start here, so train and held-out instances never share a seed."""

MAX_INSTANCES_PER_SPLIT = 100_000
"""Per value of ``seed``; keeps the seed ranges of different ``seed`` values and splits disjoint."""


def instance_seeds(split: str, n: int, seed: int) -> range:
    """The ``n`` instance seeds of ``split`` in the family ``seed`` (disjoint across both).

    Raises
    ------
    ValueError
        If ``split`` is not in :data:`SPLITS`, ``n`` not in ``[1, MAX_INSTANCES_PER_SPLIT]`` or
        ``seed`` not an integer >= 0.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    if not is_int(n) or not 1 <= n <= MAX_INSTANCES_PER_SPLIT:
        raise ValueError(f"n must be an integer in [1, {MAX_INSTANCES_PER_SPLIT}], got {n!r}.")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}.")
    first = SPLIT_SEED_OFFSET[split] + seed * MAX_INSTANCES_PER_SPLIT
    return range(first, first + n)


def check_advance(lr: Any, n_steps: Any, stats: TaskStats) -> None:
    """The argument and state checks every task's ``advance(lr, n_steps)`` starts with.

    Raises
    ------
    ValueError
        If ``lr`` is not a finite float >= 0 or ``n_steps`` not an integer >= 1.
    RuntimeError
        If the current run (``stats``) has diverged.
    """
    if not (isinstance(lr, Real) and math.isfinite(lr) and lr >= 0):
        raise ValueError(f"lr must be a finite float >= 0, got {lr!r}.")
    if not is_int(n_steps) or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}.")
    if stats.diverged:
        raise RuntimeError("the run has diverged; call reset() before advancing again.")


def pick_instance(n_instances: int, seed: int | None, instance: int | None) -> int:
    """The instance a ``reset(seed, instance=...)`` runs: ``instance`` if given, else a uniform draw.

    Raises
    ------
    ValueError
        If ``instance`` is not ``None`` or an index in ``[0, n_instances)``.
    """
    if instance is None:
        return int(np.random.default_rng(seed).integers(n_instances))
    if is_int(instance) and 0 <= instance < n_instances:
        return int(instance)
    raise ValueError(
        f"instance must be None or an index in [0, {n_instances - 1}], got {instance!r}."
    )
