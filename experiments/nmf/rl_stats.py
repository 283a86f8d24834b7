"""The learned schedule's statistics as the RL field reports them (Agarwal et al., 2021).

Scores form ``runs x tasks`` matrices: the tasks are the held-out instances (strata: their cells),
the runs of a learned schedule are its PPO seeds, and a tuned schedule, deterministic given the
instance, is one run per instance. For every learned variant against every tuned schedule:

* the **probability of improvement** (a run of the agent ends below a run of the baseline on the
  same instance, ties half) with a 95% stratified-bootstrap interval over seeds x instances;
* a **paired test**: Wilcoxon signed-rank on per-instance (agent mean over seeds, baseline);
* the geometric-mean error ratio (over all instances with the same bootstrap interval);

and for every schedule the **IQM of the normalised score** (final error / the best final error of
any run of any schedule on that instance, capped at :data:`NORMALISED_CAP`) with its interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from experiments.common.stats import (
    headline_record,
    iqm_with_ci,
    paired_test,
    poi_with_ci,
    stratified_bootstrap,
)

NORMALISED_CAP = 10.0
"""A diverged run, or one ending above this many times the best final error, scores this much."""


def score_matrices(runs: dict[str, dict[str, dict[int, list]]]) -> tuple[dict, list[str]]:
    """``({schedule: runs x tasks matrix of final relative errors}, cell of every task)``.

    ``runs[cell][schedule][instance seed]`` holds a schedule's results on an instance (a learned
    schedule: one per PPO seed, in seed order). Tasks are the instances every schedule ran on,
    by cell and seed; a diverged run scores ``inf``.
    """
    names = sorted({name for by_schedule in runs.values() for name in by_schedule})
    tasks = [
        (cell, seed)
        for cell in sorted(runs)
        for seed in sorted(set.intersection(*(set(runs[cell][n]) for n in names)))
    ]
    matrices = {}
    for name in names:
        columns = [
            [float(r["final_rel_error"]) for r in runs[cell][name][seed]] for cell, seed in tasks
        ]
        if len({len(c) for c in columns}) != 1:
            raise ValueError(f"schedule {name!r} has a different number of runs per instance")
        matrices[name] = np.array(columns, dtype=float).T
    return matrices, [cell for cell, _ in tasks]


def normalised(matrices: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Final error / the best (finite) final error of any run on the same instance, capped."""
    stacked = np.vstack(list(matrices.values()))
    best = np.min(np.where(np.isfinite(stacked), stacked, np.inf), axis=0)
    return {
        name: np.minimum(np.where(np.isfinite(m), m / best, NORMALISED_CAP), NORMALISED_CAP)
        for name, m in matrices.items()
    }


def _log_ratio(x: np.ndarray, y: np.ndarray, strata: Any = None) -> float:
    """Geometric mean of X / Y over every (run of X, run of Y, task) triple (two diverged: 1)."""
    a, b = x[:, None, :], y[None, :, :]
    both = ~np.isfinite(a) & ~np.isfinite(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(both, 0.0, np.log(a) - np.log(b))
    return float(np.exp(np.mean(logs)))


def compare(
    agent: np.ndarray, baseline: np.ndarray, strata: list[str] | None, n_boot: int
) -> dict[str, Any]:
    """PoI of the agent over a baseline (with its interval), the paired test, the error ratio."""
    return {
        "probability_of_improvement": poi_with_ci(agent, baseline, strata=strata, n_boot=n_boot),
        "paired_test": paired_test(agent.mean(axis=0), baseline.mean(axis=0)),
        "error_ratio": _log_ratio(agent, baseline),
    }


def mean_over_runs_tasks(matrix: np.ndarray, n_boot: int) -> dict[str, Any]:
    """Mean of a ``runs x tasks`` matrix with its bootstrap interval (``inf``: a run diverged)."""
    n_runs, n_tasks = matrix.shape
    if not np.all(np.isfinite(matrix)):
        return {"mean": math.inf, "ci95": [math.inf, math.inf], "n": n_tasks, "n_runs": n_runs}
    boot = stratified_bootstrap(lambda m, strata=None: float(m.mean()), matrix, n_boot=n_boot)
    return {"mean": boot["value"], "ci95": boot["ci95"], "n": n_tasks, "n_runs": n_runs}


def rl_statistics(
    runs: dict, variants: list[str], baselines: list[str], *, n_boot: int
) -> dict[str, Any]:
    """``{"comparisons", "iqm", "headline"}`` of the held-out runs (see the module docstring).

    ``comparisons[variant]["overall" | cell][baseline]`` (overall: stratified by cell; the
    overall ``error_ratio`` with its interval, a cell's as a plain value),
    ``iqm["overall" | cell][schedule]`` of the normalised score, and the ``headline`` records
    ``<variant>_vs_<baseline>`` (probability of improvement over all held-out instances).
    """
    matrices, strata = score_matrices(runs)
    scores = normalised(matrices)
    cells = sorted(set(strata))
    labels = np.asarray(strata)
    comparisons: dict[str, Any] = {}
    headline = []
    for variant in variants:
        block: dict[str, Any] = {"overall": {}}
        for ref in baselines:
            agent, base = matrices[variant], matrices[ref]
            result = compare(agent, base, strata, n_boot)
            result["error_ratio"] = stratified_bootstrap(
                _log_ratio, agent, base, strata=strata, n_boot=n_boot
            )
            block["overall"][ref] = result
            for cell in cells:
                cols = labels == cell
                block.setdefault(cell, {})[ref] = compare(
                    agent[:, cols], base[:, cols], None, n_boot
                )
            poi = result["probability_of_improvement"]
            headline.append(
                headline_record(
                    f"{variant}_vs_{ref}",
                    "probability_of_improvement",
                    poi["value"],
                    poi["ci95"],
                    poi["n_tasks"],
                    ppo_seeds=int(agent.shape[0]),
                    n_instances=int(agent.shape[1]),
                    p_value=result["paired_test"]["p_value"],
                    split="held-out",
                )
            )
        comparisons[variant] = block
    iqm: dict[str, Any] = {"overall": {}}
    for name, m in scores.items():
        iqm["overall"][name] = iqm_with_ci(m, strata=strata, n_boot=n_boot)
        for cell in cells:
            iqm.setdefault(cell, {})[name] = iqm_with_ci(m[:, labels == cell], n_boot=n_boot)
    return {"comparisons": comparisons, "iqm": iqm, "headline": headline}


def separated(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two ``{"ci95": [low, high]}`` intervals do not overlap."""
    return a["ci95"][1] < b["ci95"][0] or b["ci95"][1] < a["ci95"][0]


def format_interval(stat: dict[str, Any], digits: int = 3, key: str = "value") -> str:
    """``value [low, high]`` (``diverged`` when infinite)."""
    value = stat[key]
    if not math.isfinite(value):
        return "diverged"
    low, high = stat["ci95"]
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
