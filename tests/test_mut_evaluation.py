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


def test_regressor_to_json_summary():
    from shamisa_core.evaluation.regressor import REGRESSOR_FORMAT, Regressor

    reg = Regressor(coef=np.array([1.0, -2.0, 0.5]), intercept=0.25, alpha=0.1, crop_size=224,
                    lower_is_better=True, score_range=(0.0, 9.0), datasets=("live",), extra={"k": 1})
    js = reg.to_json()
    assert js == {"format": REGRESSOR_FORMAT, "alpha": 0.1, "crop_size": 224, "lower_is_better": True,
                  "orientation": "flipped", "score_range": [0.0, 9.0], "datasets": ["live"], "dim": 3,
                  "intercept": 0.25, "sha256": reg.digest(), "k": 1}
    x = np.array([[[1.0, 1.0, 2.0], [3.0, 1.0, 0.0]]])  # one image, two crops: mean (2, 1, 1)
    assert reg.predict_raw(x).tolist() == [2.0 - 2.0 + 0.5 + 0.25]
    assert reg.predict(x).tolist() == [9.0 - 0.75]


def test_evaluation_log_to_json_with_and_without_a_decision():
    from shamisa_core.evaluation.mlflow_eval import EvaluationLog

    log = EvaluationLog("sqlite:///x.db", "1", "run", {"live": "r2"}, metrics={"srcc/live": 0.5})
    assert log.to_json() == {"tracking_uri": "sqlite:///x.db", "experiment_id": "1", "parent_run_id": "run",
                             "dataset_run_ids": {"live": "r2"}, "model_version": None, "model_uri": None,
                             "decision": None, "kind": "evaluation", "metrics": {"srcc/live": 0.5}}


def test_staged_run_stages_write_and_assemble(tmp_path):
    """The stages of the Dagster evaluation assets, run directly (trained encoder only)."""
    import json

    from _eval_helpers import make_encoder, make_kadid_like
    from shamisa_core.evaluation import staged_run as sr
    from shamisa_core.evaluation.encoders import load_trained

    data = make_kadid_like(tmp_path / "kadid", levels=(1, 3), seed=4)
    enc = make_encoder(tmp_path / "enc" / "encoder.pt", seed=0)
    plan = sr.DatasetPlan(cache_dir=tmp_path / "cache", proxy_base=tmp_path / "proxy")
    run = sr.EvaluationRun(plan, load_trained(enc), (), crop=32)
    roots = {"kadid10k": str(data)}
    with pytest.raises(sr.StageError, match="no benchmark has features for this encoder"):
        sr.standard_stage(run, roots, ["kadid10k"])
    sr.features_stage(run, plan.prepare("kadid10k", str(data), build=True))
    std = sr.standard_stage(run, roots, ["kadid10k", "live"])
    assert set(std) == {"sections", "meta", "skipped", "path"} and list(std["skipped"]) == ["live"]
    assert json.loads(run.file(sr.STANDARD_FILE).read_text())["path"] == std["path"] == str(
        run.file(sr.STANDARD_FILE))
    srcc = std["sections"]["trained"]["kadid10k"]["srcc"]
    cross = sr.cross_stage(run, roots)
    assert cross["datasets"] == ["kadid10k"] and set(cross["sections"]) == {"trained"}
    fr = sr.fr_stage(run, roots)
    assert set(fr["sections"]["trained"]) == {"kadid10k"}  # KADID has reference images
    result, paths = sr.report_stage(run)
    assert result["kadid10k"]["srcc"] == pytest.approx(srcc)
    assert result["meta"]["skipped"] == std["skipped"]
    assert result["fr"]["kadid10k"]["srcc"] == pytest.approx(fr["sections"]["trained"]["kadid10k"]["srcc"])
    assert json.loads(paths["results"].read_text())["meta"]["skipped"] == std["skipped"]


def test_evaluate_subcommand_help_in_the_command_list():
    import argparse

    from shamisa_core.evaluation.cli_evaluate import add_evaluate_parser

    parser = argparse.ArgumentParser(prog="shamisa")
    add_evaluate_parser(parser.add_subparsers(dest="cmd"))
    assert "evaluate an encoder on IQA benchmarks (trained vs untrained twin)" in " ".join(
        parser.format_help().split())


def test_tables_from_meta_skips_a_dataset_it_cannot_reload(tmp_path):
    from _eval_helpers import make_kadid_like
    from shamisa_core.evaluation.pictures import tables_from_meta
    from shamisa_core.evaluation.prepared import load_named_dataset

    data = make_kadid_like(tmp_path / "kadid", n_refs=2, levels=(1, 2), seed=1)
    version = load_named_dataset("kadid10k", str(data), proxy_base=tmp_path, build=False).version
    meta = {"datasets": {"live": {"root": str(tmp_path / "absent"), "version": "v"},
                         "kadid10k": {"root": str(data), "version": version}}}
    tables = tables_from_meta({"meta": meta})
    assert list(tables) == ["kadid10k"] and len(tables["kadid10k"]) == 2 * 2 * 2  # refs x kinds x levels
    meta["datasets"]["kadid10k"]["version"] = "other"  # edited labels: not the evaluated table
    assert tables_from_meta({"meta": meta}) == {}


STANDARD_KEYS = {"dataset", "mode", "srcc", "plcc", "krcc", "rmse", "srcc_splits", "plcc_splits", "krcc_splits",
                 "rmse_splits", "alpha", "median_val_srcc", "n_splits", "n_images", "n_missing", "n_failed",
                 "split_method", "splits_version", "label", "lower_is_better", "scores_flipped_for_report",
                 "logistic_plcc", "per_type", "splits"}
CROSS_KEYS = {"source", "target", "srcc", "plcc", "krcc", "rmse", "srcc_splits", "plcc_splits", "alpha",
              "alpha_source", "n_splits", "n_images", "n_missing", "n_failed", "orientation_flipped",
              "source_range", "target_range", "target_lower_is_better", "scores_flipped_for_report",
              "same_dataset", "logistic_plcc"}


def test_result_summaries_keep_every_field():
    from test_eval_protocol import ALPHAS, tiny_dataset
    from shamisa_core.evaluation.protocol import evaluate_cross, evaluate_standard

    direction = np.random.default_rng(0).normal(size=8)
    feats, table, _ = tiny_dataset("kadid10k", 12, 5, 1, direction)
    tfeats, ttable, _ = tiny_dataset("csiq", 8, 4, 2, direction)
    info, tinfo = LOADERS["kadid10k"].info, LOADERS["csiq"].info
    splits = make_splits(table, info, config=SplitConfig(n_splits=3))
    std = evaluate_standard(feats, table, info, splits, ALPHAS)
    js = std.to_json()
    assert STANDARD_KEYS <= set(js)
    assert js["krcc"] == pytest.approx(std.krcc) and js["plcc_splits"] == [s.metrics.plcc for s in std.splits]
    cross = evaluate_cross(feats, table, info, splits, tfeats, ttable, tinfo, alpha=std.alpha).to_json()
    assert CROSS_KEYS <= set(cross)
    assert cross["target_range"] == list(tinfo.score_range) and cross["source_range"] == list(info.score_range)
    assert len(cross["plcc_splits"]) == 3 and all(-1 <= v <= 1 for v in cross["plcc_splits"])


def test_given_alpha_without_validation_images_has_no_val_srcc():
    from test_eval_protocol import ALPHAS, tiny_dataset
    from shamisa_core.evaluation.protocol import evaluate_standard

    feats, table, _ = tiny_dataset("kadid10k", 6, 4, 3, np.random.default_rng(0).normal(size=8))
    n = len(table)
    refs = table["reference"].to_numpy()
    test = np.flatnonzero(np.isin(refs, ["R00", "R01"]))
    split = {"train": np.setdiff1d(np.arange(n), test), "val": np.array([], dtype=np.int64), "test": test}
    res = evaluate_standard(feats, table, LOADERS["kadid10k"].info, [split], ALPHAS, alpha=1.0)
    assert res.alpha == 1.0 and np.isnan(res.median_val_srcc) and res.to_json()["median_val_srcc"] is None
    with pytest.raises(ValueError, match="alpha search needs at least two val images"):
        evaluate_standard(feats, table, LOADERS["kadid10k"].info, [split], ALPHAS)


def test_model_uri_without_mlflow_dir_uses_the_default_store(tmp_path, monkeypatch, capsys):
    from shamisa_core.cli import main
    from shamisa_core.tracking import BACKEND_ENV

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    rc = main(["evaluate", "--encoder", "models:/shamisa-iqa@champion", "--dataset", "proxy",
               "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert rc == 2 and "cannot resolve models:/shamisa-iqa@champion" in capsys.readouterr().err
    assert (tmp_path / "outputs" / "mlflow" / "mlflow.db").is_file()  # outputs/mlflow of the cwd


def test_ensure_proxy_builds_the_requested_spec_and_reuses_a_built_one(tmp_path):
    import json

    from shamisa_core.evaluation.prepared import ensure_proxy
    from shamisa_core.evaluation.proxy import ProxySpec

    spec = ProxySpec(n_refs=1, types=("gaublur", "jpeg"), levels=(0.0, 4.0), seed=3)
    folder = ensure_proxy(tmp_path / "p", spec)
    assert folder == tmp_path / "p"
    rows = pd.read_csv(folder / "dmos.csv")
    assert len(rows) == 1 * 2 * 2
    assert json.loads((folder / "proxy_spec.json").read_text())["types"] == ["gaublur", "jpeg"]
    stamp = (folder / "dmos.csv").stat().st_mtime_ns
    assert ensure_proxy(folder, None) == folder and (folder / "dmos.csv").stat().st_mtime_ns == stamp


def test_unparsable_annotation_file_is_named(tmp_path):
    from shamisa_core.evaluation.datasets.base import DatasetError, read_csv_checked

    path = tmp_path / "dmos.csv"
    path.write_bytes(b"\xff\xfe\x00bad,\x00\n\x80\x81")  # not UTF-8
    with pytest.raises(DatasetError, match=r"^malformed annotation file .*dmos\.csv: "):
        read_csv_checked(path, ["dist_img", "dmos"])


def test_json_float_keeps_finite_numbers_and_drops_nan():
    from shamisa_core.evaluation.metrics import _json_float

    assert _json_float(0.5) == 0.5 and _json_float(3) == 3 and _json_float(-2.0) == -2.0
    assert _json_float(float("nan")) is None and _json_float(float("inf")) is None


def test_cached_features_follow_the_requested_crop(tmp_path):
    from _eval_helpers import make_encoder, make_kadid_like
    from shamisa_core.evaluation.cache import encode_dataset
    from shamisa_core.evaluation.encoders import load_trained
    from shamisa_core.evaluation.prepared import prepare_dataset

    data = make_kadid_like(tmp_path / "kadid", n_refs=2, levels=(1, 2), seed=2)
    prep = prepare_dataset("kadid10k", str(data), tmp_path / "cache", proxy_base=tmp_path)
    enc = load_trained(make_encoder(tmp_path / "enc" / "encoder.pt", seed=0))
    f32 = encode_dataset(prep, enc, 32, log=lambda m: None)
    f16 = encode_dataset(prep, enc, 16, log=lambda m: None)
    assert f32.features.shape == f16.features.shape and not np.allclose(f32.features, f16.features)


def test_cross_frame_rows_name_source_and_target():
    from shamisa_core.evaluation.report import cross_frame

    result = {"live": {"srcc": 0.5},
              "cross": {"live": {"csiq": {"srcc": 0.4, "plcc": 0.3, "alpha": 1.0, "orientation_flipped": True}}},
              "twins": {"random_twin": {"cross": {"live": {"csiq": {"srcc": 0.1}}}}}}
    frame = cross_frame(result)
    assert list(frame.columns) == ["source", "target", "srcc", "plcc", "random_twin_srcc", "alpha",
                                   "orientation_flipped"]
    assert frame.to_dict("records") == [{"source": "live", "target": "csiq", "srcc": 0.4, "plcc": 0.3,
                                         "random_twin_srcc": 0.1, "alpha": 1.0, "orientation_flipped": True}]
