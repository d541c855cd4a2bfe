"""Former models-from-code entry of ``shamisa-encoder`` (now ``serving/encoder_model_entry.py``)."""

import mlflow

from shamisa_core.serving.pyfunc import ShamisaEncoderModel

mlflow.models.set_model(ShamisaEncoderModel())
