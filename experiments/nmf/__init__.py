"""Paper 1: learning-rate schedules for stochastic NMF (``make reproduce-nmf``).

Modules: :mod:`~experiments.nmf.config` (run specs, configurations, tuning grids),
:mod:`~experiments.nmf.schedules` (the schedule comparison's runs and stages),
:mod:`~experiments.nmf.bound` (how tight the stability bound is), :mod:`~experiments.nmf.rl`
(the learned schedule's agents, runs and stages), :mod:`~experiments.nmf.rl_stats` (its
statistics), :mod:`~experiments.nmf.targets` (time to target and performance profiles),
:mod:`~experiments.nmf.report` (summaries and tables), :mod:`~experiments.nmf.plots` (figures)
and ``__main__`` (the command). The protocol is in ``docs/nmf_study.md``.
"""

from experiments.common.agents import thaw_ppo
from experiments.nmf.config import (
    ABLATION_PPO_SEEDS,
    ABLATIONS,
    AXIS_NAMES,
    REFERENCE,
    RL_FULL,
    RL_QUICK,
    SCHEDULES_FULL,
    SCHEDULES_QUICK,
    SHAPES,
    TUNING_BUDGET,
    VARIANT_PPO,
    VARIANT_SCHEDULE,
    VARIANTS,
    AgentSpec,
    LearnedRunSpec,
    NMFRunSpec,
    RLConfig,
    SchedulesConfig,
    SklearnRunSpec,
    agent_specs,
    axis_params,
    cell_name,
    tuning_axes,
    tuning_grid,
)
from experiments.nmf.report import (
    rl_table,
    schedules_table,
    summarise_rl,
    summarise_schedules,
    value_at,
    win_rate,
)
from experiments.nmf.rl import agent_dir, run_learned, train_agent
from experiments.nmf.schedules import run_nmf, run_sklearn, trajectory_result

__all__ = [
    "ABLATIONS",
    "ABLATION_PPO_SEEDS",
    "VARIANTS",
    "VARIANT_PPO",
    "VARIANT_SCHEDULE",
    "AXIS_NAMES",
    "REFERENCE",
    "RL_FULL",
    "RL_QUICK",
    "SCHEDULES_FULL",
    "SCHEDULES_QUICK",
    "SHAPES",
    "TUNING_BUDGET",
    "AgentSpec",
    "LearnedRunSpec",
    "NMFRunSpec",
    "RLConfig",
    "SchedulesConfig",
    "SklearnRunSpec",
    "agent_dir",
    "agent_specs",
    "axis_params",
    "cell_name",
    "rl_table",
    "run_learned",
    "run_nmf",
    "run_sklearn",
    "schedules_table",
    "summarise_rl",
    "summarise_schedules",
    "train_agent",
    "thaw_ppo",
    "trajectory_result",
    "tuning_axes",
    "tuning_grid",
    "value_at",
    "win_rate",
]
