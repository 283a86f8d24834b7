import math

import numpy as np
import pytest

from rl_scheduler.features import DEFAULT_FEATURES, FEATURES, Featurizer
from rl_scheduler.tasks import TaskStats


def _run(scale_loss=1.0, scale_lr=1.0, features=DEFAULT_FEATURES):
    f = Featurizer(features, total_steps=30)
    stats = [
        TaskStats(loss=10.0 * scale_loss, grad_norm=5.0, bound=0.1 * scale_lr, steps_done=0),
        TaskStats(loss=4.0 * scale_loss, grad_norm=3.0, bound=0.12 * scale_lr, steps_done=10),
        TaskStats(loss=3.0 * scale_loss, grad_norm=2.0, bound=0.15 * scale_lr, steps_done=20),
    ]
    obs = [f.reset(stats[0], 0.05 * scale_lr)]
    obs += [f.update(s, 0.1 * scale_lr) for s in stats[1:]]
    return np.array(obs)


def test_features_are_scale_free():
    np.testing.assert_allclose(_run(), _run(scale_loss=1e4, scale_lr=1e-3), atol=1e-6)


def test_feature_values():
    obs = dict(zip(DEFAULT_FEATURES, _run()[-1], strict=True))
    assert obs["log_loss"] == pytest.approx(math.log(0.3))
    assert obs["loss_change"] == pytest.approx(math.log(3 / 4))
    assert obs["loss_change_prev"] == pytest.approx(math.log(4 / 10))
    assert obs["log_lr"] == pytest.approx(math.log(2.0))
    assert obs["log_lr_bound"] == pytest.approx(math.log(0.1 / 0.15), rel=1e-6)
    assert obs["log_bound"] == pytest.approx(math.log(1.5), rel=1e-6)
    assert obs["has_bound"] == 1.0 and obs["progress"] == pytest.approx(20 / 30)


def test_descent_ratio_compares_the_decrease_with_gradient_descent():
    (first, second, third) = _run(features=("descent_ratio",))[:, 0]
    assert first == 0.0
    assert second == pytest.approx((10 - 4) / (0.1 * 10 * 5.0**2))
    assert third == pytest.approx((4 - 3) / (0.1 * 10 * 3.0**2))


def test_observations_stay_finite_and_inside_the_box():
    f = Featurizer(FEATURES, total_steps=10, clip_value=5.0)
    f.reset(TaskStats(loss=1.0, grad_norm=1.0, steps_done=0), 1e-3)
    for stats in (
        TaskStats(loss=math.inf, grad_norm=math.inf, steps_done=3, diverged=True),
        TaskStats(loss=0.0, grad_norm=0.0, steps_done=40),
        TaskStats(loss=1e300, grad_norm=1e-300, bound=1e-300, steps_done=5),
    ):
        obs = f.update(stats, 1e3)
        assert obs.dtype == np.float32 and f.observation_space.contains(obs)
    assert (
        dict(zip(FEATURES, f.update(TaskStats(loss=2.0, steps_done=1), 1e-3), strict=True))[
            "has_bound"
        ]
        == 0.0
    )


def test_step_stats_from_nmf_are_accepted():
    import nmf

    problem = nmf.StochasticNMF(nmf.datasets.synthetic(10, 8, 2, seed=0), 2)
    stats = nmf.ProjectedSGD(problem, seed=0).stats
    f = Featurizer(total_steps=10)
    assert f.observation_space.contains(f.reset(stats, 1e-3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"features": ("nope",)}, "features"),
        ({"features": "log_loss"}, "features"),
        ({"features": ("log_loss", "log_loss")}, "repeat"),
        ({"total_steps": 0}, "total_steps"),
        ({"clip_value": 0.0}, "clip_value"),
        ({"history": 0}, "history"),
        ({"history": 2.0}, "history"),
        ({"history": True}, "history"),
    ],
)
def test_featurizer_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Featurizer(**{"total_steps": 10, **kwargs})


def test_update_before_reset_raises():
    with pytest.raises(RuntimeError, match="reset"):
        Featurizer(total_steps=3).update(TaskStats(loss=1.0), 0.1)


def test_noise_to_signal_reads_the_exact_gradient_noise():
    import nmf

    data = nmf.datasets.synthetic(12, 9, 2, seed=0)
    for noise_std in (0.0, 0.5, 3.0):
        problem = nmf.StochasticNMF(data, 2, noise_std=noise_std)
        stats = nmf.ProjectedSGD(problem, seed=0).stats
        # Gaussian noise on every entry: E||g_hat - g||^2 = noise_std^2 * n_params
        assert stats.grad_noise == pytest.approx(noise_std * math.sqrt(problem.n_params))
        f = Featurizer(("log_noise_to_signal",), total_steps=10, clip_value=10.0)
        (value,) = f.reset(stats, 1e-3)
        expected = -10.0 if noise_std == 0 else math.log(stats.grad_noise / stats.grad_norm)
        assert value == pytest.approx(expected, rel=1e-5)
    minibatch = nmf.StochasticNMF(data, 2, batch_size=3)
    stats = nmf.ProjectedSGD(minibatch, seed=0).stats
    W, H = nmf.ProjectedSGD(minibatch, seed=0).W, nmf.ProjectedSGD(minibatch, seed=0).H
    assert stats.grad_noise == pytest.approx(math.sqrt(minibatch.gradient_noise_variance(W, H)))
    unknown = Featurizer(("log_noise_to_signal",), total_steps=10)
    assert unknown.reset(TaskStats(loss=1.0, grad_norm=1.0), 1e-3)[0] == 0.0  # not reported


def test_history_stacks_the_last_frames_newest_first():
    plain = _run()
    stats = [
        TaskStats(loss=10.0, grad_norm=5.0, bound=0.1, steps_done=0),
        TaskStats(loss=4.0, grad_norm=3.0, bound=0.12, steps_done=10),
        TaskStats(loss=3.0, grad_norm=2.0, bound=0.15, steps_done=20),
    ]
    f = Featurizer(total_steps=30, history=2)
    assert f.dim == 2 * len(DEFAULT_FEATURES)
    assert f.observation_space.shape == (f.dim,)
    stacked = [f.reset(stats[0], 0.05)] + [f.update(s, 0.1) for s in stats[1:]]
    zeros = np.zeros(len(DEFAULT_FEATURES), np.float32)
    np.testing.assert_array_equal(stacked[0], np.concatenate([plain[0], zeros]))
    for k in (1, 2):
        np.testing.assert_array_equal(stacked[k], np.concatenate([plain[k], plain[k - 1]]))
    # a new run starts from zeros again, not from the last run's frames
    again = f.reset(stats[0], 0.05)
    np.testing.assert_array_equal(again, stacked[0])
