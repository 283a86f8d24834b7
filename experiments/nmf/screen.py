"""``python -m experiments.nmf.screen`` (``make reproduce-nmf-screen``): a cheap first look at an agent design before a reference run.

The NMF study's reference run trains five PPO seeds per design on 48 instances and tunes every
schedule with widening grids: about half an hour. Screening asks a smaller question first -- does
a design change the held-out picture at all? -- on 24 train / 24 held-out instances of the same
six cells, one or two PPO seeds per design, and four hand-made schedules (step decay, cosine,
constant, follow-the-bound) tuned per cell on the train instances by the best point of the
study's initial grid (no widening). It reports, per design and PPO seed, the share of held-out
instances on which the agent ends with a lower relative error than each tuned schedule, the
geometric mean of their error ratios and the per-cell means. That is a screen, not the protocol:
no intervals, few seeds; a design worth keeping goes into :data:`experiments.nmf.config.VARIANTS`
and is measured by the study.

Designs live in :data:`DESIGNS` (environment settings on top of the study's, PPO settings on top
of :data:`rl_scheduler.agent.DEFAULT_PPO_KWARGS`, and a factor on the training length); add one there to
screen it. Every run is a resumable sweep (:mod:`experiments.runner`): ``OUT/tune.jsonl``,
``OUT/held_out.jsonl``, ``OUT/agents.jsonl``; the comparison goes to ``OUT/summary.json`` and
``OUT/table.md``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from experiments.common.agents import LOW_EXPLORATION_PPO, freeze, thaw_ppo
from experiments.common.cli import finish, parse_pipeline_args, running, sweep_options
from experiments.common.provenance import DATASETS, input_digests
from experiments.common.records import require_ok
from experiments.nmf.config import (
    RL_FULL,
    RL_QUICK,
    VARIANT_PPO,
    VARIANTS,
    NMFRunSpec,
    RLConfig,
    cell_name,
    params_key,
)
from experiments.nmf.schedules import run_nmf
from experiments.runner import added_field, run_sweep
from rl_scheduler.features import DEFAULT_FEATURES

_RELATIVE = {**VARIANTS["learned"], "reward_baseline": "neutral"}


def _on_headline(env: dict | None = None, ppo: dict | None = None, **design: Any) -> dict:
    """A design on top of ``learned_relative`` (the study's headline when these designs were
    screened): its environment and PPO settings with ``env`` and ``ppo`` changed, plus
    ``design``'s other keys."""
    return {
        "env": {**VARIANTS["learned_relative"], **(env or {})},
        "ppo": {**VARIANT_PPO["learned_relative"], **(ppo or {})},
        **design,
    }


DESIGNS: dict[str, dict[str, Any]] = {
    "headline": {"env": VARIANTS["learned"]},
    "gamma1": {"env": VARIANTS["learned"], "ppo": {"gamma": 1.0}},
    "noise_feature": {"env": VARIANTS["learned_noise"]},
    "descent_feature": {
        "env": {**VARIANTS["learned"], "features": (*DEFAULT_FEATURES, "descent_ratio")}
    },
    "longer_training": {"env": VARIANTS["learned"], "timesteps_factor": 2.5},
    "more_instances": {"env": {**VARIANTS["learned"], "n_instances": 96}},
    "low_exploration": {"env": VARIANTS["learned"], "ppo": LOW_EXPLORATION_PPO},
    "low_exploration_big_batch": {
        "env": VARIANTS["learned"],
        "ppo": {**LOW_EXPLORATION_PPO, "n_steps": 1024, "batch_size": 256},
    },
    "monte_carlo": {"env": VARIANTS["learned"], "ppo": {"gamma": 1.0, "gae_lambda": 1.0}},
    "monte_carlo_low_exploration": {
        "env": VARIANTS["learned"],
        "ppo": {**LOW_EXPLORATION_PPO, "gamma": 1.0, "gae_lambda": 1.0},
    },
    "low_exploration_narrow": {
        "env": {**VARIANTS["learned"], "bound_range": (-3.0, 1.0)},
        "ppo": LOW_EXPLORATION_PPO,
    },
    "relative_reward": {"env": _RELATIVE},
    "relative_reward_low_exploration": {"env": _RELATIVE, "ppo": LOW_EXPLORATION_PPO},
    "relative_reward_monte_carlo": {
        "env": _RELATIVE,
        "ppo": {**LOW_EXPLORATION_PPO, "gamma": 1.0, "gae_lambda": 1.0},
    },
    "relative_reward_noise_feature": _on_headline(),
    "relative_reward_noise_feature_longer": _on_headline(timesteps_factor=2.5),
    "relative_gamma1": _on_headline(ppo={"gamma": 1.0}),
    "relative_more_instances": _on_headline(env={"n_instances": 96}),
    "relative_gamma1_more_instances": _on_headline(env={"n_instances": 96}, ppo={"gamma": 1.0}),
    "relative_monte_carlo": _on_headline(ppo={"gamma": 1.0, "gae_lambda": 1.0}),
    "relative_fresh_noise": _on_headline(env={"run_seed": "episode"}),
    "relative_fresh_noise_more_instances": _on_headline(
        env={"run_seed": "episode", "n_instances": 96}
    ),
    "relative_history3": _on_headline(env={"history": 3}),
    "relative_recurrent": _on_headline(recurrent=True),
    "relative_scaled": _on_headline(env={"reward_scale": "reference_gap"}),
    "relative_scaled_floor5": _on_headline(
        env={"reward_scale": "reference_gap", "reward_scale_floor": 0.05}
    ),
    "cosine_anchored": _on_headline(env={"bound_range": (-4.0, 4.0), "rate_anchor": "cosine"}),
    "relative_ppo_lr2x": _on_headline(ppo={"learning_rate": 6e-4}),
    "relative_epochs20": _on_headline(ppo={"n_epochs": 20}),
    "relative_epochs20_lr2x": _on_headline(ppo={"n_epochs": 20, "learning_rate": 6e-4}),
    "relative_epochs40": _on_headline(ppo={"n_epochs": 40}),
    "epochs40_scaled": _on_headline(env={"reward_scale": "reference_gap"}, ppo={"n_epochs": 40}),
    "epochs40_gamma1": _on_headline(ppo={"n_epochs": 40, "gamma": 1.0}),
    "epochs40_more_instances": _on_headline(env={"n_instances": 96}, ppo={"n_epochs": 40}),
    "epochs40_fresh_noise": _on_headline(env={"run_seed": "episode"}, ppo={"n_epochs": 40}),
    "epochs40_wide": _on_headline(
        ppo={"n_epochs": 40, "policy_kwargs": {"net_arch": [128, 128], "log_std_init": -1.5}}
    ),
    "epochs80": _on_headline(ppo={"n_epochs": 80}),
}
"""Agent designs to screen: ``env`` (settings of :func:`rl_scheduler.make_nmf_env` on top of the
screen's instance set), optional ``ppo`` (overrides of PPO's settings), ``timesteps_factor``
(times the screen's PPO training length) and ``recurrent`` (an LSTM policy).

``headline`` is the study's ``learned`` design; ``gamma1`` trains it without discount (the
undiscounted return is the log-ratio of the initial and final loss); ``noise_feature`` and
``descent_feature`` add one observation each; ``longer_training`` trains 2.5 times longer;
``more_instances`` trains on 96 instances instead of 24 (the first 24 are the screen's; the
schedules are still tuned on those 24);
``low_exploration`` starts PPO's Gaussian policy with standard deviation ``exp(-1.5) = 0.22``
instead of ``exp(-0.5) = 0.61`` (in action units; one unit is 6 octaves of rate below the
bound); ``..._big_batch`` also collects 4096 actions per update instead of 1024;
``..._narrow`` also halves the action range (1/8 to 2 times the bound); ``monte_carlo`` (with or
without low exploration) uses undiscounted Monte-Carlo advantages (``gamma = gae_lambda = 1``):
PPO's default ``gae_lambda = 0.95`` leans on the critic and so on the next few rewards, while a
high early rate that gains now and costs at the end shows only in the full return.
``relative_reward`` trains on rewards measured against the neutral policy
(``reward_baseline="neutral"``), alone, with low exploration, with low exploration and
Monte-Carlo advantages, and with low exploration and the noise feature
(``relative_reward_noise_feature``: the study's variant ``learned_relative``, its headline
until ``learned_relative_40epochs``;
``..._longer`` trains it 2.5 times longer); ``relative_gamma1`` trains that headline without
discount (with the relative reward the undiscounted return is exactly ``log(neutral final loss /
agent final loss)``, the objective), ``relative_more_instances`` on 96 instances instead of 24,
``relative_gamma1_more_instances`` both, ``relative_monte_carlo`` the headline with Monte-Carlo
advantages (``gamma = gae_lambda = 1``: a hot start that gains now and costs at the end is
judged by the whole return, not by the critic's guess of it), ``relative_fresh_noise`` the
headline trained on a fresh start and fresh gradient noise in every episode
(``run_seed="episode"`` of :class:`rl_scheduler.tasks.NMFTask`: the same 24 problems, but a
policy can no longer fit the one run each of them always was; the neutral run is then recomputed
per episode),
``relative_fresh_noise_more_instances`` that on 96 training instances, ``relative_history3``
the headline with frame stacking (``history=3``: the features of the last three decisions),
``relative_recurrent`` with an LSTM policy instead (sb3-contrib's ``RecurrentPPO``,
``recurrent=True`` of :func:`rl_scheduler.agent.train_ppo`).
``cosine_anchored`` is that headline with the bound
annealed by cosine as the reference (``rate_anchor="cosine"``: ``lr = bound * cos_k * 2**e``,
``e`` in ``[-4, 4]``), so the neutral policy already decays the rate as the noisy cells need,
and 16 times the annealed bound still reaches above the bound until about 80% of the run, as the
exact cells need. ``relative_scaled`` is that headline with every run's rewards divided by how
much the schedule matters on it (``reward_scale="reference_gap"``: the gap between following
the bound and following it annealed by cosine), so the noisy digits runs, where schedules differ
by 1-5% in loss, weigh in PPO's updates as much as the exact synthetic ones, where they differ
by up to 50%; ``relative_scaled_floor5`` counts every gap below 5% in loss as 5%, so the digits
runs where schedules hardly matter (noise 0 and 1: gaps of 0.2-5%) no longer outweigh the
noisy ones. Four designs give PPO more optimisation on the same experience:
``relative_ppo_lr2x`` twice its learning rate (6e-4), ``relative_epochs20`` 20 passes over every
batch of collected actions instead of 10, ``relative_epochs20_lr2x`` both, ``relative_epochs40``
40 passes (the study's headline since, ``learned_relative_40epochs``). ``epochs40_scaled`` and
``epochs40_gamma1`` are two levers that had not helped with 10 passes, ``relative_scaled`` and
``relative_gamma1``, with 40 (neither beat ``relative_epochs40`` on either seed).
``epochs40_more_instances`` and ``epochs40_fresh_noise`` are the two levers against fitting the
training runs themselves, 96 training instances and a fresh run per episode, with 40 passes:
the more closely PPO fits its experience, the more it may fit the 24 runs it always sees
(neither beat ``relative_epochs40`` on seed 1). Two more follow the under-fitting that 40 passes
relieved: ``epochs40_wide`` with twice as wide a network (two layers of 128), ``epochs80``
with 80 passes (both behind ``relative_epochs40`` on seed 1 too)."""

SCHEDULES = ("step", "follow_bound", "constant", "cosine")
"""The hand-made schedules every design is compared with (tuned per cell)."""


SCREEN_FULL = replace(RL_FULL, n_train=24, n_test=24)
"""The study's full configuration on 24 train / 24 held-out instances (the screen uses the
fields in :data:`SETTINGS`)."""
SCREEN_QUICK = replace(
    RL_QUICK,
    n_train=4,
    n_test=4,
    steps_per_action=5,
    max_actions=4,
    total_timesteps=256,
    n_envs=2,
)
"""``--quick``: seconds-long."""

SETTINGS = (
    "n_train",
    "n_test",
    "datasets",
    "noise_levels",
    "steps_per_action",
    "max_actions",
    "clip",
    "total_timesteps",
    "n_envs",
    "lr_grid",
    "budget",
    "step_budget",
)
"""The fields of the study's :class:`~experiments.nmf.config.RLConfig` that the screen uses and
records (instance sets, run length, PPO budget, tuning grid); the study's PPO seeds, variants,
widening rounds and bootstrap size do not apply."""


@dataclass(frozen=True)
class ScreenAgentSpec:
    """One design on one PPO seed: trained on the train set, run on every held-out instance."""

    design: str
    seed: int
    total_timesteps: int
    n_envs: int
    env_kwargs: tuple
    ppo_kwargs: tuple
    test_instances: tuple
    n_steps: int
    clip: float
    recurrent: bool = added_field(False)
    SPEC_TYPE: ClassVar[str] = "experiments.nmf.screen.ScreenAgentSpec"


def agent_specs(config: RLConfig, designs: list[str], seeds: list[int]) -> list:
    unknown = sorted(set(designs) - set(DESIGNS))
    if unknown:
        raise ValueError(f"designs must be names from {sorted(DESIGNS)}, got {unknown}")
    test = tuple(config.instances("test"))
    specs = []
    for name in designs:
        design = DESIGNS[name]
        env = {**config.env_kwargs(), **design["env"]}
        steps = round(config.total_timesteps * design.get("timesteps_factor", 1.0))
        for seed in seeds:
            specs.append(
                ScreenAgentSpec(
                    name,
                    seed,
                    steps,
                    config.n_envs,
                    freeze(env),
                    freeze(design.get("ppo", {})),
                    test,
                    config.n_steps,
                    config.clip,
                    design.get("recurrent", False),
                )
            )
    return specs


def train_and_run(spec: ScreenAgentSpec) -> dict[str, Any]:
    """Train the design on the train set, then schedule every held-out instance with it."""
    import torch

    import nmf
    from rl_scheduler import agent
    from rl_scheduler.policy import LearnedSchedule

    torch.set_num_threads(1)
    env_kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.env_kwargs}
    start = time.perf_counter()
    model = agent.train_ppo(
        env_kwargs,
        total_timesteps=spec.total_timesteps,
        n_envs=spec.n_envs,
        ppo_kwargs=thaw_ppo(spec.ppo_kwargs),
        seed=spec.seed,
        device="cpu",
        recurrent=spec.recurrent,
    )
    train_s = time.perf_counter() - start
    errors = []
    for inst in spec.test_instances:
        problem = inst.build()
        traj = nmf.run_sgd(
            problem,
            LearnedSchedule(model),
            spec.n_steps,
            clip=spec.clip,
            seed=inst.seed,
            compute_bound=True,
            certify=bool(env_kwargs.get("certify", False)),
        )
        errors.append(
            math.inf if traj.diverged else problem.relative_error_from_loss(traj.final_loss)
        )
    return {
        "errors": errors,
        "cells": [cell_name(i) for i in spec.test_instances],
        "train_time_s": train_s,
        "episodes": len(model.rl_scheduler_episodes),
    }


def tune_baselines(config: RLConfig, out: Path, **sweep: Any) -> dict[str, dict[str, tuple]]:
    """Per schedule and cell, the grid point with the lowest mean final error on the train set
    (the first of equals, in grid order)."""
    grid = config.grid()
    train = config.instances("train")
    specs = [
        NMFRunSpec(inst, name, params_key(p), config.n_steps, config.clip)
        for name in SCHEDULES
        for inst in train
        for p in grid[name]
    ]
    records = run_sweep(run_nmf, specs, out / "tune.jsonl", **sweep)
    require_ok(records, "tuning")
    scores: dict[tuple[str, str], dict[tuple, list[float]]] = defaultdict(dict)
    for spec, rec in zip(specs, records, strict=True):
        scores[(spec.schedule, cell_name(spec.instance))].setdefault(spec.params, []).append(
            rec["result"]["final_rel_error"]
        )
    best: dict[str, dict[str, tuple]] = defaultdict(dict)
    for (name, cell), by_params in scores.items():
        best[name][cell] = min(by_params, key=lambda p: float(np.mean(by_params[p])))
    return dict(best)


def held_out_baselines(
    config: RLConfig, best: dict[str, dict[str, tuple]], out: Path, **sweep: Any
) -> dict[str, list[float]]:
    test = config.instances("test")
    specs = [
        NMFRunSpec(inst, name, best[name][cell_name(inst)], config.n_steps, config.clip)
        for name in SCHEDULES
        for inst in test
    ]
    records = run_sweep(run_nmf, specs, out / "held_out.jsonl", **sweep)
    require_ok(records, "held-out runs")
    errors: dict[str, list[float]] = defaultdict(list)
    for spec, rec in zip(specs, records, strict=True):
        errors[spec.schedule].append(rec["result"]["final_rel_error"])
    return dict(errors)


def compare(
    agent_errors: list[float], cells: list[str], baselines: dict[str, list[float]]
) -> dict[str, Any]:
    """Win share (strictly lower error) and geometric-mean error ratio against each schedule,
    and per-cell mean errors of the agent and of every schedule."""
    mine = np.asarray(agent_errors, float)
    row: dict[str, Any] = {
        "geo_mean_error": float(np.exp(np.mean(np.log(mine)))),
        "win_share": {},
        "error_ratio": {},
    }
    for name, theirs in baselines.items():
        theirs = np.asarray(theirs, float)
        row["win_share"][name] = float(np.mean(mine < theirs))
        row["error_ratio"][name] = float(np.exp(np.mean(np.log(mine / theirs))))
    per_cell: dict[str, dict[str, float]] = {}
    for cell in sorted(set(cells)):
        idx = [i for i, c in enumerate(cells) if c == cell]
        per_cell[cell] = {"agent": float(np.mean(mine[idx]))} | {
            name: float(np.mean(np.asarray(v, float)[idx])) for name, v in baselines.items()
        }
    row["per_cell"] = per_cell
    return row


def table(summary: dict[str, Any]) -> str:
    names = list(summary["baselines"])
    lines = [
        "# NMF design screen (not the protocol: few seeds, no intervals)",
        "",
        "| design | PPO seed | geo-mean error | "
        + " | ".join(f"wins vs {n}" for n in names)
        + " | "
        + " | ".join(f"ratio vs {n}" for n in names)
        + " | worst cell vs best schedule |",
        "|---|---|---|" + "---|" * (2 * len(names) + 1),
    ]
    for row in summary["rows"]:
        worst = max(
            row["per_cell"].items(),
            key=lambda kv: kv[1]["agent"] / min(kv[1][n] for n in names),
        )
        cell, means = worst
        best_name = min(names, key=lambda n: means[n])
        lines.append(
            f"| {row['design']} | {row['seed']} | {row['geo_mean_error']:.4f} | "
            + " | ".join(f"{row['win_share'][n]:.2f}" for n in names)
            + " | "
            + " | ".join(f"{row['error_ratio'][n]:.4f}" for n in names)
            + f" | {cell}: {means['agent']:.4f} vs {best_name} {means[best_name]:.4f} |"
        )
    baseline_geo = ", ".join(f"{n} {g:.4f}" for n, g in summary["baseline_geo_mean_error"].items())
    lines += ["", f"Tuned schedules' geo-mean error: {baseline_geo}.", ""]
    return "\n".join(lines + per_cell_table(summary)) + "\n"


def per_cell_table(summary: dict[str, Any]) -> list[str]:
    """Mean final relative error per cell: each design (mean over its PPO seeds), then each
    tuned schedule."""
    cells = sorted(summary["rows"][0]["per_cell"]) if summary["rows"] else []
    by_design: dict[str, list[dict]] = {}
    for row in summary["rows"]:
        by_design.setdefault(row["design"], []).append(row["per_cell"])
    lines = [
        "## Mean final relative error per cell (designs: mean over their PPO seeds)",
        "",
        "| | " + " | ".join(cells) + " |",
        "|---|" + "---|" * len(cells),
    ]
    for design, per_seed in by_design.items():
        means = [float(np.mean([p[c]["agent"] for p in per_seed])) for c in cells]
        lines.append(f"| {design} | " + " | ".join(f"{m:.4f}" for m in means) + " |")
    for name in summary["baselines"]:
        means = [summary["rows"][0]["per_cell"][c][name] for c in cells]
        lines.append(f"| tuned {name} | " + " | ".join(f"{m:.4f}" for m in means) + " |")
    return lines


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--designs",
        default=",".join(DESIGNS),
        help=f"comma-separated designs of experiments.nmf.screen.DESIGNS (default: all: "
        f"{', '.join(DESIGNS)})",
    )
    parser.add_argument("--seeds", default="0,1", help="comma-separated PPO seeds (default: 0,1)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, out = parse_pipeline_args(
        "nmf.screen",
        "Screen NMF agent designs before a reference run.",
        argv,
        _add_arguments,
        folder="nmf-screen",
    )
    designs = [d.strip() for d in args.designs.split(",") if d.strip()]
    unknown = sorted(set(designs) - set(DESIGNS))
    if unknown or not designs:
        raise SystemExit(f"--designs: choose from {', '.join(DESIGNS)}, got {args.designs!r}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise SystemExit(f"--seeds: comma-separated integers >= 0, got {args.seeds!r}")
    config = SCREEN_QUICK if args.quick else SCREEN_FULL
    settings = {name: getattr(config, name) for name in SETTINGS}
    start = time.perf_counter()
    with running(args):
        sweep = sweep_options(args)
        best = tune_baselines(config, out, **sweep)
        baselines = held_out_baselines(config, best, out, **sweep)
        specs = agent_specs(config, designs, seeds)
        records = run_sweep(train_and_run, specs, out / "agents.jsonl", **sweep)
        require_ok(records, "agent screening")
        rows = [
            {
                "design": spec.design,
                "seed": spec.seed,
                "train_time_s": rec["result"]["train_time_s"],
            }
            | compare(rec["result"]["errors"], rec["result"]["cells"], baselines)
            for spec, rec in zip(specs, records, strict=True)
        ]
        summary = {
            "config": settings,
            "tuned": {n: {c: dict(p) for c, p in cells.items()} for n, cells in best.items()},
            "baselines": baselines,
            "baseline_geo_mean_error": {
                n: float(np.exp(np.mean(np.log(v)))) for n, v in baselines.items()
            },
            "rows": rows,
        }
        inputs = input_digests(
            [d for d in config.datasets if d in DATASETS], config=settings, specs=records
        )
        return finish(args, out, summary, table(summary), start, inputs=inputs)


if __name__ == "__main__":
    main()
