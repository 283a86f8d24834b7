"""The GreedyLR study's ``summary.json`` and ``table.md``, from the sweeps' records."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict
from typing import Any

from experiments.common.stats import format_mean_ci, headline_record, mean_ci
from experiments.greedylr.config import (
    GREEDY_CONFIG,
    HYPERGRAD_LR,
    INITIAL_LR,
    LABELS,
    LR_CEILING,
    PAPER_SHARES,
    PLATEAU_WINDOW,
    ROBUST_VARIANTS,
    SCHEDULES,
    SLIGHT,
    STAGES,
    Config,
    robust_variant,
)
from experiments.greedylr.scoring import (
    APART,
    FINAL,
    aggregate,
    clustered_shares,
    loss_at,
    run_table,
    score_pairs,
)
from experiments.greedylr.speed import summarise_speed
from experiments.greedylr.tuned import tuning_summary


def _final_losses(records: list[dict], key: str = "train_eval_loss") -> dict:
    """workload -> optimizer -> scheduler -> mean/CI of the final evaluated loss over seeds."""
    values: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for rec in records:
        if rec["status"] != "ok":
            continue
        s = rec["spec"]
        values[s["workload"]][s["optimizer"]][s["scheduler"]].append(
            loss_at(rec["result"], 1.0, key)
        )
    return {
        w: {o: {s: mean_ci(v) for s, v in by_s.items()} for o, by_s in by_o.items()}
        for w, by_o in values.items()
    }


def summarise_factor(factor_records: list[dict], main_records: list[dict]) -> dict:
    """Final loss per workload and F (the default F from the main sweep's SGD GreedyLR runs)."""
    values: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rec in factor_records:
        if rec["status"] == "ok":
            s = rec["spec"]
            values[s["workload"]][float(dict(s["greedy"])["factor"])].append(
                loss_at(rec["result"], 1.0)
            )
    for rec in main_records:
        s = rec["spec"]
        if (
            rec["status"] == "ok"
            and s["scheduler"] == "greedy"
            and s["optimizer"] == "sgd"
            and s["workload"] in values
        ):
            values[s["workload"]][GREEDY_CONFIG["factor"]].append(loss_at(rec["result"], 1.0))
    return {
        w: {f"{f:g}": mean_ci(v) for f, v in sorted(by_f.items())} for w, by_f in values.items()
    }


def summarise_robustness(records: list[dict]) -> dict:
    """workload -> noise kind -> level -> variant -> final loss (mean/CI) and LR-trace stats."""
    out: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for rec in records:
        if rec["status"] != "ok":
            continue
        s = rec["spec"]
        kind, level = (
            ("gradient", s["grad_noise"]) if s["grad_noise"] else ("loss", s["loss_noise"])
        )
        variant = robust_variant(s)
        keys = [(s["workload"], kind, level, variant)]
        if not s["grad_noise"] and not s["loss_noise"]:  # the noise-free runs anchor both panels
            keys = [(s["workload"], k, 0.0, variant) for k in ("gradient", "loss")]
        for key in keys:
            groups[key].append(rec["result"])
    for (w, kind, level, variant), results in sorted(groups.items()):
        out[w][kind][f"{level:g}"][variant] = {
            "final_loss": mean_ci([loss_at(r, 1.0) for r in results]),
            "final_lr": mean_ci([r["lr"][-1] if r["lr"] else math.nan for r in results]),
            "diverged": sum(bool(r["diverged"]) for r in results),
        }
    return json_dict(out)


def json_dict(d: Any) -> Any:
    """Plain dicts all the way down (defaultdicts included)."""
    if isinstance(d, dict):
        return {k: json_dict(v) for k, v in d.items()}
    return d


PROTOCOLS: dict[str, str] = {
    "tuned": "tuned protocol (every schedule's starting rate tuned on tuning seeds, scored on held-out seeds)",
    "paper_protocol": "paper protocol (shared untuned starting rate)",
}
"""The summary's protocol blocks and their labels; the tuned protocol is the headline."""


def summarise_protocol(records: list[dict], label: str) -> dict[str, Any]:
    """One protocol's scoring (labels, clustered shares), final losses and run table."""
    pairs = score_pairs(records)
    return {
        "label": label,
        "n_runs": len(records),
        "diverged_runs": sum(bool(r["result"]["diverged"]) for r in records if r["status"] == "ok"),
        "shares": clustered_shares(pairs),
        "scoring": aggregate(pairs),
        "scoring_val": aggregate(score_pairs(records, key="val_loss")),
        "final_train_loss": _final_losses(records),
        "runs": run_table(records),
    }


def headline(protocols: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``headline`` records: each protocol's pooled final-stage share, then the tuned
    protocol's share against each baseline (fractions in [0, 1]; null 0.5)."""
    records = []
    named = [
        (f"greedylr_{'tuned' if p == 'tuned' else 'paper_protocol'}_as_good_or_better", p, s)
        for p, s in ((p, protocols[p]["shares"]["final"]) for p in PROTOCOLS)
    ]
    named += [
        (f"greedylr_tuned_vs_{b}", "tuned", s)
        for b, s in protocols["tuned"]["shares"]["by_baseline"].items()
    ]
    for claim, protocol, share in named:
        if share["n"]:
            records.append(
                headline_record(
                    claim,
                    "share_as_good_or_better",
                    share["value"],
                    share["ci95"],
                    share["n"],
                    n_clusters=share["n_clusters"],
                    stage=FINAL,
                    protocol=protocol,
                    null=0.5,
                )
            )
    return records


def summarise(
    config: Config,
    tuned: dict,
    tuned_records: list[dict],
    paper_records: list[dict],
    factor_records: list[dict],
    robust_records: list[dict],
    tuning_records: list[dict] | None = None,
) -> dict[str, Any]:
    """Both protocols' scoring, the tuning choices, factor sweep and robustness (JSON-able).

    ``tuned`` is :func:`experiments.greedylr.tuned.tune`'s result, ``tuned_records`` /
    ``paper_records`` the held-out runs of the two protocols.
    """
    tuning_records = tuning_records or []
    every = [*tuning_records, *tuned_records, *paper_records, *factor_records, *robust_records]
    protocols = {
        "tuned": summarise_protocol(tuned_records, PROTOCOLS["tuned"]),
        "paper_protocol": summarise_protocol(paper_records, PROTOCOLS["paper_protocol"]),
    }
    return {
        "headline": headline(protocols),
        "config": _config_dict(config),
        "n_runs": {
            "tuning": len(tuning_records),
            "tuned": len(tuned_records),
            "paper_protocol": len(paper_records),
            "factor": len(factor_records),
            "robustness": len(robust_records),
        },
        "failed_runs": sorted({r["spec_id"] for r in every if r["status"] != "ok"}),
        "tuning": tuning_summary(tuned),
        **protocols,
        "time_to_target": summarise_speed(tuned_records),
        "paper_shares": PAPER_SHARES,
        "factor_sweep": summarise_factor(factor_records, tuned_records),
        "robustness": summarise_robustness(robust_records),
    }


def _config_dict(config: Config) -> dict[str, Any]:
    return asdict(config) | {
        "initial_lr": INITIAL_LR,
        "greedy_config": GREEDY_CONFIG,
        "hypergrad_lr": HYPERGRAD_LR,
        "plateau_window": PLATEAU_WINDOW,
        "lr_ceiling": LR_CEILING,
        "stages": list(STAGES),
        "slight_threshold": SLIGHT,
        "apart": list(APART),
    }


def _pct(t: dict) -> str:
    return "—" if not t["n"] else f"{t['share']:.2f}% ({t['as_good_or_better']}/{t['n']})"


def _ci(share: dict) -> str:
    if not share["n"]:
        return "—"
    low, high = share["ci95"]
    return f"{100 * share['value']:.1f}% [{100 * low:.0f}, {100 * high:.0f}]"


def markdown_table(summary: dict) -> str:
    """The tuned protocol first (shares with cluster intervals, tuned multipliers), then the
    paper protocol apart (the same, plus the paper's label table), then supporting tables."""
    lines = [
        "Shares of GreedyLR-vs-baseline pairs that are as good or better (delta = L_baseline - "
        "L_GreedyLR >= 0, training objective on a fixed evaluation set, held-out seeds), with "
        "95% cluster-bootstrap intervals over (workload, seed) clusters: pairs of one "
        "(workload, seed) share their runs and are not independent. No cell is bold: a "
        "difference counts only where its interval excludes 50%.",
        "",
    ]
    for name in PROTOCOLS:
        lines += _protocol_lines(summary, name)
    lines += _tuning_lines(summary["tuning"])
    lines += _speed_lines(summary["time_to_target"])
    lines += _label_lines(summary["paper_protocol"])
    lines += ["## Supporting tables (tuned protocol)", ""]
    lines += _final_loss_lines(summary["tuned"]["final_train_loss"])
    lines += _factor_lines(summary["factor_sweep"])
    lines += _robust_lines(summary["robustness"])
    return "\n".join(lines) + "\n"


def _protocol_lines(summary: dict, name: str) -> list[str]:
    block = summary[name]
    sh = block["shares"]
    stages = list(sh["by_stage"])
    lines = [
        f"## {block['label'][0].upper()}{block['label'][1:]}",
        "",
        f"**Pooled final-stage share: {_ci(sh['final'])}** (n = {sh['final']['n']} pairs in "
        f"{sh['final']['n_clusters']} clusters"
        + (
            f"; the paper reports {PAPER_SHARES[FINAL]:.2f}% at {FINAL})."
            if name != "tuned"
            else ")."
        ),
        "",
        "| group | " + " | ".join(stages) + " |",
        "|---" * (len(stages) + 1) + "|",
        "| all workloads | " + " | ".join(_ci(sh["by_stage"][st]) for st in stages) + " |",
    ]
    for w, by_stage in sh["by_workload"].items():
        lines.append(f"| {w} | " + " | ".join(_ci(by_stage[st]) for st in stages) + " |")
    lines += ["", f"Per baseline, at {FINAL}:", "", "| baseline | share [95% CI] |", "|---|---|"]
    lines += [f"| {b} | {_ci(s)} |" for b, s in sh["by_baseline"].items()]
    for o, apart in sh["apart"].items():
        lines += ["", f"*{o}*, reported apart (not in the pooled shares): {_ci(apart['final'])}."]
    return lines + ["", f"Diverged runs: {block['diverged_runs']} of {block['n_runs']}.", ""]


def _tuning_lines(tuning: dict) -> list[str]:
    cells = tuning["cells"]
    lines = [
        "## Tuned starting rates",
        "",
        "Multiplier of the shared starting rate chosen on the tuning seeds (hypergradient: and "
        "of its step beta, 'b'; Schedule-Free: and its warm-up fraction, 'w'; Prodigy and "
        "D-Adaptation: of their own estimate, d_coef / lr); '<' / '>' marks an optimum still at "
        "the low / high edge of its grid after widening.",
        "",
    ]
    edges = {(h["axis"], "/".join(h["cell"])): h["edge"] for h in tuning["edge_hits"]}
    rows: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for key, t in cells.items():
        w, o, sched = key.split("/")
        mark = {"low": "<", "high": ">"}.get(edges.get(("multiplier", key), ""), "")
        text = f"{mark}x{t['multiplier']:.3g}"
        if t["beta"] is not None:
            bmark = {"low": "<", "high": ">"}.get(edges.get(("beta", key), ""), "")
            text += f", b {bmark}x{t['beta']:.3g}"
        if t.get("warmup") is not None:
            wmark = {"low": "<", "high": ">"}.get(edges.get(("warmup", key), ""), "")
            text += f", w {wmark}{t['warmup']:.3g}"
        rows[(o, sched)][w] = text
    workloads = list(dict.fromkeys(k.split("/")[0] for k in cells))
    lines += ["| optimizer | schedule | " + " | ".join(workloads) + " |"]
    lines.append("|---" * (len(workloads) + 2) + "|")
    for (o, sched), by_w in sorted(rows.items(), key=lambda kv: (kv[0][0], _sched_order(kv[0][1]))):
        lines.append(f"| {o} | {sched} | " + " | ".join(by_w.get(w, "") for w in workloads) + " |")
    n_edge = len(tuning["edge_hits"])
    lines += ["", f"Optima still at an edge after widening: {n_edge}.", ""]
    return lines


def _speed_lines(speed: dict) -> list[str]:
    lines = [
        "## Time to target (tuned protocol)",
        "",
        "AlgoPerf-style second reading: per family and workload, the target is the best "
        "baseline's median (over held-out seeds) of its runs' best evaluated training loss "
        "(GreedyLR does not set it); time to target = the first evaluation (every 10% of the "
        "budget) at or below it; seconds = wall time x that fraction of the budget. Score = "
        "area under the performance profile for tau in [1, 4] (1: fastest on every problem). "
        "Mean rank: of the final loss over the same problems (1 = best).",
        "",
    ]
    for family, block in speed.items():
        r = block["readings"]
        lines += [
            f"**{family} family** ({block['profile_steps']['n_problems']} problems). Best by "
            f"final loss (mean rank): {r['final_loss']}; by time to target: "
            f"{r['time_to_target_steps']} (steps), {r['time_to_target_seconds']} (seconds).",
            "",
            "| method | profile score (steps) | profile score (s) | median steps | "
            "median s | reached | mean rank, final loss |",
            "|---|---|---|---|---|---|---|",
        ]
        for m, info in block["profile_steps"]["methods"].items():
            t, sec = (
                block["methods"][m]["steps_to_target"],
                block["methods"][m]["seconds_to_target"],
            )
            lines.append(
                f"| {m} | {info['score']:.3f} | "
                f"{block['profile_seconds']['methods'][m]['score']:.3f} | {t['median']:g} | "
                f"{sec['median']:.3g} | {t['reached']}/{t['n']} | "
                f"{block['methods'][m]['mean_rank_final_loss']:.2f} |"
            )
        lines.append("")
    return lines


def _label_lines(block: dict) -> list[str]:
    sc, v = block["scoring"], block["scoring_val"]
    lines = [
        "## Paper protocol: the paper's label table",
        "",
        "Pooled over stages as the paper does (the pairs are not independent: see the "
        'intervals above); |delta| < 0.1 is "slightly".',
        "",
        "| stage | clearly better | slightly better | slightly worse | clearly worse | "
        "as good or better | paper |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = list(sc["by_stage"].items()) + [("overall", sc["overall"])]
    for stage, t in rows:
        c = t["counts"]
        lines.append(
            f"| {stage} | {c['clearly better']} | {c['slightly better']} | "
            f"{c['slightly worse']} | {c['clearly worse']} | {_pct(t)} | "
            f"{PAPER_SHARES[stage]:.2f}% |"
        )
    o = sc["overall"]

    def labels(counts: dict[str, int]) -> str:
        return " / ".join(str(counts[label]) for label in LABELS)

    both = " / ".join(str(t["both_diverged"]) for _, t in rows)
    lines += [
        "",
        "Labels under each reading (overall: clearly better / slightly better / slightly worse / "
        f"clearly worse; not clearly worse): absolute difference {labels(o['counts'])}; "
        f"{o['share_not_clearly_worse']:.2f}%. Log ratio ln(L_baseline / L_GreedyLR) "
        f"{labels(o['log_counts'])}; {o['share_log_not_clearly_worse']:.2f}%. Difference / "
        f"L_initial {labels(o['initial_counts'])}; {o['share_initial_not_clearly_worse']:.2f}%. "
        f"Scored on the validation loss: {_pct(v['overall'])}. Both-diverged pairs (no label), "
        f"10% / 50% / 100% / overall: {both}.",
        "",
    ]
    return lines


def _final_loss_lines(final: dict) -> list[str]:
    lines = ["**Final training loss (mean ± 95% CI over held-out seeds)**", ""]
    for w, by_o in final.items():
        opts = list(by_o)
        scheds = sorted({s for o in opts for s in by_o[o]}, key=_sched_order)
        lines += [f"*{w}*", "", "| schedule | " + " | ".join(opts) + " |"]
        lines.append("|---" * (len(opts) + 1) + "|")
        for s in scheds:
            cells = [format_mean_ci(by_o[o][s], 3) if s in by_o[o] else "" for o in opts]
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _sched_order(name: str) -> int:
    order = SCHEDULES + (
        "hd_parameter",
        "hd_group",
        "sls",
        "schedulefree",
        "prodigy",
        "dadaptation",
    )
    return order.index(name) if name in order else len(order)


def _factor_lines(factor: dict) -> list[str]:
    if not factor:
        return []
    fs = sorted({f for by_f in factor.values() for f in by_f}, key=float)
    lines = ["**Factor sweep: final training loss of GreedyLR (SGD) per F**", ""]
    lines += ["| workload | " + " | ".join(f"F={f}" for f in fs) + " |"]
    lines.append("|---" * (len(fs) + 1) + "|")
    for w, by_f in factor.items():
        cells = [format_mean_ci(by_f[f], 3) if f in by_f else "" for f in fs]
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    return lines + [""]


def _robust_lines(robust: dict) -> list[str]:
    if not robust:
        return []
    lines = [
        "**Robustness: final training loss under noise (SGD)** — gradient noise sigma x the "
        "first step's RMS gradient entry; loss noise sigma x the first loss, seen only by the "
        "scheduler",
        "",
    ]
    variants = list(ROBUST_VARIANTS)
    lines += ["| workload | noise | sigma | " + " | ".join(variants) + " |"]
    lines.append("|---" * (len(variants) + 3) + "|")
    for w, by_kind in robust.items():
        for kind, by_level in by_kind.items():
            for level, by_v in sorted(by_level.items(), key=lambda kv: float(kv[0])):
                cells = [
                    format_mean_ci(by_v[v]["final_loss"], 3) if v in by_v else "" for v in variants
                ]
                lines.append(f"| {w} | {kind} | {level} | " + " | ".join(cells) + " |")
    return lines + [""]
