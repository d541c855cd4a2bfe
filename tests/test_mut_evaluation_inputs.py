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
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import torch
from PIL import Image

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
    with pytest.raises(DatasetError, match=re.escape("missing column(s) ['b']")):
        base.read_csv_checked(path, ["a", "b"])


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
    with pytest.raises(DatasetError, match="column 'score' row 0"):
        base.read_collection_list(path)
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
    path.write_bytes(b"2.5 i01_01_1.bmp\n\n3 i02_02_2.bmp\n")
    scores, names = tid2013.read_mos_with_names(path)
    assert scores.dtype == np.float64 and scores.tolist() == [2.5, 3.0]
    assert names == ["i01_01_1.bmp", "i02_02_2.bmp"]
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
    with pytest.raises(DatasetError, match="column 'dmos' row 0 has non-numeric score 'x'"):
        kadid10k.read(tmp_path)
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
    (tmp_path / "koniq10k_scores_and_distributions.csv").write_text("image_name,MOS\na.jpg,?\n")
    with pytest.raises(DatasetError, match="column 'MOS' row 0 has non-numeric score '\\?'"):
        koniq10k.read(tmp_path)
    (tmp_path / "koniq10k_scores_and_distributions.csv").write_text("image_name,mos\na.jpg,1\n")
    with pytest.raises(DatasetError, match=re.escape("missing column(s) ['MOS']")):
        koniq10k.read(tmp_path)


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
                  "Brightness": [1, None, 2]}).to_excel(book, index=False)
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
    with pytest.raises(DatasetError, match=re.escape("['mos', 'mos_image']; found ['name', "
                                                     "'score']")):
        flive.read(tmp_path)
    pd.DataFrame({"name": ["a.jpg"], "mos_image": ["x"]}).to_csv(path, index=False)
    with pytest.raises(DatasetError, match="column 'mos_image' row 0 has non-numeric score 'x'"):
        flive.read(tmp_path)
    path.unlink()
    with pytest.raises(DatasetError) as info:
        flive.read(tmp_path)
    assert _msg(info) == f"missing annotation file {path}: expected CSV with columns name and mos"
