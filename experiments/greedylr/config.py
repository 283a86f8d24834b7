"""What the GreedyLR study runs: its vocabulary, run spec, configurations and spec lists.

The methodology (scoring, hypergradient granularities, why the study trains its own loop) is
described in ``docs/greedylr_study.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from experiments.common.controllers import METRIC_SCHEDULES, TORCH_SHAPES
from experiments.runner import added_field
from rl_scheduler.tasks.lr_free import KNOB, knob_setting
from rl_scheduler.tasks.workloads import WORKLOADS

OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "adam", "adamw", "adagrad")
"""``momentum`` is SGD with heavy-ball momentum 0.9; ``adamw`` uses weight decay 0.01."""

SCHEDULES: tuple[str, ...] = ("constant", *TORCH_SHAPES, *METRIC_SCHEDULES)
"""Schedules wrapped around any optimizer, the ones :mod:`experiments.common.controllers` builds:
constant, warmup (constant after a linear warmup), linear, cosine, polynomial, step,
exponential, plateau, greedy."""

PEERS: dict[str, dict[str, str]] = {
    "sgd": {"schedulefree": "schedulefree_sgd", "dadaptation": "dadapt_sgd"},
    "adam": {
        "schedulefree": "schedulefree_adamw",
        "prodigy": "prodigy",
        "dadaptation": "dadapt_adam",
    },
}
"""The learning-rate-free peers of each optimizer family: scheduler name -> optimizer of
:mod:`rl_scheduler.tasks.lr_free` (Schedule-Free SGD / AdamW without weight decay, D-Adaptation
SGD (momentum 0.9) / Adam, Prodigy). The SGD and Adam families only (the full run's)."""

ADAPTIVE: dict[str, tuple[str, ...]] = {
    "sgd": ("hd_parameter", "hd_group", "sls", *PEERS["sgd"]),
    "momentum": ("hd_parameter", "hd_group"),
    "adam": ("hd_parameter", "hd_group", *PEERS["adam"]),
}
"""Optimizers that replace a family's optimizer and run without a schedule.

``hd_parameter`` / ``hd_group``: hypergradient descent (SGD-HD, SGDN-HD, Adam-HD) with one learned
rate per scalar weight / per layer (see "Hypergradient granularities" in ``docs/greedylr_study.md``);
``sls``: SGD with a stochastic Armijo line search; the learning-rate-free peers (:data:`PEERS`).
"""

RATE_FREE: tuple[str, ...] = ("prodigy", "dadaptation")
"""Peers whose rate axis is a multiplier of their own estimate (Prodigy's ``d_coef``,
D-Adaptation's ``lr``; 1 by default) instead of a multiple of :data:`INITIAL_LR`."""

WARMUP_FRACTION = 0.05
"""Schedule-Free's warm-up (fraction of the budget) while its rate is tuned and under the paper
protocol; the tuned protocol then tunes it on :data:`WARMUP_FRACTIONS`."""


INITIAL_LR: dict[str, dict[str, float]] = {
    # Common defaults, fixed before any run. The paper protocol shares them across every schedule
    # of a comparison (never tuned per schedule); the tuned protocol multiplies them by each
    # schedule's tuned multiplier (see MULTIPLIERS).
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
"""``beta`` of hypergradient descent, the values recommended by Baydin et al. (2018): the paper
protocol's value and the centre of the tuned protocol's ``beta`` axis (:data:`BETA_MULTIPLIERS`)."""

MULTIPLIERS: tuple[float, ...] = (1.0, 10**0.5, 10.0, 10**1.5)
"""The tuned protocol's starting grid of starting-rate multipliers (x :data:`INITIAL_LR`), spaced
by sqrt(10); widened beyond an edge optimum (:func:`experiments.common.tuning.tune_log_axes`)."""

BETA_MULTIPLIERS: tuple[float, ...] = (1.0, 100.0, 10_000.0)
"""The hypergradient step's grid (x :data:`HYPERGRAD_LR`), tuned at the tuned starting rate."""

FREE_MULTIPLIERS: tuple[float, ...] = (0.1, 10**-0.5, 1.0, 10**0.5)
"""The rate grid of the :data:`RATE_FREE` peers (x their default 1): four values, as every
other cell's, spaced by sqrt(10) around the default."""

WARMUP_FRACTIONS: tuple[float, ...] = (0.01, 0.05, 0.25)
"""Schedule-Free's warm-up grid (fraction of the budget), tuned at its tuned rate; widened below
0.01, never to 1 or more."""

HYPERGRADIENT: tuple[str, ...] = ("hd_parameter", "hd_group")

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
    hypergrad_lr: float | None = None
    """``beta`` of the hypergradient optimizers (``None``: :data:`HYPERGRAD_LR`)."""
    options: tuple[tuple[str, float], ...] = added_field(())
    """Knobs of a learning-rate-free peer: ``d_coef`` (Prodigy; its ``lr`` stays 1) and
    ``warmup_fraction`` (Schedule-Free: warm-up steps as a fraction of ``budget``)."""
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
    if spec.hypergrad_lr is not None and not (
        spec.scheduler in HYPERGRADIENT
        and spec.hypergrad_lr > 0
        and math.isfinite(spec.hypergrad_lr)
    ):
        raise ValueError(
            "hypergrad_lr must be None, or a finite float > 0 for a hypergradient scheduler, "
            f"got {spec.hypergrad_lr!r} for {spec.scheduler!r}"
        )
    allowed_options = _peer_options(spec.optimizer, spec.scheduler)
    for key, value in spec.options:
        if key not in allowed_options:
            raise ValueError(
                f"options of {spec.optimizer}/{spec.scheduler} must be among "
                f"{allowed_options}, got {key!r}"
            )
        high = 1.0 if key == "warmup_fraction" else math.inf
        if not (0 < value < high):
            raise ValueError(f"option {key} must lie in (0, {high:g}), got {value!r}")
    unknown = set(dict(spec.greedy)) - set(GREEDY_CONFIG)
    if unknown:
        raise ValueError(f"unknown GreedyLR option(s) {sorted(unknown)}")


def _peer_options(optimizer: str, scheduler: str) -> tuple[str, ...]:
    peer = PEERS.get(optimizer, {}).get(scheduler)
    if peer is None:
        return ()
    return (
        ("warmup_fraction",)
        if scheduler == "schedulefree"
        else (("d_coef",) if KNOB[peer] == "d_coef" else ())
    )


@dataclass(frozen=True)
class Config:
    """Everything that differs between the full run and ``--quick``.

    ``seeds`` are the held-out seeds both protocols are scored on; ``tune_seeds`` (disjoint from
    them) are where the tuned protocol picks its multipliers, on the grids ``multipliers`` (x
    :data:`INITIAL_LR`) and ``beta_multipliers`` (x :data:`HYPERGRAD_LR`), each widened up to
    ``max_rounds`` times beyond an edge optimum.
    """

    budgets: dict[str, int]
    optimizers: tuple[str, ...]
    schedules: tuple[str, ...]
    seeds: tuple[int, ...]
    tune_seeds: tuple[int, ...] = (100,)
    multipliers: tuple[float, ...] = MULTIPLIERS
    beta_multipliers: tuple[float, ...] = BETA_MULTIPLIERS
    free_multipliers: tuple[float, ...] = FREE_MULTIPLIERS
    warmup_fractions: tuple[float, ...] = WARMUP_FRACTIONS
    max_rounds: int = 2
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

    def __post_init__(self) -> None:
        if set(self.seeds) & set(self.tune_seeds):
            raise ValueError(
                f"tune_seeds {self.tune_seeds} must be disjoint from the held-out seeds {self.seeds}"
            )
        if not self.seeds or not self.tune_seeds:
            raise ValueError("seeds and tune_seeds must not be empty")


FULL = Config(
    budgets={"quadratic": 500, "logreg": 400, "mlp": 500, "cnn": 500, "charlm": 300},
    optimizers=("sgd", "adam"),
    schedules=SCHEDULES,
    seeds=(0, 1, 2),
    factor_workloads=("quadratic", "logreg", "mlp"),
)
"""SGD and Adam only (momentum, Adagrad and AdamW left out to fit the time budget: see
"Cost" in ``docs/greedylr_study.md``); one tuning seed, three held-out seeds."""
QUICK = Config(
    budgets={"quadratic": 60, "logreg": 40, "mlp": 40, "cnn": 20, "charlm": 10},
    optimizers=("sgd", "adam"),
    schedules=SCHEDULES,
    seeds=(0,),
    multipliers=(1.0, 10.0),
    beta_multipliers=(1.0, 100.0),
    free_multipliers=(0.1, 1.0),
    warmup_fractions=(0.05, 0.25),
    max_rounds=1,
    factors=(0.25, 0.99),
    factor_workloads=("quadratic", "mlp"),
    robust_workloads=("quadratic",),
    grad_noise={"quadratic": (1.0,)},
    loss_noise=(0.3,),
    robust_seeds=(0,),
    n_evals=5,
    workloads=("quadratic", "logreg", "mlp"),
)
"""Every schedule and code path (SGD for the line search, Adam for Adam-HD, tuning with widening,
both protocols), tiny, on the three cheap workloads (a CNN or GRU run costs ~1 s even when tiny)."""

_COST = {"charlm": 0, "cnn": 1, "mlp": 2, "logreg": 3, "quadratic": 4}  # slowest first


Cell = tuple[str, str, str]
"""(workload, optimizer, schedule): one column of the comparison."""


def cells(config: Config) -> list[Cell]:
    """Every workload x optimizer x schedule (+ the optimizer's adaptive replacements)."""
    return [
        (w, o, s)
        for w in config.workloads
        for o in config.optimizers
        for s in config.schedules + ADAPTIVE.get(o, ())
    ]


def run_spec(
    config: Config,
    cell: Cell,
    seed: int,
    multiplier: float = 1.0,
    beta: float | None = None,
    n_evals: int | None = None,
    warmup: float | None = None,
    **kw: Any,
) -> GreedyRunSpec:
    """A cell's run at rate ``multiplier`` (and ``beta`` x :data:`HYPERGRAD_LR`, or warm-up).

    The rate is ``multiplier`` x :data:`INITIAL_LR`, except for the :data:`RATE_FREE` peers,
    whose ``multiplier`` is their own knob (Prodigy's ``d_coef`` at ``lr`` 1, D-Adaptation's
    ``lr``). ``beta=None`` keeps the default hypergradient step (the spec then equals the paper
    protocol's); ``warmup`` is Schedule-Free's warm-up fraction (``None``:
    :data:`WARMUP_FRACTION`)."""
    w, o, s = cell
    options: tuple[tuple[str, float], ...] = ()
    if s in RATE_FREE:
        lr, options = knob_setting(PEERS[o][s], multiplier)
    else:
        lr = INITIAL_LR[w][o] if multiplier == 1.0 else INITIAL_LR[w][o] * multiplier
    if s == "schedulefree":
        options = (("warmup_fraction", WARMUP_FRACTION if warmup is None else warmup),)
    hyper = None if beta is None or beta == 1.0 else HYPERGRAD_LR[o] * beta
    return GreedyRunSpec(
        w,
        o,
        s,
        seed,
        config.budgets[w],
        lr,
        hypergrad_lr=hyper,
        n_evals=config.n_evals if n_evals is None else n_evals,
        options=options,
        **kw,
    )


def by_cost(specs: list[GreedyRunSpec]) -> list[GreedyRunSpec]:
    """Slowest workloads first (a better packing of the parallel sweep)."""
    return sorted(specs, key=lambda s: _COST[s.workload])


def main_specs(config: Config) -> list[GreedyRunSpec]:
    """The paper protocol: every cell at the shared untuned starting rate, on the held-out seeds."""
    return by_cost([run_spec(config, c, seed) for c in cells(config) for seed in config.seeds])


Multipliers = dict[Cell, float]
"""A starting-rate multiplier per cell (the tuned protocol's choice); missing cells get 1."""


def factor_specs(config: Config, multipliers: Multipliers | None = None) -> list[GreedyRunSpec]:
    """GreedyLR with each factor F of the sweep on SGD, at its multiplier of each workload.

    The default F comes from the comparison's run at the same rate and seed."""
    mult = multipliers or {}
    specs = [
        run_spec(
            config,
            (w, "sgd", "greedy"),
            seed,
            mult.get((w, "sgd", "greedy"), 1.0),
            greedy=(("factor", f),),
        )
        for w in config.factor_workloads
        for f in config.factors
        for seed in config.seeds
    ]
    return by_cost(specs)


ROBUST_VARIANTS: dict[str, tuple[str, tuple[tuple[str, Any], ...]]] = {
    "greedy (raw)": ("greedy", (("smooth", False),)),
    "greedy (smoothed)": ("greedy", ()),
    "cosine": ("cosine", ()),
}


def robust_specs(config: Config, multipliers: Multipliers | None = None) -> list[GreedyRunSpec]:
    """Noise on the gradients or on the loss the scheduler sees, one kind at a time (SGD).

    Each variant runs at its schedule's multiplier (``greedy`` / ``cosine`` on SGD) per workload."""
    mult = multipliers or {}

    def levels(workload: str) -> list[tuple[float, float]]:
        out = [(0.0, 0.0)] + [(g, 0.0) for g in config.grad_noise[workload]]
        return out + [(0.0, s) for s in config.loss_noise]

    return [
        run_spec(
            config,
            (w, "sgd", sched),
            seed,
            mult.get((w, "sgd", sched), 1.0),
            greedy=greedy,
            grad_noise=g,
            loss_noise=s,
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
