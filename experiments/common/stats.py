"""Small statistics shared by every pipeline: means with confidence intervals over seeds."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def mean_ci(values: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean, sample std, and the half-width of a Student-t confidence interval of the mean.

    Non-finite values (diverged runs) make the mean infinite rather than being dropped, so a
    schedule that sometimes diverges cannot look better than it is. ``n`` counts all values.
    """
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return {"mean": math.nan, "std": math.nan, "ci95": math.nan, "n": 0}
    if not np.all(np.isfinite(x)):
        return {"mean": math.inf, "std": math.nan, "ci95": math.nan, "n": n}
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
    return {"mean": float(x.mean()), "std": std, "ci95": half, "n": n}


def format_mean_ci(summary: dict[str, float], digits: int = 4) -> str:
    """``mean ± ci95`` as text (``inf`` for diverged runs)."""
    if not math.isfinite(summary["mean"]):
        return "diverged"
    if not math.isfinite(summary["ci95"]):
        return f"{summary['mean']:.{digits}f}"
    return f"{summary['mean']:.{digits}f} ± {summary['ci95']:.{digits}f}"
