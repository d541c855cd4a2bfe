"""The inputs of the evaluation (METHOD.md §7.1-7.3): benchmark loaders, prepared datasets with
their splits, test-time features, the feature cache and the ``shamisa evaluate`` options.

Each test pins the complete observable behaviour of one function: every column of a loader's
table (expected values built independently from the files the test writes), every key of a
record, the exact boundaries, and the parts of an error message a user needs (the file, the
value, the fix). Tiny real files, real torch modules, no mocks of the code under test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import torch
from PIL import Image
from threadpoolctl import threadpool_limits

from shamisa_core.evaluation.datasets import base
from shamisa_core.evaluation.datasets.base import DatasetError, DatasetInfo

COLUMNS = ["image", "name", "reference", "reference_image", "distortion_type", "level", "score"]


def _img(path: Path, size: tuple[int, int] = (6, 5), colour=(90, 100, 110)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _frame(root: Path, rows: list[tuple], *, split: list[str] | None = None) -> pd.DataFrame:
    """The expected table: rows of (name, reference, reference name, type, level, score)."""
    root = root.resolve()
    table = pd.DataFrame({
        "image": [str(root / r[0]) for r in rows],
        "name": [r[0] for r in rows],
        "reference": [r[1] for r in rows],
        "reference_image": [str(root / r[2]) for r in rows],
        "distortion_type": [r[3] for r in rows],
        "level": np.array([r[4] for r in rows], dtype=np.int64),
        "score": np.array([r[5] for r in rows], dtype=np.float64),
    })
    if split is not None:
        table["official_split"] = split
    return table


def _authentic(root: Path, names: list[str], scores: list[float]) -> pd.DataFrame:
    return _frame(root, [(n, n, n, "authentic", -1, s) for n, s in zip(names, scores, strict=True)])


def _same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_exact=True)


def _msg(exc_info) -> str:
    return str(exc_info.value)


# ==============================================================================================
# datasets.base: the common table


def test_make_table_synthetic_rows_keep_every_field(tmp_path):
    root = tmp_path / "sub" / ".." / "ds"
    got = base.make_table(root, ["d/a.png", "d//b.png"], np.array([1, 2.5]),
                          references=["r1", 7], reference_names=["refs/r1.png", "refs/r7.png"],
                          distortion_types=["blur", 3], levels=[4, 5])
    real = (tmp_path / "ds").resolve()
    expected = pd.DataFrame({
        "image": [str(real / "d/a.png"), str(real / "d/b.png")],
        "name": ["d/a.png", "d/b.png"],
        "reference": ["r1", "7"],
        "reference_image": [str(real / "refs/r1.png"), str(real / "refs/r7.png")],
        "distortion_type": ["blur", "3"],
        "level": np.array([4, 5], dtype=np.int64),
        "score": np.array([1.0, 2.5]),
    })
    _same(got, expected)


def test_make_table_authentic_rows_are_their_own_reference(tmp_path):
    got = base.make_table(tmp_path, ["x.jpg", "y/z.jpg"], [3, 4])
    _same(got, _authentic(tmp_path, ["x.jpg", "y/z.jpg"], [3.0, 4.0]))
    assert got["level"].dtype == np.int64 and got["score"].dtype == np.float64


def test_make_table_columns_keep_their_types_for_any_input(tmp_path):
    empty = base.make_table(tmp_path, [], [])
    assert list(empty.columns) == COLUMNS and len(empty) == 0
    assert (empty["level"].dtype, empty["score"].dtype) == (np.int64, np.float64)
    small = base.make_table(tmp_path, ["a"], np.array([3], dtype=np.int32),
                            references=["r"], reference_names=["r.png"],
                            distortion_types=["t"], levels=np.array([2], dtype=np.int32))
    assert (small["level"].dtype, small["score"].dtype) == (np.int64, np.float64)


def test_make_table_resolves_case_only_when_asked(tmp_path):
    _img(tmp_path / "Dist" / "A.PNG")
    _img(tmp_path / "REF.bmp")
    kw = dict(references=["r"], reference_names=["ref.bmp"], distortion_types=["t"], levels=[1])
    exact = base.make_table(tmp_path, ["dist/a.png"], [1.0], **kw)
    assert exact["image"].tolist() == [str(tmp_path.resolve() / "dist/a.png")]
    assert exact["reference_image"].tolist() == [str(tmp_path.resolve() / "ref.bmp")]
    found = base.make_table(tmp_path, ["dist/a.png"], [1.0], resolve_case=True, **kw)
    assert found["image"].tolist() == [str(tmp_path.resolve() / "Dist" / "A.PNG")]
    assert found["reference_image"].tolist() == [str(tmp_path.resolve() / "REF.bmp")]
    assert found["name"].tolist() == ["dist/a.png"]  # the name stays as listed


@pytest.mark.parametrize("refs,ref_names", [
    (["r1", "r2"], None), (["r1"], ["a", "b"]), (["r1", "r2"], ["a"]),
])
def test_make_table_needs_one_reference_per_image(tmp_path, refs, ref_names):
    with pytest.raises(ValueError) as info:
        base.make_table(tmp_path, ["a", "b"], [1.0, 2.0], references=refs,
                        reference_names=ref_names)
    assert _msg(info) == "references and reference_names must both have one entry per image"


def test_check_table_messages_name_the_source():
    good = base.make_table(Path("/r"), ["a", "b"], [1.0, 2.0])
    base.check_table(good, "src")  # accepted
    with pytest.raises(DatasetError) as info:
        base.check_table(good.drop(columns=["level", "score"]), "src")
    assert _msg(info) == "src: table lacks column(s) ['level', 'score']"
    with pytest.raises(DatasetError) as info:
        base.check_table(good.iloc[:0], "src")
    assert _msg(info) == "src: annotation lists no images"
    bad = good.copy()
    bad.loc[1, "score"] = np.inf
    with pytest.raises(DatasetError) as info:
        base.check_table(bad, "src")
    assert _msg(info) == "src: non-finite scores"
    as_objects = good.assign(score=pd.Series([1.0, 2], dtype=object))  # a loader's raw column
    base.check_table(as_objects, "src")
    with pytest.raises(DatasetError, match="^src: non-finite scores$"):
        base.check_table(good.assign(score=pd.Series([1.0, np.nan], dtype=object)), "src")
    twice = pd.concat([good, good.iloc[[1, 0]]], ignore_index=True)
    with pytest.raises(DatasetError) as info:
        base.check_table(twice, "src")
    assert _msg(info) == "src: image(s) listed twice, e.g. 'b'"


def _version(name: str, rows: list[tuple]) -> str:
    digest = hashlib.sha256(f"{name}\n".encode())
    for row in rows:
        digest.update(("\t".join(repr(v) if isinstance(v, float) else str(v) for v in row)
                       + "\n").encode())
    return digest.hexdigest()[:16]


def test_table_version_hashes_name_and_annotation_rows():
    info = DatasetInfo("dsx", "synthetic", (0.0, 1.0), False, "MOS")
    table = base.make_table(Path("/somewhere"), ["a.png", "b.png"], [0.1, 2.0],
                            references=["r", "s"], reference_names=["r.png", "s.png"],
                            distortion_types=["blur", "noise"], levels=[1, 2])
    expected = _version("dsx", [("a.png", "r", "blur", 1, 0.1), ("b.png", "s", "noise", 2, 2.0)])
    assert base.table_version(info, table) == expected
    # the root does not matter, the name of the dataset does
    moved = table.assign(image="/elsewhere/x", reference_image="/elsewhere/y")
    assert base.table_version(info, moved) == expected
    other = DatasetInfo("dsy", "synthetic", (0.0, 1.0), False, "MOS")
    assert base.table_version(other, table) != expected
    split = table.assign(official_split=["train", "test"])
    assert base.table_version(info, split) == _version(
        "dsx", [("a.png", "r", "blur", 1, 0.1, "train"), ("b.png", "s", "noise", 2, 2.0, "test")])


def test_finalise_keeps_present_rows_and_lists_missing(tmp_path):
    info = DatasetInfo("fin", "authentic", (0.0, 10.0), False, "MOS")
    for n in ("a.png", "c.png"):
        _img(tmp_path / n)
    table = base.make_table(tmp_path, ["a.png", "b.png", "c.png"], [1.0, 2.0, 3.0])
    root = tmp_path / "x" / ".."
    ds = base.finalise(info, root, table)
    _same(ds.table, _authentic(tmp_path, ["a.png", "c.png"], [1.0, 3.0]))
    assert list(ds.table.index) == [0, 1]
    assert ds.missing == ("b.png",) and ds.n_missing == 1 and ds.n_images == 2
    assert ds.table.attrs == {"n_missing": 1, "dataset": "fin"}
    assert ds.root == tmp_path.resolve() and ds.info is info
    assert ds.version == _version("fin", [("a.png", "a.png", "authentic", -1, 1.0),
                                          ("c.png", "c.png", "authentic", -1, 3.0)])
    with pytest.raises(DatasetError) as err:
        base.finalise(info, tmp_path, base.make_table(tmp_path, ["q.png", "r.png"], [1.0, 2.0]))
    assert _msg(err) == (f"fin at {tmp_path}: none of the 2 listed images exists "
                         f"(first expected: {tmp_path.resolve() / 'q.png'})")
    with pytest.raises(DatasetError, match=f"^fin at {re.escape(str(tmp_path))}: annotation"):
        base.finalise(info, tmp_path, table.iloc[:0])


def test_higher_is_better_mirrors_dmos_inside_the_range():
    dmos = DatasetInfo("d", "synthetic", (2.0, 10.0), True, "DMOS")
    out = base.to_higher_is_better([2, 3.5, 10], dmos)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [10.0, 8.5, 2.0])
    mos = DatasetInfo("m", "synthetic", (2.0, 10.0), False, "MOS")
    np.testing.assert_array_equal(base.to_higher_is_better([3, 4], mos), [3.0, 4.0])
    assert base.to_higher_is_better([3, 4], mos).dtype == np.float64


def test_dataset_info_defaults_and_kind():
    info = DatasetInfo("n", "synthetic", (0.0, 1.0), True, "DMOS")
    assert (info.layout, info.resize_short_side, info.is_synthetic) == ("", None, True)
    assert not DatasetInfo("n", "authentic", (0.0, 1.0), True, "DMOS").is_synthetic


# ----------------------------------------------------------------------------------------------
# datasets.base: files


def test_require_file_returns_the_first_present_candidate(tmp_path):
    (tmp_path / "b.csv").write_text("x")
    assert base.require_file(tmp_path, ["a.csv", "b.csv"], "e") == tmp_path / "b.csv"
    (tmp_path / "a.csv").write_text("x")
    assert base.require_file(tmp_path, ["a.csv", "b.csv"], "e") == tmp_path / "a.csv"
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DatasetError) as info:
        base.require_file(tmp_path, ["dir.csv", "z.csv"], "a CSV with columns q")
    assert _msg(info) == (f"missing annotation file {tmp_path / 'dir.csv'} or "
                          f"{tmp_path / 'z.csv'}: expected a CSV with columns q")


def test_require_columns_names_file_missing_and_found(tmp_path):
    frame = pd.DataFrame({"a": [1], 2: [3]})
    base.require_columns(frame, ["a"], tmp_path / "f.csv")
    with pytest.raises(DatasetError) as info:
        base.require_columns(frame, ["a", "b", "c"], tmp_path / "f.csv")
    assert _msg(info) == (f"malformed annotation file {tmp_path / 'f.csv'}: missing column(s) "
                          "['b', 'c']; found ['a', '2']")


def test_read_csv_checked_strips_headers_and_passes_options(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(" a ;b\n1;x\n2;y\n")
    frame = base.read_csv_checked(path, ["a", "b"], sep=";")
    assert list(frame.columns) == ["a", "b"] and frame["a"].tolist() == [1, 2]
    path.write_text("a,b\n")
    with pytest.raises(DatasetError) as info:
        base.read_csv_checked(path, ["a"])
    assert _msg(info) == f"malformed annotation file {path}: no rows"
    path.write_text("")
    with pytest.raises(DatasetError, match="^" + re.escape(f"malformed annotation file {path}: ")):
        base.read_csv_checked(path, [])
    path.write_text('a,b\n"1,2\n3,4,5,6\n')
    with pytest.raises(DatasetError, match="^" + re.escape(f"malformed annotation file {path}: ")):
        base.read_csv_checked(path, [])
    path.write_bytes(b"a,b\n\xff\xfe,1\n")
    with pytest.raises(DatasetError, match="^" + re.escape(f"malformed annotation file {path}: ")):
        base.read_csv_checked(path, [])
    path.write_text("a\n1\n")
    with pytest.raises(DatasetError) as info:
        base.read_csv_checked(path, ["a", "b"])
    assert _msg(info) == (f"malformed annotation file {path}: missing column(s) ['b']; "
                          "found ['a']")


def test_parse_scores_names_the_first_bad_row_and_counts_them(tmp_path):
    path = tmp_path / "f.csv"
    got = base.parse_scores(["1", 2, 3.5], path, "mos")
    assert got.dtype == np.float64 and got.tolist() == [1.0, 2.0, 3.5]
    with pytest.raises(DatasetError) as info:
        base.parse_scores([1.0, "n/a", "inf", 4], path, "mos")
    assert _msg(info) == (f"malformed annotation file {path}: column 'mos' row 1 has non-numeric "
                          "score 'n/a' (2 bad row(s))")
    with pytest.raises(DatasetError, match=r"row 0 has non-numeric score nan \(1 bad row\(s\)\)"):
        base.parse_scores([float("nan"), 1.0], path, "mos")


def test_strip_first_component():
    assert base.strip_first_component("LIVE/jp2k/img2.bmp") == "jp2k/img2.bmp"
    assert base.strip_first_component(" CSIQ\\dst\\a.png ") == "dst/a.png"
    assert base.strip_first_component("a/b") == "b"
    with pytest.raises(DatasetError) as info:
        base.strip_first_component("img.bmp")
    assert _msg(info) == "path 'img.bmp' has no dataset folder to strip"


def test_locate_finds_case_variants_and_keeps_missing_visible(tmp_path):
    _img(tmp_path / "Ref" / "I01.BMP")
    assert base.locate(tmp_path, "Ref/I01.BMP") == tmp_path / "Ref" / "I01.BMP"
    assert base.locate(tmp_path, "ref/i01.bmp") == tmp_path / "Ref" / "I01.BMP"
    assert base.locate(tmp_path, "ref/i02.bmp") == tmp_path / "ref/i02.bmp"
    assert base.locate(tmp_path, "nope/i01.bmp") == tmp_path / "nope/i01.bmp"
    _img(tmp_path / "two" / "A.png")
    _img(tmp_path / "two" / "a.PNG")
    assert base.locate(tmp_path, "two/A.Png") == tmp_path / "two/A.Png"  # ambiguous: exact
    (tmp_path / "file").write_text("x")
    assert base.locate(tmp_path, "FILE/x") == tmp_path / "FILE/x"  # a file is no folder


def test_read_collection_list_strips_the_dataset_folder(tmp_path):
    path = tmp_path / "L.txt"
    path.write_text("dis_img_path,dis_type,ref_img_path,score\n"
                    "LIVE/jp2k/img1.bmp,jp2k,LIVE/refimgs/a.bmp,12\n")
    frame = base.read_collection_list(path)
    assert frame["dis_rel"].tolist() == ["jp2k/img1.bmp"]
    assert frame["ref_rel"].tolist() == ["refimgs/a.bmp"]
    assert frame["score"].dtype == np.float64 and frame["score"].tolist() == [12.0]
    path.write_text("dis_img_path,ref_img_path,score\nimg1.bmp,LIVE/refimgs/a.bmp,12\n")
    with pytest.raises(DatasetError) as info:
        base.read_collection_list(path)
    assert _msg(info) == (f"malformed annotation file {path}: path 'img1.bmp' has no dataset "
                          "folder to strip")
    path.write_text("dis_img_path,ref_img_path,score\nL/img1.bmp,a.bmp,12\n")
    with pytest.raises(DatasetError, match="path 'a.bmp' has no dataset folder"):
        base.read_collection_list(path)
    path.write_text("dis_img_path,ref_img_path,score\nL/img1.bmp,L/a.bmp,x\n")
    with pytest.raises(DatasetError) as info:
        base.read_collection_list(path)
    assert _msg(info) == (f"malformed annotation file {path}: column 'score' row 0 has "
                          "non-numeric score 'x' (1 bad row(s))")
    path.write_text("dis_img_path,score\nL/img1.bmp,1\n")
    with pytest.raises(DatasetError, match=re.escape("missing column(s) ['ref_img_path']")):
        base.read_collection_list(path)


def test_read_mat_variable_and_cells(tmp_path):
    path = tmp_path / "v.mat"
    cells = np.empty((2, 1), dtype=object)
    cells[0, 0], cells[1, 0] = " a.bmp ", "b.bmp"
    scipy.io.savemat(path, {"v": np.array([[1.0, 2.0], [3.0, 4.0]]), "c": cells})
    assert base.read_mat_variable(path, "v").tolist() == [1.0, 2.0, 3.0, 4.0]
    assert base.read_mat_variable(path, "v").ndim == 1
    got = [base.mat_cell_string(c) for c in base.read_mat_variable(path, "c")]
    assert got == ["a.bmp", "b.bmp"]
    assert base.mat_cell_string(np.array([])) == ""
    assert base.mat_cell_string(np.array([[np.array([" z "])]], dtype=object)) == "z"
    assert base.mat_cell_string(" plain ") == "plain"
    with pytest.raises(DatasetError) as info:
        base.read_mat_variable(path, "w")
    assert _msg(info) == f"malformed annotation file {path}: no variable 'w' (found ['c', 'v'])"


# ==============================================================================================
# The eight loaders: every column of the table, built from the files the test writes


def test_registry_infos_follow_the_benchmark_descriptions():
    from shamisa_core.evaluation import datasets as ds

    got = {n: (ld.info.kind, ld.info.score_range, ld.info.lower_is_better, ld.info.label,
               ld.info.resize_short_side) for n, ld in ds.LOADERS.items()}
    assert got == {
        "live": ("synthetic", (1.0, 100.0), True, "DMOS", None),
        "csiq": ("synthetic", (0.0, 1.0), True, "DMOS", None),
        "tid2013": ("synthetic", (0.0, 9.0), False, "MOS", None),
        "kadid10k": ("synthetic", (1.0, 5.0), False, "MOS", None),
        "koniq10k": ("authentic", (1.0, 5.0), False, "MOS", None),
        "clive": ("authentic", (0.0, 100.0), False, "MOS", None),
        "spaq": ("authentic", (0.0, 100.0), False, "MOS", 512),
        "flive": ("authentic", (1.0, 100.0), False, "MOS", None),
    }
    assert ds.SYNTHETIC == ("live", "csiq", "tid2013", "kadid10k")
    assert ds.AUTHENTIC == ("koniq10k", "clive", "spaq", "flive")
    for name, ld in ds.LOADERS.items():
        assert ds.dataset_info(name) is ld.info and ld.info.name == name
    with pytest.raises(KeyError) as info:
        ds.dataset_info("imagenet")
    assert info.value.args[0] == ("unknown dataset 'imagenet'; known: ['clive', 'csiq', "
                                  "'flive', 'kadid10k', 'koniq10k', 'live', 'spaq', 'tid2013']")


def test_load_dataset_errors_name_the_folder_and_layout(tmp_path):
    from shamisa_core.evaluation import datasets as ds

    with pytest.raises(KeyError) as info:
        ds.load_dataset("imagenet", tmp_path)
    assert "unknown dataset 'imagenet'; known: ['clive'," in info.value.args[0]
    for name, ld in ds.LOADERS.items():
        with pytest.raises(DatasetError) as err:
            ds.load_dataset(name, tmp_path / "nowhere")
        assert _msg(err) == (f"dataset folder {tmp_path / 'nowhere'} does not exist: "
                             f"expected {ld.info.layout}")
        assert ld.info.layout  # every benchmark describes its layout


def test_load_dataset_expands_the_user_folder(tmp_path, monkeypatch):
    from shamisa_core.evaluation import datasets as ds

    monkeypatch.setenv("HOME", str(tmp_path))
    data = tmp_path / "kon"
    data.mkdir()
    pd.DataFrame({"image_name": ["a.jpg"], "MOS": [3.0]}).to_csv(
        data / "koniq10k_scores_and_distributions.csv", index=False)
    _img(data / "1024x768" / "a.jpg")
    got = ds.load_dataset("koniq10k", "~/kon")
    assert got.root == data.resolve() and got.n_images == 1
    _same(got.table, _authentic(data, ["1024x768/a.jpg"], [3.0]))


def test_live_collection_list_with_and_without_types(tmp_path):
    from shamisa_core.evaluation.datasets import live

    (tmp_path / "LIVE.txt").write_text(
        "dis_img_path,dis_type,ref_img_path,score\n"
        "LIVE/jp2k/img3.bmp,JP2K,LIVE/refimgs/bikes.bmp,40.5\n"
        "LIVE/wn/img1.bmp,WN,LIVE/refimgs/house.bmp,12\n")
    _same(live.read(tmp_path), _frame(tmp_path, [
        ("jp2k/img3.bmp", "bikes", "refimgs/bikes.bmp", "JP2K", -1, 40.5),
        ("wn/img1.bmp", "house", "refimgs/house.bmp", "WN", -1, 12.0)]))
    (tmp_path / "LIVE.txt").write_text(
        "dis_img_path,ref_img_path,score\nLIVE/jp2k/img3.bmp,LIVE/refimgs/bikes.bmp,40.5\n")
    _same(live.read(tmp_path), _frame(tmp_path, [
        ("jp2k/img3.bmp", "bikes", "refimgs/bikes.bmp", "jp2k", -1, 40.5)]))


def _live_official(root: Path, *, n: int | None = None, keep: dict[int, tuple[float, str]]):
    from shamisa_core.evaluation.datasets import live

    n = live.N_OFFICIAL if n is None else n
    dmos = np.full((1, n), 99.0)
    orgs = np.ones((1, n))
    refs = np.empty((1, n), dtype=object)
    refs[:] = "orig.bmp"
    for i, (score, ref) in keep.items():
        dmos[0, i], orgs[0, i], refs[0, i] = score, 0, ref
    scipy.io.savemat(root / "dmos.mat", {"dmos": dmos, "orgs": orgs})
    scipy.io.savemat(root / "refnames_all.mat", {"refnames_all": refs})


def test_live_official_mat_files_skip_the_originals(tmp_path):
    from shamisa_core.evaluation.datasets import live

    assert live.N_OFFICIAL == 982
    names = live.official_names()
    assert len(names) == 982 and names[0] == ("jp2k", "jp2k/img1.bmp")
    assert names[226] == ("jp2k", "jp2k/img227.bmp") and names[227] == ("jpeg", "jpeg/img1.bmp")
    assert names[-1] == ("fastfading", "fastfading/img174.bmp")
    # entry 0 = jp2k/img1, 227 = jpeg/img1, 981 = fastfading/img174; the rest are originals
    _live_official(tmp_path, keep={0: (30.5, "bikes.bmp"), 227: (50.0, "house.bmp"),
                                   981: (70.25, "caps.bmp")})
    _same(live.read(tmp_path), _frame(tmp_path, [
        ("jp2k/img1.bmp", "bikes", "refimgs/bikes.bmp", "jp2k", -1, 30.5),
        ("jpeg/img1.bmp", "house", "refimgs/house.bmp", "jpeg", -1, 50.0),
        ("fastfading/img174.bmp", "caps", "refimgs/caps.bmp", "fastfading", -1, 70.25)]))


def test_live_official_errors_name_file_variable_and_count(tmp_path):
    from shamisa_core.evaluation.datasets import live

    _live_official(tmp_path, n=981, keep={})
    with pytest.raises(DatasetError) as info:
        live.read(tmp_path)
    assert _msg(info) == (f"malformed annotation file {tmp_path / 'dmos.mat'}: 'dmos' has 981 "
                          "entries, expected 982 (jp2k 227, jpeg 233, wn 174, gblur 174, "
                          "fastfading 174)")
    refs = np.empty((1, 5), dtype=object)
    refs[:] = "a.bmp"
    scipy.io.savemat(tmp_path / "dmos.mat", {"dmos": np.zeros((1, 982)), "orgs": np.zeros((1, 982))})
    scipy.io.savemat(tmp_path / "refnames_all.mat", {"refnames_all": refs})
    with pytest.raises(DatasetError) as info:
        live.read(tmp_path)
    assert _msg(info).startswith(f"malformed annotation file {tmp_path / 'refnames_all.mat'}: "
                                 "'refnames_all' has 5 entries, expected 982")
    scipy.io.savemat(tmp_path / "dmos.mat", {"dmos": np.zeros((1, 982)), "orgs": np.zeros((1, 7))})
    with pytest.raises(DatasetError, match="'orgs' has 7 entries"):
        live.read(tmp_path)
    text = np.empty((1, 982), dtype=object)
    text[:] = "x"
    scipy.io.savemat(tmp_path / "dmos.mat", {"dmos": text, "orgs": np.zeros((1, 982))})
    refs = np.empty((1, 982), dtype=object)
    refs[:] = "a.bmp"
    scipy.io.savemat(tmp_path / "refnames_all.mat", {"refnames_all": refs})
    with pytest.raises(DatasetError) as info:
        live.read(tmp_path)
    assert _msg(info) == (f"malformed annotation file {tmp_path / 'dmos.mat'}: "
                          "non-numeric 'dmos'/'orgs'")


def test_live_half_of_the_official_files_names_the_other(tmp_path):
    from shamisa_core.evaluation.datasets import live

    scipy.io.savemat(tmp_path / "dmos.mat", {"dmos": np.zeros((1, 982))})
    with pytest.raises(DatasetError) as info:
        live.read(tmp_path)
    assert _msg(info) == (f"missing annotation file {tmp_path / 'refnames_all.mat'}: expected "
                          "MATLAB file with 'refnames_all' (982 names)")
    (tmp_path / "dmos.mat").unlink()
    scipy.io.savemat(tmp_path / "refnames_all.mat", {"refnames_all": np.zeros((1, 982))})
    with pytest.raises(DatasetError) as info:
        live.read(tmp_path)
    assert _msg(info) == (f"missing annotation file {tmp_path / 'dmos.mat'}: expected "
                          "MATLAB file with 'dmos' and 'orgs' (982)")
    (tmp_path / "refnames_all.mat").unlink()
    with pytest.raises(DatasetError) as info:
        live.read(tmp_path)
    assert _msg(info) == (
        f"missing annotation file {tmp_path / 'LIVE.txt'} (or {tmp_path / 'dmos.mat'} + "
        f"{tmp_path / 'refnames_all.mat'}): expected the LIVE.txt collection list "
        "(dis_img_path, dis_type, ref_img_path, score) or the official LIVE Release 2 files")


def test_csiq_reads_levels_from_names_and_types_from_the_column(tmp_path):
    from shamisa_core.evaluation.datasets import csiq

    assert csiq.parse_name("dst/x/1600.AWGN.3.png") == ("1600", "AWGN", 3)
    assert csiq.parse_name("a.b.jpeg.2.png") == ("a.b", "jpeg", 2)
    for bad in ("AWGN.3.png", "1600.AWGN.x.png"):
        with pytest.raises(ValueError) as info:
            csiq.parse_name(bad)
        assert _msg(info) == f"CSIQ image name {bad!r} is not <ref>.<TYPE>.<level>.<ext>"
    _img(tmp_path / "DST_IMGS" / "awgn" / "1600.AWGN.2.png")
    (tmp_path / "CSIQ.txt").write_text(
        "dis_img_path,dis_type,ref_img_path,score\n"
        "CSIQ/dst_imgs/awgn/1600.AWGN.2.png,noise,CSIQ/src_imgs/1600.png,0.25\n")
    real = tmp_path.resolve()
    expected = _frame(tmp_path, [("dst_imgs/awgn/1600.AWGN.2.png", "1600", "src_imgs/1600.png",
                                  "noise", 2, 0.25)])
    expected["image"] = [str(real / "DST_IMGS" / "awgn" / "1600.AWGN.2.png")]  # found by case
    _same(csiq.read(tmp_path), expected)
    (tmp_path / "CSIQ.txt").write_text(
        "dis_img_path,ref_img_path,score\nCSIQ/dst/1600.BLUR.4.png,CSIQ/src/1600.png,0.5\n")
    _same(csiq.read(tmp_path), _frame(tmp_path, [
        ("dst/1600.BLUR.4.png", "1600", "src/1600.png", "BLUR", 4, 0.5)]))
    (tmp_path / "CSIQ.txt").write_text(
        "dis_img_path,ref_img_path,score\nCSIQ/dst/1600.png,CSIQ/src/1600.png,0.5\n")
    with pytest.raises(DatasetError) as info:
        csiq.read(tmp_path)
    assert _msg(info) == (f"malformed annotation file {tmp_path / 'CSIQ.txt'}: CSIQ image name "
                          "'dst/1600.png' is not <ref>.<TYPE>.<level>.<ext>")
    (tmp_path / "CSIQ.txt").unlink()
    with pytest.raises(DatasetError) as info:
        csiq.read(tmp_path)
    assert _msg(info) == (f"missing annotation file {tmp_path / 'CSIQ.txt'}: expected the CSIQ "
                          "collection list (CSV: dis_img_path, dis_type, ref_img_path, score)")


def test_tid2013_reads_every_field_from_the_names(tmp_path):
    from shamisa_core.evaluation.datasets import tid2013

    assert tid2013.parse_name("I07_24_5.BMP") == (7, 24, 5)
    with pytest.raises(ValueError) as info:
        tid2013.parse_name("i01_25_1.bmp")
    assert _msg(info) == "TID2013 image name 'i01_25_1.bmp' has unknown distortion type 25"
    with pytest.raises(ValueError) as info:
        tid2013.parse_name("x/i01_01_1.bmp")
    assert _msg(info) == "TID2013 image name 'x/i01_01_1.bmp' is not i<nn>_<tt>_<l>.bmp"
    _img(tmp_path / "reference_images" / "i03.bmp")
    (tmp_path / "mos_with_names.txt").write_text("\n5.5 i03_01_2.bmp\n  \n1e0 I12_24_5.BMP\n")
    real = tmp_path.resolve()
    expected = _frame(tmp_path, [
        ("distorted_images/i03_01_2.bmp", "I03", "reference_images/I03.BMP",
         "additive_gaussian_noise", 2, 5.5),
        ("distorted_images/I12_24_5.BMP", "I12", "reference_images/I12.BMP",
         "sparse_sampling_and_reconstruction", 5, 1.0)])
    expected.loc[0, "reference_image"] = str(real / "reference_images" / "i03.bmp")
    _same(tid2013.read(tmp_path), expected)
    (tmp_path / "mos_with_names.txt").write_text("5.5 i03_30_2.bmp\n")
    with pytest.raises(DatasetError) as info:
        tid2013.read(tmp_path)
    assert _msg(info) == (f"malformed annotation file {tmp_path / 'mos_with_names.txt'}: TID2013 "
                          "image name 'i03_30_2.bmp' has unknown distortion type 30")


@pytest.mark.parametrize("text,message", [
    ("5.1 i01_01_1.bmp\n5.2 i01_01_2.bmp extra\n",
     "line 2 has 3 field(s), expected '<mos> <image name>'"),
    ("5.1\n", "line 1 has 1 field(s), expected '<mos> <image name>'"),
    ("\nabc i01_01_1.bmp\n", "line 2: non-numeric MOS 'abc'"),
    ("inf i01_01_1.bmp\n", "line 1: MOS inf"),
    ("nan i01_01_1.bmp\n", "line 1: MOS nan"),
    ("\n \n", "no rows"),
])
def test_tid2013_bad_lines_name_file_and_line(tmp_path, text, message):
    from shamisa_core.evaluation.datasets import tid2013

    path = tmp_path / "mos_with_names.txt"
    path.write_text(text)
    with pytest.raises(DatasetError) as info:
        tid2013.read_mos_with_names(path)
    assert _msg(info) == f"malformed annotation file {path}: {message}"


def test_tid2013_reads_scores_and_names_in_file_order(tmp_path):
    from shamisa_core.evaluation.datasets import tid2013

    path = tmp_path / "m.txt"
    path.write_bytes(b"2.5 i01_01_1.bmp\n\n3 i02_02_2.bmp\n4 caf\xe9.bmp\n")
    scores, names = tid2013.read_mos_with_names(path)
    assert scores.dtype == np.float64 and scores.tolist() == [2.5, 3.0, 4.0]
    assert names == ["i01_01_1.bmp", "i02_02_2.bmp", "caf\ufffd.bmp"]  # bytes that are no UTF-8
    with pytest.raises(DatasetError) as info:
        tid2013.read(tmp_path)
    assert _msg(info) == (f"missing annotation file {tmp_path / 'mos_with_names.txt'}: expected "
                          "lines '<mos> <i<nn>_<tt>_<l>.bmp>'")


def test_kadid10k_numbered_and_named_types(tmp_path):
    from shamisa_core.evaluation.datasets import kadid10k

    assert kadid10k.parse_name("images/I81_25_05.png") == (81, 25, 5)
    assert kadid10k.parse_name("i01_40_1.PNG", known_types=False) == (1, 40, 1)
    with pytest.raises(ValueError) as info:
        kadid10k.parse_name("I01_26_01.png")
    assert _msg(info) == "KADID-10k image name 'I01_26_01.png' has unknown distortion type 26"
    with pytest.raises(ValueError) as info:
        kadid10k.parse_name("I01_01_01.bmp", known_types=False)
    assert _msg(info) == "KADID-10k image name 'I01_01_01.bmp' is not I<nn>_<tt>_<ll>.png"
    (tmp_path / "dmos.csv").write_text("dist_img,ref_img,dmos,var\n"
                                       " I02_25_03.png , I02.png ,4.5,0.1\n"
                                       "I01_01_01.png,I01.png,1,0.2\n")
    _same(kadid10k.read(tmp_path), _frame(tmp_path, [
        ("images/I02_25_03.png", "I02", "images/I02.png", "contrast_change", 3, 4.5),
        ("images/I01_01_01.png", "I01", "images/I01.png", "gaussian_blur", 1, 1.0)]))
    (tmp_path / "dmos.csv").write_text("dist_img,ref_img,dmos,type\n"
                                       "I02_40_03.png,I02.png,4.5,my_type\n")
    _same(kadid10k.read(tmp_path), _frame(tmp_path, [
        ("images/I02_40_03.png", "I02", "images/I02.png", "my_type", 3, 4.5)]))
    (tmp_path / "dmos.csv").write_text("dist_img,ref_img,dmos\nI02_40_03.png,I02.png,4.5\n")
    with pytest.raises(DatasetError) as info:
        kadid10k.read(tmp_path)
    assert _msg(info) == (f"malformed annotation file {tmp_path / 'dmos.csv'}: KADID-10k image "
                          "name 'I02_40_03.png' has unknown distortion type 40")
    (tmp_path / "dmos.csv").write_text("dist_img,ref_img,dmos\nI02_01_03.png,I02.png,x\n")
    with pytest.raises(DatasetError) as info:
        kadid10k.read(tmp_path)
    assert _msg(info) == (f"malformed annotation file {tmp_path / 'dmos.csv'}: column 'dmos' "
                          "row 0 has non-numeric score 'x' (1 bad row(s))")
    (tmp_path / "dmos.csv").unlink()
    with pytest.raises(DatasetError) as info:
        kadid10k.read(tmp_path)
    assert _msg(info) == (f"missing annotation file {tmp_path / 'dmos.csv'}: expected CSV with "
                          "columns dist_img, ref_img, dmos")


def test_koniq10k_table(tmp_path):
    from shamisa_core.evaluation.datasets import koniq10k

    (tmp_path / "koniq10k_scores_and_distributions.csv").write_text(
        "image_name,c1,MOS\n a.jpg ,1,3.25\nb.jpg,2,4\n")
    _same(koniq10k.read(tmp_path), _authentic(tmp_path, ["1024x768/a.jpg", "1024x768/b.jpg"],
                                               [3.25, 4.0]))
    scores_file = tmp_path / "koniq10k_scores_and_distributions.csv"
    scores_file.write_text("image_name,MOS\na.jpg,?\n")
    with pytest.raises(DatasetError) as info:
        koniq10k.read(tmp_path)
    assert _msg(info) == (f"malformed annotation file {scores_file}: column 'MOS' row 0 has "
                          "non-numeric score '?' (1 bad row(s))")
    (tmp_path / "koniq10k_scores_and_distributions.csv").write_text("image_name,mos\na.jpg,1\n")
    with pytest.raises(DatasetError, match=re.escape("missing column(s) ['MOS']")):
        koniq10k.read(tmp_path)
    scores_file.unlink()
    with pytest.raises(DatasetError) as info:
        koniq10k.read(tmp_path)
    assert _msg(info) == (f"missing annotation file {scores_file}: expected CSV with columns "
                          "image_name and MOS")


def _clive_files(root: Path, names: list[str], mos) -> None:
    cells = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        cells[i, 0] = n
    (root / "Data").mkdir(exist_ok=True)
    scipy.io.savemat(root / "Data/AllImages_release.mat", {"AllImages_release": cells})
    scipy.io.savemat(root / "Data/AllMOS_release.mat", {"AllMOS_release": np.asarray(mos)[None]})


def test_clive_table_drops_the_training_images(tmp_path):
    from shamisa_core.evaluation.datasets import clive

    assert clive.is_training_image("T12.BMP") and clive.is_training_image("t1.bmp")
    assert not clive.is_training_image("t1.bmp.jpg") and not clive.is_training_image("at1.bmp")
    assert not clive.is_training_image("t.bmp")
    _clive_files(tmp_path, ["t1.bmp", "10.bmp", "T7.BMP", "tx.bmp"], [np.nan, 55.5, 1.0, 60.0])
    _same(clive.read(tmp_path), _authentic(tmp_path, ["Images/10.bmp", "Images/tx.bmp"],
                                            [55.5, 60.0]))
    _clive_files(tmp_path, ["10.bmp", "11.bmp"], [1.0, np.inf])
    with pytest.raises(DatasetError) as info:
        clive.read(tmp_path)
    assert _msg(info) == (f"malformed annotation file {tmp_path / 'Data/AllMOS_release.mat'}: "
                          "non-finite MOS")
    _clive_files(tmp_path, ["10.bmp", "11.bmp"], [1.0, 2.0, 3.0])
    with pytest.raises(DatasetError) as info:
        clive.read(tmp_path)
    assert _msg(info) == (
        f"malformed annotation files {tmp_path / 'Data/AllMOS_release.mat'} and "
        f"{tmp_path / 'Data/AllImages_release.mat'}: 3 MOS values but 2 image names")
    text = np.empty((1, 2), dtype=object)
    text[:] = "x"
    scipy.io.savemat(tmp_path / "Data/AllMOS_release.mat", {"AllMOS_release": text})
    with pytest.raises(DatasetError) as info:
        clive.read(tmp_path)
    assert _msg(info) == (f"malformed annotation file {tmp_path / 'Data/AllMOS_release.mat'}: "
                          "non-numeric MOS")
    scipy.io.savemat(tmp_path / "Data/AllMOS_release.mat", {"other": np.zeros((1, 2))})
    with pytest.raises(DatasetError, match="no variable 'AllMOS_release'"):
        clive.read(tmp_path)
    (tmp_path / "Data/AllImages_release.mat").unlink()
    with pytest.raises(DatasetError) as info:
        clive.read(tmp_path)
    assert _msg(info) == (f"missing annotation file {tmp_path / 'Data/AllImages_release.mat'}: "
                          "expected MATLAB file with variable 'AllImages_release'")
    (tmp_path / "Data/AllMOS_release.mat").unlink()
    with pytest.raises(DatasetError) as info:
        clive.read(tmp_path)
    assert _msg(info) == (f"missing annotation file {tmp_path / 'Data/AllMOS_release.mat'}: "
                          "expected MATLAB file with variable 'AllMOS_release'")


def test_spaq_table_folders_and_workbook_errors(tmp_path):
    from shamisa_core.evaluation.datasets import spaq

    book = tmp_path / "MOS and Image attribute scores.xlsx"
    pd.DataFrame({" Image name ": [" 1.jpg", None, "2.jpg"], "MOS": [40.5, None, 60],
                  "Brightness": [None, None, 2]}).to_excel(book, index=False)
    assert spaq.image_folder(tmp_path) == "TestImage"
    _same(spaq.read(tmp_path), _authentic(tmp_path, ["TestImage/1.jpg", "TestImage/2.jpg"],
                                           [40.5, 60.0]))
    (tmp_path / "Dataset" / "TestImage").mkdir(parents=True)
    assert spaq.image_folder(tmp_path) == "Dataset/TestImage"
    _same(spaq.read(tmp_path), _authentic(
        tmp_path, ["Dataset/TestImage/1.jpg", "Dataset/TestImage/2.jpg"], [40.5, 60.0]))
    (tmp_path / "TestImage").mkdir()
    assert spaq.image_folder(tmp_path) == "TestImage"
    pd.DataFrame({"Image name": [None], "MOS": [None]}).to_excel(book, index=False)
    with pytest.raises(DatasetError) as info:
        spaq.read(tmp_path)
    assert _msg(info) == f"malformed annotation file {book}: no rows"
    pd.DataFrame({"Image name": ["1.jpg"], "Score": [3]}).to_excel(book, index=False)
    with pytest.raises(DatasetError) as info:
        spaq.read(tmp_path)
    assert _msg(info) == (f"malformed annotation file {book}: missing column(s) ['MOS']; "
                          "found ['Image name', 'Score']")
    pd.DataFrame({"Image name": ["1.jpg"], "MOS": ["bad"]}).to_excel(book, index=False)
    with pytest.raises(DatasetError, match="column 'MOS' row 0 has non-numeric score 'bad'"):
        spaq.read(tmp_path)
    book.write_bytes(b"not a zip file")
    with pytest.raises(DatasetError) as info:
        spaq.read(tmp_path)
    assert _msg(info).startswith(f"malformed annotation file {book}: cannot read workbook (")
    book.unlink()
    with pytest.raises(DatasetError) as info:
        spaq.read(tmp_path)
    assert _msg(info) == (f"missing annotation file {book} or {tmp_path / 'Annotations' / book.name}"
                          ": expected an Excel workbook with columns 'Image name' and 'MOS'")


@pytest.mark.parametrize("column,values,roles", [
    ("split", ["Train", " validation", "TEST", "dev", "training", "testing", "valid", "val"],
     ["train", "val", "test", "val", "train", "test", "val", "val"]),
    ("Set", ["train", "test", "val", "train", "train", "train", "train", "train"],
     ["train", "test", "val", "train", "train", "train", "train", "train"]),
    ("PHASE", ["test"] * 8, ["test"] * 8),
    # 7 non-test rows: round(0.875) = 1 val row, the first non-test one in file order
    ("is_test", ["1", "false", "no", "n", "0", "f", "TRUE", ""],
     ["test", "val", "train", "train", "train", "train", "test", "train"]),
])
def test_flive_official_roles(tmp_path, column, values, roles):
    from shamisa_core.evaluation.datasets import flive

    path = tmp_path / "labels_image.csv"
    names = [f"n{i}.jpg" for i in range(8)]
    pd.DataFrame({"name": names, "mos": np.arange(8) + 0.5, column: values}).to_csv(
        path, index=False)
    got = flive.read(tmp_path)
    _same(got, _authentic(tmp_path, [f"database/{n}" for n in names], list(np.arange(8) + 0.5))
          .assign(official_split=roles))
    assert flive.official_roles(pd.DataFrame({column: values}), path) == roles


def test_flive_is_test_rounds_the_val_share():
    from shamisa_core.evaluation.datasets import flive

    path = Path("labels_image.csv")
    # 12 non-test rows -> 1.5 -> 2 val rows (Python rounds half to even)
    roles = flive.official_roles(pd.DataFrame({"is_test": ["yes"] + ["no"] * 12}), path)
    assert roles == ["test", "val", "val"] + ["train"] * 10
    roles = flive.official_roles(pd.DataFrame({"is_test": ["t", "y", "false", "n"]}), path)
    assert roles == ["test", "test", "train", "train"]  # round(0.25) = 0
    assert flive.official_roles(pd.DataFrame({"other": [1]}), path) is None


def test_flive_bad_columns_and_values_are_named(tmp_path):
    from shamisa_core.evaluation.datasets import flive

    path = tmp_path / "labels_image.csv"
    pd.DataFrame({"name_image": [" a.jpg "], "mos_image": [5]}).to_csv(path, index=False)
    _same(flive.read(tmp_path), _authentic(tmp_path, ["database/a.jpg"], [5.0]))
    with pytest.raises(DatasetError) as info:
        flive.official_roles(pd.DataFrame({"Split": ["train", "bogus", "x", "x"]}), path)
    assert _msg(info) == (f"malformed annotation file {path}: column 'Split' has values "
                          "['bogus', 'x'], expected train/val/test")
    with pytest.raises(DatasetError) as info:
        flive.official_roles(pd.DataFrame({"is_test": list("abcdefg")}), path)
    assert _msg(info) == (f"malformed annotation file {path}: column 'is_test' has values "
                          "['a', 'b', 'c', 'd', 'e'], expected booleans")
    pd.DataFrame({"file": ["a.jpg"], "mos": [5]}).to_csv(path, index=False)
    with pytest.raises(DatasetError) as info:
        flive.read(tmp_path)
    assert _msg(info) == (f"malformed annotation file {path}: needs one of the columns "
                          "['name', 'name_image']; found ['file', 'mos']")
    pd.DataFrame({"name": ["a.jpg"], "score": [5]}).to_csv(path, index=False)
    with pytest.raises(DatasetError) as info:
        flive.read(tmp_path)
    assert _msg(info) == (f"malformed annotation file {path}: needs one of the columns "
                          "['mos', 'mos_image']; found ['name', 'score']")
    pd.DataFrame({"name": ["a.jpg"], "mos_image": ["x"]}).to_csv(path, index=False)
    with pytest.raises(DatasetError) as info:
        flive.read(tmp_path)
    assert _msg(info) == (f"malformed annotation file {path}: column 'mos_image' row 0 has "
                          "non-numeric score 'x' (1 bad row(s))")
    pd.DataFrame({"name": ["a.jpg"], "mos": [1], "set": ["holdout"]}).to_csv(path, index=False)
    with pytest.raises(DatasetError) as info:
        flive.read(tmp_path)
    assert _msg(info) == (f"malformed annotation file {path}: column 'set' has values "
                          "['holdout'], expected train/val/test")
    path.unlink()
    with pytest.raises(DatasetError) as info:
        flive.read(tmp_path)
    assert _msg(info) == f"missing annotation file {path}: expected CSV with columns name and mos"


# ==============================================================================================
# features: geometry (METHOD.md §7.3, DECISIONS 4)

from shamisa_core.evaluation import features as F  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def _ramp(h: int, w: int) -> np.ndarray:
    """An (h, w, 3) uint8 image whose every pixel is distinct (row, column, both)."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([yy * 7 % 256, xx * 11 % 256, (yy * w + xx) % 256], axis=-1).astype(np.uint8)


def test_feature_config_defaults_and_the_dataset_resize():
    assert F.FeatureConfig() == F.FeatureConfig(224, 64, "cpu", None)
    spaq = DatasetInfo("s", "authentic", (0.0, 100.0), False, "MOS", resize_short_side=512)
    assert F.feature_config_for(spaq) == F.FeatureConfig(224, 64, "cpu", 512)
    assert F.feature_config_for(spaq, 96, 7, "meta") == F.FeatureConfig(96, 7, "meta", 512)
    plain = DatasetInfo("p", "authentic", (0.0, 1.0), False, "MOS")
    assert F.feature_config_for(plain, crop_size=32) == F.FeatureConfig(32, 64, "cpu", None)
    assert F.CROP_NAMES == ("center", "top_left", "bottom_left", "top_right", "bottom_right")
    assert F.N_CROPS == 5


@pytest.mark.parametrize("size,side,expected", [
    ((10, 20), 5, (5, 10)),       # portrait: width becomes the side
    ((21, 10), 4, (8, 4)),        # landscape: 21 * 0.4 = 8.4 -> 8
    ((5, 13), 1, (1, 3)),         # 2.6 rounds to 3
    ((3, 3), 1, (1, 1)),          # square: both sides
    ((4, 4), 8, (8, 8)),          # upsampling too
])
def test_resize_short_side_keeps_the_aspect_ratio(size, side, expected):
    img = Image.fromarray(_ramp(size[1], size[0]))
    out = F.resize_short_side(img, side)
    assert out.size == expected
    np.testing.assert_array_equal(np.asarray(out),
                                  np.asarray(img.resize(expected, Image.Resampling.BICUBIC)))


def test_resize_short_side_of_the_right_size_is_the_same_image():
    img = Image.fromarray(_ramp(9, 12))
    assert F.resize_short_side(img, 9) is img
    assert F.ensure_min_side(img, 9) is img
    assert F.ensure_min_side(img, 8) is img
    up = F.ensure_min_side(img, 10)
    assert up.size == (13, 10)  # 12 * 10 / 9 = 13.3
    np.testing.assert_array_equal(np.asarray(up), np.asarray(
        img.resize((13, 10), Image.Resampling.BICUBIC)))


@pytest.mark.parametrize("size,half", [((7, 5), (3, 2)), ((1, 1), (1, 1)), ((3, 1), (1, 1)),
                                       ((2, 9), (1, 4))])
def test_half_scale_is_bicubic_and_at_least_one_pixel(size, half):
    img = Image.fromarray(_ramp(size[1], size[0]))
    out = F.half_scale(img)
    assert out.size == half
    np.testing.assert_array_equal(np.asarray(out),
                                  np.asarray(img.resize(half, Image.Resampling.BICUBIC)))


def test_reflect_pad_centres_the_padding_and_never_adds_black():
    arr = _ramp(3, 2)
    out = F.reflect_pad_to(arr, 6)
    assert out.shape == (6, 6, 3)
    np.testing.assert_array_equal(out, np.pad(arr, ((1, 2), (2, 2), (0, 0)), mode="reflect"))
    # row 0 of the output is row 1 of the input (reflection, not edge or zero)
    np.testing.assert_array_equal(out[0, 2:4], arr[1])
    assert F.reflect_pad_to(arr, 3).shape == (3, 3, 3)
    np.testing.assert_array_equal(F.reflect_pad_to(arr, 3), np.pad(arr, ((0, 0), (0, 1), (0, 0)),
                                                                    mode="reflect"))
    big = _ramp(5, 4)
    assert F.reflect_pad_to(big, 4) is big
    assert F.reflect_pad_to(big, 2) is big


def test_five_crop_boxes_and_their_boundaries():
    assert F.five_crop_boxes(7, 9, 4) == [(1, 2), (0, 0), (3, 0), (0, 5), (3, 5)]
    assert F.five_crop_boxes(4, 4, 4) == [(0, 0)] * 5
    assert F.five_crop_boxes(8, 6, 3) == [(2, 1), (0, 0), (5, 0), (0, 3), (5, 3)]
    for h, w in ((3, 9), (9, 3)):
        with pytest.raises(ValueError) as info:
            F.five_crop_boxes(h, w, 4)
        assert _msg(info) == f"image {h}x{w} is smaller than the crop 4"


def test_five_crops_cut_centre_and_corners():
    arr = _ramp(7, 9)
    crops = F.five_crops(arr, 4)
    assert crops.shape == (5, 4, 4, 3) and crops.dtype == np.uint8
    for crop, (top, left) in zip(crops, [(1, 2), (0, 0), (3, 0), (0, 5), (3, 5)], strict=True):
        np.testing.assert_array_equal(crop, arr[top:top + 4, left:left + 4])
    small = _ramp(2, 3)
    padded = np.pad(small, ((1, 1), (0, 1), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(F.five_crops(small, 4), np.stack([padded] * 5))


def test_image_crops_at_two_scales_after_the_short_side_resize():
    img = Image.fromarray(_ramp(30, 20))
    full, half = F.image_crops(img, 8)
    np.testing.assert_array_equal(full, F.five_crops(_ramp(30, 20), 8))
    halved = np.asarray(img.resize((10, 15), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(half, F.five_crops(halved, 8))
    # the short-side resize comes first (SPAQ), then the crops
    full, half = F.image_crops(img, 8, resize_short=10)
    small = img.resize((10, 15), Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(full, F.five_crops(np.asarray(small), 8))
    np.testing.assert_array_equal(half, F.five_crops(np.asarray(
        small.resize((5, 7), Image.Resampling.BICUBIC)), 8))
    # an image below the crop is first upsampled so its short side equals the crop
    full, _ = F.image_crops(Image.fromarray(_ramp(4, 6)), 8)
    up = Image.fromarray(_ramp(4, 6)).resize((12, 8), Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(full, F.five_crops(np.asarray(up), 8))


def test_normalise_is_imagenet_mean_and_std_channels_first():
    crops = np.stack([_ramp(3, 4), 255 - _ramp(3, 4)])
    x = F.normalise(crops)
    assert x.dtype == torch.float32 and tuple(x.shape) == (2, 3, 3, 4)
    expected = (crops.astype(np.float64) / 255.0 - MEAN) / STD
    np.testing.assert_allclose(x.numpy(), expected.transpose(0, 3, 1, 2), rtol=0, atol=1e-5)


def test_to_pil_accepts_paths_arrays_and_pil_images(tmp_path):
    rgb = _ramp(4, 5)
    path = _img(tmp_path / "a.png")
    Image.fromarray(rgb).save(path)
    for item in (str(path), path):
        out = F.to_pil(item)
        assert out.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(out), rgb)
    grey = rgb[:, :, 0]
    np.testing.assert_array_equal(np.asarray(F.to_pil(grey)), np.repeat(grey[:, :, None], 3, 2))
    rgba = np.concatenate([rgb, np.full((4, 5, 1), 9, np.uint8)], axis=2)
    assert F.to_pil(rgba).mode == "RGB"
    np.testing.assert_array_equal(np.asarray(F.to_pil(rgba)), rgb)
    np.testing.assert_array_equal(np.asarray(F.to_pil(Image.fromarray(grey))),
                                  np.repeat(grey[:, :, None], 3, 2))
    assert F.to_pil(Image.fromarray(grey)).mode == "RGB"


@pytest.mark.parametrize("item,exc,message", [
    (np.zeros((2, 2, 3), np.float32), TypeError, "image arrays must be uint8, got float32"),
    (np.zeros((2, 2, 2), np.uint8), ValueError, "image arrays must be HxWx3, got shape (2, 2, 2)"),
    (np.zeros((2, 2, 5), np.uint8), ValueError, "image arrays must be HxWx3, got shape (2, 2, 5)"),
    (np.zeros((1, 2, 2, 3), np.uint8), ValueError,
     "image arrays must be HxWx3, got shape (1, 2, 2, 3)"),
    (7, TypeError, "expected a path, a PIL image or a uint8 array, got int"),
    (b"a.png", TypeError, "expected a path, a PIL image or a uint8 array, got bytes"),
])
def test_to_pil_refuses_what_it_cannot_read(item, exc, message):
    with pytest.raises(exc) as info:
        F.to_pil(item)
    assert type(info.value) is exc and _msg(info) == message


def test_to_pil_of_a_missing_file_or_a_folder_names_it(tmp_path):
    for p in (tmp_path / "none.png", tmp_path):
        with pytest.raises(FileNotFoundError) as info:
            F.to_pil(p)
        assert _msg(info) == f"no such file: {p}"
    Image.fromarray(_ramp(3, 3)).save(tmp_path / "b.png")
    loaded = F.load_rgb(tmp_path / "b.png")
    np.testing.assert_array_equal(np.asarray(loaded), _ramp(3, 3))
    assert loaded.mode == "RGB" and loaded.size == (3, 3)


# ----------------------------------------------------------------------------------------------
# features: extraction


class Probe(torch.nn.Module):
    """A tiny real encoder: per-channel means and the mean of channel 0 squared (d = 4).

    It records, per call, the batch size, the device, the mode and whether inference mode
    was on, so the tests can see how the extraction drives it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.register_buffer("offset", torch.zeros(4))
        self.calls: list[tuple[int, str, bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.shape[0], str(x.device), self.training,
                           torch.is_inference_mode_enabled()))
        if x.device.type == "meta":
            return torch.zeros(x.shape[0], 4)
        m = x.mean(dim=(2, 3))
        return torch.cat([m, (x[:, :1] ** 2).mean(dim=(2, 3))], dim=1) * self.scale + self.offset


def _expected_row(img: np.ndarray, crop: int) -> np.ndarray:
    """(5, 8): per crop k, the probe's 4 numbers of full crop k then of half crop k."""
    pil = Image.fromarray(img)
    full = F.five_crops(np.asarray(pil), crop)
    w, h = pil.size
    half = F.five_crops(np.asarray(pil.resize((w // 2, h // 2), Image.Resampling.BICUBIC)), crop)

    def probe(crops: np.ndarray) -> np.ndarray:
        x = (crops.astype(np.float64) / 255.0 - MEAN) / STD
        return np.concatenate([x.mean(axis=(1, 2)), (x[..., :1] ** 2).mean(axis=(1, 2))], axis=1)

    return np.concatenate([probe(full), probe(half)], axis=1)


def test_extract_features_layout_failures_and_batching(tmp_path):
    imgs = [_ramp(16, 20), 255 - _ramp(18, 16), _ramp(17, 17)]
    paths = []
    for i, a in enumerate(imgs):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(a).save(paths[-1])
    (tmp_path / "bad.png").write_bytes(b"not an image")
    probe = Probe()
    items = [paths[0], str(tmp_path / "gone.png"), np.zeros((4, 4), np.float64), paths[1],
             tmp_path / "bad.png", imgs[2]]
    res = F.extract_features(items, probe, F.FeatureConfig(crop_size=8, batch_size=25))
    assert res.features.shape == (6, 5, 8) and res.features.dtype == np.float64
    for row, img in ((0, imgs[0]), (3, imgs[1]), (5, imgs[2])):
        np.testing.assert_allclose(res.features[row], _expected_row(img, 8), atol=1e-5)
    assert np.isnan(res.features[[1, 2, 4]]).all()
    assert res.n_failed == 3 and len(res.failed) == 3
    assert res.failed[0] == (str(tmp_path / "gone.png"),
                             f"FileNotFoundError: no such file: {tmp_path / 'gone.png'}")
    assert res.failed[1] == ("<item 2: ndarray>", "TypeError: image arrays must be uint8, got float64")
    assert res.failed[2][0] == str(tmp_path / "bad.png")
    assert str(tmp_path / "bad.png") in res.failed[2][1]
    # 25 crops per call -> 2 images (20 crops) per encoder call; the rest at the end
    assert [c[0] for c in probe.calls] == [20, 10]
    assert all(c[1] == "cpu" and c[2] is False and c[3] is True for c in probe.calls)
    assert probe.training  # restored


@pytest.mark.parametrize("batch,calls", [(9, [10, 10, 10]), (10, [10, 10, 10]), (19, [10, 10, 10]),
                                         (20, [20, 10]), (30, [30]), (64, [30])])
def test_images_per_encoder_call_follow_the_batch_size(batch, calls):
    probe = Probe().eval()
    F.extract_features([_ramp(8, 8)] * 3, probe, F.FeatureConfig(crop_size=8, batch_size=batch))
    assert [c[0] for c in probe.calls] == calls
    assert not probe.training  # an eval module stays in eval mode


def test_extraction_sends_the_crops_to_the_configured_device():
    probe = Probe()
    res = F.extract_features([_ramp(8, 8)], probe, F.FeatureConfig(crop_size=8, device="meta"))
    assert [c[1] for c in probe.calls] == ["meta"]
    np.testing.assert_array_equal(res.features, np.zeros((1, 5, 8)))
    # a plain function works too (no mode to switch)
    res = F.extract_features([_ramp(8, 8)], lambda x: x.mean(dim=(2, 3)),
                             F.FeatureConfig(crop_size=8))
    assert res.features.shape == (1, 5, 6)


def test_extraction_applies_the_configured_short_side_resize():
    probe = Probe()
    img = _ramp(12, 16)
    res = F.extract_features([img], probe, F.FeatureConfig(crop_size=4, resize_short_side=8))
    small = np.asarray(Image.fromarray(img).resize((11, 8), Image.Resampling.BICUBIC))
    np.testing.assert_allclose(res.features[0], _expected_row(small, 4), atol=1e-5)


def test_no_readable_image_is_an_error_unless_allowed(tmp_path):
    missing = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    with pytest.raises(ValueError) as info:
        F.extract_features(missing, Probe(), F.FeatureConfig(crop_size=8))
    first = (missing[0], f"FileNotFoundError: no such file: {missing[0]}")
    assert _msg(info) == f"no image could be loaded (2 failed), e.g. {[first]}"
    probe = Probe()
    probe.train()
    got = F.extract_features(missing, probe, F.FeatureConfig(crop_size=8), allow_empty=True)
    assert got.features.shape == (2, 5, 2) and np.isnan(got.features).all()
    assert probe.training and got.n_failed == 2
    probe.feature_dim = 6
    assert F.extract_features(missing, probe, allow_empty=True).features.shape == (2, 5, 12)
    probe.feature_dim = 0
    assert F.extract_features(missing, probe, allow_empty=True).features.shape == (2, 5, 2)
    assert F.extract_features([], probe, allow_empty=True).features.shape == (0, 5, 2)


def test_reference_features_encode_each_reference_once_in_row_order(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(_ramp(8, 8)).save(a)
    Image.fromarray(255 - _ramp(8, 8)).save(b)
    probe = Probe()
    res = F.extract_reference_features([b, a, str(b), a], probe, F.FeatureConfig(crop_size=8))
    assert [c[0] for c in probe.calls] == [20]  # two distinct references, one call
    ra, rb = _expected_row(_ramp(8, 8), 8), _expected_row(255 - _ramp(8, 8), 8)
    np.testing.assert_allclose(res.features, np.stack([rb, ra, rb, ra]), atol=1e-5)
    gone = tmp_path / "gone.png"
    res = F.extract_reference_features([gone, a], Probe(), F.FeatureConfig(crop_size=8))
    assert res.failed == ((str(gone), f"FileNotFoundError: no such file: {gone}"),)
    assert np.isnan(res.features[0]).all() and not np.isnan(res.features[1]).any()
    with pytest.raises(ValueError, match="no image could be loaded"):
        F.extract_reference_features([gone], Probe(), F.FeatureConfig(crop_size=8))
    res = F.extract_reference_features([gone], Probe(), F.FeatureConfig(crop_size=8),
                                       allow_empty=True)
    assert res.features.shape == (1, 5, 2)


# ==============================================================================================
# cache: content keys and the feature cache (issue 8)

from shamisa_core.evaluation import cache as C  # noqa: E402


def _digest_of_state(module: torch.nn.Module) -> str:
    d = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        d.update(f"{name}:{tuple(t.shape)}:{t.dtype}\n".encode())
        d.update(t.detach().contiguous().numpy().tobytes())
    return d.hexdigest()[:16]


def test_encoder_fingerprint_hashes_names_shapes_dtypes_and_values():
    probe = Probe()
    fp = C.encoder_fingerprint(probe)
    assert fp == _digest_of_state(probe) and len(fp) == 16
    with torch.no_grad():
        probe.offset[2] = 1e-3
    assert C.encoder_fingerprint(probe) == _digest_of_state(probe) != fp
    empty = torch.nn.Module()
    empty.register_buffer("nothing", torch.zeros(0))
    expected = hashlib.sha256(b"nothing:(0,):torch.float32\n").hexdigest()[:16]
    assert C.encoder_fingerprint(empty) == expected
    double = torch.nn.Module()
    double.register_buffer("nothing", torch.zeros(0, dtype=torch.float64))
    assert C.encoder_fingerprint(double) != expected


def test_image_identity_by_stat_by_bytes_and_for_missing_files(tmp_path):
    a = tmp_path / "a.png"
    a.write_bytes(b"abc")
    b = tmp_path / "sub" / ".." / "b.png"
    (tmp_path / "b.png").write_bytes(b"de")
    gone = tmp_path / "gone.png"
    st_a, st_b = a.stat(), (tmp_path / "b.png").stat()
    stat = hashlib.sha256(b"stat")
    stat.update(f"{a.resolve()}\t3\t{st_a.st_mtime_ns}\n".encode())
    stat.update(f"{(tmp_path / 'b.png').resolve()}\t2\t{st_b.st_mtime_ns}\n".encode())
    stat.update(f"{gone}\tmissing\n".encode())
    (tmp_path / "sub").mkdir()
    assert C.image_identity([a, str(b), gone]) == stat.hexdigest()
    by_bytes = hashlib.sha256(b"sha256")
    by_bytes.update(hashlib.sha256(b"abc").hexdigest().encode() + b"\n")
    by_bytes.update(f"{gone}\tmissing\n".encode())
    assert C.image_identity([a, gone], "sha256") == by_bytes.hexdigest()
    assert C.image_identity([a, b]) != C.image_identity([b, a])  # order matters
    assert C.image_identity([]) == hashlib.sha256(b"stat").hexdigest()
    with pytest.raises(ValueError) as info:
        C.image_identity([a], "md5")
    assert _msg(info) == "identity mode 'md5'; expected one of ('stat', 'sha256')"
    assert C.IDENTITY_MODES == ("stat", "sha256") and C.DEFAULT_FEATURE_BATCH == 64


def test_feature_cache_key_is_readable_and_content_addressed():
    digest = hashlib.sha256(b"enc|ver|96|x").hexdigest()[:20]
    assert C.feature_cache_key("enc", "ver", 96, "x") == f"p96-{digest}"
    assert C.feature_cache_key("enc", "ver", 96) == "p96-" + hashlib.sha256(
        b"enc|ver|96|").hexdigest()[:20]
    parts = {"encoder": "e", "dataset_version": "v", "crop_size": 8, "z": [1, 2]}
    assert C.features_key(parts) == C.feature_cache_key(
        "e", "v", 8, '{"crop_size": 8, "dataset_version": "v", "encoder": "e", "z": [1, 2]}')


def test_npy_cache_round_trip_and_unreadable_files(tmp_path):
    assert C.cache_path(tmp_path, "k") == tmp_path / "k.npy"
    assert C.load_cached_features(tmp_path, "k") is None
    calls = []

    def compute():
        calls.append(1)
        return np.arange(6, dtype=np.float32).reshape(2, 3)

    got, hit = C.cached_features(tmp_path, "k", compute)
    assert (hit, got.dtype, got.tolist()) == (False, np.float64, [[0, 1, 2], [3, 4, 5]])
    again, hit = C.cached_features(tmp_path, "k", compute)
    assert hit and calls == [1] and again.dtype == np.float64
    np.testing.assert_array_equal(again, got)
    assert C.save_cached_features(tmp_path, "i", np.array([1, 2])) == tmp_path / "i.npy"
    assert np.load(tmp_path / "i.npy").dtype == np.float64
    (tmp_path / "k.npy").write_bytes(b"garbage")
    with pytest.warns(UserWarning) as rec:
        assert C.load_cached_features(tmp_path, "k") is None
    text = str(rec[0].message)
    assert text.startswith(f"unreadable cache file {tmp_path / 'k.npy'} (ValueError: ")
    assert text.endswith("); rebuilding it")
    with pytest.warns(UserWarning, match="unreadable cache file"):
        got, hit = C.cached_features(tmp_path, "k", compute)
    assert not hit and calls == [1, 1]
    assert np.load(tmp_path / "k.npy").tolist() == [[0, 1, 2], [3, 4, 5]]


@pytest.fixture(scope="module")
def kadid_prepared(tmp_path_factory):
    from _eval_helpers import make_kadid_like

    from shamisa_core.evaluation.prepared import prepare_dataset

    root = tmp_path_factory.mktemp("kadid")
    data = make_kadid_like(root / "data", n_refs=2, kinds=(1,), levels=(1, 2), size=(20, 24))
    return prepare_dataset("kadid10k", str(data), root / "cache", proxy_base=root / "proxy")


def _handle(module=None, *, role="trained", arch="probe"):
    from shamisa_core.evaluation.encoders import EncoderHandle

    module = module if module is not None else Probe().eval()
    meta = {"model_config": {"arch": arch}} if arch else {}
    return EncoderHandle(role=role, module=module, meta=meta,
                         fingerprint=C.encoder_fingerprint(module), source="test")


def _expected_parts(prep, enc, crop, kind="nr", identity="stat") -> dict:
    column = "reference_image" if kind == "ref" else "image"
    paths = list(prep.table[column])
    if kind == "ref":
        paths = sorted(set(paths))
    return {"code": "features/2", "kind": kind, "dataset": "kadid10k",
            "dataset_version": prep.version, "identity_mode": identity,
            "images": C.image_identity(paths, identity), "n_rows": 4,
            "encoder": enc.fingerprint, "arch": enc.meta.get("model_config", {}).get("arch"),
            "inference_tag": enc.inference_tag, "crop_size": crop, "resize_short_side": None,
            "normalisation": [[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]]}


def test_key_parts_name_everything_the_features_depend_on(kadid_prepared):
    prep = kadid_prepared
    enc = _handle()
    assert C.key_parts(prep, enc, 8) == _expected_parts(prep, enc, 8)
    assert C.key_parts(prep, enc, 8, "ref", "sha256") == _expected_parts(prep, enc, 8, "ref",
                                                                         "sha256")
    assert C.key_parts(prep, enc, 8, "ref")["images"] == C.image_identity(
        sorted(set(prep.table["reference_image"])))
    tagged = Probe().eval()
    tagged.inference_tag = "bf16"
    bare = _handle(tagged, arch=None)
    parts = C.key_parts(prep, bare, np.int64(12))
    assert (parts["arch"], parts["inference_tag"], parts["crop_size"]) == (None, "bf16", 12)
    assert type(parts["crop_size"]) is int
    assert C.features_key(parts) != C.features_key(C.key_parts(prep, enc, 12))


def _expected_features(prep, crop: int, column: str = "image") -> np.ndarray:
    return np.stack([_expected_row(np.asarray(Image.open(p).convert("RGB")), crop)
                     for p in prep.table[column]])


def test_encode_dataset_writes_the_features_and_a_complete_sidecar(kadid_prepared):
    prep = kadid_prepared
    probe = Probe().eval()
    enc = _handle(probe, role="init")
    logged: list[str] = []
    t0 = time.perf_counter()
    fs = C.encode_dataset(prep, enc, 8, batch_size=20, log=logged.append)
    elapsed = time.perf_counter() - t0
    parts = _expected_parts(prep, enc, 8)
    key = C.features_key(parts)
    assert (fs.key, fs.path, fs.cache_hit, fs.failed, fs.encoder_fingerprint, fs.crop_size,
            fs.retried) == (key, prep.work_dir / "features" / f"{key}.npy", False, (),
                            enc.fingerprint, 8, 0)
    assert 0 < fs.seconds <= elapsed and logged == []
    np.testing.assert_allclose(fs.features, _expected_features(prep, 8), atol=1e-5)
    assert [c[0] for c in probe.calls] == [20, 20]  # 20 crops per call: 2 images
    np.testing.assert_array_equal(np.load(fs.path), fs.features)
    side = json.loads(fs.path.with_suffix(".json").read_text())
    assert side == {"dataset": "kadid10k", "encoder_role": "init", "key_parts": parts,
                    "shape": [4, 5, 8], "failed": [], "seconds": round(fs.seconds, 3)}
    assert fs.to_json() == {"key": key, "path": str(fs.path), "cache_hit": False, "n_failed": 0,
                            "failed": [], "retried_failed_rows": 0,
                            "encoder_fingerprint": enc.fingerprint, "crop_size": 8,
                            "shape": [4, 5, 8], "seconds": round(fs.seconds, 3)}
    hit = C.encode_dataset(prep, enc, 8, log=logged.append)
    assert (hit.key, hit.path, hit.cache_hit, hit.failed, hit.seconds, hit.retried,
            hit.crop_size, hit.encoder_fingerprint) == (key, fs.path, True, (), 0.0, 0, 8,
                                                        enc.fingerprint)
    np.testing.assert_array_equal(hit.features, fs.features)
    assert len(probe.calls) == 2 and logged == []
    assert C.encode_dataset(prep, enc, 8, compute=False).cache_hit


def test_encode_dataset_defaults_and_reference_rows(kadid_prepared):
    prep = kadid_prepared
    probe = Probe().eval()
    enc = _handle(probe)
    assert C.encode_dataset(prep, enc, 6, compute=False) is None  # a miss without compute
    assert not list((prep.work_dir / "features").glob("p6-*"))
    fs = C.encode_dataset(prep, enc, 6)
    assert [c[:2] for c in probe.calls] == [(40, "cpu")]  # 64 crops per call: 6 images max
    assert fs.key == C.features_key(_expected_parts(prep, enc, 6))
    np.testing.assert_allclose(fs.features, _expected_features(prep, 6), atol=1e-5)
    ref = C.encode_dataset(prep, enc, 6, kind="ref", identity="sha256")
    assert ref.key == C.features_key(_expected_parts(prep, enc, 6, "ref", "sha256"))
    assert [c[0] for c in probe.calls] == [40, 20]  # the 2 references, once each
    np.testing.assert_allclose(ref.features, _expected_features(prep, 6, "reference_image"),
                               atol=1e-5)
    side = json.loads(ref.path.with_suffix(".json").read_text())
    assert (side["key_parts"]["kind"], side["shape"]) == ("ref", [4, 5, 8])


def test_encode_dataset_applies_the_datasets_short_side_resize(tmp_path):
    from shamisa_core.evaluation.prepared import prepare_dataset

    names = [f"{i}.jpg" for i in range(10)]
    pd.DataFrame({"Image name": names, "MOS": np.linspace(10, 90, 10)}).to_excel(
        tmp_path / "MOS and Image attribute scores.xlsx", index=False)
    (tmp_path / "TestImage").mkdir()
    for i, n in enumerate(names):
        Image.fromarray(np.roll(_ramp(12, 16), i, axis=1)).save(tmp_path / "TestImage" / n,
                                                                quality=95)
    prep = prepare_dataset("spaq", tmp_path, tmp_path / "cache")
    enc = _handle()
    fs = C.encode_dataset(prep, enc, 8)
    assert json.loads(fs.path.with_suffix(".json").read_text())["key_parts"][
        "resize_short_side"] == 512
    first = np.asarray(Image.open(prep.table["image"].iloc[0]).convert("RGB"))
    resized = np.asarray(Image.fromarray(first).resize((683, 512), Image.Resampling.BICUBIC))
    np.testing.assert_allclose(fs.features[0], _expected_row(resized, 8), atol=1e-5)


def test_encode_dataset_sends_crops_to_the_requested_device(kadid_prepared):
    probe = Probe().eval()
    fs = C.encode_dataset(kadid_prepared, _handle(probe), 5, batch_size=10, device="meta")
    assert [c[:2] for c in probe.calls] == [(10, "meta")] * 4
    np.testing.assert_array_equal(fs.features, np.zeros((4, 5, 8)))


def test_a_cache_file_of_the_wrong_shape_is_rebuilt_with_a_warning(kadid_prepared):
    prep = kadid_prepared
    enc = _handle()
    first = C.encode_dataset(prep, enc, 7)
    for wrong in (np.zeros((3, 5, 8)), np.zeros((4, 40))):
        np.save(first.path, wrong)
        logged: list[str] = []
        with pytest.warns(UserWarning) as rec:
            fs = C.encode_dataset(prep, enc, 7, log=logged.append)
        message = f"cache file {first.path} has shape {wrong.shape} for 4 rows; rebuilding it"
        assert [str(r.message) for r in rec] == [message] and logged == [message]
        assert Path(rec[0].filename).name != "cache.py"  # attributed to a caller
        assert not fs.cache_hit and fs.features.shape == (4, 5, 8)
        np.testing.assert_array_equal(np.load(first.path), first.features)
    first.path.write_bytes(b"\x93NUMPY garbage")
    logged = []
    with pytest.warns(UserWarning, match="unreadable cache file"):
        fs = C.encode_dataset(prep, enc, 7, log=logged.append)
    assert len(logged) == 1 and logged[0].startswith(f"unreadable cache file {first.path} (")
    assert logged[0].endswith("); rebuilding it") and not fs.cache_hit


def test_failed_rows_of_a_hit_are_retried_and_stored_once_repaired(kadid_prepared):
    prep = kadid_prepared
    probe = Probe().eval()
    enc = _handle(probe)
    first = C.encode_dataset(prep, enc, 9)
    side_path = first.path.with_suffix(".json")
    stored = first.features.copy()
    stored[[0, 2]] = np.nan
    np.save(first.path, stored)
    assert C.encode_dataset(prep, enc, 9, compute=False) is None  # a hit with holes, no compute
    n_calls = len(probe.calls)
    t0 = time.perf_counter()
    fs = C.encode_dataset(prep, enc, 9)
    elapsed = time.perf_counter() - t0
    assert [c[0] for c in probe.calls[n_calls:]] == [20]  # only the two failed rows
    assert (fs.cache_hit, fs.retried, fs.failed, fs.key, fs.path, fs.crop_size,
            fs.encoder_fingerprint) == (True, 2, (), first.key, first.path, 9, enc.fingerprint)
    assert 0 < fs.seconds <= elapsed
    np.testing.assert_allclose(fs.features, first.features, atol=1e-6)
    np.testing.assert_array_equal(np.load(first.path), fs.features)
    assert json.loads(side_path.read_text()) == {
        "dataset": "kadid10k", "encoder_role": "trained", "key_parts": _expected_parts(prep, enc, 9),
        "shape": [4, 5, 8], "failed": []}
    # the same for reference rows: the retry encodes the references again, not the images
    ref = C.encode_dataset(prep, enc, 9, kind="ref")
    holed = ref.features.copy()
    holed[[1, 3]] = np.nan
    np.save(ref.path, holed)
    again = C.encode_dataset(prep, enc, 9, kind="ref")
    assert (again.cache_hit, again.retried, again.failed) == (True, 2, ())
    np.testing.assert_allclose(again.features, _expected_features(prep, 9, "reference_image"),
                               atol=1e-5)


def test_rows_that_still_fail_stay_nan_and_are_not_rewritten(tmp_path):
    from _eval_helpers import make_kadid_like

    from shamisa_core.evaluation.prepared import prepare_dataset

    data = make_kadid_like(tmp_path / "data", n_refs=2, kinds=(1,), levels=(1, 2), size=(16, 16))
    bad = data / "images" / "I01_01_02.png"
    bad.write_bytes(b"broken")
    prep = prepare_dataset("kadid10k", str(data), tmp_path / "cache", proxy_base=tmp_path)
    row = prep.table.index[prep.table["image"] == str(bad.resolve())][0]
    enc = _handle()
    first = C.encode_dataset(prep, enc, 8)
    assert [f[0] for f in first.failed] == [str(bad.resolve())]
    assert np.isnan(first.features[row]).all() and not first.cache_hit
    side = json.loads(first.path.with_suffix(".json").read_text())
    assert side["failed"] == [list(first.failed[0])]
    before = first.path.stat().st_mtime_ns, first.path.with_suffix(".json").read_text()
    again = C.encode_dataset(prep, enc, 8)
    assert (again.cache_hit, again.retried, again.failed) == (True, 1, first.failed)
    assert np.isnan(again.features[row]).all()
    np.testing.assert_array_equal(np.delete(again.features, row, 0),
                                  np.delete(first.features, row, 0))
    assert (first.path.stat().st_mtime_ns, first.path.with_suffix(".json").read_text()) == before
    # one row repaired, one still failing: the repair is stored with the remaining failure
    good = (row + 1) % 4
    holed = first.features.copy()
    holed[good] = np.nan
    np.save(first.path, holed)
    fixed = C.encode_dataset(prep, enc, 8)
    assert (fixed.cache_hit, fixed.retried, fixed.failed) == (True, 2, first.failed)
    np.testing.assert_array_equal(np.load(first.path)[good], first.features[good])
    assert json.loads(first.path.with_suffix(".json").read_text()) == {
        "dataset": "kadid10k", "encoder_role": "trained",
        "key_parts": _expected_parts(prep, enc, 8), "shape": [4, 5, 8],
        "failed": [list(first.failed[0])]}


# ==============================================================================================
# prepared: datasets with their versioned splits, and the proxy benchmark

from shamisa_core.evaluation import prepared as P  # noqa: E402
from shamisa_core.evaluation.proxy import ProxySpec  # noqa: E402
from shamisa_core.evaluation.splits import SplitConfig  # noqa: E402

TINY_PROXY = ProxySpec(n_refs=2, types=("gaublur",), levels=(1.0, 3.0), seed=5)


def test_proxy_spec_with_replaces_only_what_is_given():
    default = ProxySpec()
    assert P.DEFAULT_PROXY_SPEC == default
    assert P.proxy_spec_with() == default
    assert P.proxy_spec_with(0, [], []) == default
    assert P.proxy_spec_with(3) == ProxySpec(n_refs=3)
    got = P.proxy_spec_with(None, ["jpeg", "gaublur"], [0, 4])
    assert got == ProxySpec(types=("jpeg", "gaublur"), levels=(0.0, 4.0))
    assert all(type(v) is float for v in got.levels)
    assert P.proxy_spec_with(2, ("jpeg",), (2.5,)) == ProxySpec(n_refs=2, types=("jpeg",),
                                                                levels=(2.5,))
    for bad in ([-0.01], [4.01], [1.0, 5.0]):
        with pytest.raises(ValueError) as info:
            P.proxy_spec_with(levels=bad)
        assert _msg(info) == f"proxy levels must lie in [0, 4], got {tuple(float(v) for v in bad)}"
    with pytest.raises(KeyError) as info:
        P.proxy_spec_with(types=["jpeg", "sepia"])
    assert "unknown distortion type 'sepia'; valid types: " in info.value.args[0]
    assert "gaublur" in info.value.args[0]


def test_proxy_spec_id_and_folder_are_content_addressed(tmp_path):
    blob = json.dumps({"levels": [1.0, 3.0], "n_refs": 2, "seed": 5, "types": ["gaublur"]})
    expected = "r2-t1-l2-" + hashlib.sha256(blob.encode()).hexdigest()[:8]
    assert P.proxy_spec_id(TINY_PROXY) == expected
    assert P.proxy_dir(str(tmp_path), TINY_PROXY) == tmp_path / expected
    changed = [ProxySpec(n_refs=2, types=("gaublur",), levels=(1.0, 3.0), seed=6),
               ProxySpec(n_refs=2, types=("jpeg",), levels=(1.0, 3.0), seed=5),
               ProxySpec(n_refs=2, types=("gaublur",), levels=(1.0, 2.0), seed=5)]
    assert len({P.proxy_spec_id(s) for s in [TINY_PROXY, *changed]}) == 4
    assert P.default_proxy_base(str(tmp_path)) == tmp_path / "benchmarks" / "proxy"
    assert P.PROXY_INFO == DatasetInfo(
        "proxy", "synthetic", (1.0, 5.0), False, "MOS",
        "dmos.csv (dist_img, ref_img, dmos[, type, level]) with images/ (proxy.build_proxy)")


def test_load_proxy_reads_the_kadid_layout_with_named_types(tmp_path):
    from _eval_helpers import make_kadid_like

    folder = make_kadid_like(tmp_path / "p", n_refs=2, kinds=(1, 2), levels=(1,), size=(8, 8),
                             proxy_columns=True)
    ds = P.load_proxy(str(tmp_path / "x" / ".." / "p"))
    assert ds.info is P.PROXY_INFO and ds.root == folder.resolve()
    assert ds.table["distortion_type"].tolist() == ["gaublur", "whitenoise"] * 2
    assert ds.table["name"].tolist() == ["images/I01_01_01.png", "images/I01_02_01.png",
                                         "images/I02_01_01.png", "images/I02_02_01.png"]
    assert ds.version == base.table_version(P.PROXY_INFO, ds.table)
    assert P.proxy_spec_of(folder) is None
    (folder / "proxy_spec.json").write_text('{"n_refs": 2}')
    assert P.proxy_spec_of(str(folder)) == {"n_refs": 2}
    assert P.ensure_proxy(str(folder), None) == folder  # present: used as it is
    assert sorted(p.name for p in folder.iterdir()) == ["dmos.csv", "images", "proxy_spec.json"]


def test_ensure_proxy_keeps_a_folder_built_for_the_same_spec(tmp_path):
    from shamisa_core.evaluation.proxy import PROXY_PHOTOS

    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "dmos.csv").write_text("dist_img,ref_img,dmos\n")
    (folder / "proxy_spec.json").write_text(json.dumps(
        {"n_refs": 2, "types": ["gaublur"], "levels": [1.0, 3.0], "seed": 5,
         "photos": list(PROXY_PHOTOS[:2])}, sort_keys=True))
    (folder / "images").write_text("a file where the images go: any rebuild fails at once")
    assert P.ensure_proxy(str(folder), TINY_PROXY) == folder
    assert P.ensure_proxy(str(folder), None) == folder
    assert (folder / "dmos.csv").read_text() == "dist_img,ref_img,dmos\n"  # untouched
    with pytest.raises(OSError):  # another spec is built, here into the blocked folder
        P.ensure_proxy(folder, ProxySpec(n_refs=1, types=("gaublur",), levels=(1.0,)))


def test_load_named_dataset_errors(tmp_path):
    from shamisa_core.evaluation.roots import DATASET_NAMES

    # (the proxy cases first: a mistaken build of the default proxy would take minutes)
    for root in (None, "", "default"):
        with pytest.raises(FileNotFoundError) as info:
            P.load_named_dataset("proxy", root, proxy_base=tmp_path, proxy_spec=TINY_PROXY,
                                 build=False)
        assert _msg(info) == (f"proxy benchmark not built at {P.proxy_dir(tmp_path, TINY_PROXY)}; "
                              "materialize benchmark_datasets[proxy] (or run `shamisa evaluate`) "
                              "first")
    with pytest.raises(FileNotFoundError, match=f"not built at {re.escape(str(tmp_path / 'own'))};"):
        P.load_named_dataset("proxy", str(tmp_path / "own"), proxy_base=tmp_path, build=False)
    with pytest.raises(FileNotFoundError, match=re.escape(
            str(P.proxy_dir(tmp_path, P.DEFAULT_PROXY_SPEC)))):
        P.load_named_dataset("proxy", None, proxy_base=tmp_path, build=False)
    with pytest.raises(KeyError) as info:
        P.load_named_dataset("imagenet", tmp_path, proxy_base=tmp_path, build=False)
    assert info.value.args[0] == f"unknown dataset 'imagenet'; known: {', '.join(DATASET_NAMES)}"
    for root in (None, ""):
        with pytest.raises(ValueError) as info:
            P.load_named_dataset("kadid10k", root, proxy_base=tmp_path, build=False)
        assert _msg(info) == ("dataset kadid10k needs a root folder (dmos.csv (dist_img, ref_img, "
                              "dmos) with images/)")


def test_prepare_dataset_without_a_proxy_base_looks_under_the_cache(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        P.prepare_dataset("proxy", None, str(tmp_path / "c"), proxy_spec=TINY_PROXY, build=False)
    assert str(tmp_path / "c" / "benchmarks" / "proxy" / P.proxy_spec_id(TINY_PROXY)) in _msg(info)
    assert not (tmp_path / "c").exists()  # nothing created without build


def _seed_proxy(folder: Path, spec: ProxySpec | None, n_refs: int = 2) -> Path:
    """A proxy folder as build_proxy leaves it for ``spec`` (tiny images, its spec file), so
    that nothing needs building; ``spec`` None writes a spec file of no real spec."""
    from _eval_helpers import make_kadid_like

    from shamisa_core.evaluation.proxy import PROXY_PHOTOS

    make_kadid_like(folder, n_refs=n_refs, kinds=(1,), levels=(1, 2), size=(8, 8),
                    proxy_columns=True)
    text = "{}" if spec is None else json.dumps(
        {"n_refs": spec.n_refs, "types": list(spec.types), "levels": list(spec.levels),
         "seed": spec.seed, "photos": list(PROXY_PHOTOS[: spec.n_refs])}, sort_keys=True)
    (folder / "proxy_spec.json").write_text(text)
    return folder


def test_the_proxy_folder_follows_the_spec_and_the_root(tmp_path):
    folder = _seed_proxy(tmp_path / "pb" / P.proxy_spec_id(TINY_PROXY), TINY_PROXY)
    prep = P.prepare_dataset("proxy", None, tmp_path / "c", proxy_base=tmp_path / "pb",
                             proxy_spec=TINY_PROXY)
    assert prep.dataset.root == folder.resolve() and prep.name == "proxy"
    assert prep.info is P.PROXY_INFO and prep.dataset.n_images == 4
    assert prep.work_dir == tmp_path / "c" / "proxy" / prep.version
    for root in ("", "default"):
        again = P.load_named_dataset("proxy", root, proxy_base=tmp_path / "pb",
                                     proxy_spec=TINY_PROXY)
        assert again.root == folder.resolve()
    built = P.load_named_dataset("proxy", None, proxy_base=tmp_path / "pb", proxy_spec=TINY_PROXY,
                                 build=False)  # a built proxy is read without building
    assert built.root == folder.resolve() and built.version == prep.version
    # an explicit folder is used as it is when no spec is asked for (3 references here)
    own = _seed_proxy(tmp_path / "own", None, n_refs=3)
    got = P.load_named_dataset("proxy", str(own), proxy_base=tmp_path / "pb")
    assert got.root == own.resolve() and got.n_images == 6
    assert (own / "proxy_spec.json").read_text() == "{}"  # not rebuilt
    # the default spec lives in its own folder of the base
    default = _seed_proxy(tmp_path / "pb" / P.proxy_spec_id(P.DEFAULT_PROXY_SPEC),
                          P.DEFAULT_PROXY_SPEC, n_refs=1)
    got = P.load_named_dataset("proxy", None, proxy_base=tmp_path / "pb")
    assert got.root == default.resolve() and got.n_images == 2


def test_prepared_dataset_summary_keeps_every_field(kadid_prepared):
    prep = kadid_prepared
    ds = prep.dataset
    assert (prep.name, prep.info, prep.version) == ("kadid10k", ds.info, ds.version)
    assert prep.table is ds.table
    assert prep.work_dir == prep.splits_path.parent and prep.work_dir.name == ds.version
    assert prep.to_json() == {
        "dataset": "kadid10k", "root": str(ds.root), "version": ds.version, "n_images": 4,
        "n_missing": 0, "label": "MOS", "lower_is_better": False, "kind": "synthetic",
        "splits_version": prep.splits.version, "splits_method": prep.splits.method,
        "n_splits": 10, "splits_path": str(prep.splits_path)}
    assert P.dataset_work_dir(str(prep.work_dir.parent.parent), ds) == prep.work_dir


def test_prepare_dataset_versions_its_splits_file(tmp_path):
    from _eval_helpers import make_kadid_like

    from shamisa_core.evaluation.splits import make_splits

    data = make_kadid_like(tmp_path / "d", n_refs=3, kinds=(1,), levels=(1, 2), size=(8, 8),
                           drop=1)
    cache = tmp_path / "cache"
    prep = P.prepare_dataset("kadid10k", data, cache, proxy_base=tmp_path)
    work = cache / "kadid10k" / prep.version
    assert (prep.work_dir, prep.splits_path) == (work, work / "splits.parquet")
    assert prep.dataset.n_missing == 1 and prep.to_json()["n_missing"] == 1
    same = make_splits(prep.table, prep.info, config=SplitConfig(),
                       dataset_version=prep.version)
    assert prep.splits.version == same.version and prep.splits.dataset_version == prep.version
    assert (prep.splits.seed, prep.splits.n_splits) == (27, 10)
    stamp = prep.splits_path.stat().st_mtime_ns
    again = P.prepare_dataset("kadid10k", data, cache, proxy_base=tmp_path, build=False)
    assert again.splits.version == prep.splits.version
    assert prep.splits_path.stat().st_mtime_ns == stamp  # read, not rewritten
    cfg = SplitConfig(seed=5, n_splits=3)
    other = P.prepare_dataset("kadid10k", data, cache, proxy_base=tmp_path, split_config=cfg)
    tag = hashlib.sha256(repr(cfg).encode()).hexdigest()[:8]
    assert other.splits_path == work / f"splits-{tag}.parquet"
    assert (other.splits.seed, other.splits.n_splits) == (5, 3)
    assert other.splits.version == make_splits(prep.table, prep.info, config=cfg,
                                               dataset_version=prep.version).version
    missing = SplitConfig(seed=6)
    with pytest.raises(FileNotFoundError) as info:
        P.prepare_dataset("kadid10k", data, cache, proxy_base=tmp_path, split_config=missing,
                          build=False)
    path = work / f"splits-{hashlib.sha256(repr(missing).encode()).hexdigest()[:8]}.parquet"
    assert _msg(info) == f"no splits file {path}; materialize benchmark_datasets[kadid10k] first"
    assert not path.exists()


def test_an_unreadable_splits_file_is_rebuilt_with_a_warning(tmp_path):
    from _eval_helpers import make_kadid_like

    data = make_kadid_like(tmp_path / "d", n_refs=3, kinds=(1,), levels=(1,), size=(8, 8))
    prep = P.prepare_dataset("kadid10k", data, tmp_path / "c", proxy_base=tmp_path)
    prep.splits_path.write_bytes(b"not parquet")
    with pytest.raises(Exception) as info:
        P.prepare_dataset("kadid10k", data, tmp_path / "c", proxy_base=tmp_path, build=False)
    kind, text = type(info.value).__name__, str(info.value)
    with pytest.warns(UserWarning) as rec:
        again = P.prepare_dataset("kadid10k", data, tmp_path / "c", proxy_base=tmp_path)
    assert [str(r.message) for r in rec] == [
        f"unreadable splits file {prep.splits_path} ({kind}: {text}); rebuilding it"]
    assert Path(rec[0].filename).name != "prepared.py"  # attributed to a caller
    assert again.splits.version == prep.splits.version
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P.prepare_dataset("kadid10k", data, tmp_path / "c", proxy_base=tmp_path, build=False)


def test_a_splits_file_of_another_dataset_version_is_rebuilt(tmp_path):
    import shutil

    from _eval_helpers import make_kadid_like

    data = make_kadid_like(tmp_path / "d", n_refs=3, kinds=(1,), levels=(1,), size=(8, 8))
    old = P.prepare_dataset("kadid10k", data, tmp_path / "c", proxy_base=tmp_path)
    frame = pd.read_csv(data / "dmos.csv")
    frame.loc[0, "dmos"] = 1.25  # a corrected label: same images, another version
    frame.to_csv(data / "dmos.csv", index=False)
    new_version = P.load_named_dataset("kadid10k", data, proxy_base=tmp_path).version
    assert new_version != old.version
    target = tmp_path / "c" / "kadid10k" / new_version / "splits.parquet"
    target.parent.mkdir(parents=True)
    shutil.copyfile(old.splits_path, target)  # a stale file where the new one belongs
    with pytest.raises(Exception) as info:  # noqa: PT011 - SplitError
        P.prepare_dataset("kadid10k", data, tmp_path / "c", proxy_base=tmp_path, build=False)
    assert str(info.value) == (f"{target}: made for dataset version {old.version}, "
                               f"not {new_version}")
    with pytest.warns(UserWarning, match=re.escape(f"unreadable splits file {target} (")):
        new = P.prepare_dataset("kadid10k", data, tmp_path / "c", proxy_base=tmp_path)
    assert new.splits.dataset_version == new_version != old.splits.dataset_version


# ==============================================================================================
# cli_evaluate: the options of `shamisa evaluate` and what each one changes

from shamisa_core.evaluation import cli_evaluate as CLI  # noqa: E402


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser(prog="shamisa")
    sub = parser.add_subparsers(dest="cmd")
    CLI.add_evaluate_parser(sub)
    return parser, sub.choices["evaluate"]


def _parse(*argv: str) -> argparse.Namespace:
    return _parser()[0].parse_args(["evaluate", *argv])


def test_every_option_parses_to_its_field_and_type():
    args = _parse("--encoder", "models:/m/1", "--dataset", "proxy", "--dataset", "live=/d/l",
                  "--cross", "--fr", "--json", "o.json", "--no-twins", "--crop-size", "96",
                  "--cache-dir", "c", "--proxy-dir", "p", "--mlflow-dir", "m", "--seed", "5",
                  "--batch-size", "30", "--proxy-refs", "3", "--proxy-types", "jpeg,gaublur",
                  "--proxy-levels", "0,4", "--plots", "pics", "--quiet")
    assert {k: v for k, v in vars(args).items() if not callable(v)} == {
        "cmd": "evaluate", "encoder": "models:/m/1", "dataset": ["proxy", "live=/d/l"],
        "cross": True, "fr": True, "json": "o.json", "no_twins": True, "crop_size": 96,
        "cache_dir": "c", "proxy_dir": "p", "mlflow_dir": "m", "seed": 5, "batch_size": 30,
        "proxy_refs": 3, "proxy_types": "jpeg,gaublur", "proxy_levels": "0,4", "plots": "pics",
        "quiet": True}
    assert _parse("--encoder", "e", "--dataset", "proxy", "--no-baseline").no_twins is True


@pytest.mark.parametrize("option", ["--crop-size", "--seed", "--batch-size", "--proxy-refs"])
def test_integer_options_refuse_other_text(option, capsys):
    with pytest.raises(SystemExit) as info:
        _parse("--encoder", "e", "--dataset", "proxy", option, "1.5")
    assert info.value.code == 2
    assert f"argument {option}: invalid int value: '1.5'" in capsys.readouterr().err


@pytest.mark.parametrize("argv,missing", [
    (["--dataset", "proxy"], "--encoder"),
    (["--encoder", "e"], "--dataset"),
])
def test_encoder_and_dataset_are_required(argv, missing, capsys):
    with pytest.raises(SystemExit) as info:
        _parse(*argv)
    assert info.value.code == 2
    assert f"the following arguments are required: {missing}" in capsys.readouterr().err


def _help_of(parser: argparse.ArgumentParser) -> dict[str, tuple[str | None, str]]:
    """option -> (metavar, help as printed, on one line)."""
    out = {}
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.option_strings:
            text = formatter._expand_help(action) if action.help else ""
            out[action.option_strings[0]] = (action.metavar, " ".join(text.split()))
    return out


def test_evaluate_help_says_what_each_option_does():
    from shamisa_core.evaluation.roots import DATASET_NAMES

    parser, evaluate = _parser()
    helps = _help_of(evaluate)
    assert helps["--encoder"] == ("PATH|URI",
                                  "encoder.pt, a folder holding it, or an MLflow model/run URI")
    assert helps["--dataset"] == ("NAME=ROOT", "a benchmark and its folder; NAME in "
                                  f"{', '.join(DATASET_NAMES)} (proxy needs no ROOT); repeat for "
                                  "several")
    assert helps["--cross"] == (None, "also the cross-dataset protocol (§7.7)")
    assert helps["--fr"] == (None, "also the full-reference protocol on |h_ref - h_dist| (§7.8)")
    assert helps["--json"] == ("OUT", "write the full result as JSON (atomically)")
    assert helps["--no-twins"] == (None, "skip the twins (init twin: the encoder's own init "
                                   "without SHAMISA training; random twin: random init; both "
                                   "with the training seed)")
    assert helps["--crop-size"] == ("N", "crop size (default: the encoder's training patch size)")
    assert helps["--cache-dir"] == (None, "splits, feature cache, regressors and the proxy "
                                    "(default: outputs/evaluation)")
    assert helps["--proxy-dir"] == (None, "where the proxy is built, one folder per spec "
                                    "(default: outputs/benchmarks/proxy, shared with the Dagster "
                                    "pipeline)")
    assert helps["--mlflow-dir"] == (None, "MLflow SQLite store used to resolve models:/ and "
                                     "runs:/ URIs (default: $MLFLOW_TRACKING_URI, else "
                                     "outputs/mlflow)")
    assert helps["--seed"] == (None, "split seed (27 + split index)")
    assert helps["--batch-size"] == (None, "crops per encoder call")
    assert helps["--proxy-refs"] == ("N", "proxy: number of reference photos (default: benchmark "
                                     "default)")
    assert helps["--proxy-types"] == ("T1,T2,...", "proxy: distortion types (engine keys; "
                                      "default: all 26)")
    assert helps["--proxy-levels"] == ("L1,L2,...", "proxy: severities t in [0, 4] (default: "
                                       "0,1,2,3,4)")
    assert helps["--plots"] == ("DIR", "also draw the pictures (per-type SRCC bars vs twins, "
                                "predicted vs true scatter, t-SNE of features) as PNG files in DIR")
    assert helps["--quiet"] == (None, "no progress lines on stderr")
    assert set(helps) == {"-h", "--encoder", "--dataset", "--cross", "--fr", "--json",
                          "--no-twins", "--crop-size", "--cache-dir", "--proxy-dir",
                          "--mlflow-dir", "--seed", "--batch-size", "--proxy-refs",
                          "--proxy-types", "--proxy-levels", "--plots", "--quiet"}
    usage = " ".join(evaluate.format_usage().split())
    assert "--encoder PATH|URI --dataset NAME=ROOT" in usage
    # the command list names the subcommand with its one-line summary
    listing = " ".join(parser.format_help().split())
    assert "evaluate evaluate an encoder on IQA benchmarks (trained vs untrained twin)" in listing


def test_evaluate_help_keeps_the_module_description_as_written():
    _, evaluate = _parser()
    text = evaluate.format_help()
    assert evaluate.description == CLI.__doc__
    # RawDescriptionHelpFormatter: the synopsis keeps its own line breaks and indentation
    assert ("    shamisa evaluate --encoder PATH|URI --dataset NAME=ROOT [--dataset ...] "
            "[--cross] [--fr]\n                     [--json OUT] [--no-twins] [--crop-size N]\n"
            in text)
    assert "``shamisa evaluate``: benchmark an encoder (and its twins) on IQA datasets." in text


def test_proxy_options_make_the_spec():
    def spec(*argv):
        return CLI.proxy_spec_from_args(_parse("--encoder", "e", "--dataset", "proxy", *argv))

    assert spec() is None
    assert spec("--proxy-refs", "3") == ProxySpec(n_refs=3)
    assert spec("--proxy-types", " jpeg, ,gaublur,") == ProxySpec(types=("jpeg", "gaublur"))
    assert spec("--proxy-levels", "0, 2.5,,4 ") == ProxySpec(levels=(0.0, 2.5, 4.0))
    assert spec("--proxy-types", "jpeg", "--proxy-levels", "1") == ProxySpec(types=("jpeg",),
                                                                            levels=(1.0,))
    assert spec("--proxy-types", ",") == ProxySpec()  # nothing named: the default
    with pytest.raises(ValueError, match=re.escape("proxy levels must lie in [0, 4], got (5.0,)")):
        spec("--proxy-levels", "5")


def test_a_crop_below_8_is_refused_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    args = _parse("--encoder", str(tmp_path / "none.pt"), "--dataset", "proxy", "--crop-size", "7",
                  "--cache-dir", str(tmp_path / "c"))
    with pytest.raises(ValueError) as info:
        CLI.run_evaluate(args)
    assert _msg(info) == "--crop-size 7 is too small (at least 8)"
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"  # no download bars
    assert not (tmp_path / "c").exists()
    args.crop_size = 8  # the smallest accepted: it gets as far as the missing encoder
    with pytest.raises(FileNotFoundError):
        CLI.run_evaluate(args)


def test_run_evaluate_end_to_end_with_every_option(tmp_path, capsys):
    from _eval_helpers import make_encoder, make_kadid_like

    from shamisa_core.evaluation.report import format_table
    from shamisa_core.evaluation.splits import read_splits

    enc = make_encoder(tmp_path / "enc" / "encoder.pt", seed=2, patch_size=16)
    data = make_kadid_like(tmp_path / "kadid", n_refs=6, kinds=(1,), levels=(1, 3),
                           size=(16, 16), seed=4)
    spec = ProxySpec(n_refs=2, types=("gaublur",), levels=(1.0, 3.0))
    proxy = _seed_proxy(tmp_path / "pd" / P.proxy_spec_id(spec), spec, n_refs=6)
    # the default spec's folder holds another (tiny) proxy: the options must pick the right one
    _seed_proxy(tmp_path / "pd" / P.proxy_spec_id(P.DEFAULT_PROXY_SPEC), P.DEFAULT_PROXY_SPEC,
                n_refs=6)
    (tmp_path / "pd" / P.proxy_spec_id(P.DEFAULT_PROXY_SPEC) / "dmos.csv").write_text(
        (proxy / "dmos.csv").read_text().replace("gaublur", "other"))
    out = tmp_path / "out" / "r.json"
    args = _parse("--encoder", str(enc), "--dataset", "proxy", "--dataset", f"kadid10k={data}",
                  "--cross", "--fr", "--no-twins", "--crop-size", "8", "--seed", "5",
                  "--batch-size", "30", "--cache-dir", str(tmp_path / "cache"),
                  "--proxy-dir", str(tmp_path / "pd"), "--proxy-refs", "2",
                  "--proxy-types", "gaublur", "--proxy-levels", "1,3", "--json", str(out),
                  "--plots", str(tmp_path / "pics"))
    with threadpool_limits(1):  # t-SNE's OpenMP threads spin for seconds on a busy machine
        assert CLI.run_evaluate(args) == 0
    captured = capsys.readouterr()
    data_json = json.loads(out.read_text())
    assert captured.out == format_table(data_json) + "\n"
    err = captured.err.splitlines()
    made = sorted(p.name for p in (tmp_path / "pics").glob("*.png"))
    assert {"scatter_proxy.png", "scatter_kadid10k.png"} <= set(made)
    assert err[-2:] == [f"wrote {out}", f"wrote {len(made)} pictures to {tmp_path / 'pics'}"]
    assert any(re.fullmatch(r"kadid10k: 12 images, 0 missing, version [0-9a-f]{16}", ln)
               for ln in err)
    meta = data_json["meta"]
    assert (meta["crop_size"], meta["seed"]) == (8, 5)
    assert meta["proxy_spec"] == json.loads((proxy / "proxy_spec.json").read_text())
    assert meta["datasets"]["proxy"]["root"] == str(proxy.resolve())
    assert "twins" not in data_json and "random_twin" not in json.dumps(meta["twins"])
    assert set(data_json["cross"]) == {"proxy", "kadid10k"} and set(data_json["fr"]) == {
        "proxy", "kadid10k"}
    for name in ("proxy", "kadid10k"):
        info = meta["datasets"][name]
        split_path = Path(info["splits_path"])
        tag = hashlib.sha256(repr(SplitConfig(seed=5)).encode()).hexdigest()[:8]
        assert split_path == tmp_path / "cache" / name / info["version"] / f"splits-{tag}.parquet"
        assert data_json[name]["features"]["crop_size"] == 8
        assert Path(data_json[name]["features"]["path"]).parent == split_path.parent / "features"
    table = P.prepare_dataset("kadid10k", data, tmp_path / "cache").table
    assert read_splits(Path(meta["datasets"]["kadid10k"]["splits_path"]), table).seed == 5


def test_mlflow_uris_resolve_in_the_given_store_before_the_environment(tmp_path, monkeypatch):
    from _eval_helpers import fresh_mlflow_dir

    monkeypatch.chdir(tmp_path)  # whatever store is opened by mistake stays in tmp_path
    store = fresh_mlflow_dir(tmp_path / "store")
    blocked = tmp_path / "file"
    blocked.write_text("a file where the environment's store folder would be")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocked}/sub/mlflow.db")
    base_argv = ("--encoder", "models:/shamisa-iqa@champion", "--dataset", "proxy", "--quiet",
                 "--cache-dir", str(tmp_path / "c"), "--proxy-dir", str(tmp_path / "pd"))
    with pytest.raises(ValueError) as info:
        CLI.run_evaluate(_parse(*base_argv, "--mlflow-dir", str(store)))
    assert _msg(info).startswith("cannot resolve models:/shamisa-iqa@champion: ")
    assert "shamisa-iqa" in _msg(info)[len("cannot resolve models:/shamisa-iqa@champion: "):]
    with pytest.raises(NotADirectoryError) as info:  # the environment's store is unusable
        CLI.run_evaluate(_parse(*base_argv))
    assert str(blocked / "sub") in _msg(info)  # ... and it is the one opened

