"""The NMF study's summaries and tables: the schedule comparison (:func:`summarise_schedules`)
and the learned schedule (:func:`summarise_rl`), from the sweeps' records."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict
from typing import Any

import numpy as np

from experiments.common.stats import format_mean_ci, iqm, mean_ci
from experiments.nmf.config import REFERENCE, RLConfig, SchedulesConfig, cell_name, tuning_grid
from experiments.nmf.rl_stats import (
    NORMALISED_CAP,
    format_interval,
    mean_over_runs_tasks,
    normalised,
    rl_statistics,
    score_matrices,
)
from experiments.nmf.targets import format_time, readings, table_lines, time_to_target


def summarise_schedules(
    config: SchedulesConfig, best: dict, eval_records: list[dict], sk_records: list[dict]
) -> dict:
    """Per setting and schedule: final / 25% / 50% relative error, time to target, wins vs step.

    Every schedule is a baseline of the time-to-target reading (``summary["time_to_target"]``,
    :func:`experiments.nmf.targets.time_to_target`); its final-error reading is the IQM of the
    normalised final error over (setting, held-out seed) problems (``iqm_normalised``). The SGD schedule compared with scikit-learn (digits, exact gradients) is the one with the
    lowest tuning score (mean final loss on the training seeds), not the best on the held-out
    seeds, so that the comparison does not select on its own test data.
    """
    runs: dict[str, dict[str, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for rec in eval_records:
        if rec["status"] != "ok":
            raise RuntimeError(f"evaluation run {rec['spec_id']} failed: {rec['error']['message']}")
        spec = rec["spec"]
        runs[cell_name(spec["instance"])][spec["schedule"]][spec["instance"]["seed"]] = rec[
            "result"
        ]
    n = config.n_steps
    summary: dict[str, Any] = {"config": _schedules_config_dict(config), "settings": {}}
    as_lists = {
        setting: {name: {seed: [r] for seed, r in rs.items()} for name, rs in by.items()}
        for setting, by in runs.items()
    }
    names = list(dict.fromkeys(name for by in runs.values() for name in by))
    targets, overall = time_to_target(as_lists, names)
    for setting, by_schedule in runs.items():
        finals = {
            name: [float(r["final_rel_error"]) for r in rs.values()]
            for name, rs in by_schedule.items()
        }
        times = targets[setting]["methods"]
        rows = {}
        for name, by_seed in by_schedule.items():
            curves = [np.asarray(r["rel_errors"], dtype=float) for r in by_seed.values()]
            rows[name] = {
                "params": best[setting][name]["params"],
                "final_rel_error": mean_ci(finals[name]),
                "rel_error_at_25pct": mean_ci([value_at(c, n // 4) for c in curves]),
                "rel_error_at_50pct": mean_ci([value_at(c, n // 2) for c in curves]),
                "time_to_target": times[name],
                "diverged": sum(bool(r["diverged"]) for r in by_seed.values()),
                "win_rate_vs_step": _win_rate_vs(by_schedule, name, "step"),
                "wall_time_s": mean_ci([float(r["wall_time_s"]) for r in by_seed.values()]),
            }
        summary["settings"][setting] = {
            "target_rel_error": targets[setting]["target"],
            "schedules": rows,
        }
    matrices, _ = score_matrices(as_lists)
    iqms = {name: iqm(m.ravel()) for name, m in normalised(matrices).items()}
    summary["iqm_normalised"] = iqms
    metric = "IQM of final error / the best on the problem"
    summary["time_to_target"] = overall | {"readings": readings(iqms, overall["profiles"], metric)}
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
    return summary | tuning_summary(best)


def value_at(curve: np.ndarray, step: int) -> float:
    """``curve[step]``, or ``inf`` when the run diverged before ``step``."""
    return float(curve[step]) if step < len(curve) else math.inf


def win_rate(a: dict[int, list[dict]], b: dict[int, list[dict]]) -> float | None:
    """Fraction of (instance, run of ``a``) pairs in which ``a`` ends strictly below ``b``.

    ``a`` and ``b`` map an instance seed to its runs' results; ``b`` is compared through its
    first run on that instance. ``None`` when the two share no instance.
    """
    wins = [
        float(r["final_rel_error"]) < float(b[seed][0]["final_rel_error"])
        for seed, runs in a.items()
        if seed in b
        for r in runs
    ]
    return float(np.mean(wins)) if wins else None


def _win_rate_vs(
    by_schedule: dict[str, dict[int, dict]], name: str, reference: str
) -> float | None:
    if reference not in by_schedule or name == reference:
        return None
    as_runs = {k: {seed: [r] for seed, r in by_seed.items()} for k, by_seed in by_schedule.items()}
    return win_rate(as_runs[name], as_runs[reference])


def _schedules_config_dict(config: SchedulesConfig) -> dict[str, Any]:
    d = asdict(config)
    d["tuning_grid"] = tuning_grid(config.n_steps, config.lr_grid, config.budget)
    return d


def row_cells(row: dict) -> list[str]:
    """Table cells of a schedule's summary row: final, 25% and 50% error, steps to target, wins."""
    steps = format_time(row["time_to_target"]["steps"])
    win = row["win_rate_vs_step"]
    return [
        format_mean_ci(row["final_rel_error"]),
        format_mean_ci(row["rel_error_at_25pct"]),
        format_mean_ci(row["rel_error_at_50pct"]),
        steps,
        "—" if win is None else f"{100 * win:.0f}%",
    ]


def schedules_table(summary: dict) -> str:
    """The results table of the README: relative error (mean ± 95% CI over held-out seeds)."""
    lines = []
    n = summary["config"]["n_steps"]
    for setting, block in summary["settings"].items():
        lines += [
            f"**{setting}** ({n} steps, target = {block['target_rel_error']:.4f})",
            "",
            "| schedule | final rel. error | at 25% | at 50% | steps to target (median, reached) "
            "| wins vs step | diverged |",
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
    lines += table_lines(summary["time_to_target"], _targets_of(summary["settings"]))
    return "\n".join(lines + edge_hits_lines(summary))


def _targets_of(blocks: dict[str, dict]) -> dict[str, dict]:
    """``{workload: {"target", "methods": {schedule: its time to target}}}`` of a summary."""
    return {
        w: {
            "target": b["target_rel_error"],
            "methods": {name: r["time_to_target"] for name, r in b["schedules"].items()},
        }
        for w, b in blocks.items()
    }


def _runs(baseline: list[dict], learned: list[dict]) -> dict[str, dict[str, dict[int, list]]]:
    """``runs[cell][schedule][instance seed]`` = results; a learned schedule has one per PPO seed,
    in increasing PPO-seed order."""
    runs: dict[str, dict[str, dict[int, list]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for rec in baseline + sorted(learned, key=lambda r: r["spec"]["agent"]["seed"]):
        spec = rec["spec"]
        runs[cell_name(spec["instance"])][schedule_label(rec)][
            int(spec["instance"]["seed"])
        ].append(rec["result"])
    return runs


def schedule_label(record: dict) -> str:
    """The schedule of an evaluation record: its name, or the agent variant for learned runs."""
    spec = record["spec"]
    return spec["schedule"] if "schedule" in spec else spec["agent"]["variant"]


def summarise_rl(config: RLConfig, best: dict, agents: list[dict], baseline, learned) -> dict:
    """Per cell and schedule: final / 25% / 50% relative error with intervals over PPO seeds x
    held-out instances, time to target, the IQM of the normalised score, and every learned
    variant against every tuned schedule (:func:`experiments.nmf.rl_stats.rl_statistics`:
    probability of improvement, paired test, error ratio; the ``headline`` records).

    The tuned schedules set the targets; ``time_to_target`` holds every schedule's performance
    profiles over (cell, held-out instance) problems and the ``readings`` (best by the IQM of
    the normalised final error, best by each profile score)."""
    runs = _runs(baseline, learned)
    n = config.n_steps
    variants = [name for name in config.variants if any(name in r for r in runs.values())]
    stats = rl_statistics(runs, variants, list(config.grid()), n_boot=config.n_boot)
    summary: dict[str, Any] = {
        "headline": stats["headline"],
        "config": _rl_config_dict(config),
        "cells": {},
        "overall": {},
    }
    targets, times = time_to_target(runs, list(config.grid()))
    for cell in sorted(runs):
        by_schedule = runs[cell]
        rows = {}
        for name, by_seed in by_schedule.items():
            results = [r for rs in by_seed.values() for r in rs]
            finals_matrix = np.array(
                [[float(r["final_rel_error"]) for r in rs] for rs in by_seed.values()]
            ).T
            per_instance = [np.mean(np.vstack(_pad(rs)), axis=0) for rs in by_seed.values()]
            rows[name] = {
                "params": best.get(cell, {}).get(name, {}).get("params"),
                "final_rel_error": mean_over_runs_tasks(finals_matrix, config.n_boot),
                "rel_error_at_25pct": mean_ci([value_at(c, n // 4) for c in per_instance]),
                "rel_error_at_50pct": mean_ci([value_at(c, n // 2) for c in per_instance]),
                "iqm_normalised": stats["iqm"][cell][name],
                "time_to_target": targets[cell]["methods"][name],
                "diverged": sum(bool(r["diverged"]) for r in results),
                "win_rate_vs_step": None
                if name == REFERENCE
                else win_rate(by_seed, by_schedule[REFERENCE]),
                "steps_above_bound_pct": 100 * _above_bound_fraction(results),
                "n_runs": len(results),
            }
            if any("guard_trips" in r for r in results):  # decisions of 30 the guard capped
                rows[name]["guard_trips_per_run"] = float(
                    np.mean([r.get("guard_trips", 0) for r in results])
                )
        comparisons = {v: stats["comparisons"][v][cell] for v in variants}
        summary["cells"][cell] = {
            "target_rel_error": targets[cell]["target"],
            "schedules": rows,
            "comparisons": comparisons,
        }
    summary["overall"] = _overall(config, runs, variants, stats["comparisons"])
    summary["iqm_normalised"] = stats["iqm"]["overall"]
    iqms = {name: v["value"] for name, v in summary["iqm_normalised"].items()}
    metric = "IQM of final error / the best on the instance"
    summary["time_to_target"] = times | {"readings": readings(iqms, times["profiles"], metric)}
    summary |= tuning_summary(best)
    summary["agents"] = _agents_summary(agents)
    return summary


def tuning_summary(best: dict) -> dict[str, Any]:
    """``{"tuning": {cell: {schedule: axis results}}, "edge_hits": [...]}`` of a tuning stage.

    ``edge_hits`` lists every (cell, schedule, shape) whose optimum is still at an edge of its
    widened axis; ``chosen`` marks the shape the schedule was tuned to.
    """
    tuning = {
        cell: {name: {k: v for k, v in b.items() if k != "params"} for name, b in by_name.items()}
        for cell, by_name in best.items()
    }
    hits = [
        {
            "cell": cell,
            "schedule": name,
            "shape": shape["shape"],
            "edge": shape["edge"],
            "best": shape["best"],
            "chosen": shape["shape"] == b.get("shape"),
        }
        for cell, by_name in tuning.items()
        for name, b in by_name.items()
        for shape in b.get("shapes", [])
        if shape["edge"] is not None
    ]
    return {"tuning": tuning, "edge_hits": hits}


def _pad(results: list[dict]) -> list[np.ndarray]:
    """Curves of equal length (a diverged run is continued at ``inf``)."""
    curves = [np.asarray(r["rel_errors"], dtype=float) for r in results]
    length = max(len(c) for c in curves)
    return [np.concatenate([c, np.full(length - len(c), np.inf)]) for c in curves]


def _above_bound_fraction(results: list[dict]) -> float:
    counts = [r["steps_above_bound"] for r in results]
    if any(c is None for c in counts):
        return math.nan
    return float(sum(counts) / sum(len(r["lrs"]) for r in results))


def _overall(config: RLConfig, runs: dict, variants: list[str], comparisons: dict) -> dict:
    """Across all held-out instances: each learned variant against each tuned schedule.

    The statistics of :func:`rl_statistics` (``probability_of_improvement``, ``paired_test``,
    ``geomean_error_ratio``, with intervals over PPO seeds x instances) and, descriptively, the
    share of instances each PPO seed wins (``win_rate_per_ppo_seed``; ``win_rate``: their mean).
    """
    overall: dict[str, Any] = {}
    for variant in variants:
        block: dict[str, Any] = {}
        for ref in config.grid():
            per_seed_wins = []
            n_seeds = min(len(rs) for by in runs.values() for rs in by[variant].values())
            for k in range(n_seeds):
                wins = [
                    float(rs[k]["final_rel_error"]) < float(by[ref][seed][0]["final_rel_error"])
                    for by in runs.values()
                    for seed, rs in by[variant].items()
                ]
                per_seed_wins.append(float(np.mean(wins)))
            stats = comparisons[variant]["overall"][ref]
            ratio = stats["error_ratio"]
            block[ref] = {
                "probability_of_improvement": stats["probability_of_improvement"],
                "paired_test": stats["paired_test"],
                "geomean_error_ratio": {"mean": ratio["value"], "ci95": ratio["ci95"]},
                "win_rate": {"mean": float(np.mean(per_seed_wins))},
                "win_rate_per_ppo_seed": per_seed_wins,
            }
        overall[variant] = block
    return overall


def _agents_summary(agents: list[dict]) -> dict[str, Any]:
    by_variant: dict[str, list[dict]] = defaultdict(list)
    for rec in agents:
        by_variant[rec["spec"]["variant"]].append(rec["result"])
    return {
        variant: {
            "train_time_s": mean_ci([r["train_time_s"] for r in results]),
            "train_time_s_total": float(sum(r["train_time_s"] for r in results)),
            "timesteps": results[0]["timesteps"],
            "episodes": int(np.mean([r["episodes"] for r in results])),
            "diverged_episodes": int(sum(r["diverged_episodes"] for r in results)),
            "resumed": any(r["resumed_from_timesteps"] for r in results),
            "n_seeds": len(results),
        }
        for variant, results in by_variant.items()
    }


def _rl_config_dict(config: RLConfig) -> dict[str, Any]:
    d = asdict(config)
    d["n_steps"] = config.n_steps
    d["tuning_grid"] = config.grid()
    grid_sizes = {name: len(options) for name, options in config.grid().items()}
    per_config = config.n_train * config.n_steps
    # of the initial grid; widening adds one value per round and edge ("tuning" in the summary)
    d["tuning_cost_sgd_steps"] = {name: k * per_config for name, k in grid_sizes.items()}
    d["agent_cost_sgd_steps"] = config.total_timesteps * config.steps_per_action
    return d


def rl_table(summary: dict) -> str:
    """The README's tables: the headline comparisons, the IQMs, every cell, tuning edge hits.

    Intervals are 95% stratified-bootstrap intervals over PPO seeds x held-out instances; no
    entry is marked best (the reader compares the intervals).
    """
    cfg = summary["config"]
    variants = list(summary["overall"])
    lines = [
        f"**Learned schedule vs tuned schedules on {cfg['n_test']} held-out instances** "
        f"({cfg['n_steps']} steps, clip {cfg['clip']:g}). PoI = probability that a run of the "
        "agent ends below the tuned schedule on the same instance (0.5: no difference), "
        "95% interval from a stratified bootstrap over PPO seeds x instances (strata = cells); "
        "p = Wilcoxon signed-rank on per-instance (agent mean over seeds, tuned); ratio = "
        "geometric mean of agent / tuned final error; wins = % of instances each PPO seed wins.",
        "",
        "| variant | against (tuned) | PoI [95% CI] | p | ratio [95% CI] | wins per PPO seed (%) |",
        "|---|---|---|---|---|---|",
    ]
    for v in variants:
        for ref, r in summary["overall"][v].items():
            per_seed = ", ".join(f"{100 * w:.0f}" for w in r["win_rate_per_ppo_seed"])
            lines.append(
                f"| {v} | {ref} | {format_interval(r['probability_of_improvement'])} | "
                f"{r['paired_test']['p_value']:.3g} | "
                f"{format_interval(r['geomean_error_ratio'], key='mean')} | {per_seed} |"
            )
    lines += ["", "Headline records (`summary.json` `headline`):", ""]
    lines += ["| claim | PoI | 95% CI | p | PPO seeds | instances | interval excludes 0.5 |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for h in summary["headline"]:
        lines.append(
            f"| {h['claim']} | {h['value']:.3f} | [{h['ci95'][0]:.3f}, {h['ci95'][1]:.3f}] | "
            f"{h['p_value']:.3g} | {h['ppo_seeds']} | {h['n_instances']} | "
            f"{'yes' if h['significant'] else 'no'} |"
        )
    lines += [
        "",
        f"**IQM of the normalised final error** (final error / best final error of any run on "
        f"the instance, capped at {NORMALISED_CAP:g}; 1 = best; 95% interval over runs x instances)",
        "",
        "| schedule | IQM [95% CI] |",
        "|---|---|",
    ]
    iqms = summary["iqm_normalised"]
    for name in sorted(iqms, key=lambda s: iqms[s]["value"]):
        lines.append(f"| {name} | {format_interval(iqms[name])} |")
    lines.append("")
    for cell, block in summary["cells"].items():
        lines += [
            f"**{cell}** (target = {block['target_rel_error']:.4f}; PoI = "
            f"{variants[0]} vs the row's schedule)",
            "",
            "| schedule | final rel. error [95% CI] | at 25% (mean) | at 50% (mean) | IQM norm. "
            "| steps to target (median, reached) "
            f"| PoI {variants[0]} vs it | steps above bound | diverged |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        rows = block["schedules"]
        versus = block["comparisons"].get(variants[0], {})
        for name in sorted(rows, key=lambda s: rows[s]["final_rel_error"]["mean"]):
            r = rows[name]
            steps = format_time(r["time_to_target"]["steps"])
            poi = versus.get(name, {}).get("probability_of_improvement")
            cells = [
                format_interval(r["final_rel_error"], 4, key="mean"),
                _mean(r["rel_error_at_25pct"]),
                _mean(r["rel_error_at_50pct"]),
                format_interval(r["iqm_normalised"]),
                steps,
                "—" if poi is None else format_interval(poi, 2),
                f"{r['steps_above_bound_pct']:.1f}%",
                f"{r['diverged']}/{r['n_runs']}",
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += table_lines(summary["time_to_target"], _targets_of(summary["cells"]))
    lines += edge_hits_lines(summary)
    agents = summary.get("agents", {})
    if agents:
        lines += [
            "| agent | PPO seeds | PPO timesteps | training time per seed (s) | diverged episodes |"
        ]
        lines += ["|---|---|---|---|---|"]
        for variant, a in agents.items():
            lines.append(
                f"| {variant} | {a['n_seeds']} | {a['timesteps']} | "
                f"{format_mean_ci(a['train_time_s'], 1)} | "
                f"{a['diverged_episodes']} / {a['episodes'] * a['n_seeds']} |"
            )
        lines.append("")
    return "\n".join(lines)


def _mean(summary: dict) -> str:
    return f"{summary['mean']:.4f}" if math.isfinite(summary["mean"]) else "diverged"


def edge_hits_lines(summary: dict) -> list[str]:
    """Table lines listing the tuning axes whose optimum is still at an edge after widening."""
    hits = summary.get("edge_hits", [])
    lines = [
        f"**Tuning edge hits** (after up to {summary['config']['widen_rounds']} widening rounds)",
        "",
    ]
    if not hits:
        return [*lines, "Every tuned optimum is interior to its (widened) grid.", ""]
    lines += [
        "| cell | schedule | shape | edge | best value | chosen shape |",
        "|---|---|---|---|---|---|",
    ]
    for h in hits:
        lines.append(
            f"| {h['cell']} | {h['schedule']} | {h['shape']} | {h['edge']} | {h['best']:.3g} | "
            f"{'yes' if h['chosen'] else 'no'} |"
        )
    return [*lines, ""]
