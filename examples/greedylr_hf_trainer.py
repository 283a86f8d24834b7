"""GreedyLR with a Hugging Face ``Trainer`` (tiny model, no download, a few seconds on a CPU).

Needs ``transformers`` and ``accelerate`` (``pip install transformers accelerate``). Shows the two
ways to connect the scheduler:

1. evaluation-driven: pass ``GreedyLR`` itself as the Trainer's scheduler; the Trainer steps it
   with ``metric_for_best_model`` after every evaluation (as for its own ``"greedy"`` type);
2. training-loss-driven: :class:`greedylr.hf.GreedyLRCallback` steps it every ``logging_steps``
   with the logged training loss; the Trainer gets ``callback.trainer_scheduler``.

    python examples/greedylr_hf_trainer.py [--steps 60] [--quiet]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

if importlib.util.find_spec("greedylr") is None:  # a checkout that is not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from greedylr import GreedyLR  # noqa: E402


class TinyRegressor(nn.Module):
    """A model with the Trainer's calling convention: ``forward(**batch) -> {"loss": ...}``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(x).squeeze(-1)
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


def _dataset(seed: int, n: int) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=gen)
    y = torch.sin(2 * x[:, 0]) + 0.3 * x[:, 1] + 0.05 * torch.randn(n, generator=gen)
    return [{"x": x[i], "labels": y[i]} for i in range(n)]


def train(route: str, steps: int, out_dir: str, seed: int = 0) -> list[tuple[int, float]]:
    """Train with one route; return ``(global_step, lr)`` after every optimizer step."""
    from transformers import Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from greedylr.hf import GreedyLRCallback

    class LRLog(TrainerCallback):
        def __init__(self) -> None:
            self.rows: list[tuple[int, float]] = []

        def on_step_end(self, args, state, control, optimizer=None, **kwargs):
            self.rows.append((state.global_step, optimizer.param_groups[0]["lr"]))

    torch.manual_seed(seed)
    model = TinyRegressor()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    log = LRLog()
    common = {
        "output_dir": out_dir,
        "per_device_train_batch_size": 16,
        "max_steps": steps,
        "report_to": "none",
        "save_strategy": "no",
        "use_cpu": True,
        "disable_tqdm": True,
        "log_level": "error",
        "seed": seed,
    }
    if route == "eval":
        scheduler = GreedyLR(optimizer, factor=0.8, patience=1)
        args = TrainingArguments(
            **common,
            eval_strategy="steps",
            eval_steps=5,
            logging_steps=5,
            metric_for_best_model="eval_loss",
            greater_is_better=False,
        )
        trainer_scheduler, callbacks = scheduler, [log]
    else:
        scheduler = GreedyLR(optimizer, factor=0.9, patience=3, smooth=True, window_size=5)
        callback = GreedyLRCallback(scheduler, metric="loss")
        args = TrainingArguments(**common, logging_steps=1)
        trainer_scheduler, callbacks = callback.trainer_scheduler, [log, callback]
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_dataset(seed, 256),
        eval_dataset=_dataset(seed + 1, 128),
        optimizers=(optimizer, trainer_scheduler),
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # we print our own summary
    trainer.train()
    return log.rows


def main(argv: Sequence[str] | None = None) -> dict[str, list[tuple[int, float]]] | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (tiny model: 1)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    missing = [m for m in ("transformers", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"this example needs {' and '.join(missing)}: pip install transformers accelerate")
        return None
    results = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for route in ("eval", "train-loss"):
                results[route] = train(route, args.steps, tmp)
    finally:
        torch.set_num_threads(threads)
    if not args.quiet:
        for route, rows in results.items():
            every = max(1, len(rows) // 10)
            shown = ", ".join(f"{step}:{lr:.4f}" for step, lr in rows[::every])
            print(f"{route:>10} route, step:lr -> {shown}")
    return results


if __name__ == "__main__":
    main()
