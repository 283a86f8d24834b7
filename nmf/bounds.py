"""Stability bounds: the largest learning rates that one descent inequality certifies for a projected NMF step.

All bounds come from one inequality, derived in ``docs/theory/nmf_stability.md``. Write
``x = (W, H)``, ``R = W H - V``, ``g`` the gradient and ``d`` the step actually taken, i.e. the
projection of ``x - lr * g`` onto the convex box ``C_x = {y : 0 <= y <= box, |y - x| <= clip}``.
Along the segment ``x + t d`` the loss is a quartic whose curvature is at most ``M(s) ||d||^2`` with
``s = ||d||``::

    M(s) = (a + s)^2 + ||R||_F + a s + s^2 / 2,    a = sqrt(||W||_2^2 + ||H||_2^2),

so ``f(x + d) <= f(x) - (1 / lr - M(s) / 2) ||d||^2``: the step cannot increase the loss as long as
``lr * M(||d(lr)||) <= 2``. ``lr * M(||d(lr)||)`` increases with ``lr``, so the set of safe
learning rates is an interval ``[0, bound]`` and the functions below find its end.

A bound is sufficient, not necessary: larger rates may still descend (the local bound is 0.5-0.9 of
the largest stable constant rate in the tightness study), and the local and global bounds are
different sufficient conditions, neither of which dominates the other.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq

from nmf.problem import Array, StochasticNMF, projected_step
from nmf.validation import check_real


def _check_clip_and_box(clip: float | None, box: float | None) -> None:
    check_real("clip", clip, low=0.0, low_open=True, allow_none=True)
    check_real("box", box, low=0.0, low_open=True, allow_none=True)


def _iterate(
    problem: StochasticNMF, W: ArrayLike, H: ArrayLike, box: float | None
) -> tuple[Array, Array]:
    """``(W, H)`` as float64 arrays, checked to be a finite point of the feasible set."""
    if not isinstance(problem, StochasticNMF):
        raise TypeError(f"problem must be a StochasticNMF, got {type(problem).__name__}.")
    W, H = problem.as_factors(W, H)
    upper = np.inf if box is None else box
    for name, X in (("W", W), ("H", H)):
        if not np.all(np.isfinite(X)):
            found = "NaN" if np.isnan(X).any() else "inf"
            raise ValueError(f"{name} must be finite, found {found}.")
        lo, hi = X.min(), X.max()
        if not (lo >= 0 and hi <= upper):
            raise ValueError(
                f"{name} must have entries in [0, box] = [0, {upper}] (the feasible set), "
                f"found entries in [{lo:g}, {hi:g}]."
            )
    return W, H


def spectral_scale(W: Array, H: Array) -> float:
    """``a = sqrt(||W||_2^2 + ||H||_2^2)``, from the r x r Gram matrices (cheap for small rank)."""
    gram_W, gram_H = W.T @ W, H @ H.T
    if not (np.all(np.isfinite(gram_W)) and np.all(np.isfinite(gram_H))):
        return float("inf")  # factors beyond ~1e154: no step is provably safe
    w2 = np.linalg.eigvalsh(gram_W)[-1]
    h2 = np.linalg.eigvalsh(gram_H)[-1]
    return float(np.sqrt(max(w2, 0.0) + max(h2, 0.0)))


def curvature_bound(a: float, residual_norm: float, step_norm: float) -> float:
    """``M(s)``: bound on the loss's curvature (per unit squared step) along a step of length s."""
    s = step_norm
    return (a + s) ** 2 + residual_norm + a * s + 0.5 * s * s


def _bracket_end(base: float) -> float:
    """``2 / M(0)``, the largest ``lr`` the test can accept, capped at the largest float."""
    largest = float(np.finfo(float).max)
    return 2.0 / base if base > 2.0 / largest else largest


def _largest_root(fails: Callable[[float], float], hi: float) -> float:
    """Largest ``lr`` in ``[0, hi]`` with ``fails(lr) <= 0`` for an increasing ``fails``.

    The answer is checked, so rounding in the root finder can only make the bound smaller.
    """
    if fails(hi) <= 0:
        return hi
    if fails(0.0) > 0:
        return 0.0
    root = brentq(fails, 0.0, hi, xtol=1e-15, rtol=1e-12)
    for shrink in (1e-12, 1e-9, 1e-6, 1e-3):
        candidate = root * (1.0 - shrink)
        if fails(candidate) <= 0:
            return candidate
    lo = 0.0  # brentq wandered off: a plain bisection is slower but safe
    for _ in range(100):
        mid = 0.5 * (lo + root)
        lo, root = (mid, root) if fails(mid) <= 0 else (lo, mid)
    return lo


class StepLength:
    """``lr -> ||d(lr)||`` for the step of :func:`nmf.problem.projected_step`, exact and fast.

    Entry ``ij`` moves by ``min(lr |g_ij|, kappa_ij)``, where ``kappa_ij`` is the room left before
    the projection or the clip stops it (its value when moving down; ``box - value`` or no limit when
    moving up; at most ``clip``). So ``||d(lr)||^2 = lr^2 * sum of g^2 over entries not yet stopped +
    sum of kappa^2 over stopped ones``. Only entries that stop before ``lr_max`` are sorted; one
    evaluation then costs a binary search instead of a pass over the factors.
    """

    def __init__(
        self,
        factors: tuple[Array, ...],
        gradients: tuple[Array, ...],
        *,
        clip: float | None,
        box: float | None,
        lr_max: float,
    ) -> None:
        abs_gs = [np.abs(g.ravel()) for g in gradients]
        # Squares are taken of g / max|g| and kappa / max(kappa), and the two parts of the length
        # are combined by hypot, so that extreme data scales neither overflow nor underflow.
        g_scale = max(float(a.max(initial=0.0)) for a in abs_gs) or 1.0
        free_g2 = 0.0
        stops, kappas, gs = [], [], []
        for x, g, abs_g in zip(factors, gradients, abs_gs, strict=True):
            x = x.ravel()
            room = np.where(g.ravel() > 0, x, np.inf if box is None else box - x)
            if clip is not None:
                np.minimum(room, clip, out=room)
            is_early = room < lr_max * abs_g  # stops before lr_max (so g != 0)
            g_early, room_early = abs_g[is_early], room[is_early]
            g_free = abs_g[~is_early] / g_scale
            free_g2 += float(g_free @ g_free)  # summed directly: g@g - g_early@g_early cancels
            stops.append(room_early / g_early)
            kappas.append(room_early)
            gs.append(g_early / g_scale)
        stop = np.concatenate(stops)
        order = np.argsort(stop, kind="stable")
        self._stops = stop[order]
        kappa = np.concatenate(kappas)[order]
        k_scale = float(kappa.max(initial=0.0)) or 1.0
        self._stopped_k2 = np.concatenate([[0.0], np.cumsum((kappa / k_scale) ** 2)])
        moving_g2 = (np.concatenate(gs)[order]) ** 2
        self._moving_g2 = free_g2 + np.concatenate([np.cumsum(moving_g2[::-1])[::-1], [0.0]])
        self._g_scale, self._k_scale = g_scale, k_scale
        self.lr_max = lr_max

    def __call__(self, lr: float) -> float:
        k = int(np.searchsorted(self._stops, lr, side="right"))  # entries already stopped
        return math.hypot(
            lr * self._g_scale * math.sqrt(self._moving_g2[k]),
            self._k_scale * math.sqrt(self._stopped_k2[k]),
        )


def stability_bound(
    problem: StochasticNMF,
    W: ArrayLike,
    H: ArrayLike,
    *,
    clip: float | None = None,
    box: float | None = None,
    residual: Array | None = None,
    gradient: tuple[Array, Array] | None = None,
) -> float:
    """Largest learning rate for which the descent inequality certifies that one projected full-gradient step does not increase the loss.

    Every ``lr`` in ``[0, bound]`` gives ``loss(step(lr)) <= loss(W, H)``, where ``step`` is
    :func:`nmf.problem.projected_step` with the same ``clip`` and ``box``.

    Parameters
    ----------
    problem : StochasticNMF
    W, H : array-like
        The current iterate: real, finite and in the feasible set ``[0, box]``.
    clip : float or None
        Element-wise update clipping: no entry moves by more than ``clip`` in one step.
    box : float or None
        Upper bound on every entry of W and H (values are projected onto ``[0, box]``).
    residual, gradient : optional
        ``W @ H - V`` and the exact gradient, if the caller already has them.

    Returns
    -------
    float
        The bound. Where the gradient is zero (nothing moves, whatever ``lr``) it is the end of the
        bracket, ``2 / M(0) = 2 / (a^2 + ||R||)``; ``inf`` only in the degenerate case
        ``W = H = 0 = V``. At data scales so small that ``2 / M(0)`` overflows, the bracket is
        capped at the largest float.
    """
    _check_clip_and_box(clip, box)
    W, H = _iterate(problem, W, H, box)
    R = problem.residual(W, H) if residual is None else residual
    gW, gH = problem.gradient(W, H, R) if gradient is None else gradient
    a = spectral_scale(W, H)
    r_norm = float(np.linalg.norm(R))
    base = curvature_bound(a, r_norm, 0.0)
    if base == 0.0:
        return float("inf")
    if not math.isfinite(base):
        return 0.0  # the factors or the residual are too large to square

    hi = _bracket_end(base)
    step_norm = StepLength((W, H), (gW, gH), clip=clip, box=box, lr_max=hi)
    if step_norm(hi) == 0.0:  # a zero gradient: lr * M(0) <= 2 is the whole test
        return hi
    return _largest_root(lambda lr: lr * curvature_bound(a, r_norm, step_norm(lr)) - 2.0, hi)


def noisy_stability_bound(
    problem: StochasticNMF,
    W: ArrayLike,
    H: ArrayLike,
    *,
    clip: float | None = None,
    box: float | None = None,
    delta: float | None = 1e-3,
    residual: Array | None = None,
) -> float:
    """Largest learning rate for which one projected *stochastic* step descends in expectation.

    For every ``lr`` in ``[0, bound]``, ``E[loss(step(lr, g_hat))] <= loss(W, H)`` where ``g_hat``
    is the problem's stochastic gradient (mini-batch and/or Gaussian noise) and the expectation is
    over the oracle's randomness.

    Parameters
    ----------
    problem, W, H, clip, box, residual
        As in :func:`stability_bound`.
    delta : float in (0, 1) or None, default 1e-3
        Gaussian noise is unbounded, so without clipping the step length is only bounded with high
        probability. With ``delta`` the statement holds conditionally on the event
        ``||noise|| <= noise_std * (sqrt(N) + sqrt(2 log(1/delta)))``, of probability at least
        ``1 - delta`` (conditioning keeps the noise centred and shrinks its variance). With
        ``None`` the statement is unconditional, which needs ``clip`` or ``box``.

    Returns
    -------
    float
        The bound, ``0.0`` when the noise is too large for any guarantee (the noiseless gradient
        mapping is smaller than twice the noise's standard deviation), and also when the noise's
        variance is 0 or overflows (an exact fit, or data so small or large that squared
        gradients leave the range of a float).
    """
    _check_clip_and_box(clip, box)
    check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True, allow_none=True)
    W, H = _iterate(problem, W, H, box)
    if delta is None and clip is None and box is None and problem.noise_std > 0:
        raise ValueError(
            "delta=None (an unconditional guarantee) needs clip or box to bound the step."
        )
    R = problem.residual(W, H) if residual is None else residual
    gW, gH = problem.gradient(W, H, R)
    if not problem.is_stochastic:
        return stability_bound(problem, W, H, clip=clip, box=box, residual=R, gradient=(gW, gH))
    with np.errstate(over="ignore", invalid="ignore"):  # checked below
        variance = problem.gradient_noise_variance(W, H, R, gradient=(gW, gH))
        g_hat_max = problem.max_stochastic_gradient_norm(W, H, R, gradient=(gW, gH))
    if not (0.0 < variance < np.inf and math.isfinite(g_hat_max)):
        return 0.0  # squares under- or overflowed (extreme data scales): nothing is certified
    a = spectral_scale(W, H)
    r_norm = float(np.linalg.norm(R))
    base = curvature_bound(a, r_norm, 0.0)
    if not math.isfinite(base):
        return 0.0
    noise_sd = np.sqrt(variance)  # E||xi|| <= sqrt(E||xi||^2)
    N = problem.n_params
    sure_step = np.inf
    if clip is not None:
        sure_step = min(sure_step, clip * np.sqrt(N))
    if box is not None:
        sure_step = min(sure_step, box * np.sqrt(N))
    if problem.noise_std > 0:
        g_hat_max = g_hat_max + (
            np.inf
            if delta is None
            else problem.noise_std * (np.sqrt(N) + np.sqrt(2 * np.log(1 / delta)))
        )

    hi = _bracket_end(base)
    step_norm = StepLength((W, H), (gW, gH), clip=clip, box=box, lr_max=hi)

    def fails(lr: float) -> float:
        lr = max(lr, 5e-13 * hi)  # lr = 0 stands for the limit lr -> 0 of the gradient mapping
        mapping = step_norm(lr) / lr  # the noiseless gradient mapping, non-increasing in lr
        margin = mapping - noise_sd
        if margin <= noise_sd:
            return 1.0
        step = min(lr * g_hat_max, sure_step)
        return lr * curvature_bound(a, r_norm, step) / 2.0 + (noise_sd / margin) ** 2 - 1.0

    return _largest_root(fails, hi)


def global_stability_bound(problem: StochasticNMF, *, box: float) -> float:
    """A learning rate that is safe for *every* iterate when all entries are kept in ``[0, box]``.

    Over the box, ``||W||_2^2 + ||H||_2^2 <= box^2 r (m + n)`` and every residual entry is at most
    ``max(v_ij, r box^2 - v_ij)`` in size, so ``M`` is bounded independently of the iterate and of
    the step (which stays in the box). Update clipping does not change this bound.
    """
    if not isinstance(problem, StochasticNMF):
        raise TypeError(f"problem must be a StochasticNMF, got {type(problem).__name__}.")
    check_real("box", box, low=0.0, low_open=True)
    m, n = problem.shape
    r = problem.rank
    a2 = box * box * r * (m + n)
    r_max = float(np.linalg.norm(np.maximum(problem.V, r * box * box - problem.V)))
    return 2.0 / (a2 + r_max)


def empirical_max_stable_lr(
    problem: StochasticNMF,
    W: ArrayLike,
    H: ArrayLike,
    *,
    clip: float | None = None,
    box: float | None = None,
    start: float | None = None,
    max_factor: float = 1e6,
    n_grid: int = 400,
) -> float:
    """The largest ``lr`` such that full-gradient steps at every grid point up to it do not increase the loss.

    A geometric grid from ``start`` (default: the stability bound) to ``start * max_factor`` is
    scanned until the first step that increases the loss, then the crossing is refined by
    bisection. Used to report how tight :func:`stability_bound` is. ``problem``, ``W``, ``H``,
    ``clip`` and ``box`` are checked as in :func:`stability_bound`.
    """
    _check_clip_and_box(clip, box)
    W, H = _iterate(problem, W, H, box)
    R = problem.residual(W, H)
    f0 = 0.5 * float(np.linalg.norm(R) ** 2)
    gW, gH = problem.gradient(W, H, R)
    tol = 1e-12 * max(f0, 1.0)

    def stable(lr: float) -> bool:
        if not math.isfinite(lr):  # the grid overflowed: no finite step to take
            return False
        W1, H1 = projected_step(W, H, gW, gH, lr, clip=clip, box=box)
        f1 = problem.loss(W1, H1)
        return bool(np.isfinite(f1) and f1 <= f0 + tol)

    if start is None:
        start = stability_bound(problem, W, H, clip=clip, box=box, residual=R, gradient=(gW, gH))
    if not np.isfinite(start):
        return float(start)
    grid = start * np.geomspace(1.0, max_factor, n_grid)
    last_ok = 0.0
    for lr in grid:
        if not stable(lr):
            lo, hi = last_ok, lr
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if stable(mid) else (lo, mid)
            return lo
        last_ok = lr
    return last_ok
