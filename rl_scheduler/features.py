"""Observation features: the single place that turns training statistics into the agent's input.

Both :class:`rl_scheduler.LRScheduleEnv` and :class:`rl_scheduler.policy.LearnedSchedule` build
their observations with :class:`Featurizer`, so a trained policy sees exactly the same numbers
in a plain training loop as it saw during RL training.

Every feature is *scale-free*: losses, gradient norms, learning rates and bounds enter only as
logarithms of ratios to their values at the start of the run (or to each other), so one policy
can drive problems whose losses or curvatures differ by orders of magnitude. Features are then
clipped to ``[-clip_value, clip_value]`` and non-finite values are replaced, so the observation
always lies in a finite :class:`gymnasium.spaces.Box`.

Available features (``FEATURES``), computed at the start of every action (chunk of steps):

``log_loss``          ``log(loss / initial_loss)``, progress so far
``loss_change``       ``log(loss / loss_one_action_ago)``, the change during the last chunk
``loss_change_prev``  the same one chunk earlier (``0`` while unknown)
``log_grad_norm``     ``log(grad_norm / initial_grad_norm)``
``log_lr``            ``log(lr / initial_lr)``, ``lr`` being the rate of the last chunk
``log_lr_bound``      ``log(lr / bound)``, how close the last rate was to the stability bound
``log_bound``         ``log(bound / initial_bound)``
``has_bound``         ``1`` when the task reports a stability bound, else ``0``
``progress``          ``steps_done / total_steps``, the fraction of the budget used
``log_val_loss``      ``log(val_loss / initial_val_loss)`` (``0`` without validation data)
``descent_ratio``     ``(loss_before - loss) / (lr * steps * grad_norm_before**2)``: the loss
                      decrease of the last chunk over what unconstrained gradient descent with
                      a small step would give; near 1 while the gradient dominates, near 0 or
                      negative once gradient noise does. With projection (NMF) it also falls
                      towards 0 as entries stick at zero, so it is not a default feature.
``log_noise_to_signal`` ``log(grad_noise / grad_norm)``: how much of the gradient is noise, from
                      the ``grad_noise`` the task reports (NMF knows it exactly; exact gradients
                      give the lower clip, ``-clip_value``; ``0`` when the task does not know).

Bound features are ``0`` when the task has no bound (``has_bound`` tells the policy so).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
from gymnasium import spaces

FEATURES = (
    "log_loss",
    "loss_change",
    "loss_change_prev",
    "log_grad_norm",
    "log_lr",
    "log_lr_bound",
    "log_bound",
    "has_bound",
    "progress",
    "log_val_loss",
    "descent_ratio",
    "log_noise_to_signal",
)
"""Every feature :class:`Featurizer` can compute (see the module docstring)."""

DEFAULT_FEATURES = (
    "log_loss",
    "loss_change",
    "loss_change_prev",
    "log_grad_norm",
    "log_lr",
    "log_lr_bound",
    "log_bound",
    "has_bound",
    "progress",
)
"""The observation of :class:`rl_scheduler.LRScheduleEnv` unless told otherwise."""

DEFAULT_CLIP_VALUE = 10.0
"""Features are clipped to ``[-10, 10]``: ``e^10`` covers any ratio that matters here."""

_TINY = 1e-300


def _log_ratio(a: float, b: float) -> float:
    """``log(a / b)`` for finite non-negative numbers (zero counts as 1e-300), ``nan`` otherwise."""
    if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b < 0:
        return math.nan
    return math.log(max(a, _TINY)) - math.log(max(b, _TINY))


def _bound_of(stats: Any) -> float:
    bound = float(getattr(stats, "bound", math.nan))
    return bound if math.isfinite(bound) and bound > 0 else math.nan


class Featurizer:
    """Turns the sequence of per-action statistics of one run into observation vectors.

    Parameters
    ----------
    features : sequence of str, default :data:`DEFAULT_FEATURES`
        Names from :data:`FEATURES`, in the order they appear in the observation.
    total_steps : int
        Optimizer steps in one run (``steps_per_action * max_actions``), for ``progress``.
    clip_value : float, default :data:`DEFAULT_CLIP_VALUE`
        Observations lie in ``[-clip_value, clip_value]``.
    history : int, default 1
        Frame stacking: the observation holds the feature vectors of the last ``history``
        decisions, the newest first (zeros for decisions before the run's start), so a
        feed-forward policy sees how the features moved.

    Notes
    -----
    ``stats`` may be any object with ``loss``, ``grad_norm`` and ``steps_done`` (or ``step``)
    attributes and optionally ``bound`` and ``val_loss``: a :class:`rl_scheduler.tasks.TaskStats`
    or an :class:`nmf.StepStats` both work. Non-finite values (a diverged run) map to
    ``+clip_value`` for loss features and ``0`` for the others.
    """

    def __init__(
        self,
        features: Sequence[str] = DEFAULT_FEATURES,
        *,
        total_steps: int,
        clip_value: float = DEFAULT_CLIP_VALUE,
        history: int = 1,
    ) -> None:
        if isinstance(features, str) or not isinstance(features, Sequence) or not features:
            raise ValueError(f"features must be a non-empty sequence of names, got {features!r}.")
        unknown = [f for f in features if f not in FEATURES]
        if unknown:
            raise ValueError(f"features must be names from {FEATURES}, got unknown {unknown}.")
        if len(set(features)) != len(features):
            raise ValueError(f"features must not repeat names, got {list(features)}.")
        if (
            not isinstance(total_steps, Integral)
            or isinstance(total_steps, bool)
            or total_steps < 1
        ):
            raise ValueError(f"total_steps must be an integer >= 1, got {total_steps!r}.")
        if not (isinstance(clip_value, Real) and math.isfinite(clip_value) and clip_value > 0):
            raise ValueError(f"clip_value must be a finite float > 0, got {clip_value!r}.")
        if not isinstance(history, Integral) or isinstance(history, bool) or history < 1:
            raise ValueError(f"history must be an integer >= 1, got {history!r}.")
        self.features = tuple(features)
        self.history = int(history)
        self._frames: list[np.ndarray] = []
        self.total_steps = int(total_steps)
        self.clip_value = float(clip_value)
        self._initial: dict[str, float] = {}
        self._losses: list[float] = []
        self._previous: tuple[float, float] | None = None

    @property
    def dim(self) -> int:
        """Length of the observation vector."""
        return len(self.features) * self.history

    @property
    def observation_space(self) -> spaces.Box:
        """``Box(-clip_value, clip_value, (dim,), float32)``."""
        c = np.float32(self.clip_value)
        return spaces.Box(low=-c, high=c, shape=(self.dim,), dtype=np.float32)

    def reset(self, stats: Any, lr: float) -> np.ndarray:
        """Start a new run from its first statistics and its starting learning rate."""
        if not (isinstance(lr, Real) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite float > 0, got {lr!r}.")
        self._initial = {
            "loss": float(stats.loss),
            "grad_norm": float(stats.grad_norm),
            "lr": float(lr),
            "bound": _bound_of(stats),
            "val_loss": float(getattr(stats, "val_loss", math.nan)),
        }
        self._losses = []
        self._previous = None
        self._frames = [np.zeros(len(self.features), np.float32)] * (self.history - 1)
        return self.update(stats, lr)

    def update(self, stats: Any, lr: float) -> np.ndarray:
        """The observation after a chunk, given its statistics and the learning rate it used."""
        if not self._initial:
            raise RuntimeError("call reset() before update().")
        self._losses.append(float(stats.loss))
        init = self._initial
        losses = self._losses
        bound = _bound_of(stats)
        steps = getattr(stats, "steps_done", None)
        if steps is None:
            steps = stats.step
        descent = 0.0
        if self._previous is not None:
            grad2, steps_before = self._previous
            scale = float(lr) * (steps - steps_before) * grad2
            if scale > 0 and math.isfinite(scale):
                descent = (losses[-2] - losses[-1]) / scale
        self._previous = (float(stats.grad_norm) ** 2, steps)
        values = {
            "log_loss": _log_ratio(losses[-1], init["loss"]),
            "loss_change": _log_ratio(losses[-1], losses[-2]) if len(losses) > 1 else 0.0,
            "loss_change_prev": _log_ratio(losses[-2], losses[-3]) if len(losses) > 2 else 0.0,
            "log_grad_norm": _log_ratio(float(stats.grad_norm), init["grad_norm"]),
            "log_lr": _log_ratio(float(lr), init["lr"]),
            "log_lr_bound": _log_ratio(float(lr), bound) if math.isfinite(bound) else 0.0,
            "log_bound": _log_ratio(bound, init["bound"])
            if math.isfinite(bound) and math.isfinite(init["bound"])
            else 0.0,
            "has_bound": 1.0 if math.isfinite(bound) else 0.0,
            "progress": min(float(steps) / self.total_steps, 1.0),
            "log_val_loss": _log_ratio(
                float(getattr(stats, "val_loss", math.nan)), init["val_loss"]
            ),
            "descent_ratio": descent,
            "log_noise_to_signal": _log_ratio(
                float(getattr(stats, "grad_noise", math.nan)), float(stats.grad_norm)
            ),
        }
        obs = np.array([values[name] for name in self.features], dtype=np.float64)
        # A run that broke down: loss features say "much worse", the rest say nothing.
        bad = ~np.isfinite(obs)
        if bad.any():
            lossy = np.array(
                [name.startswith(("log_loss", "loss_", "log_val")) for name in self.features]
            )
            blown_up = not math.isfinite(losses[-1])
            obs[bad & lossy] = self.clip_value if blown_up else 0.0
            obs[bad & ~lossy] = 0.0
        frame = np.clip(obs, -self.clip_value, self.clip_value).astype(np.float32)
        if self.history == 1:
            return frame
        self._frames = [frame, *self._frames[: self.history - 1]]
        return np.concatenate(self._frames)
