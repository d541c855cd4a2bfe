"""Brightness, spatial and sharpness/contrast primitives (METHOD.md §1.4) and tone curves.

Conformance data: ``shared/conformance/engine_vectors.{npz,json}`` beside the repository
(README section 1 there). Deterministic types must match the stored seed-0 outputs
(brighten and highsharpen: the swap-free ``/noswap`` arrays, DECISIONS 6a); stochastic types
must match the 20-seed statistics. Where the reference's own random stream can be replayed
(Python ``random`` for noneccpatch/colorblock, ``torch.randn`` for jitter) the stored images
are also reproduced exactly through a stand-in generator.
"""

from __future__ import annotations

import json
import random
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from scipy.interpolate import CubicSpline

from shamisa_core.distortions.colorspace import lab_to_rgb, rgb_to_lab
from shamisa_core.distortions.primitives import brightness, sharpness_contrast, spatial
from shamisa_core.distortions.registry import REGISTRY
from shamisa_core.distortions.tone_curves import map_lab_lightness, spline_tone_curve
from tests.conftest import conformance_stats

CONFORMANCE_DIR = Path(__file__).resolve().parent / "data" / "conformance"
T_VALUES = ("0", "1", "2", "3", "4", "1.5", "2.7")

MY_KEYS = (
    "brighten",
    "darken",
    "meanshiftneg",
    "meanshiftpos",
    "jitter",
    "noneccpatch",
    "pixelate",
    "quantization",
    "colorblock",
    "highsharpen",
    "lincontrchangeneg",
    "lincontrchangepos",
    "nonlincontrchange",
)
DETERMINISTIC = (
    "brighten",
    "darken",
    "meanshiftneg",
    "meanshiftpos",
    "pixelate",
    "quantization",
    "highsharpen",
    "lincontrchangeneg",
    "lincontrchangepos",
    "nonlincontrchange",
)
STOCHASTIC = ("jitter", "noneccpatch", "colorblock")
NOSWAP = ("brighten", "highsharpen")  # DECISIONS 6a: compare with the swap-free vectors

# DECISIONS 6b allows a mean absolute error of 2/255; every type here is at 0.000/255, so
# hold the tighter bound the brief expects.
MAX_MAE_255 = 0.5
N_SEEDS = 24
STAT_SLACK = 5e-4


# --- conformance data ---------------------------------------------------------------------


@lru_cache(maxsize=1)
def _vectors() -> tuple[Any, dict]:
    if not (CONFORMANCE_DIR / "engine_vectors.npz").is_file():
        pytest.fail(f"conformance vectors missing at {CONFORMANCE_DIR} (restore tests/data/conformance/)")
    npz = np.load(CONFORMANCE_DIR / "engine_vectors.npz")
    meta = json.loads((CONFORMANCE_DIR / "engine_vectors.json").read_text())
    return npz, meta


def _input() -> np.ndarray:
    npz, _ = _vectors()
    return np.ascontiguousarray(npz["input"].transpose(1, 2, 0).astype(np.float32) / 255.0)


def _stored(key: str, t: str, noswap: bool = False) -> np.ndarray:
    npz, _ = _vectors()
    name = f"{key}/t={t}" + ("/noswap" if noswap else "")
    return npz[name].transpose(1, 2, 0).astype(np.float64)


def _value(key: str, t: str) -> float:
    _, meta = _vectors()
    return float(np.float32(meta["entries"][key][t]["value_float32_passed_to_primitive"]))


def _to_uint8_levels(out: np.ndarray) -> np.ndarray:
    """round(clip(out) * 255) in float64, as the conformance harness stored its outputs."""
    return np.round(np.clip(out.astype(np.float64), 0.0, 1.0) * 255.0)


def _mae_255(out: np.ndarray, key: str, t: str, noswap: bool = False) -> float:
    return float(np.abs(_to_uint8_levels(out) - _stored(key, t, noswap)).mean())


_stats = conformance_stats


def _primitive(key: str) -> Callable[[np.ndarray, float, np.random.Generator], np.ndarray]:
    return REGISTRY[key].fn


# --- deterministic conformance ------------------------------------------------------------


@pytest.mark.parametrize("t", T_VALUES)
@pytest.mark.parametrize("key", DETERMINISTIC)
def test_deterministic_matches_reference(key: str, t: str) -> None:
    x = _input()
    x_before = x.copy()
    out = _primitive(key)(x, _value(key, t), np.random.default_rng(0))
    assert np.array_equal(x, x_before), "primitive modified its input"
    assert out.dtype == np.float32 and out.shape == x.shape
    mae = _mae_255(out, key, t, noswap=key in NOSWAP)
    assert mae <= MAX_MAE_255, f"{key} t={t}: MAE {mae:.4f}/255"


# --- stochastic conformance (statistics over seeds) ---------------------------------------


def _reference_stats(key: str, t: str) -> np.ndarray:
    npz, _ = _vectors()
    table = npz[f"stats/{key}/t={t}"]  # (20 seeds, 7 statistics)
    if key == "jitter" and float(t) >= 3:
        # Reference quirk (see test_reference_jitter_translation_quirk): at amounts >= 0.5
        # most seeds are also translated by whole pixels. Compare with the seeds that are
        # not (lowest cluster of mean_abs_diff: 4 of 20 at both t=3 and t=4).
        mad = table[:, 0]
        table = table[mad <= 1.07 * mad.min()]
        assert len(table) >= 3
    return table


@pytest.mark.parametrize("t", T_VALUES)
@pytest.mark.parametrize("key", STOCHASTIC)
def test_stochastic_statistics_match_reference(key: str, t: str) -> None:
    x = _input()
    fn = _primitive(key)
    value = _value(key, t)
    ours = np.array([_stats(fn(x, value, np.random.default_rng(s)), x) for s in range(N_SEEDS)])
    ref = _reference_stats(key, t)
    _, meta = _vectors()
    columns = meta["meta"]["application"]["stats_columns"]
    for j, name in enumerate(columns):
        tol = 3.0 * np.sqrt(ref[:, j].var() / len(ref) + ours[:, j].var() / N_SEEDS) + STAT_SLACK
        diff = ours[:, j].mean() - ref[:, j].mean()
        assert abs(diff) <= tol, (
            f"{key} t={t} {name}: ours {ours[:, j].mean():.5f} ref {ref[:, j].mean():.5f} "
            f"(tol {tol:.5f})"
        )


def test_stochastic_types_depend_only_on_rng() -> None:
    x = _input()
    for key in STOCHASTIC:
        fn = _primitive(key)
        a = fn(x, _value(key, "4"), np.random.default_rng(7))
        b = fn(x, _value(key, "4"), np.random.default_rng(7))
        c = fn(x, _value(key, "4"), np.random.default_rng(8))
        assert np.array_equal(a, b), key
        assert not np.array_equal(a, c), key


# --- exact replay of the reference's random streams ---------------------------------------


class _PythonRandomStandIn:
    """Feeds a primitive the numbers the reference drew after ``random.seed(s)`` /
    ``np.random.seed(s)``, in the layout our primitives request them.

    noneccpatch asks ``random((4, n))`` for (col, row, col shift, row shift) per patch; the
    reference draws them per patch in that order from Python ``random``. colorblock asks
    ``random((n, 3))`` for colours (reference: NumPy legacy ``rand(3)`` per block) and then
    ``integers(0, hi, n)`` for rows and for columns (reference: ``int(random() * hi)``, row
    then column per block).
    """

    def __init__(self, seed: int) -> None:
        self._py = random.Random(seed)
        self._legacy = np.random.RandomState(seed)
        self._pending: list[int] | None = None

    def random(self, size: tuple[int, int], dtype: Any = np.float64) -> np.ndarray:
        if size[-1] == 3:  # colorblock colours
            return self._legacy.rand(*size).astype(dtype)
        n = size[1]  # noneccpatch
        draws = np.array([[self._py.random() for _ in range(4)] for _ in range(n)])
        return draws.T.astype(dtype)

    def integers(self, low: int, high: int, size: int) -> np.ndarray:
        if self._pending is None:
            seq = [low + int(self._py.random() * (high - low)) for _ in range(2 * size)]
            self._pending = seq[1::2]
            return np.array(seq[0::2])
        cols, self._pending = self._pending, None
        return np.array(cols)


@pytest.mark.parametrize("t", T_VALUES)
@pytest.mark.parametrize("key", ("noneccpatch", "colorblock"))
def test_replayed_reference_stream_reproduces_stored_image(key: str, t: str) -> None:
    out = _primitive(key)(_input(), _value(key, t), _PythonRandomStandIn(0))  # type: ignore[arg-type]
    assert _mae_255(out, key, t) == 0.0


def test_noneccpatch_reproduces_all_reference_statistics_per_seed() -> None:
    """The aliased paste reproduces all 20 seeds x 7 severities x 7 statistics exactly."""
    npz, _ = _vectors()
    x = _input()
    for t in T_VALUES:
        table = npz[f"stats/noneccpatch/t={t}"]
        for seed in range(20):
            out = spatial.noneccpatch(x, _value("noneccpatch", t), _PythonRandomStandIn(seed))  # type: ignore[arg-type]
            np.testing.assert_allclose(_stats(out, x), table[seed], rtol=0, atol=1e-12)


def _torch_fields(seed: int, amount: float, shape: tuple[int, int]) -> list:
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    fields = []
    for _ in range(spatial.JITTER_ITERATIONS):
        dx = (torch.randn(*shape) * amount).numpy()
        dy = (torch.randn(*shape) * amount).numpy()
        fields.append((dx, dy))
    return fields


@pytest.mark.parametrize("t", ("0", "1", "2", "1.5", "2.7"))
def test_jitter_resampling_matches_reference_given_its_draws(t: str) -> None:
    x = _input()
    out = spatial.displace(x, _torch_fields(0, _value("jitter", t), x.shape[:2]))
    assert _mae_255(out, "jitter", t) <= 0.01


def test_reference_jitter_translation_quirk() -> None:
    """Documents a reference quirk that this project does not reproduce.

    With the reference's own draws, seed 0 at amount 0.5 (t=3) matches our resampling only
    if passes 2 and 4 (0-based 1 and 3) additionally sample one row below and one column to
    the left, i.e. the reference translates the image by whole pixels along the diagonal.
    Across the 20 reference seeds the net translation is 0-3 px (clusters of
    mean_abs_diff); it appears from amount 0.5 on, and once (seed 17) at 0.2 and 0.41.
    """
    x = _input()
    fields = _torch_fields(0, _value("jitter", "3"), x.shape[:2])
    assert _mae_255(spatial.displace(x, fields), "jitter", "3") > 5.0
    shifted = [
        (dx + 1.0, dy - 1.0) if i in (1, 3) else (dx, dy) for i, (dx, dy) in enumerate(fields)
    ]
    out = _to_uint8_levels(spatial.displace(x, shifted))
    interior = np.abs(out - _stored("jitter", "3"))[3:-3, 3:-3]
    assert interior.mean() < 0.05


# --- contract -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(16, 16), (17, 23), (47, 33), (96, 96), (224, 224), (384, 512)])
@pytest.mark.parametrize("key", MY_KEYS)
def test_contract_any_size(key: str, shape: tuple[int, int]) -> None:
    rng_img = np.random.default_rng(123)
    img = rng_img.random((*shape, 3), dtype=np.float32)
    img_before = img.copy()
    for value in REGISTRY[key].anchors:
        out = _primitive(key)(img, value, np.random.default_rng(1))
        assert np.array_equal(img, img_before), f"{key} modified its input"
        assert out.dtype == np.float32 and out.shape == img.shape
        assert np.isfinite(out).all()


@pytest.mark.parametrize("key", DETERMINISTIC)
def test_deterministic_types_draw_nothing(key: str) -> None:
    rng = np.random.default_rng(5)
    state = rng.bit_generator.state
    _primitive(key)(_input(), REGISTRY[key].anchors[2], rng)
    assert rng.bit_generator.state == state


def test_quantization_constant_image_is_finite() -> None:
    img = np.full((32, 32, 3), 0.5, dtype=np.float32)
    out = spatial.quantization(img, 10, np.random.default_rng(0))
    assert np.isfinite(out).all() and np.ptp(out) == 0.0


def test_noneccpatch_clean_paste_option() -> None:
    x = _input()
    aliased = spatial.noneccpatch(x, 100, np.random.default_rng(3))
    clean = spatial.noneccpatch(x, 100, np.random.default_rng(3), aliased_paste=False)
    assert not np.array_equal(aliased, clean)
    # With one patch moved downward, the clean paste is an exact copy of the source patch.
    seed = 0
    while np.rint(np.random.default_rng(seed).random((4, 1))[3, 0] * 16) - 8 <= 0:
        seed += 1
    draws = np.random.default_rng(seed).random((4, 1))
    one = spatial.noneccpatch(x, 1, np.random.default_rng(seed), aliased_paste=False)
    c = 16 + int(np.rint(draws[0, 0] * 80))
    r = 16 + int(np.rint(draws[1, 0] * 80))
    r2 = r + int(np.rint(draws[3, 0] * 16)) - 8
    c2 = c + int(np.rint(draws[2, 0] * 16)) - 8
    assert np.array_equal(one[r2 : r2 + 16, c2 : c2 + 16], x[r : r + 16, c : c + 16])


# --- tone curves and the Lab helper ---------------------------------------------------------


@pytest.mark.parametrize(
    "px,py",
    [
        ((0, 0.5, 1), (0, 1.05, 1)),
        ((0, 0.5, 1), (0, 0.1, 1)),
        ((0, 0.3, 0.5, 0.7, 1), (0, 0.4, 0.5, 0.6, 1)),
        ((0, 0.3, 0.5, 0.7, 1), (0, 0.1, 0.5, 0.9, 1)),
        ((0, 0.2, 0.6, 1), (0, 0.3, 0.5, 1)),
    ],
)
def test_tone_curve_is_clamped_not_a_knot_spline(px: tuple, py: tuple) -> None:
    grid = np.linspace(0.0, 1.0, 20001, dtype=np.float32)
    expected = np.clip(CubicSpline(px, py)(grid.astype(np.float64)), 0.0, 1.0)
    got = spline_tone_curve(px, py)(grid)
    assert got.dtype == np.float32
    assert np.abs(got - expected).max() < 2e-6


@pytest.mark.parametrize(
    "fn",
    [
        lambda lum: lum,
        lambda lum: lum * 3.0 - 50.0,
        lambda lum: spline_tone_curve((0, 0.5, 1), (0, 1.05, 1))(lum / 100.0) * 100.0,
    ],
)
def test_map_lab_lightness_matches_colorspace_round_trip(fn: Callable) -> None:
    img = np.random.default_rng(9).random((64, 64, 3), dtype=np.float32)
    lab = rgb_to_lab(img)
    lab[..., 0] = fn(lab[..., 0])
    expected = lab_to_rgb(lab)
    got = map_lab_lightness(img, lambda lum: np.asarray(fn(lum), dtype=np.float32))
    assert np.abs(got - expected).max() < 5e-5


def test_module_functions_are_the_registered_primitives() -> None:
    modules = {
        "brightness_change": brightness,
        "spatial_distortion": spatial,
        "sharpness_contrast": sharpness_contrast,
    }
    for key in MY_KEYS:
        assert REGISTRY[key].fn is getattr(modules[REGISTRY[key].family], key)
