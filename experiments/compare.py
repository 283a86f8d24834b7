"""Did my run reproduce the reference? ``python -m experiments.compare <study>`` (``make compare-<study>``).

Reads your results (``results/<study>/``, or ``results/<study>-quick/`` with ``--quick``) and the
committed reference (``results/reference/<study>[-quick]/``), and compares every JSON file the
reference holds (``summary.json``, ``rl/summary.json``, ``bound_tightness.json``, ...), number by
number:

* a **headline record** (``{"claim", "value", "ci95": [low, high], ...}`` in a ``headline`` list)
  and a **table cell** (``{"mean", "ci95", "n", ...}``, a mean with the half-width of its 95%
  interval) are compared through their interval: the difference is given in units of the
  reference's half-width;
* any other number is compared relatively (``--rtol``); strings and flags must be equal.

Verdicts: ``reproduced`` (equal to the 6 significant digits results are stored with),
``within noise`` (within the reference's interval, or within ``--rtol`` where there is none),
``differs`` and ``missing``. Wall times, job counts, figure lists and the provenance are not
compared; instead the provenance entries that differ (commit, package versions, CPU, BLAS kernel,
thread settings, input digests) are listed, since they usually explain a difference. The exit
status is 0 when nothing differs or is missing, 1 otherwise (2 for bad arguments), so a script
can use it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STUDIES = ("nmf", "nmf-screen", "nmf-robustness", "greedylr", "dnn")
SKIP_KEYS = frozenset({"provenance", "jobs", "figures", "runs"})
"""Keys not compared: how the run was made (shown separately), not what it found. ``runs`` is
the greedylr per-run loss table, which the scoring tables already cover."""
TIMING_MARKERS = ("wall_time", "time_s", "train_time", "steps_per_s", "time_to_target")
"""Keys containing one of these hold wall-clock measurements, which differ on every run."""
OPTIONAL_FOLDERS = ("rl_ablation",)
SKIP_FOLDERS = ("agents", "checkpoints")
"""Sub-folders of models and checkpoints (not reference material, see experiments.reference)."""
"""Reference sub-folders from optional runs (``--ablation``): compared only when you have them."""
VERDICTS = ("reproduced", "within noise", "differs", "missing")


@dataclass(frozen=True)
class Comparison:
    """One compared value: where it is, both values, the difference and the verdict."""

    where: str
    reference: Any
    yours: Any
    verdict: str
    units: float | None = None
    """Difference in units of the reference's 95% half-width (``None``: no interval)."""


def _number(x: Any) -> float | None:
    """A float for JSON numbers and the strings non-finite floats are written as, else None."""
    if isinstance(x, bool):
        return None
    if isinstance(x, int | float):
        return float(x)
    if x in ("NaN", "Infinity", "-Infinity"):
        return float(x.replace("Infinity", "inf"))
    return None


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or f"{a:.6g}" == f"{b:.6g}"


def _verdict(ref: float, yours: float, half_width: float | None, rtol: float) -> str:
    if _same(ref, yours):
        return "reproduced"
    if not (math.isfinite(ref) and math.isfinite(yours)):
        return "differs"
    if half_width is not None and math.isfinite(half_width) and half_width > 0:
        return "within noise" if abs(yours - ref) <= half_width else "differs"
    scale = max(abs(ref), abs(yours))
    return "within noise" if abs(yours - ref) <= rtol * scale else "differs"


def _interval(ref: Any, yours: Any, where: str, half_width: float | None, rtol: float):
    r, y = _number(ref), _number(yours)
    if r is None or y is None:
        return Comparison(where, ref, yours, "reproduced" if ref == yours else "differs")
    units = None
    if half_width is not None and math.isfinite(half_width) and half_width > 0:
        units = (y - r) / half_width if math.isfinite(y - r) else None
    return Comparison(where, ref, yours, _verdict(r, y, half_width, rtol), units)


def _skipped(key: str) -> bool:
    return key in SKIP_KEYS or any(marker in key for marker in TIMING_MARKERS)


def compare_values(ref: Any, yours: Any, where: str, rtol: float) -> Iterator[Comparison]:
    """Every comparison between two JSON values (see the module docstring for the rules)."""
    if isinstance(ref, dict) and {"mean", "ci95"} <= set(ref):  # a table cell
        if not isinstance(yours, dict) or "mean" not in yours:
            yield Comparison(where, ref.get("mean"), None, "missing")
            return
        half = _number(ref["ci95"])
        yield _interval(ref["mean"], yours["mean"], where, half, rtol)
        for key in sorted(set(ref) - {"mean", "ci95", "std"}):
            yield from compare_values(ref[key], yours.get(key), f"{where}.{key}", rtol)
        return
    if isinstance(ref, dict):
        for key, value in ref.items():
            if _skipped(key):
                continue
            if not isinstance(yours, dict) or key not in yours:
                yield Comparison(f"{where}.{key}", _short(value), None, "missing")
                continue
            if key == "headline" and isinstance(value, list):
                yield from _compare_headlines(value, yours[key], f"{where}.headline", rtol)
                continue
            yield from compare_values(value, yours[key], f"{where}.{key}", rtol)
        return
    if isinstance(ref, list):
        if not isinstance(yours, list) or len(yours) != len(ref):
            yield Comparison(where, _short(ref), _short(yours), "differs")
            return
        for i, (a, b) in enumerate(zip(ref, yours, strict=True)):
            yield from compare_values(a, b, f"{where}[{i}]", rtol)
        return
    yield _interval(ref, yours, where, None, rtol)


def _compare_headlines(ref: list, yours: Any, where: str, rtol: float) -> Iterator[Comparison]:
    mine = {r.get("claim"): r for r in yours} if isinstance(yours, list) else {}
    for record in ref:
        claim = record.get("claim")
        at = f"{where}[{claim}]"
        if claim not in mine:
            yield Comparison(at, record.get("value"), None, "missing")
            continue
        low, high = (_number(v) for v in record.get("ci95", [None, None]))
        half = (high - low) / 2 if low is not None and high is not None else None
        yield _interval(record.get("value"), mine[claim].get("value"), at, half, rtol)
        for key in sorted(set(record) - {"claim", "value", "ci95"}):
            if not _skipped(key):
                yield from compare_values(record[key], mine[claim].get(key), f"{at}.{key}", rtol)


def _short(value: Any) -> Any:
    return f"{len(value)} items" if isinstance(value, list | dict) else value


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out |= _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(tree, list) and any(isinstance(v, dict) for v in tree):
        out = {}
        for i, value in enumerate(tree):
            out |= _flatten(value, f"{prefix}[{i}]")
        return out
    return {prefix: tree}


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def provenance_of(folder: Path) -> dict[str, Any]:
    """The provenance of a results folder: ``summary.json``'s block, else ``provenance.json``."""
    summary = folder / "summary.json"
    block = _load(summary).get("provenance") if summary.is_file() else None
    if block:
        return block
    if (folder / "provenance.json").is_file():
        return _load(folder / "provenance.json")
    return {}


PROVENANCE_SKIP = ("date", "wall_time_s", "resumed", "command", "pipeline", "python_executable")
"""Provenance entries that differ between any two runs and explain nothing."""


def provenance_differences(reference: Path, results: Path) -> list[tuple[str, Any, Any]]:
    """``(entry, reference value, your value)`` for every provenance entry that differs.

    Library file paths are left out (they differ with every installation).
    """
    ref, mine = _flatten(provenance_of(reference)), _flatten(provenance_of(results))
    return [
        (key, ref.get(key), mine.get(key))
        for key in sorted(set(ref) | set(mine))
        if ref.get(key) != mine.get(key)
        and not key.startswith(PROVENANCE_SKIP)
        and not key.endswith("filepath")
    ]


def compare_folders(reference: Path, results: Path, rtol: float = 0.01) -> list[Comparison]:
    """Every comparison between the JSON files of ``reference`` and those of ``results``."""
    found: list[Comparison] = []
    for path in sorted(reference.rglob("*.json")):
        rel = path.relative_to(reference)
        if rel.name == "provenance.json" or any(p in SKIP_FOLDERS for p in rel.parts):
            continue
        mine = results / rel
        if not mine.is_file():
            if rel.parts[0] not in OPTIONAL_FOLDERS:
                found.append(Comparison(str(rel), "a file", None, "missing"))
            continue
        found.extend(compare_values(_load(path), _load(mine), str(rel), rtol))
    return found


def _cell(value: Any) -> str:
    number = _number(value)
    if number is not None and not isinstance(value, str):
        return f"{number:.6g}"
    return "—" if value is None else str(value)


def report(
    comparisons: list[Comparison], provenance: list[tuple[str, Any, Any]], *, everything: bool
) -> str:
    """The printed report: counts per verdict, the rows, then the provenance differences."""
    counts = {v: sum(c.verdict == v for c in comparisons) for v in VERDICTS}
    lines = [", ".join(f"{n} {v}" for v, n in counts.items()) + f" (of {len(comparisons)} values)"]
    rows = [c for c in comparisons if everything or c.verdict not in ("reproduced",)]
    if rows:
        lines += ["", "| value | reference | yours | difference (95% half-widths) | verdict |"]
        lines.append("|---|---|---|---|---|")
        for c in rows:
            units = "—" if c.units is None else f"{c.units:+.2f}"
            lines.append(
                f"| {c.where} | {_cell(c.reference)} | {_cell(c.yours)} | {units} | {c.verdict} |"
            )
    if provenance and all(b is None for _, _, b in provenance):
        lines += ["", "Your results carry no provenance (made before it was recorded)."]
    elif provenance:
        lines += ["", "Provenance that differs (reference -> yours):"]
        lines += [f"  {key}: {_cell(a)} -> {_cell(b)}" for key, a, b in provenance]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.compare", description=__doc__.split("\n")[0]
    )
    parser.add_argument("study", choices=STUDIES)
    parser.add_argument(
        "--quick", action="store_true", help="compare the QUICK=1 run with the quick reference"
    )
    parser.add_argument(
        "--results", type=Path, help="your results folder (default results/<study>[-quick])"
    )
    parser.add_argument("--reference", type=Path, help="default results/reference/<study>[-quick]")
    parser.add_argument(
        "--rtol",
        type=float,
        default=0.01,
        help="relative tolerance where there is no interval (default 0.01)",
    )
    parser.add_argument("--all", action="store_true", help="list reproduced values too")
    args = parser.parse_args(argv)
    name = f"{args.study}-quick" if args.quick else args.study
    results = args.results or Path("results") / name
    reference = args.reference or Path("results") / "reference" / name
    for label, folder in (("--reference", reference), ("--results", results)):
        if not (folder / "summary.json").is_file():
            parser.error(
                f"{label} {folder}: no summary.json (run `make reproduce-{args.study}"
                f"{' QUICK=1' if args.quick else ''}` first)"
            )
    if not (args.rtol >= 0):
        parser.error(f"--rtol must be >= 0, got {args.rtol}")
    comparisons = compare_folders(reference, results, args.rtol)
    print(f"{results} against {reference}")
    print(report(comparisons, provenance_differences(reference, results), everything=args.all))
    return 1 if any(c.verdict in ("differs", "missing") for c in comparisons) else 0


if __name__ == "__main__":
    sys.exit(main())
