import json
import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from experiments import dnn as pipeline
from experiments.dnn.__main__ import main as run_pipeline
from experiments.runner import load_results, spec_id

TINY = pipeline.TaskSpec(
    "vision",
    "digits",
    "cnn",
    batch_size=8,
    eval_size=16,
    val_size=16,
    steps_per_action=2,
    max_actions=4,
)


def test_configurations_are_fair_and_consistent():
    for config in (pipeline.CPU, pipeline.QUICK, pipeline.GPU):
        assert {t.name for t in config.tasks} == set(pipeline.TASKS)
        # transfer needs the same decision interval and horizon on both tasks
        assert len({(t.steps_per_action, t.max_actions) for t in config.tasks}) == 1
        for task in config.tasks:
            assert not set(config.tune_seeds(task)) & set(config.eval_seeds(task))
            assert set(config.tune_seeds(task)) <= set(task.seeds("train", config.n_train))
            # random search gets the agent's compute, to within one run
            agent_steps = config.ppo_timesteps * task.steps_per_action
            rs_steps = config.n_trials(task) * task.budget
            assert 0 <= rs_steps - agent_steps < task.budget
            # every baseline gets the same grid
            assert {len(config.grid(task, o)) for o in config.optimizers} == {config.grid_size}
        assert config.ppo_timesteps % (config.ppo_n_steps * 2) == 0
    assert len(pipeline.CPU.eval_seeds(pipeline.CPU.tasks[0])) >= 5
    assert len(pipeline.QUICK.eval_seeds(pipeline.QUICK.tasks[0])) >= 3


def test_random_search_is_reproducible_and_stays_in_range():
    config = pipeline.QUICK
    trials = pipeline.random_search_specs(config)
    assert trials == pipeline.random_search_specs(config)
    for name, specs in trials.items():
        assert len(specs) == config.n_trials(config.task(name))
        for s in specs:
            lo, hi = config.lr_ranges[name][s.optimizer]
            assert lo <= s.lr <= hi and s.schedule in pipeline.SCHEDULES
        assert len({(s.optimizer, s.schedule) for s in specs}) > 3


def _stats(val_loss):
    return SimpleNamespace(val_loss=val_loss)


def test_chunk_schedules_follow_their_definitions():
    make = lambda name: pipeline.make_controller(name, 0.1, 8, 5)  # noqa: E731
    assert [make("constant")(k, None) for k in range(8)] == [0.1] * 8
    assert [make("step")(k, None) for k in range(8)] == pytest.approx(
        [0.1] * 4 + [0.01] * 2 + [0.001] * 2
    )
    cosine = [make("cosine")(k, None) for k in range(8)]
    assert cosine[0] == 0.1 and cosine[4] == pytest.approx(0.05) and cosine[-1] > 0
    plateau = make("plateau")
    lrs = [plateau(k, _stats(1.0)) for k in range(6)]  # no improvement after the first value
    assert lrs[:4] == [0.1] * 4 and lrs[4] == pytest.approx(0.05)
    greedy = make("greedy")
    lrs = [greedy(k, _stats(1.0 - 0.1 * k)) for k in range(5)]  # improving every chunk
    assert lrs[0] == 0.1 and lrs[-1] > 0.1


def test_a_run_is_deterministic_and_reports_curves():
    spec = pipeline.DNNRunSpec(TINY, 0, "sgd", "cosine", 0.05)
    a, b = pipeline.run_dnn(spec), pipeline.run_dnn(spec)
    for key in ("steps", "val_loss", "train_loss", "metric", "lrs"):
        assert a[key] == b[key]
    assert a["steps"] == [0, 2, 4, 6, 8] and len(a["lrs"]) == 4
    assert a["final_val_loss"] == a["val_loss"][-1] and 0 <= a["final_metric"] <= 1
    assert not a["diverged"] and a["metric_name"] == "val_accuracy"
    blown = pipeline.run_dnn(replace(spec, schedule="constant", lr=1e4))
    assert blown["diverged"] and blown["final_val_loss"] == math.inf
    assert math.isnan(blown["final_metric"]) and len(blown["lrs"]) < 4


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"schedule": "linear"}, "schedule"),
        ({"schedule": "agent"}, "agent"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_run_spec_validation(change, match):
    with pytest.raises(ValueError, match=match):
        pipeline.run_dnn(replace(pipeline.DNNRunSpec(TINY, 0, "sgd", "constant", 0.05), **change))


def test_baseline_selection_takes_the_lowest_mean_validation_loss():
    config = replace(pipeline.QUICK, tasks=(pipeline.QUICK.tasks[0],), schedules=("constant",))
    records = {}
    for spec in pipeline.tuning_specs(config):
        final = 0.5 if spec.lr == max(config.grid(spec.task, spec.optimizer)) else 0.9
        records[spec_id(spec)] = {
            "status": "ok",
            "result": {"final_val_loss": final},
            "wall_time_s": 1.0,
        }
    best = pipeline.select_baselines(config, records)["vision"]
    assert set(best) == {"sgd/constant", "adam/constant"}
    assert best["sgd/constant"]["lr"] == 0.5 and best["sgd/constant"]["train_val_loss"] == 0.5
    assert best["sgd/constant"]["search_wall_time_s"] == config.grid_size * config.n_tune


@pytest.mark.slow
def test_quick_reproduction_end_to_end_and_resume(tmp_path):
    argv = ["--quick", "--jobs", "2", "--quiet", "--out", str(tmp_path)]
    summary = run_pipeline(argv)
    for name in (
        "train.jsonl",
        "eval.jsonl",
        "summary.json",
        "table.md",
        "lr_schedules.png",
        "val_curves.png",
        "cost_quality.png",
        "agent_training.png",
        "agents/vision/model.zip",
        "agents/text/model.zip",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    assert summary["failed_runs"] == []
    n_eval = pipeline.QUICK.n_eval
    baselines = {f"{o}/{s}" for o in pipeline.OPTIMIZERS for s in pipeline.SCHEDULES}
    for name, block in summary["tasks"].items():
        rows = block["methods"]
        assert set(rows) == baselines | {pipeline.AGENT, pipeline.TRANSFER, pipeline.RANDOM_SEARCH}
        assert all(r["n"] == n_eval for r in rows.values())
        agent = rows[pipeline.AGENT]
        assert math.isfinite(agent["final_val_loss"]["mean"]) and agent["diverged"] == 0
        assert 0 < agent["lr_min"] <= agent["lr_max"] < 10
        assert rows[pipeline.RANDOM_SEARCH]["compute_steps"] >= agent["compute_steps"]
        assert rows[pipeline.TRANSFER]["source"] != name
        metric = agent["final_metric"]["mean"]
        if name == "vision":
            assert 0 <= metric <= 1  # accuracy
        else:
            assert 1 < metric < 70  # perplexity, below a uniform guess over the ~70 characters
        assert 0 < block["target_val_loss"] < 5
        assert len(block["cost_quality"][pipeline.AGENT]) == pipeline.QUICK.n_checkpoints
    assert json.loads((tmp_path / "summary.json").read_text())["tasks"].keys() == {"vision", "text"}
    assert (tmp_path / "table.md").read_text() == pipeline.markdown_table(summary)

    lines = {f: len((tmp_path / f).read_text().splitlines()) for f in ("train.jsonl", "eval.jsonl")}
    again = run_pipeline(argv)
    assert {f: len((tmp_path / f).read_text().splitlines()) for f in lines} == lines
    assert again["tasks"] == summary["tasks"]
    assert len(load_results(tmp_path / "eval.jsonl")) == lines["eval.jsonl"]
    assert np.isfinite(summary["wall_time_s"])
