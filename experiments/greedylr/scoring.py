"""Scoring of the GreedyLR study: GreedyLR-vs-baseline pairs, their labels and tallies.

The definitions (the paper's absolute difference, the two scale-free readings, diverged runs)
are explained in ``docs/greedylr_study.md``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from experiments.common.stats import cluster_bootstrap_share
from experiments.greedylr.config import LABELS, SLIGHT, STAGES


def pair_delta(greedy_loss: float, baseline_loss: float) -> float:
    """The paper's difference ``L_baseline - L_greedy``: > 0 when GreedyLR's loss is lower.

    Non-finite losses (diverged runs) count as ``+inf`` loss: a diverged baseline against a
    finite GreedyLR gives ``+inf``, the reverse ``-inf``; two diverged runs have no winner and
    give ``nan``.
    """
    g, b = _as_loss(greedy_loss), _as_loss(baseline_loss)
    if math.isinf(g) and math.isinf(b):
        return math.nan
    return 0.0 if g == b else b - g


def log_ratio_delta(greedy_loss: float, baseline_loss: float) -> float:
    """``ln(L_baseline / L_greedy)``, the scale-free reading; diverged runs as in :func:`pair_delta`.

    Losses are floored at ``1e-30`` so an exact zero stays comparable.
    """
    g, b = _as_loss(greedy_loss), _as_loss(baseline_loss)
    if math.isinf(g) and math.isinf(b):
        return math.nan
    if g == b:
        return 0.0
    if math.isinf(g):
        return -math.inf
    if math.isinf(b):
        return math.inf
    return math.log(max(b, 1e-30) / max(g, 1e-30))


def _as_loss(x: float) -> float:
    x = float(x)
    return x if math.isfinite(x) else math.inf


def label_delta(delta: float, threshold: float = SLIGHT) -> str:
    """The paper's four labels; ``|delta| < threshold`` is "slightly", ``delta >= 0`` better."""
    if math.isnan(delta):
        raise ValueError("delta must not be NaN")
    if delta >= threshold:
        return "clearly better"
    if delta >= 0:
        return "slightly better"
    if delta > -threshold:
        return "slightly worse"
    return "clearly worse"


BOTH_DIVERGED = "both diverged"
"""The label of a pair whose two runs diverged (no winner; left out of counts and shares)."""

READINGS: dict[str, str] = {
    "counts": "delta",
    "log_counts": "delta_log",
    "initial_counts": "delta_initial",
}
"""Label counts in :func:`tally` -> the pair's delta they are computed from."""


def stage_name(fraction: float) -> str:
    return f"{100 * fraction:g}%"


def loss_at(result: dict[str, Any], fraction: float, key: str = "train_eval_loss") -> float:
    """The evaluated loss at ``fraction`` of the run's budget (``inf`` once diverged)."""
    steps = result["eval_steps"]
    budget = steps[-1]
    idx = steps.index(round(fraction * budget))
    return float(result[key][idx])


RunLosses = dict[tuple[str, str, int], dict[str, dict[str, float]]]
"""(workload, optimizer, seed) -> schedule -> stage ("0%", "10%", ...) -> evaluated loss."""

_TABLE_STAGES = (0.0, *STAGES)


def stage_losses(records: Sequence[dict[str, Any]], key: str = "train_eval_loss") -> RunLosses:
    """The losses the scoring reads (initial and every stage) of the main sweep's ok records.

    Records of failed runs and of the factor and robustness sweeps are skipped.
    """
    runs: RunLosses = defaultdict(dict)
    for rec in records:
        if rec["status"] != "ok":
            continue
        s = rec["spec"]
        if s["greedy"] or s["grad_noise"] or s["loss_noise"]:
            continue
        runs[(s["workload"], s["optimizer"], int(s["seed"]))][s["scheduler"]] = {
            stage_name(f): loss_at(rec["result"], f, key) for f in _TABLE_STAGES
        }
    return dict(runs)


def score_pairs(records: Sequence[dict[str, Any]], key: str = "train_eval_loss") -> list[dict]:
    """Every GreedyLR-vs-baseline pair of the main sweep at every stage (see :func:`pairs_of`)."""
    return pairs_of(stage_losses(records, key))


def pairs_of(runs: RunLosses) -> list[dict[str, Any]]:
    """Every GreedyLR-vs-baseline pair at every stage, with its deltas and label.

    Pairs share the workload, optimizer and seed; the baselines are every other schedule of that
    optimizer and its adaptive replacements. ``delta`` is :func:`pair_delta` (the paper's
    difference); the other readings are ``delta_log`` (:func:`log_ratio_delta`) and
    ``delta_initial`` (``delta`` divided by GreedyLR's initial loss). Both-diverged pairs get
    ``nan`` deltas and the label :data:`BOTH_DIVERGED`.
    """
    pairs = []
    for (workload, optimizer, seed), by_sched in sorted(runs.items()):
        greedy = by_sched.get("greedy")
        if greedy is None:
            continue
        initial = greedy[stage_name(0.0)]
        for baseline, losses in sorted(by_sched.items()):
            if baseline == "greedy":
                continue
            for stage in map(stage_name, STAGES):
                g, b = _as_loss(greedy[stage]), _as_loss(losses[stage])
                delta = pair_delta(g, b)
                pairs.append(
                    {
                        "workload": workload,
                        "optimizer": optimizer,
                        "seed": seed,
                        "baseline": baseline,
                        "stage": stage,
                        "greedy_loss": g,
                        "baseline_loss": b,
                        "delta": delta,
                        "label": BOTH_DIVERGED if math.isnan(delta) else label_delta(delta),
                        "delta_log": log_ratio_delta(g, b),
                        "delta_initial": delta / initial if initial > 0 else delta,
                    }
                )
    return pairs


def run_table(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The main runs' losses at 0/10/50/100% of the budget, one CSV line per run (summary.json).

    Losses keep 6 significant digits, so pairs that differ only beyond them rebuild as ties; the
    reference run's scoring rebuilds exactly from its table.
    """
    columns = ["workload", "optimizer", "schedule", "seed"]
    columns += [f"loss_{stage_name(f)}" for f in _TABLE_STAGES]
    rows = [
        ",".join([w, o, sched, str(seed)] + [f"{losses[stage_name(f)]:.6g}" for f in _TABLE_STAGES])
        for (w, o, seed), by_sched in sorted(stage_losses(records).items())
        for sched, losses in sorted(by_sched.items())
    ]
    return {"columns": ",".join(columns), "rows": rows}


def runs_from_table(table: dict[str, Any]) -> RunLosses:
    """Invert :func:`run_table`: ``pairs_of(runs_from_table(summary["runs"]))`` rebuilds the pairs."""
    stages = [c.removeprefix("loss_") for c in table["columns"].split(",")[4:]]
    runs: RunLosses = defaultdict(dict)
    for row in table["rows"]:
        w, o, sched, seed, *losses = row.split(",")
        runs[(w, o, int(seed))][sched] = dict(zip(stages, map(float, losses), strict=True))
    return dict(runs)


def tally(pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Label counts and "as good or better" shares (in percent) of a set of pairs.

    Both-diverged pairs are left out of ``n``, every count and every share; ``both_diverged``
    counts them. ``share`` (the headline) counts ``delta >= 0``; ``share_not_clearly_worse``
    counts ``delta > -0.1``. ``log_counts`` / ``initial_counts`` are the labels under the other
    readings (``delta_log``, ``delta_initial``); they have the sign of ``delta``, so only the
    split between "slightly" and "clearly" (and the "not clearly worse" share) can differ.
    """
    scored = [p for p in pairs if p["label"] != BOTH_DIVERGED]
    n = len(scored)

    def pct(k: int) -> float:
        return 100.0 * k / n if n else math.nan

    out: dict[str, Any] = {"n": n, "both_diverged": len(pairs) - n}
    for name, delta in READINGS.items():
        counts = {label: 0 for label in LABELS}
        for p in scored:
            counts[label_delta(p[delta])] += 1
        out[name] = counts
    good = out["counts"]["clearly better"] + out["counts"]["slightly better"]
    out |= {"as_good_or_better": good, "share": pct(good)}
    out["share_not_clearly_worse"] = pct(n - out["counts"]["clearly worse"])
    for prefix in ("log", "initial"):
        out[f"share_{prefix}_not_clearly_worse"] = pct(n - out[f"{prefix}_counts"]["clearly worse"])
    return out


def aggregate(pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """:func:`tally` per stage, overall, per baseline, per workload and per optimizer."""

    def by(key: str) -> dict[str, Any]:
        groups: dict[str, list] = defaultdict(list)
        for p in pairs:
            groups[p[key]].append(p)
        return {k: tally(v) | {"by_stage": _by_stage(v)} for k, v in sorted(groups.items())}

    return {
        "by_stage": _by_stage(pairs),
        "overall": tally(pairs),
        "by_baseline": by("baseline"),
        "by_workload": by("workload"),
        "by_optimizer": by("optimizer"),
    }


def _by_stage(pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {stage_name(f): tally([p for p in pairs if p["stage"] == stage_name(f)]) for f in STAGES}


# ---------------------------------------------------------------------------- clustered shares
APART = ("adamw",)
"""Optimizers whose pairs are reported apart from the pooled shares (AdamW at weight decay 0.01
gave the same outcome as Adam in 99.7% of pairs: pooling it would count Adam's pairs twice)."""

FINAL = stage_name(STAGES[-1])


def share_ci(pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The "as good or better" share (a fraction in [0, 1]) with its cluster-bootstrap interval.

    Pairs of one (workload, seed) share their runs, so they are resampled together
    (:func:`~experiments.common.stats.cluster_bootstrap_share`). Both-diverged pairs are left
    out; with no pair left the value and interval are ``nan``.
    """
    scored = [p for p in pairs if p["label"] != BOTH_DIVERGED]
    if not scored:
        return {"value": math.nan, "ci95": [math.nan, math.nan], "n": 0, "n_clusters": 0}
    return cluster_bootstrap_share(
        [p["delta"] >= 0 for p in scored], [(p["workload"], p["seed"]) for p in scored]
    )


def clustered_shares(pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Shares with cluster intervals: pooled final stage, per stage, per workload x stage, per
    baseline (final stage); the optimizers of :data:`APART` in their own block ``apart``."""
    pooled = [p for p in pairs if p["optimizer"] not in APART]
    out = _shares(pooled)
    apart = {o: [p for p in pairs if p["optimizer"] == o] for o in APART}
    out["apart"] = {o: _shares(ps) for o, ps in apart.items() if ps}
    return out


def _shares(pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    def at(stage: str, subset: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return [p for p in subset if p["stage"] == stage]

    stages = [stage_name(f) for f in STAGES]
    workloads = sorted({p["workload"] for p in pairs})
    baselines = sorted({p["baseline"] for p in pairs})
    return {
        "final": share_ci(at(FINAL, pairs)),
        "by_stage": {st: share_ci(at(st, pairs)) for st in stages},
        "by_workload": {
            w: {st: share_ci(at(st, [p for p in pairs if p["workload"] == w])) for st in stages}
            for w in workloads
        },
        "by_baseline": {
            b: share_ci(at(FINAL, [p for p in pairs if p["baseline"] == b])) for b in baselines
        },
    }
