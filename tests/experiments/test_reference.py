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


def test_provenance_parts_describe_this_machine():
    info = reference.machine()
    assert info["cpu_count"] >= 1 and info["python"]
    assert reference.package_versions()["torch"].startswith("2.13.0")
