"""``LRScheduleEnv``: learning-rate scheduling of any :class:`~rl_scheduler.tasks.Task` as an RL problem."""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rl_scheduler.features import DEFAULT_CLIP_VALUE, DEFAULT_FEATURES, Featurizer
from rl_scheduler.rates import (  # noqa: F401  (also importable from here, as before)
    DEFAULT_LR_LIMITS,
    DEFAULT_MAX_MULT,
    DEFAULT_SHIELD_FRACTION,
    RATE_ANCHORS,
    action_to_multiplier,
    anchored_rate,
    bound_exponent,
    check_bound_range,
    check_rate_anchor,
    checked_action,
    finite_positive,
    shielded_lr,
)
from rl_scheduler.tasks.base import Task, TaskStats, is_int

DEFAULT_DIVERGENCE_PENALTY = 10.0
"""Reward of the action during which training diverged. It exceeds the log-loss decrease that
any run here reaches (``log(initial / final)`` is about 1-7), so a diverged episode always
returns less than one that stood still."""

REWARD_BASELINES = (None, "neutral")
"""Values of ``LRScheduleEnv(reward_baseline=...)``: ``None`` (the plain log-loss decrease) or
``"neutral"`` (minus the decrease of the neutral policy, action 0 at every decision, on the same
run)."""

REWARD_SCALES = (None, "reference_gap")
"""Values of ``LRScheduleEnv(reward_scale=...)``: ``None`` (rewards as they are) or
``"reference_gap"`` (every reward of a run divided by that run's :func:`reference_gap`)."""

REWARD_SCALE_FLOOR = 0.01
"""Default smallest scale ``reward_scale="reference_gap"`` divides by (``reward_scale_floor``):
a run on which the two reference policies end within 1% of each other in loss counts as if they
were 1% apart, so no run's rewards are blown up by more than 100."""


def reference_gap(
    neutral_return: float, other_return: float, floor: float = REWARD_SCALE_FLOOR
) -> float:
    """The scale of ``reward_scale="reference_gap"``: ``max(|neutral_return - other_return|,
    floor)``, the gap in plain return (``log(initial / final loss)``) between the neutral policy
    and the same policy with the other rate anchor (annealed by cosine when the environment's
    anchor is ``None``, not annealed when it is ``"cosine"``) on the same run: how much the
    choice of schedule matters on this run."""
    return max(abs(neutral_return - other_return), finite_positive("floor", floor))


class LRScheduleEnv(gym.Env):
    """Choose the learning rate of a training run, one chunk of optimizer steps at a time.

    An episode is one training run of ``steps_per_action * max_actions`` optimizer steps on the
    task (for :class:`~rl_scheduler.tasks.NMFTask`: one instance drawn from its set at reset).

    **Observation** -- a ``float32`` vector of scale-free features of the run so far (log-ratios
    of loss, gradient norm, learning rate and stability bound to their initial values and to each
    other, the loss change over the last chunks, the fraction of the budget used), clipped to
    ``[-obs_clip, obs_clip]``; with ``history=k`` those of the last ``k`` decisions, the newest
    first; see :mod:`rl_scheduler.features`.

    **Action** -- ``Box(-1, 1, (1,))``: the learning rate is multiplied by ``max_mult ** action``
    (a log-scale change; ``0`` keeps it). A continuous action suits PPO's Gaussian policy and lets
    the deterministic policy express any factor in ``[1/max_mult, max_mult]``. The first action
    multiplies the task's ``initial_lr``. Proposed rates stay within ``lr_limits`` times the
    initial rate.

    **Shield** -- with ``shield=True`` and a task that reports a stability bound, the applied rate
    is ``min(proposed, shield_fraction * bound)`` with the bound of the iterate at which the chunk
    starts. On NMF the bound is :func:`nmf.stability_bound`, which certifies descent of the
    *noiseless* (exact-gradient) step only: with gradient noise a shielded step can still raise
    the loss, and what keeps such runs from diverging is the update clip, not the shield. The
    rate is then held for the chunk: one bound costs about as much as two or three SGD steps, so
    computing it once per chunk rather than at every step keeps its cost small. ``shield=False`` applies the proposed rate as it is (to
    show what the shield buys).

    **Reward** -- ``log(loss_before) - log(loss_after)`` for each action, so the undiscounted return
    of a full episode telescopes to ``log(initial_loss / final_loss)``. If training diverges
    (non-finite loss, or loss above ``nmf.sgd.DIVERGENCE_FACTOR`` times the initial loss for the
    NMF task) during an action, that action's reward is ``-divergence_penalty`` and the episode
    terminates.

    With ``reward_baseline="neutral"`` every reward is the one above minus the reward that the
    *neutral policy* (action 0 at every decision: the bound itself -- or the bound times the
    ``rate_anchor``'s factor -- for ``bound_range``, the initial rate -- or its ``rate_anchor``
    schedule -- for ``rate_range``, the previous rate otherwise) earns at the same decision of
    the same run (same instance and seed); an episode that ends early by divergence also
    subtracts the neutral policy's remaining rewards. The return is then the plain return minus
    the neutral policy's return on that run, a constant per run that no action changes, so every
    discount factor has the same optimal policies with and without it; what changes is the
    variance of PPO's advantage estimates, which no longer carry how much an instance's loss can
    fall at all (``log(initial / final)`` ranges over 1-7 across instances, the gap between two
    schedules is a few hundredths). The neutral run is one more episode of the task, cached per
    instance (:attr:`baseline_cache`) when the task's runs are determined by their instance
    (``task.runs_determined_by_instance``: true for :class:`~rl_scheduler.tasks.NMFTask`, whose
    start and gradient noise are seeded by the instance unless ``run_seed="episode"``, and for
    the deep-network tasks on the CPU without dropout), recomputed at every reset otherwise (on
    a GPU, with dropout, or with a fresh NMF run per episode, two runs of an instance can
    differ; the neutral run then meets the episode's start and noise, since it runs from the
    same reset seed).

    With ``reward_scale="reference_gap"`` every reward of a run (after the baseline, if any) is
    divided by that run's :func:`reference_gap`: how far apart the neutral policy and the same
    policy with the other ``rate_anchor`` (the rates annealed by cosine, or not annealed when
    the anchor is already ``"cosine"``) end on it, in plain return, at least
    ``reward_scale_floor``. A positive constant per run again leaves each run's optimal
    policies as they are; what it changes is how much each run weighs in PPO's updates. Without
    it a run where schedules differ by ``0.5`` in log-loss outweighs one where they differ by
    ``0.01`` fifty-fold, while a win rate counts both once: on NMF the exact synthetic runs
    dominated training and the noisy digits runs, where the choice of schedule moves the final
    loss by 1-5%, were left to chance. Computing the scale costs one more episode per run on top
    of the neutral one (both cached like the baseline's). A reference run that diverges earns
    the divergence penalty, so its gap is about that penalty and the run weighs little.

    **Termination** -- ``terminated=True`` after ``max_actions`` actions or on divergence. The budget
    is part of the task and visible in the observation (``progress``), so its end is a true
    terminal state, not a truncation; ``truncated`` is always ``False``.

    Parameters
    ----------
    task : Task
        What is being trained (see :mod:`rl_scheduler.tasks`).
    steps_per_action : int, default 10
        Optimizer steps per action.
    max_actions : int, default 30
        Actions per episode.
    max_mult : float, default :data:`DEFAULT_MAX_MULT`
        Largest factor by which one action changes the learning rate (``> 1``).
    bound_range : (float, float) or None, default None
        ``None``: the action multiplies the previous rate (``max_mult ** a``). A pair
        ``(lo, hi)``: the action sets the rate to ``bound * 2**e`` with ``e`` from ``lo``
        (``a = -1``) through 0 (``a = 0``, the bound) to ``hi`` (``a = 1``), in one move (see
        :func:`bound_exponent`); needs a task with a bound. With ``hi > 0`` and ``shield=True``
        the shield still caps the rate at ``shield_fraction * bound``.
    rate_range : (float, float) or None, default None
        The same one-move action relative to the run's initial rate instead of the bound:
        ``lr = initial_lr * 2**e`` (for tasks without a bound, e.g. the deep-network tasks, so
        one action reaches any rate of the range the tuned baselines use). Not with
        ``bound_range``.
    rate_anchor : None or "cosine", default None
        With ``rate_range``, the reference that ``2**e`` multiplies at decision ``k``:
        ``None`` the initial rate, ``"cosine"`` the initial rate annealed by cosine to 0 over
        the ``max_actions`` decisions (:func:`anchored_rate`). Started at a tuned cosine rate,
        the neutral policy is then the tuned cosine schedule and the policy learns a correction
        of it. With ``bound_range``, ``"cosine"`` multiplies the bound by the same factor
        (``lr = bound * cos_k * 2**e``): the neutral policy follows the bound annealed to 0.
    shield : bool, default True
        Cap the applied rate at ``shield_fraction`` times the task's stability bound.
    shield_fraction : float in (0, 1], default :data:`DEFAULT_SHIELD_FRACTION`
        Every rate up to the bound certifies descent of the exact-gradient step at the iterate
        the bound was computed at; the margin covers the other iterates of the chunk (see
        :data:`DEFAULT_SHIELD_FRACTION`). Nothing is certified for a noisy step.
    divergence_penalty : float, default :data:`DEFAULT_DIVERGENCE_PENALTY`
        Non-negative penalty for the action during which training diverged.
    reward_baseline : None or "neutral", default None
        Subtract the neutral policy's reward on the same run from every reward (see **Reward**).
    reward_scale : None or "reference_gap", default None
        Divide every reward of a run by how much the schedule matters on it (see **Reward**);
        needs ``bound_range`` or ``rate_range``.
    reward_scale_floor : float, default :data:`REWARD_SCALE_FLOOR`
        The smallest scale of ``reward_scale`` (in log-loss): runs where the two references end
        closer than this weigh as if they ended this far apart.
    lr_limits : (float, float), default :data:`DEFAULT_LR_LIMITS`
        Proposed rates are clipped to ``[lo * initial_lr, hi * initial_lr]``.
    features : sequence of str, default :data:`rl_scheduler.features.DEFAULT_FEATURES`
        Observation features.
    obs_clip : float, default 10.0
        Bound of the observation box.
    history : int, default 1
        Frame stacking: observe the features of the last ``history`` decisions (see
        :class:`rl_scheduler.features.Featurizer`).
    render_mode : None, "ansi" or "rgb_array"
        ``"ansi"`` makes :meth:`render` return a one-line text summary, ``"rgb_array"`` a
        ``uint8`` picture ``(height, width, 3)`` of the run's loss and learning rate so far
        (drawn with matplotlib, imported on the first render). Other modes raise
        :class:`UnsupportedRenderMode`.

    Notes
    -----
    ``reset(seed=s)`` reseeds the environment's generator, which then draws the task's seed, so the
    same ``s`` gives the same instance and the same observations. ``reset(options={...})`` passes the
    options to ``task.reset`` as keywords, e.g. ``options={"instance": 3}`` runs instance 3 of an
    :class:`~rl_scheduler.tasks.NMFTask`'s set.

    ``info`` holds ``lr`` (applied), ``proposed_lr``, ``bound`` (of the iterate the chunk started
    from; ``inf`` when there is none, so equal infos compare equal), ``shielded`` (the shield lowered the rate), ``loss``, ``steps_done``,
    ``diverged`` and, when the task has one, ``instance_index``.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        task: Task,
        *,
        steps_per_action: int = 10,
        max_actions: int = 30,
        max_mult: float = DEFAULT_MAX_MULT,
        shield: bool = True,
        shield_fraction: float = DEFAULT_SHIELD_FRACTION,
        divergence_penalty: float = DEFAULT_DIVERGENCE_PENALTY,
        lr_limits: tuple[float, float] = DEFAULT_LR_LIMITS,
        features: Sequence[str] = DEFAULT_FEATURES,
        obs_clip: float = DEFAULT_CLIP_VALUE,
        history: int = 1,
        bound_range: tuple[float, float] | None = None,
        rate_range: tuple[float, float] | None = None,
        reward_baseline: str | None = None,
        rate_anchor: str | None = None,
        reward_scale: str | None = None,
        reward_scale_floor: float = REWARD_SCALE_FLOOR,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        for method in ("reset", "advance"):
            if not callable(getattr(task, method, None)):
                raise TypeError(
                    f"task must implement the Task protocol (reset, advance, initial_lr); "
                    f"{type(task).__name__} has no {method}()."
                )
        if not is_int(steps_per_action) or steps_per_action < 1:
            raise ValueError(f"steps_per_action must be an integer >= 1, got {steps_per_action!r}.")
        if not is_int(max_actions) or max_actions < 1:
            raise ValueError(f"max_actions must be an integer >= 1, got {max_actions!r}.")
        if not (isinstance(max_mult, Real) and math.isfinite(max_mult) and max_mult > 1):
            raise ValueError(f"max_mult must be a finite float > 1, got {max_mult!r}.")
        if not isinstance(shield, bool):
            raise TypeError(f"shield must be a bool, got {type(shield).__name__}.")
        if not (isinstance(shield_fraction, Real) and 0 < shield_fraction <= 1):
            raise ValueError(f"shield_fraction must be a float in (0, 1], got {shield_fraction!r}.")
        if not (
            isinstance(divergence_penalty, Real)
            and math.isfinite(divergence_penalty)
            and divergence_penalty >= 0
        ):
            raise ValueError(
                f"divergence_penalty must be a finite float >= 0, got {divergence_penalty!r}."
            )
        if isinstance(lr_limits, str) or not isinstance(lr_limits, Sequence) or len(lr_limits) != 2:
            raise ValueError(f"lr_limits must be a pair (lo, hi), got {lr_limits!r}.")
        lo, hi = (finite_positive("lr_limits", v) for v in lr_limits)
        if not lo <= 1.0 <= hi:
            raise ValueError(f"lr_limits must satisfy lo <= 1 <= hi, got {lr_limits!r}.")
        self.bound_range = check_bound_range(bound_range)
        self.rate_range = check_bound_range(rate_range, "rate_range")
        if self.bound_range is not None and self.rate_range is not None:
            raise ValueError("give bound_range or rate_range, not both.")
        if reward_baseline not in REWARD_BASELINES:
            raise ValueError(
                f"reward_baseline must be one of {REWARD_BASELINES}, got {reward_baseline!r}."
            )
        check_rate_anchor(rate_anchor, self.rate_range, self.bound_range)
        if reward_scale not in REWARD_SCALES:
            raise ValueError(f"reward_scale must be one of {REWARD_SCALES}, got {reward_scale!r}.")
        if reward_scale is not None and self.bound_range is None and self.rate_range is None:
            raise ValueError(
                "reward_scale='reference_gap' compares the neutral policy with and without the "
                "cosine rate anchor, which needs bound_range or rate_range."
            )
        self.reward_scale_floor = finite_positive("reward_scale_floor", reward_scale_floor)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise UnsupportedRenderMode(
                f"render_mode must be None or one of {self.metadata['render_modes']}, "
                f"got {render_mode!r}."
            )
        self.task = task
        self.steps_per_action = int(steps_per_action)
        self.max_actions = int(max_actions)
        self.max_mult = float(max_mult)
        self.shield = shield
        self.shield_fraction = float(shield_fraction)
        self.divergence_penalty = float(divergence_penalty)
        self.lr_limits = (lo, hi)
        self.reward_baseline = reward_baseline
        self.rate_anchor = rate_anchor
        self.reward_scale = reward_scale
        self.render_mode = render_mode
        self.featurizer = Featurizer(
            features,
            total_steps=self.steps_per_action * self.max_actions,
            clip_value=obs_clip,
            history=history,
        )
        self.observation_space = self.featurizer.observation_space
        self.action_space = spaces.Box(low=-1.0, high=1.0, shape=(1,), dtype=np.float32)
        self._stats: TaskStats | None = None
        self._lr = self._lr0 = math.nan
        self._lr_bounds = (math.nan, math.nan)
        self._n_actions = 0
        self._done = True
        self._last_info: dict[str, Any] = {}
        self._history: list[tuple[int, float, float]] = []  # (steps_done, loss, lr) per action
        self._baseline_rewards: list[float] = []  # the neutral policy's, per decision
        self._scale = 1.0  # what every reward of the run is divided by
        self.baseline_cache: dict[int, tuple[list[float], float]] = {}
        """The neutral policy's rewards (and the run's reward scale) per instance index, for
        tasks whose runs are determined by their instance. Environments built with the same id
        and arguments may share one (:func:`rl_scheduler.registration.make_sharing_env`)."""

    @property
    def config(self) -> dict[str, Any]:
        """The environment's parameters (everything but the task), JSON-able.

        :class:`rl_scheduler.policy.LearnedSchedule` rebuilds the same observation and action
        mapping from it. ``reward_baseline``, ``rate_anchor``, ``reward_scale`` and
        ``history`` (above 1) are listed only when set, so the configuration recorded with
        agents trained before they existed stays the same.
        """
        config = {
            "steps_per_action": self.steps_per_action,
            "max_actions": self.max_actions,
            "max_mult": self.max_mult,
            "shield": self.shield,
            "shield_fraction": self.shield_fraction,
            "divergence_penalty": self.divergence_penalty,
            "lr_limits": list(self.lr_limits),
            "features": list(self.featurizer.features),
            "obs_clip": self.featurizer.clip_value,
            "bound_range": None if self.bound_range is None else list(self.bound_range),
            "rate_range": None if self.rate_range is None else list(self.rate_range),
        }
        if self.reward_baseline is not None:
            config["reward_baseline"] = self.reward_baseline
        if self.rate_anchor is not None:
            config["rate_anchor"] = self.rate_anchor
        if self.featurizer.history > 1:
            config["history"] = self.featurizer.history
        if self.reward_scale is not None:
            config["reward_scale"] = self.reward_scale
            config["reward_scale_floor"] = self.reward_scale_floor
        return config

    @property
    def lr(self) -> float:
        """The learning rate applied during the last chunk (the initial rate after a reset)."""
        return self._lr

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        task_seed = int(self.np_random.integers(2**31 - 1))
        stats = self.task.reset(task_seed, **(options or {}))
        lr0 = float(self.task.initial_lr)
        if not (math.isfinite(lr0) and lr0 > 0):
            raise ValueError(f"task.initial_lr must be a finite float > 0, got {lr0!r}.")
        if self.bound_range is not None and not stats.has_bound:
            raise ValueError(
                "bound_range needs a task that reports a stability bound; "
                f"{type(self.task).__name__} reported none (use bound_range=None)."
            )
        self._lr0 = lr0
        self._lr_bounds = (self.lr_limits[0] * lr0, self.lr_limits[1] * lr0)
        self._baseline_rewards, self._scale = [], 1.0
        if self.reward_baseline is not None or self.reward_scale is not None:
            stats = self._prepare_baseline(stats, task_seed, options or {})
        self._stats = stats
        self._lr = lr0
        self._n_actions = 0
        self._done = False
        obs = self.featurizer.reset(stats, lr0)
        self._last_info = self._info(stats, lr=lr0, proposed=lr0, bound=stats.bound, shielded=False)
        self._history = [(int(stats.steps_done), float(stats.loss), lr0)]
        return obs, dict(self._last_info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("the episode has ended; call reset() first.")
        before = self._stats
        proposed, lr = self._rates(self._lr, action, before, self._n_actions, self.rate_anchor)
        stats = self.task.advance(lr, self.steps_per_action)
        self._stats = stats
        self._lr = lr
        self._n_actions += 1
        reward, terminated = self._reward(before, stats, self._n_actions)
        if self.reward_baseline is not None:
            # minus the neutral policy's reward now, and all its remaining ones if this ends early
            upto = len(self._baseline_rewards) if terminated else self._n_actions
            reward -= math.fsum(self._baseline_rewards[self._n_actions - 1 : upto])
        reward /= self._scale
        self._done = terminated
        obs = self.featurizer.update(stats, lr)
        bound = before.bound if before.has_bound else math.nan
        self._last_info = self._info(
            stats, lr=lr, proposed=proposed, bound=bound, shielded=lr < proposed
        )
        self._history.append((int(stats.steps_done), float(stats.loss), lr))
        return obs, float(reward), terminated, False, dict(self._last_info)

    def _rates(
        self, lr: float, action: Any, stats: TaskStats, decision: int, anchor: str | None
    ) -> tuple[float, float]:
        """The proposed and the applied rate of ``action`` (decision ``decision``, 0-based) after
        a chunk at ``lr`` that led to ``stats``, relative to the rate anchor ``anchor``."""
        return shielded_lr(
            lr,
            action,
            stats.bound if stats.has_bound else None,
            max_mult=self.max_mult,
            lr_min=self._lr_bounds[0],
            lr_max=self._lr_bounds[1],
            shield=self.shield,
            shield_fraction=self.shield_fraction,
            bound_range=self.bound_range,
            rate_range=self.rate_range,
            initial_lr=self._lr0,
            anchor_factor=anchored_rate(anchor, 1.0, decision, self.max_actions),
        )

    def _reward(self, before: TaskStats, after: TaskStats, n_actions: int) -> tuple[float, bool]:
        """The plain reward of a chunk and whether the episode ends with it."""
        if after.diverged or not math.isfinite(after.loss):
            return -self.divergence_penalty, True
        tiny = np.finfo(np.float64).tiny
        reward = math.log(max(before.loss, tiny)) - math.log(max(after.loss, tiny))
        return reward, n_actions >= self.max_actions

    def _prepare_baseline(
        self, stats: TaskStats, task_seed: int, options: dict[str, Any]
    ) -> TaskStats:
        """Fill ``_baseline_rewards`` (and ``_scale``) for the run just reset; returns the run's
        initial stats.

        On a cache miss the neutral policy runs a whole episode on the task (for
        ``reward_scale``, once more with the other rate anchor), which is then reset again with
        the same seed and options (tasks are deterministic given both).
        """
        index = getattr(self.task, "instance_index", None)
        cacheable = index is not None and getattr(self.task, "runs_determined_by_instance", False)
        if cacheable and index in self.baseline_cache:
            self._baseline_rewards, self._scale = self.baseline_cache[index]
            return stats
        rewards = self._neutral_rewards(stats, self.rate_anchor)
        scale = 1.0
        if self.reward_scale is not None:
            stats = self.task.reset(task_seed, **options)
            other = "cosine" if self.rate_anchor is None else None
            scale = reference_gap(
                math.fsum(rewards),
                math.fsum(self._neutral_rewards(stats, other)),
                self.reward_scale_floor,
            )
        self._baseline_rewards, self._scale = rewards, scale
        if cacheable:
            self.baseline_cache[index] = (rewards, scale)
        return self.task.reset(task_seed, **options)

    def _neutral_rewards(self, stats: TaskStats, anchor: str | None) -> list[float]:
        """The plain rewards of the neutral policy (action 0 at every decision, with ``anchor``)
        over a whole episode of the task from ``stats``."""
        rewards: list[float] = []
        lr, current = self._lr0, stats
        while True:
            _, lr = self._rates(lr, 0.0, current, len(rewards), anchor)
            after = self.task.advance(lr, self.steps_per_action)
            reward, done = self._reward(current, after, len(rewards) + 1)
            rewards.append(reward)
            current = after
            if done:
                return rewards

    def _info(
        self, stats: TaskStats, *, lr: float, proposed: float, bound: float, shielded: bool
    ) -> dict[str, Any]:
        info = {
            "lr": lr,
            "proposed_lr": proposed,
            "bound": float(bound) if math.isfinite(bound) else math.inf,
            "shielded": bool(shielded),
            "loss": float(stats.loss),
            "steps_done": int(stats.steps_done),
            "diverged": bool(stats.diverged),
        }
        index = getattr(self.task, "instance_index", None)
        if index is not None:
            info["instance_index"] = int(index)
        return info

    def render(self) -> str | np.ndarray | None:
        """The ``render_mode``'s view of the run: text (``"ansi"``), a picture (``"rgb_array"``)."""
        if self.render_mode == "rgb_array":
            return _plot_run(self._history)
        if self.render_mode != "ansi":
            return None
        i = self._last_info
        if not i:
            return "LRScheduleEnv (not reset)"
        return (
            f"action {self._n_actions}/{self.max_actions}: lr={i['lr']:.4g} "
            f"(proposed {i['proposed_lr']:.4g}, bound {i['bound']:.4g}) loss={i['loss']:.6g}"
        )


class UnsupportedRenderMode(gym.error.UnsupportedMode, ValueError):
    """A ``render_mode`` the environment does not offer (Gymnasium's error, also a ValueError)."""


def _plot_run(history: Sequence[tuple[int, float, float]]) -> np.ndarray:
    """Loss and learning rate against optimizer steps, as an RGB ``uint8`` array (480 x 640)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    canvas = FigureCanvasAgg(fig)
    loss_ax, lr_ax = fig.subplots(2, 1, sharex=True)
    if history:
        steps, losses, lrs = zip(*history, strict=True)
        loss_ax.plot(steps, losses, marker=".")
        lr_ax.step(steps, lrs, where="pre")
        for ax, values in ((loss_ax, losses), (lr_ax, lrs)):
            if all(math.isfinite(v) and v > 0 for v in values):
                ax.set_yscale("log")
    loss_ax.set_ylabel("loss")
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_xlabel("optimizer steps")
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
