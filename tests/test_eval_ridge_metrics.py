"""All-alpha ridge equals scikit-learn's Ridge; the alpha search equals the brute-force search;
SRCC/PLCC/KRCC equal scipy (METHOD.md §7.4-7.5, DECISIONS 13)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from sklearn.linear_model import Ridge

from shamisa_core.evaluation.metrics import (
    compute_metrics,
    fit_logistic4,
    krcc,
    logistic4,
    per_type_metrics,
    plcc,
    rmse,
    srcc,
    srcc_columns,
)
from shamisa_core.evaluation.ridge import (
    DEFAULT_ALPHAS,
    crop_level_path,
    fit_ridge_path,
    fit_splits,
    predict_images,
    search_alpha,
    select_alpha,
)

TOL = 1e-6


def test_default_alpha_grid() -> None:
    grid = np.asarray(DEFAULT_ALPHAS)
    assert grid.size == 100
    assert grid[0] == pytest.approx(1e-3) and grid[-1] == pytest.approx(1e3)
    np.testing.assert_allclose(np.diff(np.log10(grid)), 6 / 99)


@pytest.mark.parametrize("n,d", [(300, 40), (25, 60)])  # primal and dual (n < d) paths
def test_ridge_path_matches_sklearn(n: int, d: int) -> None:
    rng = np.random.default_rng(n + d)
    x = rng.normal(size=(n, d)) * rng.uniform(0.2, 4.0, size=d) + rng.normal(size=d) * 3
    y = x[:, :5] @ rng.normal(size=5) + rng.normal(size=n) + 7.0
    x_new = rng.normal(size=(50, d))
    alphas = [1e-3, 0.05, 1.0, 37.0, 1e3]
    path = fit_ridge_path(x, y)
    preds = path.predict(x_new, alphas)
    coefs = path.coef(alphas)
    intercepts = path.intercept(alphas)
    for j, alpha in enumerate(alphas):
        ref = Ridge(alpha=alpha, fit_intercept=True).fit(x, y)
        np.testing.assert_allclose(preds[:, j], ref.predict(x_new), atol=TOL, rtol=0)
        np.testing.assert_allclose(coefs[:, j], ref.coef_, atol=TOL, rtol=0)
        assert abs(intercepts[j] - ref.intercept_) < TOL


def test_crop_level_fit_and_image_averaging_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(60, 5, 16))
    scores = rng.uniform(1, 5, size=60)
    train, test = np.arange(0, 40), np.arange(40, 60)
    path = crop_level_path(feats, scores, train)
    ours = predict_images(path, feats, [0.3, 30.0], test)
    for j, alpha in enumerate([0.3, 30.0]):
        ref = Ridge(alpha=alpha).fit(feats[train].reshape(-1, 16), np.repeat(scores[train], 5))
        per_crop = ref.predict(feats[test].reshape(-1, 16)).reshape(20, 5)
        np.testing.assert_allclose(ours[:, j], per_crop.mean(axis=1), atol=TOL, rtol=0)


def test_alpha_search_matches_brute_force() -> None:
    rng = np.random.default_rng(2)
    n, crops, d = 90, 5, 12
    latent = rng.normal(size=n)
    feats = rng.normal(size=(n, crops, d)) + latent[:, None, None] * rng.normal(size=d)
    scores = latent + 0.8 * rng.normal(size=n)
    splits = []
    for s in range(4):
        perm = np.random.default_rng(s).permutation(n)
        splits.append({"train": perm[:60], "val": perm[60:72], "test": perm[72:]})
    alphas = np.logspace(-3, 3, 13)
    choice, fits = search_alpha(feats, scores, splits, alphas)
    brute = np.zeros((4, alphas.size))
    for s, split in enumerate(splits):
        for j, alpha in enumerate(alphas):
            model = Ridge(alpha=alpha).fit(feats[split["train"]].reshape(-1, d),
                                           np.repeat(scores[split["train"]], crops))
            val = model.predict(feats[split["val"]].reshape(-1, d)).reshape(-1, crops).mean(1)
            test = model.predict(feats[split["test"]].reshape(-1, d)).reshape(-1, crops).mean(1)
            np.testing.assert_allclose(fits[s].predictions["val"][:, j], val, atol=TOL, rtol=0)
            np.testing.assert_allclose(fits[s].predictions["test"][:, j], test, atol=TOL, rtol=0)
            brute[s, j] = scipy.stats.spearmanr(val, scores[split["val"]]).statistic
    np.testing.assert_allclose(choice.val_srcc, brute, atol=1e-10)
    assert choice.index == int(np.argmax(np.median(brute, axis=0)))
    assert choice.alpha == alphas[choice.index]
    # select_alpha on the same fits gives the same answer
    assert select_alpha(fits, scores, alphas).index == choice.index
    # a fit without keep_paths holds no path, with it the path predicts like the stored preds
    kept = fit_splits(feats, scores, splits[:1], alphas, keep_paths=True)[0]
    assert fits[0].path is None and kept.path is not None
    for role in ("val", "test"):
        np.testing.assert_allclose(predict_images(kept.path, feats, alphas, splits[0][role]),
                                   fits[0].predictions[role], atol=TOL, rtol=0)


# ------------------------------------------------------------------------------------------
# Metrics


def test_correlations_match_scipy() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=200)
    p = y + rng.normal(size=200)
    p_ties = np.round(p, 1)  # ties exercise average ranks
    for pred in (p, p_ties):
        assert srcc(pred, y) == pytest.approx(scipy.stats.spearmanr(pred, y).statistic, abs=1e-12)
        assert plcc(pred, y) == pytest.approx(scipy.stats.pearsonr(pred, y).statistic, abs=1e-12)
        assert krcc(pred, y) == pytest.approx(scipy.stats.kendalltau(pred, y).statistic,
                                              abs=1e-12)
    assert rmse(p, y) == pytest.approx(np.sqrt(np.mean((p - y) ** 2)))
    cols = np.stack([p, p_ties, -p, y ** 3], axis=1)
    expected = [scipy.stats.spearmanr(cols[:, k], y).statistic for k in range(4)]
    np.testing.assert_allclose(srcc_columns(cols, y), expected, atol=1e-12)


def test_degenerate_inputs_give_nan() -> None:
    y = np.arange(5.0)
    assert np.isnan(srcc(np.ones(5), y))
    assert np.isnan(plcc(np.ones(5), y))
    assert np.isnan(krcc(np.ones(5), y))
    assert np.isnan(srcc([1.0], [2.0]))


def test_logistic_plcc() -> None:
    rng = np.random.default_rng(4)
    x = rng.uniform(-3, 3, size=300)
    y = logistic4(x, 80.0, 10.0, 0.5, 0.7) + rng.normal(scale=1.0, size=300)
    raw = plcc(x, y)
    fitted = plcc(x, y, logistic=True)
    assert fitted > raw and fitted > 0.98
    mapped = fit_logistic4(x, y)
    assert np.sqrt(np.mean((mapped - y) ** 2)) < 1.5
    # an impossible fit falls back to the raw predictions
    tiny = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(fit_logistic4(tiny, tiny), tiny)
    m = compute_metrics(x, y, logistic=True)
    assert m.plcc == pytest.approx(fitted) and m.srcc == pytest.approx(srcc(x, y))
    assert m.rmse == pytest.approx(rmse(mapped, y)) and m.n == 300


def test_per_type_metrics() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=40)
    p = y + 0.1 * rng.normal(size=40)
    types = np.array(["a"] * 20 + ["b"] * 18 + ["c"] * 2)
    out = per_type_metrics(p, y, types)
    assert set(out) == {"a", "b", "c"}
    assert out["a"].srcc == pytest.approx(scipy.stats.spearmanr(p[:20], y[:20]).statistic)
    assert out["b"].n == 18 and np.isnan(out["c"].srcc)
    assert out["a"].to_json()["n"] == 20 and out["c"].to_json()["srcc"] is None
