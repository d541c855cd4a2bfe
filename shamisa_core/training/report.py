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
    axes[0].legend(fontsize=8)
    for key in ("h/erank", "z/erank"):
        if rows and key in rows[0]:
            axes[1].plot(steps, [r[key] for r in rows], label=key)
    axes[1].set_xlabel("step")
    axes[1].set_title("effective rank")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)
