"""Tuning on log grids that widen until every optimum is interior.

A tuned baseline whose best value sits at the edge of its grid is not tuned: the true optimum may
lie beyond it. :func:`tune_log_axes` tunes many cells at once (e.g. every schedule x workload),
each along one log-spaced axis (a learning rate, a multiplier, a fraction). After each round every
cell whose best value is at an end of its axis gets one more value beyond that end (the axis's own
spacing), all new values of all cells are evaluated in one batch (one parallel sweep), and this
repeats up to ``max_rounds`` times. Cells still at an edge afterwards are reported as edge hits,
never hidden.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass
class AxisResult:
    """One cell's tuning along its axis (``scores``: lower is better; ``inf`` = diverged)."""

    values: list[float]
    scores: dict[float, float] = field(default_factory=dict)
    rounds: int = 0
    """Widening rounds that added a value to this cell."""

    @property
    def best(self) -> float:
        """The best value; among equal scores the one nearest the middle of the grid, so an axis
        that does not matter (a flat score) is not mistaken for an optimum at its edge."""
        grid = sorted(self.values)
        top = min(self.scores[v] for v in grid)
        middle = (len(grid) - 1) / 2
        return min(
            (v for v in grid if self.scores[v] == top), key=lambda v: abs(grid.index(v) - middle)
        )

    @property
    def edge(self) -> str | None:
        """``"low"`` / ``"high"`` when the best value is the axis's smallest / largest;
        ``"all_diverged"`` when no value gave a finite score."""
        if all(math.isinf(self.scores[v]) for v in self.values):
            return "all_diverged"
        if len(self.values) < 2:
            return None
        if self.best == min(self.values):
            return "low"
        if self.best == max(self.values):
            return "high"
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "edge": self.edge,
            "rounds": self.rounds,
            "grid": sorted(self.values),
            "scores": [self.scores[v] for v in sorted(self.values)],
        }


def tune_log_axes(
    initial: Mapping[K, Sequence[float]],
    evaluate: Callable[[dict[K, list[float]]], Mapping[K, Mapping[float, float]]],
    *,
    max_rounds: int = 3,
    bounds: tuple[float, float] = (0.0, math.inf),
) -> dict[K, AxisResult]:
    """Tune every cell of ``initial`` along its log axis, widening edge optima.

    Parameters
    ----------
    initial
        Per cell, the starting grid: at least two positive, increasing, log-spaced values.
    evaluate
        Called with ``{cell: [values to run]}``; returns ``{cell: {value: score}}`` for those
        values (lower is better; a diverged run scores ``inf``). Called once per round.
    max_rounds
        Widening rounds after the initial grid (``0``: no widening).
    bounds
        Values outside ``(low, high)`` are never proposed (e.g. a fraction that must stay < 1);
        a cell whose next value would leave the bounds stops widening on that side.
    """
    if max_rounds < 0:
        raise ValueError(f"max_rounds must be >= 0, got {max_rounds}")
    cells: dict[K, AxisResult] = {}
    for key, grid in initial.items():
        values = [float(v) for v in grid]
        if len(values) < 2 or any(v <= 0 for v in values) or values != sorted(set(values)):
            raise ValueError(
                f"grid of {key!r} must hold >= 2 increasing positive values, got {list(grid)}"
            )
        cells[key] = AxisResult(values)
    pending = {key: list(cell.values) for key, cell in cells.items()}
    for round_ in range(max_rounds + 1):
        if not pending:
            break
        scores = evaluate(pending)
        for key, values in pending.items():
            for v in values:
                cells[key].scores[v] = float(scores[key][v])
        if round_ == max_rounds:
            break
        pending = {}
        for key, cell in cells.items():
            proposal = _beyond_edge(cell, bounds)
            if proposal is not None:
                cell.values.append(proposal)
                cell.rounds += 1
                pending[key] = [proposal]
    return cells


def _beyond_edge(cell: AxisResult, bounds: tuple[float, float]) -> float | None:
    grid = sorted(cell.values)
    if cell.edge == "low":
        value = grid[0] * grid[0] / grid[1]
    elif cell.edge == "high":
        value = grid[-1] * grid[-1] / grid[-2]
    else:
        return None
    return value if bounds[0] < value < bounds[1] else None


def edge_hits(results: Mapping[Any, AxisResult]) -> list[dict[str, Any]]:
    """The cells still at an edge after widening, for the summary (empty when all interior)."""
    return [
        {"cell": key if isinstance(key, str) else list(key), "edge": r.edge, "best": r.best}
        for key, r in results.items()
        if r.edge is not None
    ]
