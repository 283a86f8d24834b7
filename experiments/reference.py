"""Reference results: a full, fresh run of a pipeline copied to ``results/reference/<name>/``.

``python -m experiments.reference nmf`` (or ``make reference-nmf``) runs ``make reproduce-nmf``
into an empty build folder, times it, and copies what a reader needs (``summary.json``,
``table.md``, the figures; not the per-run JSON lines, checkpoints or models) to
``results/reference/nmf/`` together with ``provenance.json``: the command and wall time plus
:func:`experiments.common.provenance.provenance` (commit, date, machine, packages, BLAS and torch
kernels, thread settings). The README's result tables quote these files, and
``tests/test_readme_results.py`` checks that every number in them matches.

``--quick`` does the same for the smoke run (``make reproduce-nmf QUICK=1``), built in
``results/reference-build/nmf-quick/`` and published to ``results/reference/nmf-quick/``;
``--strict`` runs ``make reproduce-nmf STRICT=1`` (``docs/reproducibility.md``).

The build folder is kept (``results/reference-build/<name>[-quick]/``), so an interrupted run
resumes with ``--resume``; its provenance then says so, and its wall time covers only the last
part. ``--resume`` also extends a finished build after new runs were added to the pipeline (the
earlier runs keep their spec ids and are reused); the provenance then keeps the published
reference's own commit, date and wall time under ``resumed_from``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from experiments.common.provenance import provenance as run_provenance

PIPELINES = {
    "nmf": "NMF_OUT",
    "nmf-screen": "NMF_SCREEN_OUT",
    "nmf-robustness": "NMF_ROBUSTNESS_OUT",
    "greedylr": "GREEDYLR_OUT",
    "dnn": "DNN_OUT",
}
"""Pipeline name -> the Makefile variable that sets its output folder (``make reproduce-<name>``)."""

KEEP_SUFFIXES = (".json", ".md", ".png")
SKIP_DIRS = ("agents", "checkpoints")
"""Sub-folders that hold models and checkpoints, which are not reference material."""


def reference_files(build: Path) -> list[Path]:
    """The files of a finished run worth keeping, relative to ``build``."""
    return sorted(
        p.relative_to(build)
        for p in build.rglob("*")
        if p.is_file()
        and p.suffix in KEEP_SUFFIXES
        and not any(part in SKIP_DIRS for part in p.relative_to(build).parts)
    )


def publish(build: Path, dest: Path, provenance: dict) -> Path:
    """Replace ``dest`` by the reference files of ``build`` plus ``provenance.json``, atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        for rel in reference_files(build):
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(build / rel, staging / rel)
        text = json.dumps(provenance, indent=2, sort_keys=True) + "\n"
        (staging / "provenance.json").write_text(text)
        old = dest.with_name(f".{dest.name}.old")
        if dest.exists():
            dest.replace(old)
        staging.replace(dest)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m experiments.reference", description=__doc__)
    parser.add_argument("pipeline", choices=sorted(PIPELINES))
    parser.add_argument("--jobs", type=int, default=2, help="parallel runs (default 2)")
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted build instead of refusing"
    )
    parser.add_argument("--root", type=Path, default=Path("results"), help="results folder")
    parser.add_argument(
        "--quick", action="store_true", help="the smoke run (QUICK=1) into <pipeline>-quick/"
    )
    parser.add_argument(
        "--strict", action="store_true", help="pinned kernels and threads (STRICT=1)"
    )
    args = parser.parse_args(argv)
    name = f"{args.pipeline}-quick" if args.quick else args.pipeline
    build = args.root / "reference-build" / name
    if build.exists() and any(build.iterdir()) and not args.resume:
        raise SystemExit(
            f"{build} is not empty: pass --resume to continue that run, or delete it for a "
            "fresh one (a reference run's wall time is only meaningful from scratch)."
        )
    build.mkdir(parents=True, exist_ok=True)
    options = [f"JOBS={args.jobs}"]
    options += ["QUICK=1"] if args.quick else []
    options += ["STRICT=1"] if args.strict else []
    command = [
        "make",
        f"reproduce-{args.pipeline}",
        f"{PIPELINES[args.pipeline]}={build}",
        *options,
    ]
    started = dt.datetime.now(dt.UTC)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    provenance = {
        "pipeline": args.pipeline,
        "command": " ".join(["make", f"reproduce-{args.pipeline}", *options]),
        **run_provenance(),
        "date": started.isoformat(timespec="seconds"),
        "wall_time_s": round(wall, 1),
        "resumed": bool(args.resume),
        "strict": bool(args.strict),  # the run's own block is in its summary.json
    }
    earlier = args.root / "reference" / name / "provenance.json"
    if args.resume and earlier.exists():
        before = json.loads(earlier.read_text())
        provenance["resumed_from"] = before.get("resumed_from") or {
            k: before.get(k) for k in ("commit", "date", "wall_time_s")
        }
    dest = publish(build, args.root / "reference" / name, provenance)
    print(f"wrote {dest} ({wall / 60:.1f} min)")
    if not args.quick:
        for shipped in ship_agents(build, provenance):
            print(f"shipped {shipped}")
    return dest


def ship_agents(build: Path, provenance: dict) -> list[Path]:
    """Copy the agents a full run prepared for shipping (``<build>/**/pretrained/<name>/``) into
    ``rl_scheduler/pretrained/<name>/``, their manifests completed with commit and command."""
    from rl_scheduler import pretrained

    shipped = []
    for manifest_file in sorted(build.glob("**/pretrained/*/manifest.json")):
        manifest = json.loads(manifest_file.read_text())
        manifest |= {k: provenance[k] for k in ("commit", "command", "date")}
        model = manifest_file.with_name("model.zip")
        shipped.append(pretrained.export(model, manifest_file.parent.name, manifest))
    return shipped


if __name__ == "__main__":
    main()
