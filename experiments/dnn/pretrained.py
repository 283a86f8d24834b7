"""The shipped DNN agents: PPO seed :data:`SHIPPED_SEED`'s last checkpoint for each task.

After the held-out stage, :func:`write_shipments` writes ``OUT/pretrained/<task>/`` (``model.zip``
and ``manifest.json``) for every task; ``make reference-dnn`` ships them into
``rl_scheduler/pretrained/<task>/`` (:func:`experiments.reference.ship_agents`). The manifest
records one held-out run of the agent (its spec and test loss), which
``tests/rl_scheduler/test_pretrained.py`` repeats with the shipped file through :func:`replay`.
The seed is fixed in advance: no selection on held-out or test numbers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from experiments.dnn.config import DNNRunSpec, TaskSpec
from experiments.dnn.runs import agent_method, run_dnn

SHIPPED_SEED = 0
"""PPO seed of the shipped agent of each task, chosen in advance."""

MODEL_FILE = "model.zip"


def write_shipments(
    trained: dict[str, Any], evaluated: list[tuple[str, str, dict]], out: Path, *, quick: bool
) -> list[Path]:
    """``OUT/pretrained/<task>/`` for each task whose seed-:data:`SHIPPED_SEED` agent ran."""
    folders = []
    for task in sorted({t for t, _, _ in evaluated}):
        agent = [a for a in trained["agents"].get(task, []) if a["seed"] == SHIPPED_SEED]
        if not agent:
            continue
        last = agent_method(agent[0]["checkpoints"][-1]["timesteps"], SHIPPED_SEED)
        runs = [rec for t, method, rec in evaluated if t == task and method == last]
        if not runs:
            continue
        first = min(runs, key=lambda r: r["spec"]["seed"])
        folder = out / "pretrained" / task
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / first["spec"]["agent"], folder / MODEL_FILE)
        spec = {**first["spec"], "agent": MODEL_FILE}
        manifest = {
            "name": task,
            "source": f"{'QUICK' if quick else 'cpu'} config: {first['spec']['agent']}",
            "selected_by": f"PPO seed {SHIPPED_SEED}, its last checkpoint, fixed in advance",
            "usage": f"LearnedSchedule(initial_lr={spec['lr']}) deciding every "
            f"{spec['task']['steps_per_action']} SGD steps (momentum "
            f"{spec['task']['momentum']}), {spec['task']['max_actions']} decisions",
            "evaluation": {
                "kind": "dnn",
                "spec": spec,
                "test_loss": first["result"]["test_loss"],
            },
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        folders.append(folder)
    return folders


def replay(evaluation: dict[str, Any], folder: Path) -> float:
    """Repeat a manifest's recorded run with the model in ``folder``; return its test loss."""
    fields = dict(evaluation["spec"])
    task = fields.pop("task")
    task["model_kwargs"] = tuple(tuple(kv) for kv in task["model_kwargs"])
    fields["options"] = tuple(tuple(kv) for kv in fields.get("options", ()))
    spec = DNNRunSpec(task=TaskSpec(**task), **fields)
    return float(run_dnn(spec, root=str(folder), final_test=True)["test_loss"])
