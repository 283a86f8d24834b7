"""Figure helpers shared by the studies' ``plots`` modules (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save(fig: plt.Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` atomically (a temporary file, then a rename) and close it."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def grid(n: int) -> tuple[plt.Figure, np.ndarray]:
    """``n`` panels in rows of up to three; the flat array of their axes (extra ones hidden)."""
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def panels(n: int, width: float = 5.2, height: float = 3.8) -> tuple[plt.Figure, np.ndarray]:
    """``n`` panels side by side (at least one)."""
    fig, axes = plt.subplots(
        1, max(1, n), figsize=(width * max(1, n), height), squeeze=False, layout="constrained"
    )
    return fig, axes[0]


def moving_average(x: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Means of the ``len(x) - window + 1`` full windows of ``window`` values."""
    return np.convolve(np.asarray(x, dtype=float), np.ones(window) / window, mode="valid")


def mean_curve(curves: Sequence[Sequence[float]]) -> np.ndarray:
    """Pointwise mean of curves, up to the shortest one (diverged runs end early)."""
    length = min(len(c) for c in curves)
    return np.mean(np.asarray([c[:length] for c in curves], dtype=float), axis=0)
