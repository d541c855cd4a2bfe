"""LIVE Image Quality Assessment Database, Release 2 (METHOD.md §7.1).

Two accepted layouts under the dataset root (the folder holding ``refimgs/`` etc.):

1. the collection list ``LIVE.txt`` (CSV ``dis_img_path, dis_type, ref_img_path, score``, paths
   starting with ``LIVE/``), as the reference reads it; used when present;
2. the official release files ``dmos.mat`` (``dmos``, ``orgs``) and ``refnames_all.mat``
   (``refnames_all``), 982 entries in the order jp2k (227), jpeg (233), wn (174), gblur (174),
   fastfading (174), entry ``j`` of a folder being ``<folder>/img<j>.bmp``. Entries with
   ``orgs == 1`` are the undistorted originals and are excluded (779 images remain).

Labels are DMOS (lower = better), nominal range (1, 100). LIVE has no per-image level.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from .base import (
    DatasetError,
    DatasetInfo,
    DatasetLoader,
    make_table,
    mat_cell_string,
    read_collection_list,
    read_mat_variable,
    require_file,
)

INFO = DatasetInfo(
    name="live",
    kind="synthetic",
    score_range=(1.0, 100.0),
    lower_is_better=True,
    label="DMOS",
    layout=(
        "LIVE.txt (collection CSV) or dmos.mat + refnames_all.mat, with refimgs/ jp2k/ jpeg/ "
        "wn/ gblur/ fastfading/"
    ),
)

# Official order of the 982 entries of dmos.mat (folder, number of images).
OFFICIAL_ORDER: tuple[tuple[str, int], ...] = (
    ("jp2k", 227),
    ("jpeg", 233),
    ("wn", 174),
    ("gblur", 174),
    ("fastfading", 174),
)
N_OFFICIAL = sum(n for _, n in OFFICIAL_ORDER)


def official_names() -> list[tuple[str, str]]:
    """(folder, relative image name) for the 982 entries of ``dmos.mat``, in file order."""
    return [(folder, f"{folder}/img{j}.bmp") for folder, n in OFFICIAL_ORDER
            for j in range(1, n + 1)]


def _read_collection(root: Path, path: Path) -> pd.DataFrame:
    frame = read_collection_list(path)
    types = (frame["dis_type"].astype(str).tolist() if "dis_type" in frame.columns
             else [PurePosixPath(p).parts[0] for p in frame["dis_rel"]])
    return make_table(
        root,
        frame["dis_rel"].tolist(),
        frame["score"].to_numpy(),
        references=[PurePosixPath(p).stem for p in frame["ref_rel"]],
        reference_names=frame["ref_rel"].tolist(),
        distortion_types=types,
    )


def _read_official(root: Path, dmos_path: Path, refs_path: Path) -> pd.DataFrame:
    dmos = read_mat_variable(dmos_path, "dmos")
    orgs = read_mat_variable(dmos_path, "orgs")
    refs = read_mat_variable(refs_path, "refnames_all")
    for path, key, arr in ((dmos_path, "dmos", dmos), (dmos_path, "orgs", orgs),
                           (refs_path, "refnames_all", refs)):
        if arr.size != N_OFFICIAL:
            raise DatasetError(
                f"malformed annotation file {path}: {key!r} has {arr.size} entries, "
                f"expected {N_OFFICIAL} (jp2k 227, jpeg 233, wn 174, gblur 174, fastfading 174)"
            )
    try:
        dmos = dmos.astype(np.float64)
        orgs = orgs.astype(np.float64)
    except (TypeError, ValueError) as exc:
        msg = f"malformed annotation file {dmos_path}: non-numeric 'dmos'/'orgs'"
        raise DatasetError(msg) from exc
    keep = orgs != 1
    entries = official_names()
    ref_names = [mat_cell_string(c) for c in refs]
    rows = [i for i in range(N_OFFICIAL) if keep[i]]
    return make_table(
        root,
        [entries[i][1] for i in rows],
        dmos[rows],
        references=[PurePosixPath(ref_names[i]).stem for i in rows],
        reference_names=[f"refimgs/{ref_names[i]}" for i in rows],
        distortion_types=[entries[i][0] for i in rows],
    )


def read(root: Path) -> pd.DataFrame:
    """Read LIVE's annotation (``LIVE.txt`` if present, else the official ``.mat`` files)."""
    listing = root / "LIVE.txt"
    if listing.is_file():
        return _read_collection(root, listing)
    if (root / "dmos.mat").is_file() or (root / "refnames_all.mat").is_file():
        dmos_path = require_file(root, ["dmos.mat"], "MATLAB file with 'dmos' and 'orgs' (982)")
        refs_path = require_file(
            root, ["refnames_all.mat"], "MATLAB file with 'refnames_all' (982 names)"
        )
        return _read_official(root, dmos_path, refs_path)
    raise DatasetError(
        f"missing annotation file {listing} (or {root / 'dmos.mat'} + "
        f"{root / 'refnames_all.mat'}): expected the LIVE.txt collection list "
        "(dis_img_path, dis_type, ref_img_path, score) or the official LIVE Release 2 files"
    )


LOADER = DatasetLoader(info=INFO, read=read)
