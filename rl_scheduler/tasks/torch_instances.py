"""Instances and devices of the deep-network tasks (:mod:`rl_scheduler.tasks.torch_tasks`).

An *instance* (:class:`TorchInstance`) is one training run's recipe -- a data set, a model and a
seed; :func:`vision_instance_set` and :func:`text_instance_set` build train and held-out sets with
disjoint seeds. :func:`resolve_device` and :func:`autocast_dtype` pick where and in which precision
a run trains.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from rl_scheduler.tasks.base import instance_seeds, is_int

__all__ = [
    "AMP_MODES",
    "TEXT_DATASETS",
    "TEXT_MODELS",
    "TorchInstance",
    "VISION_DATASETS",
    "VISION_MODELS",
    "as_torch_instance",
    "autocast_dtype",
    "resolve_device",
    "text_instance_set",
    "torch_instance_to_dict",
    "vision_instance_set",
]

VISION_DATASETS: tuple[str, ...] = ("digits", "fashion_mnist", "cifar10")
"""Image data sets of :class:`~rl_scheduler.tasks.torch_tasks.VisionTask` (``digits`` is built
in; the others are read from ``data_root/<name>/`` and downloaded there with ``download=True``)."""

TEXT_DATASETS: tuple[str, ...] = ("shakespeare", "tiny_shakespeare")
"""Named corpora of :class:`~rl_scheduler.tasks.torch_tasks.TextTask`; any other dataset name is
the path of a UTF-8 text file. ``shakespeare`` is four plays from the ``shakespeare`` package
(offline); ``tiny_shakespeare`` is ``data_root/tiny_shakespeare/input.txt`` (downloaded with
``download=True``)."""

VISION_MODELS: tuple[str, ...] = ("cnn", "resnet20", "mlp", "logreg")
TEXT_MODELS: tuple[str, ...] = ("gru", "lstm", "transformer")

AMP_MODES: tuple[str, ...] = ("auto", "off", "bf16", "fp16")
"""Mixed precision: ``auto`` is on for CUDA only (bf16 where supported natively, else fp16 with
a gradient scaler); ``bf16``/``fp16`` force it (also on the CPU, e.g. to test the code path)."""


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


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``amp`` (:data:`AMP_MODES`) on ``device``; ``None``: full precision."""
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
