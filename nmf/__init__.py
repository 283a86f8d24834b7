"""Stochastic non-negative matrix factorisation with a provable stability bound (paper 1).

>>> import nmf
>>> problem = nmf.StochasticNMF(nmf.datasets.digits(), rank=10, noise_std=0.01, seed=0)
>>> traj = nmf.run_sgd(problem, nmf.schedules.FollowBound(0.9), n_steps=100, seed=0)
"""

from nmf import datasets, schedules
from nmf.bounds import (
    empirical_max_stable_lr,
    global_stability_bound,
    noisy_stability_bound,
    stability_bound,
)
from nmf.problem import StochasticNMF, projected_step
from nmf.sgd import ProjectedSGD, StepStats, Trajectory, run_sgd

__all__ = [
    "ProjectedSGD",
    "StepStats",
    "StochasticNMF",
    "Trajectory",
    "datasets",
    "empirical_max_stable_lr",
    "global_stability_bound",
    "noisy_stability_bound",
    "projected_step",
    "run_sgd",
    "schedules",
    "stability_bound",
]
