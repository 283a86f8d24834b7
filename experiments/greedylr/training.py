"""One training run of the GreedyLR study: optimizers, schedules and the loop.

The workloads (data + model + loss + evaluation) are :mod:`rl_scheduler.tasks.workloads`, shared
with the DNN tasks; the study drives them with its own loop rather than
:class:`rl_scheduler.tasks.TorchTask` (why, and how the runs are scored: ``docs/greedylr_study.md``).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import torch
from torch import nn

from experiments.common.controllers import (
    METRIC_SCHEDULES,
    StepFn,
    metric_schedule,
    torch_schedule,
)
from experiments.common.records import short
from experiments.greedylr.config import (
    DIVERGENCE_FACTOR,
    GREEDY_CONFIG,
    HYPERGRAD_LR,
    LR_CEILING,
    OPTIMIZERS,
    PEERS,
    PLATEAU_CONFIG,
    PLATEAU_WINDOW,
    STAGES,
    GreedyRunSpec,
    check_spec,
)
from rl_scheduler.tasks.lr_free import effective_lr, evaluation_mode, make_lr_free
from rl_scheduler.tasks.workloads import make_workload

# ---------------------------------------------------------------------------------- optimizers
HD_GRANULARITY = {"hd_parameter": "element", "hd_group": "group"}
"""``lr_granularity`` of the hypergradient optimizers: one rate per scalar weight / per group."""

PEERS_ALL = frozenset(name for family in PEERS.values() for name in family)
"""Scheduler names of the learning-rate-free peers (any family)."""


def layer_groups(model: nn.Module) -> list[dict[str, list[nn.Parameter]]]:
    """One param group per layer: the parameters each submodule owns directly."""
    groups = [{"params": list(m.parameters(recurse=False))} for m in model.modules()]
    return [g for g in groups if g["params"]]


def make_optimizer(
    optimizer: str,
    scheduler: str,
    model: nn.Module,
    lr: float,
    steps_per_epoch: int,
    hypergrad_lr: float | None = None,
    options: dict[str, float] | None = None,
    budget: int | None = None,
) -> torch.optim.Optimizer:
    """The optimizer of a run (the adaptive schedulers replace the family's optimizer).

    ``hd_group`` gets one param group per layer (:func:`layer_groups`); every other run gets the
    model's parameters as one group. ``hypergrad_lr`` is the hypergradient step ``beta``
    (``None``: :data:`~experiments.greedylr.config.HYPERGRAD_LR` of the optimizer). A
    learning-rate-free peer (:data:`~experiments.greedylr.config.PEERS`) is built by
    :func:`rl_scheduler.tasks.lr_free.make_lr_free` with ``options`` (``d_coef``;
    ``warmup_fraction`` x ``budget`` warm-up steps).
    """
    from greedylr import HypergradientAdam, HypergradientSGD, StochasticLineSearch

    params: Any = layer_groups(model) if scheduler == "hd_group" else list(model.parameters())
    peer = PEERS.get(optimizer, {}).get(scheduler)
    if peer is not None:
        knobs = dict(options or {})
        if "warmup_fraction" in knobs:
            if budget is None:
                raise ValueError("budget is needed to turn warmup_fraction into steps")
            knobs["warmup_steps"] = round(knobs.pop("warmup_fraction") * budget)
        return make_lr_free(peer, params, lr=lr, model=model, **knobs)
    if scheduler in HD_GRANULARITY:
        granularity = HD_GRANULARITY[scheduler]
        bounds = (0.0, LR_CEILING * lr)
        beta = HYPERGRAD_LR[optimizer] if hypergrad_lr is None else hypergrad_lr
        if optimizer == "adam":
            return HypergradientAdam(
                params, lr=lr, hypergrad_lr=beta, lr_granularity=granularity, lr_bounds=bounds
            )
        momentum = 0.9 if optimizer == "momentum" else 0.0
        return HypergradientSGD(
            params,
            lr=lr,
            hypergrad_lr=beta,
            momentum=momentum,
            lr_granularity=granularity,
            lr_bounds=bounds,
        )
    if scheduler == "sls":
        return StochasticLineSearch(
            params, lr=lr, max_lr=LR_CEILING * lr, n_batches_per_epoch=steps_per_epoch
        )
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if optimizer == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr)
    if optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    if optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=lr)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")


def make_stepper(
    scheduler: str,
    optimizer: torch.optim.Optimizer,
    budget: int,
    greedy: dict[str, Any] | None = None,
) -> StepFn:
    """Wrap ``optimizer`` in the named schedule and return its per-step callback.

    The classic shapes are :func:`~experiments.common.controllers.torch_schedule` over ``budget``
    steps. ``plateau`` is torch's ``ReduceLROnPlateau`` (factor 0.5, patience 10, floor ``1e-3``
    x the initial rate) fed the moving average of the last :data:`PLATEAU_WINDOW` losses;
    ``greedy`` is :class:`greedylr.GreedyLR` with :data:`GREEDY_CONFIG` updated by ``greedy``,
    fed each loss. ``constant`` and the adaptive optimizers do nothing.
    """
    if scheduler in ("constant", *HD_GRANULARITY, "sls", *PEERS_ALL):
        return lambda loss: None
    if scheduler in METRIC_SCHEDULES:
        return metric_schedule(
            scheduler,
            optimizer,
            plateau=PLATEAU_CONFIG,
            greedy=GREEDY_CONFIG | (greedy or {}),
            window=PLATEAU_WINDOW,
        )
    return torch_schedule(scheduler, optimizer, budget)


def _current_lr(optimizer: torch.optim.Optimizer, scheduler: str) -> float:
    """The learning rate of the last/next step (hypergradient: the mean over scalar weights;
    learning-rate-free peers: :func:`~rl_scheduler.tasks.lr_free.effective_lr`)."""
    if scheduler in PEERS_ALL:
        return effective_lr(optimizer)
    if scheduler not in HD_GRANULARITY:
        return float(optimizer.param_groups[0]["lr"])
    total, size = 0.0, 0
    for group, rates in zip(optimizer.param_groups, optimizer.learning_rates(), strict=True):  # type: ignore[attr-defined]
        for p, rate in zip(group["params"], rates, strict=True):
            total += float(torch.as_tensor(rate).expand(p.shape).sum())
            size += p.numel()
    return total / size


def eval_steps(budget: int, n_evals: int) -> list[int]:
    """Steps at which losses are evaluated: ``n_evals + 1`` even points plus every stage."""
    points = {round(k * budget / n_evals) for k in range(n_evals + 1)}
    points |= {round(f * budget) for f in STAGES}
    return sorted(points)


# ---------------------------------------------------------------------------------- one run
def run_greedy(spec: GreedyRunSpec) -> dict[str, Any]:
    """Train one spec with a plain loop; return per-step losses and LRs and evaluated losses.

    Each step: draw a mini-batch (from a generator seeded by ``spec.seed``: every schedule sees the
    same batches), back-propagate its loss, add gradient noise if asked
    (``p.grad += grad_noise * g0 * randn``, ``g0`` the RMS gradient entry of the first step), take
    the optimizer step, then step the schedule with the mini-batch loss plus, if asked,
    ``loss_noise * L0 * randn`` (``L0`` the first mini-batch loss). Noise comes from its own
    generator, so it does not change the batches. A mini-batch loss that is not finite or exceeds
    100x the first one stops the run as diverged (remaining evaluations are ``inf``).

    Returns
    -------
    dict
        ``eval_steps``, ``train_eval_loss`` and ``val_loss`` at those steps; ``train_loss`` (the
        mini-batch loss) and ``lr`` (the rate used) per step; ``diverged``; ``noise`` (the absolute
        gradient / loss noise levels); ``rejected_steps`` (line searches that failed); timing.
    """
    check_spec(spec)
    torch.set_num_threads(1)
    start = time.perf_counter()
    workload = make_workload(spec.workload, spec.seed)
    params = list(workload.model.parameters())
    opt = make_optimizer(
        spec.optimizer,
        spec.scheduler,
        workload.model,
        spec.lr,
        workload.steps_per_epoch,
        spec.hypergrad_lr,
        dict(spec.options),
        spec.budget,
    )
    stepper = make_stepper(spec.scheduler, opt, spec.budget, dict(spec.greedy))
    batches = torch.Generator().manual_seed(spec.seed)
    noise_gen = torch.Generator().manual_seed(1_000_003 + spec.seed)
    adaptive = spec.scheduler in (*HD_GRANULARITY, "sls", *PEERS_ALL)

    evals = eval_steps(spec.budget, spec.n_evals)
    train_eval: list[float] = []
    val: list[float] = []
    losses: list[float] = []
    lrs: list[float] = []
    diverged = False
    rejected = 0
    first_loss = grad_scale = math.nan

    def record_eval() -> None:
        with evaluation_mode(opt):  # Schedule-Free: evaluate its averaged weights
            tr, va = workload.evaluate()
        train_eval.append(tr if math.isfinite(tr) else math.inf)
        val.append(va if math.isfinite(va) else math.inf)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # failed line searches, counted below
        for t in range(spec.budget):
            if t in evals:
                record_eval()
            batch = workload.sample(batches)
            lr_before = _current_lr(opt, spec.scheduler)
            if spec.scheduler == "sls":

                def closure(batch: Any = batch) -> torch.Tensor:
                    opt.zero_grad()
                    value = workload.loss(batch)
                    if torch.is_grad_enabled():
                        value.backward()
                    return value

                loss = float(opt.step(closure).detach())
                rejected += not opt.state[params[0]].get("accepted", True)
            else:
                opt.zero_grad()
                out = workload.loss(batch)
                out.backward()
                loss = float(out.detach())
                if spec.grad_noise > 0 and math.isfinite(loss):
                    grads = [p.grad for p in params if p.grad is not None]
                    if math.isnan(grad_scale):
                        sq = sum(float(torch.sum(g * g)) for g in grads)
                        grad_scale = math.sqrt(sq / sum(g.numel() for g in grads))
                    for g in grads:
                        g.add_(
                            torch.randn(g.shape, generator=noise_gen),
                            alpha=spec.grad_noise * grad_scale,
                        )
                if math.isfinite(loss):
                    opt.step()
            if math.isnan(first_loss):
                first_loss = loss
            if not math.isfinite(loss) or loss > DIVERGENCE_FACTOR * abs(first_loss):
                diverged = True
                break
            losses.append(short(loss))
            lrs.append(short(_current_lr(opt, spec.scheduler) if adaptive else lr_before))
            seen = loss
            if spec.loss_noise > 0:
                seen += (
                    spec.loss_noise * abs(first_loss) * float(torch.randn((), generator=noise_gen))
                )
            stepper(seen)
        if not diverged:
            record_eval()
    train_eval += [math.inf] * (len(evals) - len(train_eval))
    val += [math.inf] * (len(evals) - len(val))
    return {
        "eval_steps": evals,
        "train_eval_loss": [short(v) for v in train_eval],
        "val_loss": [short(v) for v in val],
        "train_loss": losses,
        "lr": lrs,
        "diverged": diverged,
        "noise": {
            "grad_sigma": spec.grad_noise * grad_scale if spec.grad_noise > 0 else 0.0,
            "loss_sigma": spec.loss_noise * abs(first_loss) if spec.loss_noise > 0 else 0.0,
        },
        "rejected_steps": rejected,
        "wall_time_s": time.perf_counter() - start,
    }
