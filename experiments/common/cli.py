"""The command line every pipeline shares: ``--quick``, ``--jobs``, ``--backend``, ``--out``, ``--quiet``.

A pipeline parses its options with :func:`parse_pipeline_args` and passes
``**sweep_options(args)`` to every :func:`experiments.runner.run_sweep` call, so where the runs
execute (``--jobs`` worker processes, or any backend given with ``--backend``) is chosen on the
command line without touching the pipeline.
"""

from __future__ import annotations

import argparse
import importlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.runner import Backend, write_json_atomic, write_text_atomic

BACKEND_ENV = "EXPERIMENTS_BACKEND"
"""Environment variable read when ``--backend`` is not given."""


def load_backend(target: str) -> Backend:
    """Build the backend named by ``"module:factory"``: import ``module``, call ``factory()``.

    ``factory`` is an attribute path in the module (``"pkg.backends:make_ray"``,
    ``"pkg.backends:RayBackend"``, ``"pkg.backends:Backends.slurm"``) and is called with no
    arguments; it must return an object with a ``map_unordered(fn, items)`` method (see
    :class:`experiments.runner.Backend`).

    Raises
    ------
    ValueError
        If ``target`` is not of the form ``module:factory``.
    ImportError
        If the module cannot be imported.
    AttributeError
        If the module has no such factory.
    TypeError
        If the factory is not callable or does not return a backend.
    """
    module_name, sep, attr_path = target.partition(":")
    if not (sep and module_name and attr_path):
        raise ValueError(f"expected 'module:factory', got {target!r}")
    factory: Any = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        factory = getattr(factory, attr)
    if not callable(factory):
        raise TypeError(f"{target} is not callable")
    backend = factory()
    if not callable(getattr(backend, "map_unordered", None)):
        raise TypeError(f"{target}() returned {backend!r}, which has no map_unordered method")
    return backend


def parse_pipeline_args(
    name: str,
    description: str,
    argv: list[str] | None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> tuple[argparse.Namespace, Path]:
    """Parse ``python -m experiments.<name>`` options; return them and the (created) output folder.

    The folder defaults to ``results/<name>``, or ``results/<name>-quick`` with ``--quick``, so a
    smoke run never mixes its results with a full run's. ``add_arguments`` adds a pipeline's own
    options to the parser. ``args.backend`` is the backend built by :func:`load_backend` from
    ``--backend`` (or :data:`BACKEND_ENV`), or ``None``; pass the runs' options on with
    :func:`sweep_options`.
    """
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{name}", description=description)
    parser.add_argument(
        "--quick", action="store_true", help="tiny budgets: a smoke run of every stage"
    )
    parser.add_argument("--jobs", type=int, default=2, help="parallel runs (default 2)")
    parser.add_argument(
        "--backend",
        metavar="MODULE:FACTORY",
        default=os.environ.get(BACKEND_ENV) or None,
        help=(
            "run the sweeps on the backend returned by FACTORY() from MODULE (e.g. a Ray, Dask "
            f"or Slurm adapter) instead of --jobs local processes; default ${BACKEND_ENV}"
        ),
    )
    parser.add_argument(
        "--out", type=Path, default=None, help=f"output folder (default results/{name}[-quick])"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if args.backend is not None:
        try:
            args.backend = load_backend(args.backend)
        except (ImportError, AttributeError, TypeError, ValueError) as exc:
            parser.error(f"--backend {args.backend}: {exc}")
    out = args.out or Path("results") / (f"{name}-quick" if args.quick else name)
    out.mkdir(parents=True, exist_ok=True)
    return args, out


def sweep_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for :func:`experiments.runner.run_sweep` from the parsed options.

    ``{"backend": ..., "quiet": ...}`` when a backend was given (``--jobs`` is then unused: the
    backend decides how many runs go at once), else ``{"jobs": ..., "quiet": ...}``.
    """
    if getattr(args, "backend", None) is not None:
        return {"backend": args.backend, "quiet": args.quiet}
    return {"jobs": args.jobs, "quiet": args.quiet}


def finish(args: argparse.Namespace, out: Path, summary: dict, table: str, start: float) -> dict:
    """End a pipeline run: write ``summary.json`` and ``table.md``, print them unless ``--quiet``.

    Adds ``wall_time_s`` (since ``start``, a :func:`time.perf_counter` reading) and ``jobs``
    (the backend's repr when ``--backend`` was given) to ``summary``, and returns it.
    """
    summary["wall_time_s"] = time.perf_counter() - start
    summary["jobs"] = args.jobs if args.backend is None else repr(args.backend)
    write_json_atomic(out / "summary.json", summary)
    write_text_atomic(out / "table.md", table)
    if not args.quiet:
        print(table)
        print(f"wrote {out}/ in {summary['wall_time_s']:.0f} s")
    return summary
