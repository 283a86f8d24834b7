"""The stability bounds are theorems: check them on random instances, including adversarial scales."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import nmf
from nmf.bounds import StepLength, curvature_bound, spectral_scale

SLOW_OK = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def instances(draw):
    m = draw(st.integers(1, 7))
    n = draw(st.integers(1, 7))
    rank = draw(st.integers(1, min(m, n)))
    seed = draw(st.integers(0, 2**31 - 1))
    scale_v = 10.0 ** draw(st.floats(-2, 2))
    scale_x = 10.0 ** draw(st.floats(-2, 1))
    rng = np.random.default_rng(seed)
    V = scale_v * rng.random((m, n)) * (rng.random((m, n)) < 0.8)  # some exact zeros
    W = scale_x * rng.random((m, rank)) * (rng.random((m, rank)) < 0.8)
    H = scale_x * rng.random((rank, n)) * (rng.random((rank, n)) < 0.8)
    clip = draw(st.one_of(st.none(), st.floats(1e-3, 10.0)))
    box = draw(st.one_of(st.none(), st.floats(1.0, 5.0)))
    if box is not None:
        box = box * max(scale_x, W.max(initial=0), H.max(initial=0))
    return nmf.StochasticNMF(V, rank), W, H, clip, box, rng


def _loss_after(problem, W, H, lr, clip, box):
    W1, H1 = nmf.projected_step(W, H, *problem.gradient(W, H), lr, clip=clip, box=box)
    return problem.loss(W1, H1), W1, H1


@SLOW_OK
@given(instances(), st.floats(0.0, 1.0))
def test_no_step_up_to_the_bound_increases_the_loss(inst, fraction):
    problem, W, H, clip, box, _ = inst
    bound = nmf.stability_bound(problem, W, H, clip=clip, box=box)
    assert bound > 0
    assume(np.isfinite(bound))  # infinite only when W = H = V = 0, where nothing moves
    f0 = problem.loss(W, H)
    for lr in (bound, fraction * bound):
        f1, _, _ = _loss_after(problem, W, H, lr, clip, box)
        assert f1 <= f0 * (1 + 1e-10) + 1e-300


@SLOW_OK
@given(instances(), st.floats(0.01, 1.0))
def test_sufficient_decrease_inequality_holds(inst, fraction):
    """The lemma behind the bound: f(x + d) <= f(x) - (1/lr - M(||d||)/2) ||d||^2."""
    problem, W, H, clip, box, _ = inst
    lr = fraction * nmf.stability_bound(problem, W, H, clip=clip, box=box)
    assume(np.isfinite(lr))
    f1, W1, H1 = _loss_after(problem, W, H, lr, clip, box)
    d2 = np.linalg.norm(W1 - W) ** 2 + np.linalg.norm(H1 - H) ** 2
    M = curvature_bound(spectral_scale(W, H), np.linalg.norm(problem.residual(W, H)), np.sqrt(d2))
    assert f1 <= problem.loss(W, H) - (1 / lr - M / 2) * d2 + 1e-9 * max(problem.loss(W, H), 1e-12)


@SLOW_OK
@given(instances())
def test_bound_never_exceeds_the_empirical_stability_limit(inst):
    problem, W, H, clip, box, _ = inst
    bound = nmf.stability_bound(problem, W, H, clip=clip, box=box)
    empirical = nmf.empirical_max_stable_lr(
        problem, W, H, clip=clip, box=box, max_factor=1e3, n_grid=60
    )
    assert empirical >= bound * (1 - 1e-9)


@SLOW_OK
@given(instances(), st.floats(0.5, 3.0))
def test_global_bound_holds_for_every_point_of_the_box(inst, box):
    problem, _, _, clip, _, rng = inst
    lr = nmf.global_stability_bound(problem, box=box)
    m, n = problem.shape
    W = box * rng.random((m, problem.rank))
    H = box * rng.random((problem.rank, n))
    f1, _, _ = _loss_after(problem, W, H, lr, clip, box)
    assert f1 <= problem.loss(W, H) * (1 + 1e-10) + 1e-300


def test_global_and_local_bounds_are_both_sufficient_and_neither_dominates():
    """Both bounds certify descent, by different inequalities: inside the box the local one is
    usually larger, but at the box's top corner the global bound exceeds it (~1.8x here), so the
    local bound is the largest LR *its* inequality certifies, not the largest safe LR."""
    rng = np.random.default_rng(0)
    problem = nmf.StochasticNMF(rng.random((6, 5)), 2)
    lr = nmf.global_stability_bound(problem, box=1.0)
    W, H = rng.random((6, 2)), rng.random((2, 5))
    assert lr <= nmf.stability_bound(problem, W, H, box=1.0)
    corner_W, corner_H = np.ones((6, 2)), np.ones((2, 5))
    local = nmf.stability_bound(problem, corner_W, corner_H, box=1.0)
    assert lr > 1.5 * local
    for rate in (local, lr):  # both certified rates descend at the corner
        f1, _, _ = _loss_after(problem, corner_W, corner_H, rate, None, 1.0)
        assert f1 <= problem.loss(corner_W, corner_H)


@pytest.mark.parametrize(
    ("noise_std", "batch_size", "clip", "delta"),
    [(0.3, None, None, 1e-3), (0.0, 30, 0.2, None), (0.0, 36, None, None), (0.2, 36, 0.5, None)],
)
def test_noisy_bound_gives_descent_in_expectation(noise_std, batch_size, clip, delta):
    rng = np.random.default_rng(0)
    V = rng.random((8, 40)) * 3
    problem = nmf.StochasticNMF(V, 2, noise_std=noise_std, batch_size=batch_size)
    W, H = problem.init(0)
    lr = nmf.noisy_stability_bound(problem, W, H, clip=clip, delta=delta)
    assert 0 < lr < np.inf
    f0 = problem.loss(W, H)
    losses = []
    for _ in range(4000):
        gW, gH = problem.stochastic_gradient(W, H, rng)
        losses.append(problem.loss(*nmf.projected_step(W, H, gW, gH, lr, clip=clip)))
    losses = np.array(losses)
    assert losses.mean() + 4 * losses.std() / np.sqrt(len(losses)) < f0


@st.composite
def noisy_instances(draw):
    """Gaussian noise, mini-batches or both, sized so that the bound is usually above the floor."""
    m, n = draw(st.integers(2, 6)), draw(st.integers(4, 12))
    rank = draw(st.integers(1, min(m, n)))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    V = 10.0 ** draw(st.floats(-1, 1)) * rng.random((m, n)) * (rng.random((m, n)) < 0.9)
    scale_x = 10.0 ** draw(st.floats(-1, 0.5))
    W, H = scale_x * rng.random((m, rank)), scale_x * rng.random((rank, n))
    kind = draw(st.sampled_from(["gauss", "batch", "both"]))
    batch_size = None if kind == "gauss" else draw(st.integers((3 * n + 3) // 4, n - 1))
    noise_std = 0.0
    if kind != "batch":  # a fraction of the gradient's root-mean-square entry
        g = np.sqrt(sum(np.linalg.norm(a) ** 2 for a in nmf.StochasticNMF(V, rank).gradient(W, H)))
        noise_std = draw(st.floats(0.01, 0.25)) * g / np.sqrt(rank * (m + n))
    clip = draw(st.one_of(st.none(), st.floats(0.01, 1.0)))
    if kind == "both" and clip is None:
        clip = 0.1  # so that delta=None applies; conditioning needs the Gaussian part alone
    box = draw(st.one_of(st.none(), st.floats(1.0, 3.0)))
    if box is not None:
        box = box * max(W.max(), H.max())
    problem = nmf.StochasticNMF(V, rank, noise_std=noise_std, batch_size=batch_size)
    delta = None if clip is not None or box is not None else 1e-3
    return problem, W, H, clip, box, delta, rng


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(noisy_instances())
def test_the_noisy_bound_gives_descent_in_expectation_on_random_instances(inst):
    """Theorem 2 by Monte Carlo: the mean loss after a step at the bound is not above f(x).

    The test rejects the theorem only if the sample mean exceeds f(x) by 5 standard errors. On
    400 random instances of this kind the mean stayed more than 100 standard errors below f(x),
    so a fixed (derandomised) or a fresh draw cannot flake.
    """
    problem, W, H, clip, box, delta, rng = inst
    lr = nmf.noisy_stability_bound(problem, W, H, clip=clip, box=box, delta=delta)
    if lr == 0.0:
        return  # below the noise floor: nothing is claimed
    f0 = problem.loss(W, H)
    g = problem.gradient(W, H)
    radius = np.inf  # with delta the statement is conditional on ||Gaussian noise|| <= radius
    if delta is not None and problem.noise_std > 0:
        assert problem.batch_size is None  # so g_hat - g is the Gaussian noise alone
        radius = problem.noise_std * (np.sqrt(problem.n_params) + np.sqrt(2 * np.log(1 / delta)))
    losses = []
    for _ in range(1000):
        gW, gH = problem.stochastic_gradient(W, H, rng, gradient=g)
        if np.sqrt(np.linalg.norm(gW - g[0]) ** 2 + np.linalg.norm(gH - g[1]) ** 2) <= radius:
            losses.append(problem.loss(*nmf.projected_step(W, H, gW, gH, lr, clip=clip, box=box)))
    losses = np.array(losses)
    assert len(losses) > 900
    assert losses.mean() <= f0 + 5 * losses.std() / np.sqrt(len(losses)) + 1e-12 * f0


def test_noisy_bound_is_zero_when_noise_swamps_the_gradient():
    problem = nmf.StochasticNMF(np.ones((4, 4)), 1, noise_std=1e3)
    assert nmf.noisy_stability_bound(problem, *problem.init(0)) == 0.0


def test_noisy_bound_without_noise_is_the_deterministic_bound():
    rng = np.random.default_rng(0)
    problem = nmf.StochasticNMF(rng.random((5, 4)), 2)
    W, H = problem.init(0)
    assert nmf.noisy_stability_bound(problem, W, H) == nmf.stability_bound(problem, W, H)


def test_unconditional_noisy_bound_needs_a_clip_or_box():
    problem = nmf.StochasticNMF(np.ones((4, 4)), 1, noise_std=0.1)
    with pytest.raises(ValueError, match="clip or box"):
        nmf.noisy_stability_bound(problem, *problem.init(0), delta=None)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"clip": 0.0}, "clip"), ({"clip": -1.0}, "clip"), ({"box": np.inf}, "box")],
)
def test_bad_bound_arguments(kwargs, match):
    problem = nmf.StochasticNMF(np.ones((4, 4)), 1)
    with pytest.raises(ValueError, match=match):
        nmf.stability_bound(problem, *problem.init(0), **kwargs)


def test_bound_needs_an_iterate_in_the_feasible_set():
    problem = nmf.StochasticNMF(np.ones((4, 4)), 1)
    W, H = problem.init(0)
    with pytest.raises(ValueError, match="W must have entries"):
        nmf.stability_bound(problem, -W, H)
    with pytest.raises(ValueError, match="H must have entries"):
        nmf.noisy_stability_bound(problem, W, H + 10, box=5.0)


def test_bad_delta():
    problem = nmf.StochasticNMF(np.ones((4, 4)), 1)
    with pytest.raises(ValueError, match="delta"):
        nmf.noisy_stability_bound(problem, *problem.init(0), delta=2.0)


def test_clipping_raises_the_bound_when_gradients_are_large():
    rng = np.random.default_rng(0)
    problem = nmf.StochasticNMF(100 * rng.random((20, 15)), 3)
    W, H = problem.init(0)
    assert nmf.stability_bound(problem, W, H, clip=1e-3) > 1.4 * nmf.stability_bound(problem, W, H)


@SLOW_OK
@given(instances(), st.floats(0.0, 1.0))
def test_step_length_is_the_norm_of_the_projected_step(inst, fraction):
    problem, W, H, clip, box, _ = inst
    gW, gH = problem.gradient(W, H)
    lr_max = 10.0 * nmf.stability_bound(problem, W, H, clip=clip, box=box)
    assume(np.isfinite(lr_max))
    length = StepLength((W, H), (gW, gH), clip=clip, box=box, lr_max=lr_max)
    for lr in (0.0, fraction * lr_max, lr_max):
        W1, H1 = nmf.projected_step(W, H, gW, gH, lr, clip=clip, box=box)
        exact = np.sqrt(np.linalg.norm(W1 - W) ** 2 + np.linalg.norm(H1 - H) ** 2)
        assert length(lr) == pytest.approx(exact, rel=1e-9, abs=1e-12)


def test_step_length_keeps_small_free_gradients_next_to_large_stopped_ones():
    # The free part must be summed directly: ||g||^2 - ||g_stopped||^2 loses the 1e-6 to cancellation.
    W, H = np.array([[1e-9], [1.0]]), np.array([[1.0]])
    gW, gH = np.array([[1e6], [1e-3]]), np.zeros((1, 1))
    length = StepLength((W, H), (gW, gH), clip=None, box=None, lr_max=1.0)
    W1, H1 = nmf.projected_step(W, H, gW, gH, 1.0)
    assert length(1.0) == pytest.approx(np.linalg.norm(W1 - W), rel=1e-12)


@pytest.mark.parametrize(("scale", "rel"), [(1e-160, 1e-4), (1e150, 1e-9)])
@pytest.mark.parametrize("clip", [None, 0.05])
def test_the_bound_follows_the_scaling_law_at_extreme_data_scales(scale, rel, clip):
    # V -> c V, (W, H) -> sqrt(c) (W, H) scales M by c, so the bound scales by 1 / c.
    # (At 1e-160 the squares of the residual are subnormal, hence the looser tolerance.)
    rng = np.random.default_rng(0)
    V, W, H = rng.random((8, 6)), rng.random((8, 2)), rng.random((2, 6))
    s = np.sqrt(scale)
    expected = nmf.stability_bound(nmf.StochasticNMF(V, 2), W, H, clip=clip) / scale
    large = nmf.StochasticNMF(scale * V, 2)
    bound = nmf.stability_bound(large, s * W, s * H, clip=None if clip is None else s * clip)
    assert bound == pytest.approx(expected, rel=rel)


@pytest.mark.parametrize("scale", [0.0, 1e-160, 1e150])
@pytest.mark.parametrize("kwargs", [{"noise_std": 0.1}, {"batch_size": 3}])
def test_the_noisy_bound_is_defined_at_extreme_data_scales(scale, kwargs):
    problem = nmf.StochasticNMF(scale * np.random.default_rng(0).random((8, 6)), 2, **kwargs)
    W, H = problem.init(0)
    for clip, delta in ((None, 1e-3), (np.sqrt(scale) + 1e-300, None)):
        bound = nmf.noisy_stability_bound(problem, W, H, clip=clip, delta=delta)
        assert 0.0 <= bound <= nmf.stability_bound(problem, W, H, clip=clip) * (1 + 1e-12)


def test_the_noisy_bound_follows_the_scaling_law_for_large_data():
    # Gaussian noise scales like the gradient, by c^1.5 (its variance by c^3, hence not 1e150).
    rng = np.random.default_rng(0)
    V, W, H = rng.random((8, 6)), rng.random((8, 2)), rng.random((2, 6))
    c = 1e100
    expected = nmf.noisy_stability_bound(nmf.StochasticNMF(V, 2, noise_std=0.3), W, H) / c
    large = nmf.StochasticNMF(c * V, 2, noise_std=0.3 * c**1.5)
    bound = nmf.noisy_stability_bound(large, np.sqrt(c) * W, np.sqrt(c) * H)
    assert expected > 0 and bound == pytest.approx(expected, rel=1e-9)


def test_a_zero_gradient_gives_the_end_of_the_bracket():
    # Nothing moves at any lr, so the bound is 2 / M(0) = 2 / (a^2 + ||R||), here 2 / ||V||.
    V = np.ones((3, 4))
    problem = nmf.StochasticNMF(V, 1)
    W, H = np.zeros((3, 1)), np.zeros((1, 4))
    assert nmf.stability_bound(problem, W, H) == 2 / np.linalg.norm(V)
    assert nmf.stability_bound(nmf.StochasticNMF(np.zeros((3, 4)), 1), W, H) == np.inf
    # With gradient noise there is no descent in expectation at a stationary point.
    assert nmf.noisy_stability_bound(nmf.StochasticNMF(V, 1, noise_std=0.1), W, H) == 0.0


@pytest.mark.parametrize("V", [np.zeros((3, 3)), np.zeros((1, 1)), 1e-300 * np.ones((4, 3))])
def test_bounds_of_vanishing_data_are_finite(V):
    problem = nmf.StochasticNMF(V, 1)
    W, H = problem.init(0)
    bound = nmf.stability_bound(problem, W, H)
    assert 0 < bound < np.inf
    assert problem.loss(*nmf.projected_step(W, H, *problem.gradient(W, H), bound)) <= problem.loss(
        W, H
    )


def test_the_feasibility_message_says_what_was_found():
    problem = nmf.StochasticNMF(np.ones((4, 4)), 1)
    W, H = problem.init(0)
    with pytest.raises(ValueError, match=r"found entries in \[-"):
        nmf.stability_bound(problem, -W, H)
    with pytest.raises(ValueError, match="found NaN"):
        nmf.stability_bound(problem, W, np.full_like(H, np.nan))


@pytest.mark.parametrize("kwargs", [{"clip": True}, {"box": True}])
def test_bool_is_not_a_clip_or_box(kwargs):
    problem = nmf.StochasticNMF(np.ones((4, 4)), 1)
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        nmf.stability_bound(problem, *problem.init(0), **kwargs)


BOUNDS = {
    "stability_bound": nmf.stability_bound,
    "noisy_stability_bound": nmf.noisy_stability_bound,
    "empirical_max_stable_lr": nmf.empirical_max_stable_lr,
}


@pytest.mark.parametrize("bound", BOUNDS.values(), ids=BOUNDS)
@pytest.mark.parametrize(("which", "value"), [("W", np.inf), ("H", np.inf), ("W", np.nan)])
def test_non_finite_factors_are_named(bound, which, value):
    # W = inf once gave stability_bound = 0.0 instead of an error.
    problem = nmf.StochasticNMF(np.ones((4, 4)), 1, noise_std=0.1)
    W, H = problem.init(0)
    factors = {"W": W, "H": H}
    factors[which] = np.full_like(factors[which], value)
    found = "NaN" if np.isnan(value) else "inf"
    with pytest.raises(ValueError, match=f"{which} must be finite, found {found}"):
        bound(problem, factors["W"], factors["H"])


@pytest.mark.parametrize("bound", BOUNDS.values(), ids=BOUNDS)
def test_bounds_accept_array_likes_like_run_sgd(bound):
    problem = nmf.StochasticNMF(np.random.default_rng(0).random((5, 4)), 2, noise_std=0.01)
    W, H = problem.init(0)
    assert bound(problem, W.tolist(), H.tolist()) == bound(problem, W, H)
    W32 = W.astype(np.float32)
    assert bound(problem, W32, H) == bound(problem, W32.astype(np.float64), H)
    with pytest.raises(ValueError, match="W must be an array of real numbers"):
        bound(problem, W.astype(str), H)
    with pytest.raises(TypeError, match="problem must be a StochasticNMF"):
        bound(problem.V, W, H)


@pytest.mark.parametrize("value", ["0.1", np.True_, 0.1 + 0j])
def test_bound_parameters_follow_the_number_rule(value):
    problem = nmf.StochasticNMF(np.ones((4, 4)), 1, noise_std=0.1)
    W, H = problem.init(0)
    for kwargs in ({"clip": value}, {"box": value}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            nmf.stability_bound(problem, W, H, **kwargs)
    with pytest.raises(ValueError, match="delta"):
        nmf.noisy_stability_bound(problem, W, H, delta=value)
    with pytest.raises(ValueError, match="box"):
        nmf.global_stability_bound(problem, box=value)
