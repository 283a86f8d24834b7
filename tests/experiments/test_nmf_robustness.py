"""``python -m experiments.nmf.robustness``: random problems far from the agent's training cells."""

import json

import numpy as np
import pytest

from experiments.nmf import robustness


def test_problems_are_drawn_the_same_every_time_and_differ_between_indices():
    for family in robustness.FAMILIES:
        a, label_a = robustness.draw_problem(family, 3)
        b, label_b = robustness.draw_problem(family, 3)
        assert label_a == label_b and np.array_equal(a.V, b.V) and a.rank == b.rank
        assert robustness.draw_problem(family, 4)[1] != label_a


@pytest.mark.slow
def test_quick_run_writes_its_tables_and_resumes(tmp_path):
    summary = robustness.main(["--quick", "--jobs", "1", "--quiet", "--out", str(tmp_path)])
    assert set(summary["groups"]) == {f"{f}/300" for f in robustness.FAMILIES}
    for group in summary["groups"].values():
        assert group["n_problems"] == 3
        for method in ("agent", "agent_unguarded"):
            block = group[method]
            assert block["diverged"] == 0 and block["ended_above_start"] <= 3
            assert block["worst_problem"].split()[0] in (*robustness.KINDS,)
        assert group["agent"]["guard_trips_per_run"] >= 0
    records = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    guarded = {r["spec"]["method"]: r["result"]["guarded"] for r in records}
    assert guarded == {"agent": True, "agent_unguarded": False, "follow_bound_0.9": False}
    for family in robustness.FAMILIES:  # the summary is the records' arithmetic
        final = {
            m: np.array(
                [
                    r["result"]["final_over_initial"]
                    for r in records
                    if r["spec"]["family"] == family and r["spec"]["method"] == m
                ]
            )
            for m in ("agent", "follow_bound_0.9")
        }
        ratio = final["agent"] / final["follow_bound_0.9"]
        block = summary["groups"][f"{family}/300"]["agent"]
        assert block["geomean_ratio"] == pytest.approx(np.exp(np.log(ratio).mean()))
        assert block["worst_ratio"] == pytest.approx(ratio.max())
    digest = robustness.shipped_agent_digest()
    assert {r["spec"]["agent"] for r in records} == {digest}
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert (tmp_path / "table.md").read_text() == robustness.markdown(summary)
    claims = {h["claim"]: h for h in summary["headline"]}
    assert set(claims) == {
        f"pretrained_nmf_vs_follow_bound_{f}_300_steps" for f in robustness.FAMILIES
    }
    for family in robustness.FAMILIES:
        poi = summary["groups"][f"{family}/300"]["agent"]["poi_vs_follow_bound"]
        assert claims[f"pretrained_nmf_vs_follow_bound_{family}_300_steps"]["value"] == poi["value"]
    lines = (tmp_path / "runs.jsonl").read_text()
    again = robustness.main(
        ["--quick", "--jobs", "1", "--quiet", "--out", str(tmp_path)]
    )  # resumed, no new run
    assert {k: again[k] for k in ("headline", "groups")} == {
        k: summary[k] for k in ("headline", "groups")
    }
    assert (tmp_path / "runs.jsonl").read_text() == lines
    assert summary["provenance"]["inputs"]["n_specs"] == len(records)
