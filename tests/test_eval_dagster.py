"""Evaluation assets, jobs, schedule and sensor on real (ephemeral) Dagster instances."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    AssetSpec,
    DagsterInstance,
    DynamicPartitionsDefinition,
    build_sensor_context,
    materialize,
)

from _eval_helpers import fresh_mlflow_dir, make_encoder, make_kadid_like
from assets.evaluation import (
    BENCHMARK_PARTITIONS,
    EVALUATION_ASSETS,
    benchmark_catalog,
    benchmark_datasets,
    benchmark_features,
    cross_dataset_table,
    evaluation_table,
    full_reference_table,
    quality_regressors,
)
from pipelines.eval_resources import DatasetRoots, EvaluationSettings, MlflowTracking
from pipelines.resources import OutputPaths
from pipelines.sensors import new_dataset_root


def test_definitions_load_schedule_sensor_jobs():
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"encoder", "benchmark_catalog", "benchmark_datasets", "benchmark_features",
            "quality_regressors", "evaluation_table", "cross_dataset_table",
            "full_reference_table"} <= keys
    assert graph.get(AssetKey("benchmark_features")).parent_keys == {
        AssetKey("benchmark_datasets"), AssetKey("encoder")}
    assert AssetKey("cross_dataset_table") in graph.get(AssetKey("evaluation_table")).parent_keys
    for a in EVALUATION_ASSETS:
        spec = next(iter(a.specs))
        assert spec.code_version and spec.group_name == "evaluation", spec.key
    parts = graph.get(AssetKey("benchmark_datasets")).partitions_def
    assert isinstance(parts, DynamicPartitionsDefinition) and parts.name == "benchmark_dataset"
    schedule = defs.resolve_schedule_def("benchmark_refresh")
    assert schedule.cron_schedule == "0 3 * * 1" and schedule.job_name == "benchmark_refresh_job"
    sensor = defs.resolve_sensor_def("new_dataset_root")
    assert sensor.job_name == "benchmark_partition_job"
    assert defs.resolve_job_def("benchmark_refresh_job") is not None
    assert {"dataset_roots", "mlflow_tracking", "evaluation", "paths"} <= set(defs.resources)


def test_sensor_adds_partition_and_requests_run_for_new_root(tmp_path):
    config = tmp_path / "datasets"
    config.mkdir()
    res = {"dataset_roots": DatasetRoots(config_dir=str(config)),
           "evaluation": EvaluationSettings(), "paths": OutputPaths(root=str(tmp_path / "out"))}
    with DagsterInstance.ephemeral() as instance:
        first = new_dataset_root(build_sensor_context(instance=instance, resources=res))
        assert first.run_requests == []
        assert first.dynamic_partitions_requests[0].partition_keys == ["proxy"]
        instance.add_dynamic_partitions(BENCHMARK_PARTITIONS.name, ["proxy"])
        idle = new_dataset_root(build_sensor_context(instance=instance, resources=res,
                                                     cursor=first.cursor))
        assert not idle.run_requests and "no new dataset root" in idle.skip_reason.skip_message

        (config / "kadid10k.yaml").write_text("root: /data/KADID10K\n")
        (config / "typo.yaml").write_text("root: /x\n")  # unknown name: reported, ignored
        new = new_dataset_root(build_sensor_context(instance=instance, resources=res,
                                                    cursor=idle.cursor))
        assert [r.partition_key for r in new.run_requests] == ["kadid10k"]
        assert new.run_requests[0].asset_selection == [AssetKey("benchmark_datasets")]
        assert new.dynamic_partitions_requests[0].partition_keys == ["kadid10k"]
        instance.add_dynamic_partitions(BENCHMARK_PARTITIONS.name, ["kadid10k"])
        again = new_dataset_root(build_sensor_context(instance=instance, resources=res,
                                                      cursor=new.cursor))
        assert not again.run_requests  # same digest: nothing new

        (config / "kadid10k.yaml").write_text("root: /data/KADID10K-v2\n")  # root changed
        (tmp_path / "out" / "models" / "latest").mkdir(parents=True)
        (tmp_path / "out" / "models" / "latest" / "encoder.pt").write_bytes(b"x")
        moved = new_dataset_root(build_sensor_context(instance=instance, resources=res,
                                                      cursor=again.cursor))
        assert [r.partition_key for r in moved.run_requests] == ["kadid10k"]
        assert moved.run_requests[0].asset_selection == [AssetKey("benchmark_datasets"),
                                                         AssetKey("benchmark_features")]
        assert moved.run_requests[0].run_key != new.run_requests[0].run_key
        assert json.loads(moved.cursor) == {"kadid10k": moved.run_requests[0].run_key.split(":")[1]}


@pytest.mark.slow
def test_evaluation_assets_materialize(tmp_path):
    config = tmp_path / "datasets"
    config.mkdir()
    proxy = make_kadid_like(tmp_path / "proxy", proxy_columns=True, seed=5, levels=(1, 3))
    (config / "proxy.yaml").write_text(f"root: {proxy}\n")  # a prebuilt proxy, used as is
    enc = make_encoder(tmp_path / "out" / "models" / "r1" / "encoder.pt", seed=3)
    (tmp_path / "out" / "models" / "latest").symlink_to("r1", target_is_directory=True)
    store = fresh_mlflow_dir(tmp_path / "out" / "mlflow")
    res = {"paths": OutputPaths(root=str(tmp_path / "out")),
           "dataset_roots": DatasetRoots(config_dir=str(config)),
           "evaluation": EvaluationSettings(),
           "mlflow_tracking": MlflowTracking(mlflow_dir=str(store))}
    with DagsterInstance.ephemeral() as instance:
        assert materialize([benchmark_catalog], resources=res, instance=instance).success
        assert instance.get_dynamic_partitions(BENCHMARK_PARTITIONS.name) == ["proxy"]
        r = materialize([benchmark_catalog, benchmark_datasets, benchmark_features,
                         AssetSpec("encoder")], resources=res, instance=instance,
                        partition_key="proxy", selection=[benchmark_datasets, benchmark_features])
        assert r.success
        feats = {e.asset_key.to_user_string(): e.materialization.metadata
                 for e in r.get_asset_materialization_events()}
        assert feats["benchmark_datasets"]["n_images"].value == 24
        assert "computed" in feats["benchmark_features"]["features"].value
        r = materialize([benchmark_features, quality_regressors, cross_dataset_table,
                         full_reference_table, evaluation_table], resources=res,
                        instance=instance, selection=[quality_regressors, cross_dataset_table,
                                                      full_reference_table, evaluation_table])
        assert r.success
        meta = {e.asset_key.to_user_string(): e.materialization.metadata
                for e in r.get_asset_materialization_events()}
    table = meta["evaluation_table"]
    assert "| proxy |" in table["table"].value and "random_twin_srcc" in table["table"].value
    assert "gain_vs_random_twin" in table["table"].value
    assert table["champion_moved"].value is True and table["model_version"].value == "1"
    assert "no champion yet" in table["champion_reason"].value
    assert "| proxy |" in meta["cross_dataset_table"]["srcc"].value
    assert "| proxy |" in meta["quality_regressors"]["regressors"].value
    text = Path(table["table_text"].value).read_text()
    assert "random twin" in text and "proxy" in text
    result = json.loads(Path(table["results"].value).read_text())
    assert result["meta"]["encoder"]["fingerprint"] == table["encoder_fingerprint"].value
    assert "cross" in result and list(result["twins"]) == ["random_twin"]
    assert table["pictures"].value.count("data:image/png;base64,") >= 3  # bars, scatter, t-SNE
    assert Path(table["picture_tsne_proxy"].value).is_file()
    client = __import__("mlflow").tracking.MlflowClient(table["mlflow_tracking_uri"].value)
    pics = {a.path for a in client.list_artifacts(table["mlflow_run_id"].value, "pictures")}
    assert "pictures/per_type_srcc.png" in pics and "pictures/tsne_proxy.png" in pics
    assert meta["full_reference_table"]["fr"].value.startswith("disabled")
    assert Path(result["proxy"]["regressor"]).is_file() and enc.is_file()


def test_refresh_job_runs_without_champion(tmp_path):
    from pipelines.jobs import benchmark_refresh_job

    store = fresh_mlflow_dir(tmp_path / "mlflow")
    res = {"paths": OutputPaths(root=str(tmp_path / "out")),
           "dataset_roots": DatasetRoots(config_dir=str(tmp_path / "none")),
           "evaluation": EvaluationSettings(),
           "mlflow_tracking": MlflowTracking(mlflow_dir=str(store))}
    with DagsterInstance.ephemeral() as instance:
        r = benchmark_refresh_job.execute_in_process(resources=res, instance=instance)
    assert r.success
    out = r.output_for_node("refresh_champion")
    assert out["version"] is None and "nothing to refresh" in out["reason"]
