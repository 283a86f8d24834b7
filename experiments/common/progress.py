"""Rate lines with an ETA for long pieces of work inside a sweep (PPO training, long runs).

A progress bar per run would fight with the sweep's own bar and flood a log, so a long run prints
at most one line every ``every_s`` seconds to stderr; a run that ends before the first line is
due prints nothing.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, s = divmod(seconds, 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s" if m else f"{s}s"


class ProgressLine:
    """Call with ``(done, total)``; prints ``label: done/total (pct), rate/s, ETA`` when due.

    Parameters
    ----------
    label : str
        What is being done, e.g. ``"PPO learned seed 0"``.
    every_s : float, default 30
        Minimum seconds between two lines (the first is due ``every_s`` after creation).
    unit : str, default "steps"
        Unit of ``done`` in the line.
    stream : file, optional
        Where to print (default ``sys.stderr``).
    """

    def __init__(
        self,
        label: str,
        *,
        every_s: float = 30.0,
        unit: str = "steps",
        stream: TextIO | None = None,
    ) -> None:
        if not every_s > 0:
            raise ValueError(f"every_s must be > 0, got {every_s!r}")
        self.label, self.every_s, self.unit = label, float(every_s), unit
        self.stream = stream
        self.start = self._last = time.perf_counter()
        self.lines = 0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        finished = done >= total
        if (finished and not self.lines) or (not finished and now - self._last < self.every_s):
            return
        self._last = now
        self.lines += 1
        elapsed = now - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        tail = (
            f"done in {_duration(elapsed)}"
            if finished
            else (f"ETA {_duration((total - done) / rate)}" if rate > 0 else "ETA ?")
        )
        pct = 100.0 * done / total if total else 100.0
        print(
            f"{self.label}: {done:,}/{total:,} {self.unit} ({pct:.0f}%), {rate:.3g} {self.unit}/s, {tail}",
            file=self.stream or sys.stderr,
            flush=True,
        )
