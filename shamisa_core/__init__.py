"""SHAMISA core library: distortion engine, corpus I/O, graphs, losses, models, training and
evaluation. Never imports Dagster (see ``shared/spec/ARCHITECTURE.md``).

The user-facing operations are importable from here (lazily, so that importing the package
stays cheap): ``load_model`` and ``score`` (``serving.api``) and ``fit``
(``serving.fit.fit_model``; its docstring has a worked, tested example).
"""

from typing import Any

__version__ = "0.1.0"

_LAZY = {"load_model": ("shamisa_core.serving.api", "load_model"),
         "score": ("shamisa_core.serving.api", "score"),
         "fit": ("shamisa_core.serving.fit", "fit_model")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'shamisa_core' has no attribute {name!r}")
