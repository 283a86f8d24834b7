"""The stochastic NMF problem: data, Frobenius loss, exact and noisy gradients, initialisation."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]

SEED_STREAMS = ("data", "init", "noise")
"""The independent random streams that one seed stands for (see :func:`stream_rng`)."""


def check_seed(seed: object, name: str = "seed") -> None:
    """Seeds are ``None`` (fresh entropy) or an integer >= 0 (Python or numpy integer, not bool)."""
    if seed is not None and (not isinstance(seed, Integral) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"{name} must be None or an integer >= 0, got {seed!r}.")


def stream_rng(seed: int | None, stream: str) -> np.random.Generator:
    """The generator of one of the :data:`SEED_STREAMS` of ``seed``.

    ``np.random.SeedSequence(seed).spawn(3)`` gives one child per stream, so the synthetic data,
    the initial factors and the gradient noise drawn from one seed are independent of each other.
    """
    check_seed(seed)
    children = np.random.SeedSequence(None if seed is None else int(seed)).spawn(len(SEED_STREAMS))
    return np.random.default_rng(children[SEED_STREAMS.index(stream)])


def frobenius_norm(*arrays: Array) -> float:
    """Euclidean norm of all entries together, rescaled where their squares overflow."""
    with np.errstate(over="ignore"):
        norm = math.hypot(*(float(np.linalg.norm(a)) for a in arrays))
    if math.isinf(norm):
        scale = max(float(np.abs(a).max()) for a in arrays)
        if math.isfinite(scale):
            norm = scale * math.hypot(*(float(np.linalg.norm(a / scale)) for a in arrays))
    return norm


def as_real_array(name: str, X: ArrayLike) -> Array:
    """A float64 copy of ``X``, or a ``ValueError`` naming ``name`` if ``X`` is not real numbers."""
    if isinstance(X, np.ma.MaskedArray) and np.ma.is_masked(X):
        raise ValueError(f"{name} has masked entries; fill them first (e.g. {name}.filled(0)).")
    try:
        if np.iscomplexobj(X):
            raise TypeError("it has complex entries")
        return np.array(X, dtype=np.float64)
    except (TypeError, ValueError) as err:  # ragged lists, strings, objects, complex numbers
        raise ValueError(f"{name} must be an array of real numbers ({err}).") from None


class StochasticNMF:
    """Non-negative factorisation ``V ~ W @ H`` under the loss ``0.5 * ||V - W H||_F^2``.

    Parameters
    ----------
    V : array-like of shape (m, n)
        Non-negative, finite data. Stored as a read-only float64 copy.
    rank : int
        Inner dimension r of the factorisation, ``1 <= rank <= min(m, n)``.
    noise_std : float, default 0.0
        Standard deviation of the additive Gaussian noise that the stochastic oracle puts on every
        entry of both gradients.
    batch_size : int or None, default None
        If given, the stochastic oracle uses a mini-batch of ``batch_size`` columns of V drawn
        without replacement and rescales it by ``n / batch_size`` so that it stays unbiased:
        ``gW`` sums the batch's contributions, ``gH`` is non-zero on the batch's columns only.
        ``None`` uses all columns. Mini-batches change only the noise of the gradient, not the
        cost of a step: :class:`nmf.ProjectedSGD` still computes the full residual ``W H - V``
        (and the exact gradient) of every iterate for its loss, gradient norm and bounds.
    seed : int or None, default None
        Default seed of :meth:`init` and of :class:`nmf.ProjectedSGD` (None or an integer >= 0).

    Notes
    -----
    The stochastic oracle applies both sources of noise when both are configured: first the
    mini-batch, then the Gaussian noise on top. Both keep the estimate unbiased, and
    :meth:`gradient_noise_variance` gives its exact total variance ``E||g_hat - g||^2``, which the
    noisy stability bound needs.
    """

    def __init__(
        self,
        V: ArrayLike,
        rank: int,
        *,
        noise_std: float = 0.0,
        batch_size: int | None = None,
        seed: int | None = None,
    ) -> None:
        V = as_real_array("V", V)
        if V.ndim != 2:
            raise ValueError(f"V must be a 2-D matrix, got an array with shape {V.shape}.")
        if V.size == 0:
            raise ValueError(f"V must not be empty, got shape {V.shape}.")
        if not np.all(np.isfinite(V)):
            raise ValueError("V must contain only finite values (found NaN or inf).")
        if np.any(V < 0):
            raise ValueError(f"V must be non-negative (minimum entry is {V.min():g}).")
        m, n = V.shape
        if not isinstance(rank, Integral) or isinstance(rank, bool) or not 1 <= rank <= min(m, n):
            raise ValueError(
                f"rank must be an integer in [1, min(m, n)] = [1, {min(m, n)}], got {rank!r}."
            )
        if (
            not isinstance(noise_std, Real)
            or isinstance(noise_std, bool)
            or not np.isfinite(noise_std)
            or noise_std < 0
        ):
            raise ValueError(f"noise_std must be a finite float >= 0, got {noise_std!r}.")
        if batch_size is not None and (
            not isinstance(batch_size, Integral)
            or isinstance(batch_size, bool)
            or not 1 <= batch_size <= n
        ):
            raise ValueError(
                f"batch_size must be None or an integer in [1, n] = [1, {n}], got {batch_size!r}."
            )
        V.setflags(write=False)
        self.V: Array = V
        self.rank = int(rank)
        self.noise_std = float(noise_std)
        self.batch_size = None if batch_size is None or batch_size == n else int(batch_size)
        check_seed(seed)
        self.seed = seed
        self._norm_V = float(np.linalg.norm(V))

    # ------------------------------------------------------------------ shapes and set-up
    @property
    def shape(self) -> tuple[int, int]:
        """``(m, n)``, the shape of V."""
        return self.V.shape  # type: ignore[return-value]

    @property
    def n_params(self) -> int:
        """Number of entries of W and H together, ``rank * (m + n)``."""
        m, n = self.shape
        return self.rank * (m + n)

    @property
    def is_stochastic(self) -> bool:
        """Whether :meth:`stochastic_gradient` differs from :meth:`gradient`."""
        return self.noise_std > 0 or self.batch_size is not None

    def init(self, seed: int | None = None) -> tuple[Array, Array]:
        """Random non-negative factors scaled so that ``W @ H`` has the mean of V.

        Entries are ``sqrt(mean(V) / rank) * |N(0, 1)|``, scikit-learn's ``init="random"`` rule,
        drawn from the ``"init"`` stream of ``seed`` (default: the problem's seed), which is
        independent of the data and gradient noise of the same seed (:func:`stream_rng`).
        """
        rng = stream_rng(self.seed if seed is None else seed, "init")
        m, n = self.shape
        scale = np.sqrt(max(self.V.mean(), np.finfo(float).tiny) / self.rank)
        W = scale * np.abs(rng.standard_normal((m, self.rank)))
        H = scale * np.abs(rng.standard_normal((self.rank, n)))
        return W, H

    def _check_factors(self, W: Array, H: Array, names: tuple[str, str] = ("W", "H")) -> None:
        m, n = self.shape
        if W.shape != (m, self.rank) or H.shape != (self.rank, n):
            raise ValueError(
                f"{names[0]} and {names[1]} must have shapes {(m, self.rank)} and {(self.rank, n)}, "
                f"got {W.shape} and {H.shape}."
            )

    # ------------------------------------------------------------------ loss and gradients
    def residual(self, W: Array, H: Array) -> Array:
        """``R = W @ H - V`` (the sign makes ``gW = R @ H.T``)."""
        self._check_factors(W, H)
        return W @ H - self.V

    def loss(self, W: Array, H: Array) -> float:
        """Frobenius loss ``0.5 * ||V - W H||_F^2``."""
        return 0.5 * float(np.linalg.norm(self.residual(W, H)) ** 2)

    def relative_error(self, W: Array, H: Array) -> float:
        """``||V - W H||_F / ||V||_F`` (scikit-learn's ``reconstruction_err_`` over ``||V||_F``)."""
        return float(np.linalg.norm(self.residual(W, H))) / max(self._norm_V, np.finfo(float).tiny)

    def relative_error_from_loss(self, loss: float) -> float:
        """The relative error that corresponds to a loss value."""
        return float(np.sqrt(2.0 * loss)) / max(self._norm_V, np.finfo(float).tiny)

    def gradient(self, W: Array, H: Array, residual: Array | None = None) -> tuple[Array, Array]:
        """Exact gradient ``(R H^T, W^T R)`` of the loss; pass ``residual`` to reuse ``W H - V``."""
        R = self.residual(W, H) if residual is None else residual
        return R @ H.T, W.T @ R

    def stochastic_gradient(
        self,
        W: Array,
        H: Array,
        rng: np.random.Generator,
        residual: Array | None = None,
        gradient: tuple[Array, Array] | None = None,
    ) -> tuple[Array, Array]:
        """An unbiased noisy gradient: column mini-batch (if configured), then Gaussian noise.

        Parameters
        ----------
        W, H : arrays
            The current factors.
        rng : numpy.random.Generator
            Source of all randomness of the oracle.
        residual : array, optional
            ``W @ H - V`` if the caller already has it (saves one matrix product).
        gradient : pair of arrays, optional
            The exact gradient, if the caller already has it (saves two matrix products when
            there is no mini-batch; a mini-batch computes its own gradient).
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}.")
        if self.batch_size is None:
            gW, gH = self.gradient(W, H, residual) if gradient is None else gradient
        else:
            R = self.residual(W, H) if residual is None else residual
            n = self.shape[1]
            cols = rng.choice(n, size=self.batch_size, replace=False)
            scale = n / self.batch_size
            R_batch = R[:, cols]
            gW = scale * (R_batch @ H[:, cols].T)
            gH = np.zeros_like(H)
            gH[:, cols] = scale * (W.T @ R_batch)
        if self.noise_std > 0:
            gW = gW + self.noise_std * rng.standard_normal(gW.shape)
            gH = gH + self.noise_std * rng.standard_normal(gH.shape)
        return gW, gH

    def gradient_noise_variance(
        self,
        W: Array,
        H: Array,
        residual: Array | None = None,
        gradient: tuple[Array, Array] | None = None,
    ) -> float:
        """Exact ``E||g_hat - g||^2`` of :meth:`stochastic_gradient` at ``(W, H)``.

        The mini-batch part follows from sampling ``b`` of ``n`` column contributions without
        replacement; the Gaussian part adds ``noise_std^2 * n_params``. Pass ``residual`` and the
        exact ``gradient`` if already known.
        """
        variance = self.noise_std * self.noise_std * self.n_params  # inf, not OverflowError
        if self.batch_size is None:
            return variance
        R = self.residual(W, H) if residual is None else residual
        n, b = self.shape[1], self.batch_size
        r_norm2 = np.einsum("ij,ij->j", R, R)
        # gW = sum_j c_j with c_j = r_j h_j^T, ||c_j||^2 = ||r_j||^2 ||h_j||^2.
        c_norm2 = r_norm2 * np.einsum("ij,ij->j", H, H)
        gW, U = self.gradient(W, H, R) if gradient is None else gradient
        gW_norm2 = float(np.einsum("ij,ij->", gW, gW))
        spread = (c_norm2.sum() - gW_norm2 / n) / (n - 1)  # sample variance of the c_j
        variance += n * n * (1.0 - b / n) * spread / b
        # Column j of gH is (n/b) u_j with probability b/n, else 0, where u_j = W^T r_j.
        variance += (n / b - 1.0) * float(np.einsum("ij,ij->", U, U))
        return float(variance)

    def max_stochastic_gradient_norm(
        self,
        W: Array,
        H: Array,
        residual: Array | None = None,
        gradient: tuple[Array, Array] | None = None,
    ) -> float:
        """A sure upper bound on ``||g_hat||`` over every mini-batch, before Gaussian noise."""
        R = self.residual(W, H) if residual is None else residual
        gW, U = self.gradient(W, H, R) if gradient is None else gradient
        if self.batch_size is None:
            return frobenius_norm(gW, U)
        n, b = self.shape[1], self.batch_size
        r_norm = np.sqrt(np.einsum("ij,ij->j", R, R))
        h_norm = np.sqrt(np.einsum("ij,ij->j", H, H))
        u_norm2 = np.einsum("ij,ij->j", U, U)
        top_c = np.sort(r_norm * h_norm)[-b:].sum()
        top_u = np.sort(u_norm2)[-b:].sum()
        return float((n / b) * np.sqrt(top_c**2 + top_u))

    def __repr__(self) -> str:
        m, n = self.shape
        return (
            f"StochasticNMF(shape=({m}, {n}), rank={self.rank}, noise_std={self.noise_std}, "
            f"batch_size={self.batch_size})"
        )


def projected_step(
    W: Array,
    H: Array,
    gW: Array,
    gH: Array,
    lr: float,
    *,
    clip: float | None = None,
    box: float | None = None,
) -> tuple[Array, Array]:
    """One projected gradient step with optional update clipping and a value box.

    Each entry moves by ``clip(-lr * g, -clip, clip)`` and is then projected onto ``[0, box]``
    (``[0, inf)`` without a box). This equals the Euclidean projection of ``x - lr * g`` onto the
    convex box ``{y : 0 <= y <= box, |y - x| <= clip}``, which contains ``x``; the stability bound
    rests on that fact (docs/theory/nmf_stability.md).
    """
    uW, uH = -lr * gW, -lr * gH
    if clip is not None:
        uW, uH = np.clip(uW, -clip, clip), np.clip(uH, -clip, clip)
    upper = np.inf if box is None else box
    return np.clip(W + uW, 0.0, upper), np.clip(H + uH, 0.0, upper)
