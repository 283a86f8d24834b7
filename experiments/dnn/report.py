"""The DNN study's ``summary.json`` and ``table.md``, from the train and held-out records.

Every reported quality is a **test** number: the test loss of a final model, measured once at
the end of a held-out run. Per task the agent (each PPO seed's last checkpoint) is compared with
every other method by the probability of improvement over the test losses, with a 95%
stratified-bootstrap interval (:func:`~experiments.common.stats.poi_with_ci`: runs = PPO seeds,
tasks = held-out evaluation seeds; a baseline has one run per evaluation seed), a Wilcoxon test
on the evaluation seeds (the agent's mean over its seeds vs the baseline) and the IQM. The
learning-rate-free peers are reported as further baselines, and every method's time to target
(:mod:`experiments.dnn.targets`, AlgoPerf's scoring) as a second reading next to the test loss.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict
from typing import Any

import numpy as np

from experiments.common.stats import (
    format_mean_ci,
    headline_record,
    iqm_with_ci,
    mean_ci,
    paired_test,
    poi_with_ci,
)
from experiments.dnn.config import (
    AGENT,
    GREEDY_CONFIG,
    PLATEAU_CONFIG,
    RANDOM_SEARCH,
    STEP_MILESTONES,
    WARMUP_FRACTION,
    WARMUP_GRID,
    Config,
    default_lr,
)
from experiments.dnn.runs import agent_method
from experiments.dnn.targets import overall_profiles, task_times, time_to_target_section

HEADLINE_BASELINES = {"best_sgd": "the best tuned SGD schedule", "random_search": RANDOM_SEARCH}

PEER_GROUPS: dict[str, tuple[str, ...]] = {
    "schedulefree": ("schedulefree_sgd", "schedulefree_adamw"),
    "prodigy": ("prodigy",),
    "dadaptation": ("dadapt_sgd", "dadapt_adam"),
}
"""The headline peers: of a group's forms in the configuration, the one with the lower tuning
validation loss is compared with the agent (``<task>_agent_vs_<group>``)."""


def _test(r: dict) -> float:
    value = float(r["test_loss"])
    return value if math.isfinite(value) else math.inf


def _method_row(results: list[dict], times: dict[str, Any]) -> dict[str, Any]:
    lrs = [lr for r in results for lr in r.get("effective_lrs", r["lrs"])]
    return {
        "final_test_loss": mean_ci([_test(r) for r in results]),
        "final_test_metric": mean_ci([r["test_metric"] for r in results]),
        "final_val_loss": mean_ci([r["final_val_loss"] for r in results]),
        "final_train_loss": mean_ci([r["final_train_loss"] for r in results]),
        "steps_to_target": times["steps"],
        "time_to_target_s": times["seconds"],
        "diverged": sum(bool(r["diverged"]) for r in results),
        "n": len(results),
        "lr_min": float(min(lrs)) if lrs else math.nan,
        "lr_max": float(max(lrs)) if lrs else math.nan,
        "wall_time_s": mean_ci([r["wall_time_s"] for r in results]),
    }


def method_runs(
    config: Config, trained: dict[str, Any], evaluated: list[tuple[str, str, dict]]
) -> dict[str, dict[str, list[list[dict | None]]]]:
    """task -> reported method -> ``runs x eval seeds`` results (``None``: a failed run).

    Reported methods: the tuned baselines, the peers, ``random_search`` (the winner after every
    trial) and ``agent`` (one row per PPO seed: its last checkpoint).
    """
    found = {(task, method, rec["spec"]["seed"]): rec for task, method, rec in evaluated}
    out: dict[str, dict[str, list[list[dict | None]]]] = {}
    for task in config.tasks:
        seeds = config.eval_seeds(task)
        hpo = trained["random_search"][task.name]
        names: dict[str, list[str]] = {m: [m] for m in trained["baselines"][task.name]}
        names |= {m: [m] for m in trained.get("peers", {}).get(task.name, {})}
        names[RANDOM_SEARCH] = [f"{RANDOM_SEARCH}@{hpo[-1]['trials']}"]
        names[AGENT] = [
            agent_method(a["checkpoints"][-1]["timesteps"], a["seed"])
            for a in trained["agents"][task.name]
        ]
        out[task.name] = {
            method: [[_ok(found.get((task.name, k, s))) for s in seeds] for k in keys]
            for method, keys in names.items()
        }
    return out


def _ok(record: dict | None) -> dict | None:
    return record["result"] if record is not None and record["status"] == "ok" else None


def _matrix(rows: list[list[dict | None]]) -> np.ndarray:
    """Test losses, ``runs x eval seeds``; a failed or diverged run counts as ``inf``."""
    return np.array([[math.inf if r is None else _test(r) for r in row] for row in rows])


def _flat(rows: list[list[dict | None]]) -> list[dict]:
    return [r for row in rows for r in row if r is not None]


def rate_vs_anchor(
    agent: list[list[dict | None]], anchor: list[list[dict | None]]
) -> dict[str, float] | None:
    """The agent's learning rate over its anchor schedule's (a run of it on the same held-out
    seed), decision by decision: the smallest and largest ratio over the runs and decisions, and
    the median over the first and over the second half of the decisions. Pairs where either run
    failed or stopped early (diverged) are left out. None without anchor runs."""
    if not anchor:
        return None
    ratios = [
        np.asarray(a["lrs"], float) / np.asarray(b["lrs"], float)
        for row in agent
        for a, b in zip(row, anchor[0], strict=True)
        if a is not None and b is not None and len(a["lrs"]) == len(b["lrs"]) > 1
    ]
    if not ratios:
        return None
    r = np.array(ratios)
    half = r.shape[1] // 2
    return {
        "min": float(r.min()),
        "max": float(r.max()),
        "median_first_half": float(np.median(r[:, :half])),
        "median_second_half": float(np.median(r[:, half:])),
    }


def compare(agent: np.ndarray, other: np.ndarray) -> dict[str, Any]:
    """Agent vs a method on the test losses of the same evaluation seeds (lower is better)."""
    poi = poi_with_ci(agent, other)
    test = paired_test(agent.mean(axis=0), other.mean(axis=0))
    return {
        "poi": poi["value"],
        "ci95": poi["ci95"],
        "significant": bool(poi["ci95"][0] > 0.5 or poi["ci95"][1] < 0.5),
        "p_value": test["p_value"],
        "median_diff": test["median_diff"],
        "n_runs": poi["n_runs"],
        "n_tasks": poi["n_tasks"],
    }


def summarise(
    config: Config, trained: dict[str, Any], evaluated: list[tuple[str, str, dict]]
) -> dict:
    """Per task and method: test numbers, times to target, the compute spent to obtain the
    method, the agent's comparisons with every method, and the cost-quality points of random
    search and the agent; performance profiles per task and overall; the readings (which
    method is best by test loss and by profile score)."""
    failed = [rec["spec_id"] for _, _, rec in evaluated if rec["status"] != "ok"]
    grouped = method_runs(config, trained, evaluated)
    by_method: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for task, method, rec in evaluated:
        if rec["status"] == "ok":
            by_method[task][method].append(rec["result"])
    summary: dict[str, Any] = {
        "config": _config_dict(config),
        "split": "test",
        "failed_runs": failed,
        "headline": [],
        "edge_hits": [],
        "tasks": {},
    }
    per_task: dict[str, dict[str, Any]] = {}
    for task_spec in config.tasks:
        name = task_spec.name
        runs = grouped[name]
        budget = task_spec.budget
        agents_info = trained["agents"][name]
        hpo = trained["random_search"][name]
        peers = trained.get("peers", {}).get(name, {})
        seeds = config.eval_seeds(task_spec)
        times = task_times(runs, [m for m in runs if m != AGENT], seeds, name)
        rows: dict[str, dict] = {}
        n_tune = len(config.tune_seeds(task_spec))
        for method, best in trained["baselines"][name].items():
            optimizer, schedule = method.split("/")
            tuning = best["tuning"]
            rows[method] = _method_row(_flat(runs[method]), times["methods"][method]) | {
                "optimizer": optimizer,
                "schedule": schedule,
                "lr": best["lr"],
                "tuning_val_loss": best["val_loss"],
                "tuning": tuning,
                "compute_steps": len(tuning["grid"]) * n_tune * budget,
                "search_wall_time_s": best["search_wall_time_s"],
            }
            if tuning["edge"] is not None:
                summary["edge_hits"].append(
                    {"task": name, "method": method, "edge": tuning["edge"], "lr": best["lr"]}
                )
        for peer, best in peers.items():
            rows[peer] = _method_row(_flat(runs[peer]), times["methods"][peer]) | {
                "optimizer": peer,
                "schedule": "constant",
                "peer": True,
                "lr": best["lr"],
                "tuning_val_loss": best["val_loss"],
                "compute_steps": best["tuning_runs"] * budget,
                **{
                    k: best[k]
                    for k in (
                        "knob",
                        "value",
                        "options",
                        "tuning_runs",
                        "warmup_fraction",
                        "tuning",
                        "warmup_tuning",
                        "search_wall_time_s",
                    )
                },
            }
            for axis, tuning in (("knob", best["tuning"]), ("warmup", best["warmup_tuning"])):
                if tuning is not None and tuning["edge"] is not None:
                    summary["edge_hits"].append(
                        {"task": name, "method": peer, "edge": tuning["edge"]}
                        | {"axis": best["knob"] if axis == "knob" else "warmup_fraction"}
                        | {"value": tuning["best"]}
                    )
        rows[RANDOM_SEARCH] = (
            _method_row(_flat(runs[RANDOM_SEARCH]), times["methods"][RANDOM_SEARCH])
            | {k: hpo[-1][k] for k in ("optimizer", "schedule", "lr", "trials", "recheck_runs")}
            | {
                "tuning_val_loss": hpo[-1]["val_loss"],
                "compute_steps": (hpo[-1]["trials"] + hpo[-1]["recheck_runs"]) * budget,
                "search_wall_time_s": hpo[-1]["search_wall_time_s"],
            }
        )
        agent_matrix = _matrix(runs[AGENT])
        start = trained.get("agent_start", {}).get(name)
        extra_steps = _agent_extra_steps(config, task_spec, start)
        rows[AGENT] = _method_row(_flat(runs[AGENT]), times["methods"][AGENT]) | {
            "optimizer": "sgd",
            "schedule": AGENT,
            "lr": agents_info[0].get("initial_lr", default_lr(task_spec)),
            "start": start,
            "checkpoint": "last",
            "agents": [a["checkpoints"][-1]["path"] for a in agents_info],
            "ppo_seeds": len(agents_info),
            "per_seed_test_loss": [mean_ci(row)["mean"] for row in agent_matrix.tolist()],
            "compute_steps": agents_info[0]["timesteps"] * task_spec.steps_per_action + extra_steps,
            "search_wall_time_s": float(np.mean([a["train_time_s"] for a in agents_info])),
            "training_episodes": sum(a["episodes"] for a in agents_info),
            "training_diverged_episodes": sum(a["diverged_episodes"] for a in agents_info),
        }
        cell = config.agent_start_cell(task_spec)  # the tuned schedule the agent's rates scale
        anchor = None if cell is None else f"{cell[1]}/{cell[2]}"
        if anchor in runs:
            rows[AGENT]["rate_vs_anchor"] = rate_vs_anchor(runs[AGENT], runs[anchor])
        for method, rs in runs.items():
            matrix = _matrix(rs)
            rows[method]["iqm_test_loss"] = _iqm(matrix)
            if method != AGENT:
                rows[method]["agent_vs"] = compare(agent_matrix, matrix)
            rows[method]["profile_score"] = {
                clock: times[clock]["methods"][method]["score"] for clock in ("steps", "seconds")
            }
        best_sgd = min(
            (m for m in trained["baselines"][name] if m.startswith("sgd/")),
            key=lambda m: trained["baselines"][name][m]["val_loss"],
        )
        claims = {"best_sgd": best_sgd, "random_search": RANDOM_SEARCH}
        for group, forms in PEER_GROUPS.items():
            present = [f for f in forms if f in peers]
            if present:
                claims[group] = min(present, key=lambda f: peers[f]["val_loss"])
        for claim, other in claims.items():
            c = rows[other]["agent_vs"]
            summary["headline"].append(
                headline_record(
                    f"{name}_agent_vs_{claim}",
                    "probability_of_improvement",
                    c["poi"],
                    c["ci95"],
                    c["n_tasks"],
                    split="test",
                    ppo_seeds=len(agents_info),
                    n_eval_seeds=c["n_tasks"],
                    p_value=c["p_value"],
                    baseline=other,
                )
            )
        summary["tasks"][name] = {
            "metric": "test_accuracy" if name == "vision" else "test_perplexity",
            "budget_steps": budget,
            "target_val_loss": times["target_val_loss"],
            "best_sgd": best_sgd,
            "best_peer": min(peers, key=lambda p: peers[p]["val_loss"]) if peers else None,
            "eval_seeds": seeds,
            "methods": rows,
            "time_to_target": {
                k: times[k] for k in ("target_val_loss", "baselines", "steps", "seconds")
            },
            "cost_quality": _cost_quality(
                task_spec, hpo, agents_info, by_method[name], extra_steps
            ),
            "agent_training": [
                {
                    k: a[k]
                    for k in (
                        "seed",
                        "timesteps",
                        "episodes",
                        "diverged_episodes",
                        "train_time_s",
                        "returns",
                        "episode_timesteps",
                    )
                }
                for a in agents_info
            ],
        }
        per_task[name] = times
    summary["time_to_target"] = overall_profiles(per_task)
    summary["readings"] = _readings(summary)
    return summary


def _readings(summary: dict) -> dict[str, Any]:
    """Which method is best by final test loss (IQM, mean) and by profile score, per task and
    overall (profiles of both tasks' problems)."""
    out: dict[str, Any] = {}
    for name, block in summary["tasks"].items():
        rows = block["methods"]
        out[name] = {
            "best_by_iqm_test_loss": min(
                rows, key=lambda m: _sort_key(rows[m]["iqm_test_loss"]["value"])
            ),
            "best_by_mean_test_loss": min(
                rows, key=lambda m: _sort_key(rows[m]["final_test_loss"]["mean"])
            ),
            "best_by_steps_profile": block["time_to_target"]["steps"]["best"],
            "best_by_seconds_profile": block["time_to_target"]["seconds"]["best"],
        }
    overall = summary["time_to_target"]
    out["overall"] = {
        "best_by_steps_profile": overall["steps"]["best"],
        "best_by_seconds_profile": overall["seconds"]["best"],
    }
    return out


def _iqm(matrix: np.ndarray) -> dict[str, Any]:
    if not np.all(np.isfinite(matrix)):
        return {"value": math.inf, "ci95": [math.inf, math.inf]}
    r = iqm_with_ci(matrix)
    return {"value": r["value"], "ci95": r["ci95"]}


def _agent_extra_steps(config: Config, task_spec: Any, start: dict | None) -> int:
    """Optimizer steps an agent costs beyond its PPO actions: the neutral policy's runs (at
    most) and the tuning runs of its starting schedule (:meth:`Config.extra_agent_runs`)."""
    anchor_runs = start["anchor_tuning_runs"] if start else 0
    return config.extra_agent_runs(task_spec, anchor_runs) * task_spec.budget


def _cost_quality(
    task_spec: Any, hpo: list, agents_info: list, runs: dict, extra_steps: int = 0
) -> dict[str, list]:
    """Test loss after each random-search stage and at each PPO checkpoint (all seeds;
    ``extra_steps``: the agent's compute beyond its PPO actions)."""
    steps = sorted({c["timesteps"] for a in agents_info for c in a["checkpoints"]})
    return {
        RANDOM_SEARCH: [
            {
                "trials": s["trials"],
                "optimizer": s["optimizer"],
                "schedule": s["schedule"],
                "lr": s["lr"],
                "recheck_runs": s["recheck_runs"],
                "compute_steps": (s["trials"] + s["recheck_runs"]) * task_spec.budget,
                "final_test_loss": mean_ci(
                    [_test(r) for r in runs[f"{RANDOM_SEARCH}@{s['trials']}"]]
                ),
            }
            for s in hpo
        ],
        AGENT: [
            {
                "timesteps": t,
                "compute_steps": t * task_spec.steps_per_action + extra_steps,
                "final_test_loss": mean_ci(
                    [_test(r) for a in agents_info for r in runs[agent_method(t, a["seed"])]]
                ),
            }
            for t in steps
        ],
    }


def _config_dict(config: Config) -> dict[str, Any]:
    d = asdict(config)
    d["grids"] = {t.name: {o: config.grid(t, o) for o in config.optimizers} for t in config.tasks}
    d["n_trials"] = {t.name: config.n_trials(t) for t in config.tasks}
    d["peer_grids"] = {
        t.name: {p: config.peer_grid(t, p) for p in config.peers} for t in config.tasks
    }
    d["warmup_grid"] = list(WARMUP_GRID)
    d["warmup_fraction_while_tuning_lr"] = WARMUP_FRACTION
    d["plateau_config"] = PLATEAU_CONFIG
    d["greedy_config"] = GREEDY_CONFIG
    d["step_milestones"] = list(STEP_MILESTONES)
    return d


METHOD_LABELS = {
    AGENT: "PPO agent (learned schedule)",
    RANDOM_SEARCH: "random search (one agent's compute)",
}


PEER_LABELS = {
    "schedulefree_sgd": "Schedule-Free SGD",
    "schedulefree_adamw": "Schedule-Free AdamW",
    "prodigy": "Prodigy",
    "dadapt_sgd": "D-Adaptation SGD",
    "dadapt_adam": "D-Adaptation Adam",
}


def method_label(method: str) -> str:
    if method in METHOD_LABELS:
        return METHOD_LABELS[method]
    if method in PEER_LABELS:
        return PEER_LABELS[method]
    optimizer, schedule = method.split("/")
    names = {"sgd": "SGD", "adam": "Adam"}
    return f"{names[optimizer]} + {schedule}"


def _sort_key(value: float) -> float:
    return value if not math.isnan(value) else math.inf


def _reach(r: dict[str, Any], digits: int) -> str:
    if not r["reached"]:
        return "never"
    return f"{r['median']:.{digits}f} ({r['reached']}/{r['n']})"


def _interval(value: float, ci: list[float], digits: int = 2) -> str:
    if not math.isfinite(value):
        return "diverged"
    return f"{value:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _edge_hit(h: dict[str, Any]) -> str:
    if "axis" in h:  # a peer: its knob or Schedule-Free's warm-up
        return f"{h['task']} {h['method']} ({h['edge']}, {h['axis']} {h['value']:g})"
    return f"{h['task']} {h['method']} ({h['edge']}, lr {h['lr']:g})"


def _peer_setting(r: dict[str, Any]) -> str:
    edges = [
        f"{axis} grid edge: {t['edge']}"
        for axis, t in (("knob", r["tuning"]), ("warm-up", r["warmup_tuning"]))
        if t is not None and t["edge"] is not None
    ]
    warmup = (
        f", warm-up {r['warmup_fraction']:g} of the run" if r["warmup_fraction"] is not None else ""
    )
    return f"{r['knob']} {r['value']:g}{warmup}, no schedule" + (
        f" ({'; '.join(edges)})" if edges else ""
    )


def markdown_table(summary: dict) -> str:
    """One table per task: test numbers of every method, best final test loss first."""
    lines: list[str] = []
    for name, block in summary["tasks"].items():
        metric = "test accuracy" if block["metric"] == "test_accuracy" else "test perplexity"
        rows = block["methods"]
        a = rows[AGENT]
        lines += [
            f"**{name}** ({block['budget_steps']} steps per run; test split, "
            f"{len(block['eval_seeds'])} held-out seeds; agent: {a['ppo_seeds']} PPO seeds, last "
            "checkpoint; mean ± 95% CI over runs; P(agent better) = probability that an agent "
            "run has a lower test loss than this method's run on the same seed, with a 95% "
            "stratified-bootstrap interval, **bold** where it excludes 0.5; p: Wilcoxon on "
            "seeds)",
            "",
            f"| method | setting | compute (steps) | final test loss | IQM test loss | {metric} "
            "| P(agent better) | p | steps to target (median) | diverged |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for method in sorted(rows, key=lambda m: _sort_key(rows[m]["final_test_loss"]["mean"])):
            r = rows[method]
            if r["schedule"] == AGENT:
                setting = f"SGD, starts at {r['lr']:g}"
                if r.get("start"):
                    setting = (
                        f"SGD, tuned {r['start']['cell'][2]} (lr {r['lr']:g}) x learned factor"
                    )
            elif r.get("peer"):
                setting = _peer_setting(r)
            else:
                edge = r.get("tuning", {}).get("edge")
                setting = f"{r['optimizer']}, {r['schedule']}, lr {r['lr']:g}" + (
                    f" (grid edge: {edge})" if edge else ""
                )
            vs = r.get("agent_vs")
            if vs is None:
                poi, p = "—", "—"
            else:
                poi = _interval(vs["poi"], vs["ci95"])
                poi, p = (f"**{poi}**" if vs["significant"] else poi), f"{vs['p_value']:.3g}"
            iqm = r["iqm_test_loss"]
            lines.append(
                f"| {method_label(method)} | {setting} | {r['compute_steps']:,} | "
                f"{format_mean_ci(r['final_test_loss'])} | {_interval(iqm['value'], iqm['ci95'], 4)} | "
                f"{format_mean_ci(r['final_test_metric'], 3)} | {poi} | {p} | "
                f"{_reach(r['steps_to_target'], 0)} | {r['diverged']}/{r['n']} |"
            )
        lines += [
            "",
            f"Agent: {a['ppo_seeds']} PPO seeds, {a['compute_steps']:,} optimizer steps of "
            f"training each ({a['training_episodes']} episodes in all, "
            f"{a['training_diverged_episodes']} diverged; {a['search_wall_time_s']:.0f} s per "
            f"seed); test loss per seed: "
            + ", ".join(f"{v:.4f}" for v in a["per_seed_test_loss"])
            + f"; its held-out learning rates stayed in [{a['lr_min']:.3g}, {a['lr_max']:.3g}] "
            f"(start {a['lr']:g})"
            + (
                f", within {v['min']:.2f} and {v['max']:.2f} times its anchor schedule's on the "
                f"same seed (median {v['median_first_half']:.2f} in the first half of the run, "
                f"{v['median_second_half']:.2f} in the second)"
                if (v := a.get("rate_vs_anchor"))
                else ""
            )
            + f". Random search: {rows[RANDOM_SEARCH]['trials']} trials and "
            f"{rows[RANDOM_SEARCH]['recheck_runs']} re-runs of its best on the other tuning seeds "
            f"({rows[RANDOM_SEARCH]['search_wall_time_s']:.0f} s). Best tuned SGD schedule (by "
            f"validation loss on the tuning seeds): {method_label(block['best_sgd'])}.",
            "",
            "Cost vs quality (final test loss after that much compute on the training seeds):",
            "",
            "| compute (steps) | random search | PPO agent (all seeds) |",
            "|---|---|---|",
        ]
        cq = block["cost_quality"]
        points: dict[int, dict[str, str]] = defaultdict(dict)
        for pt in cq[RANDOM_SEARCH]:
            points[pt["compute_steps"]]["rs"] = format_mean_ci(pt["final_test_loss"])
        for pt in cq[AGENT]:
            points[pt["compute_steps"]]["agent"] = format_mean_ci(pt["final_test_loss"])
        for steps in sorted(points):
            lines.append(
                f"| {steps:,} | {points[steps].get('rs', '')} | {points[steps].get('agent', '')} |"
            )
        lines.append("")
    hits = summary["edge_hits"]
    lines.append(
        "Tuning grids: every optimum interior after widening."
        if not hits
        else "Tuning grids: optimum still at a grid edge after widening for "
        + ", ".join(_edge_hit(h) for h in hits)
        + "."
    )
    lines += ["", *time_to_target_section(summary, method_label)]
    return "\n".join(lines)
