"""TorchTask with the learning-rate-free peers (Schedule-Free, Prodigy, D-Adaptation)."""

import contextlib
import math

import pytest
import torch
from torch import nn

from rl_scheduler.tasks.lr_free import LR_FREE
from rl_scheduler.tasks.torch_tasks import (
    TextTask,
    VisionTask,
    text_instance_set,
    vision_instance_set,
)
from rl_scheduler.tasks.workloads import mean_cross_entropy

SMALL = {"batch_size": 16, "eval_size": 32, "val_size": 32, "device": "cpu"}


def _vision(optimizer, **kwargs):
    return VisionTask(vision_instance_set("train", 1), optimizer=optimizer, **(SMALL | kwargs))


def _weights(model):
    return [p.detach().clone() for p in model.parameters()]


def _same(a, b):
    """Equal weights up to the rounding of Schedule-Free's interpolation back and forth."""
    return len(a) == len(b) and all(
        torch.allclose(x, y, rtol=0, atol=1e-6) for x, y in zip(a, b, strict=True)
    )


def _losses_at_current_weights(task):
    d = task.data
    task.model.eval()
    with torch.no_grad():
        val, _ = mean_cross_entropy(task.model, d.x_val, d.y_val, contextlib.nullcontext())
    task.model.train()
    return val


def test_schedule_free_is_evaluated_at_its_averaged_weights_and_trains_at_its_own():
    task = _vision("schedulefree_sgd", initial_lr=0.05, optimizer_options={"warmup_steps": 2})
    task.reset(instance=0)
    for _ in range(3):
        stats = task.advance(0.05, 4)
    training_weights = _weights(task.model)
    at_training_point = _losses_at_current_weights(task)
    task.optim.eval()  # the averaged sequence x, as schedulefree documents it
    at_average = _losses_at_current_weights(task)
    task.optim.train()
    assert stats.val_loss == pytest.approx(at_average, rel=1e-6)
    assert abs(at_average - at_training_point) > 1e-6  # the switch matters
    # the evaluation put the training weights back
    assert _same(training_weights, _weights(task.model))
    task._evaluate()
    assert _same(training_weights, _weights(task.model))
    test_loss, _ = task.evaluate_test()
    d = task.data
    task.optim.eval()
    task.model.eval()
    with torch.no_grad():
        manual, _ = mean_cross_entropy(task.model, d.x_test, d.y_test, contextlib.nullcontext())
    task.optim.train()
    assert test_loss == pytest.approx(manual, rel=1e-6)
    assert _same(training_weights, _weights(task.model))


@pytest.mark.parametrize("name", LR_FREE)
def test_every_peer_trains_a_few_chunks(name):
    options = {"prodigy": {"d_coef": 0.5}, "schedulefree_adamw": {"warmup_steps": 3}}
    vision = _vision(name, optimizer_options=options.get(name))
    lr = vision.initial_lr  # the defaults: 1 for Prodigy / D-Adaptation, SGD's / Adam's otherwise
    assert lr == {"schedulefree_sgd": 0.05, "schedulefree_adamw": 1e-3}.get(name, 1.0)
    first = vision.reset(instance=0)
    for _ in range(3):
        stats = vision.advance(lr, 3)
    assert not stats.diverged and math.isfinite(stats.val_loss) and stats.steps_done == 9
    assert stats.loss < first.loss  # it learns something in nine steps
    package = type(vision.optim).__module__.split(".")[0]
    assert package in ("schedulefree", "prodigyopt", "dadaptation")
    text = TextTask(text_instance_set("train", 1), optimizer=name, seq_len=8, **SMALL)
    text.reset(instance=0)
    assert math.isfinite(text.advance(text.initial_lr, 2).val_loss)


def test_prodigy_is_steered_by_d_coef():
    estimates = {}
    for d_coef in (0.01, 1.0):
        task = _vision("prodigy", optimizer_options={"d_coef": d_coef})
        task.reset(instance=0)
        task.advance(1.0, 6)
        estimates[d_coef] = task.optim.param_groups[0]["d"]
        assert task.optim.param_groups[0]["lr"] == 1.0
    assert estimates[0.01] < estimates[1.0]


@pytest.mark.parametrize(
    ("optimizer", "options", "match"),
    [
        ("sgd", {"warmup_steps": 5}, "optimizer_options"),
        ("prodigy", {"warmup_steps": 5}, "optimizer_options"),
        ("schedulefree_sgd", {"warmup_steps": -1}, "optimizer_options"),
        ("prodigy", {"d_coef": 0}, "optimizer_options"),
        ("prodigy", {"d_coef": math.nan}, "optimizer_options"),
        ("prodigy", [("d_coef", 1.0)], "optimizer_options"),
        ("lion", None, "optimizer"),
    ],
)
def test_bad_optimizer_settings_are_refused(optimizer, options, match):
    with pytest.raises(ValueError, match=match):
        _vision(optimizer, optimizer_options=options)


class _NormedVision(VisionTask):
    def _build_model(self, instance, data):
        return nn.Sequential(super()._build_model(instance, data), nn.BatchNorm1d(10))


def test_schedule_free_with_batch_norm_is_refused():
    task = _NormedVision(vision_instance_set("train", 1), optimizer="schedulefree_sgd", **SMALL)
    with pytest.raises(ValueError, match="batch normalisation"):
        task.reset(instance=0)
    fine = _NormedVision(vision_instance_set("train", 1), optimizer="dadapt_sgd", **SMALL)
    assert math.isfinite(fine.reset(instance=0).val_loss)
