"""``GreedyLR(variant="transformers")`` against the real ``transformers.GreedyLR``.

Both schedulers get identical optimizers and identical metric sequences (plateaus, noise, trends,
resets, several param groups, smoothing, holds, both modes and threshold modes); the learning
rates must agree exactly after every step, and so must the internal counters.
"""

from __future__ import annotations

import inspect
import math
import warnings

import pytest
import torch
from _greedylr_helpers import make_optimizer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greedylr import GreedyLR

transformers = pytest.importorskip("transformers")
HFGreedyLR = getattr(transformers, "GreedyLR", None)
if HFGreedyLR is None:  # pragma: no cover - transformers older than the GreedyLR port
    pytest.skip("this transformers version has no GreedyLR", allow_module_level=True)


def _pair(lrs, *args, **kwargs):
    ours_opt, ref_opt = make_optimizer(lrs), make_optimizer(lrs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bounds that exclude the initial lr only warn here
        ours = GreedyLR(ours_opt, *args, variant="transformers", **kwargs)
    ref = HFGreedyLR(ref_opt, *args, **kwargs)
    return ours, ref


def _assert_same(ours, ref, step):
    ours_lrs = [g["lr"] for g in ours.optimizer.param_groups]
    ref_lrs = [g["lr"] for g in ref.optimizer.param_groups]
    assert ours_lrs == ref_lrs, f"learning rates differ at step {step}"
    assert ours.get_last_lr() == ref.get_last_lr()
    assert ours.best == ref.best or (math.isnan(ours.best) and math.isnan(ref.best))
    assert (ours.num_good_epochs, ours.num_bad_epochs) == (ref.num_good_epochs, ref.num_bad_epochs)
    assert (ours.cooldown_counter, ours.warmup_counter) == (
        ref.cooldown_counter,
        ref.warmup_counter,
    )
    if ours.reset_start is not None:
        assert ref.reset_start == ours.reset_start - ours.floor_count


def _drive(ours, ref, metrics):
    for t, m in enumerate(metrics):
        ours.step(m)
        ref.step(m)
        _assert_same(ours, ref, t)


def _scenario(n: int = 400, seed: int = 0) -> list[float]:
    """Improvement runs, plateaus, noise and upward drifts, as in a real loss curve."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, generator=gen).tolist()
    out, x = [], 2.0
    for t in range(n):
        phase = (t // 40) % 4
        if phase == 0:
            x *= 0.97  # steady improvement
        elif phase == 1:
            pass  # exact plateau
        elif phase == 2:
            x += 0.02 * noise[t]  # noise around a level
        else:
            x *= 1.01  # slow divergence
        out.append(x)
    return out


def test_defaults_match_transformers():
    sig = inspect.signature(HFGreedyLR.__init__).parameters
    ours, _ = _pair((0.01,))
    resolved = {
        "mode": ours.mode,
        "factor": ours.factor,
        "patience": ours.patience,
        "threshold": ours.threshold,
        "threshold_mode": ours.threshold_mode,
        "cooldown": ours.cooldown,
        "warmup": ours.warmup,
        "min_lr": ours.min_lrs[0],
        "max_lr": ours.max_lrs[0],
        "eps": ours.eps,
        "verbose": ours.verbose,
        "smooth": ours.smooth,
        "window_size": ours.window_size,
        "reset_start": ours.reset_start,
    }
    assert resolved == {name: sig[name].default for name in resolved}


def test_default_arguments_same_trajectory():
    ours, ref = _pair((0.01, 0.003))
    _drive(ours, ref, _scenario(600))


def test_positional_arguments_mean_the_same():
    args = ("max", 0.8, 2, 1e-3, "rel", 1, 2, 0.001, 0.5, 1e-8, False, True, 7, 3)
    ours, ref = _pair((0.1, 0.05), *args)
    _drive(ours, ref, [-m for m in _scenario(300, seed=1)])


def test_resets_several_groups_smoothing_and_holds():
    ours, ref = _pair(
        (0.1, 0.05, 0.02),
        factor=0.5,
        patience=1,
        cooldown=2,
        warmup=1,
        min_lr=[0.02, 0.01, 0.004],
        max_lr=[0.4, 0.2, 0.1],
        smooth=True,
        window_size=4,
        reset_start=3,
    )
    _drive(ours, ref, _scenario(500, seed=2))
    assert ours.num_resets >= 2  # the scenario does exercise the reset rule


def test_silent_noop_pitfall_is_reproduced():
    # Initial LR below min_lr: transformers never decreases it. Parity keeps that behaviour.
    ours, ref = _pair((2e-5,), patience=0)
    _drive(ours, ref, _scenario(200, seed=3))


hyper = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["min", "max"]),
        "factor": st.sampled_from([0.1, 0.5, 0.9, 0.95, 0.999]),
        "patience": st.integers(0, 5),
        "threshold": st.sampled_from([0.0, 1e-6, 1e-3, 0.05]),
        "threshold_mode": st.sampled_from(["rel", "abs"]),
        "cooldown": st.integers(0, 4),
        "warmup": st.integers(0, 4),
        "min_lr": st.sampled_from([1e-4, 0.01, 0.04]),
        "max_lr": st.sampled_from([0.2, 1.0]),
        "eps": st.sampled_from([0.0, 1e-8, 1e-3]),
        "smooth": st.booleans(),
        "window_size": st.integers(1, 8),
        "reset_start": st.integers(1, 6),
    }
)
step_kind = st.sampled_from(["down", "up", "flat", "noise", "jump"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cfg=hyper,
    lrs=st.lists(st.sampled_from([0.05, 0.1, 0.15]), min_size=1, max_size=3),
    kinds=st.lists(step_kind, min_size=1, max_size=120),
    seed=st.integers(0, 2**16),
)
def test_random_configs_and_metric_sequences(cfg, lrs, kinds, seed):
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(len(kinds), generator=gen).tolist()
    metrics, x = [], 1.0
    for kind, z in zip(kinds, noise, strict=True):
        if kind == "down":
            x *= 0.9
        elif kind == "up":
            x *= 1.1
        elif kind == "noise":
            x += 0.05 * z
        elif kind == "jump":
            x += 10 * z
        metrics.append(x)
    ours, ref = _pair(tuple(lrs), **cfg)
    _drive(ours, ref, metrics)
