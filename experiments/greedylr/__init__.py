"""Paper 3: GreedyLR against classic schedules and adaptive baselines (``make reproduce-greedylr``).

Modules: :mod:`~experiments.greedylr.config` (vocabulary, run spec, configurations),
:mod:`~experiments.greedylr.training` (one run), :mod:`~experiments.greedylr.scoring` (pairs and
labels), :mod:`~experiments.greedylr.report` (summary and tables), :mod:`~experiments.greedylr.plots`
(figures) and ``__main__`` (the command). The methodology is in ``docs/greedylr_study.md``.
The names below are the study's public API.
"""

from experiments.greedylr.config import (
    ADAPTIVE,
    FULL,
    GREEDY_CONFIG,
    INITIAL_LR,
    OPTIMIZERS,
    PAPER_SHARES,
    QUICK,
    SCHEDULES,
    STAGES,
    WORKLOADS,
    Config,
    GreedyRunSpec,
    check_spec,
    factor_specs,
    main_specs,
    robust_specs,
)
from experiments.greedylr.report import markdown_table, summarise
from experiments.greedylr.scoring import (
    BOTH_DIVERGED,
    aggregate,
    label_delta,
    log_ratio_delta,
    loss_at,
    pair_delta,
    pairs_of,
    run_table,
    runs_from_table,
    score_pairs,
    tally,
)
from experiments.greedylr.training import (
    HD_GRANULARITY,
    eval_steps,
    make_optimizer,
    make_stepper,
    make_workload,
    run_greedy,
)

__all__ = [
    "ADAPTIVE",
    "BOTH_DIVERGED",
    "FULL",
    "GREEDY_CONFIG",
    "HD_GRANULARITY",
    "INITIAL_LR",
    "OPTIMIZERS",
    "PAPER_SHARES",
    "QUICK",
    "SCHEDULES",
    "STAGES",
    "WORKLOADS",
    "Config",
    "GreedyRunSpec",
    "aggregate",
    "check_spec",
    "eval_steps",
    "factor_specs",
    "label_delta",
    "log_ratio_delta",
    "loss_at",
    "main_specs",
    "make_optimizer",
    "make_stepper",
    "make_workload",
    "markdown_table",
    "pair_delta",
    "pairs_of",
    "robust_specs",
    "run_greedy",
    "run_table",
    "runs_from_table",
    "score_pairs",
    "summarise",
    "tally",
]
