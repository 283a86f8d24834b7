"""GreedyLR: param groups added during training, argument coercion, and the state-dict format.

As in ``test_greedylr_scheduler.py``: factor 0.5 and patience 0, so every expected learning rate is
an exact binary fraction, compared with ``==``.
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings

import numpy as np
import pytest
import torch
from _greedylr_helpers import make_optimizer, make_scheduler, trajectory

from greedylr import GreedyLR
from greedylr._rules import _HYPERPARAMETERS, _STATE

BASE = {"factor": 0.5, "patience": 0, "reset_start": None}
BOTH = pytest.mark.parametrize("variant", ["paper", "transformers"])


def _add_group(sched: GreedyLR, lr: float) -> None:
    sched.optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr})


def _snapshot(sched: GreedyLR) -> tuple:
    lrs = [float(g["lr"]) for g in sched.optimizer.param_groups]
    return copy.deepcopy({k: v for k, v in vars(sched).items() if k != "optimizer"}), lrs


# ----------------------------------------------------------------------------- declaration


def test_hyperparameters_are_declared_once():
    # The signature, the declaration and the state dict name the same hyperparameters.
    declared = {f.key for f in _HYPERPARAMETERS}
    signature = set(inspect.signature(GreedyLR).parameters)
    assert signature == declared | {"optimizer", "min_lr", "max_lr", "variant"}
    state = make_scheduler(**BASE).state_dict()
    assert set(state) == {"format", "variant"} | {f.key for f in _STATE}


# A state dict written by the previous implementation (before the min_lr/max_lr keys existed):
# transformers variant, factor 0.5, patience 0, smooth with window 2, min_lr=0.01, max_lr=[2, 1],
# two groups at 0.5 and 0.1, after the metrics 3, 2, 2.5, 4.
OLD_STATE = {
    "format": 1, "variant": "transformers", "mode": "min", "factor": 0.5, "patience": 0,
    "threshold": 1e-06, "threshold_mode": "abs", "cooldown": 0, "warmup": 0,
    "min_lrs": [0.01, 0.01], "max_lrs": [2.0, 1.0], "eps": 1e-08, "verbose": False,
    "smooth": True, "window_size": 2, "reset_start": 500, "on_nonfinite": "worse",
    "base_lrs": [0.5, 0.1], "best": 2.25, "num_good_epochs": 0, "num_bad_epochs": 0,
    "cooldown_counter": 0, "warmup_counter": 0, "floor_count": 0, "num_resets": 0,
    "last_epoch": 4, "window": [2.5, 4.0], "window_sum": 6.5, "last_lr": [1.0, 0.4],
}  # fmt: skip


def test_state_dict_of_the_previous_format_still_loads():
    kwargs = {"variant": "transformers", "factor": 0.5, "patience": 0, "smooth": True}
    kwargs |= {"window_size": 2, "min_lr": 0.01, "max_lr": [2.0, 1.0]}
    metrics = [3, 2, 2.5, 4, 1, 1, 0.5, 3]
    full = trajectory(make_scheduler((0.5, 0.1), **kwargs), metrics)
    resumed = make_scheduler((0.5, 0.1))  # paper variant, default bounds: all replaced
    resumed.load_state_dict(dict(OLD_STATE))
    assert resumed.variant == "transformers"
    assert full[3] == [float(g["lr"]) for g in resumed.optimizer.param_groups]
    assert trajectory(resumed, metrics[4:]) == full[4:]
    # The old format does not say how the bounds were given: treated as per-group lists.
    assert (resumed.min_lr_arg, resumed.max_lr_arg) == ([0.01, 0.01], [2.0, 1.0])


# ----------------------------------------------------------------------------- add_param_group


@BOTH
def test_added_param_group_follows_the_closed_form(variant):
    # Group 0 starts at 1, group 1 is added at 0.25 after two steps; both then move together.
    # Bounds: min_lr=1/64 for every group, max_lr=None (paper: 10x each group's initial lr,
    # transformers: 1.0).
    sched = make_scheduler((1.0,), variant=variant, min_lr=1 / 64, **BASE)
    head = trajectory(sched, [10, 9])
    _add_group(sched, 0.25)
    tail = trajectory(sched, [8, 7, 6, 5, 6, 6, 6, 6, 6, 6, 6, 6])
    if variant == "paper":  # max_lr: 10 for group 0, 2.5 for group 1
        assert head == [[2.0], [4.0]]
        expected0 = [8, 10, 10, 10, 5, 2.5, 1.25, 0.625, 0.3125, 0.15625, 0.078125, 0.0390625]
        expected1 = [0.5, 1, 2, 2.5, 1.25, 0.625, 0.3125, 0.15625, 0.078125, 0.0390625]
        expected1 += [0.01953125, 1 / 64]
        caps = [10.0, 2.5]
    else:  # transformers' absolute max_lr=1 is below 1.0 * 2: group 0 cannot rise
        assert head == [[1.0], [1.0]]
        expected0 = [1, 1, 1, 1, 0.5, 0.25, 0.125, 0.0625, 0.03125, 1 / 64, 1 / 64, 1 / 64]
        expected1 = [0.5, 1, 1, 1, 0.5, 0.25, 0.125, 0.0625, 0.03125, 1 / 64, 1 / 64, 1 / 64]
        caps = [1.0, 1.0]
    assert [row[0] for row in tail] == expected0
    assert [row[1] for row in tail] == expected1
    assert sched.base_lrs == [1.0, 0.25] and sched.max_lrs == caps
    assert sched.min_lrs == [1 / 64, 1 / 64]
    assert sched.get_last_lr() == tail[-1]


@BOTH
def test_added_param_group_state_round_trip(variant):
    sched = make_scheduler((1.0,), variant=variant, min_lr=1 / 64, max_lr=8.0, **BASE)
    trajectory(sched, [10, 9])
    _add_group(sched, 0.5)
    state = sched.state_dict()  # the new group is in the state before any step
    assert state["base_lrs"] == [1.0, 0.5] and state["last_lr"][1] == 0.5
    other = make_scheduler((1.0,), variant=variant, min_lr=1 / 64, max_lr=8.0, **BASE)
    _add_group(other, 0.5)
    other.load_state_dict(state)
    metrics = [8, 9, 7, 7, 7]
    assert trajectory(other, metrics) == trajectory(sched, metrics)


def test_added_param_group_with_per_group_bounds_raises_before_any_change():
    sched = make_scheduler((1.0,), min_lr=[0.25], max_lr=[4.0], smooth=True, **BASE)
    trajectory(sched, [10, 9])
    _add_group(sched, 0.5)
    before = _snapshot(sched)
    with pytest.raises(ValueError, match="min_lr was given per param group"):
        sched.step(1.0)
    assert _snapshot(sched) == before  # nothing half-applied: no LR, counter or window moved
    # Appending the new group's bounds by hand makes it schedulable.
    sched.min_lrs.append(0.125)
    sched.max_lrs.append(1.0)
    assert trajectory(sched, [1.0, 0.5, 0.25]) == [[4.0, 1.0], [4.0, 1.0], [4.0, 1.0]]
    assert trajectory(sched, [100.0] * 4) == [[2, 0.5], [1, 0.25], [0.5, 0.125], [0.25, 0.125]]


def test_added_param_group_outside_the_bounds():
    # Paper variant: an error, raised before anything changes; transformers variant: a warning.
    sched = make_scheduler((1.0,), min_lr=0.5, max_lr=2.0, **BASE)
    _add_group(sched, 0.1)
    before = _snapshot(sched)
    with pytest.raises(ValueError, match="param group 1 starts at lr=0.1"):
        sched.step(1.0)
    assert _snapshot(sched) == before
    sched = make_scheduler((1.0,), variant="transformers", min_lr=0.5, max_lr=2.0, **BASE)
    _add_group(sched, 0.1)
    with pytest.warns(UserWarning, match="param group 1 starts at lr=0.1"):
        sched.step(1.0)
    assert sched.get_last_lr() == [2.0, 0.2]


def test_added_param_group_with_a_bad_lr_is_rejected():
    sched = make_scheduler((1.0,), **BASE)
    sched.optimizer.param_groups.append({"params": [], "lr": float("nan")})
    with pytest.raises(ValueError, match="param group 1 has lr=nan"):
        sched.step(1.0)


# ----------------------------------------------------------------------------- coercion


@pytest.mark.parametrize("bad", [True, False, np.True_, torch.tensor(True), np.array([True])])
def test_step_rejects_bools_as_metrics(bad):
    sched = make_scheduler(**BASE)
    with pytest.raises(TypeError, match="metrics must be a real number"):
        sched.step(bad)
    assert sched.last_epoch == 0


@pytest.mark.parametrize(
    "good", [2, np.float32(2.0), np.int64(2), torch.tensor(2.0), torch.tensor([2.0]), np.array(2.0)]
)
def test_step_accepts_real_scalars_and_one_element_tensors(good):
    sched = make_scheduler(**BASE)
    sched.step(good)
    assert sched.best == 2.0


@pytest.mark.parametrize(("epoch", "exc"), [(-3, ValueError), (True, TypeError), (2.0, TypeError)])
def test_step_validates_epoch_before_any_change(epoch, exc):
    sched = make_scheduler(smooth=True, **BASE)
    trajectory(sched, [3.0])
    before = _snapshot(sched)
    with pytest.raises(exc, match="epoch must be an integer >= 0"):
        sched.step(1.0, epoch=epoch)
    assert _snapshot(sched) == before


def test_step_with_epoch_writes_a_loadable_state():
    sched = make_scheduler(**BASE)
    with pytest.warns(UserWarning, match="deprecated"):
        sched.step(1.0, epoch=np.int64(0))
    make_scheduler(**BASE).load_state_dict(sched.state_dict())


@pytest.mark.parametrize(
    ("last_lr", "variant"),
    [([0.01], "paper"), ([8.0], "paper"), ([0.01], "transformers"), ([1.5], "transformers")],
)
def test_load_rejects_a_last_lr_outside_the_bounds(last_lr, variant):
    sched = make_scheduler(variant=variant, min_lr=0.25, max_lr=4.0, **BASE)
    trajectory(sched, [3.0, 2.0])
    saved = make_scheduler(variant=variant, min_lr=0.25, max_lr=4.0, **BASE).state_dict()
    before = _snapshot(sched)
    with pytest.raises(ValueError, match=r"state_dict\['last_lr'\]\[0\]"):
        sched.load_state_dict({**saved, "last_lr": last_lr, "max_lrs": [1.0]})
    assert _snapshot(sched) == before


def test_load_accepts_a_transformers_lr_between_its_start_and_the_bounds():
    # Transformers variant: a group may start below min_lr (a warning); its LR then only rises.
    with pytest.warns(UserWarning, match="outside"):
        sched = make_scheduler((0.1,), variant="transformers", min_lr=0.5, max_lr=2.0, **BASE)
    trajectory(sched, [3.0, 2.0])
    assert sched.get_last_lr() == [0.4]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copy_ = make_scheduler((0.1,), variant="transformers", min_lr=0.1, max_lr=2.0, **BASE)
        copy_.load_state_dict(sched.state_dict())
    assert copy_.get_last_lr() == [0.4]
    with pytest.raises(ValueError, match="last_lr"):
        copy_.load_state_dict({**sched.state_dict(), "last_lr": [0.05]})


def test_paper_load_rejects_base_lrs_outside_the_bounds():
    state = make_scheduler(min_lr=0.25, max_lr=4.0, **BASE).state_dict()
    with pytest.raises(ValueError, match=r"state_dict\['base_lrs'\]\[0\]"):
        make_scheduler(**BASE).load_state_dict({**state, "base_lrs": [8.0]})


@pytest.mark.parametrize("fmt", [True, 1.0, "1"])
def test_load_rejects_a_format_that_only_compares_equal(fmt):
    state = make_scheduler(**BASE).state_dict()
    with pytest.raises(ValueError, match="format"):
        make_scheduler(**BASE).load_state_dict({**state, "format": fmt})


@pytest.mark.parametrize(
    ("key", "value", "exc"),
    [
        ("verbose", 1, TypeError),
        ("smooth", np.True_, TypeError),
        ("patience", True, TypeError),
        ("window_size", "3", TypeError),
        ("factor", "0.5", TypeError),
        ("min_lrs", [True], TypeError),
        ("max_lrs", [np.True_], TypeError),
        ("min_lr", "0.1", TypeError),
        ("best", True, TypeError),
        ("window", "12", TypeError),
    ],
)
def test_load_applies_the_one_coercion_rule(key, value, exc):
    sched = make_scheduler(**BASE)
    state = sched.state_dict()
    before = _snapshot(sched)
    with pytest.raises(exc, match=key):
        sched.load_state_dict({**state, key: value})
    assert _snapshot(sched) == before


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_lr": True}, "min_lr"),
        ({"max_lr": [np.True_]}, r"max_lr\[0\]"),
        ({"min_lr": "0.1"}, "min_lr"),
        ({"eps": np.True_}, "eps"),
        ({"reset_start": True}, "reset_start"),
        ({"window_size": np.int64(3), "patience": np.bool_(True)}, "patience"),
    ],
)
def test_constructor_applies_the_one_coercion_rule(kwargs, match):
    with pytest.raises(TypeError, match=match):
        GreedyLR(make_optimizer(), **kwargs)


def test_max_lr_inf_round_trips():
    sched = make_scheduler(max_lr=math.inf, **BASE)
    make_scheduler(**BASE).load_state_dict(sched.state_dict())
