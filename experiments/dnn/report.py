"""The DNN study's ``summary.json`` and ``table.md``, from the train and held-out records."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict
from typing import Any

import numpy as np

from experiments.common.stats import format_mean_ci, mean_ci
from experiments.dnn.config import (
    AGENT,
    GREEDY_CONFIG,
    PLATEAU_CONFIG,
    RANDOM_SEARCH,
    STEP_MILESTONES,
    TARGET_SLACK,
    TRANSFER,
    Config,
    default_lr,
)


def _steps_to(results: list[dict], target: float, key: str) -> dict[str, Any]:
    """Mean steps (or seconds) until the validation loss first reaches ``target``."""
    hits = []
    for r in results:
        vals = np.asarray(r["val_loss"], dtype=float)
        reached = np.flatnonzero(vals <= target)
        if len(reached):
            hits.append(float(r[key][int(reached[0])]))
    return {
        "mean": float(np.mean(hits)) if hits else math.inf,
        "reached": len(hits),
        "n": len(results),
    }


def _method_row(results: list[dict], target: float) -> dict[str, Any]:
    lrs = [lr for r in results for lr in r["lrs"]]
    return {
        "final_val_loss": mean_ci([r["final_val_loss"] for r in results]),
        "final_metric": mean_ci([r["final_metric"] for r in results]),
        "final_train_loss": mean_ci([r["final_train_loss"] for r in results]),
        "steps_to_target": _steps_to(results, target, "steps"),
        "time_to_target_s": _steps_to(results, target, "time_s"),
        "diverged": sum(bool(r["diverged"]) for r in results),
        "n": len(results),
        "lr_min": float(min(lrs)) if lrs else math.nan,
        "lr_max": float(max(lrs)) if lrs else math.nan,
        "wall_time_s": mean_ci([r["wall_time_s"] for r in results]),
    }


def summarise(
    config: Config, trained: dict[str, Any], evaluated: list[tuple[str, str, dict]]
) -> dict:
    """Per task and method: held-out numbers, the compute spent to obtain the method, and the
    cost-quality points of random search and the agent."""
    failed = [rec["spec_id"] for _, _, rec in evaluated if rec["status"] != "ok"]
    results: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for task, method, rec in evaluated:
        if rec["status"] == "ok":
            results[task][method].append(rec["result"])
    summary: dict[str, Any] = {"config": _config_dict(config), "failed_runs": failed, "tasks": {}}
    for task_spec in config.tasks:
        name = task_spec.name
        runs = results[name]
        budget = task_spec.budget
        agent_info = trained["agents"][name]
        final_ckpt = f"{AGENT}@{agent_info['checkpoints'][-1]['timesteps']}"
        hpo = trained["random_search"][name]
        final_hpo = f"{RANDOM_SEARCH}@{hpo[-1]['trials']}"
        means = {m: mean_ci([r["final_val_loss"] for r in rs])["mean"] for m, rs in runs.items()}
        best_mean = min((v for v in means.values() if math.isfinite(v)), default=math.inf)
        target = TARGET_SLACK * best_mean
        grid_compute = config.grid_size * len(config.tune_seeds(task_spec)) * budget
        rows: dict[str, dict] = {}
        for method, best in trained["baselines"][name].items():
            optimizer, schedule = method.split("/")
            rows[method] = _method_row(runs[method], target) | {
                "optimizer": optimizer,
                "schedule": schedule,
                "lr": best["lr"],
                "compute_steps": grid_compute,
                "search_wall_time_s": best["search_wall_time_s"],
            }
        rows[RANDOM_SEARCH] = (
            _method_row(runs[final_hpo], target)
            | {k: hpo[-1][k] for k in ("optimizer", "schedule", "lr", "trials")}
            | {
                "compute_steps": hpo[-1]["trials"] * budget,
                "search_wall_time_s": hpo[-1]["search_wall_time_s"],
            }
        )
        agent_compute = agent_info["timesteps"] * task_spec.steps_per_action
        rows[AGENT] = _method_row(runs[final_ckpt], target) | {
            "optimizer": "sgd",
            "schedule": AGENT,
            "lr": default_lr(task_spec),
            "agent": agent_info["checkpoints"][-1]["path"],
            "compute_steps": agent_compute,
            "search_wall_time_s": agent_info["train_time_s"],
            "training_episodes": agent_info["episodes"],
            "training_diverged_episodes": agent_info["diverged_episodes"],
        }
        others = [o for o in trained["agents"] if o != name]
        if others and runs.get(TRANSFER):
            rows[TRANSFER] = _method_row(runs[TRANSFER], target) | {
                "optimizer": "sgd",
                "schedule": AGENT,
                "lr": default_lr(task_spec),
                "agent": trained["agents"][others[0]]["model"],
                "source": others[0],
                "compute_steps": 0,
                "source_compute_steps": trained["agents"][others[0]]["timesteps"]
                * config.task(others[0]).steps_per_action,
                "search_wall_time_s": 0.0,
            }
        cost_quality = {
            RANDOM_SEARCH: [
                {
                    "trials": s["trials"],
                    "optimizer": s["optimizer"],
                    "schedule": s["schedule"],
                    "lr": s["lr"],
                    "compute_steps": s["trials"] * budget,
                    "final_val_loss": mean_ci(
                        [r["final_val_loss"] for r in runs[f"{RANDOM_SEARCH}@{s['trials']}"]]
                    ),
                }
                for s in hpo
            ],
            AGENT: [
                {
                    "timesteps": c["timesteps"],
                    "agent": c["path"],
                    "compute_steps": c["timesteps"] * task_spec.steps_per_action,
                    "final_val_loss": mean_ci(
                        [r["final_val_loss"] for r in runs[f"{AGENT}@{c['timesteps']}"]]
                    ),
                }
                for c in agent_info["checkpoints"]
            ],
        }
        summary["tasks"][name] = {
            "metric": "val_accuracy" if name == "vision" else "val_perplexity",
            "budget_steps": budget,
            "target_val_loss": target,
            "methods": rows,
            "cost_quality": cost_quality,
            "agent_training": {
                k: agent_info[k]
                for k in (
                    "timesteps",
                    "episodes",
                    "diverged_episodes",
                    "train_time_s",
                    "returns",
                    "episode_timesteps",
                )
            },
        }
    return summary


def _config_dict(config: Config) -> dict[str, Any]:
    d = asdict(config)
    d["grids"] = {t.name: {o: config.grid(t, o) for o in config.optimizers} for t in config.tasks}
    d["n_trials"] = {t.name: config.n_trials(t) for t in config.tasks}
    d["plateau_config"] = PLATEAU_CONFIG
    d["greedy_config"] = GREEDY_CONFIG
    d["step_milestones"] = list(STEP_MILESTONES)
    return d


METHOD_LABELS = {
    AGENT: "PPO agent (learned schedule)",
    TRANSFER: "PPO agent trained on the other task",
    RANDOM_SEARCH: "random search (agent's compute)",
}


def method_label(method: str) -> str:
    if method in METHOD_LABELS:
        return METHOD_LABELS[method]
    optimizer, schedule = method.split("/")
    names = {"sgd": "SGD", "adam": "Adam"}
    return f"{names[optimizer]} + {schedule}"


def _sort_key(value: float) -> float:
    return value if not math.isnan(value) else math.inf


def _reach(r: dict[str, Any], digits: int) -> str:
    if not r["reached"]:
        return "never"
    return f"{r['mean']:.{digits}f} ({r['reached']}/{r['n']})"


def markdown_table(summary: dict) -> str:
    """One table per task: held-out numbers of every method, best final validation loss first."""
    lines: list[str] = []
    for name, block in summary["tasks"].items():
        metric = "val. accuracy" if block["metric"] == "val_accuracy" else "val. perplexity"
        lines += [
            f"**{name}** ({block['budget_steps']} steps per run; target val. loss "
            f"{block['target_val_loss']:.4f}; mean ± 95% CI over held-out seeds)",
            "",
            f"| method | setting | compute (steps) | final val. loss | {metric} | steps to target "
            "| seconds to target | diverged |",
            "|---|---|---|---|---|---|---|---|",
        ]
        rows = block["methods"]
        for method in sorted(rows, key=lambda m: _sort_key(rows[m]["final_val_loss"]["mean"])):
            r = rows[method]
            if r["schedule"] == AGENT:
                setting = f"SGD, starts at {r['lr']:g}"
            else:
                setting = f"{r['optimizer']}, {r['schedule']}, lr {r['lr']:g}"
            compute = (
                f"0 (trained on {r['source']})" if method == TRANSFER else f"{r['compute_steps']:,}"
            )
            lines.append(
                f"| {method_label(method)} | {setting} | {compute} | "
                f"{format_mean_ci(r['final_val_loss'])} | "
                f"{format_mean_ci(r['final_metric'], 3)} | {_reach(r['steps_to_target'], 0)} | "
                f"{_reach(r['time_to_target_s'], 2)} | {r['diverged']}/{r['n']} |"
            )
        a = rows[AGENT]
        lines += [
            "",
            f"Agent: {a['compute_steps']:,} optimizer steps of PPO training "
            f"({a['training_episodes']} episodes, {a['training_diverged_episodes']} diverged, "
            f"{a['search_wall_time_s']:.0f} s); its held-out learning rates stayed in "
            f"[{a['lr_min']:.3g}, {a['lr_max']:.3g}] (start {a['lr']:g}). Random search: "
            f"{rows[RANDOM_SEARCH]['trials']} trials ({rows[RANDOM_SEARCH]['search_wall_time_s']:.0f} s).",
            "",
            "Cost vs quality (held-out final val. loss after that much compute on the training seeds):",
            "",
            "| compute (steps) | random search | PPO agent |",
            "|---|---|---|",
        ]
        cq = block["cost_quality"]
        points: dict[int, dict[str, str]] = defaultdict(dict)
        for p in cq[RANDOM_SEARCH]:
            points[p["compute_steps"]]["rs"] = format_mean_ci(p["final_val_loss"])
        for p in cq[AGENT]:
            points[p["compute_steps"]]["agent"] = format_mean_ci(p["final_val_loss"])
        for steps in sorted(points):
            lines.append(
                f"| {steps:,} | {points[steps].get('rs', '')} | {points[steps].get('agent', '')} |"
            )
        lines.append("")
    return "\n".join(lines)
