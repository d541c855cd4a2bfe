"""Lineage re-runs and the automation, on a tiny pipeline materialized for real.

The pipeline is materialized once per module (``pipeline``): every stage of ``make run`` as
real runs against a SQLite instance in its own ``DAGSTER_HOME``. Each change of settings is a
fresh process that loads the Definitions again (what reloading the code location does).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from opshelp import drive, make_tiny_env

CORPUS_AND_DOWN = {"corpus_shards[shard-000000]", "corpus_shards[shard-000001]", "corpus_manifest",
                   "encoder", "benchmark_features[proxy]", "quality_regressors",
                   "cross_dataset_table", "full_reference_table", "evaluation_table"}
NOT_DOWNSTREAM_OF_CORPUS = {"pristine_images", "benchmark_catalog", "benchmark_datasets[proxy]"}
AFTER_FEATURES = {"benchmark_features[proxy]", "quality_regressors", "cross_dataset_table",
                  "full_reference_table", "evaluation_table"}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> dict[str, str]:
    """A tiny pipeline, every asset materialized once; its environment."""
    env = make_tiny_env(tmp_path_factory.mktemp("pipeline"))
    first = drive(env, "run", "all")
    assert set(first["ran"]) == CORPUS_AND_DOWN | NOT_DOWNSTREAM_OF_CORPUS
    assert set(first["after"].values()) == {"FRESH"}, first["after"]
    return env


def _shard_hashes(env: dict[str, str]) -> dict[str, str]:
    manifest = Path(env["SHAMISA_OUTPUTS"]) / "corpus" / "cpu-small" / "manifest.json"
    return {s["file"]: s["sha256"] for s in json.loads(manifest.read_text())["shards"]}


def _folder_digest(folder: Path) -> str:
    """sha256 over the relative paths and bytes of every file under ``folder``."""
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(folder)).encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


def test_corpus_seed_change_marks_exactly_downstream_unsynced_and_reruns_only_those(pipeline):
    shards_before = _shard_hashes(pipeline)
    seed28 = {**pipeline, "SHAMISA_OVERRIDES": pipeline["SHAMISA_OVERRIDES"] + ";corpus.seed=28"}

    rerun = drive(seed28, "run", "unsynced")
    before = rerun["before"]
    assert {k for k, s in before.items() if s == "STALE"} == CORPUS_AND_DOWN, before
    assert {k for k, s in before.items() if s == "FRESH"} == NOT_DOWNSTREAM_OF_CORPUS, before
    # Only the unsynced assets ran again, and afterwards everything is in sync.
    assert sorted(rerun["ran"]) == sorted(CORPUS_AND_DOWN)
    assert set(rerun["after"].values()) == {"FRESH"}, rerun["after"]
    shards_after = _shard_hashes(pipeline)
    assert shards_after.keys() == shards_before.keys()
    assert all(shards_after[f] != shards_before[f] for f in shards_before)  # new seed, new bytes

    # Nothing changed since: "Materialize unsynced" has nothing to run.
    idle = drive(seed28, "run", "unsynced")
    assert idle["ran"] == [] and set(idle["before"].values()) == {"FRESH"}

    # Only an evaluation setting changes (the crop size): corpus and encoder stay fresh.
    crop = drive({**seed28, "SHAMISA_EVAL_CROP": "24"}, "status")
    assert {k for k, s in crop.items() if s == "STALE"} == AFTER_FEATURES, crop
    assert all(crop[k] == "FRESH" for k in crop if k not in AFTER_FEATURES)


def test_schedule_and_sensor_ticks_request_runs_and_refresh_the_champion_tags(pipeline, tmp_path,
                                                                             monkeypatch):
    from dagster import DagsterInstance, build_schedule_context, build_sensor_context, materialize
    from mlflow.tracking import MlflowClient

    from _eval_helpers import make_kadid_like
    from assets.evaluation import BENCHMARK_PARTITIONS, EVALUATION_ASSETS
    from pipelines.eval_resources import DatasetRoots, EvaluationSettings, MlflowTracking
    from pipelines.jobs import benchmark_refresh_job
    from pipelines.resources import OutputPaths
    from pipelines.schedules import benchmark_refresh
    from pipelines.sensors import new_dataset_root
    from shamisa_core.evaluation.mlflow_eval import current_champion
    from shamisa_core.tracking import IQA_MODEL_NAME, tracking_uri

    out, datasets = Path(pipeline["SHAMISA_OUTPUTS"]), Path(pipeline["SHAMISA_DATASETS_DIR"])
    proxy_root = Path((datasets / "proxy.yaml").read_text().split("root:", 1)[1].strip())
    proxy_before = _folder_digest(proxy_root)
    monkeypatch.setenv("DAGSTER_HOME", pipeline["DAGSTER_HOME"])  # the instance config reads it
    resources = {"paths": OutputPaths(root=str(out)),
                 "dataset_roots": DatasetRoots(config_dir=str(datasets)),
                 "evaluation": EvaluationSettings(),
                 "mlflow_tracking": MlflowTracking(mlflow_dir=str(out / "mlflow"))}
    uri = tracking_uri(out / "mlflow")
    client = MlflowClient(uri, uri)
    champion = current_champion(client)
    assert champion is not None, "the evaluation_table run registers a champion"
    version = champion[0]
    tags_before = client.get_model_version(IQA_MODEL_NAME, version).tags
    assert "srcc/proxy" in tags_before and "srcc/kadid10k" not in tags_before

    with DagsterInstance.from_config(pipeline["DAGSTER_HOME"]) as instance:
        # The sensor: a new dataset root in the config folder requests its partition's run.
        idle = new_dataset_root(build_sensor_context(instance=instance, resources=resources))
        (datasets / "kadid10k.yaml").write_text(
            f"root: {make_kadid_like(tmp_path / 'kadid', seed=9, levels=(1, 3))}\n")
        tick = new_dataset_root(build_sensor_context(instance=instance, resources=resources,
                                                     cursor=idle.cursor))
        assert [r.partition_key for r in tick.run_requests] == ["kadid10k"]
        request = tick.run_requests[0]
        assert {k.to_user_string() for k in request.asset_selection} == {
            "benchmark_datasets", "benchmark_features"}  # an encoder exists: features too
        assert tick.dynamic_partitions_requests[0].partition_keys == ["kadid10k"]
        instance.add_dynamic_partitions(BENCHMARK_PARTITIONS.name, ["kadid10k"])
        done = materialize([*EVALUATION_ASSETS], selection=request.asset_selection,
                           partition_key="kadid10k", instance=instance, resources=resources,
                           tags=request.tags)
        assert done.success
        assert {(e.asset_key.to_user_string(), e.partition)
                for e in done.get_asset_materialization_events()} == {
            ("benchmark_datasets", "kadid10k"), ("benchmark_features", "kadid10k")}
        again = new_dataset_root(build_sensor_context(instance=instance, resources=resources,
                                                      cursor=tick.cursor))
        assert not again.run_requests

        # The schedule: a tick requests a refresh of the champion; the run updates its tags.
        request = benchmark_refresh(build_schedule_context(instance=instance,
                                                           resources=resources))
        assert request.tags == {"shamisa/champion_version": version}
        refresh = benchmark_refresh_job.execute_in_process(resources=resources, instance=instance,
                                                           tags=request.tags)
        assert refresh.success
    record = refresh.output_for_node("refresh_champion")
    assert record["version"] == version and record["run_id"]
    tags = client.get_model_version(IQA_MODEL_NAME, version).tags
    assert tags["last_refresh_run"] == record["run_id"]
    refresh_run = client.get_run(record["run_id"]).data
    assert refresh_run.tags["shamisa.kind"] == "refresh"
    for name in ("proxy", "kadid10k"):  # the champion now carries the refreshed scores
        assert float(tags[f"srcc/{name}"]) == pytest.approx(refresh_run.metrics[f"srcc/{name}"])
    assert current_champion(client)[0] == version  # a refresh never moves the alias
    # The configured proxy is evaluated as it is, never rebuilt over with the default spec.
    assert _folder_digest(proxy_root) == proxy_before
