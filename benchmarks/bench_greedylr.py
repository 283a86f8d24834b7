"""Micro-benchmark: what one ``GreedyLR.step()`` costs.

Compared with one ``torch.optim.lr_scheduler.ReduceLROnPlateau.step()`` (the closest built-in
scheduler) and with one training step (forward, backward, SGD update) of a small MLP on random
data. Each figure is the median over several repeats of the mean time per call; the scheduler
steps are fed a realistic metric sequence (improvements, plateaus, noise) so that every branch
runs. Timings use one CPU thread (restored afterwards) because that is fastest and steadiest for a
model this small.

Run with ``python -m benchmarks`` (all benchmarks) or ``python benchmarks/bench_greedylr.py``.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

if __package__ in (None, "") and importlib.util.find_spec("greedylr") is None:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from greedylr import GreedyLR  # noqa: E402


def _metrics(n: int, seed: int = 0) -> list[float]:
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, generator=gen)
    trend = torch.linspace(2.0, 0.5, n)
    plateau = (torch.arange(n) // 200) % 3 == 1
    values = torch.where(plateau, torch.full((n,), 1.0), trend) + 0.05 * noise
    return values.tolist()


def _optimizer() -> torch.optim.Optimizer:
    model = nn.Linear(4, 4)
    return torch.optim.SGD(model.parameters(), lr=0.01)


def _time_scheduler(make: Callable[[], object], metrics: list[float], repeats: int) -> float:
    """Median over ``repeats`` of the mean seconds per ``step(metric)`` call."""
    samples = []
    for _ in range(repeats):
        sched = make()
        step = sched.step
        start = time.perf_counter()
        for m in metrics:
            step(m)
        samples.append((time.perf_counter() - start) / len(metrics))
    return statistics.median(samples)


def _time_training_step(steps: int, repeats: int, seed: int = 0) -> float:
    """Median over ``repeats`` of the mean seconds per training step of a small MLP."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 32, generator=gen)
    y = torch.randint(0, 10, (64,), generator=gen)

    def one_step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(20):  # warm-up (allocator, lazy initialisation)
        one_step()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            one_step()
        samples.append((time.perf_counter() - start) / steps)
    return statistics.median(samples)


def run(n_calls: int = 2000, repeats: int = 7, train_steps: int = 100) -> dict[str, float]:
    """Measure and return seconds per call for every row of the table."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        metrics = _metrics(n_calls)
        rows: dict[str, Callable[[], object]] = {
            "GreedyLR (paper)": lambda: GreedyLR(_optimizer()),
            "GreedyLR (paper, smooth=True)": lambda: GreedyLR(_optimizer(), smooth=True),
            "GreedyLR (transformers)": lambda: GreedyLR(_optimizer(), variant="transformers"),
            "ReduceLROnPlateau": lambda: torch.optim.lr_scheduler.ReduceLROnPlateau(_optimizer()),
        }
        try:  # optional: the transformers implementation, for reference
            from transformers.optimization import GreedyLR as HFGreedyLR

            rows["transformers.GreedyLR"] = lambda: HFGreedyLR(_optimizer())
        except ImportError:  # pragma: no cover - transformers is optional
            pass
        out = {name: _time_scheduler(make, metrics, repeats) for name, make in rows.items()}
        out["MLP training step"] = _time_training_step(train_steps, repeats)
        return out
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    """Print the table: time per call and ratios to ReduceLROnPlateau and to a training step."""
    results = run()
    plateau = results["ReduceLROnPlateau"]
    train = results["MLP training step"]
    print("GreedyLR.step() cost (median of repeats, 1 CPU thread)")
    print("MLP 32-128-128-10, batch 64, SGD+momentum; schedulers fed 2000 varied metrics")
    print(f"{'':32} {'us/call':>9} {'x ReduceLROnPlateau':>20} {'% of train step':>16}")
    for name, seconds in results.items():
        print(
            f"{name:32} {seconds * 1e6:9.2f} {seconds / plateau:20.2f} "
            f"{100 * seconds / train:15.2f}%"
        )


if __name__ == "__main__":
    main()
