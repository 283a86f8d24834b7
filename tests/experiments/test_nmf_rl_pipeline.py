import json
import math

import numpy as np
import pytest

from experiments import nmf as pipeline
from experiments.nmf import report
from experiments.nmf.__main__ import main as run_study
from nmf.datasets import NMFInstance


def test_train_and_held_out_instances_are_disjoint_and_cover_every_cell():
    for config in (pipeline.RL_FULL, pipeline.RL_QUICK):
        train, test = config.instances("train"), config.instances("test")
        assert not {i.seed for i in train} & {i.seed for i in test}
        cells = {pipeline.cell_name(i) for i in test}
        assert len(cells) == len(config.datasets) * len(config.noise_levels)
        per_cell = config.n_test // len(cells)
        assert all(sum(pipeline.cell_name(i) == c for i in test) == per_cell for c in cells)
    assert pipeline.RL_FULL.n_test // 6 >= 5  # at least 5 held-out instances per cell


def test_step_decay_gets_the_compute_of_one_ppo_training_run():
    cfg = report._rl_config_dict(pipeline.RL_FULL)
    step_cost, agent_cost = cfg["tuning_cost_sgd_steps"]["step"], cfg["agent_cost_sgd_steps"]
    assert 0.9 <= step_cost / agent_cost <= 1.1
    grid = pipeline.RL_FULL.grid()
    assert {len(v) for k, v in grid.items() if k != "step"} == {pipeline.RL_FULL.budget}


def test_one_agent_per_variant_and_seed_with_the_variant_settings():
    specs = pipeline.agent_specs(pipeline.RL_FULL)
    headline, *others = pipeline.RL_FULL.variants
    n_seeds = len(pipeline.RL_FULL.ppo_seeds)
    assert len(specs) == n_seeds + len(others) * min(n_seeds, pipeline.ABLATION_PPO_SEEDS)
    for spec in specs:
        env_kwargs = dict(spec.env_kwargs)
        assert env_kwargs["split"] == "train"
        for key, value in pipeline.VARIANTS[spec.variant].items():
            assert env_kwargs[key] == value
    learned = dict(specs[0].env_kwargs)
    assert learned["bound_range"] == (-6.0, 2.0) and learned["shield"] is False
    # PPO settings per variant: the headline's lower exploration noise, none for the others
    for spec in specs:
        assert pipeline.thaw_ppo(spec.ppo_options) == pipeline.VARIANT_PPO.get(spec.variant, {})
    assert headline == "learned_relative_40epochs"
    assert pipeline.thaw_ppo(specs[0].ppo_options)["n_epochs"] == 40
    # the headline differs from the previous one (now --ablation) in PPO's updates only
    assert pipeline.VARIANTS[headline] == pipeline.VARIANTS["learned_relative"]
    assert "learned_relative" in pipeline.ABLATIONS
    with pytest.raises(ValueError, match="variants"):
        pipeline.agent_specs(
            pipeline.RLConfig(**{**pipeline.RL_QUICK.__dict__, "variants": ("x",)})
        )


def test_steps_above_bound_counts_rates_above_their_own_bound():
    problem = NMFInstance("synthetic", rank=2, seed=3, size=(8, 6)).build()
    from nmf.sgd import Trajectory

    traj = Trajectory(losses=[4.0, 3.0, 2.0, 1.0], lrs=[0.1, 0.3, 0.2], bounds=[0.2, 0.2, 0.2])
    result = pipeline.trajectory_result(problem, traj, curves=False)
    assert result["steps_above_bound"] == 1  # 0.2 is at the bound, not above it
    traj.bounds = [math.nan] * 3
    assert pipeline.trajectory_result(problem, traj, curves=False)["steps_above_bound"] is None


def _record(schedule, seed, error, *, ppo_seed=None, dataset="digits", noise=0.0):
    instance = {"dataset": dataset, "noise_std": noise, "seed": seed}
    curve = [1.0, 2 * error, error]
    result = {
        "final_rel_error": error,
        "rel_errors": curve,
        "lrs": [0.1, 0.1],
        "bounds": [1.0, 1.0],
        "steps_above_bound": 0,
        "diverged": False,
        "wall_time_s": 1.0,
    }
    if ppo_seed is None:
        spec = {"instance": instance, "schedule": schedule}
    else:
        spec = {"instance": instance, "agent": {"variant": schedule, "seed": ppo_seed}}
    return {"status": "ok", "spec": spec, "result": result}


def test_rl_statistics_by_hand():
    config = pipeline.RLConfig(**{**pipeline.RL_QUICK.__dict__, "variants": ("learned",)})
    names = list(config.grid())
    # Two instances; every tuned schedule ends at 0.5. The agent (two PPO seeds) ends at
    # 0.4 / 0.6 on instance 0 and 0.4 / 0.4 on instance 1: wins 1/2 and 2/2.
    baseline = [_record(n, s, 0.5) for n in names for s in (0, 1)]
    learned = [
        _record("learned", 0, 0.4, ppo_seed=0),
        _record("learned", 1, 0.4, ppo_seed=0),
        _record("learned", 0, 0.6, ppo_seed=1),
        _record("learned", 1, 0.4, ppo_seed=1),
    ]
    config = pipeline.RLConfig(**{**config.__dict__, "ppo_seeds": (0, 1)})
    summary = pipeline.summarise_rl(config, {}, [], baseline, learned)
    overall = summary["overall"]["learned"]["step"]
    assert overall["win_rate_per_ppo_seed"] == [1.0, 0.5]
    assert overall["win_rate"]["mean"] == pytest.approx(0.75)
    # PoI: instance 0 compares 0.4 and 0.6 with 0.5 (1/2), instance 1 wins both (1).
    poi = overall["probability_of_improvement"]
    assert poi["value"] == pytest.approx(0.75) and poi["n_runs"] == [2, 1]
    assert poi["ci95"][0] <= 0.75 <= poi["ci95"][1]
    ratio = math.exp(np.mean(np.log([0.8, 1.2, 0.8, 0.8])))
    assert overall["geomean_error_ratio"]["mean"] == pytest.approx(ratio)
    # Wilcoxon on per-instance means (0.5, 0.4) against (0.5, 0.5): one non-zero difference.
    assert overall["paired_test"]["p_value"] == pytest.approx(1.0)
    claims = [h["claim"] for h in summary["headline"]]
    assert claims == [f"learned_vs_{b}" for b in names]
    step = summary["headline"][claims.index("learned_vs_step")]
    assert step["metric"] == "probability_of_improvement" and step["value"] == pytest.approx(0.75)
    assert (step["ppo_seeds"], step["n_instances"], step["split"]) == (2, 2, "held-out")
    assert step["p_value"] == pytest.approx(1.0) and step["significant"] is False
    # IQM of final error / best error on the instance (0.4 on both): baselines 1.25 everywhere.
    assert summary["iqm_normalised"]["step"]["value"] == pytest.approx(1.25)
    assert summary["iqm_normalised"]["learned"]["value"] == pytest.approx(1.0)
    row = summary["cells"]["digits/noise=0"]["schedules"]["learned"]
    assert row["win_rate_vs_step"] == pytest.approx(0.75)
    assert row["final_rel_error"]["mean"] == pytest.approx(np.mean([0.4, 0.6, 0.4, 0.4]))
    assert row["final_rel_error"]["n"] == 2 and row["final_rel_error"]["n_runs"] == 2
    cell = summary["cells"]["digits/noise=0"]["comparisons"]["learned"]["step"]
    assert cell["probability_of_improvement"]["value"] == pytest.approx(0.75)
    table = pipeline.rl_table(summary)
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert "learned_vs_follow_bound" in table and not any("**" in r for r in rows)  # no "best"


def test_the_ablation_trains_on_fewer_ppo_seeds():
    config = pipeline.RLConfig(
        **{
            **pipeline.RL_FULL.__dict__,
            "variants": (*pipeline.RL_FULL.variants, *pipeline.ABLATIONS),
        }
    )
    seeds = [(s.variant, s.seed) for s in pipeline.agent_specs(config)]
    headline = pipeline.RL_FULL.variants[0]
    assert [v for v, _ in seeds].count(headline) == len(pipeline.RL_FULL.ppo_seeds) >= 5
    assert len(set(config.variants)) == len(config.variants)  # no variant twice
    for ablation in pipeline.ABLATIONS:
        assert [s for v, s in seeds if v == ablation] == [0, 1, 2]
    assert len(pipeline.RL_QUICK.ppo_seeds) >= 2  # the bootstrap over seeds runs in --quick


class _Beside:
    """Stands in for the schedules' tuning that the rl stage runs beside its last PPO wave."""

    def __init__(self):
        self.calls = []

    def start(self):
        self.calls.append("start")

    def finish(self):
        self.calls.append("finish")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


@pytest.mark.slow
def test_quick_rl_reproduction_end_to_end_and_resume(tmp_path, monkeypatch):
    from experiments.nmf import __main__ as study

    beside = _Beside()
    monkeypatch.setattr(study, "_tuning_beside_ppo", lambda *args: beside)
    monkeypatch.setattr(study, "run_schedules", lambda args, out: {})
    argv = ["--quick", "--jobs", "1", "--quiet", "--stages", "rl", "--out", str(tmp_path)]
    summary = run_study(argv)["rl"]
    assert beside.calls == ["finish"]  # one agent at a time: no partial wave to start it beside
    tmp_path = tmp_path / "rl"
    for name in (
        "agents.jsonl",
        "tune.jsonl",
        "eval.jsonl",
        "eval_learned.jsonl",
        "summary.json",
        "table.md",
        "loss_curves.png",
        "agent_lrs.png",
        "training_curve.png",
        "benchmark.png",
        "time_to_target.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    config = pipeline.RL_QUICK
    assert len(summary["cells"]) == len(config.datasets) * len(config.noise_levels)
    per_cell = config.n_test // len(summary["cells"])
    for block in summary["cells"].values():
        rows = block["schedules"]
        assert set(rows) == set(config.grid()) | set(config.variants)
        for row in rows.values():
            assert row["final_rel_error"]["n"] == per_cell
            assert 0 < row["final_rel_error"]["mean"] < 1
        assert rows[config.variants[0]]["diverged"] == 0
        guarded = {name for name, row in rows.items() if "guard_trips_per_run" in row}
        assert guarded == {v for v in config.variants if pipeline.VARIANT_SCHEDULE.get(v)}
        assert all(0 <= rows[v]["guard_trips_per_run"] <= config.max_actions for v in guarded)
    for block in summary["overall"].values():
        assert 0 <= block["step"]["win_rate"]["mean"] <= 1
    reach = summary["time_to_target"]
    assert len(reach["problems"]) == config.n_test
    for unit in ("steps", "seconds"):
        profiles = reach["profiles"][unit]
        assert set(profiles["methods"]) == set(config.grid()) | set(config.variants)
        assert all(0 <= m["score"] <= 1 for m in profiles["methods"].values())
    assert reach["readings"]["final_error"]["best"] in summary["iqm_normalised"]
    claims = {h["claim"]: h for h in summary["headline"]}
    ood = claims.pop("pretrained_nmf_vs_follow_bound_ood")
    assert set(claims) == {f"{config.variants[0]}_vs_{b}" for b in config.grid()}
    for h in claims.values():
        assert h["ppo_seeds"] == len(config.ppo_seeds) and h["n_instances"] == config.n_test
        assert h["ci95"][0] <= h["value"] <= h["ci95"][1] and 0 <= h["p_value"] <= 1
    # the shipped agent's out-of-distribution check and the files a reference run would ship
    pretrained = summary["pretrained"]
    assert ood == pretrained["headline"] and ood["split"] == "out-of-distribution"
    assert len(pretrained["final_rel_error"]["pretrained"]) == ood["n"] == len(pretrained["labels"])
    assert pretrained["diverged"] == {"pretrained": 0, "follow_bound_0.9": 0}
    shipped = tmp_path / "pretrained" / "nmf"
    manifest = json.loads((shipped / "manifest.json").read_text())
    assert manifest["variant"] == config.variants[0] and (shipped / "model.zip").stat().st_size
    assert manifest["schedule"] == pipeline.VARIANT_SCHEDULE.get(config.variants[0], {})
    assert len(manifest["evaluation"]["instances"]) == len(summary["cells"])
    # every tuned schedule of every cell reports its widened axes and any edge it still hits
    for cell in summary["cells"]:
        assert set(summary["tuning"][cell]) == set(config.grid())
    assert all(h["edge"] in ("low", "high") for h in summary["edge_hits"])
    assert any(t["rounds"] > 0 for by in summary["tuning"].values() for t in by.values())
    assert all(rate > 0 for rate in summary["env_steps_per_s"].values())
    assert (tmp_path / "table.md").read_text() == pipeline.rl_table(summary)
    assert (
        json.loads((tmp_path / "summary.json").read_text())["cells"].keys()
        == summary["cells"].keys()
    )

    files = ("agents.jsonl", "tune.jsonl", "eval.jsonl", "eval_learned.jsonl", "ood.jsonl")
    before = {f: (tmp_path / f).read_text() for f in files}
    again = run_study(argv)["rl"]
    assert {f: (tmp_path / f).read_text() for f in files} == before  # all resumed, nothing rerun
    assert again["overall"] == summary["overall"]


def test_before_last_wave_is_called_once_the_full_waves_have_trained(tmp_path, monkeypatch):
    from dataclasses import replace

    from experiments.nmf import rl

    trained: list[int] = []

    def fake_train_agent(spec, *, root, progress=False):
        trained.append(spec.seed)
        return {"model": "m.zip"}

    monkeypatch.setattr(rl, "train_agent", fake_train_agent)
    calls: list[list[int]] = []

    def mark():
        calls.append(list(trained))

    config = replace(pipeline.RL_QUICK, ppo_seeds=(0, 1, 2, 3, 4))
    rl.train(config, tmp_path / "odd", wave=2, before_last_wave=mark, quiet=True)
    assert calls == [[0, 1, 2, 3]] and trained == [0, 1, 2, 3, 4]  # the last wave: seed 4 alone
    trained.clear()
    rl.train(config, tmp_path / "odd", wave=2, before_last_wave=mark, quiet=True)
    assert trained == [] and len(calls) == 2  # resumed: nothing trains, the call still comes
    config = replace(config, ppo_seeds=(0, 1, 2, 3))
    rl.train(config, tmp_path / "even", wave=2, before_last_wave=mark, quiet=True)
    assert len(calls) == 2  # whole waves: no core is left idle, no call


@pytest.mark.slow
def test_the_schedules_tuning_runs_beside_the_last_ppo_wave_and_ends_before_held_out_runs(
    tmp_path, monkeypatch
):
    from experiments.nmf import __main__ as study

    seen = []

    def run_rl(args, out, *, beside=None):
        assert beside is not None and beside.process is None  # --jobs 2, no backend: offered
        beside.start()  # what rl.train does before a partial last wave
        assert beside.finish() == 0  # what the rl stage does before its held-out runs
        seen.append((tmp_path / "tune.jsonl").read_text())
        assert not (tmp_path / "eval.jsonl").exists()  # the held-out runs come after rl
        return {}

    monkeypatch.setattr(study, "run_rl", run_rl)
    argv = ["--quick", "--jobs", "2", "--quiet", "--stages", "schedules,rl", "--out", str(tmp_path)]
    done = study.main(argv)
    assert set(done) == {"schedules", "rl"} and done["schedules"]["jobs"] == 2
    assert (tmp_path / "tune.jsonl").read_text() == seen[0]  # the child's tuning, resumed
    # the same tuning as the stage run alone, here in one process
    alone = study.main([*argv[:-1], str(tmp_path / "alone"), "--stages", "schedules"])
    assert alone["schedules"]["settings"].keys() == done["schedules"]["settings"].keys()
    for cell, block in alone["schedules"]["settings"].items():
        for name, row in block["schedules"].items():
            got = done["schedules"]["settings"][cell]["schedules"][name]
            assert got["params"] == row["params"]
            assert got["final_rel_error"] == row["final_rel_error"]
