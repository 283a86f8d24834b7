"""Time to target in the NMF study, scored as AlgoPerf does (:mod:`experiments.common.time_to_target`).

A workload is a setting (schedules stage) or a cell (learned-schedule stage); a *problem* is one
(workload, held-out instance) pair. Per workload:

* the **target** relative error is set from the *baselines* only (the tuned hand-made schedules,
  follow-the-bound among them; never a learned schedule): the lowest, over baselines, of the
  median over held-out instances of each run's best relative error (on the full data, the
  objective the study scores);
* a run's **time to target** is the first step whose relative error is at or below the target
  (step 0: before training), and in seconds, that step times the run's wall time per step taken
  (the records hold each run's total wall time, not per-step times);
* a learned schedule has one run per PPO seed on each problem: its time on the problem is the
  median over its seeds; its per-workload summary pools every run.

Every method's performance profile over all problems, and its AlgoPerf score, follow in steps
and in seconds (:func:`time_to_target`); :func:`readings` names the best method by each reading.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from experiments.common.time_to_target import (
    best_loss,
    first_reach,
    profiles_block,
    set_target,
    summarise_times,
)

UNITS = ("steps", "seconds")


def run_times(result: Mapping[str, Any], target: float) -> tuple[float, float]:
    """A run's ``(steps, seconds)`` to reach ``target`` (``inf``: never).

    ``result["rel_errors"]`` holds the relative error before the first step and after each step;
    seconds are steps x ``result["wall_time_s"]`` / the steps the run took.
    """
    curve = result["rel_errors"]
    steps = first_reach(range(len(curve)), curve, target)
    if not math.isfinite(steps):
        return math.inf, math.inf
    taken = len(curve) - 1
    per_step = float(result["wall_time_s"]) / taken if taken else 0.0
    return steps, steps * per_step


def time_to_target(
    runs: Mapping[str, Mapping[str, Mapping[int, Sequence[Mapping[str, Any]]]]],
    baselines: Sequence[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Targets, times to target and performance profiles of held-out runs.

    Parameters
    ----------
    runs : mapping
        ``runs[workload][method][instance seed]`` = the method's results on that instance (a
        learned schedule: one per PPO seed), each with ``rel_errors`` and ``wall_time_s``.
    baselines : sequence of str
        The methods that set the targets (at least one must have run on every workload).

    Returns
    -------
    per_workload, overall : dict
        ``per_workload[workload] = {"target", "methods": {method: {"steps", "seconds"}}}``
        (:func:`summarise_times` over the method's runs); ``overall = {"problems", "profiles":
        {"steps", "seconds"}}`` (:func:`profiles_block` over the problems every method of its
        workload ran on; the methods are those of every workload).
    """
    per_workload: dict[str, Any] = {}
    times: dict[str, dict[str, dict[str, float]]] = {u: defaultdict(dict) for u in UNITS}
    methods = [m for m in dict.fromkeys(m for by in runs.values() for m in by)]
    problems = []
    for workload in sorted(runs):
        by_method = runs[workload]
        base = {
            m: [best_loss(r["rel_errors"]) for rs in by_method[m].values() for r in rs]
            for m in baselines
            if m in by_method
        }
        if not base:
            raise ValueError(f"baselines {list(baselines)} did not run on {workload!r}")
        missing = [m for m in methods if m not in by_method]
        if missing:
            raise ValueError(f"runs of {workload!r} lack the methods {missing}")
        target = set_target(base)
        seeds = sorted(set.intersection(*(set(by_method[m]) for m in methods)))
        block: dict[str, Any] = {}
        for m in methods:
            pairs = {s: [run_times(r, target) for r in by_method[m][s]] for s in seeds}
            block[m] = {
                unit: summarise_times([p[i] for ps in pairs.values() for p in ps])
                for i, unit in enumerate(UNITS)
            }
            for s, ps in pairs.items():
                for i, unit in enumerate(UNITS):
                    times[unit][m][f"{workload}#{s}"] = float(np.median([p[i] for p in ps]))
        problems += [f"{workload}#{s}" for s in seeds]
        per_workload[workload] = {"target": target, "methods": block}
    overall = {
        "problems": problems,
        "profiles": {unit: profiles_block(dict(times[unit])) for unit in UNITS},
    }
    return per_workload, overall


def readings(final_error: Mapping[str, float], profiles: Mapping[str, Any], metric: str) -> dict:
    """The best method by the final-error reading (lowest ``final_error[method]``, described by
    ``metric``) and by each profile score (highest), and whether the readings agree."""
    best_final = min(final_error, key=lambda m: final_error[m])
    out: dict[str, Any] = {
        "final_error": {"metric": metric, "best": best_final, "value": final_error[best_final]}
    }
    for unit, block in profiles.items():
        best = block["best"]
        out[f"profile_{unit}"] = {"best": best, "score": block["methods"][best]["score"]}
    out["agree"] = len({out[k]["best"] for k in out}) == 1
    return out


def format_time(summary: Mapping[str, Any], digits: int = 0) -> str:
    """``median (reached/n)`` of :func:`summarise_times`: ``—`` for a median that is not finite
    (half the runs or more missed the target), ``never`` when no run reached it."""
    if not summary["reached"]:
        return f"never (0/{summary['n']})"
    median = summary["median"]
    shown = f"{median:.{digits}f}" if math.isfinite(median) else "—"
    return f"{shown} ({summary['reached']}/{summary['n']})"


def table_lines(overall: Mapping[str, Any], per_workload: Mapping[str, Any]) -> list[str]:
    """The table.md section: per workload the target and each method's median times, then the
    profile scores and the readings."""
    n = len(overall["problems"])
    lines = [
        "**Time to target** (AlgoPerf: target = lowest over the tuned baselines of the median "
        "over held-out instances of each run's best relative error; time = first step at or "
        "below it, seconds = steps x the run's seconds per step; median over runs (— when half "
        "or more miss the target), runs that reach it / runs)",
        "",
        "| workload | target | method | steps to target | seconds to target |",
        "|---|---|---|---|---|",
    ]
    for workload, block in per_workload.items():
        for m, t in block["methods"].items():
            lines.append(
                f"| {workload} | {block['target']:.4f} | {m} | {format_time(t['steps'])} | "
                f"{format_time(t['seconds'], 3)} |"
            )
    profiles = overall["profiles"]
    lines += [
        "",
        f"**Performance profiles** over {n} problems (workload x held-out instance): score = "
        "area under the fraction solved within tau x the fastest, tau in [1, 4] (1: always "
        "fastest, 0: never reaches the target)",
        "",
        "| method | score (steps) | solved (steps) | score (seconds) | solved (seconds) |",
        "|---|---|---|---|---|",
    ]
    for m, s in profiles["steps"]["methods"].items():
        t = profiles["seconds"]["methods"][m]
        lines.append(
            f"| {m} | {s['score']:.3f} | {s['solved']}/{n} | {t['score']:.3f} | {t['solved']}/{n} |"
        )
    r = overall["readings"]
    lines += [
        "",
        f"Best by final error ({r['final_error']['metric']}): {r['final_error']['best']}; "
        f"by profile score in steps: {r['profile_steps']['best']}; in seconds: "
        f"{r['profile_seconds']['best']}.",
        "",
    ]
    return lines
