"""The 26 distortion types: family, key, anchor ladder, parameter meaning, integer flag.

Implements METHOD.md §1.2 (families and members) and §1.3 (anchor ladders). Every primitive
has the signature ``fn(img, value, rng) -> img`` where ``img`` is an ``(H, W, 3)`` float32 RGB
array in [0, 1], ``value`` is the parameter value (already interpolated/rounded, see
``severity.py``) and ``rng`` is a ``numpy.random.Generator`` (the only source of randomness,
DECISIONS 5). Primitives return float32; the chain clamps to [0, 1] after each one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

Primitive = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]

# Family -> members, in the reference's order (METHOD.md §1.2).
FAMILIES: dict[str, tuple[str, ...]] = {
    "blur": ("gaublur", "lensblur", "motionblur"),
    "color_distortion": ("colordiff", "colorshift", "colorsat1", "colorsat2"),
    "jpeg": ("jpeg2000", "jpeg"),
    "noise": ("whitenoise", "whitenoiseCC", "impulsenoise", "multnoise"),
    "brightness_change": ("brighten", "darken", "meanshiftneg", "meanshiftpos"),
    "spatial_distortion": ("jitter", "noneccpatch", "pixelate", "quantization", "colorblock"),
    "sharpness_contrast": (
        "highsharpen",
        "lincontrchangeneg",
        "lincontrchangepos",
        "nonlincontrchange",
    ),
}

# Family -> primitives module (one module per family, ARCHITECTURE.md).
_FAMILY_MODULE = {
    "blur": "blur",
    "color_distortion": "color",
    "jpeg": "compression",
    "noise": "noise",
    "brightness_change": "brightness",
    "spatial_distortion": "spatial",
    "sharpness_contrast": "sharpness_contrast",
}

# key -> (parameter meaning, anchors t=0..4, integer in A0 [extended_int_distortions])
_TABLE: dict[str, tuple[str, tuple[float, ...], bool]] = {
    "gaublur": ("Gaussian std (px)", (0.1, 0.5, 1, 2, 5), False),
    "lensblur": ("disk radius (px)", (1, 2, 4, 6, 8), True),
    "motionblur": ("motion kernel length (px)", (1, 2, 4, 6, 10), True),
    "colordiff": ("chroma diffusion amount", (1, 3, 6, 8, 12), True),
    "colorshift": ("green-channel shift length (px)", (1, 3, 6, 8, 12), True),
    "colorsat1": ("HSV saturation multiplier", (0.4, 0.2, 0.1, 0, -0.4), False),
    "colorsat2": ("Lab chroma multiplier", (1, 2, 3, 6, 9), True),
    "jpeg2000": ("JPEG2000 compression ratio", (16, 32, 45, 120, 170), True),
    "jpeg": ("JPEG quality", (43, 36, 24, 7, 4), True),
    "whitenoise": ("noise variance (RGB)", (0.001, 0.002, 0.003, 0.005, 0.01), False),
    "whitenoiseCC": ("noise variance (YCbCr)", (0.0001, 0.0005, 0.001, 0.002, 0.003), False),
    "impulsenoise": ("fraction of corrupted samples", (0.001, 0.005, 0.01, 0.02, 0.03), False),
    "multnoise": ("multiplicative noise variance", (0.001, 0.005, 0.01, 0.02, 0.05), False),
    "brighten": ("tone-curve lift", (0.1, 0.2, 0.4, 0.7, 1.1), False),
    "darken": ("tone-curve drop", (0.05, 0.1, 0.2, 0.4, 0.8), False),
    "meanshiftneg": ("additive offset", (0, -0.08, -0.115, -0.15, -0.185), False),
    "meanshiftpos": ("additive offset", (0, 0.08, 0.115, 0.15, 0.185), False),
    "jitter": ("per-pixel displacement std (px)", (0.05, 0.1, 0.2, 0.5, 1), False),
    "noneccpatch": ("number of displaced patches", (20, 40, 60, 80, 100), True),
    "pixelate": ("pixelation strength", (0.01, 0.05, 0.1, 0.2, 0.5), False),
    "quantization": ("number of levels per channel", (20, 16, 13, 10, 7), True),
    "colorblock": ("number of coloured squares", (2, 4, 6, 8, 10), True),
    "highsharpen": ("unsharp-mask gain", (1, 2, 3, 6, 12), True),
    "lincontrchangeneg": ("contrast-curve amount", (0.0, -0.15, -0.3, -0.4, -0.6), False),
    "lincontrchangepos": ("contrast-curve amount", (0.0, 0.15, 0.3, 0.4, 0.6), False),
    "nonlincontrchange": ("output half-range", (0.4, 0.3, 0.2, 0.1, 0.05), False),
}

# Types that draw from ``rng`` (every other primitive is a deterministic function of the image
# and the value, and leaves ``rng`` untouched; tests/test_engine.py checks both halves).
STOCHASTIC_KEYS: frozenset[str] = frozenset(
    {
        "motionblur",
        "colorshift",
        "whitenoise",
        "whitenoiseCC",
        "impulsenoise",
        "multnoise",
        "jitter",
        "noneccpatch",
        "colorblock",
    }
)

# Types whose output lies in [0, 1] for any finite input, by their own last step (a codec's
# k / 255, a truncation to 8-bit steps of a clamped image, a clamped tone curve or shift, or
# brighten's (2 a + b) * float32(1/3) of two clamped branches, at most 1 + 3e-8, rounded to 1): the
# chain's clamp after them would change no bit, so apply_chain skips it (DECISIONS E16;
# tests/test_engine.py checks every one of them on out-of-range inputs).
CLAMPED_KEYS: frozenset[str] = frozenset(
    {
        "jpeg",
        "jpeg2000",
        "brighten",
        "colordiff",
        "colorsat2",
        "darken",
        "lincontrchangeneg",
        "lincontrchangepos",
        "meanshiftneg",
        "meanshiftpos",
        "highsharpen",
    }
)

# Keys rounded when extended_int_distortions is false (METHOD.md §1.3, reference list of 5).
LEGACY_INTEGER_KEYS: frozenset[str] = frozenset(
    {"lensblur", "motionblur", "jpeg", "noneccpatch", "colorblock"}
)


@dataclass(frozen=True)
class DistortionType:
    """One distortion type (METHOD.md §1.2-1.3)."""

    key: str
    family: str
    anchors: tuple[float, ...]
    integer: bool
    parameter: str

    @property
    def reference_key(self) -> str:
        """The key of this type in METHOD.md §1.2 (identical to ``key`` in this project)."""
        return self.key

    @property
    def fn(self) -> Primitive:
        """The primitive implementing this type (imported lazily, then cached)."""
        return _primitive(self.family, self.key)

    @property
    def stochastic(self) -> bool:
        """Whether the primitive draws from ``rng`` (see :data:`STOCHASTIC_KEYS`)."""
        return self.key in STOCHASTIC_KEYS

    @property
    def clamped(self) -> bool:
        """Whether the output is already in [0, 1] (see :data:`CLAMPED_KEYS`)."""
        return self.key in CLAMPED_KEYS


@lru_cache(maxsize=None)
def _primitive(family: str, key: str) -> Primitive:
    module = importlib.import_module(f"shamisa_core.distortions.primitives.{_FAMILY_MODULE[family]}")
    return getattr(module, key)


def _build() -> dict[str, DistortionType]:
    out: dict[str, DistortionType] = {}
    for family, members in FAMILIES.items():
        for key in members:
            parameter, anchors, integer = _TABLE[key]
            out[key] = DistortionType(
                key=key,
                family=family,
                anchors=tuple(float(a) for a in anchors),
                integer=integer,
                parameter=parameter,
            )
    return out


REGISTRY: dict[str, DistortionType] = _build()
FAMILY_OF: dict[str, str] = {k: d.family for k, d in REGISTRY.items()}


def get_type(key: str) -> DistortionType:
    """Return the type named ``key`` or raise ``KeyError`` listing the valid names."""
    try:
        return REGISTRY[key]
    except KeyError:
        valid = ", ".join(sorted(REGISTRY))
        raise KeyError(f"unknown distortion type {key!r}; valid types: {valid}") from None
