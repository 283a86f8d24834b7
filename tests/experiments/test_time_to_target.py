"""experiments.common.time_to_target: AlgoPerf targets, times to target, performance profiles."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.common.time_to_target import (
    TAUS,
    best_loss,
    first_reach,
    performance_profile,
    profile_score,
    profiles_block,
    set_target,
    summarise_times,
)


def test_best_loss_ignores_diverged_points():
    assert best_loss([3.0, 1.0, math.inf, float("nan")]) == 1.0
    assert best_loss([math.inf, math.inf]) == math.inf


def test_target_is_the_best_baselines_median_of_best_losses():
    # medians: a -> 2.0, b -> 1.5, c -> inf (two of three diverged)
    target = set_target(
        {"a": [1.0, 2.0, 3.0], "b": [1.5, 1.0, 9.0], "c": [math.inf, math.inf, 0.1]}
    )
    assert target == 1.5
    assert math.isnan(set_target({"a": [math.inf]}))


def test_first_reach_is_the_first_evaluation_at_or_below_target():
    steps = [0, 10, 20, 30]
    assert first_reach(steps, [5.0, 2.0, 1.0, 0.5], 1.0) == 20.0
    assert first_reach(steps, [5.0, math.inf, math.nan, 2.0], 1.0) == math.inf
    assert first_reach(steps, [5.0, 2.0, 1.0, 0.5], math.nan) == math.inf
    with pytest.raises(ValueError, match="equal lengths"):
        first_reach(steps, [1.0], 1.0)


def test_profile_in_closed_form():
    times = {
        "fast": {"p1": 10.0, "p2": 40.0, "p3": math.inf},
        "slow": {"p1": 20.0, "p2": 20.0, "p3": math.inf},
    }
    taus = [1.0, 1.5, 2.0, 3.0]
    profile = performance_profile(times, taus)
    # ratios: fast (1, 2, inf), slow (2, 1, inf); nobody solves p3
    assert profile["fast"] == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert profile["slow"] == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3])
    # trapezoid area of the step profile over [1, 3], divided by 2
    assert profile_score([0.0, 0.5, 1.0, 1.0], taus) == pytest.approx((0.125 + 0.375 + 1.0) / 2)
    assert profile_score([1.0] * len(TAUS)) == pytest.approx(1.0)


def test_profile_needs_the_same_problems_for_every_method():
    with pytest.raises(ValueError, match="other problems"):
        performance_profile({"a": {"p": 1.0}, "b": {"q": 1.0}})


def test_zero_time_is_the_fastest_positive_time():
    profile = performance_profile({"a": {"p": 0.0}, "b": {"p": 10.0}}, [1.0, 2.0])
    assert profile == {"a": [1.0, 1.0], "b": [1.0, 1.0]}


def test_block_orders_methods_by_score_and_counts_solved():
    block = profiles_block({"a": {"p": 1.0, "q": math.inf}, "b": {"p": 2.0, "q": 3.0}})
    assert list(block["methods"]) == ["b", "a"] and block["best"] == "b"
    assert block["methods"]["a"]["solved"] == 1 and block["n_problems"] == 2
    assert summarise_times([1.0, 2.0, math.inf]) == {"median": 2.0, "reached": 2, "n": 3}
    assert summarise_times([1.0, math.inf])["median"] == math.inf


times_st = st.dictionaries(
    st.sampled_from(["a", "b", "c"]),
    st.lists(st.one_of(st.floats(0.5, 100.0), st.just(math.inf)), min_size=4, max_size=4),
    min_size=1,
)


@settings(max_examples=60, deadline=None)
@given(times_st)
def test_profile_properties(raw):
    times = {m: dict(enumerate(v)) for m, v in raw.items()}
    profile = performance_profile(times)
    solved_by_anyone = sum(any(math.isfinite(times[m][p]) for m in times) for p in range(4)) / 4
    at_one = [profile[m][0] for m in times]
    assert sum(at_one) >= solved_by_anyone - 1e-12  # every solved problem has a fastest method
    for m, values in profile.items():
        assert all(0.0 <= v <= 1.0 for v in values)
        assert all(b >= a for a, b in zip(values, values[1:], strict=False))  # non-decreasing
        solved = sum(math.isfinite(t) for t in times[m].values()) / 4
        assert values[-1] <= solved + 1e-12
        assert 0.0 <= profile_score(values) <= 1.0
