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

from experiments.common.tuning import tune_log_axes
from experiments.nmf.config import (
    AXIS_NAMES,
    NMFRunSpec,
    SchedulesConfig,
    SklearnRunSpec,
    axis_params,
    params_key,
)
from experiments.runner import run_sweep, spec_id
from nmf import StochasticNMF, run_sgd
from nmf.datasets import NMFInstance
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

    Every axis widens until its optimum is interior (:func:`tune_widened`). ``sweep`` is passed
    on to :func:`run_sweep` (``jobs``/``backend``, ``quiet``), as in the other stages.
    """
    cells = {
        setting: [replace(template, seed=seed) for seed in config.train_seeds]
        for setting, template in config.settings().items()
    }
    return tune_widened(
        cells,
        config.axes(),
        n_steps=config.n_steps,
        clip=None,
        metric="final_loss",
        score_key="train_mean_final_loss",
        max_rounds=config.widen_rounds,
        path=out / "tune.jsonl",
        **sweep,
    )


def tune_widened(
    cells: dict[str, list[NMFInstance]],
    axes: dict[tuple[str, int], list[float]],
    *,
    n_steps: int,
    clip: float | None,
    metric: str,
    score_key: str,
    max_rounds: int,
    path: Path,
    **sweep: Any,
) -> dict[str, dict[str, dict]]:
    """Tune every (cell, schedule, shape) along its log axis, widening edge optima.

    Each value of an axis is scored by the mean ``metric`` over the cell's tuning instances (a
    failed or diverged run counts as ``inf``); :func:`experiments.common.tuning.tune_log_axes`
    adds one value beyond the edge per round for every axis whose best value is at an edge,
    for at most ``max_rounds`` rounds, all new runs of a round in one sweep of ``path``.
    Returns ``best[cell][schedule] = {"params", score_key, "axis", "shape", "edge", "rounds",
    "shapes"}``: the shape with the best score (the first of equal ones), its parameters, the
    edge its optimum still sits at (``None``: interior), and every shape's axis
    (:meth:`AxisResult.to_json`).
    """

    def specs_of(key: tuple[str, str, int], value: float) -> list[NMFRunSpec]:
        cell, name, shape = key
        params = params_key(axis_params(name, shape, value, n_steps))
        return [NMFRunSpec(inst, name, params, n_steps, clip) for inst in cells[cell]]

    def evaluate(pending: dict) -> dict:
        batch = {(key, v): specs_of(key, v) for key, values in pending.items() for v in values}
        records = run_sweep(run_nmf, [sp for sps in batch.values() for sp in sps], path, **sweep)
        by_id = {rec["spec_id"]: rec for rec in records}
        scores: dict = defaultdict(dict)
        for (key, v), sps in batch.items():
            runs = [by_id[spec_id(sp)] for sp in sps]
            values = [float(r["result"][metric]) if r["status"] == "ok" else math.inf for r in runs]
            scores[key][v] = float(np.mean(values))
        return scores

    initial = {(cell, name, shape): vs for cell in cells for (name, shape), vs in axes.items()}
    results = tune_log_axes(initial, evaluate, max_rounds=max_rounds)
    best: dict[str, dict[str, dict]] = defaultdict(dict)
    for cell in cells:
        for name in dict.fromkeys(name for name, _ in axes):
            shapes = sorted(shape for n, shape in axes if n == name)
            axis = {shape: results[(cell, name, shape)] for shape in shapes}
            chosen = min(shapes, key=lambda i: axis[i].scores[axis[i].best])
            r = axis[chosen]
            best[cell][name] = {
                "params": axis_params(name, chosen, r.best, n_steps),
                score_key: r.scores[r.best],
                "axis": AXIS_NAMES[name],
                "shape": chosen,
                "edge": r.edge,
                "rounds": r.rounds,
                "shapes": [{"shape": i, **axis[i].to_json()} for i in shapes],
            }
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
