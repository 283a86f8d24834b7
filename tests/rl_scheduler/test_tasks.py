import math
import re

import numpy as np
import pytest

import nmf
from nmf.datasets import NMFInstance
from rl_scheduler.tasks import NMFTask, Task, TaskStats, nmf_instance_set
from rl_scheduler.tasks.nmf_task import as_instance, instance_to_dict

INST = NMFInstance("synthetic", rank=3, noise_std=0.5, seed=7, size=(30, 20))


def test_instance_sets_are_balanced_and_train_test_seeds_are_disjoint():
    train = nmf_instance_set("train", 12, noise_levels=(0.0, 1.0, 5.0))
    test = nmf_instance_set("test", 12, noise_levels=(0.0, 1.0, 5.0))
    assert len(train) == len(test) == 12
    assert not {i.seed for i in train} & {i.seed for i in test}
    combos = [(i.dataset, i.noise_std) for i in train]
    assert len(set(combos)) == 6 and all(combos.count(c) == 2 for c in set(combos))
    assert {i.rank for i in train if i.dataset == "digits"} == {8}
    assert {i.size for i in train if i.dataset == "synthetic"} == {(60, 40)}
    assert nmf_instance_set("train", 12, noise_levels=(0.0, 1.0, 5.0)) == train
    assert not {i.seed for i in train} & {i.seed for i in nmf_instance_set("train", 3, seed=1)}


def test_real_data_instances_draw_from_their_split_row_pool():
    kw = {"datasets": ("synthetic", "digits", "faces"), "noise_levels": (0.0,)}
    for split in ("train", "test"):
        pools = {i.dataset: i.row_pool for i in nmf_instance_set(split, 6, **kw)}
        assert pools == {"synthetic": None, "digits": split, "faces": split}
    faces = [i for i in nmf_instance_set("test", 3, **kw) if i.dataset == "faces"]
    assert faces[0].data().shape == (40, 625)  # the default size fits faces' 50-row pool
    too_big = nmf_instance_set("train", 1, datasets=("faces",), sizes={"faces": 60})
    with pytest.raises(ValueError, match="row pool"):
        too_big[0].data()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "valid"}, "split"),
        ({"n": 0}, "n must"),
        ({"datasets": "digits"}, "datasets"),
        ({"noise_levels": 1.0}, "noise_levels"),
        ({"noise_levels": (-1.0,)}, "noise_levels"),
        ({"ranks": (0,)}, "ranks"),
        ({"seed": -1}, "seed"),
    ],
)
def test_instance_set_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nmf_instance_set(**kwargs)


def test_instances_round_trip_through_their_json_form():
    assert as_instance(instance_to_dict(INST)) == INST
    with pytest.raises(TypeError, match="instances"):
        as_instance(3)


def test_task_satisfies_the_protocol():
    task = NMFTask([INST])
    assert isinstance(task, Task) and not hasattr(task, "safe_lr")  # the bound is in TaskStats


def test_task_reproduces_run_sgd_and_its_bounds():
    task = NMFTask([INST], clip=0.1)
    stats = task.reset(seed=0)
    assert stats.steps_done == 0 and math.isnan(stats.lr) and not stats.diverged
    lr = task.initial_lr
    assert lr == pytest.approx(0.5 * stats.bound)
    losses, bounds = [stats.loss], [stats.bound]
    for _ in range(3):
        stats = task.advance(lr, 4)
        losses.append(stats.loss)
        bounds.append(stats.bound)
    assert stats.steps_done == 12 and stats.lr == lr and stats.has_bound
    traj = nmf.run_sgd(INST.build(), nmf.schedules.Constant(lr), 12, clip=0.1, seed=INST.seed)
    assert losses == traj.losses[::4]
    assert bounds[:3] == traj.bounds[::4]


def test_reset_picks_instances_with_the_seed_or_by_index():
    insts = nmf_instance_set("train", 6, datasets=("synthetic",), sizes={"synthetic": (20, 10)})
    task = NMFTask(insts)
    picked = []
    for seed in range(10):
        task.reset(seed=seed)
        picked.append(task.instance_index)
    again = [task.reset(seed=s) and task.instance_index for s in range(10)]
    assert picked == again and len(set(picked)) > 1
    task.reset(instance=4)
    assert task.instance == insts[4]
    with pytest.raises(ValueError, match="instance"):
        task.reset(instance=6)


def test_compute_bound_false_gives_no_bound():
    task = NMFTask([INST], compute_bound=False)
    stats = task.reset(0)
    assert math.isnan(stats.bound) and not stats.has_bound
    assert task.initial_lr > 0
    assert math.isnan(task.advance(task.initial_lr, 3).bound)


def test_the_bound_reuses_the_residual_of_the_chunks_last_step(monkeypatch):
    task = NMFTask([INST], clip=0.1)
    task.reset(0)
    calls = []
    original = nmf.StochasticNMF.residual
    monkeypatch.setattr(
        nmf.StochasticNMF, "residual", lambda self, W, H: calls.append(1) or original(self, W, H)
    )
    stats = task.advance(task.initial_lr, 5)
    assert len(calls) == 5 and stats.has_bound  # one residual per step, none for the bound


def test_divergence_stops_the_chunk_and_blocks_advancing():
    task = NMFTask([NMFInstance("synthetic", rank=3, seed=1, size=(30, 20))], clip=None)
    task.reset(0)
    stats = task.advance(1e3, 50)
    assert stats.diverged and stats.steps_done < 50 and math.isnan(stats.bound)
    with pytest.raises(RuntimeError, match="reset"):
        task.advance(1e-3, 1)


def test_task_validation():
    with pytest.raises(TypeError, match="instances"):
        NMFTask(INST)
    with pytest.raises(ValueError, match="instances"):
        NMFTask([])
    with pytest.raises(ValueError, match="clip"):
        NMFTask([INST], clip=0.0)
    with pytest.raises(ValueError, match="initial_lr_fraction"):
        NMFTask([INST], initial_lr_fraction=-1)
    task = NMFTask([INST])
    with pytest.raises(RuntimeError, match="reset"):
        task.advance(1e-3, 1)
    task.reset(0)
    with pytest.raises(ValueError, match="lr"):
        task.advance(float("nan"), 1)
    with pytest.raises(ValueError, match="n_steps"):
        task.advance(1e-3, 0)


def test_task_stats_has_bound():
    assert TaskStats(loss=1.0, bound=0.1).has_bound
    assert not TaskStats(loss=1.0).has_bound
    assert np.isnan(TaskStats(loss=1.0).val_loss)


@pytest.mark.parametrize(
    ("fields", "size"),
    [
        ({"dataset": "digits", "size": 5.0}, 5.0),
        ({"dataset": "digits", "size": True}, True),
        ({"dataset": "digits", "size": (30, 20)}, (30, 20)),
        ({"dataset": "digits", "size": 0}, 0),
        ({"dataset": "synthetic", "size": 30}, 30),
        ({"dataset": "synthetic", "size": (30.0, 20)}, (30.0, 20)),
        ({"dataset": "synthetic", "size": (30, 20, 1)}, (30, 20, 1)),
        ({"dataset": "synthetic", "size": [30, False]}, (30, False)),
    ],
)
def test_a_size_the_instance_would_ignore_is_refused(fields, size):
    with pytest.raises(
        ValueError, match="size of a .* instance must be .*got " + re.escape(repr(size))
    ):
        NMFTask([{"rank": 3, **fields}])
    with pytest.raises(ValueError, match="size of a"):
        NMFInstance(rank=3, **fields)


def test_valid_sizes_are_honoured():
    task = NMFTask(
        [
            NMFInstance("digits", rank=3, size=40),
            {"dataset": "synthetic", "rank": 3, "size": [30, 20]},
        ]
    )
    task.reset(instance=0)
    assert task.problem.V.shape[0] == 40
    task.reset(instance=1)
    assert task.problem.V.shape == (30, 20)


def test_task_reports_the_exact_gradient_noise():
    noisy = NMFInstance("synthetic", rank=3, size=(20, 15), noise_std=2.0, seed=4)
    task = NMFTask([noisy, INST], clip=0.1)
    first = task.reset(instance=0)
    problem = noisy.build()
    assert first.grad_noise == pytest.approx(2.0 * math.sqrt(problem.n_params))
    assert task.advance(1e-3, 5).grad_noise == pytest.approx(first.grad_noise)  # Gaussian: constant
    assert task.reset(instance=1).grad_noise == (
        0.0
        if INST.noise_std == 0
        else pytest.approx(INST.noise_std * math.sqrt(INST.build().n_params))
    )


def _run(task, seed, instance=0, chunks=3):
    stats = task.reset(seed, instance=instance)
    losses = [stats.loss]
    for _ in range(chunks):
        losses.append(task.advance(task.initial_lr, 4).loss)
    return losses


def test_a_fresh_run_per_episode_on_the_same_problem():
    fixed, fresh = NMFTask([INST]), NMFTask([INST], run_seed="episode")
    assert fixed.runs_determined_by_instance and not fresh.runs_determined_by_instance
    # with the instance's seed every reset is the same run; per episode it differs ...
    assert _run(fixed, 1) == _run(fixed, 2)
    a, b = _run(fresh, 1), _run(fresh, 2)
    assert a[0] != b[0] and a[1:] != b[1:]  # another start, other noise
    assert fresh.problem is fresh._problem(0)  # on the same problem (cached: same data)
    # ... and is reproducible from the reset seed
    assert _run(fresh, 1) == a
    # without a seed the instance's own noise is used, exactly as run_sgd's
    assert _run(fresh, None) == _run(fixed, 1)
    with pytest.raises(ValueError, match="run_seed"):
        NMFTask([INST], run_seed="run")


def test_the_neutral_baseline_meets_the_episodes_noise():
    from rl_scheduler import make_nmf_env

    env = make_nmf_env(
        instances=[INST],
        steps_per_action=4,
        max_actions=3,
        bound_range=(-2.0, 1.0),
        reward_baseline="neutral",
        run_seed="episode",
    )
    for seed in (1, 2):
        env.reset(seed=seed)
        rewards = [env.step(np.zeros(1, np.float32))[1] for _ in range(3)]
        assert rewards == [0.0, 0.0, 0.0]  # not cached across episodes: recomputed each time


def test_a_fresh_run_needs_a_valid_seed():
    fresh = NMFTask([INST], run_seed="episode")
    for seed in (2.7, -1, "3"):
        with pytest.raises(ValueError, match="seed"):
            fresh.reset(seed, instance=0)
