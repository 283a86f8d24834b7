"""Baselines GreedyLR is compared with: hypergradient descent and stochastic line search.

Hypergradient descent (Baydin, Cornish, Martinez Rubio, Schmidt and Wood, "Online Learning Rate
Adaptation with Hypergradient Descent", ICLR 2018)
    The learning rate is itself updated by gradient descent. If the last step was
    ``theta_t = theta_{t-1} - alpha * u_{t-1}`` (``u`` is the optimizer's update direction before
    the learning rate: the gradient for SGD, the momentum buffer for heavy ball, ``m_hat /
    (sqrt(v_hat) + eps)`` for Adam), then ``d f(theta_t) / d alpha = -grad_t . u_{t-1}`` and one
    descent step on ``alpha`` with step ``beta`` (``hypergrad_lr``) is::

        alpha <- alpha + beta * grad_t . u_{t-1}

    after which the ordinary step is taken with the new ``alpha``. :class:`HypergradientSGD` and
    :class:`HypergradientAdam` learn ``alpha`` at one of four granularities
    (``lr_granularity``): one rate for everything (``"global"``, the paper's algorithm), one per
    param group (``"group"``), one per parameter tensor (``"parameter"``) or one per scalar entry
    (``"element"``). The dot product is summed over the corresponding set of entries.

Stochastic line search (Vaswani, Mishkin, Laradji, Schmidt, Gidel and Lacoste-Julien, "Painless
Stochastic Gradient: Interpolation, Line-Search, and Convergence Rates", NeurIPS 2019)
    :class:`StochasticLineSearch` (alias :data:`ArmijoSGD`) takes an SGD step on the current
    mini-batch with the largest step size, found by backtracking, that satisfies the Armijo
    condition *on that same mini-batch*::

        f_i(theta - eta * g_i) <= f_i(theta) - c * eta * ||g_i||^2

    and starts the next search from a slightly larger step.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
from torch.optim import Optimizer

from greedylr._validation import check_bool, check_choice, check_int, check_real

__all__ = [
    "ArmijoSGD",
    "HypergradientAdam",
    "HypergradientSGD",
    "LR_GRANULARITIES",
    "StochasticLineSearch",
]

LR_GRANULARITIES: tuple[str, ...] = ("global", "group", "parameter", "element")
Granularity = Literal["global", "group", "parameter", "element"]
Closure = Callable[[], torch.Tensor | float]


def _check_bounds(lr_bounds: Any) -> tuple[float, float]:
    if not isinstance(lr_bounds, tuple | list) or len(lr_bounds) != 2:
        raise TypeError(f"lr_bounds must be a pair (low, high), got {lr_bounds!r}.")
    low = check_real("lr_bounds[0]", lr_bounds[0], allow_inf=True)
    high = check_real("lr_bounds[1]", lr_bounds[1], allow_inf=True)
    if not low <= high:
        raise ValueError(f"lr_bounds must satisfy low <= high, got {lr_bounds!r}.")
    return low, high


class _HypergradientOptimizer(Optimizer):
    """Shared machinery: learning-rate storage per granularity and the hypergradient update.

    Subclasses implement :meth:`_direction`, which returns the update direction ``u_t`` of one
    parameter (before multiplication by the learning rate) and updates that parameter's state.
    """

    def __init__(
        self,
        params: Iterable[Any],
        defaults: dict[str, Any],
        lr_granularity: Granularity,
        lr_bounds: tuple[float, float],
    ) -> None:
        self.lr_granularity = check_choice("lr_granularity", lr_granularity, LR_GRANULARITIES)
        self.lr_bounds = _check_bounds(lr_bounds)
        super().__init__(params, defaults)  # checks every group with add_param_group

    @staticmethod
    def _check_options(options: dict[str, Any], name: Callable[[str], str]) -> None:
        """Check a group's options (the constructor's defaults or a group's own values), naming
        each as ``name(key)``; subclasses extend it with their own options."""
        check_real(name("lr"), options["lr"], low=0.0)
        check_real(name("hypergrad_lr"), options["hypergrad_lr"], low=0.0)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """As in :class:`torch.optim.Optimizer`, after checking the group's options.

        Every option a group sets is checked like the constructor's argument of the same name.
        With ``lr_granularity="global"`` a new group must have the current shared ``lr`` (that of
        ``param_groups[0]``, which changes during training) and the same ``hypergrad_lr``.
        """
        if isinstance(param_group, dict):  # torch raises the TypeError otherwise
            i = len(self.param_groups)
            options = {**self.defaults, **param_group}
            self._check_options(options, lambda key: f"param_groups[{i}][{key!r}]")
            lr, beta = float(options["lr"]), float(options["hypergrad_lr"])
            if self.lr_granularity == "global" and self.param_groups:
                shared = (float(self.param_groups[0]["lr"]), self.param_groups[0]["hypergrad_lr"])
                if (lr, beta) != shared:
                    raise ValueError(
                        "lr_granularity='global' learns one learning rate shared by all param "
                        "groups, so every group needs the same 'lr' and 'hypergrad_lr' (now "
                        f"{shared[0]!r} and {shared[1]!r}; got {lr!r} and {beta!r}); use "
                        "lr_granularity='group' for per-group rates."
                    )
        super().add_param_group(param_group)

    def _direction(
        self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]
    ) -> torch.Tensor:
        raise NotImplementedError

    def _clamp(self, value: float) -> float:
        low, high = self.lr_bounds
        return min(max(value, low), high)

    def _set_rate(self, rate: torch.Tensor, new: torch.Tensor, bad: list[torch.Tensor]) -> None:
        """``rate <- clamp(new)`` where ``new`` is finite; elsewhere ``rate`` keeps its value and
        a flag is recorded in ``bad`` (a NaN rate would turn its parameters NaN for good)."""
        finite = torch.isfinite(new)
        bad.append(~finite.all())
        rate.copy_(torch.where(finite, new, rate)).clamp_(*self.lr_bounds)

    def learning_rates(self) -> list[list[float | torch.Tensor]]:
        """Current learning rate(s) of every parameter, grouped like ``param_groups``.

        A float per parameter for ``"global"`` and ``"group"``; a 0-d tensor (``"parameter"``)
        or a tensor shaped like the parameter (``"element"``) otherwise. Parameters that have not
        been updated yet report the group's ``lr``.
        """
        out: list[list[float | torch.Tensor]] = []
        for group in self.param_groups:
            rates: list[float | torch.Tensor] = []
            for p in group["params"]:
                state = self.state.get(p, {})
                if self.lr_granularity in ("parameter", "element") and "lr" in state:
                    rates.append(state["lr"].clone())
                else:
                    rates.append(float(group["lr"]))
            out.append(rates)
        return out

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Any:
        """Take one optimization step; ``closure`` (optional) re-evaluates the loss with grads."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        # 1. gradients (with L2 weight decay folded in) and the hypergradient dot products
        grads: list[list[torch.Tensor | None]] = []
        group_h: list[torch.Tensor | None] = []
        bad: list[torch.Tensor] = []  # 0-d flags: a learned rate update was not finite
        for group in self.param_groups:
            g_list: list[torch.Tensor | None] = []
            h_group: torch.Tensor | None = None
            for p in group["params"]:
                if p.grad is None:
                    g_list.append(None)
                    if p in self.state:  # skipped: the next step has no previous direction
                        self.state[p].pop("prev_direction", None)
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients.")
                grad = p.grad
                if group["weight_decay"] != 0:
                    grad = grad.add(p, alpha=group["weight_decay"])
                g_list.append(grad)
                state = self.state[p]
                prev = state.get("prev_direction")
                # Learned rates and hypergradients in at least float32: in bf16/fp16 the small
                # updates beta * g . u would round away.
                dtype = torch.promote_types(p.dtype, torch.float32)
                if prev is not None:
                    g, u = grad.to(dtype), prev.to(dtype)  # no-ops unless p is bf16/fp16
                if self.lr_granularity == "element":
                    if "lr" not in state:
                        state["lr"] = torch.full_like(p, float(group["lr"]), dtype=dtype)
                    if prev is not None:
                        rate = state["lr"]
                        self._set_rate(rate, rate.addcmul(g, u, value=group["hypergrad_lr"]), bad)
                elif self.lr_granularity == "parameter":
                    if "lr" not in state:
                        state["lr"] = torch.tensor(float(group["lr"]), dtype=dtype, device=p.device)
                    if prev is not None:
                        rate, h = state["lr"], torch.sum(g * u)
                        self._set_rate(rate, rate.add(h, alpha=group["hypergrad_lr"]), bad)
                elif prev is not None:
                    dot = torch.sum(g * u)
                    h_group = dot if h_group is None else h_group + dot
            grads.append(g_list)
            group_h.append(h_group)

        # 2. scalar learning rates (global / group)
        if self.lr_granularity == "group":
            for group, h in zip(self.param_groups, group_h, strict=True):
                if h is not None:
                    new_lr = float(group["lr"]) + group["hypergrad_lr"] * h.item()
                    if math.isfinite(new_lr):
                        group["lr"] = self._clamp(new_lr)
                    else:
                        bad.append(torch.tensor(True))
        elif self.lr_granularity == "global":
            present = [h for h in group_h if h is not None]
            if present:
                h_total = torch.stack([h.to(present[0].device) for h in present]).sum().item()
                first = self.param_groups[0]
                new_lr = float(first["lr"]) + first["hypergrad_lr"] * h_total
                if math.isfinite(new_lr):
                    new_lr = self._clamp(new_lr)
                    for group in self.param_groups:
                        group["lr"] = new_lr
                else:
                    bad.append(torch.tensor(True))
        if bad and torch.stack([b.to(bad[0].device) for b in bad]).any().item():
            warnings.warn(
                f"{type(self).__name__}: a non-finite hypergradient (from a NaN or infinite "
                "gradient) was skipped; the learned learning rate(s) it would have made NaN or "
                "infinite keep their previous value.",
                RuntimeWarning,
                stacklevel=3,
            )

        # 3. the ordinary step with the updated learning rate(s)
        for group, g_list in zip(self.param_groups, grads, strict=True):
            for p, grad in zip(group["params"], g_list, strict=True):
                if grad is None:
                    continue
                state = self.state[p]
                direction = self._direction(p, grad, state, group)
                if self.lr_granularity in ("parameter", "element"):
                    p.sub_(state["lr"] * direction)
                else:
                    p.add_(direction, alpha=-float(group["lr"]))
                state["prev_direction"] = direction.clone()
        return loss


class HypergradientSGD(_HypergradientOptimizer):
    r"""SGD (optionally with heavy-ball or Nesterov momentum) with hypergradient descent (SGD-HD).

    Parameters
    ----------
    params : iterable
        Parameters or param-group dicts, as for :class:`torch.optim.SGD`.
    lr : float, default 1e-3
        Initial learning rate ``alpha_0`` (``>= 0``; ``0`` works: the rate grows from zero).
    hypergrad_lr : float, default 1e-4
        ``beta``, the step size of the learning-rate update (``>= 0``; ``0`` gives plain SGD).
        Its useful range scales like ``1 / ||grad||^2``; tune it on a log grid.
    momentum : float, default 0
        Heavy-ball momentum in ``[0, 1)`` (torch's convention, no dampening).
    nesterov : bool, default False
        Nesterov momentum (requires ``momentum > 0``).
    weight_decay : float, default 0
        L2 penalty added to the gradient.
    lr_granularity : {"global", "group", "parameter", "element"}, default "global"
        How many learning rates are learned; see the module docstring.
    lr_bounds : (float, float), default (0.0, inf)
        Every learned rate is clipped to this interval after each update. The paper has no clip;
        ``(-inf, inf)`` reproduces it. The lower bound ``0`` prevents steps uphill.

    Notes
    -----
    For ``"global"``/``"group"`` the learned rate is ``param_groups[k]["lr"]``; for
    ``"parameter"``/``"element"`` it lives in ``optimizer.state[p]["lr"]`` (see
    :meth:`learning_rates`), in float32 or wider even for bf16/fp16 parameters, and
    ``param_groups[k]["lr"]`` keeps the initial value. A parameter whose ``grad`` is ``None`` in
    a step is skipped and forgets its previous direction, so its next step has no hypergradient
    (as at the first step). With ``"global"``, :meth:`add_param_group` requires the current
    shared ``lr`` and ``hypergrad_lr``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        hypergrad_lr: float = 1e-4,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        *,
        lr_granularity: Granularity = "global",
        lr_bounds: tuple[float, float] = (0.0, math.inf),
    ) -> None:
        arguments = {"lr": lr, "hypergrad_lr": hypergrad_lr, "momentum": momentum}
        arguments |= {"nesterov": nesterov, "weight_decay": weight_decay}
        self._check_options(arguments, str)
        defaults = {
            "lr": float(lr),
            "hypergrad_lr": float(hypergrad_lr),
            "momentum": float(momentum),
            "nesterov": nesterov,
            "weight_decay": float(weight_decay),
        }
        super().__init__(params, defaults, lr_granularity, lr_bounds)

    @staticmethod
    def _check_options(options: dict[str, Any], name: Callable[[str], str]) -> None:
        _HypergradientOptimizer._check_options(options, name)
        momentum = check_real(
            name("momentum"), options["momentum"], low=0.0, high=1.0, high_open=True
        )
        if check_bool(name("nesterov"), options["nesterov"]) and momentum == 0:
            raise ValueError(f"{name('nesterov')}=True requires momentum > 0.")
        check_real(name("weight_decay"), options["weight_decay"], low=0.0)

    def _direction(
        self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]
    ) -> torch.Tensor:
        momentum = group["momentum"]
        if momentum == 0:
            return grad
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = grad.clone()
            state["momentum_buffer"] = buf
        else:
            buf.mul_(momentum).add_(grad)
        return grad.add(buf, alpha=momentum) if group["nesterov"] else buf


class HypergradientAdam(_HypergradientOptimizer):
    r"""Adam with hypergradient descent on its learning rate (Adam-HD).

    Parameters
    ----------
    params : iterable
        Parameters or param-group dicts, as for :class:`torch.optim.Adam`.
    lr : float, default 1e-3
        Initial learning rate (``>= 0``).
    hypergrad_lr : float, default 1e-8
        ``beta`` for the learning-rate update (``>= 0``; ``0`` gives plain Adam). ``1e-8`` is the
        value shown in the authors' reference implementation's README.
    betas : (float, float), default (0.9, 0.999)
        Moment decay rates, each in ``[0, 1)``.
    eps : float, default 1e-8
        Added to the denominator (``> 0``).
    weight_decay : float, default 0
        L2 penalty added to the gradient (Adam, not AdamW, semantics).
    lr_granularity : {"global", "group", "parameter", "element"}, default "global"
        How many learning rates are learned; see the module docstring.
    lr_bounds : (float, float), default (0.0, inf)
        Clip applied to every learned rate after each update.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        hypergrad_lr: float = 1e-8,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        lr_granularity: Granularity = "global",
        lr_bounds: tuple[float, float] = (0.0, math.inf),
    ) -> None:
        arguments = {"lr": lr, "hypergrad_lr": hypergrad_lr, "betas": betas, "eps": eps}
        self._check_options(arguments | {"weight_decay": weight_decay}, str)
        defaults = {
            "lr": float(lr),
            "hypergrad_lr": float(hypergrad_lr),
            "betas": (float(betas[0]), float(betas[1])),
            "eps": float(eps),
            "weight_decay": float(weight_decay),
        }
        super().__init__(params, defaults, lr_granularity, lr_bounds)

    @staticmethod
    def _check_options(options: dict[str, Any], name: Callable[[str], str]) -> None:
        _HypergradientOptimizer._check_options(options, name)
        betas = options["betas"]
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise TypeError(f"{name('betas')} must be a pair (beta1, beta2), got {betas!r}.")
        for j in (0, 1):
            check_real(f"{name('betas')}[{j}]", betas[j], low=0.0, high=1.0, high_open=True)
        check_real(name("eps"), options["eps"], low=0.0, low_open=True)
        check_real(name("weight_decay"), options["weight_decay"], low=0.0)

    def _direction(
        self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]
    ) -> torch.Tensor:
        beta1, beta2 = group["betas"]
        if "exp_avg" not in state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - beta1 ** state["step"]
        bias_correction2 = 1 - beta2 ** state["step"]
        denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(group["eps"])
        return exp_avg.div(denom).div_(bias_correction1)


class StochasticLineSearch(Optimizer):
    r"""SGD whose step size is found by an Armijo backtracking line search on each mini-batch.

    Each :meth:`step` evaluates the closure once with gradients at the current point
    ``theta``, then tries ``theta - eta * g`` for ``eta = eta_0, backtrack * eta_0, ...`` with
    the closure under ``torch.no_grad()`` until

    .. math:: f_i(\theta - \eta g) \le f_i(\theta) - c\, \eta\, \lVert g \rVert^2

    holds on that same mini-batch (the closure must therefore not draw a new batch). The next
    search starts from ``eta_0 = min(eta * growth ** (1 / n_batches_per_epoch), max_lr)``
    (``reset="increase"``, the authors' default), from ``eta`` itself (``reset="keep"``) or from
    ``lr`` (``reset="initial"``). Here ``eta`` is ``param_groups[0]["lr"]``: the last accepted
    step size, unless something else (a wrapping scheduler, a manual change) has written
    ``param_groups[0]["lr"]`` since, in which case that value is used. ``reset="initial"``
    ignores such changes.

    Parameters
    ----------
    params : iterable
        Parameters to optimize (one param group: the step size is shared by all parameters).
    lr : float, default 1.0
        Initial step size ``eta_0`` (``> 0``).
    c : float, default 0.1
        Armijo constant in ``(0, 1)``; the convex theory of the paper uses ``1/2``.
    backtrack : float, default 0.9
        Factor in ``(0, 1)`` applied to ``eta`` after a failed trial.
    growth : float, default 2.0
        ``gamma >= 1`` in the ``"increase"`` reset.
    n_batches_per_epoch : int, default 500
        Spreads one factor ``growth`` of increase over an epoch (``"increase"`` reset).
    reset : {"increase", "keep", "initial"}, default "increase"
        Where each search starts.
    max_lr : float, default 10.0
        Upper bound on the starting step size (``>= lr``; may be ``inf``).
    max_backtracks : int, default 100
        Give up after this many failed trials: the parameters and the stored step size are left
        as they were and a ``RuntimeWarning`` is emitted. A NaN or infinite loss at the start
        point also skips the step with a ``RuntimeWarning``.
    grad_tol : float, default 1e-8
        Skip the search (and the step) when ``||g|| <= grad_tol``. Near an exact minimum the loss
        differences are rounding noise and no step can pass the Armijo test; the authors'
        implementation has the same guard. ``0`` disables it.

    Notes
    -----
    The closure must call ``backward()`` only when gradients are enabled::

        def closure():
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            if torch.is_grad_enabled():
                loss.backward()
            return loss

    After the step ``param_groups[0]["lr"]`` holds the accepted step size and
    ``optimizer.state[first_param]`` the counters ``n_backtracks`` (last step), ``n_evals``
    (all closure calls) and ``accepted`` (last step).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        c: float = 0.1,
        backtrack: float = 0.9,
        growth: float = 2.0,
        n_batches_per_epoch: int = 500,
        reset: Literal["increase", "keep", "initial"] = "increase",
        max_lr: float = 10.0,
        max_backtracks: int = 100,
        grad_tol: float = 1e-8,
    ) -> None:
        lr = check_real("lr", lr, low=0.0, low_open=True)
        self.c = check_real("c", c, low=0.0, high=1.0, low_open=True, high_open=True)
        self.backtrack = check_real(
            "backtrack", backtrack, low=0.0, high=1.0, low_open=True, high_open=True
        )
        self.growth = check_real("growth", growth, low=1.0)
        self.n_batches_per_epoch = check_int("n_batches_per_epoch", n_batches_per_epoch, low=1)
        self.reset = check_choice("reset", reset, ("increase", "keep", "initial"))
        self.max_lr = check_real("max_lr", max_lr, low=lr, allow_inf=True)
        self.max_backtracks = check_int("max_backtracks", max_backtracks, low=1)
        self.grad_tol = check_real("grad_tol", grad_tol, low=0.0)
        self.initial_lr = lr
        super().__init__(params, {"lr": lr})
        if len(self.param_groups) != 1:
            raise ValueError(
                "StochasticLineSearch uses one step size for all parameters; pass a single "
                f"param group (got {len(self.param_groups)})."
            )

    def _start_step_size(self, previous: float) -> float:
        if self.reset == "initial":
            return self.initial_lr
        if self.reset == "keep":
            return previous
        return min(previous * self.growth ** (1.0 / self.n_batches_per_epoch), self.max_lr)

    @staticmethod
    def _evaluate(closure: Closure) -> float:
        try:
            value = closure()
        except RuntimeError as exc:
            if "does not require grad" in str(exc):
                raise RuntimeError(
                    "StochasticLineSearch evaluates the closure under torch.no_grad() during the "
                    "line search; call loss.backward() only `if torch.is_grad_enabled()`."
                ) from exc
            raise
        return float(value)

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Any:  # type: ignore[override]
        """Perform one line-search step. ``closure`` is required (see the class notes)."""
        if closure is None:
            raise TypeError(
                "StochasticLineSearch.step() requires a closure that re-evaluates the loss."
            )
        if len(self.param_groups) != 1:
            raise ValueError("StochasticLineSearch supports exactly one param group.")
        group = self.param_groups[0]
        params = [p for p in group["params"]]
        state = self.state[params[0]]
        if "step_size" not in state:
            state.update(step=0, step_size=float(group["lr"]), n_evals=0, n_backtracks=0)
            state["accepted"] = True

        with torch.enable_grad():
            loss = closure()
        loss0 = float(loss)
        state["n_evals"] += 1
        state["step"] += 1
        active = [p for p in params if p.grad is not None]
        grads = [p.grad.detach().clone() for p in active]
        grad_norm_sq = float(sum(torch.sum(g * g).item() for g in grads))
        if not math.isfinite(loss0):
            warnings.warn(
                f"StochasticLineSearch: the loss at the start point is {loss0!r}; no step taken.",
                RuntimeWarning,
                stacklevel=3,
            )
        if math.sqrt(grad_norm_sq) <= self.grad_tol or not math.isfinite(loss0):
            state["n_backtracks"] = 0
            return loss

        start = [p.detach().clone() for p in active]
        # group["lr"] equals state["step_size"] unless something outside changed it: honour that.
        eta = self._start_step_size(float(group["lr"]))
        accepted = False
        n_backtracks = 0
        for _ in range(self.max_backtracks):
            for p, x0, g in zip(active, start, grads, strict=True):
                p.copy_(x0).add_(g, alpha=-eta)
            trial = self._evaluate(closure)
            state["n_evals"] += 1
            if trial <= loss0 - self.c * eta * grad_norm_sq:
                accepted = True
                break
            eta *= self.backtrack
            n_backtracks += 1
        if accepted:
            state["step_size"] = eta
            group["lr"] = eta
        else:
            for p, x0 in zip(active, start, strict=True):
                p.copy_(x0)
            warnings.warn(
                f"StochasticLineSearch: no step size satisfied the Armijo condition after "
                f"{self.max_backtracks} trials; the parameters were left unchanged.",
                RuntimeWarning,
                stacklevel=3,
            )
        for p, g in zip(active, grads, strict=True):
            p.grad = g  # the gradient at the start point, as after an ordinary step
        state["n_backtracks"] = n_backtracks
        state["accepted"] = accepted
        return loss


#: Alias: SGD with the stochastic Armijo line search of Vaswani et al. (2019).
ArmijoSGD = StochasticLineSearch
