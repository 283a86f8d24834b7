"""The command line every study shares: ``--quick``, ``--jobs``, ``--backend``, ``--out``,
``--quiet``, ``--strict``; :class:`ChildStage` runs one stage of a study beside another.

A study parses its options with :func:`parse_pipeline_args`, runs inside
``with running(args):`` and passes ``**sweep_options(args)`` to every
:func:`experiments.runner.run_sweep` call. All the sweeps of a run then share one backend
(:func:`experiments.runner.make_backend`): a warm pool of ``--jobs`` worker processes, a Ray
cluster (``--backend ray``) or any engine given as ``--backend module:factory``, chosen on the
command line without touching the study. ``--strict`` restarts the command in the strict
environment (:data:`experiments.common.provenance.STRICT_ENV`) unless it already runs in it, and
:func:`finish` writes the run's :func:`~experiments.common.provenance.provenance` into its
``summary.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from experiments.common.provenance import STRICT_ENV, is_strict, provenance
from experiments.runner import make_backend, write_json_atomic, write_text_atomic

BACKEND_ENV = "EXPERIMENTS_BACKEND"
"""Environment variable read when ``--backend`` is not given."""

RUN_ENV_DEFAULTS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
"""What ``make`` exports; a study started without it fills these in (:func:`_fill_run_env`).

Runs are parallelised across processes, one BLAS thread each: with the libraries' default of
one thread per core, ``--jobs 2`` on 2 cores ran four threads, and on the NMF study's small
matrices PPO training took 2.4 times as long. The worker processes are spawned, so they read
these variables when they start; this process's BLAS is already loaded and is limited through
threadpoolctl instead, and its hash seed cannot change any more (``make`` and ``--strict`` set
it before it starts)."""

CHILD_STAGE_ENV = "EXPERIMENTS_CHILD_STAGE"
"""Set in a :class:`ChildStage`'s environment: the child then answers SIGINT (see
:func:`interruptible_if_child`)."""

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""A user who sets any of these chooses the thread counts: the study then sets none."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def parse_pipeline_args(
    name: str,
    description: str,
    argv: list[str] | None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    *,
    folder: str | None = None,
) -> tuple[argparse.Namespace, Path]:
    """Parse ``python -m experiments.<name>`` options; return them and the (created) output folder.

    The folder defaults to ``results/<folder>`` (``folder`` defaults to ``name``), or
    ``results/<folder>-quick`` with ``--quick``, so a smoke run never mixes its results with a
    full run's. ``add_arguments`` adds a study's own
    options. ``args.backend`` is the backend every sweep of the run uses
    (:func:`experiments.runner.make_backend` of ``--backend`` or :data:`BACKEND_ENV`, and
    ``--jobs``); ``args.backend_name`` is the name it was built from (``None`` for the local
    default). Bad values end in a usage error (exit status 2) naming the option.
    """
    folder = folder or name
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{name}", description=description)
    parser.add_argument(
        "--quick", action="store_true", help="tiny budgets: a smoke run of every stage"
    )
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        default=2,
        help="parallel runs: local worker processes, or Ray CPUs with --backend ray (default 2)",
    )
    parser.add_argument(
        "--backend",
        metavar="ray|MODULE:FACTORY",
        default=os.environ.get(BACKEND_ENV) or None,
        help=(
            "run the sweeps on Ray (RAY_ADDRESS, or a local Ray with --jobs CPUs) or on the "
            "backend returned by FACTORY() from MODULE instead of --jobs local processes; "
            f"default ${BACKEND_ENV}"
        ),
    )
    parser.add_argument(
        "--out", type=Path, default=None, help=f"output folder (default results/{folder}[-quick])"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="pin the AVX2 kernels of OpenBLAS, MKL, oneDNN and torch and one thread per process, "
        "so that results do not depend on the CPU model (restarts the command with "
        "the settings in its environment; see docs/reproducibility.md)",
    )
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    interruptible_if_child()
    if args.strict and not is_strict():
        _restart_strict(parser, name, sys.argv[1:] if argv is None else list(argv))
    # what provenance reports is the environment this process started with
    args.started_strict = is_strict()
    args.env_filled = _fill_run_env()
    out = args.out or Path("results") / (f"{folder}-quick" if args.quick else folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        parser.error(f"--out {out}: not a folder (a file of that name is in the way)")
    except PermissionError as exc:
        parser.error(f"--out {out}: cannot create it ({exc.strerror})")
    args.backend_name = args.backend
    try:
        args.backend = make_backend(args.backend_name, args.jobs)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        parser.error(f"--backend {args.backend_name}: {exc}")
    return args, out


def interruptible_if_child() -> None:
    """In a :class:`ChildStage`'s process, let SIGINT raise ``KeyboardInterrupt`` even if the
    study was started with SIGINT ignored (as a non-interactive shell starts ``make ... &``):
    the parent stops its child with SIGINT, and an ignored one would wait to be killed."""
    if os.environ.get(CHILD_STAGE_ENV) == "1":
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _fill_run_env() -> list[str]:
    """Set the :data:`RUN_ENV_DEFAULTS` the environment leaves unset; return their names.

    The thread counts are filled in (and this process's BLAS held to one thread) only when none
    of :data:`THREAD_VARS` is set, so a thread setting of the user's own is kept whole.
    """
    from threadpoolctl import threadpool_limits

    filled = []
    if not any(os.environ.get(k) for k in THREAD_VARS):
        filled += ["OMP_NUM_THREADS", "MKL_NUM_THREADS"]
        threadpool_limits(limits=1, user_api="blas")
    if os.environ.get("PYTHONHASHSEED") is None:
        filled.append("PYTHONHASHSEED")
    for key in filled:
        os.environ[key] = RUN_ENV_DEFAULTS[key]
    return filled


def _restart_strict(parser: argparse.ArgumentParser, name: str, argv: list[str]) -> None:
    """Replace this process by ``python -m experiments.<name> ARGV`` in the strict environment.

    The kernel variables only act when NumPy and torch load, which has happened by now, hence
    the restart. A study called as a function (not as ``python -m``) cannot restart itself: it
    gets a usage error saying how to set the environment instead.
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is None or spec.name != f"experiments.{name}.__main__":
        settings = " ".join(f"{k}={v}" for k, v in STRICT_ENV.items())
        parser.error(
            f"--strict: the kernel settings must be in the environment before NumPy and torch "
            f"load; run `python -m experiments.{name} --strict` or set {settings}"
        )
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(
        sys.executable,
        [sys.executable, "-m", f"experiments.{name}", *argv],
        {**os.environ, **STRICT_ENV},
    )


def sweep_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for :func:`experiments.runner.run_sweep`: the run's backend and ``quiet``."""
    return {"backend": args.backend, "quiet": args.quiet}


@contextlib.contextmanager
def running(args: argparse.Namespace) -> Iterator[argparse.Namespace]:
    """Close the run's backend (its warm workers, its Ray connection) when the run ends."""
    try:
        yield args
    finally:
        close = getattr(args.backend, "close", None)
        if callable(close):
            close()


def finish(
    args: argparse.Namespace,
    out: Path,
    summary: dict,
    table: str,
    start: float,
    *,
    inputs: dict | None = None,
) -> dict:
    """End a study (or stage): write ``summary.json`` and ``table.md``, print them unless ``--quiet``.

    Adds ``wall_time_s`` (since ``start``, a :func:`time.perf_counter` reading), ``jobs``
    (``--jobs``, or the ``--backend`` name when one was given) and ``provenance``
    (:func:`experiments.common.provenance.provenance` with ``inputs``, the study's
    :func:`~experiments.common.provenance.input_digests`; its ``env`` and ``strict`` are those the
    process started with, and ``env_filled`` lists the :data:`RUN_ENV_DEFAULTS` the study set
    for its workers) to ``summary``, and returns it.
    """
    summary["wall_time_s"] = time.perf_counter() - start
    summary["jobs"] = args.jobs if args.backend_name is None else args.backend_name
    block = summary["provenance"] = provenance(inputs=inputs)
    filled = getattr(args, "env_filled", [])
    if filled:  # set by the study for its workers, not in the environment it started with
        block["env"].update(dict.fromkeys(filled))
        block["env_filled"] = filled
    block["strict"] = getattr(args, "started_strict", block["strict"])
    write_json_atomic(out / "summary.json", summary)
    write_text_atomic(out / "table.md", table)
    if not args.quiet:
        print(table)
        print(f"wrote {out}/ in {summary['wall_time_s']:.0f} s")
    return summary


class ChildStage:
    """One stage of the running study in a child process, started when the parent has a core
    to spare: ``python -m experiments.<study> --stages <stage> --jobs 1 --quiet --out OUT``,
    with the run's ``--quick`` and ``--strict``.

    A study starts it to fill the cores that a sweep's last, partial wave leaves idle (the NMF
    study: the schedules' tuning beside the last PPO training when the PPO seeds do not divide
    ``--jobs``). The child writes the stage's files exactly as a run of that stage alone does,
    and inherits the environment the parent set for its workers. Used as a context manager: an
    exception (Ctrl-C reaches both processes, which share the terminal's process group) leaves
    the block only after the child has stopped, so no process is left behind; every run the
    child finished is on disk and the next run resumes it. The child is asked to stop with
    SIGINT, which it answers even when the run was started with SIGINT ignored
    (:func:`interruptible_if_child`).
    """

    STOP_TIMEOUT_S = 30.0
    """How long a child that was asked to stop may take before it is killed."""

    def __init__(self, study: str, stage: str, args: argparse.Namespace, out: Path) -> None:
        self.stage = stage
        self.command = [sys.executable, "-m", f"experiments.{study}", "--stages", stage]
        self.command += ["--jobs", "1", "--quiet", "--out", str(out)]
        self.command += ["--quick"] * bool(args.quick)
        self.command += ["--strict"] * bool(getattr(args, "started_strict", False))
        self.quiet = args.quiet
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the child (once; later calls do nothing)."""
        if self.process is None:
            self.process = subprocess.Popen(self.command, env={**os.environ, CHILD_STAGE_ENV: "1"})
            if not self.quiet:
                print(f"{self.stage}: running beside in process {self.process.pid}", flush=True)

    def finish(self) -> int | None:
        """Wait for the child to end; its exit status (``None``: it was never started)."""
        return None if self.process is None else self.process.wait()

    def __enter__(self) -> ChildStage:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        if exc_type is None:
            process.wait()
            return
        try:
            process.wait(timeout=2.0)  # a Ctrl-C in the terminal reached the child too
        except subprocess.TimeoutExpired:
            # stop it as Ctrl-C stops a run (every finished run stays recorded), else kill it
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=self.STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
