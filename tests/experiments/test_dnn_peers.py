"""The DNN study's learning-rate-free peers and its time-to-target reading."""

import math
from dataclasses import replace

import numpy as np
import pytest

from experiments import dnn as pipeline
from experiments.dnn.config import PEER_MULTIPLIERS, WARMUP_FRACTION, WARMUP_GRID
from experiments.runner import spec_id
from rl_scheduler.tasks.lr_free import LR_FREE, SCHEDULE_FREE

TINY = pipeline.TaskSpec(
    "vision", "digits", "cnn", batch_size=8, eval_size=16, val_size=16, steps_per_action=2,
    max_actions=4,
)  # fmt: skip


def test_existing_run_ids_are_kept():
    # an id recorded by the reference build before the peers existed (CPU vision, SGD constant)
    spec = pipeline.DNNRunSpec(pipeline.CPU.task("vision"), 1000001, "sgd", "constant", 0.05)
    assert spec_id(spec) == "be5902165187b2c6"
    peer = pipeline.peer_spec(pipeline.CPU.task("vision"), 1000001, "dadapt_sgd", 0.05)
    assert peer.options == () and spec_id(peer) != spec_id(spec)
    sf = pipeline.peer_spec(TINY, 0, "schedulefree_sgd", 0.05)
    assert spec_id(sf) != spec_id(replace(sf, options=()))


def test_peer_specs_carry_their_knob():
    budget = TINY.budget
    sf = pipeline.peer_spec(TINY, 3, "schedulefree_adamw", 0.01, warmup=0.5)
    assert (sf.lr, sf.schedule, sf.options) == (0.01, "constant", (("warmup_steps", budget // 2),))
    default = pipeline.peer_spec(TINY, 3, "schedulefree_sgd", 0.1)
    assert default.options == (("warmup_steps", round(WARMUP_FRACTION * budget)),)
    prodigy = pipeline.peer_spec(TINY, 3, "prodigy", 3.0)
    assert prodigy.lr == 1.0 and prodigy.options == (("d_coef", 3.0),)
    dadapt = pipeline.peer_spec(TINY, 3, "dadapt_adam", 0.3)
    assert dadapt.lr == 0.3 and dadapt.options == ()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"optimizer": "prodigy", "schedule": "cosine"}, "schedule"),
        ({"options": (("d_coef", 2.0),)}, "options"),
        ({"optimizer": "lion"}, "optimizer"),
    ],
)
def test_peer_spec_validation(change, match):
    with pytest.raises(ValueError, match=match):
        pipeline.check_run_spec(
            replace(pipeline.DNNRunSpec(TINY, 0, "sgd", "constant", 0.05), **change)
        )


def test_configurations_cover_the_peers():
    assert pipeline.CPU.peers == LR_FREE
    quick = set(pipeline.QUICK.peers)
    assert quick & set(SCHEDULE_FREE) and quick & {"prodigy", "dadapt_sgd", "dadapt_adam"}
    # the GPU vision model has batch normalisation: no Schedule-Free there
    assert pipeline.GPU.task("vision").model == "resnet20"
    assert not set(pipeline.GPU.peers) & set(SCHEDULE_FREE) and pipeline.GPU.peers
    with pytest.raises(ValueError, match="peers"):
        replace(pipeline.QUICK, peers=("adam",))
    cpu, vision = pipeline.CPU, pipeline.CPU.task("vision")
    assert cpu.peer_grid(vision, "schedulefree_sgd") == cpu.grid(vision, "sgd")
    assert cpu.peer_grid(vision, "schedulefree_adamw") == cpu.grid(vision, "adam")
    multipliers = cpu.peer_grid(vision, "prodigy")
    assert multipliers == cpu.peer_grid(vision, "dadapt_sgd")
    assert len(multipliers) == cpu.grid_size and multipliers[cpu.grid_size // 2] == 1.0
    assert (multipliers[0], multipliers[-1]) == PEER_MULTIPLIERS


def _fake_sweep(calls):
    """Validation loss = |log(knob / 30)| + |log(warm-up fraction / 0.4)|: the knob's optimum
    lies beyond every initial grid, the warm-up's inside its grid."""

    def sweep(specs):
        calls.append([spec_id(s) for s in specs])
        out = []
        for s in specs:
            options = dict(s.options)
            knob = options.get("d_coef", s.lr)
            loss = abs(math.log(knob / 30))
            if "warmup_steps" in options:
                loss += abs(math.log(max(options["warmup_steps"], 1) / s.task.budget / 0.4))
            out.append(
                {
                    "spec_id": spec_id(s),
                    "status": "ok",
                    "result": {"final_val_loss": loss},
                    "wall_time_s": 1.0,
                }
            )
        return out

    return sweep


def test_peers_are_tuned_like_the_baselines_and_report_edges():
    task = replace(TINY, steps_per_action=10, max_actions=10)  # 100 steps: warm-up in percent
    config = replace(
        pipeline.QUICK,
        tasks=(task,),
        schedules=("constant",),
        agent_env={},  # no agent trained here: no anchor to tune
        grid_size=3,
        tune_rounds=1,
        peers=("schedulefree_sgd", "prodigy"),
    )
    calls, records = [], {}
    sweep = _fake_sweep(calls)
    tuned = pipeline.tune_baselines(config, sweep, records)
    warmup = pipeline.tune_warmup(config, tuned, sweep, records)
    assert set(warmup) == {("vision", "schedulefree_sgd")}  # only Schedule-Free has a warm-up
    peers = pipeline.select_peers(config, tuned, warmup, records)["vision"]
    assert set(pipeline.select_baselines(config, tuned, records)["vision"]) == {
        "sgd/constant",
        "adam/constant",
    }
    prodigy = peers["prodigy"]
    # d_coef grid 0.1, 1, 10 widened once to 100: the optimum 30 lies between 10 and 100
    assert prodigy["tuning"]["grid"] == pytest.approx([0.1, 1.0, 10.0, 100.0])
    assert prodigy["tuning"]["edge"] is None and prodigy["value"] == pytest.approx(10.0)
    assert prodigy["lr"] == 1.0 and prodigy["options"] == [["d_coef", prodigy["value"]]]
    assert prodigy["warmup_fraction"] is None and prodigy["warmup_tuning"] is None
    sf = peers["schedulefree_sgd"]
    # the lr grid (0.005 .. 0.5) widened once to 5 stays at its high edge: reported
    assert sf["tuning"]["edge"] == "high" and sf["value"] == max(sf["tuning"]["grid"])
    # the warm-up's optimum 0.4 is below 0.5, but 0.5 x 5 would leave (0, 1): no widening
    assert sf["warmup_tuning"]["grid"] == list(WARMUP_GRID)
    assert sf["warmup_fraction"] == 0.5 and sf["warmup_tuning"]["edge"] == "high"
    assert sf["options"] == [["warmup_steps", 50]]
    # the warm-up axis is evaluated at the tuned lr; its middle value reuses the lr tuning's runs
    assert sf["tuning_runs"] == (len(sf["tuning"]["grid"]) + 2) * config.n_tune
    assert sf["search_wall_time_s"] == sf["tuning_runs"]
    assert sf["val_loss"] == pytest.approx(
        abs(math.log(sf["value"] / 30)) + abs(math.log(0.5 / 0.4))
    )
    plan = pipeline.eval_plan(
        config,
        {
            "baselines": {"vision": {}},
            "peers": {"vision": peers},
            "random_search": {"vision": []},
            "agents": {"vision": []},
        },
    )
    assert {(m, s.optimizer, s.lr, s.options) for _, m, s in plan} == {
        ("prodigy", "prodigy", 1.0, (("d_coef", prodigy["value"]),)),
        ("schedulefree_sgd", "schedulefree_sgd", sf["value"], (("warmup_steps", 50),)),
    }
    assert len(plan) == 2 * config.n_eval


def test_a_peer_run_records_its_effective_step():
    run = pipeline.run_dnn(pipeline.peer_spec(TINY, 0, "prodigy", 1.0), final_test=True)
    assert run["lrs"] == [1.0] * TINY.max_actions
    assert len(run["effective_lrs"]) == TINY.max_actions
    assert all(0 < v < 1 for v in run["effective_lrs"])  # d * lr: Prodigy's own estimate
    assert math.isfinite(run["test_loss"])
    sf = pipeline.run_dnn(pipeline.peer_spec(TINY, 0, "schedulefree_sgd", 0.05, warmup=0.75))
    assert sf["effective_lrs"][0] < sf["effective_lrs"][-1] == pytest.approx(0.05)  # warm-up
    assert "effective_lrs" not in pipeline.run_dnn(
        pipeline.DNNRunSpec(TINY, 0, "sgd", "constant", 0.05)
    )


def _run(curve, dt=1.0):
    return {
        "val_loss": list(curve),
        "steps": [10 * k for k in range(len(curve))],
        "time_s": [dt * k for k in range(len(curve))],
    }


def test_time_to_target_is_set_by_the_baselines_and_profiles_pool_problems():
    runs = {  # method -> runs x 2 eval seeds
        "sgd/cosine": [[_run([3, 2, 1.0]), _run([3, 2, 1.2])]],
        "prodigy": [[_run([3, 1.1, 1.1], dt=0.1), _run([3, 2, 2])]],
        "agent": [
            [_run([3, 0.5, 0.5]), _run([3, 0.5, 0.5])],
            [_run([3, 3, 3]), None],
            [_run([3, 0.9, 0.9]), _run([3, 0.8, 0.8])],
        ],
    }
    times = pipeline.task_times(runs, ["sgd/cosine", "prodigy"], [7, 8], "vision")
    # medians over seeds of the best losses: sgd/cosine 1.1, prodigy 1.55; the agent's 0.5 does
    # not count
    assert times["target_val_loss"] == pytest.approx(1.1)
    assert times["methods"]["sgd/cosine"]["steps"] == {"median": math.inf, "reached": 1, "n": 2}
    assert times["problems"]["steps"]["sgd/cosine"] == {"vision/7": 20.0, "vision/8": math.inf}
    assert times["problems"]["seconds"]["prodigy"]["vision/7"] == pytest.approx(0.1)
    agent = times["problems"]["steps"]["agent"]
    assert agent == {"vision/7": 10.0, "vision/8": 10.0}  # medians over the 3 PPO seeds
    assert times["methods"]["agent"]["steps"] == {"median": 10.0, "reached": 4, "n": 6}
    steps = times["steps"]
    assert steps["n_problems"] == 2 and steps["best"] == "agent"
    for m, info in steps["methods"].items():
        assert info["solved"] == sum(
            math.isfinite(t) for t in times["problems"]["steps"][m].values()
        )
        assert (
            0 <= info["score"] <= info["solved"] / 2 and info["profile"][-1] == info["solved"] / 2
        )
    # in seconds Prodigy (ten times faster per evaluation) is the fastest on seed 7, not the agent
    assert times["steps"]["methods"]["agent"]["profile"][0] == 1.0
    assert times["seconds"]["methods"]["agent"]["profile"][0] == 0.5
    assert times["seconds"]["methods"]["prodigy"]["profile"][0] == 0.5
    other = pipeline.task_times(
        {m: [row[::-1] for row in rows] for m, rows in runs.items()},
        ["sgd/cosine", "prodigy"],
        [1, 2],
        "text",
    )
    overall = pipeline.overall_profiles({"vision": times, "text": other})
    assert overall["steps"]["n_problems"] == 4
    assert overall["steps"]["methods"]["agent"]["solved"] == 4
    assert np.isclose(
        overall["steps"]["methods"]["sgd/cosine"]["score"],
        np.mean(
            [
                times["steps"]["methods"]["sgd/cosine"]["score"],
                other["steps"]["methods"]["sgd/cosine"]["score"],
            ]
        ),
    )
