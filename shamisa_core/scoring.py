"""Former home of the scoring API; the names now live in ``shamisa_core.serving`` (the API,
the pyfunc), ``shamisa_core.evaluation.regressor`` (the quality head) and
``shamisa_core.artifacts`` (model locations). Re-exported here so that existing code and
``shamisa-iqa`` versions logged before the move (their entry file imports
``shamisa_core.scoring.ShamisaIQAModel``) keep working.
"""

from __future__ import annotations

from typing import Any

from shamisa_core.artifacts import (
    ENCODER_FILE,
    REGRESSOR_FILE,
    concrete_model_uri,
    find_file,
    is_mlflow_uri,
    resolve_artifacts,
)
from shamisa_core.evaluation.regressor import REGRESSOR_FORMAT, Regressor, fit_regressor
from shamisa_core.serving.api import IQAModel, ScoreRow, as_image_list, load_model, score, score_items


def image_features(images: Any, encoder: Any, crop_size: int, **kwargs: Any) -> Any:
    """Features only (see ``serving.api.image_features``, which also returns the reasons)."""
    from shamisa_core.serving.api import image_features as _features

    return _features(images, encoder, crop_size, **kwargs)[0]


def __getattr__(name: str) -> Any:
    if name == "ShamisaIQAModel":  # imports mlflow: only on demand
        from shamisa_core.serving.pyfunc import ShamisaIQAModel

        return ShamisaIQAModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_as_image_list = as_image_list

__all__ = [
    "ENCODER_FILE",
    "REGRESSOR_FILE",
    "REGRESSOR_FORMAT",
    "IQAModel",
    "Regressor",
    "ScoreRow",
    "ShamisaIQAModel",
    "concrete_model_uri",
    "find_file",
    "fit_regressor",
    "image_features",
    "is_mlflow_uri",
    "load_model",
    "resolve_artifacts",
    "score",
    "score_items",
]
