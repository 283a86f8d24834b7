"""``python -m experiments.nmf.shapes``: how far *fixed* bound-relative schedules get against the
NMF study's tuned schedules -- a ceiling for "the right shape per cell".

The learned schedule sets ``lr = bound * 2**e`` once per decision. The question here is whether
its gap to the tuned step decay is one of what such rates can express or of what PPO learns. Each
design is a fixed rule ``lr = scale * bound * max(shape(k), floor)`` (the bound of the iterate at
the start of decision ``k``, held for that decision's steps, as the agent's rates are), with
``scale`` in :data:`SCALES` and ``(shape, floor)`` in :data:`SHAPES` (flat, or annealed by cosine
over the decisions, or that floored at 0.1). Every design runs on the study's held-out instances,
with the study's steps, clip and gradient-noise seeds, and is compared per instance with the
tuned schedules' runs of a finished study (``<build>/rl/eval.jsonl``): the share of instances on
which it ends with a strictly lower relative error, overall and per cell. The **per-cell oracle**
then takes, in every cell, the design that wins there most often -- picked on the very instances
it is scored on, so it is optimistic: no schedule that knows only the cell can do better with
these shapes.

Writes ``<build>/rl/shapes.json`` and ``shapes.md`` and prints the table. After ``make
reproduce-nmf`` (or ``make reference-nmf``: ``--build results/reference-build/nmf``) it takes
about three minutes on one core; ``--quick`` uses the ``QUICK=1`` study (``results/nmf-quick``).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from experiments.nmf.config import RL_FULL, RL_QUICK, RLConfig, cell_name
from experiments.runner.results import write_json_atomic, write_text_atomic
from nmf import run_sgd
from nmf.schedules import Cosine

SCALES = (0.25, 0.5, 0.75, 1.0, 1.5)
"""Multiples of the stability bound the designs start at."""

SHAPES = (("flat", 0.0), ("cosine", 0.0), ("cosine", 0.1))
"""``(shape, floor)``: the factor on ``scale * bound`` at decision ``k`` is ``max(shape(k),
floor)``, with ``shape`` 1 (flat) or the cosine from 1 to 0 over the run's decisions."""

AGAINST = ("step", "cosine")
"""The tuned schedules the designs are compared with (``step`` is the study's reference)."""


@dataclass
class BoundShape:
    """``lr = scale * bound * max(shape(k), floor)`` at decision ``k`` (``steps_per_decision``
    steps each), from the bound observed at the decision's first step and held until the next."""

    scale: float
    shape: str
    floor: float
    n_decisions: int
    steps_per_decision: int
    _bound: float = field(default=math.nan, init=False, repr=False)
    _lr: float = field(default=math.nan, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.shape not in ("flat", "cosine"):
            raise ValueError(f"shape must be 'flat' or 'cosine', got {self.shape!r}.")

    def observe(self, stats: Any) -> None:
        self._bound = stats.bound

    def __call__(self, step: int) -> float:
        if step % self.steps_per_decision == 0:
            if not (math.isfinite(self._bound) and self._bound > 0):
                raise RuntimeError(
                    f"BoundShape needs a finite stats.bound > 0, got {self._bound!r}: "
                    "nmf.run_sgd must run with compute_bound=True."
                )
            k = step // self.steps_per_decision
            factor = 1.0 if self.shape == "flat" else Cosine(1.0, self.n_decisions)(k)
            self._lr = self.scale * self._bound * max(factor, self.floor)
        return self._lr


def designs() -> list[tuple[float, str, float]]:
    return [(scale, shape, floor) for shape, floor in SHAPES for scale in SCALES]


def label(design: tuple[float, str, float]) -> str:
    scale, shape, floor = design
    return f"{scale:g} x bound, {shape}" + (f" (floor {floor:g})" if floor else "")


def _key(instance: Any) -> str:
    return json.dumps(
        asdict(instance) if not isinstance(instance, dict) else instance, sort_keys=True
    )


def tuned_errors(
    eval_file: Path, config: RLConfig, names: tuple[str, ...] = AGAINST
) -> dict[str, dict[str, float]]:
    """Per tuned schedule, the final relative error of its successful held-out run on each
    instance, among the runs of ``config``'s length and clip (the last one if there are more)."""
    out: dict[str, dict[str, float]] = {n: {} for n in names}
    with open(eval_file) as f:
        for line in f:
            rec = json.loads(line)
            spec = rec["spec"]
            name = spec["schedule"]
            same_runs = spec.get("n_steps") == config.n_steps and spec.get("clip") == config.clip
            if name in out and rec["status"] == "ok" and same_runs:
                out[name][_key(rec["spec"]["instance"])] = float(rec["result"]["final_rel_error"])
    return out


def design_errors(config: RLConfig, design: tuple[float, str, float]) -> list[float]:
    """The design's final relative error on each held-out instance (``inf`` if it diverged)."""
    errors = []
    for inst in config.instances("test"):
        problem = inst.build()
        schedule = BoundShape(*design, config.max_actions, config.steps_per_action)
        traj = run_sgd(
            problem, schedule, config.n_steps, clip=config.clip, seed=inst.seed, compute_bound=True
        )
        errors.append(
            math.inf if traj.diverged else problem.relative_error_from_loss(traj.final_loss)
        )
    return errors


def compare(config: RLConfig, tuned: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Win shares of every design against every tuned schedule, overall and per cell, and the
    per-cell oracle against each."""
    instances = config.instances("test")
    cells = [cell_name(i) for i in instances]
    missing = [k for name in tuned for k in map(_key, instances) if k not in tuned[name]]
    if missing:
        raise ValueError(
            f"the build's eval.jsonl lacks {len(missing)} successful held-out runs of "
            f"{tuple(tuned)} with {config.n_steps} steps and clip {config.clip} "
            "(a finished study of the same configuration is needed; --quick for QUICK=1)"
        )
    rows = []
    for design in designs():
        mine = np.asarray(design_errors(config, design))
        wins = {
            name: mine < np.asarray([tuned[name][_key(i)] for i in instances]) for name in tuned
        }
        rows.append(
            {
                "design": label(design),
                "scale": design[0],
                "shape": design[1],
                "floor": design[2],
                "win_share": {n: float(w.mean()) for n, w in wins.items()},
                "per_cell": {
                    c: {n: float(w[[x == c for x in cells]].mean()) for n, w in wins.items()}
                    for c in sorted(set(cells))
                },
            }
        )
    oracle = {}
    for name in tuned:
        best = {c: max(rows, key=lambda r: r["per_cell"][c][name]) for c in sorted(set(cells))}
        oracle[name] = {
            "win_share": float(np.mean([best[c]["per_cell"][c][name] for c in best])),
            "per_cell": {
                c: {"design": r["design"], "win_share": r["per_cell"][c][name]}
                for c, r in best.items()
            },
        }
    return {"n_instances": len(instances), "rows": rows, "oracle": oracle}


def markdown(result: dict[str, Any]) -> str:
    names = list(result["oracle"])
    cells = list(result["rows"][0]["per_cell"])
    lines = [
        f"# Fixed bound-relative schedules vs tuned ones ({result['n_instances']} held-out "
        "instances)",
        "",
        "Share of instances on which the design ends strictly below the tuned schedule "
        f"(overall, then per cell against {names[0]}).",
        "",
        "| design | " + " | ".join(f"vs {n}" for n in names) + " | " + " | ".join(cells) + " |",
        "|---|" + "---|" * (len(names) + len(cells)),
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['design']} | "
            + " | ".join(f"{r['win_share'][n]:.2f}" for n in names)
            + " | "
            + " | ".join(f"{r['per_cell'][c][names[0]]:.2f}" for c in cells)
            + " |"
        )
    lines += ["", "Per-cell oracle (the best design per cell, picked on the same instances):", ""]
    for name, o in result["oracle"].items():
        picks = "; ".join(
            f"{c}: {p['design']} {p['win_share']:.2f}" for c, p in o["per_cell"].items()
        )
        lines.append(f"* vs {name}: **{o['win_share']:.2f}** ({picks})")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.nmf.shapes",
        description="Fixed bound-relative schedules against a finished NMF study's tuned ones.",
    )
    parser.add_argument(
        "--build",
        type=Path,
        default=None,
        help="the study's output folder (default: results/nmf, or results/nmf-quick with --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="the QUICK=1 study's configuration")
    args = parser.parse_args(argv)
    config = RL_QUICK if args.quick else RL_FULL
    build = args.build or Path("results/nmf-quick" if args.quick else "results/nmf")
    eval_file = build / "rl" / "eval.jsonl"
    if not eval_file.is_file():
        parser.error(f"--build: {eval_file} not found; run make reproduce-nmf first")
    result = compare(config, tuned_errors(eval_file, config))
    write_json_atomic(build / "rl" / "shapes.json", result)
    text = markdown(result)
    write_text_atomic(build / "rl" / "shapes.md", text)
    print(text, end="")
    return result


if __name__ == "__main__":
    main()
