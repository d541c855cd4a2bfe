"""The faster Lab-based primitives against their former formulations (issue 11, engine speed).

The ``_old_*`` functions below are verbatim copies of the implementations that the speed work
replaced (colorspace.py, tone_curves.py, color.py, brightness.py, sharpness_contrast.py as of
commit f13eed0). They are the oracle:

* ``colorspace`` (sRGB gamma, CIE f, Lab round trip), ``colordiff``, ``colorsat2`` and the
  spline tone curves must give the same float32 bytes for every input tried: random,
  natural crops, 0, 1, values just around every branch threshold, negative and > 1 samples,
  odd shapes.
* ``map_lab_lightness`` (and so ``brighten`` and ``highsharpen``) deliberately changed its
  float32 rounding (exp2/log2 powers, DECISIONS "Lab primitives"); it must stay within
  1.5e-5 of the former result (measured worst 6.6e-6, where the XYZ -> RGB matrix cancels),
  move no uint8 sample by more than one step, and be as close to a float64 evaluation of the
  same formulas as the former one was (both about 1e-5 at worst).
"""

from __future__ import annotations

from typing import Callable, Sequence

import cv2
import numpy as np
import pytest

from shamisa_core.distortions import colorspace as cs
from shamisa_core.distortions import tone_curves as tc
from shamisa_core.distortions.primitives import brightness, color, sharpness_contrast
from shamisa_core.distortions.primitives.blur import gaussian_kernel_1d
from shamisa_core.pristine import embedded_default_images

_F32 = np.float32

# ----------------------------------------------------------------------------------------------
# Oracle: the former implementations, copied unchanged (constants from colorspace.py)
# ----------------------------------------------------------------------------------------------

_RGB2XYZN = cs._RGB2XYZN
_XYZN2RGB = cs._XYZN2RGB
_F2LAB = cs._F2LAB
_LAB2F = cs._LAB2F


def _old_transform(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    src = np.ascontiguousarray(img, dtype=np.float32)
    shape = src.shape
    if src.ndim != 3:
        src = src.reshape(-1, 1, 3)
    return cv2.transform(src, m).reshape(shape)


def _old_srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        out = x + _F32(0.055)
        out *= _F32(1.0 / 1.055)
        np.power(out, _F32(2.4), out=out)
    np.copyto(out, x * _F32(1.0 / 12.92), where=x <= _F32(0.04045))
    return out


def _old_linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    thr = _F32(0.0031308)
    out = np.maximum(x, thr)
    np.power(out, _F32(1.0 / 2.4), out=out)
    out *= _F32(1.055)
    out -= _F32(0.055)
    np.copyto(out, x * _F32(12.92), where=x <= thr)
    return out


def _old_lab_f(t: np.ndarray) -> np.ndarray:
    out = np.cbrt(t)
    np.copyto(out, t * _F32(7.787) + _F32(4.0 / 29.0), where=t <= _F32(0.008856))
    return out


def _old_lab_f_inv(f: np.ndarray) -> np.ndarray:
    out = f * f
    out *= f
    np.copyto(out, (f - _F32(16.0 / 116.0)) * _F32(1.0 / 7.787), where=f <= _F32(0.2068966))
    return out


def _old_rgb_to_lab(img: np.ndarray) -> np.ndarray:
    xyz = _old_transform(_old_srgb_to_linear(img), _RGB2XYZN)
    return _old_transform(_old_lab_f(xyz), _F2LAB)


def _old_lab_to_rgb(lab: np.ndarray, clip: bool = True) -> np.ndarray:
    f = _old_transform(lab, _LAB2F)
    np.maximum(f[..., 2], _F32(0.0), out=f[..., 2])
    lin = _old_transform(_old_lab_f_inv(f), _XYZN2RGB)
    rgb = _old_linear_to_srgb(lin)
    if clip:
        np.clip(rgb, 0.0, 1.0, out=rgb)
    return rgb


def _old_truncate_8bit(img: np.ndarray) -> np.ndarray:
    img *= _F32(255.0)
    np.floor(img, out=img)
    img *= _F32(1.0 / 255.0)
    return img


def _old_colordiff(img: np.ndarray, value: float) -> np.ndarray:
    amount = float(value)
    lab = _old_rgb_to_lab(img)
    k = gaussian_kernel_1d(1.5 * amount + 2.0)
    out = cv2.sepFilter2D(lab, cv2.CV_32F, k, k, borderType=cv2.BORDER_REPLICATE)
    gain = float(_F32(amount))
    out = cv2.multiply(out, (0.0, gain, gain, 0.0))
    out[..., 0] = lab[..., 0]
    return _old_truncate_8bit(_old_lab_to_rgb(out))


def _old_colorsat2(img: np.ndarray, value: float) -> np.ndarray:
    lab = _old_rgb_to_lab(img)
    gain = float(_F32(value))
    lab = cv2.multiply(lab, (1.0, gain, gain, 0.0))
    return _old_truncate_8bit(_old_lab_to_rgb(lab))


def _old_horner(x: np.ndarray, coeffs: Sequence[float]) -> np.ndarray:
    out = np.full_like(x, np.float32(coeffs[0]))
    for c in coeffs[1:]:
        out *= x
        out += np.float32(c)
    return out


def _old_tone_curve(curve: tc.ToneCurve, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    out = _old_horner(x, curve.coeffs[0])
    for start, coeffs in zip(curve.starts[1:], curve.coeffs[1:]):
        np.copyto(out, _old_horner(x, coeffs), where=x >= np.float32(start))
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _old_tc_srgb_to_linear(x: np.ndarray) -> np.ndarray:
    t = _F32(0.04045)
    out = np.maximum(x, t)
    out += _F32(0.055)
    out *= _F32(1.0 / 1.055)
    np.power(out, _F32(2.4), out=out)
    low = np.minimum(x, t)
    low -= t
    low *= _F32(1.0 / 12.92)
    out += low
    return out


def _old_tc_linear_to_srgb_clipped(lin: np.ndarray) -> np.ndarray:
    t = _F32(0.0031308)
    np.clip(lin, 0.0, 1.0, out=lin)
    low = np.minimum(lin, t)
    low -= t
    low *= _F32(12.92)
    np.maximum(lin, t, out=lin)
    np.power(lin, _F32(1.0 / 2.4), out=lin)
    lin *= _F32(1.055)
    lin += low - _F32(0.055)
    np.clip(lin, 0.0, 1.0, out=lin)
    return lin


def _old_tc_lab_f(t: np.ndarray) -> np.ndarray:
    thr = _F32(0.008856)
    out = np.cbrt(np.maximum(t, thr))
    low = np.minimum(t, thr)
    low -= thr
    low *= _F32(7.787)
    out += low
    return out


def _old_tc_lab_f_inv(f: np.ndarray) -> np.ndarray:
    thr = _F32(0.2068966)
    low = np.minimum(f, thr)
    low -= thr
    low *= _F32(1.0 / 7.787)
    out = np.maximum(f, thr)
    cube = out * out
    cube *= out
    cube += low
    return cube


def old_map_lab_lightness(img: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Former ``tone_curves.map_lab_lightness`` (branch-free float32, np.power)."""
    lin = _old_tc_srgb_to_linear(np.asarray(img, dtype=np.float32))
    xyz = cv2.transform(lin, _RGB2XYZN)
    f = _old_tc_lab_f(xyz)
    fy = f[..., 1]
    lightness = fy * _F32(116.0) - _F32(16.0)
    new_l = np.asarray(fn(lightness), dtype=np.float32)
    delta = (new_l + _F32(16.0)) * _F32(1.0 / 116.0) - fy
    f += delta[..., None]
    np.maximum(f[..., 2], _F32(0.0), out=f[..., 2])
    xyz = _old_tc_lab_f_inv(f)
    return _old_tc_linear_to_srgb_clipped(cv2.transform(xyz, _XYZN2RGB))


def old_brighten(img: np.ndarray, value: float) -> np.ndarray:
    """Former ``brightness.brighten`` (on the former Lab helper and tone-curve evaluation)."""
    curve = tc.spline_tone_curve((0.0, 0.5, 1.0), (0.0, 0.5 + float(value) / 2.0, 1.0))
    rgb_branch = _old_tone_curve(curve, img)
    lab_branch = old_map_lab_lightness(
        img, lambda lum: _old_tone_curve(curve, lum * _F32(0.01)) * _F32(100.0)
    )
    rgb_branch *= _F32(2.0)
    rgb_branch += lab_branch
    rgb_branch *= _F32(1.0 / 3.0)
    return rgb_branch


def old_highsharpen(img: np.ndarray, value: float) -> np.ndarray:
    """Former ``sharpness_contrast.highsharpen``."""
    gain = _F32(value)

    def sharpen(lum: np.ndarray) -> np.ndarray:
        blurred = cv2.GaussianBlur(lum, (13, 13), 6.0, borderType=cv2.BORDER_REPLICATE)
        detail = np.subtract(lum, blurred)
        detail *= gain
        detail += lum
        return detail

    return old_map_lab_lightness(img, sharpen)


OLD_PRIMITIVES: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "brighten": old_brighten,
    "colordiff": _old_colordiff,
    "colorsat2": _old_colorsat2,
    "highsharpen": old_highsharpen,
}

# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------

# Every branch threshold of the conversions, as float32, with its neighbours.
_THRESHOLDS = (0.04045, 0.0031308, 0.008856, 0.2068966, 16.0 / 116.0, 0.5, 0.3, 0.7)


def _edge_values() -> np.ndarray:
    vals = [0.0, -0.0, 1.0, 1e-8, 1e-30, 0.999999, 1.0000001, -1e-6, -0.02, -0.06, -1.0, 1.5, 3.0]
    for t in _THRESHOLDS:
        x = _F32(t)
        below, above = x, x
        for _ in range(4):
            below = np.nextafter(below, _F32(-1))
            above = np.nextafter(above, _F32(2))
            vals += [float(below), float(above)]
        vals += [float(x), t * 0.999, t * 1.001]
    return np.array(vals, dtype=np.float32)


def _edge_image(
    shape: tuple[int, ...], rng: np.random.Generator, lo: float = -1.0, hi: float = 3.0
) -> np.ndarray:
    """Random draws from the edge values (restricted to [lo, hi]), the given shape."""
    vals = _edge_values()
    vals = vals[(vals >= lo) & (vals <= hi)]
    return np.ascontiguousarray(rng.choice(vals, size=shape).astype(np.float32))


def _natural_crop(rng: np.random.Generator, h: int = 224, w: int = 224) -> np.ndarray:
    images = embedded_default_images()
    _, arr = images[int(rng.integers(len(images)))]
    r = int(rng.integers(arr.shape[0] - h + 1))
    c = int(rng.integers(arr.shape[1] - w + 1))
    return np.ascontiguousarray(arr[r : r + h, c : c + w].astype(np.float32) / _F32(255.0))


def _same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


SHAPES = ((1, 1, 3), (7, 5, 3), (5, 7, 3), (33, 50, 3), (32, 48, 3), (64, 64, 3))

# ----------------------------------------------------------------------------------------------
# Bit-identical parts
# ----------------------------------------------------------------------------------------------


def test_copy_where_is_an_in_place_masked_copy() -> None:
    rng = np.random.default_rng(0)
    dst = rng.random((9, 11, 3), dtype=np.float32)
    src = rng.random((9, 11, 3), dtype=np.float32)
    mask = rng.random((9, 11, 3)) < 0.4
    expected = np.where(mask, src, dst)
    out = cs.copy_where(dst, src, mask)
    assert out is dst and np.array_equal(dst, expected)
    # A non-contiguous destination is written in place as well (NumPy fallback).
    big = np.zeros((9, 22, 3), dtype=np.float32)
    view = big[:, ::2]
    cs.copy_where(view, src, mask)
    assert np.array_equal(big[:, ::2], np.where(mask, src, 0.0)) and not big[:, 1::2].any()
    assert cs.copy_where(np.empty((0, 3), np.float32), np.empty((0, 3), np.float32),
                         np.empty((0, 3), bool)).shape == (0, 3)


@pytest.mark.parametrize("shape", SHAPES + ((40, 3), (6,)))
def test_colorspace_helpers_bit_identical(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(sum(shape))
    inputs = [
        _edge_image(shape, rng),
        rng.random(shape, dtype=np.float32),
        (rng.random(shape, dtype=np.float32) * 3.0 - 1.0).astype(np.float32),
    ]
    pairs = (
        (cs.srgb_to_linear, _old_srgb_to_linear),
        (cs.linear_to_srgb, _old_linear_to_srgb),
        (cs._lab_f, _old_lab_f),
        (cs._lab_f_inv, _old_lab_f_inv),
    )
    for x in inputs:
        for new, old in pairs:
            with np.errstate(invalid="ignore"):
                got, want = new(x), old(x)
            assert _same_bytes(got, want), (new.__name__, shape)


@pytest.mark.parametrize("shape", SHAPES + ((224, 224, 3), (50, 3)))
def test_lab_round_trip_bit_identical(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(7 + shape[0])
    rgb_inputs = [_edge_image(shape, rng, lo=0.0), rng.random(shape, dtype=np.float32)]
    if shape == (224, 224, 3):
        rgb_inputs.append(_natural_crop(rng))
    for x in rgb_inputs:
        lab = cs.rgb_to_lab(x)
        assert _same_bytes(lab, _old_rgb_to_lab(x))
        for gain in (1.0, 2.0, 9.0, -3.0):
            scaled = (lab * np.array([1.0, gain, gain], dtype=np.float32)).astype(np.float32)
            for clip in (True, False):
                assert _same_bytes(cs.lab_to_rgb(scaled, clip), _old_lab_to_rgb(scaled, clip))


def _colour_inputs(
    shape: tuple[int, ...], rng: np.random.Generator, hi: float = 3.0
) -> list[np.ndarray]:
    """Random, edge-valued (>= 0, <= hi), all-0, all-1 and (from 8x8 up) natural images."""
    h, w = shape[:2]
    out = [
        rng.random(shape, dtype=np.float32),
        _edge_image(shape, rng, lo=0.0, hi=hi),
        np.zeros(shape, np.float32),
        np.ones(shape, np.float32),
    ]
    if h >= 8 and w >= 8:
        out.append(_natural_crop(rng, h, w))
    return out


@pytest.mark.parametrize(
    "shape",
    ((224, 224, 3), (96, 96, 3), (32, 48, 3), (33, 50, 3), (40, 53, 3), (7, 5, 3), (1, 1, 3)),
)
def test_colordiff_colorsat2_bit_identical(shape: tuple[int, ...]) -> None:
    """Both colordiff paths (2-plane filter at widths % 16 == 0, 3-plane otherwise)."""
    rng = np.random.default_rng(shape[1])
    for x in _colour_inputs(shape, rng):
        before = x.copy()
        for v in (1.0, 3.0, 6.0, 12.0, 2.5):
            assert _same_bytes(color.colordiff(x, v, rng), _old_colordiff(x, v)), ("cd", v)
        for v in (1.0, 2.0, 6.0, 9.0, 0.0, -1.5, 0.37):
            assert _same_bytes(color.colorsat2(x, v, rng), _old_colorsat2(x, v)), ("cs2", v)
        assert np.array_equal(x, before), "input modified in place"


def _old_diffuse_chroma(lab: np.ndarray, amount: float) -> np.ndarray:
    """The filtering step of the former colordiff (3-plane filter, L restored)."""
    k = gaussian_kernel_1d(1.5 * amount + 2.0)
    out = cv2.sepFilter2D(lab, cv2.CV_32F, k, k, borderType=cv2.BORDER_REPLICATE)
    gain = float(_F32(amount))
    out = cv2.multiply(out, (0.0, gain, gain, 0.0))
    out[..., 0] = lab[..., 0]
    return out


@pytest.mark.parametrize("w", (224, 96, 48, 32, 16, 53, 50, 41, 5, 1))
def test_diffuse_chroma_bit_identical(w: int) -> None:
    """The 2-plane filter (w % 16 == 0) and the 3-plane one give the same bytes (this is
    sensitive: at w = 53 the 2-plane filter differs by 1 ulp, which the fallback avoids)."""
    rng = np.random.default_rng(w)
    for h in (1, 9, 40):
        lab = (rng.random((h, w, 3), dtype=np.float32) * 200.0 - 100.0).astype(np.float32)
        for amount in (1.0, 3.0, 6.0, 8.0, 12.0):
            want = _old_diffuse_chroma(lab, amount)
            assert _same_bytes(color._diffuse_chroma(lab.copy(), amount), want), (h, w, amount)


@pytest.mark.parametrize(
    "points",
    [
        ((0.0, 0.5, 1.0), (0.0, 0.55, 1.0)),
        ((0.0, 0.5, 1.0), (0.0, 1.05, 1.0)),
        ((0.0, 0.5, 1.0), (0.0, 0.1, 1.0)),
        ((0.0, 0.3, 0.5, 0.7, 1.0), (0.0, 0.25, 0.5, 0.75, 1.0)),
        ((0.0, 0.3, 0.5, 0.7, 1.0), (0.0, 0.4, 0.5, 0.6, 1.0)),
        ((0.0, 0.3, 0.5, 0.7, 1.0), (0.0, 0.1, 0.5, 0.9, 1.0)),
    ],
)
def test_tone_curves_bit_identical(points: tuple) -> None:
    curve = tc.spline_tone_curve(*points)
    rng = np.random.default_rng(3)
    for x in (
        _edge_image((17, 19, 3), rng),
        rng.random((64, 64, 3), dtype=np.float32),
        (rng.random((64, 3), dtype=np.float32) * 1.4 - 0.2).astype(np.float32),
        np.ascontiguousarray(rng.random((20, 20, 3), dtype=np.float32)[:, ::2]),
        rng.random((20, 20, 3), dtype=np.float32)[:, ::2],  # strided view
    ):
        assert _same_bytes(curve(x), _old_tone_curve(curve, x))


def test_constant_tone_curve_piece() -> None:
    flat = tc.ToneCurve(starts=(0.0,), coeffs=((0.25,),))
    x = np.linspace(0, 1, 11, dtype=np.float32)
    assert _same_bytes(flat(x), _old_tone_curve(flat, x))


# ----------------------------------------------------------------------------------------------
# map_lab_lightness, brighten, highsharpen: deliberately re-rounded, bounded change
# ----------------------------------------------------------------------------------------------

MAP_FNS = {
    "identity": lambda lum: lum,
    "affine": lambda lum: lum * _F32(1.3) - _F32(20.0),
    "curve": lambda lum: tc.spline_tone_curve((0, 0.5, 1), (0, 1.05, 1))(lum * _F32(0.01))
    * _F32(100.0),
}


def _check_close(
    got: np.ndarray, want: np.ndarray, atol: float = 1.5e-5, max_changed: float = 1e-3
) -> None:
    """Within ``atol``, in [0, 1], uint8 steps <= 1 and changed on <= ``max_changed`` of them.

    (Edge-valued images hold exact uint8 rounding ties such as 0.5 -> 127.5, where any
    last-bit change flips the step, so they get ``max_changed=1``.)
    """
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.isfinite(got).all() and got.min() >= 0.0 and got.max() <= 1.0
    assert float(np.abs(got.astype(np.float64) - want).max()) <= atol
    steps = np.abs(np.rint(got * 255.0) - np.rint(want * 255.0))
    assert steps.max() <= 1 and steps.mean() <= max_changed, float(steps.mean())


@pytest.mark.parametrize("fn", sorted(MAP_FNS))
@pytest.mark.parametrize("shape", ((224, 224, 3), (7, 5, 3), (1, 1, 3)))
def test_map_lab_lightness_close_to_former(fn: str, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(11)
    for i, x in enumerate(_colour_inputs(shape, rng, hi=1.0)):  # primitives' inputs: [0, 1]
        before = x.copy()
        got, want = tc.map_lab_lightness(x, MAP_FNS[fn]), old_map_lab_lightness(x, MAP_FNS[fn])
        _check_close(got, want, max_changed=1.0 if i == 1 else 1e-3)  # 1: edge values
        assert np.array_equal(x, before)


def test_map_lab_lightness_out_of_range_lightness_is_clamped() -> None:
    """Lightness pushed far below 0 and above 100 (negative fz, lin > 1, lin < 0)."""
    rng = np.random.default_rng(5)
    x = rng.random((32, 32, 3), dtype=np.float32)
    for fn in (lambda lum: lum * _F32(4.0) - _F32(150.0), lambda lum: lum * _F32(3.0)):
        got = tc.map_lab_lightness(x, fn)
        _check_close(got, old_map_lab_lightness(x, fn))


@pytest.mark.parametrize("key", ["brighten", "highsharpen"])
def test_brighten_highsharpen_close_to_former(key: str) -> None:
    new = {"brighten": brightness.brighten, "highsharpen": sharpness_contrast.highsharpen}[key]
    values = {"brighten": (0.1, 0.4, 1.1), "highsharpen": (1.0, 3.0, 12.0)}[key]
    rng = np.random.default_rng(2)
    for i, x in enumerate(_colour_inputs((64, 48, 3), rng, hi=1.0)):
        for v in values:
            limit = 1.0 if i == 1 else 1e-3  # 1: edge values
            _check_close(new(x, v, rng), OLD_PRIMITIVES[key](x, v), max_changed=limit)


def _map_lab_lightness_f64(img: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The same formulas in float64 (``fn`` itself is evaluated on float32 lightness)."""
    x = img.astype(np.float64)
    lin = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    f = lin @ _RGB2XYZN.astype(np.float64).T
    f = np.where(f <= 0.008856, f * 7.787 + 4.0 / 29.0, np.cbrt(f))
    new_l = fn((f[..., 1] * 116.0 - 16.0).astype(np.float32)).astype(np.float64)
    f += ((new_l + 16.0) / 116.0 - f[..., 1])[..., None]
    f[..., 2] = np.maximum(f[..., 2], 0.0)
    xyz = np.where(f <= 0.2068966, (f - 16.0 / 116.0) / 7.787, f**3)
    lin = np.clip(xyz @ _XYZN2RGB.astype(np.float64).T, 0.0, 1.0)
    gamma = 1.055 * np.maximum(lin, 0.0031308) ** (1 / 2.4) - 0.055
    return np.clip(np.where(lin <= 0.0031308, 12.92 * lin, gamma), 0.0, 1.0)


@pytest.mark.parametrize("fn", sorted(MAP_FNS))
def test_map_lab_lightness_accuracy_not_worse(fn: str) -> None:
    """Against float64: the new rounding is as accurate as the former one.

    Measured on 224-px crops: mean error about 0.8e-7 new vs 1.1e-7 former, worst sample
    about 1e-5 for both (where the XYZ -> RGB matrix cancels large terms).
    """
    rng = np.random.default_rng(21)
    for x in (_natural_crop(rng, 96, 96), rng.random((96, 96, 3), dtype=np.float32)):
        exact = _map_lab_lightness_f64(x, MAP_FNS[fn])
        new_err = np.abs(tc.map_lab_lightness(x, MAP_FNS[fn]) - exact)
        old_err = np.abs(old_map_lab_lightness(x, MAP_FNS[fn]) - exact)
        assert new_err.mean() <= 1.25 * old_err.mean(), (new_err.mean(), old_err.mean())
        assert new_err.max() <= 2e-5, new_err.max()
