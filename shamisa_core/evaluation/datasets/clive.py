"""CLIVE, the LIVE In the Wild Image Quality Challenge database (DECISIONS 15).

Layout under the dataset root: ``Data/AllMOS_release.mat`` (variable ``AllMOS_release``,
1169 MOS values) + ``Data/AllImages_release.mat`` (variable ``AllImages_release``, 1169 names)
+ ``Images/``. The release lists seven training images ``t1.bmp``..``t7.bmp`` first (kept in
``Images/trainingImages/``); they are not part of the benchmark and are excluded by name,
leaving the usual 1162 images. Labels are MOS (higher = better), range (0, 100).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .base import (
    DatasetError,
    DatasetInfo,
    DatasetLoader,
    make_table,
    mat_cell_string,
    read_mat_variable,
    require_file,
)

INFO = DatasetInfo(
    name="clive",
    kind="authentic",
    score_range=(0.0, 100.0),
    lower_is_better=False,
    label="MOS",
    layout="Data/AllMOS_release.mat + Data/AllImages_release.mat with Images/",
)
MOS_FILE = "Data/AllMOS_release.mat"
NAMES_FILE = "Data/AllImages_release.mat"
_TRAINING_IMAGE = re.compile(r"^t\d+\.bmp$", re.IGNORECASE)


def is_training_image(name: str) -> bool:
    """True for the seven CLIVE training images (``t1.bmp``..``t7.bmp``)."""
    return _TRAINING_IMAGE.match(name) is not None


def read(root: Path) -> pd.DataFrame:
    """Read the two CLIVE ``.mat`` files into the common table (training images excluded)."""
    mos_path = require_file(root, [MOS_FILE], "MATLAB file with variable 'AllMOS_release'")
    names_path = require_file(root, [NAMES_FILE], "MATLAB file with variable 'AllImages_release'")
    mos = read_mat_variable(mos_path, "AllMOS_release")
    names = [mat_cell_string(c) for c in read_mat_variable(names_path, "AllImages_release")]
    if len(names) != mos.size:
        raise DatasetError(
            f"malformed annotation files {mos_path} and {names_path}: {mos.size} MOS values "
            f"but {len(names)} image names"
        )
    try:
        mos = mos.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"malformed annotation file {mos_path}: non-numeric MOS") from exc
    keep = [i for i, n in enumerate(names) if not is_training_image(n)]
    if not np.all(np.isfinite(mos[keep])):
        raise DatasetError(f"malformed annotation file {mos_path}: non-finite MOS")
    return make_table(root, [f"Images/{names[i]}" for i in keep], mos[keep])


LOADER = DatasetLoader(info=INFO, read=read)
