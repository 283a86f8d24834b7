import json

import pytest

from experiments import nmf as pipeline
from experiments.runner import load_results
from nmf.datasets import NMFInstance


def test_every_schedule_gets_the_same_tuning_budget():
    for config in (pipeline.FULL, pipeline.QUICK):
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


def test_train_and_evaluation_seeds_are_disjoint():
    for config in (pipeline.FULL, pipeline.QUICK):
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
    summary = pipeline.main(["--quick", "--jobs", "1", "--quiet", "--out", str(tmp_path)])
    for name in (
        "tune.jsonl",
        "eval.jsonl",
        "sklearn.jsonl",
        "summary.json",
        "table.md",
        "loss_curves.png",
        "lr_curves.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    settings = summary["settings"]
    assert len(settings) == 2 * len(pipeline.QUICK.noise_levels)
    for block in settings.values():
        assert set(block["schedules"]) == set(pipeline.tuning_grid(100, (1e-3, 1e-2), 4))
        for row in block["schedules"].values():
            assert row["final_rel_error"]["n"] == len(pipeline.QUICK.eval_seeds)
    assert json.loads((tmp_path / "summary.json").read_text())["settings"].keys() == settings.keys()
    assert (tmp_path / "table.md").read_text() == pipeline.markdown_table(summary)
    ref = summary["sklearn_reference"]
    assert 0 < ref["sklearn_rel_error"]["mean"] < 1 and ref["ratio"] > 0

    lines_before = {
        f: len((tmp_path / f).read_text().splitlines()) for f in ("tune.jsonl", "eval.jsonl")
    }
    again = pipeline.main(["--quick", "--jobs", "1", "--quiet", "--out", str(tmp_path)])
    lines_after = {
        f: len((tmp_path / f).read_text().splitlines()) for f in ("tune.jsonl", "eval.jsonl")
    }
    assert lines_after == lines_before  # everything was resumed, nothing rerun
    assert again["settings"] == summary["settings"]
    assert len(load_results(tmp_path / "eval.jsonl")) == lines_before["eval.jsonl"]
