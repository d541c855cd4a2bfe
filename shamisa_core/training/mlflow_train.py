"""Log a training run to MLflow and register its encoder (usable without Dagster).

One MLflow run per training: the full resolved config as params, the diagnostics of the
JSON-lines log as step metrics, the log and the loss-curve plot as artefacts, and the encoder
as a new version of the registered pyfunc model ``shamisa-encoder``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import mlflow

from shamisa_core.tracking import (
    ENCODER_MODEL_NAME,
    log_params,
    log_step_metrics,
    pip_requirements,
    read_jsonl,
    setup,
)
from shamisa_core.artifacts import DIAGNOSTICS_FILE, ENCODER_FILE, LOSS_CURVE_FILE, TRAIN_LOG_FILE
from shamisa_core.training.report import diagnostics_png, loss_curve_png

_ENTRY = Path(__file__).parents[1] / "serving" / "encoder_model_entry.py"


@dataclass(frozen=True)
class TrackedTraining:
    """Where the run landed in MLflow."""

    run_id: str
    experiment_id: str
    model_version: str | None
    loss_curve: Path | None
    diagnostics: Path | None = None


def log_training(
    mlflow_dir: Path,
    config: Mapping[str, Any],
    out_dir: Path,
    *,
    run_name: str,
    tags: Mapping[str, str] | None = None,
    experiment: str = "shamisa-training",
    register: bool = True,
) -> TrackedTraining:
    """Log a finished training in ``out_dir`` (train_log.jsonl, encoder.pt) as one MLflow run."""
    out_dir = Path(out_dir)
    log_path = out_dir / TRAIN_LOG_FILE
    encoder_path = out_dir / ENCODER_FILE
    if not encoder_path.exists():
        raise FileNotFoundError(f"{encoder_path} is missing: the training in {out_dir} did not finish")
    exp_id = setup(mlflow_dir, experiment)
    rows = read_jsonl(log_path) if log_path.exists() else []
    plot = loss_curve_png(rows, out_dir / LOSS_CURVE_FILE) if rows else None
    diagnostics = diagnostics_png(rows, out_dir / DIAGNOSTICS_FILE)
    with mlflow.start_run(run_name=run_name, tags=dict(tags or {})) as run:
        log_params(config)
        log_step_metrics(rows)
        if log_path.exists():
            mlflow.log_artifact(str(log_path))
        if plot is not None:
            mlflow.log_artifact(str(plot))
        if diagnostics is not None:
            mlflow.log_artifact(str(diagnostics))
        version = None
        if register:
            info = mlflow.pyfunc.log_model(
                name="encoder",
                python_model=str(_ENTRY),
                artifacts={"encoder": str(encoder_path)},
                pip_requirements=pip_requirements(),
                registered_model_name=ENCODER_MODEL_NAME,
            )
            version = str(info.registered_model_version) if info.registered_model_version else None
    return TrackedTraining(run.info.run_id, exp_id, version, plot, diagnostics)
