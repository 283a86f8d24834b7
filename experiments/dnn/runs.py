"""The DNN study's runs and stages: one training run under a controller, PPO training, tuning
and random-search selection, and the train / held-out sweeps (protocol: ``docs/dnn.md``).

Everything in the train stage (PPO's observations and rewards, the controllers, tuning and random
search) sees the training and validation splits only; the test split is read once per final
model, at the end of a held-out run (``run_dnn(..., final_test=True)``, the eval stage only).
"""

from __future__ import annotations

import functools
import math
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from experiments.common import agents
from experiments.common.agents import load_policy, thaw_ppo
from experiments.common.controllers import ChunkSchedule
from experiments.common.progress import ProgressLine
from experiments.common.records import by_id, require_ok, short
from experiments.common.tuning import AxisResult, tune_log_axes
from experiments.dnn.config import (
    AGENT,
    GREEDY_CONFIG,
    PLATEAU_CONFIG,
    RANDOM_SEARCH,
    STEP_MILESTONES,
    WARMUP_FRACTION,
    WARMUP_GRID,
    AgentSpec,
    Cell,
    Config,
    DNNRunSpec,
    TaskSpec,
    agent_specs,
    check_run_spec,
    default_lr,
    env_id,
    initial_grids,
    peer_grids,
    peer_spec,
    random_search_specs,
    tuning_specs,
    warmup_specs,
)
from experiments.runner import run_sweep, spec_id
from rl_scheduler.tasks.lr_free import KNOB, LR_FREE, SCHEDULE_FREE, effective_lr


def make_task(task: TaskSpec, seed: int, optimizer: str, lr: float, options: tuple = ()) -> Any:
    """A one-instance :class:`~rl_scheduler.tasks.VisionTask` / ``TextTask`` for ``seed``
    (``options``: a peer's optimizer options)."""
    from rl_scheduler.tasks.torch_tasks import TextTask, VisionTask

    cls = VisionTask if task.name == "vision" else TextTask
    return cls([task.instance(seed)], **task.task_kwargs(optimizer, lr, options))


def make_controller(
    name: str, lr: float, n_chunks: int, steps_per_chunk: int, policy: Any = None
) -> ChunkSchedule:
    """The study's controller ``name`` (one of :data:`SCHEDULES` or ``"agent"``) from rate ``lr``."""
    return ChunkSchedule(
        name,
        lr,
        n_chunks,
        steps_per_chunk,
        step_milestones=STEP_MILESTONES,
        plateau=PLATEAU_CONFIG,
        greedy=GREEDY_CONFIG,
        policy=policy,
    )


def run_dnn(
    spec: DNNRunSpec, *, root: str = ".", progress: bool = False, final_test: bool = False
) -> dict[str, Any]:
    """Train one spec; return per-chunk curves and final numbers.

    ``final_test``: after the last chunk, measure the final model once on the test split
    (:meth:`~rl_scheduler.tasks.torch_base.TorchTask.evaluate_test`); nothing during the run
    reads it. Tuning and random-search runs leave it off.

    Returns
    -------
    dict
        ``steps``, ``train_loss``, ``val_loss``, ``metric`` (validation accuracy or perplexity)
        and ``time_s`` (cumulative training seconds) at the start and after every chunk;
        ``lrs`` (the rate of every chunk; a peer's constant ``lr``) and, for a peer,
        ``effective_lrs`` (the step size it applied by the end of every chunk:
        :func:`~rl_scheduler.tasks.lr_free.effective_lr`); ``final_val_loss`` / ``final_metric`` (``inf`` /
        ``nan`` when diverged), ``final_train_loss``, ``diverged``, ``wall_time_s``; with
        ``final_test``, ``test_loss`` and ``test_metric`` (test accuracy or perplexity; ``inf``
        / ``nan`` when diverged).
    """
    import torch

    check_run_spec(spec)
    if spec.task.device == "cpu":
        torch.set_num_threads(1)
    start = time.perf_counter()
    task = make_task(spec.task, spec.seed, spec.optimizer, spec.lr, spec.options)
    t = spec.task
    policy = None
    if spec.schedule == AGENT:
        from rl_scheduler.policy import LearnedSchedule

        policy = LearnedSchedule(load_policy(str(Path(root) / spec.agent)), initial_lr=spec.lr)
        if (policy.steps_per_action, policy.max_actions) != (t.steps_per_action, t.max_actions):
            raise ValueError(
                f"the agent decides every {policy.steps_per_action} steps for "
                f"{policy.max_actions} actions; the task needs {t.steps_per_action} x "
                f"{t.max_actions}."
            )
    control = make_controller(spec.schedule, spec.lr, t.max_actions, t.steps_per_action, policy)
    metric_name = "val_accuracy" if t.name == "vision" else "val_perplexity"
    stats = task.reset(instance=0)
    curves: dict[str, list[float]] = {
        "steps": [0],
        "train_loss": [short(stats.loss)],
        "val_loss": [short(stats.val_loss)],
        "metric": [short(task.metrics[metric_name])],
        "time_s": [0.0],
        "lrs": [],
    }
    peer = spec.optimizer in LR_FREE
    if peer:
        curves["effective_lrs"] = []
    train_time = 0.0
    label = f"{t.name} {spec.optimizer}/{spec.schedule} seed {spec.seed}"
    report = ProgressLine(label) if progress else None
    for k in range(t.max_actions):
        tic = time.perf_counter()
        lr = control(k, stats)
        stats = task.advance(lr, t.steps_per_action)
        train_time += time.perf_counter() - tic
        curves["lrs"].append(short(lr))
        if peer:
            curves["effective_lrs"].append(short(effective_lr(task.optim)))
        curves["steps"].append(stats.steps_done)
        curves["train_loss"].append(short(stats.loss) if not stats.diverged else math.inf)
        curves["val_loss"].append(short(stats.val_loss) if not stats.diverged else math.inf)
        curves["metric"].append(
            short(task.metrics.get(metric_name, math.nan)) if not stats.diverged else math.nan
        )
        curves["time_s"].append(round(train_time, 4))
        if report is not None:
            report(stats.steps_done, t.budget)
        if stats.diverged:
            break
    test: dict[str, float] = {}
    if final_test:
        loss, accuracy = (math.inf, math.nan) if stats.diverged else task.evaluate_test()
        metric = accuracy if t.name == "vision" else (math.exp(loss) if loss < 700 else math.inf)
        test = {"test_loss": short(loss), "test_metric": short(metric)}
    return (
        curves
        | test
        | {
            "metric_name": metric_name,
            "final_val_loss": curves["val_loss"][-1],
            "final_train_loss": curves["train_loss"][-1],
            "final_metric": curves["metric"][-1],
            "diverged": bool(stats.diverged),
            "wall_time_s": time.perf_counter() - start,
        }
    )


def train_agent(spec: AgentSpec, *, root: str = ".", progress: bool = False) -> dict[str, Any]:
    """Train (or resume) PPO seed ``spec.seed`` on a task's training seeds; list its checkpoints.

    ``progress``: print rate lines with an ETA while it trains.
    """
    from rl_scheduler.agent import checkpoint_steps

    folder = Path(root) / spec.folder
    rollout = spec.n_steps * spec.n_envs
    # A checkpoint every ~1/n_checkpoints of the run (PPO saves after whole rollouts).
    every = max(rollout, spec.total_timesteps // spec.n_checkpoints // rollout * rollout)
    _, trained = agents.train_agent(
        folder,
        {
            **spec.task.env_kwargs(spec.task.seeds("train", spec.n_train), spec.initial_lr),
            **dict(spec.env_options),
        },
        one_thread=spec.task.device == "cpu",
        progress=f"PPO {spec.task.name}" if progress else None,
        env_id=env_id(spec.task),
        total_timesteps=spec.total_timesteps,
        n_envs=spec.n_envs,
        seed=spec.seed,
        checkpoint_every=every,
        keep_checkpoints=spec.n_checkpoints + 1,
        ppo_kwargs={
            "n_steps": spec.n_steps,
            "batch_size": min(64, rollout),
            **thaw_ppo(spec.ppo_options),
        },
    )
    checkpoints = sorted((folder / "checkpoints").glob("ppo_*.zip"))
    curve = trained["curve"]
    return {
        "seed": spec.seed,
        "initial_lr": default_lr(spec.task) if spec.initial_lr is None else spec.initial_lr,
        "model": f"{spec.folder}/{agents.MODEL_FILE}",
        "checkpoints": [
            {"timesteps": checkpoint_steps(p), "path": f"{spec.folder}/checkpoints/{p.name}"}
            for p in checkpoints
        ],
        "timesteps": trained["timesteps"],
        "train_time_s": trained["train_time_s"],
        "episodes": len(curve),
        "diverged_episodes": sum(bool(r["diverged"]) for r in curve),
        "returns": [short(r["return"]) for r in curve],
        "episode_timesteps": [int(r["timesteps"]) for r in curve],
    }


def run_spec(
    spec: Any, *, root: str = ".", progress: bool = False, final_test: bool = False
) -> dict[str, Any]:
    """The run function of every sweep: PPO training or one training run, by spec type.

    ``progress``: long runs print rate lines with an ETA. ``final_test``: see :func:`run_dnn`.
    """
    if isinstance(spec, AgentSpec):
        return train_agent(spec, root=root, progress=progress)
    return run_dnn(spec, root=root, progress=progress, final_test=final_test)


def _final(record: dict | None) -> float:
    if record is None or record["status"] != "ok":
        return math.inf
    value = float(record["result"]["final_val_loss"])
    return value if math.isfinite(value) else math.inf


def _tuning_scores(
    config: Config, grids: dict[Cell, list[float]], records: dict[str, dict]
) -> dict[Cell, dict[float, float]]:
    """Per cell and value (a rate, or a peer's knob): the mean final validation loss over the
    tuning seeds."""
    return {
        cell: {v: _mean_final(tuning_specs(config, {cell: [v]}), records) for v in values}
        for cell, values in grids.items()
    }


def _mean_final(specs: list[DNNRunSpec], records: dict[str, dict]) -> float:
    return float(np.mean([_final(records.get(spec_id(s))) for s in specs]))


def tune_baselines(config: Config, sweep: Any, records: dict[str, dict]) -> dict[Cell, AxisResult]:
    """Tune every baseline's learning rate and every peer's knob on the tuning seeds.

    :func:`~experiments.common.tuning.tune_log_axes` from :func:`initial_grids` and
    :func:`peer_grids` with up to ``config.tune_rounds`` widening rounds; ``sweep(specs)`` runs
    (or resumes) the tuning runs of one round and returns their records, which are added to
    ``records``.
    """

    def evaluate(pending: dict[Cell, list[float]]) -> dict[Cell, dict[float, float]]:
        records.update(by_id(sweep(tuning_specs(config, pending))))
        return _tuning_scores(config, pending, records)

    initial = initial_grids(config) | peer_grids(config)
    return tune_log_axes(initial, evaluate, max_rounds=config.tune_rounds)


Peer = tuple[str, str]
"""A peer of a task: ``(task, peer)``."""


def tune_warmup(
    config: Config, tuned: dict[Cell, AxisResult], sweep: Any, records: dict[str, dict]
) -> dict[Peer, AxisResult]:
    """Schedule-Free's second axis: the warm-up fraction (:data:`WARMUP_GRID`, below 1) at the
    tuned ``lr``, widened like the first; the middle value reuses the ``lr`` tuning's runs."""
    knobs = {
        (name, peer): result.best
        for (name, peer, _), result in tuned.items()
        if peer in SCHEDULE_FREE
    }

    def evaluate(pending: dict[Peer, list[float]]) -> dict[Peer, dict[float, float]]:
        specs = warmup_specs(config, pending, knobs)
        records.update(by_id(sweep(specs)))
        scores: dict[Peer, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
        for cell, fractions in pending.items():
            for f in fractions:
                for spec in warmup_specs(config, {cell: [f]}, knobs):
                    scores[cell][f].append(_final(records.get(spec_id(spec))))
        return {c: {f: float(np.mean(v)) for f, v in fs.items()} for c, fs in scores.items()}

    initial = {cell: list(WARMUP_GRID) for cell in knobs}
    return tune_log_axes(initial, evaluate, max_rounds=config.tune_rounds, bounds=(0.0, 1.0))


def select_baselines(
    config: Config, tuned: dict[Cell, AxisResult], records: dict[str, dict]
) -> dict[str, dict[str, dict]]:
    """Per task and baseline ``"<optimizer>/<schedule>"``: the tuned learning rate.

    The rate with the lowest mean final validation loss over the tuning seeds (a diverged run
    counts as ``inf``), its grid after widening (``edge`` is ``"low"`` / ``"high"`` when the
    optimum is still at an end of it) and the wall time of all its tuning runs. Peers' cells
    are left to :func:`select_peers`.
    """
    best: dict[str, dict[str, dict]] = defaultdict(dict)
    for (task, optimizer, schedule), result in tuned.items():
        if optimizer in LR_FREE:
            continue
        specs = tuning_specs(config, {(task, optimizer, schedule): result.values})
        wall = sum(records[spec_id(s)]["wall_time_s"] for s in specs if spec_id(s) in records)
        best[task][f"{optimizer}/{schedule}"] = {
            "lr": result.best,
            "val_loss": result.scores[result.best],
            "search_wall_time_s": wall,
            "tuning": result.to_json(),
        }
    return {k: dict(v) for k, v in best.items()}


def select_peers(
    config: Config,
    tuned: dict[Cell, AxisResult],
    warmup: dict[Peer, AxisResult],
    records: dict[str, dict],
) -> dict[str, dict[str, dict]]:
    """Per task and peer: its tuned knob (and Schedule-Free's warm-up), as for a baseline.

    ``value`` is the knob's (:data:`~rl_scheduler.tasks.lr_free.KNOB`) tuned value, ``lr`` /
    ``options`` the run's settings; ``val_loss`` the tuning seeds' mean final validation loss
    at the chosen point; ``tuning`` / ``warmup_tuning`` the axes; ``tuning_runs`` and
    ``search_wall_time_s`` count every distinct tuning run of the peer.
    """
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for (task, peer, schedule), result in tuned.items():
        if peer not in LR_FREE:
            continue
        specs = tuning_specs(config, {(task, peer, schedule): result.values})
        fraction, score, warm = (
            WARMUP_FRACTION,
            result.scores[result.best],
            warmup.get((task, peer)),
        )
        if warm is not None:
            fraction, score = warm.best, warm.scores[warm.best]
            specs += warmup_specs(config, {(task, peer): warm.values}, {(task, peer): result.best})
        ids = {spec_id(s) for s in specs}
        chosen = peer_spec(config.task(task), 0, peer, result.best, fraction)
        out[task][peer] = {
            "knob": KNOB[peer],
            "value": result.best,
            "lr": chosen.lr,
            "options": [list(o) for o in chosen.options],
            "warmup_fraction": fraction if peer in SCHEDULE_FREE else None,
            "val_loss": score,
            "tuning_runs": len(ids),
            "search_wall_time_s": sum(records[i]["wall_time_s"] for i in ids if i in records),
            "tuning": result.to_json(),
            "warmup_tuning": None if warm is None else warm.to_json(),
        }
    return {k: dict(v) for k, v in out.items()}


def _stage_sizes(config: Config, n_trials: int) -> list[int]:
    """How many of ``n_trials`` trials each stage of ``hpo_fractions`` draws: its share of the
    whole budget (trials plus re-runs) less its own re-runs, at least one."""
    budget = n_trials + config.recheck_runs()
    return [
        min(n_trials, max(1, round(f * budget) - config.recheck_runs()))
        for f in config.hpo_fractions
    ]


def _best_trials(specs: list[DNNRunSpec], records: dict[str, dict], n: int) -> list[int]:
    """Indices of the ``n`` trials with the lowest validation loss (earlier first among equals;
    at least the best one)."""
    finals = [_final(records.get(spec_id(s))) for s in specs]
    return sorted(range(len(specs)), key=lambda i: (finals[i], i))[: max(n, 1)]


def _reruns(config: Config, spec: DNNRunSpec) -> list[DNNRunSpec]:
    """A trial on the tuning seeds other than its own."""
    return [replace(spec, seed=s) for s in config.tune_seeds(spec.task) if s != spec.seed]


def _stages(
    config: Config, specs: list[DNNRunSpec], records: dict[str, dict]
) -> list[tuple[float, int, dict[int, list[DNNRunSpec]]]]:
    """Per stage of ``hpo_fractions``: its fraction, the trials it draws (:func:`_stage_sizes`)
    and its ``hpo_recheck`` best trials (best first), each with its re-runs on the other tuning
    seeds (none when :meth:`~experiments.dnn.config.Config.recheck_runs` is 0)."""
    out = []
    for f, k in zip(config.hpo_fractions, _stage_sizes(config, len(specs)), strict=True):
        best = _best_trials(specs[:k], records, config.hpo_recheck)
        out.append(
            (f, k, {i: _reruns(config, specs[i]) if config.recheck_runs() else [] for i in best})
        )
    return out


def recheck_specs(
    config: Config, trials: dict[str, list[DNNRunSpec]], records: dict[str, dict]
) -> dict[str, list[DNNRunSpec]]:
    """Per task, every stage's ``hpo_recheck`` best trials re-run on the other tuning seeds
    (each run once, however many stages re-check it)."""
    out = {}
    for name, specs in trials.items():
        reruns = {
            spec_id(r): r
            for _, _, best in _stages(config, specs, records)
            for group in best.values()
            for r in group
        }
        out[name] = list(reruns.values())
    return out


def select_random_search(
    config: Config, trials: dict[str, list[DNNRunSpec]], records: dict[str, dict]
) -> dict[str, list[dict]]:
    """Per task and stage of ``hpo_fractions``, random search's pick: among the stage's trials
    (:func:`_stage_sizes`), its ``hpo_recheck`` best by their one run, the one with the lowest
    mean validation loss over all tuning seeds (its run and the re-runs of
    :func:`recheck_specs`)."""

    def wall(spec: DNNRunSpec) -> float:
        rec = records.get(spec_id(spec))
        return rec["wall_time_s"] if rec is not None else 0.0

    out = {}
    for name, specs in trials.items():
        stages = []
        for f, k, reruns in _stages(config, specs, records):
            best = list(reruns)
            means = {
                i: float(np.mean([_final(records.get(spec_id(r))) for r in [specs[i], *reruns[i]]]))
                for i in best
            }
            i = min(best, key=lambda j: (means[j], best.index(j)))
            s = specs[i]
            stages.append(
                {
                    "fraction": f,
                    "trials": k,
                    "recheck_runs": sum(len(r) for r in reruns.values()),
                    "best_trial": i,
                    "optimizer": s.optimizer,
                    "schedule": s.schedule,
                    "lr": s.lr,
                    "val_loss": means[i],
                    "trial_val_loss": _final(records.get(spec_id(s))),
                    "rechecked": [{"trial": j, "val_loss": means[j]} for j in best],
                    "search_wall_time_s": float(
                        sum(wall(x) for x in specs[:k])
                        + sum(wall(r) for rs in reruns.values() for r in rs)
                    ),
                }
            )
        out[name] = stages
    return out


def train_stage(config: Config, out: Path, **sweep: Any) -> dict[str, Any]:
    """Baseline tuning, random search and PPO training (``train.jsonl``; no test split).

    One sweep runs the initial tuning grids and the random-search trials in parallel; the
    widening rounds of the tuning follow, each one more (small) sweep. The PPO trainings come
    last (an agent with a ``rate_anchor`` starts from a tuned rate), with the random-search
    trials that match the tuning runs of that starting schedule; the trials for the agent's
    neutral runs are in the first sweep (:meth:`~experiments.dnn.config.Config.n_trials`), and
    then the re-runs of random search's best trials on the other tuning seeds.
    """
    trials = random_search_specs(config)
    specs = [
        *tuning_specs(config),
        *tuning_specs(config, peer_grids(config)),
        *(s for t in trials.values() for s in t),
    ]
    fn = functools.partial(run_spec, root=str(out), progress=not sweep.get("quiet", False))
    done = by_id(run_sweep(fn, specs, out / "train.jsonl", **sweep))

    def more(batch: list[Any]) -> list[dict]:
        return run_sweep(fn, batch, out / "train.jsonl", **sweep)

    tuned = tune_baselines(config, more, done)
    warmup = tune_warmup(config, tuned, more, done)
    start_cells = {t.name: config.agent_start_cell(t) for t in config.tasks}
    start_lrs = {name: tuned[c].best for name, c in start_cells.items() if c is not None}
    anchor_runs = {
        name: len(tuning_specs(config, {c: tuned[c].values}))
        for name, c in start_cells.items()
        if c is not None
    }
    ppo = agent_specs(config, start_lrs)
    trials = random_search_specs(config, anchor_runs)
    done.update(by_id(more([*ppo, *(s for t in trials.values() for s in t)])))
    reruns = [s for t in recheck_specs(config, trials, done).values() for s in t]
    if reruns:
        done.update(by_id(more(reruns)))  # a failed re-run scores inf, as a failed trial does
    require_ok([done[spec_id(a)] for a in ppo], "agent training")
    agents_by_task: dict[str, list[dict]] = defaultdict(list)
    for a in ppo:
        agents_by_task[a.task.name].append(done[spec_id(a)]["result"])
    return {
        "agents": {name: sorted(v, key=lambda r: r["seed"]) for name, v in agents_by_task.items()},
        "agent_start": {
            name: {"cell": list(c), "lr": start_lrs[name], "anchor_tuning_runs": anchor_runs[name]}
            for name, c in start_cells.items()
            if c is not None
        },
        "baselines": select_baselines(config, tuned, done),
        "peers": select_peers(config, tuned, warmup, done),
        "random_search": select_random_search(config, trials, done),
    }


def agent_method(timesteps: int, seed: int) -> str:
    """The eval plan's name of PPO seed ``seed``'s checkpoint after ``timesteps`` actions."""
    return f"{AGENT}@{timesteps}:seed{seed}"


def eval_plan(config: Config, trained: dict[str, Any]) -> list[tuple[str, str, DNNRunSpec]]:
    """Every held-out run as ``(task, method, spec)``.

    Methods: the ten tuned baselines, the tuned peers (by their names), ``random_search@<trials>``
    (the winner, by validation loss, after that many trials) and :func:`agent_method` for every
    checkpoint of every PPO seed. The agent reported is each seed's *last* checkpoint (no selection among checkpoints);
    the earlier ones give the cost-quality curve.
    """
    plan = []
    for task in config.tasks:
        methods: list[tuple[str, str, str, float, str]] = []
        for name, best in trained["baselines"][task.name].items():
            optimizer, schedule = name.split("/")
            methods.append((name, optimizer, schedule, best["lr"], ""))
        for stage in trained["random_search"][task.name]:
            methods.append(
                (
                    f"{RANDOM_SEARCH}@{stage['trials']}",
                    stage["optimizer"],
                    stage["schedule"],
                    stage["lr"],
                    "",
                )
            )
        for agent in trained["agents"][task.name]:
            for ckpt in agent["checkpoints"]:
                name = agent_method(ckpt["timesteps"], agent["seed"])
                methods.append(
                    (name, "sgd", AGENT, agent.get("initial_lr", default_lr(task)), ckpt["path"])
                )
        for method, optimizer, schedule, lr, path in methods:
            for seed in config.eval_seeds(task):
                plan.append(
                    (task.name, method, DNNRunSpec(task, seed, optimizer, schedule, lr, path))
                )
        for peer, best in trained.get("peers", {}).get(task.name, {}).items():
            fraction = best["warmup_fraction"] or WARMUP_FRACTION
            for seed in config.eval_seeds(task):
                plan.append((task.name, peer, peer_spec(task, seed, peer, best["value"], fraction)))
    return plan


def eval_stage(
    config: Config, trained: dict[str, Any], out: Path, **sweep: Any
) -> list[tuple[str, str, dict]]:
    """Run the held-out plan (``eval.jsonl``), each run ending with its one test evaluation;
    return ``(task, method, record)`` triples."""
    plan = eval_plan(config, trained)
    fn = functools.partial(
        run_spec, root=str(out), progress=not sweep.get("quiet", False), final_test=True
    )
    records = by_id(run_sweep(fn, [s for _, _, s in plan], out / "eval.jsonl", **sweep))
    return [(task, method, records[spec_id(spec)]) for task, method, spec in plan]
