"""Correlation and error metrics for IQA predictions (METHOD.md §7.5).

SRCC and PLCC are computed here in vectorised form (they equal ``scipy.stats.spearmanr`` and
``pearsonr``; the tests check it), KRCC is scipy's Kendall tau-b, RMSE is the root mean squared
error. The optional 4-parameter logistic maps predictions before PLCC/RMSE (§7.5). Degenerate
inputs (fewer than two points, a constant vector) give NaN, never an exception.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import scipy.optimize
import scipy.stats

LOGISTIC_MAXFEV = 10_000
LOGISTIC_CLIP = 60.0


def _as_vector(x: object) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).ravel()


def _pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``a`` (n, k) with vector ``b`` (n,)."""
    n = b.shape[0]
    if n < 2:
        return np.full(a.shape[1], np.nan)
    ac = a - a.mean(axis=0, keepdims=True)
    bc = b - b.mean()
    num = bc @ ac
    den = np.sqrt((ac * ac).sum(axis=0) * (bc @ bc))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.clip(r, -1.0, 1.0)


def srcc_columns(predictions: np.ndarray, target: np.ndarray) -> np.ndarray:
    """SRCC of every column of ``predictions`` (n, k) with ``target`` (n,) (§7.5, §7.4 search).

    Ranks use average ranks for ties, as ``scipy.stats.spearmanr``.
    """
    preds = np.asarray(predictions, dtype=np.float64)
    if preds.ndim == 1:
        preds = preds[:, None]
    y = _as_vector(target)
    if preds.shape[0] != y.shape[0]:
        raise ValueError(f"{preds.shape[0]} predictions for {y.shape[0]} targets")
    ranks = scipy.stats.rankdata(preds, axis=0)
    return _pearson_columns(ranks, scipy.stats.rankdata(y))


def srcc(prediction: Sequence[float] | np.ndarray, target: Sequence[float] | np.ndarray) -> float:
    """Spearman rank-order correlation (equals ``scipy.stats.spearmanr``; §7.5)."""
    return float(srcc_columns(_as_vector(prediction)[:, None], _as_vector(target))[0])


def plcc_raw(prediction: Sequence[float] | np.ndarray,
             target: Sequence[float] | np.ndarray) -> float:
    """Pearson linear correlation of raw predictions (equals ``scipy.stats.pearsonr``)."""
    p = _as_vector(prediction)
    y = _as_vector(target)
    if p.shape != y.shape:
        raise ValueError(f"{p.size} predictions for {y.size} targets")
    return float(_pearson_columns(p[:, None], y)[0])


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``, exponent clipped to ±60 (§7.5)."""
    z = np.clip((np.asarray(x, dtype=np.float64) - b3) / max(abs(b4), 1e-12),
                -LOGISTIC_CLIP, LOGISTIC_CLIP)
    return (b1 - b2) / (1.0 + np.exp(-z)) + b2


def fit_logistic4(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Map predictions through a 4-parameter logistic fitted to ``target`` (§7.5).

    Initial values: ``b1 = max(target)``, ``b2 = min(target)``, ``b3 = mean(pred)``,
    ``b4 = std(pred)`` (1 if zero); ``curve_fit`` with at most 10,000 evaluations. If the fit
    fails or gives non-finite values the raw predictions are returned.
    """
    p = _as_vector(prediction)
    y = _as_vector(target)
    if p.size < 4:
        return p
    std = float(np.std(p))
    init = [float(np.max(y)), float(np.min(y)), float(np.mean(p)), std if std > 0 else 1.0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = scipy.optimize.curve_fit(logistic4, p, y, p0=init,
                                                 maxfev=LOGISTIC_MAXFEV)
    except (RuntimeError, ValueError, scipy.optimize.OptimizeWarning, FloatingPointError):
        return p
    mapped = logistic4(p, *params)
    return mapped if np.all(np.isfinite(mapped)) else p


def plcc(prediction: Sequence[float] | np.ndarray, target: Sequence[float] | np.ndarray,
         *, logistic: bool = False) -> float:
    """PLCC, optionally after the 4-parameter logistic mapping (§7.5; default off)."""
    p = _as_vector(prediction)
    if logistic:
        p = fit_logistic4(p, _as_vector(target))
    return plcc_raw(p, target)


def krcc(prediction: Sequence[float] | np.ndarray, target: Sequence[float] | np.ndarray) -> float:
    """Kendall rank correlation (tau-b, ``scipy.stats.kendalltau``)."""
    p = _as_vector(prediction)
    y = _as_vector(target)
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(scipy.stats.kendalltau(p, y).statistic)


def rmse(prediction: Sequence[float] | np.ndarray, target: Sequence[float] | np.ndarray) -> float:
    """Root mean squared error."""
    p = _as_vector(prediction)
    y = _as_vector(target)
    if p.shape != y.shape:
        raise ValueError(f"{p.size} predictions for {y.size} targets")
    if p.size == 0:
        return float("nan")
    return float(np.sqrt(np.mean((p - y) ** 2)))


@dataclass(frozen=True)
class Metrics:
    """SRCC, PLCC, KRCC and RMSE of one prediction set, with its size."""

    srcc: float
    plcc: float
    krcc: float
    rmse: float
    n: int

    def to_json(self) -> dict[str, float | int | None]:
        """Plain dict; NaN becomes None (valid JSON)."""
        return {k: _json_float(v) for k, v in asdict(self).items()}


def _json_float(value: float | int) -> float | int | None:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def compute_metrics(prediction: Sequence[float] | np.ndarray,
                    target: Sequence[float] | np.ndarray,
                    *, logistic: bool = False) -> Metrics:
    """All four metrics (§7.5). With ``logistic`` PLCC and RMSE use the mapped predictions."""
    p = _as_vector(prediction)
    y = _as_vector(target)
    if p.shape != y.shape:
        raise ValueError(f"{p.size} predictions for {y.size} targets")
    mapped = fit_logistic4(p, y) if logistic else p
    return Metrics(srcc=srcc(p, y), plcc=plcc_raw(mapped, y), krcc=krcc(p, y),
                   rmse=rmse(mapped, y), n=int(p.size))


def per_type_metrics(prediction: Sequence[float] | np.ndarray,
                     target: Sequence[float] | np.ndarray,
                     types: Sequence[str] | np.ndarray,
                     *, logistic: bool = False, min_count: int = 3) -> dict[str, Metrics]:
    """Metrics per distortion type (§7.5); types with fewer than ``min_count`` images give NaN."""
    p = _as_vector(prediction)
    y = _as_vector(target)
    kinds = np.asarray(types).astype(str)
    if not (p.shape == y.shape == kinds.shape):
        raise ValueError("prediction, target and types must have the same length")
    out: dict[str, Metrics] = {}
    for kind in sorted(set(kinds.tolist())):
        mask = kinds == kind
        if int(mask.sum()) < min_count:
            nan = float("nan")
            out[kind] = Metrics(nan, nan, nan, nan, int(mask.sum()))
        else:
            out[kind] = compute_metrics(p[mask], y[mask], logistic=logistic)
    return out


def median_metrics(items: Sequence[Metrics]) -> Mapping[str, float]:
    """Median over splits of each metric, ignoring NaN (§7.6); NaN if all are NaN."""
    out: dict[str, float] = {}
    for key in ("srcc", "plcc", "krcc", "rmse"):
        values = np.array([getattr(m, key) for m in items], dtype=np.float64)
        finite = values[np.isfinite(values)]
        out[key] = float(np.median(finite)) if finite.size else float("nan")
    return out
