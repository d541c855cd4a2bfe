"""Profiles, overrides and ablation switches of the one config object."""

from __future__ import annotations

import pytest

from shamisa_core.config import ENGINE_ABLATIONS, apply_ablation, load_profile, with_overrides
from shamisa_core.objective import ABLATIONS


def test_paper_profile_is_a0():
    cfg = load_profile("paper")
    assert (cfg.group.patch_size, cfg.group.n_refs, cfg.group.n_comps, cfg.group.n_levels) == (224, 3, 4, 5)
    assert cfg.model.arch == "resnet50" and cfg.model.init == "imagenet"
    assert cfg.engine.max_distortions == 7 and cfg.engine.severity_dist == "gaussian"
    assert cfg.train.lr == 1.5e-3 and cfg.train.batch_size == 2
    assert cfg.graph.knn_k == 31 and cfg.graph.weighting == "uniform"


def test_cpu_small_profile():
    cfg = load_profile("cpu-small")
    assert (cfg.group.patch_size, cfg.group.n_refs, cfg.group.n_comps, cfg.group.n_levels) == (96, 2, 2, 3)
    assert cfg.model.arch == "efficientnet_lite0" and cfg.model.init == "imagenet"
    assert cfg.group.crops_per_group * cfg.train.batch_size == 56


def test_cpu_resnet18_profile_keeps_the_previous_default():
    cfg = load_profile("cpu-resnet18")
    assert cfg.model.arch == "resnet18" and cfg.model.init == "random"
    assert cfg.ablation == "B7" and cfg.model.projector_input == "f" and cfg.train.lr == 0.01


def test_overrides_are_typed_and_validated():
    cfg = with_overrides(load_profile("paper"), ["engine.fixed_order=true", "train.lr=0.01", "group.n_levels=2"])
    assert cfg.engine.fixed_order is True and cfg.train.lr == 0.01 and cfg.group.n_levels == 2
    with pytest.raises(KeyError, match="unknown config key 'engine.nope'"):
        with_overrides(cfg, ["engine.nope=1"])
    with pytest.raises(ValueError, match="engine.max_distortions"):
        with_overrides(cfg, ["engine.max_distortions=9"])
    with pytest.raises(ValueError, match="not one of"):
        with_overrides(cfg, ["engine.severity_dist=cauchy"])
    with pytest.raises(ValueError, match="unknown profile"):
        load_profile("gpu-huge")


def test_every_ablation_applies_and_changes_something():
    base = load_profile("paper")
    for name in [*ABLATIONS, *ENGINE_ABLATIONS]:
        cfg = apply_ablation(base, name)
        assert cfg.ablation == name
        if name not in ("A0", "D1b"):  # D1b is A0's own max_distortions=7
            assert cfg.to_dict() | {"ablation": "A0"} != base.to_dict(), name
    assert load_profile("paper", ["ablation=B7"]).graph.active_branches() == ("structural", "ref_dist", "ref_ref", "dist_dist")
    with pytest.raises(ValueError, match="unknown ablation"):
        apply_ablation(base, "Z9")


def test_config_hash_is_stable():
    assert load_profile("cpu-small").section_hash("engine") == load_profile("cpu-small").section_hash("engine")
    assert load_profile("cpu-small").section_hash("group") != load_profile("paper").section_hash("group")
