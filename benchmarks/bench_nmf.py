"""Projected SGD steps per second next to the cost of the step's three matrix products.

One SGD step needs ``R = W H - V``, ``R H^T`` and ``W^T R``; the ratio ``step / products``
says how close the step is to that floor (1.0 = nothing but the products). The bound's cost is
reported the same way.
"""

import numpy as np

from benchmarks.timing import median_time
from nmf import ProjectedSGD, StochasticNMF, stability_bound

SIZES = [(60, 40, 5), (200, 100, 10), (1797, 64, 10), (1000, 1000, 20), (4000, 2000, 40)]


def measure(problem: StochasticNMF) -> tuple[float, float, float]:
    """Seconds per call: the three products, one SGD step, one stability bound."""
    W, H = problem.init(0)
    V = problem.V

    def products() -> None:
        R = W @ H - V
        R @ H.T
        W.T @ R

    sgd = ProjectedSGD(problem, seed=0, compute_bound=False)
    return (
        median_time(products),
        median_time(lambda: sgd.step(1e-6)),
        median_time(lambda: stability_bound(problem, W, H)),
    )


def main() -> None:
    rng = np.random.default_rng(0)
    print(
        f"{'m x n, rank':>20} {'3 products':>12} {'SGD step':>10} {'ratio':>6} {'steps/s':>9} "
        f"{'bound':>10} {'ratio':>6}"
    )
    for m, n, r in SIZES:
        t_prod, t_step, t_bound = measure(StochasticNMF(rng.random((m, n)), r, noise_std=0.1))
        print(
            f"{f'{m} x {n}, {r}':>20} {t_prod * 1e3:>10.3f}ms {t_step * 1e3:>8.3f}ms "
            f"{t_step / t_prod:>6.2f} {1 / t_step:>9.0f} {t_bound * 1e3:>8.3f}ms {t_bound / t_prod:>6.2f}"
        )


if __name__ == "__main__":
    main()
