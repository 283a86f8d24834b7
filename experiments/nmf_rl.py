"""Paper 1, RL half: a PPO-learned schedule vs tuned hand-made schedules on held-out NMF instances.

Part of ``make reproduce-nmf``. Everything runs on the instance sets of ``rl_scheduler/NMF-v0``
(:func:`rl_scheduler.tasks.nmf_instance_set`): a *train* set and a disjoint *held-out* set, each
cycling through ``datasets x noise_levels`` ("cells"), every instance with its own data, initial
factors and gradient noise. Every run is projected SGD with update clipping for
``steps_per_action * max_actions`` steps.

Stages (each a resumable sweep of :mod:`experiments.runner`):

1. **train**: PPO (:func:`rl_scheduler.agent.train_ppo`) on the train set, for every PPO seed,
   with the committed shield (rates capped at 0.9 of the bound); ``--ablation`` adds agents with
   the cap at 1.0 of the bound (:data:`ABLATION`).
2. **tune**: each hand-made schedule is grid-searched per cell on the train instances of that
   cell (:func:`experiments.nmf.tuning_grid`); the lowest mean final relative error wins.
   Step decay, the reference of the headline win rate, gets a grid as expensive (in SGD steps)
   as one PPO training run.
3. **eval**: the tuned schedules and every trained agent (as a plain
   :class:`rl_scheduler.policy.LearnedSchedule` in :func:`nmf.run_sgd`) on the held-out set.
4. **summary**: ``summary.json``, ``table.md``, figures (loss curves, the agent's learning rates
   next to the bound, the PPO training curve) and an environment/PPO throughput benchmark.

Run ``python -m experiments.nmf_rl --help``; ``--quick`` is a minute-long smoke run.
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from experiments.cli import finish, parse_pipeline_args, sweep_options
from experiments.nmf import (
    NMFRunSpec,
    row_cells,
    run_nmf,
    steps_to_target,
    trajectory_result,
    tuning_grid,
    value_at,
)
from experiments.runner import run_sweep, spec_id
from experiments.stats import format_mean_ci, mean_ci
from nmf import run_sgd
from nmf.datasets import NMFInstance
from rl_scheduler.tasks.nmf_task import nmf_instance_set

REFERENCE = "step"
"""The hand-made schedule the headline win rate is measured against."""

ABLATION = ("learned_shield1.0", 1.0)
"""The agent variant ``--ablation`` adds: the shield caps rates at the bound itself, not 0.9 of it."""


# ---------------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class Config:
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
    variants: tuple[tuple[str, float], ...]
    """(name, shield_fraction) of every agent variant; the first is the headline one."""
    lr_grid: tuple[float, ...]
    budget: int
    step_budget: int

    @property
    def n_steps(self) -> int:
        return self.steps_per_action * self.max_actions

    def instances(self, split: str) -> list[NMFInstance]:
        n = self.n_train if split == "train" else self.n_test
        return nmf_instance_set(split, n, datasets=self.datasets, noise_levels=self.noise_levels)

    def grid(self) -> dict[str, list[dict[str, Any]]]:
        return tuning_grid(self.n_steps, self.lr_grid, self.budget, step_budget=self.step_budget)


FULL = Config(
    n_train=48,
    n_test=48,
    datasets=("synthetic", "digits"),
    noise_levels=(0.0, 1.0, 5.0),
    steps_per_action=10,
    max_actions=30,
    clip=0.1,
    ppo_seeds=(0, 1, 2),
    total_timesteps=60_000,
    n_envs=4,
    variants=(("learned", 0.9),),
    lr_grid=tuple(float(x) for x in np.geomspace(1e-3, 6e-2, 8)),
    budget=16,
    step_budget=40,
)
QUICK = Config(
    n_train=12,
    n_test=12,
    datasets=("synthetic", "digits"),
    noise_levels=(0.0, 5.0),
    steps_per_action=10,
    max_actions=10,
    clip=0.1,
    ppo_seeds=(0,),
    total_timesteps=2_048,
    n_envs=4,
    variants=(("learned", 0.9),),
    lr_grid=(3e-3, 3e-2),
    budget=4,
    step_budget=6,
)


def cell_name(instance: NMFInstance | dict[str, Any]) -> str:
    """The cell of an instance: ``"<dataset>/noise=<std>"``."""
    inst = asdict(instance) if isinstance(instance, NMFInstance) else instance
    return f"{inst['dataset']}/noise={float(inst['noise_std']):g}"


# ---------------------------------------------------------------------------------- agents
@dataclass(frozen=True)
class AgentSpec:
    """One PPO training run on the train instance set."""

    variant: str
    shield_fraction: float
    seed: int
    total_timesteps: int
    n_envs: int
    env_kwargs: tuple[tuple[str, Any], ...]


def agent_specs(config: Config) -> list[AgentSpec]:
    env_kwargs = {
        "split": "train",
        "n_instances": config.n_train,
        "datasets": config.datasets,
        "noise_levels": config.noise_levels,
        "clip": config.clip,
        "steps_per_action": config.steps_per_action,
        "max_actions": config.max_actions,
    }
    return [
        AgentSpec(
            variant,
            fraction,
            seed,
            config.total_timesteps,
            config.n_envs,
            tuple(sorted({**env_kwargs, "shield_fraction": fraction}.items())),
        )
        for variant, fraction in config.variants
        for seed in config.ppo_seeds
    ]


def agent_dir(root: Path, spec: AgentSpec) -> Path:
    """Where an agent's checkpoints, training curve and final model live (named by its spec)."""
    return Path(root) / "agents" / f"{spec.variant}-seed{spec.seed}-{spec_id(spec)[:10]}"


def train_agent(spec: AgentSpec, *, root: str) -> dict[str, Any]:
    """Train (or resume) one agent; save ``model.zip`` next to its checkpoints."""
    import torch

    from rl_scheduler import agent

    torch.set_num_threads(1)
    folder = agent_dir(Path(root), spec)
    previous = agent.latest_checkpoint(folder)
    start = time.perf_counter()
    model = agent.train_ppo(
        dict(spec.env_kwargs),
        total_timesteps=spec.total_timesteps,
        n_envs=spec.n_envs,
        seed=spec.seed,
        checkpoint_dir=folder,
        device="cpu",
    )
    elapsed = time.perf_counter() - start
    agent.save(model, folder / "model.zip")
    curve = agent.load_training_curve(folder)
    return {
        "model": str((folder / "model.zip").relative_to(root)),
        "train_time_s": elapsed,
        "resumed_from_timesteps": 0 if previous is None else int(previous.stem.split("_")[-1]),
        "timesteps": int(model.num_timesteps),
        "episodes": len(curve),
        "diverged_episodes": sum(bool(r["diverged"]) for r in curve),
    }


# ---------------------------------------------------------------------------------- learned runs
@dataclass(frozen=True)
class LearnedRunSpec:
    """A trained agent scheduling one held-out instance (through ``nmf.run_sgd``)."""

    instance: NMFInstance
    agent: AgentSpec
    n_steps: int
    clip: float

    @property
    def schedule(self) -> str:
        return self.agent.variant


@functools.lru_cache(maxsize=8)
def _load_model(path: str) -> Any:
    from rl_scheduler import agent

    return agent.load(path, device="cpu")


def run_learned(spec: LearnedRunSpec, *, root: str) -> dict[str, Any]:
    """One held-out run under a learned schedule, with the bound of every iterate."""
    import torch

    from rl_scheduler.policy import LearnedSchedule

    torch.set_num_threads(1)
    schedule = LearnedSchedule(_load_model(str(agent_dir(Path(root), spec.agent) / "model.zip")))
    problem = spec.instance.build()
    traj = run_sgd(
        problem, schedule, spec.n_steps, clip=spec.clip, seed=spec.instance.seed, compute_bound=True
    )
    result = trajectory_result(problem, traj, curves=True)
    result["proposed_lrs"] = schedule.proposed_lrs
    return result


# ---------------------------------------------------------------------------------- stages
def train(config: Config, out: Path, **sweep: Any) -> list[dict]:
    fn = functools.partial(train_agent, root=str(out))
    records = run_sweep(fn, agent_specs(config), out / "agents.jsonl", **sweep)
    _require_ok(records, "agent training")
    return records


def tune(config: Config, out: Path, **sweep: Any) -> dict[str, dict[str, dict]]:
    """Best parameters per cell and schedule by mean final relative error on the train set."""
    specs = [
        NMFRunSpec(inst, name, tuple(sorted(params.items())), config.n_steps, config.clip)
        for inst in config.instances("train")
        for name, options in config.grid().items()
        for params in options
    ]
    records = run_sweep(run_nmf, specs, out / "tune.jsonl", **sweep)
    errors: dict[tuple[str, str, tuple], list[float]] = defaultdict(list)
    for rec in records:
        spec = rec["spec"]
        ok = rec["status"] == "ok"
        err = float(rec["result"]["final_rel_error"]) if ok else math.inf
        key = (cell_name(spec["instance"]), spec["schedule"], tuple(map(tuple, spec["params"])))
        errors[key].append(err)
    best: dict[str, dict[str, dict]] = defaultdict(dict)
    for (cell, name, params), values in errors.items():
        score = float(np.mean(values))
        if name not in best[cell] or score < best[cell][name]["train_mean_rel_error"]:
            best[cell][name] = {"params": dict(params), "train_mean_rel_error": score}
    return dict(best)


def evaluate(config: Config, best: dict, out: Path, **sweep: Any) -> tuple[list[dict], list[dict]]:
    """Tuned schedules and learned schedules on the held-out set, with curves and bounds."""
    held_out = config.instances("test")
    specs = [
        NMFRunSpec(
            inst,
            name,
            tuple(sorted(best[cell_name(inst)][name]["params"].items())),
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
        LearnedRunSpec(inst, agent, config.n_steps, config.clip)
        for agent in agent_specs(config)
        for inst in held_out
    ]
    fn = functools.partial(run_learned, root=str(out))
    learned = run_sweep(fn, learned_specs, out / "eval_learned.jsonl", **sweep)
    _require_ok(baseline + learned, "evaluation")
    return baseline, learned


def _require_ok(records: list[dict], stage: str) -> None:
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        first = failed[0]
        raise RuntimeError(
            f"{len(failed)} {stage} run(s) failed, e.g. {first['spec_id']}: "
            f"{first['error']['message']} (rerun the command to retry them)"
        )


# ---------------------------------------------------------------------------------- summary
def _runs(baseline: list[dict], learned: list[dict]) -> dict[str, dict[str, dict[int, list]]]:
    """``runs[cell][schedule][instance seed]`` = results; a learned schedule has one per PPO seed,
    in increasing PPO-seed order."""
    runs: dict[str, dict[str, dict[int, list]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for rec in baseline + sorted(learned, key=lambda r: r["spec"]["agent"]["seed"]):
        spec = rec["spec"]
        runs[cell_name(spec["instance"])][schedule_label(rec)][
            int(spec["instance"]["seed"])
        ].append(rec["result"])
    return runs


def schedule_label(record: dict) -> str:
    """The schedule of an evaluation record: its name, or the agent variant for learned runs."""
    spec = record["spec"]
    return spec["schedule"] if "schedule" in spec else spec["agent"]["variant"]


def _win_rate(a: dict[int, list], b: dict[int, list]) -> float:
    """Fraction of (instance, run) pairs where ``a`` ends strictly below ``b`` (b has one run)."""
    wins = [
        float(r["final_rel_error"]) < float(b[seed][0]["final_rel_error"])
        for seed, rs in a.items()
        for r in rs
    ]
    return float(np.mean(wins))


def summarise(config: Config, best: dict, agents: list[dict], baseline, learned) -> dict:
    """Per cell and schedule: final / 25% / 50% relative error, steps to target, win rates."""
    runs = _runs(baseline, learned)
    n = config.n_steps
    variants = [name for name, _ in config.variants if any(name in r for r in runs.values())]
    summary: dict[str, Any] = {"config": _config_dict(config), "cells": {}, "overall": {}}
    for cell in sorted(runs):
        by_schedule = runs[cell]
        # A learned schedule's value on an instance is the mean over its PPO seeds.
        finals = {
            name: [float(np.mean([r["final_rel_error"] for r in rs])) for rs in by_seed.values()]
            for name, by_seed in by_schedule.items()
        }
        best_mean = min(np.mean(v) for v in finals.values() if np.all(np.isfinite(v)))
        target = 1.02 * best_mean
        rows = {}
        for name, by_seed in by_schedule.items():
            results = [r for rs in by_seed.values() for r in rs]
            curves = [np.asarray(r["rel_errors"], dtype=float) for r in results]
            per_instance = [np.mean(np.vstack(_pad(rs)), axis=0) for rs in by_seed.values()]
            rows[name] = {
                "params": best.get(cell, {}).get(name, {}).get("params"),
                "final_rel_error": mean_ci(finals[name]),
                "rel_error_at_25pct": mean_ci([value_at(c, n // 4) for c in per_instance]),
                "rel_error_at_50pct": mean_ci([value_at(c, n // 2) for c in per_instance]),
                "steps_to_target": steps_to_target(curves, target),
                "diverged": sum(bool(r["diverged"]) for r in results),
                "win_rate_vs_step": None
                if name == REFERENCE
                else _win_rate(by_seed, by_schedule[REFERENCE]),
                "steps_above_bound_pct": 100 * _above_bound_fraction(results),
                "n_runs": len(results),
            }
        summary["cells"][cell] = {"target_rel_error": target, "schedules": rows}
    summary["overall"] = _overall(config, runs, variants)
    summary["agents"] = _agents_summary(agents)
    return summary


def _pad(results: list[dict]) -> list[np.ndarray]:
    """Curves of equal length (a diverged run is continued at ``inf``)."""
    curves = [np.asarray(r["rel_errors"], dtype=float) for r in results]
    length = max(len(c) for c in curves)
    return [np.concatenate([c, np.full(length - len(c), np.inf)]) for c in curves]


def _above_bound_fraction(results: list[dict]) -> float:
    counts = [r["steps_above_bound"] for r in results]
    if any(c is None for c in counts):
        return math.nan
    return float(sum(counts) / sum(len(r["lrs"]) for r in results))


def _overall(config: Config, runs: dict, variants: list[str]) -> dict[str, Any]:
    """Across all held-out instances: each learned variant against each tuned schedule."""
    ppo_seeds = list(config.ppo_seeds)
    overall: dict[str, Any] = {}
    for variant in variants:
        block: dict[str, Any] = {}
        for ref in config.grid():
            per_seed_wins, ratios = [], []
            for k, _ in enumerate(ppo_seeds):
                wins, logs = [], []
                for by_schedule in runs.values():
                    for seed, rs in by_schedule[variant].items():
                        mine = float(rs[k]["final_rel_error"])
                        theirs = float(by_schedule[ref][seed][0]["final_rel_error"])
                        wins.append(mine < theirs)
                        logs.append(math.log(mine / theirs))
                per_seed_wins.append(float(np.mean(wins)))
                ratios.append(math.exp(float(np.mean(logs))))
            block[ref] = {
                "win_rate": mean_ci(per_seed_wins),
                "win_rate_per_ppo_seed": per_seed_wins,
                "geomean_error_ratio": mean_ci(ratios),
            }
        overall[variant] = block
    return overall


def _agents_summary(agents: list[dict]) -> dict[str, Any]:
    by_variant: dict[str, list[dict]] = defaultdict(list)
    for rec in agents:
        by_variant[rec["spec"]["variant"]].append(rec["result"])
    return {
        variant: {
            "train_time_s": mean_ci([r["train_time_s"] for r in results]),
            "train_time_s_total": float(sum(r["train_time_s"] for r in results)),
            "timesteps": results[0]["timesteps"],
            "episodes": int(np.mean([r["episodes"] for r in results])),
            "diverged_episodes": int(sum(r["diverged_episodes"] for r in results)),
            "resumed": any(r["resumed_from_timesteps"] for r in results),
        }
        for variant, results in by_variant.items()
    }


def _config_dict(config: Config) -> dict[str, Any]:
    d = asdict(config)
    d["n_steps"] = config.n_steps
    d["tuning_grid"] = config.grid()
    grid_sizes = {name: len(options) for name, options in config.grid().items()}
    per_config = config.n_train * config.n_steps
    d["tuning_cost_sgd_steps"] = {name: k * per_config for name, k in grid_sizes.items()}
    d["agent_cost_sgd_steps"] = config.total_timesteps * config.steps_per_action
    return d


def markdown_table(summary: dict) -> str:
    """The README's tables: the headline win rates, then every cell in detail."""
    cfg = summary["config"]
    variants = list(summary["overall"])
    headline = variants[0]
    lines = [
        f"**Learned schedule vs tuned schedules on {cfg['n_test']} held-out instances** "
        f"({cfg['n_steps']} steps, clip {cfg['clip']:g}; {len(cfg['ppo_seeds'])} PPO seeds; "
        "win = lower final error; ratio = geometric mean of learned / tuned final error)",
        "",
        "| against (tuned) | " + " | ".join(f"{v}: wins | {v}: ratio" for v in variants) + " |",
        "|---|" + "---|---|" * len(variants),
    ]
    for ref in summary["overall"][headline]:
        cells = []
        for v in variants:
            r = summary["overall"][v][ref]
            per_seed = ", ".join(f"{100 * w:.0f}" for w in r["win_rate_per_ppo_seed"])
            cells += [
                f"{100 * r['win_rate']['mean']:.1f}% ({per_seed})",
                format_mean_ci(r["geomean_error_ratio"], 3),
            ]
        lines.append(f"| {ref} | " + " | ".join(cells) + " |")
    lines.append("")
    for cell, block in summary["cells"].items():
        lines += [
            f"**{cell}** (target = {block['target_rel_error']:.4f})",
            "",
            "| schedule | final rel. error | at 25% | at 50% | steps to target "
            "| wins vs step | steps above bound | diverged |",
            "|---|---|---|---|---|---|---|---|",
        ]
        rows = block["schedules"]
        for name in sorted(rows, key=lambda s: rows[s]["final_rel_error"]["mean"]):
            r = rows[name]
            cells = [
                *row_cells(r),
                f"{r['steps_above_bound_pct']:.1f}%",
                f"{r['diverged']}/{r['n_runs']}",
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    agents = summary.get("agents", {})
    if agents:
        lines += ["| agent | PPO timesteps | training time per seed (s) | diverged episodes |"]
        lines += ["|---|---|---|---|"]
        for variant, a in agents.items():
            lines.append(
                f"| {variant} | {a['timesteps']} | {format_mean_ci(a['train_time_s'], 1)} | "
                f"{a['diverged_episodes']} / {a['episodes'] * len(cfg['ppo_seeds'])} |"
            )
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- benchmark
def env_throughput(config: Config, *, n_actions: int = 400) -> dict[str, float]:
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


# ---------------------------------------------------------------------------------- entry point
def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also train and evaluate agents whose shield caps rates at the bound itself",
    )


def main(argv: list[str] | None = None) -> dict:
    args, out = parse_pipeline_args("nmf_rl", __doc__.split("\n")[0], argv, _add_arguments)
    config = QUICK if args.quick else FULL
    if args.ablation:
        config = replace(config, variants=(*config.variants, ABLATION))
    start = time.perf_counter()
    sweep = sweep_options(args)
    agents = train(config, out, **sweep)
    best = tune(config, out, **sweep)
    baseline, learned = evaluate(config, best, out, **sweep)
    summary = summarise(config, best, agents, baseline, learned)
    summary["env_steps_per_s"] = env_throughput(config)
    from experiments import plots

    plots.rl_figures(summary, baseline, learned, agents, out)
    return finish(args, out, summary, markdown_table(summary), start)


if __name__ == "__main__":
    main()
