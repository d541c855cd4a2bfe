"""Serving quality models: the scoring API, the pyfunc wrappers, registration, the champion.

* ``api``       ``load_model``, ``score``, ``score_items`` (higher = better);
* ``fit``       ``fit_model``: a quality head on one's own labelled photos (``shamisa fit``);
* ``pyfunc``    MLflow pyfunc wrappers ``ShamisaIQAModel`` / ``ShamisaEncoderModel``;
* ``registry``  ``shamisa-iqa`` registration and the alias move;
* ``champion``  the champion rule, pure functions.

Names are imported lazily (``from shamisa_core.serving import load_model``).
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "IQAModel": "api", "ScoreRow": "api", "load_model": "api", "score": "api",
    "score_items": "api", "image_features": "api",
    "ChampionDecision": "champion", "decide_champion": "champion",
    "fit_model": "fit", "FitReport": "fit",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)
