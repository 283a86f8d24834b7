"""GreedyLR's declarations and variant rules: the constants, the hyperparameters and state
(declared once, with their validators), and the two rule sets ``"paper"`` and ``"transformers"``
that :class:`greedylr.GreedyLR` delegates to (see :mod:`greedylr.scheduler` for the rules)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from greedylr._validation import (
    check_bool,
    check_choice,
    check_int,
    check_real,
    per_group,
    reals,
)

if TYPE_CHECKING:
    from greedylr.scheduler import GreedyLR

VARIANTS: tuple[str, ...] = ("paper", "transformers")
#: ``variant="paper"``: default floor, as a fraction of each group's initial learning rate.
PAPER_MIN_LR_RATIO = 1e-3
#: ``variant="paper"``: default ceiling, as a multiple of each group's initial learning rate.
PAPER_MAX_LR_RATIO = 10.0
#: ``variant="transformers"``: transformers' absolute defaults, kept for parity.
TRANSFORMERS_MIN_LR = 1e-3
TRANSFORMERS_MAX_LR = 1.0

_STATE_FORMAT = 1
_EPOCH_DEPRECATION = (
    "Passing `epoch` to GreedyLR.step() is deprecated (as in torch's schedulers); it only sets "
    "`last_epoch`. Call step(metric) instead."
)


class NonFiniteMetricWarning(RuntimeWarning):
    """Emitted when :meth:`GreedyLR.step` receives a NaN or infinite metric."""


def _exact_sum(values: list[float]) -> float:
    """Correctly rounded sum of finite values (``+-inf`` only if the sum itself overflows)."""
    try:
        return math.fsum(values)
    except OverflowError:  # a partial sum overflowed: scale by a power of two and back
        return math.fsum(v * 2.0**-600 for v in values) * 2.0**600


def _read_lr(group: dict[str, Any]) -> float:
    return float(group["lr"])


def _write_lr(group: dict[str, Any], value: float) -> None:
    # Same convention as torch's schedulers: a tensor LR is updated in place, never replaced.
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(value)
    else:
        group["lr"] = value


def _initial_lrs(groups: list[dict[str, Any]], first: int = 0) -> list[float]:
    lrs = [_read_lr(g) for g in groups]
    for i, lr in enumerate(lrs, first):
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"param group {i} has lr={lr!r}; GreedyLR needs a finite lr >= 0.")
    return lrs


def _check_bounds_order(min_lrs: list[float], max_lrs: list[float], groups: Iterable[int]) -> None:
    for i in groups:
        if min_lrs[i] > max_lrs[i]:
            raise ValueError(
                f"min_lr must not exceed max_lr; param group {i} has min_lr={min_lrs[i]!r} > "
                f"max_lr={max_lrs[i]!r}."
            )


def _check_threshold(threshold_mode: Any, threshold: Any) -> tuple[str, float]:
    mode = check_choice("threshold_mode", threshold_mode, ("rel", "abs"))
    if mode == "abs":
        return mode, check_real("threshold", threshold, low=0.0)
    # A relative threshold >= 1 makes every call a non-improvement (inf * 0 is nan, inf * -x -inf).
    return mode, check_real(
        "threshold (with threshold_mode='rel')", threshold, low=0.0, high=1.0, high_open=True
    )


def _check_reset_start(name: str, value: Any) -> int | None:
    return None if value is None else check_int(f"{name} (or None to disable resets)", value, low=1)


def _check_bound_arg(name: str, value: Any, *, allow_inf: bool = False) -> Any:
    """A ``min_lr``/``max_lr`` argument as stored: ``None``, a number or a per-group list."""
    return None if value is None else reals(name, value, allow_inf=allow_inf)


def _check_window(name: str, value: Any) -> list[float]:
    if not isinstance(value, list | tuple):
        raise TypeError(f"{name} must be a list of finite numbers, got {value!r}.")
    return [check_real(f"{name}[{i}]", v) for i, v in enumerate(value)]


class _Field(NamedTuple):
    """One entry of the state: its ``state_dict`` key, validator and attribute.

    ``check(key, value)`` returns the validated value; with ``per_group`` it is
    ``check(key, value, n_groups)``. ``attr`` is the attribute name when it differs from the key.
    ``fallback(values)`` gives the value for state dicts saved before the key existed, from the
    values validated so far.
    """

    key: str
    check: Callable[..., Any]
    attr: str | None = None
    per_group: bool = False
    fallback: Callable[[dict[str, Any]], Any] | None = None

    @property
    def name(self) -> str:
        return self.attr or self.key

    def validate(self, value: Any, n_groups: int) -> Any:
        if self.per_group:
            return self.check(self.key, value, n_groups)
        return self.check(self.key, value)


#: The scalar hyperparameters, declared once: constructor argument = attribute = state key.
_HYPERPARAMETERS: tuple[_Field, ...] = (
    _Field("mode", partial(check_choice, allowed=("min", "max"))),
    _Field("factor", partial(check_real, low=0.0, high=1.0, low_open=True, high_open=True)),
    _Field("patience", check_int),
    _Field("threshold", partial(check_real, low=0.0)),  # < 1 when relative: see _configure
    _Field("threshold_mode", partial(check_choice, allowed=("rel", "abs"))),
    _Field("cooldown", check_int),
    _Field("warmup", check_int),
    _Field("eps", partial(check_real, low=0.0)),
    _Field("verbose", check_bool),
    _Field("smooth", check_bool),
    _Field("window_size", partial(check_int, low=1)),
    _Field("reset_start", _check_reset_start),
    _Field("on_nonfinite", partial(check_choice, allowed=("worse", "skip", "raise"))),
)
#: The per-group bounds: resolved lists, and the constructor arguments they were resolved from
#: (needed to give param groups added later their bounds; older state dicts lack them).
_BOUNDS: tuple[_Field, ...] = (
    _Field("min_lrs", per_group, per_group=True),
    _Field("max_lrs", partial(per_group, allow_inf=True), per_group=True),
    _Field("min_lr", _check_bound_arg, attr="min_lr_arg", fallback=lambda v: v["min_lrs"]),
    _Field(
        "max_lr",
        partial(_check_bound_arg, allow_inf=True),
        attr="max_lr_arg",
        fallback=lambda v: v["max_lrs"],
    ),
)
#: Progress: everything a resumed run needs besides the hyperparameters.
_PROGRESS: tuple[_Field, ...] = (
    _Field("base_lrs", per_group, per_group=True),
    _Field("best", partial(check_real, allow_inf=True)),
    _Field("num_good_epochs", check_int),
    _Field("num_bad_epochs", check_int),
    _Field("cooldown_counter", check_int),
    _Field("warmup_counter", check_int),
    _Field("floor_count", check_int),
    _Field("num_resets", check_int),
    _Field("last_epoch", partial(check_int, low=-1)),
    _Field("window", _check_window, attr="_window"),
    _Field("window_sum", partial(check_real, allow_inf=True), attr="_window_sum"),
    _Field("last_lr", per_group, attr="_last_lr", per_group=True),
)
_STATE = _HYPERPARAMETERS + _BOUNDS + _PROGRESS


# ---------------------------------------------------------------------------- the two rule sets


class _PaperRules:
    """``variant="paper"``: the rules in which the two variants differ (see the module docstring).

    A stateless strategy: the scheduler holds all state and passes itself in.
    """

    name = "paper"

    @staticmethod
    def default_bounds(lr: float) -> tuple[float, float]:
        """``min_lr``/``max_lr`` of a group starting at ``lr`` when none are given."""
        return PAPER_MIN_LR_RATIO * lr, PAPER_MAX_LR_RATIO * lr

    @staticmethod
    def start_outside_bounds(message: str, stacklevel: int) -> None:
        raise ValueError(
            message + " Pass bounds that contain the initial lr, or leave min_lr/max_lr "
            f"as None for {PAPER_MIN_LR_RATIO:g}x / {PAPER_MAX_LR_RATIO:g}x the initial lr."
        )

    @staticmethod
    def update(s: GreedyLR, current: float | None) -> list[float]:
        """Algorithm 2 of arXiv 2512.14527 (App. A.4), then this repository's reset rule;
        returns the learning rates after the step.

        Same order as the paper: compare with the best value, let a running cooldown (warmup)
        zero the bad (good) count, then change the LR when a count exceeds ``patience``. This is
        ReduceLROnPlateau's bookkeeping mirrored for increases. The reset counts non-improving
        calls made with every group at its floor (see the ``reset_start`` parameter).
        """
        improved = current is not None and s._is_better(current, s.best)
        if improved:
            s.best = current
            s.num_bad_epochs = 0
            s.num_good_epochs += 1
        else:
            s.num_bad_epochs += 1
            s.num_good_epochs = 0

        if s.cooldown_counter > 0:  # after a decrease: do not count bad steps
            s.cooldown_counter -= 1
            s.num_bad_epochs = 0
        if s.warmup_counter > 0:  # after an increase: do not count good steps
            s.warmup_counter -= 1
            s.num_good_epochs = 0

        if s.num_bad_epochs > s.patience:
            s._decrease()
            s.cooldown_counter = s.cooldown
            s.num_bad_epochs = 0
        elif s.num_good_epochs > s.patience:
            s._increase()
            s.warmup_counter = s.warmup
            s.num_good_epochs = 0

        lrs = s._current_lrs()
        if s.reset_start is not None:
            if not _PaperRules._at_floor(lrs, s.min_lrs, s.eps):
                s.floor_count = 0
            elif not improved:
                s.floor_count += 1
                if s.floor_count >= s.reset_start:
                    s._restart()
                    lrs = s._current_lrs()
        return lrs

    @staticmethod
    def _at_floor(lrs: list[float], min_lrs: list[float], eps: float) -> bool:
        """Every group within the relative ``eps`` of its floor."""
        scale = 1.0 + eps
        for lr, lo in zip(lrs, min_lrs, strict=True):
            if lr > lo * scale:
                return False
        return True

    @staticmethod
    def lr_range(min_lr: float, max_lr: float, base_lr: float) -> tuple[float, float]:
        """Where a group's LR can be: its bounds (which must contain the initial LR)."""
        return min_lr, max_lr

    @staticmethod
    def min_change(eps: float, old: float) -> float:
        """A move from ``old`` happens only if it is larger than this (relative ``eps``)."""
        return eps * old

    @staticmethod
    def after_decrease(s: GreedyLR) -> None:
        """Nothing: the paper variant's reset rule runs once per step, in :meth:`update`."""

    @staticmethod
    def after_increase(s: GreedyLR) -> None:
        """Nothing (see :meth:`after_decrease`)."""

    @staticmethod
    def rel_threshold(threshold: float, best: float) -> float:
        """Move the bar by ``threshold * |best|`` towards "better" (torch and transformers scale
        ``best``, which puts the bar on the wrong side of a negative ``best``). The same product,
        hence the same floats, whenever ``best >= 0``."""
        return -threshold if best < 0 else threshold

    @staticmethod
    def smoothed(s: GreedyLR, value: float) -> float:
        """Mean of the window, recomputed exactly on every call."""
        s._window.append(value)
        if len(s._window) > s.window_size:
            s._window.pop(0)
        s._window_sum = _exact_sum(s._window)
        return s._window_sum / len(s._window)


class _TransformersRules(_PaperRules):
    """``variant="transformers"``: step-for-step parity with ``transformers.GreedyLR``."""

    name = "transformers"

    @staticmethod
    def default_bounds(lr: float) -> tuple[float, float]:
        return TRANSFORMERS_MIN_LR, TRANSFORMERS_MAX_LR

    @staticmethod
    def start_outside_bounds(message: str, stacklevel: int) -> None:
        warnings.warn(
            message + " (variant='transformers' keeps transformers' behaviour.)",
            UserWarning,
            stacklevel=stacklevel,
        )

    @staticmethod
    def update(s: GreedyLR, current: float | None) -> list[float]:
        """``transformers.GreedyLR.step``, same order of operations; its reset rule lives in
        :meth:`after_decrease` and :meth:`after_increase`."""
        if s.cooldown_counter > 0:
            s.cooldown_counter -= 1
            s.num_bad_epochs = 0
            s.num_good_epochs = 0
        elif s.warmup_counter > 0:
            s.warmup_counter -= 1
            s.num_bad_epochs = 0
            s.num_good_epochs = 0
        else:
            if current is not None and s._is_better(current, s.best):
                s.best = current
                s.num_bad_epochs = 0
                s.num_good_epochs += 1
            else:
                s.num_bad_epochs += 1
                s.num_good_epochs = 0

            if s.num_good_epochs > s.patience:
                s._increase()
                s.warmup_counter = s.warmup
                s.num_good_epochs = 0
            elif s.num_bad_epochs > s.patience:
                s._decrease()
                # Set after a possible reset inside _decrease, exactly like transformers.
                s.cooldown_counter = s.cooldown
                s.num_bad_epochs = 0
        return s._current_lrs()

    @staticmethod
    def lr_range(min_lr: float, max_lr: float, base_lr: float) -> tuple[float, float]:
        # An initial LR outside the bounds is allowed; an LR only moves towards the bounds.
        return min(min_lr, base_lr), max(max_lr, base_lr)

    @staticmethod
    def min_change(eps: float, old: float) -> float:
        return eps  # absolute, as in transformers and the paper's Algorithm 3

    @staticmethod
    def after_decrease(s: GreedyLR) -> None:
        # transformers counts decrease attempts made with every group at or below its floor.
        if s.reset_start is None:
            return
        if all(lr <= lo for lr, lo in zip(s._current_lrs(), s.min_lrs, strict=True)):
            s.floor_count += 1
            if s.floor_count >= s.reset_start:
                s._restart()

    @staticmethod
    def after_increase(s: GreedyLR) -> None:
        s.floor_count = 0  # transformers restarts the countdown on every increase

    @staticmethod
    def rel_threshold(threshold: float, best: float) -> float:
        return threshold  # scales `best` itself, as in transformers, torch and Algorithm 3

    @staticmethod
    def smoothed(s: GreedyLR, value: float) -> float:
        # transformers' StreamingAverage, same order of operations (hence the same rounding).
        # Recomputed only once it overflows, which transformers never recovers from.
        s._window.append(value)
        s._window_sum += value
        if len(s._window) > s.window_size:
            s._window_sum -= s._window.pop(0)
        if not math.isfinite(s._window_sum):
            s._window_sum = _exact_sum(s._window)
        return s._window_sum / len(s._window)


_RULES: dict[str, type[_PaperRules]] = {r.name: r for r in (_PaperRules, _TransformersRules)}
