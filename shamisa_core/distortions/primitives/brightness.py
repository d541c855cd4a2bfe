"""Brightness-change family: brighten, darken, meanshiftneg, meanshiftpos (METHOD.md §1.2, §1.4).

All four are deterministic (no randomness drawn; ``rng`` is accepted for the common signature).
Tone curves are not-a-knot cubic splines clamped to [0, 1] (see
:mod:`shamisa_core.distortions.tone_curves` for how that was established from the conformance
vectors).
"""

from __future__ import annotations

import numpy as np

from shamisa_core.distortions.tone_curves import map_lab_lightness, spline_tone_curve

__all__ = ["brighten", "darken", "meanshiftneg", "meanshiftpos"]

_F32 = np.float32


def brighten(img: np.ndarray, value: float, rng: np.random.Generator) -> np.ndarray:
    """METHOD.md §1.4 brighten: tone curve through (0,0), (0.5, 0.5 + a/2), (1,1).

    The curve is applied once to every RGB channel and once to Lab lightness (``L/100``,
    scaled back, converted to RGB and clamped; true RGB, DECISIONS 6a);
    output = (2 * RGB-branch + Lab-branch) / 3.
    """
    curve = spline_tone_curve((0.0, 0.5, 1.0), (0.0, 0.5 + float(value) / 2.0, 1.0))
    rgb_branch = curve(img)
    lab_branch = map_lab_lightness(img, lambda lum: curve(lum * _F32(0.01)) * _F32(100.0))
    rgb_branch *= _F32(2.0)
    rgb_branch += lab_branch
    rgb_branch *= _F32(1.0 / 3.0)
    return rgb_branch


def darken(img: np.ndarray, value: float, rng: np.random.Generator) -> np.ndarray:
    """METHOD.md §1.4 darken: RGB tone curve through (0,0), (0.5, 0.5 - a/2), (1,1).

    The reference's optional Lab branch is off by default and is not implemented.
    """
    curve = spline_tone_curve((0.0, 0.5, 1.0), (0.0, 0.5 - float(value) / 2.0, 1.0))
    return curve(img)


def meanshiftneg(img: np.ndarray, value: float, rng: np.random.Generator) -> np.ndarray:
    """METHOD.md §1.4 meanshiftneg: add the (non-positive) constant ``value`` to every sample."""
    return _shift(img, value)


def meanshiftpos(img: np.ndarray, value: float, rng: np.random.Generator) -> np.ndarray:
    """METHOD.md §1.4 meanshiftpos: add the (non-negative) constant ``value`` to every sample."""
    return _shift(img, value)


def _shift(img: np.ndarray, value: float) -> np.ndarray:
    """``clip(img + value, 0, 1)`` in float32 (new array)."""
    out = np.add(img, _F32(value), dtype=np.float32)
    np.clip(out, 0.0, 1.0, out=out)
    return out
