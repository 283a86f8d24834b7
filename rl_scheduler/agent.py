"""Train, checkpoint, save, load and evaluate a PPO learning-rate scheduler (stable-baselines3).

>>> from rl_scheduler import agent
>>> env_kwargs = {"split": "train", "n_instances": 32}
>>> model = agent.train_ppo(env_kwargs, total_timesteps=60_000, checkpoint_dir="runs/ppo")  # doctest: +SKIP
>>> results = agent.evaluate(model, env_kwargs | {"split": "test"})  # doctest: +SKIP

Every function works on any registered environment id (``env_id``, default
``rl_scheduler/NMF-v0``); ``env_kwargs`` are the keyword arguments of that id's factory:

>>> vision = agent.train_ppo({"n_instances": 16}, env_id="rl_scheduler/Vision-v0",
...                          total_timesteps=4_000)  # doctest: +SKIP

Checkpoint directory layout (``checkpoint_dir``)::

    config.json                 what was trained: env_kwargs, n_envs, seed, ppo_kwargs
    checkpoints/ppo_<T>.zip     the model after T environment steps (written atomically, in the
                                format of :mod:`rl_scheduler.checkpoint`)
    episodes.jsonl              one JSON line per finished training episode (the training curve)

Rerunning :func:`train_ppo` with the same directory continues from the latest checkpoint instead
of starting over (and returns at once when it already reached ``total_timesteps``). A resumed run
is a valid continuation but not bit-identical to an uninterrupted one: the environments restart
their episodes and the random streams are re-seeded from ``seed`` and the checkpoint's step
(what a checkpoint holds and what it does not: :mod:`rl_scheduler.checkpoint`). If the latest
checkpoint cannot be read, the run resumes from the newest readable one, with a warning.

Running a policy (:func:`rollout`, :func:`evaluate`) lives in :mod:`rl_scheduler.evaluation` and
is reachable from here too. Models are saved as tensors plus JSON (:mod:`rl_scheduler.checkpoint`); loading one never
unpickles code. A stable-baselines3 zip (``PPO.save``) is refused by every loader here unless
:func:`load` is told ``trusted=True``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Mapping
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from nmf.datasets import NMFInstance
from rl_scheduler import checkpoint
from rl_scheduler.checkpoint import Model
from rl_scheduler.env import LRScheduleEnv
from rl_scheduler.registration import NMF_ENV_ID, env_factory, make_sharing_env
from rl_scheduler.tasks.nmf_task import instance_to_dict

CONFIG_ATTR = "rl_scheduler_config"
"""Attribute of a trained model holding what :class:`~rl_scheduler.policy.LearnedSchedule` needs:
``{"env_id", "env_kwargs", "env_config", "initial_lr_fraction", "initial_lr"}`` (saved inside the
model zip). ``initial_lr_fraction`` is set for tasks that start at a fraction of their stability
bound (NMF), ``initial_lr`` for tasks that start at a fixed rate (the deep-network tasks)."""

DEFAULT_PPO_KWARGS: dict[str, Any] = {
    "n_steps": 256,
    "batch_size": 64,
    "n_epochs": 10,
    "learning_rate": 3e-4,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "ent_coef": 0.0,
    "clip_range": 0.2,
    "policy_kwargs": {"net_arch": [64, 64], "log_std_init": -0.5},
}
"""PPO hyper-parameters (per environment ``n_steps``); override any of them with ``ppo_kwargs``."""

VEC_ENVS = {"dummy": DummyVecEnv, "subproc": SubprocVecEnv}

_CKPT_RE = re.compile(r"^ppo_(\d+)\.zip$")


# ---------------------------------------------------------------------------------- helpers
def _jsonable(value: Any) -> Any:
    """Plain JSON types: instances become dicts, tuples lists, NumPy scalars Python numbers."""
    if isinstance(value, NMFInstance):
        return instance_to_dict(value)
    if isinstance(value, type):  # e.g. policy_kwargs={"activation_fn": torch.nn.ReLU}
        return f"{value.__module__}.{value.__qualname__}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o644)  # mkstemp makes 0600 files; results are meant to be shared
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_env_kwargs(env_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    if env_kwargs is None:
        return {}
    if not isinstance(env_kwargs, Mapping):
        raise TypeError(f"env_kwargs must be a dict or None, got {type(env_kwargs).__name__}.")
    return _jsonable(dict(env_kwargs))


def _unwrap(env: Any) -> LRScheduleEnv:
    base = env.unwrapped if hasattr(env, "unwrapped") else env
    if not isinstance(base, LRScheduleEnv):
        raise TypeError(f"expected an LRScheduleEnv, got {type(base).__name__}.")
    return base


def _check_env_id(env_id: Any) -> str:
    env_factory(env_id)  # raises a ValueError naming the registered ids
    return env_id


def env_metadata(
    env_kwargs: Mapping[str, Any] | None = None, *, env_id: str = NMF_ENV_ID
) -> dict[str, Any]:
    """What a model trained on ``gymnasium.make(env_id, **env_kwargs)`` needs to be replayed.

    Returns ``{"env_id", "env_kwargs", "env_config", "initial_lr_fraction", "initial_lr"}``;
    ``env_config`` is :attr:`rl_scheduler.LRScheduleEnv.config` with every default filled in;
    ``initial_lr_fraction`` is the task's (``None`` if it has none) and ``initial_lr`` its fixed
    starting rate (``None`` when the rate depends on the run, as for NMF).
    """
    kwargs = _check_env_kwargs(env_kwargs)
    env = _unwrap(env_factory(_check_env_id(env_id))(**kwargs))
    fraction = getattr(env.task, "initial_lr_fraction", None)
    lr0 = None
    if fraction is None:
        value = getattr(env.task, "initial_lr", None)
        if isinstance(value, int | float) and math.isfinite(value) and value > 0:
            lr0 = float(value)
    meta = {
        "env_id": env_id,
        "env_kwargs": kwargs,
        "env_config": env.config,
        "initial_lr_fraction": fraction,
        "initial_lr": lr0,
    }
    env.close()
    return meta


def make_vec(
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    n_envs: int = 2,
    seed: int = 0,
    vec_env: str = "dummy",
    env_id: str = NMF_ENV_ID,
) -> VecEnv:
    """``n_envs`` monitored copies of the environment ``env_id`` in a vectorised environment.

    Parameters
    ----------
    env_kwargs : dict, optional
        Keyword arguments of the id's factory (e.g. :func:`rl_scheduler.make_nmf_env`).
    n_envs : int
        Number of parallel environments (env ``i`` is seeded with ``seed + i``).
    seed : int
    vec_env : {"dummy", "subproc"}
        ``"dummy"`` steps the environments in turn in this process, ``"subproc"`` in one process
        each. On a few cores ``"dummy"`` is faster for NMF environments this small (see
        ``benchmarks/bench_env.py``).
    env_id : str, default ``rl_scheduler/NMF-v0``
        A registered id, built by :func:`~rl_scheduler.registration.make_sharing_env` (neutral
        runs shared in this process with every environment of the same id and arguments).
    """
    kwargs, env_id = _check_env_kwargs(env_kwargs), _check_env_id(env_id)
    if not isinstance(n_envs, Integral) or isinstance(n_envs, bool) or n_envs < 1:
        raise ValueError(f"n_envs must be an integer >= 1, got {n_envs!r}.")
    if vec_env not in VEC_ENVS:
        raise ValueError(f"vec_env must be one of {sorted(VEC_ENVS)}, got {vec_env!r}.")
    vec_kwargs = {"start_method": "spawn"} if vec_env == "subproc" else None
    return make_vec_env(
        functools.partial(make_sharing_env, env_id, kwargs),  # no gymnasium.make wrappers
        n_envs=int(n_envs),
        seed=int(seed),
        vec_env_cls=VEC_ENVS[vec_env],
        vec_env_kwargs=vec_kwargs,
    )


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    """The checkpoint with the most environment steps in ``checkpoint_dir`` (``None`` if none)."""
    folder = Path(checkpoint_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CKPT_RE.match(p.name))]
    return max(found)[1] if found else None


def checkpoint_steps(path: str | os.PathLike) -> int:
    """The environment steps a checkpoint file ``ppo_<T>.zip`` was written after (``T``)."""
    match = _CKPT_RE.match(Path(path).name)
    if match is None:
        raise ValueError(f"path {str(path)!r} is not a checkpoint (ppo_<steps>.zip).")
    return int(match.group(1))


def load_training_curve(checkpoint_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The training episodes recorded in ``checkpoint_dir/episodes.jsonl``, oldest first.

    Each record has ``timesteps`` (environment steps when the episode ended), ``env`` (index of
    the parallel environment), ``return``, ``length``, ``final_loss``, ``diverged`` and, for NMF,
    ``instance_index``. A torn last line (a crash while writing) is skipped.
    """
    path = Path(checkpoint_dir) / "episodes.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


# ---------------------------------------------------------------------------------- callbacks
class _TrainingRecorder(BaseCallback):
    """Appends finished episodes to ``episodes.jsonl`` and saves periodic checkpoints."""

    def __init__(
        self,
        checkpoint_dir: Path | None,
        checkpoint_every: int,
        keep_checkpoints: int,
        metadata: dict[str, Any],
        on_progress: Callable[[int, int], Any] | None = None,
        total_timesteps: int = 0,
    ) -> None:
        super().__init__()
        self.on_progress = on_progress
        self.total_timesteps = total_timesteps
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.keep_checkpoints = keep_checkpoints
        self.metadata = metadata
        self.episodes: list[dict[str, Any]] = []
        self._last_saved = 0
        self._fh = None

    def _on_training_start(self) -> None:
        self._last_saved = self.num_timesteps
        if self.checkpoint_dir is not None:
            self._fh = open(self.checkpoint_dir / "episodes.jsonl", "a")  # noqa: SIM115

    def _on_step(self) -> bool:
        for i, info in enumerate(self.locals.get("infos", ())):
            episode = info.get("episode")
            if episode is None:
                continue
            record = {
                "timesteps": int(self.num_timesteps),
                "env": i,
                "return": float(episode["r"]),
                "length": int(episode["l"]),
                "final_loss": float(info.get("loss", math.nan)),
                "diverged": bool(info.get("diverged", False)),
            }
            if "instance_index" in info:
                record["instance_index"] = int(info["instance_index"])
            self.episodes.append(record)
            if self._fh is not None:
                self._fh.write(json.dumps(_json_safe(record)) + "\n")
                self._fh.flush()
        return True

    def _on_rollout_start(self) -> None:
        if self.on_progress is not None:
            self.on_progress(int(self.num_timesteps), self.total_timesteps)
        # Called after each PPO update, so a checkpoint holds a fully updated policy.
        if self.checkpoint_dir is not None and (
            self.num_timesteps - self._last_saved >= self.checkpoint_every
        ):
            self.save_checkpoint()

    def _on_training_end(self) -> None:
        self.close()

    def close(self) -> None:
        """Sync and close the episode log (also after an interrupted ``learn``)."""
        if self._fh is not None:
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def save_checkpoint(self) -> Path:
        folder = self.checkpoint_dir / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"ppo_{self.num_timesteps:010d}.zip"
        save(self.model, path, metadata=self.metadata)
        self._last_saved = self.num_timesteps
        old = sorted((p for p in folder.iterdir() if _CKPT_RE.match(p.name)), key=checkpoint_steps)
        for stale in old[: max(len(old) - self.keep_checkpoints, 0)]:
            stale.unlink(missing_ok=True)
        return path


def _json_safe(record: dict[str, Any]) -> dict[str, Any]:
    """Non-finite floats as strings so the line stays strict JSON (as experiments.runner does)."""
    out = {}
    for k, v in record.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
        out[k] = v
    return out


# ---------------------------------------------------------------------------------- public API
def train_ppo(
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    total_timesteps: int,
    n_envs: int = 2,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 10_000,
    keep_checkpoints: int = 3,
    device: str = "auto",
    progress: bool | Callable[[int, int], Any] = False,
    vec_env: str = "dummy",
    ppo_kwargs: Mapping[str, Any] | None = None,
    verbose: int = 0,
    env_id: str = NMF_ENV_ID,
    recurrent: bool = False,
) -> Model:
    """Train PPO to schedule learning rates on ``env_id`` (default ``rl_scheduler/NMF-v0``).

    Parameters
    ----------
    env_kwargs : dict, optional
        Keyword arguments of the id's factory: :func:`rl_scheduler.make_nmf_env` (instance set,
        clip, budget, shield, ...), :func:`rl_scheduler.make_vision_env` or
        :func:`rl_scheduler.make_text_env`. Must be JSON-able (instance dataclasses are
        converted).
    total_timesteps : int
        Environment steps (actions) to train for, summed over the parallel environments.
    n_envs : int, default 2
        Parallel environments.
    seed : int, default 0
        Seeds PPO (network init, action sampling) and the environments.
    checkpoint_dir : path, optional
        Where to keep ``config.json``, checkpoints and ``episodes.jsonl``. If it already holds a
        checkpoint of the same configuration, training continues from the latest one.
    checkpoint_every : int, default 10_000
        Save a checkpoint after the first PPO update at least this many steps after the last one
        (and always at the end).
    keep_checkpoints : int, default 3
        Older checkpoints are deleted.
    device : str, default "auto"
        Torch device of the policy; ``"auto"`` picks CUDA when present (for a 64x64 MLP the CPU
        is usually as fast).
    progress : bool or callable, default False
        ``True`` shows stable-baselines3's progress bar (tqdm + rich); a callable is called as
        ``progress(timesteps_done, total_timesteps)`` after every PPO update and at the end (for
        log-friendly rate lines, e.g. ``experiments.common.progress.ProgressLine``).
    vec_env : {"dummy", "subproc"}, default "dummy"
        See :func:`make_vec`.
    ppo_kwargs : dict, optional
        Overrides of :data:`DEFAULT_PPO_KWARGS`.
    verbose : int, default 0
        stable-baselines3 verbosity.
    env_id : str, default ``rl_scheduler/NMF-v0``
        The registered environment to train on (``rl_scheduler/Vision-v0``,
        ``rl_scheduler/Text-v0`` or a user's own id).
    recurrent : bool, default False
        Train sb3-contrib's ``RecurrentPPO`` with an LSTM policy (``MlpLstmPolicy``; ``net_arch``
        and ``log_std_init`` of ``policy_kwargs`` apply as for PPO) instead of PPO's feed-forward
        one. :class:`rl_scheduler.policy.LearnedSchedule` and :func:`rollout` carry its hidden
        state through a run; checkpoints, :func:`save` and :func:`load` work as for PPO.

    Returns
    -------
    stable_baselines3.PPO or sb3_contrib.RecurrentPPO
        The trained model; ``model.rl_scheduler_config`` (:data:`CONFIG_ATTR`) records the
        environment it was trained on and :func:`save` keeps it. The per-episode training returns
        are in ``model.rl_scheduler_episodes`` (this call's episodes) and, with a checkpoint
        directory, in ``episodes.jsonl`` (all of them; see :func:`load_training_curve`).

    Raises
    ------
    ValueError
        For bad parameters, or if ``checkpoint_dir`` holds a run with a different configuration.
    """
    kwargs = _check_env_kwargs(env_kwargs)
    for name, value, low in (
        ("total_timesteps", total_timesteps, 1),
        ("n_envs", n_envs, 1),
        ("checkpoint_every", checkpoint_every, 1),
        ("keep_checkpoints", keep_checkpoints, 1),
        ("seed", seed, 0),
    ):
        if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    if ppo_kwargs is not None and not isinstance(ppo_kwargs, Mapping):
        raise TypeError(f"ppo_kwargs must be a dict or None, got {type(ppo_kwargs).__name__}.")
    if not isinstance(recurrent, bool):
        raise TypeError(f"recurrent must be a bool, got {type(recurrent).__name__}.")
    algo_kwargs = {**DEFAULT_PPO_KWARGS, **dict(ppo_kwargs or {})}
    metadata = env_metadata(kwargs, env_id=env_id)
    config = {
        "env_id": env_id,
        "env_kwargs": kwargs,
        "n_envs": int(n_envs),
        "seed": int(seed),
        "ppo_kwargs": _jsonable(algo_kwargs),
    }
    if recurrent:  # only then, so the config.json of every feed-forward run stays as it was
        config["recurrent"] = True

    folder = None if checkpoint_dir is None else Path(checkpoint_dir)
    resume = None
    if folder is not None:
        _check_run_config(folder, config)
        resume = _resume_checkpoint(folder)

    start_steps = 0 if resume is None else int(resume["num_timesteps"])
    if folder is not None:
        _drop_episodes_after(folder, start_steps)
    venv = make_vec(kwargs, n_envs=n_envs, seed=seed + start_steps, vec_env=vec_env, env_id=env_id)
    on_progress = progress if callable(progress) else None
    recorder = _TrainingRecorder(
        folder, checkpoint_every, keep_checkpoints, metadata, on_progress, int(total_timesteps)
    )
    try:
        algo, policy = (RecurrentPPO, "MlpLstmPolicy") if recurrent else (PPO, "MlpPolicy")
        model = algo(policy, venv, seed=seed, device=device, verbose=verbose, **algo_kwargs)
        if not verbose:  # stable-baselines3's default logger leaves an empty /tmp/SB3-<date>/
            model.set_logger(Logger(folder=None, output_formats=[]))
        if resume is not None:
            checkpoint.apply_checkpoint(model, resume)
            model.set_random_seed(seed + start_steps)
        setattr(model, CONFIG_ATTR, metadata)
        remaining = int(total_timesteps) - int(model.num_timesteps)
        if remaining > 0:
            model.learn(
                remaining,
                callback=recorder,
                reset_num_timesteps=resume is None,
                progress_bar=progress is True,
            )
            if folder is not None and recorder._last_saved != model.num_timesteps:
                recorder.save_checkpoint()
        if on_progress is not None:
            on_progress(int(model.num_timesteps), int(total_timesteps))
        model.rl_scheduler_episodes = recorder.episodes
    finally:
        recorder.close()
        venv.close()
    return model


def _check_run_config(folder: Path, config: dict[str, Any]) -> None:
    """Write ``folder/config.json``, or check that the run already there has ``config``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    if not path.is_file():
        _atomic_write_text(path, json.dumps(config, indent=2, sort_keys=True) + "\n")
        return
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{str(path)!r} is not valid JSON ({err}); it records the configuration of the run "
            "in checkpoint_dir: restore it, or use another directory."
        ) from None
    if saved != config:
        diff = sorted(k for k in config if not isinstance(saved, dict) or saved.get(k) != config[k])
        raise ValueError(
            f"checkpoint_dir {str(folder)!r} holds a run with a different configuration "
            f"(differs in {diff}); use another directory or delete it."
        )


def _resume_checkpoint(folder: Path) -> dict[str, Any] | None:
    """The newest readable checkpoint of ``folder`` (:func:`checkpoint.read_checkpoint`), or None.

    An unreadable one is renamed to ``<name>.corrupt`` with a warning and the previous one is
    tried; a file in another format (a stable-baselines3 zip) raises
    :class:`~rl_scheduler.checkpoint.UnsafeCheckpointError` instead.
    """
    found = folder / "checkpoints"
    paths = [p for p in found.iterdir() if _CKPT_RE.match(p.name)] if found.is_dir() else []
    for path in sorted(paths, key=checkpoint_steps, reverse=True):
        try:
            return checkpoint.read_checkpoint(path)
        except checkpoint.CorruptCheckpointError as err:
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            warnings.warn(
                f"checkpoint {str(path)!r} cannot be read ({err}); renamed it to {aside.name!r} "
                "and resuming from the previous checkpoint.",
                RuntimeWarning,
                stacklevel=3,
            )
    return None


def _drop_episodes_after(folder: Path, timesteps: int) -> None:
    """Forget episodes logged after the checkpoint we resume from (they will be redone)."""
    path = folder / "episodes.jsonl"
    if not path.is_file():
        return
    keep = [r for r in load_training_curve(folder) if int(r["timesteps"]) <= timesteps]
    _atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in keep))


def save(
    model: Model, path: str | os.PathLike, *, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Save ``model`` (with its environment metadata) to ``path`` atomically.

    The file holds the policy's weights and optimizer state as tensors and everything else as
    JSON (:mod:`rl_scheduler.checkpoint`), so loading it never unpickles code.

    Parameters
    ----------
    model : PPO or RecurrentPPO
    path : path
        Destination; ``.zip`` is appended if missing.
    metadata : dict, optional
        Environment metadata (see :func:`env_metadata`); default: the model's own
        ``rl_scheduler_config``.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be a PPO or RecurrentPPO, got {type(model).__name__}.")
    path = Path(path)
    if path.suffix != ".zip":
        path = path.with_name(path.name + ".zip")
    if metadata is not None:
        setattr(model, CONFIG_ATTR, _jsonable(dict(metadata)))
    meta = model_metadata(model)
    return checkpoint.save_model(model, path, None if meta is None else _jsonable(meta))


def load(path: str | os.PathLike, *, device: str = "auto", trusted: bool = False) -> Model:
    """Load a model written by :func:`save` or :func:`train_ppo` (environment metadata included).

    Parameters
    ----------
    path : path
        The file (``.zip`` may be left out).
    device : str, default "auto"
        Torch device of the policy.
    trusted : bool, default False
        Also accept a stable-baselines3 zip written by ``PPO.save`` (read with ``PPO.load``).
        **Such a file stores objects with cloudpickle, and loading it runs whatever code its
        author put in it.** Pass ``True`` only for files from a source you trust; to convert one
        once, ``save(load(old, trusted=True), new)``.

    Returns
    -------
    stable_baselines3.PPO or sb3_contrib.RecurrentPPO
        Ready to ``predict`` (the algorithm the file names); its hyper-parameters that are not
        plain numbers are PPO's defaults (see :mod:`rl_scheduler.checkpoint`).

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    rl_scheduler.checkpoint.UnsafeCheckpointError
        (a ``ValueError``) If the file is not in rl_scheduler's format and ``trusted`` is False.
    rl_scheduler.checkpoint.CorruptCheckpointError
        (a ``ValueError``) If it is in that format but cannot be read.
    """
    path = Path(path)
    if not path.is_file() and path.with_name(path.name + ".zip").is_file():
        path = path.with_name(path.name + ".zip")
    if not path.is_file():
        raise FileNotFoundError(f"path {str(path)!r} is not a saved model.")
    return checkpoint.load_model(path, device=device, trusted=trusted)


def model_metadata(model: Model) -> dict[str, Any] | None:
    """The environment metadata stored on a trained model, or ``None``."""
    return getattr(model, CONFIG_ATTR, None)


def __getattr__(name: str) -> Any:
    # rollout and evaluate live in rl_scheduler.evaluation (which imports this module).
    if name in ("rollout", "evaluate"):
        from rl_scheduler import evaluation

        return getattr(evaluation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
