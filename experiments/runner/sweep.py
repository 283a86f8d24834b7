"""Sweeps: :func:`run_sweep` maps a run function over specs and records every run."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import importlib
import os
import pickle
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from experiments.runner.backends import (
    Backend,
    ProcessPoolBackend,
    SerialBackend,
    WorkerDied,
    _check_jobs,
)
from experiments.runner.results import Record, _read_latest, _ResultsWriter
from experiments.runner.specs import (
    _id_fields,
    _main_import_name,
    _spec_id_from,
    _spec_type,
    spec_to_dict,
    to_jsonable,
)


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
        sid = _spec_id_from(kind, _id_fields(spec))
        tasks.setdefault(sid, _Task(run_fn, spec, sid, kind, spec_dict))
    return tasks


def _importable(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, or the same function taken from its module's import name if it was run as main.

    A function defined in a module run as ``python -m pkg.mod`` belongs to ``__main__``. A
    cloudpickle-based engine (Ray, Dask, loky) ships such a function by value, but the
    helpers it calls that are not plain functions (``functools.lru_cache`` wrappers, classes)
    by reference to ``__main__``, which in a worker is some other module ("Can't get attribute
    '_digits' on <module '__main__'>"). Importing ``pkg.mod`` and taking the function from it
    makes the whole function travel by reference. A plain script (``python script.py``), a
    package's ``__main__.py`` (its unguarded code would run again, so ``multiprocessing``
    does not re-import it either) or a function not found under its qualified name in the
    module is returned unchanged.
    """
    name = _main_import_name(getattr(fn, "__module__", None))
    if name is None or name.endswith(".__main__"):
        return fn
    found: Any = importlib.import_module(name)
    for attr in fn.__qualname__.split("."):
        found = getattr(found, attr, None)
    return found if callable(found) else fn


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
        ``run_fn(spec) -> dict`` of JSON-serialisable values (see "JSON encoding" in
        :mod:`experiments.runner.specs`). It must seed all its randomness from the spec. With
        ``jobs > 1`` it must be a picklable top-level function of an importable module. An
        exception it raises is recorded as a failed run (``status="error"``) and the sweep goes
        on; a return value that is not a dict or not serialisable counts as a failure too, and
        so does a run that kills its worker process with ``jobs > 1`` (error type
        ``"WorkerDied"``).
    specs : iterable of frozen dataclass instances
        The runs. Duplicates (equal :func:`spec_id`) run once; specs of different classes may
        be mixed.
    results_path : str or path-like
        The sweep's JSONL results file, e.g. ``results/nmf_schedules.jsonl`` (created with its
        parent folders if missing). Its stem labels the progress bar.
    jobs : int, default 1
        Worker processes for the default backend: 1 runs in-process (:class:`SerialBackend`),
        more uses a :class:`ProcessPoolBackend` started for this sweep and closed after it.
        Leave at 1 when passing ``backend``.
    backend : Backend, optional
        Where runs execute (e.g. from :func:`~experiments.runner.make_backend`, shared by the
        sweeps of a pipeline); overrides ``jobs``. It is not closed here. A ``run_fn`` defined
        in a module run as ``python -m pkg.mod`` is shipped as ``pkg.mod``'s function.
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

    Notes
    -----
    When every spec is already finished the results file is only read: it is not locked,
    repaired or even opened for writing, and the backend is not called, so a finished sweep
    in a read-only folder (an archived copy) still returns its records.
    """
    if not callable(run_fn):
        raise TypeError(f"run_fn must be callable, got {type(run_fn).__qualname__}")
    run_fn = _importable(run_fn)
    jobs = _check_jobs(jobs)
    owned = backend is None
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

    def finished_in(latest: dict[str, Record]) -> dict[str, Record]:
        return {
            sid: record
            for sid, record in latest.items()
            if sid in tasks and (record["status"] == "ok" or not retry_failed)
        }

    # A first look without the lock: a sweep with nothing left to do stays read-only.
    exists = path.exists()
    finished = finished_in(_read_latest(path, warn=False)) if exists else {}
    with contextlib.ExitStack() as stack:
        if owned:
            stack.callback(backend.close)
        if not exists or len(finished) < len(tasks):
            writer = stack.enter_context(_ResultsWriter(path))
            finished = finished_in(_read_latest(path))
        todo = [task for sid, task in tasks.items() if sid not in finished]
        n_errors = 0
        with tqdm(
            total=len(tasks), initial=len(finished), desc=path.stem, unit="run", disable=quiet
        ) as bar:
            records = backend.map_unordered(_execute, todo) if todo else iter(())
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
