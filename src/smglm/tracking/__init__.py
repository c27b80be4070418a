"""MLflow tracking of smglm models: the pyfunc model folder (written without importing mlflow).

``smglm.tracking.pyfunc`` writes the ``mlflow_model/`` folder of a model directory and is the
``loader_module`` MLflow calls to load it. Nothing here imports mlflow at import time.
"""

from __future__ import annotations

__all__: list[str] = []
