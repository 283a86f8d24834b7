"""Run sweeps on a Ray cluster (``make_backend("ray", jobs)``; needs the ``cluster`` extra).

Each run is one Ray task (one CPU, never retried: a run that kills its worker would kill the
next one too) whose record comes back through Ray's object store; only the driver, the
process running :func:`~experiments.runner.run_sweep`, writes the results file. The tasks run
with the environment the runs need, taken from the driver: its ``OMP_NUM_THREADS``,
``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``PYTHONHASHSEED`` when set, and this
project's root folder in front of ``PYTHONPATH`` (Ray's ``runtime_env`` ``env_vars``).

On several machines, every node needs the project (and its virtual environment) at the same
path as the driver, and the folder given to a pipeline with ``--out`` must be on a disk all
nodes share: runs write files there (the PPO agents) that later runs and the driver read.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from experiments.runner.backends import WorkerDied, _check_jobs, _Closing

try:
    import ray
    import ray.exceptions
except ImportError as exc:  # pragma: no cover - exercised only without Ray
    raise ImportError(
        "the 'ray' backend needs Ray: pip install 'learned-lr-schedules[cluster]'"
    ) from exc

T = TypeVar("T")
R = TypeVar("R")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding the ``experiments`` package, put on the tasks' ``PYTHONPATH``."""

FORWARDED_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PYTHONHASHSEED")
"""Variables of the driver's environment that the tasks get too (when set)."""

_WORKER_DEATHS = (
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.OutOfMemoryError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.LocalRayletDiedError,
)


def task_env() -> dict[str, str]:
    """The environment variables every task runs with (see the module docstring)."""
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return env


def _call(fn: Callable[[T], R], item: T) -> R:
    return fn(item)


class RayBackend(_Closing):
    """Run items as Ray tasks.

    Parameters
    ----------
    jobs : int
        CPUs of the local Ray started when ``RAY_ADDRESS`` is not set (``>= 1``). On a cluster
        Ray schedules one task per free CPU of the cluster.

    Notes
    -----
    Ray starts on the first :meth:`map_unordered`: it connects to the cluster at
    ``RAY_ADDRESS`` when that variable is set, else starts a local Ray with ``jobs`` CPUs and
    no dashboard; if Ray is already initialised in this process (a notebook), that session is
    used as it is. :meth:`close` disconnects (and stops the local Ray) if this backend started
    it. At most twice as many tasks as the cluster has CPUs are submitted at once. A task
    whose worker process or node dies is yielded as :class:`~experiments.runner.WorkerDied`;
    when the iterator is closed early, the outstanding tasks are cancelled (their workers
    killed).
    """

    def __init__(self, jobs: int) -> None:
        self.jobs = _check_jobs(jobs)
        self.address = os.environ.get("RAY_ADDRESS") or None
        self._started = False

    def __repr__(self) -> str:
        return f"RayBackend(jobs={self.jobs}, address={self.address!r})"

    def _connect(self) -> None:
        if ray.is_initialized():
            return
        options: dict[str, Any] = {
            "runtime_env": {"env_vars": task_env()},
            "logging_level": logging.ERROR,
            "log_to_driver": True,
        }
        if self.address is None:
            options.update(address="local", num_cpus=self.jobs, include_dashboard=False)
        else:
            options.update(address=self.address)
        ray.init(**options)
        self._started = True

    def close(self) -> None:
        """Disconnect from Ray (stopping the local Ray) if this backend connected."""
        if self._started:
            self._started = False
            ray.shutdown()

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R | WorkerDied]:
        """Yield ``fn(item)`` (or :class:`~experiments.runner.WorkerDied`) in completion order."""
        self._connect()
        remote = ray.remote(num_cpus=1, max_retries=0)(_call)
        limit = 2 * max(1, int(ray.cluster_resources().get("CPU", self.jobs)))
        todo = iter(items)
        running: dict[Any, tuple[T, float]] = {}
        try:
            while True:
                for item in itertools.islice(todo, limit - len(running)):
                    running[remote.remote(fn, item)] = (item, time.perf_counter())
                if not running:
                    return
                done, _ = ray.wait(list(running), num_returns=1)
                for ref in done:
                    item, start = running.pop(ref)
                    try:
                        value: R | WorkerDied = ray.get(ref)
                    except _WORKER_DEATHS as exc:
                        message = (
                            f"worker process died ({type(exc).__name__}) while running this spec"
                        )
                        value = WorkerDied(item, message, time.perf_counter() - start)
                    yield value
        finally:
            for ref in running:
                ray.cancel(ref, force=True)
