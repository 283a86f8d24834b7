"""Learned learning-rate schedules: a Gymnasium environment and a PPO agent (papers 1 and 2).

>>> import gymnasium, rl_scheduler
>>> env = gymnasium.make("rl_scheduler/NMF-v0", split="train")
>>> obs, info = env.reset(seed=0)

The PPO side lives in :mod:`rl_scheduler.agent` (train, checkpoint, save/load, evaluate) and
:mod:`rl_scheduler.policy` (a trained policy as a plain schedule); both import stable-baselines3
and torch, so they load on first use rather than with the package.
"""

from __future__ import annotations

import importlib
from typing import Any

from rl_scheduler.env import LRScheduleEnv
from rl_scheduler.features import DEFAULT_FEATURES, FEATURES, Featurizer
from rl_scheduler.registration import NMF_ENV_ID, make_nmf_env, register_envs
from rl_scheduler.tasks import NMFTask, Task, TaskStats, nmf_instance_set

register_envs()

__all__ = [
    "DEFAULT_FEATURES",
    "FEATURES",
    "NMF_ENV_ID",
    "Featurizer",
    "LRScheduleEnv",
    "NMFTask",
    "Task",
    "TaskStats",
    "agent",
    "make_nmf_env",
    "nmf_instance_set",
    "policy",
    "tasks",
]


def __getattr__(name: str) -> Any:
    if name in ("agent", "policy"):
        return importlib.import_module(f"rl_scheduler.{name}")
    raise AttributeError(f"module 'rl_scheduler' has no attribute {name!r}")
