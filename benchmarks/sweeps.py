"""How much ``--jobs 2`` and ``--backend ray`` speed up the studies (``make bench-sweeps``, ~10 min).

Times, on this machine and in one go: every study's ``--quick`` run as a fresh command under
``--jobs 1``, ``--jobs 2`` and ``--backend ray --jobs 2`` (a local Ray, started by the command),
then a sample of full-size runs (every 15th run of the full GreedyLR study's main sweep)
serially and on the warm pool of two workers. Prints a markdown table of wall seconds with the
ratio to ``--jobs 1``. Pass study names to time only those, ``--no-ray`` to skip Ray.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDIES = ("nmf", "greedylr", "dnn")
MODES = {"--jobs 1": ["--jobs", "1"], "--jobs 2": ["--jobs", "2"]}
RAY_MODE = {"--backend ray --jobs 2": ["--backend", "ray", "--jobs", "2"]}
SAMPLE_EVERY = 15


def time_study(study: str, options: list[str]) -> float:
    """Wall seconds of ``python -m experiments.<study> --quick`` into a fresh folder."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", f"experiments.{study}", "--quick", "--quiet"]
        start = time.perf_counter()
        subprocess.run([*command, *options, "--out", out], check=True, env=env)
        return time.perf_counter() - start


def time_full_sample(jobs: int) -> float:
    """Wall seconds of every ``SAMPLE_EVERY``-th run of the full GreedyLR main sweep."""
    from experiments.greedylr import FULL, main_specs, run_greedy
    from experiments.runner import make_backend, run_sweep

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        with make_backend(None, jobs) as backend:
            specs = main_specs(FULL)[::SAMPLE_EVERY]
            run_sweep(run_greedy, specs, Path(out) / "main.jsonl", backend=backend, quiet=True)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    modes = dict(MODES) if "--no-ray" in argv else {**MODES, **RAY_MODE}
    studies = [s for s in STUDIES if s in argv] or list(STUDIES)
    rows = {f"{s} --quick": {m: time_study(s, opts) for m, opts in modes.items()} for s in studies}
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows[f"greedylr, every {SAMPLE_EVERY}th full-size run"] = {
        m: time_full_sample(int(opts[-1])) for m, opts in MODES.items()
    }
    print("| run | " + " | ".join(modes) + " |")
    print("|---|" + "---|" * len(modes))
    for name, times in rows.items():
        base = times["--jobs 1"]
        cells = [f"{times[m]:.1f} s ({base / times[m]:.2f}x)" if m in times else "—" for m in modes]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
