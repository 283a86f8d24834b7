"""Learned learning-rate schedules: a Gymnasium environment and a PPO agent (papers 1 and 2).

>>> import gymnasium, rl_scheduler
>>> env = gymnasium.make("rl_scheduler/NMF-v0", split="train")
>>> obs, info = env.reset(seed=0)

Three environments are registered: ``rl_scheduler/NMF-v0`` (stochastic NMF, paper 1),
``rl_scheduler/Vision-v0`` and ``rl_scheduler/Text-v0`` (a CNN and a character-level language
model trained by SGD, paper 2). The PPO side lives in :mod:`rl_scheduler.agent` (train,
checkpoint, save/load, evaluate), :mod:`rl_scheduler.checkpoint` (the saved-model format, which
never unpickles code) and :mod:`rl_scheduler.policy` (a trained policy as a plain schedule);
they and the deep-network tasks import stable-baselines3 and torch, so they load on first use
rather than with the package.
"""

from __future__ import annotations

import importlib
from typing import Any

from rl_scheduler.env import LRScheduleEnv
from rl_scheduler.features import DEFAULT_FEATURES, FEATURES, Featurizer
from rl_scheduler.registration import (
    DNN_FEATURES,
    NMF_ENV_ID,
    TEXT_ENV_ID,
    VISION_ENV_ID,
    make_env,
    make_nmf_env,
    make_text_env,
    make_vision_env,
    register_envs,
)
from rl_scheduler.tasks import NMFTask, Task, TaskStats, nmf_instance_set

register_envs()

_TORCH_TASK_NAMES = (
    "TextTask",
    "TorchInstance",
    "VisionTask",
    "text_instance_set",
    "vision_instance_set",
)

__all__ = [
    "DEFAULT_FEATURES",
    "DNN_FEATURES",
    "FEATURES",
    "NMF_ENV_ID",
    "TEXT_ENV_ID",
    "VISION_ENV_ID",
    "Featurizer",
    "LRScheduleEnv",
    "NMFTask",
    "Task",
    "TaskStats",
    "agent",
    "checkpoint",
    "evaluation",
    "make_env",
    "make_nmf_env",
    "make_text_env",
    "make_vision_env",
    "nmf_instance_set",
    "policy",
    "tasks",
    *_TORCH_TASK_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in ("agent", "checkpoint", "evaluation", "policy"):
        return importlib.import_module(f"rl_scheduler.{name}")
    if name in _TORCH_TASK_NAMES:
        return getattr(importlib.import_module("rl_scheduler.tasks.torch_tasks"), name)
    raise AttributeError(f"module 'rl_scheduler' has no attribute {name!r}")
