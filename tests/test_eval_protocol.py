"""Standard, cross-dataset and full-reference protocols on tiny synthetic datasets
(METHOD.md §7.4-7.8, DECISIONS 13, 14, 16)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from shamisa_core.evaluation.datasets import LOADERS
from shamisa_core.evaluation.metrics import srcc
from shamisa_core.evaluation.protocol import (
    aggregate,
    evaluate_cross,
    evaluate_fr,
    evaluate_standard,
    fr_features,
    map_to_target,
)
from shamisa_core.evaluation.splits import SplitConfig, make_splits

ALPHAS = tuple(np.logspace(-3, 3, 15))
D = 8


def tiny_dataset(name: str, n_refs: int, per_ref: int, seed: int, direction: np.ndarray,
                 ) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Features (n, 5, D) whose projection on ``direction`` is the quality, and a table whose
    score is that quality mapped into the dataset's range and orientation."""
    info = LOADERS[name].info
    rng = np.random.default_rng(seed)
    n = n_refs * per_ref
    quality = rng.uniform(0, 1, size=n)  # 1 = best
    feats = rng.normal(scale=0.3, size=(n, 5, D)) + quality[:, None, None] * direction
    lo, hi = info.score_range
    label = quality if not info.lower_is_better else 1 - quality
    score = lo + (hi - lo) * np.clip(label + rng.normal(scale=0.03, size=n), 0, 1)
    types = np.array(["blur", "noise"])[np.arange(n) % 2]
    refs = np.repeat([f"R{k:02d}" for k in range(n_refs)], per_ref)
    names = [f"{r}_{i}.png" for i, r in enumerate(refs)]
    table = pd.DataFrame({"image": names, "name": names, "reference": refs,
                          "reference_image": [f"{r}.png" for r in refs],
                          "distortion_type": types, "level": 1, "score": score})
    return feats, table, quality


@pytest.fixture(scope="module")
def direction() -> np.ndarray:
    return np.random.default_rng(0).normal(size=D)


def test_standard_protocol(direction: np.ndarray) -> None:
    feats, table, _ = tiny_dataset("kadid10k", 20, 6, 1, direction)
    table.attrs["n_missing"] = 4
    info = LOADERS["kadid10k"].info
    splits = make_splits(table, info, dataset_version="t")
    res = evaluate_standard(feats, table, info, splits, ALPHAS)
    assert res.srcc > 0.8 and res.plcc > 0.8 and res.krcc > 0.6
    out = res.to_json()
    json.dumps(out)  # valid JSON
    for key in ("srcc", "plcc", "krcc", "rmse", "srcc_splits", "plcc_splits", "alpha",
                "n_images", "n_missing", "n_failed", "median_val_srcc", "per_type",
                "scores_flipped_for_report", "split_method", "splits_version"):
        assert key in out
    assert len(out["srcc_splits"]) == 10 and out["n_images"] == 120 and out["n_missing"] == 4
    assert out["srcc"] == pytest.approx(np.median(out["srcc_splits"]))
    assert out["alpha"] in ALPHAS and out["split_method"] == "reference_disjoint"
    assert set(out["per_type"]) == {"blur", "noise"}
    assert out["scores_flipped_for_report"] is False
    # split 0's test SRCC equals sklearn Ridge(chosen alpha) on that split
    s0 = splits.as_index_list()[0]
    model = Ridge(alpha=res.alpha).fit(feats[s0["train"]].reshape(-1, D),
                                       np.repeat(table["score"].to_numpy()[s0["train"]], 5))
    pred = model.predict(feats[s0["test"]].reshape(-1, D)).reshape(-1, 5).mean(axis=1)
    assert res.splits[0].metrics.srcc == pytest.approx(
        srcc(pred, table["score"].to_numpy()[s0["test"]]), abs=1e-9)
    # fixed alpha (training-time validation, §7.9)
    fixed = evaluate_standard(feats, table, info, splits, alpha=0.1)
    assert fixed.alpha == 0.1


def test_dmos_dataset_reports_higher_is_better(direction: np.ndarray) -> None:
    feats, table, quality = tiny_dataset("csiq", 12, 8, 2, direction)
    info = LOADERS["csiq"].info
    splits = make_splits(table, info, config=SplitConfig(n_splits=3))
    res = evaluate_standard(feats, table, info, splits, ALPHAS)
    assert res.srcc > 0.8  # regression on DMOS: positive correlation with DMOS
    assert res.to_json()["scores_flipped_for_report"] is True
    assert res.to_json()["label"] == "DMOS"
    shown = res.predictions
    assert shown is not None and len(shown) == sum(s.n_test for s in res.splits)
    # reported predictions and labels point "higher = better": they rise with quality
    assert srcc(shown["prediction"], quality[shown["image_index"]]) > 0.8
    np.testing.assert_allclose(shown["label"], 1.0 - table["score"].to_numpy()[
        shown["image_index"]])


def test_failed_images_are_counted_and_left_out(direction: np.ndarray) -> None:
    feats, table, _ = tiny_dataset("kadid10k", 10, 10, 3, direction)
    feats[[0, 17]] = np.nan
    info = LOADERS["kadid10k"].info
    splits = make_splits(table, info, config=SplitConfig(n_splits=2))
    res = evaluate_standard(feats, table, info, splits, ALPHAS, n_missing=0)
    assert res.n_failed == 2 and res.n_images == 98
    assert np.isfinite(res.srcc)
    assert sum(s.n_train + s.n_val + s.n_test for s in res.splits[:1]) == 98


def test_map_to_target() -> None:
    kadid, csiq, tid = (LOADERS[n].info for n in ("kadid10k", "csiq", "tid2013"))
    mapped, flipped = map_to_target(np.array([1.0, 5.0, 2.0]), kadid, csiq)
    assert flipped
    np.testing.assert_allclose(mapped, [1.0, 0.0, 0.75])
    mapped, flipped = map_to_target(np.array([1.0, 5.0]), kadid, tid)
    assert not flipped
    np.testing.assert_allclose(mapped, [0.0, 9.0])


def test_cross_dataset_on_two_tiny_datasets(direction: np.ndarray) -> None:
    src_feats, src_table, _ = tiny_dataset("kadid10k", 15, 6, 4, direction)
    tgt_feats, tgt_table, tgt_quality = tiny_dataset("csiq", 10, 5, 5, direction)
    src_info, tgt_info = LOADERS["kadid10k"].info, LOADERS["csiq"].info
    src_splits = make_splits(src_table, src_info, config=SplitConfig(n_splits=4))
    tgt_table.attrs["n_missing"] = 2
    res = evaluate_cross(src_feats, src_table, src_info, src_splits,
                         tgt_feats, tgt_table, tgt_info, ALPHAS)
    out = res.to_json()
    json.dumps(out)
    assert res.orientation_flipped and out["source"] == "kadid10k" and out["target"] == "csiq"
    assert res.srcc > 0.8 and res.plcc > 0.8  # flipped into DMOS orientation: positive
    assert out["n_images"] == 50 and out["n_missing"] == 2 and len(out["srcc_splits"]) == 4
    assert out["alpha"] in ALPHAS and out["alpha_source"] == "source_val_search"
    # per-image predictions shown to users are "higher = better" on the target (a DMOS set)
    assert out["scores_flipped_for_report"] is True
    shown = res.predictions
    assert shown is not None and len(shown) == 4 * 50
    first = shown[shown["split"] == 0]
    assert srcc(first["prediction"], tgt_quality[first["image_index"]]) > 0.8
    # the alpha is the source's own standard-protocol alpha
    std = evaluate_standard(src_feats, src_table, src_info, src_splits, ALPHAS)
    assert res.alpha == std.alpha
    given = evaluate_cross(src_feats, src_table, src_info, src_splits,
                           tgt_feats, tgt_table, tgt_info, alpha=std.alpha)
    assert given.alpha_source == "given" and given.srcc == pytest.approx(res.srcc)
    # same orientation: no flip
    tid_feats, tid_table, _ = tiny_dataset("tid2013", 10, 5, 6, direction)
    same = evaluate_cross(src_feats, src_table, src_info, src_splits, tid_feats, tid_table,
                          LOADERS["tid2013"].info, alpha=std.alpha)
    assert not same.orientation_flipped and same.srcc > 0.8


def test_full_reference_mode(direction: np.ndarray) -> None:
    rng = np.random.default_rng(7)
    _, table, quality = tiny_dataset("kadid10k", 12, 6, 8, direction)
    n = len(table)
    z_ref = rng.normal(size=(n, 5, D))
    damage = (1 - quality)[:, None, None] * np.abs(direction)
    z_dist = z_ref + damage * np.sign(rng.normal(size=(n, 5, D)))
    u = fr_features(z_ref, z_dist)
    assert (u >= 0).all() and np.allclose(fr_features(z_ref, z_ref), 0)
    info = LOADERS["kadid10k"].info
    splits = make_splits(table, info, config=SplitConfig(n_splits=3))
    res = evaluate_fr(z_dist, z_ref, table, info, splits, ALPHAS)
    assert res.mode == "fr" and res.logistic_plcc and res.srcc > 0.9
    with pytest.raises(ValueError, match="synthetic"):
        evaluate_fr(z_dist, z_ref, table, LOADERS["koniq10k"].info, splits, ALPHAS)


def test_aggregate_and_input_checks(direction: np.ndarray) -> None:
    feats, table, _ = tiny_dataset("kadid10k", 10, 6, 9, direction)
    info = LOADERS["kadid10k"].info
    splits = make_splits(table, info, config=SplitConfig(n_splits=2))
    res = evaluate_standard(feats, table, info, splits, ALPHAS)
    summary = aggregate([res], {"kadid10k": "synthetic"})
    assert summary["synthetic_mean"] == pytest.approx(res.srcc)
    assert summary["authentic_mean"] is None
    with pytest.raises(ValueError, match="feature rows"):
        evaluate_standard(feats[:-1], table, info, splits, ALPHAS)
    shuffled = table.iloc[::-1].reset_index(drop=True)
    with pytest.raises(ValueError, match="another table"):
        evaluate_standard(feats, shuffled, info, splits, ALPHAS)
