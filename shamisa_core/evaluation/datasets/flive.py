"""FLIVE / PaQ-2-PiQ (METHOD.md §7.1-7.2).

Layout under the dataset root: ``labels_image.csv`` (columns ``name`` and ``mos``; the
``name_image``/``mos_image`` spelling is also accepted) + ``database/`` holding the images at
``database/<name>``. Labels are MOS (higher = better), range (1, 100).

Official split (METHOD.md §7.2): a ``split``, ``set`` or ``phase`` column gives each row's role
(train/val/test; ``validation``/``valid`` mean val); otherwise an ``is_test`` column marks the
test rows and the first 12.5 % (file order, rounded) of the other rows are val. The role goes to
the table's ``official_split`` column; without such columns no official split exists and
``splits.py`` falls back to random splits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .base import (
    DatasetError,
    DatasetInfo,
    DatasetLoader,
    make_table,
    parse_scores,
    read_csv_checked,
    require_file,
)

INFO = DatasetInfo(
    name="flive",
    kind="authentic",
    score_range=(1.0, 100.0),
    lower_is_better=False,
    label="MOS",
    layout="labels_image.csv (name, mos) with database/",
)
LABELS_FILE = "labels_image.csv"
IMAGE_FOLDER = "database"
VAL_FRACTION_OF_NON_TEST = 0.125

_ROLE_WORDS = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}
_TRUE_WORDS = {"1", "true", "yes", "y", "t"}
_FALSE_WORDS = {"0", "false", "no", "n", "f", ""}


def _column(frame: pd.DataFrame, options: tuple[str, ...], path: Path) -> str:
    for option in options:
        if option in frame.columns:
            return option
    raise DatasetError(
        f"malformed annotation file {path}: needs one of the columns {list(options)}; "
        f"found {list(frame.columns)}"
    )


def official_roles(frame: pd.DataFrame, path: Path) -> list[str] | None:
    """Per-row role from a split/set/phase or is_test column, or None if there is none."""
    lower = {c.lower(): c for c in frame.columns}
    for key in ("split", "set", "phase"):
        if key in lower:
            values = [str(v).strip().lower() for v in frame[lower[key]]]
            bad = sorted({v for v in values if v not in _ROLE_WORDS})
            if bad:
                raise DatasetError(
                    f"malformed annotation file {path}: column {lower[key]!r} has values {bad}, "
                    "expected train/val/test"
                )
            return [_ROLE_WORDS[v] for v in values]
    if "is_test" in lower:
        # an empty cell (read as NaN) is "not a test row", as the word "" is
        words = ["" if pd.isna(v) else str(v).strip().lower() for v in frame[lower["is_test"]]]
        bad = sorted({w for w in words if w not in _TRUE_WORDS | _FALSE_WORDS})
        if bad:
            raise DatasetError(
                f"malformed annotation file {path}: column 'is_test' has values {bad[:5]}, "
                "expected booleans"
            )
        is_test = np.array([w in _TRUE_WORDS for w in words])
        non_test = np.flatnonzero(~is_test)
        n_val = int(round(VAL_FRACTION_OF_NON_TEST * non_test.size))
        roles = np.where(is_test, "test", "train").astype(object)
        roles[non_test[:n_val]] = "val"
        return [str(r) for r in roles]
    return None


def read(root: Path) -> pd.DataFrame:
    """Read ``labels_image.csv`` into the common table (+ ``official_split`` where given)."""
    path = require_file(root, [LABELS_FILE], "CSV with columns name and mos")
    frame = read_csv_checked(path, [])
    name_col = _column(frame, ("name", "name_image"), path)
    mos_col = _column(frame, ("mos", "mos_image"), path)
    scores = parse_scores(frame[mos_col], path, mos_col)
    names = [f"{IMAGE_FOLDER}/{str(n).strip()}" for n in frame[name_col]]
    table = make_table(root, names, scores)
    roles = official_roles(frame, path)
    if roles is not None:
        table["official_split"] = roles
    return table


LOADER = DatasetLoader(info=INFO, read=read)
