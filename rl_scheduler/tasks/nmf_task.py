"""The NMF task: projected SGD with update clipping on stochastic NMF instances (paper 1).

An *instance set* is a list of :class:`nmf.datasets.NMFInstance` recipes, like DACBench's instance
sets. :func:`nmf_instance_set` draws the named train and held-out (``"test"``) sets; every
:meth:`NMFTask.reset` picks one instance of its set and starts a fresh projected-SGD run on it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from numbers import Integral, Real
from typing import Any

import numpy as np

import nmf
from nmf.datasets import NMFInstance
from rl_scheduler.tasks.base import (
    TaskStats,
    check_advance,
    instance_seeds,
    is_int,
    pick_instance,
)

DEFAULT_SIZES: dict[str, tuple[int, int] | int | None] = {
    "synthetic": (60, 40),
    "digits": 300,
    "faces": 40,
}
"""Default ``NMFInstance.size`` per dataset: small enough that RL training takes minutes on a CPU.

``(m, n)`` for synthetic data, a row subsample for real data, drawn from the split's row pool
(half of the rows, see :func:`nmf.datasets.row_pool_indices`; faces has 100 rows, so at most 50).
User files use all rows of their pool."""

DEFAULT_RANKS = {"synthetic": 5, "digits": 8, "faces": 10}
"""Default factorisation rank per dataset (user files: 5)."""

DEFAULT_NOISE_LEVELS = (0.0, 1.0, 5.0)
"""Default gradient-noise standard deviations (``NMFInstance.noise_std``) of the instance sets."""

DEFAULT_CLIP = 0.1
"""Default element-wise update clipping of :class:`NMFTask`."""

DEFAULT_INITIAL_LR_FRACTION = 0.5
"""Each run starts at this fraction of the stability bound of its initial iterate."""


def nmf_instance_set(
    split: str = "train",
    n: int = 32,
    *,
    datasets: Sequence[str] = ("synthetic", "digits"),
    noise_levels: Sequence[float] = DEFAULT_NOISE_LEVELS,
    ranks: Sequence[int] | None = None,
    sizes: Mapping[str, tuple[int, int] | int | None] | None = None,
    data_noise: float = 0.1,
    batch_size: int | None = None,
    seed: int = 0,
) -> list[NMFInstance]:
    """A named train or held-out set of NMF instances.

    Instances cycle through the product ``datasets x noise_levels x ranks`` (so every combination
    is equally represented) and get distinct seeds; the seed of an instance fixes its synthetic
    data or its row subsample, its initial factors and its gradient noise. Train and test seeds
    come from disjoint ranges (:data:`SPLIT_SEED_OFFSET`), so the held-out set never repeats a
    training problem, and real data (digits, faces, files) is subsampled from disjoint row pools
    (``NMFInstance.row_pool = split``), so no held-out instance shares a data row with a training
    instance. A size larger than the pool raises ``ValueError`` when the data is loaded.

    Parameters
    ----------
    split : {"train", "test"}
    n : int
        Number of instances, ``1 <= n <= 100_000``.
    datasets : sequence of str
        ``"synthetic"``, ``"digits"``, ``"faces"`` or paths of ``.npy``/``.csv`` files.
    noise_levels : sequence of float
        Standard deviations of the Gaussian noise on the gradients (each ``>= 0``).
    ranks : sequence of int or None
        Factorisation ranks; ``None`` uses :data:`DEFAULT_RANKS` per dataset.
    sizes : mapping or None
        ``NMFInstance.size`` per dataset, overriding :data:`DEFAULT_SIZES`.
    data_noise : float
        Noise-to-signal ratio of the synthetic data (see :func:`nmf.datasets.synthetic`).
    batch_size : int or None
        Column mini-batch of the stochastic gradient (``None``: all columns).
    seed : int
        Selects a different, disjoint family of instance seeds.

    Returns
    -------
    list of NMFInstance
    """
    seeds = instance_seeds(split, n, seed)
    if isinstance(datasets, str) or not datasets:
        raise ValueError(f"datasets must be a non-empty sequence of names, got {datasets!r}.")
    if isinstance(noise_levels, str | Real) or not noise_levels:
        raise ValueError(f"noise_levels must be a non-empty sequence, got {noise_levels!r}.")
    for level in noise_levels:
        if not (isinstance(level, Real) and math.isfinite(level) and level >= 0):
            raise ValueError(f"noise_levels must hold finite floats >= 0, got {level!r}.")
    if ranks is not None:
        if isinstance(ranks, Integral) or not ranks:
            raise ValueError(f"ranks must be None or a non-empty sequence, got {ranks!r}.")
        for rank in ranks:
            if not is_int(rank) or rank < 1:
                raise ValueError(f"ranks must hold integers >= 1, got {rank!r}.")
    all_sizes = {**DEFAULT_SIZES, **(sizes or {})}
    all_sizes = {k: tuple(v) if isinstance(v, list) else v for k, v in all_sizes.items()}
    rank_choices: list[int | None] = list(ranks) if ranks is not None else [None]
    combos = list(itertools.product(datasets, noise_levels, rank_choices))
    instances = []
    for i, instance_seed in enumerate(seeds):
        dataset, noise_std, rank = combos[i % len(combos)]
        instances.append(
            NMFInstance(
                dataset=dataset,
                rank=int(rank if rank is not None else DEFAULT_RANKS.get(dataset, 5)),
                noise_std=float(noise_std),
                batch_size=batch_size,
                seed=instance_seed,
                size=all_sizes.get(dataset),
                data_noise=float(data_noise),
                row_pool=None if dataset == "synthetic" else split,
            )
        )
    return instances


def as_instance(value: NMFInstance | Mapping[str, Any]) -> NMFInstance:
    """An :class:`NMFInstance` from itself or from its ``dataclasses.asdict`` / JSON form.

    Raises
    ------
    TypeError
        If ``value`` is neither, or its fields do not build an instance.
    ValueError
        If its ``size`` is one that :meth:`NMFInstance.data` would ignore.
    """
    if isinstance(value, Mapping):
        fields = dict(value)
        if isinstance(fields.get("size"), list):
            fields["size"] = tuple(fields["size"])
        try:
            value = NMFInstance(**fields)
        except TypeError as err:
            raise TypeError(
                f"instances: cannot build an NMFInstance from {value!r}: {err}"
            ) from None
    if not isinstance(value, NMFInstance):
        raise TypeError(
            "instances must hold NMFInstance objects or dicts of their fields, "
            f"got {type(value).__name__}."
        )
    return value


def instance_to_dict(instance: NMFInstance) -> dict[str, Any]:
    """The JSON-able form of an instance (inverse of :func:`as_instance`)."""
    fields = asdict(instance)
    if isinstance(fields["size"], tuple):
        fields["size"] = list(fields["size"])
    return fields


class NMFTask:
    """Projected SGD with update clipping on one instance of a set, chunk by chunk.

    Every :meth:`reset` picks an instance (uniformly with the given seed, or the one named by
    ``instance``) and starts :class:`nmf.ProjectedSGD` from that instance's initial factors with
    the instance's seed, exactly as ``nmf.run_sgd(instance.build(), ..., clip=clip, box=box,
    seed=instance.seed)`` would. :meth:`advance` then takes steps with it.

    Parameters
    ----------
    instances : sequence of NMFInstance (or their dict form)
        The instance set; see :func:`nmf_instance_set`.
    clip : float or None, default :data:`DEFAULT_CLIP`
        Element-wise update clipping (no entry of W or H moves by more than ``clip`` per step).
    box : float or None, default None
        Keep every entry of W and H in ``[0, box]``.
    initial_lr_fraction : float, default :data:`DEFAULT_INITIAL_LR_FRACTION`
        :attr:`initial_lr` is this fraction of the stability bound of the initial iterate.
    compute_bound : bool, default True
        Compute the deterministic stability bound (:func:`nmf.stability_bound`) after every chunk,
        reported as :attr:`TaskStats.bound` (what the RL shield uses). The bound is computed at
        chunk ends only, which keeps a chunk of ``k`` steps about ``k`` times cheaper than
        ``nmf.run_sgd``'s per-step bounds; the values are identical to the ones ``run_sgd``
        reports for the same iterates, and reuse the residual and gradient of the chunk's last
        step.
    certify : bool, default False
        Certify every step's rate as :class:`nmf.ProjectedSGD` does with ``certify=True``: the
        chunk's rate is applied at each step whose exact (noiseless) step at it does not raise
        the objective, the iterate's stability bound otherwise (``nmf.run_sgd(...,
        certify=True)`` applies the same rates).
    run_seed : "instance" or "episode", default "instance"
        What seeds a run's random start and gradient noise (and mini-batches), as ``seed`` does
        in ``nmf.run_sgd``. ``"instance"``: the instance's seed, so every run of an instance is
        the same run, as ``nmf.run_sgd(..., seed=instance.seed)``. ``"episode"``: the instance's
        seed together with the seed :meth:`reset` is given, so each training episode starts the
        same problem (same data) from another point and meets other noise, and a policy cannot
        learn one run by heart (a reset without a seed falls back to the instance's seed). Runs
        are then no longer determined by the instance alone
        (:attr:`runs_determined_by_instance`).

    Attributes
    ----------
    instance : NMFInstance
        The instance of the current run.
    instance_index : int
        Its index in :attr:`instances`.
    sgd : nmf.ProjectedSGD
        The optimizer state of the current run.
    stats : TaskStats
        Statistics of the current iterate.
    """

    RUN_SEEDS = ("instance", "episode")

    @property
    def runs_determined_by_instance(self) -> bool:
        """Whether a run depends on its instance and the rates it is given only (with
        ``run_seed="instance"``), so runs can be cached per instance (see ``LRScheduleEnv``'s
        ``reward_baseline``)."""
        return self.run_seed == "instance"

    def __init__(
        self,
        instances: Sequence[NMFInstance | Mapping[str, Any]],
        *,
        clip: float | None = DEFAULT_CLIP,
        box: float | None = None,
        initial_lr_fraction: float = DEFAULT_INITIAL_LR_FRACTION,
        compute_bound: bool = True,
        certify: bool = False,
        run_seed: str = "instance",
    ) -> None:
        if isinstance(instances, NMFInstance | Mapping) or not isinstance(instances, Sequence):
            raise TypeError(
                f"instances must be a sequence of NMFInstance, got {type(instances).__name__}."
            )
        if len(instances) == 0:
            raise ValueError("instances must not be empty.")
        self.instances: list[NMFInstance] = [as_instance(inst) for inst in instances]
        for name, value in (("clip", clip), ("box", box)):
            if value is not None and not (
                isinstance(value, Real) and math.isfinite(value) and value > 0
            ):
                raise ValueError(f"{name} must be None or a finite float > 0, got {value!r}.")
        if not (
            isinstance(initial_lr_fraction, Real)
            and math.isfinite(initial_lr_fraction)
            and initial_lr_fraction > 0
        ):
            raise ValueError(
                f"initial_lr_fraction must be a finite float > 0, got {initial_lr_fraction!r}."
            )
        self.clip = None if clip is None else float(clip)
        self.box = None if box is None else float(box)
        self.initial_lr_fraction = float(initial_lr_fraction)
        self.compute_bound = bool(compute_bound)
        if not isinstance(certify, bool):
            raise TypeError(f"certify must be a bool, got {type(certify).__name__}.")
        self.certify = certify
        if run_seed not in self.RUN_SEEDS:
            raise ValueError(f"run_seed must be one of {self.RUN_SEEDS}, got {run_seed!r}.")
        self.run_seed = run_seed
        self._problems: dict[int, nmf.StochasticNMF] = {}
        self.instance_index: int | None = None
        self.sgd: nmf.ProjectedSGD | None = None
        self.stats: TaskStats | None = None
        self._initial_lr = math.nan

    # ------------------------------------------------------------------ the Task protocol
    @property
    def instance(self) -> NMFInstance:
        self._require_reset()
        return self.instances[self.instance_index]

    @property
    def problem(self) -> nmf.StochasticNMF:
        """The (cached) problem of the current instance."""
        self._require_reset()
        return self._problem(self.instance_index)

    @property
    def initial_lr(self) -> float:
        """``initial_lr_fraction`` times the stability bound of the current run's initial iterate.

        ``nan`` before the first :meth:`reset`.
        """
        return self._initial_lr

    def reset(self, seed: int | None = None, *, instance: int | None = None) -> TaskStats:
        """Start a new run.

        Parameters
        ----------
        seed : int or None
            Picks the instance uniformly from the set (ignored when ``instance`` is given).
        instance : int or None
            Index of the instance to run instead.

        Returns
        -------
        TaskStats
            Statistics of the initial iterate.
        """
        index = pick_instance(len(self.instances), seed, instance)
        self.instance_index = index
        inst = self.instances[index]
        self.sgd = nmf.ProjectedSGD(
            self._problem(index),
            clip=self.clip,
            box=self.box,
            seed=self._run_seed(inst, seed),
            compute_bound=True,
            certify=self.certify,
        )
        self.sgd.compute_bound = False  # from now on only at chunk ends (see advance)
        bound = float(self.sgd.stats.bound)
        if not (math.isfinite(bound) and bound > 0):
            raise ValueError(
                f"instance {inst!r} is degenerate: its initial stability bound is {bound!r}."
            )
        self._initial_lr = self.initial_lr_fraction * bound
        self.stats = self._make_stats(math.nan, bound if self.compute_bound else math.nan)
        return self.stats

    def _run_seed(self, inst: NMFInstance, seed: int | None) -> int:
        """The seed of a run's start and gradient noise (see ``run_seed``)."""
        if self.run_seed == "instance" or seed is None:
            return inst.seed
        if not is_int(seed) or seed < 0:
            raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}.")
        return int(np.random.SeedSequence([inst.seed, int(seed)]).generate_state(1)[0])

    def advance(self, lr: float, n_steps: int) -> TaskStats:
        """Take ``n_steps`` projected SGD steps at ``lr``, stopping right after a divergence.

        Divergence is :attr:`nmf.ProjectedSGD.diverged`: a non-finite loss or a loss above
        ``nmf.sgd.DIVERGENCE_FACTOR`` times the initial loss, the rule ``nmf.run_sgd`` stops on.
        """
        self._require_reset()
        check_advance(lr, n_steps, self.stats)
        sgd = self.sgd
        for i in range(n_steps):
            # The chunk's last step computes the bound from the residual and gradient it has.
            sgd.compute_bound = self.compute_bound and i == n_steps - 1
            sgd.step(float(lr))
            if sgd.diverged:
                break
        sgd.compute_bound = False
        bound = float(sgd.stats.bound) if self.compute_bound and not sgd.diverged else math.nan
        self.stats = self._make_stats(float(lr), bound)
        return self.stats

    # ------------------------------------------------------------------ helpers
    def _problem(self, index: int) -> nmf.StochasticNMF:
        if index not in self._problems:
            self._problems[index] = self.instances[index].build()
        return self._problems[index]

    def _make_stats(self, lr: float, bound: float) -> TaskStats:
        s = self.sgd.stats
        return TaskStats(
            loss=float(s.loss),
            val_loss=math.nan,
            grad_norm=float(s.grad_norm),
            lr=lr,
            bound=bound,
            steps_done=int(self.sgd.step_count),
            diverged=bool(self.sgd.diverged),
            grad_noise=float(s.grad_noise),
        )

    def _require_reset(self) -> None:
        if self.sgd is None:
            raise RuntimeError("call reset() first.")

    def __repr__(self) -> str:
        return (
            f"NMFTask(n_instances={len(self.instances)}, clip={self.clip}, box={self.box}, "
            f"initial_lr_fraction={self.initial_lr_fraction}, compute_bound={self.compute_bound})"
        )
