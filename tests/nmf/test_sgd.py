import numpy as np
import pytest

import nmf
from nmf.schedules import Constant, FollowBound


@pytest.fixture
def problem():
    return nmf.StochasticNMF(nmf.datasets.synthetic(30, 20, 4, seed=0), 4, noise_std=0.05, seed=0)


def test_trajectory_shapes_and_determinism(problem):
    a = nmf.run_sgd(problem, Constant(1e-3), 25, seed=3)
    b = nmf.run_sgd(problem, Constant(1e-3), 25, seed=3)
    assert len(a.losses) == 26 and len(a.lrs) == len(a.bounds) == len(a.times) == 25
    assert a.losses == b.losses and not a.diverged
    assert np.all(np.diff(a.times) >= 0)
    assert a.losses != nmf.run_sgd(problem, Constant(1e-3), 25, seed=4).losses


def test_following_the_bound_never_increases_the_loss_without_noise():
    problem = nmf.StochasticNMF(nmf.datasets.synthetic(30, 20, 4, seed=1), 4)
    traj = nmf.run_sgd(problem, FollowBound(1.0), 60, seed=0)
    assert np.all(np.diff(traj.losses) <= 1e-12 * traj.losses[0])
    assert traj.lrs == pytest.approx(traj.bounds)


def test_large_constant_lr_diverges_and_stops_early():
    problem = nmf.StochasticNMF(nmf.datasets.synthetic(30, 20, 4, seed=1), 4)
    traj = nmf.run_sgd(problem, Constant(10.0), 100, seed=0, compute_bound=False)
    assert traj.diverged and len(traj.lrs) < 100 and traj.final_loss == np.inf


def test_clipping_keeps_the_same_large_lr_stable():
    problem = nmf.StochasticNMF(nmf.datasets.synthetic(30, 20, 4, seed=1), 4)
    traj = nmf.run_sgd(problem, Constant(10.0), 100, seed=0, clip=1e-3, compute_bound=False)
    assert not traj.diverged and traj.final_loss < traj.losses[0]


def test_box_and_clip_are_respected(problem):
    sgd = nmf.ProjectedSGD(problem, clip=0.01, box=0.5, seed=0)
    W0, H0 = sgd.W.copy(), sgd.H.copy()
    sgd.step(1.0)
    assert np.abs(sgd.W - W0).max() <= 0.01 + 1e-15 and np.abs(sgd.H - H0).max() <= 0.01 + 1e-15
    assert sgd.W.max() <= 0.5 and sgd.H.min() >= 0


def test_observe_sees_the_current_iterate_before_each_step(problem):
    seen = []

    class Recorder:
        def observe(self, stats):
            seen.append(stats)

        def __call__(self, step):
            assert seen[-1].step == step
            return 1e-3

    traj = nmf.run_sgd(problem, Recorder(), 10, seed=0)
    assert [s.loss for s in seen] == traj.losses[:-1]
    assert [s.bound for s in seen] == traj.bounds


@pytest.mark.parametrize("lr", [-1.0, float("nan"), float("inf")])
def test_a_schedule_returning_a_bad_lr_is_named(problem, lr):
    with pytest.raises(ValueError, match="schedule returned lr"):
        nmf.run_sgd(problem, lambda step: lr, 3)


def test_argument_validation(problem):
    with pytest.raises(ValueError, match="n_steps"):
        nmf.run_sgd(problem, Constant(1e-3), -1)
    with pytest.raises(TypeError, match="schedule"):
        nmf.run_sgd(problem, 0.1, 3)
    with pytest.raises(ValueError, match="clip"):
        nmf.run_sgd(problem, Constant(1e-3), 3, clip=0)
    with pytest.raises(TypeError, match="problem"):
        nmf.ProjectedSGD(np.ones((3, 3)))
    with pytest.raises(ValueError, match="W0 and H0"):
        nmf.ProjectedSGD(problem, W0=np.ones((30, 4)))


def test_sgd_approaches_scikit_learn_on_synthetic_data():
    from sklearn.decomposition import NMF

    V = nmf.datasets.synthetic(60, 40, 5, noise=0.05, seed=2)
    reference = NMF(5, init="random", solver="cd", random_state=0, max_iter=2000, tol=1e-8).fit(V)
    ref_error = reference.reconstruction_err_ / np.linalg.norm(V)
    problem = nmf.StochasticNMF(V, 5)
    traj = nmf.run_sgd(problem, FollowBound(1.0), 1500, seed=0)
    assert problem.relative_error_from_loss(traj.final_loss) <= 1.10 * ref_error


def test_noisy_bounds_are_opt_in_and_match_the_calculator(problem):
    plain = nmf.run_sgd(problem, Constant(1e-3), 3, seed=1)
    assert np.all(np.isnan(plain.noisy_bounds)) and np.all(np.isfinite(plain.bounds))
    sgd = nmf.ProjectedSGD(problem, seed=1, compute_noisy_bound=True)
    expected = nmf.noisy_stability_bound(problem, sgd.W, sgd.H)
    assert sgd.stats.noisy_bound == pytest.approx(expected, rel=1e-12)
    with_noisy = nmf.run_sgd(problem, Constant(1e-3), 3, seed=1, compute_noisy_bound=True)
    assert with_noisy.losses == plain.losses and np.all(np.isfinite(with_noisy.noisy_bounds))
