import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nmf import StochasticNMF, projected_step
from nmf.problem import SEED_STREAMS, stream_rng


@pytest.fixture
def problem():
    V = np.random.default_rng(0).random((7, 5))
    return StochasticNMF(V, 3, noise_std=0.2, batch_size=2, seed=1)


@pytest.mark.parametrize(
    ("V", "rank", "kwargs", "match"),
    [
        (-np.ones((3, 3)), 1, {}, "non-negative"),
        (np.full((3, 3), np.nan), 1, {}, "finite"),
        (np.full((3, 3), np.inf), 1, {}, "finite"),
        (np.ones(3), 1, {}, "2-D"),
        (np.ones((0, 3)), 1, {}, "empty"),
        (np.ones((3, 4)), 0, {}, "rank"),
        (np.ones((3, 4)), 4, {}, "rank"),
        (np.ones((3, 4)), 1.5, {}, "rank"),
        (np.ones((3, 4)), 1, {"noise_std": -1.0}, "noise_std"),
        (np.ones((3, 4)), 1, {"noise_std": True}, "noise_std"),
        (np.ones((3, 4)), True, {}, "rank"),
        (np.ones((3, 4)), 1, {"seed": -1}, "seed"),
        (np.ones((3, 4)), 1, {"seed": "x"}, "seed"),
        (np.ones((3, 4)), 1, {"seed": True}, "seed"),
        ([[1.0, 2.0], [3.0]], 1, {}, "V must be an array of real numbers"),
        ([["a", "b"], ["c", "d"]], 1, {}, "V must be an array of real numbers"),
        (np.ones((2, 2)) * (1 + 1j), 1, {}, "V must be an array of real numbers"),
        (np.ma.masked_array(np.ones((2, 2)), [[0, 1], [0, 0]]), 1, {}, "V has masked entries"),
        (np.ones((3, 4)), 1, {"batch_size": 5}, "batch_size"),
        (np.ones((3, 4)), 1, {"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_input_names_the_problem(V, rank, kwargs, match):
    with pytest.raises(ValueError, match=match):
        StochasticNMF(V, rank, **kwargs)


def test_numpy_integers_are_integers():
    p = StochasticNMF(np.ones((3, 4)), np.int64(2), batch_size=np.int32(2), seed=np.uint8(3))
    assert p.rank == 2 and p.batch_size == 2
    assert np.array_equal(p.init()[0], p.init(3)[0])


def test_data_is_copied_and_read_only():
    V = np.ones((3, 3))
    p = StochasticNMF(V, 1)
    V[0, 0] = 5.0
    assert p.V[0, 0] == 1.0
    with pytest.raises(ValueError):
        p.V[0, 0] = 2.0


def test_wrong_factor_shapes_are_rejected(problem):
    W, H = problem.init(0)
    with pytest.raises(ValueError, match="shapes"):
        problem.loss(W.T, H)


def test_init_is_seeded_and_non_negative(problem):
    W1, H1 = problem.init(3)
    W2, H2 = problem.init(3)
    assert np.array_equal(W1, W2) and np.array_equal(H1, H2)
    assert (W1 >= 0).all() and (H1 >= 0).all()
    assert not np.array_equal(W1, problem.init(4)[0])


def test_gradient_matches_finite_differences(problem):
    W, H = problem.init(0)
    gW, gH = problem.gradient(W, H)
    rng = np.random.default_rng(0)
    DW, DH = rng.standard_normal(W.shape), rng.standard_normal(H.shape)
    eps = 1e-6
    numeric = (
        problem.loss(W + eps * DW, H + eps * DH) - problem.loss(W - eps * DW, H - eps * DH)
    ) / (2 * eps)
    assert numeric == pytest.approx(np.sum(gW * DW) + np.sum(gH * DH), rel=1e-6)


def test_relative_error_matches_its_definition(problem):
    W, H = problem.init(0)
    expected = np.linalg.norm(problem.V - W @ H) / np.linalg.norm(problem.V)
    assert problem.relative_error(W, H) == pytest.approx(expected)
    assert problem.relative_error_from_loss(problem.loss(W, H)) == pytest.approx(expected)


def test_stochastic_gradient_is_unbiased_with_the_stated_variance(problem):
    W, H = problem.init(0)
    g = np.concatenate([a.ravel() for a in problem.gradient(W, H)])
    rng = np.random.default_rng(0)
    samples = np.array(
        [
            np.concatenate([a.ravel() for a in problem.stochastic_gradient(W, H, rng)])
            for _ in range(20000)
        ]
    )
    err = samples.mean(0) - g
    stderr = samples.std(0) / np.sqrt(len(samples))
    assert np.all(np.abs(err) < 5 * stderr + 1e-12)
    variance = np.mean(np.sum((samples - g) ** 2, axis=1))
    assert variance == pytest.approx(problem.gradient_noise_variance(W, H), rel=0.05)


@pytest.mark.parametrize("batch_size", [None, 2])
def test_a_precomputed_gradient_gives_the_same_stochastic_gradient(batch_size):
    V = np.random.default_rng(0).random((7, 5))
    p = StochasticNMF(V, 3, noise_std=0.2, batch_size=batch_size)
    W, H = p.init(0)
    R = p.residual(W, H)
    a = p.stochastic_gradient(W, H, np.random.default_rng(5), residual=R)
    b = p.stochastic_gradient(W, H, np.random.default_rng(5), residual=R, gradient=p.gradient(W, H))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_seed_streams_are_independent():
    # One seed stands for the data, the init and the gradient noise; they must not replay each
    # other's random numbers (the noise once started with exactly the init's draws).
    first = {name: stream_rng(7, name).standard_normal(50) for name in SEED_STREAMS}
    first["plain"] = np.random.default_rng(7).standard_normal(50)
    values = list(first.values())
    for i, x in enumerate(values):
        for y in values[i + 1 :]:
            assert abs(np.corrcoef(np.abs(x), np.abs(y))[0, 1]) < 0.5
    assert np.array_equal(
        stream_rng(np.int64(7), "init").random(3), stream_rng(7, "init").random(3)
    )


def test_stochastic_gradient_is_deterministic_given_the_generator(problem):
    W, H = problem.init(0)
    a = problem.stochastic_gradient(W, H, np.random.default_rng(5))
    b = problem.stochastic_gradient(W, H, np.random.default_rng(5))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    with pytest.raises(TypeError, match="rng"):
        problem.stochastic_gradient(W, H, 5)


def test_max_stochastic_gradient_norm_bounds_every_minibatch():
    V = np.random.default_rng(1).random((6, 8))
    p = StochasticNMF(V, 2, batch_size=3)
    W, H = p.init(0)
    rng = np.random.default_rng(0)
    worst = max(
        np.sqrt(sum(np.linalg.norm(a) ** 2 for a in p.stochastic_gradient(W, H, rng)))
        for _ in range(500)
    )
    assert worst <= p.max_stochastic_gradient_norm(W, H) * (1 + 1e-12)


def test_exact_oracle_without_noise():
    V = np.random.default_rng(1).random((4, 4))
    p = StochasticNMF(V, 2, batch_size=4)  # a full batch is no mini-batch
    assert not p.is_stochastic and p.gradient_noise_variance(*p.init(0)) == 0.0


def test_projected_step_is_projection_onto_the_clipped_box():
    rng = np.random.default_rng(0)
    W, H = 0.9 * rng.random((4, 3)), 0.9 * rng.random((3, 5))
    gW, gH = rng.standard_normal(W.shape) * 10, rng.standard_normal(H.shape) * 10
    W1, H1 = projected_step(W, H, gW, gH, 0.1, clip=0.05, box=0.9)
    for x, x1, g in ((W, W1, gW), (H, H1, gH)):
        lo, hi = np.maximum(0, x - 0.05), np.minimum(0.9, x + 0.05)
        assert np.allclose(x1, np.clip(x - 0.1 * g, lo, hi))
        assert (x1 >= 0).all() and (x1 <= 0.9).all() and (np.abs(x1 - x) <= 0.05 + 1e-15).all()


@pytest.mark.parametrize(
    ("V", "what"),
    [
        (np.array([["1", "2"], ["3", "4"]]), "strings"),
        ([["1", "2"], ["3", "4"]], "strings"),
        (np.ones((2, 2), dtype=object), "Python objects"),
        (np.ones((2, 2), dtype=bool), "booleans"),
        ([[True, False], [True, True]], "booleans"),
        (np.ones((2, 2), dtype=np.complex128), "complex numbers"),
    ],
)
def test_data_that_is_not_numbers_is_rejected_not_converted(V, what):
    with pytest.raises(ValueError, match=f"V must be an array of real numbers .*got {what}"):
        StochasticNMF(V, 1)


def test_integer_data_and_lists_of_numbers_are_data():
    V = np.arange(6).reshape(2, 3)
    assert np.array_equal(StochasticNMF(V, 1).V, V.astype(float))
    assert np.array_equal(StochasticNMF(V.tolist(), 1).V, V.astype(float))


def test_every_factor_method_accepts_array_likes(problem):
    W, H = problem.init(0)
    Wl, Hl = W.tolist(), H.tolist()
    assert problem.loss(Wl, Hl) == problem.loss(W, H)
    assert problem.relative_error(Wl, Hl) == problem.relative_error(W, H)
    assert np.array_equal(problem.residual(Wl, Hl), problem.residual(W, H))
    for a, b in zip(problem.gradient(Wl, Hl), problem.gradient(W, H), strict=True):
        assert np.array_equal(a, b)
    for a, b in zip(
        problem.stochastic_gradient(Wl, Hl, np.random.default_rng(1)),
        problem.stochastic_gradient(W, H, np.random.default_rng(1)),
        strict=True,
    ):
        assert np.array_equal(a, b)
    assert problem.gradient_noise_variance(Wl, Hl) == problem.gradient_noise_variance(W, H)
    assert problem.max_stochastic_gradient_norm(Wl, Hl) == problem.max_stochastic_gradient_norm(
        W, H
    )
    W1, H1 = projected_step(Wl, Hl, *problem.gradient(W, H), 0.1)
    assert np.array_equal(W1, projected_step(W, H, *problem.gradient(W, H), 0.1)[0])


@pytest.mark.parametrize(
    "method",
    ["loss", "residual", "relative_error", "gradient", "gradient_noise_variance"],
)
def test_factors_that_are_not_numbers_are_named(problem, method):
    W, H = problem.init(0)
    with pytest.raises(ValueError, match="W must be an array of real numbers"):
        getattr(problem, method)(W.astype(str), H)
    with pytest.raises(ValueError, match="H must be an array of real numbers"):
        getattr(problem, method)(W, H.astype(bool))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": "0.1"}, "lr"),
        ({"lr": True}, "lr"),
        ({"lr": -1.0}, "lr"),
        ({"lr": 0.1, "clip": np.True_}, "clip"),
        ({"lr": 0.1, "box": 0.0}, "box"),
    ],
)
def test_projected_step_names_bad_arguments(kwargs, match):
    W, H = np.ones((2, 1)), np.ones((1, 2))
    with pytest.raises(ValueError, match=match):
        projected_step(W, H, W, H, **kwargs)


def test_data_whose_loss_overflows_is_rejected_with_the_cause():
    # ||V||_F = 3e300: 0.5 * ||V - W H||^2 is inf at W = H = 0; the error once surfaced as a
    # FollowBound complaint about compute_bound.
    with pytest.raises(ValueError, match=r"V is too large for float64: \|\|V\|\|_F = 3e\+300"):
        StochasticNMF(1e300 * np.ones((3, 3)), 1)
    StochasticNMF(1e150 * np.ones((3, 3)), 1)  # the loss still fits


@settings(max_examples=60, deadline=None)
@given(st.floats(-300, 150), st.integers(0, 2**31 - 1))
def test_relative_error_is_scale_invariant(exponent, seed):
    # V -> c V, (W, H) -> sqrt(c) (W, H) leaves ||V - W H|| / ||V|| unchanged at every scale
    # (it once read 0.0 for c = 1e-300, where the squares underflow).
    rng = np.random.default_rng(seed)
    V, W, H = rng.random((5, 4)) + 0.1, rng.random((5, 2)), rng.random((2, 4))
    c = 10.0**exponent
    expected = StochasticNMF(V, 2).relative_error(W, H)
    scaled = StochasticNMF(c * V, 2).relative_error(np.sqrt(c) * W, np.sqrt(c) * H)
    assert scaled == pytest.approx(expected, rel=1e-12)


def test_relative_error_from_an_underflowed_loss_is_an_error():
    tiny = StochasticNMF(1e-300 * np.ones((4, 3)), 1)
    with pytest.raises(ValueError, match="underflow.*relative_error"):
        tiny.relative_error_from_loss(0.0)
    W, H = np.full((4, 1), 2e-150), np.full((1, 3), 1e-150)  # W H = 2 V
    assert tiny.relative_error(W, H) == pytest.approx(1.0, rel=1e-12)
    normal = StochasticNMF(np.ones((4, 3)), 1)
    assert normal.relative_error_from_loss(0.0) == 0.0  # an exact fit
    assert normal.relative_error_from_loss(6.0) == pytest.approx(1.0)
    assert np.isnan(normal.relative_error_from_loss(np.nan))  # a diverged run
    for bad in (-1.0, "1", True):
        with pytest.raises(ValueError, match="loss must be a real number"):
            normal.relative_error_from_loss(bad)
