"""Projected SGD with update clipping: a stepper that any schedule (or RL agent) can drive."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from nmf.bounds import noisy_stability_bound, stability_bound
from nmf.problem import Array, StochasticNMF, _projected_step, frobenius_norm, stream_rng
from nmf.schedules import Schedule
from nmf.validation import as_real_array, check_integer, check_real, is_real

DIVERGENCE_FACTOR = 1e6
"""A run counts as diverged once its loss exceeds this multiple of the initial loss (or is not finite)."""


@dataclass(frozen=True)
class StepStats:
    """What is known about the current iterate before its step is taken."""

    step: int
    loss: float
    grad_norm: float
    bound: float
    """Deterministic stability bound (``nan`` when not computed)."""
    noisy_bound: float
    """Bound for descent in expectation under the problem's noise (``nan`` when not computed)."""
    grad_noise: float = math.nan
    """RMS size of the stochastic gradient's noise, ``sqrt(E||g_hat - g||^2)`` (exact, from
    :meth:`~nmf.StochasticNMF.gradient_noise_variance`; 0 for exact gradients)."""


@dataclass
class Trajectory:
    """Everything :func:`run_sgd` records; arrays stop early if the run diverged."""

    losses: list[float] = field(default_factory=list)
    """Loss before each step, plus the final loss: ``n_steps + 1`` values unless diverged."""
    lrs: list[float] = field(default_factory=list)
    bounds: list[float] = field(default_factory=list)
    noisy_bounds: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    """Seconds since the start, after each step."""
    diverged: bool = False
    W: Array | None = None
    H: Array | None = None

    @property
    def final_loss(self) -> float:
        return math.inf if self.diverged else self.losses[-1]

    @property
    def wall_time(self) -> float:
        return self.times[-1] if self.times else 0.0


def _start(name: str, X: ArrayLike) -> Array:
    """A float64 copy of a user's starting factor, checked to be finite and non-negative."""
    X = as_real_array(name, X)
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} must be finite and >= 0, found NaN or inf.")
    if np.any(X < 0):
        raise ValueError(f"{name} must be finite and >= 0, found minimum {X.min():g}.")
    return X


def _loss_from_residual(R: Array) -> float:
    """``0.5 * ||R||_F^2``: the loss of an iterate from its residual (one formula, so that the
    certifying check compares like with like)."""
    return 0.5 * float(np.einsum("ij,ij->", R, R))


class ProjectedSGD:
    """Projected stochastic gradient descent on a :class:`StochasticNMF`, one step at a time.

    Parameters
    ----------
    problem : StochasticNMF
    clip : float or None
        Element-wise update clipping: no entry moves by more than ``clip`` per step.
    box : float or None
        Keep every entry of W and H in ``[0, box]``.
    seed : int or None
        An integer >= 0 seeds the initialisation (``problem.init(seed)``) and the gradient noise,
        through independent streams (:func:`nmf.problem.stream_rng`); ``None`` uses
        ``problem.seed`` (fresh entropy if that is ``None`` too).
    compute_bound : bool, default True
        Compute the deterministic stability bound of every iterate (needed by
        :class:`FollowBound`; costs about two or three extra passes over the factors).
    compute_noisy_bound : bool, default False
        Also compute the bound for descent in expectation (:func:`nmf.noisy_stability_bound`) of
        every iterate of a stochastic problem; it costs about as much again, so it is opt-in
        (``StepStats.noisy_bound`` is ``nan`` otherwise). For an exact-gradient problem it equals
        the deterministic bound and costs nothing.
    W0, H0 : array-like, optional
        Starting point instead of ``problem.init(seed)``: real, finite, non-negative, of shapes
        ``(m, rank)`` and ``(rank, n)``. With ``box``, entries above it are clipped to it.
    certify : bool, default False
        A shield that certifies instead of capping: before each step, the *exact* (noiseless)
        projected, clipped step at the requested rate is taken on a copy and the exact objective
        evaluated; the rate is applied if that step does not raise the objective, else the
        iterate's stability bound (computed then) is, which certifies descent by
        :func:`nmf.stability_bound`'s inequality. So every applied rate is one at which the exact
        step from the current iterate does not increase the objective -- checked or proven --
        and rates above the bound are allowed wherever the check passes. With exact gradients
        the loss is therefore non-increasing. With gradient noise the step actually taken uses
        the noisy gradient, so nothing is guaranteed about it (the update clip is what bounds
        it); the certificate is about the rate. Costs one extra residual and loss per step
        (plus a bound on a fallback). :attr:`last_lr` is the rate applied, :attr:`n_fallbacks` counts
        fallbacks.

    Raises
    ------
    ValueError
        For a bad argument (naming it), and if the loss at the starting point overflows float64.
    """

    def __init__(
        self,
        problem: StochasticNMF,
        *,
        clip: float | None = None,
        box: float | None = None,
        seed: int | None = None,
        compute_bound: bool = True,
        compute_noisy_bound: bool = False,
        W0: ArrayLike | None = None,
        H0: ArrayLike | None = None,
        certify: bool = False,
    ) -> None:
        if not isinstance(problem, StochasticNMF):
            raise TypeError(f"problem must be a StochasticNMF, got {type(problem).__name__}.")
        check_real("clip", clip, low=0.0, low_open=True, allow_none=True)
        check_real("box", box, low=0.0, low_open=True, allow_none=True)
        self.problem = problem
        self.clip = clip
        self.box = box
        self.compute_bound = compute_bound
        self.compute_noisy_bound = compute_noisy_bound
        if not isinstance(certify, bool):
            raise TypeError(f"certify must be a bool, got {type(certify).__name__}.")
        self.certify = certify
        self.last_lr = math.nan
        self.n_fallbacks = 0
        seed = problem.seed if seed is None else seed
        self.rng = stream_rng(seed, "noise")
        if (W0 is None) != (H0 is None):
            raise ValueError("W0 and H0 must be given together.")
        if W0 is None:
            W, H = problem.init(seed)
        else:
            W, H = problem.as_factors(_start("W0", W0), _start("H0", H0), names=("W0", "H0"))
        if box is not None:
            W, H = np.clip(W, 0.0, box), np.clip(H, 0.0, box)
        self.W, self.H = W, H
        self.step_count = 0
        self._refresh()
        if not math.isfinite(self.stats.loss):  # finite data and factors, so it overflowed
            start = "(W0, H0)" if W0 is not None else "problem.init(seed)"
            raise ValueError(
                f"the loss 0.5 * ||W H - V||_F^2 at the starting point {start} overflows "
                "float64; scale the starting factors (or V) down."
            )
        self.initial_loss = self.stats.loss

    def _refresh(self, residual: Array | None = None) -> None:
        """Loss, gradient and bounds of the current iterate (``residual``: its residual, if
        already computed)."""
        p, W, H = self.problem, self.W, self.H
        self._R = p.residual(W, H) if residual is None else residual
        loss = _loss_from_residual(self._R)
        self._grad = p.gradient(W, H, self._R) if math.isfinite(loss) else None
        grad_norm = frobenius_norm(*self._grad) if self._grad is not None else math.inf
        bound = noisy = math.nan
        if self.compute_bound and self._grad is not None:
            bound = stability_bound(
                p, W, H, clip=self.clip, box=self.box, residual=self._R, gradient=self._grad
            )
            if not p.is_stochastic:
                noisy = bound
            elif self.compute_noisy_bound:
                noisy = noisy_stability_bound(
                    p, W, H, clip=self.clip, box=self.box, residual=self._R
                )
        noise = 0.0
        if p.is_stochastic and self._grad is not None:
            noise = math.sqrt(p.gradient_noise_variance(W, H, self._R, self._grad))
        self.stats = StepStats(self.step_count, loss, grad_norm, bound, noisy, noise)

    @property
    def diverged(self) -> bool:
        loss = self.stats.loss
        return not math.isfinite(loss) or loss > DIVERGENCE_FACTOR * max(self.initial_loss, 1e-300)

    def step(self, lr: float) -> StepStats:
        """Take one step at learning rate ``lr`` and return the statistics of the new iterate."""
        check_real("lr", lr, low=0.0)
        if self.diverged:
            raise RuntimeError(
                f"the run diverged at step {self.step_count} (loss {self.stats.loss:g}); "
                "start a new ProjectedSGD instead of stepping on."
            )
        p = self.problem
        checked = None
        if self.certify:
            lr, checked = self._certified(float(lr))
        self.last_lr = float(lr)
        residual = None
        if checked is not None and not p.is_stochastic:
            # with exact gradients the step just checked is this step: keep it and its residual
            self.W, self.H, residual = checked
        else:
            if p.is_stochastic:
                gW, gH = p.stochastic_gradient(
                    self.W, self.H, self.rng, residual=self._R, gradient=self._grad
                )
            else:
                gW, gH = self._grad
            self.W, self.H = _projected_step(self.W, self.H, gW, gH, lr, self.clip, self.box)
        self.step_count += 1
        self._refresh(residual)
        return self.stats

    def _certified(self, lr: float) -> tuple[float, tuple[Array, Array, Array] | None]:
        """``(lr, (W, H, residual) of the exact step at it)`` if that step does not raise the
        exact objective, else ``(min(lr, bound), None)``."""
        p, W, H = self.problem, self.W, self.H
        W1, H1 = _projected_step(W, H, *self._grad, lr, self.clip, self.box)
        R1 = p.residual(W1, H1)
        if _loss_from_residual(R1) <= self.stats.loss:
            return lr, (W1, H1, R1)
        self.n_fallbacks += 1
        bound = self.stats.bound
        if not math.isfinite(bound):
            bound = stability_bound(
                p, W, H, clip=self.clip, box=self.box, residual=self._R, gradient=self._grad
            )
        return min(lr, bound), None


def run_sgd(
    problem: StochasticNMF,
    schedule: Schedule,
    n_steps: int,
    *,
    clip: float | None = None,
    box: float | None = None,
    seed: int | None = None,
    compute_bound: bool = True,
    compute_noisy_bound: bool = False,
    W0: ArrayLike | None = None,
    H0: ArrayLike | None = None,
    certify: bool = False,
) -> Trajectory:
    """Run projected SGD for ``n_steps`` with learning rates from ``schedule``.

    Parameters
    ----------
    problem : StochasticNMF
    schedule : callable ``step -> lr``
        Called with integer steps ``0, 1, ...``; it must return a finite real number >= 0 (an int
        or float, Python or numpy; not a bool or string), else a ``ValueError``. If it also
        has ``observe(stats)``, it is called with the :class:`StepStats` of the current iterate
        before ``schedule(step)`` is asked for that step's learning rate.
    n_steps : int
        Number of steps (>= 0).
    clip, box, seed, compute_bound, compute_noisy_bound, W0, H0, certify
        See :class:`ProjectedSGD` (with ``certify`` the trajectory records the rates applied,
        which can be below the schedule's).

    Returns
    -------
    Trajectory
        Losses (``n_steps + 1``), learning rates, bounds, gradient norms and cumulative wall time
        per step, the final factors, and whether the run diverged (it then stops early).
    """
    if not callable(schedule):
        raise TypeError(
            f"schedule must be callable as schedule(step) -> lr, got {type(schedule).__name__}."
        )
    check_integer("n_steps", n_steps, low=0)
    observe = getattr(schedule, "observe", None)
    start = time.perf_counter()
    sgd = ProjectedSGD(
        problem,
        clip=clip,
        box=box,
        seed=seed,
        compute_bound=compute_bound,
        compute_noisy_bound=compute_noisy_bound,
        W0=W0,
        H0=H0,
        certify=certify,
    )
    traj = Trajectory()
    traj.losses.append(sgd.stats.loss)
    for step in range(n_steps):
        stats = sgd.stats
        if observe is not None:
            observe(stats)
        lr = schedule(step)
        if not (is_real(lr) and math.isfinite(lr) and lr >= 0):
            raise ValueError(
                f"schedule returned lr={lr!r} at step {step}; it must be a finite real number "
                ">= 0 (an int or float, not a bool or string)."
            )
        traj.bounds.append(stats.bound)
        traj.noisy_bounds.append(stats.noisy_bound)
        traj.grad_norms.append(stats.grad_norm)
        sgd.step(float(lr))
        traj.lrs.append(sgd.last_lr)
        traj.losses.append(sgd.stats.loss)
        traj.times.append(time.perf_counter() - start)
        if sgd.diverged:
            traj.diverged = True
            break
    traj.W, traj.H = sgd.W, sgd.H
    return traj
