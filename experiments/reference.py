"""Reference results: a full, fresh run of a pipeline copied to ``results/reference/<name>/``.

``python -m experiments.reference nmf`` (or ``make reference-nmf``) runs ``make reproduce-nmf``
into an empty build folder, times it, and copies what a reader needs (``summary.json``,
``table.md``, the figures; not the per-run JSON lines, checkpoints or models) to
``results/reference/nmf/`` together with ``provenance.json``: the commit, date, command, machine,
wall time and package versions. The README's result tables quote these files, and
``tests/test_readme_results.py`` checks that every number in them matches.

The build folder is kept (``results/reference-build/<name>/``), so an interrupted run resumes
with ``--resume``; its provenance then says so, and its wall time covers only the last part.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

PIPELINES = {"nmf": "NMF_OUT", "greedylr": "GREEDYLR_OUT", "dnn": "DNN_OUT"}
"""Pipeline name -> the Makefile variable that sets its output folder (``make reproduce-<name>``)."""

KEEP_SUFFIXES = (".json", ".md", ".png")
SKIP_DIRS = ("agents", "checkpoints")
"""Sub-folders that hold models and checkpoints, which are not reference material."""

PACKAGES = (
    "torch",
    "numpy",
    "scipy",
    "gymnasium",
    "stable-baselines3",
    "scikit-learn",
    "scikit-image",
    "matplotlib",
)


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], check=True, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, object]:
    """What the run ran on."""
    info: dict[str, object] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        import torch

        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["gpu"] = None
    return info


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


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
    args = parser.parse_args(argv)
    build = args.root / "reference-build" / args.pipeline
    if build.exists() and any(build.iterdir()) and not args.resume:
        raise SystemExit(
            f"{build} is not empty: pass --resume to continue that run, or delete it for a "
            "fresh one (a reference run's wall time is only meaningful from scratch)."
        )
    build.mkdir(parents=True, exist_ok=True)
    command = [
        "make",
        f"reproduce-{args.pipeline}",
        f"{PIPELINES[args.pipeline]}={build}",
        f"JOBS={args.jobs}",
    ]
    started = dt.datetime.now(dt.UTC)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    provenance = {
        "pipeline": args.pipeline,
        "command": f"make reproduce-{args.pipeline} JOBS={args.jobs}",
        "commit": _git("rev-parse", "HEAD"),
        "uncommitted_changes": _git("status", "--porcelain", "--untracked-files=no") != "",
        "date": started.isoformat(timespec="seconds"),
        "wall_time_s": round(wall, 1),
        "resumed": bool(args.resume),
        "machine": machine(),
        "packages": package_versions(),
        "python_executable": sys.executable,
    }
    dest = publish(build, args.root / "reference" / args.pipeline, provenance)
    print(f"wrote {dest} ({wall / 60:.1f} min)")
    return dest


if __name__ == "__main__":
    main()
