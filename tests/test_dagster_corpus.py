"""The corpus assets run for real on a temporary Dagster instance."""

from __future__ import annotations

import json

from dagster import DagsterInstance, materialize

from assets.corpus import corpus_manifest, corpus_rules, corpus_shards, pristine_images
from pipelines.resources import OutputPaths, ShamisaSettings


def test_definitions_load_with_lineage():
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"pristine_images", "corpus_shards", "corpus_manifest"} <= keys
    shards = graph.get(corpus_shards.key)
    assert pristine_images.key in shards.parent_keys
    assert corpus_shards.key in graph.get(corpus_manifest.key).parent_keys


def test_corpus_assets_materialize(tmp_path, pristine_dir):
    settings = ShamisaSettings(
        profile="cpu-small",
        overrides=["group.patch_size=48", "group.n_levels=2", "corpus.n_shards=2",
                   "corpus.groups_per_shard=1", "corpus.min_side=32"],
        pristine=str(pristine_dir),
    )
    resources = {"settings": settings, "paths": OutputPaths(root=str(tmp_path / "out"))}
    with DagsterInstance.ephemeral() as instance:
        r = materialize([pristine_images], resources=resources, instance=instance)
        assert r.success
        for key in ("shard-000000", "shard-000001"):
            r = materialize([pristine_images.to_source_asset(), corpus_shards], resources=resources,
                            instance=instance, partition_key=key, selection=[corpus_shards])
            assert r.success
        r = materialize([corpus_shards.to_source_asset(), corpus_manifest, corpus_rules],
                        resources=resources, instance=instance, selection=[corpus_manifest])
        assert r.success
        checks = r.get_asset_check_evaluations()
        assert len(checks) == 5 and all(c.passed for c in checks)
    manifest = json.loads((tmp_path / "out" / "corpus" / "cpu-small" / "manifest.json").read_text())
    assert manifest["n_groups"] == 2


def test_corpus_shards_range_run_uses_configured_workers(tmp_path, pristine_dir):
    """A partition range in one run builds its shards in ``config.workers`` processes (0 =
    every available core, capped at the partitions of the run); the bytes do not depend on it."""
    from shamisa_core.corpus.build import available_cores, resolve_workers

    settings = ShamisaSettings(
        profile="cpu-small",
        overrides=["group.patch_size=48", "group.n_levels=2", "corpus.n_shards=2",
                   "corpus.groups_per_shard=1", "corpus.min_side=32"],
        pristine=str(pristine_dir),
    )
    tags = {"dagster/asset_partition_range_start": "shard-000000",
            "dagster/asset_partition_range_end": "shard-000001"}
    shards = {}
    for workers in (1, 0):
        out = tmp_path / f"w{workers}"
        resources = {"settings": settings, "paths": OutputPaths(root=str(out))}
        with DagsterInstance.ephemeral() as instance:
            assert materialize([pristine_images], resources=resources, instance=instance).success
            r = materialize(
                [pristine_images.to_source_asset(), corpus_shards], resources=resources,
                instance=instance, selection=[corpus_shards], tags=tags,
                run_config={"ops": {"corpus_shards": {"config": {"workers": workers}}}},
            )
            assert r.success
            md = r.asset_materializations_for_node("corpus_shards")[0].metadata
            assert md["workers"].value == (min(available_cores(), 2) if workers == 0 else workers)
        folder = out / "corpus" / "cpu-small"
        shards[workers] = [(folder / f"shard-00000{i}.tar").read_bytes() for i in range(2)]
    assert shards[1] == shards[0]
    assert shards[1][0] != shards[1][1]
    assert resolve_workers(0, 100) == available_cores() and resolve_workers(5, 3) == 3
    assert resolve_workers(-1, 1) == 1
