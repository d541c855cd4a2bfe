"""``artifacts.resolve_artifacts`` looks ``models:/`` URIs up in the store it is given, not in
MLflow's process-wide registry (a real SQLite store in tmp_path, a real registered model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from _eval_helpers import fresh_mlflow_dir

RESOLVE = """
import json, sys
import mlflow
from shamisa_core.artifacts import resolve_artifacts
uri, store_uri, dl = sys.argv[1:4]
where = resolve_artifacts(uri, tracking_uri=store_uri, download_dir=dl)
files = {p.name: p.read_bytes().decode() for p in where.rglob("*") if p.suffix in (".pt", ".npz")}
print(json.dumps({"registry": mlflow.get_registry_uri(), "files": files, "where": str(where)}))
"""


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "SHAMISA_MLFLOW_BACKEND_URI")}
    return {**env, "MLFLOW_DISABLE_TELEMETRY": "true"}


def test_models_uri_resolves_in_the_given_store_from_a_fresh_process(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from shamisa_core import tracking
    from shamisa_core.serving.registry import register_model_dir

    store = fresh_mlflow_dir(tmp_path / "store")
    tracking.setup(store, "artifacts-test")
    model = tmp_path / "model"
    model.mkdir()
    (model / "encoder.pt").write_text("encoder bytes")
    (model / "regressor.npz").write_text("regressor bytes")
    with mlflow.start_run():
        version = register_model_dir(model, "resolve-test")
    uri = tracking.tracking_uri(store)
    MlflowClient(uri, uri).set_registered_model_alias("resolve-test", "champion", version)

    elsewhere = tmp_path / "elsewhere"  # a fresh process's default store would be here
    elsewhere.mkdir()
    out = subprocess.run(
        [sys.executable, "-c", RESOLVE, "models:/resolve-test@champion", uri, str(tmp_path / "dl")],
        cwd=elsewhere, env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert str(store) not in got["registry"]  # the process-wide registry is another store
    assert got["files"] == {"encoder.pt": "encoder bytes", "regressor.npz": "regressor bytes"}
    assert Path(got["where"]).is_relative_to(tmp_path / "dl")
