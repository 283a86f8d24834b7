"""``python -m experiments.greedylr`` (``make reproduce-greedylr``): the GreedyLR study.

Stages, each a resumable sweep of :mod:`experiments.runner`: **main** (every workload x optimizer
x schedule x seed), **factor** (GreedyLR's ``F`` on SGD), **robustness** (gradient and loss
noise), then the summary (``summary.json``, ``table.md``, figures). See
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
from experiments.runner import run_sweep


def main(argv: list[str] | None = None) -> dict:
    args, out = parse_pipeline_args(
        "greedylr", "Paper 3: GreedyLR against classic schedules and adaptive baselines.", argv
    )
    config = QUICK if args.quick else FULL
    start = time.perf_counter()
    kw = sweep_options(args)
    with running(args):
        main_records = run_sweep(run_greedy, main_specs(config), out / "main.jsonl", **kw)
        factor_records = run_sweep(run_greedy, factor_specs(config), out / "factor.jsonl", **kw)
        robust_records = run_sweep(run_greedy, robust_specs(config), out / "robustness.jsonl", **kw)
    summary = summarise(config, main_records, factor_records, robust_records)
    figures = plots.greedylr_figures(main_records, factor_records, robust_records, summary, out)
    summary["figures"] = [p.name for p in figures]
    inputs = input_digests(
        ("digits", "shakespeare"),
        config=config,
        specs=[*main_records, *factor_records, *robust_records],
    )
    return finish(args, out, summary, markdown_table(summary), start, inputs=inputs)


if __name__ == "__main__":
    main()
