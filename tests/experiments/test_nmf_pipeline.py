import json
from dataclasses import replace

import pytest

from experiments import nmf as pipeline
from experiments.nmf import bound as nmf_bound
from experiments.nmf.__main__ import main as run_study
from experiments.runner import load_results
from nmf import global_stability_bound
from nmf.datasets import NMFInstance
from nmf.schedules import make_schedule


def test_every_schedule_gets_the_same_tuning_budget():
    for config in (pipeline.SCHEDULES_FULL, pipeline.SCHEDULES_QUICK):
        grid = pipeline.tuning_grid(config.n_steps, config.lr_grid, config.budget)
        assert {len(options) for options in grid.values()} == {config.budget}
        assert set(grid) == {
            "constant",
            "step",
            "exponential",
            "inverse_time",
            "cosine",
            "follow_bound",
        }


def _drop_steps(params: dict, n_steps: int) -> list[int]:
    lrs = [make_schedule("step", **params)(t) for t in range(n_steps)]
    return [t for t in range(1, n_steps) if lrs[t] < lrs[t - 1]]


@pytest.mark.parametrize("n_steps", [300, 500])
def test_step_decay_makes_all_its_drops_within_the_budget(n_steps):
    def check(n, lrs, budget):
        axes = pipeline.tuning_axes(n, lrs, budget)
        shapes = [shape for name, shape in axes if name == "step"]
        assert shapes == list(range(budget // len(lrs)))
        for shape in shapes:
            _, drops = pipeline.SHAPES["step"][shape]
            for lr in axes[("step", shape)]:
                params = pipeline.axis_params("step", shape, lr, n)
                steps = _drop_steps(params, n)
                assert len(steps) == drops, params
                assert n - steps[-1] >= params["every"] / 2, params  # the last one is not wasted

    check(n_steps, (1e-3, 1e-2), 2 * len(pipeline.SHAPES["step"]))  # every shape
    for config in (
        pipeline.SCHEDULES_FULL,
        pipeline.SCHEDULES_QUICK,
    ):  # the grids the pipeline runs
        check(config.n_steps, config.lr_grid, config.budget)


def test_every_schedule_tunes_along_a_log_axis_of_the_same_length():
    axes = pipeline.tuning_axes(300, (1e-3, 1e-2), 4)
    for (name, shape), values in axes.items():
        assert len(values) == (4 if name in ("constant", "follow_bound") else 2)
        ratios = [b / a for a, b in zip(values, values[1:], strict=False)]
        assert max(ratios) == pytest.approx(min(ratios))  # log-spaced
        params = pipeline.axis_params(name, shape, values[0], 300)
        assert params[pipeline.AXIS_NAMES[name]] == values[0]
    with pytest.raises(ValueError, match="schedule"):
        pipeline.axis_params("sgdr", 0, 0.1, 300)


def test_tuning_widens_an_edge_optimum_and_reports_what_stays_at_an_edge(tmp_path):
    from experiments.nmf import report, schedules

    inst = NMFInstance("synthetic", rank=2, size=(12, 8), seed=0)
    axes = {("constant", 0): [1e-6, 2e-6], ("follow_bound", 0): [0.25, 0.5, 1.0]}
    best = schedules.tune_widened(
        {"cell": [inst]},
        axes,
        n_steps=20,
        clip=None,
        metric="final_loss",
        score_key="score",
        max_rounds=2,
        path=tmp_path / "tune.jsonl",
        quiet=True,
    )
    constant = best["cell"]["constant"]
    # far too small a rate: the best is the largest, so each round adds a larger one
    assert constant["rounds"] == 2 and constant["edge"] == "high"
    assert constant["shapes"][0]["grid"] == pytest.approx([1e-6, 2e-6, 4e-6, 8e-6])
    assert constant["params"] == {"lr": pytest.approx(8e-6)}
    hits = report.tuning_summary(best)["edge_hits"]
    assert {"cell": "cell", "schedule": "constant", "shape": 0, "edge": "high"}.items() <= hits[
        0
    ].items()
    widened = constant["rounds"] + best["cell"]["follow_bound"]["rounds"]
    assert len(load_results(tmp_path / "tune.jsonl")) == 2 + 3 + widened  # one run per value


def test_sklearn_comparison_uses_the_schedule_chosen_on_the_training_seeds():
    # "cosine" is better on the held-out seeds, "step" tuned better: the comparison takes "step".
    config = replace(pipeline.SCHEDULES_QUICK, eval_seeds=(100, 101))
    setting = "digits/noise=0"
    best = {
        setting: {
            "cosine": {"params": {"lr": 0.01}, "train_mean_final_loss": 2.0},
            "step": {
                "params": {"lr": 0.01, "every": 50, "factor": 0.5},
                "train_mean_final_loss": 1.0,
            },
        }
    }
    held_out = {"cosine": 0.1, "step": 0.2}

    def record(name, seed):
        spec = {"instance": {"dataset": "digits", "noise_std": 0.0, "seed": seed}, "schedule": name}
        error = held_out[name]
        curve = [1.0] * 100 + [error]
        result = {
            "final_rel_error": error,
            "rel_errors": curve,
            "diverged": False,
            "wall_time_s": 1,
        }
        return {"spec_id": f"{name}{seed}", "status": "ok", "spec": spec, "result": result}

    eval_records = [record(name, seed) for name in held_out for seed in config.eval_seeds]
    sk = [
        {"status": "ok", "result": {"final_rel_error": 0.15 + d, "wall_time_s": 1.0, "n_iter": 50}}
        for d in (0.0, 0.01)
    ]
    summary = pipeline.summarise_schedules(config, best, eval_records, sk)
    ref = summary["sklearn_reference"]
    assert ref["best_sgd_schedule"] == "step"
    assert (
        ref["sgd_rel_error"] == summary["settings"][setting]["schedules"]["step"]["final_rel_error"]
    )
    assert ref["ratio"] == pytest.approx(0.2 / 0.155)
    assert "| SGD, step (100 steps) |" in pipeline.schedules_table(summary)


def test_bound_tightness_rows_carry_the_global_bound():
    instance = NMFInstance("synthetic", rank=3, size=(20, 10))
    rows = nmf_bound.tightness(instance, (0,), (0, 1))
    for seed in (0, 1):
        problem = replace(instance, seed=seed).build()
        expected = global_stability_bound(problem, box=1.0)
        assert {r["global_bound"] for r in rows if r["seed"] == seed} == {expected}
    # The global bound holds for every iterate in the box, so it is below the local bound.
    assert all(r["global_bound"] < r["bound"] for r in rows)
    cell = nmf_bound._ratio_cell(
        [r for r in rows if r["clip"] is None], "sustained", "global_bound"
    )
    ratios = [r["global_bound"] / r["sustained"] for r in rows if r["clip"] is None]
    assert cell.startswith(f"{sum(ratios) / len(ratios):.3f} (")


def test_train_and_evaluation_seeds_are_disjoint():
    for config in (pipeline.SCHEDULES_FULL, pipeline.SCHEDULES_QUICK):
        assert not set(config.train_seeds) & set(config.eval_seeds)


def test_a_run_is_deterministic_and_reports_curves():
    spec = pipeline.NMFRunSpec(
        NMFInstance("synthetic", rank=3, noise_std=1.0, seed=5, size=(20, 10)),
        "step",
        (("every", 5), ("factor", 0.5), ("lr", 1e-3)),
        n_steps=20,
        curves=True,
    )
    a, b = pipeline.run_nmf(spec), pipeline.run_nmf(spec)
    assert a["rel_errors"] == b["rel_errors"] and len(a["rel_errors"]) == 21
    assert a["lrs"][:6] == [1e-3] * 5 + [5e-4]


@pytest.mark.slow
def test_quick_reproduction_end_to_end_and_resume(tmp_path):
    summary = run_study(
        ["--quick", "--jobs", "1", "--quiet", "--stages", "schedules", "--out", str(tmp_path)]
    )["schedules"]
    for name in (
        "tune.jsonl",
        "eval.jsonl",
        "sklearn.jsonl",
        "summary.json",
        "table.md",
        "loss_curves.png",
        "lr_curves.png",
        "time_to_target.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    settings = summary["settings"]
    reach = summary["time_to_target"]
    assert len(reach["problems"]) == len(settings) * len(pipeline.SCHEDULES_QUICK.eval_seeds)
    for unit in ("steps", "seconds"):
        assert set(reach["profiles"][unit]["methods"]) == set(summary["iqm_normalised"])
    assert set(reach["readings"]) == {"final_error", "profile_steps", "profile_seconds", "agree"}
    assert len(settings) == 2 * len(pipeline.SCHEDULES_QUICK.noise_levels)
    for block in settings.values():
        assert set(block["schedules"]) == set(pipeline.tuning_grid(100, (1e-3, 1e-2), 4))
        for row in block["schedules"].values():
            assert row["final_rel_error"]["n"] == len(pipeline.SCHEDULES_QUICK.eval_seeds)
            assert row["time_to_target"]["steps"]["n"] == row["final_rel_error"]["n"]
    assert json.loads((tmp_path / "summary.json").read_text())["settings"].keys() == settings.keys()
    assert (tmp_path / "table.md").read_text() == pipeline.schedules_table(summary)
    ref = summary["sklearn_reference"]
    assert 0 < ref["sklearn_rel_error"]["mean"] < 1 and ref["ratio"] > 0

    lines_before = {
        f: len((tmp_path / f).read_text().splitlines()) for f in ("tune.jsonl", "eval.jsonl")
    }
    again = run_study(
        ["--quick", "--jobs", "1", "--quiet", "--stages", "schedules", "--out", str(tmp_path)]
    )["schedules"]
    lines_after = {
        f: len((tmp_path / f).read_text().splitlines()) for f in ("tune.jsonl", "eval.jsonl")
    }
    assert lines_after == lines_before  # everything was resumed, nothing rerun
    assert again["settings"] == summary["settings"]
    assert len(load_results(tmp_path / "eval.jsonl")) == lines_before["eval.jsonl"]


def _runs_without_timing(path):
    drop = ("wall_time_s",)
    return {
        r["spec_id"]: {k: v for k, v in r["result"].items() if k not in drop}
        for r in load_results(path)
    }


@pytest.mark.slow
def test_quick_schedules_through_a_local_ray_equal_the_serial_run(tmp_path):
    pytest.importorskip("ray")
    import os
    import subprocess
    import sys

    serial, on_ray = tmp_path / "serial", tmp_path / "ray"
    argv = ["--quick", "--quiet", "--stages", "schedules"]
    run_study([*argv, "--jobs", "1", "--out", str(serial)])
    # A local Ray, started and stopped by the command (RAY_ADDRESS would name a running cluster).
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    subprocess.run(
        [sys.executable, "-m", "experiments.nmf", *argv, "--backend", "ray", "--jobs", "2"]
        + ["--out", str(on_ray)],
        check=True,
        env=env,
        timeout=600,
    )
    for name in ("tune.jsonl", "eval.jsonl", "sklearn.jsonl"):
        assert _runs_without_timing(on_ray / name) == _runs_without_timing(serial / name), name
    assert (on_ray / "table.md").read_text().split("\n")[:20] == (
        serial / "table.md"
    ).read_text().split("\n")[:20]
