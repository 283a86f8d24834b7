"""Trained schedulers shipped with the package, for users who do not want to train PPO.

Each agent lives in its own folder, ``rl_scheduler/pretrained/<name>/``:

``model.zip``
    The policy in :mod:`rl_scheduler.checkpoint`'s format (weights read with
    ``torch.load(weights_only=True)`` plus JSON): loading it never unpickles anything.
``manifest.json``
    Where it comes from (``commit``, ``command``, ``source``: the reference run and agent folder
    it was copied from, ``selected_by``) and a small held-out ``evaluation`` that
    ``tests/rl_scheduler/test_pretrained.py`` reruns to check the shipped file reproduces it.

The reference run regenerates them: ``make reference-nmf`` exports the agent named in the NMF
study's configuration (see :func:`export`).

Example::

    import nmf
    from rl_scheduler import pretrained

    problem = nmf.StochasticNMF(nmf.datasets.digits(), rank=10, noise_std=1.0, seed=0)
    schedule = pretrained.load("nmf")
    traj = nmf.run_sgd(problem, schedule, n_steps=300, clip=0.1, seed=0)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODEL_FILE = "model.zip"
MANIFEST_FILE = "manifest.json"


def available() -> list[str]:
    """Names of the shipped agents (folders holding a model and a manifest)."""
    return sorted(
        p.name
        for p in HERE.iterdir()
        if p.is_dir() and (p / MODEL_FILE).is_file() and (p / MANIFEST_FILE).is_file()
    )


def _folder(name: str) -> Path:
    names = available()
    if not isinstance(name, str) or name not in names:
        raise ValueError(f"name must be one of the shipped agents {names}, got {name!r}.")
    return HERE / name


def info(name: str) -> dict[str, Any]:
    """The manifest of a shipped agent: provenance and its recorded evaluation."""
    return json.loads((_folder(name) / MANIFEST_FILE).read_text())


def model_path(name: str) -> Path:
    """The model file of a shipped agent."""
    return _folder(name) / MODEL_FILE


def load(name: str, **schedule_kwargs: Any):
    """A ready :class:`~rl_scheduler.policy.LearnedSchedule` driven by a shipped agent.

    Parameters
    ----------
    name : str
        One of :func:`available` (e.g. ``"nmf"``).
    **schedule_kwargs
        Passed to :class:`~rl_scheduler.policy.LearnedSchedule` (e.g. ``initial_lr`` for the
        deep-network agents, ``steps_per_action``), over the settings the agent was evaluated
        with (its manifest's ``schedule``: for ``"nmf"`` the descent guard, ``guard=True``).

    Returns
    -------
    rl_scheduler.policy.LearnedSchedule
        A schedule ``observe(stats)`` + ``schedule(step) -> lr``; for ``"nmf"`` pass it to
        ``nmf.run_sgd(problem, schedule, n_steps, clip=0.1, seed=...)`` (``compute_bound`` is on
        by default there, which the schedule needs). Create a new one per run, or call
        ``reset()`` between runs.
    """
    from rl_scheduler.agent import load as load_model
    from rl_scheduler.policy import LearnedSchedule

    settings = {**info(name).get("schedule", {}), **schedule_kwargs}
    return LearnedSchedule(load_model(model_path(name), device="cpu"), **settings)


def export(
    model_file: str | Path, name: str, manifest: Mapping[str, Any], *, root: Path = HERE
) -> Path:
    """Copy a trained model into ``root/<name>/`` with its manifest (used by the reference runs).

    The model is loaded first (safely, refusing pickles), so only a readable file is shipped;
    both files are written to a temporary folder and moved into place together.
    """
    from rl_scheduler.agent import load as load_model

    load_model(model_file, device="cpu")
    for key in ("commit", "command", "source", "evaluation"):
        if key not in manifest:
            raise ValueError(f"manifest must have {key!r}; got keys {sorted(manifest)}.")
    target = Path(root) / name
    staging = Path(root) / f".{name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copyfile(model_file, staging / MODEL_FILE)
    (staging / MANIFEST_FILE).write_text(json.dumps(dict(manifest), indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target
