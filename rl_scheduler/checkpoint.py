"""The on-disk format of a trained PPO scheduler: tensors and JSON, nothing that runs code on load.

A saved model is a zip archive with three members:

``rl_scheduler.json``
    ``format`` / ``version``; ``algorithm``: ``"PPO"`` or sb3-contrib's ``"RecurrentPPO"`` (an
    LSTM policy; files without the key are PPO's); ``policy``: the policy class alias
    (``"MlpPolicy"``, ``"MlpLstmPolicy"``), the observation and action spaces as plain data and
    ``policy_kwargs`` (``net_arch``, ``log_std_init``, ``activation_fn`` as a dotted name, ...);
    ``ppo_kwargs``: PPO's hyper-parameters that are plain numbers; ``num_timesteps`` and
    ``n_updates``; ``metadata``: the environment metadata of
    :func:`rl_scheduler.agent.env_metadata`.
``policy.pt``
    ``model.policy.state_dict()``, written by ``torch.save``.
``optimizer.pt``
    ``model.policy.optimizer.state_dict()`` (Adam's moments and step counts), for resuming.

Both tensor files are read with ``torch.load(weights_only=True)``, which refuses any pickled
object other than tensors and plain containers, and class names in ``policy_kwargs`` resolve only
to classes of ``torch.nn``, ``torch.optim`` and ``stable_baselines3.common.torch_layers``.

stable-baselines3's own zip (``PPO.save``) stores parts of the model with cloudpickle, and
``PPO.load`` unpickles them: a crafted file runs any code its author chose. :func:`load_model`
refuses such files unless the caller passes ``trusted=True``.

What a checkpoint does not hold: the rollout buffer (PPO refills it from fresh episodes), the
random number generators' states (:func:`rl_scheduler.agent.train_ppo` reseeds them from its
``seed`` and the checkpoint's step), the last observations (the environments restart their
episodes), the episode-info buffer behind SB3's logged means, and PPO hyper-parameters that are
not plain numbers (schedules given as callables, ``clip_range_vf``): a model loaded on its own
gets PPO's defaults for those, while ``train_ppo`` rebuilds them from its own configuration.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

FORMAT = "rl_scheduler.ppo"
VERSION = 1
SETTINGS_MEMBER = "rl_scheduler.json"
POLICY_MEMBER = "policy.pt"
OPTIMIZER_MEMBER = "optimizer.pt"
SB3_MEMBER = "data"
"""The member every stable-baselines3 zip has (JSON with cloudpickled ``:serialized:`` entries)."""

ALGORITHMS: dict[str, type[OnPolicyAlgorithm]] = {"PPO": PPO, "RecurrentPPO": RecurrentPPO}
"""The algorithms a file may name (``algorithm``); both take the same hyper-parameters."""

Model = PPO | RecurrentPPO
"""What this format saves and loads: a PPO or RecurrentPPO model."""

PPO_HPARAMS = (
    "learning_rate",
    "n_steps",
    "batch_size",
    "n_epochs",
    "gamma",
    "gae_lambda",
    "clip_range",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
    "use_sde",
    "sde_sample_freq",
    "normalize_advantage",
    "target_kl",
)
"""PPO's keyword arguments a saved model records when their value is a plain number (or bool)."""

_CLASS_MODULES = ("torch.nn", "torch.optim", "stable_baselines3.common.torch_layers")


class UnsafeCheckpointError(ValueError):
    """The file is not in this format; reading it would unpickle code (a stable-baselines3 zip)."""


class CorruptCheckpointError(ValueError):
    """The file claims this format but cannot be read (truncated, malformed, or not allowed)."""


# ---------------------------------------------------------------------------- plain data
def space_to_dict(space: spaces.Space) -> dict[str, Any]:
    """A ``Box`` space as plain data (the only kind of space the schedulers use)."""
    if not isinstance(space, spaces.Box):
        raise TypeError(f"only Box spaces can be saved, got {type(space).__name__}.")
    return {
        "type": "Box",
        "low": space.low.tolist(),
        "high": space.high.tolist(),
        "dtype": str(space.dtype),
    }


def space_from_dict(data: Any) -> spaces.Box:
    """Inverse of :func:`space_to_dict`."""
    if not isinstance(data, Mapping) or data.get("type") != "Box":
        raise CorruptCheckpointError(f"expected a Box space description, got {data!r}.")
    dtype = np.dtype(data["dtype"])
    low, high = np.asarray(data["low"], dtype=dtype), np.asarray(data["high"], dtype=dtype)
    return spaces.Box(low=low, high=high, dtype=dtype)


def _encode(value: Any) -> Any:
    """``policy_kwargs`` values as JSON: classes become ``{"class": "module.Name"}``."""
    if isinstance(value, type):
        return {"class": f"{value.__module__}.{value.__qualname__}"}
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"policy_kwargs value {value!r} cannot be saved as JSON.")


def _decode(value: Any) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {"class"}:
            return _resolve_class(value["class"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _resolve_class(name: Any) -> type:
    """A class of the allowed torch / SB3 modules by dotted name (nothing else is imported)."""
    module, _, attr = str(name).rpartition(".")
    allowed = any(module == m or module.startswith(m + ".") for m in _CLASS_MODULES)
    cls = getattr(importlib.import_module(module), attr, None) if allowed else None
    if not isinstance(cls, type):
        raise CorruptCheckpointError(
            f"policy_kwargs names {name!r}; only classes of {_CLASS_MODULES} are allowed."
        )
    return cls


def _plain_hparam(model: Model, name: str) -> Any:
    """``model.<name>``; a constant schedule (how SB3 keeps ``clip_range``) as its value."""
    value = getattr(model, name, None)
    return getattr(getattr(value, "value_schedule", None), "val", value)


def _is_plain(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float)


def settings_of(model: Model, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """The JSON settings member of ``model``'s file."""
    algorithm = type(model).__name__
    if ALGORITHMS.get(algorithm) is not type(model):
        raise TypeError(f"cannot save a {algorithm} model; use one of {list(ALGORITHMS)}.")
    aliases = {cls: alias for alias, cls in model.policy_aliases.items()}
    policy_alias = aliases.get(type(model.policy))
    if policy_alias is None:
        raise TypeError(f"cannot save a {type(model.policy).__name__}; use one of {list(aliases)}.")
    hparams = {name: _plain_hparam(model, name) for name in PPO_HPARAMS}
    hparams = {name: value for name, value in hparams.items() if _is_plain(value)}
    return {
        "format": FORMAT,
        "version": VERSION,
        "algorithm": algorithm,
        "policy": {
            "class": policy_alias,
            "observation_space": space_to_dict(model.observation_space),
            "action_space": space_to_dict(model.action_space),
            "policy_kwargs": _encode(model.policy_kwargs),
        },
        "ppo_kwargs": hparams,
        "num_timesteps": int(model.num_timesteps),
        "n_updates": int(model._n_updates),
        "metadata": None if metadata is None else dict(metadata),
    }


# ---------------------------------------------------------------------------- write / read
def _tensor_bytes(state: Mapping[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_model(model: Model, path: Path, metadata: Mapping[str, Any] | None) -> Path:
    """Write ``model`` to ``path`` atomically (a temporary file renamed into place)."""
    settings = json.dumps(settings_of(model, metadata), indent=2, sort_keys=True)
    policy = _tensor_bytes(model.policy.state_dict())
    optimizer = _tensor_bytes(model.policy.optimizer.state_dict())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".zip")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(SETTINGS_MEMBER, settings)
            archive.writestr(POLICY_MEMBER, policy)
            archive.writestr(OPTIMIZER_MEMBER, optimizer)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_checkpoint(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The settings and the two state dicts of a file in this format, never unpickling code.

    Returns
    -------
    dict
        The settings (see the module docstring) plus ``policy_state`` and ``optimizer_state``.

    Raises
    ------
    UnsafeCheckpointError
        If ``path`` is not in this format (e.g. a stable-baselines3 zip).
    CorruptCheckpointError
        If it is in this format but cannot be read.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise CorruptCheckpointError(f"{str(path)!r} is not a readable zip file: {err}") from err
    with archive:
        names = set(archive.namelist())
        if SETTINGS_MEMBER not in names:
            kind = "a stable-baselines3 zip" if SB3_MEMBER in names else "not an rl_scheduler model"
            raise UnsafeCheckpointError(
                f"{str(path)!r} is {kind}, not a model saved by rl_scheduler.agent.save. Loading "
                "a stable-baselines3 zip unpickles objects stored in it, which can run arbitrary "
                "code; only if you trust its author, load it with "
                "rl_scheduler.agent.load(path, trusted=True) and re-save it with agent.save."
            )
        try:
            settings = json.loads(archive.read(SETTINGS_MEMBER))
            if settings.get("format") != FORMAT or settings.get("version") != VERSION:
                raise ValueError(
                    f"unknown format {settings.get('format')!r} v{settings.get('version')!r}"
                )
            for key, member in (
                ("policy_state", POLICY_MEMBER),
                ("optimizer_state", OPTIMIZER_MEMBER),
            ):
                buffer = io.BytesIO(archive.read(member))
                settings[key] = torch.load(buffer, map_location=device, weights_only=True)
        except CorruptCheckpointError:
            raise
        except Exception as err:  # malformed JSON, missing member, refused pickle, bad zip data
            raise CorruptCheckpointError(f"{str(path)!r} cannot be read: {err}") from err
    return settings


def build_model(settings: Mapping[str, Any], device: str | torch.device = "auto") -> Model:
    """A PPO (or RecurrentPPO) model, no environment attached, with the policy architecture of
    ``settings``."""
    algorithm = ALGORITHMS.get(settings.get("algorithm", "PPO"))
    if algorithm is None:
        raise CorruptCheckpointError(
            f"algorithm must be one of {list(ALGORITHMS)}, got {settings.get('algorithm')!r}."
        )
    policy = settings["policy"]
    hparams = dict(settings["ppo_kwargs"])
    unknown = {k: v for k, v in hparams.items() if k not in PPO_HPARAMS or not _is_plain(v)}
    if unknown:
        raise CorruptCheckpointError(f"ppo_kwargs holds entries that are not allowed: {unknown!r}.")
    try:
        model = algorithm(
            policy["class"],
            env=None,
            device=device,
            _init_setup_model=False,
            policy_kwargs=_decode(policy["policy_kwargs"]),
            **hparams,
        )
        model.observation_space = space_from_dict(policy["observation_space"])
        model.action_space = space_from_dict(policy["action_space"])
        model.n_envs = 1
        model._setup_model()
    except CorruptCheckpointError:
        raise
    except Exception as err:
        raise CorruptCheckpointError(
            f"the saved settings do not build a {algorithm.__name__} model: {err}"
        ) from err
    return model


def apply_checkpoint(model: Model, checkpoint: Mapping[str, Any]) -> Model:
    """Load the weights, optimizer state and step counters of ``checkpoint`` into ``model``."""
    try:
        model.policy.load_state_dict(checkpoint["policy_state"])
        model.policy.optimizer.load_state_dict(checkpoint["optimizer_state"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise CorruptCheckpointError(f"the saved weights do not fit the model: {err}") from err
    model.num_timesteps = int(checkpoint["num_timesteps"])
    model._n_updates = int(checkpoint["n_updates"])
    return model


def load_model(path: Path, *, device: str = "auto", trusted: bool = False) -> Model:
    """A model saved by :func:`save_model`; a stable-baselines3 zip only with ``trusted=True``.

    ``trusted=True`` hands files that are not in this format to ``PPO.load``, which unpickles
    objects stored in them: **a crafted file runs arbitrary code**. Use it only for files whose
    author you trust, e.g. to convert your own old checkpoints once (load, then save).
    """
    if not isinstance(trusted, bool):
        raise TypeError(f"trusted must be a bool, got {type(trusted).__name__}.")
    try:
        checkpoint = read_checkpoint(path, device="cpu")
    except UnsafeCheckpointError:
        if not trusted:
            raise
        return PPO.load(path, device=device)
    model = apply_checkpoint(build_model(checkpoint, device=device), checkpoint)
    model.rl_scheduler_config = checkpoint["metadata"]
    return model
