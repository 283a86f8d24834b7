"""The DNN study's runs and stages: one training run under a controller, PPO training, tuning
and random-search selection, and the train / held-out sweeps (protocol: ``docs/dnn.md``)."""

from __future__ import annotations

import functools
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from experiments.common import agents
from experiments.common.agents import load_policy
from experiments.common.controllers import ChunkSchedule
from experiments.common.progress import ProgressLine
from experiments.common.records import by_id, require_ok, short
from experiments.dnn.config import (
    AGENT,
    GREEDY_CONFIG,
    PLATEAU_CONFIG,
    RANDOM_SEARCH,
    STEP_MILESTONES,
    TRANSFER,
    AgentSpec,
    Config,
    DNNRunSpec,
    TaskSpec,
    agent_specs,
    check_run_spec,
    default_lr,
    env_id,
    random_search_specs,
    tuning_specs,
)
from experiments.runner import run_sweep, spec_id


def make_task(task: TaskSpec, seed: int, optimizer: str, lr: float) -> Any:
    """A one-instance :class:`~rl_scheduler.tasks.VisionTask` / ``TextTask`` for ``seed``."""
    from rl_scheduler.tasks.torch_tasks import TextTask, VisionTask

    cls = VisionTask if task.name == "vision" else TextTask
    return cls([task.instance(seed)], **task.task_kwargs(optimizer, lr))


def make_controller(
    name: str, lr: float, n_chunks: int, steps_per_chunk: int, policy: Any = None
) -> ChunkSchedule:
    """The study's controller ``name`` (one of :data:`SCHEDULES` or ``"agent"``) from rate ``lr``."""
    return ChunkSchedule(
        name,
        lr,
        n_chunks,
        steps_per_chunk,
        step_milestones=STEP_MILESTONES,
        plateau=PLATEAU_CONFIG,
        greedy=GREEDY_CONFIG,
        policy=policy,
    )


def run_dnn(spec: DNNRunSpec, *, root: str = ".", progress: bool = False) -> dict[str, Any]:
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

        policy = LearnedSchedule(load_policy(str(Path(root) / spec.agent)), initial_lr=spec.lr)
        if (policy.steps_per_action, policy.max_actions) != (t.steps_per_action, t.max_actions):
            raise ValueError(
                f"the agent decides every {policy.steps_per_action} steps for "
                f"{policy.max_actions} actions; the task needs {t.steps_per_action} x "
                f"{t.max_actions}."
            )
    control = make_controller(spec.schedule, spec.lr, t.max_actions, t.steps_per_action, policy)
    metric_name = "val_accuracy" if t.name == "vision" else "val_perplexity"
    stats = task.reset(instance=0)
    curves: dict[str, list[float]] = {
        "steps": [0],
        "train_loss": [short(stats.loss)],
        "val_loss": [short(stats.val_loss)],
        "metric": [short(task.metrics[metric_name])],
        "time_s": [0.0],
        "lrs": [],
    }
    train_time = 0.0
    label = f"{t.name} {spec.optimizer}/{spec.schedule} seed {spec.seed}"
    report = ProgressLine(label) if progress else None
    for k in range(t.max_actions):
        tic = time.perf_counter()
        lr = control(k, stats)
        stats = task.advance(lr, t.steps_per_action)
        train_time += time.perf_counter() - tic
        curves["lrs"].append(short(lr))
        curves["steps"].append(stats.steps_done)
        curves["train_loss"].append(short(stats.loss) if not stats.diverged else math.inf)
        curves["val_loss"].append(short(stats.val_loss) if not stats.diverged else math.inf)
        curves["metric"].append(
            short(task.metrics.get(metric_name, math.nan)) if not stats.diverged else math.nan
        )
        curves["time_s"].append(round(train_time, 4))
        if report is not None:
            report(stats.steps_done, t.budget)
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


def train_agent(spec: AgentSpec, *, root: str = ".", progress: bool = False) -> dict[str, Any]:
    """Train (or resume) PPO on a task's training seeds; list its checkpoints.

    ``progress``: print rate lines with an ETA while it trains.
    """
    from rl_scheduler.agent import checkpoint_steps

    folder = Path(root) / spec.folder
    rollout = spec.n_steps * spec.n_envs
    # A checkpoint every ~1/n_checkpoints of the run (PPO saves after whole rollouts).
    every = max(rollout, spec.total_timesteps // spec.n_checkpoints // rollout * rollout)
    _, trained = agents.train_agent(
        folder,
        spec.task.env_kwargs(spec.task.seeds("train", spec.n_train)),
        one_thread=spec.task.device == "cpu",
        progress=f"PPO {spec.task.name}" if progress else None,
        env_id=env_id(spec.task),
        total_timesteps=spec.total_timesteps,
        n_envs=spec.n_envs,
        seed=spec.seed,
        checkpoint_every=every,
        keep_checkpoints=spec.n_checkpoints + 1,
        ppo_kwargs={"n_steps": spec.n_steps},
    )
    checkpoints = sorted((folder / "checkpoints").glob("ppo_*.zip"))
    curve = trained["curve"]
    return {
        "model": f"{spec.folder}/{agents.MODEL_FILE}",
        "checkpoints": [
            {"timesteps": checkpoint_steps(p), "path": f"{spec.folder}/checkpoints/{p.name}"}
            for p in checkpoints
        ],
        "timesteps": trained["timesteps"],
        "train_time_s": trained["train_time_s"],
        "episodes": len(curve),
        "diverged_episodes": sum(bool(r["diverged"]) for r in curve),
        "returns": [short(r["return"]) for r in curve],
        "episode_timesteps": [int(r["timesteps"]) for r in curve],
    }


def run_spec(spec: Any, *, root: str = ".", progress: bool = False) -> dict[str, Any]:
    """The run function of every sweep: PPO training or one training run, by spec type.

    ``progress``: long runs print rate lines with an ETA.
    """
    if isinstance(spec, AgentSpec):
        return train_agent(spec, root=root, progress=progress)
    return run_dnn(spec, root=root, progress=progress)


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


def train_stage(config: Config, out: Path, **sweep: Any) -> dict[str, Any]:
    """PPO training, baseline tuning and random search, in one sweep (``train.jsonl``)."""
    ppo = agent_specs(config)
    trials = random_search_specs(config)
    specs = [*ppo, *tuning_specs(config), *(s for t in trials.values() for s in t)]
    fn = functools.partial(run_spec, root=str(out), progress=not sweep.get("quiet", False))
    records = run_sweep(fn, specs, out / "train.jsonl", **sweep)
    done = by_id(records)
    require_ok([done[spec_id(a)] for a in ppo], "agent training")
    return {
        "agents": {a.task.name: done[spec_id(a)]["result"] for a in ppo},
        "baselines": select_baselines(config, done),
        "random_search": select_random_search(config, trials, done),
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
    fn = functools.partial(run_spec, root=str(out), progress=not sweep.get("quiet", False))
    records = by_id(run_sweep(fn, [s for _, _, s in plan], out / "eval.jsonl", **sweep))
    return [(task, method, records[spec_id(spec)]) for task, method, spec in plan]
