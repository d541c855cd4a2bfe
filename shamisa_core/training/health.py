"""Collapse guard: is a trained encoder's representation still alive? (METHOD.md §6.3 diagnostics)

A non-contrastive objective can collapse: every crop maps to (nearly) the same ``h`` while the
loss keeps falling. The training log records, every ``log_every`` steps, the effective rank of
the centred ``h`` (``h/erank``: exp of the entropy of its normalised singular values, 1 = one
direction) and the mean per-dimension std of ``z`` (``z/std_mean``). :func:`assess` judges the
last logged rows against thresholds; the result is stored in ``encoder.pt`` (``health``), shown as
the ``encoder`` asset's Dagster check, and the champion rule never promotes a failed encoder.

Thresholds (bench/profile_sweep.py, docs/profile_sweep.md): the collapsed runs of the sweeps
ended at an effective rank of h of 1.4-1.7, the healthy ones above 20, so ``min_h_erank=5``
sits well inside the gap. The std of ``z`` does not separate them by itself (a projector on the
unit-norm ``h`` starts at ~0.005 per dimension and stays there in a short run, collapsed or not),
so ``min_z_std`` only catches a dead projector (every ``z`` equal).

The effective rank is scale-free, so it misses the other way to collapse: ``h`` keeps its
directions but stops varying. The per-dimension std of ``h`` (``h/std_mean``) catches that:
healthy runs (ImageNet Lite0 with the warm-up recipe, random ResNet-18 in the tests) end at
0.016-0.021; the Lite0 runs that collapsed this way ended at 1e-5 (the previous cpu-small
recipe: effective rank 31, yet worse than its ImageNet twin by 0.3 SRCC) and 4e-4 (the full
backbone lr), so ``min_h_std=2e-3`` (docs/DECISIONS.md P5).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class HealthThresholds:
    """Lower bounds on the last logged diagnostics (averaged over ``window`` rows)."""

    min_h_erank: float = 5.0
    min_z_std: float = 1e-3
    min_h_std: float = 2e-3
    window: int = 3


def _mean_last(rows: Sequence[Mapping[str, Any]], key: str, window: int) -> float:
    vals = [float(r[key]) for r in rows if key in r and r[key] is not None][-window:]
    return sum(vals) / len(vals) if vals else float("nan")


def assess(rows: Sequence[Mapping[str, Any]], thresholds: HealthThresholds = HealthThresholds()) -> dict[str, Any]:
    """``{"passed", "h_erank", "h_std", "z_std", "loss_finite", "reasons", "thresholds"}`` for ``rows``.

    No rows, a non-finite loss or a diagnostic below its bound fails; each failure is named.
    """
    reasons: list[str] = []
    h_erank = _mean_last(rows, "h/erank", thresholds.window)
    z_std = _mean_last(rows, "z/std_mean", thresholds.window)
    h_std = _mean_last(rows, "h/std_mean", thresholds.window)
    losses = [float(r.get("loss", float("nan"))) for r in rows]
    loss_finite = bool(losses) and all(math.isfinite(v) for v in losses[-thresholds.window:])
    if not rows:
        reasons.append("no training log rows")
    if not loss_finite:
        reasons.append("the loss is not finite")
    if not h_erank >= thresholds.min_h_erank:
        reasons.append(f"effective rank of h {h_erank:.3g} < {thresholds.min_h_erank}")
    if not h_std >= thresholds.min_h_std:
        reasons.append(f"per-dimension std of h {h_std:.3g} < {thresholds.min_h_std}")
    if not z_std >= thresholds.min_z_std:
        reasons.append(f"per-dimension std of z {z_std:.3g} < {thresholds.min_z_std}")
    return {
        "passed": not reasons, "h_erank": h_erank, "h_std": h_std, "z_std": z_std, "loss_finite": loss_finite,
        "reasons": reasons, "thresholds": asdict(thresholds),
    }
