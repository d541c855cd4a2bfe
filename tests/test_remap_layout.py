"""jitter's passes resample RGB as RGBA (DECISIONS E12): the same bytes as 3-channel remaps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from shamisa_core.distortions.primitives.spatial import _pixel_grid, _remap_passes, jitter


def _plain_passes(img: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(img, dtype=np.float32)
    h = img.shape[0]
    for start in range(0, map_x.shape[0], h):
        out = cv2.remap(out, map_x[start : start + h], map_y[start : start + h],
                        interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


@pytest.mark.parametrize("shape", [(224, 224), (96, 96), (7, 5), (1, 1), (33, 130)])
@pytest.mark.parametrize("std", [0.05, 1.0, 6.0])
def test_rgba_passes_give_the_rgb_passes_bytes(shape, std):
    rng = np.random.default_rng(sum(shape))
    h, w = shape
    img = rng.random((h, w, 3), dtype=np.float32)
    img[0, 0] = (0.0, 1.0, 0.5)
    gx, gy = _pixel_grid(h, w, 3)
    map_x = (gx + std * rng.standard_normal(gx.shape)).astype(np.float32)
    map_y = (gy + std * rng.standard_normal(gy.shape)).astype(np.float32)
    got = _remap_passes(img, map_x, map_y)
    assert got.shape == (h, w, 3) and got.dtype == np.float32 and got.flags.c_contiguous
    assert got.tobytes() == _plain_passes(img, map_x, map_y).tobytes()


def test_no_pass_returns_a_copy_and_other_channel_counts_keep_their_layout():
    img = np.random.default_rng(0).random((6, 8, 3), dtype=np.float32)
    empty = np.empty((0, 8), np.float32)
    out = _remap_passes(img, empty, empty)
    assert out is not img and out.tobytes() == img.tobytes()
    grey = img[..., 0].copy()
    gx, gy = _pixel_grid(6, 8)
    shifted = _remap_passes(grey, gx + 0.5, gy)
    assert shifted.shape == (6, 8)
    assert shifted.tobytes() == _plain_passes(grey, gx + 0.5, gy).tobytes()


def test_jitter_input_is_left_untouched():
    img = np.random.default_rng(1).random((20, 20, 3), dtype=np.float32)
    before = img.copy()
    out = jitter(img, 2.0, np.random.default_rng(2))
    assert np.array_equal(img, before) and not np.array_equal(out, img)
