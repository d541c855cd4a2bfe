"""`pipelines.main_run.stages()` (what `make run` executes), checked against the real
Definitions and the real `dagster asset materialize` command-line parser."""

from __future__ import annotations

import json

from dagster._cli.asset import asset_materialize_command

from assets.corpus import SHARD_PARTITIONS
from pipelines.definitions import defs
from pipelines.main_run import stages


def _opt(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def test_every_stage_parses_with_the_dagster_cli():
    for args in stages():
        ctx = asset_materialize_command.make_context(
            "materialize", ["-m", "pipelines.definitions", *args], resilient_parsing=False
        )
        assert ctx.params["select"] == _opt(args, "--select")
        if ctx.params.get("config_json"):
            cfg = json.loads(ctx.params["config_json"])
            assert cfg == {"execution": {"config": {"in_process": {}}}}


def test_stages_cover_every_asset_in_dependency_order():
    graph = defs.resolve_asset_graph()
    materializable = {k.to_user_string() for k in graph.materializable_asset_keys}
    order: dict[str, int] = {}
    for i, args in enumerate(stages()):
        for key in _opt(args, "--select").split(","):
            assert key in materializable, f"stage {i} selects unknown asset {key}"
            assert key not in order, f"{key} is materialized twice"
            order[key] = i
    assert set(order) == materializable  # nothing of the pipeline is left out
    by_name = {k.to_user_string(): k for k in graph.materializable_asset_keys}
    for key, i in order.items():
        for parent in graph.get(by_name[key]).parent_keys:
            p = parent.to_user_string()
            if p in order:
                assert order[p] <= i, f"{key} (stage {i}) runs before its parent {p} (stage {order[p]})"


def test_partitions_named_by_the_stages_exist():
    keys = SHARD_PARTITIONS.get_partition_keys()
    for args in stages():
        sel = _opt(args, "--select").split(",")
        rng = _opt(args, "--partition-range")
        if "corpus_shards" in sel:
            assert rng is not None, "corpus_shards must be built as one partition range"
            first, last = rng.split("...")
            assert (first, last) == (keys[0], keys[-1])  # the whole corpus, in one run
        part = _opt(args, "--partition")
        if part is not None:
            assert part == "proxy"  # the benchmark partition make run builds itself
            assert set(sel) <= {"benchmark_datasets", "benchmark_features"}
