"""Every figure of the project, drawn only from saved result records (never from live runs)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

STYLE: dict[str, dict[str, Any]] = {
    "learned": {"color": "black", "lw": 2.2},
    "follow_bound": {"color": "tab:purple"},
    "step": {"color": "tab:red"},
    "constant": {"color": "tab:gray"},
    "exponential": {"color": "tab:orange"},
    "inverse_time": {"color": "tab:green"},
    "cosine": {"color": "tab:blue"},
}


def _save(fig: plt.Figure, path: Path) -> Path:
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def _curves_by_setting(records: list[dict], key: str) -> dict[str, dict[str, list[np.ndarray]]]:
    curves: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        if rec["status"] != "ok" or key not in rec["result"]:
            continue
        inst = rec["spec"]["instance"]
        setting = f"{inst['dataset']}/noise={float(inst['noise_std']):g}"
        curves[setting][rec["spec"]["schedule"]].append(np.asarray(rec["result"][key], dtype=float))
    return curves


def _grid(n: int) -> tuple[plt.Figure, np.ndarray]:
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def nmf_figures(records: list[dict], out: Path) -> list[Path]:
    """``loss_curves.png`` and ``lr_curves.png`` for the NMF schedule comparison.

    Curves are medians over held-out seeds, with the inter-quartile range shaded for losses.
    Runs that diverged end early and are drawn as far as they went.
    """
    out = Path(out)
    paths = []
    losses = _curves_by_setting(records, "rel_errors")
    fig, axes = _grid(len(losses))
    for ax, (setting, by_schedule) in zip(axes, sorted(losses.items()), strict=False):
        for name, curves in sorted(by_schedule.items()):
            length = min(len(c) for c in curves)
            stack = np.vstack([c[:length] for c in curves])
            median = np.median(stack, axis=0)
            ax.plot(median, label=name, **STYLE.get(name, {}))
            lo, hi = np.percentile(stack, [25, 75], axis=0)
            ax.fill_between(
                np.arange(length), lo, hi, alpha=0.15, color=STYLE.get(name, {}).get("color")
            )
        ax.set(title=setting, xlabel="step", ylabel="relative error", yscale="log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    paths.append(_save(fig, out / "loss_curves.png"))

    lrs = _curves_by_setting(records, "lrs")
    bounds = _curves_by_setting(records, "bounds")
    fig, axes = _grid(len(lrs))
    for ax, (setting, by_schedule) in zip(axes, sorted(lrs.items()), strict=False):
        for name, curves in sorted(by_schedule.items()):
            ax.plot(curves[0], label=name, **STYLE.get(name, {}))
            bound = bounds[setting].get(name, [np.array([])])[0]
            if np.isfinite(bound).any():
                ax.plot(
                    bound,
                    ls=":",
                    color=STYLE.get(name, {}).get("color"),
                    label=f"bound ({name} run)",
                )
        ax.set(title=setting, xlabel="step", ylabel="learning rate", yscale="log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    paths.append(_save(fig, out / "lr_curves.png"))
    return paths
