"""``python -m experiments.nmf.robustness``: the shipped NMF agent on random problems far from its
training cells, with and without its descent guard, against following the bound.

The agent shipped as ``rl_scheduler.pretrained.load("nmf")`` was trained on two kinds of problem
(synthetic 60x40 of rank 5, digits of rank 8; gradient noise 0, 1, 5) and is checked out of
distribution by the study on 24 fixed problems (``experiments.nmf.pretrained``). This draws many
more, at random, from two families (:data:`FAMILIES`), and runs each three ways, exactly as a
user would (``nmf.run_sgd(problem, schedule, n_steps, clip=0.1, seed=...)``): the shipped agent as
loaded (with the guard of its manifest), the same agent without the guard, and
``FollowBound(0.9)``, the untuned use of the stability bound the issue asks the agent to beat.

* ``tight``: synthetic data of 30-250 rows and columns, data rank 2-29, factor rank 2-39, gradient
  noise 0 (half of them), 0.5 or 2, full gradients: larger and of higher rank than the training
  problems, so their stability bound is tight where the training problems' is conservative.
* ``mixed``: dense uniform, sparse (90% zeros), heavy-tailed (Pareto 1.5) and synthetic matrices
  of 5-300 rows and columns, or 5-300 rows of digits (64 columns) or faces (625 columns), scaled
  by ``10**U(-3, 3)``, rank 1-40, gradient noise 0, 0.1, 1 or 5 times the data's root mean square,
  column mini-batches in a fifth of them.

Runs of 300 steps (the documented use) and of 1000 (``max_actions=100``). Per family and length:
runs that diverged or ended above their start, the probability that the agent ends below
``FollowBound(0.9)`` on the same problem (95% bootstrap interval over problems), the geometric
mean and the worst of its final loss over ``FollowBound(0.9)``'s; one ``headline`` record per
group (the guarded agent's probability). The command line is every study's
(:func:`experiments.common.cli.parse_pipeline_args`: ``--jobs``, ``--backend``, ``--strict``,
...): it writes ``summary.json`` (with provenance) and ``table.md`` into ``--out`` (default
``results/nmf-robustness``, ``-quick`` with ``--quick``), resumable; about 3 minutes with
``--jobs 2`` (``make reproduce-nmf-robustness``); ``--quick`` draws 3 problems per family and
runs 300 steps only.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from experiments.common.cli import finish, parse_pipeline_args, running, sweep_options
from experiments.common.provenance import input_digests
from experiments.common.records import by_id, require_ok
from experiments.common.stats import headline_record, poi_with_ci
from experiments.runner import run_sweep, spec_id

FAMILIES = ("tight", "mixed")
LENGTHS = (300, 1000)
METHODS = ("agent", "agent_unguarded", "follow_bound_0.9")
N_PROBLEMS = 40
"""Problems per family (each run at every length)."""
CLIP = 0.1
KINDS = ("synthetic", "uniform", "sparse", "heavy", "digits", "faces")
"""The kinds of matrix of the ``mixed`` family."""


@dataclass(frozen=True)
class RobustnessRunSpec:
    """One run: problem ``index`` of ``family`` for ``n_steps`` under ``method``."""

    family: str
    index: int
    n_steps: int
    method: str
    agent: str
    """The shipped model's sha256 (its first 16 hex digits), so a new agent's runs are new runs."""
    SPEC_TYPE: ClassVar[str] = "experiments.nmf.RobustnessRunSpec"


def draw_problem(family: str, index: int):
    """The ``index``-th problem of ``family`` (the same on every machine and call) and a
    one-line description of it."""
    import nmf

    rng = np.random.default_rng([FAMILIES.index(family), index])
    if family == "tight":
        m, n = (int(v) for v in rng.integers(30, 251, size=2))
        data_rank, rank = int(rng.integers(2, 30)), int(rng.integers(2, 40))
        V = nmf.datasets.synthetic(m, n, data_rank, seed=int(rng.integers(2**31)))
        rank = min(rank, m, n)
        noise = float(rng.choice([0.0, 0.0, 0.5, 2.0]))
        problem = nmf.StochasticNMF(V, rank, noise_std=noise, seed=index)
        return problem, f"synthetic {m}x{n}, data rank {data_rank}, rank {rank}, noise {noise:g}"
    kind = str(rng.choice(KINDS))
    m, n = (int(v) for v in rng.integers(5, 301, size=2))
    if kind == "synthetic":
        V = nmf.datasets.synthetic(m, n, int(rng.integers(1, 20)), seed=int(rng.integers(2**31)))
    elif kind == "uniform":
        V = rng.random((m, n))
    elif kind == "sparse":
        V = rng.random((m, n)) * (rng.random((m, n)) < 0.1)
    elif kind == "heavy":
        V = rng.pareto(1.5, (m, n))
    else:
        data = nmf.datasets.digits() if kind == "digits" else nmf.datasets.faces()
        V = data[rng.choice(len(data), min(m, len(data)), replace=False)]
    if not V.any():  # an all-zero sparse draw: one entry, so the problem is defined
        V[0, 0] = 1.0
    V = V * 10.0 ** rng.uniform(-3, 3)
    m, n = V.shape
    rank = int(rng.integers(1, min(m, n, 40) + 1))
    noise = float(rng.choice([0.0, 0.1, 1.0, 5.0])) * float(np.sqrt(np.mean(V**2)))
    batch = None if rng.random() < 0.8 or n < 2 else int(rng.integers(1, n))
    problem = nmf.StochasticNMF(V, rank, noise_std=noise, batch_size=batch, seed=index)
    label = f"{kind} {m}x{n}, rank {rank}, noise {noise:.3g}" + (
        f", batches of {batch}" if batch else ""
    )
    return problem, label


def run_robustness(spec: RobustnessRunSpec) -> dict[str, Any]:
    """Final loss over the initial one, and whether the run diverged."""
    import torch

    import nmf
    from rl_scheduler import pretrained

    torch.set_num_threads(1)
    problem, label = draw_problem(spec.family, spec.index)
    if spec.method == "follow_bound_0.9":
        schedule = nmf.schedules.FollowBound(0.9)
    else:
        guard = spec.method == "agent"
        schedule = pretrained.load("nmf", max_actions=spec.n_steps // 10, guard=guard)
    traj = nmf.run_sgd(problem, schedule, spec.n_steps, clip=CLIP, seed=spec.index)
    return {
        "problem": label,
        "final_over_initial": traj.final_loss / traj.losses[0],
        "diverged": bool(traj.diverged),
        "guarded": getattr(schedule, "guard", None) is not None,
        "guard_trips": getattr(schedule, "guard_trips", None),
    }


def shipped_agent_digest() -> str:
    from rl_scheduler import pretrained

    return hashlib.sha256(pretrained.model_path("nmf").read_bytes()).hexdigest()[:16]


def specs(quick: bool) -> list[RobustnessRunSpec]:
    n, lengths = (3, LENGTHS[:1]) if quick else (N_PROBLEMS, LENGTHS)
    agent = shipped_agent_digest()
    return [
        RobustnessRunSpec(family, index, n_steps, method, agent)
        for family in FAMILIES
        for index in range(n)
        for n_steps in lengths
        for method in METHODS
    ]


def summarise(records: list[dict], all_specs: list[RobustnessRunSpec]) -> dict[str, Any]:
    by = by_id(records)
    groups: dict[str, Any] = {}
    for family in FAMILIES:
        for n_steps in sorted({s.n_steps for s in all_specs}):
            mine = [s for s in all_specs if s.family == family and s.n_steps == n_steps]
            if not mine:
                continue
            results = {
                m: [by[spec_id(s)]["result"] for s in mine if s.method == m] for m in METHODS
            }
            base = np.array(
                [r["final_over_initial"] for r in results["follow_bound_0.9"]], dtype=float
            )
            block: dict[str, Any] = {"n_problems": len(base)}
            for method in ("agent", "agent_unguarded"):
                ours = np.array([r["final_over_initial"] for r in results[method]], dtype=float)
                with np.errstate(invalid="ignore", divide="ignore"):
                    ratio = np.where(ours == base, 1.0, ours / base)  # both diverged: a tie
                worst = int(np.argmax(ratio))
                block[method] = {
                    "diverged": sum(r["diverged"] for r in results[method]),
                    "ended_above_start": int(np.sum(ours >= 1)),
                    "poi_vs_follow_bound": poi_with_ci(ours[None, :], base[None, :], n_boot=1000),
                    "geomean_ratio": float(np.exp(np.mean(np.log(ratio)))),
                    "worst_ratio": float(ratio[worst]),
                    "worst_problem": results[method][worst]["problem"],
                }
            block["follow_bound_0.9"] = {
                "diverged": sum(r["diverged"] for r in results["follow_bound_0.9"]),
                "ended_above_start": int(np.sum(base >= 1)),
            }
            trips = [r["guard_trips"] for r in results["agent"]]
            block["agent"]["guard_trips_per_run"] = float(np.mean(trips))
            groups[f"{family}/{n_steps}"] = block
    headline = [
        headline_record(
            f"pretrained_nmf_vs_follow_bound_{name.replace('/', '_')}_steps",
            "probability_of_improvement",
            g["agent"]["poi_vs_follow_bound"]["value"],
            g["agent"]["poi_vs_follow_bound"]["ci95"],
            g["n_problems"],
            split="random out-of-distribution problems",
            n_steps=int(name.split("/")[1]),
            ppo_seeds=1,
            diverged_runs=g["agent"]["diverged"],
        )
        for name, g in groups.items()
    ]
    return {"headline": headline, "clip": CLIP, "groups": groups}


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        "# The shipped NMF agent far from its training problems",
        "",
        "Final loss against `FollowBound(0.9)` on the same problem (clip 0.1). PoI: probability "
        "that the agent ends lower, 95% bootstrap interval over problems; ratio: the agent's "
        "final loss over `FollowBound(0.9)`'s.",
        "",
        "| family / steps | problems | agent | PoI vs follow-bound | geo-mean ratio | worst ratio "
        "| diverged | above start (agent / follow-bound) | guard trips per run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, g in summary["groups"].items():
        for method, label in (("agent", "with guard"), ("agent_unguarded", "without guard")):
            a = g[method]
            poi = a["poi_vs_follow_bound"]
            trips = f"{a['guard_trips_per_run']:.2f}" if method == "agent" else "—"
            lines.append(
                f"| {name} | {g['n_problems']} | {label} | {poi['value']:.3f} "
                f"[{poi['ci95'][0]:.3f}, {poi['ci95'][1]:.3f}] | {a['geomean_ratio']:.3f} | "
                f"{a['worst_ratio']:.3g} | {a['diverged']} | {a['ended_above_start']} / "
                f"{g['follow_bound_0.9']['ended_above_start']} | {trips} |"
            )
    lines += ["", "Worst problem per row:", ""]
    for name, g in summary["groups"].items():
        for method in ("agent", "agent_unguarded"):
            lines.append(f"* {name}, {method}: {g[method]['worst_problem']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, out = parse_pipeline_args(
        "nmf.robustness",
        "The shipped NMF agent on random problems far from its training problems "
        "(--quick: 3 problems per family, 300 steps).",
        argv,
        folder="nmf-robustness",
    )
    start = time.perf_counter()
    all_specs = specs(args.quick)
    with running(args):
        records = run_sweep(run_robustness, all_specs, out / "runs.jsonl", **sweep_options(args))
        require_ok(records, "robustness runs")
        summary = summarise(records, all_specs)
        inputs = input_digests(["digits", "faces"], specs=records)
        return finish(args, out, summary, markdown(summary), start, inputs=inputs)


if __name__ == "__main__":
    main()
