"""Schedules: ``benchmark_refresh`` re-evaluates the champion weekly.

Cron from ``SHAMISA_BENCHMARK_CRON`` (default ``0 3 * * 1``: Mondays 03:00 UTC). A tick is
skipped, with the reason shown in the UI, while no ``champion`` is registered.
"""


import os

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from pipelines.resources import MlflowTracking
from pipelines.jobs import benchmark_refresh_job

DEFAULT_CRON = "0 3 * * 1"


@schedule(
    name="benchmark_refresh",
    job=benchmark_refresh_job,
    cron_schedule=os.environ.get("SHAMISA_BENCHMARK_CRON", DEFAULT_CRON),
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Weekly re-evaluation of the champion shamisa-iqa on every configured dataset.",
)
def benchmark_refresh(context: ScheduleEvaluationContext, mlflow_tracking: MlflowTracking):
    """Request a refresh run when a champion exists, else skip with the reason."""
    from mlflow.tracking import MlflowClient

    from shamisa_core.evaluation.mlflow_eval import current_champion

    uri = mlflow_tracking.uri()
    if uri.startswith("sqlite:") and not (mlflow_tracking.path / "mlflow.db").is_file():
        return SkipReason(f"no MLflow store at {mlflow_tracking.path}; nothing to refresh")
    champion = current_champion(MlflowClient(uri, uri))
    if champion is None:
        return SkipReason("no champion shamisa-iqa version registered yet; nothing to refresh")
    return RunRequest(tags={"shamisa/champion_version": champion[0]})
