"""The PostgreSQL-backed Dagster instance (``dagster_home/postgres/dagster.yaml``) and the MLflow
tracking store on PostgreSQL, each test in its own fresh database.

The server comes from ``.ci/run`` (Debian's ``postgresql``, on 127.0.0.1) through
``DAGSTER_PG_HOST``/``_PORT``/``_USER``/``_PASSWORD``/``_DB``; without them, or without a
server answering, the tests are skipped with the reason (pytest prints it in its summary).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from opshelp import PYTHON, REPO, make_tiny_env

PG_VARS = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")
DAGSTER = str(Path(PYTHON).with_name("dagster"))


@pytest.fixture
def pg_db():
    """A fresh database on the configured server: its DAGSTER_PG_* settings; dropped after."""
    missing = [v for v in PG_VARS if not os.environ.get(v)]
    if missing:
        pytest.skip(f"PostgreSQL not configured ({', '.join(missing)} unset): run the tests "
                    "through .ci/run, which installs and starts PostgreSQL, or export them")
    import psycopg2

    conn_args = dict(host=os.environ["DAGSTER_PG_HOST"], port=int(os.environ["DAGSTER_PG_PORT"]),
                     user=os.environ["DAGSTER_PG_USER"], password=os.environ["DAGSTER_PG_PASSWORD"])
    try:
        admin = psycopg2.connect(dbname=os.environ["DAGSTER_PG_DB"], connect_timeout=5, **conn_args)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {conn_args['host']}:{conn_args['port']} does not answer: {exc}")
    admin.autocommit = True
    name = f"shamisa_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    settings = {**{v: os.environ[v] for v in PG_VARS}, "DAGSTER_PG_DB": name}
    try:
        yield settings
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_corpus_stage_on_postgres_instance_parallel_partition_runs(pg_db, tmp_path, monkeypatch):
    from dagster import AssetKey, DagsterInstance, DagsterRunStatus, materialize

    from assets.corpus import corpus_manifest, corpus_rules, corpus_shards, pristine_images
    from pipelines.resources import OutputPaths, ShamisaSettings
    from shamisa_core.atomic import file_sha256
    from shamisa_core.config import load_profile
    from shamisa_core.corpus.build import build_shard
    from shamisa_core.pristine import read_pristine_manifest

    env = make_tiny_env(tmp_path, dagster_yaml=REPO / "dagster_home" / "postgres" / "dagster.yaml")
    n = 2
    env["SHAMISA_OVERRIDES"] = env["SHAMISA_OVERRIDES"].replace("corpus.n_shards=2", f"corpus.n_shards={n}")
    env.update(pg_db)
    for k, v in pg_db.items():
        monkeypatch.setenv(k, v)
    overrides = env["SHAMISA_OVERRIDES"].split(";")
    settings = ShamisaSettings(profile="cpu-small", overrides=overrides, pristine=env["SHAMISA_PRISTINE"])
    resources = {"settings": settings, "paths": OutputPaths(root=env["SHAMISA_OUTPUTS"])}
    corpus_dir = Path(env["SHAMISA_OUTPUTS"]) / "corpus" / "cpu-small"

    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.event_log_storage.supports_global_concurrency_limits
        assert materialize([pristine_images], instance=instance, resources=resources).success

        # Each shard is its own run, all launched at once, under the default (multiprocess)
        # executor, writing to the same PostgreSQL event log.
        procs = [subprocess.Popen(
            [DAGSTER, "asset", "materialize", "-m", "pipelines.definitions",
             "--select", "corpus_shards", "--partition", f"shard-{i:06d}"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for i in range(n)]
        try:
            outs = [p.communicate(timeout=900)[0] for p in procs]
        finally:
            for p in procs:  # on a timeout, end the runs we started
                if p.poll() is None:
                    p.kill()
                    p.wait()
        for p, out in zip(procs, outs):
            assert p.returncode == 0, out[-4000:]

        spans, run_ids = [], set()
        for run in instance.get_runs():
            if run.asset_selection == {AssetKey("corpus_shards")}:
                assert run.status == DagsterRunStatus.SUCCESS
                run_ids.add(run.run_id)
                stats = instance.get_run_stats(run.run_id)
                spans.append((stats.start_time, stats.end_time))
                logs = " ".join(e.user_message for e in instance.all_logs(run.run_id))
                assert "multiprocess executor" in logs
        assert len(run_ids) == n
        assert any(_overlap(a, b) for i, a in enumerate(spans) for b in spans[i + 1:]), spans
        parts = instance.get_materialized_partitions(AssetKey("corpus_shards"))
        assert parts == {f"shard-{i:06d}" for i in range(n)}

        r = materialize([corpus_shards.to_source_asset(), corpus_manifest, corpus_rules],
                        selection=[corpus_manifest], instance=instance, resources=resources)
        assert r.success and all(c.passed for c in r.get_asset_check_evaluations())

    # Same bytes as a serial build in this process.
    cfg = load_profile("cpu-small", [*overrides, f"corpus.pristine={env['SHAMISA_PRISTINE']}"])
    sources = read_pristine_manifest(corpus_dir / "pristine.parquet")
    serial = tmp_path / "serial"
    for i in range(n):
        result = build_shard(sources, cfg, i, serial)
        assert file_sha256(corpus_dir / Path(result.path).name) == result.sha256


def test_mlflow_tracking_store_on_postgres(pg_db, tmp_path, monkeypatch):
    """Training is logged and registered in an MLflow store whose backend is PostgreSQL; the
    benchmark_refresh schedule reads that store (and skips: no champion yet)."""
    import json as _json

    from dagster import DagsterInstance, SkipReason, build_schedule_context
    from mlflow.tracking import MlflowClient

    from _eval_helpers import make_encoder
    from pipelines.eval_resources import MlflowTracking
    from pipelines.schedules import benchmark_refresh
    from shamisa_core.config import load_profile
    from shamisa_core.tracking import BACKEND_ENV, ENCODER_MODEL_NAME, tracking_uri
    from shamisa_core.training.mlflow_train import log_training

    uri = ("postgresql+psycopg2://{DAGSTER_PG_USER}:{DAGSTER_PG_PASSWORD}@{DAGSTER_PG_HOST}:"
           "{DAGSTER_PG_PORT}/{DAGSTER_PG_DB}").format(**pg_db)
    monkeypatch.setenv(BACKEND_ENV, uri)
    store = tmp_path / "mlflow"
    assert tracking_uri(store) == uri

    run_dir = tmp_path / "models" / "cpu-small-abc"
    make_encoder(run_dir / "encoder.pt", seed=1)
    rows = [{"step": s, "loss": 5.0 - s, "crops_per_s": 10.0, "lr": 0.01} for s in (1, 2, 3)]
    (run_dir / "train_log.jsonl").write_text("".join(_json.dumps(r) + "\n" for r in rows))
    cfg = load_profile("cpu-small", ["train.steps=3"])
    tracked = log_training(store, cfg.to_dict(), run_dir, run_name=run_dir.name,
                           tags={"dagster_run_id": "r-1", "profile": "cpu-small"})

    client = MlflowClient(uri, uri)
    run = client.get_run(tracked.run_id)
    assert run.data.params["train.steps"] == "3" and run.data.tags["dagster_run_id"] == "r-1"
    assert [m.value for m in client.get_metric_history(tracked.run_id, "loss")] == [4.0, 3.0, 2.0]
    versions = client.search_model_versions(f"name='{ENCODER_MODEL_NAME}'")
    assert [str(v.version) for v in versions] == [tracked.model_version] == ["1"]
    artefacts = {a.path for a in client.list_artifacts(tracked.run_id)}
    assert {"train_log.jsonl", "loss_curve.png"} <= artefacts
    assert (store / "artifacts").is_dir()  # artefacts stay in the store folder

    with DagsterInstance.ephemeral() as instance:
        tick = benchmark_refresh(build_schedule_context(
            instance=instance, resources={"mlflow_tracking": MlflowTracking(mlflow_dir=str(store))}))
    assert isinstance(tick, SkipReason) and "no champion" in tick.skip_message
