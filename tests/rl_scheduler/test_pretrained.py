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


STRESS = {  # far outside the training cells (60x40 rank 5, digits 300 rows rank 8; noise 0-5)
    "rank 1": (lambda: nmf.datasets.synthetic(100, 80, 1, seed=2), 1, 1.0, None),
    "wide, rank 40": (lambda: nmf.datasets.synthetic(50, 1000, 40, seed=6), 40, 0.0, None),
    "data x 1e4": (lambda: nmf.datasets.synthetic(80, 60, 4, seed=8) * 1e4, 4, 0.0, None),
    "data x 0.01": (lambda: nmf.datasets.digits()[:400] * 0.01, 8, 0.0, None),
    "noise 50": (lambda: nmf.datasets.digits()[:400], 8, 50.0, None),
    "5 of 625 columns": (lambda: nmf.datasets.faces(), 10, 0.0, 5),
    "constant matrix": (lambda: np.ones((60, 40)), 3, 0.5, None),
}


@pytest.mark.parametrize(
    "n_steps, clip, shield",
    # trained with the update clip, which bounds its steps above the bound; without a clip, the
    # shield (rates capped at 0.9 x the bound) or the descent guard alone takes that role
    [(300, 0.1, False), (1000, 0.1, False), (1000, None, True), (1000, None, False)],
)
@pytest.mark.parametrize("case", sorted(STRESS))
def test_the_nmf_agent_never_diverges_far_from_its_training_problems(case, n_steps, clip, shield):
    make, rank, noise, batch = STRESS[case]
    problem = nmf.StochasticNMF(make(), rank=rank, noise_std=noise, batch_size=batch, seed=0)
    schedule = pretrained.load("nmf", max_actions=n_steps // 10, shield=shield)
    traj = nmf.run_sgd(problem, schedule, n_steps, clip=clip, seed=0)
    assert not traj.diverged
    assert np.isfinite(traj.final_loss) and traj.final_loss < traj.losses[0]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["data x 1e4", "wide, rank 40"])
def test_without_clip_or_shield_the_guard_is_what_keeps_the_agent_below_its_start(case):
    make, rank, noise, batch = STRESS[case]
    problem = nmf.StochasticNMF(make(), rank=rank, noise_std=noise, batch_size=batch, seed=0)
    ratios = {}
    for guard in (True, False):
        schedule = pretrained.load("nmf", max_actions=100, guard=guard)
        traj = nmf.run_sgd(problem, schedule, 1000, seed=0)
        ratios[guard] = traj.final_loss / traj.losses[0]
    assert ratios[True] < 1 < ratios[False]


TIGHT_BOUND = {  # synthetic data of higher rank than the training cells: the bound is tight there
    "99x43, rank 33": (99, 43, 20, 33),
    "118x228, rank 21": (118, 228, 10, 21),
    "66x62, rank 30": (66, 62, 20, 30),
}


@pytest.mark.parametrize("case", sorted(TIGHT_BOUND))
def test_the_nmf_agent_follows_the_bound_where_its_hot_rates_raise_the_loss(case):
    # Without its descent guard the shipped agent kept rates above the bound on these problems
    # and ended 150-180 times above FollowBound(0.9)'s loss on the first two (1.2 on the third).
    m, n, data_rank, rank = TIGHT_BOUND[case]
    problem = nmf.StochasticNMF(nmf.datasets.synthetic(m, n, data_rank, seed=3), rank, seed=0)
    schedule = pretrained.load("nmf")
    assert schedule.guard is not None  # from the manifest's "schedule"
    traj = nmf.run_sgd(problem, schedule, 300, clip=0.1, seed=0)
    follow = nmf.run_sgd(problem, nmf.schedules.FollowBound(0.9), 300, clip=0.1, seed=0)
    assert traj.final_loss < follow.final_loss and schedule.guard_trips > 0


def test_load_applies_the_manifest_settings_unless_overridden():
    assert pretrained.info("nmf")["schedule"] == {"guard": True}
    assert pretrained.load("nmf", guard=False).guard is None
    assert "schedule" not in pretrained.info("vision")  # the DNN agents run as trained


def _readme_blocks_using_pretrained_agents() -> list[str]:
    from tests.test_user_guide import ROOT, sections

    blocks = sections((ROOT / "README.md").read_text()).values()
    return [b.code for group in blocks for b in group if "pretrained.load(" in b.code]


@pytest.mark.parametrize("code", _readme_blocks_using_pretrained_agents())
def test_the_readme_examples_with_pretrained_agents_run(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    schedule = namespace.get("schedule")
    if schedule is not None:  # the torch loop: one rate per step, finite and positive
        assert len(schedule.lrs) == 20 and all(np.isfinite(schedule.lrs)) and min(schedule.lrs) > 0
    else:
        assert not namespace["traj"].diverged


def test_readme_has_an_nmf_and_a_torch_example_with_pretrained_agents():
    blocks = _readme_blocks_using_pretrained_agents()
    assert any("nmf.run_sgd" in b for b in blocks) and any("torch.optim" in b for b in blocks)
