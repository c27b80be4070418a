"""The launch layer: storage, JobSpec, the local and SageMaker backends, and the Job handle.

``smglm.train(config, data, ...)`` is :func:`smglm.launch.submit.train`.
"""

from __future__ import annotations

from smglm.launch.backend import Backend, get_backend
from smglm.launch.job import Job, list_jobs
from smglm.launch.sdk import to_estimator
from smglm.launch.spec import Channel, JobSpec, make_job_name
from smglm.launch.submit import train

__all__ = [
    "Backend",
    "Channel",
    "Job",
    "JobSpec",
    "get_backend",
    "list_jobs",
    "make_job_name",
    "to_estimator",
    "train",
]
