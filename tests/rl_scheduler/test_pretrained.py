"""The shipped agents: they load without unpickling and reproduce their recorded evaluation."""

import json

import numpy as np
import pytest

import nmf
from rl_scheduler import agent, pretrained
from rl_scheduler.checkpoint import UnsafeCheckpointError
from rl_scheduler.tasks.nmf_task import as_instance

SHIPPED = pretrained.available()


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_agent_reproduces_its_recorded_evaluation(name):
    manifest = pretrained.info(name)
    for key in ("commit", "command", "source", "selected_by", "evaluation"):
        assert manifest[key], key
    evaluation = manifest["evaluation"]
    if evaluation.get("kind") == "dnn":  # one held-out CNN / GRU run of the study, a few seconds
        from experiments.dnn.pretrained import replay

        test_loss = replay(evaluation, pretrained.model_path(name).parent)
        np.testing.assert_allclose(test_loss, evaluation["test_loss"], rtol=1e-5)
        return
    errors = []
    for fields in evaluation["instances"]:
        instance = as_instance(fields)
        problem = instance.build()
        schedule = pretrained.load(name)
        traj = nmf.run_sgd(
            problem, schedule, evaluation["n_steps"], clip=evaluation["clip"], seed=instance.seed
        )
        assert not traj.diverged
        errors.append(problem.relative_error_from_loss(traj.final_loss))
    np.testing.assert_allclose(errors, evaluation["final_rel_error"], rtol=1e-6)


def test_the_nmf_vision_and_text_agents_are_shipped():
    assert {"nmf", "vision", "text"} <= set(SHIPPED)


def test_unknown_names_and_unsafe_files_are_refused(tmp_path, small_kwargs):
    with pytest.raises(ValueError, match="name must be one of"):
        pretrained.load("no-such-agent")
    model = agent.train_ppo(small_kwargs, total_timesteps=64, n_envs=1, seed=0)
    good = agent.save(model, tmp_path / "m.zip")
    manifest = {"commit": "abc", "command": "make x", "source": "s", "evaluation": {}}
    with pytest.raises(ValueError, match="manifest must have"):
        pretrained.export(good, "mine", {"commit": "abc"}, root=tmp_path)
    folder = pretrained.export(good, "mine", manifest, root=tmp_path)
    assert json.loads((folder / "manifest.json").read_text())["commit"] == "abc"
    assert agent.load(folder / "model.zip").predict(np.zeros(9, np.float32))[0].shape == (1,)
    model.save(tmp_path / "sb3.zip")  # stable-baselines3's own (pickling) format
    with pytest.raises(UnsafeCheckpointError):
        pretrained.export(tmp_path / "sb3.zip", "bad", manifest, root=tmp_path)
    assert not (tmp_path / "bad").exists()
