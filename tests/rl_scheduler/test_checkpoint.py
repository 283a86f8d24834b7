"""The safe model format: no public loader unpickles code; resume survives a corrupt checkpoint."""

import base64
import io
import json
import pickle
import zipfile

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from rl_scheduler import agent, checkpoint
from rl_scheduler.policy import LearnedSchedule
from tests.rl_scheduler.conftest import SMALL

PPO_KWARGS = {"n_steps": 32, "batch_size": 32, "n_epochs": 1}


class _Touch:
    """Unpickling this object creates the file ``path`` (what a malicious pickle would do)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _crafted_sb3_zip(path, marker):
    """A stable-baselines3-style zip whose ``data`` holds a cloudpickled payload."""
    payload = base64.b64encode(pickle.dumps(_Touch(marker))).decode()
    data = {"policy_class": {":type:": "<class 'type'>", ":serialized:": payload}}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", json.dumps(data))
        archive.writestr("_stable_baselines3_version", "2.9.2")
    return path


def _train(folder, total=64, **kwargs):
    return agent.train_ppo(
        SMALL,
        total_timesteps=total,
        n_envs=2,
        seed=0,
        checkpoint_dir=folder,
        checkpoint_every=64,
        device="cpu",
        ppo_kwargs=PPO_KWARGS,
        **kwargs,
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    return _train(folder, total=128), folder


@pytest.fixture
def crafted(tmp_path):
    marker = tmp_path / "pwned"
    return _crafted_sb3_zip(tmp_path / "evil.zip", marker), marker


def test_the_crafted_zip_really_runs_code_when_trusted(crafted):
    path, marker = crafted
    with pytest.raises(Exception):  # noqa: B017 - the payload runs before SB3 gives up
        agent.load(path, trusted=True)
    assert marker.exists()


@pytest.mark.parametrize(
    "entry_point",
    [
        lambda p: agent.load(p),
        lambda p: agent.load(p, device="cpu", trusted=False),
        lambda p: agent.evaluate(p, SMALL),
        lambda p: LearnedSchedule(p),
    ],
    ids=["load", "load-untrusted", "evaluate", "LearnedSchedule"],
)
def test_every_loader_refuses_a_stable_baselines3_zip(crafted, entry_point):
    path, marker = crafted
    with pytest.raises(checkpoint.UnsafeCheckpointError, match="arbitrary code"):
        entry_point(path)
    assert not marker.exists()


def test_resume_refuses_a_stable_baselines3_zip(run, tmp_path):
    _, folder = run
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "config.json").write_text((folder / "config.json").read_text())
    (copy / "checkpoints").mkdir()
    marker = tmp_path / "pwned"
    _crafted_sb3_zip(copy / "checkpoints" / "ppo_0000000999.zip", marker)
    with pytest.raises(checkpoint.UnsafeCheckpointError):
        _train(copy, total=2000)
    assert not marker.exists()


def test_a_pickle_inside_our_format_is_refused(run, tmp_path):
    model, _ = run
    path = agent.save(model, tmp_path / "model.zip")
    marker = tmp_path / "pwned"
    members = _members(path)
    members["policy.pt"] = _torch_bytes({"weights": _Touch(marker)})
    _write_members(path, members)
    with pytest.raises(checkpoint.CorruptCheckpointError, match="cannot be read"):
        agent.load(path)
    assert not marker.exists()


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write_members(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _torch_bytes(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_load_never_calls_ppo_load_and_restores_everything(run, tmp_path, monkeypatch):
    model, _ = run
    path = agent.save(model, tmp_path / "model")
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["optimizer.pt", "policy.pt", "rl_scheduler.json"]
    monkeypatch.setattr(PPO, "load", classmethod(lambda *a, **k: pytest.fail("PPO.load called")))
    loaded = agent.load(path, device="cpu")
    obs = np.random.default_rng(1).uniform(-5, 5, (50, model.observation_space.shape[0]))
    obs = obs.astype(np.float32)
    np.testing.assert_array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
    assert loaded.num_timesteps == model.num_timesteps == 128
    assert loaded._n_updates == model._n_updates > 0
    assert (loaded.n_steps, loaded.batch_size, loaded.clip_range(1.0)) == (32, 32, 0.2)
    _assert_same_state(loaded.policy.optimizer.state_dict(), model.policy.optimizer.state_dict())
    assert agent.model_metadata(loaded) == agent.model_metadata(model)


def _assert_same_state(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same_state(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same_state(x, y)
    else:
        assert a == b


def test_policy_kwargs_classes_round_trip_and_others_are_refused(tmp_path):
    model = agent.train_ppo(
        SMALL,
        total_timesteps=32,
        n_envs=1,
        device="cpu",
        ppo_kwargs={
            **PPO_KWARGS,
            "policy_kwargs": {"net_arch": [8], "activation_fn": torch.nn.ReLU},
        },
    )
    path = agent.save(model, tmp_path / "relu")
    loaded = agent.load(path, device="cpu")
    assert loaded.policy_kwargs["activation_fn"] is torch.nn.ReLU
    _assert_same_state(loaded.policy.state_dict(), model.policy.state_dict())
    members = _members(path)
    settings = json.loads(members["rl_scheduler.json"])
    settings["policy"]["policy_kwargs"]["activation_fn"] = {"class": "os.system"}
    members["rl_scheduler.json"] = json.dumps(settings)
    _write_members(path, members)
    with pytest.raises(checkpoint.CorruptCheckpointError, match="only classes of"):
        agent.load(path)


def test_resume_restores_the_checkpoint_state(run, tmp_path):
    model, folder = run
    again = _train(folder, total=128)  # already done: only loads the latest checkpoint
    assert again.num_timesteps == 128
    _assert_same_state(again.policy.state_dict(), model.policy.state_dict())
    _assert_same_state(again.policy.optimizer.state_dict(), model.policy.optimizer.state_dict())


def test_a_corrupt_config_json_names_the_file(tmp_path):
    (tmp_path / "config.json").write_text('{"env_id": ')
    with pytest.raises(ValueError, match="config.json.* is not valid JSON"):
        _train(tmp_path)


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    _train(tmp_path, total=128)
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["ppo_0000000064.zip", "ppo_0000000128.zip"]
    (folder / "ppo_0000000128.zip").write_bytes(b"PK\x03\x04 torn")
    with pytest.warns(RuntimeWarning, match="ppo_0000000128.zip.* cannot be read"):
        resumed = _train(tmp_path, total=128)
    assert resumed.num_timesteps == 128  # resumed at 64, trained 64 more
    assert len(resumed.rl_scheduler_episodes) > 0
    assert (folder / "ppo_0000000128.zip.corrupt").is_file()
    assert agent.load(folder / "ppo_0000000128.zip").num_timesteps == 128


def test_load_checks_trusted():
    with pytest.raises(TypeError, match="trusted must be a bool"):
        checkpoint.load_model("x.zip", trusted="yes")


def test_only_plain_ppo_hyper_parameters_are_read(run, tmp_path):
    model, _ = run
    path = agent.save(model, tmp_path / "model.zip")
    members = _members(path)
    settings = json.loads(members["rl_scheduler.json"])
    settings["ppo_kwargs"]["tensorboard_log"] = str(tmp_path / "tb")
    members["rl_scheduler.json"] = json.dumps(settings)
    _write_members(path, members)
    with pytest.raises(checkpoint.CorruptCheckpointError, match="tensorboard_log"):
        agent.load(path)


def test_a_file_without_an_algorithm_is_ppo_and_an_unknown_one_is_refused(run, tmp_path):
    model, _ = run
    path = agent.save(model, tmp_path / "model.zip")
    members = _members(path)
    settings = json.loads(members["rl_scheduler.json"])
    assert settings["algorithm"] == "PPO"
    del settings["algorithm"]  # as in the files written before the key existed
    members["rl_scheduler.json"] = json.dumps(settings)
    _write_members(path, members)
    assert type(agent.load(path, device="cpu")) is PPO
    settings["algorithm"] = "A2C"
    members["rl_scheduler.json"] = json.dumps(settings)
    _write_members(path, members)
    with pytest.raises(checkpoint.CorruptCheckpointError, match="algorithm must be one of"):
        agent.load(path)


def test_a_recurrent_agent_is_checkpointed_resumed_saved_and_loaded_weights_only(
    tmp_path, monkeypatch
):
    from sb3_contrib import RecurrentPPO

    from rl_scheduler.policy import RunPredictor

    folder = tmp_path / "lstm"
    model = _train(folder, total=64, recurrent=True)
    assert agent.latest_checkpoint(folder).name == "ppo_0000000064.zip"
    settings = json.loads(_members(agent.latest_checkpoint(folder))["rl_scheduler.json"])
    assert (settings["algorithm"], settings["policy"]["class"]) == ("RecurrentPPO", "MlpLstmPolicy")
    with pytest.raises(ValueError, match="different configuration"):
        _train(folder, total=128)  # the same folder as a feed-forward run
    resumed = _train(folder, total=128, recurrent=True)
    assert type(resumed) is RecurrentPPO and resumed.num_timesteps == 128
    assert agent.latest_checkpoint(folder).name == "ppo_0000000128.zip"

    monkeypatch.setattr(
        RecurrentPPO, "load", classmethod(lambda *a, **k: pytest.fail("unpickling load called"))
    )
    path = agent.save(resumed, tmp_path / "lstm_model")
    loaded = agent.load(path, device="cpu")
    assert type(loaded) is RecurrentPPO and loaded.num_timesteps == 128
    _assert_same_state(loaded.policy.state_dict(), resumed.policy.state_dict())
    _assert_same_state(loaded.policy.optimizer.state_dict(), resumed.policy.optimizer.state_dict())
    # the same actions through a run, the hidden state carried from one decision to the next
    obs = np.random.default_rng(2).uniform(-3, 3, (6, model.observation_space.shape[0]))
    actions = []
    for m in (resumed, loaded):
        predictor = RunPredictor(m)
        assert predictor.recurrent
        actions.append([predictor(o.astype(np.float32), deterministic=True) for o in obs])
    np.testing.assert_array_equal(np.asarray(actions[0]), np.asarray(actions[1]))
