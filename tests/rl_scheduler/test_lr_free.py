"""rl_scheduler.tasks.lr_free: the learning-rate-free peers and Schedule-Free's evaluation switch."""

import math

import pytest
import torch
from torch import nn

from rl_scheduler.tasks.lr_free import (
    LR_FREE,
    effective_lr,
    evaluation_mode,
    make_lr_free,
)


def _train(name, steps=20, **options):
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(4))
    lr = 0.05 if name.startswith("schedulefree") else 1.0
    opt = make_lr_free(name, [w], lr=lr, **options)
    for _ in range(steps):
        opt.zero_grad()
        (w.square().sum()).backward()
        opt.step()
    return w, opt


@pytest.mark.parametrize("name", LR_FREE)
def test_every_peer_descends_a_quadratic(name):
    w, opt = _train(name, steps=50)
    torch.manual_seed(0)
    start = torch.randn(4).square().sum()
    with evaluation_mode(opt):
        assert float(w.detach().square().sum()) < float(start)
    assert math.isfinite(effective_lr(opt)) and effective_lr(opt) > 0


def test_schedule_free_evaluates_its_average_and_restores_training_weights():
    w, opt = _train("schedulefree_sgd")
    y = w.detach().clone()
    with evaluation_mode(opt):
        x = w.detach().clone()
    assert not torch.allclose(x, y)  # the averaged weights differ from the training point
    assert torch.equal(w.detach(), y)  # and training resumes at y
    with pytest.raises(RuntimeError), evaluation_mode(opt):
        raise RuntimeError("boom")
    assert torch.equal(w.detach(), y)  # restored after an exception too
    opt.zero_grad()
    w.square().sum().backward()
    opt.step()  # still in train mode


def test_evaluation_mode_is_a_no_op_for_other_optimizers():
    w, opt = _train("prodigy")
    before = w.detach().clone()
    with evaluation_mode(opt):
        assert torch.equal(w.detach(), before)
    with evaluation_mode(None):
        pass


def test_prodigy_d_coef_scales_its_estimate():
    _, small = _train("prodigy", d_coef=0.1)
    _, large = _train("prodigy", d_coef=10.0)
    assert effective_lr(large) > effective_lr(small)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "adam"}, "name must be one of"),
        ({"name": "prodigy", "lr": 0.0}, "lr must be"),
        ({"name": "dadapt_sgd", "d_coef": 2.0}, "options of 'dadapt_sgd'"),
        ({"name": "prodigy", "d_coef": -1.0}, r"options\['d_coef'\] of 'prodigy'"),
        ({"name": "schedulefree_sgd", "warmup_steps": math.nan}, "warmup_steps"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, match):
    kwargs = {"lr": 1.0} | kwargs
    name = kwargs.pop("name")
    with pytest.raises(ValueError, match=match):
        make_lr_free(name, [nn.Parameter(torch.zeros(2))], **kwargs)


def test_schedule_free_refuses_batch_norm():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with pytest.raises(ValueError, match="batch normalisation"):
        make_lr_free("schedulefree_adamw", model.parameters(), lr=1e-3, model=model)
    make_lr_free("prodigy", model.parameters(), lr=1.0, model=model)  # no switch: fine


def test_options_are_checked_in_one_place_for_every_caller():
    from rl_scheduler.tasks.lr_free import check_options

    assert check_options("prodigy", None) == {}
    assert check_options("schedulefree_sgd", {"warmup_steps": 0}) == {"warmup_steps": 0}
    for name, options in (("sgd", {"d_coef": 1.0}), ("prodigy", {"d_coef": True})):
        with pytest.raises(ValueError, match="optimizer_options"):
            check_options(name, options, "optimizer_options")


def test_knob_setting_steers_prodigy_by_d_coef_and_the_others_by_lr():
    from rl_scheduler.tasks.lr_free import knob_setting

    assert knob_setting("prodigy", 0.3) == (1.0, (("d_coef", 0.3),))
    for name in ("dadapt_sgd", "dadapt_adam", "schedulefree_sgd", "schedulefree_adamw"):
        assert knob_setting(name, 0.3) == (0.3, ())
