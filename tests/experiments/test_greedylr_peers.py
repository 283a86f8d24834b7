"""The GreedyLR study's learning-rate-free peers and its time-to-target reading."""

import math

import pytest

from experiments import greedylr as study
from experiments.greedylr.config import PEERS, GreedyRunSpec
from experiments.greedylr.speed import family_block
from experiments.runner import spec_id


def test_existing_runs_keep_their_ids():
    # Recorded in the reference build before the peers existed (results/reference-build/greedylr):
    # a resumed build reuses every earlier run only if these ids stay the same.
    spec = GreedyRunSpec("charlm", "sgd", "constant", 0, 300, 3.1622776601683795)
    assert spec_id(spec) == "b594a067d87caa56"
    assert spec_id(study.run_spec(study.FULL, ("charlm", "sgd", "constant"), 0, 10**0.5)) == (
        "b594a067d87caa56"
    )


def test_peer_specs_map_the_rate_axis_to_each_peers_knob():
    prodigy = study.run_spec(study.FULL, ("mlp", "adam", "prodigy"), 0, 0.1)
    assert prodigy.lr == 1.0 and dict(prodigy.options) == {"d_coef": 0.1}
    dadapt = study.run_spec(study.FULL, ("mlp", "sgd", "dadaptation"), 0, 3.0)
    assert dadapt.lr == 3.0 and dadapt.options == ()
    sf = study.run_spec(study.FULL, ("mlp", "sgd", "schedulefree"), 0, 10.0, warmup=0.25)
    assert sf.lr == pytest.approx(10 * study.INITIAL_LR["mlp"]["sgd"])
    assert dict(sf.options) == {"warmup_fraction": 0.25}
    default = study.run_spec(study.FULL, ("mlp", "adam", "schedulefree"), 0)
    assert dict(default.options) == {"warmup_fraction": 0.05}


def test_every_family_cell_includes_its_peers():
    cells = study.cells(study.FULL)
    for family, peers in PEERS.items():
        for peer in peers:
            assert ("cnn", family, peer) in cells
    assert ("cnn", "sgd", "prodigy") not in cells  # Prodigy has no SGD form


@pytest.mark.parametrize(
    ("scheduler", "optimizer", "options", "match"),
    [
        ("prodigy", "adam", (("warmup_fraction", 0.1),), "must be among"),
        ("schedulefree", "sgd", (("warmup_fraction", 1.0),), r"must lie in \(0, 1\)"),
        ("constant", "sgd", (("d_coef", 1.0),), "must be among"),
        ("prodigy", "sgd", (), "scheduler for optimizer 'sgd'"),
    ],
)
def test_bad_peer_options_are_refused(scheduler, optimizer, options, match):
    spec = GreedyRunSpec("mlp", optimizer, scheduler, 0, 10, 1.0, options=options)
    with pytest.raises(ValueError, match=match):
        study.check_spec(spec)


@pytest.mark.parametrize(("optimizer", "scheduler"), [(o, s) for o, p in PEERS.items() for s in p])
def test_peers_train_and_trace_their_effective_rate(optimizer, scheduler):
    spec = study.run_spec(study.QUICK, ("logreg", optimizer, scheduler), 0, n_evals=2)
    result = study.run_greedy(spec)
    assert not result["diverged"]
    losses = result["train_eval_loss"]
    assert all(map(math.isfinite, losses)) and losses[-1] < losses[0]
    assert len(result["lr"]) == spec.budget and all(lr > 0 for lr in result["lr"])
    if scheduler in study.config.RATE_FREE:  # the trace is the estimate, not the knob
        assert result["lr"][-1] != spec.lr


def _record(workload, sched, seed, losses, wall=10.0, ok=True):
    steps = [0, 50, 100]
    return {
        "spec": {"workload": workload, "optimizer": "sgd", "scheduler": sched, "seed": seed},
        "status": "ok" if ok else "failed",
        "result": {"eval_steps": steps, "train_eval_loss": losses, "wall_time_s": wall},
    }


def test_time_to_target_targets_come_from_the_baselines_only():
    records = [
        _record("w", "cosine", 0, [3.0, 2.0, 1.0]),
        _record("w", "cosine", 1, [3.0, 2.0, 1.2]),
        _record("w", "constant", 0, [3.0, 1.5, 1.4]),
        _record("w", "constant", 1, [3.0, 1.6, 1.5]),
        _record("w", "greedy", 0, [3.0, 0.1, 0.05], wall=20.0),
        _record("w", "greedy", 1, [3.0, math.inf, math.inf]),
    ]
    runs = {}
    for r in records:
        runs.setdefault(r["spec"]["scheduler"], {})[("w", r["spec"]["seed"])] = r["result"]
    block = family_block(runs)
    # cosine's median best (1.1) beats constant's (1.45); GreedyLR's 0.05 does not move it
    assert block["targets"] == {"w": pytest.approx(1.1)}
    greedy = block["methods"]["greedy"]
    assert greedy["steps_to_target"] == {"median": math.inf, "reached": 1, "n": 2}
    assert block["methods"]["cosine"]["steps_to_target"]["reached"] == 1  # 1.0 <= 1.1 < 1.2
    # seconds = steps / budget x the run's wall time
    assert greedy["seconds_to_target"]["reached"] == 1
    assert block["profile_seconds"]["methods"]["greedy"]["profile"][0] == 0.5
    assert block["profile_steps"]["methods"]["greedy"]["profile"][0] == 0.5  # 50 < cosine's 100
    assert block["readings"]["final_loss"] in {"cosine", "greedy"}
    assert block["problems"] == ["w/seed0", "w/seed1"]
