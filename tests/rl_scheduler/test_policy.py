import math

import numpy as np
import pytest

import nmf
from rl_scheduler import make_nmf_env
from rl_scheduler.agent import rollout
from rl_scheduler.policy import LearnedSchedule
from rl_scheduler.tasks import TaskStats


class StubPolicy:
    """A deterministic 'policy' whose action depends on every feature, so any drift shows."""

    def predict(self, obs, deterministic=True):
        obs = np.asarray(obs, dtype=np.float64)
        return np.array([math.sin(3.0 * obs.sum() + 1.0)], dtype=np.float32), None


@pytest.mark.parametrize(
    ("shield", "action_range"),
    [
        (True, {}),
        (False, {}),
        (False, {"bound_range": (-5.0, 2.0)}),
        (True, {"rate_range": (-3.0, 1.0)}),
        (False, {"rate_range": (-2.0, 2.0), "rate_anchor": "cosine"}),
        (False, {"bound_range": (-4.0, 4.0), "rate_anchor": "cosine"}),
        (False, {"bound_range": (-2.0, 6.0), "certify": True}),
        (False, {"bound_range": (-3.0, 1.0), "history": 3}),
    ],
)
def test_learned_schedule_applies_exactly_the_env_lrs(small_kwargs, shield, action_range):
    small_kwargs |= {"noise_levels": [1.0], "max_mult": 3.0, "shield": shield, **action_range}
    env = make_nmf_env(**small_kwargs)
    policy = StubPolicy()
    for index in range(2):
        episode = rollout(policy, env, options={"instance": index})
        instance = env.task.instances[index]
        config = env.config
        schedule = LearnedSchedule(policy, config=config)
        n_steps = config["steps_per_action"] * config["max_actions"]
        traj = nmf.run_sgd(
            instance.build(),
            schedule,
            n_steps,
            clip=env.task.clip,
            seed=instance.seed,
            certify=env.task.certify,
        )
        chunk_lrs = np.repeat(episode["lrs"], config["steps_per_action"])
        if env.task.certify:  # each step applies the chunk's rate or, if it fails, the bound
            assert np.all(np.array(traj.lrs) <= chunk_lrs) and any(traj.lrs != chunk_lrs)
        else:
            assert traj.lrs == list(chunk_lrs)
        assert traj.losses[:: config["steps_per_action"]] == episode["losses"]
        assert schedule.lrs == episode["lrs"]
        assert schedule.proposed_lrs == episode["proposed_lrs"]
        assert schedule.bounds == episode["bounds"]


def test_schedule_can_be_reused_after_reset(small_kwargs):
    env = make_nmf_env(**small_kwargs)
    instance = env.task.instances[0]
    schedule = LearnedSchedule(StubPolicy(), config=env.config)
    first = nmf.run_sgd(instance.build(), schedule, 30, clip=0.1, seed=instance.seed).lrs
    schedule.reset()
    assert nmf.run_sgd(instance.build(), schedule, 30, clip=0.1, seed=instance.seed).lrs == first


class StubRecurrentPolicy:
    """Looks recurrent to ``RunPredictor`` (a policy with ``lstm_actor``); its action is the
    number of decisions since the last episode start, so a state carried over shows."""

    policy = type("Policy", (), {"lstm_actor": None})()

    def __init__(self):
        self.starts = []

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        self.starts.append(bool(episode_start[0]))
        count = 0 if episode_start[0] else state + 1
        return np.array([0.1 * count - 0.5], dtype=np.float32), count


def test_reset_starts_a_recurrent_policy_afresh(small_kwargs):
    env = make_nmf_env(**small_kwargs)
    instance = env.task.instances[0]
    policy = StubRecurrentPolicy()
    schedule = LearnedSchedule(policy, config=env.config)
    first = nmf.run_sgd(instance.build(), schedule, 30, clip=0.1, seed=instance.seed).lrs
    schedule.reset()
    again = nmf.run_sgd(instance.build(), schedule, 30, clip=0.1, seed=instance.seed).lrs
    n = 30 // env.config["steps_per_action"]
    assert policy.starts == ([True] + [False] * (n - 1)) * 2 and again == first


def test_torch_style_use_with_task_stats_and_an_initial_lr():
    schedule = LearnedSchedule(StubPolicy(), steps_per_action=2, max_actions=3, initial_lr=0.1)
    lrs = []
    loss = 1.0
    for step in range(8):
        schedule.observe(TaskStats(loss=loss, grad_norm=1.0 / (step + 1), steps_done=step))
        lrs.append(schedule(step))
        loss *= 0.9
    assert lrs[0] == lrs[1] and lrs[2] == lrs[3] and lrs[4] == lrs[5]
    assert len(schedule.lrs) == 4 and all(lr > 0 for lr in lrs)
    assert math.isnan(schedule.bounds[0])  # no bound: no shield


def test_errors_name_what_is_missing():
    schedule = LearnedSchedule(StubPolicy())
    with pytest.raises(RuntimeError, match="observe"):
        schedule(0)
    schedule.observe(TaskStats(loss=1.0, grad_norm=1.0))
    with pytest.raises(RuntimeError, match="initial_lr"):
        schedule(0)
    with pytest.raises(ValueError, match="step"):
        schedule(-1)
    with pytest.raises(TypeError, match="model"):
        LearnedSchedule(object())
    with pytest.raises(ValueError, match="steps_per_action"):
        LearnedSchedule(StubPolicy(), steps_per_action=0)
    with pytest.raises(ValueError, match="initial_lr"):
        LearnedSchedule(StubPolicy(), initial_lr=-1.0)
    with pytest.raises(TypeError, match="shield"):
        LearnedSchedule(StubPolicy(), shield=1)
    with pytest.raises(TypeError, match="guard"):
        LearnedSchedule(StubPolicy(), guard=1)


class HottestPolicy:
    """Always the largest action: 4 times the bound with ``bound_range=(-6, 2)``."""

    def predict(self, obs, deterministic=True):
        return np.array([1.0], dtype=np.float32), None


@pytest.mark.parametrize("shape, rank", [((40, 30), 12), ((30, 50), 8)])
def test_the_guard_lets_a_loss_rise_on_one_step_above_the_bound_per_decision(shape, rank):
    # exact gradients: every step at 0.9 x its bound descends, so only the tripping one rises
    problem = nmf.StochasticNMF(nmf.datasets.synthetic(*shape, rank, seed=1), rank, seed=0)
    config = {"bound_range": (-6.0, 2.0), "shield": False}
    schedule = LearnedSchedule(HottestPolicy(), config=config)
    plain = nmf.run_sgd(problem, schedule, 100, clip=0.1, seed=0)
    guarded_schedule = LearnedSchedule(HottestPolicy(), config=config, guard=True)
    guarded = nmf.run_sgd(problem, guarded_schedule, 100, clip=0.1, seed=0)

    def rises_above_bound(traj):
        lrs, bounds, losses = map(np.array, (traj.lrs, traj.bounds, traj.losses))
        return (lrs > bounds) & (losses[1:] > losses[:-1])

    assert rises_above_bound(plain).sum() > 30  # 4 x the bound makes the loss jump
    rises = rises_above_bound(guarded).reshape(-1, 10)
    assert rises.sum(axis=1).max() == 1 and guarded_schedule.guard_trips == rises.any(axis=1).sum()
    lrs, bounds = np.array(guarded.lrs).reshape(-1, 10), np.array(guarded.bounds).reshape(-1, 10)
    for d in range(lrs.shape[0]):  # after the rise, the rest of the decision runs at 0.9 x bound
        (trip,) = np.flatnonzero(rises[d]) if rises[d].any() else (10,)
        np.testing.assert_allclose(lrs[d, trip + 1 :], 0.9 * bounds[d, trip + 1 :])
        np.testing.assert_allclose(lrs[d, : trip + 1], 4.0 * bounds[d, 0])  # before it: the action
    losses = np.array(guarded.losses)
    capped = np.array(guarded.lrs) < np.array(guarded.bounds)
    # every capped step descends (Theorem 1: does not increase; up to rounding)
    assert np.all(losses[1:][capped] <= losses[:-1][capped] * (1 + 1e-12))
    assert guarded.final_loss < plain.final_loss


def test_the_guard_caps_nothing_without_a_bound_or_a_rise():
    from rl_scheduler.rates import DescentGuard

    guard = DescentGuard(0.5)
    stats = [TaskStats(loss=v, grad_norm=1.0, bound=1.0) for v in (3.0, 2.0, 2.5, 2.4)]
    assert [guard.rate(2.0, s, i == 0) for i, s in enumerate(stats)] == [2.0, 2.0, 0.5, 0.5]
    assert guard.trips == 1
    assert guard.rate(2.0, stats[2], True) == 2.0 and not guard.tripped  # a new decision
    guard.reset()
    no_bound = [TaskStats(loss=v, grad_norm=1.0) for v in (1.0, 2.0, 3.0)]
    assert [guard.rate(2.0, s, i == 0) for i, s in enumerate(no_bound)] == [2.0] * 3
    below = [TaskStats(loss=v, grad_norm=1.0, bound=4.0) for v in (1.0, 2.0, 3.0)]
    assert [guard.rate(2.0, s, False) for s in below] == [2.0] * 3 and guard.trips == 0
    with pytest.raises(ValueError, match="fraction"):
        DescentGuard(0.0)
