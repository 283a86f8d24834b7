"""Sweep GreedyLR's factor F on deterministic quadratics (the check quoted in docs/theory/greedylr.md).

Gradient descent on ``f(x) = 1/2 sum_i a_i x_i^2`` with curvatures ``a_i`` spread over
``[1, L_max]``; after every step the learning rate is updated by the bare GreedyLR rule
(``patience=0``, ``threshold=0``, no bounds, no smoothing), either

* ``greedylr``: the :class:`greedylr.GreedyLR` scheduler (an improvement is a new best loss), or
* ``previous``: the textbook form of the rule (an improvement is a loss below the previous one).

For every ``L_max`` and starting rate it reports the number of steps needed to reduce the loss by
``1e-8`` for each F, the best F, and the steps at ``F = 1 - 1/L_max``. Runs in a few seconds.

    python examples/greedylr_factor_sweep.py [--max-steps 2000] [--quiet]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

if importlib.util.find_spec("greedylr") is None:  # a checkout that is not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from greedylr import GreedyLR  # noqa: E402

FACTORS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)


def steps_to_converge(
    l_max: float, factor: float, lr0: float, rule: str, max_steps: int, tol: float = 1e-8
) -> int:
    """Steps until ``f <= tol * f(x0)``; ``max_steps`` when it does not get there."""
    a = torch.linspace(1.0, l_max, 20, dtype=torch.float64)
    x = torch.ones(20, dtype=torch.float64)
    f0 = float(0.5 * (a * x * x).sum())
    holder = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([holder], lr=lr0)
    sched = GreedyLR(
        opt, factor=factor, patience=0, threshold=0.0, min_lr=0.0, max_lr=math.inf, eps=0.0,
        reset_start=None,
    )  # fmt: skip
    previous = f0
    for t in range(1, max_steps + 1):
        lr = opt.param_groups[0]["lr"]
        x = x - lr * a * x
        f = float(0.5 * (a * x * x).sum())
        if not math.isfinite(f):
            return max_steps
        if rule == "greedylr":
            sched.step(f)
        else:  # compare with the previous loss, not the best one
            opt.param_groups[0]["lr"] = lr / factor if f < previous else lr * factor
        previous = f
        if f <= tol * f0:
            return t
    return max_steps


def main(argv: Sequence[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--l-max", type=float, nargs="+", default=[2.0, 10.0, 50.0])
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for rule in ("greedylr", "previous"):
        for l_max in args.l_max:
            for lr0_times_l in (0.1, 1.0):
                lr0 = lr0_times_l / l_max
                steps = {f: steps_to_converge(l_max, f, lr0, rule, args.max_steps) for f in FACTORS}
                best = min(steps, key=steps.get)
                formula = 1 - 1 / l_max
                rows.append(
                    {
                        "rule": rule,
                        "l_max": l_max,
                        "lr0*L_max": lr0_times_l,
                        "steps": steps,
                        "best_F": best,
                        "F_formula": formula,
                        "steps_at_formula": steps_to_converge(
                            l_max, formula, lr0, rule, args.max_steps
                        ),
                    }
                )
    if not args.quiet:
        cap = args.max_steps
        print(f"steps to reduce f by 1e-8 (cap {cap} = did not converge)")
        header = " ".join(f"F={f:<5}" for f in FACTORS)
        print(f"{'rule':9} {'L_max':>5} {'lr0*L':>5} | {header} | best F | 1-1/L_max: steps")
        for r in rows:
            cells = " ".join(f"{r['steps'][f]:<7d}" for f in FACTORS)
            print(
                f"{r['rule']:9} {r['l_max']:5g} {r['lr0*L_max']:5g} | {cells} | "
                f"{r['best_F']:6g} | {r['F_formula']:.3f}: {r['steps_at_formula']}"
            )
    return rows


if __name__ == "__main__":
    main()
