"""Random draws shared by the stochastic primitives (METHOD.md §1.4 jitter and the noise types).

:func:`box_muller` turns float32 uniform pairs into float32 normals (DECISIONS E1: an exact
Gaussian to float32 resolution, tails to about 5.8 sigma), with OpenCV's vectorised log, sqrt
and polarToCart. jitter's displacements and the three noise types draw through it.

The uniforms are NumPy's own ``rng.random(n, dtype=float32)`` stream, bit for bit, read about
twice as fast for a PCG64 generator (DECISIONS E11): the 64-bit words come from
``random_raw`` and are split as NumPy splits them. With the native library built
(:mod:`shamisa_core.native`), a PCG64 generator's words and their float conversion come from
C instead (DECISIONS E15): the same LCG steps and output function as NumPy's PCG64, the same
float32 operations, the generator's state written back. Any other generator, or one holding a
buffered half word, takes NumPy's own path.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from shamisa_core import native

__all__ = ["box_muller"]

_F32 = np.float32
_TWO_24 = 16777216  # NumPy's float32 uniforms are (32-bit word >> 8) / 2**24
# Bit generators whose 32-bit draws are the low, then the high half of one 64-bit word, with
# the high half buffered in between (NumPy's ``next_uint32`` for these generators).
_SPLIT_WORD_GENERATORS = (np.random.PCG64, np.random.PCG64DXSM, np.random.SFC64)
_ANGLE_SCALE = _F32(_F32(2.0 * math.pi) / _F32(_TWO_24))  # 2 pi k / 2**24 = k * this, rounded once
_U64 = (1 << 64) - 1


def _native_uniforms(rng: np.random.Generator, pairs: int) -> np.ndarray | None:
    """``2 * pairs`` float32: radius inputs ``1 - u1`` then angles ``2 pi u2``, from C; or ``None``.

    ``None`` (decided before anything is drawn) when the native library is not loaded, the
    generator is not exactly PCG64, it holds a buffered half word, or the machine is
    big-endian. Otherwise the values and the generator's new state equal what the
    ``random_raw`` path of :func:`box_muller` gives (its ``has_uint32``/``uinteger`` fields
    are left as they were, as ``random_raw`` leaves them).
    """
    lib = native.library()
    bg = rng.bit_generator
    if lib is None or type(bg) is not np.random.PCG64 or not np.little_endian:
        return None
    # The generator's own lock, as random_raw takes it: ctypes releases the GIL during the
    # call, and the state is read, advanced in C and written back as one step.
    with bg.lock:
        st = bg.state
        if st["has_uint32"]:
            return None
        s, inc = int(st["state"]["state"]), int(st["state"]["inc"])
        halves = np.array([s >> 64, s & _U64, inc >> 64, inc & _U64], dtype=np.uint64)
        out = np.empty(2 * pairs, dtype=np.float32)
        lib.shamisa_pcg64_box_muller_uniforms(halves.ctypes.data, pairs, out.ctypes.data,
                                              float(_ANGLE_SCALE))
        st["state"]["state"] = (int(halves[0]) << 64) | int(halves[1])
        bg.state = st
    return out


def _uniform_words(rng: np.random.Generator, n: int) -> np.ndarray | None:
    """The ``n`` 24-bit integers behind NumPy's next ``n`` float32 uniforms, or ``None``.

    ``None`` means "use NumPy's path": an odd ``n``, a generator of another kind, one that
    holds a buffered half word from an earlier 32-bit draw, or a big-endian machine (where a
    word's uint32 view puts the high half first). It is decided before anything is drawn.
    Otherwise the generator advances exactly as ``rng.random(n, dtype=float32)`` would
    advance it (its buffered-word field keeps its old, unused value, which no later draw reads).
    """
    bg = rng.bit_generator
    if (n % 2 or not np.little_endian or not isinstance(bg, _SPLIT_WORD_GENERATORS)
            or bg.state.get("has_uint32", 0)):
        return None
    words = bg.random_raw(n // 2).view(np.uint32)  # low half, then high half of each word
    words >>= np.uint32(8)
    return words


def box_muller(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """``(2, *shape)`` float32 ``N(0, std^2)`` samples: a cosine and a sine half (DECISIONS E1).

    Draws ``2 * prod(shape)`` float32 uniforms ``u`` (the first half are ``u1``, the rest
    ``u2``), then ``r = sqrt(-2 std^2 ln(1 - u1))`` and ``theta = 2 pi u2``; returns
    ``[r cos theta, r sin theta]``, each of ``shape``. The same bytes as drawing
    ``u = rng.random((2, *shape), dtype=float32)`` and computing it step by step: ``1 - u1`` is
    exact in float32 (``u1`` is a multiple of 2**-24 below 1), and ``2 pi u2`` is one rounded
    product either way. OpenCV sees arrays of ``shape`` (its vectorised paths are not
    guaranteed to round alike for every length, so callers keep their shapes).
    """
    pairs = int(np.prod(shape))
    native_floats = _native_uniforms(rng, pairs)
    words = None if native_floats is not None else _uniform_words(rng, 2 * pairs)
    if native_floats is not None:
        radius = native_floats[:pairs].reshape(shape)
        angle = native_floats[pairs:].reshape(shape)
    elif words is None:
        u = rng.random((2, *shape), dtype=np.float32)
        radius = np.subtract(_F32(1.0), u[0])
        angle = u[1]
        angle *= _F32(2.0 * math.pi)
    else:
        # In place, in the words' own memory: 1 - k / 2**24 = (2**24 - k) / 2**24 exactly,
        # and 2 pi k / 2**24 is one rounded float32 product (2**-24 scales exactly).
        floats = words.view(np.float32)
        np.subtract(np.uint32(_TWO_24), words[:pairs], out=words[:pairs])
        np.multiply(words[:pairs], _F32(1.0 / _TWO_24), out=floats[:pairs], dtype=np.float32)
        np.multiply(words[pairs:], _ANGLE_SCALE, out=floats[pairs:], dtype=np.float32)
        radius = floats[:pairs].reshape(shape)
        angle = floats[pairs:].reshape(shape)
    cv2.log(radius, dst=radius)
    radius *= _F32(-2.0 * float(std) ** 2)
    cv2.sqrt(radius, dst=radius)
    out = np.empty((2, *shape), dtype=np.float32)
    cv2.polarToCart(radius, angle, x=out[0], y=out[1])
    return out
