"""The GreedyLR study's two protocols: tuning on tuning seeds, clustered shares, headline."""

import dataclasses
import math

import pytest
import torch

from experiments import greedylr as study
from experiments.greedylr import training
from experiments.greedylr.report import headline, summarise_protocol
from experiments.runner import spec_id


def _fake_result(final, budget):
    steps = study.eval_steps(budget, 1)
    return {
        "eval_steps": steps,
        "train_eval_loss": [1.0] * (len(steps) - 1) + [final],
        "val_loss": [1.0] * (len(steps) - 1) + [final],
        "diverged": not math.isfinite(final),
    }


def _fake_sweep(loss, calls):
    """A sweep whose runs' final loss is ``loss(spec)``; records every batch of specs."""

    def sweep(specs):
        calls.append(list(specs))
        return [
            {
                "spec_id": spec_id(s),
                "status": "ok",
                "spec": dataclasses.asdict(s),
                "result": _fake_result(loss(s), s.budget),
            }
            for s in specs
        ]

    return sweep


def _config(**kw):
    kw = {
        "budgets": dict.fromkeys(study.WORKLOADS, 20),
        "optimizers": ("sgd",),
        "schedules": ("constant", "greedy"),
        "seeds": (0, 1),
        "tune_seeds": (7,),
        "multipliers": (1.0, 10.0),
        "beta_multipliers": (1.0, 10.0),
        "max_rounds": 3,
        "workloads": ("mlp",),
    } | kw
    return study.Config(**kw)


def test_tuning_widens_to_an_interior_optimum_on_the_tuning_seeds_only():
    config = _config()
    base = study.INITIAL_LR["mlp"]["sgd"]
    best = {
        "constant": 100.0,
        "greedy": 1.0,
        "hd_parameter": 10.0,
        "hd_group": 10.0,
        "sls": 0.1,
        "schedulefree": 10.0,
        "dadaptation": 10.0,  # x its own estimate: 3.16 -> 10 -> 31.6 on FREE_MULTIPLIERS
    }

    def loss(s):
        # a bowl in log(multiplier) around each schedule's best; beta's best is x100,
        # Schedule-Free's warm-up's best 0.05 of the budget
        m = s.lr if s.scheduler == "dadaptation" else s.lr / base
        beta = (s.hypergrad_lr or study.config.HYPERGRAD_LR["sgd"]) / 1e-3
        warmup = dict(s.options).get("warmup_fraction", 0.05)
        off = math.log10(m / best[s.scheduler]) ** 2 + 0.1 * math.log10(beta / 100) ** 2
        return 1.0 + off + 0.1 * math.log10(warmup / 0.05) ** 2

    calls = []
    tuned = study.tune(config, _fake_sweep(loss, calls))
    assert {s.seed for batch in calls for s in batch} == {7}
    assert all(s.n_evals == 1 for batch in calls for s in batch)
    for cell, t in tuned.items():
        assert t["multiplier"] == pytest.approx(best[cell[2]]), cell
        axis = t["axes"]["multiplier"]
        assert axis["edge"] is None and min(axis["grid"]) < t["multiplier"] < max(axis["grid"])
    assert tuned[("mlp", "sgd", "constant")]["axes"]["multiplier"]["rounds"] == 2  # 100, 1000
    for name in ("hd_parameter", "hd_group"):
        t = tuned[("mlp", "sgd", name)]
        assert t["beta"] == pytest.approx(100.0) and t["axes"]["beta"]["edge"] is None
        assert t["hypergrad_lr"] == pytest.approx(0.1)
    assert tuned[("mlp", "sgd", "greedy")]["beta"] is None
    sf = tuned[("mlp", "sgd", "schedulefree")]
    assert sf["warmup"] == pytest.approx(0.05) and sf["axes"]["warmup"]["edge"] is None
    assert sf["options"] == {"warmup_fraction": pytest.approx(0.05)} and sf["beta"] is None
    da = tuned[("mlp", "sgd", "dadaptation")]
    assert da["lr"] == pytest.approx(10.0) and da["axes"]["multiplier"]["grid"][0] == 0.1
    # beta x1 at the tuned rate is the rate axis's own run (the same spec: the sweep's results
    # file returns it without running it again)
    for name in ("hd_parameter", "hd_group"):
        axes = tuned[("mlp", "sgd", name)]["axes"]
        x1 = axes["beta"]["scores"][axes["beta"]["grid"].index(1.0)]
        assert x1 == min(axes["multiplier"]["scores"])
    # held-out runs: tuned settings on the held-out seeds only
    held = study.tuned_specs(config, tuned)
    assert {s.seed for s in held} == {0, 1}
    hd = [s for s in held if s.scheduler == "hd_parameter"]
    assert hd[0].hypergrad_lr == pytest.approx(0.1)
    assert hd[0].lr == pytest.approx(10 * base)


def test_a_tuning_run_scores_the_loss_the_comparison_reads():
    # tuning runs evaluate only at the stages; the trajectory and final loss are the same
    cell = ("mlp", "sgd", "greedy")
    tuning = training.run_greedy(study.run_spec(study.QUICK, cell, 0, 3.0, n_evals=1))
    held_out = training.run_greedy(study.run_spec(study.QUICK, cell, 0, 3.0))
    assert len(tuning["eval_steps"]) < len(held_out["eval_steps"])
    assert study.loss_at(tuning, 1.0) == study.loss_at(held_out, 1.0)
    assert tuning["train_loss"] == held_out["train_loss"]


def test_tuning_reports_edges_it_cannot_leave():
    config = _config(max_rounds=1, schedules=("constant",), optimizers=("adam",))
    tuned = study.tune(config, _fake_sweep(lambda s: 1.0 / s.lr, []))  # always "higher is better"
    summary = study.tuned.tuning_summary(tuned)
    hit = [h for h in summary["edge_hits"] if h["cell"] == ["mlp", "adam", "constant"]]
    assert hit == [{"axis": "multiplier", "cell": ["mlp", "adam", "constant"], "edge": "high",
                    "best": 100.0}]  # fmt: skip


def test_tuning_score_is_inf_when_a_tuning_seed_diverged():
    ok = {"status": "ok", "result": _fake_result(0.5, 10)}
    bad = {"status": "ok", "result": _fake_result(math.inf, 10)}
    assert study.tuning_score([ok, ok]) == pytest.approx(0.5)
    assert study.tuning_score([ok, bad]) == math.inf
    assert study.tuning_score([ok, {"status": "error", "result": None}]) == math.inf


def test_config_keeps_tuning_and_held_out_seeds_apart():
    with pytest.raises(ValueError, match="disjoint"):
        _config(seeds=(0, 7))
    assert not set(study.FULL.seeds) & set(study.FULL.tune_seeds)
    assert len(study.FULL.seeds) >= 3


def test_hypergradient_step_reaches_the_optimizer_and_is_validated():
    model = torch.nn.Linear(2, 1)
    opt = training.make_optimizer("sgd", "hd_group", model, 0.1, 10, hypergrad_lr=0.5)
    assert opt.param_groups[0]["hypergrad_lr"] == 0.5
    opt = training.make_optimizer("adam", "hd_parameter", model, 0.1, 10)
    assert opt.param_groups[0]["hypergrad_lr"] == study.config.HYPERGRAD_LR["adam"]
    spec = study.run_spec(study.QUICK, ("quadratic", "sgd", "hd_group"), 0, beta=10.0)
    assert spec.hypergrad_lr == pytest.approx(10 * study.config.HYPERGRAD_LR["sgd"])
    assert study.run_spec(study.QUICK, ("quadratic", "sgd", "cosine"), 0) in study.main_specs(
        study.QUICK
    )
    with pytest.raises(ValueError, match="hypergrad_lr"):
        study.check_spec(dataclasses.replace(spec, scheduler="cosine"))
    with pytest.raises(ValueError, match="hypergrad_lr"):
        study.check_spec(dataclasses.replace(spec, hypergrad_lr=-1.0))


def test_factor_sweep_and_robustness_run_at_the_tuned_rates():
    rates = {("quadratic", "sgd", "greedy"): 10.0, ("quadratic", "sgd", "cosine"): 3.0}
    base = study.INITIAL_LR["quadratic"]["sgd"]
    factor = [s for s in study.factor_specs(study.QUICK, rates) if s.workload == "quadratic"]
    assert factor and all(s.lr == pytest.approx(10 * base) for s in factor)
    robust = study.robust_specs(study.QUICK, rates)
    assert {s.lr for s in robust if s.scheduler == "cosine"} == {3.0 * base}
    assert {s.lr for s in robust if s.scheduler == "greedy"} == {10.0 * base}
    assert {s.lr for s in study.robust_specs(study.QUICK)} == {base}


# ------------------------------------------------------------------------ clustered shares
def _pair(workload, seed, delta, optimizer="sgd", baseline="cosine", stage="100%"):
    label = study.BOTH_DIVERGED if math.isnan(delta) else study.label_delta(delta)
    return {
        "workload": workload,
        "seed": seed,
        "optimizer": optimizer,
        "baseline": baseline,
        "stage": stage,
        "delta": delta,
        "label": label,
    }


def test_share_ci_resamples_workload_seed_clusters():
    # two clusters: all of (mlp, 0) good, all of (mlp, 1) bad
    pairs = [_pair("mlp", 0, 0.1, baseline=b) for b in ("a", "b", "c")]
    pairs += [_pair("mlp", 1, -0.1, baseline=b) for b in ("a", "b", "c")]
    pairs.append(_pair("mlp", 1, math.nan))  # both diverged: left out
    share = study.share_ci(pairs)
    assert share["value"] == pytest.approx(0.5)
    assert share["n"] == 6 and share["n_clusters"] == 2
    assert share["ci95"] == [0.0, 1.0]  # a whole cluster at a time, never an i.i.d. 50%
    assert study.share_ci([])["n"] == 0


def test_clustered_shares_report_adamw_apart_and_every_stage_and_workload():
    pairs = [
        _pair(w, seed, d, stage=st)
        for w in ("mlp", "cnn")
        for seed, d in ((0, 0.1), (1, -0.1), (2, 0.2))
        for st in ("10%", "50%", "100%")
    ]
    pairs += [_pair("mlp", 0, -1.0, optimizer="adamw")]
    shares = study.clustered_shares(pairs)
    assert shares["final"]["n"] == 6 and shares["final"]["value"] == pytest.approx(4 / 6)
    assert set(shares["by_stage"]) == {"10%", "50%", "100%"}
    assert set(shares["by_workload"]) == {"mlp", "cnn"}
    assert shares["by_workload"]["cnn"]["50%"]["n_clusters"] == 3
    assert shares["apart"]["adamw"]["final"]["value"] == 0.0


def test_headline_records_for_both_protocols():
    def rec(sched, seed, final, workload="mlp"):
        r = {
            "spec_id": f"{workload}{sched}{seed}",
            "status": "ok",
            "spec": {
                "workload": workload,
                "optimizer": "sgd",
                "scheduler": sched,
                "seed": seed,
                "greedy": [],
                "grad_noise": 0.0,
                "loss_noise": 0.0,
            },
            "result": _fake_result(final, 10),
        }
        return r

    tuned = [rec("greedy", s, 1.0) for s in range(3)] + [rec("cosine", s, 0.5) for s in range(3)]
    paper = [rec("greedy", s, 0.5) for s in range(3)] + [rec("cosine", s, 1.0) for s in range(3)]
    blocks = {
        "tuned": summarise_protocol(tuned, "t"),
        "paper_protocol": summarise_protocol(paper, "p"),
    }
    records = {r["claim"]: r for r in headline(blocks)}
    t = records["greedylr_tuned_as_good_or_better"]
    p = records["greedylr_paper_protocol_as_good_or_better"]
    assert t["value"] == 0.0 and p["value"] == 1.0
    assert t["stage"] == "100%" and t["n"] == 3 and t["n_clusters"] == 3 and t["null"] == 0.5
    assert records["greedylr_tuned_vs_cosine"]["value"] == 0.0
