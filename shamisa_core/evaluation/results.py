"""Result records of the evaluation protocols (METHOD.md §7.4-7.8): per split, standard,
cross-dataset; JSON-ready (non-finite numbers become None)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from .metrics import Metrics
from .ridge import AlphaChoice

Mode = Literal["nr", "fr"]


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


@dataclass(frozen=True)
class SplitResult:
    """Test metrics of one split at the chosen alpha, with the role sizes."""

    split: int
    metrics: Metrics
    val_srcc: float
    n_train: int
    n_val: int
    n_test: int

    def to_json(self) -> dict[str, object]:
        """Plain dict (NaN -> None)."""
        return {"split": self.split, **self.metrics.to_json(),
                "val_srcc": _json_float(self.val_srcc), "n_train": self.n_train,
                "n_val": self.n_val, "n_test": self.n_test}


@dataclass(frozen=True, eq=False)
class StandardResult:
    """Result of the standard (or FR) protocol on one dataset (§7.4-7.6)."""

    dataset: str
    mode: Mode
    alpha: float
    median_val_srcc: float
    srcc: float
    plcc: float
    krcc: float
    rmse: float
    splits: tuple[SplitResult, ...]
    per_type: Mapping[str, Mapping[str, float]]
    n_images: int
    n_missing: int
    n_failed: int
    split_method: str
    splits_version: str
    label: str
    lower_is_better: bool
    logistic_plcc: bool
    alpha_search: AlphaChoice | None = field(default=None, repr=False)
    predictions: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def scores_flipped_for_report(self) -> bool:
        """True when reported per-image scores were flipped to "higher = better" (DECISIONS 16)."""
        return self.lower_is_better

    def to_json(self) -> dict[str, object]:
        """JSON-ready summary: medians, per-split lists, alpha, counts, orientation record."""
        return {
            "dataset": self.dataset,
            "mode": self.mode,
            "srcc": _json_float(self.srcc),
            "plcc": _json_float(self.plcc),
            "krcc": _json_float(self.krcc),
            "rmse": _json_float(self.rmse),
            "srcc_splits": [_json_float(s.metrics.srcc) for s in self.splits],
            "plcc_splits": [_json_float(s.metrics.plcc) for s in self.splits],
            "krcc_splits": [_json_float(s.metrics.krcc) for s in self.splits],
            "rmse_splits": [_json_float(s.metrics.rmse) for s in self.splits],
            "alpha": self.alpha,
            "median_val_srcc": _json_float(self.median_val_srcc),
            "n_splits": len(self.splits),
            "n_images": self.n_images,
            "n_missing": self.n_missing,
            "n_failed": self.n_failed,
            "split_method": self.split_method,
            "splits_version": self.splits_version,
            "label": self.label,
            "lower_is_better": self.lower_is_better,
            "scores_flipped_for_report": self.scores_flipped_for_report,
            "logistic_plcc": self.logistic_plcc,
            "per_type": {k: {m: _json_float(v) if m != "n" else v for m, v in d.items()}
                         for k, d in self.per_type.items()},
            "splits": [s.to_json() for s in self.splits],
        }


@dataclass(frozen=True, eq=False)
class CrossResult:
    """Result of the cross-dataset protocol for one (source, target) pair (§7.7)."""

    source: str
    target: str
    alpha: float
    alpha_source: Literal["source_val_search", "given"]
    srcc: float
    plcc: float
    krcc: float
    rmse: float
    splits: tuple[SplitResult, ...]
    n_images: int
    n_missing: int
    n_failed: int
    orientation_flipped: bool
    source_range: tuple[float, float]
    target_range: tuple[float, float]
    target_lower_is_better: bool
    logistic_plcc: bool
    predictions: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def scores_flipped_for_report(self) -> bool:
        """True when reported per-image scores were flipped to "higher = better" (DECISIONS 16)."""
        return self.target_lower_is_better

    @property
    def same_dataset(self) -> bool:
        """Source = target: predicts train images too, not comparable with standard (§7.7)."""
        return self.source == self.target

    def to_json(self) -> dict[str, object]:
        """JSON-ready summary, shaped like ``StandardResult.to_json``."""
        return {
            "source": self.source,
            "target": self.target,
            "srcc": _json_float(self.srcc),
            "plcc": _json_float(self.plcc),
            "krcc": _json_float(self.krcc),
            "rmse": _json_float(self.rmse),
            "srcc_splits": [_json_float(s.metrics.srcc) for s in self.splits],
            "plcc_splits": [_json_float(s.metrics.plcc) for s in self.splits],
            "alpha": self.alpha,
            "alpha_source": self.alpha_source,
            "n_splits": len(self.splits),
            "n_images": self.n_images,
            "n_missing": self.n_missing,
            "n_failed": self.n_failed,
            "orientation_flipped": self.orientation_flipped,
            "source_range": list(self.source_range),
            "target_range": list(self.target_range),
            "target_lower_is_better": self.target_lower_is_better,
            "scores_flipped_for_report": self.scores_flipped_for_report,
            "same_dataset": self.same_dataset,
            "logistic_plcc": self.logistic_plcc,
        }
