"""Time-to-target scoring and performance profiles, as AlgoPerf scores training algorithms.

The second reading of every study next to the final-loss comparisons (Dahl et al., 2023,
"Benchmarking Neural Network Training Algorithms"):

* a **target** per workload, set from the baselines: the best (lowest) over the baseline methods
  of the median, over held-out seeds, of the best loss each run reached (:func:`set_target`);
* a run's **time to target**: the first evaluation at which its loss is at or below the target,
  in steps and in training seconds; ``inf`` when it never gets there (:func:`first_reach`);
* **performance profiles**: for each method, the fraction of problems it solves within ``tau``
  times the fastest method's time on that problem (:func:`performance_profile`), and AlgoPerf's
  score, the area under the profile for ``tau`` in ``[1, tau_max]`` normalised to ``[0, 1]``
  (:func:`profile_score`).

A *problem* here is one (workload, held-out seed) pair, so a profile pools the seeds instead of
taking each workload's median time as AlgoPerf does with its repetitions (the studies have few
workloads). Times are only as fine as the evaluations: a run evaluated every ``k`` steps reaches
the target at a multiple of ``k``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

TAU_MAX = 4.0
"""AlgoPerf's upper end of the profile's integration range."""

TAUS: tuple[float, ...] = tuple(float(t) for t in np.round(np.linspace(1.0, TAU_MAX, 61), 4))
"""The ``tau`` values of the stored profiles (step 0.05)."""


def best_loss(values: Sequence[float]) -> float:
    """The lowest finite loss of a run (``inf`` when there is none)."""
    finite = [float(v) for v in values if math.isfinite(float(v))]
    return min(finite) if finite else math.inf


def set_target(best_by_method: Mapping[str, Sequence[float]]) -> float:
    """The target of a workload: min over methods of the median over seeds of each run's best loss.

    ``best_by_method`` holds the *baselines'* best losses per held-out seed (:func:`best_loss`;
    ``inf`` for a diverged run). A method with no finite median does not set the target; with
    none at all the target is ``nan`` (nothing can reach it).
    """
    medians = [float(np.median(v)) for v in best_by_method.values() if len(v)]
    finite = [m for m in medians if math.isfinite(m)]
    return min(finite) if finite else math.nan


def first_reach(times: Sequence[float], values: Sequence[float], target: float) -> float:
    """The first entry of ``times`` at which ``values`` is at or below ``target``; ``inf`` if never.

    ``times`` and ``values`` are a run's evaluation points (steps or cumulative seconds) and the
    losses there; non-finite losses never reach a target.
    """
    if len(times) != len(values):
        raise ValueError(
            f"times and values must have equal lengths, got {len(times)} and {len(values)}"
        )
    if math.isnan(target):
        return math.inf
    for t, v in zip(times, values, strict=True):
        v = float(v)
        if math.isfinite(v) and v <= target:
            return float(t)
    return math.inf


def performance_profile(
    times: Mapping[str, Mapping[Hashable, float]], taus: Sequence[float] = TAUS
) -> dict[str, list[float]]:
    """Per method, the fraction of problems solved within ``tau`` x the fastest time, per ``tau``.

    ``times[method][problem]`` is the time to target (``inf``: not reached). Every method must
    cover the same problems. The fastest time of a problem is the minimum over methods; a problem
    no method solves counts as unsolved for all. A time of 0 (target met before training) is
    treated as the smallest positive time of that problem, so ratios stay defined.
    """
    methods = list(times)
    if not methods:
        return {}
    problems = list(times[methods[0]])
    for m in methods:
        if set(times[m]) != set(problems):
            raise ValueError(f"method {m!r} covers other problems than {methods[0]!r}")
    if not problems:
        raise ValueError("times must cover at least one problem")
    ratios = {m: [] for m in methods}
    for p in problems:
        column = [float(times[m][p]) for m in methods]
        positive = [t for t in column if 0 < t < math.inf]
        floor = min(positive) if positive else 1.0
        column = [max(t, floor) if t == 0 else t for t in column]
        fastest = min(column)
        for m, t in zip(methods, column, strict=True):
            ratios[m].append(t / fastest if math.isfinite(t) else math.inf)
    return {m: [float(np.mean([r <= tau for r in ratios[m]])) for tau in taus] for m in methods}


def profile_score(profile: Sequence[float], taus: Sequence[float] = TAUS) -> float:
    """AlgoPerf's score: the area under a profile over ``[1, taus[-1]]``, divided by its width."""
    t = np.asarray(taus, dtype=float)
    if len(t) < 2 or t[0] != 1.0:
        raise ValueError("taus must start at 1 and hold at least two values")
    y = np.asarray(profile, dtype=float)
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(t)) / (t[-1] - t[0]))


def summarise_times(values: Sequence[float]) -> dict[str, Any]:
    """Median time over runs and how many reached the target (``inf`` when half or more did not)."""
    arr = np.asarray(values, dtype=float)
    return {
        "median": float(np.median(arr)) if len(arr) else math.inf,
        "reached": int(np.sum(np.isfinite(arr))),
        "n": int(len(arr)),
    }


def profiles_block(
    times: Mapping[str, Mapping[Hashable, float]], taus: Sequence[float] = TAUS
) -> dict[str, Any]:
    """A summary block: each method's profile, score and problems solved, best method first."""
    profile = performance_profile(times, taus)
    scores = {m: profile_score(p, taus) for m, p in profile.items()}
    order = sorted(profile, key=lambda m: -scores[m])
    return {
        "taus": list(taus),
        "n_problems": len(next(iter(times.values()))) if times else 0,
        "methods": {
            m: {
                "score": scores[m],
                "solved": sum(math.isfinite(float(t)) for t in times[m].values()),
                "profile": profile[m],
            }
            for m in order
        },
        "best": order[0] if order else None,
    }


def plot_profiles(
    ax: Any,
    block: Mapping[str, Any],
    *,
    highlight: Sequence[str] = (),
    title: str = "",
    colors: Mapping[str, Any] | None = None,
) -> None:
    """Draw a :func:`profiles_block` on a matplotlib axes, best score first in the legend.

    Highlighted methods get thick lines (black unless ``colors`` names one). Other colours come
    from ``colors`` or else from ``tab20`` by the method's place in the sorted names, so a method
    keeps its colour across panels (every second one dashed)."""
    import matplotlib.pyplot as plt

    taus = block["taus"]
    palette = plt.get_cmap("tab20").colors
    place = {m: i for i, m in enumerate(sorted(block["methods"]))}
    for m, info in block["methods"].items():
        bold, i = m in highlight, place[m]
        default = "black" if bold else palette[i % len(palette)]
        ax.step(
            taus,
            info["profile"],
            where="post",
            color=(colors or {}).get(m, default),
            ls="-" if bold or i % 2 == 0 else "--",
            lw=2.6 if bold else 1.2,
            zorder=3 if bold else 2,
            label=f"{m} ({info['score']:.2f})",
        )
    ax.set_xlim(taus[0], taus[-1])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("tau (x the fastest method's time to target)")
    ax.set_ylabel("fraction of problems solved")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="lower right", title="method (score)", title_fontsize=6)
