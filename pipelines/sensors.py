"""Sensors: ``new_dataset_root`` notices a dataset root added to the config folder.

Each tick scans ``SHAMISA_DATASETS_DIR`` (default ``config/datasets``). A ``<name>.yaml`` that is
new, or whose content (root) changed, adds the ``name`` partition of ``benchmark_datasets`` /
``benchmark_features`` (and ``proxy``, always) and requests a run of that partition: the dataset
and, once an encoder exists, its features. The cursor maps each name to its config digest.
"""


import json

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.evaluation import BENCHMARK_PARTITIONS, benchmark_datasets, benchmark_features
from pipelines.resources import DatasetRoots, EvaluationSettings, OutputPaths
from pipelines.jobs import benchmark_partition_job


@sensor(
    name="new_dataset_root",
    job=benchmark_partition_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="A new or changed <name>.yaml in the datasets config folder materializes its partition.",
)
def new_dataset_root(context: SensorEvaluationContext, dataset_roots: DatasetRoots,
                     evaluation: EvaluationSettings, paths: OutputPaths):
    """Add partitions for new roots and request their runs (run key = name + config digest)."""
    from pathlib import Path

    from shamisa_core.evaluation.roots import benchmark_roots

    scan = dataset_roots.scan()
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(BENCHMARK_PARTITIONS.name))
    wanted = list(benchmark_roots(scan))
    new_partitions = [n for n in wanted if n not in known]
    has_encoder = bool(evaluation.encoder) or Path(
        evaluation.encoder_uri(paths.models_dir())).exists()
    selection = [benchmark_datasets.key] + ([benchmark_features.key] if has_encoder else [])
    requests = [
        RunRequest(run_key=f"{name}:{entry.digest}", partition_key=name, asset_selection=selection,
                   tags={"shamisa/dataset_root": str(entry.root)})
        for name, entry in scan.roots.items() if seen.get(name) != entry.digest
    ]
    for path, problem in scan.problems:
        context.log.warning(f"{path}: {problem}")
    cursor = json.dumps({n: e.digest for n, e in scan.roots.items()}, sort_keys=True)
    if not requests and not new_partitions:
        return SensorResult(skip_reason=SkipReason(
            f"no new dataset root in {scan.config_dir} ({len(scan.roots)} configured)"),
            cursor=cursor)
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=(
            [BENCHMARK_PARTITIONS.build_add_request(new_partitions)] if new_partitions else []),
        cursor=cursor,
    )
