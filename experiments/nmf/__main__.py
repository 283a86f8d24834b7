"""``python -m experiments.nmf`` (``make reproduce-nmf``): the NMF study, every stage in one call.

Stages, in order (``--stages`` picks some; each sweep resumes where it stopped):

* ``schedules``: hand-made schedules tuned on training seeds, run on held-out seeds, and
  scikit-learn's NMF -> ``OUT/summary.json``, ``table.md``, figures;
* ``bound``: how tight the stability bound is -> ``OUT/bound_tightness.{md,json}``;
* ``rl``: PPO-learned schedules against tuned schedules on held-out instances ->
  ``OUT/rl/``: the headline agent (bound-relative actions, rewards relative to the neutral
  policy, 40 PPO passes per batch); ``--ablation`` adds, on fewer seeds, the previous
  headlines ``learned_relative`` and ``learned``, the earlier multiplicative, shielded design
  (also with its shield at the bound itself), ``learned`` with the certifying shield and
  ``learned`` with a gradient-noise feature.

The protocol is in ``docs/nmf_study.md``; ``--quick`` is a minutes-long smoke run.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from experiments.common.cli import finish, parse_pipeline_args, running, sweep_options
from experiments.common.provenance import DATASETS, input_digests
from experiments.nmf import plots, report, rl, schedules
from experiments.nmf.bound import bound_stage
from experiments.nmf.config import (
    ABLATIONS,
    RL_FULL,
    RL_QUICK,
    SCHEDULES_FULL,
    SCHEDULES_QUICK,
)
from experiments.nmf.pretrained import pretrained_stage

STAGES = ("schedules", "bound", "rl")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stages",
        default=",".join(STAGES),
        help=f"comma-separated stages to run, of {', '.join(STAGES)} (default: all)",
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="rl stage: also train and evaluate the variants of experiments.nmf.config.ABLATIONS "
        f"({', '.join(ABLATIONS)})",
    )


def run_schedules(args: argparse.Namespace, out: Path) -> dict:
    config = SCHEDULES_QUICK if args.quick else SCHEDULES_FULL
    start = time.perf_counter()
    sweep = sweep_options(args)
    best = schedules.tune(config, out, **sweep)
    eval_records = schedules.evaluate(config, best, out, **sweep)
    sk_records = schedules.sklearn_reference(config, out, **sweep)
    summary = report.summarise_schedules(config, best, eval_records, sk_records)
    plots.nmf_figures(summary, eval_records, out)
    # faces: the bound stage's instance, hashed here so that the study's summary names all its data
    inputs = input_digests(("digits", "faces"), config=config, specs=[*eval_records, *sk_records])
    return finish(args, out, summary, report.schedules_table(summary), start, inputs=inputs)


def run_rl(args: argparse.Namespace, out: Path) -> dict:
    config = RL_QUICK if args.quick else RL_FULL
    if args.ablation:
        # dict.fromkeys: a variant in both lists trains once
        config = replace(config, variants=tuple(dict.fromkeys((*config.variants, *ABLATIONS))))
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    sweep = sweep_options(args)
    agents = rl.train(config, out, **sweep)
    best = rl.tune(config, out, **sweep)
    baseline, learned = rl.evaluate(config, best, out, **sweep)
    summary = report.summarise_rl(config, best, agents, baseline, learned)
    summary["pretrained"] = pretrained_stage(config, out, learned, quick=args.quick, **sweep)
    summary["headline"].append(summary["pretrained"]["headline"])
    summary["env_steps_per_s"] = rl.env_throughput(config)
    plots.rl_figures(summary, baseline, learned, agents, out)
    inputs = input_digests(
        [d for d in config.datasets if d in DATASETS],
        config=config,
        specs=[*agents, *baseline, *learned],
    )
    return finish(args, out, summary, report.rl_table(summary), start, inputs=inputs)


def main(argv: list[str] | None = None) -> dict[str, dict | str]:
    """Run the chosen stages; return ``{stage: its summary (or the bound table)}``."""
    args, out = parse_pipeline_args(
        "nmf", "Paper 1: learning-rate schedules for stochastic NMF.", argv, _add_arguments
    )
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown or not stages:
        raise SystemExit(f"--stages: choose from {', '.join(STAGES)}, got {args.stages!r}")
    done: dict[str, dict | str] = {}
    with running(args):
        if "schedules" in stages:
            done["schedules"] = run_schedules(args, out)
        if "bound" in stages:
            done["bound"] = bound_stage(out, quick=args.quick)
            if not args.quiet:
                print(done["bound"])
        if "rl" in stages:
            done["rl"] = run_rl(args, out / "rl")
    return done


if __name__ == "__main__":
    main()
