"""Independent checks of the corpus stage: the asset checks fail on bad corpora, a range of
``corpus_shards`` partitions builds in one run, and the composition prefix is shared.

Expected values come from outside the code under test: damaged shards are made with the
standard ``tarfile`` module, expected shard bytes from a direct library build, and the
prefix rule from a composition whose levels are identical by construction.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from dagster import DagsterInstance, materialize

from assets.corpus import corpus_manifest, corpus_rules, corpus_shards, pristine_images
from pipelines.resources import OutputPaths, ShamisaSettings
from shamisa_core.corpus.build import build_corpus, build_shard
from shamisa_core.distortions.composition import Composition, apply_levels
from shamisa_core.distortions.registry import FAMILY_OF, REGISTRY
from shamisa_core.pristine import scan_folder, write_pristine_manifest

TINY = ["group.patch_size=48", "group.n_refs=2", "group.n_comps=2", "group.n_levels=2",
        "corpus.n_shards=2", "corpus.groups_per_shard=1", "corpus.min_side=32"]


def _settings(pristine_dir: Path) -> ShamisaSettings:
    return ShamisaSettings(profile="cpu-small", overrides=TINY, pristine=str(pristine_dir))


def _checks(tmp_path: Path, pristine_dir: Path, damage) -> dict[str, bool]:
    """Build a tiny corpus with the library, ``damage`` it, then run corpus_manifest and its
    five checks in a real Dagster run; returns ``{check name: passed}``."""
    settings = _settings(pristine_dir)
    cfg = settings.config()
    paths = OutputPaths(root=str(tmp_path / "out"))
    out = paths.corpus_dir(cfg.profile)
    scan = scan_folder(pristine_dir, 32)
    build_corpus([i.path for i in scan.images], cfg, out)
    write_pristine_manifest(scan, out / "pristine.parquet")
    damage(out)
    with DagsterInstance.ephemeral() as instance:
        r = materialize([corpus_shards.to_source_asset(), corpus_manifest, corpus_rules],
                        resources={"settings": settings, "paths": paths}, instance=instance,
                        selection=[corpus_manifest])
        assert r.success
        return {c.check_name: c.passed for c in r.get_asset_check_evaluations()}


def _rewrite_first_record(shard: Path, edit) -> None:
    """Re-write ``shard`` with the standard tarfile module, applying ``edit`` to the JSON
    record of its first sample (the arrays are copied unchanged)."""
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]
    done = False
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            if info.name.endswith(".json") and not done:
                rec = json.loads(data)
                edit(rec)
                data = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode()
                done = True
            new = tarfile.TarInfo(info.name)
            new.size, new.mtime, new.mode = len(data), 0, 0o644
            tar.addfile(new, io.BytesIO(data))
    assert done, f"{shard} has no JSON record"
    shard.write_bytes(buf.getvalue())


def test_good_corpus_passes_every_check(tmp_path, pristine_dir):
    checks = _checks(tmp_path, pristine_dir, lambda out: None)
    assert checks == dict.fromkeys(checks, True) and len(checks) == 5


def test_truncated_shard_fails_shards_decode(tmp_path, pristine_dir):
    def truncate(out: Path) -> None:
        shard = out / "shard-000001.tar"
        data = shard.read_bytes()
        shard.write_bytes(data[: len(data) // 2])

    checks = _checks(tmp_path, pristine_dir, truncate)
    assert checks["shards_decode"] is False


def test_repeated_family_fails_no_family_repeats(tmp_path, pristine_dir):
    def repeat_family(rec: dict) -> None:
        comp = rec["compositions"][0]
        first = comp["slots"][0]["type"]
        # another member of the same family, chosen from the registry's own family table
        sibling = next(k for k in sorted(REGISTRY) if FAMILY_OF[k] == FAMILY_OF[first])
        comp["slots"].append({"family": FAMILY_OF[first], "type": sibling})
        for lv in comp["levels"]:
            lv["t"].append(1.0)
            lv["value"].append(1.0)

    checks = _checks(tmp_path, pristine_dir, lambda out: _rewrite_first_record(out / "shard-000000.tar", repeat_family))
    assert checks["no_family_repeats"] is False
    assert checks["shards_decode"] is True  # the shard itself still decodes


def test_fixed_slot_varying_fails_one_factor_rule(tmp_path, pristine_dir):
    def vary_fixed_slot(rec: dict) -> None:
        # find a composition with a fixed slot; a one-slot chain has none, so add a fixed
        # slot from an unused family when needed
        comp = rec["compositions"][0]
        k = comp["varying_slot"]
        if len(comp["slots"]) == 1:
            used = {FAMILY_OF[s["type"]] for s in comp["slots"]}
            extra = next(key for key in sorted(REGISTRY) if FAMILY_OF[key] not in used)
            comp["slots"].append({"family": FAMILY_OF[extra], "type": extra})
            for lv in comp["levels"]:
                lv["t"].append(1.0)
                lv["value"].append(1.0)
        fixed = next(s for s in range(len(comp["slots"])) if s != k)
        comp["levels"][-1]["t"][fixed] += 0.5

    checks = _checks(tmp_path, pristine_dir, lambda out: _rewrite_first_record(out / "shard-000000.tar", vary_fixed_slot))
    assert checks["one_factor_rule"] is False


def test_dropped_group_fails_counts(tmp_path, pristine_dir):
    def drop_sample(out: Path) -> None:
        shard = out / "shard-000001.tar"
        shard.write_bytes(b"")  # an empty tar-less file: zero groups, or undecodable

    checks = _checks(tmp_path, pristine_dir, drop_sample)
    assert checks["counts_match_config"] is False or checks["shards_decode"] is False
    assert not all(checks.values())


def test_partition_range_builds_in_one_run(tmp_path, pristine_dir):
    """Two corpus_shards partitions in one run (single-run backfill policy): both shards are
    byte-identical to shards built directly by the library, and both partitions are recorded."""
    settings = _settings(pristine_dir)
    cfg = settings.config()
    paths = OutputPaths(root=str(tmp_path / "out"))
    resources = {"settings": settings, "paths": paths}
    with DagsterInstance.ephemeral() as instance:
        assert materialize([pristine_images], resources=resources, instance=instance).success
        r = materialize(
            [pristine_images.to_source_asset(), corpus_shards], resources=resources, instance=instance,
            selection=[corpus_shards],
            tags={"dagster/asset_partition_range_start": "shard-000000",
                  "dagster/asset_partition_range_end": "shard-000001"},
        )
        assert r.success
        mats = r.asset_materializations_for_node("corpus_shards")
        assert sorted(m.partition for m in mats) == ["shard-000000", "shard-000001"]
        assert {m.metadata["n_groups"].value for m in mats} == {2}  # one run covering 2 shards
        done = instance.get_materialized_partitions(corpus_shards.key)
        assert {"shard-000000", "shard-000001"} <= set(done)
    out = paths.corpus_dir(cfg.profile)
    sources = [i.path for i in scan_folder(pristine_dir, 32).images]
    ref = tmp_path / "direct"
    for s in (0, 1):
        direct = build_shard(sources, cfg, s, ref)
        assert (out / f"shard-{s:06d}.tar").read_bytes() == Path(direct.path).read_bytes()
    assert (out / "shard-000000.tar").read_bytes() != (out / "shard-000001.tar").read_bytes()


# ------------------------------------------------------------------ prefix shared across levels
def _photo() -> np.ndarray:
    from synthetic_images import natural_image

    return natural_image(3, 64, 64).astype(np.float32) / 255.0


@pytest.mark.parametrize("noise", ["whitenoise", "impulsenoise"])
def test_prefix_is_applied_once_for_all_levels(noise):
    """A random prefix (noise) before a deterministic varying slot (blur) at the same value on
    every level: with one shared realisation of the prefix all levels are bit-identical, and
    they equal the prefix applied once followed by the blur (METHOD.md §1.7)."""
    from shamisa_core.distortions.composition import apply_chain
    from shamisa_core.distortions.registry import get_type
    from shamisa_core.distortions.severity import index_to_value

    assert noise in REGISTRY
    blur = "gaublur"
    _, nv = index_to_value(get_type(noise), 3.0)
    _, bv = index_to_value(get_type(blur), 2.0)
    L = 3
    comp = Composition(keys=(noise, blur), varying_slot=1,
                       t=np.array([[3.0, 2.0]] * L), values=np.array([[nv, bv]] * L))
    img = _photo()
    outs = apply_levels(img, comp, np.random.default_rng(5), [np.random.default_rng(50 + l) for l in range(L)])
    for o in outs[1:]:
        assert np.array_equal(o, outs[0])
    once = apply_chain(img, [(noise, nv)], np.random.default_rng(5))
    expected = apply_chain(once, [(blur, bv)], np.random.default_rng(0))
    np.testing.assert_array_equal(outs[0], expected)
    # and the prefix is random: a second realisation differs, so sharing is not vacuous
    other = apply_chain(img, [(noise, nv)], np.random.default_rng(6))
    assert not np.array_equal(once, other)


def test_corpus_check_record_points_at_the_varying_slot(pristine_dir, tiny_cfg):
    """Strengthened from test_corpus: the varying slot is inside every chain and is the
    only slot whose ``t`` changes across levels in a built group."""
    from shamisa_core.corpus.groups import build_group, default_loader

    src = [i.path for i in scan_folder(pristine_dir, 32).images]
    g = build_group(src, default_loader, 5, 0, 0, 2, tiny_cfg.group, tiny_cfg.engine)
    for comp in g.record["compositions"]:
        n, k = len(comp["slots"]), comp["varying_slot"]
        assert 0 <= k < n
        t = np.array([lv["t"] for lv in comp["levels"]])
        changing = {s for s in range(n) if len(set(t[:, s])) > 1}
        assert changing <= {k}
