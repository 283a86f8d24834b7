"""Environment factories behind the registered Gymnasium ids.

``import rl_scheduler`` registers:

``rl_scheduler/NMF-v0``
    :func:`make_nmf_env`: an :class:`~rl_scheduler.LRScheduleEnv` over an
    :class:`~rl_scheduler.tasks.NMFTask` with a train or held-out instance set.
``rl_scheduler/Vision-v0``
    :func:`make_vision_env`: the same environment over a
    :class:`~rl_scheduler.tasks.VisionTask` (a small CNN on digits by default).
``rl_scheduler/Text-v0``
    :func:`make_text_env`: over a :class:`~rl_scheduler.tasks.TextTask` (a character-level GRU
    on Shakespeare's plays by default).

>>> import gymnasium, rl_scheduler
>>> env = gymnasium.make("rl_scheduler/NMF-v0", split="test", n_instances=8, noise_levels=[1.0])
>>> env = gymnasium.make("rl_scheduler/Vision-v0", split="train", task_kwargs={"device": "auto"})

The ids work with the usual vectorisers, e.g. stable-baselines3's
``make_vec_env("rl_scheduler/NMF-v0", n_envs=4, env_kwargs={...})`` (which asks for
``render_mode="rgb_array"``, a mode the environments offer). For Gymnasium's asynchronous vector
environment pass a ``spawn`` context::

    envs = gymnasium.make_vec("rl_scheduler/NMF-v0", num_envs=4, vectorization_mode="async",
                              vector_kwargs={"context": "spawn"}, split="train")

The default ``fork`` context copies the parent's state into each worker; after torch has run in
the parent (its thread pools, or CUDA), a forked worker of a ``Vision-v0`` or ``Text-v0``
environment can hang. :func:`rl_scheduler.agent.make_vec` always uses ``spawn`` for its
``"subproc"`` vectoriser.

:func:`make_env` builds the environment of any registered id directly (no Gymnasium wrappers),
which is what :mod:`rl_scheduler.agent` uses. The torch tasks are imported on first use, so
``import rl_scheduler`` does not import torch.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
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
VISION_ENV_ID = "rl_scheduler/Vision-v0"
TEXT_ENV_ID = "rl_scheduler/Text-v0"

DNN_FEATURES: tuple[str, ...] = (
    "log_loss",
    "loss_change",
    "loss_change_prev",
    "log_val_loss",
    "log_grad_norm",
    "log_lr",
    "descent_ratio",
    "progress",
)
"""Observation of the deep-network environments: signals every model has (training and
validation loss relative to the start, the training loss's change over the last two chunks, the
gradient norm, the learning rate, the loss decrease per unit of ``lr * grad_norm**2``, and the
share of the budget used). The stability-bound features of the NMF observation are left out:
deep networks have no bound, so they would be constant."""

DNN_STEPS_PER_ACTION = 10
"""Optimizer steps per action of the deep-network environments."""

DNN_MAX_ACTIONS = 20
"""Actions per episode of the deep-network environments (200 optimizer steps by default)."""


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
    certify: bool = False,
    run_seed: str = "instance",
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
    clip, box, initial_lr_fraction, compute_bound, certify, run_seed
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
        certify=certify,
        run_seed=run_seed,
    )
    return LRScheduleEnv(task, **env_kwargs)


TEXT_TASK_DEFAULTS: dict[str, Any] = {"batch_size": 32}
"""``task_kwargs`` defaults of :func:`make_text_env` that differ from :class:`TextTask`'s own."""


def _dnn_env(
    task_cls: type,
    instances: Sequence[Any],
    task_kwargs: Mapping[str, Any] | None,
    defaults: Mapping[str, Any],
    **env_kwargs: Any,
) -> LRScheduleEnv:
    """``LRScheduleEnv(task_cls(instances, **defaults, **task_kwargs), **env_kwargs)``.

    Raises a TypeError naming any task argument given among ``env_kwargs``.
    """
    from rl_scheduler.tasks.torch_tasks import TorchTask

    if task_kwargs is not None and not isinstance(task_kwargs, Mapping):
        raise TypeError(f"task_kwargs must be a dict or None, got {type(task_kwargs).__name__}.")
    task_params = {
        *inspect.signature(TorchTask).parameters,
        *inspect.signature(task_cls).parameters,
    }
    misplaced = sorted(set(env_kwargs) & (task_params - {"instances", "kwargs"}))
    if misplaced:
        raise TypeError(
            f"{misplaced} are arguments of {task_cls.__name__}: pass them in task_kwargs, e.g. "
            f"task_kwargs={{{misplaced[0]!r}: ...}}."
        )
    task = task_cls(instances, **{**defaults, **(task_kwargs or {})})
    return LRScheduleEnv(task, **env_kwargs)


def make_vision_env(
    *,
    split: str = "train",
    n_instances: int = 8,
    instances: Sequence[Any] | None = None,
    datasets: Sequence[str] = ("digits",),
    models: Sequence[str] = ("cnn",),
    instance_seed: int = 0,
    task_kwargs: Mapping[str, Any] | None = None,
    steps_per_action: int = DNN_STEPS_PER_ACTION,
    max_actions: int = DNN_MAX_ACTIONS,
    features: Sequence[str] = DNN_FEATURES,
    **env_kwargs: Any,
) -> LRScheduleEnv:
    """An LR-scheduling environment on image classification (entry point of ``rl_scheduler/Vision-v0``).

    Parameters
    ----------
    split, n_instances, datasets, models, instance_seed
        The instance set, see :func:`rl_scheduler.tasks.vision_instance_set` (``n_instances`` is
        its ``n``, ``instance_seed`` its ``seed``). Ignored when ``instances`` is given.
    instances : sequence of TorchInstance or dicts, optional
        An explicit instance set.
    task_kwargs : dict, optional
        Keyword arguments of :class:`rl_scheduler.tasks.VisionTask` (``optimizer``, ``momentum``,
        ``initial_lr``, ``batch_size``, ``device``, ``data_root``, ... as documented by
        :class:`~rl_scheduler.tasks.torch_tasks.TorchTask`), e.g. ``{"device": "cuda"}``.
    steps_per_action : int, default :data:`DNN_STEPS_PER_ACTION`
    max_actions : int, default :data:`DNN_MAX_ACTIONS`
    features : sequence of str, default :data:`DNN_FEATURES`
    **env_kwargs
        Passed to :class:`rl_scheduler.LRScheduleEnv` (``max_mult``, ``divergence_penalty``,
        ``lr_limits``, ...).

    Returns
    -------
    LRScheduleEnv

    Raises
    ------
    TypeError
        If a task argument is passed outside ``task_kwargs``.
    """
    from rl_scheduler.tasks.torch_tasks import VisionTask, vision_instance_set

    if instances is None:
        instances = vision_instance_set(
            split, n_instances, datasets=datasets, models=models, seed=instance_seed
        )
    return _dnn_env(
        VisionTask,
        instances,
        task_kwargs,
        {},
        steps_per_action=steps_per_action,
        max_actions=max_actions,
        features=features,
        **env_kwargs,
    )


def make_text_env(
    *,
    split: str = "train",
    n_instances: int = 8,
    instances: Sequence[Any] | None = None,
    datasets: Sequence[str] = ("shakespeare",),
    models: Sequence[str] = ("gru",),
    instance_seed: int = 0,
    task_kwargs: Mapping[str, Any] | None = None,
    steps_per_action: int = DNN_STEPS_PER_ACTION,
    max_actions: int = DNN_MAX_ACTIONS,
    features: Sequence[str] = DNN_FEATURES,
    **env_kwargs: Any,
) -> LRScheduleEnv:
    """An LR-scheduling environment on character-level language modelling (``rl_scheduler/Text-v0``).

    Parameters
    ----------
    split, n_instances, datasets, models, instance_seed
        The instance set, see :func:`rl_scheduler.tasks.text_instance_set` (``datasets`` may name
        a text file). Ignored when ``instances`` is given.
    instances : sequence of TorchInstance or dicts, optional
        An explicit instance set.
    task_kwargs : dict, optional
        Keyword arguments of :class:`rl_scheduler.tasks.TextTask` (``seq_len`` and those of
        :class:`~rl_scheduler.tasks.torch_tasks.TorchTask`); :data:`TEXT_TASK_DEFAULTS` fills in
        the ones not given.
    steps_per_action, max_actions, features, **env_kwargs
        As for :func:`make_vision_env`.

    Returns
    -------
    LRScheduleEnv
    """
    from rl_scheduler.tasks.torch_tasks import TextTask, text_instance_set

    if instances is None:
        instances = text_instance_set(
            split, n_instances, datasets=datasets, models=models, seed=instance_seed
        )
    return _dnn_env(
        TextTask,
        instances,
        task_kwargs,
        TEXT_TASK_DEFAULTS,
        steps_per_action=steps_per_action,
        max_actions=max_actions,
        features=features,
        **env_kwargs,
    )


ENV_FACTORIES: dict[str, Callable[..., LRScheduleEnv]] = {
    NMF_ENV_ID: make_nmf_env,
    VISION_ENV_ID: make_vision_env,
    TEXT_ENV_ID: make_text_env,
}
"""The package's ids and the factories behind them."""


def env_factory(env_id: str) -> Callable[..., gymnasium.Env]:
    """The callable that builds the environment of a registered id (its Gymnasium entry point).

    The package's own ids map to :data:`ENV_FACTORIES`; any other id registered with Gymnasium
    resolves to its entry point, so :mod:`rl_scheduler.agent` can train on a user's task too.

    Raises
    ------
    ValueError
        If ``env_id`` is not registered.
    """
    if env_id in ENV_FACTORIES:
        return ENV_FACTORIES[env_id]
    if not isinstance(env_id, str) or env_id not in gymnasium.registry:
        raise ValueError(
            f"env_id must be a registered Gymnasium id such as {tuple(ENV_FACTORIES)}, "
            f"got {env_id!r}."
        )
    entry_point = gymnasium.registry[env_id].entry_point
    if callable(entry_point):
        return entry_point
    from gymnasium.envs.registration import load_env_creator

    return load_env_creator(entry_point)


def make_env(env_id: str = NMF_ENV_ID, **kwargs: Any) -> gymnasium.Env:
    """The environment of ``env_id`` built by its factory, without Gymnasium's wrappers."""
    return env_factory(env_id)(**kwargs)


_SHARED_BASELINE_CACHES: dict[str, dict[int, tuple[list[float], float]]] = {}

SHARE_BASELINE_RUNS = True
"""Whether :func:`make_sharing_env` shares neutral runs; ``False`` gives every environment a
cache of its own (as before sharing existed: to measure what sharing saves)."""


def make_sharing_env(env_id: str, kwargs: Mapping[str, Any]) -> gymnasium.Env:
    """:func:`make_env`, with the neutral policy's runs shared by every environment of the
    package's ids (:data:`ENV_FACTORIES`) that this process builds from the same id and
    JSON-able arguments.

    An :class:`~rl_scheduler.LRScheduleEnv` with a ``reward_baseline`` runs the neutral policy
    once per instance (:attr:`~rl_scheduler.LRScheduleEnv.baseline_cache`). The package's
    factories build the same tasks and rate mapping from the same arguments, so environments
    with the same id and arguments have the same neutral runs, and one cache serves them all:
    the parallel environments of a PPO training, and the trainings one after the other in a
    warm worker (PPO seeds differ only in the seeds of the environments, not in what an
    instance's neutral run is). Only tasks whose runs are determined by their instance use the
    cache at all, and their rewards are exactly those of unshared environments; only the cost
    changes. Other ids (a user's factory need not be a pure function of its arguments) and
    arguments that are not JSON-able get a cache of their own, as before (every environment
    does while :data:`SHARE_BASELINE_RUNS` is ``False``). A process whose data
    files change under it (a notebook rewriting a text file) calls
    :func:`clear_shared_baseline_caches`.
    """
    try:
        shared = SHARE_BASELINE_RUNS and env_id in ENV_FACTORIES
        key = json.dumps([env_id, kwargs], sort_keys=True) if shared else None
    except TypeError:
        key = None
    env = make_env(env_id, **kwargs)
    if key is not None and isinstance(env.unwrapped, LRScheduleEnv):
        env.unwrapped.baseline_cache = _SHARED_BASELINE_CACHES.setdefault(key, {})
    return env


def clear_shared_baseline_caches() -> None:
    """Forget the neutral runs :func:`make_sharing_env` shares (environments built before keep
    theirs)."""
    _SHARED_BASELINE_CACHES.clear()


def register_envs() -> None:
    """Register the package's Gymnasium ids (idempotent; run on ``import rl_scheduler``)."""
    for env_id, factory in ENV_FACTORIES.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id, entry_point=f"rl_scheduler.registration:{factory.__name__}"
            )
