"""Tests for experiments.runner: spec ids, grids, JSONL results, resume, backends."""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments import runner
from experiments.common.cli import BACKEND_ENV, parse_pipeline_args, running, sweep_options
from experiments.runner import (
    Backend,
    ProcessPoolBackend,
    SerialBackend,
    WorkerDied,
    grid,
    load_results,
    run_sweep,
    spec_id,
    spec_to_dict,
    to_jsonable,
)
from tests.experiments import _runfns as fns
from tests.experiments._runfns import MutableSpec, OtherSpec, ToySpec

ROOT = Path(__file__).resolve().parents[2]


def _lines(path: Path) -> list[dict]:
    """Every line of a results file, parsed strictly (NaN/Infinity tokens rejected)."""

    def reject(token: str) -> None:
        raise AssertionError(f"non-strict JSON token {token}")

    text = path.read_text()
    assert text == "" or text.endswith("\n")
    return [json.loads(line, parse_constant=reject) for line in text.splitlines()]


def _count_by_spec(path: Path) -> Counter:
    return Counter(r["spec_id"] for r in _lines(path))


# --------------------------------------------------------------------------------------------
# spec ids and spec dicts
# --------------------------------------------------------------------------------------------


def test_spec_id_is_sha256_of_canonical_json_and_pinned():
    spec = ToySpec(x=1)
    canonical = json.dumps(
        {"type": "tests.experiments._runfns.ToySpec", "fields": {"x": 1, "seed": 0, "tag": "a"}},
        sort_keys=True,
        separators=(",", ":"),
    )
    assert spec_id(spec) == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    # Pinned: changing the scheme silently would orphan every existing results file.
    assert spec_id(spec) == "63f7d8a4a3e7f9ab"


def test_spec_id_same_in_other_processes():
    code = (
        "from experiments.runner import spec_id\n"
        "from tests.experiments._runfns import ToySpec\n"
        "print(spec_id(ToySpec(x=3, seed=7, tag='b')))\n"
    )
    ids = set()
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        ids.add(out.stdout.strip())
    assert ids == {spec_id(ToySpec(x=3, seed=7, tag="b"))}


ENTRY_MODULE = """
import sys
from dataclasses import dataclass

from experiments.runner import grid, run_sweep


@dataclass(frozen=True)
class EntrySpec:
    x: int


def run(spec):
    return {"y": spec.x**2}


if __name__ == "__main__":
    run_sweep(run, grid(EntrySpec, x=range(4)), sys.argv[1], jobs=2, quiet=True)
"""


def test_spec_ids_do_not_depend_on_how_the_module_was_started(tmp_path, monkeypatch):
    # `python -m entry_mod` (as `make` starts a pipeline) names the module __main__; the ids
    # must still match those of the same sweep run after `import entry_mod` (tests, notebooks).
    (tmp_path / "entry_mod.py").write_text(ENTRY_MODULE)
    path = tmp_path / "entry.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    out = subprocess.run(
        [sys.executable, "-m", "entry_mod", str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr  # with jobs=2: the spawned workers unpickled the specs
    written = _lines(path)
    assert [r["status"] for r in written] == ["ok"] * 4
    assert {r["spec_type"] for r in written} == {"entry_mod.EntrySpec"}

    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        module = importlib.import_module("entry_mod")
        calls = []

        def run(spec):
            calls.append(spec)
            return module.run(spec)

        records = run_sweep(run, grid(module.EntrySpec, x=range(4)), path, quiet=True)
    finally:
        sys.modules.pop("entry_mod", None)
    assert calls == []  # everything was skipped
    assert sorted(_comparable(records)) == sorted(_comparable(written))
    assert len(_lines(path)) == 4


@dataclass(frozen=True)
class PinnedSpec:
    x: int
    seed: int = 0
    tag: str = "a"
    SPEC_TYPE: ClassVar[str] = "tests.experiments._runfns.ToySpec"


@dataclass(frozen=True)
class RenamedPinnedSpec:
    x: int
    seed: int = 0
    tag: str = "a"
    SPEC_TYPE: ClassVar[str] = "tests.experiments._runfns.ToySpec"


def test_spec_type_pins_the_id_across_moves_and_renames():
    # A class that pins SPEC_TYPE hashes like the class it replaces; the pin is not a field.
    assert spec_id(PinnedSpec(3)) == spec_id(RenamedPinnedSpec(3)) == spec_id(ToySpec(3))
    assert spec_to_dict(PinnedSpec(3)) == {"x": 3, "seed": 0, "tag": "a"}
    assert spec_id(PinnedSpec(4)) != spec_id(PinnedSpec(3))


def test_spec_id_distinguishes_values_and_types():
    assert spec_id(ToySpec(1)) == spec_id(ToySpec(1))
    assert spec_id(ToySpec(1)) != spec_id(ToySpec(2))
    assert spec_id(ToySpec(1)) != spec_id(ToySpec(1, seed=1))
    assert spec_id(ToySpec(1)) != spec_id(OtherSpec(1))  # same fields, different class
    assert spec_id(ToySpec(np.int64(1))) == spec_id(ToySpec(1))  # numpy scalars normalised
    assert len(spec_id(ToySpec(1))) == 16


def test_spec_to_dict_handles_nested_values():
    @dataclass(frozen=True)
    class Inner:
        a: float

    @dataclass(frozen=True)
    class Outer:
        inner: Inner
        sizes: tuple[int, ...]
        lr: np.float64

    d = spec_to_dict(Outer(Inner(0.5), (64, 64), np.float64(1e-3)))
    assert d == {"inner": {"a": 0.5}, "sizes": [64, 64], "lr": 1e-3}
    assert type(d["lr"]) is float


def test_spec_to_dict_rejects_non_specs_and_non_json_fields():
    with pytest.raises(TypeError, match="dataclass instance"):
        spec_to_dict({"x": 1})
    with pytest.raises(TypeError, match="dataclass instance"):
        spec_to_dict(ToySpec)
    with pytest.raises(TypeError, match=r"ToySpec\.x.*not JSON-serialisable"):
        spec_to_dict(ToySpec(x=object()))


# --------------------------------------------------------------------------------------------
# JSON encoding
# --------------------------------------------------------------------------------------------


def test_to_jsonable_numpy_and_non_finite():
    out = to_jsonable(
        {
            "i": np.int32(3),
            "f": np.float32(0.5),
            "b": np.bool_(False),
            "arr": np.array([[1.0, np.nan], [np.inf, -np.inf]]),
            "t": (1, 2),
            1: "int key",
            "p": Path("a/b"),
        }
    )
    assert out == {
        "i": 3,
        "f": 0.5,
        "b": False,
        "arr": [[1.0, "NaN"], ["Infinity", "-Infinity"]],
        "t": [1, 2],
        "1": "int key",
        "p": "a/b",
    }
    assert type(out["i"]) is int and type(out["b"]) is bool
    json.dumps(out, allow_nan=False)  # strict JSON
    # The strings read back as the numbers they stand for.
    assert np.isnan(np.asarray(out["arr"], dtype=float)).sum() == 1
    assert float(out["arr"][1][0]) == math.inf


def test_to_jsonable_rejects_unknown_types_with_location():
    with pytest.raises(TypeError, match=r"result\['a'\]\[1\].*complex"):
        to_jsonable({"a": [1, 2j]}, "result")
    with pytest.raises(TypeError, match="dict keys"):
        to_jsonable({(1, 2): 3})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@settings(max_examples=50, deadline=None)
@given(json_values)
def test_to_jsonable_always_gives_strict_json(value):
    encoded = to_jsonable(value)
    assert json.loads(json.dumps(encoded, allow_nan=False)) == encoded


# --------------------------------------------------------------------------------------------
# grid
# --------------------------------------------------------------------------------------------


def test_grid_is_cartesian_product_with_fixed_values():
    specs = grid(ToySpec, x=[1, 2, 3], seed=range(2), tag="z")
    assert len(specs) == 6
    assert specs[:3] == [ToySpec(1, 0, "z"), ToySpec(1, 1, "z"), ToySpec(2, 0, "z")]
    assert {s.tag for s in specs} == {"z"}
    assert grid(ToySpec, x=5) == [ToySpec(5)]
    assert grid(ToySpec, x=[]) == []


def test_grid_tuples_are_fixed_and_numpy_axes_become_python_scalars():
    @dataclass(frozen=True)
    class NetSpec:
        sizes: tuple[int, ...]
        lr: float

    specs = grid(NetSpec, sizes=(64, 64), lr=np.array([0.1, 0.01]))
    assert specs == [NetSpec((64, 64), 0.1), NetSpec((64, 64), 0.01)]
    assert all(type(s.lr) is float for s in specs)
    assert grid(NetSpec, sizes=[(8,), (8, 8)], lr=0.1)[1].sizes == (8, 8)


def test_grid_validation():
    with pytest.raises(TypeError, match="unknown field"):
        grid(ToySpec, x=[1], learning_rate=[0.1])
    with pytest.raises(TypeError, match="dataclass type"):
        grid(dict, x=[1])
    with pytest.raises(ValueError, match="1-D"):
        grid(ToySpec, x=np.zeros((2, 2)))


# --------------------------------------------------------------------------------------------
# run_sweep: records, duplicates, errors, validation
# --------------------------------------------------------------------------------------------


def test_sweep_writes_one_strict_json_record_per_spec(tmp_path):
    path = tmp_path / "sub" / "toy.jsonl"
    specs = grid(ToySpec, x=[3, 1, 2])
    records = run_sweep(fns.numpy_result, specs, path, quiet=True)

    assert [r["spec_id"] for r in records] == [spec_id(s) for s in specs]
    on_disk = _lines(path)
    assert on_disk == records
    r = records[0]
    assert set(r) == {
        "spec_id",
        "spec_type",
        "spec",
        "status",
        "result",
        "error",
        "wall_time_s",
        "finished_at",
        "host",
    }
    assert r["spec_type"] == "tests.experiments._runfns.ToySpec"
    assert r["spec"] == {"x": 3, "seed": 0, "tag": "a"}
    assert r["status"] == "ok" and r["error"] is None
    assert r["result"]["y"] == 9 and r["result"]["ok"] is True
    assert r["result"]["curve"] == [1.0, "NaN", "Infinity", "-Infinity"]
    assert r["wall_time_s"] >= 0 and r["finished_at"].endswith("+00:00")
    assert load_results(path) == records


def test_duplicates_run_once_and_spec_types_can_mix(tmp_path):
    calls = []

    def run(spec):
        calls.append(spec)
        return {"kind": type(spec).__name__}

    specs = [ToySpec(1), OtherSpec(1), ToySpec(1), ToySpec(2)]
    records = run_sweep(run, specs, tmp_path / "mix.jsonl", quiet=True)
    assert calls == [ToySpec(1), OtherSpec(1), ToySpec(2)]
    assert [r["result"]["kind"] for r in records] == ["ToySpec", "OtherSpec", "ToySpec"]
    assert len(_lines(tmp_path / "mix.jsonl")) == 3


def test_failed_runs_are_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    path = tmp_path / "fail.jsonl"
    records = run_sweep(fns.fail_on_odd, grid(ToySpec, x=range(4)), path)
    assert [r["status"] for r in records] == ["ok", "error", "ok", "error"]
    err = records[1]["error"]
    assert err["type"] == "ValueError" and err["message"] == "odd x=1"
    assert "Traceback" in err["traceback"] and "fail_on_odd" in err["traceback"]
    assert records[1]["result"] is None
    assert "failed: ValueError: odd x=1" in capsys.readouterr().err
    assert [r["spec"]["x"] for r in load_results(path)] == [0, 2]
    assert [r["spec"]["x"] for r in load_results(path, status="error")] == [1, 3]
    assert len(load_results(path, status=None)) == 4


def test_bad_return_values_are_failed_runs(tmp_path):
    def run(spec):
        return [1, 2] if spec.x == 0 else {"obj": object()}

    records = run_sweep(run, [ToySpec(0), ToySpec(1)], tmp_path / "bad.jsonl", quiet=True)
    assert [r["status"] for r in records] == ["error", "error"]
    assert "must return a dict" in records[0]["error"]["message"]
    assert "result['obj']" in records[1]["error"]["message"]


def test_failed_runs_are_retried_on_rerun_unless_asked_not_to(tmp_path):
    path = tmp_path / "retry.jsonl"
    specs = grid(ToySpec, x=range(4))
    run_sweep(fns.fail_on_odd, specs, path, quiet=True)

    calls = []

    def fixed(spec):
        calls.append(spec.x)
        return {"y": spec.x**2}

    kept = run_sweep(fixed, specs, path, quiet=True, retry_failed=False)
    assert calls == [] and [r["status"] for r in kept] == ["ok", "error", "ok", "error"]

    records = run_sweep(fixed, specs, path, quiet=True)
    assert calls == [1, 3]
    assert [r["status"] for r in records] == ["ok"] * 4
    assert [r["result"]["y"] for r in records] == [0, 1, 4, 9]
    # The failed attempts stay in the file (append-only); the latest record wins.
    assert len(_lines(path)) == 6
    assert len(load_results(path)) == 4 and load_results(path, status="error") == []

    run_sweep(fixed, specs, path, quiet=True)
    assert calls == [1, 3]  # everything finished: nothing reruns


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"jobs": 0}, ValueError, "jobs"),
        ({"jobs": 1.5}, ValueError, "jobs"),
        ({"jobs": True}, ValueError, "jobs"),
        ({"jobs": 2, "backend": SerialBackend()}, ValueError, "jobs or backend"),
        ({"backend": object()}, TypeError, "backend"),
    ],
)
def test_sweep_argument_validation(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        run_sweep(fns.square, [ToySpec(1)], tmp_path / "v.jsonl", quiet=True, **kwargs)


@pytest.mark.parametrize(
    ("specs", "match"),
    [
        ([{"x": 1}], r"specs\[0\] must be a frozen dataclass"),
        ([ToySpec(1), ToySpec], r"specs\[1\] must be a frozen dataclass"),
        ([MutableSpec(1)], r"specs\[0\].*frozen"),
        ([ToySpec(x=object())], r"specs\[0\] is not JSON-serialisable"),
        (ToySpec(1), "specs must be an iterable"),
    ],
)
def test_sweep_spec_validation(tmp_path, specs, match):
    with pytest.raises(TypeError, match=match):
        run_sweep(fns.square, specs, tmp_path / "v.jsonl", quiet=True)
    assert not (tmp_path / "v.jsonl").exists()


def test_unpicklable_run_fn_is_refused_for_a_pool(tmp_path):
    with pytest.raises(TypeError, match="run_fn must be picklable"):
        run_sweep(lambda s: {}, [ToySpec(1)], tmp_path / "p.jsonl", jobs=2, quiet=True)
    with pytest.raises(TypeError, match="run_fn must be callable"):
        run_sweep("square", [ToySpec(1)], tmp_path / "p.jsonl", quiet=True)


def test_progress_bar_and_quiet(tmp_path, capsys):
    run_sweep(fns.square, grid(ToySpec, x=range(3)), tmp_path / "bar_sweep.jsonl")
    assert "bar_sweep" in capsys.readouterr().err
    run_sweep(fns.square, grid(ToySpec, x=range(5)), tmp_path / "quiet.jsonl", quiet=True)
    assert capsys.readouterr().err == ""


def test_empty_sweep(tmp_path):
    assert run_sweep(fns.square, [], tmp_path / "empty.jsonl", quiet=True) == []
    assert load_results(tmp_path / "empty.jsonl") == []


# --------------------------------------------------------------------------------------------
# Resume after interruption or crash
# --------------------------------------------------------------------------------------------


def test_resume_after_keyboard_interrupt_serial(tmp_path):
    path = tmp_path / "ki.jsonl"
    specs = grid(ToySpec, x=range(6))
    with pytest.raises(KeyboardInterrupt):
        run_sweep(fns.interrupt_on_three, specs, path, quiet=True)
    assert [r["spec"]["x"] for r in _lines(path)] == [0, 1, 2]  # finished runs are on disk

    calls = []

    def run(spec):
        calls.append(spec.x)
        return fns.square(spec)

    records = run_sweep(run, specs, path, quiet=True)
    assert calls == [3, 4, 5]
    assert [r["result"]["y"] for r in records] == [0, 1, 4, 9, 16, 25]
    assert set(_count_by_spec(path).values()) == {1}


def test_torn_last_line_is_ignored_by_load_and_truncated_before_appending(tmp_path):
    path = tmp_path / "torn.jsonl"
    specs = grid(ToySpec, x=range(4))
    run_sweep(fns.square, specs[:2], path, quiet=True)
    complete = path.read_bytes()
    with open(path, "ab") as f:  # a crash in the middle of writing the third record
        f.write(b'{"spec_id":"' + spec_id(specs[2]).encode() + b'","status":"ok","res')

    with pytest.warns(RuntimeWarning, match="incomplete last line"):
        assert len(load_results(path)) == 2

    with pytest.warns(RuntimeWarning, match="dropping an incomplete last line"):
        records = run_sweep(fns.square, specs, path, quiet=True)
    assert [r["status"] for r in records] == ["ok"] * 4
    assert path.read_bytes().startswith(complete)
    assert _count_by_spec(path) == Counter({spec_id(s): 1 for s in specs})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_results(path)) == 4


def test_torn_only_line_is_dropped(tmp_path):
    path = tmp_path / "torn_only.jsonl"
    path.write_bytes(b'{"spec_id": "abc", "sta')
    with pytest.warns(RuntimeWarning, match="incomplete"):
        assert load_results(path) == []
    with pytest.warns(RuntimeWarning, match="dropping"):
        run_sweep(fns.square, [ToySpec(1)], path, quiet=True)
    assert len(_lines(path)) == 1


def test_corrupt_complete_line_is_an_error(tmp_path):
    path = tmp_path / "corrupt.jsonl"
    run_sweep(fns.square, [ToySpec(1)], path, quiet=True)
    with open(path, "a") as f:
        f.write("not json\n")
    with pytest.raises(ValueError, match=r"corrupt\.jsonl:2"):
        load_results(path)
    path.write_text('{"spec_id": "a"}\n')
    with pytest.raises(ValueError, match=":1: not a result record"):
        load_results(path)
    with pytest.raises(ValueError, match="status"):
        load_results(path, status="done")
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "missing.jsonl")


def test_resume_after_the_process_is_killed(tmp_path):
    path = tmp_path / "killed.jsonl"
    code = (
        "from experiments.runner import grid, run_sweep\n"
        "from tests.experiments._runfns import ToySpec, slow_square\n"
        f"run_sweep(slow_square, grid(ToySpec, x=range(40)), {str(path)!r}, quiet=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if path.exists() and path.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the sweep did not start")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    n_before = len(_lines(path))
    assert 3 <= n_before < 40

    calls = []

    def run(spec):
        calls.append(spec.x)
        return {"y": spec.x**2}

    specs = grid(ToySpec, x=range(40))
    records = run_sweep(run, specs, path, quiet=True)
    assert len(calls) == 40 - n_before
    assert [r["result"]["y"] for r in records] == [x**2 for x in range(40)]
    assert _count_by_spec(path) == Counter({spec_id(s): 1 for s in specs})


def test_a_second_concurrent_sweep_on_the_same_file_is_refused(tmp_path):
    path = tmp_path / "locked.jsonl"

    def run(spec):
        with pytest.raises(RuntimeError, match="another sweep"):
            run_sweep(fns.square, [ToySpec(9)], path, quiet=True)
        return {"y": 1}

    assert run_sweep(run, [ToySpec(1)], path, quiet=True)[0]["status"] == "ok"


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------


def _comparable(records: list[dict]) -> list[tuple]:
    return [(r["spec_id"], r["spec"], r["status"], r["result"]) for r in records]


def test_process_pool_matches_serial(tmp_path):
    specs = grid(ToySpec, x=range(3), seed=[0, 1])
    serial = run_sweep(fns.numpy_result, specs, tmp_path / "serial.jsonl", quiet=True)
    pooled = run_sweep(fns.numpy_result, specs, tmp_path / "pool.jsonl", jobs=2, quiet=True)
    assert _comparable(pooled) == _comparable(serial)
    assert sorted(_comparable(load_results(tmp_path / "pool.jsonl"))) == sorted(_comparable(serial))


def test_process_pool_runs_in_workers_and_records_failures(tmp_path):
    specs = grid(ToySpec, x=range(4))
    records = run_sweep(fns.square, specs, tmp_path / "pids.jsonl", jobs=2, quiet=True)
    pids = {r["result"]["pid"] for r in records}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    records = run_sweep(fns.fail_on_odd, specs, tmp_path / "f.jsonl", jobs=2, quiet=True)
    assert [r["status"] for r in records] == ["ok", "error", "ok", "error"]
    assert records[3]["error"]["message"] == "odd x=3"


@pytest.mark.parametrize(
    ("how", "message"), [("exit", "exit code 1)"), ("kill", "exit code -9, killed by SIGKILL)")]
)
def test_a_run_that_kills_its_worker_is_recorded_and_the_sweep_goes_on(tmp_path, how, message):
    path = tmp_path / "died.jsonl"
    specs = grid(ToySpec, x=range(8), tag=how)
    records = run_sweep(fns.die_on_three, specs, path, jobs=2, quiet=True)
    assert [r["status"] for r in records] == ["ok"] * 3 + ["error"] + ["ok"] * 4
    assert [r["result"]["y"] for r in records if r["result"]] == [0, 1, 4, 16, 25, 36, 49]
    err = records[3]["error"]
    assert err["type"] == "WorkerDied"
    assert err["message"] == f"worker process died ({message} while running this spec"
    assert _count_by_spec(path) == Counter({spec_id(s): 1 for s in specs})  # one line each
    assert multiprocessing.active_children() == []

    calls = []

    def fixed(spec):
        calls.append(spec.x)
        return {"y": spec.x**2}

    run_sweep(fixed, specs, path, quiet=True, retry_failed=False)
    assert calls == []
    records = run_sweep(fixed, specs, path, quiet=True)
    assert calls == [3]  # a rerun retries the failed run only
    assert [r["result"]["y"] for r in records] == [x**2 for x in range(8)]


def test_process_pool_keyboard_interrupt_leaves_valid_file_and_resumes(tmp_path):
    path = tmp_path / "pool_ki.jsonl"
    specs = grid(ToySpec, x=range(8))
    with pytest.raises(KeyboardInterrupt):
        run_sweep(fns.interrupt_on_three, specs, path, jobs=2, quiet=True)
    before = _lines(path)  # strict JSON, newline-terminated
    assert all(r["status"] == "ok" for r in before) and len(before) < 8
    assert multiprocessing.active_children() == []

    records = run_sweep(fns.square, specs, path, jobs=2, quiet=True)
    assert [r["result"]["y"] for r in records] == [x**2 for x in range(8)]
    assert _count_by_spec(path) == Counter({spec_id(s): 1 for s in specs})


def test_process_pool_interrupt_does_not_wait_for_running_runs(tmp_path):
    path = tmp_path / "stop.jsonl"
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_sweep(fns.sleep_or_interrupt, grid(ToySpec, x=[0, 1]), path, jobs=2, quiet=True)
    assert time.monotonic() - start < 20  # x=0 would have slept 60 s
    assert multiprocessing.active_children() == []
    assert _lines(path) == []


def test_process_pool_backend_validation():
    with pytest.raises(ValueError, match="jobs"):
        ProcessPoolBackend(0)
    with pytest.raises(ValueError, match="start_method"):
        ProcessPoolBackend(2, start_method="fork")
    assert isinstance(ProcessPoolBackend(2), Backend)
    assert isinstance(SerialBackend(), Backend)
    # jobs=1 runs in-process.
    assert list(ProcessPoolBackend(1).map_unordered(os.getpid().__add__, [0])) == [os.getpid()]


class ReversingBackend:
    """A stand-in for a distributed engine: runs items last-to-first, counts calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.closed = False

    def map_unordered(self, fn, items):
        self.calls += 1
        try:
            for item in reversed(list(items)):
                yield fn(item)
        finally:
            self.closed = True


def test_custom_backend_is_used(tmp_path):
    backend = ReversingBackend()
    specs = grid(ToySpec, x=range(4))
    records = run_sweep(fns.square, specs, tmp_path / "custom.jsonl", backend=backend, quiet=True)
    assert backend.calls == 1 and backend.closed
    assert [r["spec"]["x"] for r in records] == [0, 1, 2, 3]  # returned in spec order
    assert [r["spec"]["x"] for r in _lines(tmp_path / "custom.jsonl")] == [3, 2, 1, 0]


def test_a_backend_can_report_a_dead_worker(tmp_path):
    class LosesNodeOne:
        def map_unordered(self, fn, items):
            for item in items:
                yield WorkerDied(item, "node lost", 2.5) if item.spec.x == 1 else fn(item)

    path = tmp_path / "lost.jsonl"
    records = run_sweep(fns.square, grid(ToySpec, x=range(3)), path, backend=LosesNodeOne())
    assert [r["status"] for r in records] == ["ok", "error", "ok"]
    assert records[1]["error"] == {"type": "WorkerDied", "message": "node lost", "traceback": ""}
    assert records[1]["wall_time_s"] == 2.5 and records[1]["spec"] == {
        "x": 1,
        "seed": 0,
        "tag": "a",
    }
    assert _lines(path)[1] == records[1]


def test_backend_that_drops_results_is_detected(tmp_path):
    class Lossy:
        def map_unordered(self, fn, items):
            yield fn(next(iter(items)))

    with pytest.raises(RuntimeError, match="no result for 1 spec"):
        run_sweep(fns.square, grid(ToySpec, x=[1, 2]), tmp_path / "l.jsonl", backend=Lossy())


# --------------------------------------------------------------------------------------------
# Choosing the backend on the command line (experiments.cli)
# --------------------------------------------------------------------------------------------


def _parse(tmp_path, *argv):
    return parse_pipeline_args("toy", "a toy pipeline", [*argv, "--out", str(tmp_path)])[0]


def test_backend_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    options = sweep_options(_parse(tmp_path, "--quiet"))
    assert options["quiet"] is True
    assert type(options["backend"]) is ProcessPoolBackend and options["backend"].jobs == 2
    assert type(_parse(tmp_path, "--jobs", "1").backend) is SerialBackend
    args = _parse(tmp_path, "--jobs", "3")
    assert args.backend.jobs == 3 and args.backend_name is None
    assert type(_parse(tmp_path, "--backend", "ray").backend).__name__ == "RayBackend"

    options = sweep_options(_parse(tmp_path, "--backend", "tests.experiments._runfns:ToyBackend"))
    backend = options["backend"]
    assert isinstance(backend, fns.ToyBackend) and options == {"backend": backend, "quiet": False}
    records = run_sweep(fns.square, grid(ToySpec, x=range(3)), tmp_path / "cli.jsonl", **options)
    assert backend.sweeps == 1 and [r["result"]["y"] for r in records] == [0, 1, 4]

    monkeypatch.setenv(BACKEND_ENV, "tests.experiments._runfns:make_toy_backend")
    assert isinstance(_parse(tmp_path).backend, fns.ToyBackend)
    # The option wins over the environment variable.
    args = _parse(tmp_path, "--backend", "experiments.runner:SerialBackend")
    assert type(args.backend) is SerialBackend


def test_running_closes_the_backend_every_sweep_shared(tmp_path, monkeypatch):
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    args = _parse(tmp_path, "--jobs", "2", "--quiet")
    with running(args):
        for name in ("a", "b"):
            run_sweep(
                fns.square,
                grid(ToySpec, x=range(3)),
                tmp_path / f"{name}.jsonl",
                **sweep_options(args),
            )
        assert args.backend._executor is not None  # one warm pool served both sweeps
    assert args.backend._executor is None


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--jobs", "0"], "--jobs: must be an integer >= 1, got 0"),
        (["--jobs", "two"], "--jobs: must be an integer >= 1, got 'two'"),
    ],
)
def test_bad_jobs_is_a_usage_error(tmp_path, capsys, argv, match):
    with pytest.raises(SystemExit) as exit_info:
        _parse(tmp_path, *argv)
    assert exit_info.value.code == 2 and match in capsys.readouterr().err


def test_out_that_is_a_file_is_a_usage_error(tmp_path, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        parse_pipeline_args("toy", "a toy pipeline", ["--out", str(a_file)])
    assert exit_info.value.code == 2
    assert f"--out {a_file}: not a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("tests.experiments._runfns", "expected 'module:factory'"),
        (":make_toy_backend", "expected 'module:factory'"),
        ("no_such_module_for_tests:make", "No module named 'no_such_module_for_tests'"),
        ("tests.experiments._runfns:missing", "has no attribute 'missing'"),
        ("experiments.runner:SPEC_ID_LENGTH", "is not callable"),
        ("collections:OrderedDict", "no map_unordered method"),
    ],
)
def test_bad_backend_is_a_usage_error(tmp_path, monkeypatch, capsys, target, match):
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        _parse(tmp_path, "--backend", target)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"--backend {target}: " in err and match in err


@dataclass(frozen=True)
class _Before:
    x: int
    SPEC_TYPE: ClassVar[str] = "tests.Evolving"


@dataclass(frozen=True)
class _After:
    x: int
    extra: tuple = runner.added_field(())
    SPEC_TYPE: ClassVar[str] = "tests.Evolving"


def test_an_added_field_keeps_old_ids_at_its_default(tmp_path):
    assert runner.spec_id(_After(1)) == runner.spec_id(_Before(1))
    assert runner.spec_id(_After(1, (("a", 1.0),))) != runner.spec_id(_Before(1))
    # a sweep of the old class is resumed by the new one: nothing runs again
    calls = []

    def fn(spec):
        calls.append(spec)
        return {"x": spec.x}

    runner.run_sweep(fn, [_Before(1)], tmp_path / "r.jsonl", jobs=1, quiet=True)
    records = runner.run_sweep(fn, [_After(1), _After(2)], tmp_path / "r.jsonl", jobs=1, quiet=True)
    assert [s.x for s in calls] == [1, 2] and len(records) == 2
    assert records[1]["spec"] == {"x": 2, "extra": []}  # written in full


CHILD_THAT_SLEEPS = (
    "from experiments.common.cli import interruptible_if_child; interruptible_if_child(); "
    "import time; time.sleep(120)"
)


def test_a_child_stage_is_stopped_when_its_block_fails(tmp_path):
    import argparse
    import signal
    import sys
    import time

    from experiments.common.cli import ChildStage

    args = argparse.Namespace(quick=True, quiet=True, started_strict=False)
    child = ChildStage("nmf", "schedules", args, tmp_path)
    assert child.command[1:] == [
        "-m", "experiments.nmf", "--stages", "schedules", "--jobs", "1", "--quiet",
        "--out", str(tmp_path), "--quick",
    ]  # fmt: skip
    assert child.finish() is None  # never started
    # what a study's parse_pipeline_args does first, then a long stage
    child.command = [sys.executable, "-c", CHILD_THAT_SLEEPS]
    # started as a non-interactive shell starts `make ... &`: SIGINT ignored, and inherited
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        start = time.perf_counter()
        with pytest.raises(KeyError), child:
            child.start()
            child.start()  # once only
            raise KeyError("the parent failed")
    finally:
        signal.signal(signal.SIGINT, before)
    assert child.process.poll() is not None  # stopped (SIGINT), not left running
    assert time.perf_counter() - start < ChildStage.STOP_TIMEOUT_S
    ok = ChildStage("nmf", "bound", args, tmp_path)
    ok.command = [sys.executable, "-c", "pass"]
    with ok:
        ok.start()
    assert ok.process.returncode == 0 and ok.finish() == 0


def test_a_study_started_as_a_child_stage_answers_sigint(monkeypatch, tmp_path):
    import signal

    from experiments.common import cli

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        cli.parse_pipeline_args("x", "", ["--out", str(tmp_path), "--jobs", "1"])
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # not a child: left as it is
        monkeypatch.setenv(cli.CHILD_STAGE_ENV, "1")
        cli.parse_pipeline_args("x", "", ["--out", str(tmp_path), "--jobs", "1"])
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
