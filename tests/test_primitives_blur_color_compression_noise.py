"""Blur, colour, compression and noise primitives (METHOD.md §1.4) against the conformance data.

Conformance vectors: ``shared/conformance`` beside the repository (README §1). Deterministic
types must match the stored images (DECISIONS 6b, uint8 MAE <= 2/255; colour keys against the
swap-free ``/noswap`` images, DECISIONS 6a); stochastic types are checked given the recorded
seed-0 draw where one exists, and through their 20-seed statistics otherwise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from shamisa_core.distortions import colorspace as cs
from shamisa_core.distortions.primitives import blur, color, compression, noise
from shamisa_core.distortions.registry import REGISTRY
from tests.conftest import conformance_stats

CONFORMANCE = Path(__file__).resolve().parent / "data" / "conformance"
T_KEYS = ("0", "1", "2", "3", "4", "1.5", "2.7")
MAE_TOL = 2.0  # uint8 levels (DECISIONS 6b)
MY_KEYS = (
    "gaublur", "lensblur", "motionblur",
    "colordiff", "colorshift", "colorsat1", "colorsat2",
    "jpeg2000", "jpeg",
    "whitenoise", "whitenoiseCC", "impulsenoise", "multnoise",
)  # fmt: skip
FN = {k: REGISTRY[k].fn for k in MY_KEYS}


# ----------------------------------------------------------------------------------------------
# Conformance data
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def conf() -> dict:
    npz_path = CONFORMANCE / "engine_vectors.npz"
    if not npz_path.exists():
        pytest.fail(f"conformance vectors missing at {CONFORMANCE} (restore tests/data/conformance/)")
    ev = np.load(npz_path)
    meta = json.loads((CONFORMANCE / "engine_vectors.json").read_text())
    x = np.ascontiguousarray(ev["input"].transpose(1, 2, 0)).astype(np.float32) / np.float32(255)
    return {"ev": ev, "meta": meta, "x": x}


def _value(conf: dict, key: str, t: str) -> np.float32:
    return np.float32(conf["meta"]["entries"][key][t]["value_float32_passed_to_primitive"])


def _stored(conf: dict, key: str, t: str, noswap: bool = False) -> np.ndarray:
    name = f"{key}/t={t}" + ("/noswap" if noswap else "")
    return conf["ev"][name].transpose(1, 2, 0).astype(np.float64)


def _to_u8(out: np.ndarray) -> np.ndarray:
    return np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.float64)


def _mae(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(_to_u8(out) - ref).mean())


# ----------------------------------------------------------------------------------------------
# Deterministic types: stored images
# ----------------------------------------------------------------------------------------------

# key -> (compare with /noswap, expected worst MAE in uint8 levels as measured; test uses 2.0)
DETERMINISTIC = {
    "gaublur": False,
    "lensblur": False,
    "colordiff": True,
    "colorsat1": True,
    "colorsat2": True,
    "jpeg": False,
    "jpeg2000": False,
}


@pytest.mark.parametrize("t", T_KEYS)
@pytest.mark.parametrize("key", sorted(DETERMINISTIC))
def test_deterministic_matches_stored(conf: dict, key: str, t: str) -> None:
    x = conf["x"]
    x_before = x.copy()
    out = FN[key](x, _value(conf, key, t), np.random.default_rng(0))
    assert np.array_equal(x, x_before), "primitive modified its input in place"
    assert out.dtype == np.float32 and out.shape == x.shape
    mae = _mae(out, _stored(conf, key, t, DETERMINISTIC[key]))
    assert mae <= MAE_TOL, (key, t, mae)
    # Measured: everything is <= 0.03 except colorsat2 at t=0 (factor 1: float32 last-bit
    # noise at the 8-bit truncation boundary decides floor(k) vs floor(k)-1, about 0.49).
    assert mae <= 0.5, (key, t, mae)


@pytest.mark.parametrize("t", T_KEYS)
def test_colorsat1_swap_invariant(conf: dict, t: str) -> None:
    out = color.colorsat1(conf["x"], _value(conf, "colorsat1", t), np.random.default_rng(0))
    assert _mae(out, _stored(conf, "colorsat1", t, noswap=False)) <= 0.1


@pytest.mark.parametrize("t", T_KEYS)
def test_jpeg2000_codec_strength(conf: dict, t: str) -> None:
    """Coarse check of the codec: distance to the input within 10 % of the reference's."""
    x = conf["x"]
    out = compression.jpeg2000(x, _value(conf, "jpeg2000", t), np.random.default_rng(0))
    ours = float(np.abs(_to_u8(out) - np.round(x * 255.0)).mean())
    ref = conf["meta"]["entries"]["jpeg2000"][t]["vs_input_seed0"]["mean_abs_diff_255"]
    assert abs(ours - ref) <= 0.1 * ref, (t, ours, ref)


def test_integer_keys_get_integer_values(conf: dict) -> None:
    for key in ("lensblur", "motionblur", "colordiff", "colorshift", "colorsat2", "jpeg2000", "jpeg"):
        for t in T_KEYS:
            v = float(_value(conf, key, t))
            assert v == int(v), (key, t, v)


# ----------------------------------------------------------------------------------------------
# Stochastic types given the recorded seed-0 draw
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", T_KEYS)
def test_motionblur_given_draw(conf: dict, t: str) -> None:
    draw = conf["meta"]["entries"]["motionblur"][t]["seed0_draw"]
    assert draw["angle_deg"] == 98
    length = int(_value(conf, "motionblur", t))
    out = blur._motionblur_apply(conf["x"], length, int(draw["angle_deg"]))
    assert _mae(out, _stored(conf, "motionblur", t)) <= 0.05
    # The mirrored angle (82 deg) does not match: the kernel orientation matters.
    if length >= 4:
        assert _mae(blur._motionblur_apply(conf["x"], length, 82), _stored(conf, "motionblur", t)) > 0.3


@pytest.mark.parametrize("t", T_KEYS)
def test_colorshift_given_draw(conf: dict, t: str) -> None:
    shift = tuple(conf["meta"]["entries"]["colorshift"][t]["seed0_draw"]["roll_shifts"])
    out = color._colorshift_apply(conf["x"], shift)
    mae = _mae(out, _stored(conf, "colorshift", t))
    assert mae <= MAE_TOL
    assert mae <= 0.3, mae  # measured <= 0.24 (the two reference quirks we do not copy)


class _LegacyUniform:
    """Test-only stand-in exposing ``random(n)`` from NumPy's legacy seeded generator, to replay
    the reference's seed-0 uniform draw through our draw function."""

    def __init__(self, seed: int) -> None:
        self._rs = np.random.RandomState(seed)

    def random(self, n: int) -> np.ndarray:
        return self._rs.random_sample(n)


@pytest.mark.parametrize("t", T_KEYS)
def test_colorshift_draw_rule_reproduces_recorded_shifts(conf: dict, t: str) -> None:
    """Direction u/|u| with u ~ U[0,1)^2, times the amount, rounded: the recorded (row, col)
    shifts of every severity follow from the reference's seed-0 uniform pair."""
    amount = float(_value(conf, "colorshift", t))
    recorded = tuple(conf["meta"]["entries"]["colorshift"][t]["seed0_draw"]["roll_shifts"])
    assert color._colorshift_draw(amount, _LegacyUniform(0)) == recorded  # type: ignore[arg-type]


def test_draws_come_from_rng() -> None:
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    img = np.random.default_rng(1).random((40, 48, 3), dtype=np.float32)
    angle = blur._motionblur_draw(rng_b)
    np.testing.assert_array_equal(blur.motionblur(img, 6.0, rng_a), blur._motionblur_apply(img, 6, angle))
    shift = color._colorshift_draw(8.0, rng_b)
    np.testing.assert_array_equal(color.colorshift(img, 8.0, rng_a), color._colorshift_apply(img, shift))
    angles = {blur._motionblur_draw(np.random.default_rng(s)) for s in range(3000)}
    assert min(angles) == 0 and max(angles) == 180 and len(angles) == 181


# ----------------------------------------------------------------------------------------------
# Stochastic types: statistics over seeds
# ----------------------------------------------------------------------------------------------

N_SEEDS = 24


_stats = conformance_stats


def _seed_stats(fn, x: np.ndarray, value: float, n: int = N_SEEDS) -> np.ndarray:
    return np.stack([_stats(fn(x, value, np.random.default_rng(seed)), x) for seed in range(n)])


def _columns(conf: dict) -> list[str]:
    return list(conf["meta"]["meta"]["application"]["stats_columns"])


def _assert_stats(conf: dict, key: str, t: str, ours: np.ndarray, rel_slack: float = 0.002,
                  skip: tuple[str, ...] = ()) -> None:
    ref = conf["meta"]["entries"][key][t]["stats_over_seeds"]
    n = ours.shape[0]
    for j, col in enumerate(_columns(conf)):
        if col in skip:
            continue
        m_ref, s_ref = ref[col]["mean"], ref[col]["std"]
        m_ours, s_ours = ours[:, j].mean(), ours[:, j].std(ddof=1)
        tol = 3.0 * math.sqrt(s_ref**2 / 20 + s_ours**2 / n) + 1e-6 + rel_slack * abs(m_ref)
        assert abs(m_ours - m_ref) <= tol, (key, t, col, m_ours, m_ref, tol)


@pytest.mark.parametrize("t", T_KEYS)
@pytest.mark.parametrize("key", ["whitenoise", "whitenoiseCC", "multnoise", "motionblur"])
def test_statistics_match_reference(conf: dict, key: str, t: str) -> None:
    ours = _seed_stats(FN[key], conf["x"], _value(conf, key, t))
    _assert_stats(conf, key, t, ours)


@pytest.mark.parametrize("t", T_KEYS)
def test_impulsenoise_salt_and_pepper_statistics(conf: dict, t: str) -> None:
    """DECISIONS 1: half the drawn samples go to 1, half to 0 (the reference: all to 1).

    Same number of positions as the reference, so the changed fraction matches its statistic
    (a little lower: pepper on samples already 0 changes nothing, and the input has more
    0-valued than 1-valued samples); increases ~ decreases; and every changed sample moves by
    x or 1-x, so mean |d| ~ changed fraction / 2.
    """
    x = conf["x"]
    ours = _seed_stats(noise.impulsenoise, x, _value(conf, "impulsenoise", t))
    ref = conf["meta"]["entries"]["impulsenoise"][t]["stats_over_seeds"]
    cols = _columns(conf)
    mean = dict(zip(cols, ours.mean(axis=0)))
    sd = dict(zip(cols, ours.std(axis=0, ddof=1)))
    tol = 3.0 * math.sqrt(ref["frac_changed_samples"]["std"] ** 2 / 20 + sd["frac_changed_samples"] ** 2 / N_SEEDS)
    assert abs(mean["frac_changed_samples"] - ref["frac_changed_samples"]["mean"]) <= tol + 0.01 * ref["frac_changed_samples"]["mean"]
    assert ref["frac_decreased_samples"]["mean"] == 0.0  # the reference bug, for the record
    inc, dec = mean["frac_increased_samples"], mean["frac_decreased_samples"]
    assert abs(inc - dec) <= 0.06 * (inc + dec) + 2.0 / x.size
    assert abs(mean["mean_abs_diff"] - 0.5 * mean["frac_changed_samples"]) <= 0.1 * mean["mean_abs_diff"]


def test_impulsenoise_counts() -> None:
    img = np.full((100, 120, 3), 0.5, dtype=np.float32)
    out = noise.impulsenoise(img, 0.02, np.random.default_rng(3))
    n = int(0.02 * img.size)
    ones, zeros = int((out == 1.0).sum()), int((out == 0.0).sum())
    changed = int((out != 0.5).sum())
    assert changed == ones + zeros and 0.97 * n <= changed <= n  # repeats are rare
    assert abs(ones - zeros) <= 0.05 * n
    assert noise.impulsenoise(img, 0.0, np.random.default_rng(3)).tolist() == img.tolist()


def _reference_colorshift_model(img: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
    """Test-only model of the reference's two colorshift quirks (README §1), used to show that
    our draw rule reproduces the reference's statistics once the quirks are put back:
    per row, the weight at column rank(e[r, 0]) forced to 0 and at W-1-rank forced to 1; the
    green plane built by edge padding (s_col rows, s_row columns), a roll and a centre crop."""
    s_row, s_col = shift
    e = color._colorshift_weight(img).astype(np.float64)
    h, w = e.shape
    rank = (e < e[:, :1]).sum(axis=1)
    rows = np.arange(h)
    e[rows, rank] = 0.0
    e[rows, w - 1 - rank] = 1.0
    g = img[..., 1].astype(np.float64)
    p = np.roll(np.pad(g, ((s_col, s_col), (s_row, s_row)), mode="edge"), (s_row, s_col), axis=(0, 1))
    g_shift = p[s_col : s_col + h, s_row : s_row + w]
    out = img.astype(np.float64).copy()
    out[..., 1] = e * g_shift + (1.0 - e) * g
    return out.astype(np.float32)


@pytest.mark.parametrize("t", ["0", "2", "4"])
def test_colorshift_quirk_model_reproduces_stored(conf: dict, t: str) -> None:
    shift = tuple(conf["meta"]["entries"]["colorshift"][t]["seed0_draw"]["roll_shifts"])
    out = _reference_colorshift_model(conf["x"], shift)
    assert _mae(out, _stored(conf, "colorshift", t)) <= 0.01


@pytest.mark.parametrize("t", T_KEYS)
def test_colorshift_draw_statistics_with_quirk_model(conf: dict, t: str) -> None:
    amount = float(_value(conf, "colorshift", t))

    def fn(img: np.ndarray, value: float, rng: np.random.Generator) -> np.ndarray:
        return _reference_colorshift_model(img, color._colorshift_draw(amount, rng))

    _assert_stats(conf, "colorshift", t, _seed_stats(fn, conf["x"], amount, n=40))


@pytest.mark.parametrize("t", T_KEYS)
def test_colorshift_statistics(conf: dict, t: str) -> None:
    """Our plain colorshift (no quirks): the fractions of changed samples/pixels are higher by
    up to ~1/W (the reference zeroes one weight per row) and |d| is a few % lower (no forced
    weight 1, no wrapped border columns); everything else within the statistical tolerance."""
    x = conf["x"]
    ours = _seed_stats(color.colorshift, x, _value(conf, "colorshift", t), n=40)
    _assert_stats(conf, "colorshift", t, ours,
                  skip=("frac_changed_samples", "frac_changed_pixels", "mean_abs_diff", "std_diff", "mean_diff"))
    ref = conf["meta"]["entries"]["colorshift"][t]["stats_over_seeds"]
    cols = _columns(conf)
    mean = dict(zip(cols, ours.mean(axis=0)))
    w = x.shape[1]
    d_pix = mean["frac_changed_pixels"] - ref["frac_changed_pixels"]["mean"]
    assert -0.2 / w <= d_pix <= 1.2 / w, d_pix
    d_smp = mean["frac_changed_samples"] - ref["frac_changed_samples"]["mean"]
    assert -0.2 / w / 3 <= d_smp <= 1.2 / w / 3, d_smp
    for col in ("mean_abs_diff", "std_diff"):
        assert abs(mean[col] / ref[col]["mean"] - 1.0) <= 0.1, (col, mean[col], ref[col]["mean"])
    assert abs(mean["mean_diff"] - ref["mean_diff"]["mean"]) <= 0.001


# ----------------------------------------------------------------------------------------------
# Family-specific properties
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.1, 0.3, 0.5, 0.75, 1.0, 1.7, 2.0, 3.3, 5.0, 20.0])
def test_gaussian_kernel_separable_equals_matlab_2d(sigma: float) -> None:
    k1 = blur.gaussian_kernel_1d(sigma).astype(np.float64)
    k2 = blur._gaussian_kernel(sigma).astype(np.float64)
    assert k1.size == 2 * math.ceil(2 * sigma) + 1 and k2.shape == (k1.size, k1.size)
    np.testing.assert_allclose(np.outer(k1, k1), k2, atol=1e-7)


def test_gaublur_small_sigma_is_identity() -> None:
    img = np.random.default_rng(0).random((20, 30, 3), dtype=np.float32)
    np.testing.assert_array_equal(blur.gaublur(img, 0.1, np.random.default_rng(0)), img)


def _disk_coverage(radius: float, supersample: int = 200) -> np.ndarray:
    """Exact-in-the-limit pixel coverage of a disk by supersampling (test reference)."""
    crad = math.ceil(radius - 0.5)
    n = 2 * crad + 1
    sub = (np.arange(supersample) + 0.5) / supersample - 0.5
    out = np.zeros((n, n))
    for i, yc in enumerate(range(-crad, crad + 1)):
        yy = (yc + sub)[:, None, None]
        for j, xc in enumerate(range(-crad, crad + 1)):
            xx = (xc + sub)[None, :, None]
            out[i, j] = ((xx**2 + yy**2) <= radius**2).mean()
    return out


@pytest.mark.parametrize("radius", [1, 2, 3, 4, 5, 6, 7, 8])
def test_disk_kernel_matlab_is_pixel_coverage(radius: int) -> None:
    k = blur._disk_kernel(float(radius), "matlab").astype(np.float64)
    cov = _disk_coverage(float(radius))
    # MATLAB's centre tap is min(pi r^2, pi/2) capped at 1 -> 1 for r >= 1: same as coverage.
    np.testing.assert_allclose(k, cov / cov.sum(), atol=2e-4)
    assert (k >= 0).all()


@pytest.mark.parametrize("radius", [1, 2, 3, 5, 8])
def test_disk_kernel_reference_variant(radius: int) -> None:
    ref = blur._disk_kernel(float(radius), "reference").astype(np.float64)
    mat = blur._disk_kernel(float(radius), "matlab").astype(np.float64)
    assert ref.shape == mat.shape and abs(ref.sum() - 1.0) < 1e-6
    np.testing.assert_allclose(ref, ref.T, atol=1e-7)
    np.testing.assert_allclose(ref, ref[::-1, ::-1], atol=1e-7)
    if radius == 1:
        np.testing.assert_allclose(ref, mat, atol=1e-7)
    else:
        assert ref.min() < 0  # the reference's ringing taps
    with pytest.raises(ValueError):
        blur._disk_kernel(2.0, "other")


def test_lensblur_default_kernel_is_reference(conf: dict) -> None:
    assert blur.LENSBLUR_KERNEL == "reference"
    # The MATLAB disk would miss the stored radius-8 image by ~3 levels (documented deviation).
    x = conf["x"]
    out = blur._filter(x, blur._disk_kernel(8.0, "matlab"))
    assert _mae(out, _stored(conf, "lensblur", "4")) > MAE_TOL


@pytest.mark.parametrize("length", [2, 3, 4, 5, 6, 7, 10])
def test_motion_kernel_properties(length: int) -> None:
    for angle in range(0, 181, 7):
        k = blur._motionblur_kernel(length, angle).astype(np.float64)
        assert abs(k.sum() - 1.0) < 1e-6 and (k >= 0).all()
        np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)  # centrosymmetric
    horizontal = blur._motionblur_kernel(length, 0)
    assert horizontal.shape[0] == 1 and horizontal.shape[1] in (length, length + 1)
    vertical = blur._motionblur_kernel(length, 90)
    assert vertical.shape[1] == 1
    # MATLAB convention: angles counter-clockwise with rows growing downwards, so 45 deg rises
    # to the right (top-right and bottom-left corners weighted) and 135 deg falls to the right.
    if length >= 3:
        k45, k135 = blur._motionblur_kernel(length, 45), blur._motionblur_kernel(length, 135)
        c = k45.shape[0] // 2
        assert k45[:c, c + 1 :].sum() > 0.15 and k45[:c, :c].sum() == 0
        np.testing.assert_array_equal(k135, k45[:, ::-1])


def test_motionblur_length_one_is_identity() -> None:
    img = np.random.default_rng(0).random((17, 23, 3), dtype=np.float32)
    for seed in range(5):
        np.testing.assert_array_equal(blur.motionblur(img, 1.0, np.random.default_rng(seed)), img)


@pytest.mark.parametrize("key", ["gaublur", "lensblur", "motionblur"])
def test_blurs_preserve_constant_images(key: str) -> None:
    img = np.full((30, 41, 3), 0.3, dtype=np.float32)
    for v in REGISTRY[key].anchors:
        out = FN[key](img, v, np.random.default_rng(0))
        np.testing.assert_allclose(out, img, atol=1e-5)


@pytest.mark.parametrize("factor", [0.4, 0.2, 0.1, 0.0, -0.4, 1.5])
def test_colorsat1_closed_form_equals_hsv_round_trip(factor: float) -> None:
    img = np.random.default_rng(2).random((32, 33, 3), dtype=np.float32)
    hsv = cs.rgb_to_hsv(img)
    hsv[..., 1] *= np.float32(factor)
    np.testing.assert_allclose(color.colorsat1(img, factor, np.random.default_rng(0)), cs.hsv_to_rgb(hsv), atol=2e-6)


def test_colour_truncation_to_8bit_steps() -> None:
    img = np.random.default_rng(3).random((24, 24, 3), dtype=np.float32)
    for fn, v in ((color.colordiff, 3.0), (color.colorsat2, 2.0)):
        out = fn(img, v, np.random.default_rng(0)).astype(np.float64) * 255
        np.testing.assert_allclose(out, np.round(out), atol=1e-3)


def test_colorshift_weight_map_range_and_flat_image() -> None:
    img = np.random.default_rng(4).random((40, 50, 3), dtype=np.float32)
    e = color._colorshift_weight(img)
    assert e.shape == (40, 50) and abs(float(e.min())) < 1e-6 and abs(float(e.max()) - 1) < 1e-6
    flat = np.full((20, 20, 3), 0.4, dtype=np.float32)
    np.testing.assert_array_equal(color.colorshift(flat, 12.0, np.random.default_rng(0)), flat)
    out = color._colorshift_apply(img, (3, 0))
    np.testing.assert_array_equal(out[..., [0, 2]], img[..., [0, 2]])


@pytest.mark.parametrize("size", [(16, 16), (17, 40), (96, 96), (127, 200), (512, 300)])
def test_jpeg2000_resolution_cap(size: tuple[int, int]) -> None:
    h, w = size
    n = compression.j2k_num_resolutions(h, w)
    assert 2 ** (n - 1) <= min(h, w) and (n == 8 or 2**n > min(h, w))


def test_jpeg_truncates_before_encoding() -> None:
    """Inputs just below k/255 truncate to k-1 (the reference converts by truncation)."""
    img = np.full((16, 16, 3), (100 - 0.3) / 255, dtype=np.float32)
    out = compression.jpeg(img, 95.0, np.random.default_rng(0))
    np.testing.assert_allclose(out * 255, 99.0, atol=0.5)


# ----------------------------------------------------------------------------------------------
# Contract: any size, float32, input untouched, rng the only randomness
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(16, 16), (17, 23), (96, 130)])
@pytest.mark.parametrize("key", MY_KEYS)
def test_contract_any_size(key: str, size: tuple[int, int]) -> None:
    img = np.random.default_rng(7).random((*size, 3), dtype=np.float32)
    before = img.copy()
    for value in REGISTRY[key].anchors:
        out = FN[key](img, float(value), np.random.default_rng(11))
        assert out.dtype == np.float32 and out.shape == img.shape
        assert np.isfinite(out).all()
        np.testing.assert_array_equal(img, before)
        again = FN[key](img, float(value), np.random.default_rng(11))
        np.testing.assert_array_equal(out, again)


@pytest.mark.parametrize("key", MY_KEYS)
def test_most_severe_changes_natural_image(conf: dict, key: str) -> None:
    x = conf["x"]
    out = np.clip(FN[key](x, REGISTRY[key].anchors[-1], np.random.default_rng(0)), 0, 1)
    assert np.abs(out - x).mean() > 1.0 / 255


# ----------------------------------------------------------------------------------------------
# Colour spaces
# ----------------------------------------------------------------------------------------------


def test_lab_known_values_and_round_trip() -> None:
    rgb = np.array([[[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]], dtype=np.float32)
    lab = cs.rgb_to_lab(rgb)
    # (the matrix rows do not sum exactly to the white point: white gives a, b ~ 5e-3, as in kornia)
    np.testing.assert_allclose(lab[0, 0], [100.0, 0.0, 0.0], atol=1e-2)
    np.testing.assert_allclose(lab[0, 1], [53.2408, 80.0925, 67.2032], atol=1e-2)
    np.testing.assert_allclose(lab[0, 2], [0.0, 0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(lab[0, 3], [53.3890, 0.0, 0.0], atol=1e-2)
    img = np.random.default_rng(0).random((31, 29, 3), dtype=np.float32)
    np.testing.assert_allclose(cs.lab_to_rgb(cs.rgb_to_lab(img)), img, atol=3e-5)
    flat = img.reshape(-1, 3)  # any leading shape
    np.testing.assert_allclose(cs.rgb_to_lab(flat), cs.rgb_to_lab(img).reshape(-1, 3), atol=1e-6)


def test_lab_to_rgb_unclipped_is_kornia_like() -> None:
    lab = np.array([[[50.0, 120.0, -120.0], [30.0, -100.0, 100.0]]], dtype=np.float32)
    raw = cs.lab_to_rgb(lab, clip=False)
    assert raw.min() < 0 or raw.max() > 1  # out of gamut, not clamped
    np.testing.assert_array_equal(cs.lab_to_rgb(lab), np.clip(raw, 0, 1))


def test_hsv_and_ycbcr_round_trips() -> None:
    img = np.random.default_rng(1).random((20, 21, 3), dtype=np.float32)
    np.testing.assert_allclose(cs.hsv_to_rgb(cs.rgb_to_hsv(img)), img, atol=2e-6)
    hsv = cs.rgb_to_hsv(np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=np.float32))
    np.testing.assert_allclose(hsv[0, 0], [0.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(hsv[0, 1], [2 * np.pi / 3, 1.0, 1.0], atol=1e-6)
    # kornia's YCbCr coefficients are rounded, so the round trip is only good to ~3e-4.
    np.testing.assert_allclose(cs.ycbcr_to_rgb(cs.rgb_to_ycbcr(img)), img, atol=5e-4)
    ycc = cs.rgb_to_ycbcr(np.array([[[1.0, 1.0, 1.0]]], dtype=np.float32))
    np.testing.assert_allclose(ycc[0, 0], [1.0, 0.5, 0.5], atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_colordiff_colorsat2_equal_plain_lab_formulation(conf: dict, seed: int) -> None:
    """The fast paths (one 3-plane filter, per-channel OpenCV multiply) give the bytes of the
    plain formulation on the a and b planes (blur a/b, scale a/b, back to RGB, truncate)."""
    from shamisa_core.distortions.colorspace import lab_to_rgb, rgb_to_lab
    from shamisa_core.distortions.primitives.blur import gaussian_blur

    rng = np.random.default_rng(seed)
    imgs = [conf["x"], rng.random((40, 56, 3), dtype=np.float32)]
    for x in imgs:
        for v in (0.0, 0.37, 1.0, 2.5, 4.0):
            lab = rgb_to_lab(x)
            ab = gaussian_blur(lab[..., 1:], 1.5 * v + 2.0)
            ab *= np.float32(v)
            lab[..., 1:] = ab
            plain = np.floor(lab_to_rgb(lab) * np.float32(255)) * np.float32(1 / 255)
            assert np.array_equal(color.colordiff(x, v, rng), plain), ("colordiff", v)
        for v in (-1.0, 0.0, 0.37, 1.0, 2.5):
            lab = rgb_to_lab(x)
            lab[..., 1:] *= np.float32(v)
            plain = np.floor(lab_to_rgb(lab) * np.float32(255)) * np.float32(1 / 255)
            assert np.array_equal(color.colorsat2(x, v, rng), plain), ("colorsat2", v)
