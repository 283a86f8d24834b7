"""The GreedyLR study's ``summary.json`` and ``table.md``, from the sweeps' records."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict
from typing import Any

from experiments.common.stats import format_mean_ci, mean_ci
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
from experiments.greedylr.scoring import aggregate, loss_at, run_table, score_pairs


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


def summarise(
    config: Config,
    main_records: list[dict],
    factor_records: list[dict],
    robust_records: list[dict],
) -> dict[str, Any]:
    """Scoring, final losses, factor sweep and robustness, as one JSON-able dict."""
    pairs = score_pairs(main_records)
    val_pairs = score_pairs(main_records, key="val_loss")
    failed = [
        r["spec_id"] for r in main_records + factor_records + robust_records if r["status"] != "ok"
    ]
    diverged = sum(bool(r["result"]["diverged"]) for r in main_records if r["status"] == "ok")
    return {
        "config": _config_dict(config),
        "n_runs": {
            "main": len(main_records),
            "factor": len(factor_records),
            "robustness": len(robust_records),
        },
        "failed_runs": failed,
        "diverged_main_runs": diverged,
        "scoring": aggregate(pairs),
        "scoring_val": aggregate(val_pairs),
        "paper_shares": PAPER_SHARES,
        "final_train_loss": _final_losses(main_records),
        "factor_sweep": summarise_factor(factor_records, main_records),
        "robustness": summarise_robustness(robust_records),
        "runs": run_table(main_records),
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
    }


def _pct(t: dict) -> str:
    return "—" if not t["n"] else f"{t['share']:.2f}% ({t['as_good_or_better']}/{t['n']})"


def markdown_table(summary: dict) -> str:
    """The scoring table (counts and shares next to the paper's) and the supporting tables."""
    sc = summary["scoring"]
    lines = [
        "**GreedyLR vs every other schedule, per (workload, optimizer, seed) pair** — "
        "delta = L_baseline - L_GreedyLR of the training objective on a fixed evaluation set "
        '(the paper\'s absolute difference); |delta| < 0.1 is "slightly"; "as good or better" is '
        "delta >= 0.",
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
    o, v = sc["overall"], summary["scoring_val"]["overall"]
    both = " / ".join(str(t["both_diverged"]) for _, t in rows)

    def labels(counts: dict[str, int]) -> str:
        return " / ".join(str(counts[label]) for label in LABELS)

    lines += [
        "",
        "A threshold of 0.1 in loss units means something different on every workload. Labels "
        "under each reading (overall: clearly better / slightly better / slightly worse / "
        "clearly worse; not clearly worse): absolute difference (above) "
        f"{labels(o['counts'])}; {o['share_not_clearly_worse']:.2f}%. Log ratio "
        'ln(L_baseline / L_GreedyLR) (|.| < 0.1 is "slightly", i.e. within about 10%) '
        f"{labels(o['log_counts'])}; {o['share_log_not_clearly_worse']:.2f}%. Difference "
        "normalised by the initial loss, (L_baseline - L_GreedyLR) / L_initial, "
        f"{labels(o['initial_counts'])}; {o['share_initial_not_clearly_worse']:.2f}%. All three "
        'have the sign of L_baseline - L_GreedyLR, so the same "as good or better" share. '
        "Scored on the validation loss: "
        f"{v['share']:.2f}% ({v['as_good_or_better']}/{v['n']}).",
        "",
        f"Diverged runs in the main sweep: {summary['diverged_main_runs']}. Pairs in which both "
        "runs diverged (no label; left out of every count and share above), 10% / 50% / 100% / "
        f"overall: {both}.",
        "",
        "**As good or better, per baseline** (stages 10% / 50% / 100%, overall)",
        "",
        "| baseline | 10% | 50% | 100% | overall |",
        "|---|---|---|---|---|",
    ]
    for name, t in sc["by_baseline"].items():
        stages = " | ".join(f"{s['share']:.0f}%" for s in t["by_stage"].values())
        lines.append(f"| {name} | {stages} | {_pct(t)} |")
    lines += ["", "**As good or better, per workload and per optimizer**", ""]
    lines += ["| group | 10% | 50% | 100% | overall |", "|---|---|---|---|---|"]
    for kind in ("by_workload", "by_optimizer"):
        for name, t in sc[kind].items():
            stages = " | ".join(f"{s['share']:.0f}%" for s in t["by_stage"].values())
            lines.append(f"| {name} | {stages} | {_pct(t)} |")
    lines += _final_loss_lines(summary["final_train_loss"])
    lines += _factor_lines(summary["factor_sweep"])
    lines += _robust_lines(summary["robustness"])
    return "\n".join(lines) + "\n"


def _final_loss_lines(final: dict) -> list[str]:
    lines = ["", "**Final training loss (mean ± 95% CI over seeds)**", ""]
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
    order = SCHEDULES + ("hd_parameter", "hd_group", "sls")
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
