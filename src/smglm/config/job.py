"""JobConfig: where and how a training job runs. It stays with the launcher."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from smglm.config._base import ConfigModel
from smglm.errors import Issue

__all__ = ["JobConfig"]

_INSTANCE_RE = re.compile(r"^ml\.[a-z0-9-]+\.[a-z0-9]+$")
_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class JobConfig(ConfigModel):
    """Where and how a training job runs.

    ``backend: local`` (the default) emulates SageMaker on this machine; ``sagemaker`` runs a
    real training job; any other registered backend's name is accepted too. The name is
    checked against the launch layer's registry (:func:`smglm.launch.backend.backend_names`)
    when the job is launched or the setting is made, because backends register there, above
    this layer. ``role``, ``bucket`` and ``region`` are resolved as SageMaker Studio users
    expect when left empty (see :mod:`smglm.launch`).

    ``engine`` is the fitting engine: ``glum`` (the default, one machine) or ``spark`` (Spark
    MLlib's GLR: in a local Spark session on the local backend, a SageMaker Processing job on
    AWS's Spark image on ``sagemaker``, where ``instance_count`` > 1 makes a cluster).
    ``aggregate`` says whether to fit on model points (rows summed to rating cells, out of
    core): ``auto`` when the terms allow it and the data is large, ``cells`` always (an error
    when the terms do not allow it), ``rows`` never.
    """

    schema_version: Literal[1] = 1
    backend: Annotated[str, Field(min_length=1)] = "local"
    engine: Literal["glum", "spark"] = "glum"
    aggregate: Literal["auto", "cells", "rows"] = "auto"
    instance_type: str = "ml.m5.xlarge"
    instance_count: Annotated[int, Field(ge=1, le=100)] = 1
    volume_size_gb: Annotated[int, Field(ge=1, le=16384)] = 30
    max_runtime_seconds: Annotated[int, Field(ge=1, le=28 * 24 * 3600)] = 3600
    image_uri: str | None = None
    role: str | None = None
    region: str | None = None
    bucket: str | None = None
    prefix: str = "smglm"
    output_path: str | None = None
    job_name: str | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str | None = None
    max_cost: Annotated[float, Field(gt=0)] | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        if not _INSTANCE_RE.match(value):
            raise ValueError(
                f"{value!r} is not a SageMaker instance type; expected 'ml.<family>.<size>', "
                "e.g. 'ml.m5.xlarge'"
            )
        return value

    @field_validator("job_name")
    @classmethod
    def _job_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME_RE.match(value):
            raise ValueError(
                f"{value!r} is not a valid training job name: 1-63 characters of "
                "[a-zA-Z0-9-], starting and ending with a letter or digit"
            )
        return value

    def _cross_field_issues(self) -> list[Issue]:
        issues = []
        if self.instance_count > 1 and self.engine != "spark":
            issues.append(
                Issue(
                    "instance_count",
                    f"a {self.engine} training job runs on one instance; got "
                    f"{self.instance_count} (more instances need engine: spark)",
                    self.instance_count,
                )
            )
        if self.output_path and not self.output_path.startswith(("s3://", "file://")):
            issues.append(
                Issue(
                    "output_path",
                    f"must be an s3:// or file:// URI; got {self.output_path!r}",
                    self.output_path,
                )
            )
        return issues
