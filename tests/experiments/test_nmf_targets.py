"""Time to target in the NMF study: targets from the baselines, times in steps and seconds,
profiles over (workload, held-out instance) problems, and the readings."""

import math

import pytest

from experiments import nmf as pipeline
from experiments.common.time_to_target import profiles_block
from experiments.nmf import targets


def _result(curve, wall=1.0):
    return {"rel_errors": list(curve), "wall_time_s": wall, "final_rel_error": curve[-1]}


def test_seconds_are_steps_times_the_runs_seconds_per_step():
    run = _result([1.0, 0.8, 0.5, 0.3, 0.2, 0.1], wall=2.5)  # 5 steps in 2.5 s
    assert targets.run_times(run, 0.5) == (2, pytest.approx(1.0))
    assert targets.run_times(run, 1.0) == (0, 0.0)  # met before the first step
    assert targets.run_times(run, 0.05) == (math.inf, math.inf)
    diverged = _result([1.0, 0.4, math.inf], wall=1.0)  # 2 steps taken before it stopped
    assert targets.run_times(diverged, 0.5) == (1, pytest.approx(0.5))


def _runs(learned_error):
    """Two cells, instances 0 and 1; baselines "a" (best errors 0.2, 0.4) and "b" (0.3, 0.3);
    a learned schedule with two PPO seeds ending at ``learned_error``."""
    runs = {}
    for cell in ("c1", "c2"):
        runs[cell] = {
            "a": {0: [_result([1.0, 0.5, 0.2])], 1: [_result([1.0, 0.6, 0.4])]},
            "b": {0: [_result([1.0, 0.3, 0.3])], 1: [_result([1.0, 0.3, 0.3], wall=4.0)]},
            "learned": {
                s: [_result([1.0, learned_error, learned_error]), _result([1.0, 0.9, 0.9])]
                for s in (0, 1)
            },
        }
    return runs


def test_the_target_comes_from_the_baselines_only():
    # medians of best errors: a 0.3, b 0.3 -> target 0.3, however good the learned runs are.
    for learned_error in (0.25, 0.01):
        per_cell, _ = targets.time_to_target(_runs(learned_error), ["a", "b"])
        assert {c: b["target"] for c, b in per_cell.items()} == {"c1": 0.3, "c2": 0.3}
    # with the learned schedule among the baselines its runs would set it
    per_cell, _ = targets.time_to_target(_runs(0.01), ["a", "b", "learned"])
    assert per_cell["c1"]["target"] == pytest.approx(0.3)  # median over its runs: 0.455
    per_cell, _ = targets.time_to_target(_runs(0.01), ["learned"])
    assert per_cell["c1"]["target"] == pytest.approx((0.01 + 0.9) / 2)
    with pytest.raises(ValueError, match="baselines"):
        targets.time_to_target(_runs(0.1), ["nope"])


def test_profiles_cover_every_workload_and_instance_with_the_median_over_ppo_seeds():
    per_cell, overall = targets.time_to_target(_runs(0.25), ["a", "b"])
    assert overall["problems"] == ["c1#0", "c1#1", "c2#0", "c2#1"]
    # a: instance 0 at step 2, instance 1 never; b: step 1 on both (1/2 s, 4/2 s);
    # learned: seeds at step 1 and never -> median inf on every problem.
    times = {
        "a": {"c1#0": 2.0, "c1#1": math.inf, "c2#0": 2.0, "c2#1": math.inf},
        "b": {p: 1.0 for p in overall["problems"]},
        "learned": {p: math.inf for p in overall["problems"]},
    }
    assert overall["profiles"]["steps"] == profiles_block(times)
    seconds = {
        "a": {"c1#0": 1.0, "c1#1": math.inf, "c2#0": 1.0, "c2#1": math.inf},
        "b": {"c1#0": 0.5, "c1#1": 2.0, "c2#0": 0.5, "c2#1": 2.0},
        "learned": {p: math.inf for p in overall["problems"]},
    }
    assert overall["profiles"]["seconds"] == profiles_block(seconds)
    assert overall["profiles"]["steps"]["best"] == "b"
    # per-cell summaries pool every run: the learned schedule's 4 runs, 2 reach the target
    assert per_cell["c1"]["methods"]["learned"]["steps"] == {
        "median": math.inf,
        "reached": 2,
        "n": 4,
    }
    assert per_cell["c1"]["methods"]["b"]["seconds"]["median"] == pytest.approx(1.25)


def test_the_readings_name_the_best_method_of_each():
    _, overall = targets.time_to_target(_runs(0.25), ["a", "b"])
    r = targets.readings({"a": 1.1, "b": 1.3, "learned": 1.0}, overall["profiles"], "IQM")
    assert r["final_error"] == {"metric": "IQM", "best": "learned", "value": 1.0}
    assert r["profile_steps"]["best"] == r["profile_seconds"]["best"] == "b"
    assert r["agree"] is False


def test_the_rl_summary_scores_time_to_target_against_the_tuned_schedules(tmp_path):
    from test_nmf_rl_pipeline import _record

    config = pipeline.RLConfig(
        **{**pipeline.RL_QUICK.__dict__, "ppo_seeds": (0, 1), "variants": ("learned",)}
    )
    names = list(config.grid())

    def summary(learned_error):
        baseline = [_record(n, s, 0.5) for n in names for s in (0, 1)]
        learned = [_record("learned", s, learned_error, ppo_seed=k) for s in (0, 1) for k in (0, 1)]
        return pipeline.summarise_rl(config, {}, [], baseline, learned)

    good, better = summary(0.2), summary(0.1)
    cell = "digits/noise=0"
    assert good["cells"][cell]["target_rel_error"] == better["cells"][cell]["target_rel_error"]
    assert good["cells"][cell]["target_rel_error"] == pytest.approx(0.5)
    block = good["time_to_target"]
    assert block["problems"] == [f"{cell}#0", f"{cell}#1"]
    assert set(block["profiles"]["steps"]["methods"]) == {*names, "learned"}
    # the tuned runs (1.0, 1.0, 0.5) reach 0.5 at step 2, the learned ones (1.0, 0.4, 0.2) at 1
    assert block["profiles"]["steps"]["best"] == "learned"
    assert block["readings"]["final_error"]["best"] == "learned"
    assert good["cells"][cell]["schedules"]["step"]["time_to_target"]["steps"]["median"] == 2
    table = pipeline.rl_table(good)
    assert "**Performance profiles** over 2 problems" in table
