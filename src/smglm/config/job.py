"""JobConfig: where and how a training job runs. It stays with the launcher."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from smglm.config._base import ConfigModel
from smglm.errors import ConfigError, Issue

__all__ = ["FIELD_ALIASES", "JobConfig"]

_INSTANCE_RE = re.compile(r"^ml\.[a-z0-9-]+\.[a-z0-9]+$")
_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")

#: The SageMaker Python SDK's spellings that JobConfig accepts for its own fields
#: (``Estimator(max_run=..., max_wait=...)``).
FIELD_ALIASES = {"max_run": "max_runtime_seconds", "max_wait": "max_wait_seconds"}

# The shapes SageMaker accepts (CreateTrainingJob's and CreateProcessingJob's service model,
# and the VPC and KMS id formats).
_SUBNET_RE = re.compile(r"^subnet-[0-9a-zA-Z]{1,25}$")
_SG_RE = re.compile(r"^sg-[0-9a-zA-Z]{1,29}$")
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_KEY_ID = rf"(?:{_UUID}|mrk-[0-9a-fA-F]{{32}})"
_KMS_ARN = r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:"
_ALIAS = r"alias/[a-zA-Z0-9/_-]{1,256}"
_KMS_KEY_RE = re.compile(rf"^(?:{_KEY_ID}|{_KMS_ARN}key/{_KEY_ID})$")
_KMS_KEY_OR_ALIAS_RE = re.compile(
    rf"^(?:{_KEY_ID}|{_KMS_ARN}key/{_KEY_ID}|{_ALIAS}|{_KMS_ARN}{_ALIAS})$"
)
_ENV_KEY_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_TAG_RE = re.compile(r"^[\w\s.:/=+\-@]*$")
#: At most this many Environment entries (CreateTrainingJob and CreateProcessingJob).
MAX_ENVIRONMENT = 100
#: The longest Environment key and value: training jobs, processing jobs (engine spark).
_ENV_LENGTH = {"glum": 512, "spark": 256}
#: A processing job (engine spark) runs at most 9 days (ProcessingMaxRuntimeInSeconds).
_PROCESSING_MAX_RUNTIME = 777_600
#: The longest a warm pool is kept (KeepAlivePeriodInSeconds, SageMaker's warm-pool docs).
MAX_KEEP_ALIVE = 3600


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

    ``report_images`` says whether the job draws its report's figures as PNG files. The job
    always writes the report's tables; ``job.report()`` looks the same either way, because the
    notebook draws a figure from its table when the job wrote no PNG. Left empty (``None``,
    also spelt ``auto``): no PNGs on the local backend, where the kernel draws them when the
    report is shown (the local loop then waits for the fit, not for matplotlib), and PNGs on
    every other backend (``sagemaker``), where the images travel with the job's output.
    ``true`` draws them in every job (e.g. to keep them with a local job's artifacts),
    ``false`` in none. With ``engine: spark`` on SageMaker the figures are drawn by
    spark-finish on this machine, always.

    Settings a production account needs (SageMaker only; the local backend accepts them and
    ignores all but ``environment`` and ``max_runtime_seconds``):

    - ``subnets`` and ``security_group_ids`` (``subnet-...``, ``sg-...``; both or neither):
      the job runs in your VPC (``VpcConfig``; a Spark job's ``NetworkConfig.VpcConfig``).
    - ``enable_network_isolation``: the container makes no network calls
      (``EnableNetworkIsolation``); not with ``engine: spark``, whose driver reads the data
      from S3 itself.
    - ``encrypt_inter_container_traffic``: between the instances of a cluster.
    - ``volume_kms_key`` (a KMS key id or key ARN) encrypts the instances' storage volume;
      ``output_kms_key`` (key id, key ARN, ``alias/...`` or alias ARN) the model and output
      in S3.
    - ``environment``: variables set in the job's container (at most 100, with smglm's own;
      a name smglm sets itself is refused).
    - ``max_runtime_seconds`` (the SDK's ``max_run`` is accepted too) stops the job;
      ``use_spot`` runs it on managed spot capacity, waiting at most ``max_wait_seconds``
      (``max_wait``) in all, >= ``max_runtime_seconds`` (default: ``max_runtime_seconds``).
    - ``keep_alive_seconds`` (0-3600) keeps the instances in a warm pool after the job, so the
      next matching job starts in seconds; the pool bills while it waits.

    ``use_spot`` and ``keep_alive_seconds`` are training-job features: not with ``engine:
    spark`` (SageMaker Processing has neither). An admin's SageMaker SDK config file
    (``/etc/xdg/sagemaker/config.yaml``, ``~/.config/sagemaker/config.yaml``) fills what is
    left at its default, on the sagemaker backend (:mod:`smglm.launch.sdk_config`).
    """

    schema_version: Literal[1] = 1
    backend: Annotated[str, Field(min_length=1)] = "local"
    engine: Literal["glum", "spark"] = "glum"
    aggregate: Literal["auto", "cells", "rows"] = "auto"
    report_images: bool | None = None
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
    subnets: list[str] = Field(default_factory=list)
    security_group_ids: list[str] = Field(default_factory=list)
    enable_network_isolation: bool = False
    encrypt_inter_container_traffic: bool = False
    volume_kms_key: str | None = None
    output_kms_key: str | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    max_wait_seconds: Annotated[int, Field(ge=1)] | None = None
    use_spot: bool = False
    keep_alive_seconds: Annotated[int, Field(ge=0, le=MAX_KEEP_ALIVE)] = 0

    @model_validator(mode="before")
    @classmethod
    def _sdk_spellings(cls, data: Any) -> Any:
        """``max_run``/``max_wait`` (the SDK's names) stand for the fields they name."""
        if not isinstance(data, dict) or not any(a in data for a in FIELD_ALIASES):
            return data
        data = dict(data)
        issues = []
        for alias, name in FIELD_ALIASES.items():
            if alias not in data:
                continue
            value = data.pop(alias)
            if name in data and data[name] != value:
                issues.append(
                    Issue(
                        alias,
                        f"is the SageMaker SDK's name of {name}; got {alias}={value!r} and "
                        f"{name}={data[name]!r}: give one of them",
                        value,
                    )
                )
            data[name] = value
        if issues:
            raise ConfigError(issues)
        return data

    @field_validator("report_images", mode="before")
    @classmethod
    def _report_images(cls, value: Any) -> bool | None:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "auto"):
            return {"true": True, "false": False, "auto": None}[value.strip().lower()]
        raise ValueError(
            f"must be true, false or auto (left empty: PNGs on SageMaker, not on the local "
            f"backend); got {value!r} ({type(value).__name__})"
        )

    def images_on(self, remote: bool) -> bool:
        """Whether a job on a backend that runs jobs elsewhere (``remote``) or here draws its
        report's PNGs: ``report_images``, or when it is left empty, ``remote``."""
        return remote if self.report_images is None else self.report_images

    @field_validator("subnets")
    @classmethod
    def _subnets(cls, value: list[str]) -> list[str]:
        return _ids(value, _SUBNET_RE, "subnet", "subnet-0123456789abcdef0", 16)

    @field_validator("security_group_ids")
    @classmethod
    def _security_groups(cls, value: list[str]) -> list[str]:
        return _ids(value, _SG_RE, "security group", "sg-0123456789abcdef0", 5)

    @field_validator("volume_kms_key")
    @classmethod
    def _volume_kms_key(cls, value: str | None) -> str | None:
        if value is not None and not _KMS_KEY_RE.match(value):
            raise ValueError(
                f"{value!r} is not a KMS key for a storage volume; SageMaker takes a key id "
                "('1234abcd-12ab-34cd-56ef-1234567890ab') or a key ARN "
                "('arn:aws:kms:<region>:<account>:key/<key id>'), not an alias"
            )
        return value

    @field_validator("output_kms_key")
    @classmethod
    def _output_kms_key(cls, value: str | None) -> str | None:
        if value is not None and not _KMS_KEY_OR_ALIAS_RE.match(value):
            raise ValueError(
                f"{value!r} is not a KMS key; expected a key id "
                "('1234abcd-12ab-34cd-56ef-1234567890ab'), a key ARN "
                "('arn:aws:kms:<region>:<account>:key/<key id>'), an alias ('alias/<name>') "
                "or an alias ARN ('arn:aws:kms:<region>:<account>:alias/<name>')"
            )
        return value

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not _ENV_KEY_RE.match(k) or len(k) > 512]
        if bad:
            raise ValueError(
                f"{bad} are not environment variable names SageMaker accepts: letters, digits "
                "and '_', not starting with a digit, at most 512 characters"
            )
        if len(value) > MAX_ENVIRONMENT:
            raise ValueError(
                f"has {len(value)} variables; SageMaker takes at most {MAX_ENVIRONMENT} "
                "(smglm's own included)"
            )
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        problems = []
        for key, text in value.items():
            if not 1 <= len(key) <= 128 or not _TAG_RE.match(key):
                problems.append(f"key {key!r}: 1-128 characters")
            elif key.lower().startswith("aws:"):
                problems.append(f"key {key!r}: the prefix 'aws:' is reserved by AWS")
            if len(text) > 256 or not _TAG_RE.match(text):
                problems.append(f"value of {key!r} ({text[:40]!r}): at most 256 characters")
        if problems:
            raise ValueError(
                "SageMaker refuses these tags: "
                + "; ".join(problems)
                + " (letters, digits, spaces and _ . : / = + - @)"
            )
        return value

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
        issues += self._production_issues()
        if self.output_path and not self.output_path.startswith(("s3://", "file://")):
            issues.append(
                Issue(
                    "output_path",
                    f"must be an s3:// or file:// URI; got {self.output_path!r}",
                    self.output_path,
                )
            )
        return issues

    def _production_issues(self) -> list[Issue]:
        issues = []
        if bool(self.subnets) != bool(self.security_group_ids):
            given, missing = (
                ("subnets", "security_group_ids")
                if self.subnets
                else ("security_group_ids", "subnets")
            )
            issues.append(
                Issue(
                    missing,
                    f"a job in a VPC needs both subnets and security_group_ids; {given} is "
                    f"{getattr(self, given)} but {missing} is empty",
                    getattr(self, missing),
                )
            )
        if self.max_wait_seconds is not None:
            if not self.use_spot:
                issues.append(
                    Issue(
                        "max_wait_seconds",
                        f"is the time a managed spot job may wait and run; got "
                        f"{self.max_wait_seconds} without use_spot: set use_spot: true, or "
                        "leave max_wait_seconds out",
                        self.max_wait_seconds,
                    )
                )
            elif self.max_wait_seconds < self.max_runtime_seconds:
                issues.append(
                    Issue(
                        "max_wait_seconds",
                        f"must be >= max_runtime_seconds ({self.max_runtime_seconds}), as "
                        f"SageMaker requires; got {self.max_wait_seconds}",
                        self.max_wait_seconds,
                    )
                )
        if self.engine == "spark":
            for name, value, default, lacks in (
                ("use_spot", self.use_spot, False, "spot capacity"),
                ("keep_alive_seconds", self.keep_alive_seconds, 0, "warm pools"),
            ):
                if value != default:
                    issues.append(
                        Issue(
                            name,
                            f"is a training-job feature; engine 'spark' runs a SageMaker "
                            f"Processing job, which has no {lacks}: got {name}={value!r}; "
                            f"leave it at {default!r} or use engine: glum",
                            value,
                        )
                    )
            if self.enable_network_isolation:
                issues.append(
                    Issue(
                        "enable_network_isolation",
                        "engine 'spark' reads the data from S3 inside the job, which network "
                        "isolation forbids; got true: leave it false (use subnets and "
                        "security_group_ids with a VPC endpoint for S3 instead) or use "
                        "engine: glum",
                        True,
                    )
                )
            if self.max_runtime_seconds > _PROCESSING_MAX_RUNTIME:
                issues.append(
                    Issue(
                        "max_runtime_seconds",
                        f"must be <= {_PROCESSING_MAX_RUNTIME} (9 days) with engine 'spark' "
                        f"(a SageMaker Processing job's limit); got {self.max_runtime_seconds}",
                        self.max_runtime_seconds,
                    )
                )
        limit = _ENV_LENGTH[self.engine]
        long = sorted(k for k, v in self.environment.items() if len(k) > limit or len(v) > limit)
        if long:
            issues.append(
                Issue(
                    "environment",
                    f"{long}: names and values of at most {limit} characters with engine "
                    f"{self.engine!r} (SageMaker's limit)",
                    long,
                )
            )
        return issues


def _ids(
    value: list[str], pattern: re.Pattern[str], what: str, example: str, most: int
) -> list[str]:
    bad = [v for v in value if not pattern.match(v)]
    if bad:
        raise ValueError(f"{bad} are not {what} ids; expected ids like {example!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"{value} repeats an id; give each once")
    if len(value) > most:
        raise ValueError(f"has {len(value)} {what} ids; SageMaker takes at most {most}")
    return value
