import json

import numpy as np
import pytest
import torch

import nmf
import rl_scheduler
from rl_scheduler import agent, make_nmf_env
from rl_scheduler.policy import LearnedSchedule

PPO_KWARGS = {"n_steps": 64, "batch_size": 64, "n_epochs": 2}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.rl_scheduler.conftest import SMALL

    folder = tmp_path_factory.mktemp("ppo")
    calls = []
    model = agent.train_ppo(
        SMALL,
        total_timesteps=256,
        n_envs=2,
        seed=0,
        checkpoint_dir=folder,
        checkpoint_every=128,
        device="cpu",
        progress=lambda done, total: calls.append((done, total)),
        ppo_kwargs=PPO_KWARGS,
    )
    model.progress_calls = calls
    return model, folder


def test_a_progress_callable_sees_every_update_and_the_end(trained):
    model, _ = trained
    # one rollout of 2 envs x 64 steps per PPO update: called before each, then at the end
    assert model.progress_calls == [(0, 256), (128, 256), (256, 256)]


def test_training_records_episodes_checkpoints_and_metadata(trained, small_kwargs):
    model, folder = trained
    assert model.num_timesteps == 256
    curve = agent.load_training_curve(folder)
    assert len(curve) == 2 * (128 // small_kwargs["max_actions"])  # 2 envs x 128 steps
    assert all(
        np.isfinite(r["return"]) and r["length"] == small_kwargs["max_actions"] for r in curve
    )
    assert [r["timesteps"] for r in curve] == sorted(r["timesteps"] for r in curve)
    assert agent.latest_checkpoint(folder).name == "ppo_0000000256.zip"
    config = json.loads((folder / "config.json").read_text())
    assert config["env_kwargs"] == small_kwargs and config["n_envs"] == 2
    meta = agent.model_metadata(model)
    assert meta["env_config"]["max_actions"] == small_kwargs["max_actions"]
    assert meta["initial_lr_fraction"] == 0.5


def test_save_load_round_trip_gives_the_same_deterministic_actions(trained, tmp_path):
    model, _ = trained
    path = agent.save(model, tmp_path / "model")
    assert path.name == "model.zip"
    loaded = agent.load(path, device="cpu")
    obs = np.random.default_rng(0).uniform(-3, 3, (20, model.observation_space.shape[0]))
    obs = obs.astype(np.float32)
    np.testing.assert_array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
    assert agent.model_metadata(loaded) == agent.model_metadata(model)


def test_evaluate_runs_every_held_out_instance(trained, small_kwargs):
    model, _ = trained
    results = agent.evaluate(model, {**small_kwargs, "split": "test"})
    assert len(results) == small_kwargs["n_instances"]
    for r in results:
        assert len(r["losses"]) == small_kwargs["max_actions"] + 1
        assert r["loss_ratio"] == pytest.approx(r["final_loss"] / r["initial_loss"])
        assert r["return"] == pytest.approx(np.log(1 / r["loss_ratio"]))
        assert all(lr <= b * (1 + 1e-12) for lr, b in zip(r["lrs"], r["bounds"], strict=True))
    assert results == agent.evaluate(model, {**small_kwargs, "split": "test"})  # deterministic
    instance = nmf.datasets.NMFInstance("synthetic", rank=3, seed=99, size=(30, 20))
    (one,) = agent.evaluate(model, small_kwargs, [instance])
    assert one["instance"]["seed"] == 99


def test_learned_schedule_from_a_saved_model_matches_the_env(trained, tmp_path, small_kwargs):
    model, _ = trained
    path = agent.save(model, tmp_path / "model.zip")
    schedule = LearnedSchedule(str(path))
    env = make_nmf_env(**small_kwargs)
    episode = agent.rollout(model, env, options={"instance": 1})
    instance = env.task.instances[1]
    n = small_kwargs["steps_per_action"] * small_kwargs["max_actions"]
    traj = nmf.run_sgd(instance.build(), schedule, n, clip=env.task.clip, seed=instance.seed)
    assert traj.lrs == list(np.repeat(episode["lrs"], small_kwargs["steps_per_action"]))


def test_training_resumes_from_the_latest_checkpoint(trained, small_kwargs):
    model, folder = trained
    before = agent.load_training_curve(folder)
    # An episode logged after the last checkpoint (a crash before the next one) is forgotten.
    with open(folder / "episodes.jsonl", "a") as fh:
        fh.write(json.dumps({"timesteps": 300, "env": 0, "return": 0.0}) + "\n")
    resumed = agent.train_ppo(
        small_kwargs,
        total_timesteps=384,
        n_envs=2,
        seed=0,
        checkpoint_dir=folder,
        checkpoint_every=128,
        device="cpu",
        ppo_kwargs=PPO_KWARGS,
    )
    assert resumed.num_timesteps == 384
    after = agent.load_training_curve(folder)
    assert after[: len(before)] == before and len(after) > len(before)
    assert all(r.get("length") for r in after)  # the stray line is gone
    assert agent.latest_checkpoint(folder).name == "ppo_0000000384.zip"
    # Already done: returns the checkpoint without training.
    done = agent.train_ppo(
        small_kwargs,
        total_timesteps=384,
        n_envs=2,
        seed=0,
        checkpoint_dir=folder,
        device="cpu",
        ppo_kwargs=PPO_KWARGS,
    )
    assert done.num_timesteps == 384 and done.rl_scheduler_episodes == []
    assert agent.load_training_curve(folder) == after


def test_resume_refuses_a_different_configuration(trained, small_kwargs):
    _, folder = trained
    with pytest.raises(ValueError, match="different configuration"):
        agent.train_ppo(
            {**small_kwargs, "max_actions": 7},
            total_timesteps=256,
            checkpoint_dir=folder,
            device="cpu",
            ppo_kwargs=PPO_KWARGS,
        )


def test_a_torn_last_line_of_the_curve_is_ignored(tmp_path):
    (tmp_path / "episodes.jsonl").write_text('{"timesteps": 5, "return": 1.0}\n{"timest')
    assert agent.load_training_curve(tmp_path) == [{"timesteps": 5, "return": 1.0}]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"total_timesteps": 0}, ValueError, "total_timesteps"),
        ({"total_timesteps": 10, "n_envs": 0}, ValueError, "n_envs"),
        ({"total_timesteps": 10, "vec_env": "ray"}, ValueError, "vec_env"),
        ({"total_timesteps": 10, "ppo_kwargs": 3}, TypeError, "ppo_kwargs"),
        ({"total_timesteps": 10, "recurrent": 1}, TypeError, "recurrent"),
    ],
)
def test_train_ppo_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        agent.train_ppo({}, **kwargs)


def test_env_kwargs_must_be_a_dict():
    with pytest.raises(TypeError, match="env_kwargs"):
        agent.train_ppo([1], total_timesteps=10)


def test_a_quiet_training_leaves_no_log_folder(tmp_path, monkeypatch, small_kwargs):
    monkeypatch.setenv("SB3_LOGDIR", str(tmp_path / "sb3-logs"))
    agent.train_ppo(small_kwargs, total_timesteps=64, n_envs=1, device="cpu", ppo_kwargs=PPO_KWARGS)
    assert not (tmp_path / "sb3-logs").exists()


def test_evaluate_leaves_out_the_training_only_settings():
    from rl_scheduler.evaluation import TRAINING_ONLY, evaluate

    class Zero:
        def predict(self, obs, deterministic=True):
            return np.zeros(1, np.float32), None

    kwargs = {
        "n_instances": 2,
        "datasets": ["synthetic"],
        "noise_levels": [1.0],
        "sizes": {"synthetic": [30, 20]},
        "ranks": [3],
        "steps_per_action": 5,
        "max_actions": 4,
        "bound_range": (-2.0, 1.0),
        "reward_baseline": "neutral",
    }
    plain = evaluate(Zero(), kwargs, seed=0)
    trained_with = {**kwargs, "run_seed": "episode", "reward_scale": "reference_gap"}
    for seed in (0, 1):  # the reset seed no longer matters, returns are not rescaled
        again = evaluate(Zero(), trained_with, seed=seed)
        assert [r["losses"] for r in again] == [r["losses"] for r in plain]
        assert [r["return"] for r in again] == [r["return"] for r in plain]
    assert set(TRAINING_ONLY) == {"run_seed", "reward_scale", "reward_scale_floor"}


def test_a_recurrent_policy_carries_its_state_through_a_run_and_not_beyond(small_kwargs):
    from rl_scheduler.evaluation import rollout
    from rl_scheduler.policy import RunPredictor

    kwargs = {**small_kwargs, "noise_levels": [1.0], "bound_range": (-2.0, 1.0), "shield": False}
    model = agent.train_ppo(
        kwargs, total_timesteps=128, n_envs=2, device="cpu", ppo_kwargs=PPO_KWARGS, recurrent=True
    )
    assert type(model).__name__ == "RecurrentPPO" and RunPredictor(model).recurrent
    env = make_nmf_env(**kwargs)
    first = rollout(model, env, options={"instance": 0})
    # the state starts from zeros on every run: the same run twice gives the same actions
    assert rollout(model, env, options={"instance": 0})["actions"] == first["actions"]
    # and it is used: fed one decision at a time without it, the policy acts otherwise
    obs, _ = env.reset(options={"instance": 0})
    stateless = []
    for _ in range(len(first["actions"])):
        action, _ = model.predict(obs, deterministic=True)  # state=None: zeros every time
        stateless.append(float(action[0]))
        obs, *_ = env.step(action)
    assert stateless[0] == first["actions"][0] and stateless != first["actions"]
    # a LearnedSchedule applies exactly the rates of the env's run, twice in a row
    instance = env.task.instances[0]
    schedule = LearnedSchedule(model, config=env.config)
    n_steps = env.steps_per_action * env.max_actions
    for _ in range(2):
        schedule.reset()
        nmf.run_sgd(instance.build(), schedule, n_steps, clip=env.task.clip, seed=instance.seed)
        assert schedule.lrs == first["lrs"]


# ------------------------------------------------------------------ shared neutral runs
def _train_relative(n_timesteps=256):
    from tests.rl_scheduler.conftest import SMALL

    model = agent.train_ppo(
        {**SMALL, "reward_baseline": "neutral"},
        total_timesteps=n_timesteps,
        n_envs=2,
        seed=1,
        device="cpu",
        ppo_kwargs=PPO_KWARGS,
    )
    return [p.detach().clone() for p in model.policy.parameters()]


def test_shared_neutral_runs_leave_training_exactly_as_it_was(monkeypatch):
    """Unshared (one cache per environment, as before), shared from cold and shared warm (a
    second training in the same process, every neutral run cached): the same weights."""
    from rl_scheduler import registration

    monkeypatch.setattr(registration, "_SHARED_BASELINE_CACHES", {})
    monkeypatch.setattr(registration, "SHARE_BASELINE_RUNS", False)
    unshared = _train_relative()
    assert not registration._SHARED_BASELINE_CACHES
    monkeypatch.setattr(registration, "SHARE_BASELINE_RUNS", True)
    cold = _train_relative()
    caches = list(registration._SHARED_BASELINE_CACHES.values())
    assert len(caches) == 1 and sorted(caches[0]) == [0, 1, 2, 3]  # the 4 instances, once
    warm = _train_relative()
    for a, b, c in zip(unshared, cold, warm, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_environments_share_neutral_runs_only_with_the_same_id_and_arguments(
    small_kwargs, monkeypatch
):
    from fractions import Fraction

    from rl_scheduler import registration

    monkeypatch.setattr(registration, "_SHARED_BASELINE_CACHES", {})
    relative = {**small_kwargs, "reward_baseline": "neutral"}
    first = agent.make_vec(relative, n_envs=2, seed=0)
    again = agent.make_vec(relative, n_envs=1, seed=5)
    other = agent.make_vec({**relative, "clip": 0.05}, n_envs=1, seed=0)
    caches = [e.unwrapped.baseline_cache for v in (first, again, other) for e in v.envs]
    assert caches[0] is caches[1] is caches[2]
    assert caches[3] is not caches[0]
    assert not caches[0] and not caches[3]
    first.reset()
    assert caches[2] and not caches[3]  # filled by the first vectoriser's resets, seen by all
    # arguments without a JSON form: a cache of its own (built, not refused)
    odd = registration.make_sharing_env(
        rl_scheduler.NMF_ENV_ID, {**relative, "clip": Fraction(1, 10)}
    )
    assert odd.unwrapped.baseline_cache is not caches[0]
    assert len(registration._SHARED_BASELINE_CACHES) == 2
    registration.clear_shared_baseline_caches()
    assert not registration._SHARED_BASELINE_CACHES and caches[0]  # built environments keep theirs
