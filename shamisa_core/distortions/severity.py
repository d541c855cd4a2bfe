"""Severity sampling and the index -> parameter mapping (METHOD.md §1.5).

``t`` is the continuous severity index in [0, 4], a position on a type's 5-anchor ladder.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from shamisa_core.distortions.registry import LEGACY_INTEGER_KEYS, DistortionType

SeverityDist = Literal["gaussian", "uniform"]


def sample_index(
    rng: np.random.Generator,
    dist: SeverityDist = "gaussian",
    std: float = 2.5,
    t_max: float = 4.0,
) -> float:
    """Draw one continuous index ``t`` (METHOD.md §1.5 step 1).

    ``gaussian``: ``min(|N(0, std^2)|, t_max)`` (half-normal, clipped; point mass at ``t_max``).
    ``uniform``: ``U(0, t_max)``.
    """
    if dist == "gaussian":
        return float(min(abs(rng.normal(0.0, std)), t_max))
    if dist == "uniform":
        return float(rng.uniform(0.0, t_max))
    raise ValueError(f"unknown severity distribution {dist!r}; use 'gaussian' or 'uniform'")


def is_integer_type(dtype: DistortionType, extended_int: bool = True) -> bool:
    """Whether ``dtype``'s value is rounded (METHOD.md §1.3 'Int' column / legacy list)."""
    return dtype.integer if extended_int else dtype.key in LEGACY_INTEGER_KEYS


def index_to_value(
    dtype: DistortionType, t: float, extended_int: bool = True
) -> tuple[float, float]:
    """Map an index ``t`` to ``(t', value)`` (METHOD.md §1.5 steps 3-4).

    Linear interpolation between neighbouring anchors in float64, then for integer types
    Python ``round`` (half to even) and ``t`` recomputed from the rounded value. At an exact
    integer ``t`` the anchor is returned unchanged.
    """
    if not 0.0 <= t <= 4.0 or math.isnan(t):
        raise ValueError(f"severity index t={t!r} is outside [0, 4]")
    anchors = dtype.anchors
    lo = math.floor(t)
    hi = math.ceil(t)
    if lo == hi:
        return float(t), float(anchors[lo])
    f = t - lo
    value = anchors[lo] * (1 - f) + anchors[hi] * f
    if not is_integer_type(dtype, extended_int):
        return float(t), float(value)
    rounded = float(round(value))
    span = anchors[hi] - anchors[lo]
    if span == 0:
        return float(t), rounded
    f2 = (rounded - anchors[lo]) / span
    return float(lo * (1 - f2) + hi * f2), rounded


def discrete_value(dtype: DistortionType, t: float, num_levels: int = 5) -> tuple[float, float]:
    """Discrete mode (METHOD.md §1.5 step 2): round ``t`` onto the truncated anchor list."""
    if not 1 <= num_levels <= 5:
        raise ValueError(f"num_levels must be in 1..5, got {num_levels}")
    level = min(int(round(t)), num_levels - 1)
    return float(level), float(dtype.anchors[level])


def sample_severity(
    dtype: DistortionType,
    rng: np.random.Generator,
    dist: SeverityDist = "gaussian",
    discrete: bool = False,
    num_levels: int = 5,
    extended_int: bool = True,
    std: float = 2.5,
) -> tuple[float, float]:
    """Draw ``(t, value)`` for one distortion (METHOD.md §1.5)."""
    t = sample_index(rng, dist, std=std)
    if discrete:
        return discrete_value(dtype, t, num_levels)
    return index_to_value(dtype, t, extended_int)
