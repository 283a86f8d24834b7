"""GreedyLR: raise the learning rate while the monitored metric improves, lower it when it does not.

The rule (Subramanian, Krishnamoorthy and Murthy, arXiv:2512.14527): with a factor ``F`` in
``(0, 1)`` the learning rate is divided by ``F`` after a run of improvements and multiplied by ``F``
after a run of non-improvements, with patience, an improvement threshold, cooldown/warmup holds,
per-group bounds, an optional moving average of the metric and a reset after the rate has sat at
its floor for a while. The paper states the rule twice: a bare form that compares each loss with
the *previous* one (Algorithm 1, App. A.3; the form its theory analyses) and a detailed form that
compares with the best value so far (App. A.4, Algorithms 2-3). Both variants implement the
detailed form.

Two variants live behind one class, selected with ``variant=``; each is a small rule-set object
(``_PaperRules``, ``_TransformersRules``) holding only what differs, and the hyperparameters and
the state are declared once (``_HYPERPARAMETERS``, ``_BOUNDS``, ``_PROGRESS``), from which the
constructor's checks, :meth:`GreedyLR.state_dict` and :meth:`GreedyLR.load_state_dict` follow:

``"paper"`` (default)
    Follows arXiv 2512.14527, App. A.4, Algorithms 2-3 where they are explicit: every metric is
    compared with the best value so far, also during a hold; a *cooldown* (after a decrease) zeroes
    the bad-step count and a *warmup* (after an increase) the good-step count; a change happens
    when a count exceeds ``patience``; decreases are ``max(lr * F, min_lr)``. This is torch's
    ``ReduceLROnPlateau`` bookkeeping mirrored for increases. (The paper's prose in App. A.7
    describes the holds differently, as the rate continuing to move.) Where the paper is silent,
    ambiguous or self-contradictory, the following are this repository's choices, not the paper's:

    - ``eps`` is relative to the current rate (Algorithm 3: absolute);
    - ``min_lr``/``max_lr`` default to ``1e-3``/``10`` times each group's initial rate (the paper
      gives no defaults);
    - a relative threshold is a fraction of ``|best|`` (Algorithm 3 scales ``best`` itself: the
      same bar for ``best >= 0``, the wrong side of ``best`` for negative metrics), and the
      default threshold is absolute (transformers' ``1e-6``);
    - ``reset_start`` counts non-improving steps made with every group at its floor and restarts
      when the rate leaves it (the paper's printed floor test looks like a typo); the reset
      restores the initial rates and clears the smoothing window (the paper's reset does not
      restore the rate);
    - the moving average is recomputed exactly (``math.fsum``) on every call (the paper does not
      give its arithmetic);
    - non-finite metrics are handled by ``on_nonfinite`` (the paper does not address them).

``"transformers"``
    Step-for-step parity with ``transformers.GreedyLR`` (transformers 5.23): during a hold the
    metric is not compared at all and both counters are cleared; ``reset_start`` counts *decrease
    attempts* made while every group is at its floor; ``eps`` is absolute; ``min_lr=1e-3`` and
    ``max_lr=1.0`` are absolute defaults; a relative threshold scales ``best`` itself, as in
    Algorithm 3 (the wrong side of ``best`` when it is negative); the moving average is a running
    sum. The same finite metric sequence gives the same learning rates, bit for bit (unless the
    running sum overflows: transformers then stays at ``inf`` for good, here the sum is
    recomputed from the window).

``docs/greedylr_usage.md`` compares the paper and both variants rule by rule, with sections cited.

Both variants share the handling of non-finite metrics (see ``on_nonfinite``), which differs from
transformers on purpose: there a single NaN poisons the moving average for ``window_size`` steps and
``-inf`` (in ``"min"`` mode) becomes a best value that can never be beaten.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, Literal, NamedTuple, SupportsFloat

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau

from greedylr._validation import (
    check_bool,
    check_choice,
    check_int,
    check_real,
    per_group,
    real_scalar,
    reals,
)

__all__ = [
    "GreedyLR",
    "NonFiniteMetricWarning",
    "PAPER_MAX_LR_RATIO",
    "PAPER_MIN_LR_RATIO",
    "TRANSFORMERS_MAX_LR",
    "TRANSFORMERS_MIN_LR",
    "VARIANTS",
]

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


class GreedyLR(ReduceLROnPlateau):
    r"""Loss-feedback learning-rate scheduler for any :class:`torch.optim.Optimizer`.

    Call :meth:`step` with the monitored metric after each evaluation (or each training step).
    After more than ``patience`` consecutive improvements every group's learning rate is divided
    by ``factor``; after more than ``patience`` consecutive non-improvements it is multiplied by
    ``factor``. Rates are clamped to ``[min_lr, max_lr]`` per group, so the ratios between groups
    are preserved until a group reaches a bound (and, with the relative default bounds of the
    paper variant, even then).

    ``GreedyLR`` subclasses :class:`torch.optim.lr_scheduler.ReduceLROnPlateau` (itself an
    :class:`~torch.optim.lr_scheduler.LRScheduler`), so code that special-cases metric-driven
    schedulers treats it correctly: PyTorch Lightning steps it with the ``"monitor"`` value and
    the Hugging Face ``Trainer`` steps it after each evaluation with ``metric_for_best_model``.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Wrapped optimizer. All its param groups are scheduled.
    mode : {"min", "max"}, default "min"
        ``"min"``: a lower metric is better (a loss). ``"max"``: a higher metric is better.
    factor : float, default 0.95
        ``F`` in the open interval ``(0, 1)``. The LR is divided by ``F`` on improvement and
        multiplied by ``F`` on worsening. ``0`` and negative values are rejected (transformers
        accepts them and then produces a zero or sign-flipping LR).
    patience : int, default 10
        A change happens on the ``patience + 1``-th consecutive good (or bad) step.
    threshold : float, default 1e-6
        Minimum improvement over the best value that counts as an improvement (``>= 0``, and
        ``< 1`` with ``threshold_mode="rel"``).
    threshold_mode : {"rel", "abs"}, default "abs"
        ``"abs"``: better means ``metric < best - threshold`` (``> best + threshold`` in max
        mode). ``"rel"``, paper variant: ``metric < best - threshold * |best|``
        (``> best + threshold * |best|``). ``"rel"``, transformers variant:
        ``metric < best * (1 - threshold)`` (``> best * (1 + threshold)``), as in the paper's
        Algorithm 3, transformers and torch; for a negative ``best`` that bar lies on the wrong
        side of ``best``, so worsening metrics count as improvements. The paper only has the
        relative form; the ``"abs"`` default is transformers'.
    cooldown : int, default 0
        Hold after a decrease. Paper variant (as Algorithm 2 of the paper): bad steps are ignored
        for ``cooldown`` steps (improvements still count). Transformers variant: the next
        ``cooldown`` steps are skipped entirely.
    warmup : int, default 0
        Hold after an increase. Paper variant (as Algorithm 2 of the paper): good steps are
        ignored for ``warmup`` steps (worsening still counts). Transformers variant: the next
        ``warmup`` steps are skipped entirely (only when no cooldown is running).
    min_lr, max_lr : float or sequence of float, optional
        Per-group bounds: a number for every group, or one number per group in a list, tuple or
        1-D array/tensor (``max_lr`` may be ``math.inf``).
        ``None`` selects the variant's default: ``1e-3``/``10`` times each group's initial LR for
        ``"paper"`` (our choice; the paper gives no defaults), the absolute ``1e-3``/``1.0`` of
        transformers for ``"transformers"``.
        In the paper variant an initial LR outside ``[min_lr, max_lr]`` raises ``ValueError``; in
        the transformers variant it only warns (decreases below ``min_lr``, or increases above
        ``max_lr``, are then silent no-ops, exactly as in transformers).
        A param group added later with ``optimizer.add_param_group`` is scheduled from the next
        :meth:`step` on, from its current LR, with bounds resolved in the same way (the number,
        or the variant's default for ``None``). A per-group list cannot be extended: the next
        :meth:`step` raises ``ValueError`` before changing anything, unless the new group's
        bounds have been appended to :attr:`min_lrs` and :attr:`max_lrs` by hand.
    eps : float, default 1e-8
        Changes not larger than ``eps`` are skipped. Paper variant: relative to the current LR
        (``|new - old| > eps * old``; our choice, the paper's Algorithm 3 uses an absolute
        ``eps``), so it never freezes small fine-tuning LRs. Transformers variant: absolute, as in
        the paper and transformers (an LR below about ``eps / (1 - F)`` can no longer move).
    verbose : bool, default False
        Print a line for every change and reset.
    smooth : bool, default False
        Compare a moving average of the last ``window_size`` finite metrics instead of the raw
        metric. Paper variant: ``math.fsum(window) / len(window)``, exact on every call.
        Transformers variant: transformers' running sum (same rounding), recomputed from the window
        only when it overflows; a huge value leaving the window can still cancel the sum there.
    window_size : int, default 50
        Length of the moving-average window (``>= 1``).
    reset_start : int or None, default 500
        After the LR has sat at its floor for ``reset_start`` units every group is reset to its
        initial LR and the best value, counters, holds and smoothing window are cleared.
        Paper variant: the unit is a non-improving :meth:`step` call made with every group at its
        floor (within the relative ``eps``; a floor of ``0`` is never reached); improving calls
        at the floor are not counted, and leaving the floor restarts the count, so a run that
        keeps improving is never reset. Transformers variant: the unit is a decrease attempt
        made while every group is at or below its floor (transformers counts attempts, not
        steps, so with ``patience=10`` "500" means about 5500 steps). ``None`` disables the
        reset. Must be ``>= 1`` (transformers' ``0`` behaves exactly like ``1``). Both variants
        restore the initial LRs on a reset; the paper's Algorithm 3 does not, and its floor test
        is ambiguous, so the paper variant's counting rule is our choice.
    variant : {"paper", "transformers"}, default "paper"
        Which rule set to follow; see the module docstring and ``docs/greedylr_usage.md``.
    on_nonfinite : {"worse", "skip", "raise"}, default "worse"
        What a NaN or infinite metric does. ``"worse"``: it counts as a non-improvement but never
        enters the smoothing window or the best value. ``"skip"``: the call is ignored entirely
        (no counter, hold or epoch moves). ``"raise"``: ``ValueError``. ``"worse"`` and ``"skip"``
        emit a :class:`NonFiniteMetricWarning`.

    Attributes
    ----------
    base_lrs : list of float
        Initial learning rate of each group (the reset target).
    min_lrs, max_lrs : list of float
        Resolved per-group bounds.
    min_lr_arg, max_lr_arg : None, float or list of float
        ``min_lr``/``max_lr`` as given (arrays as lists), used to bound groups added later.
    best : float
        Best (smoothed) metric since the start or the last reset.
    num_good_epochs, num_bad_epochs : int
        Current runs of improving / non-improving steps.
    cooldown_counter, warmup_counter : int
        Remaining hold steps.
    num_resets : int
        Number of resets so far.
    last_epoch : int
        Number of (non-skipped) :meth:`step` calls.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> sched = GreedyLR(opt, factor=0.5, patience=0)
    >>> for loss in [1.0, 0.9, 0.95]:
    ...     sched.step(loss)
    >>> [round(lr, 6) for lr in sched.get_last_lr()]
    [0.2]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: Literal["min", "max"] = "min",
        factor: float = 0.95,
        patience: int = 10,
        threshold: float = 1e-6,
        threshold_mode: Literal["rel", "abs"] = "abs",
        cooldown: int = 0,
        warmup: int = 0,
        min_lr: float | Sequence[float] | None = None,
        max_lr: float | Sequence[float] | None = None,
        eps: float = 1e-8,
        verbose: bool = False,
        smooth: bool = False,
        window_size: int = 50,
        reset_start: int | None = 500,
        *,
        variant: Literal["paper", "transformers"] = "paper",
        on_nonfinite: Literal["worse", "skip", "raise"] = "worse",
    ) -> None:
        arguments = dict(locals())  # the hyperparameters are declared once, in _HYPERPARAMETERS
        # ReduceLROnPlateau.__init__ is deliberately not called: it would install its own
        # (decrease-only) state. Everything the LRScheduler API relies on is set here.
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer)!r}.")
        self.optimizer = optimizer
        self.variant = variant
        self.base_lrs: list[float] = _initial_lrs(optimizer.param_groups)
        min_lr_arg = _check_bound_arg("min_lr", min_lr)
        max_lr_arg = _check_bound_arg("max_lr", max_lr, allow_inf=True)
        self._configure(
            arguments,
            min_lrs=self._resolve_bounds("min_lr", min_lr_arg, self.base_lrs),
            max_lrs=self._resolve_bounds("max_lr", max_lr_arg, self.base_lrs),
            min_lr_arg=min_lr_arg,
            max_lr_arg=max_lr_arg,
        )
        self._check_start(range(len(self.base_lrs)), stacklevel=3)

        self.last_epoch = 0
        self.num_resets = 0
        self._clear_progress()
        self._last_lr: list[float] = self._current_lrs()

    # ------------------------------------------------------------------ configuration

    @property
    def variant(self) -> str:
        """``"paper"`` or ``"transformers"``: which rule set the scheduler follows."""
        return self._rules.name

    @variant.setter
    def variant(self, value: Any) -> None:
        self._rules = _RULES[check_choice("variant", value, VARIANTS)]

    def _configure(
        self,
        values: dict[str, Any],
        *,
        min_lrs: list[float],
        max_lrs: list[float],
        min_lr_arg: Any,
        max_lr_arg: Any,
    ) -> None:
        """Validate the declared hyperparameters in ``values`` and the bounds, then set them."""
        checked = {f.key: f.validate(values[f.key], 0) for f in _HYPERPARAMETERS}
        checked["threshold_mode"], checked["threshold"] = _check_threshold(
            checked["threshold_mode"], checked["threshold"]
        )
        _check_bounds_order(min_lrs, max_lrs, range(len(min_lrs)))
        for key, value in checked.items():
            setattr(self, key, value)
        self.min_lrs, self.max_lrs = list(min_lrs), list(max_lrs)
        self.min_lr_arg, self.max_lr_arg = min_lr_arg, max_lr_arg
        # ReduceLROnPlateau compatibility: the value a fresh `best` starts from.
        self.mode_worse = math.inf if self.mode == "min" else -math.inf

    def _resolve_bounds(self, name: str, arg: Any, lrs: list[float]) -> list[float]:
        """Per-group bounds for groups starting at ``lrs`` from a ``min_lr``/``max_lr`` argument."""
        if arg is None:
            side = 0 if name == "min_lr" else 1
            return [self._rules.default_bounds(lr)[side] for lr in lrs]
        return per_group(name, arg, len(lrs), allow_inf=True)  # arg is already checked

    def _check_start(self, groups: Iterable[int], stacklevel: int) -> None:
        """Each listed group's initial LR must lie in its bounds (the paper variant raises, the
        transformers variant warns, as transformers silently ignores it)."""
        for i in groups:
            lr, lo, hi = self.base_lrs[i], self.min_lrs[i], self.max_lrs[i]
            if lo <= lr <= hi:
                continue
            side = f"min_lr={lo!r}" if lr < lo else f"max_lr={hi!r}"
            effect = "decreases" if lr < lo else "increases"
            self._rules.start_outside_bounds(
                f"param group {i} starts at lr={lr!r}, outside [min_lr, max_lr] ({side}); "
                f"{effect} of that group would be silent no-ops.",
                stacklevel + 1,
            )

    def _adopt_new_groups(self, stacklevel: int) -> None:
        """Schedule param groups added with ``optimizer.add_param_group`` since the last call.

        A new group starts from its current LR (its reset target) with bounds resolved from the
        constructor's ``min_lr``/``max_lr`` like those of the first groups: the same number, or
        the variant's default for ``None``. Bounds given as a per-group list cannot be extended:
        unless the new groups' entries were appended to :attr:`min_lrs`/:attr:`max_lrs` by hand,
        that raises ``ValueError``. Everything is checked before anything changes.
        """
        groups = self.optimizer.param_groups
        n_old, n_new = len(self.base_lrs), len(groups)
        if n_new == n_old:
            return
        if n_new < n_old:
            raise ValueError(
                f"the optimizer has {n_new} param groups but this GreedyLR schedules {n_old}; "
                "param groups cannot be removed."
            )
        new_lrs = _initial_lrs(groups[n_old:], first=n_old)
        bounds = []
        for name, current, arg, inf in (
            ("min_lr", self.min_lrs, self.min_lr_arg, False),
            ("max_lr", self.max_lrs, self.max_lr_arg, True),
        ):
            appended = per_group(f"{name}s", current[n_old:], len(current) - n_old, allow_inf=inf)
            todo = new_lrs[len(appended) :]  # groups whose bound was not appended by hand
            if len(appended) > len(new_lrs) or (todo and isinstance(arg, list)):
                raise ValueError(
                    f"the optimizer now has {n_new} param groups (was {n_old}) and {name} was "
                    f"given per param group, so the new groups have no {name}. Append exactly "
                    f"one bound per new group to scheduler.{name}s before the next step, or "
                    f"pass {name} as a single number or None."
                )
            extra = self._resolve_bounds(name, arg, todo) if todo else []
            bounds.append(current[:n_old] + appended + extra)
        min_lrs, max_lrs = bounds
        _check_bounds_order(min_lrs, max_lrs, range(n_old, n_new))
        before = (self.base_lrs, self.min_lrs, self.max_lrs)
        self.base_lrs, self.min_lrs, self.max_lrs = self.base_lrs + new_lrs, min_lrs, max_lrs
        try:
            self._check_start(range(n_old, n_new), stacklevel + 1)
        except ValueError:
            self.base_lrs, self.min_lrs, self.max_lrs = before
            raise
        self._last_lr = self._last_lr + new_lrs

    def _clear_progress(self) -> None:
        """Forget the best value, counters, holds, floor count and smoothing window."""
        self.best = self.mode_worse
        self.num_good_epochs = 0
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.warmup_counter = 0
        self.floor_count = 0
        self._window: list[float] = []
        self._window_sum = 0.0

    # ------------------------------------------------------------------ public API

    @property
    def in_warmup(self) -> bool:
        """Whether an increase hold is running."""
        return self.warmup_counter > 0

    def get_last_lr(self) -> list[float]:
        """Learning rate of each param group after the last :meth:`step` (a fresh list)."""
        return list(self._last_lr)

    def step(self, metrics: SupportsFloat, epoch: int | None = None) -> None:  # type: ignore[override]
        """Feed one metric value and update the learning rates.

        Parameters
        ----------
        metrics : float or one-element tensor
            The monitored quantity (a loss in ``"min"`` mode, e.g. accuracy in ``"max"`` mode): a
            real number (numpy scalars included) or a one-element tensor or array; bools and
            strings raise ``TypeError``.
        epoch : int, optional
            Deprecated, as in torch's schedulers: only overrides :attr:`last_epoch` (an integer
            ``>= 0``).

        Notes
        -----
        Param groups added with ``optimizer.add_param_group`` are scheduled from the first call
        after they were added; see ``min_lr``/``max_lr`` for their bounds. An invalid argument
        raises before anything changes.
        """
        value = metrics if type(metrics) is float else real_scalar("metrics", metrics)
        if epoch is not None:
            epoch = check_int("epoch", epoch)
        if len(self.optimizer.param_groups) != len(self.base_lrs):
            self._adopt_new_groups(stacklevel=3)
        if not math.isfinite(value):
            if self.on_nonfinite == "raise":
                raise ValueError(
                    f"GreedyLR.step() got a non-finite metric ({value!r}) and on_nonfinite='raise'."
                )
            action = (
                "counted as a non-improvement"
                if self.on_nonfinite == "worse"
                else "ignored (on_nonfinite='skip')"
            )
            warnings.warn(
                f"GreedyLR.step() got a non-finite metric ({value!r}); {action}. It does not "
                "enter the smoothing window or the best value.",
                NonFiniteMetricWarning,
                stacklevel=2,
            )
            if self.on_nonfinite == "skip":
                return
            current: float | None = None
        else:
            current = self._rules.smoothed(self, value) if self.smooth else value
            if not math.isfinite(current):  # overflow of the running sum: treat as worse
                current = None

        if epoch is not None:
            warnings.warn(_EPOCH_DEPRECATION, UserWarning, stacklevel=2)
            self.last_epoch = epoch
        else:
            self.last_epoch += 1
        self._last_lr = self._rules.update(self, current)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: hyperparameters, progress and the current LRs.

        Only plain Python scalars, strings and lists, so it survives
        ``torch.load(..., weights_only=True)`` (what the Hugging Face ``Trainer`` uses) and JSON
        (apart from ``inf`` in ``best``/``max_lrs``). Param groups added to the optimizer since
        the last :meth:`step` are included (see :meth:`step`).
        """
        self._adopt_new_groups(stacklevel=3)
        state: dict[str, Any] = {"format": _STATE_FORMAT, "variant": self.variant}
        for field in _STATE:
            value = getattr(self, field.name)
            state[field.key] = list(value) if isinstance(value, list) else value
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` and write its learning rates into the optimizer.

        Everything is restored, the hyperparameters (``variant``, ``factor``, bounds, ``verbose``,
        ...) included: the saved values replace those given to the constructor. The optimizer's
        LRs are set from the saved state, so a resumed run continues identically whether or not
        the optimizer's own state dict is loaded as well. An invalid state (including a saved LR
        outside its group's ``[min_lr, max_lr]``) raises before anything is changed.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict)!r}.")
        fmt = state_dict.get("format")
        if type(fmt) is not int or fmt != _STATE_FORMAT:
            raise ValueError(
                f"not a GreedyLR state dict of format {_STATE_FORMAT} (got format={fmt!r})."
            )
        required = {"variant"} | {f.key for f in _STATE if f.fallback is None}
        missing = sorted(required - set(state_dict))
        if missing:
            raise ValueError(f"state_dict is missing the keys {missing}.")
        n_groups = len(self.optimizer.param_groups)
        for field in _STATE:
            if field.per_group and len(state_dict[field.key]) != n_groups:
                raise ValueError(
                    f"state_dict[{field.key!r}] has {len(state_dict[field.key])} entries but the "
                    f"optimizer has {n_groups} param groups."
                )
        before = dict(self.__dict__)  # attributes are replaced below, never mutated in place
        try:
            self._load_checked(state_dict, n_groups)
        except Exception:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        for group, lr in zip(self.optimizer.param_groups, self._last_lr, strict=True):
            _write_lr(group, lr)

    def _load_checked(self, state_dict: dict[str, Any], n_groups: int) -> None:
        self.variant = state_dict["variant"]
        values: dict[str, Any] = {}
        for field in _BOUNDS + _PROGRESS:
            raw = state_dict[field.key] if field.key in state_dict else field.fallback(values)  # type: ignore[misc]
            values[field.key] = field.validate(raw, n_groups)
        self._configure(
            state_dict,
            min_lrs=values.pop("min_lrs"),
            max_lrs=values.pop("max_lrs"),
            min_lr_arg=values.pop("min_lr"),
            max_lr_arg=values.pop("max_lr"),
        )
        for field in _PROGRESS:
            setattr(self, field.name, values[field.key])
        if len(self._window) > self.window_size:
            raise ValueError(f"state_dict['window'] has more than window_size={self.window_size}.")
        for key in ("base_lrs", "last_lr"):
            for i, lr in enumerate(values[key]):
                lo, hi = self._rules.lr_range(self.min_lrs[i], self.max_lrs[i], self.base_lrs[i])
                if not lo <= lr <= hi:
                    raise ValueError(
                        f"state_dict[{key!r}][{i}]={lr!r} lies outside [{lo!r}, {hi!r}], the "
                        f"range the {self.variant} variant keeps param group {i}'s lr in "
                        "([min_lr, max_lr]; see GreedyLR's min_lr)."
                    )

    # ------------------------------------------------------------------ LR moves

    def _moved_enough(self, old: float, new: float) -> bool:
        return abs(new - old) > self._rules.min_change(self.eps, old)

    def _decrease(self) -> None:
        for i, group in enumerate(self.optimizer.param_groups):
            old = _read_lr(group)
            new = max(old * self.factor, self.min_lrs[i])
            if new < old and self._moved_enough(old, new):
                _write_lr(group, new)
                if self.verbose:
                    print(
                        f"GreedyLR step {self.last_epoch}: lowering lr of group {i} to {new:.4e}."
                    )
        self._rules.after_decrease(self)

    def _increase(self) -> None:
        for i, group in enumerate(self.optimizer.param_groups):
            old = _read_lr(group)
            new = min(old / self.factor, self.max_lrs[i])
            if new > old and self._moved_enough(old, new):
                _write_lr(group, new)
                if self.verbose:
                    print(f"GreedyLR step {self.last_epoch}: raising lr of group {i} to {new:.4e}.")
        self._rules.after_increase(self)

    def _restart(self) -> None:
        """Reset every group to its initial LR and forget all progress."""
        for group, lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            _write_lr(group, lr)
        self._clear_progress()
        self.num_resets += 1
        if self.verbose:
            print(f"GreedyLR step {self.last_epoch}: reset to the initial learning rates.")

    # ------------------------------------------------------------------ helpers

    def _is_better(self, a: float, best: float) -> bool:
        t = self.threshold
        if self.threshold_mode == "abs":
            return a < best - t if self.mode == "min" else a > best + t
        t = self._rules.rel_threshold(t, best)
        return a < best * (1.0 - t) if self.mode == "min" else a > best * (1.0 + t)

    def _current_lrs(self) -> list[float]:
        return [_read_lr(g) for g in self.optimizer.param_groups]

    # ReduceLROnPlateau's private hooks, kept consistent in case third-party code calls them.
    def _reduce_lr(self, epoch: Any = None) -> None:
        self._decrease()

    def _reset(self) -> None:
        self._clear_progress()

    def _init_is_better(self, mode: Any, threshold: Any, threshold_mode: Any) -> None:
        self.mode = check_choice("mode", mode, ("min", "max"))
        self.threshold_mode, self.threshold = _check_threshold(threshold_mode, threshold)
        self.mode_worse = math.inf if self.mode == "min" else -math.inf

    def __repr__(self) -> str:
        return (
            f"GreedyLR(variant={self.variant!r}, mode={self.mode!r}, factor={self.factor}, "
            f"patience={self.patience}, lrs={self._last_lr})"
        )
