"""The GLM layer: data checks, fitting with an engine (glum), R-convention statistics, the
portable model. Families are objects (:mod:`smglm.glm.families`), engines are registered in
:mod:`smglm.glm.engines`.

``smglm.glm`` imports no glum at import time: :func:`fit` loads it when called.
"""

from __future__ import annotations

from smglm.glm.data import prepare
from smglm.glm.fitting import fit
from smglm.glm.io import read_table
from smglm.glm.model import PortableModel, UnseenLevelWarning
from smglm.glm.result import FitResult, load_model

__all__ = [
    "FitResult",
    "PortableModel",
    "UnseenLevelWarning",
    "fit",
    "load_model",
    "prepare",
    "read_table",
]
