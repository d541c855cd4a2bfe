"""The executor of every job, chosen by ``SHAMISA_EXECUTOR`` when the code location loads.

* ``multiprocess`` (default): Dagster's ``multi_or_in_process_executor``: each step in its own
  process; a run may still pick ``{"execution": {"config": {"in_process": {}}}}``.
* ``in_process``: every step in the run worker's process (no per-step start-up).
* ``k8s``: ``dagster_k8s.k8s_job_executor``: each step is a Kubernetes Job. Settings from
  ``SHAMISA_K8S_NAMESPACE``, ``SHAMISA_K8S_IMAGE``, ``SHAMISA_K8S_MAX_CONCURRENT`` and
  ``SHAMISA_K8S_GPUS`` (GPUs requested by the ``encoder`` and ``benchmark_features`` steps,
  default ``SHAMISA_WORLD_SIZE``).
* ``celery``: ``dagster_celery.celery_executor``: steps are Celery tasks. Settings from
  ``SHAMISA_CELERY_BROKER`` and ``SHAMISA_CELERY_BACKEND``.

Whatever the executor, the assets that use a GPU (``encoder``, ``benchmark_features``) are in
the Dagster concurrency pool ``gpu``; the instance configs in ``dagster_home/`` limit every
pool to 1 slot, so two trainings (or a training and a feature extraction) never share a GPU,
across runs and within a run. The k8s and celery executors need the ``cluster`` extra
(``pip install -e '.[cluster]'``).
"""

from __future__ import annotations

import os

from dagster import ExecutorDefinition, in_process_executor, multi_or_in_process_executor

EXECUTORS = ("multiprocess", "in_process", "k8s", "celery")
GPU_POOL = "gpu"
GPU_STEPS = ("encoder", "benchmark_features")


def executor_kind() -> str:
    """``SHAMISA_EXECUTOR`` (default ``multiprocess``), checked against :data:`EXECUTORS`."""
    kind = os.environ.get("SHAMISA_EXECUTOR", "multiprocess").strip().lower().replace("-", "_")
    if kind not in EXECUTORS:
        raise ValueError(f"SHAMISA_EXECUTOR={kind!r} is not one of {', '.join(EXECUTORS)}; "
                         "unset it for the multiprocess default")
    return kind


def k8s_config() -> dict:
    """The ``k8s_job_executor`` settings from the environment (module docstring)."""
    gpus = os.environ.get("SHAMISA_K8S_GPUS") or os.environ.get("SHAMISA_WORLD_SIZE", "1")
    gpu_step = {"container_config": {"resources": {"limits": {"nvidia.com/gpu": str(int(gpus))}}}}
    config: dict = {
        "job_namespace": os.environ.get("SHAMISA_K8S_NAMESPACE", "dagster"),
        "max_concurrent": int(os.environ.get("SHAMISA_K8S_MAX_CONCURRENT", "8")),
        "per_step_k8s_config": {step: gpu_step for step in GPU_STEPS},
    }
    if os.environ.get("SHAMISA_K8S_IMAGE"):
        config["job_image"] = os.environ["SHAMISA_K8S_IMAGE"]
    return config


def celery_config() -> dict:
    """The ``celery_executor`` settings from the environment (module docstring)."""
    return {"broker": {"env": "SHAMISA_CELERY_BROKER"} if os.environ.get("SHAMISA_CELERY_BROKER")
            else "pyamqp://guest@localhost//",
            "backend": os.environ.get("SHAMISA_CELERY_BACKEND", "rpc://")}


def build_executor(kind: str | None = None) -> ExecutorDefinition:
    """The executor definition for ``kind`` (default: :func:`executor_kind`)."""
    kind = kind or executor_kind()
    if kind == "multiprocess":
        return multi_or_in_process_executor
    if kind == "in_process":
        return in_process_executor
    try:
        if kind == "k8s":
            from dagster_k8s import k8s_job_executor

            return k8s_job_executor.configured(k8s_config(), name="k8s_job_executor")
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_config(), name="celery_executor")
    except ImportError as exc:
        raise ImportError(f"SHAMISA_EXECUTOR={kind} needs {exc.name}: install the cluster extra "
                          "with `pip install -e '.[cluster]'`") from exc
