"""Colour-space conversions used by the colour, noise and sharpness primitives (METHOD.md §1.4).

sRGB (D65) <-> CIE Lab, RGB <-> HSV and RGB <-> YCbCr on ``(..., 3)`` float32 arrays (channels
last, RGB in [0, 1]). The formulas and constants are the ones of the conversions the reference
calls (kornia 0.7): sRGB gamma with the 0.04045 / 0.0031308 linear segments, the 3x3
RGB<->XYZ matrices below, D65 white (0.95047, 1, 1.08883), CIE f(t) with the 7.787 t + 4/29
linear segment below 0.008856 and its inverse below 0.2068966, ``fz`` clamped at 0 before the
inverse, and a final clamp to [0, 1] in ``lab_to_rgb(clip=True)``. DECISIONS 6a: the
conversions see true RGB (no channel reversal).

Checked against ``shared/conformance`` (colordiff and colorsat2 ``/noswap`` vectors match to
uint8 MAE <= 0.4/255; the only differences are float32 last-bit effects at the 8-bit
truncation boundary). The 3x3 products run through ``cv2.transform`` and the elementwise parts
in place in float32, in three reused buffers, with masked selects through ``cv2.copyTo``
(about 0.45 ms per 224x224 conversion each way on one thread). The Lab round trip is
bit-identical to the plain formulas (tests/test_lab_speed_equivalence.py keeps them).
"""

from __future__ import annotations

import cv2
import numpy as np

_F32 = np.float32

_RGB2XYZ = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=np.float64,
)
_XYZ2RGB = np.array(
    [
        [3.2404813432005266, -1.5371515162713185, -0.4985363261688878],
        [-0.9692549499965682, 1.8759900014898907, 0.0415559265582928],
        [0.0556466391351772, -0.2040413383665112, 1.0573110696453443],
    ],
    dtype=np.float64,
)
_WHITE = np.array([0.95047, 1.0, 1.08883], dtype=np.float64)

# White-point normalisation folded into the matrices.
_RGB2XYZN = (_RGB2XYZ / _WHITE[:, None]).astype(np.float32)
_XYZN2RGB = (_XYZ2RGB * _WHITE[None, :]).astype(np.float32)
# (fx, fy, fz) -> (L, a, b) and back, as 3x4 affine maps for cv2.transform.
_F2LAB = np.array(
    [[0.0, 116.0, 0.0, -16.0], [500.0, -500.0, 0.0, 0.0], [0.0, 200.0, -200.0, 0.0]],
    dtype=np.float32,
)
_LAB2F = np.array(
    [
        [1 / 116.0, 1 / 500.0, 0.0, 16.0 / 116.0],
        [1 / 116.0, 0.0, 0.0, 16.0 / 116.0],
        [1 / 116.0, 0.0, -1 / 200.0, 16.0 / 116.0],
    ],
    dtype=np.float32,
)
# kornia rgb_to_ycbcr / ycbcr_to_rgb (delta 0.5 on the chroma channels).
_RGB2YCBCR = np.array(
    [
        [0.299, 0.587, 0.114, 0.0],
        [-0.299 * 0.564, -0.587 * 0.564, (1 - 0.114) * 0.564, 0.5],
        [(1 - 0.299) * 0.713, -0.587 * 0.713, -0.114 * 0.713, 0.5],
    ],
    dtype=np.float32,
)
_YCBCR2RGB = np.array(
    [
        [1.0, 0.0, 1.403, -0.5 * 1.403],
        [1.0, -0.344, -0.714, 0.5 * (0.344 + 0.714)],
        [1.0, 1.773, 0.0, -0.5 * 1.773],
    ],
    dtype=np.float32,
)


def _as_f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def _transform(img: np.ndarray, m: np.ndarray, dst: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel affine colour transform ``m @ [c, 1]`` of a ``(..., 3)`` float32 array.

    ``dst`` (optional, C-contiguous float32 of the same shape, not ``img``) receives the result.
    """
    src = _as_f32(img)
    shape = src.shape
    if src.ndim != 3:
        src = src.reshape(-1, 1, 3)
        if dst is not None:
            dst = dst.reshape(-1, 1, 3)
    return cv2.transform(src, m, dst=dst).reshape(shape)


def copy_where(dst: np.ndarray, src: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``dst[mask] = src[mask]`` in place (exact copy; returns ``dst``).

    ``np.copyto(dst, src, where=mask)`` costs up to 0.9 ms on a 224x224x3 crop when the mask
    is irregular (branchy masked loop); ``cv2.copyTo`` on the same buffers, seen as one flat
    row, takes 0.005-0.03 ms and copies the same values. All three arrays must be
    C-contiguous float32 / bool of the same shape (the helpers below allocate them so).
    """
    if not (dst.flags.c_contiguous and src.flags.c_contiguous and mask.flags.c_contiguous):
        np.copyto(dst, src, where=mask)  # a reshape would copy: keep the write in place
    elif dst.size:
        cv2.copyTo(src.reshape(1, -1), mask.view(np.uint8).reshape(1, -1), dst.reshape(1, -1))
    return dst


# The elementwise steps below work in caller-provided buffers (``out``, ``tmp``, ``mask``: new
# C-contiguous arrays of the input's shape, distinct from it) so that a Lab round trip touches
# three buffers instead of about ten fresh temporaries; the operations and their order are
# those of the plain formulas in the public functions' docstrings (tests check the bytes).
# A linear segment is only evaluated when some sample falls in it (dark samples; most
# natural crops have none below the CIE f thresholds).


def _srgb_to_linear_into(
    x: np.ndarray, out: np.ndarray, tmp: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """``out`` = inverse gamma(``x``); ``x`` is kept, ``tmp`` holds the linear segment."""
    with np.errstate(invalid="ignore"):
        np.add(x, _F32(0.055), out=out)
        out *= _F32(1.0 / 1.055)
        np.power(out, _F32(2.4), out=out)
    np.less_equal(x, _F32(0.04045), out=mask)
    if mask.any():
        copy_where(out, np.multiply(x, _F32(1.0 / 12.92), out=tmp), mask)
    return out


def _linear_to_srgb_into(x: np.ndarray, out: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``out`` = gamma(``x``); ``x`` is overwritten (it holds the linear segment)."""
    thr = _F32(0.0031308)
    np.maximum(x, thr, out=out)
    np.power(out, _F32(1.0 / 2.4), out=out)
    out *= _F32(1.055)
    out -= _F32(0.055)
    np.less_equal(x, thr, out=mask)
    if mask.any():
        x *= _F32(12.92)
        copy_where(out, x, mask)
    return out


def _lab_f_into(t: np.ndarray, out: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``out`` = f(``t``); ``t`` is overwritten (it holds the linear segment)."""
    np.cbrt(t, out=out)
    np.less_equal(t, _F32(0.008856), out=mask)
    if mask.any():
        t *= _F32(7.787)
        t += _F32(4.0 / 29.0)
        copy_where(out, t, mask)
    return out


def _lab_f_inv_into(f: np.ndarray, out: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``out`` = f^-1(``f``); ``f`` is overwritten (it holds the linear segment)."""
    if f.size:
        # (f * f) * f in one pass: OpenCV's integer power multiplies in that order.
        cv2.pow(f.reshape(1, -1), 3, dst=out.reshape(1, -1))
    np.less_equal(f, _F32(0.2068966), out=mask)
    if mask.any():
        f -= _F32(16.0 / 116.0)
        f *= _F32(1.0 / 7.787)
        copy_where(out, f, mask)
    return out


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Inverse sRGB gamma: ``((x + 0.055) / 1.055) ** 2.4`` above 0.04045, ``x / 12.92`` below."""
    x = _as_f32(x)
    return _srgb_to_linear_into(x, np.empty_like(x), np.empty_like(x), np.empty(x.shape, bool))


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """sRGB gamma: ``1.055 x ** (1/2.4) - 0.055`` above 0.0031308, ``12.92 x`` below.

    Negative inputs give ``12.92 x`` (negative), as in kornia; no clamp here.
    """
    x = np.array(x, dtype=np.float32, order="C", copy=True)
    return _linear_to_srgb_into(x, np.empty_like(x), np.empty(x.shape, bool))


def _lab_f(t: np.ndarray) -> np.ndarray:
    """CIE f(t): cube root above 0.008856, ``7.787 t + 4/29`` below (float32, new array)."""
    t = np.array(t, dtype=np.float32, order="C", copy=True)
    return _lab_f_into(t, np.empty_like(t), np.empty(t.shape, bool))


def _lab_f_inv(f: np.ndarray) -> np.ndarray:
    """Inverse CIE f: cube above 0.2068966, ``(f - 16/116) / 7.787`` below (float32, new)."""
    f = np.array(f, dtype=np.float32, order="C", copy=True)
    return _lab_f_inv_into(f, np.empty_like(f), np.empty(f.shape, bool))


def rgb_to_lab(img: np.ndarray) -> np.ndarray:
    """(..., 3) RGB in [0, 1] -> Lab (L in [0, 100], a/b roughly in [-128, 127]), float32."""
    x = _as_f32(img)
    a, b, mask = np.empty_like(x), np.empty_like(x), np.empty(x.shape, bool)
    lin = _srgb_to_linear_into(x, a, b, mask)
    xyz = _transform(lin, _RGB2XYZN, dst=b)
    f = _lab_f_into(xyz, a, mask)
    return _transform(f, _F2LAB, dst=b)


def lab_to_rgb(lab: np.ndarray, clip: bool = True) -> np.ndarray:
    """Inverse of :func:`rgb_to_lab`; ``fz`` is clamped at 0; clamps to [0, 1] when ``clip``."""
    lab = _as_f32(lab)
    a, b, mask = np.empty_like(lab), np.empty_like(lab), np.empty(lab.shape, bool)
    f = _transform(lab, _LAB2F, dst=a)
    np.maximum(f[..., 2], _F32(0.0), out=f[..., 2])
    xyz = _lab_f_inv_into(f, b, mask)
    lin = _transform(xyz, _XYZN2RGB, dst=a)
    rgb = _linear_to_srgb_into(lin, b, mask)
    if clip:
        np.clip(rgb, 0.0, 1.0, out=rgb)
    return rgb


def rgb_to_ycbcr(img: np.ndarray) -> np.ndarray:
    """(..., 3) RGB -> YCbCr (kornia: Y = .299R + .587G + .114B, Cb = (B-Y).564 + .5,
    Cr = (R-Y).713 + .5), float32."""
    return _transform(img, _RGB2YCBCR)


def ycbcr_to_rgb(img: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr` with kornia's coefficients (R = Y + 1.403 Cr',
    G = Y - .714 Cr' - .344 Cb', B = Y + 1.773 Cb', primes = minus 0.5), float32, unclipped."""
    return _transform(img, _YCBCR2RGB)


def rgb_to_hsv(img: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """(..., 3) RGB in [0, 1] -> HSV with H in radians [0, 2*pi), S and V in [0, 1] (kornia).

    ``S = (max - min) / (max + eps)``; grey pixels get hue 0.
    """
    img = _as_f32(img)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    maxc = img.max(axis=-1)
    minc = img.min(axis=-1)
    delta = maxc - minc
    s = delta / (maxc + _F32(eps))
    safe = np.where(delta == 0, _F32(1.0), delta)
    argmax = img.argmax(axis=-1)
    h = np.where(
        argmax == 0,
        (g - b) / safe,
        np.where(argmax == 1, (b - r) / safe + _F32(2.0), (r - g) / safe + _F32(4.0)),
    )
    h = (h / _F32(6.0)) % _F32(1.0)
    h = np.where(delta == 0, _F32(0.0), h)
    return np.stack([_F32(2 * np.pi) * h, s, maxc], axis=-1).astype(np.float32)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_hsv` (kornia's sector formula; S outside [0, 1] is allowed)."""
    hsv = _as_f32(hsv)
    h = hsv[..., 0] / _F32(2 * np.pi)
    s, v = hsv[..., 1], hsv[..., 2]
    h6 = (h * _F32(6.0)) % _F32(6.0)
    i = np.floor(h6)
    f = h6 - i
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    i = i.astype(np.int64) % 6
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1).astype(np.float32)
