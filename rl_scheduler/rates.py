"""From an action to a learning rate: the mapping :class:`rl_scheduler.LRScheduleEnv` applies and
:class:`rl_scheduler.policy.LearnedSchedule` replays (multiplicative, bound- or rate-relative,
anchored), the shield, and their validation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import Any

import numpy as np

from nmf.schedules import Cosine

DEFAULT_MAX_MULT = 2.0
"""The action in ``[-1, 1]`` multiplies the learning rate by ``max_mult ** action``, i.e. by a
factor in ``[1/2, 2]`` per action: fine enough to track a bound that changes by a few percent per
chunk, coarse enough to move the rate by ``2**30 ~ 1e9`` over a 30-action episode."""

DEFAULT_LR_LIMITS = (1e-6, 1e6)
"""The proposed rate stays within these multiples of the run's initial rate (avoids 0 and inf)."""

DEFAULT_SHIELD_FRACTION = 0.9
"""Default cap of the applied rate, as a fraction of the stability bound. The bound is computed
at the start of each chunk and holds for that iterate; later iterates of the chunk can have a
slightly lower bound. In the NMF trials a rate at 1.0 x the chunk's bound exceeded the bound of
a later step of the chunk on ~20% of steps, by up to 10%; with the 0.9 margin the worst step was
at 1.005 x its own bound. (Trained policies beat tuned step decay slightly more often at 1.0:
the shield trades a little speed for the guarantee, which covers exact-gradient steps only.)"""

RATE_ANCHORS = (None, "cosine")
"""Values of ``LRScheduleEnv(rate_anchor=...)``: ``None`` (``rate_range`` is relative to the run's
initial rate, ``bound_range`` to the bound, at every decision) or ``"cosine"`` (relative to that
reference annealed by cosine to 0 over the run's decisions: :func:`anchored_rate`)."""


def anchored_rate(anchor: str | None, lr0: float, decision: int, n_decisions: int) -> float:
    """The reference rate of decision ``decision`` (0-based) of ``n_decisions`` for ``rate_range``
    (with ``lr0 = 1``: the factor on the bound for ``bound_range``).

    ``None``: ``lr0``. ``"cosine"``: ``nmf.schedules.Cosine(lr0, total_steps=n_decisions)`` at
    ``decision``, the same closed form as the cosine baseline of the deep-network study, so the
    neutral action (0) reproduces that baseline's rates exactly; decisions past the budget get
    its end, 0 (then ``lr_limits``' floor).
    """
    if anchor is None:
        return lr0
    if anchor == "cosine":
        return Cosine(lr0, total_steps=n_decisions)(decision)
    raise ValueError(f"rate_anchor must be one of {RATE_ANCHORS}, got {anchor!r}.")


def check_rate_anchor(
    rate_anchor: Any,
    rate_range: tuple[float, float] | None,
    bound_range: tuple[float, float] | None = None,
) -> str | None:
    """``rate_anchor`` if it is one of :data:`RATE_ANCHORS` and, when set, ``rate_range`` or
    ``bound_range`` is set too (the anchor shapes the reference that their ``2**e`` multiplies)."""
    if rate_anchor not in RATE_ANCHORS:
        raise ValueError(f"rate_anchor must be one of {RATE_ANCHORS}, got {rate_anchor!r}.")
    if rate_anchor is not None and rate_range is None and bound_range is None:
        raise ValueError(
            "rate_anchor needs rate_range or bound_range (the anchor is what 2**e multiplies)."
        )
    return rate_anchor


def finite_positive(name: str, value: Any) -> float:
    """``value`` as a float if it is a finite number > 0 (not a bool), else a ValueError naming
    ``name``."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and value > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}.")
    return float(value)


def action_to_multiplier(action: Any, max_mult: float) -> float:
    """``max_mult ** a`` with ``a`` the action clipped to ``[-1, 1]`` (see :func:`checked_action`)."""
    return float(max_mult ** checked_action(action))


def checked_action(action: Any) -> float:
    """The action as one float clipped to ``[-1, 1]``.

    Raises
    ------
    TypeError
        If ``action`` is not a real number or an array of real numbers (strings, bools and
        boolean arrays are refused, not converted).
    ValueError
        If it does not hold exactly one finite number.
    """
    a = np.asarray(action)
    if a.dtype.kind not in "iuf":
        raise TypeError(
            f"action must be a real number or an array of one real number, got {action!r}."
        )
    a = a.astype(np.float64).reshape(-1)
    if a.size != 1 or not np.isfinite(a[0]):
        raise ValueError(f"action must be one finite number, got {action!r}.")
    return float(np.clip(a[0], -1.0, 1.0))


def bound_exponent(action: Any, bound_range: tuple[float, float]) -> float:
    """The exponent ``e`` of ``lr = reference * 2**e`` that an action in ``[-1, 1]`` selects
    (the reference is the bound for ``bound_range``, the run's initial rate for ``rate_range``).

    Piecewise linear: ``a = -1 -> lo``, ``a = 0 -> 0`` (the reference itself), ``a = 1 -> hi``,
    so a policy whose mean action is 0 (PPO's initial policy) starts at the reference.
    """
    a = checked_action(action)
    lo, hi = bound_range
    return -a * lo if a < 0 else a * hi


def shielded_lr(
    lr: float,
    action: Any,
    bound: float | None,
    *,
    max_mult: float,
    lr_min: float,
    lr_max: float,
    shield: bool,
    shield_fraction: float,
    bound_range: tuple[float, float] | None = None,
    rate_range: tuple[float, float] | None = None,
    initial_lr: float | None = None,
    anchor_factor: float = 1.0,
) -> tuple[float, float]:
    """The learning rate an action proposes, and the one actually applied.

    Without ``bound_range`` or ``rate_range``, ``proposed = clip(lr * max_mult ** action,
    lr_min, lr_max)``: the action multiplies the previous rate. With ``bound_range = (lo, hi)``
    and a known ``bound``, ``proposed = clip(bound * 2 ** e, lr_min, lr_max)`` with ``e`` from
    :func:`bound_exponent`: the action picks the rate relative to the current stability bound in
    one move (without a known bound the rate is kept). With ``rate_range = (lo, hi)``,
    ``proposed = clip(initial_lr * 2 ** e, lr_min, lr_max)``: the same one move relative to the
    run's initial rate (for tasks without a bound). ``anchor_factor`` multiplies either
    reference: callers with a ``rate_anchor`` pass its factor at the decision
    (:func:`anchored_rate` of 1). With ``shield`` and a known ``bound``,
    ``applied = min(proposed, shield_fraction * bound)``, else ``applied = proposed``. The next
    multiplicative action multiplies the *applied* rate, so a policy cannot wind its rate up far
    above the shield. Used by both the environment and :class:`rl_scheduler.policy.LearnedSchedule`.
    """
    known = bound is not None and math.isfinite(bound) and bound > 0
    if not (math.isfinite(anchor_factor) and anchor_factor >= 0):
        raise ValueError(f"anchor_factor must be a finite float >= 0, got {anchor_factor!r}.")
    if bound_range is not None and rate_range is not None:
        raise ValueError("give bound_range or rate_range, not both.")
    if rate_range is not None:
        if initial_lr is None or not (math.isfinite(initial_lr) and initial_lr > 0):
            raise ValueError(f"rate_range needs a finite initial_lr > 0, got {initial_lr!r}.")
        proposed = initial_lr * anchor_factor * 2.0 ** bound_exponent(action, rate_range)
    elif bound_range is None:
        proposed = lr * action_to_multiplier(action, max_mult)
    elif known:
        proposed = bound * anchor_factor * 2.0 ** bound_exponent(action, bound_range)
    else:
        checked_action(action)  # still refuse a malformed action
        proposed = lr
    proposed = float(np.clip(proposed, lr_min, lr_max))
    if shield and known:
        return proposed, min(proposed, shield_fraction * bound)
    return proposed, proposed


class DescentGuard:
    """Caps the rest of a decision's steps at the bound once a step above it raised the loss.

    The bound-relative agents may set rates above the stability bound (up to 4 times it), where
    the theory no longer vouches for descent. Where the bound is conservative that pays; where it
    is tight (on NMF problems larger or of higher rank than the training ones) a rate above it
    makes the loss jump, and a policy that never saw such jumps keeps choosing it. The guard
    watches the exact loss: when a step whose rate was above its iterate's bound raised it, every
    later step of the same decision runs at ``min(rate, fraction * bound)`` with the bound of its
    own iterate; the next decision starts unguarded. With exact gradients no step at or below
    the bound raises the loss (Theorem 1), so within a decision it rises on at most one step
    above the bound (the one that trips the guard). With gradient noise a step can raise the
    loss at any rate; the guard then trips more often, which only lowers rates. Steps whose
    statistics carry no
    finite bound > 0 (``nmf.run_sgd`` with ``compute_bound=False``, or a bound that overflowed
    to 0) are never capped and never trip it.

    Call :meth:`reset` for a new run and :meth:`rate` once per step, in order.
    """

    def __init__(self, fraction: float = DEFAULT_SHIELD_FRACTION) -> None:
        self.fraction = finite_positive("fraction", fraction)
        self.reset()

    def reset(self) -> None:
        self.tripped = False
        self.trips = 0
        """Decisions of the run on which the guard tripped."""
        self._last: tuple[float, float, float] | None = None

    def rate(self, lr: float, stats: Any, new_decision: bool) -> float:
        """The rate of the step at ``stats`` (its iterate's ``loss`` and ``bound``), given the
        decision's rate ``lr``; ``new_decision`` for the first step of a decision."""
        loss = float(stats.loss)
        bound = float(getattr(stats, "bound", math.nan))
        known = math.isfinite(bound) and bound > 0
        if new_decision:
            self.tripped = False
        elif not self.tripped and self._last is not None:
            last_loss, last_lr, last_bound = self._last
            if last_lr > last_bound and loss > last_loss:
                self.tripped = True
                self.trips += 1
        applied = min(lr, self.fraction * bound) if self.tripped and known else lr
        self._last = (loss, applied, bound if known else math.inf)
        return applied


def check_bound_range(bound_range: Any, name: str = "bound_range") -> tuple[float, float] | None:
    """``None`` or a pair ``(lo, hi)`` of finite floats with ``lo <= 0 <= hi`` and ``lo < hi``
    (``name``: the parameter named in the error)."""
    if bound_range is None:
        return None
    ok = isinstance(bound_range, Sequence) and not isinstance(bound_range, str)
    ok = ok and len(bound_range) == 2
    ok = ok and all(isinstance(v, Real) and not isinstance(v, bool) for v in bound_range)
    ok = ok and all(math.isfinite(v) for v in bound_range)
    if not (ok and bound_range[0] <= 0 <= bound_range[1] and bound_range[0] < bound_range[1]):
        raise ValueError(
            f"{name} must be None or a pair (lo, hi) of finite floats with lo <= 0 <= hi "
            f"and lo < hi (exponents of 2 around the reference rate), got {bound_range!r}."
        )
    return float(bound_range[0]), float(bound_range[1])
