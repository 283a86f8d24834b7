"""Tests for the local backends and make_backend: warm pools, orphaned workers, plugins."""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.runner import (
    ProcessPoolBackend,
    SerialBackend,
    grid,
    load_results,
    make_backend,
    run_sweep,
)
from tests.experiments import _runfns as fns
from tests.experiments._runfns import ToySpec

ROOT = Path(__file__).resolve().parents[2]


def _workers() -> set[int]:
    return {p.pid for p in multiprocessing.active_children()}


# --------------------------------------------------------------------------------------------
# The warm pool
# --------------------------------------------------------------------------------------------


def test_the_pool_stays_warm_across_sweeps_until_closed(tmp_path):
    specs = grid(ToySpec, x=range(6))
    with ProcessPoolBackend(2) as backend:
        first = run_sweep(fns.square, specs, tmp_path / "a.jsonl", backend=backend, quiet=True)
        warm = _workers()
        assert len(warm) == 2
        second = run_sweep(fns.square, specs, tmp_path / "b.jsonl", backend=backend, quiet=True)
        assert _workers() == warm  # the same processes ran both sweeps
        assert {r["result"]["pid"] for r in first + second} <= warm
        assert [r["result"]["y"] for r in second] == [x**2 for x in range(6)]
    assert _workers() == set()
    # Closed is not broken: the next call starts new workers (and close() stops them again).
    assert sorted(backend.map_unordered(abs, [-1, -2])) == [1, 2]
    assert _workers().isdisjoint(warm)
    backend.close()
    assert _workers() == set()


def test_run_sweep_closes_only_the_pool_it_made(tmp_path):
    run_sweep(fns.square, grid(ToySpec, x=range(3)), tmp_path / "own.jsonl", jobs=2, quiet=True)
    assert _workers() == set()


def test_a_warm_pool_survives_a_dead_worker_and_an_interruption(tmp_path):
    specs = grid(ToySpec, x=range(6), tag="kill")
    with ProcessPoolBackend(2) as backend:
        died = run_sweep(fns.die_on_three, specs, tmp_path / "d.jsonl", backend=backend, quiet=True)
        assert [r["status"] for r in died] == ["ok"] * 3 + ["error"] + ["ok"] * 2
        assert died[3]["error"]["type"] == "WorkerDied"

        path = tmp_path / "ki.jsonl"
        with pytest.raises(KeyboardInterrupt):
            run_sweep(fns.interrupt_on_three, specs, path, backend=backend, quiet=True)
        assert _workers() == set()  # runs in flight were abandoned with their workers

        records = run_sweep(fns.square, specs, path, backend=backend, quiet=True)
        assert [r["result"]["y"] for r in records] == [x**2 for x in range(6)]
    assert _workers() == set()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_workers_exit_when_the_runner_is_killed(tmp_path):
    code = (
        "from experiments.runner import grid, run_sweep\n"
        "from tests.experiments._runfns import ToySpec, report_pid_and_sleep\n"
        f"specs = grid(ToySpec, x=range(2), tag={str(tmp_path)!r})\n"
        f"run_sweep(report_pid_and_sleep, specs, {str(tmp_path / 'o.jsonl')!r}, jobs=2)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runner = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(pids) < 2:
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.05)
            pids = [int(p.read_text()) for p in tmp_path.glob("*.pid") if p.read_text()]
        runner.send_signal(signal.SIGKILL)  # the runner only, not its process group
        runner.wait()
        deadline = time.monotonic() + 5
        while any(map(_alive, pids)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(_alive, pids)), "pool workers outlived the runner"
    finally:
        runner.kill()
        runner.wait()
        for pid in filter(_alive, pids):
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------------------------
# A finished sweep only reads
# --------------------------------------------------------------------------------------------


class MustNotRun:
    def map_unordered(self, fn, items):
        raise AssertionError("a finished sweep called its backend")


def test_a_finished_sweep_does_not_open_its_file_for_writing(tmp_path, monkeypatch):
    # As root, chmod does not stop writes: refuse every os.open meant for writing instead.
    path = tmp_path / "done.jsonl"
    specs = grid(ToySpec, x=range(3))
    first = run_sweep(fns.square, specs, path, quiet=True)
    with open(path, "ab") as f:
        f.write(b'{"spec_id": "torn')  # an interrupted write: no repair is needed to read
    before = path.read_bytes()
    real_open = os.open

    def read_only(file, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC):
            raise PermissionError(13, "Permission denied (read-only for this test)", str(file))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    assert run_sweep(fns.square, specs, path, backend=MustNotRun(), quiet=True) == first
    assert run_sweep(fns.square, specs[:1], path, quiet=True) == first[:1]
    with pytest.raises(PermissionError, match="read-only for this test"):
        run_sweep(fns.square, grid(ToySpec, x=range(4)), path, quiet=True)  # one to run
    assert path.read_bytes() == before


# --------------------------------------------------------------------------------------------
# make_backend
# --------------------------------------------------------------------------------------------


def test_make_backend_local():
    with make_backend(None, 1) as serial:
        assert type(serial) is SerialBackend
    with make_backend(None, 3) as pool:
        assert repr(pool) == "ProcessPoolBackend(jobs=3, start_method='spawn')"
    backend = make_backend("tests.experiments._runfns:make_toy_backend", 4)
    assert isinstance(backend, fns.ToyBackend)
    assert type(make_backend("experiments.runner:SerialBackend", 2)) is SerialBackend


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_make_backend_ray_starts_nothing_until_used(monkeypatch):
    import ray

    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    backend = make_backend("ray", 2)
    assert repr(backend) == "RayBackend(jobs=2, address='10.0.0.1:6379')"
    assert not ray.is_initialized()
    backend.close()


@pytest.mark.parametrize("jobs", [0, -1, True, 1.5, "2", None])
def test_make_backend_validates_jobs(jobs):
    with pytest.raises(ValueError, match=r"jobs must be an int >= 1, got"):
        make_backend(None, jobs)


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("dask", ValueError, r"expected 'module:factory' or one of \['ray'\], got 'dask'"),
        ("tests.experiments._runfns", ValueError, "expected 'module:factory'"),
        (":make_toy_backend", ValueError, "expected 'module:factory'"),
        ("no_such_module_for_tests:make", ImportError, "No module named"),
        ("tests.experiments._runfns:missing", AttributeError, "has no attribute 'missing'"),
        ("experiments.runner:SPEC_ID_LENGTH", TypeError, "is not callable"),
        ("collections:OrderedDict", TypeError, "no map_unordered method"),
        (3, TypeError, "backend name must be a str or None"),
    ],
)
def test_make_backend_errors(name, error, match):
    with pytest.raises(error, match=match):
        make_backend(name, 2)


# --------------------------------------------------------------------------------------------
# Run functions of a module run with `python -m`
# --------------------------------------------------------------------------------------------


def test_a_main_module_with_cached_helpers_runs_in_the_pool(tmp_path):
    path = tmp_path / "main.jsonl"
    out = subprocess.run(
        [sys.executable, "-m", "tests.experiments.fixtures.main_sweep", "local", "2", str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    records = load_results(path)
    assert sorted(r["result"]["y"] for r in records) == [0, 0, 1, 3]
    assert {r["spec_type"] for r in records} == {"tests.experiments.fixtures.main_sweep.MainSpec"}


def test_a_main_run_function_is_shipped_by_its_import_name(monkeypatch):
    from experiments.runner.sweep import _importable
    from tests.experiments.fixtures import main_sweep

    def run(spec):  # a stand-in for main_sweep.run as `python -m` would define it
        raise AssertionError("the __main__ copy must not be shipped")

    run.__module__, run.__qualname__ = "__main__", "run"
    main = type(sys)("__main__")
    main.__spec__ = importlib.util.find_spec("tests.experiments.fixtures.main_sweep")
    monkeypatch.setitem(sys.modules, "__main__", main)
    assert _importable(run) is main_sweep.run
    main.__spec__ = None  # a plain script: nothing to import, shipped as it is
    assert _importable(run) is run
    run.__qualname__ = "make.<locals>.run"
    main.__spec__ = importlib.util.find_spec("tests.experiments.fixtures.main_sweep")
    assert _importable(run) is run  # not found in the module: shipped as it is
