"""The Ray backend, on one local Ray with 2 CPUs shared by the tests of this module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from experiments.runner import grid, load_results, make_backend, run_sweep, spec_id  # noqa: E402
from experiments.runner.ray_backend import RayBackend, task_env  # noqa: E402
from tests.experiments import _runfns as fns  # noqa: E402
from tests.experiments._runfns import ToySpec  # noqa: E402

pytestmark = pytest.mark.slow  # starting Ray takes several seconds

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def backend():
    if ray.is_initialized():
        pytest.skip("Ray is already initialised in this process")
    os.environ.pop("RAY_ADDRESS", None)
    with make_backend("ray", 2) as backend:
        yield backend
    assert not ray.is_initialized()  # close() stopped the local Ray it started


def _comparable(records: list[dict]) -> list[tuple]:
    return [(r["spec_id"], r["spec"], r["status"], r["result"]) for r in records]


def test_ray_sweep_equals_the_serial_sweep(tmp_path, backend):
    assert isinstance(backend, RayBackend) and repr(backend) == "RayBackend(jobs=2, address=None)"
    specs = grid(ToySpec, x=range(4), seed=[0, 1])
    serial = run_sweep(fns.numpy_result, specs, tmp_path / "serial.jsonl", quiet=True)
    on_ray = run_sweep(fns.numpy_result, specs, tmp_path / "ray.jsonl", backend=backend, quiet=True)
    assert ray.cluster_resources()["CPU"] == 2
    assert _comparable(on_ray) == _comparable(serial)
    assert sorted(_comparable(load_results(tmp_path / "ray.jsonl"))) == sorted(_comparable(serial))


def test_the_tasks_get_the_runs_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    env = task_env()
    assert env["OMP_NUM_THREADS"] == "3" and env["PYTHONHASHSEED"] == "0"
    assert "MKL_NUM_THREADS" not in env
    assert env["PYTHONPATH"] == os.pathsep.join([str(ROOT), "/somewhere"])


class StopAfter:
    """Consumes ``n`` results of another backend, then stops like Ctrl-C would."""

    def __init__(self, backend, n: int) -> None:
        self.backend, self.n = backend, n

    def map_unordered(self, fn, items):
        results = self.backend.map_unordered(fn, items)
        try:
            for i, result in enumerate(results):
                if i == self.n:
                    raise KeyboardInterrupt
                yield result
        finally:
            results.close()


def test_an_interrupted_ray_sweep_resumes_with_the_missing_runs_only(tmp_path, backend):
    path = tmp_path / "resume.jsonl"
    specs = grid(ToySpec, x=range(6))
    with pytest.raises(KeyboardInterrupt):
        run_sweep(fns.square, specs, path, backend=StopAfter(backend, 2), quiet=True)
    assert len(load_results(path)) == 2
    records = run_sweep(fns.square, specs, path, backend=backend, quiet=True)
    assert [r["result"]["y"] for r in records] == [x**2 for x in range(6)]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    # One line per spec: the 2 finished runs were not run again.
    assert Counter(r["spec_id"] for r in lines) == Counter({spec_id(s): 1 for s in specs})


def test_a_run_that_kills_its_ray_worker_is_recorded_against_itself(tmp_path, backend):
    specs = grid(ToySpec, x=range(6), tag="kill")
    records = run_sweep(
        fns.die_on_three, specs, tmp_path / "died.jsonl", backend=backend, quiet=True
    )
    assert [r["status"] for r in records] == ["ok"] * 3 + ["error"] + ["ok"] * 2
    assert records[3]["error"] == {
        "type": "WorkerDied",
        "message": "worker process died (WorkerCrashedError) while running this spec",
        "traceback": "",
    }


def test_a_main_module_with_cached_helpers_runs_on_ray(tmp_path, backend):
    # `python -m pkg.mod` makes the run function __main__'s; shipped by value, its lru_cache
    # helper would be looked up in the Ray worker's __main__. The driver joins this cluster.
    path = tmp_path / "main.jsonl"
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    out = subprocess.run(
        [sys.executable, "-m", "tests.experiments.fixtures.main_sweep", "ray", "2", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert sorted(r["result"]["y"] for r in load_results(path)) == [0, 0, 1, 3]
    assert {r["spec_type"] for r in load_results(path)} == {
        "tests.experiments.fixtures.main_sweep.MainSpec"
    }
