"""Models-from-code entry of the ``shamisa-iqa`` pyfunc model (no pickled Python object)."""

import mlflow

from shamisa_core.serving.pyfunc import ShamisaIQAModel

mlflow.models.set_model(ShamisaIQAModel())
