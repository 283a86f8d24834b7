"""Non-negative data matrices: synthetic low-rank, scikit-learn digits, scikit-image faces, user files.

Every loader returns a float64 array ``V`` of shape ``(samples, features)`` with entries in a
known range, ready for :class:`nmf.StochasticNMF`. Real data ships with the installed packages,
so nothing is downloaded.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from numbers import Integral
from os import PathLike
from pathlib import Path

import numpy as np

from nmf.problem import Array, StochasticNMF, stream_rng
from nmf.validation import as_real_array, check_integer, check_real, is_integer


def synthetic(
    m: int = 200,
    n: int = 100,
    rank: int = 10,
    *,
    noise: float = 0.1,
    seed: int | None = None,
) -> Array:
    """A random non-negative rank-``rank`` matrix plus noise, clipped at zero.

    ``V = max(0, W* H* + noise * std(W* H*) * N(0, 1))`` with ``W*``, ``H*`` uniform on ``[0, 1)``,
    so ``noise`` is the noise-to-signal ratio of the entries. ``seed`` (None or an integer >= 0)
    draws from its ``"data"`` stream (:func:`nmf.problem.stream_rng`), independent of the initial
    factors and gradient noise of the same seed.
    """
    for name, value in (("m", m), ("n", n), ("rank", rank)):
        check_integer(name, value, low=1)
    check_real("noise", noise, low=0.0)
    rng = stream_rng(seed, "data")
    m, n, rank = int(m), int(n), int(rank)
    clean = rng.random((m, rank)) @ rng.random((rank, n))
    return np.maximum(clean + noise * clean.std() * rng.standard_normal((m, n)), 0.0)


def digits() -> Array:
    """scikit-learn's 1797 handwritten 8x8 digits as a (1797, 64) matrix scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    return load_digits().data.astype(np.float64) / 16.0


def faces() -> Array:
    """scikit-image's 100 face crops of 25x25 pixels as a (100, 625) matrix in [0, 1].

    ``skimage.data.lfw_subset`` holds 100 faces followed by 100 non-face background patches;
    only the faces are used.
    """
    from skimage.data import lfw_subset
    from skimage.util import img_as_float

    images = img_as_float(lfw_subset()[:100])
    return images.reshape(len(images), -1).astype(np.float64)


def load_matrix(path: str | Path) -> Array:
    """A user's matrix from a ``.npy`` or ``.csv`` (comma-separated, no header) file, as float64.

    A ``.npy`` file must hold a 2-D array of integers or floats: boolean, string, object and
    complex arrays are rejected rather than converted (complex data would lose its imaginary
    part). Whether the entries suit NMF (finite, non-negative) is checked by
    :class:`nmf.StochasticNMF`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path {str(path)!r} is not a file.")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".csv"):
        raise ValueError(f"path must end in .npy or .csv, got {path.name!r}.")
    try:
        if suffix == ".npy":
            V = np.load(path, allow_pickle=False)
        else:
            V = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except (TypeError, ValueError) as err:
        what = "a numeric .npy array" if suffix == ".npy" else "comma-separated numbers, no header"
        raise ValueError(f"could not read {str(path)!r} as {what}: {err}") from None
    V = as_real_array(f"the matrix in {path.name!r}", V, copy=False)
    if V.ndim != 2:
        raise ValueError(f"the matrix in {path.name!r} must be 2-D, got shape {V.shape}.")
    return V


DATASETS = {"synthetic": synthetic, "digits": digits, "faces": faces}


def load_dataset(name: str | PathLike, **kwargs) -> Array:
    """A data matrix by name or path.

    Parameters
    ----------
    name : str or path-like
        ``"synthetic"``, ``"digits"``, ``"faces"`` (see :data:`DATASETS`), or a ``.npy`` or
        ``.csv`` file (see :func:`load_matrix`).
    **kwargs
        Keyword arguments of the loader: those of :func:`synthetic` for ``"synthetic"``; the
        other datasets and files take none.

    Raises
    ------
    TypeError
        Naming every keyword argument that the chosen loader does not take.
    """
    if isinstance(name, str) and name in DATASETS:
        load = DATASETS[name]
        takes = list(inspect.signature(load).parameters)
    elif isinstance(name, str | PathLike) and Path(name).suffix.lower() in (".npy", ".csv"):
        load, takes = (lambda: load_matrix(name)), []
    else:
        raise ValueError(
            f"dataset must be one of {sorted(DATASETS)} or a .npy/.csv path, got {name!r}."
        )
    unknown = sorted(set(kwargs) - set(takes))
    if unknown:
        raise TypeError(
            f"load_dataset({str(name)!r}) got unknown keyword arguments {unknown}; "
            f"it takes {', '.join(takes) if takes else 'none'}."
        )
    return load(**kwargs)


ROW_POOLS = ("train", "test")
"""The disjoint halves of a real data matrix's rows that train and held-out instances draw from."""

ROW_POOL_SEED = 20_240_601
"""Seed of the fixed row permutation that splits a real matrix into its two row pools."""


def row_pool_indices(n_rows: int, pool: str | None) -> np.ndarray:
    """The rows (sorted indices) of a matrix with ``n_rows`` rows that ``pool`` may use.

    A fixed permutation (seeded by :data:`ROW_POOL_SEED`) is cut in two: ``"train"`` is its first
    ``n_rows // 2`` rows, ``"test"`` the rest, so the pools are disjoint and every row is in
    one. ``None`` gives all rows.
    """
    check_integer("n_rows", n_rows, low=1)
    if pool is None:
        return np.arange(int(n_rows))
    if pool not in ROW_POOLS:
        raise ValueError(f"row_pool must be None or one of {ROW_POOLS}, got {pool!r}.")
    order = np.random.default_rng(ROW_POOL_SEED).permutation(int(n_rows))
    half = int(n_rows) // 2
    return np.sort(order[:half] if pool == "train" else order[half:])


@dataclass(frozen=True)
class NMFInstance:
    """A JSON-able recipe for one problem: data source, rank and gradient noise.

    ``seed`` seeds the synthetic data or the row subsample (if any), the initial factors and the
    gradient noise, through independent streams (:func:`nmf.problem.stream_rng`), so two instances
    that differ only in ``seed`` are independent draws of the same kind of problem.
    ``size`` is ``(m, n)`` for synthetic data and a row subsample for real data (``None``: all rows
    of the pool). ``row_pool`` (real data only) restricts the rows to one half of the matrix
    (:func:`row_pool_indices`): train instances use ``"train"``, held-out ones ``"test"``, so no
    held-out instance shares a row with a training instance; ``None`` uses every row.
    """

    dataset: str = "synthetic"
    rank: int = 10
    noise_std: float = 0.0
    batch_size: int | None = None
    seed: int = 0
    size: tuple[int, int] | int | None = None
    data_noise: float = 0.1
    data_rank: int | None = None
    row_pool: str | None = None

    def __post_init__(self) -> None:
        if self.row_pool is not None and (
            self.dataset == "synthetic" or self.row_pool not in ROW_POOLS
        ):
            allowed = "None (synthetic data is drawn fresh per seed)"
            if self.dataset != "synthetic":
                allowed = f"None or one of {ROW_POOLS}"
            raise ValueError(
                f"row_pool of a {self.dataset!r} instance must be {allowed}, got {self.row_pool!r}."
            )
        # A size that data() would silently ignore or misread is refused.
        size = self.size
        if size is None:
            return
        if self.dataset == "synthetic":
            allowed = "None or a pair (m, n) of integers >= 1"
            ok = isinstance(size, tuple | list) and len(size) == 2
            ok = ok and all(is_integer(v) and v >= 1 for v in size)
        else:
            allowed = "None (all rows) or a row count, an integer >= 1"
            ok = is_integer(size) and size >= 1
        if not ok:
            raise ValueError(
                f"size of a {self.dataset!r} instance must be {allowed}, got {size!r}."
            )

    def data(self) -> Array:
        """The matrix V of this instance."""
        if self.dataset == "synthetic":
            m, n = self.size if isinstance(self.size, tuple | list) else (200, 100)
            return synthetic(
                m, n, self.data_rank or self.rank, noise=self.data_noise, seed=self.seed
            )
        V = load_dataset(self.dataset)
        pool = row_pool_indices(len(V), self.row_pool)
        if self.row_pool is not None and isinstance(self.size, Integral) and self.size > len(pool):
            raise ValueError(
                f"size {self.size} of a {self.dataset!r} instance exceeds the {len(pool)} rows of "
                f"its {self.row_pool!r} row pool (half of the matrix's {len(V)} rows)."
            )
        if isinstance(self.size, Integral) and self.size < len(pool):
            rows = stream_rng(self.seed, "data").choice(len(pool), self.size, replace=False)
            pool = pool[np.sort(rows)]
        return V[pool] if self.row_pool is not None or len(pool) < len(V) else V

    def build(self) -> StochasticNMF:
        """The :class:`StochasticNMF` of this instance (``seed`` is also its default seed)."""
        return StochasticNMF(
            self.data(),
            self.rank,
            noise_std=self.noise_std,
            batch_size=self.batch_size,
            seed=self.seed,
        )
