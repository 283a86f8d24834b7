"""The schedule comparison of the NMF study: one projected-SGD run, scikit-learn's NMF, and the
tune / held-out / scikit-learn stages (each a resumable sweep of :mod:`experiments.runner`)."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from experiments.nmf.config import (
    NMFRunSpec,
    SchedulesConfig,
    SklearnRunSpec,
    cell_name,
    params_key,
    tuning_grid,
)
from experiments.runner import run_sweep
from nmf import StochasticNMF, run_sgd
from nmf.schedules import make_schedule
from nmf.sgd import Trajectory


def run_nmf(spec: NMFRunSpec) -> dict[str, Any]:
    """Run one spec; the result holds final and intermediate relative errors (and curves)."""
    problem = spec.instance.build()
    schedule = make_schedule(spec.schedule, **dict(spec.params))
    traj = run_sgd(
        problem,
        schedule,
        spec.n_steps,
        clip=spec.clip,
        seed=spec.instance.seed,
        compute_bound=spec.record_bounds or spec.schedule == "follow_bound",
    )
    return trajectory_result(problem, traj, curves=spec.curves)


def trajectory_result(problem: StochasticNMF, traj: Trajectory, *, curves: bool) -> dict[str, Any]:
    """What every NMF pipeline records of a run: final error, divergence, time, and curves.

    ``steps_above_bound`` counts the steps whose learning rate exceeded the stability bound of
    their own iterate (``None`` when bounds were not computed).
    """
    rel = [problem.relative_error_from_loss(loss) for loss in traj.losses]
    lrs, bounds = np.asarray(traj.lrs, float), np.asarray(traj.bounds, float)
    has_bounds = len(bounds) > 0 and bool(np.all(np.isfinite(bounds)))
    result: dict[str, Any] = {
        "final_loss": traj.final_loss,
        "final_rel_error": math.inf if traj.diverged else rel[-1],
        "diverged": traj.diverged,
        "wall_time_s": traj.wall_time,
        "steps_above_bound": int(np.sum(lrs > bounds)) if has_bounds else None,
    }
    if curves:
        result |= {"rel_errors": rel, "lrs": traj.lrs, "bounds": traj.bounds}
    return result


def run_sklearn(spec: SklearnRunSpec) -> dict[str, Any]:
    """scikit-learn's NMF with ``init="random"`` seeded by the instance seed."""
    import warnings

    from sklearn.decomposition import NMF
    from sklearn.exceptions import ConvergenceWarning

    V = spec.instance.data()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = NMF(
            spec.instance.rank,
            init="random",
            solver="cd",
            max_iter=spec.max_iter,
            tol=spec.tol,
            random_state=spec.instance.seed,
        ).fit(V)
    elapsed = time.perf_counter() - start
    return {
        "final_rel_error": float(model.reconstruction_err_ / np.linalg.norm(V)),
        "n_iter": int(model.n_iter_),
        "wall_time_s": elapsed,
    }


def tune(config: SchedulesConfig, out: Path, **sweep: Any) -> dict[str, dict[str, dict]]:
    """Best parameters per setting and schedule, by mean final loss over the training seeds.

    ``sweep`` is passed on to :func:`run_sweep` (``jobs``/``backend``, ``quiet``), as in the other
    stages.
    """
    specs = [
        NMFRunSpec(replace(template, seed=seed), name, params_key(params), config.n_steps)
        for template in config.settings().values()
        for name, options in tuning_grid(config.n_steps, config.lr_grid, config.budget).items()
        for params in options
        for seed in config.train_seeds
    ]
    records = run_sweep(run_nmf, specs, out / "tune.jsonl", **sweep)
    return best_params(records, "final_loss", "train_mean_final_loss")


def best_params(records: list[dict], metric: str, score_key: str) -> dict[str, dict[str, dict]]:
    """``best[cell][schedule] = {"params": ..., score_key: ...}``: per cell and schedule, the
    parameters with the lowest mean ``metric`` over their tuning runs (a failed run counts as
    ``inf``; the first of equal scores wins)."""
    values: dict[tuple[str, str, tuple], list[float]] = defaultdict(list)
    for rec in records:
        spec = rec["spec"]
        value = float(rec["result"][metric]) if rec["status"] == "ok" else math.inf
        values[
            (cell_name(spec["instance"]), spec["schedule"], params_key(dict(spec["params"])))
        ].append(value)
    best: dict[str, dict[str, dict]] = defaultdict(dict)
    for (cell, name, params), vs in values.items():
        score = float(np.mean(vs))
        if name not in best[cell] or score < best[cell][name][score_key]:
            best[cell][name] = {"params": dict(params), score_key: score}
    return dict(best)


def evaluate(config: SchedulesConfig, best: dict, out: Path, **sweep: Any) -> list[dict]:
    """Run every tuned schedule on the held-out seeds, keeping curves."""
    specs = [
        NMFRunSpec(
            replace(template, seed=seed),
            name,
            params_key(best[setting][name]["params"]),
            config.n_steps,
            curves=True,
        )
        for setting, template in config.settings().items()
        for name in best[setting]
        for seed in config.eval_seeds
    ]
    return run_sweep(run_nmf, specs, out / "eval.jsonl", **sweep)


def sklearn_reference(config: SchedulesConfig, out: Path, **sweep: Any) -> list[dict]:
    specs = [SklearnRunSpec(replace(config.digits, seed=seed)) for seed in config.eval_seeds]
    return run_sweep(run_sklearn, specs, out / "sklearn.jsonl", **sweep)
