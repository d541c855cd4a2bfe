"""MLflow pyfunc wrappers: the quality model ``shamisa-iqa`` and the encoder ``shamisa-encoder``.

Both are logged "from code" (``iqa_model_entry.py`` / ``encoder_model_entry.py``), never as
pickles. Their ``predict`` takes a DataFrame with an ``image`` column of file paths, or a list
of paths / HxWx3 uint8 arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shamisa_core import tracking  # noqa: F401  (sets MLFLOW_DISABLE_TELEMETRY before mlflow)

import mlflow.pyfunc  # noqa: E402

from .api import IQAModel, image_features, score  # noqa: E402


class ShamisaIQAModel(mlflow.pyfunc.PythonModel):
    """Quality model (artefacts ``encoder``, ``regressor``): scores, higher = better."""

    # MLflow wraps ``predict`` to validate inputs against its type hints; this model takes
    # several input kinds on purpose (DataFrame, paths, arrays), so it opts out as MLflow's
    # own ChatModel does.
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        """Rebuild the encoder and the regressor from the logged artefacts."""
        from shamisa_core.evaluation.regressor import Regressor
        from shamisa_core.training.checkpoint import load_encoder

        encoder, meta = load_encoder(Path(context.artifacts["encoder"]))
        regressor = Regressor.load(context.artifacts["regressor"])
        self._model = IQAModel(encoder=encoder, regressor=regressor, encoder_meta=meta,
                               source="mlflow")

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201 (pyfunc API)
        """Scores of ``model_input`` (higher = better, NaN where unreadable)."""
        model = getattr(self, "_model", None)
        if model is None:
            self.load_context(context)
            model = self._model
        return score(model, model_input)


class ShamisaEncoderModel(mlflow.pyfunc.PythonModel):
    """Encoder (artefact ``encoder`` = encoder.pt): (n_images, 2 x feature_dim) float64
    representations, ``h`` concatenated over scales and averaged over crops (§7.3)."""

    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        """Rebuild the frozen encoder from ``encoder.pt``."""
        from shamisa_core.training.checkpoint import load_encoder

        self._encoder, self._meta = load_encoder(Path(context.artifacts["encoder"]))

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201 (pyfunc API)
        """(n_images, 2 * feature_dim) float64 representations."""
        if not hasattr(self, "_encoder"):
            self.load_context(context)
        feats, _ = image_features(model_input, self._encoder, int(self._meta.get("eval_crop") or self._meta["patch_size"]))
        return np.asarray(feats).mean(axis=1)
