"""The learned schedule of the NMF study: PPO agents, their held-out runs, and the train / tune /
held-out stages (each a resumable sweep of :mod:`experiments.runner`)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from experiments.common import agents
from experiments.common.agents import freeze, load_policy, thaw_ppo
from experiments.common.records import require_ok
from experiments.nmf.config import (
    VARIANT_SCHEDULE,
    AgentSpec,
    LearnedRunSpec,
    NMFRunSpec,
    RLConfig,
    agent_specs,
    cell_name,
    params_key,
)
from experiments.nmf.schedules import run_nmf, trajectory_result, tune_widened
from experiments.runner import run_sweep, spec_id
from nmf import run_sgd


def agent_dir(root: Path, spec: AgentSpec) -> Path:
    """Where an agent's checkpoints, training curve and final model live (named by its spec)."""
    return Path(root) / "agents" / f"{spec.variant}-seed{spec.seed}-{spec_id(spec)[:10]}"


def train_agent(spec: AgentSpec, *, root: str, progress: bool = False) -> dict[str, Any]:
    """Train (or resume) one agent; save its final policy next to its checkpoints.

    ``progress``: print rate lines with an ETA while it trains.
    """
    folder = agent_dir(Path(root), spec)
    _, trained = agents.train_agent(
        folder,
        dict(spec.env_kwargs),
        progress=f"PPO {spec.variant} seed {spec.seed}" if progress else None,
        total_timesteps=spec.total_timesteps,
        n_envs=spec.n_envs,
        seed=spec.seed,
        ppo_kwargs=thaw_ppo(spec.ppo_options),
    )
    curve = trained["curve"]
    return {
        "model": str((folder / agents.MODEL_FILE).relative_to(root)),
        "train_time_s": trained["train_time_s"],
        "resumed_from_timesteps": trained["resumed_from_timesteps"],
        "timesteps": trained["timesteps"],
        "episodes": len(curve),
        "diverged_episodes": sum(bool(r["diverged"]) for r in curve),
    }


def run_learned(spec: LearnedRunSpec, *, root: str) -> dict[str, Any]:
    """One held-out run under a learned schedule, with the bound of every iterate."""
    import torch

    from rl_scheduler.policy import LearnedSchedule

    torch.set_num_threads(1)
    schedule = LearnedSchedule(
        load_policy(str(agent_dir(Path(root), spec.agent) / agents.MODEL_FILE)),
        **dict(spec.schedule_kwargs),
    )
    problem = spec.instance.build()
    traj = run_sgd(
        problem,
        schedule,
        spec.n_steps,
        clip=spec.clip,
        seed=spec.instance.seed,
        compute_bound=True,
        certify=dict(spec.agent.env_kwargs).get("certify", False),  # as in its training
    )
    result = trajectory_result(problem, traj, curves=True)
    result["proposed_lrs"] = schedule.proposed_lrs
    if schedule.guard is not None:
        result["guard_trips"] = schedule.guard_trips
    return result


def train(
    config: RLConfig,
    out: Path,
    *,
    wave: int = 1,
    before_last_wave: Callable[[], Any] | None = None,
    **sweep: Any,
) -> list[dict]:
    """Train (or resume) every agent of the study.

    ``wave``: how many agents train at once. When the agents do not fill whole waves,
    ``before_last_wave()`` is called once the full waves have trained, just before the last,
    partial one starts, so that the caller can put other work on the cores it leaves idle.
    """
    fn = functools.partial(train_agent, root=str(out), progress=not sweep.get("quiet", False))
    specs, path = agent_specs(config), out / "agents.jsonl"
    full = len(specs) - len(specs) % wave
    if before_last_wave is not None and full < len(specs):
        if full:
            require_ok(run_sweep(fn, specs[:full], path, **sweep), "agent training")
        before_last_wave()
    records = run_sweep(fn, specs, path, **sweep)
    require_ok(records, "agent training")
    return records


def tune(config: RLConfig, out: Path, **sweep: Any) -> dict[str, dict[str, dict]]:
    """Best parameters per cell and schedule by mean final relative error on the cell's train
    instances, every axis widened until its optimum is interior (:func:`tune_widened`)."""
    cells: dict[str, list] = {}
    for inst in config.instances("train"):
        cells.setdefault(cell_name(inst), []).append(inst)
    return tune_widened(
        cells,
        config.axes(),
        n_steps=config.n_steps,
        clip=config.clip,
        metric="final_rel_error",
        score_key="train_mean_rel_error",
        max_rounds=config.widen_rounds,
        path=out / "tune.jsonl",
        **sweep,
    )


def evaluate(
    config: RLConfig, best: dict, out: Path, **sweep: Any
) -> tuple[list[dict], list[dict]]:
    """Tuned schedules and learned schedules on the held-out set, with curves and bounds."""
    held_out = config.instances("test")
    specs = [
        NMFRunSpec(
            inst,
            name,
            params_key(best[cell_name(inst)][name]["params"]),
            config.n_steps,
            config.clip,
            curves=True,
            record_bounds=True,
        )
        for inst in held_out
        for name in config.grid()
    ]
    baseline = run_sweep(run_nmf, specs, out / "eval.jsonl", **sweep)
    learned_specs = [
        LearnedRunSpec(
            inst,
            agent,
            config.n_steps,
            config.clip,
            freeze(VARIANT_SCHEDULE.get(agent.variant, {})),
        )
        for agent in agent_specs(config)
        for inst in held_out
    ]
    fn = functools.partial(run_learned, root=str(out))
    learned = run_sweep(fn, learned_specs, out / "eval_learned.jsonl", **sweep)
    require_ok(baseline + learned, "evaluation")
    return baseline, learned


def env_throughput(config: RLConfig, *, n_actions: int = 400) -> dict[str, float]:
    """Environment steps (actions) per second: one env, and vectorised ones (stable-baselines3)."""
    from rl_scheduler import agent, make_nmf_env

    kwargs = dict(agent_specs(config)[0].env_kwargs)
    rates = {}
    env = make_nmf_env(**kwargs)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(n_actions):
        _, _, terminated, _, _ = env.step(rng.uniform(-1, 1, 1).astype(np.float32))
        if terminated:
            env.reset()
    rates["single"] = n_actions / (time.perf_counter() - start)
    for vec_env, n_envs in (("dummy", 4), ("subproc", 2)):
        venv = agent.make_vec(kwargs, n_envs=n_envs, seed=0, vec_env=vec_env)
        venv.reset()
        actions = np.zeros((n_envs, 1), dtype=np.float32)
        venv.step(actions)  # warm-up (subprocess start, problem caches)
        steps = max(1, n_actions // n_envs)
        start = time.perf_counter()
        for _ in range(steps):
            venv.step(actions)
        rates[f"{vec_env} x{n_envs}"] = steps * n_envs / (time.perf_counter() - start)
        venv.close()
    return rates
