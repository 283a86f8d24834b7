"""The deep-network environment factories: task settings travel in one ``task_kwargs`` mapping."""

import gymnasium
import pytest

import rl_scheduler
from rl_scheduler.registration import TEXT_TASK_DEFAULTS, make_text_env, make_vision_env

VISION_TASK = {"batch_size": 16, "eval_size": 32, "val_size": 32, "device": "cpu"}


def test_vision_env_passes_task_kwargs_to_the_task():
    env = gymnasium.make(
        rl_scheduler.VISION_ENV_ID, n_instances=2, task_kwargs=VISION_TASK, max_mult=3.0
    ).unwrapped
    assert (env.task.batch_size, env.task.eval_size, str(env.task.device)) == (16, 32, "cpu")
    assert env.max_mult == 3.0 and env.max_actions == 20
    assert list(env.featurizer.features) == list(rl_scheduler.DNN_FEATURES)


def test_text_env_fills_in_its_defaults():
    assert make_text_env(n_instances=1, task_kwargs={"device": "cpu"}).task.batch_size == 32
    env = make_text_env(n_instances=1, task_kwargs={"device": "cpu", "batch_size": 8, "seq_len": 4})
    assert (env.task.batch_size, env.task.seq_len) == (8, 4)
    assert TEXT_TASK_DEFAULTS == {"batch_size": 32}


@pytest.mark.parametrize("factory", [make_vision_env, make_text_env])
def test_a_task_argument_outside_task_kwargs_is_named(factory):
    with pytest.raises(
        TypeError, match=r"\['batch_size', 'device'\] are arguments of .*task_kwargs"
    ):
        factory(n_instances=1, device="cpu", batch_size=8)
    with pytest.raises(TypeError, match="task_kwargs must be a dict"):
        factory(n_instances=1, task_kwargs=[("device", "cpu")])


def test_text_only_arguments_are_named_too():
    with pytest.raises(TypeError, match=r"\['seq_len'\]"):
        make_text_env(n_instances=1, seq_len=4)
