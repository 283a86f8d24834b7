import json
import math

import pytest
import torch

from experiments import greedylr as study
from experiments.greedylr import plots as plots_greedylr
from experiments.greedylr import training
from experiments.greedylr.__main__ import main as run_study
from experiments.runner import load_results

# ---------------------------------------------------------------------------------- scoring


def test_delta_is_the_papers_absolute_difference():
    assert study.pair_delta(1.0, 1.25) == pytest.approx(0.25)  # GreedyLR lower: positive
    assert study.pair_delta(2.0, 1.0) == pytest.approx(-1.0)
    assert study.pair_delta(0.3, 0.7) == pytest.approx(-study.pair_delta(0.7, 0.3))
    # not scale-free: the same ratio gives a different delta at another loss scale
    assert study.pair_delta(1e-3, 1.2e-3) == pytest.approx(2e-4)
    assert study.pair_delta(10.0, 12.0) == pytest.approx(2.0)
    assert study.pair_delta(0.5, 0.5) == 0.0


def test_log_ratio_delta_is_scale_free_and_antisymmetric():
    assert study.log_ratio_delta(1.0, math.exp(0.05)) == pytest.approx(0.05)
    assert study.log_ratio_delta(2.0, 1.0) == pytest.approx(-math.log(2))
    assert study.log_ratio_delta(0.3, 0.7) == pytest.approx(-study.log_ratio_delta(0.7, 0.3))
    assert study.log_ratio_delta(1e-3, 1.2e-3) == pytest.approx(study.log_ratio_delta(10.0, 12.0))
    assert study.log_ratio_delta(0.0, 0.0) == 0.0 and study.log_ratio_delta(0.0, 1e-3) > 0


@pytest.mark.parametrize("delta", [study.pair_delta, study.log_ratio_delta])
def test_delta_of_diverged_runs(delta):
    assert delta(1.0, math.inf) == math.inf
    assert delta(math.nan, 1.0) == -math.inf
    assert math.isnan(delta(math.inf, math.nan))  # no winner


@pytest.mark.parametrize(
    ("delta", "label"),
    [
        (math.inf, "clearly better"),
        (0.1, "clearly better"),
        (0.0999, "slightly better"),
        (0.0, "slightly better"),
        (-1e-9, "slightly worse"),
        (-0.0999, "slightly worse"),
        (-0.1, "clearly worse"),
        (-math.inf, "clearly worse"),
    ],
)
def test_labels_follow_the_paper_threshold(delta, label):
    assert study.label_delta(delta) == label


def test_label_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        study.label_delta(math.nan)


def _result(losses, budget=10):
    """A fake run result whose evaluated loss at every 10% step is ``losses[k]``."""
    steps = study.eval_steps(budget, 10)
    assert steps == list(range(0, budget + 1, budget // 10))
    return {"eval_steps": steps, "train_eval_loss": losses, "val_loss": losses}


def _record(scheduler, losses, seed=0, optimizer="sgd", workload="mlp", **spec):
    return {
        "spec_id": f"{workload}-{optimizer}-{scheduler}-{seed}",
        "status": "ok",
        "spec": {
            "workload": workload,
            "optimizer": optimizer,
            "scheduler": scheduler,
            "seed": seed,
            "greedy": [],
            "grad_noise": 0.0,
            "loss_noise": 0.0,
        }
        | spec,
        "result": _result(losses),
    }


def test_scoring_of_hand_made_runs():
    # evaluated losses at steps 0..10; stages read index 1 (10%), 5 (50%), 10 (100%)
    greedy = [2.0, 1.0, 0.9, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2, 0.2, 0.1]
    cosine = [2.0, 1.05, 0.9, 0.8, 0.7, 0.35, 0.4, 0.3, 0.2, 0.2, 0.1]
    constant = [2.0, 0.98, 0.9, 0.8, 0.7, 0.7, 0.4, 0.3, 0.2, 0.2, math.inf]
    records = [
        _record("greedy", greedy),
        _record("cosine", cosine),
        _record("constant", constant),
        _record("constant", greedy, seed=1),  # no GreedyLR run for seed 1: no pairs
        _record("greedy", cosine, **{"greedy": [["factor", 0.5]]}),  # factor sweep: ignored
        {"spec_id": "x", "status": "error", "spec": {}, "result": None},
    ]
    pairs = study.score_pairs(records)
    assert len(pairs) == 2 * len(study.STAGES)
    by = {(p["baseline"], p["stage"]): p for p in pairs}
    assert by[("cosine", "10%")]["delta"] == pytest.approx(0.05)
    assert by[("cosine", "10%")]["delta_log"] == pytest.approx(math.log(1.05))
    assert by[("cosine", "10%")]["label"] == "slightly better"
    assert by[("cosine", "50%")]["label"] == "clearly worse"  # 0.35 - 0.5 = -0.15
    assert by[("cosine", "100%")]["label"] == "slightly better"  # a tie counts as good
    assert by[("constant", "10%")]["label"] == "slightly worse"
    assert by[("constant", "50%")]["label"] == "clearly better"
    assert by[("constant", "100%")]["delta"] == math.inf
    assert by[("constant", "50%")]["delta_initial"] == pytest.approx((0.7 - 0.5) / 2.0)
    assert by[("constant", "50%")]["delta"] == pytest.approx(0.7 - 0.5)

    agg = study.aggregate(pairs)
    overall = agg["overall"]
    assert overall["n"] == 6 and overall["as_good_or_better"] == 4
    assert overall["share"] == pytest.approx(100 * 4 / 6)
    assert overall["counts"] == {
        "clearly better": 2,
        "slightly better": 2,
        "slightly worse": 1,
        "clearly worse": 1,
    }
    assert overall["share_not_clearly_worse"] == pytest.approx(100 * 5 / 6)
    # normalised by the initial loss (2.0), cosine's -0.15 at 50% is only "slightly" worse
    assert overall["initial_counts"]["clearly worse"] == 0
    assert overall["both_diverged"] == 0
    assert agg["by_stage"]["50%"]["share"] == pytest.approx(50.0)
    assert agg["by_baseline"]["cosine"]["as_good_or_better"] == 2
    assert set(agg["by_workload"]) == {"mlp"}


def test_the_labels_depend_on_the_reading():
    small = [2.0] + [0.01] * 10  # GreedyLR at 0.01 against 0.02: ln 2, but a raw 0.01
    large = [8.0] + [5.0] * 10  # GreedyLR at 5.0 against 5.3: ln 1.06, but a raw 0.3
    records = [
        _record("greedy", small),
        _record("cosine", [2.0] + [0.02] * 10),
        _record("greedy", large, seed=1),
        _record("cosine", [8.0] + [5.3] * 10, seed=1),
    ]
    final = [p for p in study.score_pairs(records) if p["stage"] == "100%"]
    labels = {
        reading: [study.label_delta(p[reading]) for p in final]
        for reading in ("delta", "delta_log", "delta_initial")
    }
    assert labels == {
        "delta": ["slightly better", "clearly better"],
        "delta_log": ["clearly better", "slightly better"],
        "delta_initial": ["slightly better", "slightly better"],
    }
    t = study.tally(final)
    assert t["log_counts"]["clearly better"] == t["initial_counts"]["slightly better"] - 1 == 1
    assert t["share"] == t["share_log_not_clearly_worse"] == 100.0


def test_diverged_pairs():
    good = [2.0, 1.0, 0.9, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2, 0.2, 0.1]
    gone = [2.0] + [math.inf] * 10
    records = [
        _record("greedy", gone),
        _record("cosine", gone),  # both diverged: no label, left out of the shares
        _record("constant", good),  # diverged GreedyLR vs a finite baseline: clearly worse
    ]
    pairs = study.score_pairs(records)
    both = [p for p in pairs if p["baseline"] == "cosine"]
    assert {p["label"] for p in both} == {study.BOTH_DIVERGED}
    assert all(math.isnan(p["delta"]) for p in both)
    assert {p["label"] for p in pairs if p["baseline"] == "constant"} == {"clearly worse"}
    agg = study.aggregate(pairs)
    overall = agg["overall"]
    assert overall["n"] == 3 and overall["both_diverged"] == 3 and overall["share"] == 0.0
    for counts in ("counts", "log_counts", "initial_counts"):
        assert overall[counts]["clearly worse"] == 3 and sum(overall[counts].values()) == 3
    assert agg["by_stage"]["100%"]["both_diverged"] == 1
    block = {
        "label": "protocol",
        "n_runs": 3,
        "diverged_runs": 2,
        "shares": study.clustered_shares(pairs),
        "scoring": agg,
        "scoring_val": agg,
        "final_train_loss": {},
    }
    summary = {
        "tuned": block,
        "paper_protocol": block,
        "tuning": {"cells": {}, "edge_hits": []},
        "factor_sweep": {},
        "time_to_target": {},
        "robustness": {},
    }
    table = study.markdown_table(summary)
    assert "Both-diverged pairs" in table and "1 / 1 / 1 / 3" in table
    assert "0.0% [0, 0]** (n = 1 pairs in 1 clusters" in table


def test_the_run_table_rebuilds_the_pairs():
    greedy = [2.0, 1.0, 0.9, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2, 0.2, 0.1]
    cosine = [2.0, 1.05, 0.9, 0.8, 0.7, 0.4, 0.4, 0.3, 0.2, 0.2, 0.1]
    records = [
        _record("greedy", greedy),
        _record("cosine", cosine),
        _record("constant", greedy[:5] + [math.inf] * 6),
        _record("greedy", greedy, seed=1, optimizer="adam", workload="charlm"),
        _record("hd_group", cosine, seed=1, optimizer="adam", workload="charlm"),
        _record("greedy", cosine, grad_noise=1.0),  # robustness: not in the table
    ]
    table = study.run_table(records)
    assert (
        table["columns"] == "workload,optimizer,schedule,seed,loss_0%,loss_10%,loss_50%,loss_100%"
    )
    assert len(table["rows"]) == 5 and "mlp,sgd,constant,0,2,1,inf,inf" in table["rows"]
    rebuilt = study.pairs_of(study.runs_from_table(json.loads(json.dumps(table))))
    assert rebuilt == study.score_pairs(records)


def test_tally_of_nothing_is_nan():
    t = study.tally([])
    assert t["n"] == 0 and math.isnan(t["share"])


def test_loss_at_reads_the_stage_step():
    result = {"eval_steps": study.eval_steps(30, 4), "train_eval_loss": None}
    steps = result["eval_steps"]
    assert {3, 15, 30} <= set(steps)  # 10%, 50%, 100% are always evaluated
    result["train_eval_loss"] = [float(s) for s in steps]
    assert [study.loss_at(result, f) for f in study.STAGES] == [3.0, 15.0, 30.0]


# ---------------------------------------------------------------------------------- specs and runs


def _spec(scheduler="greedy", optimizer="sgd", workload="quadratic", **kw):
    kw.setdefault("budget", 30)
    return study.GreedyRunSpec(
        workload,
        optimizer,
        scheduler,
        kw.pop("seed", 0),
        lr=study.INITIAL_LR[workload][optimizer],
        **kw,
    )


def test_specs_are_validated():
    with pytest.raises(ValueError, match="scheduler"):
        study.check_spec(_spec("sls", "adam"))
    with pytest.raises(ValueError, match="workload"):
        study.check_spec(study.GreedyRunSpec("imagenet", "sgd", "cosine", 0, 10, 0.1))
    with pytest.raises(ValueError, match="GreedyLR option"):
        study.check_spec(_spec(greedy=(("speed", 2),)))
    with pytest.raises(ValueError, match="grad_noise"):
        study.check_spec(_spec("sls", grad_noise=1.0))


def test_the_paper_protocol_shares_lr_and_seeds():
    specs = study.main_specs(study.FULL)
    groups = {}
    for s in specs:
        assert s.hypergrad_lr is None
        if s.scheduler in study.config.RATE_FREE:  # their own default: lr 1 (Prodigy: d_coef 1)
            assert s.lr == 1.0 and dict(s.options).get("d_coef", 1.0) == 1.0
            continue
        groups.setdefault((s.workload, s.optimizer), set()).add((s.lr, s.budget))
        assert s.lr == study.INITIAL_LR[s.workload][s.optimizer]
    assert all(len(v) == 1 for v in groups.values())
    assert len(study.FULL.seeds) >= 3
    opts = study.FULL.optimizers
    per_opt = {o: len(study.SCHEDULES) + len(study.ADAPTIVE.get(o, ())) for o in opts}
    assert len(specs) == len(study.WORKLOADS) * len(study.FULL.seeds) * sum(per_opt.values())
    assert len(specs) == len(study.cells(study.FULL)) * len(study.FULL.seeds)
    quick = study.main_specs(study.QUICK)
    assert {s.scheduler for s in quick} == set(study.SCHEDULES) | {
        "hd_parameter",
        "hd_group",
        "sls",
        "schedulefree",
        "prodigy",
        "dadaptation",
    }


@pytest.mark.parametrize(
    ("scheduler", "expected"),
    [
        ("constant", lambda k: 1.0),
        ("warmup", lambda k: min(1.0, (k + 1) / 2)),  # warmup over budget / 10 = 2 steps
        ("linear", lambda k: 1 - k / 20),
        ("polynomial", lambda k: (1 - k / 20) ** 2),
        ("step", lambda k: 0.1 ** (k // 7)),  # every ceil(20 / 3) = 7 steps
        ("exponential", lambda k: 0.01 ** (k / 20)),
        ("cosine", lambda k: 0.5 * (1 + math.cos(math.pi * k / 20))),
    ],
)
def test_classic_schedules_follow_their_closed_forms(scheduler, expected):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    stepper = study.make_stepper(scheduler, opt, budget=20)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        stepper(1.0)
    assert lrs == pytest.approx([expected(k) for k in range(20)], abs=1e-12)


def test_hypergradient_granularities_are_per_weight_and_per_layer():
    mlp = study.make_workload("mlp", 0).model  # two Linear layers
    per_layer = study.make_optimizer("sgd", "hd_group", mlp, 0.1, 10)
    assert per_layer.lr_granularity == "group" and len(per_layer.param_groups) == 2
    assert [len(g["params"]) for g in per_layer.param_groups] == [2, 2]  # weight and bias
    per_weight = study.make_optimizer("adam", "hd_parameter", mlp, 1e-3, 10)
    assert per_weight.lr_granularity == "element" and len(per_weight.param_groups) == 1
    cnn = study.make_workload("cnn", 0).model
    assert len(study.make_optimizer("momentum", "hd_group", cnn, 0.01, 10).param_groups) == 3
    # the quadratic has one tensor, so one group: per-group is global there
    quadratic = study.make_workload("quadratic", 0).model
    assert len(study.make_optimizer("sgd", "hd_group", quadratic, 1.0, 10).param_groups) == 1
    # every other schedule keeps the model in one param group
    for scheduler in (*study.SCHEDULES, "sls"):
        assert len(study.make_optimizer("sgd", scheduler, mlp, 0.1, 10).param_groups) == 1


def test_per_weight_and_per_layer_rates_differ():
    r = {s: study.run_greedy(_spec(s, workload="mlp", budget=30)) for s in study.HD_GRANULARITY}
    assert r["hd_parameter"]["lr"] != r["hd_group"]["lr"]
    assert r["hd_parameter"]["train_loss"] != r["hd_group"]["train_loss"]


def test_recorded_hypergradient_rate_is_the_mean_over_weights():
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    )
    opt = study.make_optimizer("sgd", "hd_group", model, 1.0, 10)
    opt.param_groups[1]["lr"] = 4.0  # 2 weights at rate 1, 1 weight at rate 4
    assert training._current_lr(opt, "hd_group") == pytest.approx((2 * 1.0 + 4.0) / 3)


def test_greedy_raises_the_rate_while_the_loss_falls():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    stepper = study.make_stepper("greedy", opt, budget=100, greedy={"smooth": False})
    for k in range(11):
        stepper(10.0 - k)
    assert opt.param_groups[0]["lr"] == pytest.approx(1 / study.GREEDY_CONFIG["factor"])


def test_a_run_is_deterministic_and_complete():
    spec = _spec("greedy", budget=40)
    a, b = study.run_greedy(spec), study.run_greedy(spec)
    for key in ("train_loss", "lr", "train_eval_loss", "val_loss"):
        assert a[key] == b[key]
    assert len(a["train_loss"]) == len(a["lr"]) == 40
    assert len(a["train_eval_loss"]) == len(a["eval_steps"]) and a["eval_steps"][-1] == 40
    assert not a["diverged"] and a["train_eval_loss"][-1] < a["train_eval_loss"][0]


@pytest.mark.parametrize(
    ("optimizer", "scheduler"),
    [("sgd", "hd_parameter"), ("momentum", "hd_group"), ("adam", "hd_group"), ("sgd", "sls")],
)
def test_adaptive_optimizers_run_and_move_their_rate(optimizer, scheduler):
    r = study.run_greedy(_spec(scheduler, optimizer, budget=30))
    assert len(r["lr"]) == 30 and all(math.isfinite(v) for v in r["train_eval_loss"])
    assert max(r["lr"]) != min(r["lr"])


def test_loss_noise_only_reaches_the_scheduler():
    clean_cos = study.run_greedy(_spec("cosine", budget=40))
    noisy_cos = study.run_greedy(_spec("cosine", budget=40, loss_noise=0.5))
    assert noisy_cos["train_loss"] == clean_cos["train_loss"]  # cosine ignores the loss
    clean = study.run_greedy(_spec("greedy", budget=60, greedy=(("smooth", False),)))
    noisy = study.run_greedy(
        _spec("greedy", budget=60, greedy=(("smooth", False),), loss_noise=0.5)
    )
    assert noisy["lr"] != clean["lr"] and noisy["noise"]["loss_sigma"] > 0


def test_gradient_noise_perturbs_training():
    clean = study.run_greedy(_spec("cosine", budget=40))
    noisy = study.run_greedy(_spec("cosine", budget=40, grad_noise=1.0))
    assert noisy["train_eval_loss"][-1] != clean["train_eval_loss"][-1]
    assert noisy["lr"] == clean["lr"] and noisy["noise"]["grad_sigma"] > 0


def test_divergence_is_detected():
    spec = study.GreedyRunSpec("quadratic", "sgd", "constant", 0, 50, lr=5.0)
    r = study.run_greedy(spec)
    assert r["diverged"] and r["train_eval_loss"][-1] == math.inf and len(r["train_loss"]) < 50


# ---------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_quick_study_end_to_end_and_resume(tmp_path, monkeypatch):
    args = ["--quick", "--jobs", "2", "--quiet", "--out", str(tmp_path)]
    summary = run_study(args)
    sweeps = ("tuning.jsonl", "main.jsonl", "factor.jsonl", "robustness.jsonl")
    figures = (
        "lr_schedules.png",
        "hypergradient.png",
        "factor_sweep.png",
        "robustness.png",
        "scoring.png",
        "time_to_target.png",
    )
    for name in sweeps + figures + ("summary.json", "table.md"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert not summary["failed_runs"]
    n_main = len(study.main_specs(study.QUICK))
    assert summary["n_runs"]["paper_protocol"] == summary["n_runs"]["tuned"] == n_main
    assert summary["n_runs"]["tuning"] >= 2 * n_main  # every cell's grid, plus widening
    assert len(load_results(tmp_path / "main.jsonl")) <= 2 * n_main  # shared runs run once
    tuning = summary["tuning"]
    assert any(t["axes"]["multiplier"]["rounds"] for t in tuning["cells"].values())
    assert any("beta" in t["axes"] for t in tuning["cells"].values())
    claims = {r["claim"]: r for r in summary["headline"]}
    for claim in ("greedylr_tuned_as_good_or_better", "greedylr_paper_protocol_as_good_or_better"):
        r = claims[claim]
        assert 0 <= r["ci95"][0] <= r["value"] <= r["ci95"][1] <= 1
        assert r["stage"] == "100%" and r["n_clusters"] == len(study.QUICK.workloads)
    assert {
        f"greedylr_tuned_vs_{p}" for p in ("cosine", "schedulefree", "prodigy", "dadaptation")
    } <= set(claims)
    assert any("warmup" in t["axes"] for t in tuning["cells"].values())
    for family, block in summary["time_to_target"].items():
        assert family in study.QUICK.optimizers and set(block["targets"]) == set(
            study.QUICK.workloads
        )
        assert (
            set(block["profile_steps"]["methods"])
            == set(block["methods"])
            >= {"greedy", "schedulefree"}
        )
        assert block["readings"]["time_to_target_steps"] in block["methods"]
    assert "## Time to target" in (tmp_path / "table.md").read_text()
    for protocol in ("tuned", "paper_protocol"):
        sc = summary[protocol]["scoring"]
        assert sc["overall"]["n"] == sum(t["n"] for t in sc["by_stage"].values()) > 0
        assert set(sc["by_baseline"]) == set(study.SCHEDULES) - {"greedy"} | {
            "hd_parameter",
            "hd_group",
            "sls",
            "schedulefree",
            "prodigy",
            "dadaptation",
        }
        shares = summary[protocol]["shares"]
        assert set(shares["by_workload"]) == set(study.QUICK.workloads)
    table = (tmp_path / "table.md").read_text()
    assert table == study.markdown_table(summary) and "86.73%" in table
    assert table.index("## Tuned protocol") < table.index("## Paper protocol")
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["headline"] == summary["headline"]
    assert set(saved["figures"]) == set(figures)
    # the committed summary alone rebuilds every pair and its label
    for protocol in ("tuned", "paper_protocol"):
        block = saved[protocol]
        rebuilt = study.aggregate(study.pairs_of(study.runs_from_table(block["runs"])))
        assert rebuilt["by_baseline"] == block["scoring"]["by_baseline"]
        assert len(block["runs"]["rows"]) == n_main

    # a line an earlier configuration left in main.jsonl is in no table and no figure
    stale = json.loads((tmp_path / "main.jsonl").read_text().splitlines()[0])
    stale["spec"]["budget"] += 1
    stale["spec_id"] = "0" * len(stale["spec_id"])
    with open(tmp_path / "main.jsonl", "a") as f:
        f.write(json.dumps(stale) + "\n")
    drawn = []
    figures_of = plots_greedylr.greedylr_figures
    monkeypatch.setattr(
        plots_greedylr, "greedylr_figures", lambda *a: drawn.append(a[0]) or figures_of(*a)
    )
    lines = {f: len((tmp_path / f).read_text().splitlines()) for f in sweeps}
    again = run_study(args)
    assert {f: len((tmp_path / f).read_text().splitlines()) for f in sweeps} == lines
    assert again["tuned"]["scoring"] == summary["tuned"]["scoring"]
    assert again["headline"] == summary["headline"]
    assert len(drawn[0]) == n_main < len(load_results(tmp_path / "main.jsonl"))
