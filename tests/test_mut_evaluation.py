"""Checks of `shamisa_core.evaluation` written against mutation-testing survivors (issue 10).
Expected values are written out by hand (small hand-built results, tables and split frames)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shamisa_core.evaluation.datasets import LOADERS
from shamisa_core.evaluation.metrics import per_type_metrics
from shamisa_core.evaluation.mlflow_eval import evaluation_id, evaluation_metrics
from shamisa_core.evaluation.splits import SplitConfig, content_hash, index_lists, make_splits


def _result() -> dict:
    return {
        "live": {"srcc": 0.8, "plcc": 0.7, "dataset_version": "v1"},
        "csiq": {"srcc": 0.6, "plcc": float("nan"), "dataset_version": "v2"},
        "twins": {"random_twin": {"live": {"srcc": 0.5, "plcc": 0.4}, "csiq": {"srcc": 0.2, "plcc": 0.1}}},
        "meta": {"encoder": {"fingerprint": "abc"}, "crop_size": 224},
    }


def test_evaluation_metrics_twin_values_and_gains():
    m = evaluation_metrics(_result())
    assert m["srcc/live"] == 0.8 and m["plcc/live"] == 0.7 and "plcc/csiq" not in m
    assert (m["random_twin_srcc/live"], m["random_twin_plcc/live"], m["random_twin_plcc/csiq"]) == (0.5, 0.4, 0.1)
    assert m["gain_vs_random_twin/live"] == pytest.approx(0.3)
    assert m["gain_vs_random_twin/csiq"] == pytest.approx(0.4)
    assert m["mean_srcc"] == pytest.approx(0.7) and m["random_twin_mean_srcc"] == pytest.approx(0.35)
    assert m["gain_vs_random_twin/mean"] == pytest.approx(0.35)  # trained mean - twin mean


@pytest.mark.parametrize("change", [
    lambda r: r["meta"]["encoder"].update(fingerprint="abd"),
    lambda r: r["meta"].update(crop_size=96),
    lambda r: r["live"].update(dataset_version="v9"),
])
def test_evaluation_id_depends_on_encoder_crop_and_dataset_versions(change):
    base = evaluation_id(_result())
    assert evaluation_id(_result()) == base and len(base) == 16
    changed = _result()
    change(changed)
    assert evaluation_id(changed) != base


def test_per_type_metrics_length_mismatch_message():
    with pytest.raises(ValueError, match="^prediction, target and types must have the same length$"):
        per_type_metrics([1.0, 2.0], [1.0, 2.0, 3.0], ["a", "a", "b"])


def test_split_version_covers_the_image_index():
    frame = pd.DataFrame({"split": [0, 0], "image_index": [0, 1], "image": ["a.png", "b.png"],
                          "role": ["train", "test"]})
    moved = frame.assign(image_index=[5, 6])  # same images and roles, other indices
    assert content_hash(frame, "d", "random", "v") != content_hash(moved, "d", "random", "v")
    assert content_hash(frame, "d", "random", "v") == content_hash(frame.copy(), "d", "random", "v")


def test_index_lists_are_int64_even_when_empty():
    (got,) = index_lists([{"train": [], "val": [2], "test": [0, 1]}])
    assert {r: (a.dtype, a.tolist()) for r, a in got.items()} == {
        "train": (np.int64, []), "val": (np.int64, [2]), "test": (np.int64, [0, 1])}


def test_splits_record_seed_and_summary():
    n = 12
    refs = np.repeat([f"R{k}" for k in range(6)], 2)
    names = [f"{r}_{i}.png" for i, r in enumerate(refs)]
    table = pd.DataFrame({"image": names, "name": names, "reference": refs,
                          "reference_image": [f"{r}.png" for r in refs], "distortion_type": "blur",
                          "level": 1, "score": np.linspace(0, 1, n)})
    splits = make_splits(table, LOADERS["kadid10k"].info, config=SplitConfig(n_splits=2, seed=5),
                         dataset_version="dv")
    assert splits.seed == 5
    js = splits.to_json()
    assert set(js) == {"dataset", "method", "seed", "n_splits", "version", "dataset_version", "sizes"}
    assert (js["dataset"], js["method"], js["seed"], js["n_splits"], js["dataset_version"]) == (
        "kadid10k", "reference_disjoint", 5, 2, "dv")
    assert all(sum(s.values()) == n for s in js["sizes"])
