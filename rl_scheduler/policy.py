"""A trained policy as a plain learning-rate schedule, for training loops that know nothing of RL.

:class:`LearnedSchedule` follows the schedule protocol of :func:`nmf.run_sgd`: ``observe(stats)``
before every step, then ``schedule(step) -> lr``. Every ``steps_per_action`` steps it builds the
observation with the same :class:`~rl_scheduler.features.Featurizer` as the environment, asks
the policy for an action and maps it to a learning rate with the same shielded rule
(:func:`rl_scheduler.rates.shielded_lr`), so on an NMF instance it applies exactly the learning
rates the environment would (with ``guard=True``, until the guard caps a step)::

    problem = instance.build()
    schedule = LearnedSchedule("runs/ppo/model.zip")
    traj = nmf.run_sgd(problem, schedule, 300, clip=0.1, seed=instance.seed)

In a torch loop, hand it any object with ``loss``, ``grad_norm`` and ``steps_done`` (plus
``val_loss`` for policies trained on ``rl_scheduler/Vision-v0`` or ``Text-v0``, and ``bound``
if the task has one), e.g. a :class:`rl_scheduler.tasks.TaskStats`, and pass ``initial_lr``
(the rate your optimizer starts with) when there is no bound::

    schedule = LearnedSchedule(model, initial_lr=0.1)
    for step, (x, y) in enumerate(loader):
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), float("inf"))
        schedule.observe(TaskStats(loss=loss.item(), grad_norm=float(grad_norm), steps_done=step))
        for group in opt.param_groups:
            group["lr"] = schedule(step)
        opt.step()

The policy decides once every ``steps_per_action`` steps, on the stats observed at that step;
policies of the deep-network environments were trained on the loss of a fixed training subset,
the validation loss and the root mean square of the chunk's mini-batch gradient norms (see
:mod:`rl_scheduler.tasks.torch_tasks`), so the closer a loop's stats are to those, the closer
it is to what the policy has seen. ``docs/dnn.md`` has a complete loop.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np

from rl_scheduler.features import DEFAULT_CLIP_VALUE, DEFAULT_FEATURES, Featurizer
from rl_scheduler.rates import (
    DEFAULT_LR_LIMITS,
    DEFAULT_MAX_MULT,
    DEFAULT_SHIELD_FRACTION,
    DescentGuard,
    anchored_rate,
    check_bound_range,
    check_rate_anchor,
    shielded_lr,
)
from rl_scheduler.tasks.nmf_task import DEFAULT_INITIAL_LR_FRACTION

_ENV_DEFAULTS: dict[str, Any] = {
    "steps_per_action": 10,
    "max_actions": 30,
    "max_mult": DEFAULT_MAX_MULT,
    "shield": True,
    "shield_fraction": DEFAULT_SHIELD_FRACTION,
    "lr_limits": list(DEFAULT_LR_LIMITS),
    "features": list(DEFAULT_FEATURES),
    "obs_clip": DEFAULT_CLIP_VALUE,
    "bound_range": None,
    "rate_range": None,
    "rate_anchor": None,
}


class RunPredictor:
    """``model.predict`` for one run at a time: carries a recurrent policy's hidden state from
    one decision to the next (sb3-contrib's ``RecurrentPPO``), and is a plain call otherwise."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.recurrent = hasattr(getattr(model, "policy", None), "lstm_actor")
        self.reset()

    def reset(self) -> None:
        """Start a new run (a recurrent policy's state back to zeros)."""
        self._state: Any = None
        self._start = True

    def __call__(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        if not self.recurrent:
            return self.model.predict(obs, deterministic=deterministic)[0]
        action, self._state = self.model.predict(
            obs,
            state=self._state,
            episode_start=np.array([self._start]),
            deterministic=deterministic,
        )
        self._start = False
        return action


class LearnedSchedule:
    """Learning rates from a trained policy, as a schedule ``observe(stats)`` + ``__call__(step)``.

    Parameters
    ----------
    model : PPO, path, or any object with ``predict(obs, deterministic=...)``
        The policy; a path is loaded with :func:`rl_scheduler.agent.load` on the CPU (a
        stable-baselines3 zip is refused: load it yourself with ``trusted=True`` if you trust it).
    config : dict, optional
        Environment parameters (:attr:`rl_scheduler.LRScheduleEnv.config`); default: the ones
        stored on the model by :func:`rl_scheduler.agent.train_ppo`, else the environment's
        defaults. Keyword arguments below override single entries.
    steps_per_action, max_actions : int, optional
        Steps between decisions and decisions per run; ``steps_per_action * max_actions`` is the
        budget that the ``progress`` feature counts against (it stays at 1 beyond it). With a
        ``rate_anchor`` the reference anneals to 0 over ``max_actions`` decisions, so later
        decisions get the ``lr_limits`` floor: set ``max_actions`` to the run's decisions.
    shield : bool, optional
        Cap the rate at ``shield_fraction`` times ``stats.bound`` (when the stats carry a finite
        bound). Default: as in training.
    guard : bool, default False
        Once a step above its iterate's bound raised the loss, run the rest of that decision's
        steps at most at ``shield_fraction`` times the bound (:class:`rl_scheduler.rates.DescentGuard`;
        needs stats with a ``bound`` at every step, as ``nmf.run_sgd`` observes them). A
        deployment safeguard for policies that may set rates above the bound; the environment
        does not apply it, so after a trip the rates differ from the environment's, while the
        policy's observations still carry the decision's rate.
    initial_lr : float, optional
        Starting rate. Default: the fixed starting rate of the training task when it has one
        (the deep-network tasks; metadata ``initial_lr``), else ``initial_lr_fraction`` times the
        bound of the first observed stats, which is what :class:`rl_scheduler.tasks.NMFTask`
        does.
    initial_lr_fraction : float, optional
        Default: the training task's.
    deterministic : bool, default True
        Use the policy's mean action.

    Attributes
    ----------
    lrs, proposed_lrs, bounds : list of float
        Per decision: the rate applied after the shield (steps the guard capped ran lower, as
        ``nmf.run_sgd``'s ``lrs`` record), the proposed rate, and the bound it was shielded with.
    guard_trips : int
        Decisions of the current run on which the guard tripped (0 without ``guard``).
    """

    def __init__(
        self,
        model: Any,
        *,
        config: Mapping[str, Any] | None = None,
        steps_per_action: int | None = None,
        max_actions: int | None = None,
        shield: bool | None = None,
        initial_lr: float | None = None,
        initial_lr_fraction: float | None = None,
        deterministic: bool = True,
        guard: bool = False,
    ) -> None:
        if isinstance(model, str | os.PathLike):
            from rl_scheduler.agent import load

            model = load(model, device="cpu")
        if not callable(getattr(model, "predict", None)):
            raise TypeError(
                f"model must be a trained policy with predict() or a path, got {type(model).__name__}."
            )
        meta = getattr(model, "rl_scheduler_config", None) or {}
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict or None, got {type(config).__name__}.")
        cfg = {**_ENV_DEFAULTS, **meta.get("env_config", {}), **dict(config or {})}
        for key, value in (
            ("steps_per_action", steps_per_action),
            ("max_actions", max_actions),
            ("shield", shield),
        ):
            if value is not None:
                cfg[key] = value
        for key in ("steps_per_action", "max_actions"):
            value = cfg[key]
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {value!r}.")
        if not isinstance(guard, bool):
            raise TypeError(f"guard must be a bool, got {type(guard).__name__}.")
        if not isinstance(cfg["shield"], bool):
            raise TypeError(f"shield must be a bool, got {type(cfg['shield']).__name__}.")
        if initial_lr is not None and not (
            isinstance(initial_lr, Real) and math.isfinite(initial_lr) and initial_lr > 0
        ):
            raise ValueError(f"initial_lr must be None or a finite float > 0, got {initial_lr!r}.")
        if initial_lr is None and meta.get("initial_lr") is not None:
            initial_lr = float(meta["initial_lr"])
        fraction = initial_lr_fraction
        if fraction is None:
            fraction = meta.get("initial_lr_fraction") or DEFAULT_INITIAL_LR_FRACTION
        if not (isinstance(fraction, Real) and math.isfinite(fraction) and fraction > 0):
            raise ValueError(f"initial_lr_fraction must be a finite float > 0, got {fraction!r}.")
        self.model = model
        self.config = cfg
        self.steps_per_action = int(cfg["steps_per_action"])
        self.max_actions = int(cfg["max_actions"])
        self.shield = cfg["shield"]
        self.bound_range = check_bound_range(cfg["bound_range"])
        self.rate_range = check_bound_range(cfg["rate_range"], "rate_range")
        self.rate_anchor = check_rate_anchor(cfg["rate_anchor"], self.rate_range, self.bound_range)
        self.initial_lr = None if initial_lr is None else float(initial_lr)
        self.initial_lr_fraction = float(fraction)
        self.deterministic = bool(deterministic)
        self.guard = DescentGuard(float(cfg["shield_fraction"])) if guard else None
        self.featurizer = Featurizer(
            cfg["features"],
            total_steps=self.steps_per_action * self.max_actions,
            clip_value=cfg["obs_clip"],
            history=cfg.get("history", 1),
        )
        self._predict = RunPredictor(self.model)
        self.reset()

    def reset(self) -> None:
        """Forget the current run, to schedule a new one."""
        self._stats: Any = None
        self._lr = self._lr0 = math.nan
        self._lr_range = (math.nan, math.nan)
        self._started = False
        self._predict.reset()
        self._last_step: int | None = None
        self.lrs: list[float] = []
        self.proposed_lrs: list[float] = []
        self.bounds: list[float] = []
        self._applied = math.nan
        if self.guard is not None:
            self.guard.reset()

    @property
    def guard_trips(self) -> int:
        return 0 if self.guard is None else self.guard.trips

    def observe(self, stats: Any) -> None:
        """Record the statistics of the current iterate (called before every ``__call__``)."""
        self._stats = stats

    def __call__(self, step: int) -> float:
        """The learning rate for ``step``; a new decision every ``steps_per_action`` steps."""
        if not isinstance(step, Integral) or isinstance(step, bool) or step < 0:
            raise ValueError(f"step must be an integer >= 0, got {step!r}.")
        if self._last_step is not None and step == self._last_step:
            return self._applied
        if self._started and step % self.steps_per_action != 0:
            return self._step_rate(step, new_decision=False)
        stats = self._stats
        if stats is None:
            raise RuntimeError("call observe(stats) before asking for a learning rate.")
        bound = float(getattr(stats, "bound", math.nan))
        if not self._started:
            lr0 = self.initial_lr
            if lr0 is None:
                if not (math.isfinite(bound) and bound > 0):
                    raise RuntimeError(
                        "initial_lr is None and the first stats carry no finite bound: pass "
                        "initial_lr (the rate the optimizer starts with), or observe stats with "
                        "a bound (nmf.run_sgd with compute_bound=True)."
                    )
                lr0 = self.initial_lr_fraction * bound
            lo, hi = self.config["lr_limits"]
            self._lr = self._lr0 = lr0
            self._lr_range = (lo * lr0, hi * lr0)
            obs = self.featurizer.reset(stats, lr0)
            self._started = True
        else:
            obs = self.featurizer.update(stats, self._lr)
        action = self._predict(obs, self.deterministic)
        proposed, lr = shielded_lr(
            self._lr,
            action,
            bound if math.isfinite(bound) and bound > 0 else None,
            max_mult=float(self.config["max_mult"]),
            lr_min=self._lr_range[0],
            lr_max=self._lr_range[1],
            shield=self.shield,
            shield_fraction=float(self.config["shield_fraction"]),
            bound_range=self.bound_range,
            rate_range=self.rate_range,
            initial_lr=self._lr0,
            anchor_factor=anchored_rate(self.rate_anchor, 1.0, len(self.lrs), self.max_actions),
        )
        self._lr = lr
        self.lrs.append(lr)
        self.proposed_lrs.append(proposed)
        self.bounds.append(bound)
        return self._step_rate(step, new_decision=True)

    def _step_rate(self, step: int, *, new_decision: bool) -> float:
        """The decision's rate at ``step``, through the guard when there is one."""
        self._last_step = step
        self._applied = self._lr
        if self.guard is not None:
            self._applied = self.guard.rate(self._lr, self._stats, new_decision)
        return self._applied

    def __repr__(self) -> str:
        return (
            f"LearnedSchedule(steps_per_action={self.steps_per_action}, "
            f"max_actions={self.max_actions}, shield={self.shield}, guard={self.guard is not None})"
        )
