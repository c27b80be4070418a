"""JobSpec: one training job, in the shape of SageMaker's CreateTrainingJob request.

Both backends take a JobSpec: the SageMaker backend sends :meth:`JobSpec.to_request` to
``CreateTrainingJob`` as it is; the local backend emulates what SageMaker does with it. The
GLMConfig travels typed in the ``config`` channel (a JSON file), not in string
hyperparameters.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from smglm.errors import ConfigError, Issue

__all__ = ["Channel", "JobSpec", "make_job_name", "merge_environment", "validate_job_name"]

_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_CHANNEL_RE = re.compile(r"^[A-Za-z0-9.\-_]{1,64}$")


def validate_job_name(name: str) -> str:
    """Return ``name`` if SageMaker accepts it as a training job name, else raise."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(
            [
                Issue(
                    "job_name",
                    f"{name!r} is not a valid training job name: 1-63 characters of "
                    "[a-zA-Z0-9-], starting and ending with a letter or digit",
                    name,
                )
            ]
        )
    return name


def make_job_name(base: str = "smglm", *, now: datetime | None = None) -> str:
    """A unique, valid job name: ``<base>-YYYYmmdd-HHMMSS-<4 hex>`` (base cleaned and cut)."""
    clean = re.sub(r"[^a-zA-Z0-9-]+", "-", base).strip("-") or "smglm"
    clean = re.sub(r"-{2,}", "-", clean)
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    suffix = f"{stamp}-{secrets.token_hex(2)}"
    head = clean[: 63 - len(suffix) - 1].rstrip("-")
    return validate_job_name(f"{head}-{suffix}")


@dataclass(frozen=True)
class Channel:
    """An input channel: its name and the URI (``s3://`` or ``file://``) of a prefix or file."""

    name: str
    uri: str
    content_type: str | None = None
    input_mode: str = "File"

    def __post_init__(self) -> None:
        if not _CHANNEL_RE.match(self.name):
            raise ConfigError(
                [Issue("channel", f"{self.name!r} is not a channel name: [A-Za-z0-9.-_]{{1,64}}")]
            )
        if not self.uri.startswith(("s3://", "file://")):
            raise ConfigError(
                [
                    Issue(
                        "channel",
                        f"channel {self.name!r}: URI must be s3:// or file://; got {self.uri!r}",
                    )
                ]
            )


#: At most this many Environment variables (CreateTrainingJob's and CreateProcessingJob's).
MAX_ENVIRONMENT = 100


def merge_environment(own: dict[str, str], user: dict[str, str]) -> dict[str, str]:
    """The job's Environment: smglm's own variables (``own``: MLflow's, ...) and the user's
    (``JobConfig.environment``).

    Raises
    ------
    ConfigError
        Naming ``environment`` and the key when the user's sets a variable smglm sets itself,
        or when the two together exceed :data:`MAX_ENVIRONMENT` variables.
    """
    clash = sorted(set(own) & set(user))
    if clash:
        raise ConfigError(
            [
                Issue(
                    "environment",
                    f"{clash} are set by smglm itself for this job (e.g. MLflow's run); "
                    "leave them out of environment",
                    clash,
                )
            ]
        )
    merged = {**own, **user}
    if len(merged) > MAX_ENVIRONMENT:
        raise ConfigError(
            [
                Issue(
                    "environment",
                    f"has {len(user)} variables and smglm sets {len(own)}: SageMaker takes at "
                    f"most {MAX_ENVIRONMENT} in all",
                    len(user),
                )
            ]
        )
    return merged


@dataclass(frozen=True)
class JobSpec:
    """A training job, as CreateTrainingJob describes one.

    The production settings (:class:`~smglm.config.JobConfig`'s) map onto the request only
    when set, so a spec without them sends the same request as before they existed:
    ``subnets``/``security_group_ids`` (``VpcConfig``), ``network_isolation``
    (``EnableNetworkIsolation``), ``inter_container_encryption``
    (``EnableInterContainerTrafficEncryption``), ``volume_kms_key``
    (``ResourceConfig.VolumeKmsKeyId``), ``output_kms_key`` (``OutputDataConfig.KmsKeyId``),
    ``use_spot`` (``EnableManagedSpotTraining``) with ``max_wait_seconds``
    (``StoppingCondition.MaxWaitTimeInSeconds``), ``keep_alive_seconds``
    (``ResourceConfig.KeepAlivePeriodInSeconds``) and ``mlflow_config`` (``MlflowConfig``:
    ``MlflowResourceArn``, ``MlflowExperimentName``, ``MlflowRunName``).
    """

    name: str
    image_uri: str
    output_path: str
    channels: tuple[Channel, ...]
    role_arn: str | None = None
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = 1
    volume_size_gb: int = 30
    max_runtime_seconds: int = 3600
    hyperparameters: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    metric_definitions: tuple[dict[str, str], ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    network_isolation: bool = False
    inter_container_encryption: bool = False
    volume_kms_key: str | None = None
    output_kms_key: str | None = None
    max_wait_seconds: int | None = None
    use_spot: bool = False
    keep_alive_seconds: int = 0
    #: CreateTrainingJob's ``MlflowConfig`` (``MlflowResourceArn``, ``MlflowExperimentName``,
    #: ``MlflowRunName``): set when the tracking URI is a SageMaker managed MLflow ARN.
    mlflow_config: dict[str, str] | None = None

    def __post_init__(self) -> None:
        validate_job_name(self.name)
        # lists from JSON (the local backend's spec.json) become tuples
        object.__setattr__(self, "subnets", tuple(self.subnets))
        object.__setattr__(self, "security_group_ids", tuple(self.security_group_ids))
        if bool(self.subnets) != bool(self.security_group_ids):
            raise ConfigError(
                [
                    Issue(
                        "subnets",
                        "a job in a VPC needs both subnets and security_group_ids; got "
                        f"subnets={list(self.subnets)}, "
                        f"security_group_ids={list(self.security_group_ids)}",
                    )
                ]
            )
        if self.use_spot and (
            self.max_wait_seconds is None or self.max_wait_seconds < self.max_runtime_seconds
        ):
            raise ConfigError(
                [
                    Issue(
                        "max_wait_seconds",
                        "managed spot training needs max_wait_seconds >= max_runtime_seconds "
                        f"({self.max_runtime_seconds}); got {self.max_wait_seconds}",
                        self.max_wait_seconds,
                    )
                ]
            )
        if self.max_wait_seconds is not None and not self.use_spot:
            raise ConfigError(
                [
                    Issue(
                        "max_wait_seconds",
                        f"only with use_spot; got {self.max_wait_seconds} without it",
                        self.max_wait_seconds,
                    )
                ]
            )
        if not self.output_path.startswith(("s3://", "file://")):
            raise ConfigError(
                [Issue("output_path", f"must be an s3:// or file:// URI; got {self.output_path!r}")]
            )
        bad = {k: v for k, v in self.hyperparameters.items() if not isinstance(v, str)}
        if bad:
            raise ConfigError(
                [Issue("hyperparameters", f"values must be strings (SageMaker's rule); got {bad}")]
            )
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise ConfigError([Issue("channels", f"channel names repeat: {names}")])

    def channel(self, name: str) -> Channel | None:
        return next((c for c in self.channels if c.name == name), None)

    @property
    def model_artifacts_uri(self) -> str:
        """Where SageMaker puts model.tar.gz: ``<output_path>/<job>/output/model.tar.gz``."""
        return f"{self.output_path.rstrip('/')}/{self.name}/output/model.tar.gz"

    @property
    def output_artifacts_uri(self) -> str:
        """Where SageMaker puts output.tar.gz (``/opt/ml/output/data``)."""
        return f"{self.output_path.rstrip('/')}/{self.name}/output/output.tar.gz"

    def to_request(self) -> dict[str, Any]:
        """The keyword arguments of boto3's ``create_training_job``."""
        request: dict[str, Any] = {
            "TrainingJobName": self.name,
            "AlgorithmSpecification": {
                "TrainingImage": self.image_uri,
                "TrainingInputMode": "File",
                "MetricDefinitions": [dict(m) for m in self.metric_definitions],
            },
            "HyperParameters": dict(self.hyperparameters),
            "InputDataConfig": [
                {
                    "ChannelName": c.name,
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": c.uri,
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                    **({"ContentType": c.content_type} if c.content_type else {}),
                    "InputMode": c.input_mode,
                }
                for c in self.channels
            ],
            "OutputDataConfig": {"S3OutputPath": self.output_path},
            "ResourceConfig": {
                "InstanceType": self.instance_type,
                "InstanceCount": self.instance_count,
                "VolumeSizeInGB": self.volume_size_gb,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": self.max_runtime_seconds},
            "Environment": dict(self.environment),
            "Tags": [{"Key": k, "Value": v} for k, v in self.tags.items()],
        }
        if self.role_arn:
            request["RoleArn"] = self.role_arn
        # the production settings: only when set (a spec without them sends what it always did)
        if self.output_kms_key:
            request["OutputDataConfig"]["KmsKeyId"] = self.output_kms_key
        if self.volume_kms_key:
            request["ResourceConfig"]["VolumeKmsKeyId"] = self.volume_kms_key
        if self.keep_alive_seconds:
            request["ResourceConfig"]["KeepAlivePeriodInSeconds"] = self.keep_alive_seconds
        if self.max_wait_seconds is not None:
            request["StoppingCondition"]["MaxWaitTimeInSeconds"] = self.max_wait_seconds
        if self.subnets:
            request["VpcConfig"] = {
                "SecurityGroupIds": list(self.security_group_ids),
                "Subnets": list(self.subnets),
            }
        if self.network_isolation:
            request["EnableNetworkIsolation"] = True
        if self.inter_container_encryption:
            request["EnableInterContainerTrafficEncryption"] = True
        if self.use_spot:
            request["EnableManagedSpotTraining"] = True
        if self.mlflow_config is not None:
            request["MlflowConfig"] = dict(self.mlflow_config)
        return request

    @classmethod
    def from_request(cls, request: dict[str, Any]) -> JobSpec:
        """The inverse of :meth:`to_request`."""
        algo = request["AlgorithmSpecification"]
        res = request["ResourceConfig"]
        vpc = request.get("VpcConfig") or {}
        mlflow = request.get("MlflowConfig")
        spot = bool(request.get("EnableManagedSpotTraining", False))
        return cls(
            name=request["TrainingJobName"],
            image_uri=algo["TrainingImage"],
            output_path=request["OutputDataConfig"]["S3OutputPath"],
            channels=tuple(
                Channel(
                    name=c["ChannelName"],
                    uri=c["DataSource"]["S3DataSource"]["S3Uri"],
                    content_type=c.get("ContentType"),
                    input_mode=c.get("InputMode", "File"),
                )
                for c in request.get("InputDataConfig", [])
            ),
            role_arn=request.get("RoleArn"),
            instance_type=res["InstanceType"],
            instance_count=res["InstanceCount"],
            volume_size_gb=res["VolumeSizeInGB"],
            max_runtime_seconds=request["StoppingCondition"]["MaxRuntimeInSeconds"],
            hyperparameters=dict(request.get("HyperParameters", {})),
            environment=dict(request.get("Environment", {})),
            metric_definitions=tuple(algo.get("MetricDefinitions", [])),
            tags={t["Key"]: t["Value"] for t in request.get("Tags", [])},
            subnets=tuple(vpc.get("Subnets", ())),
            security_group_ids=tuple(vpc.get("SecurityGroupIds", ())),
            network_isolation=bool(request.get("EnableNetworkIsolation", False)),
            inter_container_encryption=bool(
                request.get("EnableInterContainerTrafficEncryption", False)
            ),
            volume_kms_key=res.get("VolumeKmsKeyId"),
            output_kms_key=request["OutputDataConfig"].get("KmsKeyId"),
            # DescribeTrainingJob may carry MaxWaitTimeInSeconds only with spot
            max_wait_seconds=request["StoppingCondition"].get("MaxWaitTimeInSeconds")
            if spot
            else None,
            use_spot=spot,
            keep_alive_seconds=int(res.get("KeepAlivePeriodInSeconds", 0)),
            mlflow_config=dict(mlflow) if mlflow is not None else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
