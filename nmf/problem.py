"""The stochastic NMF problem: data, Frobenius loss, exact and noisy gradients, initialisation."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from nmf.validation import (
    Array,
    as_real_array,
    check_integer,
    check_real,
    check_seed,
    is_real,
)

try:  # the ufunc np.clip ends in, without np.clip's Python layers: the same bits, half the time
    from numpy._core.umath import clip as _clip  # per SGD step
except ImportError:  # numpy < 2
    from numpy.core.umath import clip as _clip

SEED_STREAMS = ("data", "init", "noise")
"""The independent random streams that one seed stands for (see :func:`stream_rng`)."""


def stream_rng(seed: int | None, stream: str) -> np.random.Generator:
    """The generator of one of the :data:`SEED_STREAMS` of ``seed``.

    ``np.random.SeedSequence(seed).spawn(3)`` gives one child per stream, so the synthetic data,
    the initial factors and the gradient noise drawn from one seed are independent of each other.
    """
    check_seed(seed)
    children = np.random.SeedSequence(None if seed is None else int(seed)).spawn(len(SEED_STREAMS))
    return np.random.default_rng(children[SEED_STREAMS.index(stream)])


_SAFE_NORM = 1e-146
"""Below this norm the sum of squares is under ``tiny / eps`` (``np.finfo(float)``), so squares
that underflowed (fell below ``tiny``) may have changed it: :func:`frobenius_norm` rescales."""


def frobenius_norm(*arrays: Array) -> float:
    """Euclidean norm of all entries together, rescaled where their squares over- or underflow.

    Where the plain sum of squares is safe (a norm in ``[1e-146, inf)``) it is used as it is;
    otherwise the entries are divided by the largest one before squaring.
    """
    with np.errstate(over="ignore"):
        norm = math.hypot(*(float(np.linalg.norm(a)) for a in arrays))
    if not _SAFE_NORM <= norm < math.inf:
        scale = max(float(np.abs(a).max(initial=0.0)) for a in arrays)
        if 0.0 < scale < math.inf:
            norm = scale * math.hypot(*(float(np.linalg.norm(a / scale)) for a in arrays))
    return norm


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
        norm_V = frobenius_norm(V)
        if not math.isfinite(0.5 * norm_V * norm_V):
            raise ValueError(
                f"V is too large for float64: ||V||_F = {norm_V:.3g}, so the loss "
                "0.5 * ||V - W H||_F^2 overflows (it is 0.5 * ||V||_F^2 at W = H = 0); "
                "rescale V, e.g. V / V.max()."
            )
        m, n = V.shape
        check_integer("rank", rank, low=1, high=min(m, n))
        check_real("noise_std", noise_std, low=0.0)
        check_integer("batch_size", batch_size, low=1, high=n, allow_none=True)
        V.setflags(write=False)
        self.V: Array = V
        self.rank = int(rank)
        self.noise_std = float(noise_std)
        self.batch_size = None if batch_size is None or batch_size == n else int(batch_size)
        check_seed(seed)
        self.seed = seed
        self._norm_V = norm_V

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

    def as_factors(
        self, W: ArrayLike, H: ArrayLike, names: tuple[str, str] = ("W", "H")
    ) -> tuple[Array, Array]:
        """The factors as float64 arrays, checked to be real data of this problem's shapes.

        ``W`` must have shape ``(m, rank)`` and ``H`` shape ``(rank, n)``; float64 arrays are
        returned as they are (no copy). Every method that takes factors accepts array-likes
        through this check (:func:`nmf.validation.as_real_array`); ``names`` are the parameter
        names its errors use.
        """
        W, H = as_real_array(names[0], W, copy=False), as_real_array(names[1], H, copy=False)
        m, n = self.shape
        if W.shape != (m, self.rank) or H.shape != (self.rank, n):
            raise ValueError(
                f"{names[0]} and {names[1]} must have shapes {(m, self.rank)} and {(self.rank, n)}, "
                f"got {W.shape} and {H.shape}."
            )
        return W, H

    # ------------------------------------------------------------------ loss and gradients
    def residual(self, W: ArrayLike, H: ArrayLike) -> Array:
        """``R = W @ H - V`` (the sign makes ``gW = R @ H.T``).

        ``W`` and ``H`` are array-likes of real numbers (see :meth:`as_factors`), as in every
        method below. Non-finite factors give a non-finite residual (and loss).
        """
        W, H = self.as_factors(W, H)
        return W @ H - self.V

    def loss(self, W: ArrayLike, H: ArrayLike) -> float:
        """Frobenius loss ``0.5 * ||V - W H||_F^2``."""
        return 0.5 * float(np.linalg.norm(self.residual(W, H)) ** 2)

    def relative_error(self, W: ArrayLike, H: ArrayLike) -> float:
        """``||V - W H||_F / ||V||_F`` (scikit-learn's ``reconstruction_err_`` over ``||V||_F``).

        Both norms are computed by :func:`frobenius_norm`, which rescales before squaring where
        the squares would under- or overflow, so the ratio is right at any data scale.
        """
        return frobenius_norm(self.residual(W, H)) / max(self._norm_V, np.finfo(float).tiny)

    def relative_error_from_loss(self, loss: float) -> float:
        """The relative error ``sqrt(2 loss) / ||V||_F`` that corresponds to a loss value.

        Raises
        ------
        ValueError
            If ``loss`` is not a real number >= 0 (``inf`` and ``nan``, a diverged run, give
            ``inf`` and ``nan``), or if it is below float64's normal range for data so small
            (``||V||_F`` below about 1e-138) that the squares in the loss underflow: the relative
            error cannot be recovered from such a loss; :meth:`relative_error` computes it from
            the factors instead.
        """
        if not is_real(loss) or loss < 0:
            raise ValueError(f"loss must be a real number >= 0 (or inf or nan), got {loss!r}.")
        tiny = np.finfo(float).tiny
        if loss < tiny and 0.0 < self._norm_V < math.sqrt(2.0 * tiny) / np.finfo(float).eps:
            raise ValueError(
                f"loss={loss!r} is below float64's normal range, and with ||V||_F = "
                f"{self._norm_V:.3g} the squares in the loss underflow: the relative error "
                "cannot be recovered from it. Use relative_error(W, H), which normalises by "
                "||V||_F before squaring, or rescale V."
            )
        return float(np.sqrt(2.0 * loss)) / max(self._norm_V, tiny)

    def gradient(
        self, W: ArrayLike, H: ArrayLike, residual: Array | None = None
    ) -> tuple[Array, Array]:
        """Exact gradient ``(R H^T, W^T R)`` of the loss; pass ``residual`` to reuse ``W H - V``."""
        W, H = self.as_factors(W, H)
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
        W, H = self.as_factors(W, H)
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
        W, H = self.as_factors(W, H)
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
        W, H = self.as_factors(W, H)
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
    W: ArrayLike,
    H: ArrayLike,
    gW: ArrayLike,
    gH: ArrayLike,
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

    ``W``, ``H``, ``gW`` and ``gH`` are array-likes of real numbers; ``lr`` is a finite real
    number >= 0, ``clip`` and ``box`` are None or finite real numbers > 0.
    """
    W, H = as_real_array("W", W, copy=False), as_real_array("H", H, copy=False)
    gW, gH = as_real_array("gW", gW, copy=False), as_real_array("gH", gH, copy=False)
    check_real("lr", lr, low=0.0)
    check_real("clip", clip, low=0.0, low_open=True, allow_none=True)
    check_real("box", box, low=0.0, low_open=True, allow_none=True)
    return _projected_step(W, H, gW, gH, lr, clip, box)


def _projected_step(
    W: Array, H: Array, gW: Array, gH: Array, lr: float, clip: float | None, box: float | None
) -> tuple[Array, Array]:
    """:func:`projected_step` on arguments already checked (the per-step path of ProjectedSGD)."""
    uW, uH = -lr * gW, -lr * gH
    if clip is not None:
        uW, uH = _clip(uW, -clip, clip), _clip(uH, -clip, clip)
    upper = np.inf if box is None else box
    return _clip(W + uW, 0.0, upper), _clip(H + uH, 0.0, upper)
