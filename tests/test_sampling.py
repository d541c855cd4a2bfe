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


# --- The native path (DECISIONS E15): C makes the PCG64 uniforms; same bytes, same stream. ---

from shamisa_core import native  # noqa: E402
from shamisa_core.distortions import sampling  # noqa: E402


@pytest.fixture
def native_lib(native_built, monkeypatch):
    """The loaded native library, with SHAMISA_NATIVE unset."""
    monkeypatch.delenv("SHAMISA_NATIVE", raising=False)
    assert native.library() is native_built
    return native_built


def _draw(monkeypatch, use_native: bool, seed: int, steps) -> list[bytes]:
    """Runs ``steps`` (callables of a generator) on a fresh PCG64 generator, native on or off.

    With the native library on, the random_raw path must not be used for a PCG64 draw; with
    it off, the library must not be seen at all.
    """
    monkeypatch.setenv("SHAMISA_NATIVE", "1" if use_native else "0")
    assert (native.library() is not None) is use_native
    rng = np.random.default_rng(seed)
    return [np.asarray(step(rng)).tobytes() for step in steps]


def _followers() -> list:
    """Later draws of several widths: each must continue the same stream."""
    return [
        lambda g: g.random(3, dtype=np.float32),
        lambda g: g.random(5),
        lambda g: g.integers(0, 2**31, 5),
        lambda g: g.bit_generator.random_raw(4),
        lambda g: np.array(list(g.bit_generator.state["state"].values()), dtype=object).astype(str),
    ]


@pytest.mark.parametrize(
    ("shape", "std", "seed"),
    [((1,), 1.0, 0), ((1, 1), 0.05, 1), ((3, 1), 3.7, 2), ((7, 5), 0.5, 3), ((513,), 1.0, 4),
     ((1023, 1), 0.3, 5), ((75265, 1), 2.0, 6), ((5 * 224, 224), 0.5, 7), ((5 * 224, 224), 1.0, 8)],
)
def test_native_uniforms_give_the_numpy_paths_bytes_and_stream(native_lib, monkeypatch, shape, std,
                                                               seed):
    steps = [lambda g: box_muller(g, shape, std), *_followers()]
    numpy_run = _draw(monkeypatch, False, seed, steps)

    def no_random_raw(rng, n):
        raise AssertionError("the native path should have made these uniforms")

    monkeypatch.setattr(sampling, "_uniform_words", no_random_raw)
    native_run = _draw(monkeypatch, True, seed, steps)
    assert len(numpy_run[0]) == 2 * 4 * int(np.prod(shape))
    for i, (got, want) in enumerate(zip(native_run, numpy_run)):
        assert got == want, f"step {i} differs"


def test_native_uniforms_interleaved_with_other_draws_keep_the_stream(native_lib, monkeypatch):
    """box_muller calls between 32-bit draws (which leave a buffered half word) and others."""
    steps = [
        lambda g: box_muller(g, (6, 4), 0.5),
        lambda g: g.random(1, dtype=np.float32),  # buffers a half word: NumPy's path next
        lambda g: box_muller(g, (3, 3), 1.0),
        lambda g: g.integers(0, 100, 7),  # 64-bit draws; the buffered half word stays
        lambda g: box_muller(g, (5,), 2.0),
        lambda g: g.standard_normal(3),
        lambda g: box_muller(g, (224, 224), 0.25),
        *_followers(),
    ]
    assert _draw(monkeypatch, True, 21, steps) == _draw(monkeypatch, False, 21, steps)


@pytest.mark.parametrize("bit_generator", [np.random.PCG64DXSM, np.random.SFC64, np.random.MT19937])
def test_native_path_leaves_other_generators_to_numpy(native_lib, bit_generator):
    rng, plain = np.random.Generator(bit_generator(9)), np.random.Generator(bit_generator(9))
    assert sampling._native_uniforms(rng, 8) is None
    assert box_muller(rng, (9, 4), 0.5).tobytes() == _plain_box_muller(plain, (9, 4), 0.5).tobytes()
    assert rng.random(7).tobytes() == plain.random(7).tobytes()


def test_native_path_leaves_a_buffered_half_word_to_numpy(native_lib):
    rng = np.random.default_rng(5)
    rng.random(1, dtype=np.float32)
    before = rng.bit_generator.state
    assert before["has_uint32"] == 1
    assert sampling._native_uniforms(rng, 8) is None
    assert rng.bit_generator.state == before
    assert sampling._native_uniforms(np.random.default_rng(5), 8) is not None
