"""The NMF design screen: its comparison arithmetic, its specs, and a quick end-to-end run."""

import json
import math

import numpy as np
import pytest

from experiments.common.agents import freeze, thaw_ppo
from experiments.nmf import screen
from experiments.nmf.config import NMFRunSpec, cell_name, params_key, tuning_grid
from experiments.nmf.schedules import run_nmf


def test_compare_counts_strict_wins_and_takes_geometric_means():
    row = screen.compare([1.0, 2.0, 4.0], ["a", "a", "b"], {"s": [2.0, 2.0, 2.0]})
    assert row["win_share"] == {"s": pytest.approx(1 / 3)}  # a tie is not a win
    assert row["error_ratio"] == {"s": pytest.approx(1.0)}  # (0.5 * 1 * 2) ** (1/3)
    assert row["geo_mean_error"] == pytest.approx(2.0)
    assert row["per_cell"] == {"a": {"agent": 1.5, "s": 2.0}, "b": {"agent": 4.0, "s": 2.0}}


def test_specs_carry_each_designs_settings():
    specs = screen.agent_specs(screen.SCREEN_FULL, ["headline", "longer_training"], [0, 3])
    assert [(s.design, s.seed) for s in specs] == [
        ("headline", 0),
        ("headline", 3),
        ("longer_training", 0),
        ("longer_training", 3),
    ]
    assert specs[0].total_timesteps == 60_000 and specs[2].total_timesteps == 150_000
    env = dict(specs[0].env_kwargs)
    assert env["bound_range"] == (-6.0, 2.0) and env["shield"] is False
    assert env["n_instances"] == screen.SCREEN_FULL.n_train
    assert len(specs[0].test_instances) == screen.SCREEN_FULL.n_test


def test_ppo_settings_survive_the_round_trip_through_the_spec():
    for name, design in screen.DESIGNS.items():
        ppo = design.get("ppo", {})
        assert thaw_ppo(freeze(ppo)) == ppo, name


def test_unknown_design_is_named():
    with pytest.raises(ValueError, match="designs must be names from"):
        screen.agent_specs(screen.SCREEN_QUICK, ["headline", "nope"], [0])


@pytest.mark.parametrize(
    "argv, message",
    [(["--designs", "nope"], "--designs: choose from"), (["--seeds", "x"], "--seeds")],
)
def test_bad_options_end_in_a_message_naming_them(tmp_path, argv, message):
    with pytest.raises(SystemExit, match=message):
        screen.main(["--quick", "--quiet", "--out", str(tmp_path), *argv])


@pytest.mark.slow
def test_quick_screen_end_to_end_and_resumes(tmp_path):
    argv = ["--quick", "--quiet", "--jobs", "1", "--out", str(tmp_path)]
    argv += ["--designs", "headline", "--seeds", "0"]
    summary = screen.main(argv)
    config = screen.SCREEN_QUICK

    # tuning: per schedule and cell, the grid point with the lowest mean train error
    grid = tuning_grid(
        config.n_steps, config.lr_grid, config.budget, step_budget=config.step_budget
    )
    train = config.instances("train")
    for name in screen.SCHEDULES:
        for cell in {cell_name(i) for i in train}:
            means = {
                params_key(p): np.mean(
                    [
                        run_nmf(NMFRunSpec(i, name, params_key(p), config.n_steps, config.clip))[
                            "final_rel_error"
                        ]
                        for i in train
                        if cell_name(i) == cell
                    ]
                )
                for p in grid[name]
            }
            assert summary["tuned"][name][cell] == dict(min(means, key=means.get))

    # held-out baselines are those tuned runs on the test instances
    test = config.instances("test")
    first = test[0]
    params = params_key(summary["tuned"]["cosine"][cell_name(first)])
    direct = run_nmf(NMFRunSpec(first, "cosine", params, config.n_steps, config.clip))
    assert summary["baselines"]["cosine"][0] == direct["final_rel_error"]

    # the agent's row is what training and running the spec again gives
    (row,) = summary["rows"]
    (spec,) = screen.agent_specs(config, ["headline"], [0])
    again = screen.train_and_run(spec)
    assert row == {"design": "headline", "seed": 0, "train_time_s": row["train_time_s"]} | (
        screen.compare(again["errors"], again["cells"], summary["baselines"])
    )
    assert all(math.isfinite(e) for e in again["errors"])
    assert "| headline | 0 |" in (tmp_path / "table.md").read_text()
    assert json.loads((tmp_path / "summary.json").read_text())["rows"] == summary["rows"]

    # a rerun resumes: nothing is trained or run again
    lines = {
        f: (tmp_path / f).read_text() for f in ("tune.jsonl", "held_out.jsonl", "agents.jsonl")
    }
    assert screen.main(argv)["rows"] == summary["rows"]
    for name, text in lines.items():
        assert (tmp_path / name).read_text() == text, name


def test_default_output_folder_is_results_nmf_screen(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):  # stops after creating the folder
        screen.main(["--quick", "--quiet", "--designs", "nope"])
    assert (tmp_path / "results" / "nmf-screen-quick").is_dir()


def test_the_makefile_and_the_reference_command_know_the_screen():
    from pathlib import Path

    from experiments.reference import PIPELINES

    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert "reproduce-nmf-screen:" in makefile
    assert f"--out $({PIPELINES['nmf-screen']})" in makefile


def test_the_per_cell_table_averages_a_designs_seeds():
    def row(design, seed, agent):
        return {"design": design, "seed": seed, "per_cell": {"c": {"agent": agent, "s": 2.0}}}

    summary = {"baselines": {"s": [2.0]}, "rows": [row("d", 0, 1.0), row("d", 1, 2.0)]}
    lines = screen.per_cell_table(summary)
    assert "| d | 1.5000 |" in lines and "| tuned s | 2.0000 |" in lines
