"""Models-from-code entry of the ``shamisa-iqa`` pyfunc model (no pickled Python object).

``mlflow.pyfunc.log_model(python_model=<this file>, ...)`` stores this file with the model;
loading the model runs it, which builds :class:`shamisa_core.scoring.ShamisaIQAModel`. Its
artefacts (``encoder`` = encoder.pt, ``regressor`` = regressor.npz) are given at logging time.
"""

import mlflow

from shamisa_core.scoring import ShamisaIQAModel

mlflow.models.set_model(ShamisaIQAModel())
