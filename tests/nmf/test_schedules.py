import math

import pytest

from nmf import schedules as S


def test_closed_forms():
    assert [S.Constant(0.1)(t) for t in (0, 5)] == [0.1, 0.1]
    assert [S.StepDecay(1.0, 0.5, 3)(t) for t in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    assert S.Exponential(2.0, 0.9)(3) == pytest.approx(2.0 * 0.9**3)
    assert S.InverseTime(1.0, 0.5)(4) == pytest.approx(1 / 3)
    cos = S.Cosine(1.0, total_steps=10, min_lr=0.1)
    assert (
        cos(0) == pytest.approx(1.0)
        and cos(5) == pytest.approx(0.55)
        and cos(10) == pytest.approx(0.1)
    )
    assert cos(50) == pytest.approx(0.1)


def test_follow_bound_reads_the_observed_bound():
    class Stats:
        bound = 0.02

    sched = S.FollowBound(0.5)
    with pytest.raises(RuntimeError, match="compute_bound"):
        sched(0)
    sched.observe(Stats())
    assert sched(0) == 0.01


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("constant", {"lr": 0.0}, "lr"),
        ("constant", {"lr": math.nan}, "lr"),
        ("step", {"lr": 1.0, "factor": 1.5}, "factor"),
        ("step", {"lr": 1.0, "every": 0}, "every"),
        ("exponential", {"lr": 1.0, "gamma": 0.0}, "gamma"),
        ("inverse_time", {"lr": 1.0, "decay": -1.0}, "decay"),
        ("cosine", {"lr": 1.0, "min_lr": 2.0}, "min_lr"),
        ("follow_bound", {"fraction": 0.0}, "fraction"),
        ("follow_bound", {"fraction": math.inf}, "fraction"),
        ("follow_bound", {"fraction": True}, "fraction"),
        ("step", {"lr": 1.0, "factor": True}, "factor"),
        ("warmup", {}, "schedule name"),
    ],
)
def test_invalid_parameters_are_named(name, params, match):
    with pytest.raises(ValueError, match=match):
        S.make_schedule(name, **params)


def test_make_schedule_builds_each_kind():
    for name in S.SCHEDULES:
        params = {"fraction": 0.5} if name == "follow_bound" else {"lr": 0.1}
        assert callable(S.make_schedule(name, **params))
