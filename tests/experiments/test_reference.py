import json

import pytest

from experiments import reference


def _build(tmp_path):
    build = tmp_path / "build"
    for rel in (
        "summary.json",
        "table.md",
        "rl/loss_curves.png",
        "eval.jsonl",
        "agents/a/model.zip",
        "rl/agents/b/episodes.json",
    ):
        (build / rel).parent.mkdir(parents=True, exist_ok=True)
        (build / rel).write_text(rel)
    return build


def test_only_summaries_tables_and_figures_are_reference_material(tmp_path):
    build = _build(tmp_path)
    kept = {str(p) for p in reference.reference_files(build)}
    assert kept == {"summary.json", "table.md", "rl/loss_curves.png"}


def test_publish_replaces_the_old_reference_whole(tmp_path):
    build, dest = _build(tmp_path), tmp_path / "reference" / "nmf"
    dest.mkdir(parents=True)
    (dest / "stale.md").write_text("from an older run")
    reference.publish(build, dest, {"commit": "abc"})
    assert sorted(p.name for p in dest.rglob("*") if p.is_file()) == [
        "loss_curves.png",
        "provenance.json",
        "summary.json",
        "table.md",
    ]
    assert json.loads((dest / "provenance.json").read_text()) == {"commit": "abc"}
    assert [p.name for p in dest.parent.iterdir()] == ["nmf"]  # no staging or backup left


def test_a_non_empty_build_folder_needs_resume(tmp_path):
    (tmp_path / "reference-build" / "nmf").mkdir(parents=True)
    (tmp_path / "reference-build" / "nmf" / "tune.jsonl").write_text("{}\n")
    with pytest.raises(SystemExit, match="--resume"):
        reference.main(["nmf", "--root", str(tmp_path)])


@pytest.mark.parametrize(
    ("options", "folder", "make_options"),
    [
        ([], "nmf", ["JOBS=2"]),
        (["--quick"], "nmf-quick", ["JOBS=2", "QUICK=1"]),
        (["--quick", "--strict", "--jobs", "1"], "nmf-quick", ["JOBS=1", "QUICK=1", "STRICT=1"]),
    ],
)
def test_a_reference_run_is_built_and_published_with_its_provenance(
    tmp_path, monkeypatch, options, folder, make_options
):
    calls, run = [], reference.subprocess.run

    def fake_make(command, **kwargs):
        if command[0] != "make":
            return run(command, **kwargs)  # git, for the provenance
        calls.append(command)
        build = tmp_path / "reference-build" / folder
        (build / "summary.json").write_text("{}")
        (build / "tune.jsonl").write_text("{}\n")

    monkeypatch.setattr(reference.subprocess, "run", fake_make)
    dest = reference.main(["nmf", "--root", str(tmp_path), *options])
    build = tmp_path / "reference-build" / folder
    assert calls == [["make", "reproduce-nmf", f"NMF_OUT={build}", *make_options]]
    assert dest == tmp_path / "reference" / folder
    assert sorted(p.name for p in dest.iterdir()) == ["provenance.json", "summary.json"]
    info = json.loads((dest / "provenance.json").read_text())
    assert info["command"] == " ".join(["make", "reproduce-nmf", *make_options])
    assert info["strict"] is ("--strict" in options)
    assert info["machine"]["cpu_model"] and info["blas"] and info["torch"]["version"]
    assert info["packages"]["torch"].startswith("2.13.0")
    assert info["commit"] and info["date"] and info["wall_time_s"] >= 0


def test_a_resumed_reference_keeps_where_its_runs_came_from(tmp_path, monkeypatch):
    run = reference.subprocess.run

    def fake_make(command, **kwargs):
        if command[0] != "make":
            return run(command, **kwargs)
        (tmp_path / "reference-build" / "nmf-quick" / "summary.json").write_text("{}")

    monkeypatch.setattr(reference.subprocess, "run", fake_make)
    (tmp_path / "reference-build" / "nmf-quick").mkdir(parents=True)
    (tmp_path / "reference-build" / "nmf-quick" / "tune.jsonl").write_text("{}\n")
    dest = tmp_path / "reference" / "nmf-quick"
    dest.mkdir(parents=True)
    first = {"commit": "aaaa", "date": "2026-01-01", "wall_time_s": 60.0, "other": 1}
    (dest / "provenance.json").write_text(json.dumps(first))
    for _ in range(2):  # a second resume still points at the original run
        reference.main(["nmf", "--quick", "--resume", "--root", str(tmp_path)])
        info = json.loads((dest / "provenance.json").read_text())
        assert info["resumed"] is True
        assert info["resumed_from"] == {"commit": "aaaa", "date": "2026-01-01", "wall_time_s": 60.0}
