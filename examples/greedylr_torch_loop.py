"""GreedyLR in a plain PyTorch training loop (runs in a few seconds on a CPU).

A small MLP is fitted to a synthetic regression problem with SGD. The same model, data and seed
are trained three times: with a constant learning rate, with ``ReduceLROnPlateau`` and with
``GreedyLR``; the two schedulers are stepped once per epoch with the validation loss. With
``--per-step`` GreedyLR is instead stepped after every mini-batch with the (smoothed) training
loss, the way the paper uses it.

    python examples/greedylr_torch_loop.py [--epochs 40] [--lr 0.005] [--per-step] [--quiet]

(Works from a checkout without installing the project.)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

if importlib.util.find_spec("greedylr") is None:  # a checkout that is not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from greedylr import GreedyLR  # noqa: E402


def make_data(seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1200, 8, generator=gen)
    y = (
        torch.sin(x[:, :1] * 2)
        + 0.5 * x[:, 1:2] * x[:, 2:3]
        + 0.05 * torch.randn(1200, 1, generator=gen)
    )
    return x[:1000], y[:1000], x[1000:], y[1000:]


def train(kind: str, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """Train once; return the validation loss and the learning rate after every epoch."""
    x_tr, y_tr, x_va, y_va = make_data(args.seed)
    torch.manual_seed(args.seed)
    model = nn.Sequential(
        nn.Linear(8, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1)
    )
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    if kind == "greedy":
        # Per-step use: mini-batch losses are noisy and a noisy value is rarely a new best, which
        # biases the rule towards decreases. A long moving average and a long patience fix that.
        sched = (
            GreedyLR(opt, factor=0.95, patience=20, smooth=True, window_size=200)
            if args.per_step
            else GreedyLR(opt, factor=0.8, patience=1)
        )
    elif kind == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    else:
        sched = None
    loss_fn = nn.MSELoss()
    gen = torch.Generator().manual_seed(args.seed + 1)
    val_losses, lrs = [], []
    for _epoch in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(x_tr), generator=gen).split(50):
            opt.zero_grad()
            loss = loss_fn(model(x_tr[idx]), y_tr[idx])
            loss.backward()
            opt.step()
            if kind == "greedy" and args.per_step:
                sched.step(loss.item())
        model.eval()
        with torch.no_grad():
            val = loss_fn(model(x_va), y_va).item()
        if sched is not None and not (kind == "greedy" and args.per_step):
            sched.step(val)  # once per epoch, after validation
        val_losses.append(val)
        lrs.append(opt.param_groups[0]["lr"])
    return val_losses, lrs


def main(argv: Sequence[str] | None = None) -> dict[str, tuple[list[float], list[float]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-step", action="store_true", help="step GreedyLR every mini-batch")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (tiny model: 1)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        results = {kind: train(kind, args) for kind in ("constant", "plateau", "greedy")}
    finally:
        torch.set_num_threads(threads)
    if not args.quiet:
        every = max(1, args.epochs // 8)
        print(f"{'epoch':>5} | " + " | ".join(f"{k:>20}" for k in results))
        print("      | " + " | ".join(f"{'val loss':>10} {'lr':>9}" for _ in results))
        for e in list(range(0, args.epochs, every)) + [args.epochs - 1]:
            cells = [f"{v[e]:10.5f} {lr[e]:9.2e}" for v, lr in results.values()]
            print(f"{e + 1:5d} | " + " | ".join(cells))
        best = min(results, key=lambda k: results[k][0][-1])
        print(f"lowest final validation loss: {best}")
    return results


if __name__ == "__main__":
    main()
