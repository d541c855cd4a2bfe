"""Summaries of a training log: final loss terms, edges per branch, the loss-curve plot."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

from shamisa_core.atomic import atomic_write_bytes


def final_terms(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The loss terms (``loss/...`` keys and ``loss``) of the last log row."""
    if not rows:
        return {}
    last = rows[-1]
    return {k: float(v) for k, v in last.items() if (k == "loss" or k.startswith("loss/")) and isinstance(v, (int, float))}


def branch_edges(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Edge counts and total weights per branch in the last log row."""
    if not rows:
        return {}
    last = rows[-1]
    return {k: float(v) for k, v in last.items() if k.startswith(("edges/", "weight/")) and isinstance(v, (int, float))}


def loss_curve_png(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Plot total loss, the main terms and the effective rank of ``h`` against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    axes[0].plot(steps, [r["loss"] for r in rows], label="total", color="black")
    for key in ("loss/L_var", "loss/L_cov", "loss/L_inv"):
        if rows and key in rows[0]:
            axes[0].plot(steps, [r[key] for r in rows], label=key.split("/")[1], alpha=0.8)
    axes[0].set_xlabel("step")
    axes[0].set_title("loss")
    _legend(axes[0], 8)
    for key in ("h/erank", "z/erank"):
        if rows and key in rows[0]:
            axes[1].plot(steps, [r[key] for r in rows], label=key)
    axes[1].set_xlabel("step")
    axes[1].set_title("effective rank")
    _legend(axes[1], 8)
    return _write_png(fig, path)


def diagnostics_png(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Training diagnostics over steps: effective rank of ``h``, per-dimension std of ``z``
    (mean and min) and every loss term (``loss`` and ``loss/...``), one panel each group."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r.get("step", i) for i, r in enumerate(rows)]
    keys = sorted({k for r in rows for k in r})

    def series(key: str) -> list[float]:
        return [float(r[key]) if isinstance(r.get(key), (int, float)) else float("nan") for r in rows]

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), dpi=100)
    for key in ("h/erank", "h/erank_raw"):
        if key in keys:
            axes[0].plot(steps, series(key), label=key)
    axes[0].set_title("effective rank of h")
    for key in ("z/std_mean", "z/std_min"):
        if key in keys:
            axes[1].plot(steps, series(key), label=key)
    axes[1].set_title("std of z")
    for key in [k for k in keys if k == "loss" or k.startswith("loss/")]:
        axes[2].plot(steps, series(key), label=key.split("/", 1)[-1],
                     color="black" if key == "loss" else None)
    axes[2].set_title("loss terms")
    for ax in axes:
        ax.set_xlabel("step")
        _legend(ax, 7)
    return _write_png(fig, path)


def _legend(ax: Any, fontsize: int) -> None:
    """A legend where the panel has labelled lines (matplotlib warns on an empty one)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=fontsize)


def _write_png(fig: Any, path: Path) -> Path:
    """Lay out ``fig``, write it atomically as PNG to ``path`` and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)
