import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_gradient_noise_is_independent_of_the_initialisation():
    # Regression: init and noise once shared one random stream, so the first noise draw on W was
    # exactly +-noise_std * W0 / scale. Recover that draw from one tiny, unprojected step.
    problem = nmf.StochasticNMF(np.ones((50, 40)), 3, noise_std=1.0)
    sgd = nmf.ProjectedSGD(problem, seed=0, compute_bound=False)
    W0, H0 = sgd.W.copy(), sgd.H.copy()
    gW, _ = problem.gradient(W0, H0)
    lr = 1e-9
    sgd.step(lr)
    moved = sgd.W > 0  # entries the projection did not stop
    noise = ((W0 - sgd.W) / lr - gW)[moved]
    assert abs(np.corrcoef(np.abs(noise), W0[moved])[0, 1]) < 0.3


def test_a_noisy_step_computes_the_exact_gradient_once(problem):
    sgd = nmf.ProjectedSGD(problem, seed=0, compute_bound=False)
    calls = []
    exact = problem.gradient

    def counting(*args, **kwargs):
        calls.append(1)
        return exact(*args, **kwargs)

    problem.gradient = counting
    sgd.step(1e-3)
    assert len(calls) == 1  # for the new iterate's statistics; the step reused the old one


def test_runs_are_deterministic_per_seed_and_the_problem_seed_is_the_default():
    problem = nmf.StochasticNMF(nmf.datasets.synthetic(20, 10, 3, seed=0), 3, noise_std=0.1, seed=5)
    a = nmf.run_sgd(problem, Constant(1e-3), 5)
    b = nmf.run_sgd(problem, Constant(1e-3), 5, seed=5)
    assert a.losses == b.losses


@pytest.mark.parametrize(
    ("W0", "H0", "match"),
    [
        (-np.ones((30, 4)), np.ones((4, 20)), "W0 must be finite and >= 0, found minimum -1"),
        (np.ones((30, 4)), np.full((4, 20), np.nan), "H0 must be finite and >= 0, found NaN"),
        (np.ones((30, 4)), np.full((4, 20), np.inf), "H0 must be finite"),
        (np.ones((4, 30)), np.ones((4, 20)), "W0 and H0 must have shapes"),
        ([[1.0, 2.0], [3.0]], np.ones((4, 20)), "W0 must be an array of real numbers"),
        (np.ones((30, 4)), "x", "H0 must be an array of real numbers"),
    ],
)
def test_bad_starting_points_are_named(problem, W0, H0, match):
    with pytest.raises(ValueError, match=match):
        nmf.ProjectedSGD(problem, W0=W0, H0=H0)


def test_box_clips_the_starting_point(problem):
    sgd = nmf.ProjectedSGD(problem, box=0.5, W0=np.ones((30, 4)), H0=np.zeros((4, 20)))
    assert np.all(sgd.W == 0.5) and np.all(sgd.H == 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clip": True}, "clip"),
        ({"box": True}, "box"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.0}, "seed"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_bad_sgd_arguments(problem, kwargs, match):
    with pytest.raises(ValueError, match=match):
        nmf.ProjectedSGD(problem, **kwargs)


def test_stepping_after_divergence_is_a_clear_error():
    problem = nmf.StochasticNMF(nmf.datasets.synthetic(30, 20, 4, seed=1), 4)
    sgd = nmf.ProjectedSGD(problem, seed=0, compute_bound=False)
    while not sgd.diverged:
        sgd.step(10.0)
    with pytest.raises(RuntimeError, match="diverged"):
        sgd.step(1e-3)


@pytest.mark.parametrize("scale", [0.0, 1e-160, 1e150])
def test_following_the_bound_works_at_extreme_data_scales(scale):
    V = scale * nmf.datasets.synthetic(12, 8, 2, seed=0)
    problem = nmf.StochasticNMF(V, 2)
    traj = nmf.run_sgd(problem, FollowBound(0.9), 20, seed=0)
    assert not traj.diverged and np.all(np.isfinite(traj.bounds)) and min(traj.bounds) > 0
    assert np.all(np.isfinite(traj.grad_norms))
    assert np.all(np.diff(traj.losses) <= 1e-12 * traj.losses[0])


def test_an_all_zero_matrix_runs_with_bounds():
    # Once crashed in the bound: 2 / M(0) was about 1e308, and lr * lr overflowed.
    traj = nmf.run_sgd(nmf.StochasticNMF(np.zeros((3, 3)), 1), Constant(0.1), 3)
    assert traj.losses == [0.0] * 4 and np.all(np.isfinite(traj.bounds))


def test_a_bool_is_not_a_learning_rate(problem):
    with pytest.raises(ValueError, match="lr"):
        nmf.ProjectedSGD(problem, seed=0).step(True)


@pytest.mark.parametrize("lr", ["0.1", True, np.True_, 0.1 + 0j, np.array([0.1]), None])
def test_a_schedule_returning_something_other_than_a_number_is_named(problem, lr):
    # run_sgd once passed these through float(): '0.1' became 0.1 and True became 1.0.
    with pytest.raises(ValueError, match="schedule returned lr"):
        nmf.run_sgd(problem, lambda step: lr, 3)


def test_numpy_learning_rates_are_numbers(problem):
    a = nmf.run_sgd(problem, lambda step: np.float32(1e-3), 3, seed=0)
    b = nmf.run_sgd(problem, lambda step: float(np.float32(1e-3)), 3, seed=0)
    assert a.losses == b.losses and all(type(lr) is float for lr in a.lrs)


@pytest.mark.parametrize(
    ("W0", "what"),
    [
        (np.full((30, 4), "1"), "strings"),
        (np.ones((30, 4), dtype=object), "Python objects"),
        (np.ones((30, 4), dtype=bool), "booleans"),
        (np.ones((30, 4), dtype=complex), "complex numbers"),
    ],
)
def test_a_starting_point_that_is_not_numbers_is_named(problem, W0, what):
    with pytest.raises(ValueError, match=f"W0 must be an array of real numbers .*got {what}"):
        nmf.ProjectedSGD(problem, W0=W0, H0=np.ones((4, 20)))


def test_a_starting_point_may_be_a_list(problem):
    W0, H0 = problem.init(1)
    a = nmf.run_sgd(problem, Constant(1e-3), 3, seed=0, W0=W0.tolist(), H0=H0.tolist())
    assert a.losses == nmf.run_sgd(problem, Constant(1e-3), 3, seed=0, W0=W0, H0=H0).losses


def test_a_starting_point_whose_loss_overflows_is_named(problem):
    # It once started a run that had "diverged at step 0".
    with pytest.raises(ValueError, match=r"at the starting point \(W0, H0\) overflows float64"):
        nmf.run_sgd(problem, Constant(1e-3), 3, W0=np.full((30, 4), 1e200), H0=np.ones((4, 20)))


@pytest.mark.parametrize("lr", ["0.1", np.True_, 0.1 + 0j])
def test_step_and_run_sgd_apply_the_same_rule_to_learning_rates(problem, lr):
    with pytest.raises(ValueError, match="lr"):
        nmf.ProjectedSGD(problem, seed=0).step(lr)
    with pytest.raises(ValueError, match="lr"):
        nmf.run_sgd(problem, lambda step: lr, 1)


@settings(max_examples=25, deadline=None)
@given(
    lr=st.floats(1e-4, 1e3),
    clip=st.one_of(st.none(), st.floats(1e-3, 1.0)),
    seed=st.integers(0, 50),
)
def test_certified_rates_never_raise_the_exact_loss(lr, clip, seed):
    # any constant rate, however far above the bound: with exact gradients the run descends
    problem = nmf.StochasticNMF(nmf.datasets.synthetic(12, 9, 3, seed=seed), 3)
    traj = nmf.run_sgd(problem, Constant(lr), 15, seed=seed, clip=clip, certify=True)
    assert not traj.diverged
    assert np.all(np.diff(traj.losses) <= 0.0)
    bounds = np.array(traj.bounds)
    applied = np.array(traj.lrs)
    # a rate is kept or replaced by the iterate's bound, never anything else
    assert np.all((applied == lr) | ((applied == bounds) & (bounds < lr)))


def test_certify_keeps_rates_the_check_passes_and_falls_back_to_the_bound():
    problem = nmf.StochasticNMF(nmf.datasets.synthetic(30, 20, 4, seed=1), 4)
    bound = nmf.ProjectedSGD(problem, seed=0).stats.bound
    low = nmf.ProjectedSGD(problem, seed=0, certify=True)
    low.step(0.5 * bound)  # below the bound: descent is certified, so the check passes
    assert low.last_lr == 0.5 * bound and low.n_fallbacks == 0
    high = nmf.ProjectedSGD(problem, seed=0, certify=True)
    high.step(1e3 * bound)  # the exact step at this rate overshoots
    assert high.last_lr == bound and high.n_fallbacks == 1
    assert high.stats.loss < high.initial_loss
    # without certify the same rate is applied as it is
    plain = nmf.ProjectedSGD(problem, seed=0, compute_bound=False)
    plain.step(1e3 * bound)
    assert plain.last_lr == 1e3 * bound and plain.stats.loss > plain.initial_loss
    with pytest.raises(TypeError, match="certify"):
        nmf.ProjectedSGD(problem, certify="yes")


def test_certify_with_noise_certifies_the_rate_not_the_noisy_step(problem):
    # the rates are certified on the exact objective; the noisy steps themselves may go up
    traj = nmf.run_sgd(problem, Constant(1.0), 40, seed=0, clip=0.1, certify=True)
    assert not traj.diverged
    assert all(lr == 1.0 or lr == b for lr, b in zip(traj.lrs, traj.bounds, strict=True))
