"""Independent checks of the evaluation path (METHOD.md §7; DECISIONS 13).

Every expected value is computed here without the code under test: split SRCCs by refitting
scikit-learn's ``Ridge`` on the cached features and the label file, alpha choices from SRCC
tables built by hand (scipy checks the table), cache behaviour from what a second encoder
or an edited label must change, and the champion rule from its written statement.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.linear_model import Ridge

from _eval_helpers import make_encoder, make_kadid_like
from shamisa_core.evaluation import benchmark as bm
from shamisa_core.evaluation.ridge import SplitFit, select_alpha


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("indep_eval")
    data = make_kadid_like(root / "kadid", n_refs=6, seed=4, levels=(1, 2, 3))
    enc = make_encoder(root / "enc" / "encoder.pt", seed=0)
    result = bm.evaluate_encoder(enc, {"kadid10k": data}, cross=False, cache_dir=root / "cache")
    return {"root": root, "data": data, "enc": enc, "result": result}


def _refit_srcc(entry: dict, meta: dict, labels: pd.DataFrame, split: int) -> float:
    """SRCC of one test split from an sklearn Ridge refit at the chosen alpha: train on the
    crops of the split's train images (each crop inherits its image's label), predict an image
    as the mean of its crops' predictions (METHOD.md §7.4)."""
    feats = np.load(entry["features"]["path"])
    frame = pd.read_parquet(meta["splits_path"])
    part = frame[frame["split"] == split]
    label_of = dict(zip(labels["dist_img"].astype(str), labels["dmos"].astype(float)))
    y_all = np.array([label_of[Path(n).name] for n in
                      part.sort_values("image_index")["image"].astype(str)])
    idx_all = part.sort_values("image_index")["image_index"].to_numpy()
    y = np.empty(feats.shape[0])
    y[idx_all] = y_all
    train = part[part["role"] == "train"]["image_index"].to_numpy()
    test = part[part["role"] == "test"]["image_index"].to_numpy()
    n_crops = feats.shape[1]
    model = Ridge(alpha=entry["alpha"], fit_intercept=True)
    model.fit(feats[train].reshape(-1, feats.shape[2]).astype(np.float64), np.repeat(y[train], n_crops))
    pred = model.predict(feats[test].reshape(-1, feats.shape[2]).astype(np.float64)).reshape(len(test), n_crops).mean(axis=1)
    return float(spearmanr(pred, y[test]).statistic)


def test_split_srcc_equals_an_sklearn_refit(tiny):
    r = tiny["result"]
    entry, meta = r["kadid10k"], r["meta"]["datasets"]["kadid10k"]
    labels = pd.read_csv(tiny["data"] / "dmos.csv")
    for split in (0, 1):
        assert entry["srcc_splits"][split] == pytest.approx(_refit_srcc(entry, meta, labels, split), abs=1e-6)
    assert entry["srcc"] == pytest.approx(float(np.median(entry["srcc_splits"])), abs=1e-9)


def test_second_encoder_on_the_same_cache_is_a_miss(tiny):
    root = tiny["root"]
    again = bm.evaluate_encoder(tiny["enc"], {"kadid10k": tiny["data"]}, cross=False,
                                cache_dir=root / "cache", twins=False)
    assert again["kadid10k"]["features"]["cache_hit"]  # same encoder: a hit
    other_enc = make_encoder(root / "enc2" / "encoder.pt", seed=1)
    other = bm.evaluate_encoder(other_enc, {"kadid10k": tiny["data"]}, cross=False,
                                cache_dir=root / "cache", twins=False)
    assert not other["kadid10k"]["features"]["cache_hit"]
    a = np.load(tiny["result"]["kadid10k"]["features"]["path"])
    b = np.load(other["kadid10k"]["features"]["path"])
    assert a.shape == b.shape and not np.allclose(a, b)


def test_edited_label_changes_the_dataset_version_and_the_result(tiny, tmp_path):
    data = tmp_path / "kadid"
    shutil.copytree(tiny["data"], data)
    labels = pd.read_csv(data / "dmos.csv")
    labels.loc[0, "dmos"] = 5.0 - labels.loc[0, "dmos"] + 1.0  # one edited opinion score
    labels.loc[1, "dmos"] = 1.0
    labels.to_csv(data / "dmos.csv", index=False)
    cache = tiny["root"] / "cache"
    edited = bm.evaluate_encoder(tiny["enc"], {"kadid10k": data}, cross=False, cache_dir=cache, twins=False)
    before, after = tiny["result"]["meta"]["datasets"]["kadid10k"], edited["meta"]["datasets"]["kadid10k"]
    assert after["version"] != before["version"]
    assert after["splits_path"] != before["splits_path"]
    entry = edited["kadid10k"]
    assert entry["srcc_splits"][0] == pytest.approx(_refit_srcc(entry, after, labels, 0), abs=1e-6)


# ------------------------------------------------------------------------------ alpha choice
Y = np.array([1.0, 2.0, 3.0])
# permutations of Y and their SRCC against Y (checked with scipy below)
PERM = {1.0: [1, 2, 3], 0.5: [1, 3, 2], -0.5: [3, 1, 2], -1.0: [3, 2, 1]}


def _fits(table: list[list[float]]) -> list[SplitFit]:
    """One SplitFit per row of ``table`` (splits x alphas): the val predictions of alpha j are
    a permutation whose SRCC against the labels is ``table[s][j]`` (NaN: constant)."""
    fits = []
    for s, row in enumerate(table):
        cols = [np.full(3, 2.0) if np.isnan(v) else np.array(PERM[v], dtype=float) for v in row]
        fits.append(SplitFit(split=s, train_index=np.array([3, 4]), index={"val": np.array([0, 1, 2])},
                             predictions={"val": np.stack(cols, axis=1)}))
    return fits


def test_permutation_table_is_what_scipy_says():
    for v, p in PERM.items():
        assert spearmanr(p, Y).statistic == pytest.approx(v)


def test_alpha_is_chosen_by_the_median_not_the_mean():
    table = [[0.5, 1.0, -0.5],
             [0.5, 1.0, -0.5],
             [0.5, -1.0, -0.5]]
    # median per alpha: 0.5, 1.0, -0.5 -> alpha 1; mean: 0.5, 0.33, -0.5 -> alpha 0
    t = np.array(table)
    assert int(np.argmax(np.median(t, axis=0))) == 1 and int(np.argmax(t.mean(axis=0))) == 0
    alphas = np.array([0.1, 1.0, 10.0])
    choice = select_alpha(_fits(table), Y, alphas)
    assert choice.index == 1 and choice.alpha == 1.0
    np.testing.assert_allclose(choice.val_srcc, t)
    assert choice.best_median_val_srcc == pytest.approx(1.0)


def test_alpha_ties_go_to_the_first_maximum():
    table = [[1.0, -1.0, 1.0],
             [1.0, 0.5, 1.0],
             [-1.0, 0.5, 0.5]]
    # medians 1.0, 0.5, 1.0: alphas 0 and 2 tie; the first (smallest alpha) wins
    choice = select_alpha(_fits(table), Y, np.array([0.1, 1.0, 10.0]))
    assert choice.index == 0 and choice.alpha == 0.1


def test_nan_val_srcc_is_ignored_in_the_median():
    table = [[0.5, float("nan")],
             [0.5, 1.0],
             [0.5, 1.0]]
    choice = select_alpha(_fits(table), Y, np.array([0.1, 1.0]))
    assert choice.index == 1  # nanmedian of alpha 1 is 1.0


def test_val_srcc_nan_everywhere_is_a_clear_error():
    nan = float("nan")
    with pytest.raises(ValueError, match="(?i)undefined|constant"):
        select_alpha(_fits([[nan, nan], [nan, nan]]), Y, np.array([0.1, 1.0]))


def test_constant_features_fail_the_protocol_clearly(tiny):
    from shamisa_core.evaluation.protocol import evaluate_standard

    r = tiny["result"]
    feats = np.load(r["kadid10k"]["features"]["path"])
    from shamisa_core.evaluation.prepared import prepare_dataset

    prepared = prepare_dataset("kadid10k", tiny["data"], tiny["root"] / "cache")
    with pytest.raises(ValueError, match="(?i)undefined|constant"):
        evaluate_standard(np.zeros_like(feats), prepared.table, prepared.info, prepared.splits)


# ------------------------------------------------------------------------------ champion rule
def test_champion_rule_missing_version_is_not_a_mismatch():
    from shamisa_core.serving.champion import decide_champion, version_scores

    new = version_scores({"srcc/kadid10k": "0.80", "dataset_version/kadid10k": "v1",
                          "srcc/live": "0.70"})  # live without a version
    old = version_scores({"srcc/kadid10k": "0.60", "srcc/live": "0.65", "dataset_version/live": "v9"})
    assert new == {"kadid10k": (0.8, "v1"), "live": (0.7, None)}
    d = decide_champion(new, old, new_version="2", old_version="1")
    # both datasets are compared: kadid10k (version missing on the champion's side) and live
    assert d.moved and set(d.datasets) == {"kadid10k", "live"}
    assert d.new_mean == pytest.approx((0.8 + 0.7) / 2) and d.old_mean == pytest.approx((0.6 + 0.65) / 2)
    # versions recorded on both sides and different: not compared -> nothing in common
    d2 = decide_champion({"kadid10k": (0.9, "v2")}, {"kadid10k": (0.1, "v1")}, new_version="3", old_version="2")
    assert not d2.moved and d2.datasets == ()
    # not strictly higher: stays
    d3 = decide_champion({"kadid10k": (0.6, None)}, {"kadid10k": (0.6, "v1")}, new_version="4", old_version="3")
    assert not d3.moved and d3.datasets == ("kadid10k",)
