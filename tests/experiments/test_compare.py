"""Tests for experiments.compare: the verdicts, headline records, provenance, exit status."""

import json
import shutil
from pathlib import Path

import pytest

from experiments import compare

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"


def _write(folder: Path, summary: dict, provenance: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    if provenance is not None:
        (folder / "provenance.json").write_text(json.dumps(provenance))
    return folder


def _cell(mean, ci95=0.01, n=5):
    return {"mean": mean, "std": 0.02, "ci95": ci95, "n": n}


SUMMARY = {
    "settings": {"a": {"final": _cell(0.3282), "steps": {"mean": 262.0, "reached": 5, "n": 5}}},
    "headline": [
        {"claim": "learned_vs_step", "metric": "p", "value": 0.6, "ci95": [0.5, 0.7], "n": 48}
    ],
    "label": "x",
    "wall_time_s": 12.0,
}


def _verdicts(found):
    return {c.where: c.verdict for c in found}


def test_an_unchanged_copy_reproduces(tmp_path):
    ref = _write(tmp_path / "ref", SUMMARY)
    mine = _write(tmp_path / "mine", {**SUMMARY, "wall_time_s": 99.0})  # timings are ignored
    found = compare.compare_folders(ref, mine)
    assert found and {c.verdict for c in found} == {"reproduced"}


def test_interval_cells_and_headlines_are_judged_in_half_widths(tmp_path):
    ref = _write(tmp_path / "ref", SUMMARY)
    changed = json.loads(json.dumps(SUMMARY))
    changed["settings"]["a"]["final"]["mean"] = 0.3281  # 0.01 of a 0.01 half-width
    changed["settings"]["a"]["steps"]["mean"] = 264.0  # no interval: 0.8% < rtol 1%
    changed["headline"][0]["value"] = 0.85  # 2.5 half-widths away
    changed["label"] = "y"
    found = compare.compare_folders(ref, _write(tmp_path / "mine", changed))
    verdicts = _verdicts(found)
    assert verdicts["summary.json.settings.a.final"] == "within noise"
    assert verdicts["summary.json.settings.a.steps.mean"] == "within noise"
    assert verdicts["summary.json.headline[learned_vs_step]"] == "differs"
    assert verdicts["summary.json.label"] == "differs"
    units = {c.where: c.units for c in found}
    assert units["summary.json.headline[learned_vs_step]"] == pytest.approx(2.5)
    assert units["summary.json.settings.a.final"] == pytest.approx(-0.01)


def test_missing_values_and_files_are_reported(tmp_path):
    ref = _write(tmp_path / "ref", SUMMARY)
    (ref / "rl").mkdir()
    (ref / "rl" / "summary.json").write_text(json.dumps({"x": 1}))
    (ref / "rl_ablation").mkdir()  # optional runs are compared only when present
    (ref / "rl_ablation" / "summary.json").write_text(json.dumps({"x": 1}))
    partial = {k: v for k, v in SUMMARY.items() if k != "headline"}
    verdicts = _verdicts(compare.compare_folders(ref, _write(tmp_path / "mine", partial)))
    assert verdicts["summary.json.headline"] == "missing"
    assert verdicts["rl/summary.json"] == "missing"
    assert not any(where.startswith("rl_ablation") for where in verdicts)


def test_provenance_differences_are_listed(tmp_path):
    ref = _write(tmp_path / "ref", SUMMARY, {"commit": "abc", "blas": {"architecture": "Haswell"}})
    mine = _write(
        tmp_path / "mine",
        {**SUMMARY, "provenance": {"commit": "abc", "blas": {"architecture": "Zen"}, "date": "x"}},
    )
    assert compare.provenance_differences(ref, mine) == [("blas.architecture", "Haswell", "Zen")]


def test_command_line_exit_status_and_report(tmp_path, capsys):
    ref = _write(tmp_path / "ref", SUMMARY)
    same = _write(tmp_path / "same", SUMMARY)
    argv = ["nmf", "--reference", str(ref), "--results"]
    assert compare.main([*argv, str(same)]) == 0
    changed = json.loads(json.dumps(SUMMARY))
    changed["settings"]["a"]["final"]["mean"] = 0.5
    assert compare.main([*argv, str(_write(tmp_path / "other", changed))]) == 1
    out = capsys.readouterr().out
    assert "| summary.json.settings.a.final | 0.3282 | 0.5 | +17.18 | differs |" in out
    with pytest.raises(SystemExit) as exit_info:
        compare.main([*argv, str(tmp_path / "nothing")])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("study", ["nmf", "greedylr", "dnn"])
def test_a_committed_reference_against_a_copy_and_a_planted_change(tmp_path, study):
    ref = REFERENCE / study
    copy = tmp_path / study
    shutil.copytree(ref, copy)
    found = compare.compare_folders(ref, copy)
    assert len(found) > 50 and {c.verdict for c in found} == {"reproduced"}
    summary = json.loads((copy / "summary.json").read_text())
    planted = _plant(summary)  # double the first interval cell's mean
    (copy / "summary.json").write_text(json.dumps(summary))
    differing = [c for c in compare.compare_folders(ref, copy) if c.verdict != "reproduced"]
    assert [c.where for c in differing] == [f"summary.json.{planted}"]
    assert differing[0].verdict == "differs"


def _plant(tree, path=""):
    """Double the mean of the first interval cell with a finite, non-zero mean; return its path."""
    if isinstance(tree, dict):
        if {"mean", "ci95"} <= set(tree) and isinstance(tree["mean"], float) and tree["mean"]:
            tree["mean"] *= 2
            return path
        for key, value in tree.items():
            if key in compare.SKIP_KEYS:
                continue
            found = _plant(value, f"{path}.{key}" if path else key)
            if found:
                return found
    return None


def test_every_reference_pipeline_can_be_compared():
    from experiments.compare import STUDIES
    from experiments.reference import PIPELINES

    assert set(STUDIES) == set(PIPELINES)
