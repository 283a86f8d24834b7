"""Run sweeps: map a run function over frozen run specs, in parallel, with resume.

Every pipeline (NMF schedule comparisons, RL evaluations, the GreedyLR study) describes one run
as a *run spec*, a frozen dataclass of JSON-serialisable fields, and does the run in a plain
top-level function ``run_fn(spec) -> dict``. :func:`run_sweep` maps that function over a list of
specs (usually built with :func:`grid`) and appends one JSON line per finished run to a results
file; tables and figures are then drawn from :func:`load_results`.

Results file
------------
One strict-JSON object per line (JSONL), each ending in ``"\\n"``::

    {"spec_id": "3f1c...", "spec_type": "experiments.nmf.NMFRunSpec", "spec": {...},
     "status": "ok" | "error", "result": {...} | null, "error": {...} | null,
     "wall_time_s": 1.23, "finished_at": "2025-01-01T12:00:00.000+00:00", "host": "node7"}

``error`` is ``{"type", "message", "traceback"}`` for a run whose function raised, or
``{"type": "WorkerDied", "message": "worker process died (exit code ...) ...", "traceback": ""}``
for a run that killed the process running it.
``spec_id`` (see :func:`spec_id`) names the run, so rerunning a sweep skips every spec that
already has an ``ok`` line: an interrupted sweep (Ctrl-C, crash, killed job) resumes where it
stopped, and nothing is lost or duplicated. When a spec has several lines (a failed attempt,
then a successful retry) the last one wins.

Durability. Only the parent process writes. Each record is serialised to one line first and
then written with a single ``os.write`` to a file opened with ``O_APPEND``, followed by
``os.fsync``. A line is *committed* once its trailing newline is on disk. A crash in the middle
of a write can leave an unterminated last line: :func:`load_results` ignores it (with a
warning) and :func:`run_sweep` truncates it before appending, so the run it belonged to is
simply run again. Lines are never rewritten otherwise. While a sweep runs it holds an advisory
``flock`` on its file, so a second sweep writing the same file at the same time fails fast.

JSON encoding
-------------
Specs and results are converted to plain JSON before they are written: NumPy scalars become
Python numbers, arrays (and anything else with a ``tolist()`` method, e.g. torch tensors)
become nested lists, tuples become lists, nested dataclasses become dicts, ``os.PathLike``
becomes ``str`` and integer dict keys become strings. Non-finite floats, which a diverging
training run produces routinely, are written as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"``: the lines stay strict JSON (``json.loads`` and other languages' parsers read
them) while NaN and the two infinities stay distinguishable; ``float(s)`` and
``numpy.asarray(..., dtype=float)`` turn them back into numbers. Anything else raises
``TypeError`` (for a spec) or is recorded as a failed run (for a result).

Backends
--------
Where runs execute is a :class:`Backend`: any object with a method
``map_unordered(fn, items)`` that calls ``fn(item)`` once per item, wherever it likes, and
yields the return values as they finish, in any order. ``fn`` and the items are picklable. If
the process running an item dies (a segfault, an out-of-memory kill, ``os._exit``), the
backend yields ``WorkerDied(item, message, wall_time_s)`` for that item instead, and the
runner records it as a failed run. When the consumer stops early it calls ``close()`` on the
iterator and the backend must cancel outstanding work. See :class:`Backend` for the details.

:class:`SerialBackend` runs in-process; :class:`ProcessPoolBackend` uses a
``concurrent.futures`` process pool with the ``"spawn"`` start method (forking a process that
has initialised torch is unsafe). A distributed engine (Ray, Dask, a Slurm array) plugs in the
same way, without touching the pipelines: every pipeline accepts
``--backend module:factory`` (or the environment variable ``EXPERIMENTS_BACKEND``), where
``factory()`` returns the backend (see :func:`experiments.cli.load_backend`).

Examples
--------
>>> from experiments.nmf import NMFRunSpec, run_nmf  # doctest: +SKIP
>>> specs = grid(NMFRunSpec, schedule=["cosine", "step"], seed=[0, 1, 2])  # doctest: +SKIP
>>> records = run_sweep(run_nmf, specs, "results/nmf_schedules.jsonl", jobs=4)  # doctest: +SKIP
>>> ok = load_results("results/nmf_schedules.jsonl")  # doctest: +SKIP
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import datetime
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import pickle
import signal
import socket
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
from tqdm import tqdm

try:  # POSIX only; elsewhere sweeps simply run without the advisory lock.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "Backend",
    "ProcessPoolBackend",
    "Record",
    "SerialBackend",
    "WorkerDied",
    "grid",
    "load_results",
    "run_sweep",
    "spec_id",
    "spec_to_dict",
]

Record = dict[str, Any]
"""One line of a results file (see the module docstring for its keys)."""

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

SPEC_ID_LENGTH = 16
"""Hex digits kept from the SHA-256 digest (64 bits: collisions are negligible for sweeps)."""

_STATUSES = ("ok", "error")


# --------------------------------------------------------------------------------------------
# Specs: JSON form, identity, grids
# --------------------------------------------------------------------------------------------


def _encode_float(x: float) -> float | str:
    if math.isfinite(x):
        return x
    if math.isnan(x):
        return "NaN"
    return "Infinity" if x > 0 else "-Infinity"


def to_jsonable(obj: Any, where: str = "value") -> Any:
    """Return ``obj`` as plain JSON data (see "JSON encoding" in the module docstring).

    Raises
    ------
    TypeError
        If ``obj`` holds something with no JSON form; the message says where.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return _encode_float(float(obj))
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item(), where)
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), where)
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
                key = str(int(key))
            elif not isinstance(key, str):
                raise TypeError(
                    f"{where}: dict keys must be str or int, got {type(key).__qualname__}"
                )
            out[str(key)] = to_jsonable(value, f"{where}[{key!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_jsonable(getattr(obj, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(obj)
        }
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return to_jsonable(tolist(), where)
    raise TypeError(f"{where}: {type(obj).__qualname__} is not JSON-serialisable")


def _check_spec_instance(spec: Any, name: str) -> None:
    if not dataclasses.is_dataclass(spec) or isinstance(spec, type):
        raise TypeError(f"{name} must be a dataclass instance, got {type(spec).__qualname__}")


def _spec_type(spec: Any) -> str:
    """``"<module>.<qualname>"`` of the spec's class, the same however the module was started.

    A module run as ``python -m pkg.mod`` is named ``__main__`` (``__mp_main__`` in a spawned
    worker); its import name is kept in ``__spec__.name``, so a spec class defined there gets
    the same type, and thus the same ids, as when ``pkg.mod`` is imported. A plain script
    (``python script.py``) has no import name and stays ``__main__``. A class attribute
    ``SPEC_TYPE`` (a ``ClassVar[str]``, not a field) pins the type, so that moving or renaming
    the class keeps its ids and a results folder still resumes.
    """
    cls = type(spec)
    pinned = getattr(cls, "SPEC_TYPE", None)
    if pinned is not None:
        return str(pinned)
    module = cls.__module__
    if module in ("__main__", "__mp_main__"):
        module_spec = getattr(sys.modules.get(module), "__spec__", None)
        if module_spec is not None and module_spec.name:
            module = module_spec.name
    return f"{module}.{cls.__qualname__}"


def spec_to_dict(spec: Any) -> dict[str, Any]:
    """Return the JSON form of a run spec: ``{field name: JSON value}``.

    Parameters
    ----------
    spec : dataclass instance
        The run spec. Its fields must be JSON-serialisable (numbers, strings, bools, ``None``,
        tuples/lists, dicts with str keys, nested dataclasses, NumPy scalars/arrays).

    Returns
    -------
    dict
        Plain JSON data, field order as declared (see "JSON encoding" in the module docstring).

    Raises
    ------
    TypeError
        If ``spec`` is not a dataclass instance or a field has no JSON form.
    """
    _check_spec_instance(spec, "spec")
    return {
        f.name: to_jsonable(getattr(spec, f.name), f"{type(spec).__qualname__}.{f.name}")
        for f in dataclasses.fields(spec)
    }


def _spec_id_from(spec_type: str, fields: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"type": spec_type, "fields": fields},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:SPEC_ID_LENGTH]


def spec_id(spec: Any) -> str:
    """Return the stable short id of a run spec.

    The id is the first :data:`SPEC_ID_LENGTH` hex digits of the SHA-256 of the canonical JSON
    (sorted keys, no whitespace) of ``{"type": "<module>.<qualname>", "fields":
    spec_to_dict(spec)}``. It depends on nothing else: not the process, not
    ``PYTHONHASHSEED``, not the machine, nor whether the spec class's module was imported or
    run with ``python -m`` (its import name is used either way). Equal specs share an id; specs
    of different classes with equal fields do not. NumPy scalars hash like the equal Python
    numbers, but ``1`` and ``1.0`` are different values (as they are in JSON). Renaming or moving
    the spec class, or adding a field, changes the ids (and so reruns the sweep); define spec
    classes in importable modules, not in a script run as ``python script.py``.

    Parameters
    ----------
    spec : dataclass instance
        The run spec.

    Returns
    -------
    str
        Lower-case hex string of length :data:`SPEC_ID_LENGTH`.
    """
    return _spec_id_from(_spec_type(spec), spec_to_dict(spec))


def _is_axis(value: Any) -> bool:
    return isinstance(value, (list, range, np.ndarray))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def grid(cls: type[S], /, **axes: Any) -> list[S]:
    """Build the cartesian product of run specs.

    Parameters
    ----------
    cls : dataclass type
        The run spec class.
    **axes
        Field values. A ``list``, ``range`` or 1-D ``numpy.ndarray`` is an axis to sweep; any
        other value (a scalar, a string, a tuple, ...) is held fixed. To sweep a tuple-valued
        field, pass a list of tuples. NumPy scalars are converted to Python scalars. Fields not
        named keep their defaults.

    Returns
    -------
    list
        One ``cls`` instance per combination, in :func:`itertools.product` order (the last axis
        varies fastest). An empty axis gives an empty list.

    Raises
    ------
    TypeError
        If ``cls`` is not a dataclass type or an axis names no init field of it.
    ValueError
        If an array axis is not 1-D.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Spec:
    ...     schedule: str
    ...     seed: int
    ...     dataset: str = "synthetic"
    >>> grid(Spec, schedule=["cosine", "step"], seed=[0, 1], dataset="digits")  # doctest: +ELLIPSIS
    [Spec(schedule='cosine', seed=0, dataset='digits'), Spec(schedule='cosine', seed=1, ...), ...]
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"cls must be a dataclass type, got {cls!r}")
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [name for name in axes if name not in names]
    if unknown:
        raise TypeError(
            f"grid() got unknown field(s) {unknown} for {cls.__qualname__}; its fields are {names}"
        )
    values = []
    for name, value in axes.items():
        if isinstance(value, np.ndarray) and value.ndim != 1:
            raise ValueError(f"axis {name!r} must be 1-D, got an array of shape {value.shape}")
        values.append([_plain(v) for v in value] if _is_axis(value) else [_plain(value)])
    return [cls(**dict(zip(axes, combo, strict=True))) for combo in itertools.product(*values)]


# --------------------------------------------------------------------------------------------
# Executing one run (in the worker)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Task:
    run_fn: Callable[[Any], Mapping[str, Any]]
    spec: Any
    spec_id: str
    spec_type: str
    spec_dict: dict[str, Any]


def _describe_error(exc: BaseException) -> dict[str, str]:
    cls = type(exc)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    return {
        "type": name,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }


def _execute(task: _Task) -> Record:
    """Run one spec and return its record; exceptions from ``run_fn`` become error records."""
    start = time.perf_counter()
    result = error = None
    try:
        out = task.run_fn(task.spec)
        if not isinstance(out, Mapping):
            raise TypeError(f"run_fn must return a dict, got {type(out).__qualname__}")
        result = to_jsonable(out, "result")
    except Exception as exc:  # KeyboardInterrupt / SystemExit propagate and stop the sweep.
        result, error = None, _describe_error(exc)
    return _record(task, result, error, time.perf_counter() - start)


@dataclasses.dataclass(frozen=True)
class WorkerDied:
    """What a backend yields, in place of ``fn(item)``, for an item whose process died running it."""

    item: Any
    message: str
    """Why, e.g. ``"worker process died (exit code -9, killed by SIGKILL) ..."``."""
    wall_time_s: float


def _crash_record(crash: WorkerDied) -> Record:
    error = {"type": "WorkerDied", "message": crash.message, "traceback": ""}
    return _record(crash.item, None, error, crash.wall_time_s)


def _record(task: _Task, result: Any, error: dict[str, str] | None, wall_time_s: float) -> Record:
    return {
        "spec_id": task.spec_id,
        "spec_type": task.spec_type,
        "spec": task.spec_dict,
        "status": "ok" if error is None else "error",
        "result": result,
        "error": error,
        "wall_time_s": wall_time_s,
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
        "host": socket.gethostname(),
    }


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------


@runtime_checkable
class Backend(Protocol):
    """Where runs execute.

    A backend must call ``fn(item)`` once for every item and yield each return value as soon
    as it is available, in any order. If the process running an item dies instead of
    returning (a segfault, an out-of-memory kill, ``os._exit``), the backend yields
    :class:`WorkerDied` for that item, so the run is recorded as failed and the sweep goes on
    (a backend that cannot tell which item killed a process may let the error propagate
    instead; the sweep then stops and can be resumed). An exception raised by ``fn`` (the
    runner's ``fn`` only lets ``KeyboardInterrupt``-like ones through) or by the backend itself
    propagates out of the iterator. If the consumer stops early, it calls ``close()`` on the
    returned iterator (a generator gets this for free); the backend must then cancel or stop
    outstanding work. ``fn`` and the items are picklable, so they may be shipped to other
    processes or machines.

    To use a backend from the command line, give every pipeline ``--backend module:factory``
    (or set ``EXPERIMENTS_BACKEND``): ``factory()`` is called with no arguments and must return
    the backend.
    """

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for every item, in completion order."""
        ...


class SerialBackend:
    """Run every item in the calling process, one after the other (no pickling needed)."""

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for every item, in input order."""
        for item in items:
            yield fn(item)

    def __repr__(self) -> str:
        return "SerialBackend()"


class ProcessPoolBackend:
    """Run items in a pool of ``jobs`` worker processes (``concurrent.futures``).

    Parameters
    ----------
    jobs : int
        Number of worker processes, ``>= 1``. ``jobs=1`` runs in-process like
        :class:`SerialBackend` (so a run that crashes the process stops the sweep).
    start_method : {"spawn", "forkserver"}, default "spawn"
        How workers start. ``"fork"`` is refused: forking a process that has initialised torch
        (threads, CUDA) is unsafe. With either method ``fn`` and its arguments must be
        importable by reference: a top-level function of a module (a script's functions work
        under an ``if __name__ == "__main__":`` guard; functions defined in a notebook do not).

    Notes
    -----
    At most ``2 * jobs`` items are in flight, so a huge sweep is not pickled up front and an
    interruption has little to cancel. When a worker dies (a segfault, an out-of-memory kill,
    ``os._exit``), ``concurrent.futures`` fails every item in flight, so the culprit is not
    known: each of those items is run again alone, in a fresh one-worker pool (``jobs`` such
    pools at a time). An item whose worker dies again is yielded as :class:`WorkerDied`; the
    others finish normally, and the rest of the items go to a new pool. When the iterator is
    closed early or an exception propagates (Ctrl-C), pending items are cancelled, the workers
    are terminated (their unfinished runs would be discarded anyway) and the pool is shut down,
    so no process is left behind. The backend does not set thread counts: give each worker
    ``cpu_count // jobs`` threads through ``OMP_NUM_THREADS`` or ``torch.set_num_threads``.
    """

    def __init__(self, jobs: int, *, start_method: str = "spawn") -> None:
        self.jobs = _check_jobs(jobs)
        if start_method not in ("spawn", "forkserver"):
            raise ValueError(f"start_method must be 'spawn' or 'forkserver', got {start_method!r}")
        self.start_method = start_method

    def __repr__(self) -> str:
        return f"ProcessPoolBackend(jobs={self.jobs}, start_method={self.start_method!r})"

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R | WorkerDied]:
        """Yield ``fn(item)`` (or :class:`WorkerDied`) for every item, in completion order."""
        if self.jobs == 1:
            yield from SerialBackend().map_unordered(fn, items)
            return
        todo = iter(items)
        while True:
            suspects = yield from self._pooled(fn, todo)
            if not suspects:
                return
            yield from self._isolated(fn, suspects)

    def _pool(self, jobs: int) -> cf.ProcessPoolExecutor:
        context = multiprocessing.get_context(self.start_method)
        return cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context)

    def _pooled(self, fn: Callable[[T], R], todo: Iterator[T]) -> Generator[R, None, list[T]]:
        """Yield results from one pool until ``todo`` is done (return ``[]``) or a worker dies.

        In the second case, return the items that were in flight and did not finish: any of
        them may have killed the worker.
        """
        executor = self._pool(self.jobs)
        in_flight: dict[cf.Future[R], T] = {}
        suspects: list[T] = []
        try:
            while True:
                for item in itertools.islice(todo, 2 * self.jobs - len(in_flight)):
                    try:
                        in_flight[executor.submit(fn, item)] = item
                    except BrokenProcessPool:  # a worker died since the last wait
                        suspects.append(item)
                        break
                if not in_flight:
                    return suspects
                done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                if suspects or any(map(_broke, done)):
                    done, _ = cf.wait(in_flight)  # a broken pool fails all its futures at once
                for future in done:
                    item = in_flight.pop(future)
                    if _broke(future):
                        suspects.append(item)
                    else:
                        yield future.result()
                if suspects:
                    return suspects
        finally:
            _shut_down(executor, in_flight)

    def _isolated(self, fn: Callable[[T], R], items: list[T]) -> Iterator[R | WorkerDied]:
        """Run each item alone in a fresh one-worker pool, so a worker that dies names its item."""
        waiting = list(items)
        running: dict[cf.Future[R], tuple[T, cf.ProcessPoolExecutor, list, float]] = {}
        try:
            while waiting or running:
                while waiting and len(running) < self.jobs:
                    item, executor = waiting.pop(0), self._pool(1)
                    future = executor.submit(fn, item)
                    # Private but stable since Python 3.2: the worker, to read its exit code.
                    workers = list(executor._processes.values())  # type: ignore[attr-defined]
                    running[future] = (item, executor, workers, time.perf_counter())
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    item, executor, workers, start = running.pop(future)
                    executor.shutdown(wait=True)
                    if _broke(future):
                        exitcode = workers[0].exitcode if workers else None
                        yield WorkerDied(
                            item, _death_message(exitcode), time.perf_counter() - start
                        )
                    else:
                        yield future.result()
        finally:
            for future, (_, executor, _, _) in running.items():
                _shut_down(executor, [future])


def _broke(future: cf.Future[Any]) -> bool:
    """Whether the future failed because its process pool broke (a worker died)."""
    return not future.cancelled() and isinstance(future.exception(), BrokenProcessPool)


def _death_message(exitcode: int | None) -> str:
    detail = f"exit code {exitcode}"
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            detail += f", killed by {signal.Signals(-exitcode).name}"
    return f"worker process died ({detail}) while running this spec"


def _shut_down(executor: cf.ProcessPoolExecutor, unfinished: Iterable[cf.Future[Any]]) -> None:
    """Shut a pool down; if futures are left unfinished, cancel them and terminate the workers."""
    unfinished = list(unfinished)
    if unfinished:
        for future in unfinished:
            future.cancel()
        # Private but stable since Python 3.2; the running runs are being abandoned.
        for process in list((getattr(executor, "_processes", None) or {}).values()):
            process.terminate()
    executor.shutdown(wait=True, cancel_futures=True)


def _check_jobs(jobs: Any) -> int:
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
    return int(jobs)


# --------------------------------------------------------------------------------------------
# Results file
# --------------------------------------------------------------------------------------------


def _drop_torn_tail(fd: int, path: Path) -> None:
    """Truncate an unterminated last line (an interrupted write) so appends start clean."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    keep, end = 0, size
    while end > 0:
        start = max(0, end - (1 << 16))
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        end = start
    warnings.warn(
        f"{path}: dropping an incomplete last line ({size - keep} bytes left by an interrupted "
        "write); its run will be run again",
        RuntimeWarning,
        stacklevel=4,  # the caller of run_sweep
    )
    os.ftruncate(fd, keep)
    os.fsync(fd)


class _ResultsWriter:
    """Append-only, locked writer of one results file (used by :func:`run_sweep` only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def __enter__(self) -> _ResultsWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise RuntimeError(
                        f"{self.path} is being written by another sweep; wait for it to finish"
                    ) from None
                except OSError:  # a filesystem without flock support: go on unlocked
                    pass
            _drop_torn_tail(self._fd, self.path)
        except BaseException:
            os.close(self._fd)
            raise
        return self

    def append(self, record: Record) -> None:
        """Write ``record`` as one line with a single write, then fsync."""
        line = json.dumps(record, allow_nan=False, ensure_ascii=True, separators=(",", ":"))
        data = memoryview((line + "\n").encode("ascii"))
        while data:  # one write in practice; loop only on a short write (e.g. disk full)
            data = data[os.write(self._fd, data) :]
        os.fsync(self._fd)

    def __exit__(self, *exc_info: object) -> None:
        os.close(self._fd)  # also releases the lock


def _read_latest(path: Path) -> dict[str, Record]:
    """Latest record per spec_id, keyed in order of first appearance."""
    latest: dict[str, Record] = {}
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                warnings.warn(
                    f"{path}:{lineno}: ignoring an incomplete last line ({len(line)} bytes, "
                    "left by an interrupted write)",
                    RuntimeWarning,
                    stacklevel=3,
                )
                break
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: not a valid JSON line ({exc})") from None
            if (
                not isinstance(record, dict)
                or not isinstance(record.get("spec_id"), str)
                or record.get("status") not in _STATUSES
            ):
                raise ValueError(
                    f"{path}:{lineno}: not a result record (needs 'spec_id' and a 'status' "
                    f"in {_STATUSES})"
                )
            latest[record["spec_id"]] = record
    return latest


def load_results(
    results_path: str | os.PathLike[str], *, status: str | None = "ok"
) -> list[Record]:
    """Read a results file: the latest record of every spec.

    Parameters
    ----------
    results_path : str or path-like
        A JSONL file written by :func:`run_sweep`.
    status : {"ok", "error"} or None, default "ok"
        Keep only specs whose latest record has this status; ``None`` keeps all.

    Returns
    -------
    list of dict
        One record per ``spec_id`` (the last line written for it), in order of the spec's first
        appearance in the file.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If ``status`` is invalid, or a complete line is not a valid record (something other
        than an interrupted sweep wrote the file; the message gives the line number).

    Warns
    -----
    RuntimeWarning
        When the last line is incomplete (a crash mid-write); that line is ignored.
    """
    if status is not None and status not in _STATUSES:
        raise ValueError(f"status must be 'ok', 'error' or None, got {status!r}")
    records = _read_latest(Path(results_path)).values()
    return [r for r in records if status is None or r["status"] == status]


# --------------------------------------------------------------------------------------------
# Sweeps
# --------------------------------------------------------------------------------------------


def _unique_tasks(run_fn: Callable[[Any], Any], specs: Iterable[Any]) -> dict[str, _Task]:
    try:
        specs = list(specs)
    except TypeError:
        raise TypeError(
            f"specs must be an iterable of run specs, got {type(specs).__qualname__}"
        ) from None
    tasks: dict[str, _Task] = {}
    for i, spec in enumerate(specs):
        if not dataclasses.is_dataclass(spec) or isinstance(spec, type):
            raise TypeError(
                f"specs[{i}] must be a frozen dataclass instance, got {type(spec).__qualname__}"
            )
        if not type(spec).__dataclass_params__.frozen:  # type: ignore[attr-defined]
            raise TypeError(
                f"specs[{i}] ({type(spec).__qualname__}) must be a frozen dataclass "
                "(@dataclass(frozen=True)) so that its id cannot change"
            )
        try:
            spec_dict = spec_to_dict(spec)
        except TypeError as exc:
            raise TypeError(f"specs[{i}] is not JSON-serialisable: {exc}") from None
        kind = _spec_type(spec)
        sid = _spec_id_from(kind, spec_dict)
        tasks.setdefault(sid, _Task(run_fn, spec, sid, kind, spec_dict))
    return tasks


def run_sweep(
    run_fn: Callable[[Any], Mapping[str, Any]],
    specs: Iterable[Any],
    results_path: str | os.PathLike[str],
    *,
    jobs: int = 1,
    backend: Backend | None = None,
    quiet: bool = False,
    retry_failed: bool = True,
) -> list[Record]:
    """Run ``run_fn`` on every spec not yet finished, appending one JSON line per run.

    Parameters
    ----------
    run_fn : callable
        ``run_fn(spec) -> dict`` of JSON-serialisable values (see "JSON encoding" in the module
        docstring). It must seed all its randomness from the spec. With ``jobs > 1`` it must be
        a picklable top-level function of an importable module. An exception it raises is
        recorded as a failed run (``status="error"``) and the sweep goes on; a return value
        that is not a dict or not serialisable counts as a failure too, and so does a run that
        kills its worker process with ``jobs > 1`` (error type ``"WorkerDied"``).
    specs : iterable of frozen dataclass instances
        The runs. Duplicates (equal :func:`spec_id`) run once; specs of different classes may
        be mixed.
    results_path : str or path-like
        The sweep's JSONL results file, e.g. ``results/nmf_schedules.jsonl`` (created with its
        parent folders if missing). Its stem labels the progress bar.
    jobs : int, default 1
        Worker processes for the default backend: 1 runs in-process (:class:`SerialBackend`),
        more uses :class:`ProcessPoolBackend`. Leave at 1 when passing ``backend``.
    backend : Backend, optional
        Where runs execute; overrides ``jobs``.
    quiet : bool, default False
        Hide the progress bar and the one-line notes about failed runs (written to stderr).
    retry_failed : bool, default True
        Rerun specs whose latest record is an error. With False they count as finished.

    Returns
    -------
    list of dict
        The latest record of every distinct spec, including those finished by earlier runs of
        the sweep, in the order of first occurrence in ``specs``.

    Raises
    ------
    ValueError
        If ``jobs`` is not an int ``>= 1``, or ``jobs != 1`` together with ``backend``.
    TypeError
        If ``run_fn`` is not callable (or not picklable with ``jobs > 1``), ``backend`` has no
        ``map_unordered``, or a spec is not a frozen, JSON-serialisable dataclass instance.
    RuntimeError
        If another sweep is writing ``results_path``.
    KeyboardInterrupt
        Propagated after the pool is shut down; every finished run is already on disk and
        rerunning the same sweep resumes.

    Warns
    -----
    RuntimeWarning
        When an incomplete last line (from a crash mid-write) is dropped from the file.
    """
    if not callable(run_fn):
        raise TypeError(f"run_fn must be callable, got {type(run_fn).__qualname__}")
    jobs = _check_jobs(jobs)
    if backend is None:
        backend = SerialBackend() if jobs == 1 else ProcessPoolBackend(jobs)
    elif jobs != 1:
        raise ValueError(f"pass either jobs or backend, not both (got jobs={jobs})")
    if not callable(getattr(backend, "map_unordered", None)):
        raise TypeError(f"backend must have a map_unordered method, got {backend!r}")
    if isinstance(backend, ProcessPoolBackend) and backend.jobs > 1:
        try:
            pickle.dumps(run_fn)
        except Exception as exc:
            raise TypeError(
                "run_fn must be picklable (a top-level function of an importable module) "
                f"to run with jobs > 1: {exc}"
            ) from None
    tasks = _unique_tasks(run_fn, specs)
    path = Path(results_path)

    with _ResultsWriter(path) as writer:
        finished = {
            sid: record
            for sid, record in _read_latest(path).items()
            if sid in tasks and (record["status"] == "ok" or not retry_failed)
        }
        todo = [task for sid, task in tasks.items() if sid not in finished]
        n_errors = 0
        with tqdm(
            total=len(tasks), initial=len(finished), desc=path.stem, unit="run", disable=quiet
        ) as bar:
            records = backend.map_unordered(_execute, todo)
            try:
                for record in records:
                    if isinstance(record, WorkerDied):
                        record = _crash_record(record)
                    writer.append(record)
                    finished[record["spec_id"]] = record
                    bar.update(1)
                    if record["status"] == "error":
                        n_errors += 1
                        bar.set_postfix(errors=n_errors)
                        if not quiet:
                            err = record["error"]
                            tqdm.write(
                                f"{path.stem}: run {record['spec_id']} failed: "
                                f"{err['type']}: {err['message']}",
                                file=sys.stderr,
                            )
            finally:
                close = getattr(records, "close", None)
                if callable(close):
                    close()
    missing = [sid for sid in tasks if sid not in finished]
    if missing:
        raise RuntimeError(f"backend {backend!r} returned no result for {len(missing)} spec(s)")
    return [finished[sid] for sid in tasks]


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write a whole file so that readers see the old or the new content, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """:func:`to_jsonable` + :func:`write_text_atomic`: strict JSON, non-finite floats as strings."""
    write_text_atomic(path, json.dumps(to_jsonable(data), indent=2, allow_nan=False) + "\n")
