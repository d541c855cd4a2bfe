"""box_muller reads NumPy's float32 uniform stream bit for bit (DECISIONS E11)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from shamisa_core.distortions.sampling import box_muller


def _plain_box_muller(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """The step-by-step formulation: NumPy's own uniforms, then the E1 transform."""
    u = rng.random((2, *shape), dtype=np.float32)
    radius = np.subtract(np.float32(1.0), u[0])
    cv2.log(radius, dst=radius)
    radius *= np.float32(-2.0 * std**2)
    cv2.sqrt(radius, dst=radius)
    angle = u[1]
    angle *= np.float32(2.0 * math.pi)
    out = np.empty((2, *shape), dtype=np.float32)
    cv2.polarToCart(radius, angle, x=out[0], y=out[1])
    return out


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (3, 1), (1120, 224), (75265, 1)])
@pytest.mark.parametrize("std", [0.05, 1.0, 3.7])
def test_same_bytes_and_same_generator_afterwards_as_numpys_uniforms(shape, std):
    fast, plain = np.random.default_rng(11), np.random.default_rng(11)
    got = box_muller(fast, shape, std)
    want = _plain_box_muller(plain, shape, std)
    assert got.dtype == np.float32 and got.shape == (2, *shape)
    assert got.tobytes() == want.tobytes()
    # Every later draw, of any width, continues the same stream.
    assert fast.random(3, dtype=np.float32).tobytes() == plain.random(3, dtype=np.float32).tobytes()
    assert fast.integers(0, 2**31, 5).tolist() == plain.integers(0, 2**31, 5).tolist()
    assert fast.standard_normal(4).tobytes() == plain.standard_normal(4).tobytes()


def test_a_generator_holding_a_buffered_half_word_takes_numpys_path():
    fast, plain = np.random.default_rng(5), np.random.default_rng(5)
    for g in (fast, plain):
        g.random(1, dtype=np.float32)  # one 32-bit draw: the high half word is now buffered
    assert fast.bit_generator.state["has_uint32"] == 1
    assert box_muller(fast, (4, 6), 1.0).tobytes() == _plain_box_muller(plain, (4, 6), 1.0).tobytes()
    assert fast.random(5, dtype=np.float32).tobytes() == plain.random(5, dtype=np.float32).tobytes()


@pytest.mark.parametrize("bit_generator", [np.random.MT19937, np.random.Philox, np.random.SFC64])
def test_other_bit_generators_give_numpys_stream_too(bit_generator):
    fast, plain = np.random.Generator(bit_generator(3)), np.random.Generator(bit_generator(3))
    assert box_muller(fast, (9, 4), 0.5).tobytes() == _plain_box_muller(plain, (9, 4), 0.5).tobytes()
    assert fast.random(7).tobytes() == plain.random(7).tobytes()


def test_samples_are_gaussian_with_the_asked_std():
    out = box_muller(np.random.default_rng(0), (200_000, 1), 2.0)
    cos_half, sin_half = out[0].ravel(), out[1].ravel()
    for half in (cos_half, sin_half):
        assert abs(float(half.mean())) < 0.02
        assert abs(float(half.std()) - 2.0) < 0.02
    assert abs(float(np.corrcoef(cos_half, sin_half)[0, 1])) < 0.01
    # 400k draws pass 4 sigma about 25 times; float32 uniforms cap the radius at
    # sqrt(-2 ln 2**-24) = 5.77 sigma.
    assert 4.0 * 2.0 < float(np.abs(out).max()) <= 5.77 * 2.0
