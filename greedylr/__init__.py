"""GreedyLR: a loss-feedback learning-rate scheduler for torch optimizers (paper 3).

Public API
----------
:class:`GreedyLR`
    The scheduler (``variant="paper"`` or ``variant="transformers"``).
:class:`HypergradientSGD`, :class:`HypergradientAdam`
    Hypergradient-descent baselines with a global, per-group, per-parameter or per-element rate.
:class:`StochasticLineSearch` (alias :data:`ArmijoSGD`)
    SGD with a stochastic Armijo line search.
:class:`GreedyLRCallback`, :class:`HeldLR`
    Hugging Face ``Trainer`` adapter; imported lazily because it needs ``transformers``.

The package depends only on ``torch``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from greedylr.baselines import (
    LR_GRANULARITIES,
    ArmijoSGD,
    HypergradientAdam,
    HypergradientSGD,
    StochasticLineSearch,
)
from greedylr.scheduler import VARIANTS, GreedyLR, NonFiniteMetricWarning

if TYPE_CHECKING:  # pragma: no cover
    from greedylr.hf import GreedyLRCallback, HeldLR

__all__ = [
    "ArmijoSGD",
    "GreedyLR",
    "GreedyLRCallback",
    "HeldLR",
    "HypergradientAdam",
    "HypergradientSGD",
    "LR_GRANULARITIES",
    "NonFiniteMetricWarning",
    "StochasticLineSearch",
    "VARIANTS",
]

_LAZY = {"GreedyLRCallback", "HeldLR"}


def __getattr__(name: str) -> Any:
    # The Hugging Face adapter needs `transformers`; import it only when asked for.
    if name in _LAZY:
        from greedylr import hf

        return getattr(hf, name)
    raise AttributeError(f"module 'greedylr' has no attribute {name!r}")
