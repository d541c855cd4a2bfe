"""Re-export: the code versions live in :mod:`pipelines.resources` (the one module of
``pipelines/`` that ``assets/`` import)."""

from pipelines.resources import code_version, settings_payloads  # noqa: F401
