"""Complete-behaviour tests of the evaluation core: protocols, ridge, metrics, splits, regressor.

Every record a function returns is compared field by field with values computed here
independently (scikit-learn ``Ridge``, ``scipy.stats``, hand computations from METHOD.md
§7.2-7.8 and DECISIONS 13-16), so that a changed key, value, default or boundary is seen.
Tiny inputs only (a few dozen images, 3 crops, 4 features).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.stats
from sklearn.linear_model import Ridge

from shamisa_core.evaluation.datasets.base import DatasetInfo, LoadedDataset
from shamisa_core.evaluation.metrics import (
    Metrics,
    compute_metrics,
    fit_logistic4,
    krcc,
    logistic4,
    median_metrics,
    per_type_metrics,
    plcc,
    plcc_raw,
    rmse,
    srcc,
    srcc_columns,
)
from shamisa_core.evaluation.protocol import (
    aggregate,
    evaluate_cross,
    evaluate_fr,
    evaluate_standard,
    fr_features,
    map_to_target,
    valid_rows,
)
from shamisa_core.evaluation.regressor import REGRESSOR_FORMAT, Regressor, fit_regressor
from shamisa_core.evaluation.ridge import (
    DEFAULT_ALPHAS,
    alpha_grid,
    crop_level_path,
    fit_ridge_path,
    fit_splits,
    predict_images,
    search_alpha,
    select_alpha,
)
from shamisa_core.evaluation.splits import (
    ROLES,
    SplitConfig,
    SplitError,
    Splits,
    choose_method,
    content_hash,
    index_lists,
    make_splits,
    permuted_roles,
    read_splits,
    role_counts,
    splits_for,
    validate_splits,
    write_splits,
)

SYN = DatasetInfo(name="synmos", kind="synthetic", score_range=(1.0, 5.0), lower_is_better=False,
                  label="MOS")
SYN_DMOS = DatasetInfo(name="syndmos", kind="synthetic", score_range=(0.0, 10.0),
                       lower_is_better=True, label="DMOS")
AUTH = DatasetInfo(name="authmos", kind="authentic", score_range=(2.0, 12.0),
                   lower_is_better=False, label="MOS")
AUTH_DMOS = DatasetInfo(name="authdmos", kind="authentic", score_range=(0.0, 10.0),
                        lower_is_better=True, label="DMOS")
ALPHAS = (1e-3, 0.3, 30.0, 3e3)
D = 4
C = 3


def _data(n_refs: int, per_ref: int, seed: int, info: DatasetInfo, *, with_name: bool = True,
          ) -> tuple[np.ndarray, pd.DataFrame]:
    """Features (n, C, D) and a table whose score depends on a direction plus noise."""
    rng = np.random.default_rng(seed)
    n = n_refs * per_ref
    q = rng.uniform(0, 1, n)
    w = np.array([1.0, -0.5, 0.3, 0.0])
    feats = rng.normal(scale=0.6, size=(n, C, D)) + q[:, None, None] * w
    lo, hi = info.score_range
    label = (1 - q) if info.lower_is_better else q
    score = lo + (hi - lo) * np.clip(label + rng.normal(scale=0.15, size=n), 0, 1)
    refs = np.repeat([f"R{k:02d}" for k in range(n_refs)], per_ref)
    names = [f"{r}/img{i:03d}.png" for i, r in enumerate(refs)]
    types = np.array(["blur", "noise", "jpeg", "noise"])[np.arange(n) % 4]
    table = pd.DataFrame({"image": [f"/abs/{x}" for x in names], "name": names,
                          "reference": refs, "reference_image": [f"/abs/{r}.png" for r in refs],
                          "distortion_type": types, "level": 1, "score": score})
    if not with_name:
        table = table.drop(columns=["name"])
    return feats, table


# ----------------------------------------------------------------------------------------------
# Independent reference computations (scikit-learn / scipy)


def _sk_image_predictions(feats, scores, train, other, alpha):
    model = Ridge(alpha=alpha).fit(feats[train].reshape(-1, D), np.repeat(scores[train], C))
    return model.predict(feats[other].reshape(-1, D)).reshape(-1, C).mean(axis=1)


def _sk_metrics(pred, y):
    if len(pred) < 2:
        return dict(srcc=np.nan, plcc=np.nan, krcc=np.nan, rmse=float(np.sqrt(np.mean((pred - y) ** 2))) if len(pred) else np.nan, n=len(pred))
    return dict(srcc=scipy.stats.spearmanr(pred, y).statistic,
                plcc=scipy.stats.pearsonr(pred, y).statistic,
                krcc=scipy.stats.kendalltau(pred, y).statistic,
                rmse=float(np.sqrt(np.mean((pred - y) ** 2))), n=len(pred))


def _sk_search(feats, scores, split_list, alphas):
    table = np.array([[scipy.stats.spearmanr(
        _sk_image_predictions(feats, scores, s["train"], s["val"], a), scores[s["val"]]).statistic
        for a in alphas] for s in split_list])
    med = np.median(table, axis=0)
    return table, med, int(np.argmax(med))


def _nanmed(values):
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else None


def _same(a, b, tol=1e-9):
    """Nested JSON-like records equal, numbers to ``tol`` (BLAS may differ in the last bits)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k], tol)
                                                                    for k in a)
    if isinstance(a, (list, tuple)):
        return (isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(_same(x, y, tol) for x, y in zip(a, b)))
    if isinstance(a, float) and isinstance(b, float):
        return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= tol * max(1.0, abs(b))
    return a == b and type(a) is type(b)


def _close(a, b, tol=1e-7):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tol * max(1.0, abs(b))


# ----------------------------------------------------------------------------------------------
# protocol: standard


def test_protocol_standard_complete_record_matches_sklearn():
    feats, table = _data(10, 4, 1, SYN)
    feats[5, 1, 2] = np.nan  # one failed image (one non-finite crop is enough)
    table.attrs["n_missing"] = 3
    splits = make_splits(table, SYN, config=SplitConfig(n_splits=3, seed=4, train_fraction=0.5,
                                                        val_fraction=0.3), dataset_version="dv")
    res = evaluate_standard(feats, table, SYN, splits, ALPHAS)
    scores = table["score"].to_numpy()
    clean = []
    for s in splits.as_index_list():
        clean.append({r: s[r][s[r] != 5] for r in ROLES})
    vtab, vmed, k = _sk_search(feats, scores, clean, ALPHAS)
    assert res.alpha == ALPHAS[k] and isinstance(res.alpha, float)
    assert 0 < k  # the search really moves away from the first alpha
    assert res.median_val_srcc == pytest.approx(vmed[k], abs=1e-9)
    np.testing.assert_allclose(res.alpha_search.val_srcc, vtab, atol=1e-9)
    np.testing.assert_allclose(res.alpha_search.alphas, ALPHAS)
    assert res.alpha_search.index == k
    split_metrics = []
    frames = []
    types_by_split = []
    for i, s in enumerate(clean):
        pred = _sk_image_predictions(feats, scores, s["train"], s["test"], ALPHAS[k])
        m = _sk_metrics(pred, scores[s["test"]])
        split_metrics.append(m)
        sr = res.splits[i]
        assert (sr.split, sr.n_train, sr.n_val, sr.n_test) == (
            i, s["train"].size, s["val"].size, s["test"].size)
        assert sr.val_srcc == pytest.approx(vtab[i, k], abs=1e-9)
        assert sr.metrics.n == m["n"]
        for key in ("srcc", "plcc", "krcc", "rmse"):
            assert getattr(sr.metrics, key) == pytest.approx(m[key], abs=1e-7), (i, key)
        frames.append(pd.DataFrame({"split": i, "image_index": s["test"],
                                    "image": table["name"].to_numpy()[s["test"]],
                                    "prediction": pred, "label": scores[s["test"]]}))
        t = table["distortion_type"].to_numpy()[s["test"]]
        per = {}
        for kind in sorted(set(t)):
            mask = t == kind
            per[kind] = (_sk_metrics(pred[mask], scores[s["test"]][mask]) if mask.sum() >= 3
                         else dict(srcc=np.nan, plcc=np.nan, n=int(mask.sum())))
        types_by_split.append(per)
    for key in ("srcc", "plcc", "krcc", "rmse"):
        assert getattr(res, key) == pytest.approx(np.median([m[key] for m in split_metrics]),
                                                  abs=1e-7)
    expected_pt = {}
    for kind in sorted({k for per in types_by_split for k in per}):
        got = [per[kind] for per in types_by_split if kind in per]
        expected_pt[kind] = {"srcc": _nanmed([g["srcc"] for g in got]),
                             "plcc": _nanmed([g["plcc"] for g in got]),
                             "n": int(np.median([g["n"] for g in got]))}
    assert list(res.per_type) == sorted(expected_pt)
    for kind, exp in expected_pt.items():
        got = res.per_type[kind]
        assert set(got) == {"srcc", "plcc", "n"}
        assert got["n"] == exp["n"] and isinstance(got["n"], int)
        assert _close(None if not np.isfinite(got["srcc"]) else got["srcc"], exp["srcc"])
        assert _close(None if not np.isfinite(got["plcc"]) else got["plcc"], exp["plcc"])
    expected_frame = pd.concat(frames, ignore_index=True)
    assert list(res.predictions.columns) == ["split", "image_index", "image", "prediction",
                                             "label"]
    assert res.predictions.index.equals(pd.RangeIndex(len(expected_frame)))
    pd.testing.assert_frame_equal(res.predictions, expected_frame, check_dtype=False, atol=1e-7)
    assert (res.dataset, res.mode, res.n_images, res.n_missing, res.n_failed) == (
        "synmos", "nr", 39, 3, 1)
    assert (res.split_method, res.splits_version) == ("reference_disjoint", splits.version)
    assert (res.label, res.lower_is_better, res.logistic_plcc) == ("MOS", False, False)
    out = res.to_json()
    assert out["splits"][0]["val_srcc"] == pytest.approx(vtab[0, k], abs=1e-9)
    json.dumps(out)


def test_protocol_standard_given_lists_authentic_dmos_logistic_and_fixed_alpha():
    feats, table = _data(6, 5, 2, AUTH_DMOS, with_name=False)
    table.attrs["n_missing"] = 7
    rng = np.random.default_rng(0)
    perm = rng.permutation(30)
    lists = [{"train": perm[:18], "val": perm[18:22], "test": perm[22:]},
             {"train": perm[12:], "val": perm[:4], "test": perm[4:12]}]
    res = evaluate_standard(feats, table, AUTH_DMOS, lists, ALPHAS, alpha=0.3,
                            logistic_plcc=True, n_missing=0, mode="fr")
    scores = table["score"].to_numpy()
    assert res.alpha == 0.3 and res.alpha_search.alphas.tolist() == [0.3]
    assert (res.split_method, res.splits_version, res.per_type) == ("given", "", {})
    assert (res.n_missing, res.n_failed, res.n_images, res.mode) == (0, 0, 30, "fr")
    assert (res.label, res.lower_is_better, res.logistic_plcc) == ("DMOS", True, True)
    for i, s in enumerate(lists):
        pred = _sk_image_predictions(feats, scores, np.sort(s["train"]), s["test"], 0.3)
        y = scores[s["test"]]
        mapped = fit_logistic4(pred, y)
        m = res.splits[i].metrics
        assert m.srcc == pytest.approx(scipy.stats.spearmanr(pred, y).statistic, abs=1e-9)
        assert m.krcc == pytest.approx(scipy.stats.kendalltau(pred, y).statistic, abs=1e-9)
        assert m.plcc == pytest.approx(scipy.stats.pearsonr(mapped, y).statistic, abs=1e-6)
        assert m.rmse == pytest.approx(np.sqrt(np.mean((mapped - y) ** 2)), abs=1e-6)
        val_pred = _sk_image_predictions(feats, scores, np.sort(s["train"]), s["val"], 0.3)
        assert res.splits[i].val_srcc == pytest.approx(
            scipy.stats.spearmanr(val_pred, scores[s["val"]]).statistic, abs=1e-9)
        part = res.predictions[res.predictions["split"] == i]
        # shown "higher = better": DMOS mirrored inside (0, 10); names from ``image``
        np.testing.assert_allclose(part["prediction"], 10.0 - pred, atol=1e-7)
        np.testing.assert_allclose(part["label"], 10.0 - y)
        assert part["image"].tolist() == table["image"].to_numpy()[s["test"]].tolist()
        assert part["image_index"].tolist() == list(s["test"])
    assert res.median_val_srcc == pytest.approx(np.median([s.val_srcc for s in res.splits]))
    # the table's own count when n_missing is not given; the defaults: no logistic, "nr"
    res2 = evaluate_standard(feats, table, AUTH_DMOS, lists, ALPHAS)
    assert (res2.n_missing, res2.mode, res2.logistic_plcc) == (7, "nr", False)
    assert res2.alpha in ALPHAS
    m0 = res2.splits[0].metrics
    pred0 = _sk_image_predictions(feats, scores, np.sort(lists[0]["train"]), lists[0]["test"],
                                  res2.alpha)
    assert m0.plcc == pytest.approx(
        scipy.stats.pearsonr(pred0, scores[lists[0]["test"]]).statistic, abs=1e-7)
    table.attrs.clear()
    assert evaluate_standard(feats, table, AUTH_DMOS, lists, alpha=1.0).n_missing == 0


def test_protocol_standard_per_type_switch_and_synthetic_only():
    feats, table = _data(8, 4, 3, SYN)
    splits = make_splits(table, SYN, config=SplitConfig(n_splits=2))
    assert evaluate_standard(feats, table, SYN, splits, alpha=1.0, per_type=False).per_type == {}
    on = evaluate_standard(feats, table, SYN, splits, alpha=1.0)
    assert sorted(on.per_type) == ["blur", "jpeg", "noise"]
    auth = dataclasses.replace(SYN, kind="authentic")
    assert evaluate_standard(feats, table, auth, splits, alpha=1.0, per_type=True).per_type == {}


def test_protocol_standard_val_size_boundaries_and_given_alpha_without_val():
    feats, table = _data(6, 4, 4, SYN)
    base = [{"train": np.arange(0, 14), "val": np.arange(14, 16), "test": np.arange(16, 24)},
            {"train": np.arange(10, 24), "val": np.arange(0, 2), "test": np.arange(2, 10)}]
    ok = evaluate_standard(feats, table, SYN, base, ALPHAS)  # exactly two val images: searched
    assert ok.alpha_search is not None and np.isfinite(ok.median_val_srcc)
    short = [dict(base[0]), dict(base[1], val=np.arange(0, 1), test=np.arange(1, 10))]
    with pytest.raises(ValueError) as err:
        evaluate_standard(feats, table, SYN, short, ALPHAS)
    assert str(err.value) == "alpha search needs at least two val images in every split"
    fixed = evaluate_standard(feats, table, SYN, short, ALPHAS, alpha=2.0)
    assert fixed.alpha == 2.0 and fixed.alpha_search is None
    assert np.isnan(fixed.median_val_srcc) and all(np.isnan(s.val_srcc) for s in fixed.splits)
    assert [s.n_val for s in fixed.splits] == [2, 1]
    scores = table["score"].to_numpy()
    pred = _sk_image_predictions(feats, scores, np.arange(10, 24), np.arange(1, 10), 2.0)
    assert fixed.splits[1].metrics.srcc == pytest.approx(
        scipy.stats.spearmanr(pred, scores[1:10]).statistic, abs=1e-9)


def test_protocol_split_index_checks_name_the_split_and_role():
    feats, table = _data(4, 4, 5, SYN)
    n = 16
    good = {"train": np.arange(0, 10), "val": np.arange(10, 12), "test": np.arange(12, n)}
    evaluate_standard(feats, table, SYN, [good], alpha=1.0)  # n - 1 is a valid index
    for role, bad, msg in (("test", np.array([12, n]), f"split 1 test: image index out of range [0, {n})"),
                           ("val", np.array([-1, 10]), f"split 1 val: image index out of range [0, {n})")):
        with pytest.raises(ValueError) as err:
            evaluate_standard(feats, table, SYN, [good, dict(good, **{role: bad})], alpha=1.0)
        assert str(err.value) == msg
    # two usable train images are enough; one (after dropping a failed image) is not
    two = {"train": np.array([0, 5]), "val": np.arange(10, 12), "test": np.arange(12, n)}
    assert evaluate_standard(feats, table, SYN, [two], alpha=1.0).splits[0].n_train == 2
    broken = feats.copy()
    broken[5] = np.inf
    with pytest.raises(ValueError) as err:
        evaluate_standard(broken, table, SYN, [good, two], alpha=1.0)
    assert str(err.value) == "split 1: fewer than two usable train images"
    # an empty role is allowed (nothing to score)
    res = evaluate_standard(feats, table, SYN, [dict(good, val=np.array([], dtype=int))],
                            alpha=1.0)
    assert res.splits[0].n_val == 0


def test_protocol_input_shape_and_table_checks():
    feats, table = _data(4, 4, 6, SYN)
    splits = make_splits(table, SYN, config=SplitConfig(n_splits=1))
    with pytest.raises(ValueError) as err:
        evaluate_standard(feats[:, 0, :], table, SYN, splits, alpha=1.0)
    assert str(err.value) == "features must be (n_images, n_crops, d); got shape (16, 4)"
    with pytest.raises(ValueError) as err:
        evaluate_standard(feats[:-1], table, SYN, splits, alpha=1.0)
    assert str(err.value) == "15 feature rows for a table of 16 images"
    with pytest.raises(SplitError) as err:
        evaluate_standard(feats[:12], table.iloc[:12].reset_index(drop=True), SYN, splits,
                          alpha=1.0)
    assert str(err.value) == "synmos: splits index images beyond the table (12)"
    renamed = table.assign(name=table["name"].str.upper())
    with pytest.raises(SplitError) as err:
        evaluate_standard(feats, renamed, SYN, splits, alpha=1.0)
    assert str(err.value) == "synmos: splits were made for another table (names differ)"
    # a table without relative names cannot be checked against a Splits object: no error
    res = evaluate_standard(feats, table.drop(columns=["name"]), SYN, splits, alpha=1.0)
    assert res.splits_version == splits.version
    assert res.predictions["image"].str.startswith("/abs/").all()
    neg = Splits(frame=splits.frame.assign(image_index=splits.frame["image_index"] - 1),
                 dataset="neg", method="random", seed=0, dataset_version="", version="v")
    with pytest.raises(SplitError) as err:
        evaluate_standard(feats, table, SYN, neg, alpha=1.0)
    assert str(err.value) == "neg: splits index images beyond the table (16)"


def test_protocol_valid_rows_and_fr_features():
    x = np.zeros((4, 2, 3))
    x[1, 1, 2] = np.nan
    x[3, 0, 0] = -np.inf
    assert valid_rows(x).tolist() == [True, False, True, False]
    assert valid_rows(np.zeros((2, 5, 1))).tolist() == [True, True]
    ref = np.array([[[10, 200]]], dtype=np.uint8)
    dist = np.array([[[20, 100]]], dtype=np.uint8)
    u = fr_features(ref, dist)
    assert u.dtype == np.float64 and u.tolist() == [[[10.0, 100.0]]]
    with pytest.raises(ValueError) as err:
        fr_features(np.zeros((2, 3, 4)), np.zeros((2, 3, 5)))
    assert str(err.value) == "reference features (2, 3, 4) and distorted (2, 3, 5) differ"


def test_protocol_full_reference_is_standard_on_abs_difference():
    feats, table = _data(8, 4, 7, SYN)
    rng = np.random.default_rng(1)
    z_ref = rng.normal(size=feats.shape)
    z_dist = z_ref + feats
    splits = make_splits(table, SYN, config=SplitConfig(n_splits=2))
    table.attrs["n_missing"] = 2
    res = evaluate_fr(z_dist, z_ref, table, SYN, splits, ALPHAS, n_missing=5)
    want = evaluate_standard(np.abs(feats), table, SYN, splits, ALPHAS, logistic_plcc=True,
                             n_missing=5, mode="fr")
    assert _same(res.to_json(), want.to_json())
    assert res.mode == "fr" and res.logistic_plcc is True and res.n_missing == 5
    raw = evaluate_fr(z_dist, z_ref, table, SYN, splits, (0.5,), logistic_plcc=False)
    assert raw.alpha == 0.5 and raw.logistic_plcc is False and raw.n_missing == 2
    with pytest.raises(ValueError) as err:
        evaluate_fr(z_dist, z_ref, table, AUTH, splits, ALPHAS)
    assert str(err.value) == "full-reference evaluation needs a synthetic dataset, not authmos"


def test_protocol_map_to_target_flips_and_rescales():
    mapped, flipped = map_to_target(np.array([1.0, 5.0, 2.0]), SYN, SYN_DMOS)
    assert flipped is True
    np.testing.assert_allclose(mapped, [10.0, 0.0, 7.5])
    mapped, flipped = map_to_target([1.0, 5.0, 2.0], SYN, AUTH)
    assert flipped is False
    np.testing.assert_allclose(mapped, [2.0, 12.0, 4.5])
    mapped, flipped = map_to_target(np.array([0.0, 10.0, 4.0]), SYN_DMOS, AUTH)
    assert flipped is True
    np.testing.assert_allclose(mapped, [12.0, 2.0, 8.0])


def test_protocol_cross_complete_record_matches_sklearn():
    src_feats, src_table = _data(10, 4, 1, SYN)
    tgt_feats, tgt_table = _data(5, 4, 9, SYN_DMOS)
    tgt_feats[3] = np.nan
    tgt_table.attrs["n_missing"] = 6
    splits = make_splits(src_table, SYN, config=SplitConfig(n_splits=3, seed=4, train_fraction=0.5,
                                                            val_fraction=0.3))
    res = evaluate_cross(src_feats, src_table, SYN, splits, tgt_feats, tgt_table, SYN_DMOS,
                         ALPHAS)
    s_scores = src_table["score"].to_numpy()
    lists = splits.as_index_list()
    _, _, k = _sk_search(src_feats, s_scores, lists, ALPHAS)
    assert res.alpha == ALPHAS[k] and res.alpha_source == "source_val_search" and k > 0
    keep = np.array([i for i in range(20) if i != 3])
    t_scores = tgt_table["score"].to_numpy()[keep]
    all_m = []
    for i, s in enumerate(lists):
        raw = _sk_image_predictions(src_feats, s_scores, s["train"], np.arange(40), ALPHAS[k])
        model = Ridge(alpha=ALPHAS[k]).fit(src_feats[s["train"]].reshape(-1, D),
                                           np.repeat(s_scores[s["train"]], C))
        raw = model.predict(tgt_feats[keep].reshape(-1, D)).reshape(-1, C).mean(axis=1)
        mapped = ((1.0 + 5.0 - raw) - 1.0) / 4.0 * 10.0  # mirrored in (1, 5), onto (0, 10)
        m = _sk_metrics(mapped, t_scores)
        all_m.append(m)
        sr = res.splits[i]
        assert (sr.split, sr.n_train, sr.n_val, sr.n_test) == (i, s["train"].size,
                                                               s["val"].size, 19)
        assert np.isnan(sr.val_srcc)
        for key in ("srcc", "plcc", "krcc", "rmse"):
            assert getattr(sr.metrics, key) == pytest.approx(m[key], abs=1e-7)
        part = res.predictions[res.predictions["split"] == i]
        assert part["image_index"].tolist() == keep.tolist()
        assert part["image"].tolist() == tgt_table["name"].to_numpy()[keep].tolist()
        np.testing.assert_allclose(part["prediction"], 10.0 - mapped, atol=1e-7)
        np.testing.assert_allclose(part["label"], 10.0 - t_scores)
    assert list(res.predictions.columns) == ["split", "image_index", "image", "prediction",
                                             "label"]
    assert res.predictions.index.equals(pd.RangeIndex(3 * 19))
    for key in ("srcc", "plcc", "krcc", "rmse"):
        assert getattr(res, key) == pytest.approx(np.median([m[key] for m in all_m]), abs=1e-7)
    assert res.to_json() == {
        "source": "synmos", "target": "syndmos", "srcc": res.srcc, "plcc": res.plcc,
        "krcc": res.krcc, "rmse": res.rmse,
        "srcc_splits": [s.metrics.srcc for s in res.splits],
        "plcc_splits": [s.metrics.plcc for s in res.splits], "alpha": ALPHAS[k],
        "alpha_source": "source_val_search", "n_splits": 3, "n_images": 19, "n_missing": 6,
        "n_failed": 1, "orientation_flipped": True, "source_range": [1.0, 5.0],
        "target_range": [0.0, 10.0], "target_lower_is_better": True,
        "scores_flipped_for_report": True, "same_dataset": False, "logistic_plcc": False}
    # given alpha, explicit missing count, logistic PLCC, same orientation (no flip)
    given = evaluate_cross(src_feats, src_table, SYN, splits, tgt_feats, tgt_table, AUTH,
                           alpha=0.3, logistic_plcc=True, tgt_n_missing=0)
    assert (given.alpha, given.alpha_source, given.n_missing) == (0.3, "given", 0)
    assert given.orientation_flipped is False and given.logistic_plcc is True
    assert given.target_lower_is_better is False and given.target_range == (2.0, 12.0)
    s0 = lists[0]
    model = Ridge(alpha=0.3).fit(src_feats[s0["train"]].reshape(-1, D),
                                 np.repeat(s_scores[s0["train"]], C))
    raw = model.predict(tgt_feats[keep].reshape(-1, D)).reshape(-1, C).mean(axis=1)
    mapped = (raw - 1.0) / 4.0 * 10.0 + 2.0
    m0 = given.splits[0].metrics
    assert m0.srcc == pytest.approx(scipy.stats.spearmanr(mapped, t_scores).statistic, abs=1e-9)
    assert m0.plcc == pytest.approx(
        scipy.stats.pearsonr(fit_logistic4(mapped, t_scores), t_scores).statistic, abs=1e-6)
    part = given.predictions[given.predictions["split"] == 0]
    np.testing.assert_allclose(part["prediction"], mapped, atol=1e-7)


def test_protocol_cross_refuses_features_of_another_shape():
    src_feats, src_table = _data(4, 4, 10, SYN)
    splits = make_splits(src_table, SYN, config=SplitConfig(n_splits=1))
    tgt = np.zeros((5, C, D + 1))
    tgt_table = _data(5, 1, 11, AUTH)[1]
    with pytest.raises(ValueError) as err:
        evaluate_cross(src_feats, src_table, SYN, splits, tgt, tgt_table, AUTH, alpha=1.0)
    assert str(err.value) == f"source features ({C}, {D}) and target ({C}, {D + 1}) differ"
    with pytest.raises(SplitError, match="another table"):
        evaluate_cross(src_feats, src_table.iloc[::-1].reset_index(drop=True), SYN, splits,
                       np.zeros((5, C, D)), tgt_table, AUTH, alpha=1.0)
    with pytest.raises(ValueError) as err:
        evaluate_cross(src_feats, src_table, SYN, splits, np.zeros((4, C, D)), tgt_table, AUTH,
                       alpha=1.0)
    assert str(err.value) == "4 feature rows for a table of 5 images"


def test_protocol_aggregate_means_per_kind():
    feats, table = _data(4, 4, 12, SYN)
    base = evaluate_standard(feats, table, SYN, make_splits(table, SYN,
                                                            config=SplitConfig(n_splits=1)),
                             alpha=1.0)
    rs = [dataclasses.replace(base, dataset=n, srcc=s, plcc=p)
          for n, s, p in (("a", 0.5, 0.1), ("b", 0.7, 0.2), ("c", 0.9, np.nan),
                          ("d", np.nan, 0.4), ("e", 0.2, 0.8))]
    kinds = {"a": "synthetic", "b": "synthetic", "c": "authentic", "d": "authentic",
             "e": "other"}
    assert aggregate(rs, kinds) == pytest.approx(
        {"synthetic_mean": 0.6, "authentic_mean": 0.9, "global_mean": 0.575,
         "other_mean": 0.2})
    assert list(aggregate(rs, kinds)) == ["synthetic_mean", "authentic_mean", "global_mean",
                                          "other_mean"]
    assert aggregate(rs, kinds, metric="plcc") == pytest.approx(
        {"synthetic_mean": 0.15, "authentic_mean": 0.4, "global_mean": 0.375,
         "other_mean": 0.8})
    assert aggregate(rs[:2], kinds) == pytest.approx(
        {"synthetic_mean": 0.6, "authentic_mean": None, "global_mean": 0.6})
    assert aggregate([], {}) == {"synthetic_mean": None, "authentic_mean": None,
                                 "global_mean": None}


# ----------------------------------------------------------------------------------------------
# ridge


@pytest.mark.parametrize("n", [3, 5, 12])
def test_ridge_path_equals_sklearn_for_every_alpha(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 5)) + 3.0
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 1.5]) + rng.normal(size=n) + 7.0
    x0 = x.copy()
    path = fit_ridge_path(x, y)
    np.testing.assert_array_equal(x, x0)  # default: the caller's matrix is left alone
    assert path.dim == 5 and path.y_mean == pytest.approx(y.mean())
    np.testing.assert_allclose(path.x_mean, x0.mean(axis=0))
    assert path.eigenvalues.min() >= 0
    gram = path.basis.T @ path.basis
    if n >= 5:  # n >= d: eigenvectors of Xc^T Xc (orthonormal); else Xc^T U (norms^2 = lam)
        np.testing.assert_allclose(gram, np.eye(5), atol=1e-9)
    else:
        np.testing.assert_allclose(gram, np.diag(path.eigenvalues), atol=1e-9)
    alphas = [0.01, 1.0, 50.0]
    xt = rng.normal(size=(4, 5))
    coef = path.coef(alphas)
    assert coef.shape == (5, 3) and path.intercept(alphas).shape == (3,)
    assert path.shrink(alphas).shape[1] == 3
    for j, a in enumerate(alphas):
        sk = Ridge(alpha=a).fit(x0, y)
        np.testing.assert_allclose(coef[:, j], sk.coef_, atol=1e-8)
        assert path.intercept(alphas)[j] == pytest.approx(sk.intercept_, abs=1e-8)
        np.testing.assert_allclose(path.predict(xt, alphas)[:, j], sk.predict(xt), atol=1e-8)
    # overwrite_x centres a C-contiguous writable matrix in place and gives the same fit
    again = fit_ridge_path(x, y, overwrite_x=True)
    np.testing.assert_allclose(x, x0 - x0.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(again.coef(alphas), coef, atol=1e-10)


def test_ridge_path_rank_deficient_and_input_errors():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(10, 2))
    x = np.hstack([a, a, a[:, :1] * 2])  # rank 2 of 5 columns
    y = a @ [1.0, 2.0] + 0.1 * rng.normal(size=10)
    path = fit_ridge_path(x, y)
    assert path.eigenvalues.min() >= 0.0
    sk = Ridge(alpha=0.5).fit(x, y)
    np.testing.assert_allclose(path.coef([0.5])[:, 0], sk.coef_, atol=1e-8)
    with pytest.raises(ValueError) as err:
        fit_ridge_path(np.zeros((5, 3)), np.zeros(4))
    assert str(err.value) == "x must be (n, d) with n = len(y); got (5, 3) and (4,)"
    with pytest.raises(ValueError) as err:
        fit_ridge_path(np.zeros(5), np.zeros(5))
    assert str(err.value) == "x must be (n, d) with n = len(y); got (5,) and (5,)"
    with pytest.raises(ValueError) as err:
        fit_ridge_path(np.ones((1, 3)), np.ones(1))
    assert str(err.value) == "ridge needs at least two training samples"
    two = fit_ridge_path(np.array([[0.0, 1.0], [2.0, 3.0]]), [1.0, 3.0])
    np.testing.assert_allclose(two.predict(np.array([[0.0, 1.0]]), [1e-9]), [[1.0]], atol=1e-6)


def test_ridge_crop_level_path_and_predict_images():
    feats, table = _data(4, 3, 13, SYN)
    scores = table["score"].to_numpy()
    idx = np.array([0, 2, 3, 5, 7, 8, 11])
    path = crop_level_path(feats, scores, idx)
    sk = Ridge(alpha=2.0).fit(feats[idx].reshape(-1, D), np.repeat(scores[idx], C))
    np.testing.assert_allclose(path.coef([2.0])[:, 0], sk.coef_, atol=1e-8)
    np.testing.assert_array_equal(feats, _data(4, 3, 13, SYN)[0])  # input not centred
    with pytest.raises(ValueError) as err:
        crop_level_path(feats[:, 0, :], scores, idx)
    assert str(err.value) == f"features must be (n_images, n_crops, d), got (12, {D})"
    every = predict_images(path, feats, [2.0, 9.0])
    assert every.shape == (12, 2)
    want = sk.predict(feats.reshape(-1, D)).reshape(-1, C).mean(axis=1)
    np.testing.assert_allclose(every[:, 0], want, atol=1e-8)
    some = predict_images(path, feats, [2.0], [4, 1])
    np.testing.assert_allclose(some[:, 0], want[[4, 1]], atol=1e-8)


def test_fit_splits_takes_plain_lists_and_keeps_integer_indices_for_an_empty_role():
    """Index lists may be plain Python lists (``splits[s][role]`` are image indices); an empty
    role stays an int64 index, so ``scores[fit.index[role]]`` still works."""
    feats, table = _data(8, 4, 14, SYN)
    scores = table["score"].to_numpy()
    split = {"train": [0, 1, 2, 3, 4, 5], "val": [6, 7], "test": []}
    (fit,) = fit_splits(feats, scores, [split], [1.0])
    for role, want in (("val", [6, 7]), ("test", [])):
        assert fit.index[role].dtype == np.int64
        np.testing.assert_array_equal(fit.index[role], want)
        assert scores[fit.index[role]].shape == (len(want),)
    assert fit.train_index.dtype == np.int64
    assert fit.predictions["test"].shape == (0, 1)


def test_ridge_fit_splits_select_and_search_alpha():
    feats, table = _data(8, 4, 14, SYN)
    scores = table["score"].to_numpy()
    lists = make_splits(table, SYN, config=SplitConfig(n_splits=3)).as_index_list()
    fits = fit_splits(feats, scores, lists, ALPHAS)
    assert [f.split for f in fits] == [0, 1, 2] and all(f.path is None for f in fits)
    for f, s in zip(fits, lists):
        assert sorted(f.index) == ["test", "val"] and sorted(f.predictions) == ["test", "val"]
        np.testing.assert_array_equal(f.train_index, s["train"])
        np.testing.assert_array_equal(f.index["test"], s["test"])
        assert f.predictions["val"].shape == (s["val"].size, 4)
        for j, a in enumerate(ALPHAS):
            np.testing.assert_allclose(
                f.predictions["test"][:, j],
                _sk_image_predictions(feats, scores, s["train"], s["test"], a), atol=1e-7)
    kept = fit_splits(feats, scores, lists, [1.0], roles=("train",), keep_paths=True)
    assert sorted(kept[0].predictions) == ["train"] and kept[0].path is not None
    assert kept[0].predictions["train"].shape == (lists[0]["train"].size, 1)
    assert fit_splits(feats, scores, lists[:1])[0].predictions["val"].shape[1] == 100
    table_, med, k = _sk_search(feats, scores, lists, ALPHAS)
    choice = select_alpha(fits, scores, ALPHAS)
    np.testing.assert_allclose(choice.val_srcc, table_, atol=1e-9)
    np.testing.assert_allclose(choice.median_val_srcc, med, atol=1e-9)
    assert choice.index == k and choice.alpha == ALPHAS[k]
    assert choice.best_median_val_srcc == pytest.approx(med[k])
    test_choice = select_alpha(fits, scores, ALPHAS, role="test")
    want = [[scipy.stats.spearmanr(f.predictions["test"][:, j], scores[f.index["test"]]).statistic
             for j in range(4)] for f in fits]
    np.testing.assert_allclose(test_choice.val_srcc, want, atol=1e-9)
    full = fit_splits(feats, scores, lists)
    assert select_alpha(full, scores).alphas.size == 100
    searched, sfits = search_alpha(feats, scores, lists, ALPHAS)
    assert searched.index == k and sorted(sfits[0].predictions) == ["test", "val"]
    default_choice, _ = search_alpha(feats, scores, lists[:1])
    assert default_choice.alphas.tolist() == list(DEFAULT_ALPHAS)


def test_ridge_select_alpha_ignores_nan_and_takes_the_first_tie():
    feats, table = _data(4, 4, 15, SYN)
    scores = table["score"].to_numpy()
    fits = fit_splits(feats, scores, [{"train": np.arange(10), "val": np.arange(10, 16),
                                       "test": np.arange(10, 16)}], [1.0, 2.0])

    def fake(preds):
        return [dataclasses.replace(fits[0], predictions={"val": preds})]

    const = np.ones((6, 3))
    const[:, 1] = scores[10:16]   # perfect at the 2nd alpha
    const[:, 2] = scores[10:16]   # tie at the 3rd
    choice = select_alpha(fake(const), scores, [0.1, 0.2, 0.3])
    assert choice.index == 1 and choice.alpha == 0.2 and np.isnan(choice.median_val_srcc[0])
    with pytest.raises(ValueError) as err:
        select_alpha(fake(np.ones((6, 2))), scores, [0.1, 0.2])
    assert str(err.value) == ("validation SRCC is undefined for every alpha "
                              "(constant predictions?)")


def test_ridge_alpha_grid():
    assert alpha_grid() == DEFAULT_ALPHAS
    assert len(DEFAULT_ALPHAS) == 100
    assert DEFAULT_ALPHAS[0] == pytest.approx(1e-3) and DEFAULT_ALPHAS[-1] == pytest.approx(1e3)
    np.testing.assert_allclose(alpha_grid(0.1, 10.0, 3), [0.1, 1.0, 10.0])
    np.testing.assert_allclose(alpha_grid(count=3), [1e-3, 1.0, 1e3])
    np.testing.assert_allclose(alpha_grid(low=1.0, count=4), [1.0, 10.0, 100.0, 1000.0])
    np.testing.assert_allclose(alpha_grid(high=1e-1, count=3), [1e-3, 1e-2, 1e-1])


# ----------------------------------------------------------------------------------------------
# metrics


def test_metrics_correlations_equal_scipy():
    rng = np.random.default_rng(5)
    p = np.round(rng.normal(size=20), 1)  # ties
    y = p + rng.normal(size=20)
    assert srcc(p, y) == pytest.approx(scipy.stats.spearmanr(p, y).statistic, abs=1e-12)
    assert plcc_raw(p, y) == pytest.approx(scipy.stats.pearsonr(p, y).statistic, abs=1e-12)
    assert plcc(p, y) == plcc_raw(p, y)
    assert plcc(p, y, logistic=True) == pytest.approx(plcc_raw(fit_logistic4(p, y), y))
    assert krcc(p, y) == pytest.approx(scipy.stats.kendalltau(p, y).statistic, abs=1e-12)
    assert rmse(p, y) == pytest.approx(np.sqrt(np.mean((p - y) ** 2)))
    cols = np.stack([p, -p, y, np.ones(20)], axis=1)
    got = srcc_columns(cols, y)
    assert got.shape == (4,)
    np.testing.assert_allclose(got[:3], [scipy.stats.spearmanr(c, y).statistic
                                         for c in cols.T[:3]], atol=1e-12)
    assert np.isnan(got[3])
    assert srcc_columns(p, y).shape == (1,)
    assert srcc(-y, y) == -1.0 and plcc_raw(2 * y + 1, y) == pytest.approx(1.0)
    assert plcc_raw(-y, y) == pytest.approx(-1.0) and abs(plcc_raw(y, y)) <= 1.0


def test_metrics_degenerate_inputs_give_nan_and_mismatches_name_counts():
    assert np.isnan(srcc([1.0], [2.0])) and np.isnan(plcc_raw([1.0], [2.0]))
    assert srcc_columns(np.ones((1, 3)), [1.0]).shape == (3,)
    assert np.isnan(srcc_columns(np.ones((1, 3)), [1.0])).all()
    assert np.isnan(plcc_raw([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert np.isnan(krcc([1.0], [1.0])) and np.isnan(krcc([1, 1, 1], [1, 2, 3]))
    assert np.isnan(krcc([1, 2, 3], [2, 2, 2]))
    assert krcc([1.0, 2.0], [3.0, 5.0]) == 1.0 and krcc([1.0, 2.0], [5.0, 3.0]) == -1.0
    assert krcc([1.0, 2.0, 3.0], [0.0, 0.5, 1.0]) == 1.0  # spans of exactly 1 are not constant
    assert krcc([0.0, 0.5, 1.0], [3.0, 2.0, 1.0]) == -1.0
    assert plcc_raw([1.0, 2.0], [3.0, 5.0]) == pytest.approx(1.0)
    assert np.isnan(rmse([], []))
    for fn in (plcc_raw, rmse, compute_metrics):
        with pytest.raises(ValueError) as err:
            fn([1.0, 2.0, 3.0], [1.0, 2.0])
        assert str(err.value) == "3 predictions for 2 targets"
    with pytest.raises(ValueError) as err:
        srcc_columns(np.ones((3, 2)), [1.0, 2.0])
    assert str(err.value) == "3 predictions for 2 targets"


def test_metrics_logistic4_formula_and_clip():
    x = np.array([-1.0, 0.0, 2.5])
    want = (3.0 - 1.0) / (1 + np.exp(-(x - 0.5) / 2.0)) + 1.0
    np.testing.assert_allclose(logistic4(x, 3.0, 1.0, 0.5, -2.0), want)
    # the exponent is clipped at +-60
    assert logistic4(np.array([-1e6]), 1.0, 0.0, 0.0, 1.0)[0] == pytest.approx(
        1.0 / (1.0 + np.exp(60.0)), rel=1e-12)
    assert logistic4(np.array([1e6]), 0.0, 1.0, 0.0, 1.0)[0] == pytest.approx(
        1.0 - 1.0 / (1.0 + np.exp(-60.0)), rel=1e-9, abs=0)
    assert logistic4(np.array([1e-13]), 1.0, 0.0, 0.0, 0.0)[0] == pytest.approx(
        1.0 / (1.0 + np.exp(-0.1)))


def test_metrics_fit_logistic4_maps_onto_the_target():
    x = np.linspace(2, 8, 15)
    y = 2.0 / (1 + np.exp(-(x - 5.4) / 0.7)) + 1.0
    mapped = fit_logistic4(x, y)
    np.testing.assert_allclose(mapped, y, atol=1e-5)  # recovers an exact logistic
    short = np.array([0.0, 1.0, 2.0])
    assert fit_logistic4(short, [5.0, 1.0, 3.0]).tolist() == [0.0, 1.0, 2.0]
    four = fit_logistic4(np.array([0.0, 1.0, 2.0, 3.0]), [1.0, 1.1, 2.9, 3.0])
    assert not np.allclose(four, [0.0, 1.0, 2.0, 3.0])
    const = fit_logistic4(np.ones(6), np.arange(6.0))
    assert np.all(np.isfinite(const))
    bad = fit_logistic4(np.array([0.0, 1.0, 2.0, np.nan]), [1.0, 2.0, 3.0, 4.0])
    assert np.isnan(bad[3]) and bad[:3].tolist() == [0.0, 1.0, 2.0]
    a = np.array([0.1, 0.5, 0.2, 0.9, 0.7, 0.3])
    t = np.array([1.0, 3.0, 2.0, 5.0, 4.0, 2.5])
    ref, _ = scipy.optimize.curve_fit(
        lambda v, b1, b2, b3, b4: (b1 - b2) / (1 + np.exp(-(v - b3) / abs(b4))) + b2, a, t,
        p0=[t.max(), t.min(), a.mean(), a.std()], maxfev=10_000)
    np.testing.assert_allclose(fit_logistic4(a, t), logistic4(a, *ref), atol=1e-4)


def test_metrics_record_per_type_and_medians():
    p = np.array([0.1, 0.4, 0.2, 0.9, 0.5, 0.3, 0.8, 0.6])
    y = np.array([1.0, 2.0, 1.5, 4.0, 2.2, 1.1, 3.5, 3.0])
    m = compute_metrics(p, y)
    assert _same(dataclasses.asdict(m), dataclasses.asdict(
        Metrics(srcc(p, y), plcc_raw(p, y), krcc(p, y), rmse(p, y), 8)))
    ml = compute_metrics(p, y, logistic=True)
    mapped = fit_logistic4(p, y)
    assert ml.srcc == m.srcc and ml.krcc == m.krcc and ml.n == 8
    assert ml.plcc == pytest.approx(plcc_raw(mapped, y)) and ml.plcc != m.plcc
    assert ml.rmse == pytest.approx(rmse(mapped, y)) and ml.rmse != m.rmse
    assert Metrics(0.5, float("nan"), 0.25, float("inf"), 3).to_json() == {
        "srcc": 0.5, "plcc": None, "krcc": 0.25, "rmse": None, "n": 3}
    types = np.array(["b", "a", "b", "a", "b", "a", "c", "c"])
    per = per_type_metrics(p, y, types)
    assert list(per) == ["a", "b", "c"]
    assert _same(dataclasses.asdict(per["a"]), dataclasses.asdict(compute_metrics(p[[1, 3, 5]],
                                                                                  y[[1, 3, 5]])))
    assert _same(dataclasses.asdict(per["b"]), dataclasses.asdict(compute_metrics(p[[0, 2, 4]],
                                                                                  y[[0, 2, 4]])))
    assert per["c"].n == 2 and all(np.isnan([per["c"].srcc, per["c"].plcc, per["c"].krcc,
                                             per["c"].rmse]))
    few = per_type_metrics(p, y, types, min_count=4)
    assert few["a"].n == 3 and np.isnan(few["a"].srcc)
    two = per_type_metrics(p, y, types, min_count=2)
    assert two["c"].srcc == 1.0 and two["c"].n == 2
    wide = np.array(["a", "a", "b", "a", "b", "a", "b", "b"])  # 4 + 4: the logistic applies
    lg = per_type_metrics(p, y, wide, logistic=True)
    sel = np.flatnonzero(wide == "a")
    want_lg = compute_metrics(p[sel], y[sel], logistic=True)
    assert _same(dataclasses.asdict(lg["a"]), dataclasses.asdict(want_lg), tol=1e-6)
    assert want_lg.rmse != compute_metrics(p[sel], y[sel]).rmse
    with pytest.raises(ValueError) as err:
        per_type_metrics(p, y, types[:-1])
    assert str(err.value) == "prediction, target and types must have the same length"
    med = median_metrics([Metrics(0.1, 0.2, np.nan, 1.0, 3), Metrics(0.3, 0.6, np.nan, 3.0, 3),
                          Metrics(0.9, np.nan, np.nan, 2.0, 3)])
    assert list(med) == ["srcc", "plcc", "krcc", "rmse"]
    assert med["srcc"] == 0.3 and med["plcc"] == pytest.approx(0.4) and np.isnan(med["krcc"])
    assert med["rmse"] == 2.0


# ----------------------------------------------------------------------------------------------
# splits


def _spec_roles(units, split, seed, train=0.7, val=0.1):
    """§7.2 written out: sorted unique units, permuted with default_rng(seed + split)."""
    ordered = sorted(set(units))
    order = np.random.default_rng(seed + split).permutation(len(ordered))
    n_train = int(round(train * len(ordered)))
    n_val = min(int(round(val * len(ordered))), len(ordered) - n_train)
    roles = {}
    for pos, i in enumerate(order):
        roles[ordered[i]] = ("train" if pos < n_train else "val" if pos < n_train + n_val
                             else "test")
    return roles


def test_splits_role_counts_and_permuted_roles_follow_the_spec():
    assert role_counts(25) == (18, 2, 5)        # 17.5 -> 18, 2.5 -> 2 (half to even)
    assert role_counts(5) == (4, 0, 1)
    assert role_counts(29) == (20, 3, 6)
    assert role_counts(81) == (57, 8, 16)
    assert role_counts(10, 0.95, 0.1) == (10, 0, 0)
    assert role_counts(10, 0.5, 0.3) == (5, 3, 2)
    assert role_counts(10, val_fraction=0.3) == (7, 3, 0)
    units = [f"u{i}" for i in range(13)] + ["u3", "u4"]
    cfg = SplitConfig(seed=5, train_fraction=0.5, val_fraction=0.2)
    got = permuted_roles(units, 2, cfg)
    assert got == _spec_roles(units, 2, 5, 0.5, 0.2)
    assert list(got) == sorted(set(units))
    assert permuted_roles(units, 1, SplitConfig(seed=6)) == permuted_roles(units, 0,
                                                                           SplitConfig(seed=7))
    assert permuted_roles(units, 0, SplitConfig()) == _spec_roles(units, 0, 27)


def test_splits_defaults_and_reference_disjoint_roles():
    assert SplitConfig() == SplitConfig(10, 27, 0.7, 0.1, True)
    _, table = _data(12, 3, 16, SYN)
    sp = make_splits(table, SYN)
    assert (sp.dataset, sp.method, sp.seed, sp.dataset_version, sp.n_splits) == (
        "synmos", "reference_disjoint", 27, "", 10)
    refs = table["reference"].tolist()
    for s in (0, 9):
        roles = _spec_roles(refs, s, 27)
        part = sp.frame[sp.frame["split"] == s]
        assert part["role"].tolist() == [roles[r] for r in refs]
    assert list(sp.frame.columns) == ["split", "image_index", "image", "role"]
    assert sp.frame["split"].tolist() == sorted(sp.frame["split"].tolist())
    assert sp.frame["image_index"].tolist() == list(range(36)) * 10
    assert sp.frame["image"].tolist() == table["name"].tolist() * 10
    assert sp.frame.index.equals(pd.RangeIndex(360))
    assert sp.version == content_hash(sp.frame, "synmos", "reference_disjoint", "")
    validate_splits(sp, table)


def test_splits_random_official_and_choose_method():
    _, table = _data(10, 1, 17, AUTH)
    cfg = SplitConfig(n_splits=2, seed=3, train_fraction=0.6, val_fraction=0.2)
    sp = make_splits(table, AUTH, config=cfg, dataset_version="v9")
    assert (sp.method, sp.seed, sp.dataset_version, sp.n_splits) == ("random", 3, "v9", 2)
    names = table["name"].tolist()
    for s in (0, 1):
        roles = _spec_roles(names, s, 3, 0.6, 0.2)
        assert sp.frame[sp.frame["split"] == s]["role"].tolist() == [roles[n] for n in names]
    official = table.assign(official_split=["train"] * 6 + ["val"] * 2 + ["test"] * 2)
    assert choose_method(official, AUTH, SplitConfig()) == "official"
    assert choose_method(official, AUTH, SplitConfig(use_official=False)) == "random"
    assert choose_method(official, SYN, SplitConfig()) == "reference_disjoint"
    assert choose_method(table, AUTH, SplitConfig()) == "random"
    off = make_splits(official, AUTH, dataset_version="v1")
    assert (off.method, off.n_splits) == ("official", 1)
    assert off.frame["role"].tolist() == official["official_split"].tolist()
    assert off.frame["split"].tolist() == [0] * 10
    assert make_splits(official, AUTH, config=SplitConfig(use_official=False,
                                                          n_splits=2)).method == "random"
    bad = table.assign(official_split=["train"] * 8 + ["bogus", "dev"])
    with pytest.raises(SplitError) as err:
        make_splits(bad, AUTH)
    assert str(err.value) == "authmos: official_split has values ['bogus', 'dev']"
    loaded = LoadedDataset(info=AUTH, root=Path_("/x"), table=table, missing=(),
                           version="tv42")
    via = splits_for(loaded, SplitConfig(n_splits=2, seed=3, train_fraction=0.6,
                                         val_fraction=0.2))
    assert via.dataset_version == "tv42"
    assert via.frame.equals(sp.frame) and via.dataset == "authmos"
    assert splits_for(loaded).n_splits == 10


def Path_(p):
    from pathlib import Path

    return Path(p)


def test_splits_indices_as_index_list_and_to_json():
    _, table = _data(10, 1, 18, AUTH)
    sp = make_splits(table, AUTH, config=SplitConfig(n_splits=2, seed=1), dataset_version="dv")
    roles = _spec_roles(table["name"].tolist(), 1, 1)
    want = sorted(i for i, n in enumerate(table["name"]) if roles[n] == "val")
    assert sp.indices(1, "val").tolist() == want and sp.indices(1, "val").dtype == np.int64
    with pytest.raises(ValueError) as err:
        sp.indices(0, "dev")
    assert str(err.value) == "role must be one of ('train', 'val', 'test'), got 'dev'"
    lists = sp.as_index_list()
    assert len(lists) == 2 and list(lists[0]) == ["train", "val", "test"]
    assert [lists[0][r].size for r in ROLES] == [7, 1, 2]
    assert index_lists(sp)[1]["val"].tolist() == want
    given = index_lists([{"train": [3, 1], "val": [2], "test": [], "extra": [9]}])
    assert list(given[0]) == ["train", "val", "test"]
    assert given[0]["train"].tolist() == [3, 1] and given[0]["test"].dtype == np.int64
    assert sp.to_json() == {"dataset": "authmos", "method": "random", "seed": 1, "n_splits": 2,
                            "version": sp.version, "dataset_version": "dv",
                            "sizes": [{"train": 7, "val": 1, "test": 2}] * 2}
    empty = Splits(frame=sp.frame.iloc[:0], dataset="e", method="random", seed=0,
                   dataset_version="", version="")
    assert empty.n_splits == 0 and empty.as_index_list() == []


def test_splits_content_hash_is_the_documented_digest():
    frame = pd.DataFrame({"split": [1, 0, 0], "image_index": [0, 1, 0],
                          "image": ["a.png", "b.png", "a.png"], "role": ["val", "test", "train"]})
    h = hashlib.sha256(b"ds\nrandom\nv1\n")
    for row in ("0\t0\ta.png\ttrain\n", "0\t1\tb.png\ttest\n", "1\t0\ta.png\tval\n"):
        h.update(row.encode())
    assert content_hash(frame, "ds", "random", "v1") == h.hexdigest()[:16]
    assert content_hash(frame, "ds", "random", "v2") != content_hash(frame, "ds", "random", "v1")


def test_splits_validate_names_each_inconsistency():
    _, table = _data(4, 2, 19, SYN)
    sp = make_splits(table, SYN, config=SplitConfig(n_splits=2))
    validate_splits(sp, table)

    def with_frame(frame, method="reference_disjoint"):
        return Splits(frame=frame, dataset="synmos", method=method, seed=0,
                      dataset_version="", version="x")

    f = sp.frame.copy()
    f.loc[3, "role"] = "dev"
    with pytest.raises(SplitError) as err:
        validate_splits(with_frame(f), table)
    assert str(err.value) == "synmos: unknown roles ['dev', 'test', 'train']"  # 4 refs: no val
    f = sp.frame.copy()
    f.loc[f.index[9], "image_index"] = 0  # split 1: image 0 twice, image 1 never
    with pytest.raises(SplitError) as err:
        validate_splits(with_frame(f), table)
    assert str(err.value) == ("synmos split 1: covers 7 distinct of 8 images in 8 rows "
                              "(each image must appear exactly once)")
    with pytest.raises(SplitError) as err:
        validate_splits(with_frame(sp.frame[sp.frame.index != 2]), table)
    assert str(err.value) == ("synmos split 0: covers 7 distinct of 8 images in 7 rows "
                              "(each image must appear exactly once)")
    f = sp.frame.copy()
    f.loc[10, "image"] = "other.png"
    with pytest.raises(SplitError) as err:
        validate_splits(with_frame(f), table)
    assert str(err.value) == "synmos split 1: image names do not match the table"
    f = sp.frame.copy()
    first = f.index[(f["split"] == 0) & (f["image_index"] == 1)][0]
    f.loc[first, "role"] = {"train": "test", "val": "test", "test": "train"}[f.loc[first, "role"]]
    with pytest.raises(SplitError) as err:
        validate_splits(with_frame(f), table)
    r0 = f.loc[f.index[(f["split"] == 0) & (f["image_index"] == 0)][0], "role"]
    assert str(err.value) == (f"synmos split 0: reference 'R00' in {r0} and "
                              f"{f.loc[first, 'role']}")
    validate_splits(with_frame(f, method="random"), table)  # random splits may mix references


def test_splits_write_read_round_trip_and_errors(tmp_path):
    _, table = _data(5, 2, 20, SYN)
    sp = make_splits(table, SYN, config=SplitConfig(n_splits=2, seed=8), dataset_version="dv3")
    path = write_splits(tmp_path / "deep" / "er" / "s.parquet", sp)
    assert path == tmp_path / "deep" / "er" / "s.parquet" and path.is_file()
    meta = json.loads(pq.read_schema(path).metadata[b"shamisa_splits"])
    assert meta == {"dataset": "synmos", "method": "reference_disjoint", "seed": 8,
                    "dataset_version": "dv3", "version": sp.version}
    back = read_splits(path, table, dataset_version="dv3")
    assert (back.dataset, back.method, back.seed, back.dataset_version, back.version) == (
        "synmos", "reference_disjoint", 8, "dv3", sp.version)
    pd.testing.assert_frame_equal(back.frame, sp.frame, check_dtype=False)
    assert read_splits(path).version == sp.version
    with pytest.raises(SplitError) as err:
        read_splits(path, dataset_version="dv4")
    assert str(err.value) == f"{path}: made for dataset version dv3, not dv4"
    with pytest.raises(SplitError) as err:
        read_splits(tmp_path / "none.parquet")
    assert str(err.value) == f"missing splits file {tmp_path / 'none.parquet'}"
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.Table.from_pandas(sp.frame, preserve_index=False), plain)
    with pytest.raises(SplitError) as err:
        read_splits(plain)
    assert str(err.value) == f"{plain}: not a shamisa splits file (no provenance metadata)"
    arrow = pq.read_table(path)
    edited = arrow.to_pandas()
    edited.loc[0, "role"] = "val" if edited.loc[0, "role"] != "val" else "test"
    t = pa.Table.from_pandas(edited, preserve_index=False).replace_schema_metadata(
        arrow.schema.metadata)
    pq.write_table(t, tmp_path / "edited.parquet")
    new_hash = content_hash(edited, "synmos", "reference_disjoint", "dv3")
    with pytest.raises(SplitError) as err:
        read_splits(tmp_path / "edited.parquet")
    assert str(err.value) == (f"{tmp_path / 'edited.parquet'}: content hash {new_hash} differs "
                              f"from the recorded version {sp.version} (file edited or corrupted)")
    t = pa.Table.from_pandas(edited.drop(columns=["role", "image"]), preserve_index=False)
    pq.write_table(t.replace_schema_metadata(arrow.schema.metadata), tmp_path / "cols.parquet")
    with pytest.raises(SplitError) as err:
        read_splits(tmp_path / "cols.parquet")
    assert str(err.value) == f"{tmp_path / 'cols.parquet'}: missing column(s) ['image', 'role']"
    with pytest.raises(SplitError, match="image names do not match"):
        read_splits(path, table.assign(name=table["name"] + "x"))


# ----------------------------------------------------------------------------------------------
# regressor


def test_regressor_fit_equals_sklearn_and_records_everything():
    feats, table = _data(4, 3, 21, SYN)
    scores = table["score"].to_numpy().copy()
    feats[2] = np.nan
    scores[5] = np.nan
    usable = [i for i in range(12) if i not in (2, 5)]
    reg = fit_regressor(feats, scores, 0.7, crop_size=96, lower_is_better=True,
                        datasets=["a", "b"], extra={"k": "v"})
    sk = Ridge(alpha=0.7).fit(feats[usable].reshape(-1, D), np.repeat(scores[usable], C))
    np.testing.assert_allclose(reg.coef, sk.coef_, atol=1e-8)
    assert reg.intercept == pytest.approx(sk.intercept_, abs=1e-8)
    assert (reg.alpha, reg.crop_size, reg.lower_is_better, reg.datasets) == (
        0.7, 96, True, ("a", "b"))
    assert reg.score_range == (float(np.nanmin(scores[usable])), float(np.max(scores[usable])))
    assert dict(reg.extra) == {"k": "v", "n_images": 10}
    d = fit_regressor(feats[:, 0, :], scores, 2.0)
    sk2 = Ridge(alpha=2.0).fit(feats[usable, 0, :], scores[usable])
    np.testing.assert_allclose(d.coef, sk2.coef_, atol=1e-8)
    assert (d.crop_size, d.lower_is_better, d.datasets, dict(d.extra)) == (
        224, False, (), {"n_images": 10})
    assert fit_regressor(feats, scores, 1.0, score_range=(0, 100)).score_range == (0.0, 100.0)
    with pytest.raises(ValueError) as err:
        fit_regressor(feats, scores[:-1], 1.0)
    assert str(err.value) == "12 feature rows for 11 scores"
    with pytest.raises(ValueError) as err:
        fit_regressor(feats[[2, 5, 0]], scores[[2, 5, 0]], 1.0)
    assert str(err.value) == "a regressor needs at least two usable images"
    two = fit_regressor(feats[[0, 1]], scores[[0, 1]], 1.0)
    assert two.extra["n_images"] == 2


def test_regressor_predict_orientation_json_and_digest():
    coef = np.array([1.0, -2.0])
    reg = Regressor(coef=coef, intercept=0.5, alpha=0.1, crop_size=64, lower_is_better=True,
                    score_range=(0.0, 10.0), datasets=("csiq",), extra={"note": 1})
    x = np.array([[[1.0, 0.0], [3.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    np.testing.assert_allclose(reg.predict_raw(x), [2.0 - 1.0 + 0.5, 0.5])  # mean crop
    np.testing.assert_allclose(reg.predict_raw(x.mean(axis=1)), [1.5, 0.5])
    np.testing.assert_allclose(reg.predict(x), [10.0 - 1.5, 9.5])
    plain = dataclasses.replace(reg, lower_is_better=False)
    np.testing.assert_allclose(plain.predict(x), [1.5, 0.5])
    np.testing.assert_allclose(dataclasses.replace(reg, score_range=(2.0, 5.0)).predict(x),
                               [7.0 - 1.5, 6.5])
    assert (reg.dim, reg.orientation, plain.orientation) == (2, "flipped", "as_trained")
    with pytest.raises(ValueError) as err:
        reg.predict_raw(np.zeros((3, 3)))
    assert str(err.value) == "features of shape (3, 3) for a regressor of dim 2"
    with pytest.raises(ValueError) as err:
        reg.predict_raw(np.zeros(2))
    assert str(err.value) == "features of shape (2,) for a regressor of dim 2"
    assert reg.to_json() == {"format": "shamisa-regressor/1", "alpha": 0.1, "crop_size": 64,
                             "lower_is_better": True, "orientation": "flipped",
                             "score_range": [0.0, 10.0], "datasets": ["csiq"], "dim": 2,
                             "intercept": 0.5, "sha256": reg.digest(), "note": 1}
    dg = reg.digest()
    assert len(dg) == 16 and int(dg, 16) >= 0
    assert dataclasses.replace(reg, crop_size=1, datasets=(), extra={}).digest() == dg
    for change in ({"coef": np.array([1.0, -2.5])}, {"intercept": 0.6}, {"alpha": 0.2},
                   {"lower_is_better": False}):
        assert dataclasses.replace(reg, **change).digest() != dg, change
    default = Regressor(coef=coef, intercept=0.0, alpha=1.0, crop_size=32)
    assert (default.lower_is_better, default.score_range, default.datasets,
            dict(default.extra)) == (False, (0.0, 1.0), (), {})


def test_regressor_save_load_round_trip_and_file_content(tmp_path):
    reg = Regressor(coef=np.array([0.25, -1.5, 3.0]), intercept=-0.75, alpha=0.03,
                    crop_size=128, lower_is_better=True, score_range=(0.0, 9.0),
                    datasets=("live", "csiq"), extra={"n_images": 7, "when": "now"})
    first = Regressor(coef=np.zeros(3), intercept=0.0, alpha=1.0, crop_size=8)
    first.save(tmp_path / "sub" / "regressor.npz")
    path = reg.save(tmp_path / "sub" / "regressor.npz")  # replaces the file in its folder
    assert path == tmp_path / "sub" / "regressor.npz"
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == sorted(["format", "coef", "intercept", "alpha", "crop_size",
                                          "lower_is_better", "orientation", "score_range",
                                          "datasets", "meta"])
        assert str(z["format"]) == REGRESSOR_FORMAT == "shamisa-regressor/1"
        assert z["coef"].dtype == np.float64 and z["coef"].tolist() == [0.25, -1.5, 3.0]
        assert float(z["intercept"]) == -0.75 and float(z["alpha"]) == 0.03
        assert int(z["crop_size"]) == 128 and bool(z["lower_is_better"]) is True
        assert str(z["orientation"]) == "flipped"
        assert z["score_range"].tolist() == [0.0, 9.0]
        assert z["datasets"].tolist() == ["live", "csiq"]
        assert json.loads(str(z["meta"])) == {"n_images": 7, "when": "now"}
    back = Regressor.load(path)
    assert back.to_json() == reg.to_json() and back.digest() == reg.digest()
    np.testing.assert_array_equal(back.coef, reg.coef)
    assert (back.crop_size, back.score_range, back.datasets) == (128, (0.0, 9.0),
                                                                 ("live", "csiq"))
    assert isinstance(back.intercept, float) and isinstance(back.crop_size, int)
    # a file without the meta blob loads with empty extras
    with np.load(path) as z:
        parts = {k: z[k] for k in z.files if k != "meta"}
    np.savez(tmp_path / "nometa.npz", **parts)
    assert dict(Regressor.load(tmp_path / "nometa.npz").extra) == {}
    np.savez(tmp_path / "other.npz", **{**parts, "format": np.array("other/1")})
    with pytest.raises(ValueError) as err:
        Regressor.load(tmp_path / "other.npz")
    assert str(err.value) == f"{tmp_path / 'other.npz'} is not a shamisa-regressor/1 file"


def test_ridge_path_computes_in_float64_whatever_the_label_dtype():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(30, 3))
    y16 = (x @ [0.3, 0.2, 0.1] + 100.0).astype(np.float16)
    path = fit_ridge_path(x.astype(np.float32), y16)
    sk = Ridge(alpha=0.5).fit(x.astype(np.float32).astype(np.float64), y16.astype(np.float64))
    np.testing.assert_allclose(path.coef([0.5])[:, 0], sk.coef_, atol=1e-10)
    assert path.intercept([0.5])[0] == pytest.approx(sk.intercept_, abs=1e-9)
    assert path.x_mean.dtype == np.float64 and path.basis.dtype == np.float64


# ----------------------------------------------------------------------------------------------
# proxy


def test_proxy_center_crop_resize_three_cases():
    from PIL import Image

    from shamisa_core.evaluation.proxy import PROXY_SIZE, center_crop_resize

    assert PROXY_SIZE == (512, 384)
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)   # upscaled to cover 40x40
    scale = max(40 / 50, 40 / 30)
    up = np.asarray(Image.fromarray(small).resize((round(50 * scale), round(30 * scale)),
                                                  Image.BICUBIC))
    y0, x0 = (up.shape[0] - 40) // 2, (up.shape[1] - 40) // 2
    np.testing.assert_array_equal(center_crop_resize(small, (40, 40)),
                                  up[y0:y0 + 40, x0:x0 + 40])
    big = rng.integers(0, 255, (90, 100, 3), dtype=np.uint8)   # > 2x in both: downscaled
    down = np.asarray(Image.fromarray(big).resize((44, 40), Image.BICUBIC))
    np.testing.assert_array_equal(center_crop_resize(big, (20, 40)), down[:, 12:32])
    mid = rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)    # only cropped
    out = center_crop_resize(mid, (40, 30))
    np.testing.assert_array_equal(out, mid[10:40, 15:55])
    assert out.flags.c_contiguous
    wide = rng.integers(0, 255, (70, 300, 3), dtype=np.uint8)  # 2x in one side only: cropped
    np.testing.assert_array_equal(center_crop_resize(wide, (100, 40)), wide[15:55, 100:200])
    tall = rng.integers(0, 255, (300, 50, 3), dtype=np.uint8)
    np.testing.assert_array_equal(center_crop_resize(tall, (30, 100)), tall[100:200, 10:40])
    photo = rng.integers(0, 255, (400, 600, 3), dtype=np.uint8)
    assert center_crop_resize(photo).shape == (384, 512, 3)


def test_proxy_pseudo_mos_by_hand():
    from shamisa_core.evaluation.proxy import METRICS, pseudo_mos

    assert METRICS == (("ssim", True), ("gmsd", False), ("haarpsi", True), ("mdsi", False))
    raw = np.array([[0.9, 0.1, 0.8, 0.2],
                    [0.5, 0.3, 0.6, 0.4],
                    [0.7, 0.2, 0.7, 0.3],
                    [0.6, 0.2, 0.9, 0.2]])
    oriented = raw * [1, -1, 1, -1]
    z = (oriented - oriented.mean(axis=0)) / oriented.std(axis=0)
    s = z.mean(axis=1)
    want = 1 + 4 * (s - s.min()) / (s.max() - s.min())
    got = pseudo_mos(raw)
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert got.min() == 1.0 and got.max() == 5.0
    const = raw.copy()
    const[:, 1] = 0.25  # a metric that does not vary adds nothing (z = 0), no division by 0
    oriented = const * [1, -1, 1, -1]
    z = (oriented - oriented.mean(axis=0)) / np.where(oriented.std(axis=0) > 0,
                                                      oriented.std(axis=0), 1.0)
    s = z.mean(axis=1)
    np.testing.assert_allclose(pseudo_mos(const), 1 + 4 * (s - s.min()) / (s.max() - s.min()),
                               atol=1e-12)
    small = raw * 1e-3  # spreads far below 1 are still standardised
    np.testing.assert_allclose(pseudo_mos(small), want, atol=1e-9)
    flat = pseudo_mos(np.tile(raw[:1], (3, 1)))
    np.testing.assert_allclose(flat, [1.0, 1.0, 1.0])


@pytest.mark.parametrize("side", [64, 384])
def test_proxy_pseudo_mos_metrics_equal_piq(side):
    import piq
    import torch

    from shamisa_core.evaluation.proxy import pseudo_mos_metrics

    rng = np.random.default_rng(side)
    yy, xx = np.mgrid[0:side, 0:side]
    ref = np.stack([(np.sin(xx / 7.0) * 100 + 120), (np.cos(yy / 5.0) * 90 + 120),
                    ((xx + yy) % 200 + 20.0)], axis=-1).astype(np.uint8)
    d1 = np.clip(ref + rng.normal(0, 20, ref.shape), 0, 255).astype(np.uint8)
    d2 = (ref // 2 + 40).astype(np.uint8)
    got = pseudo_mos_metrics(ref, [d1, d2])
    assert got.shape == (2, 4) and got.dtype == np.float64
    r = torch.from_numpy(ref.astype(np.float32) / 255).permute(2, 0, 1)[None]
    d = torch.from_numpy(np.stack([d1, d2]).astype(np.float32) / 255).permute(0, 3, 1, 2)
    if side == 384:  # round(384 / 256) = 2: both downscaled by 2
        r = torch.nn.functional.avg_pool2d(r, 2)
        d = torch.nn.functional.avg_pool2d(d, 2)
    r = r.expand(2, -1, -1, -1)
    for j, fn in enumerate((piq.ssim, piq.gmsd, piq.haarpsi, piq.mdsi)):
        want = fn(d, r, data_range=1.0, reduction="none").double().numpy()
        np.testing.assert_allclose(got[:, j], want, rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def tiny_proxy(tmp_path_factory):
    from shamisa_core.evaluation.proxy import ProxySpec, build_proxy

    out = tmp_path_factory.mktemp("proxy")
    spec = ProxySpec(n_refs=1, types=("whitenoise",), levels=(0.0, 2.0, 4.0), seed=3)
    return out, spec, build_proxy(out, spec)


def test_proxy_build_writes_the_kadid_layout_and_its_labels(tiny_proxy):
    from PIL import Image

    from shamisa_core.evaluation.proxy import (
        ProxySpec,
        build_proxy,
        center_crop_resize,
        pseudo_mos,
        pseudo_mos_metrics,
    )
    from shamisa_core.distortions.composition import apply_chain
    from shamisa_core.distortions.registry import get_type
    from shamisa_core.distortions.severity import index_to_value
    from shamisa_core.pristine import PROXY_PHOTOS, embedded_photos

    out, spec, csv = tiny_proxy
    assert csv == out / "dmos.csv"
    df = pd.read_csv(csv)
    assert list(df.columns) == ["dist_img", "ref_img", "dmos", "type", "level", "fr_ssim",
                                "fr_gmsd", "fr_haarpsi", "fr_mdsi"]
    assert df["dist_img"].tolist() == ["I01_01_01.png", "I01_01_02.png", "I01_01_03.png"]
    assert df["ref_img"].tolist() == ["I01.png"] * 3
    assert df["type"].tolist() == ["whitenoise"] * 3 and df["level"].tolist() == [1, 2, 3]
    ref = np.asarray(Image.open(out / "images" / "I01.png"))
    photo = embedded_photos("proxy")[0][1]
    np.testing.assert_array_equal(ref, center_crop_resize(photo))
    dists = [np.asarray(Image.open(out / "images" / n)) for n in df["dist_img"]]
    assert all(d.shape == (384, 512, 3) and d.dtype == np.uint8 for d in dists)
    # each level is the engine's own distortion of the reference, seeded by (seed, ref, type,
    # level): the same spec gives the same bytes
    for li, t in enumerate(spec.levels, start=1):
        _, value = index_to_value(get_type("whitenoise"), t)
        want = apply_chain(ref.astype(np.float32) / 255.0, [("whitenoise", value)],
                           np.random.default_rng([3, 1, 1, li]))
        np.testing.assert_array_equal(dists[li - 1], np.rint(want * 255).astype(np.uint8))
    raw = pseudo_mos_metrics(ref, dists)
    np.testing.assert_allclose(df[["fr_ssim", "fr_gmsd", "fr_haarpsi", "fr_mdsi"]].to_numpy(),
                               raw, rtol=1e-9)
    np.testing.assert_allclose(df["dmos"], np.round(pseudo_mos(raw), 6), atol=1e-9)
    assert 1.0 < df["dmos"][1] < 5.0  # an interior value: rounded to 6 decimals
    assert df["dmos"][1] == round(df["dmos"][1], 6)
    spec_text = json.dumps({"n_refs": 1, "types": ["whitenoise"], "levels": [0.0, 2.0, 4.0],
                            "seed": 3, "photos": [PROXY_PHOTOS[0]]}, sort_keys=True)
    assert (out / "proxy_spec.json").read_text() == spec_text
    stamp = csv.stat().st_mtime_ns
    assert build_proxy(out, spec) == csv and csv.stat().st_mtime_ns == stamp
    assert ProxySpec().n_refs == len(PROXY_PHOTOS) and ProxySpec().seed == 27
    assert ProxySpec().levels == (0.0, 1.0, 2.0, 3.0, 4.0)
    # another spec in the same folder is built, not reused (here: refused, too many photos)
    with pytest.raises(ValueError) as err:
        build_proxy(out, ProxySpec(n_refs=len(PROXY_PHOTOS) + 1))
    assert str(err.value) == (f"only {len(PROXY_PHOTOS)} packaged photos, asked for "
                              f"{len(PROXY_PHOTOS) + 1} references")
    assert (out / "proxy_spec.json").read_text() == spec_text


# ----------------------------------------------------------------------------------------------
# encoders


def test_encoders_handle_properties_and_summary():
    import torch

    from shamisa_core.evaluation.encoders import EncoderHandle, training_seed

    module = torch.nn.Identity()
    meta = {"eval_crop": "48", "patch_size": 32, "model_config": {"arch": "resnet18",
                                                                  "init": "imagenet"},
            "step": 7, "config": {"profile": "cpu-small", "train": {"seed": 11}},
            "corpus_hash": "c0ffee", "git_commit": "abc123", "health": {"ok": True}}
    h = EncoderHandle(role="trained", module=module, meta=meta, fingerprint="f" * 16,
                      source="src", path=Path_("/m/encoder.pt"), seed=3, label="lbl")
    assert (h.patch_size, h.init, h.inference_tag, h.health) == (48, "imagenet", "",
                                                                  {"ok": True})
    assert h.to_json() == {"role": "trained", "label": "lbl", "source": "src",
                           "fingerprint": "f" * 16, "path": "/m/encoder.pt", "arch": "resnet18",
                           "init": "imagenet", "patch_size": 48, "step": 7, "seed": 3,
                           "profile": "cpu-small", "corpus_hash": "c0ffee",
                           "git_commit": "abc123", "inference_tag": "", "health": {"ok": True}}
    module.inference_tag = "bf16"
    bare = EncoderHandle(role="init_twin", module=module, meta={"patch_size": 32, "health": 1},
                         fingerprint="g", source="s")
    assert (bare.patch_size, bare.init, bare.inference_tag, bare.health) == (32, None, "bf16",
                                                                             None)
    assert (bare.path, bare.seed, bare.label) == (None, None, "")
    js = bare.to_json()
    assert (js["label"], js["path"], js["arch"], js["profile"], js["step"]) == (
        "init_twin", None, None, None, None)
    assert EncoderHandle(role="r", module=module, meta={}, fingerprint="", source="").patch_size \
        is None
    assert training_seed(meta, 5) == 11
    assert training_seed({"config": {"train": {"seed": "4"}}}, 5) == 4
    assert training_seed({"config": {"train": {}}}, 5) == 5
    assert training_seed({"config": {"train": [1]}}, 6) == 6
    assert training_seed({"config": None}, 8) == 8 and training_seed({}, 9) == 9


@pytest.fixture(scope="module")
def trained_encoder(tmp_path_factory):
    from _eval_helpers import make_encoder

    folder = tmp_path_factory.mktemp("enc")
    return make_encoder(folder / "encoder.pt", seed=1, patch_size=40,
                        extra={"corpus_hash": "h1"})


def test_encoders_load_trained_and_build_seeded_twins(trained_encoder):
    import torch

    from shamisa_core.evaluation.cache import encoder_fingerprint
    from shamisa_core.evaluation.encoders import (
        INIT_TWIN,
        RANDOM_TWIN,
        TWIN_ROLES,
        init_twin,
        load_trained,
        make_twins,
        random_twin,
        untrained_twin,
    )
    from shamisa_core.models import ModelConfig, build_backbone
    from shamisa_core.training.checkpoint import Encoder

    assert TWIN_ROLES == ("init_twin", "random_twin")
    h = load_trained(trained_encoder.parent)
    assert (h.role, h.label, h.source) == ("trained", "trained", str(trained_encoder.parent))
    assert h.path == trained_encoder.resolve() and h.patch_size == 40 and h.init == "random"
    assert h.fingerprint == encoder_fingerprint(h.module)
    assert next(h.module.parameters()).device.type == "cpu"
    assert h.to_json()["corpus_hash"] == "h1"
    state = torch.random.get_rng_state()
    twin = random_twin(h, 5)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    cfg = dataclasses.replace(ModelConfig(**h.meta["model_config"]), init="random",
                              weights_path=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        want = Encoder(build_backbone(cfg).eval(), h.module.options)
    assert twin.fingerprint == encoder_fingerprint(want) == encoder_fingerprint(twin.module)
    assert twin.fingerprint != h.fingerprint
    assert (twin.role, twin.seed, twin.label) == (RANDOM_TWIN, 5, "random twin (= init twin)")
    assert twin.source == "random-twin(resnet18, init=random, seed=5)"
    assert twin.path is None and twin.inference_tag == h.inference_tag
    assert not twin.module.training
    assert not any(p.requires_grad for p in twin.module.parameters())
    assert set(twin.meta) == {"model_config", "patch_size", "arch", "feature_dim", "format"}
    assert twin.meta["model_config"] == dataclasses.asdict(cfg)
    assert (twin.meta["patch_size"], twin.meta["arch"]) == (40, "resnet18")
    it = init_twin(h, 5)
    assert (it.role, it.label, it.seed) == (INIT_TWIN, "init twin (random)", 5)
    assert it.source == "init-twin(resnet18, init=random, seed=5)"
    assert it.fingerprint == twin.fingerprint  # random-init: the same network
    twins = make_twins(h, 5)
    assert [t.role for t in twins] == [RANDOM_TWIN] and twins[0].fingerprint == twin.fingerprint
    legacy = untrained_twin(h, 5)
    assert legacy.role == RANDOM_TWIN and legacy.fingerprint == twin.fingerprint
    # an ImageNet-init encoder gets both twins, init first, labelled by their init
    fake = dataclasses.replace(h, meta={**h.meta, "model_config": {
        **h.meta["model_config"], "init": "imagenet", "weights_path": "/gone/weights.pth"}})
    fake_twin = random_twin(fake, 5)
    assert fake_twin.label == "random twin" and fake_twin.fingerprint == twin.fingerprint


def test_encoders_twin_of_a_plain_module_and_a_missing_weights_file(trained_encoder):
    import torch

    from shamisa_core.evaluation.cache import encoder_fingerprint
    from shamisa_core.evaluation.encoders import EncoderHandle, init_twin
    from shamisa_core.models import ModelConfig, build_backbone
    from shamisa_core.training.checkpoint import Encoder

    cfg = {**dataclasses.asdict(ModelConfig(arch="resnet18", init="random", n_branches=0)),
           "weights_path": "/gone/weights.pth"}
    plain = EncoderHandle(role="trained", module=torch.nn.Identity(),
                          meta={"model_config": cfg, "patch_size": 24, "step": 3},
                          fingerprint="x", source="s")
    twin = init_twin(plain, 2)
    assert twin.meta == {"model_config": {**cfg, "weights_path": None}, "patch_size": 24}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        want = Encoder(build_backbone(ModelConfig(**{**cfg, "weights_path": None})))
    assert twin.fingerprint == encoder_fingerprint(want)
    assert twin.inference_tag == want.inference_tag
    assert (twin.label, twin.source) == ("init twin (random)",
                                         "init-twin(resnet18, init=random, seed=2)")
