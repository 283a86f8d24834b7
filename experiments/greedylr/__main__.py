"""``python -m experiments.greedylr`` (``make reproduce-greedylr``): the GreedyLR study.

Stages, each a resumable sweep of :mod:`experiments.runner`: **tuning** (every cell's starting
rate, and the hypergradient step, on the tuning seeds, one sweep per widening round, into
``tuning.jsonl``), **main** (the held-out seeds: the tuned protocol at the tuned settings and the
paper protocol at the shared rate, into one ``main.jsonl``, so a run both need runs once),
**factor** (GreedyLR's ``F`` on SGD) and **robustness** (gradient and loss noise), both at the
tuned rates, then the summary (``summary.json``, ``table.md``, figures). See
``docs/greedylr_study.md``; ``--quick`` is a smoke run.
"""

from __future__ import annotations

import time

from experiments.common.cli import finish, parse_pipeline_args, running, sweep_options
from experiments.common.provenance import input_digests
from experiments.greedylr import plots
from experiments.greedylr.config import FULL, QUICK, factor_specs, main_specs, robust_specs
from experiments.greedylr.report import markdown_table, summarise
from experiments.greedylr.training import run_greedy
from experiments.greedylr.tuned import tune, tuned_specs
from experiments.runner import run_sweep


def main(argv: list[str] | None = None) -> dict:
    args, out = parse_pipeline_args(
        "greedylr", "Paper 3: GreedyLR against classic schedules and adaptive baselines.", argv
    )
    config = QUICK if args.quick else FULL
    start = time.perf_counter()
    kw = sweep_options(args)
    tuning_records: dict[str, dict] = {}

    def tuning_sweep(specs: list) -> list[dict]:
        records = run_sweep(run_greedy, specs, out / "tuning.jsonl", **kw)
        tuning_records.update((r["spec_id"], r) for r in records)
        return records

    with running(args):
        tuned = tune(config, tuning_sweep)
        rates = {cell: t["multiplier"] for cell, t in tuned.items()}
        tuned_records = run_sweep(run_greedy, tuned_specs(config, tuned), out / "main.jsonl", **kw)
        paper_records = run_sweep(run_greedy, main_specs(config), out / "main.jsonl", **kw)
        factor_records = run_sweep(
            run_greedy, factor_specs(config, rates), out / "factor.jsonl", **kw
        )
        robust_records = run_sweep(
            run_greedy, robust_specs(config, rates), out / "robustness.jsonl", **kw
        )
    tuning = list(tuning_records.values())
    summary = summarise(
        config, tuned, tuned_records, paper_records, factor_records, robust_records, tuning
    )
    figures = plots.greedylr_figures(tuned_records, factor_records, robust_records, summary, out)
    summary["figures"] = [p.name for p in figures]
    inputs = input_digests(
        ("digits", "shakespeare"),
        config=config,
        specs=[*tuning, *tuned_records, *paper_records, *factor_records, *robust_records],
    )
    return finish(args, out, summary, markdown_table(summary), start, inputs=inputs)


if __name__ == "__main__":
    main()
