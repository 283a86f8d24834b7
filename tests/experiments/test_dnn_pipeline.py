import json
import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from experiments import dnn as pipeline
from experiments.common.agents import thaw_ppo
from experiments.common.controllers import ChunkSchedule
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
        assert config.n_ppo_seeds >= (2 if config is pipeline.QUICK else 3)
        for task in config.tasks:
            assert not set(config.tune_seeds(task)) & set(config.eval_seeds(task))
            assert set(config.tune_seeds(task)) <= set(task.seeds("train", config.n_train))
            # random search gets one agent's compute (its PPO actions, the neutral policy's
            # cached runs at their most, the tuning runs of its starting schedule), to within
            # one run
            assert config.agent_start_cell(task) == (task.name, "sgd", "cosine")
            episodes = config.ppo_timesteps / task.max_actions
            for anchor_runs in (0, 7):
                # the neutral runs: counted per training seed and environment on the CPU (at
                # least what a training runs), one per episode on a GPU
                neutral_runs = 2 * config.n_train if task.device == "cpu" else episodes
                agent_steps = config.ppo_timesteps * task.steps_per_action
                agent_steps += (neutral_runs + anchor_runs) * task.budget
                rs_steps = config.n_trials(task, anchor_runs) * task.budget
                assert 0 <= rs_steps - agent_steps < task.budget
            # every baseline gets the same grid
            assert {len(config.grid(task, o)) for o in config.optimizers} == {config.grid_size}
        assert config.ppo_timesteps % (config.ppo_n_steps * 2) == 0
    assert len(pipeline.CPU.eval_seeds(pipeline.CPU.tasks[0])) >= 10
    assert len(pipeline.QUICK.eval_seeds(pipeline.QUICK.tasks[0])) >= 3


def test_agent_design_is_part_of_the_agent_spec():
    from experiments.dnn.config import AgentSpec, agent_specs

    with pytest.raises(ValueError, match="start_lrs"):
        agent_specs(pipeline.CPU)  # the anchored agent needs its tuned starting rate
    for spec in agent_specs(pipeline.CPU, {"vision": 0.2, "text": 1.5}):
        assert dict(spec.env_options) == {
            "rate_range": (-2.0, 2.0),
            "rate_anchor": "cosine",
            "reward_baseline": "neutral",
        }
        assert thaw_ppo(spec.ppo_options) == {
            "gamma": 1.0,
            "policy_kwargs": {"net_arch": [64, 64], "log_std_init": -1.5},
            "n_epochs": 40,
        }
        assert spec.initial_lr == {"vision": 0.2, "text": 1.5}[spec.task.name]
        env_kwargs = spec.task.env_kwargs([1], spec.initial_lr)
        assert env_kwargs["task_kwargs"]["initial_lr"] == spec.initial_lr
        # a kept build's agents of earlier designs keep their id and folder (the first design
        # in agents/<task>/seed<k>, the second in a folder named by its id); the new design
        # trains in its own folder, never resuming another's checkpoints
        first_design = AgentSpec(
            spec.task,
            spec.n_train,
            spec.total_timesteps,
            spec.n_steps,
            spec.n_envs,
            spec.seed,
            spec.n_checkpoints,
        )
        second_design = replace(
            first_design, env_options=(("rate_range", (-6.0, 2.0)),), ppo_options=(("gamma", 1.0),)
        )
        ids = {spec_id(first_design), spec_id(second_design), spec_id(spec)}
        assert len(ids) == 3
        assert first_design.folder == f"agents/{spec.task.name}/seed{spec.seed}"
        assert spec.folder.startswith(first_design.folder + "-")
        assert spec.folder != second_design.folder


def test_an_anchor_must_be_a_tuned_sgd_schedule():
    with pytest.raises(ValueError, match="rate_anchor 'cosine' must be a tuned schedule"):
        replace(pipeline.QUICK, schedules=("constant", "greedy"))


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


def test_the_agents_neutral_action_is_the_tuned_sgd_cosine_baseline():
    """With the study's agent settings, action 0 at every decision replays the SGD + cosine
    baseline's run at the same rate exactly, and the neutral run's rewards are exactly 0."""
    from experiments.dnn.config import AGENT_ENV, env_id
    from rl_scheduler.registration import make_env

    lr, seed = 0.2, TINY.seeds("train", 1)[0]
    baseline = pipeline.run_dnn(pipeline.DNNRunSpec(TINY, seed, "sgd", "cosine", lr))
    env = make_env(env_id(TINY), **TINY.env_kwargs([seed], lr), **AGENT_ENV)
    _, info = env.reset(seed=0)
    losses, lrs, rewards = [info["loss"]], [], []
    for _ in range(TINY.max_actions):
        _, reward, _, _, info = env.step(np.zeros(1, dtype=np.float32))
        losses.append(info["loss"])
        lrs.append(info["lr"])
        rewards.append(reward)
    cosine = pipeline.make_controller("cosine", lr, TINY.max_actions, TINY.steps_per_action)
    assert lrs == [cosine(k, None) for k in range(TINY.max_actions)]
    np.testing.assert_allclose(losses, baseline["train_loss"], rtol=1e-5)  # records keep 6 digits
    assert rewards == [0.0] * TINY.max_actions


def _stats(val_loss):
    return SimpleNamespace(val_loss=val_loss)


def test_chunk_schedules_follow_their_definitions():
    make = lambda name: pipeline.make_controller(name, 0.1, 8, 5)  # noqa: E731
    assert [make("constant")(k, None) for k in range(8)] == [0.1] * 8
    # nmf.schedules.StepDecay: x0.1 every ceil(8 / 3) = 3 chunks
    assert [make("step")(k, None) for k in range(8)] == pytest.approx(
        [0.1] * 3 + [0.01] * 3 + [0.001] * 2
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


def test_step_milestones_must_be_evenly_spaced():
    with pytest.raises(ValueError, match="step_milestones"):
        ChunkSchedule("step", 0.1, 8, 5, step_milestones=(0.5, 0.75), plateau={}, greedy={})


def test_tuning_widens_edge_optima_and_selects_by_validation_loss():
    config = replace(
        pipeline.QUICK,
        tasks=(pipeline.QUICK.tasks[0],),
        schedules=("constant",),
        agent_env={},  # no agent trained here: no anchor to tune
        tune_rounds=2,
        peers=(),
    )
    calls = []

    def sweep(specs):  # validation loss falls with the rate up to 1e6, beyond every grid
        calls.append(len(specs))
        return [
            {
                "spec_id": spec_id(s),
                "status": "ok",
                "result": {"final_val_loss": abs(math.log(s.lr / 1e6)), "test_loss": -1.0},
                "wall_time_s": 1.0,
            }
            for s in specs
        ]

    records = {}
    tuned = pipeline.tune_baselines(config, sweep, records)
    best = pipeline.select_baselines(config, tuned, records)["vision"]
    assert set(best) == {"sgd/constant", "adam/constant"}
    assert len(calls) == 3  # the initial grid, then one sweep per widening round
    sgd = best["sgd/constant"]
    assert sgd["tuning"]["rounds"] == 2 and len(sgd["tuning"]["grid"]) == config.grid_size + 2
    assert sgd["lr"] == max(sgd["tuning"]["grid"]) > max(config.grid(config.tasks[0], "sgd"))
    assert sgd["tuning"]["edge"] == "high"  # still at the edge after two rounds: reported
    assert sgd["val_loss"] == pytest.approx(abs(math.log(sgd["lr"] / 1e6)))
    assert sgd["search_wall_time_s"] == len(sgd["tuning"]["grid"]) * config.n_tune


def test_only_the_final_model_of_a_held_out_run_reads_the_test_split(monkeypatch):
    from rl_scheduler.tasks.torch_base import TorchTask

    events = []
    advance, evaluate_test = TorchTask.advance, TorchTask.evaluate_test
    monkeypatch.setattr(
        TorchTask, "advance", lambda self, *a: events.append("advance") or advance(self, *a)
    )
    monkeypatch.setattr(
        TorchTask, "evaluate_test", lambda self: events.append("test") or evaluate_test(self)
    )
    for schedule in ("cosine", "plateau", "greedy"):
        spec = pipeline.DNNRunSpec(TINY, 0, "sgd", schedule, 0.05)
        tuning = pipeline.run_dnn(spec)  # a tuning / random-search run: no test split at all
        assert "test" not in events and "test_loss" not in tuning
        events.clear()
        held_out = pipeline.run_dnn(spec, final_test=True)
        assert events == ["advance"] * TINY.max_actions + ["test"]
        events.clear()
        assert held_out["val_loss"] == tuning["val_loss"]  # the run itself is unchanged
        assert (
            math.isfinite(held_out["test_loss"])
            and held_out["test_loss"] != held_out["final_val_loss"]
        )
        assert 0 <= held_out["test_metric"] <= 1


def test_agent_comparison_arranges_runs_by_seeds():
    agent = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])  # 2 PPO seeds x 3 eval seeds
    worse = np.array([[0.5, 0.6, 0.7]])  # a baseline: one run per eval seed
    c = pipeline.compare(agent, worse)
    assert c["poi"] == 1.0 and c["n_runs"] == [2, 1] and c["n_tasks"] == 3
    assert c["ci95"] == [1.0, 1.0] and c["significant"] and c["p_value"] == pytest.approx(0.25)
    tie = pipeline.compare(agent, agent[:1])
    assert tie["poi"] == 0.5 and not tie["significant"]


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
        "time_to_target.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    for t in pipeline.TASKS:
        for k in range(2):  # one folder per PPO seed, named by the agent's spec
            (model,) = tmp_path.glob(f"agents/{t}/seed{k}-*/model.zip")
            assert model.stat().st_size > 0
    assert summary["failed_runs"] == []
    n_eval = pipeline.QUICK.n_eval
    baselines = {f"{o}/{s}" for o in pipeline.OPTIMIZERS for s in pipeline.QUICK.schedules}
    for name, block in summary["tasks"].items():
        rows = block["methods"]
        peers = set(pipeline.QUICK.peers)
        assert set(rows) == baselines | peers | {pipeline.AGENT, pipeline.RANDOM_SEARCH}
        seeds = pipeline.QUICK.n_ppo_seeds
        assert all(
            r["n"] == (seeds if m == pipeline.AGENT else 1) * n_eval for m, r in rows.items()
        )
        agent = rows[pipeline.AGENT]
        assert agent["ppo_seeds"] == seeds == len(set(agent["agents"]))
        assert math.isfinite(agent["final_test_loss"]["mean"]) and agent["diverged"] == 0
        assert 0 < agent["lr_min"] <= agent["lr_max"] < 10
        rs = rows[pipeline.RANDOM_SEARCH]
        assert rs["compute_steps"] >= agent["compute_steps"]
        assert rs["recheck_runs"] == 0  # one tuning seed: nothing to re-check
        assert rs["compute_steps"] == rs["trials"] * block["budget_steps"]
        for method, row in rows.items():
            if method != pipeline.AGENT:
                assert row["agent_vs"]["n_runs"] == [seeds, 1]
                assert row["agent_vs"]["ci95"][0] <= row["agent_vs"]["poi"]
        for method in baselines:  # every grid widened (the quick grid has two values)
            assert rows[method]["tuning"]["rounds"] >= 1 or rows[method]["tuning"]["edge"] is None
        metric = agent["final_test_metric"]["mean"]
        if name == "vision":
            assert 0 <= metric <= 1  # accuracy
        else:
            assert 1 < metric < 70  # perplexity, below a uniform guess over the ~70 characters
        assert 0 < block["target_val_loss"] < 5
        for peer in peers:  # tuned like the baselines, on their knob (and warm-up)
            row = rows[peer]
            assert row["tuning"]["rounds"] >= 1 or row["tuning"]["edge"] is None
            assert row["tuning_runs"] * block["budget_steps"] == row["compute_steps"]
            assert (row["warmup_tuning"] is not None) == peer.startswith("schedulefree")
        ttt = block["time_to_target"]
        assert ttt["target_val_loss"] == block["target_val_loss"]
        assert pipeline.AGENT not in ttt["baselines"] and peers <= set(ttt["baselines"])
        for clock, key in (("steps", "steps_to_target"), ("seconds", "time_to_target_s")):
            assert ttt[clock]["n_problems"] == n_eval and set(ttt[clock]["methods"]) == set(rows)
            for method, info in ttt[clock]["methods"].items():
                assert info["score"] == rows[method]["profile_score"][clock]
                assert rows[method][key]["n"] == rows[method]["n"]
        assert block["best_peer"] in peers
        assert len(block["cost_quality"][pipeline.AGENT]) == pipeline.QUICK.n_checkpoints
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["tasks"].keys() == {"vision", "text"}
    claims = {h["claim"]: h for h in saved["headline"]}
    groups = ("best_sgd", "random_search", "schedulefree", "prodigy", "dadaptation")
    assert set(claims) == {f"{t}_agent_vs_{b}" for t in ("vision", "text") for b in groups}
    assert claims["text_agent_vs_dadaptation"]["baseline"] == "dadapt_sgd"
    overall = saved["time_to_target"]
    assert {c: overall[c]["n_problems"] for c in ("steps", "seconds")} == {
        "steps": 2 * n_eval,
        "seconds": 2 * n_eval,
    }
    readings = saved["readings"]
    for name, block in saved["tasks"].items():
        assert readings[name]["best_by_steps_profile"] == block["time_to_target"]["steps"]["best"]
        assert readings[name]["best_by_iqm_test_loss"] in block["methods"]
    assert readings["overall"]["best_by_seconds_profile"] == overall["seconds"]["best"]
    for h in claims.values():
        assert h["metric"] == "probability_of_improvement" and h["split"] == "test"
        assert h["ppo_seeds"] == pipeline.QUICK.n_ppo_seeds and h["n_eval_seeds"] == n_eval
        assert 0 <= h["p_value"] <= 1 and h["ci95"][0] <= h["value"] <= h["ci95"][1]
    assert claims["vision_agent_vs_best_sgd"]["baseline"] == saved["tasks"]["vision"]["best_sgd"]
    assert isinstance(saved["edge_hits"], list)
    train = load_results(tmp_path / "train.jsonl")
    assert not any("test_loss" in r["result"] for r in train if r["status"] == "ok")
    assert (tmp_path / "table.md").read_text() == pipeline.markdown_table(summary)

    lines = {f: len((tmp_path / f).read_text().splitlines()) for f in ("train.jsonl", "eval.jsonl")}
    again = run_pipeline(argv)
    assert {f: len((tmp_path / f).read_text().splitlines()) for f in lines} == lines
    assert again["tasks"] == summary["tasks"]
    assert len(load_results(tmp_path / "eval.jsonl")) == lines["eval.jsonl"]
    assert np.isfinite(summary["wall_time_s"])


def _record(value, wall=1.0):
    return {"status": "ok", "result": {"final_val_loss": value}, "wall_time_s": wall}


def test_random_search_spends_its_budget_on_trials_and_rechecks():
    for config in (pipeline.CPU, pipeline.QUICK, pipeline.GPU):
        for name, specs in pipeline.random_search_specs(config, {"vision": 7, "text": 7}).items():
            budget = config.n_trials(config.task(name), 7)
            assert len(specs) + config.recheck_runs() == budget
    assert pipeline.QUICK.recheck_runs() == 0  # one tuning seed: nothing to re-check
    assert pipeline.CPU.recheck_runs() == pipeline.CPU.hpo_recheck * (pipeline.CPU.n_tune - 1)
    for bad in (-1, True, 2.0):
        with pytest.raises(ValueError, match="hpo_recheck"):
            replace(pipeline.CPU, hpo_recheck=bad)
    # reward_scale's reference runs count as the agent's compute too (two per cached run)
    task = pipeline.CPU.tasks[0]
    scaled = replace(pipeline.CPU, agent_env={**pipeline.CPU.agent_env, "reward_scale": "x"})
    neutral = pipeline.CPU.extra_agent_runs(task)
    assert scaled.extra_agent_runs(task) == 2 * neutral > 0


def test_random_search_picks_by_the_mean_over_tuning_seeds_of_its_best_trials():
    config = replace(pipeline.CPU, hpo_recheck=2)
    trials = {"vision": pipeline.random_search_specs(config)["vision"]}
    specs = trials["vision"]
    n = len(specs)
    records = {spec_id(s): _record(10.0 + i) for i, s in enumerate(specs)}
    # trial 3 is the best single run but poor on the other seed; trial 5 is second and steady
    records[spec_id(specs[3])] = _record(1.0)
    records[spec_id(specs[5])] = _record(1.5)
    reruns = pipeline.recheck_specs(config, trials, records)["vision"]
    # both stages re-check trials 3 and 5 (the best two of each), each on the one other seed
    assert len(reruns) == 2
    assert {(r.optimizer, r.schedule, r.lr) for r in reruns} == {
        (specs[i].optimizer, specs[i].schedule, specs[i].lr) for i in (3, 5)
    }
    for r in reruns:
        assert r.seed in config.tune_seeds(r.task)
        assert r.seed != next(s.seed for s in specs if s.lr == r.lr and s.optimizer == r.optimizer)
        records[spec_id(r)] = _record(9.0 if r.lr == specs[3].lr else 1.6)
    stages = pipeline.select_random_search(config, trials, records)["vision"]
    budget = n + config.recheck_runs()
    for stage, f in zip(stages, config.hpo_fractions, strict=True):
        assert stage["best_trial"] == 5
        assert stage["val_loss"] == pytest.approx((1.5 + 1.6) / 2)
        assert stage["trial_val_loss"] == 1.5
        assert [r["trial"] for r in stage["rechecked"]] == [3, 5]
        assert stage["trials"] + stage["recheck_runs"] == round(f * budget)
    # without re-checks the lucky single run is the pick, as before
    plain = replace(config, hpo_recheck=0)
    assert pipeline.recheck_specs(plain, trials, records) == {"vision": []}
    stage = pipeline.select_random_search(plain, trials, records)["vision"][-1]
    assert stage["best_trial"] == 3 and stage["val_loss"] == 1.0 and stage["recheck_runs"] == 0


def test_the_agents_rates_are_reported_relative_to_its_anchor_on_the_same_seed():
    from experiments.dnn.report import rate_vs_anchor

    anchor = [[{"lrs": [1.0, 1.0, 0.5, 0.5]}, {"lrs": [2.0, 2.0, 1.0, 1.0]}]]
    agent = [
        [{"lrs": [1.0, 2.0, 0.5, 0.25]}, None],  # a failed run is skipped
        [{"lrs": [2.0, 2.0, 1.0, 1.0]}, {"lrs": [4.0, 2.0, 1.0, 2.0]}],
    ]
    got = rate_vs_anchor(agent, anchor)
    # ratios: [1, 2, 1, .5], [2, 2, 2, 2], [2, 1, 1, 2]
    assert got == {
        "min": 0.5,
        "max": 2.0,
        "median_first_half": 2.0,
        "median_second_half": 1.5,
    }
    assert rate_vs_anchor(agent, []) is None
