"""What the GreedyLR study runs: its vocabulary, run spec, configurations and spec lists.

The methodology (scoring, hypergradient granularities, why the study trains its own loop) is
described in ``docs/greedylr_study.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rl_scheduler.tasks.workloads import WORKLOADS

OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "adam", "adamw", "adagrad")
"""``momentum`` is SGD with heavy-ball momentum 0.9; ``adamw`` uses weight decay 0.01."""

SCHEDULES: tuple[str, ...] = (
    "constant",
    "warmup",
    "linear",
    "cosine",
    "polynomial",
    "step",
    "exponential",
    "plateau",
    "greedy",
)
"""Schedules wrapped around any optimizer (``warmup`` is constant after a linear warmup)."""

ADAPTIVE: dict[str, tuple[str, ...]] = {
    "sgd": ("hd_parameter", "hd_group", "sls"),
    "momentum": ("hd_parameter", "hd_group"),
    "adam": ("hd_parameter", "hd_group"),
}
"""Optimizers that replace a family's optimizer and run without a schedule.

``hd_parameter`` / ``hd_group``: hypergradient descent (SGD-HD, SGDN-HD, Adam-HD) with one learned
rate per scalar weight / per layer (see "Hypergradient granularities" in ``docs/greedylr_study.md``);
``sls``: SGD with a stochastic Armijo line search.
"""


INITIAL_LR: dict[str, dict[str, float]] = {
    # Common defaults, fixed before any run and shared by every schedule of a comparison; checked
    # once with the constant schedule to be stable, never tuned per schedule.
    "quadratic": {"sgd": 1.0, "momentum": 0.1, "adam": 0.1, "adamw": 0.1, "adagrad": 1.0},
    "logreg": {"sgd": 0.1, "momentum": 0.01, "adam": 1e-3, "adamw": 1e-3, "adagrad": 0.01},
    "mlp": {"sgd": 0.1, "momentum": 0.01, "adam": 1e-3, "adamw": 1e-3, "adagrad": 0.01},
    "cnn": {"sgd": 0.1, "momentum": 0.01, "adam": 1e-3, "adamw": 1e-3, "adagrad": 0.01},
    "charlm": {"sgd": 1.0, "momentum": 0.1, "adam": 3e-3, "adamw": 3e-3, "adagrad": 0.03},
}

GREEDY_CONFIG: dict[str, Any] = {
    "variant": "paper",
    "factor": 0.95,
    "patience": 10,
    "threshold": 1e-6,
    "threshold_mode": "abs",
    "cooldown": 0,
    "warmup": 0,
    "smooth": True,
    "window_size": 50,
    "reset_start": 500,
}
"""GreedyLR's one configuration (bounds: ``1e-3``x / ``10``x each group's initial rate)."""

PLATEAU_CONFIG: dict[str, Any] = {"factor": 0.5, "patience": 10}
"""torch's ``ReduceLROnPlateau`` (floor ``1e-3`` x the initial rate), stepped every step."""

PLATEAU_WINDOW = 50
"""ReduceLROnPlateau gets the moving average of the last 50 mini-batch losses every step."""

HYPERGRAD_LR = {"sgd": 1e-3, "momentum": 1e-3, "adam": 1e-7}
"""``beta`` of hypergradient descent, the values recommended by Baydin et al. (2018)."""

LR_CEILING = 10.0
"""Upper bound of every adaptive rate (GreedyLR, hypergradient, line search), x the initial LR."""

STAGES: tuple[float, ...] = (0.1, 0.5, 1.0)
SLIGHT = 0.1
LABELS: tuple[str, ...] = ("clearly better", "slightly better", "slightly worse", "clearly worse")
PAPER_SHARES = {"10%": 92.42, "50%": 81.81, "100%": 85.94, "overall": 86.73}
"""The paper's "as good or better" percentages of GreedyLR's pairs, per stage and overall."""

DIVERGENCE_FACTOR = 100.0
"""A mini-batch loss above 100x the first one counts as diverged."""


# ---------------------------------------------------------------------------------- run spec
@dataclass(frozen=True)
class GreedyRunSpec:
    """One training run.

    ``scheduler`` is one of :data:`SCHEDULES` or, for the optimizers of :data:`ADAPTIVE`, one of
    their adaptive replacements. ``greedy`` overrides entries of :data:`GREEDY_CONFIG` (factor
    sweep, robustness). ``grad_noise`` / ``loss_noise`` are noise levels relative to the first
    step's gradient RMS / mini-batch loss (see :func:`run_greedy`).
    """

    workload: str
    optimizer: str
    scheduler: str
    seed: int
    budget: int
    lr: float
    greedy: tuple[tuple[str, Any], ...] = ()
    grad_noise: float = 0.0
    loss_noise: float = 0.0
    n_evals: int = 10
    SPEC_TYPE: ClassVar[str] = "experiments.greedylr.GreedyRunSpec"  # the id's type, kept on moves


def check_spec(spec: GreedyRunSpec) -> None:
    """Validate a spec's names and numbers (``ValueError`` naming the field)."""
    if spec.workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {WORKLOADS}, got {spec.workload!r}")
    if spec.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {spec.optimizer!r}")
    allowed = SCHEDULES + ADAPTIVE.get(spec.optimizer, ())
    if spec.scheduler not in allowed:
        raise ValueError(
            f"scheduler for optimizer {spec.optimizer!r} must be one of {allowed}, "
            f"got {spec.scheduler!r}"
        )
    if spec.budget < 1 or spec.n_evals < 1:
        raise ValueError(f"budget and n_evals must be >= 1, got {spec.budget}, {spec.n_evals}")
    if not (spec.lr > 0 and math.isfinite(spec.lr)):
        raise ValueError(f"lr must be a finite float > 0, got {spec.lr!r}")
    if spec.grad_noise < 0 or spec.loss_noise < 0:
        raise ValueError("grad_noise and loss_noise must be >= 0")
    if spec.scheduler == "sls" and spec.grad_noise > 0:
        raise ValueError("grad_noise is not supported with the line search (sls)")
    unknown = set(dict(spec.greedy)) - set(GREEDY_CONFIG)
    if unknown:
        raise ValueError(f"unknown GreedyLR option(s) {sorted(unknown)}")


@dataclass(frozen=True)
class Config:
    """Everything that differs between the full run and ``--quick``."""

    budgets: dict[str, int]
    optimizers: tuple[str, ...]
    schedules: tuple[str, ...]
    seeds: tuple[int, ...]
    factors: tuple[float, ...] = (0.25, 0.5, 0.75, 0.99)
    factor_workloads: tuple[str, ...] = WORKLOADS
    robust_workloads: tuple[str, ...] = ("quadratic", "mlp")
    grad_noise: dict[str, tuple[float, ...]] = field(
        default_factory=lambda: {"quadratic": (0.3, 1.0, 3.0), "mlp": (3.0, 10.0, 30.0)}
    )
    """Gradient-noise levels per workload (x the first step's RMS gradient entry), up to one that
    clearly hurts cosine: an MLP shrugs off noise as large as its gradient, the quadratic does not."""
    loss_noise: tuple[float, ...] = (0.1, 0.3, 1.0)
    robust_seeds: tuple[int, ...] = (0, 1, 2)
    n_evals: int = 10
    workloads: tuple[str, ...] = field(default=WORKLOADS)


FULL = Config(
    budgets={"quadratic": 500, "logreg": 400, "mlp": 500, "cnn": 500, "charlm": 300},
    optimizers=OPTIMIZERS,
    schedules=SCHEDULES,
    seeds=(0, 1, 2),
    n_evals=20,
)
QUICK = Config(
    budgets={"quadratic": 60, "logreg": 40, "mlp": 40, "cnn": 20, "charlm": 10},
    optimizers=("sgd", "adam"),
    schedules=SCHEDULES,
    seeds=(0,),
    factors=(0.25, 0.99),
    factor_workloads=("quadratic", "mlp"),
    robust_workloads=("quadratic",),
    grad_noise={"quadratic": (1.0,)},
    loss_noise=(0.3,),
    robust_seeds=(0,),
    n_evals=5,
)
"""Every workload, schedule and code path (SGD for the line search, Adam for Adam-HD), tiny."""

_COST = {"charlm": 0, "cnn": 1, "mlp": 2, "logreg": 3, "quadratic": 4}  # slowest first


def main_specs(config: Config) -> list[GreedyRunSpec]:
    """The comparison: every workload x optimizer x schedule (+ adaptive optimizers) x seed."""
    specs = [
        GreedyRunSpec(w, o, s, seed, config.budgets[w], INITIAL_LR[w][o], n_evals=config.n_evals)
        for w in config.workloads
        for o in config.optimizers
        for s in config.schedules + ADAPTIVE.get(o, ())
        for seed in config.seeds
    ]
    return sorted(specs, key=lambda s: _COST[s.workload])


def factor_specs(config: Config) -> list[GreedyRunSpec]:
    """GreedyLR with each factor F of the sweep on SGD (the default F comes from the main sweep)."""
    specs = [
        GreedyRunSpec(
            w,
            "sgd",
            "greedy",
            seed,
            config.budgets[w],
            INITIAL_LR[w]["sgd"],
            greedy=(("factor", f),),
            n_evals=config.n_evals,
        )
        for w in config.factor_workloads
        for f in config.factors
        for seed in config.seeds
    ]
    return sorted(specs, key=lambda s: _COST[s.workload])


ROBUST_VARIANTS: dict[str, tuple[str, tuple[tuple[str, Any], ...]]] = {
    "greedy (raw)": ("greedy", (("smooth", False),)),
    "greedy (smoothed)": ("greedy", ()),
    "cosine": ("cosine", ()),
}


def robust_specs(config: Config) -> list[GreedyRunSpec]:
    """Noise on the gradients or on the loss the scheduler sees, one kind at a time (SGD)."""

    def levels(workload: str) -> list[tuple[float, float]]:
        out = [(0.0, 0.0)] + [(g, 0.0) for g in config.grad_noise[workload]]
        return out + [(0.0, s) for s in config.loss_noise]

    return [
        GreedyRunSpec(
            w,
            "sgd",
            sched,
            seed,
            config.budgets[w],
            INITIAL_LR[w]["sgd"],
            greedy=greedy,
            grad_noise=g,
            loss_noise=s,
            n_evals=config.n_evals,
        )
        for w in config.robust_workloads
        for sched, greedy in ROBUST_VARIANTS.values()
        for g, s in levels(w)
        for seed in config.robust_seeds
    ]


def robust_variant(spec: dict[str, Any]) -> str:
    """Name in :data:`ROBUST_VARIANTS` of a robustness record's spec."""
    greedy = tuple(tuple(kv) for kv in spec["greedy"])
    for name, (sched, options) in ROBUST_VARIANTS.items():
        if spec["scheduler"] == sched and greedy == options:
            return name
    raise ValueError(f"not a robustness variant: {spec['scheduler']} {greedy}")
