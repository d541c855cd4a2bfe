"""Models-from-code entry of the ``shamisa-encoder`` pyfunc model (no pickled object)."""

import mlflow

from shamisa_core.serving.pyfunc import ShamisaEncoderModel

mlflow.models.set_model(ShamisaEncoderModel())
