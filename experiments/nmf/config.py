"""What the NMF study runs: run specs, configurations, tuning grids and agent specs.

Two experiments share the instances of :mod:`nmf.datasets`: the **schedule comparison**
(:class:`SchedulesConfig`: tuned hand-made schedules on held-out seeds, and scikit-learn's NMF)
and the **learned schedule** (:class:`RLConfig`: PPO agents against tuned schedules on the
held-out instance set of ``rl_scheduler/NMF-v0``). The protocol is in ``docs/nmf_study.md``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

import numpy as np

from experiments.common.agents import LOW_EXPLORATION_PPO, freeze
from experiments.runner import added_field
from nmf.datasets import NMFInstance
from rl_scheduler.features import DEFAULT_FEATURES
from rl_scheduler.tasks.nmf_task import nmf_instance_set

TUNING_BUDGET = 12
"""Configurations tried per schedule (the same for every schedule)."""


@dataclass(frozen=True)
class NMFRunSpec:
    """One projected-SGD run: a problem instance, a schedule with its parameters, a budget."""

    instance: NMFInstance
    schedule: str
    params: tuple[tuple[str, Any], ...] = ()
    n_steps: int = 500
    clip: float | None = None
    curves: bool = False
    """Keep per-step curves in the result (evaluation runs) or only the summary (tuning)."""
    record_bounds: bool = False
    """Compute the stability bound of every iterate (always done for follow-the-bound)."""
    SPEC_TYPE: ClassVar[str] = "experiments.nmf.NMFRunSpec"  # the id's type, kept on moves


@dataclass(frozen=True)
class SklearnRunSpec:
    """scikit-learn's coordinate-descent NMF on an instance's matrix, from its own random init."""

    instance: NMFInstance
    max_iter: int = 200
    tol: float = 1e-4
    SPEC_TYPE: ClassVar[str] = "experiments.nmf.SklearnRunSpec"  # the id's type, kept on moves


@dataclass(frozen=True)
class SchedulesConfig:
    """Everything that differs between the full run and ``--quick``."""

    n_steps: int
    noise_levels: tuple[float, ...]
    train_seeds: tuple[int, ...]
    eval_seeds: tuple[int, ...]
    synthetic: NMFInstance
    digits: NMFInstance
    lr_grid: tuple[float, ...]
    budget: int
    widen_rounds: int = 3
    """Widening rounds of every tuning axis (:func:`experiments.common.tuning.tune_log_axes`)."""

    def axes(self) -> dict[tuple[str, int], list[float]]:
        return tuning_axes(self.n_steps, self.lr_grid, self.budget)

    def settings(self) -> dict[str, NMFInstance]:
        """Named instance templates, one per (dataset, noise level); seeds are filled in later."""
        return {
            f"{base.dataset}/noise={noise:g}": replace(base, noise_std=noise)
            for base in (self.synthetic, self.digits)
            for noise in self.noise_levels
        }


SCHEDULES_FULL = SchedulesConfig(
    n_steps=500,
    noise_levels=(0.0, 1.0, 5.0),
    train_seeds=(0, 1, 2),
    eval_seeds=(100, 101, 102, 103, 104),
    synthetic=NMFInstance("synthetic", rank=10, size=(200, 100)),
    digits=NMFInstance("digits", rank=10),
    lr_grid=tuple(np.geomspace(3e-4, 3e-2, 6)),
    budget=TUNING_BUDGET,
)
SCHEDULES_QUICK = SchedulesConfig(
    n_steps=100,
    noise_levels=(0.0, 5.0),
    train_seeds=(0,),
    eval_seeds=(100, 101),
    synthetic=NMFInstance("synthetic", rank=6, size=(80, 50)),
    digits=NMFInstance("digits", rank=10, size=300),
    lr_grid=tuple(np.geomspace(1e-3, 1e-2, 2)),
    budget=4,
    widen_rounds=1,
)


SHAPES: dict[str, tuple[Any, ...]] = {
    "step": ((0.3, 2), (0.1, 2), (0.5, 3), (0.5, 6), (0.1, 1)),
    "exponential": (0.1, 0.01, 0.3, 0.03, 0.003),
    "inverse_time": (9.0, 99.0, 2.0, 29.0, 299.0),
    "cosine": (0.0, 0.01, 0.1, 0.03, 0.3),
}
"""Second parameter per schedule, relative to the budget ``n``, in the order the grid uses them.

``step``: (factor, number of drops per run), so ``every = ceil(n / (drops + 1))``: the drops split
the run into ``drops + 1`` near-equal parts, all within the budget when ``n >= (drops + 1) ** 2``
(``n // drops`` put the last one at the very end, where it has no effect). The LR left at the
end, ``factor ** drops``, is 0.09 and 0.01 for the first two shapes, as for the first two of
exponential, 1/t and cosine, so a small grid of every family spans the same decay range;
``exponential``: the
fraction of the initial LR left at the end; ``inverse_time``: ``decay * n`` (the LR ends at
``lr / (1 + decay * n)``); ``cosine``: ``min_lr / lr``."""


def tuning_axes(
    n_steps: int, lr_grid: tuple[float, ...], budget: int, *, step_budget: int | None = None
) -> dict[tuple[str, int], list[float]]:
    """The initial log axes of every schedule: ``{(schedule, shape index): values}``.

    A multi-parameter schedule gets ``budget / len(lr_grid)`` shapes (:data:`SHAPES`), each tuned
    along the LR axis ``lr_grid``; constant (LR) and follow-the-bound (fraction of the bound)
    have one axis of ``budget`` values over the same range. So every schedule starts with
    ``budget`` configurations (step decay with ``step_budget``, default ``budget``), and
    :func:`experiments.common.tuning.tune_log_axes` widens every axis whose optimum is at an edge.
    :func:`axis_params` turns a value into the schedule's parameters.
    """
    lrs = [float(v) for v in lr_grid]
    step_budget = budget if step_budget is None else step_budget
    shapes = {}
    for name, b in (("budget", budget), ("step_budget", step_budget)):
        k, rest = divmod(b, len(lrs))
        if rest or not 1 <= k <= len(SHAPES["step"]):
            raise ValueError(
                f"{name} must be len(lr_grid) times 1..{len(SHAPES['step'])}, "
                f"got {b} for {len(lrs)} learning rates."
            )
        shapes[name] = k
    axes: dict[tuple[str, int], list[float]] = {
        ("constant", 0): [float(v) for v in np.geomspace(min(lrs), max(lrs), budget)]
    }
    for name in ("step", "exponential", "inverse_time", "cosine"):
        k = shapes["step_budget" if name == "step" else "budget"]
        axes |= {(name, i): list(lrs) for i in range(k)}
    axes[("follow_bound", 0)] = [float(v) for v in np.geomspace(0.25, 4.0, budget)]
    return axes


def axis_params(schedule: str, shape: int, value: float, n_steps: int) -> dict[str, Any]:
    """The parameters of ``schedule`` at ``value`` of its axis for shape ``shape`` (see :data:`SHAPES`)."""
    n, v = n_steps, float(value)
    if schedule == "constant":
        params = {"lr": v}
    elif schedule == "follow_bound":
        params = {"fraction": v}
    elif schedule == "step":
        factor, drops = SHAPES["step"][shape]
        params = {"lr": v, "factor": factor, "every": math.ceil(n / (drops + 1))}
    elif schedule == "exponential":
        params = {"lr": v, "gamma": SHAPES["exponential"][shape] ** (1 / n)}
    elif schedule == "inverse_time":
        params = {"lr": v, "decay": SHAPES["inverse_time"][shape] / n}
    elif schedule == "cosine":
        params = {"lr": v, "total_steps": n, "min_lr": SHAPES["cosine"][shape] * v}
    else:
        raise ValueError(f"schedule must be one of {sorted(AXIS_NAMES)}, got {schedule!r}.")
    return {k: plain(p) for k, p in params.items()}


AXIS_NAMES = {
    "constant": "lr",
    "step": "lr",
    "exponential": "lr",
    "inverse_time": "lr",
    "cosine": "lr",
    "follow_bound": "fraction",
}
"""The tuned axis of every schedule (the other parameters are fixed by the shape)."""


def tuning_grid(
    n_steps: int, lr_grid: tuple[float, ...], budget: int, *, step_budget: int | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The initial grid per schedule (the parameter sets of :func:`tuning_axes`, before widening)."""
    grid: dict[str, list[dict[str, Any]]] = {}
    for (name, shape), values in tuning_axes(
        n_steps, lr_grid, budget, step_budget=step_budget
    ).items():
        grid.setdefault(name, []).extend(axis_params(name, shape, v, n_steps) for v in values)
    return grid


def plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def params_key(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


def cell_name(instance: NMFInstance | dict[str, Any]) -> str:
    """The setting ("cell") of an instance: ``"<dataset>/noise=<std>"``."""
    inst = asdict(instance) if isinstance(instance, NMFInstance) else instance
    return f"{inst['dataset']}/noise={float(inst['noise_std']):g}"


REFERENCE = "step"
"""The hand-made schedule the headline win rate is measured against."""

_BOUND_RELATIVE = {"bound_range": (-6.0, 2.0), "shield": False, "initial_lr_fraction": 1.0}
_SEE_NOISE = {**_BOUND_RELATIVE, "features": (*DEFAULT_FEATURES, "log_noise_to_signal")}

VARIANTS: dict[str, dict[str, Any]] = {
    "learned": _BOUND_RELATIVE,
    "learned_multiplicative": {},
    "learned_certified": {**_BOUND_RELATIVE, "certify": True},
    "learned_multiplicative_shield1.0": {"shield_fraction": 1.0},
    "learned_noise": _SEE_NOISE,
    "learned_relative": {**_SEE_NOISE, "reward_baseline": "neutral"},
    "learned_relative_40epochs": {**_SEE_NOISE, "reward_baseline": "neutral"},
}
"""Environment settings of every agent variant, on top of the environment's defaults.

``learned`` (the headline before ``learned_relative``): each action sets the rate to ``bound * 2**e`` with ``e`` in
``[-6, 2]`` (1/64 to 4 times the current stability bound) in one move, starting at the bound,
without the shield (the update clip bounds every step). ``learned_multiplicative``: the design
of the earlier references: each action multiplies the previous rate by ``2**a``, starting at half
the bound, shield at 0.9 x the bound. ``learned_certified``:
``learned`` with the certifying shield (``certify=True`` of :class:`nmf.ProjectedSGD`): a rate
is applied at a step only if the exact (noiseless) step at it does not raise the objective, the
iterate's bound otherwise -- rates above the bound where the check passes, never a rate the
check or the theory cannot vouch for (issue 15's "shield that certifies" lever). Opt-in
(``--ablation``, :data:`ABLATIONS`): ``learned_multiplicative`` and ``learned_certified`` (above;
measured in the references up to ``c96c6c5``, where the first was behind ``learned`` and the
second did not help); ``..._shield1.0``, the earlier design with the shield
at the bound itself; ``learned_noise``, ``learned`` plus the feature ``log_noise_to_signal``
(the exact gradient-noise level over the gradient norm; issue 15's "see the noise" lever,
measured in the reference at ``ea41343``, where it did not help). ``learned_relative`` (the headline
from the design screen of session 9 to the reference at ``5a53175``, ``--ablation`` since): ``learned_noise`` trained on rewards measured against
the neutral policy (``reward_baseline="neutral"`` of :class:`rl_scheduler.LRScheduleEnv`: the
same optimal policies, far less return variance) and with the lower initial exploration noise
of :data:`VARIANT_PPO`; in ``experiments.nmf.screen`` (24 instances, PPO seeds 0 and 1) it won
0.67 and 0.71 of held-out instances against tuned step decay, the headline of then 0.54 and
0.62, and neither the relative reward nor the noise feature did much alone. The headline
``learned_relative_40epochs`` has ``learned_relative``'s environment and learns it with longer
PPO updates (:data:`VARIANT_PPO`)."""

VARIANT_PPO: dict[str, dict[str, Any]] = {
    "learned_relative": LOW_EXPLORATION_PPO,
    "learned_relative_40epochs": {**LOW_EXPLORATION_PPO, "n_epochs": 40},
}
"""PPO settings of a variant on top of :data:`rl_scheduler.agent.DEFAULT_PPO_KWARGS` (none for
the others). The headline ``learned_relative_40epochs`` is ``learned_relative`` with 40 passes
of PPO over every batch of collected experience instead of stable-baselines3's default 10 (the
same environment, the same 60k actions; a training run costs about 1.6 times as long, all of it
in the gradient updates). On the design screen (``experiments.nmf.screen``, its own 24 train /
24 held-out instances, PPO seeds 0 and 1) it won 0.83 and 0.83 of held-out instances against
tuned step decay, ``learned_relative`` 0.67 and 0.71; 20 passes won 0.75 and 0.75, twice
PPO's learning rate 0.67 and 0.67, and 2.5 times as many actions 0.75 and 0.71: the policy was
under-fitted to the experience it had collected."""


VARIANT_SCHEDULE: dict[str, dict[str, Any]] = {"learned_relative_40epochs": {"guard": True}}
"""Settings of the :class:`rl_scheduler.policy.LearnedSchedule` a variant is evaluated and shipped
with (none for the others). The headline runs with the descent guard
(:class:`rl_scheduler.rates.DescentGuard`): once a step above its iterate's stability bound
raised the exact loss, the rest of that decision's steps run at most at 0.9 times the bound. It
is a deployment safeguard, not part of training. Without it, the agent (which sets rates up to 4
times the bound, where on its training problems the bound is conservative) ended up to 276 times
above ``FollowBound(0.9)``'s loss on larger problems or ones of higher rank, whose bound is tight,
and 890 times on one problem of a mixed family (``make reproduce-nmf-robustness``;
``docs/nmf_study.md``, "The descent guard")."""


ABLATIONS: tuple[str, ...] = (
    "learned_relative",
    "learned",
    "learned_multiplicative",
    "learned_certified",
    "learned_multiplicative_shield1.0",
    "learned_noise",
)
"""The agent variants ``--ablation`` adds. ``learned_relative`` (the headline up to the reference
at ``5a53175``) and ``learned`` (the one before it) left the default study when the headline
became ``learned_relative_40epochs``, whose longer PPO updates would otherwise take the study
past half an hour. ``learned_multiplicative`` and ``learned_certified``
left the default study after the reference at ``c96c6c5`` so that ``make reproduce-nmf`` fits in
about half an hour: the first is several designs behind the headline (``learned`` is the step
it measures), the second did not help and its certified steps make its PPO training about twice as
long as a ``learned`` seed's."""

ABLATION_PPO_SEEDS = 3
"""Every variant but the headline one trains on the first this-many PPO seeds only (its cost)."""


@dataclass(frozen=True)
class RLConfig:
    """Everything that differs between the full run and ``--quick``."""

    n_train: int
    n_test: int
    datasets: tuple[str, ...]
    noise_levels: tuple[float, ...]
    steps_per_action: int
    max_actions: int
    clip: float
    ppo_seeds: tuple[int, ...]
    total_timesteps: int
    n_envs: int
    variants: tuple[str, ...]
    """Names in :data:`VARIANTS` of the agent variants; the first is the headline one."""
    lr_grid: tuple[float, ...]
    budget: int
    step_budget: int
    widen_rounds: int = 3
    """Widening rounds of every tuning axis (:func:`experiments.common.tuning.tune_log_axes`)."""
    n_boot: int = 500
    """Draws of every stratified bootstrap of the report (:mod:`experiments.nmf.rl_stats`)."""

    @property
    def n_steps(self) -> int:
        return self.steps_per_action * self.max_actions

    def instances(self, split: str) -> list[NMFInstance]:
        n = self.n_train if split == "train" else self.n_test
        return nmf_instance_set(split, n, datasets=self.datasets, noise_levels=self.noise_levels)

    def grid(self) -> dict[str, list[dict[str, Any]]]:
        return tuning_grid(self.n_steps, self.lr_grid, self.budget, step_budget=self.step_budget)

    def axes(self) -> dict[tuple[str, int], list[float]]:
        return tuning_axes(self.n_steps, self.lr_grid, self.budget, step_budget=self.step_budget)

    def env_kwargs(self) -> dict[str, Any]:
        """The training environment's settings every agent variant starts from (the train set)."""
        return {
            "split": "train",
            "n_instances": self.n_train,
            "datasets": self.datasets,
            "noise_levels": self.noise_levels,
            "clip": self.clip,
            "steps_per_action": self.steps_per_action,
            "max_actions": self.max_actions,
        }

    def seeds_of(self, variant: str) -> tuple[int, ...]:
        """The PPO seeds of an agent variant (all for the headline one, else the first
        :data:`ABLATION_PPO_SEEDS`)."""
        return (
            self.ppo_seeds if variant == self.variants[0] else self.ppo_seeds[:ABLATION_PPO_SEEDS]
        )


RL_FULL = RLConfig(
    n_train=48,
    n_test=48,
    datasets=("synthetic", "digits"),
    noise_levels=(0.0, 1.0, 5.0),
    steps_per_action=10,
    max_actions=30,
    clip=0.1,
    ppo_seeds=(0, 1, 2, 3, 4),
    total_timesteps=60_000,
    n_envs=4,
    variants=("learned_relative_40epochs",),
    lr_grid=tuple(float(x) for x in np.geomspace(1e-3, 6e-2, 8)),
    budget=16,
    step_budget=40,
)
RL_QUICK = RLConfig(
    n_train=8,
    n_test=12,
    datasets=("synthetic", "digits"),
    noise_levels=(0.0, 5.0),
    steps_per_action=10,
    max_actions=10,
    clip=0.1,
    ppo_seeds=(0, 1),
    total_timesteps=2_048,
    n_envs=4,
    variants=("learned_relative_40epochs",),
    lr_grid=(3e-3, 3e-2),
    budget=4,
    step_budget=6,
    widen_rounds=1,
    n_boot=100,
)


@dataclass(frozen=True)
class AgentSpec:
    """One PPO training run on the train instance set."""

    variant: str
    seed: int
    total_timesteps: int
    n_envs: int
    env_kwargs: tuple[tuple[str, Any], ...]
    ppo_options: tuple[tuple[str, Any], ...] = added_field(())
    """:data:`VARIANT_PPO`'s settings of the variant, :func:`freeze`-d."""
    SPEC_TYPE: ClassVar[str] = "experiments.nmf_rl.AgentSpec"  # the id's type, kept on moves


def agent_specs(config: RLConfig) -> list[AgentSpec]:
    env_kwargs = config.env_kwargs()
    unknown = sorted(set(config.variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"variants must be names from {sorted(VARIANTS)}, got {unknown}")
    return [
        AgentSpec(
            variant,
            seed,
            config.total_timesteps,
            config.n_envs,
            tuple(sorted({**env_kwargs, **VARIANTS[variant]}.items())),
            freeze(VARIANT_PPO.get(variant, {})),
        )
        for variant in config.variants
        for seed in config.seeds_of(variant)
    ]


@dataclass(frozen=True)
class LearnedRunSpec:
    """A trained agent scheduling one held-out instance (through ``nmf.run_sgd``)."""

    instance: NMFInstance
    agent: AgentSpec
    n_steps: int
    clip: float
    schedule_kwargs: tuple[tuple[str, Any], ...] = added_field(())
    """:data:`VARIANT_SCHEDULE`'s settings of the variant, :func:`freeze`-d."""
    SPEC_TYPE: ClassVar[str] = "experiments.nmf_rl.LearnedRunSpec"  # the id's type, kept on moves

    @property
    def schedule(self) -> str:
        return self.agent.variant
