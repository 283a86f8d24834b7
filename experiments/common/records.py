"""Small helpers over the runner's result records, shared by the studies."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

Record = dict[str, Any]


def short(x: float) -> float:
    """Six significant digits: keeps result files small, far below the noise of any run."""
    return float(f"{x:.6g}") if math.isfinite(x) else x


def by_id(records: Iterable[Record]) -> dict[str, Record]:
    """Records keyed by their ``spec_id``."""
    return {r["spec_id"]: r for r in records}


def require_ok(records: Iterable[Record], stage: str) -> None:
    """Raise ``RuntimeError`` naming the first failed run when any run of ``stage`` failed."""
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        first = failed[0]
        raise RuntimeError(
            f"{len(failed)} {stage} run(s) failed, e.g. {first['spec_id']}: "
            f"{first['error']['type']}: {first['error']['message']} "
            "(rerun the command to retry them)"
        )
