"""Figures of the NMF study, drawn only from saved result records (never from live runs)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from experiments.common.plotting import grid, moving_average, save
from experiments.common.time_to_target import plot_profiles
from experiments.nmf.config import cell_name
from experiments.nmf.report import schedule_label

STYLE: dict[str, dict[str, Any]] = {
    "learned_relative_40epochs": {"color": "black", "lw": 2.2},
    "learned_relative": {"color": "tab:gray", "lw": 1.8, "ls": "--"},
    "learned": {"color": "dimgray", "lw": 1.8},
    "learned_multiplicative_shield1.0": {"color": "tab:brown", "lw": 1.8, "ls": "--"},
    "learned_multiplicative": {"color": "tab:olive", "lw": 1.8, "ls": "-."},
    "learned_certified": {"color": "tab:pink", "lw": 1.8, "ls": "--"},
    "learned_noise": {"color": "tab:cyan", "lw": 1.8, "ls": ":"},
    "follow_bound": {"color": "tab:purple"},
    "step": {"color": "tab:red"},
    "constant": {"color": "tab:gray"},
    "exponential": {"color": "tab:orange"},
    "inverse_time": {"color": "tab:green"},
    "cosine": {"color": "tab:blue"},
}


def _curves_by_setting(records: list[dict], key: str) -> dict[str, dict[str, list[np.ndarray]]]:
    curves: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        if rec["status"] != "ok" or key not in rec["result"]:
            continue
        curves[cell_name(rec["spec"]["instance"])][schedule_label(rec)].append(
            np.asarray(rec["result"][key], dtype=float)
        )
    return curves


def nmf_figures(summary: dict, records: list[dict], out: Path) -> list[Path]:
    """``loss_curves.png``, ``lr_curves.png`` and ``time_to_target.png`` for the NMF schedule
    comparison."""
    out = Path(out)
    return [
        loss_curves(records, out / "loss_curves.png"),
        lr_curves(records, out / "lr_curves.png"),
        time_to_target(summary["time_to_target"], out / "time_to_target.png"),
    ]


def time_to_target(block: dict, path: Path, *, highlight: tuple[str, ...] = ()) -> Path:
    """Performance profiles of a summary's ``time_to_target`` block: in steps and in seconds."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    n = len(block["problems"])
    for ax, unit in zip(axes, ("steps", "seconds"), strict=True):
        title = f"time to target in {unit} ({n} held-out problems)"
        colors = {m: style["color"] for m, style in STYLE.items()}
        plot_profiles(ax, block["profiles"][unit], highlight=highlight, title=title, colors=colors)
        ax.grid(alpha=0.3)
    return save(fig, Path(path))


def loss_curves(records: list[dict], path: Path) -> Path:
    """Relative error per step, one panel per setting: medians over held-out runs, IQR shaded.

    Runs that diverged end early and are drawn as far as they went.
    """
    losses = _curves_by_setting(records, "rel_errors")
    fig, axes = grid(len(losses))
    for ax, (setting, by_schedule) in zip(axes, sorted(losses.items()), strict=False):
        for name, curves in sorted(by_schedule.items()):
            length = min(len(c) for c in curves)
            stack = np.vstack([c[:length] for c in curves])
            median = np.median(stack, axis=0)
            ax.plot(median, label=name, **STYLE.get(name, {}))
            lo, hi = np.percentile(stack, [25, 75], axis=0)
            ax.fill_between(
                np.arange(length), lo, hi, alpha=0.15, color=STYLE.get(name, {}).get("color")
            )
        ax.set(title=setting, xlabel="step", ylabel="relative error", yscale="log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return save(fig, Path(path))


def lr_curves(records: list[dict], path: Path) -> Path:
    """The learning rate of the first held-out run of every schedule, with its bounds (dotted)."""
    lrs = _curves_by_setting(records, "lrs")
    bounds = _curves_by_setting(records, "bounds")
    fig, axes = grid(len(lrs))
    for ax, (setting, by_schedule) in zip(axes, sorted(lrs.items()), strict=False):
        for name, curves in sorted(by_schedule.items()):
            ax.plot(curves[0], label=name, **STYLE.get(name, {}))
            bound = bounds[setting].get(name, [np.array([])])[0]
            if np.isfinite(bound).any():
                ax.plot(
                    bound,
                    ls=":",
                    color=STYLE.get(name, {}).get("color"),
                    label=f"bound ({name} run)",
                )
        ax.set(title=setting, xlabel="step", ylabel="learning rate", yscale="log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return save(fig, Path(path))


def rl_figures(
    summary: dict, baseline: list[dict], learned: list[dict], agents: list[dict], out: Path
) -> list[Path]:
    """Figures of the learned-schedule experiment under ``out``.

    ``loss_curves.png`` (every schedule on the held-out set), ``agent_lrs.png`` (the learned
    rates next to the bound of every iterate, with tuned step decay for scale),
    ``training_curve.png`` (PPO episode returns), ``benchmark.png`` (environment throughput and
    PPO training time) and ``time_to_target.png`` (performance profiles, learned variants in
    bold).
    """
    out = Path(out)
    variants = tuple(summary["config"]["variants"])
    return [
        time_to_target(summary["time_to_target"], out / "time_to_target.png", highlight=variants),
        loss_curves(baseline + learned, out / "loss_curves.png"),
        agent_lrs(baseline, learned, out / "agent_lrs.png"),
        training_curve(agents, out, out / "training_curve.png"),
        rl_benchmark(summary, agents, out / "benchmark.png"),
    ]


def agent_lrs(baseline: list[dict], learned: list[dict], path: Path) -> Path:
    """Per setting, the first held-out instance: learned rates (PPO seed 0) and their bounds."""
    first: dict[str, int] = {}
    for rec in learned:
        first.setdefault(cell_name(rec["spec"]["instance"]), rec["spec"]["instance"]["seed"])
    chosen = [
        r
        for r in baseline + learned
        if r["spec"]["instance"]["seed"] in first.values()
        and (
            schedule_label(r) == "step"
            or ("agent" in r["spec"] and r["spec"]["agent"]["seed"] == 0)
        )
    ]
    by_setting = _curves_by_setting(chosen, "lrs")
    bounds = _curves_by_setting(chosen, "bounds")
    fig, axes = grid(len(by_setting))
    for ax, (setting, by_name) in zip(axes, sorted(by_setting.items()), strict=False):
        for name, (lrs,) in sorted(by_name.items()):
            style = STYLE.get(name, {})
            ax.plot(lrs, label=f"{name} (tuned)" if name == "step" else name, **style)
            if name != "step":
                ax.plot(bounds[setting][name][0], ls=":", color=style.get("color"), lw=1)
        ax.set(title=setting, xlabel="step", ylabel="learning rate", yscale="log")
        ax.grid(alpha=0.3)
    axes[0].plot([], [], ls=":", color="gray", label="bound of each iterate")
    axes[0].legend(fontsize=7)
    return save(fig, Path(path))


def training_curve(agents: list[dict], root: Path, path: Path) -> Path:
    """PPO episode returns against environment steps, relative to each instance's mean return.

    The return (log of initial / final loss) differs far more between instances than between
    policies, so each episode's return is shown minus the mean return of all the agent's
    training episodes on the same instance: what is left is the policy's progress.
    """
    from rl_scheduler.agent import load_training_curve

    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    for rec in sorted(agents, key=lambda r: (r["spec"]["variant"], r["spec"]["seed"])):
        variant, seed = rec["spec"]["variant"], rec["spec"]["seed"]
        episodes = load_training_curve(Path(root) / Path(rec["result"]["model"]).parent)
        if not episodes:
            continue
        t = np.array([e["timesteps"] for e in episodes], dtype=float)
        r = np.array([float(e["return"]) for e in episodes])
        instance = np.array([e.get("instance_index", -1) for e in episodes])
        for i in np.unique(instance):
            r[instance == i] -= r[instance == i].mean()
        window = max(1, len(r) // 20)
        smooth = moving_average(r, window)
        style = STYLE.get(variant, {})
        ax.plot(
            t[window - 1 :],
            smooth,
            color=style.get("color"),
            ls=style.get("ls", "-"),
            alpha=0.9,
            label=f"{variant} (seed {seed})" if seed == 0 else None,
        )
    ax.axhline(0.0, color="gray", lw=0.8)
    ax.set(
        xlabel="environment steps (actions)",
        ylabel="return minus the instance's mean\n(moving mean over 5% of episodes)",
        title="PPO training on the train instances",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, Path(path))


def rl_benchmark(summary: dict, agents: list[dict], path: Path) -> Path:
    """Environment steps per second (single and vectorised) and PPO training time per agent."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    rates = summary["env_steps_per_s"]
    left.bar(list(rates), list(rates.values()), color="tab:blue")
    left.set(ylabel="environment steps / s", title="rl_scheduler/NMF-v0 throughput")
    runs = sorted(agents, key=lambda r: (r["spec"]["variant"], r["spec"]["seed"]))
    labels = [f"{r['spec']['variant']}\nseed {r['spec']['seed']}" for r in runs]
    right.bar(labels, [r["result"]["train_time_s"] for r in runs], color="tab:gray")
    steps = runs[0]["result"]["timesteps"] if runs else 0
    right.set(ylabel="seconds", title=f"PPO training time ({steps} steps each)")
    right.tick_params(axis="x", labelsize=7)
    for ax in (left, right):
        ax.grid(alpha=0.3, axis="y")
    return save(fig, Path(path))
