"""Paper 3: GreedyLR against classic schedules and adaptive baselines, behind ``make reproduce-greedylr``.

Pipeline (every stage is a resumable sweep of :mod:`experiments.runner`):

1. **main**: every workload x optimizer x schedule x seed, all with the same initial learning rate
   for a given (workload, optimizer) and the same seeds (same initial weights, same mini-batches).
   The hypergradient optimizers and stochastic line search replace the optimizer of their family
   and run without a schedule.
2. **factor**: GreedyLR with ``F`` in {0.25, 0.5, 0.75, 0.99} on every workload (SGD).
3. **robustness**: noise that really perturbs training -- added to the *gradients*
   (``p.grad += sigma * randn``) or to the *loss value the scheduler sees* (the loss tensor that is
   back-propagated is untouched; a constant added to it would have zero gradient and change
   nothing) -- for GreedyLR with and without smoothing and for cosine.
4. **summary**: the scoring (below), ``summary.json``, ``table.md`` and figures under
   ``results/greedylr[-quick]/``, all from the records of the current sweeps (lines that an
   earlier configuration left in the JSONL files are ignored). ``summary.json`` also holds a
   compact table of every main run's loss at 0/10/50/100% of its budget (``runs``), from which
   the pairs and their labels can be rebuilt (:func:`runs_from_table`, :func:`pairs_of`).

Hypergradient granularities
---------------------------
``hd_parameter`` learns one rate per scalar weight (``lr_granularity="element"`` of
:class:`greedylr.HypergradientSGD` / :class:`greedylr.HypergradientAdam`). ``hd_group`` splits the
model's parameters into one param group per layer (each submodule that owns parameters directly,
e.g. a ``Linear``'s weight and bias) and learns one rate per group (``lr_granularity="group"``).
The noisy quadratic (one tensor) and logistic regression (one ``Linear``) have a single layer, so
there ``hd_group`` is Baydin et al.'s global hypergradient descent. Every other schedule,
GreedyLR included, keeps the model in one param group. The ``lr`` recorded for a hypergradient
run is the mean rate over all scalar weights. The hypergradient step :data:`HYPERGRAD_LR` is
Baydin et al.'s value for one shared rate at every granularity; a per-weight rate's hypergradient
is one product ``g_i u_i`` rather than a sum over many weights, so it moves far less (Adam-HD's
per-weight rates barely leave the initial rate).

Workloads and training loop
---------------------------
The study trains its own small workloads (:func:`make_workload`, reusing the data and models of
:mod:`rl_scheduler.tasks`) instead of :class:`rl_scheduler.tasks.torch_tasks.TorchTask`, whose
``advance(lr, n_steps)`` sets one rate for a chunk of steps and reports only chunk statistics.
The comparison needs what that interface does not offer: the scheduler stepped after *every*
optimizer step with that step's mini-batch loss, five optimizers (the tasks build SGD or Adam),
optimizers that set their own rates per layer or per weight, the closure that stochastic line
search re-evaluates on the same mini-batch, a hook between ``backward()`` and ``step()`` for
gradient noise, and the noisy quadratic, which has no task. Divergence differs too: a run stops
as diverged when a mini-batch loss is not finite or exceeds 100x the *first mini-batch loss*
(the tasks use 5x the initial training objective; single mini-batch losses are noisier, hence
the looser factor).

Scoring
-------
For every (workload, optimizer, seed) and every stage (10%, 50% and 100% of the step budget),
GreedyLR is paired with each other schedule of that optimizer (the adaptive optimizers pair with
GreedyLR on the optimizer they extend). The loss compared is the training objective evaluated on a
fixed evaluation set at that step (the exact excess loss for the quadratic). The paper (arXiv
2512.14527, Section 4.1) defines an insignificant difference as an absolute loss difference below
0.1, so the headline uses

    delta = L_baseline - L_GreedyLR

positive when GreedyLR is better; ``|delta| < 0.1`` counts as *slightly*, otherwise *clearly*, and
"as good or better" is ``delta >= 0`` (clearly or slightly better; exact ties count as good). A
fixed threshold in loss units means something different on every workload (final losses span two
orders of magnitude: an MLP's training cross-entropy near 0.01, the character model's near 2), so
the labels are also given under two scale-free readings: the log ratio
``ln(L_baseline / L_GreedyLR)`` (``|.| < 0.1`` is "within about 10%") and the difference
normalised by the initial loss, ``(L_baseline - L_GreedyLR) / L_initial``; with the share "not
clearly worse" next to them, this shows how the labels depend on the choice. All three readings
have the sign of ``L_baseline - L_GreedyLR``, so they give the same "as good or better" share; they
only move pairs between "slightly" and "clearly".

A diverged run's loss is ``inf``: a diverged GreedyLR against a finite baseline is *clearly
worse*, the reverse *clearly better*. A pair in which both runs diverged has no winner: it gets no
label, is left out of every count and share, and is counted separately (``both_diverged``).

GreedyLR's configuration is fixed in advance for every workload (:data:`GREEDY_CONFIG`): the
library defaults (``variant="paper"``, ``F = 0.95``, ``patience = 10``, absolute threshold
``1e-6``, bounds ``1e-3``x to ``10``x the initial rate, reset after 500 steps at the floor) with
smoothing switched on (moving average of the last 50 losses). It is stepped after every optimizer
step with that step's mini-batch loss.

Run ``python -m experiments.greedylr --help`` for the options; ``--quick`` is a smoke run.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from experiments.cli import finish, parse_pipeline_args, sweep_options
from experiments.runner import run_sweep
from experiments.stats import format_mean_ci, mean_ci

# ---------------------------------------------------------------------------------- vocabulary
OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "adam", "adamw", "adagrad")
"""``momentum`` is SGD with heavy-ball momentum 0.9; ``adamw`` uses weight decay 0.01."""

SCHEDULES: tuple[str, ...] = (
    "constant",
    "warmup",
    "linear",
    "cosine",
    "polynomial",
    "step",
    "exponential",
    "plateau",
    "greedy",
)
"""Schedules wrapped around any optimizer (``warmup`` is constant after a linear warmup)."""

ADAPTIVE: dict[str, tuple[str, ...]] = {
    "sgd": ("hd_parameter", "hd_group", "sls"),
    "momentum": ("hd_parameter", "hd_group"),
    "adam": ("hd_parameter", "hd_group"),
}
"""Optimizers that replace a family's optimizer and run without a schedule.

``hd_parameter`` / ``hd_group``: hypergradient descent (SGD-HD, SGDN-HD, Adam-HD) with one learned
rate per scalar weight / per layer (see "Hypergradient granularities" in the module docstring);
``sls``: SGD with a stochastic Armijo line search.
"""

WORKLOADS: tuple[str, ...] = ("quadratic", "logreg", "mlp", "cnn", "charlm")

INITIAL_LR: dict[str, dict[str, float]] = {
    # Common defaults, fixed before any run and shared by every schedule of a comparison; checked
    # once with the constant schedule to be stable, never tuned per schedule.
    "quadratic": {"sgd": 1.0, "momentum": 0.1, "adam": 0.1, "adamw": 0.1, "adagrad": 1.0},
    "logreg": {"sgd": 0.1, "momentum": 0.01, "adam": 1e-3, "adamw": 1e-3, "adagrad": 0.01},
    "mlp": {"sgd": 0.1, "momentum": 0.01, "adam": 1e-3, "adamw": 1e-3, "adagrad": 0.01},
    "cnn": {"sgd": 0.1, "momentum": 0.01, "adam": 1e-3, "adamw": 1e-3, "adagrad": 0.01},
    "charlm": {"sgd": 1.0, "momentum": 0.1, "adam": 3e-3, "adamw": 3e-3, "adagrad": 0.03},
}

GREEDY_CONFIG: dict[str, Any] = {
    "variant": "paper",
    "factor": 0.95,
    "patience": 10,
    "threshold": 1e-6,
    "threshold_mode": "abs",
    "cooldown": 0,
    "warmup": 0,
    "smooth": True,
    "window_size": 50,
    "reset_start": 500,
}
"""GreedyLR's one configuration (bounds: ``1e-3``x / ``10``x each group's initial rate)."""

PLATEAU_WINDOW = 50
"""ReduceLROnPlateau gets the moving average of the last 50 mini-batch losses every step."""

HYPERGRAD_LR = {"sgd": 1e-3, "momentum": 1e-3, "adam": 1e-7}
"""``beta`` of hypergradient descent, the values recommended by Baydin et al. (2018)."""

LR_CEILING = 10.0
"""Upper bound of every adaptive rate (GreedyLR, hypergradient, line search), x the initial LR."""

STAGES: tuple[float, ...] = (0.1, 0.5, 1.0)
SLIGHT = 0.1
LABELS: tuple[str, ...] = ("clearly better", "slightly better", "slightly worse", "clearly worse")
PAPER_SHARES = {"10%": 92.42, "50%": 81.81, "100%": 85.94, "overall": 86.73}
"""The paper's "as good or better" percentages of GreedyLR's pairs, per stage and overall."""

_DIVERGENCE_FACTOR = 100.0  # a mini-batch loss above 100x the first one counts as diverged


# ---------------------------------------------------------------------------------- run spec
@dataclass(frozen=True)
class GreedyRunSpec:
    """One training run.

    ``scheduler`` is one of :data:`SCHEDULES` or, for the optimizers of :data:`ADAPTIVE`, one of
    their adaptive replacements. ``greedy`` overrides entries of :data:`GREEDY_CONFIG` (factor
    sweep, robustness). ``grad_noise`` / ``loss_noise`` are noise levels relative to the first
    step's gradient RMS / mini-batch loss (see :func:`run_greedy`).
    """

    workload: str
    optimizer: str
    scheduler: str
    seed: int
    budget: int
    lr: float
    greedy: tuple[tuple[str, Any], ...] = ()
    grad_noise: float = 0.0
    loss_noise: float = 0.0
    n_evals: int = 10


def check_spec(spec: GreedyRunSpec) -> None:
    """Validate a spec's names and numbers (``ValueError`` naming the field)."""
    if spec.workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {WORKLOADS}, got {spec.workload!r}")
    if spec.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {spec.optimizer!r}")
    allowed = SCHEDULES + ADAPTIVE.get(spec.optimizer, ())
    if spec.scheduler not in allowed:
        raise ValueError(
            f"scheduler for optimizer {spec.optimizer!r} must be one of {allowed}, "
            f"got {spec.scheduler!r}"
        )
    if spec.budget < 1 or spec.n_evals < 1:
        raise ValueError(f"budget and n_evals must be >= 1, got {spec.budget}, {spec.n_evals}")
    if not (spec.lr > 0 and math.isfinite(spec.lr)):
        raise ValueError(f"lr must be a finite float > 0, got {spec.lr!r}")
    if spec.grad_noise < 0 or spec.loss_noise < 0:
        raise ValueError("grad_noise and loss_noise must be >= 0")
    if spec.scheduler == "sls" and spec.grad_noise > 0:
        raise ValueError("grad_noise is not supported with the line search (sls)")
    unknown = set(dict(spec.greedy)) - set(GREEDY_CONFIG)
    if unknown:
        raise ValueError(f"unknown GreedyLR option(s) {sorted(unknown)}")


# ---------------------------------------------------------------------------------- workloads
class Workload:
    """A model with its data: mini-batches, a loss, and a fixed evaluation of train/val loss."""

    model: nn.Module
    steps_per_epoch: int

    def sample(self, generator: torch.Generator) -> Any:
        """A training mini-batch (whatever :meth:`loss` takes)."""
        raise NotImplementedError

    def loss(self, batch: Any) -> torch.Tensor:
        """Scalar training loss of ``batch`` (differentiable)."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """(training objective on a fixed evaluation set, validation loss)."""
        raise NotImplementedError


class NoisyQuadratic(Workload):
    """``f(x) = 1/2 sum_i h_i (x_i - x*_i)^2`` with curvatures log-spaced in ``[0.01, 1]``.

    A mini-batch draws ``xi ~ N(0, noise^2)`` per coordinate and its loss is
    ``1/2 sum_i h_i (x_i - x*_i - xi_i)^2``: an unbiased gradient with noise ``h_i xi_i``. The
    optimum ``x*`` (drawn from the seed) is known, so :meth:`evaluate` returns the exact excess
    loss ``f(x) - f(x*)`` (twice: there is no separate validation set).
    """

    def __init__(self, seed: int, dim: int = 50, noise: float = 1.0) -> None:
        gen = torch.Generator().manual_seed(10_000 + seed)
        self.h = torch.logspace(-2, 0, dim)
        self.x_star = torch.randn(dim, generator=gen)
        self.noise = noise
        self.model = nn.Module()
        self.model.x = nn.Parameter(torch.zeros(dim))
        self.steps_per_epoch = 100

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        return self.noise * torch.randn(len(self.h), generator=generator)

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        return 0.5 * torch.sum(self.h * (self.model.x - self.x_star - batch) ** 2)

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        excess = float(0.5 * torch.sum(self.h * (self.model.x - self.x_star) ** 2))
        return excess, excess


class Classification(Workload):
    """Cross-entropy on a :class:`~rl_scheduler.tasks.data.TensorSplit` (e.g. digits)."""

    def __init__(self, split: Any, model: nn.Module, batch_size: int = 64) -> None:
        self.split = split
        self.model = model
        self.batch_size = batch_size
        self.steps_per_epoch = max(1, len(split.y_train) // batch_size)

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split.sample_batch(self.batch_size, generator)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.model(x), y)

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        s = self.split
        return (
            float(F.cross_entropy(self.model(s.x_train), s.y_train)),
            float(F.cross_entropy(self.model(s.x_val), s.y_val)),
        )


class CharLM(Workload):
    """Next-character cross-entropy on random windows of a :class:`CharCorpus`.

    The evaluation uses fixed windows (the same for every run): ``n_eval`` from the training
    stream and ``n_eval`` from the validation stream.
    """

    def __init__(
        self,
        corpus: Any,
        model: nn.Module,
        batch_size: int = 64,
        seq_len: int = 16,
        n_eval: int = 256,
    ) -> None:
        self.corpus = corpus
        self.model = model
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.steps_per_epoch = max(1, len(corpus.train_ids) // (batch_size * seq_len))
        gen = torch.Generator().manual_seed(2024)
        self.eval_train = corpus.sample_batch(n_eval, seq_len, gen, split="train")
        self.eval_val = corpus.sample_batch(n_eval, seq_len, gen, split="val")

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.corpus.sample_batch(self.batch_size, self.seq_len, generator)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        logits = self.model(x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        return float(self.loss(self.eval_train)), float(self.loss(self.eval_val))


@functools.lru_cache(maxsize=4)
def _digits(images: bool) -> Any:
    from rl_scheduler.tasks.data import load_digits

    return load_digits(images=images, seed=0)


@functools.lru_cache(maxsize=1)
def _shakespeare() -> Any:
    from rl_scheduler.tasks.data import load_shakespeare

    return load_shakespeare()


def make_workload(name: str, seed: int) -> Workload:
    """Build a workload; the model's initial weights come from ``seed``.

    ``quadratic``: 50-dim noisy quadratic. ``logreg`` / ``mlp`` (one hidden layer of 64) /
    ``cnn`` (:class:`~rl_scheduler.tasks.models.SmallCNN`, width 8): digits, batch 64, same
    train/val split for every run. ``charlm``: a GRU (embedding 32, hidden 64) on four plays,
    batches of 64 windows of 16 characters.
    """
    from rl_scheduler.tasks import models

    torch.manual_seed(seed)
    if name == "quadratic":
        return NoisyQuadratic(seed)
    if name in ("logreg", "mlp"):
        split = _digits(False)
        model = models.LogisticRegression(64, 10) if name == "logreg" else models.MLP(64, 10, (64,))
        return Classification(split, model)
    if name == "cnn":
        return Classification(_digits(True), models.SmallCNN(1, 10, width=8))
    if name == "charlm":
        corpus = _shakespeare()
        return CharLM(corpus, models.CharGRU(corpus.vocab_size, embed_dim=32, hidden_size=64))
    raise ValueError(f"workload must be one of {WORKLOADS}, got {name!r}")


# ---------------------------------------------------------------------------------- optimizers
HD_GRANULARITY = {"hd_parameter": "element", "hd_group": "group"}
"""``lr_granularity`` of the hypergradient optimizers: one rate per scalar weight / per group."""


def layer_groups(model: nn.Module) -> list[dict[str, list[nn.Parameter]]]:
    """One param group per layer: the parameters each submodule owns directly."""
    groups = [{"params": list(m.parameters(recurse=False))} for m in model.modules()]
    return [g for g in groups if g["params"]]


def make_optimizer(
    optimizer: str, scheduler: str, model: nn.Module, lr: float, steps_per_epoch: int
) -> torch.optim.Optimizer:
    """The optimizer of a run (the adaptive schedulers replace the family's optimizer).

    ``hd_group`` gets one param group per layer (:func:`layer_groups`); every other run gets the
    model's parameters as one group.
    """
    from greedylr import HypergradientAdam, HypergradientSGD, StochasticLineSearch

    params: Any = layer_groups(model) if scheduler == "hd_group" else list(model.parameters())
    if scheduler in HD_GRANULARITY:
        granularity = HD_GRANULARITY[scheduler]
        bounds = (0.0, LR_CEILING * lr)
        beta = HYPERGRAD_LR[optimizer]
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


class _Stepper:
    """Steps a schedule after each optimizer step; ``loss`` is what the scheduler may look at."""

    def __init__(self, step: Callable[[float], None]) -> None:
        self.step = step


def make_stepper(
    scheduler: str,
    optimizer: torch.optim.Optimizer,
    budget: int,
    greedy: dict[str, Any] | None = None,
) -> _Stepper:
    """Wrap ``optimizer`` in the named schedule and return its per-step callback.

    Classic shapes use :mod:`torch.optim.lr_scheduler` over ``budget`` steps: ``warmup``
    (linear from ``1/w`` to 1 over ``w = budget/10`` steps, then constant; ``LambdaLR``),
    ``linear`` (to 0, ``LinearLR``), ``cosine`` (to 0, ``CosineAnnealingLR``), ``polynomial``
    (power 2 to 0, ``PolynomialLR``), ``step`` (x0.1 every third of the budget, ``StepLR``),
    ``exponential`` (to 1% of the initial rate, ``ExponentialLR``). ``plateau`` is torch's
    ``ReduceLROnPlateau`` (factor 0.5, patience 10, floor ``1e-3`` x the initial rate) fed the
    moving average of the last :data:`PLATEAU_WINDOW` losses; ``greedy`` is
    :class:`greedylr.GreedyLR` with :data:`GREEDY_CONFIG` updated by ``greedy``, fed each loss.
    ``constant`` and the adaptive optimizers do nothing.
    """
    from torch.optim import lr_scheduler as sch

    from greedylr import GreedyLR

    if scheduler in ("constant", "hd_parameter", "hd_group", "sls"):
        return _Stepper(lambda loss: None)
    if scheduler == "greedy":
        gl = GreedyLR(optimizer, **(GREEDY_CONFIG | (greedy or {})))
        return _Stepper(gl.step)
    if scheduler == "plateau":
        floor = [1e-3 * float(g["lr"]) for g in optimizer.param_groups]
        rop = sch.ReduceLROnPlateau(optimizer, factor=0.5, patience=10, min_lr=floor)
        window: deque[float] = deque(maxlen=PLATEAU_WINDOW)

        def step_plateau(loss: float) -> None:
            window.append(loss)
            rop.step(sum(window) / len(window))

        return _Stepper(step_plateau)
    if scheduler == "warmup":
        w = max(1, budget // 10)
        torch_sched: Any = sch.LambdaLR(optimizer, lambda t: min(1.0, (t + 1) / w))
    elif scheduler == "linear":
        torch_sched = sch.LinearLR(optimizer, 1.0, 0.0, total_iters=budget)
    elif scheduler == "cosine":
        torch_sched = sch.CosineAnnealingLR(optimizer, T_max=budget)
    elif scheduler == "polynomial":
        torch_sched = sch.PolynomialLR(optimizer, total_iters=budget, power=2.0)
    elif scheduler == "step":
        torch_sched = sch.StepLR(optimizer, step_size=max(1, math.ceil(budget / 3)), gamma=0.1)
    elif scheduler == "exponential":
        torch_sched = sch.ExponentialLR(optimizer, gamma=0.01 ** (1.0 / budget))
    else:
        raise ValueError(f"unknown scheduler {scheduler!r}")
    return _Stepper(lambda loss: torch_sched.step())


def _current_lr(optimizer: torch.optim.Optimizer, scheduler: str) -> float:
    """The learning rate of the last/next step (hypergradient: the mean over scalar weights)."""
    if scheduler not in HD_GRANULARITY:
        return float(optimizer.param_groups[0]["lr"])
    total, size = 0.0, 0
    for group, rates in zip(optimizer.param_groups, optimizer.learning_rates(), strict=True):  # type: ignore[attr-defined]
        for p, rate in zip(group["params"], rates, strict=True):
            total += float(torch.as_tensor(rate).expand(p.shape).sum())
            size += p.numel()
    return total / size


def _short(x: float) -> float:
    """Six significant digits: keeps result files small, far below the noise of any run."""
    return float(f"{x:.6g}") if math.isfinite(x) else x


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
        spec.optimizer, spec.scheduler, workload.model, spec.lr, workload.steps_per_epoch
    )
    stepper = make_stepper(spec.scheduler, opt, spec.budget, dict(spec.greedy))
    batches = torch.Generator().manual_seed(spec.seed)
    noise_gen = torch.Generator().manual_seed(1_000_003 + spec.seed)
    adaptive = spec.scheduler in (*HD_GRANULARITY, "sls")

    evals = eval_steps(spec.budget, spec.n_evals)
    train_eval: list[float] = []
    val: list[float] = []
    losses: list[float] = []
    lrs: list[float] = []
    diverged = False
    rejected = 0
    first_loss = grad_scale = math.nan

    def record_eval() -> None:
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
            if not math.isfinite(loss) or loss > _DIVERGENCE_FACTOR * abs(first_loss):
                diverged = True
                break
            losses.append(_short(loss))
            lrs.append(_short(_current_lr(opt, spec.scheduler) if adaptive else lr_before))
            seen = loss
            if spec.loss_noise > 0:
                seen += (
                    spec.loss_noise * abs(first_loss) * float(torch.randn((), generator=noise_gen))
                )
            stepper.step(seen)
        if not diverged:
            record_eval()
    train_eval += [math.inf] * (len(evals) - len(train_eval))
    val += [math.inf] * (len(evals) - len(val))
    return {
        "eval_steps": evals,
        "train_eval_loss": [_short(v) for v in train_eval],
        "val_loss": [_short(v) for v in val],
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


# ---------------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class Config:
    """Everything that differs between the full run and ``--quick``."""

    budgets: dict[str, int]
    optimizers: tuple[str, ...]
    schedules: tuple[str, ...]
    seeds: tuple[int, ...]
    factors: tuple[float, ...] = (0.25, 0.5, 0.75, 0.99)
    factor_workloads: tuple[str, ...] = WORKLOADS
    robust_workloads: tuple[str, ...] = ("quadratic", "mlp")
    grad_noise: dict[str, tuple[float, ...]] = field(
        default_factory=lambda: {"quadratic": (0.3, 1.0, 3.0), "mlp": (3.0, 10.0, 30.0)}
    )
    """Gradient-noise levels per workload (x the first step's RMS gradient entry), up to one that
    clearly hurts cosine: an MLP shrugs off noise as large as its gradient, the quadratic does not."""
    loss_noise: tuple[float, ...] = (0.1, 0.3, 1.0)
    robust_seeds: tuple[int, ...] = (0, 1, 2)
    n_evals: int = 10
    workloads: tuple[str, ...] = field(default=WORKLOADS)


FULL = Config(
    budgets={"quadratic": 500, "logreg": 400, "mlp": 500, "cnn": 500, "charlm": 300},
    optimizers=OPTIMIZERS,
    schedules=SCHEDULES,
    seeds=(0, 1, 2),
    n_evals=20,
)
QUICK = Config(
    budgets={"quadratic": 60, "logreg": 40, "mlp": 40, "cnn": 20, "charlm": 10},
    optimizers=("sgd", "adam"),
    schedules=SCHEDULES,
    seeds=(0,),
    factors=(0.25, 0.99),
    factor_workloads=("quadratic", "mlp"),
    robust_workloads=("quadratic",),
    grad_noise={"quadratic": (1.0,)},
    loss_noise=(0.3,),
    robust_seeds=(0,),
    n_evals=5,
)
"""Every workload, schedule and code path (SGD for the line search, Adam for Adam-HD), tiny."""

_COST = {"charlm": 0, "cnn": 1, "mlp": 2, "logreg": 3, "quadratic": 4}  # slowest first


def main_specs(config: Config) -> list[GreedyRunSpec]:
    """The comparison: every workload x optimizer x schedule (+ adaptive optimizers) x seed."""
    specs = [
        GreedyRunSpec(w, o, s, seed, config.budgets[w], INITIAL_LR[w][o], n_evals=config.n_evals)
        for w in config.workloads
        for o in config.optimizers
        for s in config.schedules + ADAPTIVE.get(o, ())
        for seed in config.seeds
    ]
    return sorted(specs, key=lambda s: _COST[s.workload])


def factor_specs(config: Config) -> list[GreedyRunSpec]:
    """GreedyLR with each factor F of the sweep on SGD (the default F comes from the main sweep)."""
    specs = [
        GreedyRunSpec(
            w,
            "sgd",
            "greedy",
            seed,
            config.budgets[w],
            INITIAL_LR[w]["sgd"],
            greedy=(("factor", f),),
            n_evals=config.n_evals,
        )
        for w in config.factor_workloads
        for f in config.factors
        for seed in config.seeds
    ]
    return sorted(specs, key=lambda s: _COST[s.workload])


ROBUST_VARIANTS: dict[str, tuple[str, tuple[tuple[str, Any], ...]]] = {
    "greedy (raw)": ("greedy", (("smooth", False),)),
    "greedy (smoothed)": ("greedy", ()),
    "cosine": ("cosine", ()),
}


def robust_specs(config: Config) -> list[GreedyRunSpec]:
    """Noise on the gradients or on the loss the scheduler sees, one kind at a time (SGD)."""

    def levels(workload: str) -> list[tuple[float, float]]:
        out = [(0.0, 0.0)] + [(g, 0.0) for g in config.grad_noise[workload]]
        return out + [(0.0, s) for s in config.loss_noise]

    return [
        GreedyRunSpec(
            w,
            "sgd",
            sched,
            seed,
            config.budgets[w],
            INITIAL_LR[w]["sgd"],
            greedy=greedy,
            grad_noise=g,
            loss_noise=s,
            n_evals=config.n_evals,
        )
        for w in config.robust_workloads
        for sched, greedy in ROBUST_VARIANTS.values()
        for g, s in levels(w)
        for seed in config.robust_seeds
    ]


def robust_variant(spec: dict[str, Any]) -> str:
    """Name in :data:`ROBUST_VARIANTS` of a robustness record's spec."""
    greedy = tuple(tuple(kv) for kv in spec["greedy"])
    for name, (sched, options) in ROBUST_VARIANTS.items():
        if spec["scheduler"] == sched and greedy == options:
            return name
    raise ValueError(f"not a robustness variant: {spec['scheduler']} {greedy}")


# ---------------------------------------------------------------------------------- scoring
def pair_delta(greedy_loss: float, baseline_loss: float) -> float:
    """The paper's difference ``L_baseline - L_greedy``: > 0 when GreedyLR's loss is lower.

    Non-finite losses (diverged runs) count as ``+inf`` loss: a diverged baseline against a
    finite GreedyLR gives ``+inf``, the reverse ``-inf``; two diverged runs have no winner and
    give ``nan``.
    """
    g, b = _as_loss(greedy_loss), _as_loss(baseline_loss)
    if math.isinf(g) and math.isinf(b):
        return math.nan
    return 0.0 if g == b else b - g


def log_ratio_delta(greedy_loss: float, baseline_loss: float) -> float:
    """``ln(L_baseline / L_greedy)``, the scale-free reading; diverged runs as in :func:`pair_delta`.

    Losses are floored at ``1e-30`` so an exact zero stays comparable.
    """
    g, b = _as_loss(greedy_loss), _as_loss(baseline_loss)
    if math.isinf(g) and math.isinf(b):
        return math.nan
    if g == b:
        return 0.0
    if math.isinf(g):
        return -math.inf
    if math.isinf(b):
        return math.inf
    return math.log(max(b, 1e-30) / max(g, 1e-30))


def _as_loss(x: float) -> float:
    x = float(x)
    return x if math.isfinite(x) else math.inf


def label_delta(delta: float, threshold: float = SLIGHT) -> str:
    """The paper's four labels; ``|delta| < threshold`` is "slightly", ``delta >= 0`` better."""
    if math.isnan(delta):
        raise ValueError("delta must not be NaN")
    if delta >= threshold:
        return "clearly better"
    if delta >= 0:
        return "slightly better"
    if delta > -threshold:
        return "slightly worse"
    return "clearly worse"


BOTH_DIVERGED = "both diverged"
"""The label of a pair whose two runs diverged (no winner; left out of counts and shares)."""

READINGS: dict[str, str] = {
    "counts": "delta",
    "log_counts": "delta_log",
    "initial_counts": "delta_initial",
}
"""Label counts in :func:`tally` -> the pair's delta they are computed from."""


def stage_name(fraction: float) -> str:
    return f"{100 * fraction:g}%"


def loss_at(result: dict[str, Any], fraction: float, key: str = "train_eval_loss") -> float:
    """The evaluated loss at ``fraction`` of the run's budget (``inf`` once diverged)."""
    steps = result["eval_steps"]
    budget = steps[-1]
    idx = steps.index(round(fraction * budget))
    return float(result[key][idx])


RunLosses = dict[tuple[str, str, int], dict[str, dict[str, float]]]
"""(workload, optimizer, seed) -> schedule -> stage ("0%", "10%", ...) -> evaluated loss."""

_TABLE_STAGES = (0.0, *STAGES)


def stage_losses(records: Sequence[dict[str, Any]], key: str = "train_eval_loss") -> RunLosses:
    """The losses the scoring reads (initial and every stage) of the main sweep's ok records.

    Records of failed runs and of the factor and robustness sweeps are skipped.
    """
    runs: RunLosses = defaultdict(dict)
    for rec in records:
        if rec["status"] != "ok":
            continue
        s = rec["spec"]
        if s["greedy"] or s["grad_noise"] or s["loss_noise"]:
            continue
        runs[(s["workload"], s["optimizer"], int(s["seed"]))][s["scheduler"]] = {
            stage_name(f): loss_at(rec["result"], f, key) for f in _TABLE_STAGES
        }
    return dict(runs)


def score_pairs(records: Sequence[dict[str, Any]], key: str = "train_eval_loss") -> list[dict]:
    """Every GreedyLR-vs-baseline pair of the main sweep at every stage (see :func:`pairs_of`)."""
    return pairs_of(stage_losses(records, key))


def pairs_of(runs: RunLosses) -> list[dict[str, Any]]:
    """Every GreedyLR-vs-baseline pair at every stage, with its deltas and label.

    Pairs share the workload, optimizer and seed; the baselines are every other schedule of that
    optimizer and its adaptive replacements. ``delta`` is :func:`pair_delta` (the paper's
    difference); the other readings are ``delta_log`` (:func:`log_ratio_delta`) and
    ``delta_initial`` (``delta`` divided by GreedyLR's initial loss). Both-diverged pairs get
    ``nan`` deltas and the label :data:`BOTH_DIVERGED`.
    """
    pairs = []
    for (workload, optimizer, seed), by_sched in sorted(runs.items()):
        greedy = by_sched.get("greedy")
        if greedy is None:
            continue
        initial = greedy[stage_name(0.0)]
        for baseline, losses in sorted(by_sched.items()):
            if baseline == "greedy":
                continue
            for stage in map(stage_name, STAGES):
                g, b = _as_loss(greedy[stage]), _as_loss(losses[stage])
                delta = pair_delta(g, b)
                pairs.append(
                    {
                        "workload": workload,
                        "optimizer": optimizer,
                        "seed": seed,
                        "baseline": baseline,
                        "stage": stage,
                        "greedy_loss": g,
                        "baseline_loss": b,
                        "delta": delta,
                        "label": BOTH_DIVERGED if math.isnan(delta) else label_delta(delta),
                        "delta_log": log_ratio_delta(g, b),
                        "delta_initial": delta / initial if initial > 0 else delta,
                    }
                )
    return pairs


def run_table(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The main runs' losses at 0/10/50/100% of the budget, one CSV line per run (summary.json).

    Losses keep 6 significant digits, so pairs that differ only beyond them rebuild as ties; the
    reference run's scoring rebuilds exactly from its table.
    """
    columns = ["workload", "optimizer", "schedule", "seed"]
    columns += [f"loss_{stage_name(f)}" for f in _TABLE_STAGES]
    rows = [
        ",".join([w, o, sched, str(seed)] + [f"{losses[stage_name(f)]:.6g}" for f in _TABLE_STAGES])
        for (w, o, seed), by_sched in sorted(stage_losses(records).items())
        for sched, losses in sorted(by_sched.items())
    ]
    return {"columns": ",".join(columns), "rows": rows}


def runs_from_table(table: dict[str, Any]) -> RunLosses:
    """Invert :func:`run_table`: ``pairs_of(runs_from_table(summary["runs"]))`` rebuilds the pairs."""
    stages = [c.removeprefix("loss_") for c in table["columns"].split(",")[4:]]
    runs: RunLosses = defaultdict(dict)
    for row in table["rows"]:
        w, o, sched, seed, *losses = row.split(",")
        runs[(w, o, int(seed))][sched] = dict(zip(stages, map(float, losses), strict=True))
    return dict(runs)


def tally(pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Label counts and "as good or better" shares (in percent) of a set of pairs.

    Both-diverged pairs are left out of ``n``, every count and every share; ``both_diverged``
    counts them. ``share`` (the headline) counts ``delta >= 0``; ``share_not_clearly_worse``
    counts ``delta > -0.1``. ``log_counts`` / ``initial_counts`` are the labels under the other
    readings (``delta_log``, ``delta_initial``); they have the sign of ``delta``, so only the
    split between "slightly" and "clearly" (and the "not clearly worse" share) can differ.
    """
    scored = [p for p in pairs if p["label"] != BOTH_DIVERGED]
    n = len(scored)

    def pct(k: int) -> float:
        return 100.0 * k / n if n else math.nan

    out: dict[str, Any] = {"n": n, "both_diverged": len(pairs) - n}
    for name, delta in READINGS.items():
        counts = {label: 0 for label in LABELS}
        for p in scored:
            counts[label_delta(p[delta])] += 1
        out[name] = counts
    good = out["counts"]["clearly better"] + out["counts"]["slightly better"]
    out |= {"as_good_or_better": good, "share": pct(good)}
    out["share_not_clearly_worse"] = pct(n - out["counts"]["clearly worse"])
    for prefix in ("log", "initial"):
        out[f"share_{prefix}_not_clearly_worse"] = pct(n - out[f"{prefix}_counts"]["clearly worse"])
    return out


def aggregate(pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """:func:`tally` per stage, overall, per baseline, per workload and per optimizer."""

    def by(key: str) -> dict[str, Any]:
        groups: dict[str, list] = defaultdict(list)
        for p in pairs:
            groups[p[key]].append(p)
        return {k: tally(v) | {"by_stage": _by_stage(v)} for k, v in sorted(groups.items())}

    return {
        "by_stage": _by_stage(pairs),
        "overall": tally(pairs),
        "by_baseline": by("baseline"),
        "by_workload": by("workload"),
        "by_optimizer": by("optimizer"),
    }


def _by_stage(pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {stage_name(f): tally([p for p in pairs if p["stage"] == stage_name(f)]) for f in STAGES}


# ---------------------------------------------------------------------------------- summary
def _final_losses(records: list[dict], key: str = "train_eval_loss") -> dict:
    """workload -> optimizer -> scheduler -> mean/CI of the final evaluated loss over seeds."""
    values: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for rec in records:
        if rec["status"] != "ok":
            continue
        s = rec["spec"]
        values[s["workload"]][s["optimizer"]][s["scheduler"]].append(
            loss_at(rec["result"], 1.0, key)
        )
    return {
        w: {o: {s: mean_ci(v) for s, v in by_s.items()} for o, by_s in by_o.items()}
        for w, by_o in values.items()
    }


def summarise_factor(factor_records: list[dict], main_records: list[dict]) -> dict:
    """Final loss per workload and F (the default F from the main sweep's SGD GreedyLR runs)."""
    values: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rec in factor_records:
        if rec["status"] == "ok":
            s = rec["spec"]
            values[s["workload"]][float(dict(s["greedy"])["factor"])].append(
                loss_at(rec["result"], 1.0)
            )
    for rec in main_records:
        s = rec["spec"]
        if (
            rec["status"] == "ok"
            and s["scheduler"] == "greedy"
            and s["optimizer"] == "sgd"
            and s["workload"] in values
        ):
            values[s["workload"]][GREEDY_CONFIG["factor"]].append(loss_at(rec["result"], 1.0))
    return {
        w: {f"{f:g}": mean_ci(v) for f, v in sorted(by_f.items())} for w, by_f in values.items()
    }


def summarise_robustness(records: list[dict]) -> dict:
    """workload -> noise kind -> level -> variant -> final loss (mean/CI) and LR-trace stats."""
    out: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for rec in records:
        if rec["status"] != "ok":
            continue
        s = rec["spec"]
        kind, level = (
            ("gradient", s["grad_noise"]) if s["grad_noise"] else ("loss", s["loss_noise"])
        )
        variant = robust_variant(s)
        keys = [(s["workload"], kind, level, variant)]
        if not s["grad_noise"] and not s["loss_noise"]:  # the noise-free runs anchor both panels
            keys = [(s["workload"], k, 0.0, variant) for k in ("gradient", "loss")]
        for key in keys:
            groups[key].append(rec["result"])
    for (w, kind, level, variant), results in sorted(groups.items()):
        out[w][kind][f"{level:g}"][variant] = {
            "final_loss": mean_ci([loss_at(r, 1.0) for r in results]),
            "final_lr": mean_ci([r["lr"][-1] if r["lr"] else math.nan for r in results]),
            "diverged": sum(bool(r["diverged"]) for r in results),
        }
    return json_dict(out)


def json_dict(d: Any) -> Any:
    """Plain dicts all the way down (defaultdicts included)."""
    if isinstance(d, dict):
        return {k: json_dict(v) for k, v in d.items()}
    return d


def summarise(
    config: Config,
    main_records: list[dict],
    factor_records: list[dict],
    robust_records: list[dict],
) -> dict[str, Any]:
    """Scoring, final losses, factor sweep and robustness, as one JSON-able dict."""
    pairs = score_pairs(main_records)
    val_pairs = score_pairs(main_records, key="val_loss")
    failed = [
        r["spec_id"] for r in main_records + factor_records + robust_records if r["status"] != "ok"
    ]
    diverged = sum(bool(r["result"]["diverged"]) for r in main_records if r["status"] == "ok")
    return {
        "config": _config_dict(config),
        "n_runs": {
            "main": len(main_records),
            "factor": len(factor_records),
            "robustness": len(robust_records),
        },
        "failed_runs": failed,
        "diverged_main_runs": diverged,
        "scoring": aggregate(pairs),
        "scoring_val": aggregate(val_pairs),
        "paper_shares": PAPER_SHARES,
        "final_train_loss": _final_losses(main_records),
        "factor_sweep": summarise_factor(factor_records, main_records),
        "robustness": summarise_robustness(robust_records),
        "runs": run_table(main_records),
    }


def _config_dict(config: Config) -> dict[str, Any]:
    return asdict(config) | {
        "initial_lr": INITIAL_LR,
        "greedy_config": GREEDY_CONFIG,
        "hypergrad_lr": HYPERGRAD_LR,
        "plateau_window": PLATEAU_WINDOW,
        "lr_ceiling": LR_CEILING,
        "stages": list(STAGES),
        "slight_threshold": SLIGHT,
    }


def _pct(t: dict) -> str:
    return "—" if not t["n"] else f"{t['share']:.2f}% ({t['as_good_or_better']}/{t['n']})"


def markdown_table(summary: dict) -> str:
    """The scoring table (counts and shares next to the paper's) and the supporting tables."""
    sc = summary["scoring"]
    lines = [
        "**GreedyLR vs every other schedule, per (workload, optimizer, seed) pair** — "
        "delta = L_baseline - L_GreedyLR of the training objective on a fixed evaluation set "
        '(the paper\'s absolute difference); |delta| < 0.1 is "slightly"; "as good or better" is '
        "delta >= 0.",
        "",
        "| stage | clearly better | slightly better | slightly worse | clearly worse | "
        "as good or better | paper |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = list(sc["by_stage"].items()) + [("overall", sc["overall"])]
    for stage, t in rows:
        c = t["counts"]
        lines.append(
            f"| {stage} | {c['clearly better']} | {c['slightly better']} | "
            f"{c['slightly worse']} | {c['clearly worse']} | {_pct(t)} | "
            f"{PAPER_SHARES[stage]:.2f}% |"
        )
    o, v = sc["overall"], summary["scoring_val"]["overall"]
    both = " / ".join(str(t["both_diverged"]) for _, t in rows)

    def labels(counts: dict[str, int]) -> str:
        return " / ".join(str(counts[label]) for label in LABELS)

    lines += [
        "",
        "A threshold of 0.1 in loss units means something different on every workload. Labels "
        "under each reading (overall: clearly better / slightly better / slightly worse / "
        "clearly worse; not clearly worse): absolute difference (above) "
        f"{labels(o['counts'])}; {o['share_not_clearly_worse']:.2f}%. Log ratio "
        'ln(L_baseline / L_GreedyLR) (|.| < 0.1 is "slightly", i.e. within about 10%) '
        f"{labels(o['log_counts'])}; {o['share_log_not_clearly_worse']:.2f}%. Difference "
        "normalised by the initial loss, (L_baseline - L_GreedyLR) / L_initial, "
        f"{labels(o['initial_counts'])}; {o['share_initial_not_clearly_worse']:.2f}%. All three "
        'have the sign of L_baseline - L_GreedyLR, so the same "as good or better" share. '
        "Scored on the validation loss: "
        f"{v['share']:.2f}% ({v['as_good_or_better']}/{v['n']}).",
        "",
        f"Diverged runs in the main sweep: {summary['diverged_main_runs']}. Pairs in which both "
        "runs diverged (no label; left out of every count and share above), 10% / 50% / 100% / "
        f"overall: {both}.",
        "",
        "**As good or better, per baseline** (stages 10% / 50% / 100%, overall)",
        "",
        "| baseline | 10% | 50% | 100% | overall |",
        "|---|---|---|---|---|",
    ]
    for name, t in sc["by_baseline"].items():
        stages = " | ".join(f"{s['share']:.0f}%" for s in t["by_stage"].values())
        lines.append(f"| {name} | {stages} | {_pct(t)} |")
    lines += ["", "**As good or better, per workload and per optimizer**", ""]
    lines += ["| group | 10% | 50% | 100% | overall |", "|---|---|---|---|---|"]
    for kind in ("by_workload", "by_optimizer"):
        for name, t in sc[kind].items():
            stages = " | ".join(f"{s['share']:.0f}%" for s in t["by_stage"].values())
            lines.append(f"| {name} | {stages} | {_pct(t)} |")
    lines += _final_loss_lines(summary["final_train_loss"])
    lines += _factor_lines(summary["factor_sweep"])
    lines += _robust_lines(summary["robustness"])
    return "\n".join(lines) + "\n"


def _final_loss_lines(final: dict) -> list[str]:
    lines = ["", "**Final training loss (mean ± 95% CI over seeds)**", ""]
    for w, by_o in final.items():
        opts = list(by_o)
        scheds = sorted({s for o in opts for s in by_o[o]}, key=_sched_order)
        lines += [f"*{w}*", "", "| schedule | " + " | ".join(opts) + " |"]
        lines.append("|---" * (len(opts) + 1) + "|")
        for s in scheds:
            cells = [format_mean_ci(by_o[o][s], 3) if s in by_o[o] else "" for o in opts]
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _sched_order(name: str) -> int:
    order = SCHEDULES + ("hd_parameter", "hd_group", "sls")
    return order.index(name) if name in order else len(order)


def _factor_lines(factor: dict) -> list[str]:
    if not factor:
        return []
    fs = sorted({f for by_f in factor.values() for f in by_f}, key=float)
    lines = ["**Factor sweep: final training loss of GreedyLR (SGD) per F**", ""]
    lines += ["| workload | " + " | ".join(f"F={f}" for f in fs) + " |"]
    lines.append("|---" * (len(fs) + 1) + "|")
    for w, by_f in factor.items():
        cells = [format_mean_ci(by_f[f], 3) if f in by_f else "" for f in fs]
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    return lines + [""]


def _robust_lines(robust: dict) -> list[str]:
    if not robust:
        return []
    lines = [
        "**Robustness: final training loss under noise (SGD)** — gradient noise sigma x the "
        "first step's RMS gradient entry; loss noise sigma x the first loss, seen only by the "
        "scheduler",
        "",
    ]
    variants = list(ROBUST_VARIANTS)
    lines += ["| workload | noise | sigma | " + " | ".join(variants) + " |"]
    lines.append("|---" * (len(variants) + 3) + "|")
    for w, by_kind in robust.items():
        for kind, by_level in by_kind.items():
            for level, by_v in sorted(by_level.items(), key=lambda kv: float(kv[0])):
                cells = [
                    format_mean_ci(by_v[v]["final_loss"], 3) if v in by_v else "" for v in variants
                ]
                lines.append(f"| {w} | {kind} | {level} | " + " | ".join(cells) + " |")
    return lines + [""]


# ---------------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> dict:
    args, out = parse_pipeline_args("greedylr", __doc__.split("\n")[0], argv)
    config = QUICK if args.quick else FULL
    start = time.perf_counter()
    kw = sweep_options(args)
    main_records = run_sweep(run_greedy, main_specs(config), out / "main.jsonl", **kw)
    factor_records = run_sweep(run_greedy, factor_specs(config), out / "factor.jsonl", **kw)
    robust_records = run_sweep(run_greedy, robust_specs(config), out / "robustness.jsonl", **kw)
    summary = summarise(config, main_records, factor_records, robust_records)
    from experiments import plots_greedylr

    figures = plots_greedylr.greedylr_figures(
        main_records, factor_records, robust_records, summary, out
    )
    summary["figures"] = [p.name for p in figures]
    return finish(args, out, summary, markdown_table(summary), start)


if __name__ == "__main__":
    main()
