"""Sharpness/contrast family: highsharpen, lincontrchangeneg/pos, nonlincontrchange.

METHOD.md §1.2 "sharpness_contrast", §1.4. All four are deterministic (no randomness drawn;
``rng`` is accepted for the common signature).
"""

from __future__ import annotations

import cv2
import numpy as np

from shamisa_core.distortions.tone_curves import map_lab_lightness, spline_tone_curve

__all__ = ["highsharpen", "lincontrchangeneg", "lincontrchangepos", "nonlincontrchange"]

_F32 = np.float32

# Unsharp-mask blur of highsharpen: Gaussian, std 6, 13x13, replicate borders (METHOD.md §1.4).
_SHARPEN_KSIZE = 13
_SHARPEN_SIGMA = 6.0


def highsharpen(img: np.ndarray, value: float, rng: np.random.Generator) -> np.ndarray:
    """METHOD.md §1.4 highsharpen: unsharp mask on Lab lightness, ``L' = L + g (L - G*L)``.

    ``G`` is a normalised 13x13 Gaussian of std 6 with replicate padding (matches the
    conformance vectors exactly; reflect padding does not). The Lab conversion sees true RGB
    (DECISIONS 6a); the result is converted back to RGB and clamped to [0, 1].
    """
    gain = _F32(value)

    def sharpen(lum: np.ndarray) -> np.ndarray:
        blurred = cv2.GaussianBlur(
            lum,
            (_SHARPEN_KSIZE, _SHARPEN_KSIZE),
            _SHARPEN_SIGMA,
            borderType=cv2.BORDER_REPLICATE,
        )
        detail = np.subtract(lum, blurred)
        detail *= gain
        detail += lum
        return detail

    return map_lab_lightness(img, sharpen)


def lincontrchangeneg(img: np.ndarray, value: float, rng: np.random.Generator) -> np.ndarray:
    """METHOD.md §1.4 lincontrchangeneg: contrast tone curve with amount ``a <= 0``.

    See :func:`contrast_curve`.
    """
    return contrast_curve(img, value)


def lincontrchangepos(img: np.ndarray, value: float, rng: np.random.Generator) -> np.ndarray:
    """METHOD.md §1.4 lincontrchangepos: contrast tone curve with amount ``a >= 0``.

    See :func:`contrast_curve`.
    """
    return contrast_curve(img, value)


def contrast_curve(img: np.ndarray, amount: float) -> np.ndarray:
    """Cubic-spline curve through (0,0), (0.3, 0.25 - a/4), (0.5,0.5), (0.7, 0.75 + a/4), (1,1).

    METHOD.md §1.4 lincontrchangeneg/pos; clamped to [0, 1], applied to every RGB channel.
    At ``a = 0`` it is not the identity (a mild contrast boost), as in the reference.
    """
    a = float(amount)
    curve = spline_tone_curve(
        (0.0, 0.3, 0.5, 0.7, 1.0),
        (0.0, 0.25 - a / 4.0, 0.5, 0.75 + a / 4.0, 1.0),
    )
    return curve(img)


def nonlincontrchange(img: np.ndarray, value: float, rng: np.random.Generator) -> np.ndarray:
    """METHOD.md §1.4 nonlincontrchange: linear range compression [0,1] -> [0.5-o, 0.5+o].

    Computed as ``x * (hi - lo) + lo`` in float32 with ``lo = 0.5 - o``, ``hi = 0.5 + o``;
    this rounding order reproduces the conformance vectors bit for bit, including the
    x.5 rounding ties at o = 0.4 and 0.2.
    """
    half = _F32(value)
    low = _F32(0.5) - half
    high = _F32(0.5) + half
    out = np.multiply(img, high - low, dtype=np.float32)
    out += low
    return out
