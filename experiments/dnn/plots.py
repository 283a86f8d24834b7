"""Figures of the deep-network study, drawn only from saved results (``eval.jsonl`` + ``summary.json``).

:func:`dnn_figures` writes, into the output folder:

* ``lr_schedules.png`` -- the agent's learning rate on every held-out run (every PPO seed) next
  to tuned cosine and step decay (SGD) and the random-search winner;
* ``val_curves.png`` -- validation loss over training (mean over held-out runs) of every method;
* ``cost_quality.png`` -- final *test* loss against the compute spent on the training seeds:
  random search after half and all of its budget, the agent at its checkpoints (all seeds), the
  ten tuned baselines;
* ``agent_training.png`` -- PPO's episode returns during training (moving average, per seed);
* ``time_to_target.png`` -- performance profiles of the time to target (steps and seconds; both
  tasks' problems together and each task), the agent in bold.

A method's held-out runs come from :func:`experiments.dnn.report.method_runs`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from experiments.common.plotting import mean_curve, moving_average, panels, save
from experiments.common.time_to_target import plot_profiles
from experiments.dnn.config import AGENT, RANDOM_SEARCH
from experiments.dnn.report import method_label

SCHEDULE_COLORS = {
    "constant": "tab:gray",
    "step": "tab:red",
    "cosine": "tab:blue",
    "plateau": "tab:purple",
    "greedy": "tab:olive",
}
STYLE: dict[str, dict[str, Any]] = {
    AGENT: {"color": "black", "lw": 2.2},
    RANDOM_SEARCH: {"color": "tab:green", "lw": 1.8},
}


PEER_COLORS = {
    "schedulefree_sgd": "tab:cyan",
    "schedulefree_adamw": "tab:cyan",
    "prodigy": "tab:pink",
    "dadapt_sgd": "tab:orange",
    "dadapt_adam": "tab:orange",
}


def _style(method: str) -> dict[str, Any]:
    if method in STYLE:
        return STYLE[method]
    if method in PEER_COLORS:  # a learning-rate-free peer: dashed
        return {"color": PEER_COLORS[method], "ls": "--", "lw": 1.4}
    optimizer, schedule = method.split("/")
    return {
        "color": SCHEDULE_COLORS.get(schedule, "tab:brown"),
        "ls": "-" if optimizer == "sgd" else ":",
        "lw": 1.2,
    }


def _flat(rows: list[list[dict | None]]) -> list[dict]:
    return [r for row in rows for r in row if r is not None]


Runs = dict[str, dict[str, list[list[dict | None]]]]


def lr_schedules(runs: Runs, out: Path) -> Path:
    """The agent's rates per held-out run next to cosine, step and random search."""
    fig, axes = panels(len(runs))
    for ax, (task, by_method) in zip(axes, runs.items(), strict=False):
        for i, r in enumerate(_flat(by_method.get(AGENT, []))):
            steps = np.asarray(r["steps"][:-1], dtype=float)
            label = method_label(AGENT) if i == 0 else None
            ax.step(steps, r["lrs"], where="post", alpha=0.8, label=label, **STYLE[AGENT])
        for method in (RANDOM_SEARCH, "sgd/cosine", "sgd/step"):
            results = _flat(by_method.get(method, []))
            if results:
                r = results[0]
                ax.step(
                    np.asarray(r["steps"][: len(r["lrs"])], dtype=float),
                    r["lrs"],
                    where="post",
                    label=method_label(method),
                    **_style(method),
                )
        ax.set(title=f"{task}: learning rate per chunk", xlabel="step", ylabel="learning rate")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, out / "lr_schedules.png")


def val_curves(runs: Runs, out: Path) -> Path:
    """Validation loss over steps (mean over held-out runs) of every method."""
    fig, axes = panels(len(runs), width=6.0, height=4.4)
    for ax, (task, by_method) in zip(axes, runs.items(), strict=False):
        for method, rows in by_method.items():
            results = _flat(rows)
            if not results:
                continue
            mean = mean_curve([r["val_loss"] for r in results])
            steps = np.asarray(results[0]["steps"][: len(mean)], dtype=float)
            ax.plot(steps, mean, label=method_label(method), **_style(method))
        ax.set(title=f"{task}: validation loss (held-out seeds)", xlabel="step")
        ax.set(ylabel="validation loss", yscale="log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    return save(fig, out / "val_curves.png")


def _point(summary_ci: dict[str, float]) -> tuple[float, float]:
    mean, ci = summary_ci["mean"], summary_ci["ci95"]
    return (mean if math.isfinite(mean) else np.nan), (ci if math.isfinite(ci) else 0.0)


def cost_quality(summary: dict, out: Path) -> Path:
    """Final test loss against compute (optimizer steps on the training seeds)."""
    tasks = summary["tasks"]
    fig, axes = panels(len(tasks))
    for ax, (task, block) in zip(axes, tasks.items(), strict=False):
        cq = block["cost_quality"]
        for method, points in ((RANDOM_SEARCH, cq[RANDOM_SEARCH]), (AGENT, cq[AGENT])):
            xs = [p["compute_steps"] for p in points]
            ys, es = zip(*(_point(p["final_test_loss"]) for p in points), strict=True)
            ax.errorbar(
                xs,
                ys,
                yerr=es,
                marker="o",
                capsize=3,
                label=method_label(method),
                color=STYLE[method]["color"],
            )
        rows = block["methods"]
        baselines = [m for m in rows if "/" in m or rows[m].get("peer")]
        for k, method in enumerate(baselines):
            y, e = _point(rows[method]["final_test_loss"])
            marker = "D" if rows[method].get("peer") else "s" if method.startswith("sgd") else "^"
            ax.errorbar(
                rows[method]["compute_steps"],
                y,
                yerr=e,
                marker=marker,
                ms=4,
                ls="none",
                alpha=0.7,
                color=_style(method)["color"],
                label="tuned baselines and peers (grid)" if k == 0 else None,
            )
        ax.set(
            title=f"{task}: cost vs quality",
            xlabel="compute: optimizer steps on training seeds",
            ylabel="final test loss (held-out seeds)",
            xscale="log",
        )
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, out / "cost_quality.png")


def agent_training(summary: dict, out: Path) -> Path:
    """PPO's episode returns (log of the training-loss reduction, against the neutral policy's
    run with ``reward_baseline="neutral"``) during training."""
    fig, ax = plt.subplots(figsize=(6.0, 3.8), layout="constrained")
    for k, (task, block) in enumerate(summary["tasks"].items()):
        for j, info in enumerate(block["agent_training"]):
            returns = np.asarray(info["returns"], dtype=float)
            if len(returns) == 0:
                continue
            steps = np.asarray(info["episode_timesteps"], dtype=float)
            color = f"C{k}"
            ax.plot(steps, returns, ".", color=color, alpha=0.2, ms=3)
            window = min(len(returns), max(2, len(returns) // 10))
            smooth = moving_average(returns, window)
            label = f"{task} (mean of {window} episodes, per seed)" if j == 0 else None
            ax.plot(steps[window - 1 :], smooth, color=color, alpha=0.8, label=label)
    ax.set(xlabel="PPO timesteps (actions)", ylabel="episode return")
    relative = summary["config"]["agent_env"].get("reward_baseline") == "neutral"
    # with reward_baseline="neutral" the return is measured against the neutral policy's run
    reference = "neutral policy's final" if relative else "initial"
    ax.set_title(f"PPO training: return = log({reference} / final training loss)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, out / "agent_training.png")


def time_to_target(summary: dict, out: Path) -> Path:
    """Performance profiles of the time to target: steps (top) and seconds (bottom), both tasks
    together and then each task; the agent highlighted."""
    blocks = {"both tasks": summary["time_to_target"]} | {
        task: block["time_to_target"] for task, block in summary["tasks"].items()
    }
    fig, axes = plt.subplots(
        2, len(blocks), figsize=(5.0 * len(blocks), 8.0), layout="constrained", squeeze=False
    )
    for col, (title, block) in enumerate(blocks.items()):
        for row, clock in enumerate(("steps", "seconds")):
            plot_profiles(
                axes[row][col],
                block[clock],
                highlight=(AGENT,),
                title=f"{title}: time to target in {clock}",
            )
    return save(fig, out / "time_to_target.png")


def dnn_figures(runs: Runs, summary: dict, out: Path) -> list[Path]:
    """Every figure of the study (see the module docstring) from :func:`method_runs`' runs."""
    out = Path(out)
    return [
        lr_schedules(runs, out),
        val_curves(runs, out),
        cost_quality(summary, out),
        agent_training(summary, out),
        time_to_target(summary, out),
    ]
