"""Benchmark: a pipeline's sweeps on a fresh process pool each, on one warm pool, and serially.

A pipeline runs several sweeps one after the other (the quick GreedyLR study: a few small runs
per stage). With a fresh pool per sweep every sweep pays for spawning the workers and for
importing what the runs need (torch here, as the study's runs do); the warm pool of
:func:`experiments.runner.make_backend` pays once. Each variant runs ``SWEEPS`` sweeps of
``RUNS`` runs (a tiny torch computation each) into fresh results files, in this process, and
the ratios of the wall times are printed.

Run with ``python -m benchmarks pool``.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from experiments.runner import ProcessPoolBackend, SerialBackend, grid, run_sweep

SWEEPS = 5
RUNS = 8
JOBS = 2


@dataclass(frozen=True)
class PoolBenchSpec:
    sweep: int
    x: int


def small_run(spec: PoolBenchSpec) -> dict:
    """A run as small as a quick study's: import torch (once per process), a little compute."""
    import torch

    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(spec.x)
    a = torch.randn(64, 64, generator=generator)
    return {"trace": float((a @ a.T).trace())}


def _pipeline(folder: Path, backend_for_sweep) -> float:
    start = time.perf_counter()
    for sweep in range(SWEEPS):
        specs = grid(PoolBenchSpec, sweep=sweep, x=range(RUNS))
        path = folder / f"sweep{sweep}.jsonl"
        run_sweep(small_run, specs, path, quiet=True, **backend_for_sweep())
    return time.perf_counter() - start


def main() -> None:
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        serial = SerialBackend()
        times["serial"] = _pipeline(root / "serial", lambda: {"backend": serial})
        times["fresh pool per sweep"] = _pipeline(root / "fresh", lambda: {"jobs": JOBS})
        with ProcessPoolBackend(JOBS) as warm:
            times["warm pool"] = _pipeline(root / "warm", lambda: {"backend": warm})
    print(f"{SWEEPS} sweeps x {RUNS} small torch runs, {JOBS} workers for the pools")
    for name, seconds in times.items():
        print(f"  {name:<22} {seconds:7.2f} s   {seconds / times['serial']:5.2f} x serial")
    ratio = times["fresh pool per sweep"] / times["warm pool"]
    print(f"  fresh pool per sweep / warm pool = {ratio:.2f}")


if __name__ == "__main__":
    main()
