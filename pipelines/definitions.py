"""The Dagster Definitions of the SHAMISA pipeline.

corpus (pristine_images -> corpus_shards[shard] -> corpus_manifest) -> training (encoder) ->
evaluation (benchmark_catalog -> benchmark_datasets[dataset] -> benchmark_features[dataset]
-> quality_regressors -> cross_dataset_table -> evaluation_table), with the weekly
``benchmark_refresh`` schedule and the ``new_dataset_root`` sensor.
"""

from __future__ import annotations

from dagster import Definitions

from assets.corpus import corpus_manifest, corpus_rules, corpus_shards, pristine_images
from assets.evaluation import EVALUATION_ASSETS
from assets.training import encoder
from pipelines.executors import build_executor
from pipelines.jobs import benchmark_partition_job, benchmark_refresh_job
from pipelines.resources import default_resources, eval_resources
from pipelines.schedules import benchmark_refresh
from pipelines.sensors import new_dataset_root

defs = Definitions(
    assets=[pristine_images, corpus_shards, corpus_manifest, encoder, *EVALUATION_ASSETS],
    asset_checks=[corpus_rules],
    jobs=[benchmark_partition_job, benchmark_refresh_job],
    schedules=[benchmark_refresh],
    sensors=[new_dataset_root],
    resources={**default_resources(), **eval_resources()},
    executor=build_executor(),  # SHAMISA_EXECUTOR: multiprocess (default), in_process, k8s, celery
)
