"""TID2013 (METHOD.md §7.1).

Layout under the dataset root: ``mos_with_names.txt`` (one ``<mos> <name>`` pair per line,
space separated) + ``distorted_images/`` and ``reference_images/``. Names are
``i<nn>_<tt>_<l>.bmp``: reference ``nn`` (reference image ``I<nn>.BMP``, found
case-insensitively), distortion type ``tt`` (1..24), level ``l`` (1..5).
Labels are MOS (higher = better), range (0, 9).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .base import DatasetError, DatasetInfo, DatasetLoader, make_table, require_file

INFO = DatasetInfo(
    name="tid2013",
    kind="synthetic",
    score_range=(0.0, 9.0),
    lower_is_better=False,
    label="MOS",
    layout="mos_with_names.txt with distorted_images/ and reference_images/",
)

# The 24 TID2013 distortion types, by their number in the file names.
DISTORTION_TYPES: dict[int, str] = {
    1: "additive_gaussian_noise",
    2: "additive_noise_in_color_components",
    3: "spatially_correlated_noise",
    4: "masked_noise",
    5: "high_frequency_noise",
    6: "impulse_noise",
    7: "quantization_noise",
    8: "gaussian_blur",
    9: "image_denoising",
    10: "jpeg",
    11: "jpeg2000",
    12: "jpeg_transmission_errors",
    13: "jpeg2000_transmission_errors",
    14: "non_eccentricity_pattern_noise",
    15: "local_blockwise_distortions",
    16: "mean_shift",
    17: "contrast_change",
    18: "color_saturation_change",
    19: "multiplicative_gaussian_noise",
    20: "comfort_noise",
    21: "lossy_compression_of_noisy_images",
    22: "color_quantization_with_dither",
    23: "chromatic_aberrations",
    24: "sparse_sampling_and_reconstruction",
}

_NAME = re.compile(r"^i(\d+)_(\d+)_(\d+)\.bmp$", re.IGNORECASE)


def parse_name(name: str) -> tuple[int, int, int]:
    """``'i01_08_3.bmp' -> (1, 8, 3)``: reference number, type number, level."""
    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"TID2013 image name {name!r} is not i<nn>_<tt>_<l>.bmp")
    ref, kind, level = (int(g) for g in match.groups())
    if kind not in DISTORTION_TYPES:
        raise ValueError(f"TID2013 image name {name!r} has unknown distortion type {kind}")
    return ref, kind, level


def read_mos_with_names(path: Path) -> tuple[np.ndarray, list[str]]:
    """Parse ``mos_with_names.txt``: returns (scores, names); a bad line is an error."""
    scores: list[float] = []
    names: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise DatasetError(
                    f"malformed annotation file {path}: line {lineno} has {len(fields)} "
                    f"field(s), expected '<mos> <image name>'"
                )
            try:
                value = float(fields[0])
            except ValueError as exc:
                raise DatasetError(
                    f"malformed annotation file {path}: line {lineno}: non-numeric MOS "
                    f"{fields[0]!r}"
                ) from exc
            if not np.isfinite(value):
                raise DatasetError(f"malformed annotation file {path}: line {lineno}: MOS {value}")
            scores.append(value)
            names.append(fields[1])
    if not names:
        raise DatasetError(f"malformed annotation file {path}: no rows")
    return np.asarray(scores, dtype=np.float64), names


def read(root: Path) -> pd.DataFrame:
    """Read ``mos_with_names.txt`` into the common table."""
    path = require_file(root, ["mos_with_names.txt"], "lines '<mos> <i<nn>_<tt>_<l>.bmp>'")
    scores, names = read_mos_with_names(path)
    try:
        parsed = [parse_name(n) for n in names]
    except ValueError as exc:
        raise DatasetError(f"malformed annotation file {path}: {exc}") from exc
    return make_table(
        root,
        [f"distorted_images/{n}" for n in names],
        scores,
        references=[f"I{ref:02d}" for ref, _, _ in parsed],
        reference_names=[f"reference_images/I{ref:02d}.BMP" for ref, _, _ in parsed],
        distortion_types=[DISTORTION_TYPES[kind] for _, kind, _ in parsed],
        levels=[level for _, _, level in parsed],
        resolve_case=True,
    )


LOADER = DatasetLoader(info=INFO, read=read)
