"""Run specs and run functions for the runner tests.

They live in an importable module (``tests.experiments._runfns``) so that the process-pool
tests can pickle them by reference and spawned workers can import them.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import numpy as np

from experiments.runner import SerialBackend


@dataclass(frozen=True)
class ToySpec:
    x: int
    seed: int = 0
    tag: str = "a"


@dataclass(frozen=True)
class OtherSpec:
    x: int
    seed: int = 0
    tag: str = "a"


@dataclass
class MutableSpec:
    x: int


def square(spec: ToySpec) -> dict:
    return {"y": spec.x**2, "pid": os.getpid()}


def numpy_result(spec: ToySpec) -> dict:
    rng = np.random.default_rng(spec.seed)
    return {
        "y": np.int64(spec.x) ** 2,
        "noise": rng.standard_normal(3),
        "mean": np.float32(0.5),
        "ok": np.bool_(True),
        "curve": (1.0, float("nan"), np.inf, -np.inf),
    }


def fail_on_odd(spec: ToySpec) -> dict:
    if spec.x % 2:
        raise ValueError(f"odd x={spec.x}")
    return {"y": spec.x**2}


def interrupt_on_three(spec: ToySpec) -> dict:
    """Ctrl-C arriving during the run of x=3; the others take a little while."""
    if spec.x == 3:
        raise KeyboardInterrupt
    time.sleep(0.05)
    return {"y": spec.x**2}


def sleep_or_interrupt(spec: ToySpec) -> dict:
    """x=0 would run for a minute; x=1 is interrupted shortly after it starts."""
    if spec.x == 0:
        time.sleep(60)
    else:
        time.sleep(0.3)
        raise KeyboardInterrupt
    return {"y": spec.x**2}


def slow_square(spec: ToySpec) -> dict:
    time.sleep(0.1)
    return {"y": spec.x**2}


def die_on_three(spec: ToySpec) -> dict:
    """x=3 kills its worker process (like a segfault or an out-of-memory kill would)."""
    if spec.x == 3 and spec.tag == "exit":
        os._exit(1)
    if spec.x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return {"y": spec.x**2}


class ToyBackend(SerialBackend):
    """A backend for the ``--backend`` tests: runs in-process and counts its sweeps."""

    def __init__(self) -> None:
        self.sweeps = 0

    def map_unordered(self, fn, items):
        self.sweeps += 1
        yield from super().map_unordered(fn, items)


def make_toy_backend() -> ToyBackend:
    return ToyBackend()


def report_pid_and_sleep(spec: ToySpec) -> dict:
    """Write the worker's pid into the folder ``spec.tag``, then run for a minute."""
    with open(os.path.join(spec.tag, f"{spec.x}.pid"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)
    return {"y": spec.x**2}
