"""MLflow helpers usable without Dagster: the SQLite tracking store, params, metrics, models.

The tracking store is ``sqlite:///<outputs>/mlflow/mlflow.db`` with artefacts beside it in
``<outputs>/mlflow/artifacts``. Browse it with
``mlflow ui --backend-store-uri sqlite:///outputs/mlflow/mlflow.db``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

ENCODER_MODEL_NAME = "shamisa-encoder"
IQA_MODEL_NAME = "shamisa-iqa"
CHAMPION_ALIAS = "champion"


#: A database URI (e.g. ``postgresql://user:pw@host:5432/db``) that replaces the SQLite file
#: as the backend store (runs, registry); artefacts stay under the store folder.
BACKEND_ENV = "SHAMISA_MLFLOW_BACKEND_URI"


def tracking_uri(mlflow_dir: Path) -> str:
    """The tracking URI for a folder: ``$SHAMISA_MLFLOW_BACKEND_URI`` if set, else its SQLite file."""
    mlflow_dir = Path(mlflow_dir).resolve()
    mlflow_dir.mkdir(parents=True, exist_ok=True)
    return os.environ.get(BACKEND_ENV) or f"sqlite:///{mlflow_dir / 'mlflow.db'}"


def setup(mlflow_dir: Path, experiment: str) -> str:
    """Point MLflow at the SQLite store under ``mlflow_dir``; create ``experiment``; return its id."""
    uri = tracking_uri(mlflow_dir)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        artifacts = (Path(mlflow_dir).resolve() / "artifacts" / experiment).as_uri()
        exp_id = client.create_experiment(experiment, artifact_location=artifacts)
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"section.field": "value"}`` (MLflow params)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple)) else str(v)
    return out


def log_params(params: Mapping[str, Any]) -> None:
    """Log a flat or nested dict of params (in chunks, MLflow caps a batch at 100)."""
    flat = flatten(params)
    items = list(flat.items())
    for i in range(0, len(items), 100):
        mlflow.log_params({k: v[:6000] for k, v in items[i : i + 100]})


def log_step_metrics(rows: Iterable[Mapping[str, Any]], step_key: str = "step") -> int:
    """Log numeric fields of each row as step metrics; returns the number of rows logged."""
    n = 0
    for row in rows:
        step = int(row.get(step_key, n))
        metrics = {
            _metric_name(k): float(v)
            for k, v in _flat_numbers(row).items()
            if k != step_key
        }
        if metrics:
            mlflow.log_metrics(metrics, step=step)
            n += 1
    return n


def _flat_numbers(row: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in row.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flat_numbers(v, key + "/"))
        elif isinstance(v, bool):
            continue
        elif isinstance(v, (int, float)) and v == v and abs(v) != float("inf"):
            out[key] = float(v)
    return out


def _metric_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in name)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file (blank lines ignored)."""
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def pip_requirements() -> list[str]:
    """Explicit pip requirements for logged models (MLflow must not infer them)."""
    from importlib.metadata import version

    pkgs = ["torch", "torchvision", "numpy", "pillow", "pandas", "scipy", "shamisa"]
    reqs = []
    for p in pkgs:
        try:
            reqs.append(f"{p}=={version(p)}")
        except Exception:
            reqs.append(p)
    return reqs
