"""Re-export: the evaluation resources live in :mod:`pipelines.resources` (the one module of
``pipelines/`` that ``assets/`` import)."""

from pipelines.resources import (  # noqa: F401
    DEFAULT_DATASETS_DIR,
    DatasetRoots,
    EvaluationSettings,
    MlflowTracking,
    eval_resources,
)
