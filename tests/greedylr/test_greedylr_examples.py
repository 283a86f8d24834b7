"""The GreedyLR examples and the micro-benchmark run (quick settings; no timing assertions)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(relative: str) -> ModuleType:
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_torch_loop_example(capsys):
    example = _load("examples/greedylr_torch_loop.py")
    results = example.main(["--epochs", "6"])
    assert set(results) == {"constant", "plateau", "greedy"}
    val, lrs = results["greedy"]
    assert len(val) == len(lrs) == 6 and all(map(math.isfinite, val))
    assert results["constant"][1] == [0.005] * 6
    assert "lowest final validation loss" in capsys.readouterr().out
    per_step = example.main(["--epochs", "2", "--per-step", "--quiet"])
    assert len(per_step["greedy"][0]) == 2


def test_factor_sweep_example():
    example = _load("examples/greedylr_factor_sweep.py")
    rows = example.main(["--max-steps", "300", "--l-max", "2", "--quiet"])
    assert len(rows) == 4  # two rules x two starting rates
    assert all(r["steps"][r["best_F"]] <= 300 for r in rows)


@pytest.mark.slow
def test_hf_trainer_example():
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    example = _load("examples/greedylr_hf_trainer.py")
    results = example.main(["--steps", "12", "--quiet"])
    assert set(results) == {"eval", "train-loss"}
    assert all(len(rows) == 12 for rows in results.values())


def test_benchmark_runs_and_prints_a_table(capsys, monkeypatch):
    bench = _load("benchmarks/bench_greedylr.py")
    results = bench.run(n_calls=50, repeats=2, train_steps=3)
    for name in ("GreedyLR (paper)", "ReduceLROnPlateau", "MLP training step"):
        assert results[name] > 0
    monkeypatch.setattr(bench, "run", lambda: results)  # main() prints what run() measured
    bench.main()
    out = capsys.readouterr().out
    assert "x ReduceLROnPlateau" in out and "% of train step" in out
