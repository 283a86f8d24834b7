"""Environment factories behind the registered Gymnasium ids.

``import rl_scheduler`` registers:

``rl_scheduler/NMF-v0``
    :func:`make_nmf_env`: an :class:`~rl_scheduler.LRScheduleEnv` over an
    :class:`~rl_scheduler.tasks.NMFTask` with a train or held-out instance set.

>>> import gymnasium, rl_scheduler
>>> env = gymnasium.make("rl_scheduler/NMF-v0", split="test", n_instances=8, noise_levels=[1.0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium

from nmf.datasets import NMFInstance
from rl_scheduler.env import LRScheduleEnv
from rl_scheduler.tasks.nmf_task import (
    DEFAULT_CLIP,
    DEFAULT_INITIAL_LR_FRACTION,
    DEFAULT_NOISE_LEVELS,
    NMFTask,
    nmf_instance_set,
)

NMF_ENV_ID = "rl_scheduler/NMF-v0"


def make_nmf_env(
    *,
    split: str = "train",
    n_instances: int = 32,
    instances: Sequence[NMFInstance | Mapping[str, Any]] | None = None,
    datasets: Sequence[str] = ("synthetic", "digits"),
    noise_levels: Sequence[float] = DEFAULT_NOISE_LEVELS,
    ranks: Sequence[int] | None = None,
    sizes: Mapping[str, Any] | None = None,
    data_noise: float = 0.1,
    batch_size: int | None = None,
    instance_seed: int = 0,
    clip: float | None = DEFAULT_CLIP,
    box: float | None = None,
    initial_lr_fraction: float = DEFAULT_INITIAL_LR_FRACTION,
    compute_bound: bool = True,
    **env_kwargs: Any,
) -> LRScheduleEnv:
    """An LR-scheduling environment on stochastic NMF (the entry point of ``rl_scheduler/NMF-v0``).

    Parameters
    ----------
    split, n_instances, datasets, noise_levels, ranks, sizes, data_noise, batch_size, instance_seed
        The instance set, see :func:`rl_scheduler.tasks.nmf_instance_set` (``n_instances`` is its
        ``n``, ``instance_seed`` its ``seed``). Ignored when ``instances`` is given.
    instances : sequence of NMFInstance or dicts, optional
        An explicit instance set.
    clip, box, initial_lr_fraction, compute_bound
        See :class:`rl_scheduler.tasks.NMFTask`.
    **env_kwargs
        Passed to :class:`rl_scheduler.LRScheduleEnv` (``steps_per_action``, ``max_actions``,
        ``max_mult``, ``shield``, ``shield_fraction``, ``divergence_penalty``, ...).

    Returns
    -------
    LRScheduleEnv
    """
    if instances is None:
        instances = nmf_instance_set(
            split,
            n_instances,
            datasets=datasets,
            noise_levels=noise_levels,
            ranks=ranks,
            sizes=sizes,
            data_noise=data_noise,
            batch_size=batch_size,
            seed=instance_seed,
        )
    task = NMFTask(
        instances,
        clip=clip,
        box=box,
        initial_lr_fraction=initial_lr_fraction,
        compute_bound=compute_bound,
    )
    return LRScheduleEnv(task, **env_kwargs)


def register_envs() -> None:
    """Register the package's Gymnasium ids (idempotent; run on ``import rl_scheduler``)."""
    if NMF_ENV_ID not in gymnasium.registry:
        gymnasium.register(id=NMF_ENV_ID, entry_point="rl_scheduler.registration:make_nmf_env")
