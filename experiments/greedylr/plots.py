"""Figures of the GreedyLR study, drawn only from saved result records (never from live runs).

:func:`greedylr_figures` writes, into the output folder:

* ``lr_schedules.png`` -- the learning rate GreedyLR produces next to linear, constant and cosine
  (SGD, seed 0, one panel per workload);
* ``hypergradient.png`` -- evaluated training loss (top) and learning rates (bottom) of GreedyLR,
  the SGD baseline (constant rate), hypergradient descent per parameter (one rate per weight)
  and per group (one rate per layer) -- their mean rate over the weights, dashed and dotted with
  markers so that coinciding curves stay visible -- and stochastic line search (SGD, mean over
  seeds);
* ``factor_sweep.png`` -- GreedyLR's evaluated training loss for each factor ``F``;
* ``robustness.png`` -- mean final loss against the noise level, gradient noise and loss noise
  (95% confidence intervals are in ``table.md``);
* ``scoring.png`` -- the four labels per stage, tuned protocol and paper protocol, with the
  paper's "as good or better" share;
* ``time_to_target.png`` -- performance profiles of time to target (steps, seconds) per
  optimizer family, GreedyLR highlighted (:mod:`experiments.greedylr.speed`).

The curves are the tuned protocol's held-out runs (each schedule at its tuned starting rate).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from experiments.common.plotting import grid, mean_curve, save
from experiments.common.time_to_target import plot_profiles
from experiments.greedylr.config import GREEDY_CONFIG, LABELS, PAPER_SHARES

STYLE: dict[str, dict[str, Any]] = {
    "greedy": {"color": "black", "lw": 2.0, "label": "GreedyLR"},
    "constant": {"color": "tab:gray", "label": "constant (SGD baseline)"},
    "linear": {"color": "tab:green", "label": "linear"},
    "cosine": {"color": "tab:blue", "label": "cosine"},
    "hd_parameter": {
        "color": "tab:red",
        "ls": "--",
        "marker": "v",
        "markevery": 0.1,
        "zorder": 3,
        "label": "hypergradient, per parameter (one rate per weight)",
    },
    "hd_group": {
        "color": "tab:orange",
        "ls": ":",
        "marker": "^",
        "markevery": 0.1,
        "zorder": 3,
        "label": "hypergradient, per group (one group per layer)",
    },
    "sls": {"color": "tab:purple", "label": "stochastic line search"},
}
ROBUST_STYLE = {
    "greedy (raw)": {"color": "tab:gray", "ls": "--", "marker": "o"},
    "greedy (smoothed)": {"color": "black", "marker": "s"},
    "cosine": {"color": "tab:blue", "marker": "^"},
}
LABEL_COLORS = {
    "clearly better": "#1a9641",
    "slightly better": "#a6d96a",
    "slightly worse": "#fdae61",
    "clearly worse": "#d7191c",
}


def _runs(records: list[dict], **match: Any) -> dict[tuple[str, str], list[dict]]:
    """(workload, scheduler) -> results of ok records whose spec matches ``match``."""
    out: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for rec in records:
        if rec["status"] != "ok":
            continue
        s = rec["spec"]
        if all(s.get(k) == v for k, v in match.items()):
            out[(s["workload"], s["scheduler"])].append(rec)
    return out


def lr_schedules(records: list[dict], out: Path) -> Path:
    """LR traces of GreedyLR next to linear, constant and cosine (SGD, first seed)."""
    runs = _runs(records, optimizer="sgd", greedy=[], grad_noise=0.0, loss_noise=0.0)
    workloads = sorted({w for w, _ in runs})
    fig, axes = grid(max(1, len(workloads)))
    for ax, w in zip(axes, workloads, strict=False):
        for name in ("constant", "linear", "cosine", "greedy"):
            recs = sorted(runs.get((w, name), []), key=lambda r: r["spec"]["seed"])
            if recs:
                ax.plot(np.asarray(recs[0]["result"]["lr"], dtype=float), **STYLE[name])
        ax.set(title=f"{w} (SGD, seed {recs[0]['spec']['seed'] if recs else 0})", xlabel="step")
        ax.set(ylabel="learning rate", yscale="log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return save(fig, out / "lr_schedules.png")


def hypergradient(records: list[dict], out: Path) -> Path:
    """Loss and LR histories: GreedyLR vs constant SGD vs hypergradient descent vs SLS."""
    runs = _runs(records, optimizer="sgd", greedy=[], grad_noise=0.0, loss_noise=0.0)
    workloads = sorted({w for w, _ in runs})
    names = ("constant", "hd_parameter", "hd_group", "sls", "greedy")
    n = max(1, len(workloads))
    fig, axes = plt.subplots(
        2, n, figsize=(4.2 * n, 6.4), squeeze=False, layout="constrained", sharex="col"
    )
    for j, w in enumerate(workloads):
        for name in names:
            recs = runs.get((w, name), [])
            if not recs:
                continue
            steps = recs[0]["result"]["eval_steps"]
            loss = mean_curve([r["result"]["train_eval_loss"] for r in recs])
            axes[0, j].plot(steps[: len(loss)], loss, **({"marker": "."} | STYLE[name]))
            axes[1, j].plot(mean_curve([r["result"]["lr"] for r in recs]), **STYLE[name])
        axes[0, j].set(title=f"{w} (SGD)", ylabel="training loss (evaluated)", yscale="log")
        axes[1, j].set(xlabel="step", ylabel="learning rate", yscale="log")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    return save(fig, out / "hypergradient.png")


def factor_sweep(factor_records: list[dict], main_records: list[dict], out: Path) -> Path:
    """Evaluated training loss over steps for each GreedyLR factor F (mean over seeds)."""
    curves: dict[str, dict[float, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for rec in factor_records:
        if rec["status"] == "ok":
            s = rec["spec"]
            curves[s["workload"]][float(dict(s["greedy"])["factor"])].append(rec["result"])
    default = _runs(main_records, optimizer="sgd", scheduler="greedy", greedy=[])
    for (w, _), recs in default.items():
        if w in curves:
            curves[w][float(GREEDY_CONFIG["factor"])] += [
                r["result"] for r in recs if not r["spec"]["grad_noise"]
            ]
    workloads = sorted(curves)
    fig, axes = grid(max(1, len(workloads)))
    cmap = plt.get_cmap("viridis")
    for ax, w in zip(axes, workloads, strict=False):
        factors = sorted(curves[w])
        for k, f in enumerate(factors):
            results = curves[w][f]
            steps = results[0]["eval_steps"]
            loss = mean_curve([r["train_eval_loss"] for r in results])
            ax.plot(
                steps[: len(loss)],
                loss,
                marker=".",
                color=cmap(k / max(1, len(factors) - 1)),
                label=f"F = {f:g}",
            )
        ax.set(title=f"{w} (SGD)", xlabel="step", ylabel="training loss", yscale="log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return save(fig, out / "factor_sweep.png")


def robustness(robust_summary: dict, out: Path) -> Path:
    """Final loss vs noise level; columns: gradient noise, loss noise; rows: workloads."""
    workloads = sorted(robust_summary)
    rows = max(1, len(workloads))
    fig, axes = plt.subplots(
        rows, 2, figsize=(9.5, 3.4 * rows), squeeze=False, layout="constrained"
    )
    for i, w in enumerate(workloads):
        for j, kind in enumerate(("gradient", "loss")):
            ax = axes[i, j]
            by_level = robust_summary[w].get(kind, {})
            levels = sorted(by_level, key=float)
            for variant, style in ROBUST_STYLE.items():
                xs, ys = [], []
                for level in levels:
                    cell = by_level[level].get(variant)
                    if cell is None:
                        continue
                    m = cell["final_loss"]["mean"]
                    xs.append(float(level))
                    ys.append(m if math.isfinite(m) else np.nan)
                if xs:
                    ax.plot(xs, ys, label=variant, **style)
            positive = [float(v) for v in levels if float(v) > 0]
            if positive:
                ax.set_xscale("symlog", linthresh=min(positive))
            ax.set(
                title=f"{w}: noise on the {'gradients' if kind == 'gradient' else 'loss the scheduler sees'}",
                xlabel="sigma (relative)",
                ylabel="final training loss (mean over seeds)",
                yscale="log",
            )
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    return save(fig, out / "robustness.png")


def scoring(summary: dict, out: Path) -> Path:
    """Stacked shares of the four labels per stage and overall, with the paper's share, for the
    tuned protocol (top) and the paper protocol (bottom)."""
    rows = [
        (f"{short} {stage}", stage, t)
        for key, short in (("tuned", "tuned"), ("paper_protocol", "paper prot."))
        for stage, t in [*summary[key]["scoring"]["by_stage"].items()]
        + [("overall", summary[key]["scoring"]["overall"])]
    ]
    fig, ax = plt.subplots(figsize=(8.5, 5.6), layout="constrained")
    for i, (_, stage, t) in enumerate(rows):
        left = 0.0
        for label in LABELS:
            share = 100.0 * t["counts"][label] / t["n"] if t["n"] else 0.0
            ax.barh(i, share, left=left, color=LABEL_COLORS[label], label=label if i == 0 else None)
            left += share
        ax.plot(
            [PAPER_SHARES[stage]] * 2,
            [i - 0.4, i + 0.4],
            color="black",
            lw=2,
            label="paper: as good or better" if i == 0 else None,
        )
        ax.text(101, i, f"{t['share']:.1f}% (n={t['n']})", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.set(xlim=(0, 120), xlabel="% of GreedyLR-vs-baseline pairs")
    ax.invert_yaxis()
    fig.legend(fontsize=7, loc="outside lower center", ncol=5)
    return save(fig, out / "scoring.png")


def time_to_target(summary: dict, out: Path) -> Path:
    """Performance profiles: one row per optimizer family, steps (left) and seconds (right)."""
    families = summary["time_to_target"]
    fig, axes = plt.subplots(
        len(families), 2, figsize=(11, 4.2 * len(families)), squeeze=False, layout="constrained"
    )
    for row, (family, block) in zip(axes, families.items(), strict=True):
        n = block["profile_steps"]["n_problems"]
        for ax, key, unit in zip(
            row, ("profile_steps", "profile_seconds"), ("steps", "seconds"), strict=True
        ):
            title = f"{family} family: time to target in {unit} ({n} workload x seed problems)"
            plot_profiles(ax, block[key], highlight=("greedy",), title=title)
    return save(fig, out / "time_to_target.png")


def greedylr_figures(
    main_records: list[dict],
    factor_records: list[dict],
    robust_records: list[dict],
    summary: dict,
    out: Path,
) -> list[Path]:
    """Every figure of the study (see the module docstring); returns the paths written."""
    out = Path(out)
    return [
        lr_schedules(main_records, out),
        hypergradient(main_records, out),
        factor_sweep(factor_records, main_records, out),
        robustness(summary["robustness"], out),
        scoring(summary, out),
        time_to_target(summary, out),
    ]
