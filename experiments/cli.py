"""The command line every pipeline shares: ``--quick``, ``--jobs``, ``--out``, ``--quiet``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def parse_pipeline_args(
    name: str,
    description: str,
    argv: list[str] | None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> tuple[argparse.Namespace, Path]:
    """Parse ``python -m experiments.<name>`` options; return them and the (created) output folder.

    The folder defaults to ``results/<name>``, or ``results/<name>-quick`` with ``--quick``, so a
    smoke run never mixes its results with a full run's. ``add_arguments`` adds a pipeline's own
    options to the parser.
    """
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{name}", description=description)
    parser.add_argument(
        "--quick", action="store_true", help="tiny budgets: a smoke run of every stage"
    )
    parser.add_argument("--jobs", type=int, default=2, help="parallel runs (default 2)")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"output folder (default results/{name}[-quick])"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    out = args.out or Path("results") / (f"{name}-quick" if args.quick else name)
    out.mkdir(parents=True, exist_ok=True)
    return args, out
