"""KonIQ-10k (DECISIONS 15; not in the reference's benchmark list).

Layout under the dataset root: ``koniq10k_scores_and_distributions.csv`` (columns
``image_name`` and ``MOS``; other columns ignored) + ``1024x768/``.
Labels are MOS on the 1..5 rating scale (higher = better).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .base import (
    DatasetInfo,
    DatasetLoader,
    make_table,
    parse_scores,
    read_csv_checked,
    require_file,
)

INFO = DatasetInfo(
    name="koniq10k",
    kind="authentic",
    score_range=(1.0, 5.0),
    lower_is_better=False,
    label="MOS",
    layout="koniq10k_scores_and_distributions.csv (image_name, MOS) with 1024x768/",
)
SCORES_FILE = "koniq10k_scores_and_distributions.csv"
IMAGE_FOLDER = "1024x768"


def read(root: Path) -> pd.DataFrame:
    """Read the KonIQ-10k scores CSV into the common table."""
    path = require_file(root, [SCORES_FILE], "CSV with columns image_name and MOS")
    frame = read_csv_checked(path, ["image_name", "MOS"])
    scores = parse_scores(frame["MOS"], path, "MOS")
    names = [f"{IMAGE_FOLDER}/{str(n).strip()}" for n in frame["image_name"]]
    return make_table(root, names, scores)


LOADER = DatasetLoader(info=INFO, read=read)
