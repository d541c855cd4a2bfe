"""CSIQ (METHOD.md §7.1).

Layout under the dataset root: the collection list ``CSIQ.txt`` (CSV ``dis_img_path, dis_type,
ref_img_path, score``, paths starting with ``CSIQ/``) + ``src_imgs/`` and ``dst_imgs/``.
The level is parsed from the image name ``<ref>.<TYPE>.<level>.<ext>``; the type comes from the
``dis_type`` column (or the name's ``<TYPE>`` field if the column is absent).
Labels are DMOS (lower = better), range (0, 1).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pandas as pd

from .base import (
    DatasetError,
    DatasetInfo,
    DatasetLoader,
    make_table,
    read_collection_list,
    require_file,
)

INFO = DatasetInfo(
    name="csiq",
    kind="synthetic",
    score_range=(0.0, 1.0),
    lower_is_better=True,
    label="DMOS",
    layout="CSIQ.txt (collection CSV) with src_imgs/ and dst_imgs/",
)


def parse_name(name: str) -> tuple[str, str, int]:
    """``'1600.AWGN.3.png' -> ('1600', 'AWGN', 3)``: reference, type field, level."""
    parts = PurePosixPath(name).name.split(".")
    if len(parts) < 4 or not parts[-2].isdigit():
        raise ValueError(f"CSIQ image name {name!r} is not <ref>.<TYPE>.<level>.<ext>")
    return ".".join(parts[:-3]), parts[-3], int(parts[-2])


def read(root: Path) -> pd.DataFrame:
    """Read ``CSIQ.txt`` into the common table."""
    path = require_file(
        root, ["CSIQ.txt"],
        "the CSIQ collection list (CSV: dis_img_path, dis_type, ref_img_path, score)",
    )
    frame = read_collection_list(path)
    try:
        parsed = [parse_name(p) for p in frame["dis_rel"]]
    except ValueError as exc:
        raise DatasetError(f"malformed annotation file {path}: {exc}") from exc
    types = (frame["dis_type"].astype(str).tolist() if "dis_type" in frame.columns
             else [t for _, t, _ in parsed])
    return make_table(
        root,
        frame["dis_rel"].tolist(),
        frame["score"].to_numpy(),
        references=[PurePosixPath(p).stem for p in frame["ref_rel"]],
        reference_names=frame["ref_rel"].tolist(),
        distortion_types=types,
        levels=[lvl for _, _, lvl in parsed],
        resolve_case=True,
    )


LOADER = DatasetLoader(info=INFO, read=read)
