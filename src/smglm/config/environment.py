"""Environment variables smglm reads, declared once with their type, default and meaning.

No other module reads ``os.environ`` for these names: they call ``VAR.get()``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Generic, TypeVar

from smglm.errors import ConfigError, Issue

__all__ = [
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_RUN_ID",
    "MLFLOW_TRACKING_URI",
    "SAGEMAKER_ADMIN_CONFIG_OVERRIDE",
    "SAGEMAKER_BIND_TO_PORT",
    "SAGEMAKER_MAX_PAYLOAD_IN_MB",
    "SAGEMAKER_MODEL_SERVER_TIMEOUT",
    "SAGEMAKER_MODEL_SERVER_WORKERS",
    "SAGEMAKER_USER_CONFIG_OVERRIDE",
    "SMGLM_CONFIG_FILE",
    "SMGLM_HOME",
    "SMGLM_LOCAL_WARM",
    "SMGLM_MAX_ARCHIVE_MB",
    "SMGLM_ML_ROOT",
    "SMGLM_WARM_IDLE_SECONDS",
    "TRAINING_JOB_NAME",
    "EnvVar",
    "max_archive_bytes",
]

T = TypeVar("T", str, int)


@dataclass(frozen=True)
class EnvVar(Generic[T]):
    """A typed environment variable: ``get()`` returns the parsed value or the default."""

    name: str
    type: type[T]
    default: T | None
    doc: str

    def get(self) -> T | None:
        raw = os.environ.get(self.name)
        if raw is None or raw == "":
            return self.default
        try:
            return self.type(raw)
        except ValueError:
            raise ConfigError(
                [
                    Issue(
                        self.name,
                        f"environment variable must be {self.type.__name__}; got {raw!r}",
                        raw,
                    )
                ]
            ) from None

    @property
    def defined(self) -> bool:
        return bool(os.environ.get(self.name))


#: The root of SageMaker's container tree, ``/opt/ml``; the local backend and tests move it.
SMGLM_ML_ROOT = EnvVar("SMGLM_ML_ROOT", str, "/opt/ml", "root of the /opt/ml tree")
#: Where smglm keeps local jobs, storage and its user config (default ``./.smglm``).
SMGLM_HOME = EnvVar("SMGLM_HOME", str, None, "smglm's working folder")
#: 1 (default): the local backend forks each job from a warm runtime worker; 0: each job
#: starts a fresh interpreter (slower by the imports, 2-3 s; no resident worker process).
SMGLM_LOCAL_WARM = EnvVar("SMGLM_LOCAL_WARM", int, 1, "local jobs from a warm worker: 1 or 0")
#: Seconds a warm runtime worker stays without a job before it exits.
SMGLM_WARM_IDLE_SECONDS = EnvVar(
    "SMGLM_WARM_IDLE_SECONDS", int, 900, "seconds a warm runtime worker waits for a job"
)
#: Set by SageMaker in a training container: the training job's name.
TRAINING_JOB_NAME = EnvVar("TRAINING_JOB_NAME", str, None, "the SageMaker training job name")
#: MLflow's tracking server or store.
MLFLOW_TRACKING_URI = EnvVar("MLFLOW_TRACKING_URI", str, None, "MLflow tracking URI")
#: The MLflow run a training job logs into (set by the launcher for the runtime).
MLFLOW_RUN_ID = EnvVar("MLFLOW_RUN_ID", str, None, "MLflow run of the training job")
#: MLflow's experiment.
MLFLOW_EXPERIMENT_NAME = EnvVar("MLFLOW_EXPERIMENT_NAME", str, None, "MLflow experiment")
#: The user config file that ``%sm_config`` writes (YAML).
SMGLM_CONFIG_FILE = EnvVar(
    "SMGLM_CONFIG_FILE", str, None, "the user config file of %sm_config (YAML)"
)
#: The SageMaker Python SDK's admin config file (its "intelligent defaults"): a file or a
#: folder holding ``config.yaml`` (default ``/etc/xdg/sagemaker/config.yaml`` on Linux).
SAGEMAKER_ADMIN_CONFIG_OVERRIDE = EnvVar(
    "SAGEMAKER_ADMIN_CONFIG_OVERRIDE", str, None, "the SageMaker SDK's admin config file"
)
#: The SageMaker Python SDK's user config file (default ``~/.config/sagemaker/config.yaml``).
SAGEMAKER_USER_CONFIG_OVERRIDE = EnvVar(
    "SAGEMAKER_USER_CONFIG_OVERRIDE", str, None, "the SageMaker SDK's user config file"
)
#: The port ``serve`` listens on (SageMaker sets it for multi-container endpoints).
SAGEMAKER_BIND_TO_PORT = EnvVar("SAGEMAKER_BIND_TO_PORT", int, 8080, "serving port")
#: Worker processes of the model server (default: one per CPU).
SAGEMAKER_MODEL_SERVER_WORKERS = EnvVar(
    "SAGEMAKER_MODEL_SERVER_WORKERS", int, None, "model server workers"
)
#: Seconds a serving worker may take for one request.
SAGEMAKER_MODEL_SERVER_TIMEOUT = EnvVar(
    "SAGEMAKER_MODEL_SERVER_TIMEOUT", int, 60, "model server timeout"
)
#: SageMaker sets it for a batch transform whose MaxPayloadInMB is not the default 6 (MiB).
SAGEMAKER_MAX_PAYLOAD_IN_MB = EnvVar(
    "SAGEMAKER_MAX_PAYLOAD_IN_MB", int, 6, "largest batch-transform request body, in MiB"
)
#: The total size, in MiB, the members of a model or output archive may declare when it is
#: unpacked or read (an archive bomb is refused from its headers; see :mod:`smglm.archive`).
SMGLM_MAX_ARCHIVE_MB = EnvVar(
    "SMGLM_MAX_ARCHIVE_MB", int, 256, "largest unpacked size of a model or output archive, MiB"
)


def max_archive_bytes() -> int:
    """``SMGLM_MAX_ARCHIVE_MB`` in bytes; a ConfigError naming it unless it is positive."""
    value = SMGLM_MAX_ARCHIVE_MB.get() or 0
    if value <= 0:
        raise ConfigError(
            [
                Issue(
                    SMGLM_MAX_ARCHIVE_MB.name,
                    f"environment variable must be a positive number of MiB; got {value!r}",
                    value,
                )
            ]
        )
    return value * 1024 * 1024
