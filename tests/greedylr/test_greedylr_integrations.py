"""GreedyLR in the three training set-ups users have: a plain loop, Lightning, the HF Trainer."""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from _greedylr_helpers import make_optimizer, trajectory
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from greedylr import GreedyLR


def _regression_data(seed: int = 0, n: int = 64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    y = x @ torch.randn(4, generator=gen) + 0.1 * torch.randn(n, generator=gen)
    return x, y


# ----------------------------------------------------------------------------- plain torch loop


def test_plain_torch_loop():
    torch.manual_seed(0)
    x, y = _regression_data()
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    sched = GreedyLR(opt, factor=0.8, patience=1)
    val_losses = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "scheduler.step() before optimizer.step()" warnings
        for _ in range(30):
            for i in range(0, 64, 16):
                opt.zero_grad()
                loss = ((model(x[i : i + 16]).squeeze(-1) - y[i : i + 16]) ** 2).mean()
                loss.backward()
                opt.step()
            with torch.no_grad():
                val = ((model(x).squeeze(-1) - y) ** 2).mean()
            sched.step(val)  # a 0-d tensor is fine
            val_losses.append(float(val))
    assert sched.get_last_lr()[0] > 0.01  # improving -> the LR was raised
    assert val_losses[-1] < 0.1 * val_losses[0]


# ----------------------------------------------------------------------------- Lightning


def _lightning_scheduler_config(config: dict) -> dict:
    """How Lightning (2.x) reads an ``lr_scheduler`` dict: ``reduce_on_plateau`` defaults to
    ``isinstance(scheduler, ReduceLROnPlateau)`` and such schedulers need a ``monitor``; they are
    then stepped with ``scheduler.step(trainer.callback_metrics[monitor])``, others with
    ``scheduler.step()``. (See ``_configure_schedulers_automatic_opt`` in
    ``lightning/pytorch/core/optimizer.py``.)"""
    out = {"interval": "epoch", "frequency": 1, **config}
    out["reduce_on_plateau"] = config.get(
        "reduce_on_plateau", isinstance(config["scheduler"], ReduceLROnPlateau)
    )
    if out["reduce_on_plateau"] and out.get("monitor") is None:
        raise ValueError("a ReduceLROnPlateau-type scheduler needs a monitor")
    return out


def test_lightning_monitor_convention():
    opt = make_optimizer((0.1,))
    sched = GreedyLR(opt, factor=0.5, patience=0)
    # What a LightningModule.configure_optimizers returns (see docs/greedylr_usage.md):
    returned = {
        "optimizer": opt,
        "lr_scheduler": {"scheduler": sched, "monitor": "val_loss", "interval": "epoch"},
    }
    config = _lightning_scheduler_config(returned["lr_scheduler"])
    assert config["reduce_on_plateau"] is True  # no extra key needed: GreedyLR is detected

    metrics = [1.0, 0.8, 0.9, 0.5, 0.6, 0.7]
    seen = []
    for m in metrics:  # the fake trainer: end of each epoch
        callback_metrics = {"val_loss": torch.tensor(m), "train_loss": torch.tensor(99.0)}
        if config["reduce_on_plateau"]:
            config["scheduler"].step(callback_metrics[config["monitor"]])
        else:  # pragma: no cover - not taken for GreedyLR
            config["scheduler"].step()
        seen.append(opt.param_groups[0]["lr"])
    expected = trajectory(GreedyLR(make_optimizer((0.1,)), factor=0.5, patience=0), metrics)
    assert seen == [row[0] for row in expected]

    with pytest.raises(ValueError, match="monitor"):
        _lightning_scheduler_config({"scheduler": sched})


# ----------------------------------------------------------------------------- Hugging Face


@pytest.fixture
def hf():
    transformers = pytest.importorskip("transformers")
    from greedylr.hf import GreedyLRCallback, HeldLR

    return transformers, GreedyLRCallback, HeldLR


def _args(transformers, tmp_path, **kwargs):
    base = {
        "output_dir": str(tmp_path),
        "report_to": "none",
        "use_cpu": True,
        "disable_tqdm": True,
        "save_strategy": "no",
        "eval_strategy": "no",
    }
    return transformers.TrainingArguments(**{**base, **kwargs})


def test_callback_steps_on_logged_metric(hf, tmp_path):
    transformers, GreedyLRCallback, _ = hf
    opt = make_optimizer((0.1,))
    sched = GreedyLR(opt, factor=0.5, patience=0)
    cb = GreedyLRCallback(sched, metric="loss")
    args = _args(transformers, tmp_path)
    state, control = transformers.TrainerState(), transformers.TrainerControl()
    cb.on_train_begin(args, state, control, lr_scheduler=cb.trainer_scheduler, optimizer=opt)
    losses = [1.0, 0.9, 0.95, 0.5]
    seen = []
    for loss in losses:
        cb.on_log(args, state, control, logs={"loss": loss, "learning_rate": 0.1, "epoch": 0.1})
        cb.on_log(args, state, control, logs={"eval_loss": 123.0})  # other keys are ignored
        cb.trainer_scheduler.step()  # what the Trainer does after every optimizer step
        seen.append(opt.param_groups[0]["lr"])
    expected = trajectory(GreedyLR(make_optimizer((0.1,)), factor=0.5, patience=0), losses)
    assert seen == [row[0] for row in expected]
    assert cb.num_steps == 4
    assert cb.trainer_scheduler.get_last_lr() == sched.get_last_lr()


def test_callback_refuses_competing_schedulers(hf, tmp_path):
    transformers, GreedyLRCallback, _ = hf
    opt = make_optimizer((0.1,))
    sched = GreedyLR(opt)
    cb = GreedyLRCallback(sched)
    state, control = transformers.TrainerState(), transformers.TrainerControl()
    no_eval = _args(transformers, tmp_path)
    with_eval = _args(transformers, tmp_path, eval_strategy="steps", eval_steps=5)
    with pytest.raises(ValueError, match="lr_scheduler_type"):
        cb.on_train_begin(no_eval, state, control, lr_scheduler=None)
    with pytest.raises(ValueError, match="LambdaLR"):
        cb.on_train_begin(
            no_eval,
            state,
            control,
            lr_scheduler=torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1),
        )
    with pytest.raises(ValueError, match="after every evaluation"):
        cb.on_train_begin(with_eval, state, control, lr_scheduler=sched)
    cb.on_train_begin(no_eval, state, control, lr_scheduler=sched)  # nothing else steps it
    cb.on_train_begin(with_eval, state, control, lr_scheduler=cb.trainer_scheduler)
    with pytest.raises(TypeError):
        GreedyLRCallback(opt)
    with pytest.raises(ValueError, match="metric"):
        GreedyLRCallback(sched, metric="")


def test_callback_checks_the_trainers_optimizer(hf, tmp_path):
    transformers, GreedyLRCallback, _ = hf
    opt = make_optimizer((0.1,))
    cb = GreedyLRCallback(GreedyLR(opt))
    args = _args(transformers, tmp_path)
    state, control = transformers.TrainerState(), transformers.TrainerControl()
    held = cb.trainer_scheduler
    with pytest.raises(ValueError, match="not the one this GreedyLR schedules"):
        cb.on_train_begin(args, state, control, lr_scheduler=held, optimizer=make_optimizer((0.1,)))

    class Wrapped:  # like accelerate's AcceleratedOptimizer: the wrapped optimizer's groups
        param_groups = opt.param_groups

    cb.on_train_begin(args, state, control, lr_scheduler=held, optimizer=Wrapped())
    cb.on_train_begin(args, state, control, lr_scheduler=held, optimizer=opt)


def test_held_lr_facade(hf):
    _, _, HeldLR = hf
    opt = make_optimizer((0.1, 0.2))
    sched = GreedyLR(opt, factor=0.5, patience=0, smooth=True)
    held = HeldLR(sched)
    assert isinstance(held, torch.optim.lr_scheduler.LRScheduler)
    trajectory(sched, [1.0, 0.5])
    before = [g["lr"] for g in opt.param_groups]
    for _ in range(5):
        held.step()
    assert [g["lr"] for g in opt.param_groups] == before == held.get_last_lr()

    buffer = io.BytesIO()
    torch.save(held.state_dict(), buffer)  # the Trainer's scheduler.pt
    buffer.seek(0)
    fresh = HeldLR(GreedyLR(make_optimizer((0.1, 0.2)), factor=0.5, patience=0, smooth=True))
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert [g["lr"] for g in fresh.optimizer.param_groups] == before
    assert fresh.scheduler.state_dict() == sched.state_dict()
    with pytest.raises(TypeError):
        HeldLR(torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1))


def test_lazy_import_of_the_adapter(hf):
    import greedylr

    assert greedylr.GreedyLRCallback is hf[1]
    with pytest.raises(AttributeError):
        greedylr.DoesNotExist  # noqa: B018


# ----------------------------------------------------------------------------- real HF Trainer


class _TinyRegressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 1)

    def forward(self, x, labels=None):
        out = self.lin(x).squeeze(-1)
        return {"loss": ((out - labels) ** 2).mean(), "logits": out}


def _train(transformers, tmp_path, make_scheduler, callbacks=(), resume_from=None, **arg_overrides):
    """Train the tiny model for 24 steps; return per-step LRs, eval losses and train-loss logs."""

    class Recorder(transformers.TrainerCallback):
        def __init__(self):
            self.lrs, self.evals, self.losses = [], [], []

        def on_step_begin(self, args, state, control, optimizer=None, **kw):
            self.lrs.append(optimizer.param_groups[0]["lr"])

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            self.evals.append(metrics["eval_loss"])

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.losses.append(logs["loss"])

    x, y = _regression_data()
    data = [{"x": x[i], "labels": y[i]} for i in range(len(y))]
    torch.manual_seed(0)
    model = _TinyRegressor()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    scheduler, extra = make_scheduler(opt)
    recorder = Recorder()
    settings = {
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 64,
        "max_steps": 24,
        "logging_steps": 3,
        "seed": 0,
        "data_seed": 0,
        **arg_overrides,
    }
    trainer = transformers.Trainer(
        model=model,
        args=_args(transformers, tmp_path, **settings),
        train_dataset=data,
        eval_dataset=data,
        optimizers=(opt, scheduler),
        callbacks=[recorder, *extra, *callbacks],
    )
    trainer.train(resume_from_checkpoint=resume_from)
    return recorder


def _replay(lr0, values, per_step_at, n_steps, **kwargs):
    """Per-step LRs predicted by stepping a fresh GreedyLR with ``values`` after the steps in
    ``per_step_at`` (1-based global steps)."""
    sched = GreedyLR(make_optimizer((lr0,)), **kwargs)
    lrs, pending = [], list(zip(per_step_at, values, strict=True))
    for step in range(1, n_steps + 1):
        lrs.append(sched.optimizer.param_groups[0]["lr"])
        while pending and pending[0][0] == step:
            sched.step(pending.pop(0)[1])
    return lrs


EVAL_ARGS = {
    "eval_strategy": "steps",
    "eval_steps": 3,
    "metric_for_best_model": "eval_loss",
    "greater_is_better": False,
}


def test_trainer_steps_greedylr_after_each_evaluation(hf, tmp_path):
    pytest.importorskip("accelerate")
    transformers = hf[0]
    kwargs = {"factor": 0.5, "patience": 0}
    rec = _train(transformers, tmp_path, lambda opt: (GreedyLR(opt, **kwargs), []), **EVAL_ARGS)
    assert len(rec.evals) == 8
    assert len(set(rec.lrs)) > 2  # the LR did move
    expected = _replay(0.05, rec.evals, [3, 6, 9, 12, 15, 18, 21, 24], 24, **kwargs)
    assert rec.lrs == expected


@pytest.mark.parametrize("route", ["scheduler", "callback"])
def test_trainer_checkpoint_resume_continues_identically(hf, tmp_path, route):
    # The Trainer saves scheduler.state_dict() to scheduler.pt and reloads it with
    # torch.load(weights_only=True); the resumed run must follow the uninterrupted one.
    pytest.importorskip("accelerate")
    transformers, GreedyLRCallback, _ = hf
    kwargs = {"factor": 0.5, "patience": 0, "smooth": True, "window_size": 2}

    def build(opt):
        if route == "scheduler":
            return GreedyLR(opt, **kwargs), []
        cb = GreedyLRCallback(GreedyLR(opt, **kwargs), metric="loss")
        return cb.trainer_scheduler, [cb]

    extra = EVAL_ARGS if route == "scheduler" else {"logging_steps": 1}
    full = _train(transformers, tmp_path / "full", build, **extra)
    _train(transformers, tmp_path / "part", build, save_strategy="steps", save_steps=12, **extra)
    resumed = _train(
        transformers,
        tmp_path / "resumed",
        build,
        resume_from=str(tmp_path / "part" / "checkpoint-12"),
        **extra,
    )
    assert len(set(full.lrs)) > 2
    assert resumed.lrs == full.lrs[12:]


def test_trainer_parity_with_builtin_greedy_schedule(hf, tmp_path):
    pytest.importorskip("accelerate")
    transformers = hf[0]
    kwargs = {"factor": 0.5, "patience": 0, "min_lr": 0.01, "max_lr": 0.2, "reset_start": 2}
    ours = _train(
        transformers,
        tmp_path / "ours",
        lambda opt: (GreedyLR(opt, variant="transformers", **kwargs), []),
        **EVAL_ARGS,
    )
    builtin = _train(
        transformers,
        tmp_path / "builtin",
        lambda opt: (None, []),
        lr_scheduler_type="greedy",
        lr_scheduler_kwargs=kwargs,
        **EVAL_ARGS,
    )
    assert ours.lrs == builtin.lrs
    assert ours.evals == builtin.evals


def test_trainer_with_callback_on_training_loss(hf, tmp_path):
    pytest.importorskip("accelerate")
    transformers, GreedyLRCallback, _ = hf
    kwargs = {"factor": 0.5, "patience": 1}

    def build(opt):
        cb = GreedyLRCallback(GreedyLR(opt, **kwargs), metric="loss")
        return cb.trainer_scheduler, [cb]

    rec = _train(transformers, tmp_path, build, logging_steps=1)
    assert len(rec.losses) == 24
    expected = _replay(0.05, rec.losses, list(range(1, 25)), 24, **kwargs)
    assert rec.lrs == expected
    assert len(set(rec.lrs)) > 2


def _callback_warnings(record):
    return [w for w in record if "GreedyLRCallback(metric=" in str(w.message)]


@pytest.mark.parametrize(
    ("metric", "logs", "named"),
    [
        # A training metric: checked against the first training log (evaluation logs skipped).
        ("val_loss", [{"eval_loss": 1.0, "epoch": 1.0}, {"loss": 1.0, "grad_norm": 2.0}], "loss"),
        # An evaluation metric: training logs are skipped, the first evaluation log decides.
        (
            "eval_acc",
            [{"loss": 1.0}, {"eval_loss": 1.0, "epoch": 1.0}, {"eval_loss": 0.5}],
            "eval_loss",
        ),
    ],
)
def test_callback_warns_once_when_the_metric_is_not_logged(hf, tmp_path, metric, logs, named):
    transformers, GreedyLRCallback, _ = hf
    cb = GreedyLRCallback(GreedyLR(make_optimizer((0.1,))), metric=metric)
    args = _args(transformers, tmp_path)
    state, control = transformers.TrainerState(), transformers.TrainerControl()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for i, entry in enumerate(logs):
            cb.on_log(args, state, control, logs=entry)
            if i == 0:
                assert not _callback_warnings(record)  # not yet a log that should contain it
        cb.on_train_end(args, state, control)
    (warning,) = _callback_warnings(record)
    assert repr(metric) in str(warning.message) and repr(named) in str(warning.message)
    assert cb.num_steps == 0


def test_callback_warns_at_train_end_when_no_matching_log_came(hf, tmp_path):
    transformers, GreedyLRCallback, _ = hf
    cb = GreedyLRCallback(GreedyLR(make_optimizer((0.1,))), metric="eval_loss")
    args = _args(transformers, tmp_path)
    state, control = transformers.TrainerState(), transformers.TrainerControl()
    cb.on_log(args, state, control, logs={"loss": 1.0})  # training logs only: no evaluation
    with pytest.warns(UserWarning, match=r"whole training run did not contain 'eval_loss'.*'loss'"):
        cb.on_train_end(args, state, control)


def test_callback_does_not_warn_when_the_metric_is_logged(hf, tmp_path):
    transformers, GreedyLRCallback, _ = hf
    cb = GreedyLRCallback(GreedyLR(make_optimizer((0.1,))), metric="loss")
    args = _args(transformers, tmp_path)
    state, control = transformers.TrainerState(), transformers.TrainerControl()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cb.on_log(args, state, control, logs={"loss": 1.0})
        cb.on_log(args, state, control, logs={"train_loss": 1.0, "train_runtime": 1.0})
        cb.on_train_end(args, state, control)
    assert cb.num_steps == 1


def test_trainer_run_with_a_misspelled_metric_warns_once(hf, tmp_path):
    pytest.importorskip("accelerate")
    transformers, GreedyLRCallback, _ = hf
    callbacks = []

    def build(opt):
        callbacks.append(GreedyLRCallback(GreedyLR(opt, factor=0.5, patience=0), metric="val_loss"))
        return callbacks[0].trainer_scheduler, callbacks

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        rec = _train(transformers, tmp_path, build)
    (warning,) = _callback_warnings(record)
    assert "'loss'" in str(warning.message) and "'learning_rate'" in str(warning.message)
    assert callbacks[0].num_steps == 0 and len(set(rec.lrs)) == 1
