"""PPO agents inside the studies: train (or resume) one into a folder, load one (cached)."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

from experiments.common.progress import ProgressLine

MODEL_FILE = "model.zip"
"""File name of an agent's final policy inside its folder."""

LOW_EXPLORATION_PPO = {"policy_kwargs": {"net_arch": [64, 64], "log_std_init": -1.5}}
"""PPO's Gaussian policy starting with standard deviation ``exp(-1.5) = 0.22`` instead of the
default ``exp(-0.5) = 0.61`` action units (for the one-move actions of ``bound_range`` /
``rate_range``, one unit spans the range's end in octaves of rate)."""


def freeze(value: Any) -> Any:
    """A hashable, JSON-able copy for a spec field: dicts become sorted item tuples, lists
    tuples."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw_ppo(items: tuple) -> dict[str, Any]:
    """PPO settings from their :func:`freeze` form (``policy_kwargs`` a dict again, its
    ``net_arch`` a list)."""
    ppo = dict(items)
    if "policy_kwargs" in ppo:
        kw = dict(ppo["policy_kwargs"])
        if "net_arch" in kw:
            kw["net_arch"] = list(kw["net_arch"])
        ppo["policy_kwargs"] = kw
    return ppo


def train_agent(
    folder: Path,
    env_kwargs: dict[str, Any],
    *,
    one_thread: bool = True,
    progress: str | None = None,
    **train_kwargs: Any,
) -> tuple[Any, dict[str, Any]]:
    """Train (or resume from ``folder``'s checkpoints) a PPO agent and save its final policy.

    ``train_kwargs`` go to :func:`rl_scheduler.agent.train_ppo` (``env_id``,
    ``total_timesteps``, ``n_envs``, ``seed``, checkpoint settings, ``ppo_kwargs``). Returns the
    model and what every study records of the training: ``train_time_s``,
    ``resumed_from_timesteps`` (0 for a fresh start), ``timesteps`` and the per-episode
    ``curve`` (:func:`rl_scheduler.agent.load_training_curve`). The policy network is small, so
    PPO itself runs on the CPU; ``one_thread`` limits torch to one thread (runs are parallelised
    across processes instead). With ``progress`` (a label), long trainings print rate lines with
    an ETA (:class:`~experiments.common.progress.ProgressLine`).
    """
    import torch

    from rl_scheduler import agent

    if one_thread:
        torch.set_num_threads(1)
    previous = agent.latest_checkpoint(folder)
    start = time.perf_counter()
    model = agent.train_ppo(
        env_kwargs,
        checkpoint_dir=folder,
        device="cpu",
        progress=False if progress is None else ProgressLine(progress),
        **train_kwargs,
    )
    elapsed = time.perf_counter() - start
    agent.save(model, folder / MODEL_FILE)
    return model, {
        "train_time_s": elapsed,
        "resumed_from_timesteps": 0 if previous is None else agent.checkpoint_steps(previous),
        "timesteps": int(model.num_timesteps),
        "curve": agent.load_training_curve(folder),
    }


@functools.lru_cache(maxsize=8)
def load_policy(path: str) -> Any:
    """The saved agent at ``path`` on the CPU, loaded once per process."""
    from rl_scheduler import agent

    return agent.load(path, device="cpu")
