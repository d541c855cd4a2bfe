"""Colour family: colordiff, colorshift, colorsat1, colorsat2 (METHOD.md §1.2, §1.4).

DECISIONS 6a: every colour conversion sees true RGB (the reference reverses the channel order
around its Lab/HSV conversions; we match its swap-free ``/noswap`` conformance vectors).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from shamisa_core.distortions.colorspace import lab_to_rgb, rgb_to_lab
from shamisa_core.distortions.primitives.blur import gaussian_blur, gaussian_kernel_1d

_F32 = np.float32


def _truncate_8bit(img: np.ndarray) -> np.ndarray:
    """``floor(x * 255) / 255`` in place (the reference truncates to 8-bit steps)."""
    img *= _F32(255.0)
    np.floor(img, out=img)
    img *= _F32(1.0 / 255.0)
    return img


def colordiff(img: np.ndarray, value: float, rng: np.random.Generator) -> np.ndarray:
    """Chroma diffusion (METHOD.md §1.4 colordiff).

    RGB -> Lab; the a and b planes are blurred with a Gaussian of std ``1.5*amount + 2``
    (MATLAB-style side ``2*ceil(2*std)+1``, replicate borders; separable, which equals the 2-D
    kernel because no tap is small enough to be truncated) and multiplied by ``amount``;
    Lab -> RGB (clamped); output truncated to 8-bit steps. Deterministic (``rng`` unused).
    """
    return _truncate_8bit(lab_to_rgb(_diffuse_chroma(rgb_to_lab(img), float(value))))


def _diffuse_chroma(lab: np.ndarray, amount: float) -> np.ndarray:
    """``lab`` with a and b blurred (:func:`colordiff`'s Gaussian) and multiplied by ``amount``;
    L unchanged. ``lab``: (H, W, 3) float32, C-contiguous; it may be overwritten."""
    k = gaussian_kernel_1d(1.5 * amount + 2.0)
    h, w = lab.shape[:2]
    if w % 16:
        # All three planes through one contiguous filter and one per-channel multiply (L by
        # 0, then restored): the same float32 operations on a and b as filtering the planes
        # alone, without NumPy's slow strided (..., 1:) views.
        out = cv2.sepFilter2D(lab, cv2.CV_32F, k, k, borderType=cv2.BORDER_REPLICATE)
        gain = float(_F32(amount))
        out = cv2.multiply(out, (0.0, gain, gain, 0.0))
        out[..., 0] = lab[..., 0]
        return out
    # Widths that are a multiple of 16 (224, 96, ...): only the a and b planes are filtered,
    # as one 2-channel image (cv2.mixChannels in and out; a strided (..., 1:) copy costs
    # ~0.2 ms), which saves a third of the filter. OpenCV's vectorised filter loops compute
    # every sample the same way; only the scalar tail of a row whose length (w * channels) is
    # not a multiple of the vector width rounds differently (1 ulp; seen at w = 53), and with
    # w % 16 == 0 neither layout has a tail, so this is bit-identical to the 3-plane filter
    # (tests/test_lab_speed_equivalence.py checks both paths).
    ab = np.empty((h, w, 2), dtype=np.float32)
    cv2.mixChannels([lab], [ab], [1, 0, 2, 1])
    ab = cv2.sepFilter2D(ab, cv2.CV_32F, k, k, borderType=cv2.BORDER_REPLICATE)
    ab *= _F32(amount)
    cv2.mixChannels([ab], [lab], [0, 1, 1, 2])
    return lab


def _colorshift_weight(img: np.ndarray) -> np.ndarray:
    """Edge-weight map in [0, 1]: min-max normalised, Gaussian-smoothed gradient magnitude.

    Grey = 0.299 R + 0.587 G + 0.114 B; gradient = central differences (replicate borders);
    smoothing = Gaussian std 4, 17 x 17, replicate borders. A flat image gives all zeros.
    """
    grey = cv2.transform(np.ascontiguousarray(img, dtype=np.float32),
                         np.array([[0.299, 0.587, 0.114]], dtype=np.float32))
    dk = np.array([[-1.0, 0.0, 1.0]], dtype=np.float32)
    gx = cv2.filter2D(grey, cv2.CV_32F, dk, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(grey, cv2.CV_32F, dk.T, borderType=cv2.BORDER_REPLICATE)
    # (cv2.magnitude is avoided: its result depends on the buffer's memory alignment.)
    gx *= gx
    gy *= gy
    gx += gy
    mag = np.sqrt(gx)
    sm = gaussian_blur(mag, 4.0)  # side 2*ceil(2*4)+1 = 17
    lo, hi = float(sm.min()), float(sm.max())
    if not hi > lo:
        return np.zeros_like(sm)
    sm -= _F32(lo)
    sm *= _F32(1.0 / (hi - lo))
    return sm


def _colorshift_draw(amount: float, rng: np.random.Generator) -> tuple[int, int]:
    """Random (row, col) shift with non-negative components and length about ``amount``.

    Direction = ``u / |u|`` with ``u ~ U[0, 1)^2`` (so not uniform in angle), components
    rounded; e.g. amount 12 with direction (0.61, 0.79) gives (7, 10).
    """
    u = rng.random(2)
    norm = math.hypot(u[0], u[1])
    if norm == 0.0:
        u, norm = np.array([1.0, 1.0]), math.sqrt(2.0)
    return int(np.rint(amount * u[0] / norm)), int(np.rint(amount * u[1] / norm))


def _colorshift_apply(img: np.ndarray, shift_rc: tuple[int, int]) -> np.ndarray:
    """Blend a translated green plane into ``img`` where the edge weight is high.

    ``G'[r, c] = e[r, c] * G[r - s_row, c - s_col] + (1 - e[r, c]) * G[r, c]`` with replicate
    borders for the translation (``shift_rc = (s_row, s_col) >= 0``); R and B unchanged.
    """
    s_row, s_col = int(shift_rc[0]), int(shift_rc[1])
    h, w = img.shape[:2]
    out = np.array(img, dtype=np.float32, copy=True)
    g = np.ascontiguousarray(out[..., 1])
    padded = cv2.copyMakeBorder(g, min(s_row, h), 0, min(s_col, w), 0, cv2.BORDER_REPLICATE)
    g_shift = padded[:h, :w]
    e = _colorshift_weight(img)
    out[..., 1] = g + e * (g_shift - g)
    return out


def colorshift(img: np.ndarray, value: float, rng: np.random.Generator) -> np.ndarray:
    """Edge-weighted green-channel shift by about ``value`` px (METHOD.md §1.4 colorshift).

    The direction is drawn from ``rng`` on every call (stochastic); see
    :func:`_colorshift_draw`, :func:`_colorshift_apply` and :func:`_colorshift_weight`.

    Deliberately plain (no bug-for-bug emulation of two reference quirks,
    ``shared/conformance/README.md`` §1): (1) the reference's broken 1 %/99 % percentile clip
    forces one weight per row to 0 and one to 1 - we use the plain min-max weight map, which is
    what the reference computes everywhere else; (2) the reference's pad/roll/crop wraps
    ``|s_row - s_col|`` border rows or columns around - we use a plain translation with
    replicate borders. Against the seed-0 vectors (recorded draw) this differs by uint8 MAE
    <= 0.24/255; both quirks touch about 1-3 % of the green samples.
    """
    return _colorshift_apply(img, _colorshift_draw(float(value), rng))


def colorsat1(img: np.ndarray, value: float, rng: np.random.Generator) -> np.ndarray:
    """HSV saturation multiplied by ``value`` (METHOD.md §1.4 colorsat1).

    Computed in closed form without the HSV round trip: with hue and value V = max(R, G, B)
    fixed, each channel is ``V * (1 - S * k(hue))``, so scaling S by ``value`` gives
    ``c' = V + value * (c - V)``. 0 -> grey (V), negative values -> hue inversion with channels
    above V (clamped by the chain). Swap-invariant (DECISIONS 6a). Deterministic.
    """
    x = np.asarray(img, dtype=np.float32)
    v = np.maximum(x[..., 0], x[..., 1])
    np.maximum(v, x[..., 2], out=v)
    v = v[..., None]
    out = x - v
    out *= _F32(value)
    out += v
    return out


def colorsat2(img: np.ndarray, value: float, rng: np.random.Generator) -> np.ndarray:
    """Lab chroma (a, b) multiplied by ``value``, back to RGB (clamped), truncated to 8-bit
    steps (METHOD.md §1.4 colorsat2). Deterministic (``rng`` unused)."""
    lab = rgb_to_lab(img)
    # diag(1, g, g) as a colour transform: each output is one float32 product plus exact
    # zeros (L * 1, a * g, b * g), the same values as a per-channel multiply at a fifth of
    # the cost of cv2.multiply with a scalar tuple (tests check bit-identity).
    gain = _F32(value)
    lab = cv2.transform(lab, np.diag(np.array([1.0, gain, gain], dtype=np.float32)))
    return _truncate_8bit(lab_to_rgb(lab))
