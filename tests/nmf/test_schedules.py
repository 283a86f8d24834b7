import math

import numpy as np
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


def _every_schedule():
    for name in S.SCHEDULES:
        sched = S.make_schedule(
            name, **({"fraction": 0.5} if name == "follow_bound" else {"lr": 0.1})
        )
        if name == "follow_bound":
            sched.observe(type("Stats", (), {"bound": 0.02})())
        yield name, sched


@pytest.mark.parametrize("step", [-1, -100, 1.5, 2.0, True, np.True_, "1", None])
@pytest.mark.parametrize(("name", "sched"), list(_every_schedule()))
def test_every_schedule_rejects_steps_that_are_not_integers_ge_0(name, sched, step):
    # InverseTime(0.1, decay=1)(-1) once divided by zero; the others answered negative steps.
    with pytest.raises(ValueError, match="step must be an integer >= 0"):
        sched(step)


@pytest.mark.parametrize(("name", "sched"), list(_every_schedule()))
def test_numpy_integer_steps_are_steps(name, sched):
    assert sched(np.int64(3)) == sched(3) and sched(np.uint8(0)) == sched(0)


@pytest.mark.parametrize("value", ["0.1", np.True_, 0.1 + 0j, np.complex128(0.1), None])
@pytest.mark.parametrize(
    ("name", "param"),
    [
        ("constant", "lr"),
        ("step", "factor"),
        ("exponential", "gamma"),
        ("inverse_time", "decay"),
        ("cosine", "min_lr"),
        ("follow_bound", "fraction"),
    ],
)
def test_parameters_that_are_not_real_numbers_are_named(name, param, value):
    params = {} if name == "follow_bound" else {"lr": 0.5}
    with pytest.raises(ValueError, match=f"{param} must be a finite real number"):
        S.make_schedule(name, **{**params, param: value})
