"""``python -m experiments.dnn`` (``make reproduce-dnn``): the DNN study.

A PPO agent schedules the learning rate of CV and NLP training; stages **train** (PPO seeds,
baseline tuning, random search on the training seeds; training and validation splits only),
**eval** (held-out seeds, each final model measured once on the test split) and the summary. The
protocol is in ``docs/dnn.md``; ``--quick`` is a minute-long smoke run and ``--config gpu`` the
(larger, unmeasured) GPU configuration.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from experiments.common.cli import finish, parse_pipeline_args, running, sweep_options
from experiments.common.provenance import DATASETS, input_digests
from experiments.dnn import plots
from experiments.dnn.config import CONFIGS, QUICK
from experiments.dnn.pretrained import write_shipments
from experiments.dnn.report import markdown_table, method_runs, summarise
from experiments.dnn.runs import eval_stage, train_stage

DESCRIPTION = "Paper 2: a PPO agent schedules the learning rate of CV and NLP training."


def _add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        choices=sorted(CONFIGS),
        default="cpu",
        help="cpu (default): the 2-core configuration; gpu: the larger, unmeasured configuration "
        "for one GPU (default output results/dnn-gpu); --quick overrides both",
    )


def _parse(argv: list[str] | None) -> tuple[argparse.Namespace, Path]:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    _add_config_argument(pre)
    pre.add_argument("--out", default=None)
    pre.add_argument("--quick", action="store_true")
    known, _ = pre.parse_known_args(argv)
    if known.config == "gpu" and known.out is None and not known.quick:
        argv += ["--out", str(Path("results") / "dnn-gpu")]
    return parse_pipeline_args("dnn", DESCRIPTION, argv, _add_config_argument)


def main(argv: list[str] | None = None) -> dict:
    args, out = _parse(argv)
    config = QUICK if args.quick else CONFIGS[args.config]
    start = time.perf_counter()
    sweep = sweep_options(args)
    with running(args):
        trained = train_stage(config, out, **sweep)
        evaluated = eval_stage(config, trained, out, **sweep)
    write_shipments(trained, evaluated, out, quick=args.quick)
    summary = summarise(config, trained, evaluated)
    runs = method_runs(config, trained, evaluated)
    figures = plots.dnn_figures(runs, summary, out)
    summary["figures"] = [p.name for p in figures]
    if summary["failed_runs"]:
        print(
            f"warning: {len(summary['failed_runs'])} held-out run(s) failed and are missing from "
            f"the table; see {out / 'eval.jsonl'} (rerunning retries them)",
            file=sys.stderr,
        )
    # The train stage's runs follow from the configuration; the held-out runs are listed.
    inputs = input_digests(
        [t.dataset for t in config.tasks if t.dataset in DATASETS],
        config=config,
        specs=[rec for _, _, rec in evaluated],
    )
    return finish(args, out, summary, markdown_table(summary), start, inputs=inputs)


if __name__ == "__main__":
    main()
