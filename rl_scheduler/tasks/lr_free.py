"""Learning-rate-free optimizers: the peers the studies compare schedules with.

One place that builds them by name, for the GreedyLR study's loop and for
:class:`~rl_scheduler.tasks.TorchTask` (the DNN study):

========================  ===============================================  =======================
name                      optimizer                                        tuned knob (default)
========================  ===============================================  =======================
``schedulefree_sgd``      ``schedulefree.SGDScheduleFree`` (momentum 0.9)  ``lr``, ``warmup_steps``
``schedulefree_adamw``    ``schedulefree.AdamWScheduleFree``               ``lr``, ``warmup_steps``
``prodigy``               ``prodigyopt.Prodigy`` (``lr`` 1)                ``d_coef`` (1)
``dadapt_sgd``            ``dadaptation.DAdaptSGD`` (momentum 0.9)         ``lr`` (1)
``dadapt_adam``           ``dadaptation.DAdaptAdam``                       ``lr`` (1)
========================  ===============================================  =======================

Schedule-Free keeps two sequences: training steps run at the interpolated point ``y`` while the
model to evaluate is the average ``x``. :func:`evaluation_mode` swaps the weights to ``x`` for an
evaluation and back afterwards (``optimizer.eval()`` / ``optimizer.train()``); the others have no
such switch and it does nothing for them. Models with batch normalisation would also need their
running statistics recomputed at ``x``; :func:`make_lr_free` refuses that combination rather
than evaluate with statistics of the wrong weights.

Prodigy's documentation recommends leaving ``lr`` at 1 and steering its estimate with
``d_coef``; D-Adaptation has no ``d_coef`` and is steered by ``lr`` (a multiplier of its
estimate, 1 by default). Every peer runs without a learning-rate schedule: the studies compare
them as the schedule-free, learning-rate-free alternatives they are published as.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Mapping
from numbers import Real
from typing import Any

import torch
from torch import nn

LR_FREE: tuple[str, ...] = (
    "schedulefree_sgd",
    "schedulefree_adamw",
    "prodigy",
    "dadapt_sgd",
    "dadapt_adam",
)

SCHEDULE_FREE: tuple[str, ...] = ("schedulefree_sgd", "schedulefree_adamw")

KNOB: dict[str, str] = {
    "schedulefree_sgd": "lr",
    "schedulefree_adamw": "lr",
    "prodigy": "d_coef",
    "dadapt_sgd": "lr",
    "dadapt_adam": "lr",
}
"""The knob each peer's rate axis tunes (Prodigy: ``d_coef`` at ``lr = 1``)."""

OPTIONS: dict[str, tuple[str, ...]] = {
    "schedulefree_sgd": ("warmup_steps",),
    "schedulefree_adamw": ("warmup_steps",),
    "prodigy": ("d_coef",),
    "dadapt_sgd": (),
    "dadapt_adam": (),
}
"""Keyword options each peer accepts besides ``lr`` and ``weight_decay``."""


def make_lr_free(
    name: str,
    params: Iterable[Any],
    *,
    lr: float,
    weight_decay: float = 0.0,
    model: nn.Module | None = None,
    **options: float,
) -> torch.optim.Optimizer:
    """Build the learning-rate-free optimizer ``name`` (one of :data:`LR_FREE`).

    ``lr`` is the optimizer's ``lr`` (Prodigy and D-Adaptation: a multiplier of the estimated
    step, 1 by default); ``options`` are those of :data:`OPTIONS` (``warmup_steps`` is rounded
    to an integer). ``model``, when given, is checked for batch normalisation (refused with
    Schedule-Free: see the module docstring). Schedule-Free optimizers are returned in train
    mode, ready to step.
    """
    if name not in LR_FREE:
        raise ValueError(f"name must be one of {LR_FREE}, got {name!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite float > 0, got {lr!r}")
    options = check_options(name, options)
    if name in SCHEDULE_FREE and model is not None and _has_batch_norm(model):
        raise ValueError(
            f"{name!r} with batch normalisation needs the running statistics recomputed at the "
            "averaged weights before every evaluation, which this project does not do: use a "
            "model without BatchNorm (the CPU configurations' models have none)."
        )
    if name in SCHEDULE_FREE:
        import schedulefree

        cls = (
            schedulefree.SGDScheduleFree
            if name == "schedulefree_sgd"
            else (schedulefree.AdamWScheduleFree)
        )
        warmup = int(round(options.get("warmup_steps", 0)))
        opt = cls(params, lr=lr, weight_decay=weight_decay, warmup_steps=warmup)
        opt.train()
        return opt
    if name == "prodigy":
        from prodigyopt import Prodigy

        return Prodigy(params, lr=lr, weight_decay=weight_decay, d_coef=options.get("d_coef", 1.0))
    import dadaptation

    if name == "dadapt_sgd":
        return dadaptation.DAdaptSGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    return dadaptation.DAdaptAdam(params, lr=lr, weight_decay=weight_decay)


def knob_setting(name: str, value: float) -> tuple[float, tuple[tuple[str, float], ...]]:
    """``(lr, options)`` that set peer ``name``'s tuned knob (:data:`KNOB`) to ``value``.

    Prodigy keeps ``lr = 1`` and gets ``d_coef = value``; every other peer gets ``lr = value``.
    """
    if KNOB[name] == "d_coef":
        return 1.0, (("d_coef", value),)
    return value, ()


def check_options(
    name: str, options: Mapping[str, Any] | None, label: str = "options"
) -> dict[str, float]:
    """``options`` of optimizer ``name`` as a dict, checked against :data:`OPTIONS`.

    ``d_coef`` must be a finite number > 0, ``warmup_steps`` one >= 0; any other key, or any
    key for an optimizer without options (``sgd``, ``adam``), is refused. Errors name ``label``
    (the caller's parameter).
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ValueError(f"{label} must be a mapping, got {type(options).__name__}")
    allowed = OPTIONS.get(name, ())
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{label} of {name!r} must be among {allowed}, got {unknown}")
    for key, value in options.items():
        positive = key != "warmup_steps"
        if not (
            isinstance(value, Real)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (value > 0 if positive else value >= 0)
        ):
            raise ValueError(
                f"{label}[{key!r}] of {name!r} must be a finite number "
                f"{'>' if positive else '>='} 0, got {value!r}"
            )
    return dict(options)


@contextlib.contextmanager
def evaluation_mode(optimizer: torch.optim.Optimizer | None) -> Iterator[None]:
    """Within the block the model holds the weights to evaluate (Schedule-Free: its average).

    Training mode is restored on exit, also after an exception. A no-op for optimizers without
    a train/eval switch.
    """
    switch = getattr(optimizer, "eval", None), getattr(optimizer, "train", None)
    if not all(callable(f) for f in switch):
        yield
        return
    switch[0]()
    try:
        yield
    finally:
        switch[1]()


def effective_lr(optimizer: torch.optim.Optimizer) -> float:
    """The step size the optimizer applies now, for LR traces.

    Prodigy and D-Adaptation: ``d * lr`` of the first group (their estimate times the
    multiplier); Schedule-Free: ``lr`` times its warm-up factor; otherwise the group's ``lr``.
    """
    group = optimizer.param_groups[0]
    if "d" in group:
        return float(group["d"]) * float(group["lr"])
    if "scheduled_lr" in group:
        return float(group["scheduled_lr"])
    return float(group["lr"])


def _has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
