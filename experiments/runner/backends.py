"""Backends: where the runs of a sweep execute.

Where runs execute is a :class:`Backend`: any object with a method
``map_unordered(fn, items)`` that calls ``fn(item)`` once per item, wherever it likes, and
yields the return values as they finish, in any order. ``fn`` and the items are picklable. If
the process running an item dies (a segfault, an out-of-memory kill, ``os._exit``), the
backend yields ``WorkerDied(item, message, wall_time_s)`` for that item instead, and the
runner records it as a failed run. When the consumer stops early it calls ``close()`` on the
iterator and the backend must cancel outstanding work. See :class:`Backend` for the details.

:class:`SerialBackend` runs in-process; :class:`ProcessPoolBackend` uses a
``concurrent.futures`` process pool with the ``"spawn"`` start method (forking a process that
has initialised torch is unsafe) and keeps its workers warm from one sweep to the next until
it is closed; :class:`~experiments.runner.ray_backend.RayBackend` runs on a Ray cluster. A
distributed engine of your own (Dask, a Slurm array) plugs in the same way, without touching
the pipelines: :func:`make_backend` builds the backend a pipeline's command line names
(``None`` for local processes, ``"ray"``, or ``"module:factory"`` where ``factory()`` returns
the backend).

A backend that holds resources (warm workers, a Ray connection) releases them in ``close()``;
:func:`make_backend`'s backends are context managers. :func:`~experiments.runner.run_sweep`
closes a backend only when it made it itself (from ``jobs``).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import itertools
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

T = TypeVar("T")
R = TypeVar("R")


@dataclasses.dataclass(frozen=True)
class WorkerDied:
    """What a backend yields, in place of ``fn(item)``, for an item whose process died running it."""

    item: Any
    message: str
    """Why, e.g. ``"worker process died (exit code -9, killed by SIGKILL) ..."``."""
    wall_time_s: float


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
    the backend (see :func:`make_backend`). A backend may also have a ``close()`` method that
    releases what it holds (workers, connections); whoever made the backend calls it at the end.
    """

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for every item, in completion order."""
        ...


class _Closing:
    """``with backend: ...`` calls ``backend.close()`` at the end."""

    def close(self) -> None:
        """Release what the backend holds (nothing here)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SerialBackend(_Closing):
    """Run every item in the calling process, one after the other (no pickling needed)."""

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for every item, in input order."""
        for item in items:
            yield fn(item)

    def __repr__(self) -> str:
        return "SerialBackend()"


class ProcessPoolBackend(_Closing):
    """Run items in a warm pool of ``jobs`` worker processes (``concurrent.futures``).

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
    The workers start with the first :meth:`map_unordered` and stay up, warm (modules imported,
    caches filled), for the following calls until :meth:`close` (or the end of the
    interpreter), so the sweeps of a pipeline share one pool and pay for starting processes
    once. A run must therefore not rely on starting in a fresh process (every run seeds its
    randomness from its spec). Each worker exits by itself as soon as the process that started
    it is gone, even when that process was killed with ``SIGKILL``.

    At most ``2 * jobs`` items are in flight, so a huge sweep is not pickled up front and an
    interruption has little to cancel. When a worker dies (a segfault, an out-of-memory kill,
    ``os._exit``), ``concurrent.futures`` fails every item in flight, so the culprit is not
    known: each of those items is run again alone, in a fresh one-worker pool (``jobs`` such
    pools at a time). An item whose worker dies again is yielded as :class:`WorkerDied`; the
    others finish normally, and the rest of the items go to a new pool. When the iterator is
    closed early or an exception propagates (Ctrl-C) while runs are in flight, pending items
    are cancelled, the workers are terminated (their unfinished runs would be discarded anyway)
    and the pool is shut down, so no process is left behind; the next call starts a new pool. The backend does not set thread counts: a study's command
    line gives every process one BLAS thread unless the user sets thread counts
    (:data:`experiments.common.cli.RUN_ENV_DEFAULTS`), and the runs set torch's.
    """

    def __init__(self, jobs: int, *, start_method: str = "spawn") -> None:
        self.jobs = _check_jobs(jobs)
        if start_method not in ("spawn", "forkserver"):
            raise ValueError(f"start_method must be 'spawn' or 'forkserver', got {start_method!r}")
        self.start_method = start_method
        self._executor: cf.ProcessPoolExecutor | None = None

    def close(self) -> None:
        """Shut the warm workers down; a later :meth:`map_unordered` starts new ones."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

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
        # A spawned worker's parent is this process; a forkserver's workers watch the server,
        # which exits when this process does.
        parent = os.getpid() if self.start_method == "spawn" else None
        return cf.ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=context,
            initializer=_exit_with_parent,
            initargs=(parent,),
        )

    def _pooled(self, fn: Callable[[T], R], todo: Iterator[T]) -> Generator[R, None, list[T]]:
        """Yield results from one pool until ``todo`` is done (return ``[]``) or a worker dies.

        In the second case, return the items that were in flight and did not finish: any of
        them may have killed the worker. The warm pool is kept only if it is intact and idle.
        """
        if self._executor is None:
            self._executor = self._pool(self.jobs)
        executor = self._executor
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
            if in_flight or suspects:  # broken, or abandoned with runs in flight
                self._executor = None
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


WATCH_PARENT_INTERVAL_S = 0.2
"""How often a pool worker checks that the process that started it is still there."""


def _exit_with_parent(parent: int | None) -> None:
    """Pool worker initializer: exit as soon as the worker's parent process is gone.

    Without it, killing the runner (not its process group) would leave its workers running,
    or waiting for work, forever. ``parent`` is the expected parent pid (``None``: whatever
    the parent is now); an orphan is re-parented, so its parent pid changes.
    """
    parent = os.getppid() if parent is None else parent

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_PARENT_INTERVAL_S)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


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
