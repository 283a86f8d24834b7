"""Things being trained: the :class:`Task` protocol and its NMF implementation.

Deep-network tasks (paper 2) implement the same protocol.
"""

from rl_scheduler.tasks.base import BoundedTask, Task, TaskStats, task_safe_lr
from rl_scheduler.tasks.nmf_task import NMFTask, nmf_instance_set

__all__ = ["BoundedTask", "NMFTask", "Task", "TaskStats", "nmf_instance_set", "task_safe_lr"]
