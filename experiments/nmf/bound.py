"""How tight is the stability bound? The ``bound`` stage of ``python -m experiments.nmf``.

For each dataset, at the initial point and along a run that follows the bound, compare
:func:`nmf.stability_bound` with two empirical limits, with and without update clipping:

* *one step*: the largest learning rate whose single step does not increase the loss
  (:func:`nmf.empirical_max_stable_lr`), the exact counterpart of what the bound guarantees;
* *sustained*: the largest constant learning rate for which ``SUSTAINED_STEPS`` steps from that
  point never increase the loss, the limit a practitioner meets when tuning a constant LR.

A ratio of 1 would mean the bound is exact; the bound is a guarantee, so the one-step ratio never
exceeds 1. The last column divides :func:`nmf.global_stability_bound` (``box=1``: one rate, safe for
every iterate with entries in ``[0, 1]``) by the sustained limit, i.e. how much of the usable
constant rate the global guarantee gives up. Every row of ``bound_tightness.json`` holds it as
``global_bound``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.runner import write_json_atomic, write_text_atomic
from nmf import ProjectedSGD, empirical_max_stable_lr, global_stability_bound, stability_bound
from nmf.datasets import NMFInstance

INSTANCES = {
    "synthetic 200x100, r=10": NMFInstance("synthetic", rank=10, size=(200, 100)),
    "digits 1797x64, r=10": NMFInstance("digits", rank=10),
    "faces 100x625, r=10": NMFInstance("faces", rank=10),
}
CLIPS = (None, 0.1, 0.01)
SUSTAINED_STEPS = 50
MAX_FACTOR = 1e4


def sustained_max_stable_lr(
    problem, W, H, *, clip, start: float, n_steps: int = SUSTAINED_STEPS
) -> float:
    """Largest constant LR (scan then bisection from ``start``) whose run never increases the loss."""

    def stable(lr: float) -> bool:
        sgd = ProjectedSGD(problem, clip=clip, compute_bound=False, W0=W, H0=H)
        previous = sgd.stats.loss
        for _ in range(n_steps):
            loss = sgd.step(lr).loss
            if not loss <= previous * (1 + 1e-12):
                return False
            previous = loss
        return True

    last_ok = 0.0
    for lr in start * np.geomspace(1.0, MAX_FACTOR, 25):
        if not stable(lr):
            lo, hi = last_ok, lr
            for _ in range(12):
                mid = np.sqrt(lo * hi) if lo > 0 else 0.5 * hi
                lo, hi = (mid, hi) if stable(mid) else (lo, mid)
            return lo
        last_ok = lr
    return last_ok


def tightness(
    instance: NMFInstance, checkpoints: tuple[int, ...], seeds: tuple[int, ...]
) -> list[dict]:
    rows = []
    for seed in seeds:
        problem = NMFInstance(**{**instance.__dict__, "seed": seed}).build()
        global_bound = global_stability_bound(problem, box=1.0)
        sgd = ProjectedSGD(problem, seed=seed)
        for step in range(max(checkpoints) + 1):
            if step in checkpoints:
                for clip in CLIPS:
                    bound = stability_bound(problem, sgd.W, sgd.H, clip=clip)
                    one_step = empirical_max_stable_lr(
                        problem, sgd.W, sgd.H, clip=clip, start=bound, max_factor=MAX_FACTOR
                    )
                    sustained = sustained_max_stable_lr(
                        problem, sgd.W, sgd.H, clip=clip, start=bound
                    )
                    rows.append(
                        {
                            "seed": seed,
                            "step": step,
                            "clip": clip,
                            "bound": bound,
                            "global_bound": global_bound,
                            "one_step": one_step,
                            "sustained": sustained,
                        }
                    )
            sgd.step(sgd.stats.bound)
    return rows


def _ratio_cell(rows: list[dict], key: str, numerator: str = "bound", fmt: str = ".3f") -> str:
    """Mean (min–max) over seeds of ``numerator`` / limit; no limit found in the scan is shown as such."""
    if all(r[key] >= 0.99 * MAX_FACTOR * r["bound"] for r in rows):
        upper = max(r[numerator] / (MAX_FACTOR * r["bound"]) for r in rows)
        return f"< {upper:.2g} (no limit up to {MAX_FACTOR:g} x bound)"
    ratio = np.array([r[numerator] / r[key] for r in rows])
    return f"{ratio.mean():{fmt}} ({ratio.min():{fmt}}–{ratio.max():{fmt}})"


def bound_stage(out: Path, *, quick: bool = False) -> str:
    """Write ``bound_tightness.md`` and ``bound_tightness.json`` under ``out``; return the table.

    ``quick``: one seed and fewer checkpoints.
    """
    checkpoints, seeds = ((0, 20), (0,)) if quick else ((0, 50, 200), (0, 1, 2))
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "| data | step | clip | bound / one-step limit | bound / sustained limit "
        "| global bound (box=1) / sustained limit |",
        "|---|---|---|---|---|---|",
    ]
    everything = {}
    for name, instance in INSTANCES.items():
        rows = tightness(instance, checkpoints, seeds)
        everything[name] = rows
        for step in checkpoints:
            for clip in CLIPS:
                sel = [r for r in rows if r["step"] == step and r["clip"] == clip]
                lines.append(
                    f"| {name} | {step} | {clip if clip is not None else '—'} | "
                    f"{_ratio_cell(sel, 'one_step')} | {_ratio_cell(sel, 'sustained')} | "
                    f"{_ratio_cell(sel, 'sustained', 'global_bound', '.2g')} |"
                )
    table = "\n".join(lines) + "\n"
    write_text_atomic(out / "bound_tightness.md", table)
    write_json_atomic(out / "bound_tightness.json", everything)
    return table
