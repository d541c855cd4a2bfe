"""The distortion engine as a whole: registry, severity table, compositions, monotonicity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shamisa_core.config import EngineConfig
from shamisa_core.distortions.composition import (
    Composition,
    apply_chain,
    apply_levels,
    choose_types,
    sample_composition,
    to_uint8,
)
from shamisa_core.distortions.registry import (
    FAMILIES,
    FAMILY_OF,
    CLAMPED_KEYS,
    REGISTRY,
    STOCHASTIC_KEYS,
    get_type,
)
from shamisa_core.distortions.severity import index_to_value, sample_index, sample_severity
from tests.conftest import CONFORMANCE, natural_image


def test_registry_has_26_types_in_7_families():
    assert len(REGISTRY) == 26
    assert len(FAMILIES) == 7
    assert sum(len(m) for m in FAMILIES.values()) == 26
    for d in REGISTRY.values():
        assert len(d.anchors) == 5
        assert callable(d.fn)


def test_unknown_type_names_valid_ones():
    with pytest.raises(KeyError, match="gaublur"):
        get_type("gaussblur")


def test_severity_table_matches_reference_exactly():
    path = CONFORMANCE / "severity_vectors.json"
    if not path.exists():
        pytest.fail(f"conformance vector file {path} is missing (restore tests/data/conformance/)")
    table = json.loads(path.read_text())
    n = 0
    for key, entry in table["keys"].items():
        assert list(REGISTRY[key].anchors) == pytest.approx(entry["anchors"])
        assert REGISTRY[key].integer == entry["integer_key_in_A0"]
        for row in entry["rows"]:
            t2, value = index_to_value(REGISTRY[key], row["t"])
            assert value == row["value"], (key, row["t"])
            assert abs(t2 - row["t_recomputed"]) <= 1e-12, (key, row["t"])
            n += 1
    assert n == 26 * 41


def test_half_normal_distribution_matches_spec():
    rng = np.random.default_rng(0)
    t = np.array([sample_index(rng) for _ in range(40000)])
    assert t.min() >= 0 and t.max() <= 4
    assert abs((t <= 1).mean() - 0.311) < 0.01
    assert abs((t <= 2).mean() - 0.576) < 0.01
    assert abs((t == 4).mean() - 0.110) < 0.01
    u = np.array([sample_index(rng, "uniform") for _ in range(20000)])
    assert abs(u.mean() - 2.0) < 0.05


def test_integer_types_are_rounded_and_t_recomputed():
    rng = np.random.default_rng(1)
    for _ in range(200):
        t, v = sample_severity(get_type("jpeg2000"), rng)
        assert v == round(v)
        t_again, v_again = index_to_value(get_type("jpeg2000"), t)
        assert v_again == v


def test_discrete_mode_returns_anchor_values():
    rng = np.random.default_rng(2)
    for _ in range(100):
        t, v = sample_severity(get_type("gaublur"), rng, discrete=True, num_levels=3)
        assert t in (0.0, 1.0, 2.0)
        assert v == REGISTRY["gaublur"].anchors[int(t)]


def test_t_outside_range_is_refused():
    with pytest.raises(ValueError, match="outside"):
        index_to_value(get_type("jpeg"), 4.5)


@pytest.mark.parametrize("seed", range(20))
def test_composition_rules(seed):
    rng = np.random.default_rng(seed)
    comp = sample_composition(rng, 5, EngineConfig())
    fams = [FAMILY_OF[k] for k in comp.keys]
    assert len(set(fams)) == len(fams) and 1 <= len(fams) <= 7
    k = comp.varying_slot
    others = [s for s in range(len(comp.keys)) if s != k]
    assert np.all(comp.t[:, others] == comp.t[0, others])
    assert np.all(comp.values[:, others] == comp.values[0, others])
    assert np.all(np.diff(comp.t[:, k]) >= 0)  # DECISIONS 3
    again = Composition.from_record(json.loads(json.dumps(comp.to_record())))
    assert again.keys == comp.keys and np.array_equal(again.t, comp.t)


def test_fixed_order_uses_alphabetical_first_members():
    keys = choose_types(7, np.random.default_rng(0), fixed_order=True)
    assert keys == ("gaublur", "brighten", "colordiff", "jpeg", "impulsenoise", "highsharpen", "colorblock")


def test_max_distortions_bounds_chain_length():
    rng = np.random.default_rng(3)
    lens = {len(sample_composition(rng, 2, EngineConfig(max_distortions=2)).keys) for _ in range(50)}
    assert lens == {1, 2}


@pytest.fixture(scope="module")
def photo():
    return natural_image(5, 96, 96).astype(np.float32) / 255.0


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_every_type_changes_image_and_stays_in_range(key, photo):
    d = get_type(key)
    _, value = index_to_value(d, 4.0)
    out = apply_chain(photo, [(key, value)], np.random.default_rng(0))
    assert out.shape == photo.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert np.abs(out - photo).mean() > 1e-3, key
    assert np.array_equal(photo, natural_image(5, 96, 96).astype(np.float32) / 255.0)  # input untouched


# lincontrchangeneg's ladder starts at a=0, which is a mild contrast *boost* (METHOD.md §1.4);
# the curve passes the identity near t=4/3 and grows monotonically after that.
_T_GRID = {"lincontrchangeneg": (1.5, 2.5, 4.0)}


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_difference_grows_with_t(key, photo):
    d = get_type(key)
    diffs = []
    for t in _T_GRID.get(key, (0.0, 2.0, 4.0)):
        _, value = index_to_value(d, t)
        vals = [
            np.abs(apply_chain(photo, [(key, value)], np.random.default_rng(s)) - photo).mean()
            for s in range(6)
        ]
        diffs.append(float(np.mean(vals)))
    assert diffs[0] < diffs[1] < diffs[2], (key, diffs)


def test_prefix_is_shared_across_levels(photo):
    rng = np.random.default_rng(11)
    comp = sample_composition(rng, 3, EngineConfig())
    lv = [np.random.default_rng(100 + l) for l in range(3)]
    outs = apply_levels(photo, comp, np.random.default_rng(7), lv)
    assert len(outs) == 3
    outs2 = apply_levels(photo, comp, np.random.default_rng(7), [np.random.default_rng(100 + l) for l in range(3)])
    for a, b in zip(outs, outs2):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_stochastic_flag_matches_rng_use(key, photo):
    """``STOCHASTIC_KEYS`` lists exactly the primitives that draw from ``rng`` (the level
    de-duplication in ``apply_levels`` relies on the others leaving it untouched)."""
    rng = np.random.default_rng(5)
    before = rng.bit_generator.state
    _, value = index_to_value(get_type(key), 3.0)
    get_type(key).fn(photo, value, rng)
    assert (rng.bit_generator.state != before) == (key in STOCHASTIC_KEYS), key
    assert get_type(key).stochastic == (key in STOCHASTIC_KEYS)


@pytest.mark.parametrize("key", sorted(CLAMPED_KEYS))
def test_clamped_types_need_no_chain_clamp(key, photo):
    """A type in ``CLAMPED_KEYS`` returns samples in [0, 1] for any finite input, at every
    anchor, so the chain's clamp would leave every bit as it is (apply_chain skips it)."""
    rng = np.random.default_rng(3)
    h, w = photo.shape[:2]
    inputs = [
        photo,
        rng.uniform(-0.5, 1.5, photo.shape).astype(np.float32),  # out of range both ways
        np.zeros_like(photo),
        np.ones_like(photo),
        np.where(rng.random(photo.shape) < 0.5, 0.0, 1.0).astype(np.float32),
    ]
    assert get_type(key).clamped
    for img in inputs:
        for t in (0.0, 1.5, 2.0, 3.0, 4.0):
            _, value = index_to_value(get_type(key), t)
            out = np.asarray(get_type(key).fn(img, value, rng), dtype=np.float32)
            clipped = np.clip(out, 0.0, 1.0)
            assert out.shape == (h, w, 3)
            assert np.array_equal(out.view(np.uint32), clipped.view(np.uint32)), (key, t)


def test_no_other_type_is_flagged_clamped(photo):
    """The list is complete: every other type's output can leave [0, 1] (at some anchor, on a
    natural photo or an out-of-range input), so its clamp is needed."""
    rng = np.random.default_rng(4)
    wild = rng.uniform(-0.5, 1.5, photo.shape).astype(np.float32)
    never = []
    # quantization stays in [0, 1] on in-range input (a min-max normalised index), but its
    # one-bucket branch (index / levels) exceeds 1 for samples above 1: left unflagged.
    for key in sorted(set(REGISTRY) - CLAMPED_KEYS - {"quantization"}):
        assert not get_type(key).clamped
        leaves = False
        for img in (photo, wild):
            for t in (0.0, 2.0, 4.0):
                _, value = index_to_value(get_type(key), t)
                out = np.asarray(get_type(key).fn(img, value, np.random.default_rng(1)))
                leaves |= bool(out.min() < 0.0 or out.max() > 1.0)
        never.append(key) if not leaves else None
    assert never == [], f"{never} never leave [0, 1] here: consider CLAMPED_KEYS"


def test_chain_bytes_unchanged_by_the_clamp_skip(photo, monkeypatch):
    """Random chains give the same bytes as with a clamp after every type."""
    from shamisa_core.distortions import registry

    rng = np.random.default_rng(21)
    chains = []
    for _ in range(12):
        keys = choose_types(int(rng.integers(1, 8)), rng)
        chains.append([(k, index_to_value(get_type(k), float(rng.uniform(0, 4)))[1]) for k in keys])
    fast = [apply_chain(photo, c, np.random.default_rng(i)) for i, c in enumerate(chains)]
    monkeypatch.setattr(registry, "CLAMPED_KEYS", frozenset())
    slow = [apply_chain(photo, c, np.random.default_rng(i)) for i, c in enumerate(chains)]
    for a, b in zip(fast, slow):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def _levels_by_hand(photo, comp, prefix_seed, level_seeds):
    k = comp.varying_slot
    base = apply_chain(photo, comp.level_chain(0)[:k], np.random.default_rng(prefix_seed))
    return [
        apply_chain(base, comp.level_chain(l)[k:], np.random.default_rng(s))
        for l, s in enumerate(level_seeds)
    ]


@pytest.mark.parametrize(
    "keys, varying, values",
    [
        # deterministic suffix with repeated values: levels 1, 2 and 3, 4 are copies
        (("gaublur", "jpeg2000", "colorsat2"), 1, [16.0, 45.0, 45.0, 170.0, 170.0]),
        # stochastic suffix with repeated values: every level keeps its own noise
        (("gaublur", "jpeg", "whitenoise"), 1, [10.0, 24.0, 24.0, 4.0, 4.0]),
    ],
)
def test_apply_levels_equals_per_level_chains(photo, keys, varying, values):
    """Same bytes as applying each level's chain on its own (prefix realised once)."""
    n, L = len(keys), len(values)
    base_values = {"gaublur": 1.0, "jpeg2000": 45.0, "colorsat2": 3.0, "jpeg": 24.0, "whitenoise": 0.003}
    v = np.array([[base_values[k] for k in keys]] * L, dtype=np.float64)
    v[:, varying] = values
    comp = Composition(keys=keys, varying_slot=varying, t=np.zeros((L, n)), values=v)
    outs = apply_levels(photo, comp, np.random.default_rng(1), [np.random.default_rng(10 + l) for l in range(L)])
    expected = _levels_by_hand(photo, comp, 1, [10 + l for l in range(L)])
    for a, b in zip(outs, expected):
        assert a.dtype == np.float32 and np.array_equal(a, b)
    assert len({id(a) for a in outs}) == L  # copies, never one array shared by two levels
    if "whitenoise" in keys:
        assert not np.array_equal(outs[1], outs[2])  # same value, different rng: different noise
    else:
        assert np.array_equal(outs[1], outs[2]) and not np.array_equal(outs[0], outs[1])


def test_to_uint8_equals_numpy_rounding():
    """OpenCV's conversion gives the bytes of ``rint(x * 255)`` (half to even), ties included."""
    rng = np.random.default_rng(3)
    x = rng.random((64, 64, 3), dtype=np.float32)
    ties = (np.arange(64 * 64 * 3, dtype=np.float32) % 255 + np.float32(0.5)) / np.float32(255.0)
    x[:32] = ties.reshape(64, 64, 3)[:32]
    x[0, 0] = (0.0, 1.0, np.nextafter(np.float32(0.5 / 255), np.float32(1)))
    expected = np.rint(x * np.float32(255.0)).astype(np.uint8)
    got = to_uint8(x)
    assert got.dtype == np.uint8 and got.shape == x.shape
    assert np.array_equal(got, expected)


def test_lincontrchange_anchor_zero_is_not_identity(photo):
    """Reference quirk kept for conformance: a=0 passes (0.3, 0.25) and (0.7, 0.75)."""
    for key in ("lincontrchangeneg", "lincontrchangepos"):
        out = apply_chain(photo, [(key, 0.0)], np.random.default_rng(0))
        assert np.abs(out - photo).mean() > 0.01
    _, value = index_to_value(get_type("lincontrchangeneg"), 4 / 3)
    near_identity = apply_chain(photo, [("lincontrchangeneg", value)], np.random.default_rng(0))
    assert np.abs(near_identity - photo).mean() < 0.005


# --- shared jpeg2000 codestream for a varying jpeg2000 slot (docs/DECISIONS.md E6) ------------


def _u8_mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(to_uint8(a).astype(np.int16) - to_uint8(b).astype(np.int16)).mean())


@pytest.fixture(scope="module")
def photo224():
    return natural_image(6, 224, 224).astype(np.float32) / 255.0


def test_jpeg2000_levels_close_to_one_encode_per_level(photo224):
    """One multi-layer codestream (224 px: every level's budget >= 800 bytes): the highest
    ratio is bit-exact, the others within the conformance tolerance (uint8 MAE <= 2/255) of
    encoding each ratio on its own, and not all identical to it (the shared codestream is
    really used); repeated values give equal but separate arrays; more bytes, closer to the
    input."""
    from shamisa_core.distortions.primitives.compression import jpeg2000, jpeg2000_levels

    photo = photo224

    values = [16.0, 45.0, 45.0, 120.0, 170.0]
    outs = jpeg2000_levels(photo, values)
    singles = {v: jpeg2000(photo, v, np.random.default_rng(0)) for v in set(values)}
    assert [o.dtype for o in outs] == [np.float32] * 5 and outs[0].shape == photo.shape
    assert np.array_equal(outs[4], singles[170.0])
    maes = [_u8_mae(o, singles[v]) for o, v in zip(outs, values)]
    assert max(maes) <= 2.0, maes
    assert np.array_equal(outs[1], outs[2]) and outs[1] is not outs[2]
    dist = [float(np.abs(o - photo).mean()) for o in outs]
    assert dist[0] < dist[1] < dist[3] < dist[4], dist
    assert not all(np.array_equal(o, singles[v]) for o, v in zip(outs, values))
    # a single distinct value is the plain single-layer encode
    same = jpeg2000_levels(photo, [45.0, 45.0])
    assert np.array_equal(same[0], singles[45.0]) and np.array_equal(same[1], singles[45.0])


def test_jpeg2000_levels_small_budgets_encode_each_level(photo):
    """96 px at ratios up to 170 (budgets under 800 bytes): one exact encode per level."""
    from shamisa_core.distortions.primitives.compression import jpeg2000, jpeg2000_levels

    values = [16.0, 45.0, 120.0, 170.0]
    outs = jpeg2000_levels(photo, values)
    for o, v in zip(outs, values):
        assert np.array_equal(o, jpeg2000(photo, v, np.random.default_rng(0)))


def test_apply_levels_shared_jpeg2000_slot(photo224):
    """``j2k_shared_levels``: the suffix still gets each level's own rng stream (noise differs
    per level, and equals the exact path's noise given the same codec output), the run repeats
    byte for byte, and every level is within tolerance of the one-encode-per-level path."""
    photo = photo224
    keys, L = ("gaublur", "jpeg2000", "whitenoise"), 5
    v = np.array([[1.0, 0.0, 0.002]] * L)
    v[:, 1] = [20.0, 33.0, 60.0, 60.0, 150.0]
    comp = Composition(keys=keys, varying_slot=1, t=np.zeros((L, 3)), values=v)

    def run(shared: bool) -> list[np.ndarray]:
        return apply_levels(photo, comp, np.random.default_rng(1),
                            [np.random.default_rng(10 + l) for l in range(L)], shared)

    shared, again, exact = run(True), run(True), run(False)
    for a, b in zip(shared, again):
        assert np.array_equal(a, b)
    assert not np.array_equal(shared[2], shared[3])  # same ratio, own noise per level
    for a, b in zip(shared, exact):
        assert _u8_mae(a, b) <= 2.0
    assert not all(np.array_equal(a, b) for a, b in zip(shared, exact))  # shared path used
    # the noise itself is the exact path's: subtracting each path's codec output leaves the
    # same noise wherever neither sample was clamped
    from shamisa_core.distortions.primitives.compression import jpeg2000_levels

    base = apply_chain(photo, [("gaublur", 1.0)], np.random.default_rng(1))
    codec = jpeg2000_levels(base, list(v[:, 1]))
    noise_shared = shared[0] - codec[0]
    ok = (shared[0] > 0) & (shared[0] < 1)
    ref = apply_chain(codec[0], [("whitenoise", 0.002)], np.random.default_rng(10)) - codec[0]
    assert np.allclose(noise_shared[ok], ref[ok], atol=1e-6)
