"""The encoder asset trains for real inside a Dagster run (DataLoader workers > 0 included),
logs to a real MLflow SQLite store and registers `shamisa-encoder`."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterInstance, PipesSubprocessClient, materialize
from mlflow.tracking import MlflowClient

from assets.corpus import corpus_manifest
from assets.training import encoder
from pipelines.eval_resources import MlflowTracking
from pipelines.resources import OutputPaths, ShamisaSettings
from shamisa_core.corpus.build import build_corpus
from shamisa_core.pristine import scan_folder
from shamisa_core.tracking import ENCODER_MODEL_NAME, tracking_uri

TINY = [
    "group.patch_size=48", "group.n_refs=2", "group.n_comps=2", "group.n_levels=2",
    "corpus.n_shards=2", "corpus.groups_per_shard=2", "corpus.min_side=32",
    "train.steps=2", "train.log_every=1", "train.num_workers=2",
]


def test_encoder_asset_trains_with_workers_and_registers(tmp_path: Path, pristine_dir: Path):
    settings = ShamisaSettings(profile="cpu-small", overrides=TINY, pristine=str(pristine_dir))
    cfg = settings.config()
    paths = OutputPaths(root=str(tmp_path / "out"))
    build_corpus([i.path for i in scan_folder(pristine_dir, 32).images], cfg, paths.corpus_dir("cpu-small"))
    resources = {
        "settings": settings,
        "paths": paths,
        "mlflow_tracking": MlflowTracking(mlflow_dir=str(tmp_path / "mlflow")),
        "pipes_subprocess_client": PipesSubprocessClient(),
    }
    with DagsterInstance.ephemeral() as instance:
        result = materialize([corpus_manifest.to_source_asset(), encoder], resources=resources,
                             instance=instance, selection=[encoder])
        assert result.success
        mat = result.asset_materializations_for_node("encoder")[0]
        checks = result.get_asset_check_evaluations()
    meta = mat.metadata
    assert meta["steps"].value == 2
    assert meta["mlflow_model_version"].value == "1"
    assert "data:image/png;base64," in meta["loss_curve"].value
    latest = tmp_path / "out" / "models" / "latest"
    assert (latest / "encoder.pt").is_file() and (latest / "train_log.jsonl").is_file()
    # the collapse guard ran as an asset check and agrees with the health stored in encoder.pt
    import torch

    health = torch.load(latest / "encoder.pt", map_location="cpu", weights_only=True)["health"]
    assert [c.check_name for c in checks] == ["representation_alive"]
    assert checks[0].passed == health["passed"]
    assert checks[0].metadata["h_effective_rank"].value == round(health["h_erank"], 3)
    uri = tracking_uri(tmp_path / "mlflow")
    client = MlflowClient(uri, uri)
    versions = client.search_model_versions(f"name='{ENCODER_MODEL_NAME}'")
    assert len(versions) == 1
    run = client.get_run(versions[0].run_id)
    assert run.data.tags["dagster_run_id"] == result.run_id
    assert run.data.params["train.num_workers"] == "2"
    assert "loss" in run.data.metrics
