"""GreedyLR: raise the learning rate while the monitored metric improves, lower it when it does not.

The rule (Subramanian, Krishnamoorthy and Murthy, arXiv:2512.14527): with a factor ``F`` in
``(0, 1)`` the learning rate is divided by ``F`` after a run of improvements and multiplied by ``F``
after a run of non-improvements, with patience, an improvement threshold, cooldown/warmup holds,
per-group bounds, an optional moving average of the metric and a reset after the rate has sat at
its floor for a while. The paper states the rule twice: a bare form that compares each loss with
the *previous* one (Algorithm 1, App. A.3; the form its theory analyses) and a detailed form that
compares with the best value so far (App. A.4, Algorithms 2-3). Both variants implement the
detailed form.

Two variants live behind one class, selected with ``variant=``; each is a small rule-set object
(``_PaperRules``, ``_TransformersRules`` in ``greedylr/_rules.py``) holding only what differs, and the hyperparameters and
the state are declared once (``_HYPERPARAMETERS``, ``_BOUNDS``, ``_PROGRESS``), from which the
constructor's checks, :meth:`GreedyLR.state_dict` and :meth:`GreedyLR.load_state_dict` follow:

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
from collections.abc import Iterable, Sequence
from typing import Any, Literal, SupportsFloat

from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau

from greedylr._rules import (
    _BOUNDS,
    _EPOCH_DEPRECATION,
    _HYPERPARAMETERS,
    _PROGRESS,
    _RULES,
    _STATE,
    _STATE_FORMAT,
    PAPER_MAX_LR_RATIO,
    PAPER_MIN_LR_RATIO,
    TRANSFORMERS_MAX_LR,
    TRANSFORMERS_MIN_LR,
    VARIANTS,
    NonFiniteMetricWarning,
    _check_bound_arg,
    _check_bounds_order,
    _check_threshold,
    _initial_lrs,
    _read_lr,
    _write_lr,
)
from greedylr._validation import (
    check_choice,
    check_int,
    per_group,
    real_scalar,
)

__all__ = [
    "GreedyLR",
    "NonFiniteMetricWarning",
    "PAPER_MAX_LR_RATIO",
    "PAPER_MIN_LR_RATIO",
    "TRANSFORMERS_MAX_LR",
    "TRANSFORMERS_MIN_LR",
    "VARIANTS",
]


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
        A param group added later with ``optimizer.add_param_group`` is scheduled from the next
        :meth:`step` on, from its current LR, with bounds resolved in the same way (the number,
        or the variant's default for ``None``). A per-group list cannot be extended: the next
        :meth:`step` raises ``ValueError`` before changing anything, unless the new group's
        bounds have been appended to :attr:`min_lrs` and :attr:`max_lrs` by hand.
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
    min_lr_arg, max_lr_arg : None, float or list of float
        ``min_lr``/``max_lr`` as given (arrays as lists), used to bound groups added later.
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
        arguments = dict(locals())  # the hyperparameters are declared once, in _HYPERPARAMETERS
        # ReduceLROnPlateau.__init__ is deliberately not called: it would install its own
        # (decrease-only) state. Everything the LRScheduler API relies on is set here.
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer)!r}.")
        self.optimizer = optimizer
        self.variant = variant
        self.base_lrs: list[float] = _initial_lrs(optimizer.param_groups)
        min_lr_arg = _check_bound_arg("min_lr", min_lr)
        max_lr_arg = _check_bound_arg("max_lr", max_lr, allow_inf=True)
        self._configure(
            arguments,
            min_lrs=self._resolve_bounds("min_lr", min_lr_arg, self.base_lrs),
            max_lrs=self._resolve_bounds("max_lr", max_lr_arg, self.base_lrs),
            min_lr_arg=min_lr_arg,
            max_lr_arg=max_lr_arg,
        )
        self._check_start(range(len(self.base_lrs)), stacklevel=3)

        self.last_epoch = 0
        self.num_resets = 0
        self._clear_progress()
        self._last_lr: list[float] = self._current_lrs()

    # ------------------------------------------------------------------ configuration

    @property
    def variant(self) -> str:
        """``"paper"`` or ``"transformers"``: which rule set the scheduler follows."""
        return self._rules.name

    @variant.setter
    def variant(self, value: Any) -> None:
        self._rules = _RULES[check_choice("variant", value, VARIANTS)]

    def _configure(
        self,
        values: dict[str, Any],
        *,
        min_lrs: list[float],
        max_lrs: list[float],
        min_lr_arg: Any,
        max_lr_arg: Any,
    ) -> None:
        """Validate the declared hyperparameters in ``values`` and the bounds, then set them."""
        checked = {f.key: f.validate(values[f.key], 0) for f in _HYPERPARAMETERS}
        checked["threshold_mode"], checked["threshold"] = _check_threshold(
            checked["threshold_mode"], checked["threshold"]
        )
        _check_bounds_order(min_lrs, max_lrs, range(len(min_lrs)))
        for key, value in checked.items():
            setattr(self, key, value)
        self.min_lrs, self.max_lrs = list(min_lrs), list(max_lrs)
        self.min_lr_arg, self.max_lr_arg = min_lr_arg, max_lr_arg
        # ReduceLROnPlateau compatibility: the value a fresh `best` starts from.
        self.mode_worse = math.inf if self.mode == "min" else -math.inf

    def _resolve_bounds(self, name: str, arg: Any, lrs: list[float]) -> list[float]:
        """Per-group bounds for groups starting at ``lrs`` from a ``min_lr``/``max_lr`` argument."""
        if arg is None:
            side = 0 if name == "min_lr" else 1
            return [self._rules.default_bounds(lr)[side] for lr in lrs]
        return per_group(name, arg, len(lrs), allow_inf=True)  # arg is already checked

    def _check_start(self, groups: Iterable[int], stacklevel: int) -> None:
        """Each listed group's initial LR must lie in its bounds (the paper variant raises, the
        transformers variant warns, as transformers silently ignores it)."""
        for i in groups:
            lr, lo, hi = self.base_lrs[i], self.min_lrs[i], self.max_lrs[i]
            if lo <= lr <= hi:
                continue
            side = f"min_lr={lo!r}" if lr < lo else f"max_lr={hi!r}"
            effect = "decreases" if lr < lo else "increases"
            self._rules.start_outside_bounds(
                f"param group {i} starts at lr={lr!r}, outside [min_lr, max_lr] ({side}); "
                f"{effect} of that group would be silent no-ops.",
                stacklevel + 1,
            )

    def _adopt_new_groups(self, stacklevel: int) -> None:
        """Schedule param groups added with ``optimizer.add_param_group`` since the last call.

        A new group starts from its current LR (its reset target) with bounds resolved from the
        constructor's ``min_lr``/``max_lr`` like those of the first groups: the same number, or
        the variant's default for ``None``. Bounds given as a per-group list cannot be extended:
        unless the new groups' entries were appended to :attr:`min_lrs`/:attr:`max_lrs` by hand,
        that raises ``ValueError``. Everything is checked before anything changes.
        """
        groups = self.optimizer.param_groups
        n_old, n_new = len(self.base_lrs), len(groups)
        if n_new == n_old:
            return
        if n_new < n_old:
            raise ValueError(
                f"the optimizer has {n_new} param groups but this GreedyLR schedules {n_old}; "
                "param groups cannot be removed."
            )
        new_lrs = _initial_lrs(groups[n_old:], first=n_old)
        bounds = []
        for name, current, arg, inf in (
            ("min_lr", self.min_lrs, self.min_lr_arg, False),
            ("max_lr", self.max_lrs, self.max_lr_arg, True),
        ):
            appended = per_group(f"{name}s", current[n_old:], len(current) - n_old, allow_inf=inf)
            todo = new_lrs[len(appended) :]  # groups whose bound was not appended by hand
            if len(appended) > len(new_lrs) or (todo and isinstance(arg, list)):
                raise ValueError(
                    f"the optimizer now has {n_new} param groups (was {n_old}) and {name} was "
                    f"given per param group, so the new groups have no {name}. Append exactly "
                    f"one bound per new group to scheduler.{name}s before the next step, or "
                    f"pass {name} as a single number or None."
                )
            extra = self._resolve_bounds(name, arg, todo) if todo else []
            bounds.append(current[:n_old] + appended + extra)
        min_lrs, max_lrs = bounds
        _check_bounds_order(min_lrs, max_lrs, range(n_old, n_new))
        before = (self.base_lrs, self.min_lrs, self.max_lrs)
        self.base_lrs, self.min_lrs, self.max_lrs = self.base_lrs + new_lrs, min_lrs, max_lrs
        try:
            self._check_start(range(n_old, n_new), stacklevel + 1)
        except ValueError:
            self.base_lrs, self.min_lrs, self.max_lrs = before
            raise
        self._last_lr = self._last_lr + new_lrs

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
        metrics : float or one-element tensor
            The monitored quantity (a loss in ``"min"`` mode, e.g. accuracy in ``"max"`` mode): a
            real number (numpy scalars included) or a one-element tensor or array; bools and
            strings raise ``TypeError``.
        epoch : int, optional
            Deprecated, as in torch's schedulers: only overrides :attr:`last_epoch` (an integer
            ``>= 0``).

        Notes
        -----
        Param groups added with ``optimizer.add_param_group`` are scheduled from the first call
        after they were added; see ``min_lr``/``max_lr`` for their bounds. An invalid argument
        raises before anything changes.
        """
        value = metrics if type(metrics) is float else real_scalar("metrics", metrics)
        if epoch is not None:
            epoch = check_int("epoch", epoch)
        if len(self.optimizer.param_groups) != len(self.base_lrs):
            self._adopt_new_groups(stacklevel=3)
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
            current = self._rules.smoothed(self, value) if self.smooth else value
            if not math.isfinite(current):  # overflow of the running sum: treat as worse
                current = None

        if epoch is not None:
            warnings.warn(_EPOCH_DEPRECATION, UserWarning, stacklevel=2)
            self.last_epoch = epoch
        else:
            self.last_epoch += 1
        self._last_lr = self._rules.update(self, current)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: hyperparameters, progress and the current LRs.

        Only plain Python scalars, strings and lists, so it survives
        ``torch.load(..., weights_only=True)`` (what the Hugging Face ``Trainer`` uses) and JSON
        (apart from ``inf`` in ``best``/``max_lrs``). Param groups added to the optimizer since
        the last :meth:`step` are included (see :meth:`step`).
        """
        self._adopt_new_groups(stacklevel=3)
        state: dict[str, Any] = {"format": _STATE_FORMAT, "variant": self.variant}
        for field in _STATE:
            value = getattr(self, field.name)
            state[field.key] = list(value) if isinstance(value, list) else value
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` and write its learning rates into the optimizer.

        Everything is restored, the hyperparameters (``variant``, ``factor``, bounds, ``verbose``,
        ...) included: the saved values replace those given to the constructor. The optimizer's
        LRs are set from the saved state, so a resumed run continues identically whether or not
        the optimizer's own state dict is loaded as well. An invalid state (including a saved LR
        outside its group's ``[min_lr, max_lr]``) raises before anything is changed.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict)!r}.")
        fmt = state_dict.get("format")
        if type(fmt) is not int or fmt != _STATE_FORMAT:
            raise ValueError(
                f"not a GreedyLR state dict of format {_STATE_FORMAT} (got format={fmt!r})."
            )
        required = {"variant"} | {f.key for f in _STATE if f.fallback is None}
        missing = sorted(required - set(state_dict))
        if missing:
            raise ValueError(f"state_dict is missing the keys {missing}.")
        n_groups = len(self.optimizer.param_groups)
        for field in _STATE:
            if field.per_group and len(state_dict[field.key]) != n_groups:
                raise ValueError(
                    f"state_dict[{field.key!r}] has {len(state_dict[field.key])} entries but the "
                    f"optimizer has {n_groups} param groups."
                )
        before = dict(self.__dict__)  # attributes are replaced below, never mutated in place
        try:
            self._load_checked(state_dict, n_groups)
        except Exception:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        for group, lr in zip(self.optimizer.param_groups, self._last_lr, strict=True):
            _write_lr(group, lr)

    def _load_checked(self, state_dict: dict[str, Any], n_groups: int) -> None:
        self.variant = state_dict["variant"]
        values: dict[str, Any] = {}
        for field in _BOUNDS + _PROGRESS:
            raw = state_dict[field.key] if field.key in state_dict else field.fallback(values)  # type: ignore[misc]
            values[field.key] = field.validate(raw, n_groups)
        self._configure(
            state_dict,
            min_lrs=values.pop("min_lrs"),
            max_lrs=values.pop("max_lrs"),
            min_lr_arg=values.pop("min_lr"),
            max_lr_arg=values.pop("max_lr"),
        )
        for field in _PROGRESS:
            setattr(self, field.name, values[field.key])
        if len(self._window) > self.window_size:
            raise ValueError(f"state_dict['window'] has more than window_size={self.window_size}.")
        for key in ("base_lrs", "last_lr"):
            for i, lr in enumerate(values[key]):
                lo, hi = self._rules.lr_range(self.min_lrs[i], self.max_lrs[i], self.base_lrs[i])
                if not lo <= lr <= hi:
                    raise ValueError(
                        f"state_dict[{key!r}][{i}]={lr!r} lies outside [{lo!r}, {hi!r}], the "
                        f"range the {self.variant} variant keeps param group {i}'s lr in "
                        "([min_lr, max_lr]; see GreedyLR's min_lr)."
                    )

    # ------------------------------------------------------------------ LR moves

    def _moved_enough(self, old: float, new: float) -> bool:
        return abs(new - old) > self._rules.min_change(self.eps, old)

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
        self._rules.after_decrease(self)

    def _increase(self) -> None:
        for i, group in enumerate(self.optimizer.param_groups):
            old = _read_lr(group)
            new = min(old / self.factor, self.max_lrs[i])
            if new > old and self._moved_enough(old, new):
                _write_lr(group, new)
                if self.verbose:
                    print(f"GreedyLR step {self.last_epoch}: raising lr of group {i} to {new:.4e}.")
        self._rules.after_increase(self)

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
        t = self._rules.rel_threshold(t, best)
        return a < best * (1.0 - t) if self.mode == "min" else a > best * (1.0 + t)

    def _current_lrs(self) -> list[float]:
        return [_read_lr(g) for g in self.optimizer.param_groups]

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
