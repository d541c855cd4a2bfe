"""Evaluation protocols: standard, cross-dataset and full-reference (METHOD.md §7.4-7.8).

Inputs are a feature array ``(n_images, n_crops, d)`` float64 aligned row for row with a dataset
table (``datasets.base.TABLE_COLUMNS``), the dataset's ``DatasetInfo`` and its splits. Rows
whose features are not finite (images that failed to load) are left out of every split and
counted (``n_failed``).

* Standard (§7.4-7.6): for each split, ridge on the train images' crops for every alpha; alpha =
  argmax of the median over splits of val SRCC (DECISIONS 13); the reported SRCC/PLCC/KRCC/RMSE
  are medians over splits of the test metrics at that alpha, with per-split lists and per-type
  medians (synthetic sets).
* Cross-dataset (§7.7): alpha from the source's own search; for each source split, fit on its
  train images, predict every target image, flip when the label orientations differ, rescale
  from the source to the target range, score against all target labels; medians over splits.
* Full-reference (§7.8): features ``u = |z_ref - z_dist|`` then the standard protocol.

Regression runs on the labels as published (DMOS for LIVE/CSIQ), so correlations are positive.
Per-image predictions that a user may see are turned "higher = better" (DECISIONS 16) and the
results record that the flip happened (``scores_flipped_for_report``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from .datasets.base import DatasetInfo, to_higher_is_better
from .metrics import compute_metrics, median_metrics, per_type_metrics
from .results import CrossResult, Mode, SplitResult, StandardResult, _json_float  # noqa: F401
from .ridge import DEFAULT_ALPHAS, fit_splits, predict_images, select_alpha
from .splits import SplitError, Splits, index_lists

# ----------------------------------------------------------------------------------------------
# Helpers


def _check_inputs(features: np.ndarray, table: pd.DataFrame) -> np.ndarray:
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 3:
        raise ValueError(f"features must be (n_images, n_crops, d); got shape {feats.shape}")
    if feats.shape[0] != len(table):
        raise ValueError(f"{feats.shape[0]} feature rows for a table of {len(table)} images")
    return feats


def valid_rows(features: np.ndarray) -> np.ndarray:
    """Boolean mask of images whose features are all finite (failed loads are NaN)."""
    return np.all(np.isfinite(features.reshape(features.shape[0], -1)), axis=1)


def _drop_invalid(split_list: list[dict[str, np.ndarray]], valid: np.ndarray, n: int,
                  ) -> list[dict[str, np.ndarray]]:
    out = []
    for s, split in enumerate(split_list):
        clean: dict[str, np.ndarray] = {}
        for role, idx in split.items():
            idx = np.asarray(idx, dtype=np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise ValueError(f"split {s} {role}: image index out of range [0, {n})")
            clean[role] = idx[valid[idx]]
        if clean["train"].size < 2:
            raise ValueError(f"split {s}: fewer than two usable train images")
        out.append(clean)
    return out


def _missing_count(table: pd.DataFrame, n_missing: int | None) -> int:
    if n_missing is not None:
        return int(n_missing)
    return int(table.attrs.get("n_missing", 0))


def _check_split_names(splits: Splits | Sequence[Mapping[str, np.ndarray]],
                       table: pd.DataFrame) -> None:
    """A ``Splits`` object must have been made for this table: same image at each index."""
    if not isinstance(splits, Splits) or "name" not in table.columns:
        return
    idx = splits.frame["image_index"].to_numpy(np.int64)
    names = table["name"].astype(str).to_numpy()
    if idx.size and (idx.max() >= names.size or idx.min() < 0):
        raise SplitError(f"{splits.dataset}: splits index images beyond the table ({names.size})")
    if not np.array_equal(names[idx], splits.frame["image"].astype(str).to_numpy()):
        raise SplitError(f"{splits.dataset}: splits were made for another table (names differ)")


def _split_meta(splits: Splits | Sequence[Mapping[str, np.ndarray]]) -> tuple[str, str]:
    if isinstance(splits, Splits):
        return splits.method, splits.version
    return "given", ""


def map_to_target(prediction: np.ndarray, source: DatasetInfo, target: DatasetInfo,
                  ) -> tuple[np.ndarray, bool]:
    """Map source-scale predictions to the target's scale (§7.7).

    If one dataset is MOS and the other DMOS the predictions are mirrored within the source
    range (``lo + hi - p``); then they are rescaled linearly from the source range to the target
    range. Returns (mapped predictions, whether the orientation was flipped).
    """
    p = np.asarray(prediction, dtype=np.float64)
    s_lo, s_hi = source.score_range
    t_lo, t_hi = target.score_range
    flipped = source.lower_is_better != target.lower_is_better
    if flipped:
        p = (s_lo + s_hi) - p
    return (p - s_lo) / (s_hi - s_lo) * (t_hi - t_lo) + t_lo, flipped


def fr_features(z_reference: np.ndarray, z_distorted: np.ndarray) -> np.ndarray:
    """Full-reference features ``u = |z_ref - z_dist|`` per crop (§7.8), float64."""
    ref = np.asarray(z_reference, dtype=np.float64)
    dist = np.asarray(z_distorted, dtype=np.float64)
    if ref.shape != dist.shape:
        raise ValueError(f"reference features {ref.shape} and distorted {dist.shape} differ")
    return np.abs(ref - dist)


def _names(table: pd.DataFrame) -> np.ndarray:
    """Relative image names (``name``), or ``image`` for tables without them."""
    return (table["name"] if "name" in table.columns else table["image"]).astype(str).to_numpy()


def _report_frame(split: int, index: np.ndarray, names: np.ndarray, prediction: np.ndarray,
                  label: np.ndarray, info: DatasetInfo) -> pd.DataFrame:
    """Per-image predictions and labels as shown to users: "higher = better" (DECISIONS 16)."""
    return pd.DataFrame({
        "split": split, "image_index": index, "image": names,
        "prediction": to_higher_is_better(prediction, info),
        "label": to_higher_is_better(label, info),
    })


def _median_over(values: Sequence[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    return float(np.median(finite)) if finite.size else float("nan")


# ----------------------------------------------------------------------------------------------
# Protocols


def evaluate_standard(features: np.ndarray, table: pd.DataFrame, info: DatasetInfo,
                      splits: Splits | Sequence[Mapping[str, np.ndarray]],
                      alphas: Sequence[float] = DEFAULT_ALPHAS, *,
                      alpha: float | None = None, logistic_plcc: bool = False,
                      per_type: bool = True, n_missing: int | None = None,
                      mode: Mode = "nr") -> StandardResult:
    """The standard protocol of §7.4-7.6 (DECISIONS 13-14, 16).

    ``alpha`` fixes the ridge alpha instead of searching ``alphas`` (e.g. 0.1 during training
    validation, §7.9). ``n_missing`` defaults to ``table.attrs['n_missing']`` (set by
    ``load_dataset``), else 0.
    """
    feats = _check_inputs(features, table)
    _check_split_names(splits, table)
    n = feats.shape[0]
    valid = valid_rows(feats)
    split_list = _drop_invalid(index_lists(splits), valid, n)
    scores = table["score"].to_numpy(np.float64)
    grid = np.array([alpha] if alpha is not None else list(alphas), dtype=np.float64)
    fits = fit_splits(feats, scores, split_list, grid, roles=("val", "test"))
    has_val = all(s["val"].size >= 2 for s in split_list)
    if alpha is None and not has_val:
        raise ValueError("alpha search needs at least two val images in every split")
    choice = select_alpha(fits, scores, grid) if has_val else None
    k = choice.index if choice is not None else 0
    types = table["distortion_type"].astype(str).to_numpy()
    names = _names(table)
    split_results: list[SplitResult] = []
    type_values: dict[str, dict[str, list[float]]] = {}
    pred_frames: list[pd.DataFrame] = []
    for fit, split in zip(fits, split_list, strict=True):
        test = fit.index["test"]
        pred = fit.predictions["test"][:, k]
        metrics = compute_metrics(pred, scores[test], logistic=logistic_plcc)
        val_srcc = float(choice.val_srcc[fit.split, k]) if choice is not None else float("nan")
        split_results.append(SplitResult(fit.split, metrics, val_srcc, int(split["train"].size),
                                         int(split["val"].size), int(test.size)))
        if per_type and info.is_synthetic:
            for kind, m in per_type_metrics(pred, scores[test], types[test],
                                            logistic=logistic_plcc).items():
                bucket = type_values.setdefault(kind, {"srcc": [], "plcc": [], "n": []})
                bucket["srcc"].append(m.srcc)
                bucket["plcc"].append(m.plcc)
                bucket["n"].append(m.n)
        pred_frames.append(_report_frame(fit.split, test, names[test], pred, scores[test], info))
    med = median_metrics([s.metrics for s in split_results])
    per_type_summary = {
        kind: {"srcc": _median_over(v["srcc"]), "plcc": _median_over(v["plcc"]),
               "n": int(np.median(v["n"]))}
        for kind, v in sorted(type_values.items())
    }
    method, version = _split_meta(splits)
    return StandardResult(
        dataset=info.name, mode=mode,
        alpha=float(grid[k]),
        median_val_srcc=choice.best_median_val_srcc if choice is not None else float("nan"),
        srcc=med["srcc"], plcc=med["plcc"], krcc=med["krcc"], rmse=med["rmse"],
        splits=tuple(split_results), per_type=per_type_summary,
        n_images=int(valid.sum()), n_missing=_missing_count(table, n_missing),
        n_failed=int((~valid).sum()), split_method=method, splits_version=version,
        label=info.label, lower_is_better=info.lower_is_better, logistic_plcc=logistic_plcc,
        alpha_search=choice, predictions=pd.concat(pred_frames, ignore_index=True),
    )


def evaluate_fr(z_distorted: np.ndarray, z_reference: np.ndarray, table: pd.DataFrame,
                info: DatasetInfo, splits: Splits | Sequence[Mapping[str, np.ndarray]],
                alphas: Sequence[float] = DEFAULT_ALPHAS, *, logistic_plcc: bool = True,
                n_missing: int | None = None) -> StandardResult:
    """Full-reference protocol (§7.8): standard protocol on ``|z_ref - z_dist|``.

    Only for synthetic datasets (they have references). The README command of the reference
    enables the logistic PLCC, hence the default here.
    """
    if not info.is_synthetic:
        raise ValueError(f"full-reference evaluation needs a synthetic dataset, not {info.name}")
    u = fr_features(z_reference, z_distorted)
    return evaluate_standard(u, table, info, splits, alphas, logistic_plcc=logistic_plcc,
                             n_missing=n_missing, mode="fr")


def evaluate_cross(src_features: np.ndarray, src_table: pd.DataFrame, src_info: DatasetInfo,
                   src_splits: Splits | Sequence[Mapping[str, np.ndarray]],
                   tgt_features: np.ndarray, tgt_table: pd.DataFrame, tgt_info: DatasetInfo,
                   alphas: Sequence[float] = DEFAULT_ALPHAS, *, alpha: float | None = None,
                   logistic_plcc: bool = False, tgt_n_missing: int | None = None,
                   ) -> CrossResult:
    """Cross-dataset protocol of §7.7: train on the source's train splits, test on all target.

    ``alpha`` skips the source search (e.g. reuse ``StandardResult.alpha`` of the source).
    """
    src = _check_inputs(src_features, src_table)
    tgt = _check_inputs(tgt_features, tgt_table)
    if src.shape[1:] != tgt.shape[1:]:
        raise ValueError(f"source features {src.shape[1:]} and target {tgt.shape[1:]} differ")
    _check_split_names(src_splits, src_table)
    src_valid = valid_rows(src)
    split_list = _drop_invalid(index_lists(src_splits), src_valid, src.shape[0])
    src_scores = src_table["score"].to_numpy(np.float64)
    if alpha is None:
        grid = np.asarray(list(alphas), dtype=np.float64)
        fits = fit_splits(src, src_scores, split_list, grid, roles=("val",), keep_paths=True)
        chosen = select_alpha(fits, src_scores, grid).alpha
        origin: Literal["source_val_search", "given"] = "source_val_search"
    else:
        chosen = float(alpha)
        fits = fit_splits(src, src_scores, split_list, [chosen], roles=("val",),
                          keep_paths=True)
        origin = "given"
    tgt_valid = valid_rows(tgt)
    tgt_index = np.flatnonzero(tgt_valid)
    tgt_scores = tgt_table["score"].to_numpy(np.float64)[tgt_index]
    tgt_names = _names(tgt_table)[tgt_index]
    results: list[SplitResult] = []
    pred_frames: list[pd.DataFrame] = []
    flipped = src_info.lower_is_better != tgt_info.lower_is_better
    for fit, split in zip(fits, split_list, strict=True):
        if fit.path is None:
            raise RuntimeError("fit_splits(keep_paths=True) returned no ridge path")
        raw = predict_images(fit.path, tgt, [chosen], tgt_index)[:, 0]
        mapped, _ = map_to_target(raw, src_info, tgt_info)
        metrics = compute_metrics(mapped, tgt_scores, logistic=logistic_plcc)
        results.append(SplitResult(fit.split, metrics, float("nan"), int(split["train"].size),
                                   int(split["val"].size), int(tgt_index.size)))
        pred_frames.append(_report_frame(fit.split, tgt_index, tgt_names, mapped, tgt_scores,
                                         tgt_info))
    med = median_metrics([r.metrics for r in results])
    return CrossResult(
        source=src_info.name, target=tgt_info.name, alpha=chosen, alpha_source=origin,
        srcc=med["srcc"], plcc=med["plcc"], krcc=med["krcc"], rmse=med["rmse"],
        splits=tuple(results), n_images=int(tgt_index.size),
        n_missing=_missing_count(tgt_table, tgt_n_missing),
        n_failed=int((~tgt_valid).sum()), orientation_flipped=flipped,
        source_range=src_info.score_range, target_range=tgt_info.score_range,
        target_lower_is_better=tgt_info.lower_is_better, logistic_plcc=logistic_plcc,
        predictions=pd.concat(pred_frames, ignore_index=True),
    )


def aggregate(results: Sequence[StandardResult], kinds: Mapping[str, str],
              metric: str = "srcc") -> dict[str, float | None]:
    """Means of per-dataset medians (§7.6): synthetic, authentic and global.

    ``kinds`` maps dataset name -> ``"synthetic"``/``"authentic"`` (``DatasetInfo.kind``).
    """
    values: dict[str, list[float]] = {"synthetic": [], "authentic": [], "global": []}
    for r in results:
        v = float(getattr(r, metric))
        if not np.isfinite(v):
            continue
        values["global"].append(v)
        values.setdefault(kinds[r.dataset], []).append(v)
    return {f"{k}_mean": (float(np.mean(v)) if v else None) for k, v in values.items()}
