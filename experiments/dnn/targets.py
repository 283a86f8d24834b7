"""Time to target of the DNN study, scored as AlgoPerf scores training algorithms.

With :mod:`experiments.common.time_to_target`: per task the **target** is set by the baselines
(every tuned schedule, random search and the learning-rate-free peers; never the agent): the
lowest, over those methods, of the median over held-out seeds of the best validation loss each
run reached during training. Every held-out run of every method (the agent included) then has
a time to target, in optimizer steps and in training seconds: the first evaluation (one per
chunk) whose validation loss is at or below the target, ``inf`` if none. A *problem* is one
(task, held-out seed); a method with several runs per seed (the agent: one per PPO seed) takes
the median of their times. Performance profiles and their scores are computed per task and over
both tasks' problems together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from experiments.common.time_to_target import (
    best_loss,
    first_reach,
    profiles_block,
    set_target,
    summarise_times,
)

Rows = list[list[dict | None]]
"""A method's held-out results, ``runs x eval seeds`` (``None``: a failed run)."""

CLOCKS = {"steps": "steps", "seconds": "time_s"}
"""The two clocks of a time to target and the run curve each is read from."""


def task_target(runs: dict[str, Rows], baselines: Sequence[str]) -> float:
    """The target of a task: :func:`set_target` over the baselines' best validation losses."""
    best = {
        m: [math.inf if r is None else best_loss(r["val_loss"]) for row in runs[m] for r in row]
        for m in baselines
    }
    return set_target(best)


def _times(rows: Rows, target: float, clock: str) -> np.ndarray:
    """Time to target of every run (``runs x eval seeds``; ``inf``: not reached or failed)."""
    return np.array(
        [
            [
                math.inf if r is None else first_reach(r[CLOCKS[clock]], r["val_loss"], target)
                for r in row
            ]
            for row in rows
        ],
        dtype=float,
    )


def task_times(
    runs: dict[str, Rows], baselines: Sequence[str], seeds: Sequence[int], task: str
) -> dict[str, Any]:
    """One task's target, each method's times to it and the task's performance profiles.

    Returns
    -------
    dict
        ``target_val_loss``, ``baselines`` (the methods that set it), ``methods`` (per method
        and clock: :func:`summarise_times` over its runs), ``problems`` (per clock, method and
        ``"<task>/<seed>"``: the median time over the method's runs on that seed), and
        ``steps`` / ``seconds`` (:func:`profiles_block` of this task's problems).
    """
    target = task_target(runs, baselines)
    out: dict[str, Any] = {"target_val_loss": target, "baselines": list(baselines)}
    out["methods"] = {m: {} for m in runs}
    out["problems"] = {clock: {} for clock in CLOCKS}
    for method, rows in runs.items():
        for clock in CLOCKS:
            times = _times(rows, target, clock)
            out["methods"][method][clock] = summarise_times(times.ravel().tolist())
            per_seed = np.median(times, axis=0) if times.size else np.full(len(seeds), math.inf)
            out["problems"][clock][method] = {
                f"{task}/{s}": float(t) for s, t in zip(seeds, per_seed, strict=True)
            }
    for clock in CLOCKS:
        out[clock] = profiles_block(out["problems"][clock])
    return out


def overall_profiles(per_task: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Profiles over every task's problems together (the methods every task has)."""
    blocks = list(per_task.values())
    methods = [m for m in blocks[0]["methods"] if all(m in b["methods"] for b in blocks)]
    out: dict[str, Any] = {}
    for clock in CLOCKS:
        pooled = {
            m: {p: t for b in blocks for p, t in b["problems"][clock][m].items()} for m in methods
        }
        out[clock] = profiles_block(pooled)
    return out


def _time(r: dict[str, Any], digits: int) -> str:
    if not r["reached"]:
        return "never"
    median = "not reached" if not math.isfinite(r["median"]) else f"{r['median']:.{digits}f}"
    return f"{median} ({r['reached']}/{r['n']})"


def time_to_target_section(summary: dict, label: Callable[[str], str]) -> list[str]:
    """The table lines of the time-to-target reading (``label``: a method's display name)."""
    lines = [
        "**Time to target** (AlgoPerf: per task the target is the best, over the baselines, of "
        "the median over held-out seeds of each run's best validation loss; the agent does not "
        "set it. Time = first evaluation at or below it; median over runs, reached n/N; score = "
        "area under the performance profile over tau in [1, 4] on the problems (task, held-out "
        "seed), the agent's time per problem being the median over its PPO seeds.)",
        "",
    ]
    for name, block in summary["tasks"].items():
        ttt = block["time_to_target"]
        rows = block["methods"]
        lines += [
            f"*{name}*: target validation loss {ttt['target_val_loss']:.4g}",
            "",
            "| method | steps to target | seconds to target | score (steps) | score (seconds) |",
            "|---|---|---|---|---|",
        ]
        for m in ttt["steps"]["methods"]:  # best steps score first
            r = rows[m]
            lines.append(
                f"| {label(m)} | {_time(r['steps_to_target'], 0)} | "
                f"{_time(r['time_to_target_s'], 2)} | {ttt['steps']['methods'][m]['score']:.3f} | "
                f"{ttt['seconds']['methods'][m]['score']:.3f} |"
            )
        lines.append("")
    overall = summary["time_to_target"]
    lines += [
        f"Both tasks together ({overall['steps']['n_problems']} problems): best by the steps "
        f"profile {label(overall['steps']['best'])} "
        f"({overall['steps']['methods'][overall['steps']['best']]['score']:.3f}), by the seconds "
        f"profile {label(overall['seconds']['best'])} "
        f"({overall['seconds']['methods'][overall['seconds']['best']]['score']:.3f}).",
        "",
    ]
    for name, r in summary["readings"].items():
        if name == "overall":
            continue
        lines.append(
            f"Readings, {name}: best final test loss by IQM {label(r['best_by_iqm_test_loss'])}, "
            f"by mean {label(r['best_by_mean_test_loss'])}; best time to target by the steps "
            f"profile {label(r['best_by_steps_profile'])}, by the seconds profile "
            f"{label(r['best_by_seconds_profile'])}."
        )
    lines.append("")
    return lines
