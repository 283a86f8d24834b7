"""Running a trained policy: one episode (:func:`rollout`) or a whole (held-out) instance set
(:func:`evaluate`). Both are also available as ``rl_scheduler.agent.rollout`` / ``.evaluate``."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np

from rl_scheduler.agent import (
    _check_env_id,
    _check_env_kwargs,
    _jsonable,
    _unwrap,
    load,
    model_metadata,
)
from rl_scheduler.policy import RunPredictor
from rl_scheduler.registration import NMF_ENV_ID, env_factory


def rollout(
    model: Any,
    env: gymnasium.Env,
    *,
    seed: int | None = 0,
    options: Mapping[str, Any] | None = None,
    deterministic: bool = True,
) -> dict[str, Any]:
    """Run one episode of ``model`` (anything with ``predict(obs, deterministic=...)``) in ``env``.

    Returns
    -------
    dict
        ``initial_loss``, ``final_loss``, ``loss_ratio`` (final / initial), ``return``,
        ``diverged``, ``steps_done``, and per action: ``losses`` (``n_actions + 1`` values, the
        first before any step), ``lrs`` (applied), ``proposed_lrs``, ``bounds`` (at the start of
        each chunk), ``rewards`` and ``actions``; plus ``instance_index`` when the task has one.
    """
    _unwrap(env)  # fail early on anything else
    obs, info = env.reset(seed=seed, options=dict(options) if options else None)
    out: dict[str, Any] = {
        "losses": [info["loss"]],
        "lrs": [],
        "proposed_lrs": [],
        "bounds": [],
        "rewards": [],
        "actions": [],
    }
    done = False
    predict = RunPredictor(model)
    while not done:
        action = predict(obs, deterministic)
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        out["actions"].append(float(np.asarray(action).reshape(-1)[0]))
        out["losses"].append(info["loss"])
        out["lrs"].append(info["lr"])
        out["proposed_lrs"].append(info["proposed_lr"])
        out["bounds"].append(info["bound"])
        out["rewards"].append(float(reward))
    out["initial_loss"] = out["losses"][0]
    out["final_loss"] = math.inf if info["diverged"] else out["losses"][-1]
    out["loss_ratio"] = out["final_loss"] / out["initial_loss"]
    out["return"] = float(sum(out["rewards"]))
    out["diverged"] = bool(info["diverged"])
    out["steps_done"] = int(info["steps_done"])
    if "instance_index" in info:
        out["instance_index"] = info["instance_index"]
    return out


TRAINING_ONLY = ("run_seed", "reward_scale", "reward_scale_floor")
"""Environment settings that shape training only; :func:`evaluate` leaves them out."""


def evaluate(
    model: Any,
    env_kwargs: Mapping[str, Any] | None = None,
    instances: Sequence[Any] | None = None,
    *,
    deterministic: bool = True,
    seed: int = 0,
    env_id: str | None = None,
) -> list[dict[str, Any]]:
    """Run the policy once on every instance of a (held-out) set.

    Parameters
    ----------
    model : PPO or path
        A trained model (or the path of a saved one).
    env_kwargs : dict, optional
        Environment keyword arguments (as for :func:`train_ppo`); default: those the model was
        trained with. Use ``{**train_kwargs, "split": "test"}`` for the held-out set. The
        training-only settings :data:`TRAINING_ONLY` are dropped: every instance runs with its
        own seed (as ``nmf.run_sgd(..., seed=instance.seed)`` and a ``LearnedSchedule`` run
        it), and returns are not rescaled.
    instances : sequence of instances, optional
        Evaluate on these instances (``NMFInstance``, ``TorchInstance`` or their dict forms)
        instead of the set described by ``env_kwargs``.
    deterministic : bool, default True
        Use the policy's mean action.
    seed : int, default 0
        Reset seed (runs do not depend on it once the instance is fixed).
    env_id : str, optional
        The environment to evaluate on; default: the one the model was trained on (its
        metadata), else ``rl_scheduler/NMF-v0``. A different id applies the policy to another
        task without retraining (transfer); it needs the same observation ``features``.

    Returns
    -------
    list of dict
        One :func:`rollout` result per instance, in order, each with ``instance`` (its dict form).
    """
    if isinstance(model, str | os.PathLike):
        model = load(model, device="cpu")
    meta = model_metadata(model)
    if env_kwargs is None:
        if meta is None:
            raise ValueError("env_kwargs is required for a model without rl_scheduler metadata.")
        env_kwargs = meta["env_kwargs"]
    if env_id is None:
        env_id = meta["env_id"] if meta is not None else NMF_ENV_ID
    kwargs = _check_env_kwargs(env_kwargs)
    for key in TRAINING_ONLY:
        kwargs.pop(key, None)
    if instances is not None:
        kwargs["instances"] = [_jsonable(i) for i in instances]
    env = _unwrap(env_factory(_check_env_id(env_id))(**kwargs))
    results = []
    for index, instance in enumerate(env.task.instances):
        result = rollout(
            model, env, seed=seed, options={"instance": index}, deterministic=deterministic
        )
        result["instance"] = _jsonable(instance)
        results.append(result)
    env.close()
    return results
