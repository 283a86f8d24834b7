"""Hugging Face ``Trainer`` integration for :class:`greedylr.GreedyLR`.

There are two ways to use GreedyLR with a ``transformers.Trainer``:

1. **Evaluation-driven (no adapter).** Pass the scheduler itself:
   ``Trainer(..., optimizers=(optimizer, GreedyLR(optimizer)))`` with an ``eval_strategy`` and
   ``metric_for_best_model``. Because :class:`GreedyLR` is a ``ReduceLROnPlateau`` subclass, the
   Trainer does not step it after every optimizer step but calls
   ``scheduler.step(metrics[metric_for_best_model])`` after each evaluation, exactly as it does
   for its own ``lr_scheduler_type="greedy"``.

2. **Driven by any logged value, e.g. the training loss (this module).** Build a
   :class:`GreedyLRCallback`, give the Trainer its :attr:`~GreedyLRCallback.trainer_scheduler`
   and register the callback. The callback calls ``scheduler.step(logs[metric])`` whenever the
   Trainer logs ``metric`` (every ``logging_steps`` for ``"loss"``; after each evaluation for
   ``"eval_*"`` keys).

This module imports ``transformers`` and is therefore only imported on demand
(``from greedylr.hf import GreedyLRCallback``, or lazily through ``greedylr.GreedyLRCallback``).
"""

from __future__ import annotations

import warnings
from typing import Any

from torch.optim.lr_scheduler import LRScheduler
from transformers import TrainerCallback

from greedylr.scheduler import GreedyLR

__all__ = ["GreedyLRCallback", "HeldLR"]


class HeldLR(LRScheduler):
    """An ``LRScheduler`` facade over a :class:`GreedyLR` whose :meth:`step` changes nothing.

    Loops that call ``scheduler.step()`` after every optimizer step (the Hugging Face ``Trainer``,
    many hand-written loops) can be given this object while the real decisions are made by calling
    the wrapped :class:`GreedyLR` with a metric elsewhere. Its :meth:`state_dict` and
    :meth:`load_state_dict` are the GreedyLR's, so the Trainer's checkpoints (``scheduler.pt``)
    save and restore the full GreedyLR state, learning rates included.

    Parameters
    ----------
    scheduler : GreedyLR
        The scheduler that owns the learning rates.
    """

    def __init__(self, scheduler: GreedyLR) -> None:
        if not isinstance(scheduler, GreedyLR):
            raise TypeError(f"scheduler must be a GreedyLR, got {type(scheduler)!r}.")
        # LRScheduler.__init__ is not called: it would step the schedule once and patch
        # optimizer.step, neither of which a facade should do.
        self.scheduler = scheduler
        self.optimizer = scheduler.optimizer
        self.base_lrs = list(scheduler.base_lrs)
        self.last_epoch = 0

    def step(self, epoch: int | None = None) -> None:
        """Leave the learning rates alone (they belong to the wrapped GreedyLR); count the call."""
        self.last_epoch += 1

    def get_last_lr(self) -> list[float]:
        """The wrapped scheduler's current learning rates."""
        return self.scheduler.get_last_lr()

    def get_lr(self) -> list[float]:
        """Same as :meth:`get_last_lr` (the facade never computes new rates)."""
        return self.scheduler.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        """The wrapped :meth:`GreedyLR.state_dict`."""
        return self.scheduler.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Delegates to :meth:`GreedyLR.load_state_dict` (restores the optimizer's LRs too)."""
        self.scheduler.load_state_dict(state_dict)


class GreedyLRCallback(TrainerCallback):
    """Step a :class:`GreedyLR` from the values a Hugging Face ``Trainer`` logs.

    Parameters
    ----------
    scheduler : GreedyLR
        The scheduler to drive. It must wrap the optimizer the Trainer uses.
    metric : str, default "loss"
        Key of the logged value to feed to ``scheduler.step``. ``"loss"`` is the training loss
        averaged over the last ``logging_steps``; ``"eval_loss"`` (or any ``"eval_*"`` key) is
        logged after each evaluation.

    Notes
    -----
    A misspelled or never-logged ``metric`` would leave the learning rate untouched for the whole
    run, so the callback warns (once) when the first log in which ``metric`` belongs lacks it,
    naming the keys logged so far: the first evaluation log (a log with ``"eval_*"`` keys) for
    an ``"eval_*"`` metric, the first training log otherwise. It also warns at the end of
    training if ``metric`` never appeared and no such log came.

    Give the Trainer :attr:`trainer_scheduler` (a :class:`HeldLR`) as its scheduler, so that the
    Trainer neither builds its own schedule (which would overwrite the learning rates every step)
    nor steps the GreedyLR a second time after evaluations. :meth:`on_train_begin` raises
    ``ValueError`` when the Trainer holds any other scheduler, or when the Trainer's optimizer
    (unwrapped from accelerate's wrapper) does not own the scheduler's param groups.

    Examples
    --------
    >>> sched = GreedyLR(optimizer, patience=5, smooth=True, window_size=20)  # doctest: +SKIP
    >>> cb = GreedyLRCallback(sched, metric="loss")  # doctest: +SKIP
    >>> trainer = Trainer(model=model, args=TrainingArguments(..., logging_steps=1),
    ...                   optimizers=(optimizer, cb.trainer_scheduler), callbacks=[cb])  # doctest: +SKIP
    """

    def __init__(self, scheduler: GreedyLR, metric: str = "loss") -> None:
        if not isinstance(scheduler, GreedyLR):
            raise TypeError(f"scheduler must be a GreedyLR, got {type(scheduler)!r}.")
        if not isinstance(metric, str) or not metric:
            raise ValueError(f"metric must be a non-empty log key such as 'loss', got {metric!r}.")
        self.scheduler = scheduler
        self.metric = metric
        self.trainer_scheduler = HeldLR(scheduler)
        self.num_steps = 0
        self._logged_keys: set[str] = set()
        self._warned = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Refuse configurations in which something else also sets the learning rate, or in
        which the scheduler would set the learning rates of an optimizer the Trainer ignores."""
        optimizer = kwargs.get("optimizer")
        if optimizer is not None:
            # accelerate's AcceleratedOptimizer exposes the wrapped optimizer's param_groups list.
            ours, theirs = self.scheduler.optimizer.param_groups, optimizer.param_groups
            if [id(g) for g in ours] != [id(g) for g in theirs]:
                raise ValueError(
                    "The Trainer's optimizer is not the one this GreedyLR schedules, so its "
                    "learning rates would never change. Build the GreedyLR on the optimizer you "
                    "pass as Trainer(optimizers=(optimizer, callback.trainer_scheduler))."
                )
        lr_scheduler = kwargs.get("lr_scheduler")
        if lr_scheduler is self.trainer_scheduler:
            return
        if lr_scheduler is self.scheduler:
            if getattr(args, "eval_strategy", "no") == "no":
                return  # the Trainer steps a ReduceLROnPlateau only after evaluations
            raise ValueError(
                "The Trainer holds this GreedyLR itself and evaluates, so it would step it after "
                "every evaluation as well as this callback. Pass "
                "optimizers=(optimizer, callback.trainer_scheduler) instead, or drop the callback "
                "and let the Trainer step the scheduler with metric_for_best_model."
            )
        held = (
            "a scheduler built from args.lr_scheduler_type"
            if lr_scheduler is None
            else type(lr_scheduler).__name__
        )
        raise ValueError(
            f"The Trainer uses {held}, which would also set the learning rate. Pass "
            "optimizers=(optimizer, callback.trainer_scheduler) to the Trainer."
        )

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        """Feed ``logs[metric]`` to the scheduler when it is present (see the notes for the
        warning when it is not)."""
        if not logs:
            return
        if self.metric in logs:
            self.scheduler.step(logs[self.metric])
            self.num_steps += 1
            return
        self._logged_keys.update(logs)
        evaluation_log = any(key.startswith("eval_") for key in logs)
        if evaluation_log == self.metric.startswith("eval_"):
            self._warn_missing(
                "the first " + ("evaluation" if evaluation_log else "training") + " log"
            )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Warn if ``metric`` never appeared in a log during training."""
        self._warn_missing("the whole training run")

    def _warn_missing(self, where: str) -> None:
        if self.num_steps or self._warned:
            return
        self._warned = True
        warnings.warn(
            f"GreedyLRCallback(metric={self.metric!r}): {where} did not contain {self.metric!r}, "
            "so the GreedyLR has not been stepped and the learning rate has not changed. Keys "
            f"logged so far: {sorted(self._logged_keys)}. Evaluation metrics are logged with "
            "the 'eval_' prefix (e.g. 'eval_loss'); the training loss as 'loss'.",
            UserWarning,
            stacklevel=3,
        )
