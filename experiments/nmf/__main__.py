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

With ``--jobs`` > 1 local workers and both the schedules and the rl stage, the schedules stage's
tuning (its longest sweep) runs beside the rl stage's last, partial wave of PPO training (5 seeds
on 2 cores: the third wave trains one agent), in a child process with one worker
(``--stages schedules-tuning``) on the core that wave leaves idle, and alongside the rl stage's
own tuning; the rl stage waits for it before its held-out runs, and the rest of the schedules
stage (held-out runs, scikit-learn, report) runs after the rl stage. So no run whose wall-clock
time is a result shares the cores with another stage's runs, and the files are the same as
when the stages run one after the other.

The protocol is in ``docs/nmf_study.md``; ``--quick`` is a minutes-long smoke run.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import replace
from pathlib import Path

from experiments.common.cli import (
    ChildStage,
    finish,
    parse_pipeline_args,
    running,
    sweep_options,
)
from experiments.common.provenance import DATASETS, input_digests
from experiments.nmf import plots, report, rl, schedules
from experiments.nmf.bound import bound_stage
from experiments.nmf.config import (
    ABLATIONS,
    RL_FULL,
    RL_QUICK,
    SCHEDULES_FULL,
    SCHEDULES_QUICK,
    SchedulesConfig,
)
from experiments.nmf.pretrained import pretrained_stage

STAGES = ("schedules", "bound", "rl")
TUNING_ONLY = "schedules-tuning"
"""The schedules stage's tuning sweep alone (``--stages schedules-tuning``): what the rl stage runs
beside its last wave of PPO training (see the module's docstring)."""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stages",
        default=",".join(STAGES),
        help=f"comma-separated stages to run, of {', '.join(STAGES)} (default: all), or "
        f"{TUNING_ONLY} (the schedules stage's tuning alone)",
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="rl stage: also train and evaluate the variants of experiments.nmf.config.ABLATIONS "
        f"({', '.join(ABLATIONS)})",
    )


def _schedules_config(args: argparse.Namespace) -> SchedulesConfig:
    return SCHEDULES_QUICK if args.quick else SCHEDULES_FULL


def run_schedules(args: argparse.Namespace, out: Path) -> dict:
    config = _schedules_config(args)
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


def run_rl(args: argparse.Namespace, out: Path, *, beside: ChildStage | None = None) -> dict:
    """The rl stage. ``beside``: a child stage started just before the last, partial wave of PPO
    training (:func:`rl.train`) and waited for before the held-out runs, whose wall-clock
    readings are results (seconds to target) and must not share the cores."""
    config = RL_QUICK if args.quick else RL_FULL
    if args.ablation:
        # dict.fromkeys: a variant in both lists trains once
        config = replace(config, variants=tuple(dict.fromkeys((*config.variants, *ABLATIONS))))
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    sweep = sweep_options(args)
    launch = beside.start if beside is not None else None
    agents = rl.train(config, out, wave=args.jobs, before_last_wave=launch, **sweep)
    best = rl.tune(config, out, **sweep)
    if beside is not None:
        beside.finish()
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
    unknown = sorted(set(stages) - {*STAGES, TUNING_ONLY})
    if unknown or not stages:
        raise SystemExit(
            f"--stages: choose from {', '.join(STAGES)} or {TUNING_ONLY}, got {args.stages!r}"
        )
    done: dict[str, dict | str] = {}
    beside = _tuning_beside_ppo(args, stages, out)
    with running(args), beside or contextlib.nullcontext():
        if TUNING_ONLY in stages:
            done[TUNING_ONLY] = schedules.tune(_schedules_config(args), out, **sweep_options(args))
        if "schedules" in stages and beside is None:
            done["schedules"] = run_schedules(args, out)
        if "bound" in stages:
            done["bound"] = bound_stage(out, quick=args.quick)
            if not args.quiet:
                print(done["bound"])
        if "rl" in stages:
            done["rl"] = run_rl(args, out / "rl", beside=beside)
        if beside is not None:  # its tuning is recorded (a failed child's is resumed here)
            done["schedules"] = run_schedules(args, out)
    return done


def _tuning_beside_ppo(args: argparse.Namespace, stages: list[str], out: Path) -> ChildStage | None:
    """The schedules stage's tuning as a child process, which the rl stage runs beside its last,
    partial wave of PPO training on the cores that wave leaves idle, when both stages are asked
    for with ``--jobs`` > 1 local workers (no ``--backend``)."""
    if {"schedules", "rl"} <= set(stages) and args.jobs > 1 and args.backend_name is None:
        return ChildStage("nmf", TUNING_ONLY, args, out)
    return None


if __name__ == "__main__":
    main()
