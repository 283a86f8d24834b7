"""The shipped NMF agent: which trained agent it is, its out-of-distribution check, its manifest.

The agent shipped as ``rl_scheduler.pretrained.load("nmf")`` is the headline variant's agent of
PPO seed :data:`SHIPPED_SEED`, fixed before any evaluation (no selection on held-out numbers).
This stage runs it, through the public ``LearnedSchedule`` in ``nmf.run_sgd`` exactly as a user
would, on :func:`ood_instances`: problems outside its training distribution (other data, shapes,
ranks, noise levels, mini-batches), against following the bound at 0.9 (``FollowBound(0.9)``,
the untuned use of the theory). It writes ``OUT/rl/pretrained/nmf/{model.zip, manifest.json}``;
``make reference-nmf`` ships them into ``rl_scheduler/pretrained/nmf/`` (see
:mod:`experiments.reference`).
"""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from experiments.common import agents
from experiments.common.agents import freeze
from experiments.common.records import by_id, require_ok
from experiments.common.stats import headline_record, paired_test, poi_with_ci
from experiments.nmf.config import VARIANT_SCHEDULE, RLConfig, agent_specs, cell_name
from experiments.nmf.rl import agent_dir
from experiments.runner import added_field, run_sweep, spec_id
from nmf import run_sgd
from nmf.datasets import NMFInstance
from nmf.schedules import FollowBound
from rl_scheduler.tasks.nmf_task import instance_to_dict

SHIPPED_SEED = 0
"""PPO seed of the shipped agent, chosen in advance."""

N_STEPS = 300
CLIP = 0.1
"""The usage the shipped agent documents: ``nmf.run_sgd(problem, schedule, 300, clip=0.1)``."""


def ood_instances(quick: bool = False) -> list[NMFInstance]:
    """Problems unlike the training set (synthetic 60x40 rank 5, digits 300 rows rank 8, noise
    0/1/5, full gradients): faces, other shapes and ranks, noise 0.5/2/10, column mini-batches."""
    kinds = [
        NMFInstance("faces", rank=10, noise_std=0.0, size=None),
        NMFInstance("faces", rank=6, noise_std=2.0, size=None),
        NMFInstance("synthetic", rank=12, noise_std=0.5, size=(150, 90)),
        NMFInstance("synthetic", rank=3, noise_std=10.0, size=(30, 200)),
        NMFInstance("digits", rank=16, noise_std=2.0, size=500),
        NMFInstance("synthetic", rank=8, noise_std=0.0, size=(100, 100), batch_size=20),
    ]
    n_seeds = 1 if quick else 4
    return [
        replace(k, seed=10_000 + 97 * i + s)
        for i, k in enumerate(kinds[: 3 if quick else None])
        for s in range(n_seeds)
    ]


@dataclass(frozen=True)
class OODRunSpec:
    """One out-of-distribution run: the shipped agent (or ``FollowBound(0.9)``) on an instance."""

    instance: NMFInstance
    method: str
    model: str = ""
    """The agent's model file, relative to the rl folder (empty for the baseline)."""
    schedule_kwargs: tuple[tuple[str, Any], ...] = added_field(())
    """The agent's :class:`~rl_scheduler.policy.LearnedSchedule` settings, :func:`freeze`-d."""
    SPEC_TYPE: ClassVar[str] = "experiments.nmf.OODRunSpec"


def run_ood(spec: OODRunSpec, *, root: str) -> dict[str, Any]:
    """Final relative error and divergence of one run, as a user would run it."""
    import torch

    from rl_scheduler.agent import load
    from rl_scheduler.policy import LearnedSchedule

    torch.set_num_threads(1)
    if spec.method == "pretrained":
        schedule = LearnedSchedule(
            load(Path(root) / spec.model, device="cpu"), **dict(spec.schedule_kwargs)
        )
    else:
        schedule = FollowBound(0.9)
    problem = spec.instance.build()
    traj = run_sgd(problem, schedule, N_STEPS, clip=CLIP, seed=spec.instance.seed)
    final = problem.relative_error_from_loss(traj.final_loss)
    return {"final_rel_error": float(final), "diverged": bool(traj.diverged)}


def shipped_model(config: RLConfig, out: Path) -> Path:
    """The model file of the shipped agent inside the rl folder ``out``."""
    spec = next(
        s for s in agent_specs(config) if s.variant == config.variants[0] and s.seed == SHIPPED_SEED
    )
    return agent_dir(out, spec) / agents.MODEL_FILE


def shipped_schedule(config: RLConfig) -> dict[str, Any]:
    """The ``LearnedSchedule`` settings the shipped agent is evaluated with, and that
    ``rl_scheduler.pretrained.load("nmf")`` applies (its manifest's ``schedule``)."""
    return dict(VARIANT_SCHEDULE.get(config.variants[0], {}))


def pretrained_stage(
    config: RLConfig, out: Path, learned: list[dict], *, quick: bool, **sweep: Any
) -> dict:
    """Evaluate the shipped agent out of distribution; write its model and manifest."""
    model = shipped_model(config, out)
    rel = str(model.relative_to(out))
    instances = ood_instances(quick=quick)
    settings = freeze(shipped_schedule(config))
    specs = [
        OODRunSpec(inst, "pretrained", rel, settings)
        if method == "pretrained"
        else OODRunSpec(inst, method)
        for inst in instances
        for method in ("pretrained", "follow_bound_0.9")
    ]
    records = run_sweep(
        functools.partial(run_ood, root=str(out)), specs, out / "ood.jsonl", **sweep
    )
    require_ok(records, "out-of-distribution evaluation")
    by = by_id(records)
    errors: dict[str, list[float]] = {"pretrained": [], "follow_bound_0.9": []}
    diverged = {"pretrained": 0, "follow_bound_0.9": 0}
    labels = []
    for spec in specs:
        result = by[spec_id(spec)]["result"]
        err = result["final_rel_error"] if not result["diverged"] else float("inf")
        errors[spec.method].append(err)
        diverged[spec.method] += int(result["diverged"])
        if spec.method == "pretrained":
            labels.append(f"{cell_name(spec.instance)}/rank={spec.instance.rank}")
    ours, base = np.array(errors["pretrained"]), np.array(errors["follow_bound_0.9"])
    poi = poi_with_ci(ours[None, :], base[None, :], strata=labels, n_boot=config.n_boot)
    test = paired_test(ours, base)
    block = {
        "instances": [instance_to_dict(inst) for inst in instances],
        "labels": labels,
        "final_rel_error": {k: list(map(float, v)) for k, v in errors.items()},
        "diverged": diverged,
        "probability_of_improvement": poi,
        "paired_test": test,
        "headline": headline_record(
            "pretrained_nmf_vs_follow_bound_ood",
            "probability_of_improvement",
            poi["value"],
            poi["ci95"],
            len(instances),
            split="out-of-distribution",
            ppo_seeds=1,
            n_instances=len(instances),
            p_value=test["p_value"],
            diverged_runs=diverged["pretrained"],
        ),
    }
    _write_shipment(config, out, model, learned, quick=quick)
    return block


def _write_shipment(
    config: RLConfig, out: Path, model: Path, learned: list[dict], *, quick: bool
) -> None:
    """``OUT/pretrained/nmf/``: the model and a manifest with a small recorded evaluation (the
    shipped agent's held-out runs on the first instance of every cell), which the package test
    reruns. ``commit`` and ``command`` are added when the reference run ships it."""
    mine = [
        r
        for r in learned
        if r["spec"]["agent"]["variant"] == config.variants[0]
        and r["spec"]["agent"]["seed"] == SHIPPED_SEED
    ]
    first: dict[str, dict] = {}
    for r in sorted(mine, key=lambda r: r["spec"]["instance"]["seed"]):
        first.setdefault(cell_name(r["spec"]["instance"]), r)
    folder = out / "pretrained" / "nmf"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, folder / "model.zip")
    manifest = {
        "name": "nmf",
        "source": f"{'RL_QUICK' if quick else 'RL_FULL'}: rl/{model.relative_to(out)}",
        "selected_by": f"PPO seed {SHIPPED_SEED} of the headline variant, fixed in advance",
        "variant": config.variants[0],
        "usage": f"nmf.run_sgd(problem, schedule, {config.n_steps}, clip={config.clip}, seed=...)",
        "schedule": shipped_schedule(config),
        "evaluation": {
            "n_steps": config.n_steps,
            "clip": config.clip,
            "instances": [r["spec"]["instance"] for r in first.values()],
            "final_rel_error": [r["result"]["final_rel_error"] for r in first.values()],
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
