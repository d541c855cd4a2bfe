"""SPAQ (METHOD.md §7.1).

Layout under the dataset root: ``MOS and Image attribute scores.xlsx`` (also accepted under
``Annotations/``; columns ``Image name`` and ``MOS``) + ``TestImage/`` (``Dataset/TestImage/``
is accepted when ``TestImage/`` is absent). Labels are MOS (higher = better), range (0, 100).
Images are resized (bicubic) so that the shorter side is 512 before cropping
(``resize_short_side``), as in the reference.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd

from .base import (
    DatasetError,
    DatasetInfo,
    DatasetLoader,
    make_table,
    parse_scores,
    require_columns,
    require_file,
)

INFO = DatasetInfo(
    name="spaq",
    kind="authentic",
    score_range=(0.0, 100.0),
    lower_is_better=False,
    label="MOS",
    layout="MOS and Image attribute scores.xlsx (Image name, MOS) with TestImage/",
    resize_short_side=512,
)
SCORES_FILE = "MOS and Image attribute scores.xlsx"


def image_folder(root: Path) -> str:
    """``TestImage`` (official), or ``Dataset/TestImage`` where only that exists."""
    if not (root / "TestImage").is_dir() and (root / "Dataset" / "TestImage").is_dir():
        return "Dataset/TestImage"
    return "TestImage"


def read(root: Path) -> pd.DataFrame:
    """Read the SPAQ score workbook into the common table."""
    path = require_file(
        root, [SCORES_FILE, f"Annotations/{SCORES_FILE}"],
        "an Excel workbook with columns 'Image name' and 'MOS'",
    )
    try:
        frame = pd.read_excel(path, engine="openpyxl")
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as exc:
        msg = f"malformed annotation file {path}: cannot read workbook ({exc})"
        raise DatasetError(msg) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    require_columns(frame, ["Image name", "MOS"], path)
    frame = frame.dropna(how="all")
    if len(frame) == 0:
        raise DatasetError(f"malformed annotation file {path}: no rows")
    scores = parse_scores(frame["MOS"], path, "MOS")
    folder = image_folder(root)
    names = [f"{folder}/{str(n).strip()}" for n in frame["Image name"]]
    return make_table(root, names, scores)


LOADER = DatasetLoader(info=INFO, read=read)
