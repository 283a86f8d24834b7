"""GreedyLR: raise the learning rate while the monitored metric improves, lower it when it does not.

The rule (Subramanian, Krishnamoorthy and Murthy, arXiv:2512.14527): with a factor ``F`` in
``(0, 1)`` the learning rate is divided by ``F`` after a run of improvements and multiplied by ``F``
after a run of non-improvements, with patience, an improvement threshold, cooldown/warmup holds,
per-group bounds, an optional moving average of the metric and a reset after the rate has sat at
its floor for a while. The paper states the rule twice: a bare form that compares each loss with
the *previous* one (Algorithm 1, App. A.3; the form its theory analyses) and a detailed form that
compares with the best value so far (App. A.4, Algorithms 2-3). Both variants implement the
detailed form.

Two variants live behind one class, selected with ``variant=``:

``"paper"`` (default)
    Follows arXiv 2512.14527, App. A.4, Algorithms 2-3 where they are explicit: every metric is
    compared with the best value so far, also during a hold; a *cooldown* (after a decrease) zeroes
    the bad-step count and a *warmup* (after an increase) the good-step count; a change happens
    when a count exceeds ``patience``; decreases are ``max(lr * F, min_lr)``. This is torch's
    ``ReduceLROnPlateau`` bookkeeping mirrored for increases. (The paper's prose in App. A.7
    describes the holds differently, as the rate continuing to move.) Where the paper is silent,
    ambiguous or self-contradictory, the following are this repository's choices, not the paper's:

    - ``eps`` is relative to the current rate (Algorithm 3: absolute);
    - ``min_lr``/``max_lr`` default to ``1e-3``/``10`` times each group's initial rate (the paper
      gives no defaults);
    - a relative threshold is a fraction of ``|best|`` (Algorithm 3 scales ``best`` itself: the
      same bar for ``best >= 0``, the wrong side of ``best`` for negative metrics), and the
      default threshold is absolute (transformers' ``1e-6``);
    - ``reset_start`` counts non-improving steps made with every group at its floor and restarts
      when the rate leaves it (the paper's printed floor test looks like a typo); the reset
      restores the initial rates and clears the smoothing window (the paper's reset does not
      restore the rate);
    - the moving average is recomputed exactly (``math.fsum``) on every call (the paper does not
      give its arithmetic);
    - non-finite metrics are handled by ``on_nonfinite`` (the paper does not address them).

``"transformers"``
    Step-for-step parity with ``transformers.GreedyLR`` (transformers 5.23): during a hold the
    metric is not compared at all and both counters are cleared; ``reset_start`` counts *decrease
    attempts* made while every group is at its floor; ``eps`` is absolute; ``min_lr=1e-3`` and
    ``max_lr=1.0`` are absolute defaults; a relative threshold scales ``best`` itself, as in
    Algorithm 3 (the wrong side of ``best`` when it is negative); the moving average is a running
    sum. The same finite metric sequence gives the same learning rates, bit for bit (unless the
    running sum overflows: transformers then stays at ``inf`` for good, here the sum is
    recomputed from the window).

``docs/greedylr_usage.md`` compares the paper and both variants rule by rule, with sections cited.

Both variants share the handling of non-finite metrics (see ``on_nonfinite``), which differs from
transformers on purpose: there a single NaN poisons the moving average for ``window_size`` steps and
``-inf`` (in ``"min"`` mode) becomes a best value that can never be beaten.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal, SupportsFloat

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau

from greedylr._validation import check_bool, check_choice, check_int, check_real, per_group

__all__ = [
    "GreedyLR",
    "NonFiniteMetricWarning",
    "PAPER_MAX_LR_RATIO",
    "PAPER_MIN_LR_RATIO",
    "TRANSFORMERS_MAX_LR",
    "TRANSFORMERS_MIN_LR",
    "VARIANTS",
]

VARIANTS: tuple[str, ...] = ("paper", "transformers")
#: ``variant="paper"``: default floor, as a fraction of each group's initial learning rate.
PAPER_MIN_LR_RATIO = 1e-3
#: ``variant="paper"``: default ceiling, as a multiple of each group's initial learning rate.
PAPER_MAX_LR_RATIO = 10.0
#: ``variant="transformers"``: transformers' absolute defaults, kept for parity.
TRANSFORMERS_MIN_LR = 1e-3
TRANSFORMERS_MAX_LR = 1.0

_STATE_FORMAT = 1
_EPOCH_DEPRECATION = (
    "Passing `epoch` to GreedyLR.step() is deprecated (as in torch's schedulers); it only sets "
    "`last_epoch`. Call step(metric) instead."
)


class NonFiniteMetricWarning(RuntimeWarning):
    """Emitted when :meth:`GreedyLR.step` receives a NaN or infinite metric."""


def _exact_sum(values: list[float]) -> float:
    """Correctly rounded sum of finite values (``+-inf`` only if the sum itself overflows)."""
    try:
        return math.fsum(values)
    except OverflowError:  # a partial sum overflowed: scale by a power of two and back
        return math.fsum(v * 2.0**-600 for v in values) * 2.0**600


def _read_lr(group: dict[str, Any]) -> float:
    return float(group["lr"])


def _write_lr(group: dict[str, Any], value: float) -> None:
    # Same convention as torch's schedulers: a tensor LR is updated in place, never replaced.
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(value)
    else:
        group["lr"] = value


def _check_threshold(threshold_mode: Any, threshold: Any) -> tuple[str, float]:
    mode = check_choice("threshold_mode", threshold_mode, ("rel", "abs"))
    if mode == "abs":
        return mode, check_real("threshold", threshold, low=0.0)
    # A relative threshold >= 1 makes every call a non-improvement (inf * 0 is nan, inf * -x -inf).
    return mode, check_real(
        "threshold (with threshold_mode='rel')", threshold, low=0.0, high=1.0, high_open=True
    )


class GreedyLR(ReduceLROnPlateau):
    r"""Loss-feedback learning-rate scheduler for any :class:`torch.optim.Optimizer`.

    Call :meth:`step` with the monitored metric after each evaluation (or each training step).
    After more than ``patience`` consecutive improvements every group's learning rate is divided
    by ``factor``; after more than ``patience`` consecutive non-improvements it is multiplied by
    ``factor``. Rates are clamped to ``[min_lr, max_lr]`` per group, so the ratios between groups
    are preserved until a group reaches a bound (and, with the relative default bounds of the
    paper variant, even then).

    ``GreedyLR`` subclasses :class:`torch.optim.lr_scheduler.ReduceLROnPlateau` (itself an
    :class:`~torch.optim.lr_scheduler.LRScheduler`), so code that special-cases metric-driven
    schedulers treats it correctly: PyTorch Lightning steps it with the ``"monitor"`` value and
    the Hugging Face ``Trainer`` steps it after each evaluation with ``metric_for_best_model``.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Wrapped optimizer. All its param groups are scheduled.
    mode : {"min", "max"}, default "min"
        ``"min"``: a lower metric is better (a loss). ``"max"``: a higher metric is better.
    factor : float, default 0.95
        ``F`` in the open interval ``(0, 1)``. The LR is divided by ``F`` on improvement and
        multiplied by ``F`` on worsening. ``0`` and negative values are rejected (transformers
        accepts them and then produces a zero or sign-flipping LR).
    patience : int, default 10
        A change happens on the ``patience + 1``-th consecutive good (or bad) step.
    threshold : float, default 1e-6
        Minimum improvement over the best value that counts as an improvement (``>= 0``, and
        ``< 1`` with ``threshold_mode="rel"``).
    threshold_mode : {"rel", "abs"}, default "abs"
        ``"abs"``: better means ``metric < best - threshold`` (``> best + threshold`` in max
        mode). ``"rel"``, paper variant: ``metric < best - threshold * |best|``
        (``> best + threshold * |best|``). ``"rel"``, transformers variant:
        ``metric < best * (1 - threshold)`` (``> best * (1 + threshold)``), as in the paper's
        Algorithm 3, transformers and torch; for a negative ``best`` that bar lies on the wrong
        side of ``best``, so worsening metrics count as improvements. The paper only has the
        relative form; the ``"abs"`` default is transformers'.
    cooldown : int, default 0
        Hold after a decrease. Paper variant (as Algorithm 2 of the paper): bad steps are ignored
        for ``cooldown`` steps (improvements still count). Transformers variant: the next
        ``cooldown`` steps are skipped entirely.
    warmup : int, default 0
        Hold after an increase. Paper variant (as Algorithm 2 of the paper): good steps are
        ignored for ``warmup`` steps (worsening still counts). Transformers variant: the next
        ``warmup`` steps are skipped entirely (only when no cooldown is running).
    min_lr, max_lr : float or sequence of float, optional
        Per-group bounds: a number for every group, or one number per group in a list, tuple or
        1-D array/tensor (``max_lr`` may be ``math.inf``).
        ``None`` selects the variant's default: ``1e-3``/``10`` times each group's initial LR for
        ``"paper"`` (our choice; the paper gives no defaults), the absolute ``1e-3``/``1.0`` of
        transformers for ``"transformers"``.
        In the paper variant an initial LR outside ``[min_lr, max_lr]`` raises ``ValueError``; in
        the transformers variant it only warns (decreases below ``min_lr``, or increases above
        ``max_lr``, are then silent no-ops, exactly as in transformers).
    eps : float, default 1e-8
        Changes not larger than ``eps`` are skipped. Paper variant: relative to the current LR
        (``|new - old| > eps * old``; our choice, the paper's Algorithm 3 uses an absolute
        ``eps``), so it never freezes small fine-tuning LRs. Transformers variant: absolute, as in
        the paper and transformers (an LR below about ``eps / (1 - F)`` can no longer move).
    verbose : bool, default False
        Print a line for every change and reset.
    smooth : bool, default False
        Compare a moving average of the last ``window_size`` finite metrics instead of the raw
        metric. Paper variant: ``math.fsum(window) / len(window)``, exact on every call.
        Transformers variant: transformers' running sum (same rounding), recomputed from the window
        only when it overflows; a huge value leaving the window can still cancel the sum there.
    window_size : int, default 50
        Length of the moving-average window (``>= 1``).
    reset_start : int or None, default 500
        After the LR has sat at its floor for ``reset_start`` units every group is reset to its
        initial LR and the best value, counters, holds and smoothing window are cleared.
        Paper variant: the unit is a non-improving :meth:`step` call made with every group at its
        floor (within the relative ``eps``; a floor of ``0`` is never reached); improving calls
        at the floor are not counted, and leaving the floor restarts the count, so a run that
        keeps improving is never reset. Transformers variant: the unit is a decrease attempt
        made while every group is at or below its floor (transformers counts attempts, not
        steps, so with ``patience=10`` "500" means about 5500 steps). ``None`` disables the
        reset. Must be ``>= 1`` (transformers' ``0`` behaves exactly like ``1``). Both variants
        restore the initial LRs on a reset; the paper's Algorithm 3 does not, and its floor test
        is ambiguous, so the paper variant's counting rule is our choice.
    variant : {"paper", "transformers"}, default "paper"
        Which rule set to follow; see the module docstring and ``docs/greedylr_usage.md``.
    on_nonfinite : {"worse", "skip", "raise"}, default "worse"
        What a NaN or infinite metric does. ``"worse"``: it counts as a non-improvement but never
        enters the smoothing window or the best value. ``"skip"``: the call is ignored entirely
        (no counter, hold or epoch moves). ``"raise"``: ``ValueError``. ``"worse"`` and ``"skip"``
        emit a :class:`NonFiniteMetricWarning`.

    Attributes
    ----------
    base_lrs : list of float
        Initial learning rate of each group (the reset target).
    min_lrs, max_lrs : list of float
        Resolved per-group bounds.
    best : float
        Best (smoothed) metric since the start or the last reset.
    num_good_epochs, num_bad_epochs : int
        Current runs of improving / non-improving steps.
    cooldown_counter, warmup_counter : int
        Remaining hold steps.
    num_resets : int
        Number of resets so far.
    last_epoch : int
        Number of (non-skipped) :meth:`step` calls.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> sched = GreedyLR(opt, factor=0.5, patience=0)
    >>> for loss in [1.0, 0.9, 0.95]:
    ...     sched.step(loss)
    >>> [round(lr, 6) for lr in sched.get_last_lr()]
    [0.2]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: Literal["min", "max"] = "min",
        factor: float = 0.95,
        patience: int = 10,
        threshold: float = 1e-6,
        threshold_mode: Literal["rel", "abs"] = "abs",
        cooldown: int = 0,
        warmup: int = 0,
        min_lr: float | Sequence[float] | None = None,
        max_lr: float | Sequence[float] | None = None,
        eps: float = 1e-8,
        verbose: bool = False,
        smooth: bool = False,
        window_size: int = 50,
        reset_start: int | None = 500,
        *,
        variant: Literal["paper", "transformers"] = "paper",
        on_nonfinite: Literal["worse", "skip", "raise"] = "worse",
    ) -> None:
        # ReduceLROnPlateau.__init__ is deliberately not called: it would install its own
        # (decrease-only) state. Everything the LRScheduler API relies on is set here.
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer)!r}.")
        self.optimizer = optimizer
        self.variant = check_choice("variant", variant, VARIANTS)
        n_groups = len(optimizer.param_groups)
        self.base_lrs: list[float] = [_read_lr(g) for g in optimizer.param_groups]
        for i, lr in enumerate(self.base_lrs):
            if not (math.isfinite(lr) and lr >= 0):
                raise ValueError(f"param group {i} has lr={lr!r}; GreedyLR needs a finite lr >= 0.")

        if min_lr is None:
            if self.variant == "paper":
                min_lr = [PAPER_MIN_LR_RATIO * lr for lr in self.base_lrs]
            else:
                min_lr = TRANSFORMERS_MIN_LR
        if max_lr is None:
            if self.variant == "paper":
                max_lr = [PAPER_MAX_LR_RATIO * lr for lr in self.base_lrs]
            else:
                max_lr = TRANSFORMERS_MAX_LR
        self._set_hyperparameters(
            mode=mode,
            factor=factor,
            patience=patience,
            threshold=threshold,
            threshold_mode=threshold_mode,
            cooldown=cooldown,
            warmup=warmup,
            min_lrs=per_group("min_lr", min_lr, n_groups),
            max_lrs=per_group("max_lr", max_lr, n_groups, allow_inf=True),
            eps=eps,
            verbose=verbose,
            smooth=smooth,
            window_size=window_size,
            reset_start=reset_start,
            on_nonfinite=on_nonfinite,
        )
        self._check_initial_lrs_within_bounds()

        self.last_epoch = 0
        self.num_resets = 0
        self._clear_progress()
        self._last_lr: list[float] = self._current_lrs()

    # ------------------------------------------------------------------ configuration

    def _set_hyperparameters(
        self,
        *,
        mode: Any,
        factor: Any,
        patience: Any,
        threshold: Any,
        threshold_mode: Any,
        cooldown: Any,
        warmup: Any,
        min_lrs: list[float],
        max_lrs: list[float],
        eps: Any,
        verbose: Any,
        smooth: Any,
        window_size: Any,
        reset_start: Any,
        on_nonfinite: Any,
    ) -> None:
        self.mode = check_choice("mode", mode, ("min", "max"))
        self.factor = check_real("factor", factor, low=0.0, high=1.0, low_open=True, high_open=True)
        self.patience = check_int("patience", patience)
        self.threshold_mode, self.threshold = _check_threshold(threshold_mode, threshold)
        self.cooldown = check_int("cooldown", cooldown)
        self.warmup = check_int("warmup", warmup)
        for i, (lo, hi) in enumerate(zip(min_lrs, max_lrs, strict=True)):
            if lo > hi:
                raise ValueError(
                    f"min_lr must not exceed max_lr; param group {i} has min_lr={lo!r} > "
                    f"max_lr={hi!r}."
                )
        self.min_lrs = list(min_lrs)
        self.max_lrs = list(max_lrs)
        self.eps = check_real("eps", eps, low=0.0)
        self.verbose = check_bool("verbose", verbose)
        self.smooth = check_bool("smooth", smooth)
        self.window_size = check_int("window_size", window_size, low=1)
        if reset_start is not None:
            reset_start = check_int("reset_start (or None to disable resets)", reset_start, low=1)
        self.reset_start: int | None = reset_start
        self.on_nonfinite = check_choice("on_nonfinite", on_nonfinite, ("worse", "skip", "raise"))
        # ReduceLROnPlateau compatibility: the value a fresh `best` starts from.
        self.mode_worse = math.inf if self.mode == "min" else -math.inf

    def _check_initial_lrs_within_bounds(self) -> None:
        for i, lr in enumerate(self.base_lrs):
            lo, hi = self.min_lrs[i], self.max_lrs[i]
            if lo <= lr <= hi:
                continue
            side = f"min_lr={lo!r}" if lr < lo else f"max_lr={hi!r}"
            effect = "decreases" if lr < lo else "increases"
            message = (
                f"param group {i} starts at lr={lr!r}, outside [min_lr, max_lr] ({side}); "
                f"{effect} of that group would be silent no-ops."
            )
            if self.variant == "paper":
                raise ValueError(
                    message + " Pass bounds that contain the initial lr, or leave min_lr/max_lr "
                    f"as None for {PAPER_MIN_LR_RATIO:g}x / {PAPER_MAX_LR_RATIO:g}x the initial lr."
                )
            warnings.warn(
                message + " (variant='transformers' keeps transformers' behaviour.)",
                UserWarning,
                stacklevel=3,
            )

    def _clear_progress(self) -> None:
        """Forget the best value, counters, holds, floor count and smoothing window."""
        self.best = self.mode_worse
        self.num_good_epochs = 0
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.warmup_counter = 0
        self.floor_count = 0
        self._window: list[float] = []
        self._window_sum = 0.0

    # ------------------------------------------------------------------ public API

    @property
    def in_warmup(self) -> bool:
        """Whether an increase hold is running."""
        return self.warmup_counter > 0

    def get_last_lr(self) -> list[float]:
        """Learning rate of each param group after the last :meth:`step` (a fresh list)."""
        return list(self._last_lr)

    def step(self, metrics: SupportsFloat, epoch: int | None = None) -> None:  # type: ignore[override]
        """Feed one metric value and update the learning rates.

        Parameters
        ----------
        metrics : float or 0-d tensor
            The monitored quantity (a loss in ``"min"`` mode, e.g. accuracy in ``"max"`` mode).
        epoch : int, optional
            Deprecated, as in torch's schedulers: only overrides :attr:`last_epoch`.
        """
        value = metrics if type(metrics) is float else self._as_float(metrics)
        if not math.isfinite(value):
            if self.on_nonfinite == "raise":
                raise ValueError(
                    f"GreedyLR.step() got a non-finite metric ({value!r}) and on_nonfinite='raise'."
                )
            action = (
                "counted as a non-improvement"
                if self.on_nonfinite == "worse"
                else "ignored (on_nonfinite='skip')"
            )
            warnings.warn(
                f"GreedyLR.step() got a non-finite metric ({value!r}); {action}. It does not "
                "enter the smoothing window or the best value.",
                NonFiniteMetricWarning,
                stacklevel=2,
            )
            if self.on_nonfinite == "skip":
                return
            current: float | None = None
        else:
            current = self._smoothed(value) if self.smooth else value
            if not math.isfinite(current):  # overflow of the running sum: treat as worse
                current = None

        if epoch is not None:
            warnings.warn(_EPOCH_DEPRECATION, UserWarning, stacklevel=2)
            self.last_epoch = epoch
        else:
            self.last_epoch += 1

        groups = self.optimizer.param_groups
        if self.variant == "transformers":
            self._step_transformers(current)  # its reset rule lives in _decrease/_increase
            self._last_lr = [float(g["lr"]) for g in groups]
            return

        improved = self._step_paper(current)
        lrs = [float(g["lr"]) for g in groups]
        if self.reset_start is not None:  # paper reset rule: non-improving calls at the floor
            if not self._at_floor(lrs):
                self.floor_count = 0
            elif not improved:
                self.floor_count += 1
                if self.floor_count >= self.reset_start:
                    self._restart()
                    lrs = [float(g["lr"]) for g in groups]
        self._last_lr = lrs

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: hyperparameters, progress and the current LRs.

        Only plain Python scalars, strings and lists, so it survives
        ``torch.load(..., weights_only=True)`` (what the Hugging Face ``Trainer`` uses) and JSON
        (apart from ``inf`` in ``best``/``max_lrs``).
        """
        return {
            "format": _STATE_FORMAT,
            "variant": self.variant,
            "mode": self.mode,
            "factor": self.factor,
            "patience": self.patience,
            "threshold": self.threshold,
            "threshold_mode": self.threshold_mode,
            "cooldown": self.cooldown,
            "warmup": self.warmup,
            "min_lrs": list(self.min_lrs),
            "max_lrs": list(self.max_lrs),
            "eps": self.eps,
            "verbose": self.verbose,
            "smooth": self.smooth,
            "window_size": self.window_size,
            "reset_start": self.reset_start,
            "on_nonfinite": self.on_nonfinite,
            "base_lrs": list(self.base_lrs),
            "best": self.best,
            "num_good_epochs": self.num_good_epochs,
            "num_bad_epochs": self.num_bad_epochs,
            "cooldown_counter": self.cooldown_counter,
            "warmup_counter": self.warmup_counter,
            "floor_count": self.floor_count,
            "num_resets": self.num_resets,
            "last_epoch": self.last_epoch,
            "window": list(self._window),
            "window_sum": self._window_sum,
            "last_lr": list(self._last_lr),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` and write its learning rates into the optimizer.

        Everything is restored, the hyperparameters (``variant``, ``factor``, bounds, ``verbose``,
        ...) included: the saved values replace those given to the constructor. The optimizer's
        LRs are set from the saved state, so a resumed run continues identically whether or not
        the optimizer's own state dict is loaded as well. An invalid state raises before anything
        is changed.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict)!r}.")
        if state_dict.get("format") != _STATE_FORMAT:
            raise ValueError(
                f"not a GreedyLR state dict of format {_STATE_FORMAT} "
                f"(got format={state_dict.get('format')!r})."
            )
        missing = sorted(set(self.state_dict()) - set(state_dict))
        if missing:
            raise ValueError(f"state_dict is missing the keys {missing}.")
        n_groups = len(self.optimizer.param_groups)
        for key in ("min_lrs", "max_lrs", "base_lrs", "last_lr"):
            if len(state_dict[key]) != n_groups:
                raise ValueError(
                    f"state_dict[{key!r}] has {len(state_dict[key])} entries but the optimizer has "
                    f"{n_groups} param groups."
                )
        before = dict(self.__dict__)  # attributes are replaced below, never mutated in place
        try:
            self._load_checked(state_dict)
        except Exception:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        for group, lr in zip(self.optimizer.param_groups, self._last_lr, strict=True):
            _write_lr(group, lr)

    def _load_checked(self, state_dict: dict[str, Any]) -> None:
        n_groups = len(self.optimizer.param_groups)
        self.variant = check_choice("variant", state_dict["variant"], VARIANTS)
        self._set_hyperparameters(
            mode=state_dict["mode"],
            factor=state_dict["factor"],
            patience=state_dict["patience"],
            threshold=state_dict["threshold"],
            threshold_mode=state_dict["threshold_mode"],
            cooldown=state_dict["cooldown"],
            warmup=state_dict["warmup"],
            min_lrs=per_group("min_lrs", state_dict["min_lrs"], n_groups),
            max_lrs=per_group("max_lrs", state_dict["max_lrs"], n_groups, allow_inf=True),
            eps=state_dict["eps"],
            verbose=state_dict["verbose"],
            smooth=state_dict["smooth"],
            window_size=state_dict["window_size"],
            reset_start=state_dict["reset_start"],
            on_nonfinite=state_dict["on_nonfinite"],
        )
        self.base_lrs = per_group("base_lrs", state_dict["base_lrs"], n_groups)
        self.best = check_real("best", state_dict["best"], allow_inf=True)
        for key in ("num_good_epochs", "num_bad_epochs", "cooldown_counter", "warmup_counter"):
            setattr(self, key, check_int(key, state_dict[key]))
        self.floor_count = check_int("floor_count", state_dict["floor_count"])
        self.num_resets = check_int("num_resets", state_dict["num_resets"])
        self.last_epoch = check_int("last_epoch", state_dict["last_epoch"], low=-1)
        self._window = [check_real(f"window[{i}]", v) for i, v in enumerate(state_dict["window"])]
        if len(self._window) > self.window_size:
            raise ValueError(f"state_dict['window'] has more than window_size={self.window_size}.")
        self._window_sum = check_real("window_sum", state_dict["window_sum"], allow_inf=True)
        self._last_lr = per_group("last_lr", state_dict["last_lr"], n_groups)

    # ------------------------------------------------------------------ the two rule sets

    def _step_paper(self, current: float | None) -> bool:
        """Algorithm 2 of arXiv 2512.14527 (App. A.4); returns whether the metric improved.

        Same order as the paper: compare with the best value, let a running cooldown (warmup)
        zero the bad (good) count, then change the LR when a count exceeds ``patience``. This is
        ReduceLROnPlateau's bookkeeping mirrored for increases. The reset is handled in
        :meth:`step`, by this repository's rule (see the ``reset_start`` parameter).
        """
        improved = current is not None and self._is_better(current, self.best)
        if improved:
            self.best = current
            self.num_bad_epochs = 0
            self.num_good_epochs += 1
        else:
            self.num_bad_epochs += 1
            self.num_good_epochs = 0

        if self.cooldown_counter > 0:  # after a decrease: do not count bad steps
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.warmup_counter > 0:  # after an increase: do not count good steps
            self.warmup_counter -= 1
            self.num_good_epochs = 0

        if self.num_bad_epochs > self.patience:
            self._decrease()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        elif self.num_good_epochs > self.patience:
            self._increase()
            self.warmup_counter = self.warmup
            self.num_good_epochs = 0
        return improved

    def _step_transformers(self, current: float | None) -> None:
        # transformers.GreedyLR.step, same order of operations.
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
            self.num_good_epochs = 0
        elif self.warmup_counter > 0:
            self.warmup_counter -= 1
            self.num_bad_epochs = 0
            self.num_good_epochs = 0
        else:
            if current is not None and self._is_better(current, self.best):
                self.best = current
                self.num_bad_epochs = 0
                self.num_good_epochs += 1
            else:
                self.num_bad_epochs += 1
                self.num_good_epochs = 0

            if self.num_good_epochs > self.patience:
                self._increase()
                self.warmup_counter = self.warmup
                self.num_good_epochs = 0
            elif self.num_bad_epochs > self.patience:
                self._decrease()
                # Set after a possible reset inside _decrease, exactly like transformers.
                self.cooldown_counter = self.cooldown
                self.num_bad_epochs = 0

    # ------------------------------------------------------------------ LR moves

    def _moved_enough(self, old: float, new: float) -> bool:
        if self.variant == "paper":
            return abs(new - old) > self.eps * old
        return abs(new - old) > self.eps

    def _decrease(self) -> None:
        for i, group in enumerate(self.optimizer.param_groups):
            old = _read_lr(group)
            new = max(old * self.factor, self.min_lrs[i])
            if new < old and self._moved_enough(old, new):
                _write_lr(group, new)
                if self.verbose:
                    print(
                        f"GreedyLR step {self.last_epoch}: lowering lr of group {i} to {new:.4e}."
                    )
        if self.variant == "transformers" and self.reset_start is not None:
            # transformers counts decrease attempts made with every group at or below its floor.
            if all(
                _read_lr(g) <= lo
                for g, lo in zip(self.optimizer.param_groups, self.min_lrs, strict=True)
            ):
                self.floor_count += 1
                if self.floor_count >= self.reset_start:
                    self._restart()

    def _increase(self) -> None:
        for i, group in enumerate(self.optimizer.param_groups):
            old = _read_lr(group)
            new = min(old / self.factor, self.max_lrs[i])
            if new > old and self._moved_enough(old, new):
                _write_lr(group, new)
                if self.verbose:
                    print(f"GreedyLR step {self.last_epoch}: raising lr of group {i} to {new:.4e}.")
        if self.variant == "transformers":
            self.floor_count = 0  # transformers restarts the countdown on every increase

    def _at_floor(self, lrs: list[float]) -> bool:
        """Paper variant: every group within the relative ``eps`` of its floor."""
        scale = 1.0 + self.eps
        for lr, lo in zip(lrs, self.min_lrs, strict=True):
            if lr > lo * scale:
                return False
        return True

    def _restart(self) -> None:
        """Reset every group to its initial LR and forget all progress."""
        for group, lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            _write_lr(group, lr)
        self._clear_progress()
        self.num_resets += 1
        if self.verbose:
            print(f"GreedyLR step {self.last_epoch}: reset to the initial learning rates.")

    # ------------------------------------------------------------------ helpers

    def _is_better(self, a: float, best: float) -> bool:
        t = self.threshold
        if self.threshold_mode == "abs":
            return a < best - t if self.mode == "min" else a > best + t
        # torch and transformers scale `best` by (1 -/+ t), which moves the bar to the wrong side
        # of a negative `best`. The paper variant moves it by t * |best| towards "better": the
        # same product, hence the same floats, whenever best >= 0.
        if self.variant == "paper" and best < 0:
            t = -t
        return a < best * (1.0 - t) if self.mode == "min" else a > best * (1.0 + t)

    def _smoothed(self, value: float) -> float:
        self._window.append(value)
        if self.variant == "paper":
            if len(self._window) > self.window_size:
                self._window.pop(0)
            self._window_sum = _exact_sum(self._window)
        else:
            # transformers' StreamingAverage, same order of operations (hence the same rounding).
            # Recomputed only once it overflows, which transformers never recovers from.
            self._window_sum += value
            if len(self._window) > self.window_size:
                self._window_sum -= self._window.pop(0)
            if not math.isfinite(self._window_sum):
                self._window_sum = _exact_sum(self._window)
        return self._window_sum / len(self._window)

    def _current_lrs(self) -> list[float]:
        return [_read_lr(g) for g in self.optimizer.param_groups]

    @staticmethod
    def _as_float(metrics: Any) -> float:
        if metrics is None:
            raise TypeError(
                "GreedyLR.step() needs the monitored metric, e.g. scheduler.step(val_loss)."
            )
        expected = f"metrics must be a real number or a one-element tensor; got {type(metrics)!r}."
        if isinstance(metrics, str | bytes):
            raise TypeError(expected)
        try:
            return float(metrics)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(expected) from exc

    # ReduceLROnPlateau's private hooks, kept consistent in case third-party code calls them.
    def _reduce_lr(self, epoch: Any = None) -> None:
        self._decrease()

    def _reset(self) -> None:
        self._clear_progress()

    def _init_is_better(self, mode: Any, threshold: Any, threshold_mode: Any) -> None:
        self.mode = check_choice("mode", mode, ("min", "max"))
        self.threshold_mode, self.threshold = _check_threshold(threshold_mode, threshold)
        self.mode_worse = math.inf if self.mode == "min" else -math.inf

    def __repr__(self) -> str:
        return (
            f"GreedyLR(variant={self.variant!r}, mode={self.mode!r}, factor={self.factor}, "
            f"patience={self.patience}, lrs={self._last_lr})"
        )
