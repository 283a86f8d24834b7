"""GreedyLR rules pinned against closed-form LR sequences, in the style of torch's scheduler tests.

Unless a test says otherwise: one param group starting at lr=1, factor=0.5 (so every expected value
is an exact binary fraction and can be compared with ``==``), explicit bounds, no reset.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch
from _greedylr_helpers import lrs_of, make_optimizer, make_scheduler, trajectory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from greedylr import GreedyLR, NonFiniteMetricWarning
from greedylr.scheduler import PAPER_MAX_LR_RATIO, PAPER_MIN_LR_RATIO

BASE = {"factor": 0.5, "min_lr": 1 / 64, "max_lr": 64.0, "reset_start": None}
BASE_NO_BOUNDS = {"factor": 0.5, "reset_start": None}
BOTH = pytest.mark.parametrize("variant", ["paper", "transformers"])


def run(metrics, variant="paper", **kwargs):
    return lrs_of(metrics, **{**BASE, "variant": variant, **kwargs})


# ----------------------------------------------------------------------------- patience


@BOTH
def test_patience_increase_on_every_third_improvement(variant):
    # patience=2: the 3rd consecutive improvement doubles the LR, then the count restarts.
    assert run(range(10, 0, -1), variant, patience=2) == [1, 1, 2, 2, 2, 4, 4, 4, 8, 8]


@BOTH
def test_patience_decrease_on_plateau(variant):
    # The first metric always improves on the initial best (inf); a plateau is a worsening.
    assert run([1.0] * 10, variant, patience=2) == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]


@BOTH
def test_patience_zero_follows_every_change(variant):
    assert run([3, 2, 2.5, 1, 1.5], variant, patience=0) == [2, 4, 2, 4, 2]


@BOTH
def test_improvement_is_measured_against_the_best_not_the_previous_value(variant):
    # 2.5 < 3 (previous) but > 2 (best): a worsening.
    assert run([3, 2, 3, 2.5], variant, patience=0) == [2, 4, 2, 1]


# ----------------------------------------------------------------------------- thresholds


@BOTH
def test_threshold_abs(variant):
    # better iff metric < best - 0.1
    assert run([1.0, 0.95, 0.85, 0.8], variant, patience=0, threshold=0.1) == [2, 1, 2, 1]
    assert run([100, 95, 89], variant, patience=0, threshold=0.1, threshold_mode="abs") == [2, 4, 8]


@BOTH
def test_threshold_rel(variant):
    # better iff metric < best * (1 - 0.1): 95 is not better than 100, 89 is.
    assert run([100, 95, 89], variant, patience=0, threshold=0.1, threshold_mode="rel") == [2, 1, 2]


@BOTH
def test_max_mode(variant):
    assert run([1, 2, 3, 2.5], variant, patience=0, mode="max") == [2, 4, 8, 4]
    # abs threshold in max mode: better iff metric > best + 0.1
    assert run([1, 1.05, 1.2], variant, patience=0, mode="max", threshold=0.1) == [2, 1, 2]


@BOTH
def test_threshold_rel_in_max_mode(variant):
    # better iff metric > best * (1 + 0.1): 1.05 is not better than 1, 1.2 is.
    rel = {"patience": 0, "mode": "max", "threshold": 0.1, "threshold_mode": "rel"}
    assert run([1, 1.05, 1.2], variant, **rel) == [2, 1, 2]


REL = {"patience": 0, "threshold": 0.1, "threshold_mode": "rel"}


def test_threshold_rel_with_negative_metrics_paper():
    # Paper variant: better iff metric < best - 0.1 |best| (> best + 0.1 |best| in max mode).
    assert run([-1, -0.95, -0.9], **REL) == [2, 1, 0.5]  # worsening lowers the LR
    assert run([-1, -1.05, -1.2], **REL) == [2, 1, 2]  # -1.05 > -1.1, -1.2 < -1.1
    assert run([-1, -1.05, -1.1, -1.15], mode="max", **REL) == [2, 1, 0.5, 0.25]
    assert run([-1, -0.95, -0.85], mode="max", **REL) == [2, 1, 2]  # -0.95 < -0.9 < -0.85


def test_threshold_rel_with_negative_metrics_transformers():
    # transformers scales best itself: for best < 0 the bar lies on the worse side of best, so a
    # worsening metric counts as an improvement. Kept for parity (see the variant table).
    assert run([-1, -0.95, -0.9], "transformers", **REL) == [2, 4, 8]
    assert run([-1, -1.05, -1.1, -1.15], "transformers", mode="max", **REL) == [2, 4, 8, 16]


@BOTH
def test_negative_metrics_with_abs_threshold(variant):
    assert run([-1, -2, -1.5, -3], variant, patience=0, threshold=0.1) == [2, 4, 2, 4]
    assert run([-3, -2, -2.05, -1], variant, patience=0, mode="max", threshold=0.1) == [2, 4, 2, 4]


@BOTH
@pytest.mark.parametrize("threshold", [1.0, 1.5])
def test_threshold_rel_must_be_below_one(variant, threshold):
    # With threshold >= 1 nothing could ever be an improvement (inf * 0 = nan, inf * -0.5 = -inf).
    with pytest.raises(
        ValueError, match=r"threshold \(with threshold_mode='rel'\).*\[0\.0, 1\.0\)"
    ):
        make_scheduler(variant=variant, threshold=threshold, threshold_mode="rel", **BASE)
    make_scheduler(variant=variant, threshold=threshold, threshold_mode="abs", **BASE)


# ----------------------------------------------------------------------------- holds


@BOTH
def test_cooldown_blocks_further_decreases(variant):
    metrics = [5, 6, 7, 8, 9, 10]
    assert run(metrics, variant, patience=0, cooldown=0) == [2, 1, 0.5, 0.25, 0.125, 0.0625]
    assert run(metrics, variant, patience=0, cooldown=2) == [2, 1, 1, 1, 0.5, 0.5]


def test_cooldown_paper_still_counts_improvements():
    # Paper variant (ReduceLROnPlateau-style): a cooldown only discards *bad* steps.
    assert run([5, 6, 1, 0.5, 0.4], "paper", patience=0, cooldown=2) == [2, 1, 2, 4, 8]


def test_cooldown_transformers_skips_the_metric_entirely():
    # transformers: during a hold the metric is not compared; both counters are cleared.
    assert run([5, 6, 1, 0.5, 0.4], "transformers", patience=0, cooldown=2) == [2, 1, 1, 1, 2]


@BOTH
def test_warmup_blocks_further_increases(variant):
    assert run([5, 4, 3, 2, 1], variant, patience=0, warmup=2) == [2, 2, 2, 4, 4]


def test_warmup_paper_still_counts_worsening():
    assert run([5, 6, 7], "paper", patience=0, warmup=2) == [2, 1, 0.5]


def test_warmup_transformers_skips_the_metric_entirely():
    assert run([5, 6, 7], "transformers", patience=0, warmup=2) == [2, 2, 2]


def test_cooldown_and_warmup_running_together_paper():
    # 5: up (warmup 2); 6: bad -> down (cooldown 2) while the warmup still runs; 4: good but the
    # warmup discards it; 3: good -> up (warmup 2); 7: bad -> down (the cooldown has run out).
    assert run([5, 6, 4, 3, 7], patience=0, cooldown=2, warmup=2) == [2, 1, 1, 2, 1]


def test_cooldown_and_warmup_together_transformers():
    # Holds skip the metric, so they never overlap: 5 up (warmup 1); 6 skipped; 7 down
    # (cooldown 1); 3 skipped; 2 up (warmup 1); 1 skipped; 0.5 up.
    kwargs = {"patience": 0, "cooldown": 1, "warmup": 1}
    assert run([5, 6, 7, 3, 2, 1, 0.5], "transformers", **kwargs) == [2, 2, 1, 1, 2, 2, 4]


# ----------------------------------------------------------------------------- bounds and eps


@BOTH
def test_max_lr_clamp(variant):
    assert run([5, 4, 3, 2], variant, patience=0, max_lr=3.0) == [2, 3, 3, 3]


@BOTH
def test_min_lr_clamp(variant):
    assert run([1.0] * 5, variant, patience=0, min_lr=0.3) == [2, 1, 0.5, 0.3, 0.3]


def test_eps_is_absolute_in_transformers_and_freezes_small_lrs():
    kwargs = {"patience": 0, "min_lr": 1e-12, "max_lr": 1.0, "eps": 1e-8}
    expected_transformers = [2e-7, 1e-7, 5e-8, 2.5e-8, 1.25e-8, 1.25e-8]  # stuck: change < eps
    expected_paper = [2e-7, 1e-7, 5e-8, 2.5e-8, 1.25e-8, 6.25e-9]  # eps is relative
    got_t = run([1.0] * 6, "transformers", lr0=1e-7, **kwargs)
    got_p = run([1.0] * 6, "paper", lr0=1e-7, **kwargs)
    assert got_t == pytest.approx(expected_transformers, rel=1e-12)
    assert got_p == pytest.approx(expected_paper, rel=1e-12)


def test_paper_default_bounds_are_relative_to_the_initial_lr():
    sched = make_scheduler((2e-5, 1e-3), factor=0.5, patience=0)
    assert sched.min_lrs == pytest.approx([PAPER_MIN_LR_RATIO * 2e-5, PAPER_MIN_LR_RATIO * 1e-3])
    assert sched.max_lrs == pytest.approx([PAPER_MAX_LR_RATIO * 2e-5, PAPER_MAX_LR_RATIO * 1e-3])
    # A fine-tuning LR (2e-5) actually decreases, unlike with transformers' absolute min_lr=1e-3.
    # step 1: improvement -> x2; steps 2, 3: worsening -> /2 each
    lrs = trajectory(sched, [1.0, 1.0, 1.0])
    expected = [[4e-5, 2e-3], [2e-5, 1e-3], [1e-5, 5e-4]]
    for row, want in zip(lrs, expected, strict=True):
        assert row == pytest.approx(want, rel=1e-12)


def test_transformers_defaults_reproduce_the_silent_noop_pitfall():
    # transformers' default min_lr=1e-3 is above a 2e-5 fine-tuning LR: decreases do nothing.
    with pytest.warns(UserWarning, match="silent no-ops"):
        sched = make_scheduler((2e-5,), variant="transformers", patience=0)
    assert (sched.min_lrs, sched.max_lrs, sched.eps) == ([1e-3], [1.0], 1e-8)
    lrs = [row[0] for row in trajectory(sched, [1.0, 2.0, 3.0, 4.0])]
    assert lrs == pytest.approx([2e-5 / 0.95] * 4)


def test_paper_rejects_an_initial_lr_outside_the_bounds():
    with pytest.raises(ValueError, match=r"min_lr=0\.001.*silent no-ops"):
        make_scheduler((2e-5,), min_lr=1e-3, max_lr=1.0)
    with pytest.raises(ValueError, match="max_lr"):
        make_scheduler((2.0,), max_lr=1.0)


# ----------------------------------------------------------------------------- smoothing


@BOTH
def test_smoothing_uses_the_moving_average(variant):
    metrics = [4, 0, 3]
    assert run(metrics, variant, patience=0) == [2, 4, 2]
    # window 2: averages 4, 2, 1.5 -> all improvements
    assert run(metrics, variant, patience=0, smooth=True, window_size=2) == [2, 4, 8]
    # window 3: averages 4, 2, 7/3 -> the last is a worsening
    assert run(metrics, variant, patience=0, smooth=True, window_size=3) == [2, 4, 2]
    # window 1 is no smoothing
    assert run(metrics, variant, patience=0, smooth=True, window_size=1) == [2, 4, 2]


@BOTH
def test_smoothing_in_max_mode(variant):
    metrics = [-4, 0, -3]
    assert run(metrics, variant, patience=0, mode="max") == [2, 4, 2]
    # window 2: averages -4, -2, -1.5 -> all improvements; window 3: -4, -2, -7/3
    assert run(metrics, variant, patience=0, mode="max", smooth=True, window_size=2) == [2, 4, 8]
    assert run(metrics, variant, patience=0, mode="max", smooth=True, window_size=3) == [2, 4, 2]


def test_smoothing_survives_a_spike_paper():
    # A running sum would keep 1e20 + 1 + 1 - 1e20 = 0 once the spike leaves the window.
    sched = make_scheduler(smooth=True, window_size=3, **BASE)
    trajectory(sched, [1e20, 1, 1, 1])
    assert sched.state_dict()["window_sum"] == 3.0 and sched.best == 1.0
    # After three 0.5s the window [1, 1, 1] averages 1: a worsening, not a new best of 0.
    metrics = [0.5] * 3 + [1e20, 1, 1, 1]
    got = run(metrics, patience=0, smooth=True, window_size=3)
    assert got == [2, 1, 0.5, 0.25, 0.125, 1 / 16, 1 / 32]


def test_smoothing_transformers_keeps_the_running_sum():
    # Parity: the same cancellation as transformers' StreamingAverage (average 0, "improvement").
    metrics = [0.5] * 3 + [1e20, 1, 1, 1]
    got = run(metrics, "transformers", patience=0, smooth=True, window_size=3)
    assert got == [2, 1, 0.5, 0.25, 0.125, 1 / 16, 1 / 8]


@BOTH
def test_smoothing_recovers_from_an_overflowing_sum(variant):
    # 1e308 + 1e308 overflows: that average counts as a worsening, and once one 1e308 has left
    # the window the averages are finite again (transformers' running sum would stay inf).
    metrics = [1e308, 1e308, 1, 1, 0.5, 0.25]
    sched = make_scheduler(variant=variant, patience=0, smooth=True, window_size=2, **BASE)
    assert [row[0] for row in trajectory(sched, metrics)] == [2, 1, 2, 4, 8, 16]
    assert math.isfinite(sched.state_dict()["window_sum"])


def test_smoothing_window_contents():
    sched = make_scheduler(smooth=True, window_size=3, **BASE)
    trajectory(sched, [1, 2, 3, 4])
    assert sched.state_dict()["window"] == [2, 3, 4]
    assert sched.best == pytest.approx(1.0)  # averages were 1, 1.5, 2, 3


# ----------------------------------------------------------------------------- reset


@BOTH
def test_reset_to_initial_lr(variant):
    sched = make_scheduler(
        variant=variant, patience=0, **{**BASE, "min_lr": 0.25, "reset_start": 2}
    )
    assert [r[0] for r in trajectory(sched, [1.0] * 6)] == [2, 1, 0.5, 0.25, 1, 2]
    assert sched.num_resets == 1


def test_reset_start_counts_steps_at_the_floor_in_paper_variant():
    got = run([1.0] * 10, "paper", patience=2, min_lr=0.5, reset_start=3)
    assert got == [1, 1, 1, 0.5, 0.5, 1, 1, 1, 1, 0.5]


def test_paper_reset_never_fires_while_improving():
    # min_lr = initial lr: the LR starts at its floor. Improving calls are not counted, so the
    # 4th improvement raises the LR instead of a reset sending it back (it used to reset forever).
    sched = make_scheduler(factor=0.5, patience=3, min_lr=1.0, max_lr=64.0, reset_start=2)
    assert [r[0] for r in trajectory(sched, range(10, 0, -1))] == [1, 1, 1, 2, 2, 2, 2, 4, 4, 4]
    assert sched.num_resets == 0


def test_paper_reset_counts_only_non_improving_calls_at_the_floor():
    # patience 1, floor 0.5, reset after 2 non-improving calls at the floor. 3 lowers the LR to
    # the floor (count 1); 0.5 is a new best at the floor (not counted); 4 -> count 2 -> reset;
    # 5 is a new best after the reset.
    got = run([1, 2, 3, 0.5, 4, 5], patience=1, min_lr=0.5, reset_start=2)
    assert got == [1, 1, 0.5, 0.5, 1, 1]


def test_reset_start_counts_decrease_attempts_in_transformers_variant():
    got = run([1.0] * 10, "transformers", patience=2, min_lr=0.5, reset_start=3)
    assert got == [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1]


def test_transformers_reset_is_followed_by_a_cooldown():
    # transformers sets cooldown_counter after _reduce_lr, i.e. after a reset made inside it.
    kwargs = {"patience": 0, "min_lr": 0.25, "reset_start": 1, "cooldown": 1}
    assert run([1.0] * 8, "transformers", **kwargs) == [2, 1, 1, 0.5, 0.5, 1, 1, 2]
    assert run([1.0] * 7, "paper", **kwargs) == [2, 1, 1, 0.5, 0.5, 1, 2]


@BOTH
def test_reset_clears_best_counters_and_window(variant):
    sched = make_scheduler(
        variant=variant,
        patience=0,
        smooth=True,
        window_size=4,
        **{**BASE, "min_lr": 0.5, "reset_start": 1},
    )
    trajectory(sched, [1.0, 2.0, 3.0])  # up, down to the floor -> reset
    assert sched.num_resets == 1
    assert sched.best == math.inf
    assert sched.state_dict()["window"] == []
    assert (sched.num_good_epochs, sched.num_bad_epochs) == (0, 0)


@BOTH
def test_reset_start_none_never_resets(variant):
    got = run([1.0] * 30, variant, patience=0, min_lr=0.25, reset_start=None)
    assert got[-1] == 0.25 and min(got) == 0.25


@BOTH
def test_reset_in_max_mode(variant):
    # up, up, then a plateau: down to the floor 0.25 and a reset on the second call there.
    got = run([1, 2, 2, 2, 2, 2, 2], variant, patience=0, mode="max", min_lr=0.25, reset_start=2)
    assert got == [2, 4, 2, 1, 0.5, 0.25, 1]


def test_increase_restarts_the_transformers_countdown():
    kwargs = {"patience": 0, "min_lr": 0.5, "reset_start": 2}
    # 1 -> up 2; 2 -> down 1; 3 -> down .5 (attempt 1 at the floor); 0.1 -> up 1 (the countdown
    # restarts); 3 -> down .5 (attempt 1 again, not 2); 3 -> attempt 2 -> reset to 1; 3 -> up 2.
    got = run([1, 2, 3, 0.1, 3, 3, 3], "transformers", **kwargs)
    assert got == [2, 1, 0.5, 1, 0.5, 1, 2]


# ----------------------------------------------------------------------------- several groups


def test_groups_keep_their_ratio_with_relative_default_bounds():
    sched = make_scheduler((0.1, 0.01, 0.001), factor=0.7, patience=0)
    metrics = [1.0] + [1.0 + k for k in range(40)] + [1.0 / (k + 2) for k in range(40)]
    for row in trajectory(sched, metrics):
        assert row[0] / row[1] == pytest.approx(10.0, rel=1e-12)
        assert row[1] / row[2] == pytest.approx(10.0, rel=1e-12)
    # the floor and the ceiling were both reached, still with the same ratios
    assert sched.min_lrs[0] / sched.min_lrs[2] == pytest.approx(100.0)


@BOTH
def test_per_group_bounds(variant):
    sched = make_scheduler(
        (1.0, 1.0), variant=variant, factor=0.5, patience=0, min_lr=[0.5, 0.125], max_lr=[2, 8]
    )
    rows = trajectory(sched, [5, 4, 3, 4, 4, 4])
    assert rows == [[2, 2], [2, 4], [2, 8], [1, 4], [0.5, 2], [0.5, 1]]


def test_bounds_sequence_length_must_match_groups():
    with pytest.raises(ValueError, match="one per param group"):
        make_scheduler((1.0, 1.0), min_lr=[0.1])


def test_bounds_accept_1d_arrays_and_tensors():
    sched = make_scheduler(
        (1.0, 1.0), min_lr=np.array([0.5, 0.25]), max_lr=torch.tensor([2.0, 4.0]), **BASE_NO_BOUNDS
    )
    assert (sched.min_lrs, sched.max_lrs) == ([0.5, 0.25], [2.0, 4.0])
    assert make_scheduler((1.0,), min_lr=np.float64(0.5), **BASE_NO_BOUNDS).min_lrs == [0.5]
    with pytest.raises(ValueError, match="a number or a list/tuple of numbers"):
        make_scheduler((1.0, 1.0), min_lr=np.full((2, 1), 0.5))
    with pytest.raises(TypeError, match="a number or a list/tuple of numbers"):
        make_scheduler((1.0,), min_lr={0: 0.5})


# ----------------------------------------------------------------------------- non-finite metrics


@BOTH
def test_nonfinite_counts_as_worse_and_stays_out_of_window_and_best(variant):
    sched = make_scheduler(variant=variant, smooth=True, window_size=5, patience=0, **BASE)
    with pytest.warns(NonFiniteMetricWarning, match="non-improvement"):
        sched.step(1.0)
        sched.step(float("nan"))
    assert sched.get_last_lr() == [1.0]  # up, then down
    assert sched.state_dict()["window"] == [1.0]
    assert sched.best == 1.0
    sched.step(0.5)  # average (1 + 0.5) / 2 = 0.75 < 1: an improvement
    assert sched.get_last_lr() == [2.0]


@BOTH
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nonfinite_never_becomes_best(variant, bad):
    for mode in ("min", "max"):
        sched = make_scheduler(variant=variant, mode=mode, patience=0, **BASE)
        with pytest.warns(NonFiniteMetricWarning):
            sched.step(bad)
        assert sched.best == sched.mode_worse
        assert sched.get_last_lr() == [0.5]
        sched.step(1.0)  # a finite value is still an improvement afterwards
        assert sched.get_last_lr() == [1.0]


def test_nonfinite_skip_ignores_the_call():
    sched = make_scheduler(on_nonfinite="skip", patience=0, **BASE)
    sched.step(1.0)
    before = sched.state_dict()
    with pytest.warns(NonFiniteMetricWarning, match="ignored"):
        sched.step(float("nan"))
    assert sched.state_dict() == before


def test_nonfinite_raise():
    sched = make_scheduler(on_nonfinite="raise", **BASE)
    with pytest.raises(ValueError, match="non-finite"):
        sched.step(float("inf"))


# ----------------------------------------------------------------------------- state round trip


@BOTH
def test_state_dict_round_trip_continues_identically(variant):
    kwargs = {
        "variant": variant,
        "factor": 0.8,
        "patience": 1,
        "cooldown": 1,
        "warmup": 2,
        "smooth": True,
        "window_size": 3,
        "min_lr": [0.05, 0.01],
        "max_lr": [2.0, 1.0],
        "reset_start": 2,
    }
    gen = torch.Generator().manual_seed(0)
    metrics = (torch.randn(80, generator=gen).cumsum(0) * 0.3 + 5).tolist()

    full = trajectory(make_scheduler((0.5, 0.1), **kwargs), metrics)

    first = make_scheduler((0.5, 0.1), **kwargs)
    head = trajectory(first, metrics[:37])
    buffer = io.BytesIO()
    torch.save(
        {"sched": first.state_dict(), "opt": first.optimizer.state_dict()},
        buffer,
    )
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # what the HF Trainer does

    # Fresh objects, built the way a training script builds them, then restored. The scheduler's
    # state alone must restore the optimizer's LRs.
    resumed = make_scheduler((0.5, 0.1), **kwargs)
    resumed.load_state_dict(saved["sched"])
    assert [g["lr"] for g in resumed.optimizer.param_groups] == head[-1]
    tail = trajectory(resumed, metrics[37:])
    assert head + tail == full


def test_state_dict_is_plain_data():
    sched = make_scheduler(smooth=True, **BASE)
    trajectory(sched, [3, 2, 1])
    state = sched.state_dict()

    def plain(x):
        if isinstance(x, dict):
            return all(isinstance(k, str) and plain(v) for k, v in x.items())
        if isinstance(x, list):
            return all(plain(v) for v in x)
        return x is None or isinstance(x, bool | int | float | str)

    assert plain(state)
    state["window"].append(99.0)  # a copy, not the live window
    assert sched.state_dict()["window"] == [3.0, 2.0, 1.0]


def test_load_state_dict_restores_hyperparameters():
    saved = make_scheduler(factor=0.5, patience=3, verbose=True).state_dict()
    sched = make_scheduler(factor=0.9, patience=0)
    sched.load_state_dict(saved)
    assert (sched.factor, sched.patience, sched.verbose) == (0.5, 3, True)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"num_bad_epochs": -1}, "num_bad_epochs"),
        ({"factor": 2.0}, "factor"),
        ({"window": [1.0, float("nan")]}, "window"),
        ({"best": float("nan")}, "best"),
        ({"last_lr": [-1.0]}, "last_lr"),
        ({"threshold_mode": "rel", "threshold": 1.0}, "threshold"),
    ],
)
def test_invalid_state_leaves_the_scheduler_unchanged(change, match):
    sched = make_scheduler(smooth=True, window_size=3, patience=0, **BASE)
    trajectory(sched, [3, 2, 2.5])
    before, lrs = sched.state_dict(), sched.get_last_lr()
    other = make_scheduler(factor=0.8, min_lr=0.1, max_lr=2.0, patience=5).state_dict()
    with pytest.raises((ValueError, TypeError), match=match):
        sched.load_state_dict({**other, **change})
    assert sched.state_dict() == before
    assert [g["lr"] for g in sched.optimizer.param_groups] == lrs
    with pytest.raises(ValueError, match="missing"):
        sched.load_state_dict({k: v for k, v in other.items() if k != "best"})
    assert sched.state_dict() == before


def test_load_state_dict_checks_group_count():
    state = make_scheduler((1.0, 1.0), **BASE).state_dict()
    with pytest.raises(ValueError, match="param groups"):
        make_scheduler((1.0,), **BASE).load_state_dict(state)
    with pytest.raises(ValueError, match="format"):
        make_scheduler((1.0,), **BASE).load_state_dict({"format": 0})


# ----------------------------------------------------------------------------- API surface


def test_is_a_torch_lr_scheduler():
    sched = make_scheduler(**BASE)
    assert isinstance(sched, LRScheduler)
    assert isinstance(sched, ReduceLROnPlateau)  # what Lightning and HF Trainer dispatch on


def test_get_last_lr_and_counters():
    sched = make_scheduler((1.0, 0.5), **BASE)
    assert sched.get_last_lr() == [1.0, 0.5]
    out = sched.get_last_lr()
    out[0] = 123.0
    assert sched.get_last_lr() == [1.0, 0.5]
    sched.step(torch.tensor(3.0))  # 0-d tensors are accepted
    assert sched.last_epoch == 1
    assert "GreedyLR(variant='paper'" in repr(sched)


def test_epoch_argument_is_deprecated():
    sched = make_scheduler(**BASE)
    with pytest.warns(UserWarning, match="deprecated"):
        sched.step(1.0, epoch=7)
    assert sched.last_epoch == 7


def test_tensor_lr_is_updated_in_place():
    p = torch.nn.Parameter(torch.zeros(2))
    lr = torch.tensor(0.5, dtype=torch.float64)
    opt = torch.optim.SGD([p], lr=lr)
    sched = GreedyLR(opt, factor=0.5, patience=0)
    sched.step(1.0)
    assert opt.param_groups[0]["lr"] is lr and float(lr) == 1.0


def test_verbose_prints(capsys):
    sched = make_scheduler(verbose=True, patience=0, **{**BASE, "min_lr": 0.5, "reset_start": 1})
    trajectory(sched, [1.0, 2.0, 3.0])
    out = capsys.readouterr().out
    assert "raising lr of group 0" in out
    assert "lowering lr of group 0" in out
    assert "reset" in out


@pytest.mark.parametrize("bad", [None, "1.0", torch.ones(2), [1.0]])
def test_step_rejects_non_scalar_metrics(bad):
    with pytest.raises(TypeError, match="metric"):
        make_scheduler(**BASE).step(bad)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"factor": 0.0}, ValueError, r"factor must be in \(0\.0, 1\.0\)"),
        ({"factor": -0.5}, ValueError, "factor"),
        ({"factor": 1.0}, ValueError, "factor"),
        ({"factor": 1.5}, ValueError, "factor"),
        ({"factor": float("nan")}, ValueError, "factor"),
        ({"factor": True}, TypeError, "factor"),
        ({"factor": "0.5"}, TypeError, "factor"),
        ({"mode": "mean"}, ValueError, "mode must be one of 'min', 'max'"),
        ({"threshold_mode": "relative"}, ValueError, "threshold_mode"),
        ({"threshold": -1e-3}, ValueError, "threshold"),
        ({"patience": -1}, ValueError, "patience must be an integer >= 0"),
        ({"patience": 1.5}, TypeError, "patience"),
        ({"patience": True}, TypeError, "patience"),
        ({"cooldown": -1}, ValueError, "cooldown"),
        ({"warmup": 2.0}, TypeError, "warmup"),
        ({"min_lr": -0.1}, ValueError, "min_lr"),
        ({"max_lr": float("nan")}, ValueError, "max_lr"),
        ({"min_lr": 0.5, "max_lr": 0.25}, ValueError, "min_lr must not exceed max_lr"),
        ({"eps": -1.0}, ValueError, "eps"),
        ({"verbose": 1}, TypeError, "verbose"),
        ({"smooth": "yes"}, TypeError, "smooth"),
        ({"window_size": 0}, ValueError, "window_size"),
        ({"reset_start": 0}, ValueError, "reset_start"),
        ({"reset_start": -5}, ValueError, "reset_start"),
        ({"variant": "hf"}, ValueError, "variant must be one of 'paper', 'transformers'"),
        ({"on_nonfinite": "ignore"}, ValueError, "on_nonfinite"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        GreedyLR(make_optimizer((0.3,)), **kwargs)


def test_factor_is_validated_in_transformers_variant_too():
    with pytest.raises(ValueError, match="factor"):
        GreedyLR(make_optimizer(), variant="transformers", factor=0.0)


def test_optimizer_must_be_an_optimizer():
    with pytest.raises(TypeError, match="optimizer"):
        GreedyLR([torch.nn.Parameter(torch.zeros(1))])


def test_max_lr_may_be_infinite():
    sched = make_scheduler(factor=0.5, patience=0, max_lr=math.inf)
    trajectory(sched, range(100, 0, -1))
    assert sched.get_last_lr() == [2.0**100]


# ----------------------------------------------------------------------------- properties

metric_values = st.one_of(
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False),
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
)
config = st.fixed_dictionaries(
    {
        "variant": st.sampled_from(["paper", "transformers"]),
        "mode": st.sampled_from(["min", "max"]),
        "factor": st.floats(min_value=0.05, max_value=0.99),
        "patience": st.integers(0, 3),
        "threshold": st.sampled_from([0.0, 1e-6, 1e-2]),
        "threshold_mode": st.sampled_from(["rel", "abs"]),
        "cooldown": st.integers(0, 3),
        "warmup": st.integers(0, 3),
        "smooth": st.booleans(),
        "window_size": st.integers(1, 5),
        "reset_start": st.one_of(st.none(), st.integers(1, 4)),
        "on_nonfinite": st.sampled_from(["worse", "skip"]),
    }
)
fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(cfg=config, metrics=st.lists(metric_values, max_size=60))
def test_lr_always_within_bounds(cfg, metrics):
    sched = make_scheduler((0.3, 0.02), min_lr=[0.01, 0.001], max_lr=[1.0, 0.5], **cfg)
    for row in trajectory(sched, metrics):
        for lr, lo, hi in zip(row, sched.min_lrs, sched.max_lrs, strict=True):
            assert lo <= lr <= hi
    assert math.isfinite(sched.best) or sched.best == sched.mode_worse


@fast
@given(cfg=config, metrics=st.lists(metric_values, max_size=60))
def test_group_ratios_preserved_with_relative_bounds(cfg, metrics):
    cfg = {**cfg, "variant": "paper"}
    sched = make_scheduler((0.3, 0.003, 0.03), **cfg)
    for row in trajectory(sched, metrics):
        assert row[0] / row[1] == pytest.approx(100.0, rel=1e-9)
        assert row[2] / row[1] == pytest.approx(10.0, rel=1e-9)


@fast
@given(
    cfg=config,
    metrics=st.lists(st.floats(-10, 10, allow_nan=False), min_size=2, max_size=50),
    data=st.data(),
)
def test_resumed_run_matches_uninterrupted_run(cfg, metrics, data):
    split = data.draw(st.integers(1, len(metrics) - 1))
    kwargs = {**cfg, "min_lr": 0.05, "max_lr": 2.0}
    full = trajectory(make_scheduler((0.5, 0.25), **kwargs), metrics)
    first = make_scheduler((0.5, 0.25), **kwargs)
    head = trajectory(first, metrics[:split])
    second = make_scheduler((0.5, 0.25), **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        second.load_state_dict(first.state_dict())
    assert head + trajectory(second, metrics[split:]) == full
