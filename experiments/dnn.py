"""Paper 2: a PPO agent schedules the learning rate of CV and NLP training, behind ``make reproduce-dnn``.

Two tasks (:mod:`rl_scheduler.tasks.torch_tasks`): **vision**, a small CNN on scikit-learn's digits,
and **text**, a character-level GRU on four of Shakespeare's plays, both trained by SGD with
momentum 0.9. Every run, whoever sets its learning rate, is the same :class:`~rl_scheduler.tasks.
VisionTask` / :class:`~rl_scheduler.tasks.TextTask` training loop for ``steps_per_action *
max_actions`` optimizer steps, driven one chunk of ``steps_per_action`` steps at a time: the
agent's granularity, which every controller shares (classic schedules are evaluated at the start
of each chunk; ReduceLROnPlateau and GreedyLR are stepped after each chunk with its validation
loss). Seeds (model initialisation and mini-batch order) come from the instance sets of
``rl_scheduler/Vision-v0`` / ``Text-v0``: *training* seeds for everything that learns or tunes,
disjoint *held-out* seeds for every reported number.

Stages (each a resumable sweep of :mod:`experiments.runner`):

1. **train** (``train.jsonl``), everything that spends compute on the training seeds:

   * PPO (:func:`rl_scheduler.agent.train_ppo`) on each task's training instances, with
     checkpoints along the way (for the cost-quality curve);
   * every baseline -- SGD and Adam, each with a constant, step (x0.1 at 50% and 75%), cosine,
     ReduceLROnPlateau and GreedyLR schedule -- grid-searched over its initial learning rate
     (the same grid size for all ten, on the same training seeds);
   * random search over optimizer x schedule x learning rate (log-uniform) with exactly the
     agent's training compute: as many full training runs as PPO had episodes (the paper's
     "equally expensive HPO").

2. **eval** (``eval.jsonl``): on the held-out seeds, the tuned baselines, the random-search
   winners after 25%, 50% and 100% of its budget, the agent's checkpoints, and each agent applied
   to the *other* task without retraining (transfer).

3. **summary**: ``summary.json``, ``table.md`` and figures (:mod:`experiments.plots_dnn`).

Compute is counted in optimizer steps on the training seeds: a tuned baseline costs
``grid size x training seeds x budget``; the agent ``PPO timesteps x steps_per_action``; random
search the same as the agent. Wall times are reported next to them (PPO's own updates are extra
wall time for the agent). Evaluation on the held-out seeds is not counted for anyone.

Reported per method (mean and 95% CI over the held-out seeds): final validation loss, validation
accuracy (vision) or perplexity (text), optimizer steps and seconds until the validation loss
first reaches a target (5% above the best method's mean final validation loss), and the number of
diverged runs. Selection (tuning, random search) uses the final validation loss on the training
seeds; the agent is rewarded for lowering the training objective.

Run ``python -m experiments.dnn --help``; ``--quick`` is a minute-long smoke run and
``--config gpu`` the (larger, unmeasured) GPU configuration.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.cli import finish, parse_pipeline_args, sweep_options
from experiments.runner import (
    run_sweep,
    spec_id,
)
from experiments.stats import format_mean_ci, mean_ci

TASKS: tuple[str, ...] = ("vision", "text")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")
SCHEDULES: tuple[str, ...] = ("constant", "step", "cosine", "plateau", "greedy")
"""Hand-made schedules, each with SGD and with Adam (ten baselines)."""

AGENT = "agent"
TRANSFER = "agent_transfer"
RANDOM_SEARCH = "random_search"

PLATEAU_CONFIG: dict[str, Any] = {"factor": 0.5, "patience": 2}
"""torch's ``ReduceLROnPlateau`` per chunk (floor ``1e-3`` x the initial rate)."""

GREEDY_CONFIG: dict[str, Any] = {"factor": 0.8, "patience": 1, "smooth": False, "reset_start": None}
""":class:`greedylr.GreedyLR` per chunk: x1.25 after two improving chunks, x0.8 after two worse
ones, within ``[1e-3, 10]`` x the initial rate (the library's bounds). Fixed in advance; only the
initial rate is tuned, as for every baseline."""

STEP_MILESTONES = (0.5, 0.75)
"""Step decay: x0.1 at half and at three quarters of the budget."""

TARGET_SLACK = 1.05
"""The time-to-target target is 5% above the best method's mean final validation loss."""


# ---------------------------------------------------------------------------------- task recipes
@dataclass(frozen=True)
class TaskSpec:
    """What is trained: a data set, a model, the optimizer's fixed settings and the budget.

    ``name`` is ``"vision"`` or ``"text"``; ``seq_len`` is used by text only. The budget of one
    run is ``steps_per_action * max_actions`` optimizer steps. ``download`` fetches a missing data
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
    momentum: float = 0.9
    steps_per_action: int = 10
    max_actions: int = 20
    device: str = "cpu"
    download: bool = False

    @property
    def budget(self) -> int:
        """Optimizer steps of one run."""
        return self.steps_per_action * self.max_actions

    def task_kwargs(self, optimizer: str, lr: float) -> dict[str, Any]:
        """Keyword arguments of :class:`~rl_scheduler.tasks.VisionTask` / ``TextTask``."""
        kwargs: dict[str, Any] = {
            "optimizer": optimizer,
            "momentum": self.momentum,
            "initial_lr": lr,
            "batch_size": self.batch_size,
            "eval_size": self.eval_size,
            "val_size": self.val_size,
            "device": self.device,
            "download": self.download,
        }
        if self.name == "text":
            kwargs["seq_len"] = self.seq_len
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

    def env_kwargs(self, seeds: list[int]) -> dict[str, Any]:
        """Keyword arguments of the task's registered environment over these training seeds."""
        from rl_scheduler.tasks.torch_tasks import torch_instance_to_dict

        kwargs = self.task_kwargs("sgd", default_lr(self))
        kwargs |= {
            "instances": [torch_instance_to_dict(self.instance(s)) for s in seeds],
            "steps_per_action": self.steps_per_action,
            "max_actions": self.max_actions,
        }
        return kwargs


def default_lr(task: TaskSpec) -> float:
    """The agent's starting rate: the task's untuned SGD default (``DEFAULT_INITIAL_LR``)."""
    from rl_scheduler.tasks.torch_tasks import DEFAULT_INITIAL_LR

    return DEFAULT_INITIAL_LR[task.name]["sgd"]


def env_id(task: TaskSpec) -> str:
    from rl_scheduler.registration import TEXT_ENV_ID, VISION_ENV_ID

    return VISION_ENV_ID if task.name == "vision" else TEXT_ENV_ID


# ---------------------------------------------------------------------------------- run specs
@dataclass(frozen=True)
class DNNRunSpec:
    """One training run of a task on one seed under one learning-rate controller.

    ``schedule`` is one of :data:`SCHEDULES` or ``"agent"`` (then ``agent`` is the path of a saved
    policy relative to the output folder, and ``optimizer`` must be ``"sgd"``). ``lr`` is the
    initial rate.
    """

    task: TaskSpec
    seed: int
    optimizer: str
    schedule: str
    lr: float
    agent: str = ""


@dataclass(frozen=True)
class AgentSpec:
    """PPO training on a task's training seeds (``ppo_kwargs`` overrides stable-baselines3's)."""

    task: TaskSpec
    n_train: int
    total_timesteps: int
    n_steps: int
    n_envs: int = 2
    seed: int = 0
    n_checkpoints: int = 4

    @property
    def folder(self) -> str:
        """Output sub-folder of the agent (relative to the pipeline's output folder)."""
        return f"agents/{self.task.name}"


def check_run_spec(spec: DNNRunSpec) -> None:
    """Validate names and numbers (``ValueError`` naming the field)."""
    if spec.task.name not in TASKS:
        raise ValueError(f"task.name must be one of {TASKS}, got {spec.task.name!r}.")
    if spec.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {spec.optimizer!r}.")
    if spec.schedule not in (*SCHEDULES, AGENT):
        raise ValueError(f"schedule must be one of {(*SCHEDULES, AGENT)}, got {spec.schedule!r}.")
    if spec.schedule == AGENT and (not spec.agent or spec.optimizer != "sgd"):
        raise ValueError("schedule='agent' needs the agent's path and optimizer='sgd'.")
    if not (math.isfinite(spec.lr) and spec.lr > 0):
        raise ValueError(f"lr must be a finite float > 0, got {spec.lr!r}.")


# ---------------------------------------------------------------------------------- controllers
class ChunkSchedule:
    """The learning rate of each chunk ``k = 0 .. n_chunks - 1`` from the stats seen so far.

    ``constant``, ``step`` and ``cosine`` are closed-form in ``k``; ``plateau`` and ``greedy`` wrap
    torch's ``ReduceLROnPlateau`` and :class:`greedylr.GreedyLR` around a one-parameter stand-in
    optimizer and step them with the validation loss after every chunk; ``agent`` is a
    :class:`rl_scheduler.policy.LearnedSchedule` fed the task's stats.
    """

    def __init__(
        self, name: str, lr: float, n_chunks: int, steps_per_chunk: int, policy: Any = None
    ) -> None:
        import torch

        self.name, self.lr0, self.n_chunks, self.steps = name, lr, n_chunks, steps_per_chunk
        self.policy = policy
        self._scheduler: Any = None
        if name in ("plateau", "greedy"):
            self._opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
            if name == "plateau":
                self._scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                    self._opt, min_lr=1e-3 * lr, **PLATEAU_CONFIG
                )
            else:
                from greedylr import GreedyLR

                self._scheduler = GreedyLR(self._opt, **GREEDY_CONFIG)

    def __call__(self, k: int, stats: Any) -> float:
        """The rate of chunk ``k``, given the stats after chunk ``k - 1`` (after the reset)."""
        if self.name == "constant":
            return self.lr0
        if self.name == "step":
            return self.lr0 * 0.1 ** sum(k >= f * self.n_chunks for f in STEP_MILESTONES)
        if self.name == "cosine":
            return self.lr0 * 0.5 * (1.0 + math.cos(math.pi * k / self.n_chunks))
        if self.name == AGENT:
            self.policy.observe(stats)
            return float(self.policy(k * self.steps))
        if k > 0:
            self._scheduler.step(float(stats.val_loss))
        return float(self._opt.param_groups[0]["lr"])


@functools.lru_cache(maxsize=8)
def _load_policy(path: str) -> Any:
    from rl_scheduler import agent

    return agent.load(path, device="cpu")


def make_task(task: TaskSpec, seed: int, optimizer: str, lr: float) -> Any:
    """A one-instance :class:`~rl_scheduler.tasks.VisionTask` / ``TextTask`` for ``seed``."""
    from rl_scheduler.tasks.torch_tasks import TextTask, VisionTask

    cls = VisionTask if task.name == "vision" else TextTask
    return cls([task.instance(seed)], **task.task_kwargs(optimizer, lr))


def _short(x: float) -> float:
    """Six significant digits (keeps result files small, far below any run's noise)."""
    return float(f"{x:.6g}") if math.isfinite(x) else x


def run_dnn(spec: DNNRunSpec, *, root: str = ".") -> dict[str, Any]:
    """Train one spec; return per-chunk curves and final numbers.

    Returns
    -------
    dict
        ``steps``, ``train_loss``, ``val_loss``, ``metric`` (validation accuracy or perplexity)
        and ``time_s`` (cumulative training seconds) at the start and after every chunk;
        ``lrs`` (the rate of every chunk); ``final_val_loss`` / ``final_metric`` (``inf`` /
        ``nan`` when diverged), ``final_train_loss``, ``diverged``, ``wall_time_s``.
    """
    import torch

    check_run_spec(spec)
    if spec.task.device == "cpu":
        torch.set_num_threads(1)
    start = time.perf_counter()
    task = make_task(spec.task, spec.seed, spec.optimizer, spec.lr)
    t = spec.task
    policy = None
    if spec.schedule == AGENT:
        from rl_scheduler.policy import LearnedSchedule

        policy = LearnedSchedule(_load_policy(str(Path(root) / spec.agent)), initial_lr=spec.lr)
        if (policy.steps_per_action, policy.max_actions) != (t.steps_per_action, t.max_actions):
            raise ValueError(
                f"the agent decides every {policy.steps_per_action} steps for "
                f"{policy.max_actions} actions; the task needs {t.steps_per_action} x "
                f"{t.max_actions}."
            )
    control = ChunkSchedule(spec.schedule, spec.lr, t.max_actions, t.steps_per_action, policy)
    metric_name = "val_accuracy" if t.name == "vision" else "val_perplexity"
    stats = task.reset(instance=0)
    curves: dict[str, list[float]] = {
        "steps": [0],
        "train_loss": [_short(stats.loss)],
        "val_loss": [_short(stats.val_loss)],
        "metric": [_short(task.metrics[metric_name])],
        "time_s": [0.0],
        "lrs": [],
    }
    train_time = 0.0
    for k in range(t.max_actions):
        tic = time.perf_counter()
        lr = control(k, stats)
        stats = task.advance(lr, t.steps_per_action)
        train_time += time.perf_counter() - tic
        curves["lrs"].append(_short(lr))
        curves["steps"].append(stats.steps_done)
        curves["train_loss"].append(_short(stats.loss) if not stats.diverged else math.inf)
        curves["val_loss"].append(_short(stats.val_loss) if not stats.diverged else math.inf)
        curves["metric"].append(
            _short(task.metrics.get(metric_name, math.nan)) if not stats.diverged else math.nan
        )
        curves["time_s"].append(round(train_time, 4))
        if stats.diverged:
            break
    return curves | {
        "metric_name": metric_name,
        "final_val_loss": curves["val_loss"][-1],
        "final_train_loss": curves["train_loss"][-1],
        "final_metric": curves["metric"][-1],
        "diverged": bool(stats.diverged),
        "wall_time_s": time.perf_counter() - start,
    }


def train_agent(spec: AgentSpec, *, root: str = ".") -> dict[str, Any]:
    """Train (or resume) PPO on a task's training seeds; list its checkpoints."""
    import torch

    from rl_scheduler import agent

    if spec.task.device == "cpu":
        torch.set_num_threads(1)
    folder = Path(root) / spec.folder
    rollout = spec.n_steps * spec.n_envs
    # A checkpoint every ~1/n_checkpoints of the run (PPO saves after whole rollouts).
    every = max(rollout, spec.total_timesteps // spec.n_checkpoints // rollout * rollout)
    start = time.perf_counter()
    model = agent.train_ppo(
        spec.task.env_kwargs(spec.task.seeds("train", spec.n_train)),
        env_id=env_id(spec.task),
        total_timesteps=spec.total_timesteps,
        n_envs=spec.n_envs,
        seed=spec.seed,
        checkpoint_dir=folder,
        checkpoint_every=every,
        keep_checkpoints=spec.n_checkpoints + 1,
        device="cpu",
        ppo_kwargs={"n_steps": spec.n_steps},
    )
    elapsed = time.perf_counter() - start
    agent.save(model, folder / "model.zip")
    checkpoints = sorted((folder / "checkpoints").glob("ppo_*.zip"))
    curve = agent.load_training_curve(folder)
    return {
        "model": f"{spec.folder}/model.zip",
        "checkpoints": [
            {"timesteps": int(p.stem.split("_")[1]), "path": f"{spec.folder}/checkpoints/{p.name}"}
            for p in checkpoints
        ],
        "timesteps": int(model.num_timesteps),
        "train_time_s": elapsed,
        "episodes": len(curve),
        "diverged_episodes": sum(bool(r["diverged"]) for r in curve),
        "returns": [_short(r["return"]) for r in curve],
        "episode_timesteps": [int(r["timesteps"]) for r in curve],
    }


def run_spec(spec: Any, *, root: str = ".") -> dict[str, Any]:
    """The run function of every sweep: PPO training or one training run, by spec type."""
    if isinstance(spec, AgentSpec):
        return train_agent(spec, root=root)
    return run_dnn(spec, root=root)


# ---------------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class Config:
    """Everything that differs between the CPU, quick and GPU configurations.

    ``lr_ranges[task][optimizer]`` bounds the learning rates of the tuning grid (``grid_size``
    log-spaced values, ends included) and of random search (log-uniform).
    """

    tasks: tuple[TaskSpec, ...]
    lr_ranges: dict[str, dict[str, tuple[float, float]]]
    n_train: int
    n_tune: int
    n_eval: int
    grid_size: int
    ppo_timesteps: int
    ppo_n_steps: int
    n_checkpoints: int = 4
    hpo_fractions: tuple[float, ...] = (0.25, 0.5, 1.0)
    hpo_seed: int = 0
    optimizers: tuple[str, ...] = OPTIMIZERS
    schedules: tuple[str, ...] = SCHEDULES
    notes: str = ""

    def task(self, name: str) -> TaskSpec:
        return next(t for t in self.tasks if t.name == name)

    def tune_seeds(self, task: TaskSpec) -> list[int]:
        """The first ``n_tune`` training seeds (a subset of the agent's)."""
        return task.seeds("train", self.n_train)[: self.n_tune]

    def eval_seeds(self, task: TaskSpec) -> list[int]:
        return task.seeds("test", self.n_eval)

    def grid(self, task: TaskSpec, optimizer: str) -> list[float]:
        lo, hi = self.lr_ranges[task.name][optimizer]
        return [float(f"{v:.4g}") for v in np.geomspace(lo, hi, self.grid_size)]

    def n_trials(self, task: TaskSpec) -> int:
        """Random-search trials: the agent's training compute in whole runs (PPO episodes)."""
        return math.ceil(self.ppo_timesteps / task.max_actions)


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
    n_eval=5,
    grid_size=5,
    ppo_timesteps=4096,
    ppo_n_steps=128,
    notes="2 CPU cores: SmallCNN (width 8) on digits, GRU (hidden 64) on Shakespeare.",
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
            steps_per_action=5,
            max_actions=8,
        ),
    ),
    lr_ranges=_RANGES,
    n_train=4,
    n_tune=1,
    n_eval=3,
    grid_size=2,
    ppo_timesteps=128,
    ppo_n_steps=32,
    n_checkpoints=2,
    notes="Smoke run of every stage (tiny budgets; the numbers mean nothing).",
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
)
CONFIGS = {"cpu": CPU, "gpu": GPU}


# ---------------------------------------------------------------------------------- stage specs
def agent_specs(config: Config) -> list[AgentSpec]:
    """One PPO training per task (the longest runs: listed first so they start first)."""
    return [
        AgentSpec(
            t,
            config.n_train,
            config.ppo_timesteps,
            config.ppo_n_steps,
            n_checkpoints=config.n_checkpoints,
        )
        for t in sorted(config.tasks, key=lambda t: t.name != "text")
    ]


def tuning_specs(config: Config) -> list[DNNRunSpec]:
    """Every baseline x its learning-rate grid x the tuning seeds."""
    return [
        DNNRunSpec(task, seed, optimizer, schedule, lr)
        for task in config.tasks
        for optimizer in config.optimizers
        for schedule in config.schedules
        for lr in config.grid(task, optimizer)
        for seed in config.tune_seeds(task)
    ]


def random_search_specs(config: Config) -> dict[str, list[DNNRunSpec]]:
    """Per task, the random-search trials in order (trial ``i`` runs on tuning seed ``i mod n``).

    Drawn from ``numpy.random.default_rng(hpo_seed)`` per task: optimizer and schedule uniformly,
    the learning rate log-uniformly in the optimizer's range.
    """
    out = {}
    for i, task in enumerate(config.tasks):
        rng = np.random.default_rng([config.hpo_seed, i])
        seeds = config.tune_seeds(task)
        trials = []
        for k in range(config.n_trials(task)):
            optimizer = config.optimizers[int(rng.integers(len(config.optimizers)))]
            schedule = config.schedules[int(rng.integers(len(config.schedules)))]
            lo, hi = config.lr_ranges[task.name][optimizer]
            lr = float(f"{math.exp(rng.uniform(math.log(lo), math.log(hi))):.4g}")
            trials.append(DNNRunSpec(task, seeds[k % len(seeds)], optimizer, schedule, lr))
        out[task.name] = trials
    return out


# ---------------------------------------------------------------------------------- selection
def _final(record: dict | None) -> float:
    if record is None or record["status"] != "ok":
        return math.inf
    value = float(record["result"]["final_val_loss"])
    return value if math.isfinite(value) else math.inf


def select_baselines(config: Config, records: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """Per task and baseline ``"<optimizer>/<schedule>"``: the grid learning rate with the lowest
    mean final validation loss over the tuning seeds (a diverged run counts as ``inf``)."""
    best: dict[str, dict[str, dict]] = defaultdict(dict)
    by_key: dict[tuple[str, str, float], list[float]] = defaultdict(list)
    walls: dict[tuple[str, str], float] = defaultdict(float)
    for spec in tuning_specs(config):
        rec = records.get(spec_id(spec))
        name = f"{spec.optimizer}/{spec.schedule}"
        by_key[(spec.task.name, name, spec.lr)].append(_final(rec))
        walls[(spec.task.name, name)] += rec["wall_time_s"] if rec else 0.0
    for (task, name, lr), values in by_key.items():
        score = float(np.mean(values))
        if name not in best[task] or score < best[task][name]["train_val_loss"]:
            best[task][name] = {"lr": lr, "train_val_loss": score}
    for (task, name), wall in walls.items():
        best[task][name]["search_wall_time_s"] = wall
    return {k: dict(v) for k, v in best.items()}


def select_random_search(
    config: Config, trials: dict[str, list[DNNRunSpec]], records: dict[str, dict]
) -> dict[str, list[dict]]:
    """Per task, the best trial among the first ``f * n_trials`` for every ``f`` in ``hpo_fractions``."""
    out = {}
    for name, specs in trials.items():
        finals = [_final(records.get(spec_id(s))) for s in specs]
        walls = np.cumsum(
            [records[spec_id(s)]["wall_time_s"] if spec_id(s) in records else 0.0 for s in specs]
        )
        stages = []
        for f in config.hpo_fractions:
            k = max(1, round(f * len(specs)))
            i = int(np.argmin(finals[:k]))
            s = specs[i]
            stages.append(
                {
                    "fraction": f,
                    "trials": k,
                    "best_trial": i,
                    "optimizer": s.optimizer,
                    "schedule": s.schedule,
                    "lr": s.lr,
                    "train_val_loss": finals[i],
                    "search_wall_time_s": float(walls[k - 1]),
                }
            )
        out[name] = stages
    return out


# ---------------------------------------------------------------------------------- stages
def _by_id(records: list[dict]) -> dict[str, dict]:
    return {r["spec_id"]: r for r in records}


def _require_ok(records: list[dict], what: str) -> None:
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        err = failed[0]["error"]
        raise RuntimeError(
            f"{len(failed)} {what} run(s) failed, e.g. {failed[0]['spec_id']}: "
            f"{err['type']}: {err['message']}"
        )


def train_stage(config: Config, out: Path, **sweep: Any) -> dict[str, Any]:
    """PPO training, baseline tuning and random search, in one sweep (``train.jsonl``)."""
    agents = agent_specs(config)
    trials = random_search_specs(config)
    specs = [*agents, *tuning_specs(config), *(s for t in trials.values() for s in t)]
    fn = functools.partial(run_spec, root=str(out))
    records = run_sweep(fn, specs, out / "train.jsonl", **sweep)
    by_id = _by_id(records)
    _require_ok([by_id[spec_id(a)] for a in agents], "agent training")
    return {
        "agents": {a.task.name: by_id[spec_id(a)]["result"] for a in agents},
        "baselines": select_baselines(config, by_id),
        "random_search": select_random_search(config, trials, by_id),
    }


def eval_plan(config: Config, trained: dict[str, Any]) -> list[tuple[str, str, DNNRunSpec]]:
    """Every held-out run as ``(task, method, spec)``.

    Methods: the ten tuned baselines, ``random_search@<trials>`` (the winner after that many
    trials), ``agent@<timesteps>`` (a PPO checkpoint) and ``agent_transfer`` (the other task's
    final agent, not retrained).
    """
    plan = []
    for task in config.tasks:
        methods: list[tuple[str, str, str, float, str]] = []
        for name, best in trained["baselines"][task.name].items():
            optimizer, schedule = name.split("/")
            methods.append((name, optimizer, schedule, best["lr"], ""))
        for stage in trained["random_search"][task.name]:
            methods.append(
                (
                    f"{RANDOM_SEARCH}@{stage['trials']}",
                    stage["optimizer"],
                    stage["schedule"],
                    stage["lr"],
                    "",
                )
            )
        for ckpt in trained["agents"][task.name]["checkpoints"]:
            methods.append(
                (f"{AGENT}@{ckpt['timesteps']}", "sgd", AGENT, default_lr(task), ckpt["path"])
            )
        for other, result in trained["agents"].items():
            if other != task.name:
                methods.append((TRANSFER, "sgd", AGENT, default_lr(task), result["model"]))
        for method, optimizer, schedule, lr, path in methods:
            for seed in config.eval_seeds(task):
                plan.append(
                    (task.name, method, DNNRunSpec(task, seed, optimizer, schedule, lr, path))
                )
    return plan


def eval_stage(
    config: Config, trained: dict[str, Any], out: Path, **sweep: Any
) -> list[tuple[str, str, dict]]:
    """Run the held-out plan (``eval.jsonl``); return ``(task, method, record)`` triples."""
    plan = eval_plan(config, trained)
    fn = functools.partial(run_spec, root=str(out))
    records = _by_id(run_sweep(fn, [s for _, _, s in plan], out / "eval.jsonl", **sweep))
    return [(task, method, records[spec_id(spec)]) for task, method, spec in plan]


# ---------------------------------------------------------------------------------- summary
def _steps_to(results: list[dict], target: float, key: str) -> dict[str, Any]:
    """Mean steps (or seconds) until the validation loss first reaches ``target``."""
    hits = []
    for r in results:
        vals = np.asarray(r["val_loss"], dtype=float)
        reached = np.flatnonzero(vals <= target)
        if len(reached):
            hits.append(float(r[key][int(reached[0])]))
    return {
        "mean": float(np.mean(hits)) if hits else math.inf,
        "reached": len(hits),
        "n": len(results),
    }


def _method_row(results: list[dict], target: float) -> dict[str, Any]:
    lrs = [lr for r in results for lr in r["lrs"]]
    return {
        "final_val_loss": mean_ci([r["final_val_loss"] for r in results]),
        "final_metric": mean_ci([r["final_metric"] for r in results]),
        "final_train_loss": mean_ci([r["final_train_loss"] for r in results]),
        "steps_to_target": _steps_to(results, target, "steps"),
        "time_to_target_s": _steps_to(results, target, "time_s"),
        "diverged": sum(bool(r["diverged"]) for r in results),
        "n": len(results),
        "lr_min": float(min(lrs)) if lrs else math.nan,
        "lr_max": float(max(lrs)) if lrs else math.nan,
        "wall_time_s": mean_ci([r["wall_time_s"] for r in results]),
    }


def summarise(
    config: Config, trained: dict[str, Any], evaluated: list[tuple[str, str, dict]]
) -> dict:
    """Per task and method: held-out numbers, the compute spent to obtain the method, and the
    cost-quality points of random search and the agent."""
    failed = [rec["spec_id"] for _, _, rec in evaluated if rec["status"] != "ok"]
    results: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for task, method, rec in evaluated:
        if rec["status"] == "ok":
            results[task][method].append(rec["result"])
    summary: dict[str, Any] = {"config": _config_dict(config), "failed_runs": failed, "tasks": {}}
    for task_spec in config.tasks:
        name = task_spec.name
        runs = results[name]
        budget = task_spec.budget
        agent_info = trained["agents"][name]
        final_ckpt = f"{AGENT}@{agent_info['checkpoints'][-1]['timesteps']}"
        hpo = trained["random_search"][name]
        final_hpo = f"{RANDOM_SEARCH}@{hpo[-1]['trials']}"
        means = {m: mean_ci([r["final_val_loss"] for r in rs])["mean"] for m, rs in runs.items()}
        best_mean = min((v for v in means.values() if math.isfinite(v)), default=math.inf)
        target = TARGET_SLACK * best_mean
        grid_compute = config.grid_size * len(config.tune_seeds(task_spec)) * budget
        rows: dict[str, dict] = {}
        for method, best in trained["baselines"][name].items():
            optimizer, schedule = method.split("/")
            rows[method] = _method_row(runs[method], target) | {
                "optimizer": optimizer,
                "schedule": schedule,
                "lr": best["lr"],
                "compute_steps": grid_compute,
                "search_wall_time_s": best["search_wall_time_s"],
            }
        rows[RANDOM_SEARCH] = (
            _method_row(runs[final_hpo], target)
            | {k: hpo[-1][k] for k in ("optimizer", "schedule", "lr", "trials")}
            | {
                "compute_steps": hpo[-1]["trials"] * budget,
                "search_wall_time_s": hpo[-1]["search_wall_time_s"],
            }
        )
        agent_compute = agent_info["timesteps"] * task_spec.steps_per_action
        rows[AGENT] = _method_row(runs[final_ckpt], target) | {
            "optimizer": "sgd",
            "schedule": AGENT,
            "lr": default_lr(task_spec),
            "agent": agent_info["checkpoints"][-1]["path"],
            "compute_steps": agent_compute,
            "search_wall_time_s": agent_info["train_time_s"],
            "training_episodes": agent_info["episodes"],
            "training_diverged_episodes": agent_info["diverged_episodes"],
        }
        others = [o for o in trained["agents"] if o != name]
        if others and runs.get(TRANSFER):
            rows[TRANSFER] = _method_row(runs[TRANSFER], target) | {
                "optimizer": "sgd",
                "schedule": AGENT,
                "lr": default_lr(task_spec),
                "agent": trained["agents"][others[0]]["model"],
                "source": others[0],
                "compute_steps": 0,
                "source_compute_steps": trained["agents"][others[0]]["timesteps"]
                * config.task(others[0]).steps_per_action,
                "search_wall_time_s": 0.0,
            }
        cost_quality = {
            RANDOM_SEARCH: [
                {
                    "trials": s["trials"],
                    "optimizer": s["optimizer"],
                    "schedule": s["schedule"],
                    "lr": s["lr"],
                    "compute_steps": s["trials"] * budget,
                    "final_val_loss": mean_ci(
                        [r["final_val_loss"] for r in runs[f"{RANDOM_SEARCH}@{s['trials']}"]]
                    ),
                }
                for s in hpo
            ],
            AGENT: [
                {
                    "timesteps": c["timesteps"],
                    "agent": c["path"],
                    "compute_steps": c["timesteps"] * task_spec.steps_per_action,
                    "final_val_loss": mean_ci(
                        [r["final_val_loss"] for r in runs[f"{AGENT}@{c['timesteps']}"]]
                    ),
                }
                for c in agent_info["checkpoints"]
            ],
        }
        summary["tasks"][name] = {
            "metric": "val_accuracy" if name == "vision" else "val_perplexity",
            "budget_steps": budget,
            "target_val_loss": target,
            "methods": rows,
            "cost_quality": cost_quality,
            "agent_training": {
                k: agent_info[k]
                for k in (
                    "timesteps",
                    "episodes",
                    "diverged_episodes",
                    "train_time_s",
                    "returns",
                    "episode_timesteps",
                )
            },
        }
    return summary


def _config_dict(config: Config) -> dict[str, Any]:
    d = asdict(config)
    d["grids"] = {t.name: {o: config.grid(t, o) for o in config.optimizers} for t in config.tasks}
    d["n_trials"] = {t.name: config.n_trials(t) for t in config.tasks}
    d["plateau_config"] = PLATEAU_CONFIG
    d["greedy_config"] = GREEDY_CONFIG
    d["step_milestones"] = list(STEP_MILESTONES)
    return d


# ---------------------------------------------------------------------------------- table
METHOD_LABELS = {
    AGENT: "PPO agent (learned schedule)",
    TRANSFER: "PPO agent trained on the other task",
    RANDOM_SEARCH: "random search (agent's compute)",
}


def method_label(method: str) -> str:
    if method in METHOD_LABELS:
        return METHOD_LABELS[method]
    optimizer, schedule = method.split("/")
    names = {"sgd": "SGD", "adam": "Adam"}
    return f"{names[optimizer]} + {schedule}"


def _sort_key(value: float) -> float:
    return value if not math.isnan(value) else math.inf


def _reach(r: dict[str, Any], digits: int) -> str:
    if not r["reached"]:
        return "never"
    return f"{r['mean']:.{digits}f} ({r['reached']}/{r['n']})"


def markdown_table(summary: dict) -> str:
    """One table per task: held-out numbers of every method, best final validation loss first."""
    lines: list[str] = []
    for name, block in summary["tasks"].items():
        metric = "val. accuracy" if block["metric"] == "val_accuracy" else "val. perplexity"
        lines += [
            f"**{name}** ({block['budget_steps']} steps per run; target val. loss "
            f"{block['target_val_loss']:.4f}; mean ± 95% CI over held-out seeds)",
            "",
            f"| method | setting | compute (steps) | final val. loss | {metric} | steps to target "
            "| seconds to target | diverged |",
            "|---|---|---|---|---|---|---|---|",
        ]
        rows = block["methods"]
        for method in sorted(rows, key=lambda m: _sort_key(rows[m]["final_val_loss"]["mean"])):
            r = rows[method]
            if r["schedule"] == AGENT:
                setting = f"SGD, starts at {r['lr']:g}"
            else:
                setting = f"{r['optimizer']}, {r['schedule']}, lr {r['lr']:g}"
            compute = (
                f"0 (trained on {r['source']})" if method == TRANSFER else f"{r['compute_steps']:,}"
            )
            lines.append(
                f"| {method_label(method)} | {setting} | {compute} | "
                f"{format_mean_ci(r['final_val_loss'])} | "
                f"{format_mean_ci(r['final_metric'], 3)} | {_reach(r['steps_to_target'], 0)} | "
                f"{_reach(r['time_to_target_s'], 2)} | {r['diverged']}/{r['n']} |"
            )
        a = rows[AGENT]
        lines += [
            "",
            f"Agent: {a['compute_steps']:,} optimizer steps of PPO training "
            f"({a['training_episodes']} episodes, {a['training_diverged_episodes']} diverged, "
            f"{a['search_wall_time_s']:.0f} s); its held-out learning rates stayed in "
            f"[{a['lr_min']:.3g}, {a['lr_max']:.3g}] (start {a['lr']:g}). Random search: "
            f"{rows[RANDOM_SEARCH]['trials']} trials ({rows[RANDOM_SEARCH]['search_wall_time_s']:.0f} s).",
            "",
            "Cost vs quality (held-out final val. loss after that much compute on the training seeds):",
            "",
            "| compute (steps) | random search | PPO agent |",
            "|---|---|---|",
        ]
        cq = block["cost_quality"]
        points: dict[int, dict[str, str]] = defaultdict(dict)
        for p in cq[RANDOM_SEARCH]:
            points[p["compute_steps"]]["rs"] = format_mean_ci(p["final_val_loss"])
        for p in cq[AGENT]:
            points[p["compute_steps"]]["agent"] = format_mean_ci(p["final_val_loss"])
        for steps in sorted(points):
            lines.append(
                f"| {steps:,} | {points[steps].get('rs', '')} | {points[steps].get('agent', '')} |"
            )
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- entry point
def _add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        choices=sorted(CONFIGS),
        default="cpu",
        help="cpu (default): the 2-core configuration; gpu: the larger, unmeasured configuration "
        "for one GPU (default output results/dnn-gpu); --quick overrides both",
    )


def _parse(argv: list[str] | None) -> tuple[argparse.Namespace, Path]:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    _add_config_argument(pre)
    pre.add_argument("--out", default=None)
    pre.add_argument("--quick", action="store_true")
    known, _ = pre.parse_known_args(argv)
    if known.config == "gpu" and known.out is None and not known.quick:
        argv += ["--out", str(Path("results") / "dnn-gpu")]
    return parse_pipeline_args("dnn", __doc__.split("\n")[0], argv, _add_config_argument)


def main(argv: list[str] | None = None) -> dict:
    args, out = _parse(argv)
    config = QUICK if args.quick else CONFIGS[args.config]
    start = time.perf_counter()
    sweep = sweep_options(args)
    trained = train_stage(config, out, **sweep)
    evaluated = eval_stage(config, trained, out, **sweep)
    summary = summarise(config, trained, evaluated)
    from experiments import plots_dnn

    figures = plots_dnn.dnn_figures([rec for _, _, rec in evaluated], summary, out)
    summary["figures"] = [p.name for p in figures]
    if summary["failed_runs"]:
        print(
            f"warning: {len(summary['failed_runs'])} held-out run(s) failed and are missing from "
            f"the table; see {out / 'eval.jsonl'} (rerunning retries them)",
            file=sys.stderr,
        )
    return finish(args, out, summary, markdown_table(summary), start)


if __name__ == "__main__":
    main()
