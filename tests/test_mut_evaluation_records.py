"""Whole-record checks of `shamisa_core.evaluation`'s result records, dataset roots, report
tables and MLflow metric names (issue 10, mutation kill rate). Every expected value is written
out by hand or recomputed here (hashlib, numpy) from the inputs, never copied from the output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shamisa_core.evaluation.metrics import Metrics

KNOWN = "live, csiq, tid2013, kadid10k, koniq10k, clive, spaq, flive, proxy"
NAN = float("nan")

# ----------------------------------------------------------------------------------------------
# results.py: SplitResult / StandardResult / CrossResult.to_json


def _splits():
    from shamisa_core.evaluation.results import SplitResult

    return (SplitResult(split=0, metrics=Metrics(0.5, NAN, 0.25, 1.5, 7), val_srcc=float("inf"),
                        n_train=10, n_val=3, n_test=7),
            SplitResult(split=1, metrics=Metrics(0.75, 0.625, NAN, 2.0, 6), val_srcc=0.375,
                        n_train=11, n_val=2, n_test=6))


def test_split_result_to_json_is_every_field_with_nan_as_none():
    a, b = _splits()
    assert a.to_json() == {"split": 0, "srcc": 0.5, "plcc": None, "krcc": 0.25, "rmse": 1.5, "n": 7,
                           "val_srcc": None, "n_train": 10, "n_val": 3, "n_test": 7}
    assert b.to_json() == {"split": 1, "srcc": 0.75, "plcc": 0.625, "krcc": None, "rmse": 2.0, "n": 6,
                           "val_srcc": 0.375, "n_train": 11, "n_val": 2, "n_test": 6}
    json.dumps(a.to_json(), allow_nan=False)  # valid strict JSON


@pytest.mark.parametrize("lower", [True, False])
def test_standard_result_to_json_is_the_whole_record(lower):
    from shamisa_core.evaluation.results import StandardResult

    splits = _splits()
    res = StandardResult(
        dataset="kadid10k", mode="fr", alpha=0.125, median_val_srcc=NAN, srcc=0.6, plcc=float("-inf"),
        krcc=0.4, rmse=0.3, splits=splits,
        per_type={"blur": {"srcc": 0.5, "plcc": NAN, "n": 4}, "noise": {"srcc": -0.25, "n": 3}},
        n_images=13, n_missing=2, n_failed=1, split_method="reference_disjoint",
        splits_version="sv1", label="dmos", lower_is_better=lower, logistic_plcc=not lower)
    js = res.to_json()
    assert js == {
        "dataset": "kadid10k", "mode": "fr", "srcc": 0.6, "plcc": None, "krcc": 0.4, "rmse": 0.3,
        "srcc_splits": [0.5, 0.75], "plcc_splits": [None, 0.625], "krcc_splits": [0.25, None],
        "rmse_splits": [1.5, 2.0], "alpha": 0.125, "median_val_srcc": None, "n_splits": 2,
        "n_images": 13, "n_missing": 2, "n_failed": 1, "split_method": "reference_disjoint",
        "splits_version": "sv1", "label": "dmos", "lower_is_better": lower,
        "scores_flipped_for_report": lower, "logistic_plcc": not lower,
        "per_type": {"blur": {"srcc": 0.5, "plcc": None, "n": 4}, "noise": {"srcc": -0.25, "n": 3}},
        "splits": [splits[0].to_json(), splits[1].to_json()]}
    assert type(js["per_type"]["blur"]["n"]) is int and type(js["per_type"]["noise"]["n"]) is int
    assert res.scores_flipped_for_report is lower
    json.dumps(js, allow_nan=False)
    finite = StandardResult(**{**res.__dict__, "median_val_srcc": 0.875}).to_json()
    assert finite["median_val_srcc"] == 0.875


@pytest.mark.parametrize("source,target,lower", [("kadid10k", "live", True), ("live", "live", False)])
def test_cross_result_to_json_is_the_whole_record(source, target, lower):
    from shamisa_core.evaluation.results import CrossResult

    splits = _splits()
    res = CrossResult(source=source, target=target, alpha=2.5, alpha_source="given", srcc=NAN,
                      plcc=0.5, krcc=0.25, rmse=float("inf"), splits=splits, n_images=9, n_missing=1,
                      n_failed=3, orientation_flipped=not lower, source_range=(1.0, 5.0),
                      target_range=(0.0, 100.0), target_lower_is_better=lower, logistic_plcc=lower)
    assert res.same_dataset is (source == target)
    assert res.scores_flipped_for_report is lower
    assert res.to_json() == {
        "source": source, "target": target, "srcc": None, "plcc": 0.5, "krcc": 0.25, "rmse": None,
        "srcc_splits": [0.5, 0.75], "plcc_splits": [None, 0.625], "alpha": 2.5, "alpha_source": "given",
        "n_splits": 2, "n_images": 9, "n_missing": 1, "n_failed": 3, "orientation_flipped": not lower,
        "source_range": [1.0, 5.0], "target_range": [0.0, 100.0], "target_lower_is_better": lower,
        "scores_flipped_for_report": lower, "same_dataset": source == target, "logistic_plcc": lower}


# ----------------------------------------------------------------------------------------------
# roots.py


def test_dataset_names_are_the_loaders_then_the_proxy():
    from shamisa_core.evaluation.roots import DATASET_NAMES, PROXY

    assert PROXY == "proxy" and ", ".join(DATASET_NAMES) == KNOWN


def _digest(name: str, root: Path, file: Path) -> str:
    return hashlib.sha256(f"{name}\n{root}\n".encode() + file.read_bytes()).hexdigest()[:16]


def test_scan_dataset_roots_reads_good_files_and_names_every_bad_one(tmp_path, monkeypatch):
    from shamisa_core.evaluation.roots import DatasetRoot, benchmark_roots, scan_dataset_roots

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = tmp_path / "home" / "cfg"
    cfg.mkdir(parents=True)
    (cfg / "kadid10k.json").write_text(json.dumps({"root": "/data/kadid"}))
    (cfg / "kadid10k.yaml").write_text("root: /elsewhere\n")           # second file, same name
    (cfg / "LIVE.YML").write_text("root: rel/live\n")                  # upper case, relative
    (cfg / "csiq.yaml").write_text("root: ~/csiq\n")                   # home folder
    (cfg / "spaq.yaml").write_text("root: ''\n")                       # empty root
    (cfg / "tid2013.yaml").write_text("- a\n- b\n")                    # not a mapping
    (cfg / "clive.yaml").write_text("root: 5\n")                       # not a string
    (cfg / "flive.yaml").write_text("other: /x\n")                     # no root
    (cfg / "koniq10k.json").write_text("{not json")                    # unparsable
    (cfg / "unknown.yaml").write_text("root: /x\n")                    # not a dataset
    (cfg / ".proxy.yaml").write_text("root: /hidden\n")                # hidden: ignored
    (cfg / "notes.txt").write_text("root: /x\n")                       # other suffix: ignored
    (cfg / "proxy.yaml").write_text("root: /p\n")

    scan = scan_dataset_roots("~/cfg")
    assert scan.config_dir == cfg
    assert list(scan.roots) == ["live", "csiq", "kadid10k", "proxy"]  # sorted file names: upper case first
    expected = {
        "csiq": (tmp_path / "home" / "csiq", cfg / "csiq.yaml"),
        "kadid10k": (Path("/data/kadid"), cfg / "kadid10k.json"),
        "live": (cfg / "rel" / "live", cfg / "LIVE.YML"),
        "proxy": (Path("/p"), cfg / "proxy.yaml"),
    }
    for name, (root, file) in expected.items():
        assert scan.roots[name] == DatasetRoot(name=name, root=root, config_file=file,
                                               digest=_digest(name, root, file))
        assert scan.roots[name].to_json() == {"name": name, "root": str(root), "config_file": str(file),
                                              "digest": _digest(name, root, file)}
    mapping_msg = "ValueError: expected a mapping with a non-empty string `root: /path/to/dataset`"
    problems = dict(scan.problems)
    assert [p[0] for p in scan.problems] == [str(cfg / n) for n in (
        "clive.yaml", "flive.yaml", "kadid10k.yaml", "koniq10k.json", "spaq.yaml", "tid2013.yaml",
        "unknown.yaml")]
    assert problems[str(cfg / "clive.yaml")] == mapping_msg
    assert problems[str(cfg / "flive.yaml")] == mapping_msg
    assert problems[str(cfg / "spaq.yaml")] == mapping_msg
    assert problems[str(cfg / "tid2013.yaml")] == mapping_msg
    assert problems[str(cfg / "kadid10k.yaml")] == f"kadid10k is already configured by {cfg / 'kadid10k.json'}"
    assert problems[str(cfg / "koniq10k.json")].startswith("JSONDecodeError: ")
    assert problems[str(cfg / "unknown.yaml")] == f"unknown dataset 'unknown'; known: {KNOWN}"

    assert benchmark_roots(scan) == {"proxy": "/p", "csiq": str(tmp_path / "home" / "csiq"),
                                     "kadid10k": "/data/kadid", "live": str(cfg / "rel" / "live")}
    assert list(benchmark_roots(scan)) == ["proxy", "live", "csiq", "kadid10k"]


def test_digest_follows_the_file_content_and_the_root(tmp_path):
    from shamisa_core.evaluation.roots import scan_dataset_roots

    (tmp_path / "live.yaml").write_text("root: /a\n")
    one = scan_dataset_roots(tmp_path).roots["live"].digest
    (tmp_path / "live.yaml").write_text("root: /a\n# comment\n")
    two = scan_dataset_roots(tmp_path).roots["live"].digest
    assert one != two and len(one) == len(two) == 16


def test_scan_of_a_missing_folder_configures_only_the_default_proxy(tmp_path):
    from shamisa_core.evaluation.roots import DatasetRoot, RootsScan, benchmark_roots, scan_dataset_roots

    scan = scan_dataset_roots(tmp_path / "absent")
    assert scan == RootsScan(tmp_path / "absent", {}, ())
    assert benchmark_roots(scan) == {"proxy": None}
    assert DatasetRoot("proxy", None, None, "d").to_json() == {"name": "proxy", "root": None,
                                                               "config_file": None, "digest": "d"}
    empty = RootsScan(tmp_path, {})
    assert empty.problems == ()


def test_parse_dataset_args_accepts_every_form():
    from shamisa_core.evaluation.roots import parse_dataset_args

    assert parse_dataset_args([" KADID10K = /data/k ", "proxy"]) == {"kadid10k": "/data/k", "proxy": None}
    assert parse_dataset_args(["proxy=default"]) == {"proxy": None}
    assert parse_dataset_args(["proxy= "]) == {"proxy": None}
    assert parse_dataset_args(["proxy=/my/proxy", "live=/l"]) == {"proxy": "/my/proxy", "live": "/l"}
    assert parse_dataset_args(["live=a=b"]) == {"live": "a=b"}
    assert parse_dataset_args([]) == {}


@pytest.mark.parametrize("items,message", [
    (["foo=/x"], f"unknown dataset 'foo' in --dataset 'foo=/x'; known: {KNOWN}"),
    (["live=/a", "LIVE=/b"], "dataset live given twice"),
    (["proxy", "proxy=/p"], "dataset proxy given twice"),
    (["csiq"], "--dataset csiq needs a folder: --dataset csiq=/path/to/csiq"),
    (["csiq="], "--dataset csiq needs a folder: --dataset csiq=/path/to/csiq"),
    (["tid2013=  "], "--dataset tid2013 needs a folder: --dataset tid2013=/path/to/tid2013"),
])
def test_parse_dataset_args_errors_name_the_value_and_the_fix(items, message):
    from shamisa_core.evaluation.roots import parse_dataset_args

    with pytest.raises(ValueError) as err:
        parse_dataset_args(items)
    assert str(err.value) == message


# ----------------------------------------------------------------------------------------------
# report.py: the small helpers


def test_fmt_rounds_and_dashes_missing_values():
    from shamisa_core.evaluation.report import fmt

    assert [fmt(None), fmt(NAN), fmt(float("inf")), fmt(np.float32("nan")), fmt(np.float64(-np.inf))] == ["-"] * 5
    assert fmt(1) == "1.0000" and fmt(0.123456) == "0.1235" and fmt(np.float32(0.5)) == "0.5000"
    assert fmt(0.123456, 2) == "0.12" and fmt(-3, digits=1) == "-3.0"


def test_names_roles_sections_and_labels():
    from shamisa_core.evaluation.report import (RESERVED_KEYS, TWINS_KEY, dataset_names, label, section,
                                                twin_roles)

    assert TWINS_KEY == "twins" and RESERVED_KEYS == ("cross", "fr", "twins", "meta")
    twins = {"init_twin": {"live": {"srcc": 1.0}}, "random_twin": {}}
    result = {"meta": {"twins": {"init_twin": {"label": "init twin (imagenet)"}, "random_twin": {}}},
              "live": {}, "cross": {}, "csiq": {}, "fr": {}, "twins": twins, "tid2013": {}}
    assert dataset_names(result) == ["live", "csiq", "tid2013"]
    assert twin_roles(result) == ["init_twin", "random_twin"]
    assert twin_roles({"twins": None}) == [] and twin_roles({}) == []
    assert section(result) is result and section(result, "trained") is result
    assert section(result, "init_twin") == {"live": {"srcc": 1.0}}
    assert section(result, "random_twin") == {} and section(result, "other") == {}
    assert section({"twins": None}, "init_twin") == {}
    assert label(result, "trained") == "trained"
    assert label({"meta": {"twins": {"trained": {"label": "x"}}}}, "trained") == "trained"
    assert label(result, "init_twin") == "init twin (imagenet)"
    assert label(result, "random_twin") == "random twin"
    assert label({}, "some_other_role") == "some other role"
    assert label({"meta": None}, "a_b") == "a b"
    assert label({"meta": {"twins": None}}, "a_b") == "a b"


def _report_result() -> dict:
    return {
        "live": {"srcc": 0.8, "plcc": 0.7, "alpha": 2.0, "n_images": 10, "n_missing": 1,
                 "features": {"n_failed": 2, "failed": [["a.png", "bad"], ["b.png", "worse"]]}},
        "csiq": {"srcc": None, "plcc": 0.5, "alpha": 0.5, "n_images": 5, "n_missing": 0},
        "tid2013": {"srcc": 0.4, "plcc": 0.3, "alpha": 1.0, "n_images": 4, "n_missing": 2,
                    "features": {"n_failed": 0, "failed": [["c.png", "why"]]}},
        "cross": {"live": {"csiq": {"srcc": 0.1, "plcc": 0.15, "alpha": 2.0, "orientation_flipped": False},
                           "tid2013": {"srcc": 0.2, "plcc": 0.25, "alpha": 2.0, "orientation_flipped": True}},
                  "csiq": {"live": {"srcc": 0.3, "plcc": 0.35}},
                  "tid2013": {"live": {"srcc": -0.4, "plcc": 0.45}, "csiq": {"srcc": 0.5}}},
        "twins": {"init_twin": {"live": {"srcc": 0.6, "plcc": 0.55}, "csiq": {"srcc": 0.2},
                                "cross": {"live": {"csiq": {"srcc": 0.05}}}},
                  "random_twin": {"live": {"srcc": 0.1}, "tid2013": {"srcc": 0.3, "plcc": 0.2},
                                  "cross": {"live": {"csiq": {"srcc": 0.01}, "tid2013": {"srcc": 0.02}},
                                            "csiq": {"live": {"srcc": 0.03, "plcc": 0.9}}}}},
        "meta": {},
    }


def test_summary_frame_is_every_column_of_every_dataset():
    from shamisa_core.evaluation.report import summary_frame

    frame = summary_frame(_report_result())
    assert list(frame.columns) == ["dataset", "srcc", "plcc", "init_twin_srcc", "init_twin_plcc",
                                   "gain_vs_init_twin", "random_twin_srcc", "random_twin_plcc",
                                   "gain_vs_random_twin", "alpha", "n_images", "n_missing", "n_failed"]
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    expected = [
        {"dataset": "live", "srcc": 0.8, "plcc": 0.7, "init_twin_srcc": 0.6, "init_twin_plcc": 0.55,
         "gain_vs_init_twin": 0.8 - 0.6, "random_twin_srcc": 0.1, "random_twin_plcc": None,
         "gain_vs_random_twin": 0.8 - 0.1, "alpha": 2.0, "n_images": 10, "n_missing": 1, "n_failed": 2},
        {"dataset": "csiq", "srcc": None, "plcc": 0.5, "init_twin_srcc": 0.2, "init_twin_plcc": None,
         "gain_vs_init_twin": None, "random_twin_srcc": None, "random_twin_plcc": None,
         "gain_vs_random_twin": None, "alpha": 0.5, "n_images": 5, "n_missing": 0, "n_failed": None},
        {"dataset": "tid2013", "srcc": 0.4, "plcc": 0.3, "init_twin_srcc": None, "init_twin_plcc": None,
         "gain_vs_init_twin": None, "random_twin_srcc": 0.3, "random_twin_plcc": 0.2,
         "gain_vs_random_twin": 0.4 - 0.3, "alpha": 1.0, "n_images": 4, "n_missing": 2, "n_failed": 0},
    ]
    for got, want in zip(rows, expected, strict=True):
        assert set(got) == set(want)
        for key, value in want.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value), key
            else:
                assert got[key] == value, key
    empty = summary_frame({"meta": {}})
    assert list(empty.columns) == ["dataset", "srcc", "plcc", "alpha", "n_images", "n_missing", "n_failed"]
    assert len(empty) == 0


def test_cross_matrix_every_metric_role_and_diagonal():
    from shamisa_core.evaluation.report import cross_matrix

    r = _report_result()
    m = cross_matrix(r)
    assert (m.index.name, m.columns.name) == ("source", "target")
    assert list(m.index) == list(m.columns) == ["live", "csiq", "tid2013"]
    expect = [[0.8, 0.1, 0.2], [0.3, NAN, NAN], [-0.4, 0.5, 0.4]]
    np.testing.assert_allclose(m.to_numpy(), expect)
    assert m.dtypes.tolist() == [np.float64] * 3
    plcc = cross_matrix(r, "plcc", diagonal=False)
    np.testing.assert_allclose(plcc.to_numpy(), [[NAN, 0.15, 0.25], [0.35, NAN, NAN], [0.45, NAN, NAN]])
    twin = cross_matrix(r, metric="srcc", role="random_twin")
    assert list(twin.index) == ["live", "csiq"]
    np.testing.assert_allclose(twin.to_numpy(), [[0.1, 0.01], [0.03, NAN]])
    twin_plcc = cross_matrix(r, "plcc", "random_twin", diagonal=True)
    np.testing.assert_allclose(twin_plcc.to_numpy(), [[NAN, NAN], [0.9, NAN]])
    assert cross_matrix({"live": {}}).shape == (0, 0)


def test_cross_frame_has_every_pair_with_each_twin():
    from shamisa_core.evaluation.report import cross_frame

    frame = cross_frame(_report_result())
    assert list(frame.columns) == ["source", "target", "srcc", "plcc", "init_twin_srcc", "random_twin_srcc",
                                   "alpha", "orientation_flipped"]
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    assert rows == [
        {"source": "live", "target": "csiq", "srcc": 0.1, "plcc": 0.15, "init_twin_srcc": 0.05,
         "random_twin_srcc": 0.01, "alpha": 2.0, "orientation_flipped": False},
        {"source": "live", "target": "tid2013", "srcc": 0.2, "plcc": 0.25, "init_twin_srcc": None,
         "random_twin_srcc": 0.02, "alpha": 2.0, "orientation_flipped": True},
        {"source": "csiq", "target": "live", "srcc": 0.3, "plcc": 0.35, "init_twin_srcc": None,
         "random_twin_srcc": 0.03, "alpha": None, "orientation_flipped": None},
        {"source": "tid2013", "target": "live", "srcc": -0.4, "plcc": 0.45, "init_twin_srcc": None,
         "random_twin_srcc": None, "alpha": None, "orientation_flipped": None},
        {"source": "tid2013", "target": "csiq", "srcc": 0.5, "plcc": None, "init_twin_srcc": None,
         "random_twin_srcc": None, "alpha": None, "orientation_flipped": None}]
    assert list(cross_frame({"live": {}}).columns) == ["source", "target", "srcc", "plcc", "alpha",
                                                       "orientation_flipped"]


def test_mean_srcc_of_each_role_skips_missing_values():
    from shamisa_core.evaluation.report import mean_srcc

    r = _report_result()
    assert mean_srcc(r) == pytest.approx((0.8 + 0.4) / 2)
    assert mean_srcc(r, "init_twin") == pytest.approx((0.6 + 0.2) / 2)
    assert mean_srcc(r, "random_twin") == pytest.approx((0.1 + 0.3) / 2)
    assert mean_srcc(r, "absent_twin") is None
    assert mean_srcc({"live": {"srcc": None}}) is None
    assert isinstance(mean_srcc({"live": {"srcc": np.float32(0.5)}}), float)
    # A NaN dataset (constant predictions) makes the mean NaN rather than a mean of the others.
    assert np.isnan(mean_srcc({"live": {"srcc": 0.5}, "csiq": {"srcc": float("nan")}}))


def test_evaluation_asset_metadata_keeps_a_zero_mean_and_turns_none_into_nan():
    from assets.evaluation import _or_nan

    assert _or_nan(0.0) == 0.0
    assert np.isnan(_or_nan(None))
    assert _or_nan(np.float32(0.25)) == 0.25


def test_markdown_table_cells_index_and_digits():
    from shamisa_core.evaluation.report import markdown_table, records_table

    frame = pd.DataFrame({"name": ["a", "b"], "flag": [True, np.bool_(False)],
                          "value": [0.000123456, 0.001], "neg": [-0.0005, 0.0], "n": pd.Series([3, None], dtype=object),
                          "big": [1234.5, float("inf")]}, columns=["name", "flag", "value", "neg", "n", "big"])
    frame["flag"] = frame["flag"].astype(object)
    assert markdown_table(frame).split("\n") == [
        "| name | flag | value | neg | n | big |",
        "|---|---|---|---|---|---|",
        "| a | yes | 0.000123 | -0.0005 | 3 | 1234.5000 |",
        "| b | no | 0.0010 | 0.0000 | - | - |"]
    assert markdown_table(frame[["value"]], digits=2).split("\n")[2:] == ["| 0.000123 |", "| 0.00 |"]
    idx = pd.DataFrame({"x": [1.5]}, index=pd.Index(["r"], name="source"))
    assert markdown_table(idx, index=True) == "| source | x |\n|---|---|\n| r | 1.5000 |"
    assert markdown_table(pd.DataFrame({"x": [1.5]}, index=["r"]), index=True) == "|  | x |\n|---|---|\n| r | 1.5000 |"
    assert markdown_table(pd.DataFrame({"x": [2.0]}, index=["r"])) == "| x |\n|---|\n| 2.0000 |"
    assert records_table([]) == "| - |\n|---|\n| none |"
    assert records_table([{"a": 1, "b": "x"}], columns=["b", "a"]) == "| b | a |\n|---|---|\n| x | 1 |"
    assert records_table([{"a": 0.5}]) == "| a |\n|---|\n| 0.5000 |"


def test_cross_markdown_marks_the_diagonal():
    from shamisa_core.evaluation.report import DIAGONAL_NOTE, cross_markdown

    assert DIAGONAL_NOTE == "diagonal (*): the standard protocol's value on that dataset, not a cross result"
    r = _report_result()
    assert cross_markdown(r).split("\n") == [
        "| source | live | csiq | tid2013 |", "|---|---|---|---|",
        "| live | 0.8000* | 0.1000 | 0.2000 |",
        "| csiq | 0.3000 | -* | - |",
        "| tid2013 | -0.4000 | 0.5000 | 0.4000* |",
        "", DIAGONAL_NOTE]
    assert cross_markdown(r, "plcc", "random_twin").split("\n")[2:4] == [
        "| live | -* | - |", "| csiq | 0.9000 | -* |"]
    assert cross_markdown(r, metric="plcc").split("\n")[2] == "| live | 0.7000* | 0.1500 | 0.2500 |"


def test_failed_images_lists_every_dataset_in_order():
    from shamisa_core.evaluation.report import failed_images

    assert failed_images(_report_result()) == [("live", "a.png", "bad"), ("live", "b.png", "worse"),
                                               ("tid2013", "c.png", "why")]
    assert failed_images({"live": {"features": {"failed": None}}, "csiq": {}}) == []


def test_format_table_of_one_dataset_without_twins():
    from shamisa_core.evaluation.report import format_table

    result = {"live": {"srcc": 0.5, "plcc": 0.25, "alpha": 0.000123, "n_images": 7, "n_missing": 0,
                       "features": {"n_failed": 10, "failed": [[f"f{i}.png", "x"] for i in range(10)]}},
              "fr": {"live": {"srcc": 0.75}}}
    head = "dataset       SRCC    PLCC     alpha  images missing failed"
    assert format_table(result).split("\n") == [
        head, "-" * len(head),
        "live        0.5000  0.2500  0.000123       7       0     10",
        "", "failed images (10; left out of every metric):",
        *[f"  live: f{i}.png: x" for i in range(10)],
        "", "full-reference (|h_ref - h_dist|) SRCC / PLCC",
        "live        0.7500       -"]


def test_format_table_names_the_twins_by_label_and_skips_an_undefined_mean():
    from shamisa_core.evaluation.report import format_table

    result = {"live": {"srcc": None, "plcc": 0.25, "alpha": 3.0, "n_images": 7, "n_missing": 0},
              "csiq": {"srcc": None, "plcc": 0.5, "alpha": 30.0, "n_images": 5, "n_missing": 1},
              "twins": {"init_twin": {"live": {"srcc": 0.25}}},
              "meta": {"twins": {"init_twin": {"label": "init twin (imagenet)"}}}}
    lines = format_table(result).split("\n")
    assert lines[0] == ("dataset       SRCC    PLCC |  init twin (imagenet) SRCC    gain"
                        "     alpha  images missing failed")
    assert lines[2:] == [
        "live             -  0.2500 |                     0.2500       -         3       7       0      -",
        "csiq             -  0.5000 |                          -       -        30       5       1      -"]
    twin_mean = dict(result, live={**result["live"], "srcc": 0.75})
    lines = format_table(twin_mean).split("\n")
    assert lines[-1] == "mean SRCC   0.7500         |                     0.2500  0.5000"
    no_twin_mean = dict(result, live={**result["live"], "srcc": 0.75}, twins={"init_twin": {}})
    assert format_table(no_twin_mean).split("\n")[-1] == (
        "mean SRCC   0.7500         |                          -       -")


# ----------------------------------------------------------------------------------------------
# mlflow_eval: metric names and the evaluation id


def test_evaluation_metrics_names_every_section():
    from shamisa_core.evaluation.mlflow_eval import evaluation_metrics

    result = {
        "live": {"srcc": 0.8, "plcc": NAN}, "csiq": {"srcc": None, "plcc": 0.5},
        "weird set+1": {"srcc": 0.25, "plcc": 0.125},
        "cross": {"live": {"csiq": {"srcc": 0.1, "plcc": None}}, "csiq": {"live": {"srcc": NAN, "plcc": 0.2}}},
        "fr": {"live": {"srcc": 0.9, "plcc": float("inf")}},
        "twins": {"random_twin": {"live": {"srcc": 0.5, "plcc": 0.4}, "csiq": {"srcc": 0.3},
                                  "cross": {"live": {"csiq": {"srcc": 0.05, "plcc": 0.06}}},
                                  "fr": {"live": {"plcc": 0.7}}},
                  "init_twin": {"weird set+1": {"srcc": None, "plcc": 0.0}}},
        "meta": {"x": 1},
    }
    got = evaluation_metrics(result)
    expected = {
        "srcc/live": 0.8, "random_twin_srcc/live": 0.5, "random_twin_plcc/live": 0.4,
        "gain_vs_random_twin/live": 0.8 - 0.5,
        "plcc/csiq": 0.5, "random_twin_srcc/csiq": 0.3,
        "srcc/weird set_1": 0.25, "plcc/weird set_1": 0.125, "init_twin_plcc/weird set_1": 0.0,
        "cross_srcc/live_to_csiq": 0.1, "cross_plcc/csiq_to_live": 0.2, "fr_srcc/live": 0.9,
        "random_twin_cross_srcc/live_to_csiq": 0.05, "random_twin_cross_plcc/live_to_csiq": 0.06,
        "random_twin_fr_plcc/live": 0.7,
        "mean_srcc": (0.8 + 0.25) / 2, "random_twin_mean_srcc": (0.5 + 0.3) / 2,
        "gain_vs_random_twin/mean": (0.8 + 0.25) / 2 - (0.5 + 0.3) / 2,
    }
    assert got == pytest.approx(expected) and set(got) == set(expected)
    assert all(type(v) is float for v in got.values())
    assert evaluation_metrics({"live": {"srcc": None}}) == {}
    assert evaluation_metrics({"live": {"srcc": 0.5}}) == {"srcc/live": 0.5, "mean_srcc": 0.5}


def test_evaluation_id_is_the_hash_of_fingerprint_crop_and_sorted_versions():
    from shamisa_core.evaluation.mlflow_eval import evaluation_id

    result = {"live": {"dataset_version": "v1"}, "csiq": {"dataset_version": "v2"}, "tid2013": {},
              "twins": {}, "meta": {"encoder": {"fingerprint": "abc"}, "crop_size": 224}}
    text = "abc|224|csiq=v2|live=v1|tid2013=None"
    assert evaluation_id(result) == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert evaluation_id({"live": {}}) == hashlib.sha256(b"None|None|live=None").hexdigest()[:16]
    assert evaluation_id({"live": {}, "meta": {"encoder": None}}) == hashlib.sha256(
        b"None|None|live=None").hexdigest()[:16]
