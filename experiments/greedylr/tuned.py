"""The tuned protocol: every schedule picks its starting rate on tuning seeds.

Each cell (workload, optimizer, schedule) tunes its starting-rate multiplier (x
:data:`~experiments.greedylr.config.INITIAL_LR`) on the grid ``config.multipliers`` with
:func:`experiments.common.tuning.tune_log_axes`, widened beyond edge optima; the rate-free peers
(Prodigy, D-Adaptation) tune the multiplier of their own estimate on ``config.free_multipliers``
instead. The hypergradient optimizers then tune their hypergradient step ``beta`` (x
``HYPERGRAD_LR``) on its own log axis at their tuned rate (the axis's ``x1`` point is the rate
axis's run, so it is not run again), and Schedule-Free tunes its warm-up fraction on
``config.warmup_fractions`` the same way (never widened to a whole budget). The
score of a value is the one the comparison reads at its final stage: the evaluated training loss at
100% of the budget, averaged over the tuning seeds (``inf`` when any of them diverged or failed).
The chosen settings are then run on the held-out seeds (:func:`tuned_specs`). See "Two protocols"
in ``docs/greedylr_study.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from experiments.common.tuning import AxisResult, edge_hits, tune_log_axes
from experiments.greedylr.config import (
    HYPERGRAD_LR,
    HYPERGRADIENT,
    RATE_FREE,
    Cell,
    Config,
    GreedyRunSpec,
    by_cost,
    cells,
    run_spec,
)
from experiments.greedylr.scoring import loss_at
from experiments.runner import spec_id

Sweep = Callable[[list[GreedyRunSpec]], list[dict[str, Any]]]
"""Runs specs (one resumable sweep into the tuning results file) and returns their records."""

TUNING_EVALS = 1
"""Tuning runs evaluate only at the stages (0/10/50/100%): the score needs only the last one."""


def tuning_score(records: list[dict[str, Any]]) -> float:
    """Mean final-stage training loss over the tuning seeds' records (``inf``: any diverged)."""
    losses = [loss_at(r["result"], 1.0) if r["status"] == "ok" else math.inf for r in records]
    return math.inf if not all(map(math.isfinite, losses)) else sum(losses) / len(losses)


def _scorer(
    config: Config, sweep: Sweep, spec_of: Callable[[Cell, float, int], GreedyRunSpec]
) -> Callable[[dict[Cell, list[float]]], dict[Cell, dict[float, float]]]:
    """``evaluate`` of :func:`tune_log_axes`: one sweep of every pending (cell, value, seed)."""

    def evaluate(pending: dict[Cell, list[float]]) -> dict[Cell, dict[float, float]]:
        specs = {
            (cell, v, seed): spec_of(cell, v, seed)
            for cell, values in pending.items()
            for v in values
            for seed in config.tune_seeds
        }
        done = {r["spec_id"]: r for r in sweep(by_cost(list(specs.values())))}
        return {
            cell: {
                v: tuning_score([done[spec_id(specs[cell, v, s])] for s in config.tune_seeds])
                for v in values
            }
            for cell, values in pending.items()
        }

    return evaluate


def tune(config: Config, sweep: Sweep) -> dict[Cell, dict[str, Any]]:
    """Tune every cell of ``config``; return per cell its chosen settings and tuning axes.

    Returns
    -------
    dict
        cell -> ``{"multiplier", "lr", "beta", "hypergrad_lr", "warmup", "options", "axes":
        {"multiplier": ..., "beta" | "warmup": ...}}`` (``beta`` / ``hypergrad_lr`` /
        ``warmup`` are ``None`` for cells that have none; ``lr`` and ``options`` are the run
        spec's; the axes are :meth:`~experiments.common.tuning.AxisResult.to_json`).
    """
    lr_axes = tune_log_axes(
        {
            c: config.free_multipliers if c[2] in RATE_FREE else config.multipliers
            for c in cells(config)
        },
        _scorer(config, sweep, lambda c, m, s: run_spec(config, c, s, m, n_evals=TUNING_EVALS)),
        max_rounds=config.max_rounds,
    )
    # Second axes, each tuned at its cells' tuned rate: run_spec keyword -> (cells, grid, upper
    # bound); Schedule-Free's warm-up is a fraction of the budget, never 1 or more.
    axes_of = {
        "beta": ([c for c in lr_axes if c[2] in HYPERGRADIENT], config.beta_multipliers, math.inf),
        "warmup": ([c for c in lr_axes if c[2] == "schedulefree"], config.warmup_fractions, 1.0),
    }
    second: dict[str, dict[Cell, AxisResult]] = {name: {} for name in axes_of}
    for name, (todo, grid, high) in axes_of.items():
        if todo:
            second[name] = tune_log_axes(
                {c: grid for c in todo},
                _scorer(
                    config,
                    sweep,
                    lambda c, v, s, name=name: run_spec(
                        config, c, s, lr_axes[c].best, n_evals=TUNING_EVALS, **{name: v}
                    ),
                ),
                max_rounds=config.max_rounds,
                bounds=(0.0, high),
            )
    out = {}
    for cell, axis in lr_axes.items():
        w, o, _ = cell
        axes = {"multiplier": axis.to_json()}
        chosen = {name: by_cell[cell].best for name, by_cell in second.items() if cell in by_cell}
        axes |= {name: second[name][cell].to_json() for name in chosen}
        beta, warmup = chosen.get("beta"), chosen.get("warmup")
        spec = run_spec(config, cell, 0, axis.best, beta=beta, warmup=warmup)
        out[cell] = {
            "multiplier": axis.best,
            "lr": spec.lr,
            "beta": beta,
            "hypergrad_lr": None if beta is None else HYPERGRAD_LR[o] * beta,
            "warmup": warmup,
            "options": dict(spec.options),
            "axes": axes,
        }
    return out


def tuned_specs(config: Config, tuned: dict[Cell, dict[str, Any]]) -> list[GreedyRunSpec]:
    """Every cell at its tuned settings on the held-out seeds (``config.seeds``)."""
    return by_cost(
        [
            run_spec(config, c, seed, t["multiplier"], beta=t["beta"], warmup=t.get("warmup"))
            for c, t in tuned.items()
            for seed in config.seeds
        ]
    )


def tuning_summary(tuned: dict[Cell, dict[str, Any]]) -> dict[str, Any]:
    """The summary's ``tuning`` block: choices per cell (``"workload/optimizer/schedule"``) and
    every axis whose optimum is still at an edge after widening."""
    hits = []
    for axis in ("multiplier", "beta", "warmup"):
        results = {c: _axis(t["axes"][axis]) for c, t in tuned.items() if axis in t["axes"]}
        hits += [{"axis": axis} | h for h in edge_hits(results)]
    return {
        "cells": {"/".join(c): t for c, t in tuned.items()},
        "edge_hits": hits,
        "score": "mean over the tuning seeds of the evaluated training loss at 100% (inf: diverged)",
    }


def _axis(saved: dict[str, Any]) -> AxisResult:
    grid = [float(v) for v in saved["grid"]]
    return AxisResult(grid, dict(zip(grid, map(float, saved["scores"]), strict=True)))
