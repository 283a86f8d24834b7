import dataclasses
import math
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

import rl_scheduler
from nmf.datasets import NMFInstance
from nmf.schedules import Cosine
from rl_scheduler import LRScheduleEnv, NMFTask, make_nmf_env
from rl_scheduler.env import (
    REWARD_SCALE_FLOOR,
    anchored_rate,
    bound_exponent,
    reference_gap,
    shielded_lr,
)


def _episode(env, actions, seed=None, options=None):
    obs, info = env.reset(seed=seed, options=options)
    observations, rewards, infos = [obs], [], [info]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(np.array([a], dtype=np.float32))
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        if terminated or truncated:
            break
    return np.array(observations), rewards, infos


def test_gymnasium_env_checker(small_kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "no render fps": not an error
        gym_check_env(make_nmf_env(**small_kwargs), skip_render_check=True)


def test_stable_baselines3_env_checker(small_kwargs):
    sb3_check_env(make_nmf_env(**small_kwargs), warn=True)


def test_registered_id_works_with_kwargs(small_kwargs):
    env = gymnasium.make(rl_scheduler.NMF_ENV_ID, **small_kwargs, shield_fraction=0.8)
    assert env.unwrapped.shield_fraction == 0.8
    assert len(env.unwrapped.task.instances) == small_kwargs["n_instances"]
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.close()
    # "module:id" imports the package first, so this works without `import rl_scheduler`
    test = gymnasium.make(f"rl_scheduler:{rl_scheduler.NMF_ENV_ID}", split="test", **small_kwargs)
    seeds = {i.seed for i in test.unwrapped.task.instances}
    assert not seeds & {i.seed for i in env.unwrapped.task.instances}


def test_same_seed_gives_the_same_observations(small_kwargs):
    actions = np.random.default_rng(0).uniform(-1, 1, 6)
    a_obs, a_rew, _ = _episode(make_nmf_env(**small_kwargs), actions, seed=123)
    b_obs, b_rew, _ = _episode(make_nmf_env(**small_kwargs), actions, seed=123)
    np.testing.assert_array_equal(a_obs, b_obs)
    assert a_rew == b_rew
    # another seed draws other instances: some episode differs
    others = [_episode(make_nmf_env(**small_kwargs), actions, seed=s)[0] for s in range(4)]
    assert any(not np.array_equal(a_obs, o) for o in others)


def test_vectorised_env_steps_in_lockstep(small_kwargs):
    venv = DummyVecEnv([lambda: make_nmf_env(**small_kwargs)] * 2)
    venv.seed(5)
    obs = venv.reset()
    assert obs.shape == (2, len(rl_scheduler.DEFAULT_FEATURES)) and obs.dtype == np.float32
    dones_seen = 0
    for _ in range(small_kwargs["max_actions"] * 2):
        obs, rewards, dones, infos = venv.step(np.zeros((2, 1), dtype=np.float32))
        assert rewards.shape == (2,) and np.all(np.isfinite(obs))
        dones_seen += int(dones.sum())
    assert dones_seen == 4  # two episodes each, auto-reset in between
    venv.close()


def test_shield_is_never_exceeded(small_kwargs):
    env = make_nmf_env(**small_kwargs, max_mult=10.0, shield_fraction=0.7)
    rng = np.random.default_rng(1)
    n_shielded = 0
    for episode in range(4):
        _, _, infos = _episode(env, rng.uniform(-1, 1, 10) + 0.5, seed=episode)
        for info in infos[1:]:
            assert info["lr"] <= 0.7 * info["bound"] * (1 + 1e-12)
            assert info["lr"] <= info["proposed_lr"]
            assert not info["diverged"]
            n_shielded += info["shielded"]
    assert n_shielded > 0


def test_shield_off_lets_training_diverge_with_penalty_and_termination():
    instance = NMFInstance("synthetic", rank=3, seed=1, size=(30, 20))
    kwargs = {"instances": [instance], "clip": None, "max_mult": 1e3, "divergence_penalty": 7.0}
    _, rewards, infos = _episode(make_nmf_env(**kwargs, shield=False), [1.0] * 30, seed=0)
    assert infos[-1]["diverged"] and rewards[-1] == -7.0 and len(rewards) < 30
    _, rewards, infos = _episode(make_nmf_env(**kwargs, shield=True), [1.0] * 30, seed=0)
    assert not any(i["diverged"] for i in infos) and len(rewards) == 30
    assert all(np.isfinite(rewards))


def test_rewards_telescope_to_the_log_loss_ratio(small_kwargs):
    env = make_nmf_env(**small_kwargs)
    _, rewards, infos = _episode(env, [0.3, -0.2, 1.0, 0.0, -1.0, 0.5], seed=2)
    assert len(rewards) == small_kwargs["max_actions"]
    expected = math.log(infos[0]["loss"] / infos[-1]["loss"])
    assert sum(rewards) == pytest.approx(expected, rel=1e-9)
    assert infos[-1]["steps_done"] == small_kwargs["max_actions"] * small_kwargs["steps_per_action"]


def test_episode_ends_after_the_budget(small_kwargs):
    env = make_nmf_env(**small_kwargs)
    env.reset(seed=0)
    for k in range(small_kwargs["max_actions"]):
        _, _, terminated, truncated, _ = env.step(np.zeros(1, dtype=np.float32))
        assert terminated == (k == small_kwargs["max_actions"] - 1) and not truncated
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1, dtype=np.float32))


def test_action_maps_to_a_log_scale_multiplier(small_kwargs):
    env = make_nmf_env(**small_kwargs, shield=False, max_mult=4.0)
    _, info = env.reset(seed=0)
    assert info["lr"] == pytest.approx(0.5 * info["bound"])  # initial_lr_fraction * bound
    for action, factor in ((0.5, 2.0), (-1.0, 0.25), (5.0, 4.0), (0.0, 1.0)):
        before = env.lr
        _, _, _, _, info = env.step(np.array([action], dtype=np.float32))
        assert info["lr"] == pytest.approx(before * factor)
    with pytest.raises(ValueError, match="action"):
        env.step(np.array([np.nan]))


def test_shielded_lr_rule():
    kw = {"max_mult": 2.0, "lr_min": 1e-6, "lr_max": 1e6, "shield_fraction": 0.5}
    assert shielded_lr(1.0, [1.0], 1.0, shield=True, **kw) == (2.0, 0.5)
    assert shielded_lr(1.0, [1.0], 1.0, shield=False, **kw) == (2.0, 2.0)
    assert shielded_lr(1.0, [1.0], None, shield=True, **kw) == (2.0, 2.0)
    assert shielded_lr(1e6, [1.0], None, shield=True, **kw) == (1e6, 1e6)


def test_bound_relative_action_closed_form():
    # a = -1 -> lo, a = 0 -> the bound, a = 1 -> hi; piecewise linear in between
    assert [bound_exponent([a], (-6.0, 2.0)) for a in (-1, -0.5, 0, 0.5, 1, 3)] == [
        -6.0,
        -3.0,
        0.0,
        1.0,
        2.0,
        2.0,
    ]
    kw = {"max_mult": 2.0, "lr_min": 1e-6, "lr_max": 1e6, "shield_fraction": 0.9}
    rule = {"bound_range": (-6.0, 2.0), **kw}
    # the previous rate does not matter: the action picks a multiple of the current bound
    assert shielded_lr(123.0, [0.5], 0.1, shield=False, **rule) == (0.2, 0.2)
    assert shielded_lr(1e-5, [-1.0], 0.1, shield=False, **rule) == (0.1 / 64, 0.1 / 64)
    assert shielded_lr(1.0, [1.0], 0.1, shield=True, **rule) == (0.4, pytest.approx(0.09))
    # without a known bound the rate is kept
    assert shielded_lr(0.3, [1.0], None, shield=False, **rule) == (0.3, 0.3)
    with pytest.raises(ValueError, match="action"):
        shielded_lr(0.3, [np.nan], 0.1, shield=False, **rule)


def test_bound_relative_env_applies_bound_multiples(small_kwargs):
    env = make_nmf_env(**small_kwargs, bound_range=(-4.0, 1.0), shield=False)
    env.reset(seed=0)
    for a, e in ((0.0, 0.0), (1.0, 1.0), (-0.5, -2.0)):
        _, _, _, _, info = env.step(np.array([a], dtype=np.float32))
        assert info["lr"] == pytest.approx(info["bound"] * 2.0**e)  # the chunk's bound
    assert env.config["bound_range"] == [-4.0, 1.0]
    for bad in ((1.0, 2.0), (-1.0, -0.5), (0.0, 0.0), (-1, float("inf")), "ab", (-1.0,)):
        with pytest.raises(ValueError, match="bound_range"):
            make_nmf_env(**small_kwargs, bound_range=bad)


def test_rate_relative_action_closed_form():
    kw = {"max_mult": 2.0, "lr_min": 1e-6, "lr_max": 1e6, "shield_fraction": 0.9}
    rule = {"rate_range": (-6.0, 2.0), "initial_lr": 0.5, **kw}
    # the previous rate and the bound do not matter: a multiple of the run's initial rate
    assert shielded_lr(123.0, [0.5], None, shield=False, **rule) == (1.0, 1.0)
    assert shielded_lr(1e-5, [-1.0], None, shield=False, **rule) == (0.5 / 64, 0.5 / 64)
    assert shielded_lr(7.0, [0.0], None, shield=False, **rule) == (0.5, 0.5)
    # the shield still caps at a known bound
    assert shielded_lr(1.0, [1.0], 1.0, shield=True, **rule) == (2.0, 0.9)
    with pytest.raises(ValueError, match="initial_lr"):
        shielded_lr(1.0, [0.0], None, shield=False, **{**rule, "initial_lr": None})
    with pytest.raises(ValueError, match="not both"):
        shielded_lr(1.0, [0.0], None, shield=False, bound_range=(-1.0, 1.0), **rule)


def test_rate_relative_env_sets_multiples_of_the_initial_rate(small_kwargs):
    env = make_nmf_env(**small_kwargs, rate_range=(-4.0, 1.0), shield=False)
    _, info = env.reset(seed=0)
    lr0 = info["lr"]
    for a, e in ((1.0, 1.0), (0.0, 0.0), (-0.5, -2.0), (-0.5, -2.0)):
        _, _, _, _, info = env.step(np.array([a], dtype=np.float32))
        assert info["lr"] == pytest.approx(lr0 * 2.0**e)  # not compounded
    assert env.config["rate_range"] == [-4.0, 1.0] and env.config["bound_range"] is None
    for bad in ((1.0, 2.0), (0.0, 0.0), "ab"):
        with pytest.raises(ValueError, match="rate_range"):
            make_nmf_env(**small_kwargs, rate_range=bad)
    with pytest.raises(ValueError, match="not both"):
        make_nmf_env(**small_kwargs, rate_range=(-1.0, 1.0), bound_range=(-1.0, 1.0))


def test_anchored_rate_closed_form():
    assert anchored_rate(None, 0.7, 3, 10) == 0.7
    for k in range(12):
        expected = 0.7 * 0.5 * (1.0 + math.cos(math.pi * min(k, 10) / 10))
        assert anchored_rate("cosine", 0.7, k, 10) == pytest.approx(expected, rel=1e-15, abs=0)
    assert anchored_rate("cosine", 0.7, 0, 10) == 0.7 and anchored_rate("cosine", 0.7, 10, 10) == 0
    with pytest.raises(ValueError, match="rate_anchor"):
        anchored_rate("step", 0.7, 0, 10)


def test_cosine_anchored_env_sets_multiples_of_the_cosine_schedule(small_kwargs):
    env = make_nmf_env(**small_kwargs, rate_range=(-2.0, 2.0), rate_anchor="cosine", shield=False)
    _, info = env.reset(seed=0)
    lr0, n = info["lr"], env.max_actions
    actions = [0.0, 0.5, -1.0, 0.0] + [1.0] * (n - 4)
    for k, a in enumerate(actions):
        _, _, _, _, info = env.step(np.array([a], dtype=np.float32))
        cosine = Cosine(lr0, total_steps=n)(k)  # the deep-network study's cosine baseline
        if a == 0.0:
            assert info["lr"] == cosine  # the neutral action is the cosine schedule, exactly
        else:
            assert info["lr"] == pytest.approx(cosine * 2.0 ** (2.0 * a), rel=1e-12)
    assert env.config["rate_anchor"] == "cosine"
    assert "rate_anchor" not in make_nmf_env(**small_kwargs, rate_range=(-1.0, 1.0)).config
    with pytest.raises(ValueError, match="rate_anchor needs rate_range or bound_range"):
        make_nmf_env(**small_kwargs, rate_anchor="cosine")
    with pytest.raises(ValueError, match="rate_anchor must be one of"):
        make_nmf_env(**small_kwargs, rate_range=(-1.0, 1.0), rate_anchor="linear")


def test_relative_reward_against_a_cosine_anchor_is_zero_for_the_neutral_policy(small_kwargs):
    kwargs = {**small_kwargs, "rate_range": (-2.0, 2.0), "rate_anchor": "cosine", "shield": False}
    env = make_nmf_env(**kwargs, reward_baseline="neutral")
    _, zero, _ = _episode(env, [0.0] * env.max_actions, seed=4)
    assert zero == [0.0] * env.max_actions
    actions = [0.4, -0.3] * (env.max_actions // 2)
    _, plain, _ = _episode(make_nmf_env(**kwargs), actions, seed=4)
    _, neutral, _ = _episode(make_nmf_env(**kwargs), [0.0] * env.max_actions, seed=4)
    _, relative, _ = _episode(env, actions, seed=4)
    np.testing.assert_allclose(relative, np.subtract(plain, neutral), rtol=0, atol=1e-12)


def test_cosine_anchored_bound_range_sets_multiples_of_the_annealed_bound(small_kwargs):
    kwargs = {**small_kwargs, "bound_range": (-4.0, 4.0), "rate_anchor": "cosine"}
    env = make_nmf_env(**kwargs, shield=False)
    env.reset(seed=0)
    n = env.max_actions
    actions = [0.0, 0.5, -1.0] + [0.0, 1.0] * n
    for k, a in enumerate(actions[:n]):
        _, _, _, _, info = env.step(np.array([a], dtype=np.float32))
        cos_k = Cosine(1.0, total_steps=n)(k)
        assert info["lr"] == pytest.approx(info["bound"] * cos_k * 2.0 ** (4.0 * a), rel=1e-12)
    assert env.config["rate_anchor"] == "cosine" and env.config["bound_range"] == [-4.0, 4.0]
    # the neutral policy (the annealed bound) earns exactly 0 against itself
    _, zero, _ = _episode(make_nmf_env(**kwargs, reward_baseline="neutral"), [0.0] * n, seed=3)
    assert zero == [0.0] * n
    # a shield caps the annealed rate at its fraction of the bound itself, not of the annealed one
    shielded = make_nmf_env(**kwargs, shield=True, shield_fraction=0.5)
    shielded.reset(seed=0)
    for k in range(n):
        _, _, _, _, info = shielded.step(np.array([1.0], dtype=np.float32))
        annealed = info["bound"] * Cosine(1.0, total_steps=n)(k) * 16.0
        assert info["lr"] == pytest.approx(min(annealed, 0.5 * info["bound"]), rel=1e-12)
        assert info["shielded"] == (annealed > 0.5 * info["bound"])
    assert n >= 3  # later decisions tell the bound from the annealed bound (cos_k < 1)
    with pytest.raises(ValueError, match="anchor_factor"):
        shielded_lr(
            1.0,
            [0.0],
            1.0,
            max_mult=2.0,
            lr_min=1e-6,
            lr_max=1e6,
            shield=False,
            shield_fraction=0.9,
            bound_range=(-1.0, 1.0),
            anchor_factor=math.nan,
        )


def test_bound_relative_env_needs_a_task_with_a_bound(small_kwargs):
    env = make_nmf_env(**small_kwargs, bound_range=(-4.0, 1.0), compute_bound=False)
    with pytest.raises(ValueError, match="bound_range"):
        env.reset(seed=0)


def test_reset_options_select_an_instance(small_kwargs):
    env = make_nmf_env(**small_kwargs)
    _, info = env.reset(seed=0, options={"instance": 2})
    assert info["instance_index"] == 2
    with pytest.raises(TypeError):
        env.reset(options={"no_such_option": 1})


def test_render_rgb_array_draws_the_run_so_far(small_kwargs):
    env = make_nmf_env(**small_kwargs, render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    env.step(np.ones(1, dtype=np.float32))
    picture = env.render()
    assert picture.dtype == np.uint8 and picture.shape == (480, 640, 3)
    assert not np.array_equal(first, picture)  # the new point is drawn
    assert make_nmf_env(**small_kwargs).render() is None


def test_stable_baselines3_make_vec_env_with_the_registered_id(small_kwargs):
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env("rl_scheduler/NMF-v0", n_envs=2, seed=0, env_kwargs=small_kwargs)
    obs = venv.reset()
    obs, rewards, dones, infos = venv.step(np.zeros((2, 1), dtype=np.float32))
    assert obs.shape == (2, venv.observation_space.shape[0]) and np.all(np.isfinite(rewards))
    assert venv.render_mode == "rgb_array"
    venv.close()


def test_gymnasium_async_vector_env_with_spawn(small_kwargs):
    envs = gymnasium.make_vec(
        "rl_scheduler/NMF-v0",
        num_envs=2,
        vectorization_mode="async",
        vector_kwargs={"context": "spawn"},
        **small_kwargs,
    )
    try:
        obs, _ = envs.reset(seed=0)
        obs2, rewards, *_ = envs.step(np.zeros((2, 1), dtype=np.float32))
        assert obs.shape == obs2.shape == (2, envs.single_observation_space.shape[0])
        assert np.all(np.isfinite(rewards))
    finally:
        envs.close()


@pytest.mark.parametrize(
    "action", ["0.5", True, np.array([True]), np.array(["0.5"]), [None], 0.5 + 0j]
)
def test_non_numeric_actions_are_refused(small_kwargs, action):
    env = make_nmf_env(**small_kwargs)
    env.reset(seed=0)
    with pytest.raises(TypeError, match="action must be a real number"):
        env.step(action)


@pytest.mark.parametrize(
    "action", [0, 0.5, np.float32(-1.0), [0.25], np.array([1], dtype=np.int64)]
)
def test_real_number_actions_are_accepted(small_kwargs, action):
    env = make_nmf_env(**small_kwargs)
    env.reset(seed=0)
    assert np.isfinite(env.step(action)[1])


def test_render_ansi(small_kwargs):
    env = make_nmf_env(**small_kwargs, render_mode="ansi")
    env.reset(seed=0)
    env.step(np.zeros(1, dtype=np.float32))
    assert "lr=" in env.render()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"steps_per_action": 0}, ValueError, "steps_per_action"),
        ({"max_actions": 1.5}, ValueError, "max_actions"),
        ({"max_mult": 1.0}, ValueError, "max_mult"),
        ({"shield": "yes"}, TypeError, "shield"),
        ({"shield_fraction": 1.5}, ValueError, "shield_fraction"),
        ({"divergence_penalty": -1.0}, ValueError, "divergence_penalty"),
        ({"lr_limits": (2.0, 3.0)}, ValueError, "lr_limits"),
        ({"lr_limits": (0.1,)}, ValueError, "lr_limits"),
        ({"render_mode": "human"}, gymnasium.error.UnsupportedMode, "render_mode"),
        ({"render_mode": "rgb"}, ValueError, "render_mode"),
    ],
)
def test_env_validation(kwargs, error, match):
    task = NMFTask([NMFInstance("synthetic", rank=3, seed=1, size=(30, 20))])
    with pytest.raises(error, match=match):
        LRScheduleEnv(task, **kwargs)


def test_env_rejects_non_tasks():
    with pytest.raises(TypeError, match="task"):
        LRScheduleEnv(object())


@pytest.mark.slow
def test_subprocess_vectorised_env_matches_the_in_process_one(small_kwargs):
    from rl_scheduler.agent import make_vec

    actions = np.random.default_rng(0).uniform(-1, 1, (8, 2, 1)).astype(np.float32)
    results = []
    for vec_env in ("dummy", "subproc"):
        venv = make_vec(small_kwargs, n_envs=2, seed=3, vec_env=vec_env)
        trace = [venv.reset()]
        for a in actions:
            obs, rewards, _, _ = venv.step(a)
            trace += [obs, rewards]
        venv.close()
        results.append(trace)
    for a, b in zip(*results, strict=True):  # rewards: float32 in DummyVecEnv, float64 otherwise
        np.testing.assert_array_equal(a, b.astype(a.dtype))


class QuadraticTask:
    """A Task without a stability bound: gradient descent on 0.5 * sum(a * x**2)."""

    initial_lr = 0.1

    def __init__(self):
        self.a = np.array([1.0, 4.0, 9.0])

    def _stats(self, lr):
        loss = float(0.5 * np.sum(self.a * self.x**2))
        diverged = not np.isfinite(loss) or loss > 1e6 * self.loss0
        grad_norm = float(np.linalg.norm(self.a * self.x))
        return rl_scheduler.TaskStats(
            loss=loss, grad_norm=grad_norm, lr=lr, steps_done=self.steps, diverged=diverged
        )

    def reset(self, seed=None):
        self.x = np.random.default_rng(seed).uniform(1.0, 2.0, 3)
        self.steps = 0
        self.loss0 = float(0.5 * np.sum(self.a * self.x**2))
        return self._stats(float("nan"))

    def advance(self, lr, n_steps):
        for _ in range(n_steps):
            self.x = self.x - lr * self.a * self.x
            self.steps += 1
        return self._stats(lr)


class BoundedQuadraticTask(QuadraticTask):
    """Reports a (made-up) stability bound in its stats, the one channel a task has for it."""

    def _stats(self, lr):
        return dataclasses.replace(super()._stats(lr), bound=0.05)


def test_the_shield_reads_the_bound_from_the_task_stats():
    env = LRScheduleEnv(BoundedQuadraticTask(), steps_per_action=3, max_actions=5)
    _, info = env.reset(seed=0)
    _, _, _, _, info = env.step(np.ones(1, dtype=np.float32))
    assert info["bound"] == 0.05 and info["shielded"] and info["lr"] == 0.9 * 0.05


def test_env_is_generic_over_tasks_without_a_bound():
    task = QuadraticTask()
    assert isinstance(task, rl_scheduler.Task)
    env = LRScheduleEnv(task, steps_per_action=3, max_actions=5)
    sb3_check_env(env)
    obs, info = env.reset(seed=0)
    assert info["bound"] == math.inf
    features = dict(zip(rl_scheduler.DEFAULT_FEATURES, obs, strict=True))
    assert features["has_bound"] == 0.0 and features["log_lr_bound"] == 0.0
    _, rewards, infos = _episode(env, [1.0] * 5, seed=0)
    assert infos[-1]["diverged"] and rewards[-1] == -env.divergence_penalty  # no shield to stop it


# ------------------------------------------------------------------ reward_baseline="neutral"
def test_relative_reward_is_the_plain_reward_minus_the_neutral_policys(small_kwargs):
    actions = [0.3, -0.2, 1.0, 0.0, -1.0, 0.5]
    plain_obs, plain, plain_infos = _episode(make_nmf_env(**small_kwargs), actions, seed=2)
    _, neutral, _ = _episode(make_nmf_env(**small_kwargs), [0.0] * 6, seed=2)
    env = make_nmf_env(**small_kwargs, reward_baseline="neutral")
    obs, relative, infos = _episode(env, actions, seed=2)
    np.testing.assert_allclose(relative, np.subtract(plain, neutral), rtol=0, atol=1e-12)
    # what the policy sees is unchanged; the return is log(neutral final / agent final loss)
    np.testing.assert_array_equal(obs, plain_obs)
    assert infos == plain_infos
    final_neutral = infos[0]["loss"] / math.exp(sum(neutral))
    assert sum(relative) == pytest.approx(math.log(final_neutral / infos[-1]["loss"]), rel=1e-9)
    # the neutral policy itself earns exactly nothing
    _, zero, _ = _episode(env, [0.0] * 6, seed=2)
    assert zero == [0.0] * 6


def test_relative_reward_of_a_diverged_episode_subtracts_the_whole_neutral_return():
    instance = NMFInstance("synthetic", rank=3, seed=1, size=(30, 20))
    kwargs = {"instances": [instance], "clip": None, "max_mult": 1e3, "shield": False}
    _, plain, infos = _episode(make_nmf_env(**kwargs), [1.0] * 30, seed=0)
    assert infos[-1]["diverged"] and len(plain) < 30
    _, neutral, _ = _episode(make_nmf_env(**kwargs), [0.0] * 30, seed=0)
    assert len(neutral) == 30
    _, relative, _ = _episode(make_nmf_env(**kwargs, reward_baseline="neutral"), [1.0] * 30, seed=0)
    assert len(relative) == len(plain)
    assert sum(relative) == pytest.approx(sum(plain) - sum(neutral), rel=1e-12)


class CountingTask(NMFTask):
    """An NMFTask that counts the optimizer chunks it is asked for."""

    chunks = 0

    def advance(self, lr, n_steps):
        CountingTask.chunks += 1
        return super().advance(lr, n_steps)


def test_the_neutral_run_is_cached_per_instance_only_when_the_task_allows_it(small_kwargs):
    instances = rl_scheduler.nmf_instance_set(
        "train", 2, datasets=["synthetic"], ranks=[3], sizes={"synthetic": (30, 20)}
    )
    env = LRScheduleEnv(
        CountingTask(instances), steps_per_action=2, max_actions=3, reward_baseline="neutral"
    )
    counts = []
    for _ in range(2):
        for index in (0, 1):
            CountingTask.chunks = 0
            env.reset(options={"instance": index})
            counts.append(CountingTask.chunks)
    assert counts == [3, 3, 0, 0]  # one neutral episode per instance, then the cache
    CountingTask.chunks = 0
    fresh = LRScheduleEnv(
        CountingTask(instances), steps_per_action=2, max_actions=3, reward_baseline="neutral"
    )
    fresh.reset(options={"instance": 1})
    assert CountingTask.chunks == 3
    # a task that does not declare its runs determined by the instance is rerun at every reset
    quad = LRScheduleEnv(
        QuadraticTask(), steps_per_action=3, max_actions=4, reward_baseline="neutral"
    )
    _, rewards, _ = _episode(quad, [0.0] * 4, seed=5)
    _, again, _ = _episode(quad, [0.0] * 4, seed=6)
    assert rewards == [0.0] * 4 and again == [0.0] * 4


def test_relative_reward_env_passes_the_checkers_and_records_its_setting(small_kwargs):
    env = make_nmf_env(**small_kwargs, reward_baseline="neutral")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym_check_env(env, skip_render_check=True)
    sb3_check_env(make_nmf_env(**small_kwargs, reward_baseline="neutral"), warn=True)
    assert env.config["reward_baseline"] == "neutral"
    assert "reward_baseline" not in make_nmf_env(**small_kwargs).config  # older configs unchanged


def test_reward_baseline_validation():
    task = NMFTask([NMFInstance("synthetic", rank=3, seed=1, size=(30, 20))])
    with pytest.raises(ValueError, match="reward_baseline"):
        LRScheduleEnv(task, reward_baseline="step")


# ------------------------------------------------------------------ reward_scale="reference_gap"
def test_reference_gap_closed_form():
    assert reference_gap(1.25, 1.0) == 0.25
    assert reference_gap(1.0, 1.25) == 0.25
    assert reference_gap(1.0, 1.001) == REWARD_SCALE_FLOOR
    assert reference_gap(1.0, 1.001, floor=1e-4) == pytest.approx(1e-3)
    for floor in (0.0, True, "0.1", math.nan):
        with pytest.raises(ValueError, match="floor"):
            reference_gap(1.0, 2.0, floor=floor)


@pytest.mark.parametrize("anchor", [None, "cosine"])
@pytest.mark.parametrize("baseline", [None, "neutral"])
def test_scaled_rewards_are_the_rewards_divided_by_the_gap_of_the_two_anchors(
    small_kwargs, anchor, baseline
):
    kwargs = {**small_kwargs, "bound_range": (-3.0, 1.0), "shield": False}
    actions = [0.3, -0.2, 1.0, 0.0, -1.0, 0.5]
    unscaled_env = make_nmf_env(**kwargs, rate_anchor=anchor, reward_baseline=baseline)
    obs, unscaled, infos = _episode(unscaled_env, actions, seed=2)
    # the two reference runs: the neutral policy with this anchor and with the other one
    other = "cosine" if anchor is None else None
    _, mine, _ = _episode(make_nmf_env(**kwargs, rate_anchor=anchor), [0.0] * 6, seed=2)
    _, theirs, _ = _episode(make_nmf_env(**kwargs, rate_anchor=other), [0.0] * 6, seed=2)
    gap = abs(sum(mine) - sum(theirs))
    assert gap > 5 * REWARD_SCALE_FLOOR  # the floor is not what this test measures
    env = make_nmf_env(
        **kwargs, rate_anchor=anchor, reward_baseline=baseline, reward_scale="reference_gap"
    )
    scaled_obs, scaled, scaled_infos = _episode(env, actions, seed=2)
    np.testing.assert_allclose(scaled, np.divide(unscaled, gap), rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(scaled_obs, obs)  # what the policy sees is unchanged
    assert scaled_infos == infos
    assert env.config["reward_scale"] == "reference_gap"
    assert env.config["reward_scale_floor"] == REWARD_SCALE_FLOOR
    # cached per instance: a second episode on the same run is scaled the same
    _, again, _ = _episode(env, actions, seed=2)
    assert again == scaled


def test_the_scale_is_per_run():
    instances = rl_scheduler.nmf_instance_set(
        "train",
        2,
        datasets=["synthetic"],
        noise_levels=[0.0, 5.0],
        ranks=[3],
        sizes={"synthetic": (30, 20)},
    )
    kwargs = {
        "instances": instances,
        "steps_per_action": 5,
        "max_actions": 6,
        "bound_range": (-3.0, 1.0),
        "shield": False,
        "reward_baseline": "neutral",
    }
    env = make_nmf_env(**kwargs, reward_scale="reference_gap")
    plain = make_nmf_env(**kwargs)
    ratios = []
    for index in (0, 1):
        _, scaled, _ = _episode(env, [-0.5] * 6, options={"instance": index})
        _, unscaled, _ = _episode(plain, [-0.5] * 6, options={"instance": index})
        ratios.append(sum(unscaled) / sum(scaled))
    assert ratios[0] != pytest.approx(ratios[1], rel=1e-3)
    assert min(ratios) >= REWARD_SCALE_FLOOR


def test_reward_scale_env_passes_the_checkers(small_kwargs):
    kwargs = {**small_kwargs, "bound_range": (-3.0, 1.0), "reward_scale": "reference_gap"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym_check_env(make_nmf_env(**kwargs), skip_render_check=True)
    sb3_check_env(make_nmf_env(**kwargs), warn=True)
    assert "reward_scale" not in make_nmf_env(**small_kwargs).config  # older configs unchanged


def test_reward_scale_validation():
    task = NMFTask([NMFInstance("synthetic", rank=3, seed=1, size=(30, 20))])
    with pytest.raises(ValueError, match="reward_scale must be one of"):
        LRScheduleEnv(task, bound_range=(-1.0, 1.0), reward_scale="gap")
    with pytest.raises(ValueError, match="needs bound_range or rate_range"):
        LRScheduleEnv(task, reward_scale="reference_gap")
    for floor in (0.0, -1.0, math.inf, math.nan, "0.1", True):
        with pytest.raises(ValueError, match="reward_scale_floor"):
            LRScheduleEnv(
                task,
                bound_range=(-1.0, 1.0),
                reward_scale="reference_gap",
                reward_scale_floor=floor,
            )


def test_runs_closer_than_the_floor_are_scaled_by_the_floor(small_kwargs):
    kwargs = {**small_kwargs, "bound_range": (-3.0, 1.0), "reward_baseline": "neutral"}
    actions = [0.3, -0.2, 1.0, 0.0, -1.0, 0.5]
    _, unscaled, _ = _episode(make_nmf_env(**kwargs), actions, seed=4)
    env = make_nmf_env(**kwargs, reward_scale="reference_gap", reward_scale_floor=1e3)
    _, scaled, _ = _episode(env, actions, seed=4)
    np.testing.assert_allclose(scaled, np.divide(unscaled, 1e3), rtol=1e-12, atol=0)


def test_frame_stacking_env_passes_the_checkers_and_records_its_setting(small_kwargs):
    env = make_nmf_env(**small_kwargs, history=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym_check_env(env, skip_render_check=True)
    sb3_check_env(make_nmf_env(**small_kwargs, history=3), warn=True)
    assert env.observation_space.shape == (3 * len(rl_scheduler.DEFAULT_FEATURES),)
    assert env.config["history"] == 3
    assert "history" not in make_nmf_env(**small_kwargs).config  # older configs unchanged
