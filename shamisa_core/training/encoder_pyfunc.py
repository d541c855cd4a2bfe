"""MLflow pyfunc flavour of a trained encoder (registered as ``shamisa-encoder``).

``predict`` takes images (a DataFrame with an ``image`` column of paths, a list of paths or
HxWx3 uint8 arrays) and returns their representations: five crops at full and half scale,
``h`` concatenated over scales and averaged over crops (METHOD.md §7.3), one row per image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np


class ShamisaEncoderModel(mlflow.pyfunc.PythonModel):
    """Artefact ``encoder`` = encoder.pt."""

    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        """Rebuild the frozen encoder from ``encoder.pt``."""
        from shamisa_core.training.checkpoint import load_encoder

        self._encoder, self._meta = load_encoder(Path(context.artifacts["encoder"]))

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201 (pyfunc API)
        """(n_images, 2 * feature_dim) float64 representations."""
        from shamisa_core.scoring import _as_image_list, image_features

        if not hasattr(self, "_encoder"):
            self.load_context(context)
        feats = image_features(_as_image_list(model_input), self._encoder, int(self._meta["patch_size"]))
        return np.asarray(feats).mean(axis=1)
