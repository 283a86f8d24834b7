"""The shared base of the deep-network tasks: :class:`TorchTask` owns the training loop.

The subclasses in :mod:`rl_scheduler.tasks.torch_tasks` supply data, model and loss through the
workload layer (:mod:`rl_scheduler.tasks.workloads`); this module runs a chunk of optimizer steps
and measures the statistics of the :class:`~rl_scheduler.tasks.Task` protocol.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from numbers import Real
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from rl_scheduler.tasks.base import TaskStats, check_advance, is_int, pick_instance
from rl_scheduler.tasks.lr_free import LR_FREE, check_options, evaluation_mode, make_lr_free
from rl_scheduler.tasks.torch_instances import (
    AMP_MODES,
    TorchInstance,
    as_torch_instance,
    autocast_dtype,
    resolve_device,
)
from rl_scheduler.tasks.workloads import mean_cross_entropy

__all__ = ["DEFAULT_DIVERGENCE_FACTOR", "DEFAULT_INITIAL_LR", "OPTIMIZERS", "TorchTask"]

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")
"""``sgd`` is :class:`torch.optim.SGD` (heavy-ball ``momentum``, default 0.9), ``adam`` is
:class:`torch.optim.Adam`; both with ``weight_decay``."""

DEFAULT_INITIAL_LR: dict[str, dict[str, float]] = {
    "vision": {"sgd": 0.05, "adam": 1e-3},
    "text": {"sgd": 0.5, "adam": 3e-3},
}
"""The learning rate a run starts with unless ``initial_lr`` is given: common defaults for SGD
with momentum 0.9 and for Adam, checked to train stably with a constant rate, not tuned. The
learning-rate-free optimizers of :data:`~rl_scheduler.tasks.lr_free.LR_FREE` default to the
SGD / Adam value of their family (Schedule-Free) or to 1 (Prodigy and D-Adaptation, whose
``lr`` multiplies their own estimate)."""


def _default_lr(kind: str, optimizer: str) -> float:
    if optimizer in OPTIMIZERS:
        return DEFAULT_INITIAL_LR[kind][optimizer]
    if optimizer.startswith("schedulefree_"):
        return DEFAULT_INITIAL_LR[kind]["sgd" if optimizer.endswith("sgd") else "adam"]
    return 1.0


DEFAULT_DIVERGENCE_FACTOR = 5.0
"""Training counts as diverged when a loss exceeds 5x the initial training objective. For
cross-entropy that is far past chance level (``5 ln 10 = 11.5`` for 10 classes: the model gives
the right class ``1e-5`` of its probability on average), a state SGD does not recover from."""


def _check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}.")
    return value


def _grad_norm(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Euclidean norm of all gradients together (a 0-d tensor, on their device)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


class TorchTask:
    """A torch model trained by SGD or Adam on mini-batches, chunk by chunk (shared base).

    Subclasses (:class:`~rl_scheduler.tasks.torch_tasks.VisionTask`,
    :class:`~rl_scheduler.tasks.torch_tasks.TextTask`) supply the data, the model and the loss
    from the workload layer (:mod:`rl_scheduler.tasks.workloads`); this class owns the loop: every :meth:`reset` picks an instance (uniformly with the given
    seed, or the one named by ``instance``), builds its model from the instance's seed and a new
    optimizer, and :meth:`advance` takes optimizer steps on mini-batches drawn from a generator
    seeded by the instance.

    Parameters
    ----------
    instances : sequence of TorchInstance (or their dict form)
        The instance set (see :func:`vision_instance_set`, :func:`text_instance_set`).
    optimizer : {"sgd", "adam"} or a name of :data:`~rl_scheduler.tasks.lr_free.LR_FREE`, default "sgd"
        The optimizer whose learning rate is scheduled, or a learning-rate-free peer
        (``schedulefree_sgd``, ``schedulefree_adamw``, ``prodigy``, ``dadapt_sgd``,
        ``dadapt_adam``: built by :func:`~rl_scheduler.tasks.lr_free.make_lr_free`, with the
        model, so Schedule-Free with batch normalisation is refused at :meth:`reset`). Every
        evaluation runs inside :func:`~rl_scheduler.tasks.lr_free.evaluation_mode`, so
        Schedule-Free is measured at its averaged weights while training steps at its
        interpolated ones. :meth:`advance` still sets each group's ``lr`` (for Prodigy and
        D-Adaptation a multiplier of their estimate).
    optimizer_options : mapping, optional
        The peer's options of :data:`~rl_scheduler.tasks.lr_free.OPTIONS` (``warmup_steps``
        >= 0 for Schedule-Free, ``d_coef`` > 0 for Prodigy); none for ``sgd`` / ``adam``.
    momentum : float in [0, 1), default 0.9
        Heavy-ball momentum of SGD (ignored by Adam and by the peers, which use 0.9 where they
        have momentum).
    weight_decay : float >= 0, default 0.0
    initial_lr : float, optional
        Rate the runs start with (:attr:`initial_lr`); default :data:`DEFAULT_INITIAL_LR`.
    batch_size : int, default 64
        Mini-batch size (images, or windows for text).
    grad_clip : float, optional
        Clip the gradient's total norm to this value before each step (``None``: no clipping).
    eval_size : int, optional
        Training items in the fixed subset :attr:`TaskStats.loss` is measured on.
    val_size : int, optional
        Validation items evaluated (``None``: the task's default).
    test_size : int, optional
        Test items :meth:`evaluate_test` reads (``None``: the task's default).
    device : str, default "auto"
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:<i>"``.
    amp : {"auto", "off", "bf16", "fp16"}, default "auto"
        Mixed precision (see :data:`AMP_MODES`).
    data_root : path, default "data"
        Folder of the downloadable data sets, one sub-folder per data set
        (``data/cifar10/``, ``data/fashion_mnist/``, ``data/tiny_shakespeare/``).
    download : bool, default False
        Download a missing data set into ``data_root`` (needs internet access).
    data_limit : int, optional
        Keep only the first ``data_limit`` images of each split (CIFAR-10, Fashion-MNIST).
    divergence_factor : float > 1, default :data:`DEFAULT_DIVERGENCE_FACTOR`

    Attributes
    ----------
    instance, instance_index
        The current run's instance and its index in :attr:`instances`.
    model : torch.nn.Module
        The current run's model.
    optim : torch.optim.Optimizer
        The current run's optimizer.
    stats : TaskStats
        Statistics of the current iterate.
    metrics : dict
        Extra measurements of the current iterate: ``batch_loss`` (mean mini-batch loss of the
        last chunk, ``nan`` after a reset), plus ``val_accuracy`` (vision) or ``val_perplexity``
        (text).
    """

    kind: ClassVar[str] = ""
    DATASETS: ClassVar[tuple[str, ...] | None] = None
    MODELS: ClassVar[tuple[str, ...]] = ()
    DEFAULT_EVAL_SIZE: ClassVar[int] = 512
    DEFAULT_VAL_SIZE: ClassVar[int | None] = None
    DEFAULT_TEST_SIZE: ClassVar[int | None] = None

    def __init__(
        self,
        instances: Sequence[TorchInstance | Mapping[str, Any]],
        *,
        optimizer: str = "sgd",
        optimizer_options: Mapping[str, float] | None = None,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        initial_lr: float | None = None,
        batch_size: int = 64,
        grad_clip: float | None = None,
        eval_size: int | None = None,
        val_size: int | None = None,
        test_size: int | None = None,
        device: str = "auto",
        amp: str = "auto",
        data_root: str | os.PathLike[str] = "data",
        download: bool = False,
        data_limit: int | None = None,
        divergence_factor: float = DEFAULT_DIVERGENCE_FACTOR,
    ) -> None:
        if isinstance(instances, TorchInstance | Mapping | str) or not isinstance(
            instances, Sequence
        ):
            raise TypeError(
                f"instances must be a sequence of TorchInstance, got {type(instances).__name__}."
            )
        if len(instances) == 0:
            raise ValueError("instances must not be empty.")
        self.instances: list[TorchInstance] = [as_torch_instance(i) for i in instances]
        for inst in self.instances:
            if self.DATASETS is not None and inst.dataset not in self.DATASETS:
                raise ValueError(
                    f"dataset must be one of {self.DATASETS} for {type(self).__name__}, "
                    f"got {inst.dataset!r}."
                )
            _check_choice("model", inst.model, self.MODELS)
        self.optimizer = _check_choice("optimizer", optimizer, (*OPTIMIZERS, *LR_FREE))
        self.optimizer_options = check_options(optimizer, optimizer_options, "optimizer_options")
        if not (isinstance(momentum, Real) and 0 <= momentum < 1):
            raise ValueError(f"momentum must be a float in [0, 1), got {momentum!r}.")
        if not (
            isinstance(weight_decay, Real) and math.isfinite(weight_decay) and weight_decay >= 0
        ):
            raise ValueError(f"weight_decay must be a finite float >= 0, got {weight_decay!r}.")
        if initial_lr is None:
            initial_lr = _default_lr(self.kind, optimizer)
        if not (isinstance(initial_lr, Real) and math.isfinite(initial_lr) and initial_lr > 0):
            raise ValueError(f"initial_lr must be None or a finite float > 0, got {initial_lr!r}.")
        for name, value in (("batch_size", batch_size), ("eval_size", eval_size)):
            if value is not None and (not is_int(value) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        for name, value in (
            ("val_size", val_size),
            ("test_size", test_size),
            ("data_limit", data_limit),
        ):
            if value is not None and (not is_int(value) or value < 1):
                raise ValueError(f"{name} must be None or an integer >= 1, got {value!r}.")
        if grad_clip is not None and not (
            isinstance(grad_clip, Real) and math.isfinite(grad_clip) and grad_clip > 0
        ):
            raise ValueError(f"grad_clip must be None or a finite float > 0, got {grad_clip!r}.")
        if not (
            isinstance(divergence_factor, Real)
            and math.isfinite(divergence_factor)
            and divergence_factor > 1
        ):
            raise ValueError(
                f"divergence_factor must be a finite float > 1, got {divergence_factor!r}."
            )
        if not isinstance(download, bool):
            raise TypeError(f"download must be a bool, got {type(download).__name__}.")
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self._initial_lr = float(initial_lr)
        self.batch_size = int(batch_size)
        self.grad_clip = None if grad_clip is None else float(grad_clip)
        self.eval_size = int(eval_size if eval_size is not None else self.DEFAULT_EVAL_SIZE)
        self.val_size = val_size if val_size is not None else self.DEFAULT_VAL_SIZE
        self.test_size = test_size if test_size is not None else self.DEFAULT_TEST_SIZE
        self.test_evaluations = 0
        """How many times :meth:`evaluate_test` ran (in this object's life)."""
        self._test_read = False
        self.device = resolve_device(device)
        self.amp = _check_choice("amp", amp, AMP_MODES)
        self.amp_dtype = autocast_dtype(self.amp, self.device)
        self.data_root = Path(data_root)
        self.download = download
        self.data_limit = data_limit
        self.divergence_factor = float(divergence_factor)
        self._prepared: dict[str, Any] = {}
        self.instance_index: int | None = None
        self.model: nn.Module | None = None
        self.optim: torch.optim.Optimizer | None = None
        self.stats: TaskStats | None = None
        self.metrics: dict[str, float] = {}
        self._data: Any = None
        self._generator: torch.Generator | None = None
        self._scaler: torch.amp.GradScaler | None = None
        self._initial_loss = math.nan
        self._steps = 0

    # ------------------------------------------------------------------ subclass hooks
    def _load(self, dataset: str) -> Any:
        """The data set on the CPU (cached per process)."""
        raise NotImplementedError

    def _prepare(self, raw: Any) -> Any:
        """Data on :attr:`device` with fixed evaluation sets ``x_eval, y_eval, x_val, y_val``.

        As :class:`~rl_scheduler.tasks.workloads.VisionData` or
        :class:`~rl_scheduler.tasks.workloads.TextData`.
        """
        raise NotImplementedError

    def _build_model(self, instance: TorchInstance, data: Any) -> nn.Module:
        """The instance's model (weights drawn from torch's global RNG, seeded by the caller)."""
        raise NotImplementedError

    def _sample(self, generator: torch.Generator) -> Any:
        """A training mini-batch on :attr:`device`."""
        raise NotImplementedError

    def _loss(self, batch: Any) -> torch.Tensor:
        """Mean cross-entropy of a batch, as a float32 scalar."""
        raise NotImplementedError

    def _metrics(self, val_loss: float, val_accuracy: float) -> dict[str, float]:
        """The extra measurements of :attr:`metrics` (besides ``batch_loss``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the Task protocol
    @property
    def instance(self) -> TorchInstance:
        self._require_reset()
        return self.instances[self.instance_index]

    @property
    def initial_lr(self) -> float:
        """The learning rate every run starts with."""
        return self._initial_lr

    @property
    def data(self) -> Any:
        """The current run's data on :attr:`device` (see the subclass)."""
        self._require_reset()
        return self._data

    @property
    def runs_determined_by_instance(self) -> bool:
        """Whether a run depends on its instance and the rates it is given only, so that runs
        can be cached per instance (``LRScheduleEnv``'s ``reward_baseline``): true on the CPU
        for models without dropout (the weights and the batches are seeded by the instance);
        GPU kernels need not be deterministic, and dropout draws from torch's global generator,
        which a policy in the same process also draws from."""
        no_dropout = all(not dict(inst.model_kwargs).get("dropout", 0.0) for inst in self.instances)
        return self.device.type == "cpu" and no_dropout

    def reset(self, seed: int | None = None, *, instance: int | None = None) -> TaskStats:
        """Start a new run: fresh model and optimizer for an instance of the set.

        Parameters
        ----------
        seed : int or None
            Picks the instance uniformly from the set (ignored when ``instance`` is given).
        instance : int or None
            Index of the instance to run instead.

        Returns
        -------
        TaskStats
            Statistics of the initial weights.
        """
        index = pick_instance(len(self.instances), seed, instance)
        inst = self.instances[index]
        if inst.dataset not in self._prepared:
            self._prepared[inst.dataset] = self._prepare(self._load(inst.dataset))
        self._data = self._prepared[inst.dataset]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(inst.seed)
            model = self._build_model(inst, self._data)
        self.model = model.to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.optimizer == "sgd":
            self.optim = torch.optim.SGD(
                params, lr=self._initial_lr, momentum=self.momentum, weight_decay=self.weight_decay
            )
        elif self.optimizer == "adam":
            self.optim = torch.optim.Adam(
                params, lr=self._initial_lr, weight_decay=self.weight_decay
            )
        else:
            self.optim = make_lr_free(
                self.optimizer,
                params,
                lr=self._initial_lr,
                weight_decay=self.weight_decay,
                model=self.model,
                **self.optimizer_options,
            )
        self._scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16
        )
        self._generator = torch.Generator().manual_seed(inst.seed)
        self.instance_index = index
        self._steps = 0
        self._test_read = False
        # Gradient norm of the first mini-batch, without consuming it from the batch stream.
        state = self._generator.get_state()
        batch = self._sample(self._generator)
        self._generator.set_state(state)
        self.model.train()
        self.optim.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self._loss(batch)
        loss.backward()
        grad_norm = float(_grad_norm(params))
        self.optim.zero_grad(set_to_none=True)
        train_loss, val_loss, extra = self._evaluate()
        self._initial_loss = train_loss
        if not (math.isfinite(train_loss) and train_loss > 0):
            raise ValueError(
                f"instance {inst!r} is degenerate: its initial training loss is {train_loss!r}."
            )
        self.metrics = {"batch_loss": math.nan, **extra}
        self.stats = TaskStats(
            loss=train_loss,
            val_loss=val_loss,
            grad_norm=grad_norm,
            lr=math.nan,
            bound=math.nan,
            steps_done=0,
            diverged=False,
        )
        return self.stats

    def advance(self, lr: float, n_steps: int) -> TaskStats:
        """Take ``n_steps`` optimizer steps at learning rate ``lr``, then evaluate.

        A non-finite mini-batch loss, or one above ``divergence_factor`` times the initial
        training objective, marks the run as diverged; the check happens once per chunk (one
        device synchronisation), so ``steps_done`` counts the whole chunk.
        """
        self._require_reset()
        if self._test_read:
            raise RuntimeError(
                "this run's test split was read (evaluate_test); training it further would "
                "let the test split influence a model: reset() first."
            )
        check_advance(lr, n_steps, self.stats)
        for group in self.optim.param_groups:
            group["lr"] = float(lr)
        params = [p for group in self.optim.param_groups for p in group["params"]]
        model, optim, scaler = self.model, self.optim, self._scaler
        model.train()
        losses, norms = [], []
        for _ in range(n_steps):
            batch = self._sample(self._generator)
            optim.zero_grad(set_to_none=True)
            with self._autocast():
                loss = self._loss(batch)
            scaler.scale(loss).backward()
            scaler.unscale_(optim)
            norm = _grad_norm(params)
            if self.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
            scaler.step(optim)
            scaler.update()
            losses.append(loss.detach())
            norms.append(norm.detach())
        self._steps += n_steps
        batch_losses = torch.stack(losses).double().cpu()
        norms_t = torch.stack(norms).double().cpu()
        finite_norms = norms_t[torch.isfinite(norms_t)]
        grad_norm = float(finite_norms.square().mean().sqrt()) if len(finite_norms) else math.nan
        limit = self.divergence_factor * self._initial_loss
        diverged = bool(not torch.isfinite(batch_losses).all() or float(batch_losses.max()) > limit)
        if diverged:
            train_loss, val_loss, extra = math.nan, math.nan, {}
        else:
            train_loss, val_loss, extra = self._evaluate()
            diverged = not math.isfinite(train_loss) or train_loss > limit
        self.metrics = {"batch_loss": float(batch_losses.mean()), **extra}
        self.stats = TaskStats(
            loss=train_loss if math.isfinite(train_loss) else math.inf,
            val_loss=val_loss,
            grad_norm=grad_norm,
            lr=float(lr),
            bound=math.nan,
            steps_done=self._steps,
            diverged=diverged,
        )
        return self.stats

    # ------------------------------------------------------------------ helpers
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[None]:
        """The model in eval mode at the weights to evaluate (Schedule-Free: its average);
        training mode and weights restored on exit."""
        self.model.eval()
        try:
            with evaluation_mode(self.optim):
                yield
        finally:
            self.model.train()

    def _evaluate(self) -> tuple[float, float, dict[str, float]]:
        """(training objective, validation loss, extra metrics) of the current weights
        (Schedule-Free: of its averaged weights)."""
        d, model = self._data, self.model
        with self._evaluating():
            train_loss, _ = mean_cross_entropy(model, d.x_eval, d.y_eval, self._autocast())
            val_loss, accuracy = mean_cross_entropy(model, d.x_val, d.y_val, self._autocast())
        return train_loss, val_loss, self._metrics(val_loss, accuracy)

    def evaluate_test(self) -> tuple[float, float]:
        """(test loss, test accuracy) of the current weights: the end of a run.

        The only reader of the test split (``data.x_test``). After it, :meth:`advance` refuses
        to train this run further, so a test number is always of a final model; controllers,
        the agent's observation and reward, and tuning see only :attr:`stats` (training
        objective and *validation* loss). Counted in :attr:`test_evaluations`.
        """
        self._require_reset()
        self._test_read = True
        self.test_evaluations += 1
        d, model = self._data, self.model
        with self._evaluating():
            return mean_cross_entropy(model, d.x_test, d.y_test, self._autocast())

    def _require_reset(self) -> None:
        if self.model is None:
            raise RuntimeError("call reset() first.")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_instances={len(self.instances)}, "
            f"optimizer={self.optimizer!r}, initial_lr={self._initial_lr:g}, "
            f"batch_size={self.batch_size}, device={str(self.device)!r})"
        )
