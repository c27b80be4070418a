"""smglm: generalized linear models as SageMaker training jobs, from a Jupyter notebook.

The public API is loaded lazily, so ``import smglm`` and ``%load_ext smglm`` stay fast:
nothing heavy (glum, pandas, matplotlib, boto3, mlflow) is imported until it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smglm._version import __version__

__all__ = [
    "FitResult",
    "GLMConfig",
    "Job",
    "JobConfig",
    "__version__",
    "explore",
    "fit",
    "form",
    "load_ipython_extension",
    "load_model",
    "train",
]

_LAZY = {
    "GLMConfig": ("smglm.config", "GLMConfig"),
    "JobConfig": ("smglm.config", "JobConfig"),
    "fit": ("smglm.glm", "fit"),
    "explore": ("smglm.glm.report.explore", "explore"),
    "FitResult": ("smglm.glm", "FitResult"),
    "load_model": ("smglm.glm", "load_model"),
    "train": ("smglm.launch", "train"),
    "Job": ("smglm.launch", "Job"),
    "form": ("smglm.notebook", "form"),
}

if TYPE_CHECKING:
    from smglm.config import GLMConfig, JobConfig
    from smglm.glm import FitResult, fit, load_model
    from smglm.glm.report.explore import explore
    from smglm.launch import Job, train
    from smglm.notebook import form


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'smglm' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext smglm``: register the magics (``%%sm_train``, ``%sm_jobs``, ...)."""
    from smglm.notebook import load_ipython_extension as _load

    _load(ipython)


def __dir__() -> list[str]:
    return sorted(__all__)
