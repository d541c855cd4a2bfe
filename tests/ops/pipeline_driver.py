"""Drive the real Definitions against the instance in ``$DAGSTER_HOME`` (one code-location load).

Run as a script, in a fresh process per step of a test, so that settings read from the
environment at load time (partitions, code versions, resources) are re-read, as a reload of
the code location does in the UI:

    python tests/ops/pipeline_driver.py status          # JSON: {"asset[partition]": status}
    python tests/ops/pipeline_driver.py run all         # materialize everything, stage by stage
    python tests/ops/pipeline_driver.py run unsynced    # only stale or missing, like the UI's
                                                        # "Materialize unsynced"

``run`` prints JSON ``{"ran": [...], "before": {...}, "after": {...}}``.
"""

from __future__ import annotations

import json
import sys
from typing import Iterable

from dagster import AssetKey, DagsterInstance, materialize
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver
from dagster._time import get_current_datetime

#: The stages of `make run` (pipelines/main_run.py), in dependency order.
STAGES: list[list[str]] = [
    ["pristine_images"],
    ["corpus_shards"],
    ["corpus_manifest"],
    ["encoder"],
    ["benchmark_catalog"],
    ["benchmark_datasets", "benchmark_features"],
    ["quality_regressors", "cross_dataset_table", "full_reference_table", "evaluation_table"],
]


def _label(key: str, partition: str | None) -> str:
    return f"{key}[{partition}]" if partition else key


def statuses(defs, instance: DagsterInstance) -> dict[str, str]:
    """Stale status of every asset (each partition of partitioned ones) via Dagster's resolver."""
    graph = defs.resolve_asset_graph()
    view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(),
                                                           last_event_id=None),
                          instance=instance, asset_graph=graph)
    resolver = CachingStaleStatusResolver(instance, graph, loading_context=view)
    out: dict[str, str] = {}
    for stage in STAGES:
        for name in stage:
            node = graph.get(AssetKey(name))
            parts: Iterable[str | None] = [None]
            if node.partitions_def is not None:
                parts = node.partitions_def.get_partition_keys(dynamic_partitions_store=instance)
            for p in parts:
                out[_label(name, p)] = resolver.get_status(AssetKey(name), p).value
    return out


def run(defs, instance: DagsterInstance, only_unsynced: bool) -> dict:
    """Materialize every stage, or only what was stale or missing before the first run (the
    selection "Materialize unsynced" makes), stage by stage in dependency order."""
    before = statuses(defs, instance)
    graph = defs.resolve_asset_graph()
    assets = [*defs.assets, *(defs.asset_checks or [])]

    def wanted(label: str) -> bool:
        return not only_unsynced or before.get(label, "MISSING") in ("STALE", "MISSING")

    ran: list[str] = []
    for stage in STAGES:
        partitions_def = graph.get(AssetKey(stage[0])).partitions_def
        # Dynamic partitions appear once benchmark_catalog ran, so they are read here.
        keys = ([None] if partitions_def is None else
                partitions_def.get_partition_keys(dynamic_partitions_store=instance))
        for p in keys:
            selection = [AssetKey(n) for n in stage if wanted(_label(n, p))]
            if not selection:
                continue
            result = materialize(assets, selection=selection, partition_key=p, instance=instance,
                                 resources=defs.resources, raise_on_error=True)
            ran += [_label(e.asset_key.to_user_string(), e.partition)
                    for e in result.get_asset_materialization_events()]
    return {"ran": ran, "before": before, "after": statuses(defs, instance)}


def main(argv: list[str]) -> int:
    from pipelines.definitions import defs

    instance = DagsterInstance.get()
    if argv[:1] == ["status"]:
        out: dict = statuses(defs, instance)
    elif argv[:1] == ["run"]:
        out = run(defs, instance, only_unsynced=argv[1:2] == ["unsynced"])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print("JSON:" + json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
