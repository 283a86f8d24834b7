"""Timing helper shared by the benchmarks: median of repeated measurements."""

import time
from collections.abc import Callable


def median_time(fn: Callable[[], object], *, repeat: int = 7, min_time: float = 0.05) -> float:
    """Median seconds per call of ``fn`` over ``repeat`` rounds of at least ``min_time`` seconds."""
    fn()  # warm-up
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - start >= min_time:
            break
        number *= 2
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - start) / number)
    rounds.sort()
    return rounds[len(rounds) // 2]
