"""Things being trained: the :class:`Task` protocol, the NMF task and the deep-network tasks.

:class:`NMFTask` (paper 1) loads with the package; :class:`VisionTask`, :class:`TextTask` and the
rest of :mod:`rl_scheduler.tasks.torch_tasks` (paper 2) import torch, so they load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from rl_scheduler.tasks.base import Task, TaskStats
from rl_scheduler.tasks.nmf_task import NMFTask, nmf_instance_set

_TORCH_NAMES = (
    "TextTask",
    "TorchInstance",
    "TorchTask",
    "VisionTask",
    "as_torch_instance",
    "resolve_device",
    "text_instance_set",
    "torch_instance_to_dict",
    "vision_instance_set",
)

__all__ = [
    "NMFTask",
    "Task",
    "TaskStats",
    "nmf_instance_set",
    *_TORCH_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        return getattr(importlib.import_module("rl_scheduler.tasks.torch_tasks"), name)
    raise AttributeError(f"module 'rl_scheduler.tasks' has no attribute {name!r}")
