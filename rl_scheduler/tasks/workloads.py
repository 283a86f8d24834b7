"""One workload layer: the data, model, loss and evaluation of every torch training run.

Both ways this project trains a torch model draw on this module:

* the deep-network tasks (:class:`~rl_scheduler.tasks.torch_tasks.VisionTask`,
  :class:`~rl_scheduler.tasks.torch_tasks.TextTask`) load a data set once per process
  (:func:`load_vision`, :func:`load_text`), put it on their device with fixed evaluation subsets
  (:func:`prepare_vision`, :func:`prepare_text`), build an instance's model
  (:func:`vision_model`, :func:`text_model`), train on :func:`classification_loss` /
  :func:`sequence_loss` and evaluate with :func:`mean_cross_entropy`;
* the GreedyLR study trains the :class:`Workload` objects of :func:`make_workload` (a noisy
  quadratic, three digits classifiers and a character GRU) step by step with its own optimizers.

Mini-batches come from one sampler per kind of data, in :mod:`rl_scheduler.tasks.data`:
:meth:`~rl_scheduler.tasks.data.TensorSplit.sample_batch` (images, uniform with replacement) and
:func:`~rl_scheduler.tasks.data.sample_windows` (random character windows). Every draw takes an
explicit :class:`torch.Generator`, so a run's batches are fixed by its seed.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rl_scheduler.tasks import data as datasets
from rl_scheduler.tasks import models
from rl_scheduler.tasks.base import is_int
from rl_scheduler.tasks.torch_instances import VISION_DATASETS

__all__ = [
    "CharLM",
    "Classification",
    "EVAL_BATCH",
    "EVAL_SEED",
    "NoisyQuadratic",
    "SPLIT_SEED",
    "TextData",
    "VALIDATION_FRACTION",
    "VisionData",
    "WORKLOADS",
    "Workload",
    "classification_loss",
    "digits",
    "load_text",
    "load_vision",
    "make_workload",
    "mean_cross_entropy",
    "prepare_text",
    "prepare_vision",
    "sequence_loss",
    "shakespeare",
    "split_text",
    "split_vision",
    "text_model",
    "vision_model",
]

EVAL_SEED = 2024
"""Seed of the fixed evaluation subsets and windows (the same for every run of a data set)."""

SPLIT_SEED = 7
"""Seed of the permutation that carves the validation images out of a data set's training split."""

VALIDATION_FRACTION = 0.2
"""Share of the training split held out as validation by :func:`split_vision` (images) and
:func:`split_text` (the end of the training stream; with the loaders' 10% test tail this is 18%
of the text)."""

EVAL_BATCH = 1024
"""Items per forward pass of :func:`mean_cross_entropy` (bounds memory on large sets)."""

WORKLOADS: tuple[str, ...] = ("quadratic", "logreg", "mlp", "cnn", "charlm")
"""Names accepted by :func:`make_workload`."""


# ---------------------------------------------------------------------------------- data
@functools.lru_cache(maxsize=4)
def digits(images: bool = True) -> datasets.TensorSplit:
    """scikit-learn's digits with the split of seed 0, as images ``(N, 1, 8, 8)`` or ``(N, 64)``.

    Cached: every caller in the process shares the same tensors (nobody writes to them).
    """
    return datasets.load_digits(images=images, seed=0)


@functools.lru_cache(maxsize=1)
def shakespeare() -> datasets.CharCorpus:
    """The default Shakespeare corpus (:func:`~rl_scheduler.tasks.data.load_shakespeare`), cached."""
    return datasets.load_shakespeare()


@functools.lru_cache(maxsize=8)
def load_vision(name: str, root: str, download: bool, limit: int | None) -> datasets.TensorSplit:
    """An image data set of :data:`~rl_scheduler.tasks.torch_instances.VISION_DATASETS`, cached.

    ``digits`` is built in (:func:`digits`); the others are read from ``root/<name>/`` (fetched
    there when ``download``), keeping the first ``limit`` images of each split.
    """
    if name == "digits":
        return digits(True)
    folder = Path(root) / name
    if name == "fashion_mnist":
        return datasets.load_fashion_mnist(folder, download=download, limit=limit)
    if name == "cifar10":
        return datasets.load_cifar10(folder, download=download, limit=limit)
    raise ValueError(f"dataset must be one of {VISION_DATASETS}, got {name!r}.")


@functools.lru_cache(maxsize=8)
def load_text(name: str, root: str, download: bool) -> datasets.CharCorpus:
    """A character corpus: ``shakespeare``, ``tiny_shakespeare`` (in ``root``) or a file path."""
    if name == "shakespeare":
        return shakespeare()
    if name == "tiny_shakespeare":
        return datasets.load_tiny_shakespeare(Path(root) / name, download=download)
    return datasets.load_text_file(name)


@dataclass(frozen=True)
class VisionData(datasets.TensorSplit):
    """An image data set on a device, split three ways, plus the fixed training subset.

    ``x_train, y_train`` are the training images (mini-batches come from the inherited
    :meth:`~rl_scheduler.tasks.data.TensorSplit.sample_batch`); ``x_val, y_val`` the validation
    images every controller, agent and tuner may read; ``x_test, y_test`` the test images, read
    only by :meth:`~rl_scheduler.tasks.torch_base.TorchTask.evaluate_test` once a run is over.

    Attributes
    ----------
    x_eval, y_eval : torch.Tensor
        The training images (and labels) of the fixed evaluation subset.
    x_test, y_test : torch.Tensor
        The test images (and labels).
    """

    x_eval: torch.Tensor
    y_eval: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass(frozen=True)
class TextData:
    """A corpus' training stream on a device with fixed training, validation and test windows.

    Mini-batches are windows of ``train_ids`` drawn by :func:`~rl_scheduler.tasks.data.sample_windows`.
    The three streams the windows come from are disjoint blocks of the text (:func:`split_text`).
    """

    train_ids: torch.Tensor
    x_eval: torch.Tensor
    y_eval: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    vocab_size: int


def split_vision(
    raw: datasets.TensorSplit,
) -> tuple[datasets.TensorSplit, torch.Tensor, torch.Tensor]:
    """Train / validation / test of an image data set: ``(train+validation split, x_test, y_test)``.

    The loader's held-out part (``raw.x_val``: the official test set of CIFAR-10 and
    Fashion-MNIST, the 359 held-out digits) is the **test** split. Validation is
    :data:`VALIDATION_FRACTION` of the loader's training images, chosen by a permutation seeded
    with :data:`SPLIT_SEED`; the rest is training. Deterministic, and the three index sets are
    disjoint by construction.
    """
    n = len(raw.y_train)
    n_val = max(1, int(round(VALIDATION_FRACTION * n)))
    if n - n_val < 1:
        raise ValueError(f"a vision data set needs >= 2 training images, got {n}.")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    val, train = perm[:n_val], perm[n_val:]
    split = datasets.TensorSplit(
        raw.x_train[train], raw.y_train[train], raw.x_train[val], raw.y_train[val], raw.n_classes
    )
    return split, raw.x_val, raw.y_val


def split_text(raw: datasets.CharCorpus) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train / validation / test streams of a corpus: three consecutive, disjoint blocks.

    The loader's tail (``raw.val_ids``, the last 10% of the text) is the **test** stream; the
    last :data:`VALIDATION_FRACTION` of the loader's training stream is validation; training is
    what precedes it. A window drawn from one stream never contains a character of another.
    """
    n = len(raw.train_ids)
    n_val = max(2, int(round(VALIDATION_FRACTION * n)))
    if n - n_val < 2:
        raise ValueError(f"a corpus needs a longer training stream, got {n} characters.")
    return raw.train_ids[:-n_val], raw.train_ids[-n_val:], raw.val_ids


def _subset(n: int, size: int | None, gen: torch.Generator) -> torch.Tensor:
    return torch.arange(n) if size is None else torch.randperm(n, generator=gen)[:size]


def prepare_vision(
    raw: datasets.TensorSplit,
    eval_size: int,
    val_size: int | None,
    device: torch.device,
    test_size: int | None = None,
) -> VisionData:
    """``raw`` split by :func:`split_vision`, on ``device``, with fixed evaluation subsets.

    ``eval_size`` training, ``val_size`` validation and ``test_size`` test images (``None``:
    all) are drawn by one generator seeded with :data:`EVAL_SEED`, so every run of a data set is
    measured on the same items.
    """
    split, x_test, y_test = split_vision(raw)
    gen = torch.Generator().manual_seed(EVAL_SEED)
    train_idx = torch.randperm(len(split.y_train), generator=gen)[:eval_size]
    val_idx = _subset(len(split.y_val), val_size, gen)
    test_idx = _subset(len(y_test), test_size, gen)
    return VisionData(
        x_train=split.x_train.to(device),
        y_train=split.y_train.to(device),
        x_val=split.x_val[val_idx].to(device),
        y_val=split.y_val[val_idx].to(device),
        n_classes=split.n_classes,
        x_eval=split.x_train[train_idx].to(device),
        y_eval=split.y_train[train_idx].to(device),
        x_test=x_test[test_idx].to(device),
        y_test=y_test[test_idx].to(device),
    )


def prepare_text(
    raw: datasets.CharCorpus,
    eval_size: int,
    val_size: int,
    seq_len: int,
    device: torch.device,
    test_size: int | None = None,
) -> TextData:
    """``raw`` split by :func:`split_text`, on ``device``, with fixed windows of ``seq_len``.

    ``eval_size`` training, ``val_size`` validation and ``test_size`` (default ``val_size``)
    test windows are drawn by one generator seeded with :data:`EVAL_SEED`.
    """
    train_ids, val_ids, test_ids = split_text(raw)
    gen = torch.Generator().manual_seed(EVAL_SEED)
    x_eval, y_eval = datasets.sample_windows(train_ids, eval_size, seq_len, gen)
    x_val, y_val = datasets.sample_windows(val_ids, val_size, seq_len, gen)
    x_test, y_test = datasets.sample_windows(
        test_ids, val_size if test_size is None else test_size, seq_len, gen
    )
    return TextData(
        train_ids.to(device),
        x_eval.to(device),
        y_eval.to(device),
        x_val.to(device),
        y_val.to(device),
        x_test.to(device),
        y_test.to(device),
        raw.vocab_size,
    )


# ---------------------------------------------------------------------------------- models
def vision_model(
    name: str, data: datasets.TensorSplit, overrides: Iterable[tuple[str, Any]] = ()
) -> nn.Module:
    """Model ``name`` of :data:`~rl_scheduler.tasks.torch_instances.VISION_MODELS` for ``data``.

    Defaults: ``cnn`` -- :class:`~rl_scheduler.tasks.models.SmallCNN` of width 8 on 8x8 images,
    else 16 with a pool after each block; ``resnet20`` -- ResNet-20; ``mlp`` -- one hidden layer
    of 64; ``logreg`` -- linear. ``overrides`` (name, value) pairs replace them. The weights are
    drawn from torch's global RNG: seed it first.
    """
    shape, n_classes = data.input_shape, data.n_classes
    if name in ("cnn", "resnet20"):
        defaults: dict[str, Any] = {"in_channels": int(shape[0]), "n_classes": n_classes}
        if name == "cnn":
            small = int(shape[1]) <= 8
            defaults |= {"width": 8 if small else 16, "pool_every_block": not small}
    else:
        defaults = {"in_features": int(np.prod(shape)), "n_classes": n_classes}
        if name == "mlp":
            defaults["hidden"] = (64,)
    return models.build_model(name, **(defaults | dict(overrides)))


def text_model(
    name: str, vocab_size: int, seq_len: int, overrides: Iterable[tuple[str, Any]] = ()
) -> nn.Module:
    """Model ``name`` of :data:`~rl_scheduler.tasks.torch_instances.TEXT_MODELS`.

    Defaults: ``gru`` / ``lstm`` with embedding 32 and hidden size 64; ``transformer`` with the
    defaults of :class:`~rl_scheduler.tasks.models.TinyTransformerLM` and ``max_len = seq_len``.
    ``overrides`` replace them; the weights come from torch's global RNG.
    """
    if name == "transformer":
        defaults: dict[str, Any] = {"vocab_size": vocab_size, "max_len": seq_len}
    else:
        defaults = {"vocab_size": vocab_size, "embed_dim": 32, "hidden_size": 64}
    return models.build_model(name, **(defaults | dict(overrides)))


# ---------------------------------------------------------------------------------- losses
def classification_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy of ``model`` on ``batch = (x, y)``, computed in float32."""
    x, y = batch
    return F.cross_entropy(model(x).float(), y)


def sequence_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over every position of ``batch = (x, y)``, ``(B, T)`` each."""
    x, y = batch
    logits = model(x).float()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def mean_cross_entropy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    autocast: contextlib.AbstractContextManager | None = None,
    batch_size: int = EVAL_BATCH,
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on ``(x, y)`` over every label (or position).

    Evaluates ``batch_size`` items at a time inside ``autocast`` (default: none) and sums in
    float32; the caller puts the model in eval mode.
    """
    total, correct, count = 0.0, 0, 0
    with autocast if autocast is not None else contextlib.nullcontext():
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            logits = model(xb).float()
            flat, target = logits.reshape(-1, logits.shape[-1]), yb.reshape(-1)
            total += float(F.cross_entropy(flat, target, reduction="sum"))
            correct += int((flat.argmax(-1) == target).sum())
            count += target.numel()
    return total / count, correct / count


# ---------------------------------------------------------------------------------- workloads
class Workload(abc.ABC):
    """A model with its data: mini-batches, a loss, and a fixed evaluation of train/val loss.

    Attributes
    ----------
    model : torch.nn.Module
        The trained model (its parameters are the optimizer's).
    steps_per_epoch : int
        Mini-batches in one pass over the training data (for schedules that need it).
    """

    model: nn.Module
    steps_per_epoch: int

    @abc.abstractmethod
    def sample(self, generator: torch.Generator) -> Any:
        """A training mini-batch (whatever :meth:`loss` takes), drawn from ``generator``."""

    @abc.abstractmethod
    def loss(self, batch: Any) -> torch.Tensor:
        """Scalar training loss of ``batch`` (differentiable)."""

    @abc.abstractmethod
    def evaluate(self) -> tuple[float, float]:
        """(training objective on a fixed evaluation set, validation loss)."""


class NoisyQuadratic(Workload):
    """``f(x) = 1/2 sum_i h_i (x_i - x*_i)^2`` with curvatures log-spaced in ``[0.01, 1]``.

    A mini-batch draws ``xi ~ N(0, noise^2)`` per coordinate and its loss is
    ``1/2 sum_i h_i (x_i - x*_i - xi_i)^2``: an unbiased gradient with noise ``h_i xi_i``. The
    optimum ``x*`` (drawn from the seed) is known, so :meth:`evaluate` returns the exact excess
    loss ``f(x) - f(x*)`` (twice: there is no separate validation set).

    Parameters
    ----------
    seed : int
        Seeds ``x*`` (through a generator seeded with ``10_000 + seed``).
    dim : int, default 50
    noise : float, default 1.0
        Standard deviation of ``xi`` (``>= 0``).
    """

    def __init__(self, seed: int, dim: int = 50, noise: float = 1.0) -> None:
        _check_int("seed", seed, 0)
        _check_int("dim", dim, 1)
        if not (isinstance(noise, Real) and math.isfinite(noise) and noise >= 0):
            raise ValueError(f"noise must be a finite float >= 0, got {noise!r}.")
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
    """Cross-entropy of ``model`` on a :class:`~rl_scheduler.tasks.data.TensorSplit` (e.g. digits).

    :meth:`evaluate` returns the mean cross-entropy on the whole training and validation sets.

    Parameters
    ----------
    split : TensorSplit
    model : torch.nn.Module
    batch_size : int, default 64
    """

    def __init__(self, split: datasets.TensorSplit, model: nn.Module, batch_size: int = 64) -> None:
        _check_int("batch_size", batch_size, 1)
        self.split = split
        self.model = model
        self.batch_size = batch_size
        self.steps_per_epoch = max(1, len(split.y_train) // batch_size)

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split.sample_batch(self.batch_size, generator)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return classification_loss(self.model, batch)

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        s = self.split
        return (
            float(F.cross_entropy(self.model(s.x_train), s.y_train)),
            float(F.cross_entropy(self.model(s.x_val), s.y_val)),
        )


class CharLM(Workload):
    """Next-character cross-entropy on random windows of a :class:`~rl_scheduler.tasks.data.CharCorpus`.

    The evaluation uses fixed windows (the same for every run, drawn with :data:`EVAL_SEED`):
    ``n_eval`` from the training stream and ``n_eval`` from the validation stream.

    Parameters
    ----------
    corpus : CharCorpus
    model : torch.nn.Module
        Maps ``(B, T)`` ids to ``(B, T, vocab_size)`` logits.
    batch_size : int, default 64
        Windows per mini-batch.
    seq_len : int, default 16
        Characters per window.
    n_eval : int, default 256
    """

    def __init__(
        self,
        corpus: datasets.CharCorpus,
        model: nn.Module,
        batch_size: int = 64,
        seq_len: int = 16,
        n_eval: int = 256,
    ) -> None:
        for name, value in (("batch_size", batch_size), ("seq_len", seq_len), ("n_eval", n_eval)):
            _check_int(name, value, 1)
        self.corpus = corpus
        self.model = model
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.steps_per_epoch = max(1, len(corpus.train_ids) // (batch_size * seq_len))
        gen = torch.Generator().manual_seed(EVAL_SEED)
        self.eval_train = corpus.sample_batch(n_eval, seq_len, gen, split="train")
        self.eval_val = corpus.sample_batch(n_eval, seq_len, gen, split="val")

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.corpus.sample_batch(self.batch_size, self.seq_len, generator)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return sequence_loss(self.model, batch)

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        return float(self.loss(self.eval_train)), float(self.loss(self.eval_val))


def make_workload(name: str, seed: int) -> Workload:
    """Build a workload of :data:`WORKLOADS`; the model's initial weights come from ``seed``.

    ``quadratic``: 50-dim noisy quadratic. ``logreg`` / ``mlp`` (one hidden layer of 64) /
    ``cnn`` (:class:`~rl_scheduler.tasks.models.SmallCNN`, width 8): digits, batch 64, same
    train/val split for every run. ``charlm``: a GRU (embedding 32, hidden 64) on four plays,
    batches of 64 windows of 16 characters.

    Seeds torch's global RNG with ``seed`` (the model's weights are drawn from it).

    Raises
    ------
    ValueError
        For a name outside :data:`WORKLOADS` or a seed that is not an integer ``>= 0``.
    """
    if name not in WORKLOADS:
        raise ValueError(f"workload must be one of {WORKLOADS}, got {name!r}")
    _check_int("seed", seed, 0)
    torch.manual_seed(seed)
    if name == "quadratic":
        return NoisyQuadratic(seed)
    if name in ("logreg", "mlp"):
        split = digits(False)
        model = models.LogisticRegression(64, 10) if name == "logreg" else models.MLP(64, 10, (64,))
        return Classification(split, model)
    if name == "cnn":
        return Classification(digits(True), models.SmallCNN(1, 10, width=8))
    corpus = shakespeare()
    return CharLM(corpus, models.CharGRU(corpus.vocab_size, embed_dim=32, hidden_size=64))


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
