"""The shared statistics (rliable-style PoI/IQM, cluster bootstrap, headline records) and tuning."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from experiments.common import stats
from experiments.common.tuning import edge_hits, tune_log_axes

scores = arrays(
    float, st.tuples(st.integers(1, 4), st.integers(1, 6)), elements=st.floats(0, 10, width=32)
)


@settings(max_examples=60, deadline=None)
@given(scores, st.data())
def test_poi_is_a_probability_and_antisymmetric(x, data):
    y = data.draw(
        arrays(
            float, (data.draw(st.integers(1, 4)), x.shape[1]), elements=st.floats(0, 10, width=32)
        )
    )
    p, q = stats.probability_of_improvement(x, y), stats.probability_of_improvement(y, x)
    assert 0.0 <= p <= 1.0
    assert p + q == pytest.approx(1.0)
    assert stats.probability_of_improvement(x, x) == pytest.approx(0.5)


def test_poi_closed_form_and_strata():
    x = np.array([[1.0, 5.0, 1.0]])  # lower is better
    y = np.array([[2.0, 4.0, 1.0]])
    assert stats.probability_of_improvement(x, y) == pytest.approx((1 + 0 + 0.5) / 3)
    # strata weight cells equally: cell a = tasks 0, 1 (mean 0.5), cell b = task 2 (0.5)
    assert stats.probability_of_improvement(x, y, strata=["a", "a", "b"]) == pytest.approx(0.5)
    assert stats.probability_of_improvement(x, y, lower_is_better=False) == pytest.approx(1.5 / 3)
    # a diverged run (inf) loses to any finite score
    assert stats.probability_of_improvement([[math.inf]], [[1e9]]) == 0.0
    with pytest.raises(ValueError, match="same tasks"):
        stats.probability_of_improvement(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        stats.probability_of_improvement([[math.nan]], [[1.0]])


def test_iqm_matches_trimmed_mean():
    x = np.arange(8.0)
    assert stats.iqm(x) == pytest.approx(np.mean([2, 3, 4, 5]))


@settings(max_examples=300, deadline=None)
@given(
    arrays(
        float,
        st.integers(1, 300),
        elements=st.one_of(st.floats(-1e6, 1e6), st.integers(0, 4).map(float), st.just(math.inf)),
    )
)
def test_iqm_is_scipys_trimmed_mean_to_the_last_bit(x):
    """The reference results' IQMs were computed with scipy.stats.trim_mean: same bits."""
    from scipy.stats import trim_mean

    assert stats.iqm(x) == float(trim_mean(np.sort(x), 0.25))


def test_stratified_bootstrap_covers_both_sources_of_variation():
    rng = np.random.default_rng(1)
    # X better than Y on every task: the interval is tight near 1
    x, y = rng.normal(0, 0.1, (5, 20)), rng.normal(1, 0.1, (5, 20))
    r = stats.poi_with_ci(x, y, strata=["a"] * 10 + ["b"] * 10, n_boot=300)
    assert r["value"] > 0.99 and r["ci95"][0] > 0.95
    assert r["n_runs"] == [5, 5] and r["n_tasks"] == 20
    # run-level variation alone widens the interval: one good and one bad PPO seed
    x2 = np.vstack([np.zeros(20), np.full(20, 2.0)])
    wide = stats.poi_with_ci(x2, y, n_boot=300)
    assert wide["ci95"][0] < 0.5 < wide["ci95"][1]
    # reproducible
    assert stats.poi_with_ci(x2, y, n_boot=300) == wide
    q = stats.iqm_with_ci(x, n_boot=200)
    assert q["ci95"][0] <= q["value"] <= q["ci95"][1]


def test_a_bootstrap_interval_always_contains_its_point_estimate():
    # "no task drawn twice" is true of the data but almost never of a resample, so the plain
    # percentile interval would be [0, 0] around a point estimate of 1
    def distinct(m, strata=None):
        return float(len({tuple(col) for col in m.T}) == m.shape[1])

    r = stats.stratified_bootstrap(distinct, np.arange(12.0)[None, :], n_boot=200)
    assert r["value"] == 1.0 and r["ci95"] == [0.0, 1.0]


def test_cluster_bootstrap_share_resamples_clusters_whole():
    # two clusters: all true / all false -> the interval spans 0..1 although n is large
    outcomes = [True] * 50 + [False] * 50
    clusters = ["a"] * 50 + ["b"] * 50
    r = stats.cluster_bootstrap_share(outcomes, clusters, n_boot=500)
    assert r["value"] == 0.5 and r["n_clusters"] == 2 and r["n"] == 100
    assert r["ci95"][0] == 0.0 and r["ci95"][1] == 1.0
    # the same outcomes as 100 independent clusters give a narrow interval
    narrow = stats.cluster_bootstrap_share(outcomes, range(100), n_boot=500)
    assert narrow["ci95"][1] - narrow["ci95"][0] < 0.3


def test_paired_test():
    x = np.arange(10.0)
    r = stats.paired_test(x, x + 1.0)
    assert r["p_value"] < 0.01 and r["median_diff"] == -1.0 and r["n"] == 10
    assert stats.paired_test(x, x)["p_value"] == 1.0
    # diverged runs are ranked as larger than every finite score
    assert stats.paired_test([math.inf] * 8, [1.0] * 8)["median_diff"] > 0


def test_headline_record():
    rec = stats.headline_record(
        "learned_vs_step", "probability_of_improvement", 0.7, [0.6, 0.8], 48, ppo_seeds=5
    )
    assert rec["significant"] and rec["ppo_seeds"] == 5 and rec["null"] == 0.5
    assert not stats.headline_record("x", "share", 0.6, [0.4, 0.8], 3)["significant"]
    with pytest.raises(ValueError, match="outside its ci95"):
        stats.headline_record("x", "share", 0.9, [0.4, 0.8], 3)


def test_tuning_widens_until_interior():
    optimum = {"a": 0.3, "b": 1e-4, "c": 0.01}  # a, b beyond the initial grid's ends
    calls = []

    def evaluate(pending):
        calls.append(pending)
        return {
            k: {v: (math.log(v) - math.log(optimum[k])) ** 2 for v in vs}
            for k, vs in pending.items()
        }

    grid = [1e-3, 1e-2, 1e-1]
    res = tune_log_axes({k: grid for k in optimum}, evaluate, max_rounds=5)
    assert res["a"].edge is None and res["a"].best == pytest.approx(0.3, rel=1.5)
    assert res["b"].best == pytest.approx(1e-4) and res["b"].edge is None
    assert res["c"].rounds == 0 and res["c"].best == pytest.approx(0.01)
    assert all("c" not in p for p in calls[1:])  # interior cells are not rerun
    assert edge_hits(res) == []
    capped = tune_log_axes({"b": grid}, evaluate, max_rounds=0)
    assert capped["b"].edge == "low" and edge_hits(capped)[0]["edge"] == "low"
    bounded = tune_log_axes({"a": grid}, evaluate, max_rounds=4, bounds=(0.0, 0.5))
    assert max(bounded["a"].values) < 0.5 and bounded["a"].edge == "high"
    flat = tune_log_axes({"f": grid}, lambda p: {k: {v: 1.0 for v in vs} for k, vs in p.items()})
    assert flat["f"].edge is None and flat["f"].rounds == 0 and flat["f"].best == 1e-2
    inf = tune_log_axes(
        {"d": grid}, lambda p: {k: {v: math.inf for v in vs} for k, vs in p.items()}
    )
    assert inf["d"].edge == "all_diverged" and inf["d"].rounds == 0 and edge_hits(inf)
    with pytest.raises(ValueError, match="increasing positive"):
        tune_log_axes({"x": [1.0]}, evaluate)
