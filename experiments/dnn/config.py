"""What the DNN study runs: tasks, run specs, configurations and the spec lists of its stages.

The protocol is described in ``docs/dnn.md`` ("The study").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from experiments.common.agents import LOW_EXPLORATION_PPO, freeze
from experiments.runner import added_field, spec_id
from rl_scheduler.tasks.lr_free import LR_FREE, SCHEDULE_FREE, knob_setting

TASKS: tuple[str, ...] = ("vision", "text")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")
SCHEDULES: tuple[str, ...] = ("constant", "step", "cosine", "plateau", "greedy")
"""Hand-made schedules, each with SGD and with Adam (ten baselines)."""

AGENT = "agent"
RANDOM_SEARCH = "random_search"

PLATEAU_CONFIG: dict[str, Any] = {"factor": 0.5, "patience": 2}
"""torch's ``ReduceLROnPlateau`` per chunk (floor ``1e-3`` x the initial rate)."""

GREEDY_CONFIG: dict[str, Any] = {"factor": 0.8, "patience": 1, "smooth": False, "reset_start": None}
""":class:`greedylr.GreedyLR` per chunk: x1.25 after two improving chunks, x0.8 after two worse
ones, within ``[1e-3, 10]`` x the initial rate (the library's bounds). Fixed in advance; only the
initial rate is tuned, as for every baseline."""

STEP_MILESTONES = (1 / 3, 2 / 3)
"""Step decay: x0.1 after each third of the budget (:class:`nmf.schedules.StepDecay` in chunks,
the same shape as the ``step`` of :func:`experiments.common.controllers.torch_schedule`)."""

PEER_MULTIPLIERS = (0.1, 10.0)
"""Ends of the initial log grid of the multipliers Prodigy's ``d_coef`` and D-Adaptation's
``lr`` (1, their default, in the middle); the Schedule-Free optimizers' ``lr`` uses the grid of
their family (``lr_ranges[task]["sgd"]`` / ``["adam"]``)."""

WARMUP_GRID = (0.02, 0.1, 0.5)
"""Schedule-Free's warm-up as a fraction of the budget: the initial grid of its second axis,
tuned at the tuned ``lr`` (widened like the first, below 1)."""

WARMUP_FRACTION = 0.1
"""Schedule-Free's warm-up while its ``lr`` is tuned: the middle of :data:`WARMUP_GRID`, so those
runs are also the middle point of the warm-up axis."""

AGENT_ENV: dict[str, Any] = {
    "rate_range": (-2.0, 2.0),
    "rate_anchor": "cosine",
    "reward_baseline": "neutral",
}
"""The agent's action sets the rate of decision ``k`` to ``cosine_k * 2**e``, ``e`` in ``[-2, 2]``
(a quarter to 4 times the anchor), where ``cosine_k`` is the SGD + cosine baseline's rate at
``k``: its tuned initial rate annealed to 0 over the run (``rate_anchor``; the agent's runs
start at that tuned rate, :func:`agent_start_cell`). The neutral action (0) is therefore the
tuned SGD + cosine schedule itself, the reward of an action is the log training-loss decrease
beyond that schedule's on the same run (``reward_baseline``: the same optimum, less variance;
the schedule's run is cached per instance on the CPU), and the policy learns a correction of a
tuned schedule -- the design of the NMF study's headline agent, with the tuned cosine schedule
in place of the stability bound. Earlier references used ``rate_range = (-6, 2)`` around the
untuned default rate (and, first, the multiplicative walk ``x 2**a`` per action), which
reached the tuned rates but learned little beyond holding the rate near its start."""

AGENT_PPO: dict[str, Any] = {"gamma": 1.0, **LOW_EXPLORATION_PPO, "n_epochs": 40}
"""PPO's settings: no discount (the undiscounted return is exactly the run's log training-loss
decrease beyond the anchor's, the quantity the agent is judged on; a discount below 1 favours
greedy rates over annealing), a policy that starts near the neutral action (standard
deviation 0.22 action units, a factor ``2**0.45 = 1.4`` of rate, instead of 0.61), and 40
passes over every batch of collected actions instead of 10, as the NMF study's headline agent
(``learned_relative_40epochs``; chosen on the NMF design screen, not on these tasks). Here the
passes cost next to nothing: a PPO seed's time is the networks it trains."""

ANCHOR_OPTIMIZER = "sgd"
"""The optimizer whose tuned ``rate_anchor`` schedule starts the agent (the agent drives SGD)."""


@dataclass(frozen=True)
class TaskSpec:
    """What is trained: a data set, a model, the optimizer's fixed settings and the budget.

    ``name`` is ``"vision"`` or ``"text"``; ``seq_len`` is used by text only. ``eval_size``,
    ``val_size`` and ``test_size`` are the items of the training subset, validation split and
    test split measured (``None``: the task's default). The budget of one run is
    ``steps_per_action * max_actions`` optimizer steps. ``download`` fetches a missing data
    set into ``data/<name>/`` (CIFAR-10, Fashion-MNIST, tiny-shakespeare; needs internet).
    """

    name: str
    dataset: str
    model: str
    model_kwargs: tuple[tuple[str, Any], ...] = ()
    batch_size: int = 64
    seq_len: int = 32
    eval_size: int | None = None
    val_size: int | None = None
    test_size: int | None = None
    momentum: float = 0.9
    steps_per_action: int = 10
    max_actions: int = 20
    device: str = "cpu"
    download: bool = False

    @property
    def budget(self) -> int:
        """Optimizer steps of one run."""
        return self.steps_per_action * self.max_actions

    def task_kwargs(
        self, optimizer: str, lr: float, options: tuple[tuple[str, float], ...] = ()
    ) -> dict[str, Any]:
        """Keyword arguments of :class:`~rl_scheduler.tasks.VisionTask` / ``TextTask``
        (``options``: a peer's ``optimizer_options``)."""
        kwargs: dict[str, Any] = {
            "optimizer": optimizer,
            "momentum": self.momentum,
            "initial_lr": lr,
            "batch_size": self.batch_size,
            "eval_size": self.eval_size,
            "val_size": self.val_size,
            "test_size": self.test_size,
            "device": self.device,
            "download": self.download,
        }
        if self.name == "text":
            kwargs["seq_len"] = self.seq_len
        if options:
            kwargs["optimizer_options"] = dict(options)
        return kwargs

    def instance(self, seed: int) -> Any:
        from rl_scheduler.tasks.torch_tasks import TorchInstance

        return TorchInstance(self.dataset, self.model, seed, self.model_kwargs)

    def seeds(self, split: str, n: int) -> list[int]:
        """Seeds of the environment's ``split`` instance set (train and held-out are disjoint)."""
        from rl_scheduler.tasks.torch_tasks import text_instance_set, vision_instance_set

        make = vision_instance_set if self.name == "vision" else text_instance_set
        return [
            inst.seed for inst in make(split, n, datasets=(self.dataset,), models=(self.model,))
        ]

    def env_kwargs(self, seeds: list[int], initial_lr: float | None = None) -> dict[str, Any]:
        """Keyword arguments of the task's registered environment over these training seeds,
        its runs starting at ``initial_lr`` (``None``: :func:`default_lr`)."""
        from rl_scheduler.tasks.torch_tasks import torch_instance_to_dict

        return {
            "task_kwargs": self.task_kwargs(
                "sgd", default_lr(self) if initial_lr is None else initial_lr
            ),
            "instances": [torch_instance_to_dict(self.instance(s)) for s in seeds],
            "steps_per_action": self.steps_per_action,
            "max_actions": self.max_actions,
        }


def default_lr(task: TaskSpec) -> float:
    """The agent's starting rate: the task's untuned SGD default (``DEFAULT_INITIAL_LR``)."""
    from rl_scheduler.tasks.torch_tasks import DEFAULT_INITIAL_LR

    return DEFAULT_INITIAL_LR[task.name]["sgd"]


def env_id(task: TaskSpec) -> str:
    from rl_scheduler.registration import TEXT_ENV_ID, VISION_ENV_ID

    return VISION_ENV_ID if task.name == "vision" else TEXT_ENV_ID


@dataclass(frozen=True)
class DNNRunSpec:
    """One training run of a task on one seed under one learning-rate controller.

    ``schedule`` is one of :data:`SCHEDULES` or ``"agent"`` (then ``agent`` is the path of a saved
    policy relative to the output folder, and ``optimizer`` must be ``"sgd"``). ``lr`` is the
    initial rate. A learning-rate-free peer (``optimizer`` in
    :data:`~rl_scheduler.tasks.lr_free.LR_FREE`) runs with schedule ``"constant"`` at ``lr`` (its
    knob, or 1 for Prodigy) and its ``options`` (``(name, value)`` pairs: ``warmup_steps``,
    ``d_coef``); an added field, so the ids of the other runs are those of before.
    """

    task: TaskSpec
    seed: int
    optimizer: str
    schedule: str
    lr: float
    agent: str = ""
    options: tuple[tuple[str, float], ...] = added_field(())
    SPEC_TYPE: ClassVar[str] = "experiments.dnn.DNNRunSpec"  # the id's type, kept on moves


@dataclass(frozen=True)
class AgentSpec:
    """One PPO training (seed ``seed``) on a task's training seeds."""

    task: TaskSpec
    n_train: int
    total_timesteps: int
    n_steps: int
    n_envs: int = 2
    seed: int = 0
    n_checkpoints: int = 4
    env_options: tuple[tuple[str, Any], ...] = added_field(())
    """Settings of :class:`rl_scheduler.LRScheduleEnv` on top of the task's (e.g. ``rate_range``)."""
    ppo_options: tuple[tuple[str, Any], ...] = added_field(())
    """PPO hyper-parameters on top of :data:`rl_scheduler.agent.DEFAULT_PPO_KWARGS` (e.g.
    ``gamma``), :func:`~experiments.common.agents.freeze`-d."""
    initial_lr: float | None = added_field(None)
    """The rate the agent's runs start from (``None``: :func:`default_lr`); with a
    ``rate_anchor``, the tuned rate of SGD with that schedule."""
    SPEC_TYPE: ClassVar[str] = "experiments.dnn.AgentSpec"  # the id's type, kept on moves

    @property
    def folder(self) -> str:
        """Output sub-folder of the agent (relative to the pipeline's output folder); agents of
        another design than the first references' get their spec id in the name, so a kept
        build never resumes one design's checkpoints as another's."""
        if not (self.env_options or self.ppo_options or self.initial_lr):
            return f"agents/{self.task.name}/seed{self.seed}"
        return f"agents/{self.task.name}/seed{self.seed}-{spec_id(self)[:10]}"


def check_run_spec(spec: DNNRunSpec) -> None:
    """Validate names and numbers (``ValueError`` naming the field)."""
    if spec.task.name not in TASKS:
        raise ValueError(f"task.name must be one of {TASKS}, got {spec.task.name!r}.")
    if spec.optimizer not in (*OPTIMIZERS, *LR_FREE):
        raise ValueError(
            f"optimizer must be one of {(*OPTIMIZERS, *LR_FREE)}, got {spec.optimizer!r}."
        )
    if spec.optimizer in LR_FREE and spec.schedule != "constant":
        raise ValueError(f"schedule of the peer {spec.optimizer!r} must be 'constant'.")
    if spec.optimizer in OPTIMIZERS and spec.options:
        raise ValueError(f"options must be empty for {spec.optimizer!r}, got {spec.options!r}.")
    if spec.schedule not in (*SCHEDULES, AGENT):
        raise ValueError(f"schedule must be one of {(*SCHEDULES, AGENT)}, got {spec.schedule!r}.")
    if spec.schedule == AGENT and (not spec.agent or spec.optimizer != "sgd"):
        raise ValueError("schedule='agent' needs the agent's path and optimizer='sgd'.")
    if not (math.isfinite(spec.lr) and spec.lr > 0):
        raise ValueError(f"lr must be a finite float > 0, got {spec.lr!r}.")


@dataclass(frozen=True)
class Config:
    """Everything that differs between the CPU, quick and GPU configurations.

    ``lr_ranges[task][optimizer]`` gives the initial tuning grid (``grid_size`` log-spaced
    values, ends included; widened by up to ``tune_rounds`` values per edge optimum) and the
    range of random search (log-uniform). ``n_ppo_seeds`` PPO trainings per task; random search
    gets the compute of one of them (``ppo_timesteps``), and spends ``hpo_recheck`` times
    ``n_tune - 1`` runs of it re-running its best trials on the other tuning seeds (see
    :meth:`recheck_runs`).
    """

    tasks: tuple[TaskSpec, ...]
    lr_ranges: dict[str, dict[str, tuple[float, float]]]
    n_train: int
    n_tune: int
    n_eval: int
    grid_size: int
    ppo_timesteps: int
    ppo_n_steps: int
    n_ppo_seeds: int = 3
    tune_rounds: int = 3
    n_checkpoints: int = 2
    hpo_fractions: tuple[float, ...] = (0.5, 1.0)
    hpo_seed: int = 0
    hpo_recheck: int = 5
    """How many of random search's best trials (by the validation loss of their one run) are
    re-run on the other tuning seeds before it picks, by the mean over all of them -- as the tuned
    baselines pick -- so a lucky single run does not decide."""
    optimizers: tuple[str, ...] = OPTIMIZERS
    schedules: tuple[str, ...] = SCHEDULES
    notes: str = ""
    peers: tuple[str, ...] = ()
    agent_env: dict[str, Any] = field(default_factory=lambda: dict(AGENT_ENV))
    """The agent's environment settings (:data:`AGENT_ENV`)."""
    agent_ppo: dict[str, Any] = field(default_factory=lambda: dict(AGENT_PPO))
    """The agent's PPO settings (:data:`AGENT_PPO`)."""

    def __post_init__(self) -> None:
        for name in ("n_train", "n_tune", "n_eval", "n_ppo_seeds", "n_checkpoints"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}.")
        if self.grid_size < 2:
            raise ValueError(f"grid_size must be >= 2 (a log axis), got {self.grid_size!r}.")
        if not (isinstance(self.tune_rounds, int) and self.tune_rounds >= 0):
            raise ValueError(f"tune_rounds must be an integer >= 0, got {self.tune_rounds!r}.")
        recheck = self.hpo_recheck
        if not (isinstance(recheck, int) and not isinstance(recheck, bool) and recheck >= 0):
            raise ValueError(f"hpo_recheck must be an integer >= 0, got {self.hpo_recheck!r}.")
        if not set(self.peers) <= set(LR_FREE):
            raise ValueError(f"peers must be among {LR_FREE}, got {self.peers!r}.")
        anchor = self.agent_env.get("rate_anchor")
        if anchor is not None and not (
            anchor in self.schedules and ANCHOR_OPTIMIZER in self.optimizers
        ):
            raise ValueError(
                f"agent_env's rate_anchor {anchor!r} must be a tuned schedule of "
                f"{ANCHOR_OPTIMIZER!r} (schedules {self.schedules!r}, optimizers "
                f"{self.optimizers!r}): the agent starts at its tuned rate."
            )

    def task(self, name: str) -> TaskSpec:
        return next(t for t in self.tasks if t.name == name)

    def tune_seeds(self, task: TaskSpec) -> list[int]:
        """The first ``n_tune`` training seeds (a subset of the agent's)."""
        return task.seeds("train", self.n_train)[: self.n_tune]

    def eval_seeds(self, task: TaskSpec) -> list[int]:
        """Held-out seeds (disjoint from the training seeds): the runs whose test loss is reported."""
        return task.seeds("test", self.n_eval)

    def grid(self, task: TaskSpec, optimizer: str) -> list[float]:
        lo, hi = self.lr_ranges[task.name][optimizer]
        return [float(f"{v:.4g}") for v in np.geomspace(lo, hi, self.grid_size)]

    def peer_grid(self, task: TaskSpec, peer: str) -> list[float]:
        """The initial grid of a peer's knob: Schedule-Free's ``lr`` on its family's range, the
        multipliers of Prodigy / D-Adaptation on :data:`PEER_MULTIPLIERS`; ``grid_size`` values."""
        if peer in SCHEDULE_FREE:
            return self.grid(task, "sgd" if peer.endswith("sgd") else "adam")
        return [float(f"{v:.4g}") for v in np.geomspace(*PEER_MULTIPLIERS, self.grid_size)]

    def n_trials(self, task: TaskSpec, anchor_runs: int = 0) -> int:
        """Random search's budget: one agent's training compute in whole runs (episodes).

        One PPO seed's actions, plus :meth:`extra_agent_runs`; :meth:`recheck_runs` of these
        runs re-run its best trials, the rest are trials.
        """
        episodes = math.ceil(self.ppo_timesteps / task.max_actions)
        return episodes + self.extra_agent_runs(task, anchor_runs)

    def recheck_runs(self) -> int:
        """Runs random search spends at every stage re-running its ``hpo_recheck`` best trials on
        the other ``n_tune - 1`` tuning seeds (0 with one tuning seed)."""
        return self.hpo_recheck * (self.n_tune - 1)

    def extra_agent_runs(self, task: TaskSpec, anchor_runs: int = 0) -> int:
        """Runs an agent costs beyond its PPO actions: with a ``reward_baseline`` the neutral
        policy's runs -- on the CPU counted as one per training seed and environment, elsewhere
        one per episode (rerun at every reset: GPU kernels need not be deterministic), twice
        that with ``reward_scale`` (the other anchor's runs too) -- plus ``anchor_runs``, the
        tuning runs of the schedule it starts from.

        On the CPU the count is what a training ran when each environment cached its own
        neutral runs; its environments now share one cache
        (:func:`rl_scheduler.registration.make_sharing_env`), so a training runs at most one
        per training seed (none when an earlier training in its worker ran them), and random
        search keeps the larger count: at least ``n_train * (n_envs - 1)`` runs more than an
        agent runs, which favours random search, not the agent."""
        # reference episodes per run: the neutral one, and the other anchor's for reward_scale
        per_run = bool(self.agent_env.get("reward_baseline") or self.agent_env.get("reward_scale"))
        per_run += bool(self.agent_env.get("reward_scale"))
        if task.device == "cpu":
            runs = AgentSpec.n_envs * self.n_train
        else:
            runs = math.ceil(self.ppo_timesteps / task.max_actions)
        return per_run * runs + anchor_runs

    def agent_start_cell(self, task: TaskSpec) -> Cell | None:
        """The baseline whose tuned rate starts the agent (``None``: the untuned default)."""
        anchor = self.agent_env.get("rate_anchor")
        return None if anchor is None else (task.name, ANCHOR_OPTIMIZER, anchor)


_RANGES = {
    "vision": {"sgd": (0.005, 0.5), "adam": (3e-4, 3e-2)},
    "text": {"sgd": (0.05, 5.0), "adam": (1e-3, 0.1)},
}

CPU = Config(
    tasks=(
        TaskSpec("vision", "digits", "cnn", batch_size=64, eval_size=256),
        TaskSpec("text", "shakespeare", "gru", batch_size=32, seq_len=16),
    ),
    lr_ranges=_RANGES,
    n_train=16,
    n_tune=2,
    n_eval=16,
    grid_size=5,
    ppo_timesteps=2048,
    ppo_n_steps=128,
    n_ppo_seeds=5,
    notes=(
        "2 CPU cores: SmallCNN (width 8) on digits, GRU (hidden 64) on Shakespeare; 5 PPO "
        "seeds of 2048 actions each per task (as the NMF study); 16 held-out seeds (with 10, "
        "the probabilities' intervals were about +-0.3 wide)."
    ),
    peers=LR_FREE,
)
QUICK = Config(
    tasks=(
        TaskSpec(
            "vision",
            "digits",
            "cnn",
            batch_size=32,
            eval_size=128,
            val_size=128,
            steps_per_action=5,
            max_actions=8,
        ),
        TaskSpec(
            "text",
            "shakespeare",
            "gru",
            (("hidden_size", 32),),
            batch_size=16,
            seq_len=16,
            eval_size=32,
            val_size=64,
            test_size=128,
            steps_per_action=5,
            max_actions=8,
        ),
    ),
    lr_ranges=_RANGES,
    n_train=4,
    n_tune=1,
    n_eval=3,
    grid_size=2,
    ppo_timesteps=64,
    ppo_n_steps=16,
    n_ppo_seeds=2,
    tune_rounds=1,
    schedules=("constant", "cosine", "greedy"),
    notes="Smoke run of every stage (tiny budgets; the numbers mean nothing).",
    peers=("schedulefree_sgd", "prodigy", "dadapt_sgd"),
)
GPU = Config(
    tasks=(
        TaskSpec(
            "vision",
            "cifar10",
            "resnet20",
            batch_size=128,
            eval_size=2048,
            steps_per_action=100,
            max_actions=40,
            device="auto",
            download=True,
        ),
        TaskSpec(
            "text",
            "tiny_shakespeare",
            "transformer",
            (("d_model", 128), ("n_layers", 4)),
            batch_size=64,
            seq_len=128,
            eval_size=256,
            val_size=512,
            steps_per_action=100,
            max_actions=40,
            device="auto",
            download=True,
        ),
    ),
    lr_ranges={
        "vision": {"sgd": (0.01, 1.0), "adam": (1e-4, 1e-2)},
        "text": {"sgd": (0.03, 3.0), "adam": (1e-4, 1e-2)},
    },
    n_train=16,
    n_tune=2,
    n_eval=5,
    grid_size=5,
    ppo_timesteps=8192,
    ppo_n_steps=128,
    notes=(
        "One GPU, --jobs 1 (every run uses the GPU): ResNet-20 on CIFAR-10 and a 4-layer "
        "transformer on tiny-shakespeare, 4000 steps per run; data in data/cifar10/ and "
        "data/tiny_shakespeare/ (downloaded on first use). Not measured."
    ),
    # ResNet-20 has batch normalisation, whose running statistics Schedule-Free would need
    # recomputed at its averaged weights before every evaluation (make_lr_free refuses it):
    # the GPU configuration compares Prodigy and D-Adaptation only.
    peers=tuple(p for p in LR_FREE if p not in SCHEDULE_FREE),
)
CONFIGS = {"cpu": CPU, "gpu": GPU}


def agent_specs(config: Config, start_lrs: dict[str, float] | None = None) -> list[AgentSpec]:
    """``n_ppo_seeds`` PPO trainings per task (the longest runs: listed first, text first).

    ``start_lrs[task]``: the tuned rate of the task's :meth:`Config.agent_start_cell` (needed
    when the agent has a ``rate_anchor``).
    """
    specs = []
    for t in sorted(config.tasks, key=lambda t: t.name != "text"):
        start = None
        if config.agent_start_cell(t) is not None:
            if not start_lrs or t.name not in start_lrs:
                raise ValueError(
                    f"start_lrs must give the tuned rate of {config.agent_start_cell(t)} for "
                    f"the agent's rate_anchor, got {start_lrs!r}."
                )
            start = float(start_lrs[t.name])
        for seed in range(config.n_ppo_seeds):
            specs.append(
                AgentSpec(
                    t,
                    config.n_train,
                    config.ppo_timesteps,
                    config.ppo_n_steps,
                    seed=seed,
                    n_checkpoints=config.n_checkpoints,
                    env_options=freeze(config.agent_env),
                    ppo_options=freeze(config.agent_ppo),
                    initial_lr=start,
                )
            )
    return specs


Cell = tuple[str, str, str]
"""A tuned baseline: ``(task, optimizer, schedule)``; a peer's knob: ``(task, peer, "constant")``."""


def initial_grids(config: Config) -> dict[Cell, list[float]]:
    """Every baseline's starting learning-rate grid (widened by :func:`tune_log_axes`)."""
    return {
        (task.name, optimizer, schedule): config.grid(task, optimizer)
        for task in config.tasks
        for optimizer in config.optimizers
        for schedule in config.schedules
    }


def peer_grids(config: Config) -> dict[Cell, list[float]]:
    """Every peer's starting grid of its knob (:meth:`Config.peer_grid`)."""
    return {
        (task.name, peer, "constant"): config.peer_grid(task, peer)
        for task in config.tasks
        for peer in config.peers
    }


def peer_spec(
    task: TaskSpec, seed: int, peer: str, knob: float, warmup: float = WARMUP_FRACTION
) -> DNNRunSpec:
    """A peer's run at its knob's value ``knob`` (Schedule-Free: warm-up ``warmup`` x budget)."""
    lr, options = knob_setting(peer, knob)
    if peer in SCHEDULE_FREE:
        options = (("warmup_steps", round(warmup * task.budget)),)
    return DNNRunSpec(task, seed, peer, "constant", lr, options=options)


def tuning_specs(config: Config, grids: dict[Cell, list[float]] | None = None) -> list[DNNRunSpec]:
    """Every cell x its values (default: :func:`initial_grids`) x the tuning seeds.

    A baseline's values are initial rates; a peer's (:func:`peer_grids`) its knob's values.
    """
    grids = initial_grids(config) if grids is None else grids
    return [
        peer_spec(config.task(name), seed, optimizer, value)
        if optimizer in LR_FREE
        else DNNRunSpec(config.task(name), seed, optimizer, schedule, value)
        for (name, optimizer, schedule), values in grids.items()
        for value in values
        for seed in config.tune_seeds(config.task(name))
    ]


def warmup_specs(
    config: Config, grids: dict[tuple[str, str], list[float]], knobs: dict[tuple[str, str], float]
) -> list[DNNRunSpec]:
    """Schedule-Free's warm-up axis: per ``(task, peer)`` its fractions at the tuned knob."""
    return [
        peer_spec(config.task(name), seed, peer, knobs[(name, peer)], fraction)
        for (name, peer), fractions in grids.items()
        for fraction in fractions
        for seed in config.tune_seeds(config.task(name))
    ]


def random_search_specs(
    config: Config, anchor_runs: dict[str, int] | None = None
) -> dict[str, list[DNNRunSpec]]:
    """Per task, the random-search trials in order (trial ``i`` runs on tuning seed ``i mod n``).

    Drawn from ``numpy.random.default_rng(hpo_seed)`` per task: optimizer and schedule uniformly,
    the learning rate log-uniformly in the optimizer's range. ``anchor_runs[task]``: the
    tuning runs of the agent's starting schedule, added to the budget (:meth:`Config.n_trials`);
    more trials extend the same sequence. The last :meth:`Config.recheck_runs` runs of the
    budget are not trials: they re-run the best ones (:func:`recheck_specs`).
    """
    out = {}
    for i, task in enumerate(config.tasks):
        rng = np.random.default_rng([config.hpo_seed, i])
        seeds = config.tune_seeds(task)
        trials = []
        budget = config.n_trials(task, (anchor_runs or {}).get(task.name, 0))
        for k in range(max(budget - config.recheck_runs(), 1)):
            optimizer = config.optimizers[int(rng.integers(len(config.optimizers)))]
            schedule = config.schedules[int(rng.integers(len(config.schedules)))]
            lo, hi = config.lr_ranges[task.name][optimizer]
            lr = float(f"{math.exp(rng.uniform(math.log(lo), math.log(hi))):.4g}")
            trials.append(DNNRunSpec(task, seeds[k % len(seeds)], optimizer, schedule, lr))
        out[task.name] = trials
    return out
