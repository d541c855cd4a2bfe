"""Engine ablations D1a-D4 (METHOD.md §4.6), each checked for its own effect on sampled
compositions, and for changing nothing else of the engine section.

Expected properties come from the registry tables (families, anchors, integer flags) and
from the distributions named in METHOD.md §1.5, not from the sampler.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import kstest

from shamisa_core.config import ENGINE_ABLATIONS, apply_ablation, load_profile
from shamisa_core.distortions.composition import sample_composition
from shamisa_core.distortions.registry import FAMILY_OF, REGISTRY

N = 600


def _engine(name: str):
    return apply_ablation(load_profile("paper"), name).engine


def _sample(engine, n: int = N, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [sample_composition(rng, 5, engine) for _ in range(n)]


def _continuous_t(comps) -> np.ndarray:
    """Every independently drawn ``t`` of the non-integer types (integer types recompute t
    after rounding): the varying slot's t at each level, a fixed slot's t once."""
    out = []
    for c in comps:
        for s, k in enumerate(c.keys):
            if not REGISTRY[k].integer:
                out.extend(c.t[:, s] if s == c.varying_slot else c.t[:1, s])
    return np.array(out)


@pytest.mark.parametrize("name", sorted(ENGINE_ABLATIONS))
def test_ablation_changes_only_its_engine_fields(name):
    base = dataclasses.asdict(load_profile("paper").engine)
    ablated = dataclasses.asdict(_engine(name))
    changed = {k for k in base if base[k] != ablated[k]}
    expected = {k.split(".", 1)[1] for k, v in ENGINE_ABLATIONS[name].items() if base[k.split(".", 1)[1]] != v}
    assert changed == expected
    cfg_a, cfg_b = load_profile("paper"), apply_ablation(load_profile("paper"), name)
    for section in ("group", "corpus", "model", "graph", "loss", "train"):
        assert getattr(cfg_a, section) == getattr(cfg_b, section), (name, section)


def test_d1a_single_distortion_chains():
    comps = _sample(_engine("D1a"))
    assert {len(c.keys) for c in comps} == {1}
    assert {c.varying_slot for c in comps} == {0}
    assert max(len(c.keys) for c in _sample(_engine("A0"))) > 1  # the default chains are longer


def test_d1b_chain_length_uniform_up_to_7():
    lengths = np.array([len(c.keys) for c in _sample(_engine("D1b"), n=1400)])
    counts = np.bincount(lengths, minlength=8)[1:]
    assert counts.min() > 0 and lengths.max() == 7
    assert np.all(np.abs(counts / len(lengths) - 1 / 7) < 0.05), counts  # U{1..7}


def test_d2_discrete_severities_are_anchor_values():
    comps = _sample(_engine("D2"))
    for c in comps:
        assert np.all(np.isin(c.t, [0, 1, 2, 3, 4])), c.t
        for s, k in enumerate(c.keys):
            anchors = np.asarray(REGISTRY[k].anchors, dtype=np.float64)
            assert np.allclose(c.values[:, s], anchors[c.t[:, s].astype(int)])
    t_a0 = _continuous_t(_sample(_engine("A0")))
    assert np.mean(t_a0 != np.round(t_a0)) > 0.5  # the default is continuous


def test_d3_uniform_severity():
    t = _continuous_t(_sample(_engine("D3")))
    assert kstest(t / 4.0, "uniform").pvalue > 1e-3
    assert np.mean(t == 4.0) < 0.01
    # the default half-normal(std 2.5) clipped at 4: a point mass P(|N| > 4) = 0.110 at t = 4
    t_a0 = _continuous_t(_sample(_engine("A0")))
    assert abs(np.mean(t_a0 == 4.0) - 0.1096) < 0.03
    assert kstest(t_a0 / 4.0, "uniform").pvalue < 1e-6


def test_d4_fixed_order_is_alphabetical_first_members():
    comps = _sample(_engine("D4"), n=200)
    families = sorted({FAMILY_OF[k] for k in REGISTRY})
    first_member = {f: min(k for k in REGISTRY if FAMILY_OF[k] == f) for f in families}
    for c in comps:
        fams = [FAMILY_OF[k] for k in c.keys]
        assert fams == families[: len(fams)]
        assert list(c.keys) == [first_member[f] for f in fams]
    orders = {tuple(FAMILY_OF[k] for k in c.keys) for c in _sample(_engine("A0"), n=200)}
    assert any(list(o) != sorted(o) for o in orders)  # the default order is random
