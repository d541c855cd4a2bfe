"""KADID-10k (METHOD.md §7.1).

Layout under the dataset root: ``dmos.csv`` (columns ``dist_img``, ``ref_img``, ``dmos``; the
column is called dmos but higher = better) + ``images/``. Names are ``I<nn>_<tt>_<ll>.png``:
reference ``nn`` (``ref_img``), distortion type ``tt`` (1..25), level ``ll`` (1..5).
Labels are MOS (higher = better), range (1, 5).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

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
    name="kadid10k",
    kind="synthetic",
    score_range=(1.0, 5.0),
    lower_is_better=False,
    label="MOS",
    layout="dmos.csv (dist_img, ref_img, dmos) with images/",
)

# The 25 KADID-10k distortion types, by their number in the file names.
DISTORTION_TYPES: dict[int, str] = {
    1: "gaussian_blur",
    2: "lens_blur",
    3: "motion_blur",
    4: "color_diffusion",
    5: "color_shift",
    6: "color_quantization",
    7: "color_saturation_hsv",
    8: "color_saturation_lab",
    9: "jpeg2000",
    10: "jpeg",
    11: "white_noise",
    12: "white_noise_color_component",
    13: "impulse_noise",
    14: "multiplicative_noise",
    15: "denoise",
    16: "brighten",
    17: "darken",
    18: "mean_shift",
    19: "jitter",
    20: "non_eccentricity_patch",
    21: "pixelate",
    22: "quantization",
    23: "color_block",
    24: "high_sharpen",
    25: "contrast_change",
}

_NAME = re.compile(r"^I(\d+)_(\d+)_(\d+)\.png$", re.IGNORECASE)


def parse_name(name: str, known_types: bool = True) -> tuple[int, int, int]:
    """``'I01_08_3.png' -> (1, 8, 3)``: reference number, type number, level.

    ``known_types=False`` accepts type numbers outside KADID-10k's 25 (a set in this layout
    that names its types in a ``type`` column, such as the proxy benchmark).
    """
    match = _NAME.match(PurePosixPath(name).name)
    if match is None:
        raise ValueError(f"KADID-10k image name {name!r} is not I<nn>_<tt>_<ll>.png")
    ref, kind, level = (int(g) for g in match.groups())
    if known_types and kind not in DISTORTION_TYPES:
        raise ValueError(f"KADID-10k image name {name!r} has unknown distortion type {kind}")
    return ref, kind, level


def read(root: Path) -> pd.DataFrame:
    """Read ``dmos.csv`` into the common table.

    The official file has ``dist_img, ref_img, dmos``; an optional ``type`` column (written by
    the proxy benchmark) names the distortion types instead of KADID-10k's numbering.
    """
    path = require_file(root, ["dmos.csv"], "CSV with columns dist_img, ref_img, dmos")
    frame = read_csv_checked(path, ["dist_img", "ref_img", "dmos"])
    scores = parse_scores(frame["dmos"], path, "dmos")
    names = [str(n).strip() for n in frame["dist_img"]]
    refs = [str(n).strip() for n in frame["ref_img"]]
    named = "type" in frame.columns
    try:
        parsed = [parse_name(n, known_types=not named) for n in names]
    except ValueError as exc:
        raise DatasetError(f"malformed annotation file {path}: {exc}") from exc
    types = [str(t) for t in frame["type"]] if named else [DISTORTION_TYPES[k] for _, k, _ in parsed]
    return make_table(
        root,
        [f"images/{n}" for n in names],
        scores,
        references=[PurePosixPath(r).stem for r in refs],
        reference_names=[f"images/{r}" for r in refs],
        distortion_types=types,
        levels=[level for _, _, level in parsed],
    )


LOADER = DatasetLoader(info=INFO, read=read)
