"""Paper 1: learning-rate schedules for stochastic NMF, behind ``make reproduce-nmf``.

Pipeline (every stage is a resumable sweep of :mod:`experiments.runner`):

1. **tune**: every hand-made schedule gets the same budget of :data:`TUNING_BUDGET`
   configurations, each run on the *training* seeds of every setting (dataset x gradient noise);
   the configuration with the lowest mean final loss wins.
2. **eval**: the winners run on *held-out* seeds (new initial factors, new gradient noise and, for
   synthetic data, a new matrix).
3. **sklearn**: scikit-learn's ``NMF(solver="cd")`` on the same digits problem, the reference a
   user would otherwise pick, against the SGD schedule with the best tuning score (chosen on the
   training seeds, like every other choice).
4. **summary**: ``summary.json``, ``table.md`` and figures under ``results/nmf/``.

Run ``python -m experiments.nmf --help`` for the options; ``--quick`` is a minutes-long smoke run.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from experiments.cli import finish, parse_pipeline_args, sweep_options
from experiments.runner import run_sweep
from experiments.stats import format_mean_ci, mean_ci
from nmf import StochasticNMF, run_sgd
from nmf.datasets import NMFInstance
from nmf.schedules import make_schedule
from nmf.sgd import Trajectory

TUNING_BUDGET = 12
"""Configurations tried per schedule (the same for every schedule)."""


@dataclass(frozen=True)
class NMFRunSpec:
    """One projected-SGD run: a problem instance, a schedule with its parameters, a budget."""

    instance: NMFInstance
    schedule: str
    params: tuple[tuple[str, Any], ...] = ()
    n_steps: int = 500
    clip: float | None = None
    curves: bool = False
    """Keep per-step curves in the result (evaluation runs) or only the summary (tuning)."""
    record_bounds: bool = False
    """Compute the stability bound of every iterate (always done for follow-the-bound)."""


@dataclass(frozen=True)
class SklearnRunSpec:
    """scikit-learn's coordinate-descent NMF on an instance's matrix, from its own random init."""

    instance: NMFInstance
    max_iter: int = 200
    tol: float = 1e-4


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


# ---------------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class Config:
    """Everything that differs between the full run and ``--quick``."""

    n_steps: int
    noise_levels: tuple[float, ...]
    train_seeds: tuple[int, ...]
    eval_seeds: tuple[int, ...]
    synthetic: NMFInstance
    digits: NMFInstance
    lr_grid: tuple[float, ...]
    budget: int

    def settings(self) -> dict[str, NMFInstance]:
        """Named instance templates, one per (dataset, noise level); seeds are filled in later."""
        return {
            f"{base.dataset}/noise={noise:g}": replace(base, noise_std=noise)
            for base in (self.synthetic, self.digits)
            for noise in self.noise_levels
        }


FULL = Config(
    n_steps=500,
    noise_levels=(0.0, 1.0, 5.0),
    train_seeds=(0, 1, 2),
    eval_seeds=(100, 101, 102, 103, 104),
    synthetic=NMFInstance("synthetic", rank=10, size=(200, 100)),
    digits=NMFInstance("digits", rank=10),
    lr_grid=tuple(np.geomspace(3e-4, 3e-2, 6)),
    budget=TUNING_BUDGET,
)
QUICK = Config(
    n_steps=100,
    noise_levels=(0.0, 5.0),
    train_seeds=(0,),
    eval_seeds=(100, 101),
    synthetic=NMFInstance("synthetic", rank=6, size=(80, 50)),
    digits=NMFInstance("digits", rank=10, size=300),
    lr_grid=tuple(np.geomspace(1e-3, 1e-2, 2)),
    budget=4,
)


SHAPES: dict[str, tuple[Any, ...]] = {
    "step": ((0.3, 2), (0.1, 2), (0.5, 3), (0.5, 6), (0.1, 1)),
    "exponential": (0.1, 0.01, 0.3, 0.03, 0.003),
    "inverse_time": (9.0, 99.0, 2.0, 29.0, 299.0),
    "cosine": (0.0, 0.01, 0.1, 0.03, 0.3),
}
"""Second parameter per schedule, relative to the budget ``n``, in the order the grid uses them.

``step``: (factor, number of drops per run), so ``every = ceil(n / (drops + 1))``: the drops split
the run into ``drops + 1`` near-equal parts, all within the budget when ``n >= (drops + 1) ** 2``
(``n // drops`` put the last one at the very end, where it has no effect). The LR left at the
end, ``factor ** drops``, is 0.09 and 0.01 for the first two shapes, as for the first two of
exponential, 1/t and cosine, so a small grid of every family spans the same decay range;
``exponential``: the
fraction of the initial LR left at the end; ``inverse_time``: ``decay * n`` (the LR ends at
``lr / (1 + decay * n)``); ``cosine``: ``min_lr / lr``."""


def tuning_grid(
    n_steps: int, lr_grid: tuple[float, ...], budget: int, *, step_budget: int | None = None
) -> dict[str, list[dict[str, Any]]]:
    """``budget`` parameter sets per schedule: each LR of ``lr_grid`` times ``budget / len(lr_grid)`` shapes.

    The shapes (:data:`SHAPES`) are set relative to the number of steps, so the same grid makes
    sense for any ``n_steps``. Constant and follow-the-bound have one parameter, so they get
    ``budget`` values over the same range instead. ``step_budget`` gives step decay a larger
    grid (e.g. to match the compute of a learned schedule); default ``budget``.
    """
    n, lrs = n_steps, tuple(lr_grid)
    step_budget = budget if step_budget is None else step_budget
    shapes = {}
    for name, b in (("budget", budget), ("step_budget", step_budget)):
        k, rest = divmod(b, len(lrs))
        if rest or not 1 <= k <= len(SHAPES["step"]):
            raise ValueError(
                f"{name} must be len(lr_grid) times 1..{len(SHAPES['step'])}, "
                f"got {b} for {len(lrs)} learning rates."
            )
        shapes[name] = k
    k, k_step = shapes["budget"], shapes["step_budget"]
    fine = np.geomspace(min(lrs), max(lrs), budget)
    pairs = [(lr, i) for lr in lrs for i in range(k)]
    grid = {
        "constant": [{"lr": lr} for lr in fine],
        "step": [
            {"lr": lr, "factor": factor, "every": math.ceil(n / (drops + 1))}
            for lr in lrs
            for factor, drops in SHAPES["step"][:k_step]
        ],
        "exponential": [
            {"lr": lr, "gamma": SHAPES["exponential"][i] ** (1 / n)} for lr, i in pairs
        ],
        "inverse_time": [{"lr": lr, "decay": SHAPES["inverse_time"][i] / n} for lr, i in pairs],
        "cosine": [
            {"lr": lr, "total_steps": n, "min_lr": SHAPES["cosine"][i] * lr} for lr, i in pairs
        ],
        "follow_bound": [{"fraction": f} for f in np.geomspace(0.25, 4.0, budget)],
    }
    return {name: [{k: _plain(v) for k, v in p.items()} for p in ps] for name, ps in grid.items()}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _params_key(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


# ---------------------------------------------------------------------------------- stages
def tune(config: Config, out: Path, **sweep: Any) -> dict[str, dict[str, dict]]:
    """Best parameters per setting and schedule, by mean final loss over the training seeds.

    ``sweep`` is passed on to :func:`run_sweep` (``jobs``/``backend``, ``quiet``), as in the other
    stages.
    """
    specs = [
        NMFRunSpec(replace(template, seed=seed), name, _params_key(params), config.n_steps)
        for template in config.settings().values()
        for name, options in tuning_grid(config.n_steps, config.lr_grid, config.budget).items()
        for params in options
        for seed in config.train_seeds
    ]
    records = run_sweep(run_nmf, specs, out / "tune.jsonl", **sweep)
    losses: dict[tuple[str, str, tuple], list[float]] = defaultdict(list)
    for rec in records:
        spec = rec["spec"]
        ok = rec["status"] == "ok"
        loss = float(rec["result"]["final_loss"]) if ok else math.inf
        setting = _setting_name(spec["instance"])
        losses[(setting, spec["schedule"], _params_key(dict(spec["params"])))].append(loss)
    best: dict[str, dict[str, dict]] = defaultdict(dict)
    for (setting, name, params), values in losses.items():
        score = float(np.mean(values))
        if name not in best[setting] or score < best[setting][name]["train_mean_final_loss"]:
            best[setting][name] = {"params": dict(params), "train_mean_final_loss": score}
    return best


def _setting_name(instance: dict[str, Any]) -> str:
    return f"{instance['dataset']}/noise={float(instance['noise_std']):g}"


def evaluate(config: Config, best: dict, out: Path, **sweep: Any) -> list[dict]:
    """Run every tuned schedule on the held-out seeds, keeping curves."""
    specs = [
        NMFRunSpec(
            replace(template, seed=seed),
            name,
            _params_key(best[setting][name]["params"]),
            config.n_steps,
            curves=True,
        )
        for setting, template in config.settings().items()
        for name in best[setting]
        for seed in config.eval_seeds
    ]
    return run_sweep(run_nmf, specs, out / "eval.jsonl", **sweep)


def sklearn_reference(config: Config, out: Path, **sweep: Any) -> list[dict]:
    specs = [SklearnRunSpec(replace(config.digits, seed=seed)) for seed in config.eval_seeds]
    return run_sweep(run_sklearn, specs, out / "sklearn.jsonl", **sweep)


# ---------------------------------------------------------------------------------- summary
def summarise(config: Config, best: dict, eval_records: list[dict], sk_records: list[dict]) -> dict:
    """Per setting and schedule: final / 25% / 50% relative error, steps to target, wins vs step.

    The SGD schedule compared with scikit-learn (digits, exact gradients) is the one with the
    lowest tuning score (mean final loss on the training seeds), not the best on the held-out
    seeds, so that the comparison does not select on its own test data.
    """
    runs: dict[str, dict[str, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for rec in eval_records:
        if rec["status"] != "ok":
            raise RuntimeError(f"evaluation run {rec['spec_id']} failed: {rec['error']['message']}")
        spec = rec["spec"]
        runs[_setting_name(spec["instance"])][spec["schedule"]][spec["instance"]["seed"]] = rec[
            "result"
        ]
    n = config.n_steps
    summary: dict[str, Any] = {"config": _config_dict(config), "settings": {}}
    for setting, by_schedule in runs.items():
        finals = {
            name: [float(r["final_rel_error"]) for r in rs.values()]
            for name, rs in by_schedule.items()
        }
        best_mean = min(np.mean(v) for v in finals.values() if np.all(np.isfinite(v)))
        target = 1.02 * best_mean
        rows = {}
        for name, by_seed in by_schedule.items():
            curves = [np.asarray(r["rel_errors"], dtype=float) for r in by_seed.values()]
            rows[name] = {
                "params": best[setting][name]["params"],
                "final_rel_error": mean_ci(finals[name]),
                "rel_error_at_25pct": mean_ci([value_at(c, n // 4) for c in curves]),
                "rel_error_at_50pct": mean_ci([value_at(c, n // 2) for c in curves]),
                "steps_to_target": steps_to_target(curves, target),
                "diverged": sum(bool(r["diverged"]) for r in by_seed.values()),
                "win_rate_vs_step": _win_rate(by_schedule, name, "step"),
                "wall_time_s": mean_ci([float(r["wall_time_s"]) for r in by_seed.values()]),
            }
        summary["settings"][setting] = {"target_rel_error": target, "schedules": rows}
    if sk_records:
        digits_exact = f"digits/noise={0.0:g}"
        sk = [r["result"] for r in sk_records if r["status"] == "ok"]
        reference = {
            "sklearn_rel_error": mean_ci([r["final_rel_error"] for r in sk]),
            "sklearn_wall_time_s": mean_ci([r["wall_time_s"] for r in sk]),
            "sklearn_n_iter": mean_ci([r["n_iter"] for r in sk]),
        }
        if digits_exact in summary["settings"]:
            rows = summary["settings"][digits_exact]["schedules"]
            tuned = best[digits_exact]
            name = min(rows, key=lambda s: tuned[s]["train_mean_final_loss"])
            reference |= {
                "best_sgd_schedule": name,
                "sgd_rel_error": rows[name]["final_rel_error"],
                "sgd_wall_time_s": rows[name]["wall_time_s"],
                "ratio": rows[name]["final_rel_error"]["mean"]
                / reference["sklearn_rel_error"]["mean"],
            }
        summary["sklearn_reference"] = reference
    return summary


def value_at(curve: np.ndarray, step: int) -> float:
    """``curve[step]``, or ``inf`` when the run diverged before ``step``."""
    return float(curve[step]) if step < len(curve) else math.inf


def steps_to_target(curves: list[np.ndarray], target: float) -> dict[str, Any]:
    """Mean steps to reach ``target`` over the seeds that reach it, and how many do."""
    hits = [int(np.argmax(c <= target)) for c in curves if np.any(c <= target)]
    return {
        "mean": float(np.mean(hits)) if hits else math.inf,
        "reached": len(hits),
        "n": len(curves),
    }


def _win_rate(by_schedule: dict[str, dict[int, dict]], name: str, reference: str) -> float | None:
    if reference not in by_schedule or name == reference:
        return None
    ref = by_schedule[reference]
    wins = [
        float(r["final_rel_error"]) < float(ref[seed]["final_rel_error"])
        for seed, r in by_schedule[name].items()
        if seed in ref
    ]
    return float(np.mean(wins)) if wins else None


def _config_dict(config: Config) -> dict[str, Any]:
    d = asdict(config)
    d["tuning_grid"] = tuning_grid(config.n_steps, config.lr_grid, config.budget)
    return d


def row_cells(row: dict) -> list[str]:
    """Table cells of a schedule's summary row: final, 25% and 50% error, steps to target, wins."""
    reach = row["steps_to_target"]
    steps = (
        f"{reach['mean']:.0f} ({reach['reached']}/{reach['n']})" if reach["reached"] else "never"
    )
    win = row["win_rate_vs_step"]
    return [
        format_mean_ci(row["final_rel_error"]),
        format_mean_ci(row["rel_error_at_25pct"]),
        format_mean_ci(row["rel_error_at_50pct"]),
        steps,
        "—" if win is None else f"{100 * win:.0f}%",
    ]


def markdown_table(summary: dict) -> str:
    """The results table of the README: relative error (mean ± 95% CI over held-out seeds)."""
    lines = []
    n = summary["config"]["n_steps"]
    for setting, block in summary["settings"].items():
        lines += [
            f"**{setting}** ({n} steps, target = {block['target_rel_error']:.4f})",
            "",
            "| schedule | final rel. error | at 25% | at 50% | steps to target | wins vs step | diverged |",
            "|---|---|---|---|---|---|---|",
        ]
        rows = block["schedules"]
        for name in sorted(rows, key=lambda s: rows[s]["final_rel_error"]["mean"]):
            r = rows[name]
            lines.append(f"| {name} | " + " | ".join(row_cells(r)) + f" | {r['diverged']} |")
        lines.append("")
    ref = summary.get("sklearn_reference")
    if ref and "best_sgd_schedule" in ref:
        lines += [
            "**digits, exact gradients: SGD schedule chosen by training score vs scikit-learn `NMF(solver='cd')`**",
            "",
            "| method | rel. error | wall time (s) |",
            "|---|---|---|",
            f"| SGD, {ref['best_sgd_schedule']} ({n} steps) | {format_mean_ci(ref['sgd_rel_error'])} | "
            f"{format_mean_ci(ref['sgd_wall_time_s'], 3)} |",
            f"| scikit-learn cd ({ref['sklearn_n_iter']['mean']:.0f} iterations) | "
            f"{format_mean_ci(ref['sklearn_rel_error'])} | {format_mean_ci(ref['sklearn_wall_time_s'], 3)} |",
            "",
            f"SGD / scikit-learn relative error: {ref['ratio']:.4f}",
            "",
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> dict:
    args, out = parse_pipeline_args("nmf", __doc__.split("\n")[0], argv)
    config = QUICK if args.quick else FULL
    start = time.perf_counter()
    sweep = sweep_options(args)
    best = tune(config, out, **sweep)
    eval_records = evaluate(config, best, out, **sweep)
    sk_records = sklearn_reference(config, out, **sweep)
    summary = summarise(config, best, eval_records, sk_records)
    from experiments import plots

    plots.nmf_figures(eval_records, out)
    return finish(args, out, summary, markdown_table(summary), start)


if __name__ == "__main__":
    main()
