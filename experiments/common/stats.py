"""Statistics shared by every pipeline.

* :func:`mean_ci` — mean with a Student-t interval over seeds (descriptive tables).
* :func:`probability_of_improvement`, :func:`iqm` with :func:`stratified_bootstrap` — how the RL
  field reports comparisons (Agarwal et al., 2021, "Deep RL at the edge of the statistical
  precipice", the ``rliable`` library): scores form a matrix ``runs x tasks`` (for us PPO seeds x
  held-out instances); the bootstrap resamples runs and, within each stratum (cell), tasks, so the
  interval covers both sources of variation.
* :func:`cluster_bootstrap_share` — a share of outcomes whose units are correlated in clusters
  (GreedyLR: pairs from one (workload, seed) share their runs); clusters are resampled whole.
* :func:`paired_test` — Wilcoxon signed-rank test on per-task differences.
* :func:`headline_record` — the machine-readable claim records of each ``summary.json``.

Every bootstrap uses a fixed seed so a summary is reproducible bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats

N_BOOTSTRAP = 2000
BOOTSTRAP_SEED = 0


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


# ------------------------------------------------------------------------------ RL statistics
def _as_matrix(scores: Any, name: str) -> np.ndarray:
    x = np.asarray(scores, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must be a non-empty runs x tasks matrix, got shape {x.shape}")
    if np.isnan(x).any():
        raise ValueError(f"{name} contains NaN; mark a diverged run with inf instead")
    return x


def _check_strata(strata: Sequence[Any] | None, n_tasks: int) -> np.ndarray:
    if strata is None:
        return np.zeros(n_tasks, dtype=int)
    labels = np.asarray(strata)
    if labels.shape != (n_tasks,):
        raise ValueError(f"strata must give one label per task ({n_tasks}), got {labels.shape}")
    return np.unique(labels, return_inverse=True)[1]


def probability_of_improvement(
    x: Any, y: Any, *, strata: Sequence[Any] | None = None, lower_is_better: bool = True
) -> float:
    """P(a run of X beats a run of Y on the same task), averaged over tasks.

    ``x`` and ``y`` are ``runs x tasks`` score matrices with the same tasks (columns); a 1-D
    array is one run. Per task, every run of X is compared with every run of Y (the Mann-Whitney
    statistic, ties count half), as in ``rliable``. With ``strata``, tasks are weighted so every
    stratum (cell) counts equally. ``inf`` (a diverged run) loses to any finite score.
    """
    a, b = _as_matrix(x, "x"), _as_matrix(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y must have the same tasks, got {a.shape[1]} and {b.shape[1]}")
    if not lower_is_better:
        a, b = -a, -b
    per_task = _per_task_poi(a, b)
    groups = _check_strata(strata, a.shape[1])
    return float(np.mean([per_task[groups == g].mean() for g in np.unique(groups)]))


def _per_task_poi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    wins = (a[:, None, :] < b[None, :, :]).mean(axis=(0, 1))
    ties = (a[:, None, :] == b[None, :, :]).mean(axis=(0, 1))
    return wins + 0.5 * ties


def iqm(scores: Any) -> float:
    """Interquartile mean of all scores (the mean of the middle 50%, ``rliable``'s IQM)."""
    x = np.sort(np.asarray(scores, dtype=float).ravel())
    if x.size == 0:
        raise ValueError("scores must not be empty")
    # scipy.stats.trim_mean(x, 0.25)'s own arithmetic, without its per-call overhead (most of a
    # bootstrap's time): the same partition of the same array, so the same bits.
    cut = int(0.25 * x.size)
    return float(np.mean(np.partition(x, (cut, x.size - cut - 1))[cut : x.size - cut]))


def stratified_bootstrap(
    statistic: Callable[..., float],
    *matrices: Any,
    strata: Sequence[Any] | None = None,
    n_boot: int = N_BOOTSTRAP,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
) -> dict[str, Any]:
    """Point estimate and percentile interval of ``statistic(*matrices, strata=labels)``.

    Each matrix is ``runs x tasks`` with the same tasks. One bootstrap draw resamples, with
    replacement, the runs of each matrix independently and the tasks within each stratum
    (shared by all matrices, so paired tasks stay paired). The interval is the percentile
    interval, widened where needed to contain the point estimate. Returns
    ``{"value", "ci95": [low, high], "n_runs": [...], "n_tasks", "n_boot"}``.
    """
    mats = [_as_matrix(m, f"matrix {i}") for i, m in enumerate(matrices)]
    n_tasks = mats[0].shape[1]
    if any(m.shape[1] != n_tasks for m in mats):
        raise ValueError("every matrix must have the same number of tasks (columns)")
    groups = _check_strata(strata, n_tasks)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for k in range(n_boot):
        tasks = np.concatenate([rng.choice(idx, size=idx.size) for idx in members])
        resampled = [m[rng.integers(0, m.shape[0], m.shape[0])][:, tasks] for m in mats]
        draws[k] = statistic(*resampled, strata=groups[tasks])
    value = statistic(*mats, strata=groups)
    low, high = _interval(draws, float(value), level)
    return {
        "value": float(value),
        "ci95": [float(low), float(high)],
        "n_runs": [int(m.shape[0]) for m in mats],
        "n_tasks": int(n_tasks),
        "n_boot": int(n_boot),
    }


def _interval(draws: np.ndarray, value: float, level: float) -> tuple[float, float]:
    """The percentile interval of the bootstrap draws, widened to hold the point estimate.

    A percentile interval can miss its own point estimate when the statistic's bootstrap
    distribution is lopsided (rare); a reported interval always contains the value it goes with.
    """
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return min(float(low), value), max(float(high), value)


def poi_with_ci(x: Any, y: Any, *, strata: Sequence[Any] | None = None, **kw: Any) -> dict:
    """:func:`probability_of_improvement` of X over Y with its stratified-bootstrap interval."""
    return stratified_bootstrap(probability_of_improvement, x, y, strata=strata, **kw)


def iqm_with_ci(scores: Any, *, strata: Sequence[Any] | None = None, **kw: Any) -> dict:
    """:func:`iqm` of a ``runs x tasks`` matrix with its stratified-bootstrap interval."""

    def stat(m: np.ndarray, strata: Any = None) -> float:
        return iqm(m)

    return stratified_bootstrap(stat, scores, strata=strata, **kw)


def paired_test(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    """Two-sided Wilcoxon signed-rank test of paired scores (one pair per task).

    Returns the median difference ``x - y``, the p-value and ``n``; pairs with equal scores are
    dropped (``zero_method="wilcox"``). Non-finite pairs are compared by sign only: a diverged
    run becomes larger than every finite score before ranking.
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"x and y must be 1-D and the same length, got {a.shape}, {b.shape}")
    finite = np.concatenate([a[np.isfinite(a)], b[np.isfinite(b)], [0.0]])
    big = float(np.abs(finite).max() * 10 + 1)
    a, b = np.where(np.isfinite(a), a, big), np.where(np.isfinite(b), b, big)
    diff = a - b
    nonzero = diff[diff != 0]
    if nonzero.size == 0:
        p = 1.0
    else:
        p = float(stats.wilcoxon(nonzero, zero_method="wilcox").pvalue)
    return {
        "test": "wilcoxon",
        "median_diff": float(np.median(diff)),
        "p_value": p,
        "n": int(a.size),
    }


# --------------------------------------------------------------------------- clustered shares
def cluster_bootstrap_share(
    outcomes: Sequence[bool],
    clusters: Sequence[Any],
    *,
    n_boot: int = N_BOOTSTRAP,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
) -> dict[str, Any]:
    """Share of true outcomes with a percentile interval from resampling whole clusters.

    Outcomes of one cluster (e.g. every pair of one (workload, seed)) are correlated, so the
    bootstrap draws clusters with replacement and keeps each cluster's outcomes together.
    Returns ``{"value", "ci95": [low, high], "n", "n_clusters", "n_boot"}``.
    """
    hits = np.asarray(outcomes, dtype=bool)
    labels = np.asarray([repr(c) for c in clusters])
    if hits.ndim != 1 or hits.size == 0 or labels.shape != hits.shape:
        raise ValueError("outcomes and clusters must be non-empty and the same length")
    names, inverse = np.unique(labels, return_inverse=True)
    totals = np.bincount(inverse, weights=hits, minlength=names.size)
    sizes = np.bincount(inverse, minlength=names.size)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, names.size, size=(n_boot, names.size))
    draws = totals[picks].sum(axis=1) / sizes[picks].sum(axis=1)
    low, high = _interval(draws, float(hits.mean()), level)
    return {
        "value": float(hits.mean()),
        "ci95": [float(low), float(high)],
        "n": int(hits.size),
        "n_clusters": int(names.size),
        "n_boot": int(n_boot),
    }


# ----------------------------------------------------------------------------- headline records
def headline_record(
    claim: str, metric: str, value: float, ci95: Sequence[float], n: int, **extra: Any
) -> dict[str, Any]:
    """One machine-readable claim of a ``summary.json``'s ``headline`` list.

    ``claim`` is a stable id (e.g. ``learned_vs_step``), ``metric`` what ``value`` measures,
    ``ci95`` its 95% interval and ``n`` the number of units it rests on; ``extra`` adds context
    (``ppo_seeds``, ``split``, ``p_value``, ...). ``significant`` is derived: the interval
    excludes the no-difference value ``null`` (``extra``, default 0.5).
    """
    low, high = (float(v) for v in ci95)
    if not low <= float(value) <= high:
        raise ValueError(f"value {value} of claim {claim!r} lies outside its ci95 {ci95}")
    null = float(extra.pop("null", 0.5))
    return {
        "claim": claim,
        "metric": metric,
        "value": float(value),
        "ci95": [low, high],
        "n": int(n),
        "null": null,
        "significant": bool(low > null or high < null),
        **extra,
    }
