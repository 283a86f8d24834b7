"""The GreedyLR study's second reading: time to target and performance profiles (AlgoPerf style).

Per optimizer family (SGD, Adam) and workload, the target is set from the baselines -- every
schedule and optimizer of the family except GreedyLR -- by
:func:`~experiments.common.time_to_target.set_target` over the best evaluated training loss of
each held-out run. A run's time to target is the first evaluation (every 10% of the budget) at
which its evaluated training loss is at or below the target, in steps and in seconds; the
seconds are the run's wall time x the fraction of its budget (evaluations included: the runs do
not time their steps separately). Problems are (workload, held-out seed) pairs; each family gets
a performance profile over them (:func:`~experiments.common.time_to_target.profiles_block`).
The final-loss reading ranks the methods by their mean rank of the final evaluated training loss
over the same problems.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
from scipy.stats import rankdata

from experiments.common.time_to_target import (
    best_loss,
    first_reach,
    profiles_block,
    set_target,
    summarise_times,
)

OURS = "greedy"
"""The method the targets are not set from."""

Problem = tuple[str, int]
"""(workload, held-out seed)."""


def _runs(records: list[dict]) -> dict[str, dict[str, dict[Problem, dict | None]]]:
    """optimizer -> scheduler -> problem -> result (``None``: the run failed)."""
    out: dict[str, dict[str, dict[Problem, dict | None]]] = defaultdict(lambda: defaultdict(dict))
    for rec in records:
        s = rec["spec"]
        result = rec["result"] if rec["status"] == "ok" else None
        out[s["optimizer"]][s["scheduler"]][(s["workload"], int(s["seed"]))] = result
    return out


def _steps(result: dict | None, target: float) -> float:
    if result is None:
        return math.inf
    return first_reach(result["eval_steps"], result["train_eval_loss"], target)


def _seconds(result: dict | None, steps: float) -> float:
    if result is None or not math.isfinite(steps):
        return math.inf
    return steps / result["eval_steps"][-1] * float(result["wall_time_s"])


def _final(result: dict | None) -> float:
    if result is None:
        return math.inf
    value = float(result["train_eval_loss"][-1])
    return value if math.isfinite(value) else math.inf


def family_block(by_sched: dict[str, dict[Problem, dict | None]]) -> dict[str, Any]:
    """One family's targets, per-method times, profiles (steps, seconds) and readings."""
    problems = sorted({p for runs in by_sched.values() for p in runs})
    workloads = sorted({w for w, _ in problems})
    targets = {
        w: set_target(
            {
                sched: [
                    best_loss(runs[p]["train_eval_loss"]) if runs.get(p) else math.inf
                    for p in problems
                    if p[0] == w
                ]
                for sched, runs in by_sched.items()
                if sched != OURS
            }
        )
        for w in workloads
    }
    steps = {
        sched: {p: _steps(runs.get(p), targets[p[0]]) for p in problems}
        for sched, runs in by_sched.items()
    }
    seconds = {
        sched: {p: _seconds(runs.get(p), steps[sched][p]) for p in problems}
        for sched, runs in by_sched.items()
    }
    methods = {
        sched: {
            "steps_to_target": summarise_times(list(steps[sched].values())),
            "seconds_to_target": summarise_times(list(seconds[sched].values())),
            "mean_rank_final_loss": rank,
        }
        for sched, rank in _mean_ranks(by_sched, problems).items()
    }
    profile_steps = profiles_block(
        {m: {_key(p): t for p, t in v.items()} for m, v in steps.items()}
    )
    profile_seconds = profiles_block(
        {m: {_key(p): t for p, t in v.items()} for m, v in seconds.items()}
    )
    return {
        "targets": targets,
        "problems": [_key(p) for p in problems],
        "methods": methods,
        "profile_steps": profile_steps,
        "profile_seconds": profile_seconds,
        "readings": {
            "final_loss": min(methods, key=lambda m: methods[m]["mean_rank_final_loss"]),
            "time_to_target_steps": profile_steps["best"],
            "time_to_target_seconds": profile_seconds["best"],
        },
    }


def _key(p: Problem) -> str:
    return f"{p[0]}/seed{p[1]}"


def _mean_ranks(
    by_sched: dict[str, dict[Problem, dict | None]], problems: list[Problem]
) -> dict[str, float]:
    """Mean over problems of each method's rank of the final loss (1 = lowest; ties averaged)."""
    names = list(by_sched)
    finals = np.array([[_final(by_sched[m].get(p)) for m in names] for p in problems])
    ranks = np.array([rankdata(row) for row in finals])
    return {m: float(r) for m, r in zip(names, ranks.mean(axis=0), strict=True)}


def summarise_speed(records: list[dict]) -> dict[str, Any]:
    """The summary's ``time_to_target`` block: :func:`family_block` per optimizer family."""
    return {o: family_block(by_sched) for o, by_sched in sorted(_runs(records).items())}
