"""Tests for experiments.common: progress lines, plotting helpers, records, controllers."""

import io
import math

import numpy as np
import pytest
import torch

from experiments.common import progress as progress_module
from experiments.common.controllers import ChunkSchedule, metric_schedule, torch_schedule
from experiments.common.plotting import mean_curve, moving_average
from experiments.common.progress import ProgressLine
from experiments.common.records import require_ok, short


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(progress_module.time, "perf_counter", c)
    return c


def test_progress_line_is_silent_for_short_work(clock):
    out = io.StringIO()
    line = ProgressLine("PPO seed 0", every_s=30, stream=out)
    clock.now += 5
    line(50, 100)
    clock.now += 5
    line(100, 100)
    assert out.getvalue() == ""


def test_progress_line_reports_rate_and_eta_when_due(clock):
    out = io.StringIO()
    line = ProgressLine("PPO seed 0", every_s=30, stream=out)
    clock.now += 40
    line(400, 1000)  # 10 steps/s, 600 left -> 60 s
    clock.now += 10
    line(500, 1000)  # not due: 10 s since the last line
    clock.now += 60
    line(1000, 1000)
    lines = out.getvalue().splitlines()
    assert lines == [
        "PPO seed 0: 400/1,000 steps (40%), 10 steps/s, ETA 1m00s",
        "PPO seed 0: 1,000/1,000 steps (100%), 9.09 steps/s, done in 1m50s",
    ]


def test_progress_line_validates_every_s():
    with pytest.raises(ValueError, match="every_s must be > 0"):
        ProgressLine("x", every_s=0)


def test_moving_average_and_mean_curve():
    assert moving_average([1, 2, 3, 4], 2).tolist() == [1.5, 2.5, 3.5]
    assert mean_curve([[1.0, 2.0, 3.0], [3.0, 4.0]]).tolist() == [2.0, 3.0]


def test_records_helpers():
    assert short(math.pi) == 3.14159 and short(math.inf) == math.inf
    require_ok([{"status": "ok"}], "stage")
    bad = {"status": "error", "spec_id": "abc", "error": {"type": "ValueError", "message": "no"}}
    with pytest.raises(RuntimeError, match="1 tuning run\\(s\\) failed, e.g. abc: ValueError: no"):
        require_ok([{"status": "ok"}, bad], "tuning")


def _one_param_sgd(lr=1.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="name must be one of"):
        torch_schedule("triangle", _one_param_sgd(), 10)
    with pytest.raises(ValueError, match="name must be one of"):
        metric_schedule("cosine", _one_param_sgd(), plateau={}, greedy={})


def test_plateau_on_a_moving_average_and_its_floor():
    opt = _one_param_sgd(1.0)
    step = metric_schedule(
        "plateau", opt, plateau={"factor": 0.5, "patience": 0}, greedy={}, window=2
    )
    for loss in (1.0, 1.0, 1.0):  # averages 1, 1, 1: no improvement after the first
        step(loss)
    assert opt.param_groups[0]["lr"] == 0.25
    for _ in range(20):
        step(1.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)  # the floor: 1e-3 x the start


def test_chunk_schedule_closed_forms():
    make = lambda name: ChunkSchedule(  # noqa: E731
        name, 0.2, 4, 5, step_milestones=(0.5,), plateau={}, greedy={}
    )
    assert [make("step")(k, None) for k in range(4)] == pytest.approx([0.2, 0.2, 0.02, 0.02])
    expected = [0.2 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert [make("cosine")(k, None) for k in range(4)] == expected
    assert np.all(np.asarray([make("constant")(k, None) for k in range(4)]) == 0.2)
