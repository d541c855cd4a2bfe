"""Former models-from-code entry of ``shamisa-iqa`` (now ``serving/iqa_model_entry.py``)."""

import mlflow

from shamisa_core.serving.pyfunc import ShamisaIQAModel

mlflow.models.set_model(ShamisaIQAModel())
