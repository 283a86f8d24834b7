"""Hypergradient descent and stochastic line search on convex quadratics with known behaviour."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch

from greedylr import (
    ArmijoSGD,
    HypergradientAdam,
    HypergradientSGD,
    StochasticLineSearch,
)

DT = torch.float64


def quadratic(curvatures, x):
    return 0.5 * (torch.as_tensor(curvatures, dtype=DT) * x * x).sum()


def run(opt, params, loss_fn, steps):
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


# ----------------------------------------------------------------------------- hypergradient


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
@pytest.mark.parametrize("granularity", ["global", "group", "parameter", "element"])
def test_sgd_hd_without_hypergradient_is_sgd(momentum, nesterov, granularity):
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(3, dtype=DT))
    b = torch.nn.Parameter(torch.randn(2, 2, dtype=DT))
    a2, b2 = (torch.nn.Parameter(p.detach().clone()) for p in (a, b))
    kw = {"lr": 0.05, "momentum": momentum, "nesterov": nesterov, "weight_decay": 0.01}
    ours = HypergradientSGD([a, b], hypergrad_lr=0.0, lr_granularity=granularity, **kw)
    ref = torch.optim.SGD([a2, b2], **kw)
    for _ in range(20):
        for opt, (p, q) in ((ours, (a, b)), (ref, (a2, b2))):
            opt.zero_grad()
            (quadratic([1.0, 2.0, 3.0], p) + (q**4).sum()).backward()
            opt.step()
    if granularity in ("global", "group"):  # same arithmetic as torch.optim.SGD
        assert torch.equal(a, a2) and torch.equal(b, b2)
    else:  # lr kept as a tensor: alpha * u is rounded before the subtraction
        torch.testing.assert_close(a, a2, rtol=1e-14, atol=1e-15)
        torch.testing.assert_close(b, b2, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("granularity", ["global", "group", "parameter", "element"])
def test_adam_hd_without_hypergradient_is_adam(granularity):
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(5, dtype=DT))
    q = torch.nn.Parameter(p.detach().clone())
    ours = HypergradientAdam([p], lr=0.01, hypergrad_lr=0.0, lr_granularity=granularity)
    ref = torch.optim.Adam([q], lr=0.01)
    for _ in range(50):
        for opt, x in ((ours, p), (ref, q)):
            opt.zero_grad()
            quadratic([1, 2, 3, 4, 5], x).backward()
            opt.step()
    torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_sgd_hd_first_steps_closed_form():
    # f(x) = a x^2 / 2:  g_t = a x_{t-1};  alpha_1 = alpha_0 (no previous direction);
    # alpha_2 = alpha_0 + beta * g_2 * g_1;  x_t = x_{t-1} - alpha_t g_t.
    a, alpha0, beta, x0 = 2.0, 0.1, 0.05, 1.5
    x = torch.nn.Parameter(torch.tensor([x0], dtype=DT))
    opt = HypergradientSGD([x], lr=alpha0, hypergrad_lr=beta)
    run(opt, x, lambda: quadratic([a], x), 1)
    x1 = x0 - alpha0 * a * x0
    assert opt.param_groups[0]["lr"] == alpha0
    assert x.item() == pytest.approx(x1, rel=1e-15)
    run(opt, x, lambda: quadratic([a], x), 1)
    alpha2 = alpha0 + beta * (a * x1) * (a * x0)
    assert opt.param_groups[0]["lr"] == pytest.approx(alpha2, rel=1e-15)
    assert x.item() == pytest.approx(x1 - alpha2 * a * x1, rel=1e-15)


def test_sgd_hd_raises_a_too_small_rate_towards_one_over_curvature():
    # While alpha * a < 1 the iterate keeps its sign, so g_t g_{t-1} > 0 and alpha can only grow;
    # the learned rate approaches 1/a from below and beats plain SGD by many orders of magnitude.
    a = 4.0
    x = torch.nn.Parameter(torch.tensor([1.0], dtype=DT))
    opt = HypergradientSGD([x], lr=0.01 / a, hypergrad_lr=0.1 / a**2)
    rates = []
    for _ in range(100):
        run(opt, x, lambda: quadratic([a], x), 1)
        rates.append(opt.param_groups[0]["lr"])
    assert all(r2 >= r1 for r1, r2 in zip(rates, rates[1:], strict=False))
    assert 0.5 / a < rates[-1] < 1 / a
    y = torch.nn.Parameter(torch.tensor([1.0], dtype=DT))
    plain = run(torch.optim.SGD([y], lr=0.01 / a), y, lambda: quadratic([a], y), 100)
    assert quadratic([a], x).item() < 1e-20 * plain[-1]


def test_adam_hd_beats_adam_from_a_too_small_rate():
    curv = [1.0, 10.0]

    def final_loss(beta):
        x = torch.nn.Parameter(torch.ones(2, dtype=DT))
        opt = HypergradientAdam([x], lr=1e-3, hypergrad_lr=beta)
        run(opt, x, lambda: quadratic(curv, x), 300)
        return quadratic(curv, x).item(), opt.param_groups[0]["lr"]

    plain, _ = final_loss(0.0)
    hd, lr = final_loss(1e-3)
    assert lr > 10 * 1e-3  # the rate was learned upwards
    assert hd < 1e-6 * plain


def _independent_scalar_runs(curvatures, lr, beta, steps, cls=HypergradientSGD):
    finals, rates = [], []
    for a in curvatures:
        x = torch.nn.Parameter(torch.tensor([1.0], dtype=DT))
        opt = cls([x], lr=lr, hypergrad_lr=beta)
        run(opt, x, lambda x=x, a=a: quadratic([a], x), steps)
        finals.append(x.item())
        rates.append(opt.param_groups[0]["lr"])
    return finals, rates


@pytest.mark.parametrize("cls", [HypergradientSGD, HypergradientAdam])
def test_element_rates_on_a_separable_quadratic_are_independent_scalar_runs(cls):
    # On f = sum_i a_i x_i^2 / 2 the per-element algorithm is exactly one scalar HD run per
    # coordinate, so each coordinate learns its own rate.
    curv = [0.5, 2.0, 8.0]
    finals, rates = _independent_scalar_runs(curv, 0.01, 0.002, 40, cls)
    assert all(map(math.isfinite, finals)) and len(set(rates)) == 3
    x = torch.nn.Parameter(torch.ones(3, dtype=DT))
    opt = cls([x], lr=0.01, hypergrad_lr=0.002, lr_granularity="element")
    run(opt, x, lambda: quadratic(curv, x), 40)
    torch.testing.assert_close(x.detach(), torch.tensor(finals, dtype=DT), rtol=1e-12, atol=1e-14)
    learned = opt.learning_rates()[0][0]
    torch.testing.assert_close(learned, torch.tensor(rates, dtype=DT), rtol=1e-12, atol=1e-14)
    assert opt.param_groups[0]["lr"] == 0.01  # the group keeps the initial value


def test_group_and_parameter_rates_on_decoupled_blocks():
    # Two decoupled blocks in two groups: per-group HD == two global HD runs, one per block.
    curv_a, curv_b = [1.0, 1.5], [6.0, 9.0]

    def solo(curv):
        x = torch.nn.Parameter(torch.ones(2, dtype=DT))
        opt = HypergradientSGD([x], lr=0.02, hypergrad_lr=0.002)
        run(opt, x, lambda: quadratic(curv, x), 30)
        return x.detach(), opt.param_groups[0]["lr"]

    (xa_ref, ra), (xb_ref, rb) = solo(curv_a), solo(curv_b)
    for granularity in ("group", "parameter"):
        xa = torch.nn.Parameter(torch.ones(2, dtype=DT))
        xb = torch.nn.Parameter(torch.ones(2, dtype=DT))
        groups = [{"params": [xa]}, {"params": [xb]}]
        opt = HypergradientSGD(groups, lr=0.02, hypergrad_lr=0.002, lr_granularity=granularity)
        run(opt, None, lambda xa=xa, xb=xb: quadratic(curv_a, xa) + quadratic(curv_b, xb), 30)
        torch.testing.assert_close(xa.detach(), xa_ref, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(xb.detach(), xb_ref, rtol=1e-12, atol=1e-14)
        rates = [float(r[0]) for r in opt.learning_rates()]
        assert rates == pytest.approx([ra, rb], rel=1e-12)
    # each block learned its own rate, up from 0.02 and below its stability limit 2 / L_block
    assert 0.02 < ra < 2 / 1.5 and 0.02 < rb < 2 / 9.0 and ra != rb


def test_global_rate_is_shared_across_groups_and_sums_the_hypergradient():
    xa = torch.nn.Parameter(torch.tensor([1.0], dtype=DT))
    xb = torch.nn.Parameter(torch.tensor([2.0], dtype=DT))
    opt = HypergradientSGD([{"params": [xa]}, {"params": [xb]}], lr=0.1, hypergrad_lr=0.01)
    loss = lambda: quadratic([1.0], xa) + quadratic([3.0], xb)  # noqa: E731
    run(opt, None, loss, 1)
    g1 = [1.0 * 1.0, 3.0 * 2.0]
    x1 = [1.0 - 0.1 * g1[0], 2.0 - 0.1 * g1[1]]
    run(opt, None, loss, 1)
    g2 = [1.0 * x1[0], 3.0 * x1[1]]
    expected = 0.1 + 0.01 * (g2[0] * g1[0] + g2[1] * g1[1])
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([expected, expected], rel=1e-14)


def test_global_granularity_with_one_tensor_equals_parameter_and_group():
    results = {}
    for granularity in ("global", "group", "parameter"):
        x = torch.nn.Parameter(torch.ones(3, dtype=DT))
        opt = HypergradientSGD([x], lr=0.01, hypergrad_lr=0.002, lr_granularity=granularity)
        run(opt, x, lambda x=x: quadratic([1.0, 3.0, 5.0], x), 25)
        results[granularity] = x.detach()
    torch.testing.assert_close(results["global"], results["group"], rtol=0, atol=0)
    torch.testing.assert_close(results["global"], results["parameter"], rtol=1e-13, atol=1e-15)


def test_lr_bounds_clip_the_learned_rate():
    x = torch.nn.Parameter(torch.ones(2, dtype=DT))
    opt = HypergradientSGD([x], lr=0.01, hypergrad_lr=10.0, lr_bounds=(0.0, 0.05))
    run(opt, x, lambda: quadratic([1.0, 2.0], x), 10)
    assert opt.param_groups[0]["lr"] == 0.05
    y = torch.nn.Parameter(torch.ones(2, dtype=DT))
    opt = HypergradientSGD([y], lr=0.01, hypergrad_lr=10.0, lr_granularity="element",
                           lr_bounds=(0.0, 0.05))  # fmt: skip
    run(opt, y, lambda: quadratic([1.0, 2.0], y), 10)
    assert float(opt.learning_rates()[0][0].max()) <= 0.05


def test_hypergradient_state_round_trip():
    def make():
        x = torch.nn.Parameter(torch.ones(3, dtype=DT))
        return x, HypergradientAdam([x], lr=0.01, hypergrad_lr=1e-3, lr_granularity="element")

    x_full, opt_full = make()
    run(opt_full, x_full, lambda: quadratic([1, 2, 3], x_full), 20)

    x_a, opt_a = make()
    run(opt_a, x_a, lambda: quadratic([1, 2, 3], x_a), 10)
    buffer = io.BytesIO()
    torch.save({"x": x_a.detach(), "opt": opt_a.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    x_b, opt_b = make()
    with torch.no_grad():
        x_b.copy_(saved["x"])
    opt_b.load_state_dict(saved["opt"])
    run(opt_b, x_b, lambda: quadratic([1, 2, 3], x_b), 10)
    assert torch.equal(x_b, x_full)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda p: HypergradientSGD(p, lr=-1.0), "lr"),
        (lambda p: HypergradientSGD(p, hypergrad_lr=-1.0), "hypergrad_lr"),
        (lambda p: HypergradientSGD(p, momentum=1.0), "momentum"),
        (lambda p: HypergradientSGD(p, nesterov=True), "nesterov"),
        (lambda p: HypergradientSGD(p, lr_granularity="layer"), "lr_granularity"),
        (lambda p: HypergradientSGD(p, lr_bounds=(1.0, 0.0)), "lr_bounds"),
        (lambda p: HypergradientAdam(p, betas=(0.9, 1.0)), r"betas\[1\]"),
        (lambda p: HypergradientAdam(p, eps=0.0), "eps"),
        (
            lambda p: HypergradientSGD([{"params": [p[0]], "lr": 0.1}, {"params": [p[1]]}]),
            "same 'lr'",
        ),
    ],
)
def test_hypergradient_validation(factory, match):
    params = [torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))]
    with pytest.raises((ValueError, TypeError), match=match):
        factory(params)


def test_add_param_group_checks_the_global_rate():
    x = torch.nn.Parameter(torch.ones(1, dtype=DT))
    opt = HypergradientSGD([x], lr=0.1, hypergrad_lr=0.01)
    run(opt, x, lambda: quadratic([1.0], x), 2)  # the shared rate has moved away from 0.1
    shared = opt.param_groups[0]["lr"]
    assert shared != 0.1
    for group in ({"lr": 0.5}, {}, {"lr": shared, "hypergrad_lr": 0.5}, {"lr": -1.0}):
        y = torch.nn.Parameter(torch.ones(1, dtype=DT))
        with pytest.raises(ValueError, match="same 'lr'|lr"):
            opt.add_param_group({"params": [y], **group})
        assert len(opt.param_groups) == 1  # nothing half-added
    opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(1, dtype=DT))], "lr": shared})
    per_group = HypergradientSGD([x], lr=0.1, lr_granularity="group")
    per_group.add_param_group({"params": [torch.nn.Parameter(torch.ones(1))], "lr": 0.5})
    assert [g["lr"] for g in per_group.param_groups] == [0.1, 0.5]


@pytest.mark.parametrize("granularity", ["parameter", "element"])
def test_learned_rates_of_low_precision_params_are_float32(granularity):
    # beta * g . u ~ 4e-6 is below half a bf16 ulp of 0.01 (3e-5): stored in bf16 it would vanish.
    x = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    opt = HypergradientSGD([x], lr=0.01, hypergrad_lr=1e-6, lr_granularity=granularity)
    run(opt, x, lambda: 0.5 * (x.float() ** 2).sum(), 2)
    lr = opt.learning_rates()[0][0]
    assert lr.dtype == torch.float32
    assert bool((lr > torch.tensor(0.01, dtype=torch.float32)).all())
    assert x.dtype == torch.bfloat16


@pytest.mark.parametrize("granularity", ["global", "parameter"])
def test_a_skipped_step_forgets_the_previous_direction(granularity):
    # Step 1 sets a direction; in step 2 the gradient is None (parameter skipped); step 3 must
    # not combine its gradient with the stale direction of step 1, so the rate is still lr0.
    x = torch.nn.Parameter(torch.ones(2, dtype=DT))
    opt = HypergradientSGD([x], lr=0.1, hypergrad_lr=0.01, lr_granularity=granularity)
    run(opt, x, lambda: quadratic([1.0, 2.0], x), 1)
    opt.zero_grad(set_to_none=True)
    opt.step()
    assert "prev_direction" not in opt.state[x]
    run(opt, x, lambda: quadratic([1.0, 2.0], x), 1)
    assert float(opt.learning_rates()[0][0]) == 0.1
    run(opt, x, lambda: quadratic([1.0, 2.0], x), 1)
    assert float(opt.learning_rates()[0][0]) > 0.1  # consecutive steps: the rate moves again


# ----------------------------------------------------------------------------- line search


def _quadratic_closure(opt, x, curv):
    def closure():
        opt.zero_grad()
        loss = quadratic(curv, x)
        if torch.is_grad_enabled():
            loss.backward()
        return loss

    return closure


def test_armijo_condition_holds_and_step_is_not_too_small():
    # For an L-smooth quadratic Armijo holds for every eta <= 2 (1 - c) / L, so backtracking
    # from eta_0 accepts some eta >= min(eta_0, backtrack * 2 (1 - c) / L).
    curv, c, back = [1.0, 10.0, 50.0], 0.5, 0.5
    L = max(curv)
    x = torch.nn.Parameter(torch.ones(3, dtype=DT))
    opt = StochasticLineSearch([x], lr=4.0, c=c, backtrack=back, reset="initial")
    closure = _quadratic_closure(opt, x, curv)
    for _ in range(30):
        before = x.detach().clone()
        g = torch.as_tensor(curv, dtype=DT) * before
        f0 = quadratic(curv, before).item()
        opt.step(closure)
        eta = opt.state[x]["step_size"]
        assert quadratic(curv, x.detach()).item() <= f0 - c * eta * g.dot(g).item() + 1e-15
        assert eta >= min(4.0, back * 2 * (1 - c) / L)
        torch.testing.assert_close(x.detach(), before - eta * g)  # an SGD step of size eta
        torch.testing.assert_close(x.grad, g)  # the gradient at the start point is kept


def test_line_search_converges_linearly_on_a_strongly_convex_quadratic():
    curv = [1.0, 4.0, 10.0]
    x = torch.nn.Parameter(torch.ones(3, dtype=DT))
    opt = ArmijoSGD([x], lr=1.0, c=0.5, reset="keep")
    closure = _quadratic_closure(opt, x, curv)
    losses = [opt.step(closure).item() for _ in range(200)]
    assert all(b <= a for a, b in zip(losses, losses[1:], strict=False))  # monotone descent
    assert losses[-1] < 1e-12 * losses[0]


def test_line_search_under_interpolation_reaches_zero_loss():
    # Consistent least squares (interpolation holds): SGD + stochastic Armijo converges to the
    # exact solution with mini-batches and no step-size tuning (Vaswani et al., 2019).
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(200, 10, generator=gen, dtype=DT)
    b = A @ torch.randn(10, generator=gen, dtype=DT)
    w = torch.nn.Parameter(torch.zeros(10, dtype=DT))
    opt = StochasticLineSearch([w], n_batches_per_epoch=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(10):
            perm = torch.randperm(200, generator=gen)
            for i in range(20):
                idx = perm[i * 10 : (i + 1) * 10]

                def closure(idx=idx):
                    opt.zero_grad()
                    loss = ((A[idx] @ w - b[idx]) ** 2).mean()
                    if torch.is_grad_enabled():
                        loss.backward()
                    return loss

                opt.step(closure)
    assert ((A @ w - b) ** 2).mean().item() < 1e-12


def test_step_size_reset_rules():
    curv = [1.0]
    for reset, expected_start in (("initial", 2.0), ("keep", None), ("increase", None)):
        x = torch.nn.Parameter(torch.ones(1, dtype=DT))
        opt = StochasticLineSearch(
            [x], lr=2.0, c=0.1, reset=reset, growth=4.0, n_batches_per_epoch=2, max_lr=3.0
        )
        closure = _quadratic_closure(opt, x, curv)
        opt.step(closure)
        first = opt.state[x]["step_size"]
        assert opt.state[x]["n_backtracks"] >= 1  # eta=2 overshoots f = x^2/2 with c = 0.1
        start = opt._start_step_size(first)
        if reset == "initial":
            assert start == expected_start
        elif reset == "keep":
            assert start == first
        else:
            assert start == pytest.approx(min(first * 2.0, 3.0))


def test_closure_must_guard_backward():
    x = torch.nn.Parameter(torch.ones(2, dtype=DT))
    opt = StochasticLineSearch([x])

    def closure():
        opt.zero_grad()
        loss = quadratic([1.0, 1.0], x)
        loss.backward()  # unconditionally: fails under no_grad
        return loss

    with pytest.raises(RuntimeError, match="is_grad_enabled"):
        opt.step(closure)
    with pytest.raises(TypeError, match="closure"):
        opt.step()


def test_failed_search_leaves_parameters_unchanged():
    x = torch.nn.Parameter(torch.ones(2, dtype=DT))
    opt = StochasticLineSearch([x], lr=1.0, max_backtracks=3)
    calls = {"n": 0}

    def closure():  # the loss rises wherever we go: no step can satisfy Armijo
        calls["n"] += 1
        opt.zero_grad()
        loss = (x * x).sum() + (0.0 if torch.is_grad_enabled() else 1.0)
        if torch.is_grad_enabled():
            loss.backward()
        return loss

    with pytest.warns(RuntimeWarning, match="Armijo"):
        opt.step(closure)
    assert torch.equal(x.detach(), torch.ones(2, dtype=DT))
    assert calls["n"] == 4 and opt.state[x]["accepted"] is False
    assert opt.state[x]["step_size"] == 1.0


def test_non_finite_start_loss_warns_and_skips_the_step():
    x = torch.nn.Parameter(torch.ones(2, dtype=DT))
    opt = StochasticLineSearch([x])

    def closure():
        opt.zero_grad()
        loss = (x * x).sum() * float("inf")
        if torch.is_grad_enabled():
            loss.backward()
        return loss

    with pytest.warns(RuntimeWarning, match="loss at the start point is inf"):
        opt.step(closure)
    assert torch.equal(x.detach(), torch.ones(2, dtype=DT))
    assert opt.state[x]["n_evals"] == 1


def test_line_search_starts_from_an_outside_change_of_lr():
    # reset="keep": the search starts from param_groups[0]["lr"]. After an outside change to
    # 0.01 (a step size that passes Armijo at once on this quadratic) that is the step taken.
    x = torch.nn.Parameter(torch.ones(2, dtype=DT))
    opt = StochasticLineSearch([x], lr=1.0, reset="keep")
    closure = _quadratic_closure(opt, x, [1.0, 2.0])
    opt.step(closure)
    opt.param_groups[0]["lr"] = 0.01
    before = x.detach().clone()
    opt.step(closure)
    assert opt.state[x]["step_size"] == 0.01 and opt.state[x]["n_backtracks"] == 0
    g = torch.tensor([1.0, 2.0], dtype=DT) * before
    torch.testing.assert_close(x.detach(), before - 0.01 * g)


def test_line_search_validation():
    p = [torch.nn.Parameter(torch.ones(1))]
    for kwargs, match in [
        ({"lr": 0.0}, "lr"),
        ({"c": 1.0}, "c must"),
        ({"backtrack": 1.0}, "backtrack"),
        ({"growth": 0.5}, "growth"),
        ({"reset": "sometimes"}, "reset"),
        ({"max_lr": 0.5}, "max_lr"),
        ({"n_batches_per_epoch": 0}, "n_batches_per_epoch"),
    ]:
        with pytest.raises(ValueError, match=match):
            StochasticLineSearch(p, **kwargs)
    q = torch.nn.Parameter(torch.ones(1))
    with pytest.raises(ValueError, match="single param group"):
        StochasticLineSearch([{"params": p}, {"params": [q]}])
    assert math.isinf(StochasticLineSearch(p, max_lr=math.inf).max_lr)


# ----------------------------------------------------------------------------- robustness


def _run_with_nan_gradient(cls, granularity, nan_step):
    """x and y in two groups, minimising sum(c x^2)/2 + sum(c y^2)/2; at ``nan_step`` the first
    entry of x's gradient is NaN (``None``: never)."""
    x = torch.nn.Parameter(torch.ones(2, dtype=DT))
    y = torch.nn.Parameter(torch.ones(2, dtype=DT))
    opt = cls([{"params": [x]}, {"params": [y]}], lr=0.1, hypergrad_lr=1e-3,
              lr_granularity=granularity)  # fmt: skip
    for step in range(5):
        opt.zero_grad()
        (quadratic([1.0, 2.0], x) + quadratic([1.0, 2.0], y)).backward()
        if step == nan_step:
            x.grad[0] = math.nan
        opt.step()
    return x, y, opt


def _finite(rates):
    return all(
        math.isfinite(r) if isinstance(r, float) else bool(r.isfinite().all()) for r in rates
    )


@pytest.mark.parametrize("cls", [HypergradientSGD, HypergradientAdam])
@pytest.mark.parametrize("granularity", ["global", "group", "parameter", "element"])
def test_a_nan_gradient_does_not_poison_the_learned_rates(cls, granularity):
    with pytest.warns(RuntimeWarning, match="non-finite hypergradient"):
        x, y, opt = _run_with_nan_gradient(cls, granularity, nan_step=2)
    rates = [r for group in opt.learning_rates() for r in group]
    assert _finite(rates)
    # As with plain SGD/Adam only the entry with the NaN gradient is lost.
    x, y = x.detach(), y.detach()
    assert math.isnan(x[0]) and bool(x[1:].isfinite().all()) and bool(y.isfinite().all())
    if granularity != "global":  # y's own rate(s) never saw the NaN: as in a clean run
        _, y_clean, opt_clean = _run_with_nan_gradient(cls, granularity, nan_step=None)
        assert torch.equal(y, y_clean)
        assert str(opt.learning_rates()[1]) == str(opt_clean.learning_rates()[1])


def test_zero_hypergrad_lr_with_a_nan_gradient_keeps_the_rate():
    # beta = 0 is plain SGD: 0 * nan must not turn the rate into NaN.
    x = torch.nn.Parameter(torch.ones(2, dtype=DT))
    opt = HypergradientSGD([x], lr=0.1, hypergrad_lr=0.0)
    for step in range(3):
        opt.zero_grad()
        quadratic([1.0, 2.0], x).backward()
        if step == 1:
            x.grad[1] = math.inf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            opt.step()
    assert opt.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize(
    ("factory", "exc", "match"),
    [
        (lambda p: HypergradientSGD(p, lr=True), TypeError, "lr"),
        (lambda p: HypergradientSGD(p, momentum=np.True_), TypeError, "momentum"),
        (lambda p: HypergradientSGD(p, lr_bounds=(True, 1.0)), TypeError, r"lr_bounds\[0\]"),
        (lambda p: HypergradientSGD(p, lr="0.1"), TypeError, "lr"),
        (
            lambda p: HypergradientSGD([{"params": p, "momentum": "0.9"}]),
            TypeError,
            r"param_groups\[0\]\['momentum'\]",
        ),
        (
            lambda p: HypergradientSGD([{"params": p, "nesterov": 1}], momentum=0.9),
            TypeError,
            r"param_groups\[0\]\['nesterov'\]",
        ),
        (
            lambda p: HypergradientSGD([{"params": p, "momentum": 0.0, "nesterov": True}]),
            ValueError,
            "nesterov",
        ),
        (
            lambda p: HypergradientSGD([{"params": p, "weight_decay": True}]),
            TypeError,
            "weight_decay",
        ),
        (
            lambda p: HypergradientAdam([{"params": p, "betas": (0.9, np.True_)}]),
            TypeError,
            r"param_groups\[0\]\['betas'\]\[1\]",
        ),
        (lambda p: HypergradientAdam([{"params": p, "eps": 0.0}]), ValueError, "eps"),
        (
            lambda p: HypergradientAdam([{"params": p, "betas": 0.9}]),
            TypeError,
            r"param_groups\[0\]\['betas'\] must be a pair",
        ),
    ],
)
def test_group_options_follow_the_constructor_rules(factory, exc, match):
    with pytest.raises(exc, match=match):
        factory([torch.nn.Parameter(torch.ones(2))])
