"""Jobs of the evaluation automation.

* ``benchmark_partition_job``: one dataset partition of ``benchmark_datasets`` and
  ``benchmark_features`` (what the ``new_dataset_root`` sensor requests).
* ``benchmark_refresh_job``: re-evaluates the MLflow ``champion`` of ``shamisa-iqa`` on the
  proxy and every configured dataset (what the weekly ``benchmark_refresh`` schedule runs); a
  ``refresh`` parent run, nothing registered, the champion's per-dataset SRCC tags updated.
"""


from dagster import AssetSelection, OpExecutionContext, define_asset_job, job, op

from assets.evaluation import benchmark_datasets, benchmark_features
from pipelines.resources import DatasetRoots, EvaluationSettings, MlflowTracking, OutputPaths

benchmark_partition_job = define_asset_job(
    "benchmark_partition_job",
    selection=AssetSelection.assets(benchmark_datasets, benchmark_features),  # partitioned by dataset
    description="Validate one benchmark, write its splits and extract its features.",
)


@op(description="Re-evaluate the champion shamisa-iqa version on every configured dataset.")
def refresh_champion(context: OpExecutionContext, dataset_roots: DatasetRoots,
                     evaluation: EvaluationSettings, mlflow_tracking: MlflowTracking,
                     paths: OutputPaths) -> dict:
    """``mlflow_eval.refresh_champion`` on the proxy plus every configured root."""
    from dagster import MetadataValue

    from assets.evaluation import dataset_plan
    from shamisa_core.evaluation import benchmark as bm
    from shamisa_core.evaluation.mlflow_eval import refresh_champion as refresh

    scan = dataset_roots.scan()
    datasets = dataset_roots.roots()
    for path, problem in scan.problems:
        context.log.warning(f"{path}: {problem}")
    plan = dataset_plan(evaluation, paths)  # the assets' rule: a configured proxy is kept
    record = refresh(datasets, mlflow_dir=mlflow_tracking.path, cache_dir=plan.cache_dir,
                     experiment=mlflow_tracking.experiment, proxy_base=plan.proxy_base,
                     proxy_spec=plan.spec_for(datasets.get("proxy")), seed=plan.seed,
                     crop_size=evaluation.crop_size or None, log=context.log.info)
    context.log.info(record.reason)
    metadata = {"reason": record.reason, "champion_version": record.version or "-"}
    if record.result is not None and record.log is not None:
        text = bm.format_table(record.result)
        context.log.info("\n" + text)
        metadata.update({
            "table": MetadataValue.md(bm.markdown_table(bm.summary_frame(record.result))),
            "mlflow_run_id": record.log.parent_run_id,
        })
    context.add_output_metadata(metadata)
    return {"version": record.version, "reason": record.reason,
            "run_id": record.log.parent_run_id if record.log else None}


@job(description="Weekly: re-evaluate the MLflow champion on the proxy and every configured dataset.")
def benchmark_refresh_job() -> None:
    """One op: :func:`refresh_champion`."""
    refresh_champion()
