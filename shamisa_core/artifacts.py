"""Run-folder file names and model locations: a path, a folder, or an MLflow URI.

One place for the names of the files a training run and a quality model leave behind, and
for turning ``models:/shamisa-iqa@champion``, ``runs:/<id>/...`` or a folder into a local
file. MLflow is imported only when a URI has to be resolved (the CLI stays fast).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

ENCODER_FILE = "encoder.pt"
REGRESSOR_FILE = "regressor.npz"
CHECKPOINT_FILE = "checkpoint.pt"
TRAIN_LOG_FILE = "train_log.jsonl"
LOSS_CURVE_FILE = "loss_curve.png"
DIAGNOSTICS_FILE = "training_diagnostics.png"
MODEL_CARD_FILE = "model.json"

MLFLOW_SCHEMES: tuple[str, ...] = ("models:/", "runs:/", "mlflow-artifacts:/", "dbfs:/", "s3://",
                                   "gs://", "wasbs://", "file://")


def is_mlflow_uri(text: str | os.PathLike) -> bool:
    """True for ``models:/...``, ``runs:/...`` and other artefact-store URIs."""
    return isinstance(text, str) and text.startswith(MLFLOW_SCHEMES)


def _download_key(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:16]


def concrete_model_uri(uri: str, tracking_uri: str | None = None) -> str:
    """Resolve an alias or "latest" in a ``models:/`` URI to ``models:/name/<version>``.

    Other URIs are returned unchanged. Needed so that downloads are cached per version, never
    per moving alias.
    """
    if not uri.startswith("models:/"):
        return uri
    from shamisa_core import tracking  # noqa: F401  (telemetry off before mlflow)
    from mlflow.tracking import MlflowClient

    body = uri[len("models:/"):].strip("/")
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    if "@" in body:
        name, alias = body.split("@", 1)
        return f"models:/{name}/{client.get_model_version_by_alias(name, alias).version}"
    parts = body.split("/")
    if len(parts) == 2 and parts[1].lower() == "latest":
        versions = client.search_model_versions(f"name='{parts[0]}'")
        if not versions:
            raise ValueError(f"registered model {parts[0]!r} has no versions")
        return f"models:/{parts[0]}/{max(int(v.version) for v in versions)}"
    return uri


def registry_download_uri(uri: str, tracking_uri: str | None = None) -> str:
    """Where the files of ``models:/name/<version>[/sub/path]`` are, asked of *this* registry.

    MLflow's own ``download_artifacts`` resolves ``models:/`` URIs through the process-wide
    registry URI, not the ``tracking_uri`` it is given, so a fresh process (a Dagster run)
    would look in ``./mlflow.db``. Here the version's storage location comes from a client
    bound to ``tracking_uri`` (also the registry); an MLflow 3 logged-model location
    (``models:/m-<id>``) is turned into that model's artefact folder.
    """
    from shamisa_core import tracking  # noqa: F401  (telemetry off before mlflow)
    from mlflow.tracking import MlflowClient

    name, version, *sub = uri[len("models:/"):].strip("/").split("/")
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    location = client.get_model_version_download_uri(name, version)
    if location.startswith("models:/"):
        location = client.get_logged_model(location[len("models:/"):].strip("/")).artifact_location
    return "/".join([location.rstrip("/"), *sub])


def resolve_artifacts(uri_or_path: str | os.PathLike, *, tracking_uri: str | None = None,
                      download_dir: str | os.PathLike | None = None) -> Path:
    """A local file or folder for a path or an MLflow URI (models:/, runs:/, ...).

    URIs are downloaded once into ``download_dir/<hash of the concrete URI>`` (a temporary
    folder when ``download_dir`` is None); aliases are resolved to versions first. The
    download lands in a temporary sibling folder that is renamed into place when complete.
    ``models:/`` URIs are looked up in the registry at ``tracking_uri`` (MLflow's global
    registry URI when None), never in whatever store the process happens to point at.
    """
    if not is_mlflow_uri(uri_or_path):
        path = Path(uri_or_path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        return path
    from shamisa_core import tracking  # noqa: F401  (telemetry off before mlflow)
    from mlflow.artifacts import download_artifacts

    uri = concrete_model_uri(str(uri_or_path), tracking_uri)
    # Absolute: MLflow returns absolute paths, which must stay relative_to() the temp folder.
    base = (Path(download_dir) if download_dir is not None
            else Path(tempfile.mkdtemp(prefix="shamisa-"))).resolve()
    base.mkdir(parents=True, exist_ok=True)
    target = base / _download_key(f"{tracking_uri or ''}|{uri}")
    done = target / ".complete"
    if done.is_file():
        return target / done.read_text().strip()
    tmp = Path(tempfile.mkdtemp(prefix=".dl-", dir=base))
    try:
        source = registry_download_uri(uri, tracking_uri) if uri.startswith("models:/") else uri
        local = Path(download_artifacts(artifact_uri=source, dst_path=str(tmp), tracking_uri=tracking_uri))
        rel = local.relative_to(tmp) if local != tmp else Path(".")
        (tmp / ".complete").write_text(str(rel))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target / rel


def find_file(location: Path, name: str) -> Path:
    """``location`` itself when it is a file called ``name``, else the single ``name`` below it
    (shallowest first); ``FileNotFoundError`` lists what was there."""
    location = Path(location)
    if location.is_file():
        if location.name == name or (name == ENCODER_FILE and location.suffix == ".pt"):
            return location
        raise FileNotFoundError(f"{location} is a file, expected {name} or a folder holding it")
    hits = sorted(location.rglob(name), key=lambda p: (len(p.parts), str(p)))
    if not hits:
        found = sorted(str(p.relative_to(location)) for p in location.rglob("*") if p.is_file())
        raise FileNotFoundError(f"no {name} under {location} (found: {found[:20]})")
    return hits[0]
