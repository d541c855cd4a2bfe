"""Checks of `shamisa_core.evaluation` written against the survivors of the seed-2 mutation
sample (issue 10). Each pins a function's whole observable output (every line of the printed
table, every param / metric / tag written to a real MLflow store, every key of a summary), with
the expected values written out by hand or computed with numpy / scipy."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from _eval_helpers import fresh_mlflow_dir, make_encoder, make_kadid_like

# ----------------------------------------------------------------------------------------------
# report.format_table


def _table_result() -> dict:
    failed = [[f"k{i:02d}.png", "OSError: truncated"] for i in range(11)]
    return {
        "kadid10k": {"srcc": 0.81234, "plcc": 0.7, "alpha": 0.5, "n_images": 18, "n_missing": 1,
                     "features": {"n_failed": 11, "failed": failed}},
        "live": {"srcc": 0.6, "plcc": None, "alpha": 12.0, "n_images": 9, "n_missing": 0,
                 "features": {"n_failed": 0, "failed": []}},
        "cross": {"kadid10k": {"live": {"srcc": 0.4}}, "live": {"kadid10k": {"srcc": 0.3}}},
        "fr": {"kadid10k": {"srcc": 0.9, "plcc": 0.85}},
        "twins": {"random_twin": {"kadid10k": {"srcc": 0.5, "plcc": 0.45}, "live": {"srcc": 0.2},
                                  "fr": {"kadid10k": {"srcc": 0.3, "plcc": 0.25}}}},
        "meta": {"twins": {"random_twin": {"label": "random twin"}}},
    }


def test_format_table_prints_every_section_line_by_line():
    from shamisa_core.evaluation.report import DIAGONAL_NOTE, format_table

    head = ("dataset       SRCC    PLCC |           random twin SRCC    gain"
            "     alpha  images missing failed")
    expected = [
        head,
        "-" * len(head),
        "kadid10k    0.8123  0.7000 |                     0.5000  0.3123       0.5      18       1     11",
        "live        0.6000       - |                     0.2000  0.4000        12       9       0      0",
        # means: trained (0.81234 + 0.6) / 2 = 0.70617, twin (0.5 + 0.2) / 2 = 0.35
        "mean SRCC   0.7062         |                     0.3500  0.3562",
        "",
        "failed images (11; left out of every metric):",
        *[f"  kadid10k: k{i:02d}.png: OSError: truncated" for i in range(10)],
        "  ... and 1 more (see the JSON)",
        "",
        "cross-dataset SRCC (rows: trained on, columns: tested on)",
        "            kadid10k      live",
        "kadid10k     0.8123*   0.4000 ",
        "live         0.3000    0.6000*",
        DIAGONAL_NOTE,
        "",
        "full-reference (|h_ref - h_dist|) SRCC / PLCC | random twin",
        "kadid10k    0.9000  0.8500 |  0.3000  0.2500",
    ]
    assert format_table(_table_result()).split("\n") == expected


def test_format_table_shows_a_dash_for_a_count_a_dataset_lacks():
    """A dataset without a failure count (or image counts) next to one with them: ``-``, and
    the others stay integers (the frame's column turns float with NaN; was ``11.0`` / ``nan``)."""
    from shamisa_core.evaluation.report import format_table

    result = {"kadid10k": {"srcc": 0.8, "plcc": 0.7, "alpha": 0.5, "n_images": 18, "n_missing": 1,
                           "features": {"n_failed": 11, "failed": []}},
              "live": {"srcc": 0.6, "plcc": 0.5, "alpha": 2.0, "n_images": 9}}
    lines = format_table(result).split("\n")
    assert lines[2] == "kadid10k    0.8000  0.7000       0.5      18       1     11"
    assert lines[3] == "live        0.6000  0.5000         2       9       -      -"


# ----------------------------------------------------------------------------------------------
# mlflow_eval.log_evaluation (no registration): every param, metric, tag and artifact


def _logged_result() -> dict:
    return {
        "kadid10k": {"srcc": 0.8, "plcc": 0.7, "krcc": 0.6, "rmse": 0.5, "alpha": 0.25,
                     "median_val_srcc": 0.75, "n_images": 18, "n_missing": 1, "n_failed": 2,
                     "dataset_version": "dv-k", "splits_version": "sv-k",
                     "split_method": "reference_disjoint", "label": "dmos", "n_splits": 2,
                     "srcc_splits": [0.7, 0.9], "plcc_splits": [0.6, float("nan")],
                     "per_type": {"blur": {"srcc": 0.5, "n": 6}, "noise": {"srcc": 0.4, "n": 6}}},
        "live": {"srcc": 0.6, "plcc": 0.5, "alpha": 4.0, "n_images": 9, "n_missing": 0,
                 "dataset_version": "dv-l", "n_splits": 1},
        "fr": {"kadid10k": {"srcc": 0.9, "plcc": 0.85}},
        "twins": {"random_twin": {
            "kadid10k": {"srcc": 0.5, "plcc": 0.45, "alpha": 1.0, "srcc_splits": [0.4, 0.6]},
            "live": {"srcc": 0.2, "plcc": 0.1, "alpha": 2.0}}},
        "meta": {"encoder": {"fingerprint": "0123456789abcdef", "source": "/x/encoder.pt",
                             "arch": "resnet18", "step": 100},
                 "crop_size": 32, "seed": 27, "twins": {"random_twin": {"seed": 5}},
                 "alphas": {"count": 9}},
    }


def test_log_evaluation_writes_every_param_metric_tag_and_artifact(tmp_path):
    from shamisa_core.evaluation.mlflow_eval import EXPERIMENT, log_evaluation

    store = fresh_mlflow_dir(tmp_path / "mlflow")
    result = _logged_result()
    log = log_evaluation(result, mlflow_dir=store, register=False, tags={"extra": "yes"})
    client = MlflowClient(log.tracking_uri, log.tracking_uri)
    assert log.experiment_id == client.get_experiment_by_name(EXPERIMENT).experiment_id
    assert (log.kind, log.model_version, log.model_uri, log.decision) == ("evaluation", None, None, None)
    parent = client.get_run(log.parent_run_id)
    assert parent.info.run_name == "evaluation-01234567"
    assert parent.data.params == {
        "crop_size": "32", "seed": "27", "datasets": "kadid10k,live", "primary_dataset": "kadid10k",
        "encoder_arch": "resnet18", "encoder_step": "100", "twins": "random_twin",
        "twin_seed": "5", "n_alphas": "9"}
    tags = {k: v for k, v in parent.data.tags.items() if not k.startswith("mlflow.")}
    assert len(tags.pop("shamisa.evaluation_id")) == 16
    assert tags == {"shamisa.kind": "evaluation", "shamisa.encoder_fingerprint": "0123456789abcdef",
                    "shamisa.encoder_source": "/x/encoder.pt", "shamisa.datasets": "kadid10k,live",
                    "shamisa.arch": "resnet18", "shamisa.training_steps": "100", "extra": "yes"}
    expected = {"srcc/kadid10k": 0.8, "plcc/kadid10k": 0.7, "random_twin_srcc/kadid10k": 0.5,
                "random_twin_plcc/kadid10k": 0.45, "gain_vs_random_twin/kadid10k": 0.3,
                "srcc/live": 0.6, "plcc/live": 0.5, "random_twin_srcc/live": 0.2,
                "random_twin_plcc/live": 0.1, "gain_vs_random_twin/live": 0.4,
                "fr_srcc/kadid10k": 0.9, "fr_plcc/kadid10k": 0.85,
                "mean_srcc": 0.7, "random_twin_mean_srcc": 0.35, "gain_vs_random_twin/mean": 0.35}
    assert parent.data.metrics == pytest.approx(expected)
    assert dict(log.metrics) == pytest.approx(expected)
    arts = {a.path for a in client.list_artifacts(log.parent_run_id)}
    assert arts == {"evaluation.json", "evaluation_table.json"}
    logged = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=log.parent_run_id, artifact_path="evaluation.json", dst_path=str(tmp_path / "a"),
        tracking_uri=log.tracking_uri)).read_text())
    assert logged["kadid10k"]["srcc"] == 0.8 and logged["meta"]["seed"] == 27

    assert set(log.dataset_run_ids) == {"kadid10k", "live"}
    kid = client.get_run(log.dataset_run_ids["kadid10k"])
    assert kid.info.run_name == "kadid10k"
    assert kid.data.tags["mlflow.parentRunId"] == log.parent_run_id
    assert kid.data.tags["shamisa.dataset"] == "kadid10k" and kid.data.tags["shamisa.kind"] == "dataset"
    assert kid.data.params == {"dataset_version": "dv-k", "splits_version": "sv-k",
                               "split_method": "reference_disjoint", "label": "dmos",
                               "alpha": "0.25", "n_splits": "2"}
    assert kid.data.metrics == pytest.approx({
        "srcc": 0.8, "plcc": 0.7, "krcc": 0.6, "rmse": 0.5, "alpha": 0.25, "median_val_srcc": 0.75,
        "n_images": 18, "n_missing": 1, "n_failed": 2, "random_twin_srcc": 0.5,
        "random_twin_plcc": 0.45, "random_twin_alpha": 1.0,
        # last step of each per-split history
        "srcc_split": 0.9, "plcc_split": 0.6, "random_twin_srcc_split": 0.6})
    hist = {k: [(m.step, m.value) for m in client.get_metric_history(kid.info.run_id, k)]
            for k in ("srcc_split", "plcc_split", "random_twin_srcc_split")}
    assert hist == {"srcc_split": [(0, 0.7), (1, 0.9)], "plcc_split": [(0, 0.6)],
                    "random_twin_srcc_split": [(0, 0.4), (1, 0.6)]}
    assert {a.path for a in client.list_artifacts(kid.info.run_id)} == {"per_type.json", "result.json"}
    live = client.get_run(log.dataset_run_ids["live"])
    assert live.data.params == {"dataset_version": "dv-l", "alpha": "4.0", "n_splits": "1"}
    assert live.data.metrics == pytest.approx({
        "srcc": 0.6, "plcc": 0.5, "alpha": 4.0, "n_images": 9, "n_missing": 0,
        "random_twin_srcc": 0.2, "random_twin_plcc": 0.1, "random_twin_alpha": 2.0})


# ----------------------------------------------------------------------------------------------
# The whole path with a real encoder: evaluate, register, refresh, open a staged run


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    from shamisa_core.evaluation.mlflow_eval import log_evaluation
    from shamisa_core.evaluation.stages import evaluate_encoder

    root = tmp_path_factory.mktemp("registered")
    data = make_kadid_like(root / "kadid", n_refs=6, kinds=(1,), levels=(1, 2, 3), seed=3,
                           size=(40, 48))
    enc = make_encoder(root / "enc" / "encoder.pt", seed=1, patch_size=32)
    # ``baseline`` is the old name of ``twins`` and wins over it
    result = evaluate_encoder(enc, {"kadid10k": data}, twins=False, baseline=True,
                              cache_dir=root / "cache", seed=7)
    store = fresh_mlflow_dir(root / "mlflow")
    log = log_evaluation(result, mlflow_dir=store)
    return {"root": root, "data": data, "enc": enc, "result": result, "store": store, "log": log}


def test_baseline_true_builds_the_twins_even_with_twins_false(registered):
    result = registered["result"]
    assert list(result["twins"]) == ["random_twin"]  # a random-init encoder: no init twin
    assert set(result["twins"]["random_twin"]) == {"kadid10k"}
    assert result["meta"]["twins"]["random_twin"]["seed"] == 7  # encoder.pt records no seed


def test_refresh_downloads_into_the_cache_and_names_the_run_after_the_version(registered, tmp_path):
    from shamisa_core.evaluation.mlflow_eval import refresh_champion

    assert registered["log"].model_version == "1" and registered["log"].decision.moved
    cache = tmp_path / "cache"
    record = refresh_champion({"kadid10k": registered["data"]}, mlflow_dir=registered["store"],
                              cache_dir=cache, twins=False, seed=7)
    assert record.version == "1"
    uri = record.log.tracking_uri
    run = MlflowClient(uri, uri).get_run(record.log.parent_run_id)
    assert run.info.run_name == "refresh-v1"
    assert run.data.tags["shamisa.kind"] == "refresh" and run.data.tags["shamisa.model_version"] == "1"
    # the registered encoder was downloaded under <cache_dir>/downloads
    assert len(list((cache / "downloads").rglob("encoder.pt"))) == 1
    assert record.result["kadid10k"]["srcc"] == pytest.approx(registered["result"]["kadid10k"]["srcc"])


def test_open_run_loads_a_registered_model_from_the_given_store(registered, tmp_path):
    from shamisa_core import tracking
    from shamisa_core.evaluation import staged_run as sr
    from shamisa_core.tracking import IQA_MODEL_NAME

    uri = registered["log"].tracking_uri
    before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    # the process's global MLflow points at another (empty) store: the given one must be used
    tracking.setup(fresh_mlflow_dir(tmp_path / "other"), "x")
    try:
        plan = sr.DatasetPlan(cache_dir=tmp_path / "cache", proxy_base=tmp_path / "proxy", seed=7)
        run = sr.open_run(f"models:/{IQA_MODEL_NAME}/1", plan, tracking_uri=uri)
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
    meta = registered["result"]["meta"]
    assert run.trained.fingerprint == meta["encoder"]["fingerprint"]
    assert [t.role for t in run.twins] == ["random_twin"]
    assert run.twins[0].fingerprint == meta["twins"]["random_twin"]["fingerprint"]
    assert run.crop == 32 and len(list((tmp_path / "cache" / "downloads").rglob("encoder.pt"))) == 1


def test_open_run_from_a_path_builds_the_seeded_twins(tmp_path):
    from shamisa_core.evaluation import staged_run as sr
    from shamisa_core.evaluation.encoders import load_trained, random_twin

    enc = make_encoder(tmp_path / "enc" / "encoder.pt", seed=0, patch_size=24)
    plan = sr.DatasetPlan(cache_dir=tmp_path / "cache", proxy_base=tmp_path / "proxy", seed=11)
    run = sr.open_run(str(enc), plan, crop_size=16)
    assert run.crop == 16 and [t.role for t in run.twins] == ["random_twin"]
    assert run.twins[0].seed == 11
    assert run.twins[0].fingerprint == random_twin(load_trained(enc), 11).fingerprint
    assert sr.open_run(str(enc), plan).crop == 24  # the encoder's patch size
    with pytest.raises(sr.StageError, match=r"standard\.json: materialize quality_regressors first$"):
        sr.fr_stage(run, {})


# ----------------------------------------------------------------------------------------------
# staged_run.DatasetPlan.prepare


def test_plan_prepare_without_build_creates_nothing(tmp_path):
    from shamisa_core.evaluation import staged_run as sr

    data = make_kadid_like(tmp_path / "kadid", n_refs=3, kinds=(1,), levels=(1, 2), size=(24, 24))
    plan = sr.DatasetPlan(cache_dir=tmp_path / "cache", proxy_base=tmp_path / "proxy")
    with pytest.raises(FileNotFoundError, match=r"materialize benchmark_datasets\[kadid10k\] first"):
        plan.prepare("kadid10k", str(data), build=False)
    assert not list((tmp_path / "cache").rglob("splits*.parquet"))
    built = plan.prepare("kadid10k", str(data), build=True)
    assert built.splits_path.is_file()
    again = plan.prepare("kadid10k", str(data), build=False)
    assert again.splits.version == built.splits.version


# ----------------------------------------------------------------------------------------------
# cache: FeatureSet.to_json, the sidecar, encode_all's default device


def test_feature_set_to_json_keeps_every_field():
    from shamisa_core.evaluation.cache import FeatureSet

    failed = tuple((f"img{i}.png", "OSError: x") for i in range(25))
    fs = FeatureSet(features=np.zeros((3, 5, 4)), key="p32-k", path=Path("/x/p32-k.npy"),
                    cache_hit=True, failed=failed, encoder_fingerprint="fp", crop_size=32,
                    seconds=1.23456, retried=2)
    assert fs.to_json() == {
        "key": "p32-k", "path": "/x/p32-k.npy", "cache_hit": True, "n_failed": 25,
        "failed": [[f"img{i}.png", "OSError: x"] for i in range(20)], "retried_failed_rows": 2,
        "encoder_fingerprint": "fp", "crop_size": 32, "shape": [3, 5, 4], "seconds": 1.235}


def test_encode_all_on_the_default_device_writes_a_sidecar_naming_the_key_parts(tmp_path):
    from shamisa_core.evaluation.cache import features_key
    from shamisa_core.evaluation.encoders import load_trained
    from shamisa_core.evaluation.prepared import prepare_dataset
    from shamisa_core.evaluation.stages import encode_all

    data = make_kadid_like(tmp_path / "kadid", n_refs=2, kinds=(1,), levels=(1, 2), size=(24, 24))
    prep = prepare_dataset("kadid10k", str(data), tmp_path / "cache", proxy_base=tmp_path)
    enc = load_trained(make_encoder(tmp_path / "enc" / "encoder.pt", seed=0, patch_size=16))
    feats = encode_all({"kadid10k": prep}, enc, 16)  # device defaults to the CPU
    fs = feats["kadid10k"]
    assert list(feats) == ["kadid10k"] and fs.features.shape == (4, 5, 1024) and not fs.cache_hit
    side = json.loads(fs.path.with_suffix(".json").read_text())
    assert set(side) == {"dataset", "encoder_role", "key_parts", "shape", "failed", "seconds"}
    assert (side["dataset"], side["encoder_role"], side["shape"], side["failed"]) == (
        "kadid10k", "trained", [4, 5, 1024], [])
    parts = side["key_parts"]
    assert (parts["dataset"], parts["encoder"], parts["crop_size"], parts["n_rows"]) == (
        "kadid10k", enc.fingerprint, 16, 4)
    assert features_key(parts) == fs.key  # the sidecar says what the key is made of


# ----------------------------------------------------------------------------------------------
# encoders: twins on the trained encoder's inference path


def test_twins_run_on_the_trained_encoders_inference_options(tmp_path):
    from shamisa_core.evaluation.encoders import load_trained, make_twins
    from shamisa_core.inference import InferenceOptions

    trained = load_trained(make_encoder(tmp_path / "encoder.pt", seed=0, patch_size=16))
    assert trained.module.options == InferenceOptions()  # load_encoder's fast path
    (twin,) = make_twins(trained, 3)
    assert twin.module.options == trained.module.options
    assert twin.module.inference_tag == trained.module.inference_tag


# ----------------------------------------------------------------------------------------------
# features: the shape check of an encoder's output


@pytest.mark.parametrize("bad,shape", [
    (lambda h: h[:, :, None], "(10, 3, 1)"),           # 3-D output, right N
    (lambda h: torch.cat([h, h[:1]]), "(11, 3)"),      # 2-D output, wrong N
])
def test_encoder_output_of_the_wrong_shape_is_refused(bad, shape):
    from shamisa_core.evaluation.features import FeatureConfig, extract_features

    image = np.full((20, 20, 3), 128, dtype=np.uint8)

    def encoder(x: torch.Tensor) -> torch.Tensor:
        return bad(x.mean(dim=(2, 3)))

    msg = rf"^encoder must return \(N, d\); got {shape.replace('(', '[(]').replace(')', '[)]')} for N=10$"
    with pytest.raises(ValueError, match=msg):
        extract_features([image], encoder, FeatureConfig(crop_size=8))


# ----------------------------------------------------------------------------------------------
# metrics, ridge


def test_srcc_columns_length_mismatch_names_both_counts():
    from shamisa_core.evaluation.metrics import srcc_columns

    with pytest.raises(ValueError, match="^3 predictions for 2 targets$"):
        srcc_columns(np.zeros((3, 2)), [1.0, 2.0])


@pytest.mark.parametrize("n", [3, 4, 5])
def test_ridge_path_uses_the_primal_decomposition_when_n_is_at_least_d(n):
    """Module docstring: n >= d decomposes Xc^T Xc (orthonormal basis V), n < d Xc Xc^T
    (basis Xc^T U); both give scikit-learn's coefficients."""
    from sklearn.linear_model import Ridge

    from shamisa_core.evaluation.ridge import fit_ridge_path

    d = 4
    rng = np.random.default_rng(n)
    x, y = rng.normal(size=(n, d)), rng.normal(size=n)
    path = fit_ridge_path(x, y)
    xc = x - x.mean(axis=0)
    if n >= d:
        assert np.allclose(path.basis.T @ path.basis, np.eye(d), atol=1e-10)
        assert np.allclose(np.sort(path.eigenvalues), np.linalg.eigvalsh(xc.T @ xc), atol=1e-10)
    else:
        assert path.basis.shape == (d, n)
        assert np.allclose(np.sort(path.eigenvalues), np.clip(np.linalg.eigvalsh(xc @ xc.T), 0, None),
                           atol=1e-10)
    ref = Ridge(alpha=0.3).fit(x, y)
    assert np.allclose(path.coef([0.3])[:, 0], ref.coef_, atol=1e-9)
    assert np.allclose(path.intercept([0.3]), ref.intercept_, atol=1e-9)


def test_select_alpha_records_the_grid_as_floats():
    from shamisa_core.evaluation.ridge import SplitFit, select_alpha

    y = np.array([1.0, 2.0, 3.0, 4.0])
    val = np.array([2, 3])
    # column k = predictions at alpha k: the second one ranks the validation images right
    preds = np.array([[2.0, 1.0, 1.0], [1.0, 2.0, 2.0]])
    fit = SplitFit(split=0, train_index=np.array([0, 1]), index={"val": val}, predictions={"val": preds})
    choice = select_alpha([fit], y, alphas=[1, 10, 100])
    assert choice.alphas.dtype == np.float64 and choice.alphas.tolist() == [1.0, 10.0, 100.0]
    assert choice.index == 1 and choice.alpha == 10.0 and isinstance(choice.alpha, float)


# ----------------------------------------------------------------------------------------------
# datasets


def test_flive_split_column_gives_the_roles(tmp_path):
    from shamisa_core.evaluation.datasets.flive import official_roles

    frame = pd.DataFrame({"name": ["a", "b", "c", "d"], "Split": ["Train", "validation", "test", "dev"]})
    assert official_roles(frame, tmp_path / "labels_image.csv") == ["train", "val", "test", "val"]


def test_kadid_names_with_an_unknown_type_are_refused_by_default():
    from shamisa_core.evaluation.datasets.kadid10k import parse_name

    with pytest.raises(ValueError, match="has unknown distortion type 30"):
        parse_name("I01_30_3.png")
    assert parse_name("I01_30_3.png", known_types=False) == (1, 30, 3)
    assert parse_name("images/I12_08_5.png") == (12, 8, 5)


# ----------------------------------------------------------------------------------------------
# stages, CLI


def test_evaluate_encoder_without_datasets_says_so(tmp_path):
    from shamisa_core.evaluation.stages import evaluate_encoder

    with pytest.raises(ValueError, match="^no dataset to evaluate on$"):
        evaluate_encoder(str(tmp_path / "missing.pt"), {}, cache_dir=tmp_path)


def test_evaluate_help_describes_every_option():
    from shamisa_core.evaluation.cli_evaluate import add_evaluate_parser

    parser = argparse.ArgumentParser(prog="shamisa")
    sub = parser.add_subparsers(dest="cmd")
    add_evaluate_parser(sub)
    text = " ".join(sub.choices["evaluate"].format_help().split())
    assert "--fr also the full-reference protocol on |h_ref - h_dist| (§7.8)" in text
    assert "--cross also the cross-dataset protocol (§7.7)" in text
    evaluate = sub.choices["evaluate"]
    undocumented = [a.option_strings for a in evaluate._actions if a.option_strings and not a.help]
    assert undocumented == []


# ----------------------------------------------------------------------------------------------
# Survivors of the fresh seed-3 sample


def test_evaluate_parser_defaults():
    from shamisa_core.evaluation.cli_evaluate import add_evaluate_parser

    parser = argparse.ArgumentParser(prog="shamisa")
    add_evaluate_parser(parser.add_subparsers(dest="cmd"))
    args = vars(parser.parse_args(["evaluate", "--encoder", "e.pt", "--dataset", "kadid10k=/d"]))
    args = {k: v for k, v in args.items() if not callable(v)}
    assert args == {"cmd": "evaluate", "encoder": "e.pt", "dataset": ["kadid10k=/d"], "cross": False,
                    "fr": False, "json": None, "no_twins": False, "crop_size": None,
                    "cache_dir": "outputs/evaluation", "proxy_dir": "outputs/benchmarks/proxy",
                    "mlflow_dir": None, "seed": 27, "batch_size": None, "proxy_refs": None,
                    "proxy_types": None, "proxy_levels": None, "plots": None, "quiet": False}


def test_unreadable_matlab_file_is_named(tmp_path):
    import re

    from shamisa_core.evaluation.datasets.base import DatasetError
    from shamisa_core.evaluation.datasets.base import read_mat_variable

    path = tmp_path / "dmos.mat"
    path.write_bytes(b"this is not a MATLAB file at all" * 8)
    with pytest.raises(DatasetError, match="^" + re.escape(f"malformed annotation file {path}: "
                                                          "cannot read MATLAB file (")):
        read_mat_variable(path, "dmos")


def test_missing_koniq_scores_file_names_the_columns(tmp_path):
    from shamisa_core.evaluation.datasets.base import DatasetError
    from shamisa_core.evaluation.datasets.koniq10k import read

    with pytest.raises(DatasetError, match="expected CSV with columns image_name and MOS$"):
        read(tmp_path)


def test_log_evaluation_records_the_proxy_spec(tmp_path):
    from shamisa_core.evaluation.mlflow_eval import log_evaluation

    result = {"proxy": {"srcc": 0.5, "plcc": 0.4},
              "meta": {"encoder": {"fingerprint": "ffff0000"}, "crop_size": 16,
                       "proxy_spec": {"refs": 2, "levels": [1, 3]}}}
    log = log_evaluation(result, mlflow_dir=fresh_mlflow_dir(tmp_path / "m"), register=False,
                         kind="refresh", run_name="r1")
    run = MlflowClient(log.tracking_uri, log.tracking_uri).get_run(log.parent_run_id)
    assert run.info.run_name == "r1" and run.data.tags["shamisa.kind"] == "refresh"
    assert run.data.params == {"crop_size": "16", "datasets": "proxy", "primary_dataset": "proxy",
                               "twins": "none", "proxy_spec": "{'refs': 2, 'levels': [1, 3]}"}


def test_aggregate_means_per_kind_and_global():
    from shamisa_core.evaluation.protocol import aggregate
    from shamisa_core.evaluation.results import StandardResult

    def res(name: str, srcc: float) -> StandardResult:
        return StandardResult(dataset=name, mode="nr", alpha=1.0, median_val_srcc=srcc, srcc=srcc,
                              plcc=srcc, krcc=srcc, rmse=1.0, splits=(), per_type={}, n_images=4,
                              n_missing=0, n_failed=0, split_method="random", splits_version="v",
                              label="MOS", lower_is_better=False, logistic_plcc=False)

    kinds = {"a": "authentic", "b": "authentic", "s": "synthetic"}
    assert aggregate([res("a", 0.6), res("b", 0.8)], kinds) == pytest.approx(
        {"synthetic_mean": None, "authentic_mean": 0.7, "global_mean": 0.7})
    assert aggregate([res("a", 0.6), res("s", float("nan")), res("s", 0.2)], kinds) == pytest.approx(
        {"synthetic_mean": 0.2, "authentic_mean": 0.6, "global_mean": 0.4})


def test_center_crop_resize_keeps_the_aspect_ratio():
    from PIL import Image

    from shamisa_core.evaluation.proxy import center_crop_resize

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(10, 40, 3), dtype=np.uint8)  # h=10, w=40
    out = center_crop_resize(img, (20, 20))  # scale 2: 80 x 20, then the centre 20 columns
    big = np.asarray(Image.fromarray(img).resize((80, 20), Image.BICUBIC))
    np.testing.assert_array_equal(out, big[:, 30:50])


def test_alpha_grid_is_log_spaced_between_the_bounds():
    from shamisa_core.evaluation.ridge import DEFAULT_ALPHAS, alpha_grid

    assert alpha_grid() == DEFAULT_ALPHAS and len(DEFAULT_ALPHAS) == 100
    assert DEFAULT_ALPHAS[0] == pytest.approx(1e-3) and DEFAULT_ALPHAS[-1] == pytest.approx(1e3)
    grid = alpha_grid(0.1, 10.0, 3)
    assert isinstance(grid, tuple) and grid == pytest.approx((0.1, 1.0, 10.0))


def test_role_counts_never_exceed_the_images():
    from shamisa_core.evaluation.splits import role_counts

    assert role_counts(10) == (7, 1, 2)
    assert role_counts(10, train_fraction=0.9, val_fraction=0.2) == (9, 1, 0)  # val takes the rest
    assert role_counts(10, train_fraction=1.0, val_fraction=0.1) == (10, 0, 0)


def test_final_regressor_records_its_provenance_and_logs_a_rebuilt_cache(tmp_path):
    from shamisa_core.evaluation.encoders import load_trained
    from shamisa_core.evaluation.prepared import prepare_dataset
    from shamisa_core.evaluation.stages import encode_all, final_regressor

    data = make_kadid_like(tmp_path / "kadid", n_refs=2, kinds=(1,), levels=(1, 2), size=(24, 24))
    prep = prepare_dataset("kadid10k", str(data), tmp_path / "cache", proxy_base=tmp_path)
    enc = load_trained(make_encoder(tmp_path / "enc" / "encoder.pt", seed=0, patch_size=16))
    fs = encode_all({"kadid10k": prep}, enc, 16)["kadid10k"]
    reg = final_regressor(prep, fs, 0.5, enc.fingerprint)
    assert (reg.alpha, reg.crop_size, reg.lower_is_better, reg.score_range, reg.datasets) == (
        0.5, 16, False, (1.0, 5.0), ("kadid10k",))  # KADID-10k: MOS in [1, 5], higher is better
    assert reg.extra == {"dataset_version": prep.version, "encoder_fingerprint": enc.fingerprint,
                         "splits_version": prep.splits.version, "features_key": fs.key, "n_images": 4}
    np.save(fs.path, np.zeros((1, 5, 4)))  # a damaged cache file: rebuilt, and the log says so
    messages: list[str] = []
    with pytest.warns(UserWarning, match="rebuilding it"):
        again = encode_all({"kadid10k": prep}, enc, 16, log=messages.append)["kadid10k"]
    assert messages == [f"cache file {fs.path} has shape (1, 5, 4) for 4 rows; rebuilding it"]
    np.testing.assert_array_equal(again.features, fs.features)


def test_handles_summarise_every_field(tmp_path):
    from shamisa_core.evaluation.encoders import load_trained, make_twins
    from shamisa_core.evaluation.prepared import prepare_dataset

    path = make_encoder(tmp_path / "enc" / "encoder.pt", seed=0, patch_size=16)
    trained = load_trained(path)
    js = trained.to_json()
    assert set(js) == {"role", "label", "source", "fingerprint", "path", "arch", "init", "patch_size",
                       "step", "seed", "profile", "corpus_hash", "git_commit", "inference_tag", "health"}
    assert (js["role"], js["arch"], js["init"], js["patch_size"], js["fingerprint"]) == (
        "trained", "resnet18", "random", 16, trained.fingerprint)
    assert js["source"] == trained.source and Path(js["path"]) == path.resolve()
    (twin,) = make_twins(trained, 3)
    assert set(twin.meta) == {"model_config", "patch_size", "arch", "feature_dim", "format"}
    assert {k: twin.meta[k] for k in ("patch_size", "arch", "feature_dim", "format")} == {
        k: trained.meta[k] for k in ("patch_size", "arch", "feature_dim", "format")}
    assert (twin.to_json()["arch"], twin.to_json()["seed"], twin.to_json()["role"]) == (
        "resnet18", 3, "random_twin")

    data = make_kadid_like(tmp_path / "kadid", n_refs=2, kinds=(1,), levels=(1, 2), size=(24, 24))
    prep = prepare_dataset("kadid10k", str(data), tmp_path / "cache", proxy_base=tmp_path)
    assert prep.to_json() == {
        "dataset": "kadid10k", "root": str(prep.dataset.root), "version": prep.version,
        "n_images": 4, "n_missing": 0, "label": "MOS", "lower_is_better": False,
        "kind": "synthetic", "splits_version": prep.splits.version,
        "splits_method": prep.splits.method, "n_splits": prep.splits.n_splits,
        "splits_path": str(prep.splits_path)}
    assert Path(prep.to_json()["root"]).resolve() == data.resolve()


def test_cross_predictions_name_the_target_images(tmp_path):
    from shamisa_core.evaluation.prepared import prepare_dataset
    from shamisa_core.evaluation.protocol import evaluate_cross

    preps = [prepare_dataset("kadid10k", str(make_kadid_like(tmp_path / f"k{i}", n_refs=6, kinds=(1,),
                                                             levels=(1, 2), size=(16, 16), seed=i)),
                             tmp_path / f"cache{i}", proxy_base=tmp_path) for i in (1, 2)]
    rng = np.random.default_rng(0)
    src, tgt = (rng.normal(size=(len(p.table), 5, 6)) for p in preps)
    res = evaluate_cross(src, preps[0].table, preps[0].info, preps[0].splits, tgt, preps[1].table,
                         preps[1].info, alpha=1.0)
    frame = res.predictions
    names = preps[1].table["name"].astype(str).to_numpy()
    assert len(frame) == len(names) * preps[0].splits.n_splits
    assert frame["image"].tolist() == names[frame["image_index"].to_numpy()].tolist()


def test_twin_of_an_encoder_whose_weights_file_is_gone(tmp_path):
    import torch as _torch

    from shamisa_core.evaluation.encoders import load_trained, random_twin
    from shamisa_core.models import ModelConfig, build_model
    from shamisa_core.training.checkpoint import save_encoder

    gone = tmp_path / "gone.pth"
    cfg = ModelConfig(arch="resnet18", init="random", n_branches=0, weights_path=str(gone))
    _torch.manual_seed(0)
    path = save_encoder(tmp_path / "encoder.pt", build_model(cfg), cfg, 16)
    trained = load_trained(path)
    assert trained.meta["model_config"]["weights_path"] == str(gone)
    twin = random_twin(trained, 4)
    assert twin.meta["model_config"]["weights_path"] is None and twin.seed == 4


def test_predict_images_takes_any_integer_like_index():
    from shamisa_core.evaluation.ridge import fit_ridge_path, predict_images

    rng = np.random.default_rng(1)
    feats = rng.normal(size=(4, 5, 3))
    path = fit_ridge_path(feats.mean(axis=1), np.arange(4.0))
    full = path.predict(feats.mean(axis=1), [0.5])
    np.testing.assert_allclose(predict_images(path, feats, [0.5], index=[2, 0]), full[[2, 0]])
    np.testing.assert_allclose(predict_images(path, feats, [0.5], index=np.array([3.0])), full[[3]])
    assert predict_images(path, feats, [0.5], index=[]).shape == (0, 1)  # an empty role


def test_a_failed_row_is_retried_on_the_next_call(tmp_path):
    import time

    from shamisa_core.evaluation.encoders import load_trained
    from shamisa_core.evaluation.prepared import prepare_dataset
    from shamisa_core.evaluation.stages import encode_all

    data = make_kadid_like(tmp_path / "kadid", n_refs=2, kinds=(1,), levels=(1, 2), size=(24, 24))
    prep = prepare_dataset("kadid10k", str(data), tmp_path / "cache", proxy_base=tmp_path)
    enc = load_trained(make_encoder(tmp_path / "enc" / "encoder.pt", seed=0, patch_size=16))
    first = encode_all({"kadid10k": prep}, enc, 16)["kadid10k"]
    assert first.n_failed == 0 and not first.cache_hit
    stored = first.features.copy()
    stored[1] = np.nan  # a row that failed when the cache was written (same key)
    np.save(first.path, stored)
    t0 = time.perf_counter()
    again = encode_all({"kadid10k": prep}, enc, 16)["kadid10k"]
    elapsed = time.perf_counter() - t0
    assert (again.cache_hit, again.retried, again.n_failed, again.encoder_fingerprint) == (
        True, 1, 0, enc.fingerprint)
    assert 0.0 < again.seconds <= elapsed
    np.testing.assert_allclose(again.features, first.features, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.load(first.path), again.features)  # the repair is stored


def test_csiq_finds_images_whose_name_case_differs(tmp_path):
    from PIL import Image

    from shamisa_core.evaluation.datasets import load_dataset

    (tmp_path / "CSIQ.txt").write_text(
        "dis_img_path,dis_type,ref_img_path,score\n"
        "CSIQ/dst_imgs/AWGN/1600.AWGN.1.png,AWGN,CSIQ/src_imgs/1600.png,0.25\n"
        "CSIQ/dst_imgs/blur/1600.BLUR.2.png,BLUR,CSIQ/src_imgs/1600.png,0.5\n")
    for rel in ("dst_imgs/awgn/1600.awgn.1.png", "dst_imgs/blur/1600.BLUR.2.png", "src_imgs/1600.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (120, 130, 140)).save(tmp_path / rel)
    ds = load_dataset("csiq", tmp_path)
    assert (ds.n_images, ds.n_missing) == (2, 0)
    assert ds.table["image"].tolist() == [str((tmp_path / "dst_imgs/awgn/1600.awgn.1.png").resolve()),
                                          str((tmp_path / "dst_imgs/blur/1600.BLUR.2.png").resolve())]


def test_reference_feature_key_follows_the_reference_images(tmp_path):
    from PIL import Image

    from shamisa_core.evaluation.cache import features_key, key_parts
    from shamisa_core.evaluation.encoders import load_trained
    from shamisa_core.evaluation.prepared import prepare_dataset

    data = make_kadid_like(tmp_path / "kadid", n_refs=2, kinds=(1,), levels=(1, 2), size=(24, 24))
    enc = load_trained(make_encoder(tmp_path / "enc" / "encoder.pt", seed=0, patch_size=16))

    def keys() -> tuple[str, str]:
        prep = prepare_dataset("kadid10k", str(data), tmp_path / "cache", proxy_base=tmp_path)
        return (features_key(key_parts(prep, enc, 16, "nr")), features_key(key_parts(prep, enc, 16, "ref")))

    nr, ref = keys()
    Image.new("RGB", (30, 30), (10, 200, 30)).save(data / "images" / "I01.png")  # a reference
    nr2, ref2 = keys()
    assert nr2 == nr and ref2 != ref  # only the reference features are stale
