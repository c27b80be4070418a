"""The launch layer: storage, JobSpec, the backends and their registry, and the Job handle.

``smglm.train(config, data, ...)`` is :func:`smglm.launch.submit.train`.

The names below load lazily: the local job supervisor (:mod:`smglm.launch.supervisor`)
imports this package and needs only the local backend, the spec and storage, not pydantic and
the configs (a cost on every job).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "Backend",
    "BaseBackend",
    "Channel",
    "Job",
    "JobSpec",
    "JobState",
    "Predictor",
    "TransformJob",
    "backend_names",
    "get_backend",
    "list_endpoints",
    "list_jobs",
    "make_job_name",
    "register_backend",
    "to_estimator",
    "train",
]

_LAZY = {
    "Backend": "smglm.launch.backend",
    "BaseBackend": "smglm.launch.backend",
    "JobState": "smglm.launch.backend",
    "backend_names": "smglm.launch.backend",
    "get_backend": "smglm.launch.backend",
    "register_backend": "smglm.launch.backend",
    "Job": "smglm.launch.job",
    "Predictor": "smglm.launch.deploy",
    "TransformJob": "smglm.launch.deploy",
    "list_endpoints": "smglm.launch.deploy",
    "list_jobs": "smglm.launch.job",
    "to_estimator": "smglm.launch.sdk",
    "Channel": "smglm.launch.spec",
    "JobSpec": "smglm.launch.spec",
    "make_job_name": "smglm.launch.spec",
    "train": "smglm.launch.submit",
}

if TYPE_CHECKING:
    from smglm.launch.backend import (
        Backend,
        BaseBackend,
        JobState,
        backend_names,
        get_backend,
        register_backend,
    )
    from smglm.launch.deploy import Predictor, TransformJob, list_endpoints
    from smglm.launch.job import Job, list_jobs
    from smglm.launch.sdk import to_estimator
    from smglm.launch.spec import Channel, JobSpec, make_job_name
    from smglm.launch.submit import train


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'smglm.launch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
