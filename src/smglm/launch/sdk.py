"""The bridge to the SageMaker Python SDK: a JobSpec as a v2 ``Estimator`` or a v3 ``ModelTrainer``.

smglm launches jobs with boto3 alone (:mod:`smglm.launch.sagemaker`); this module is for users
who want the SDK object of the same job (to tune it, put it in a pipeline, ...). It uses
whichever SDK is installed and never installs, upgrades or downgrades one. SageMaker Studio
images ship either major version: v2 (``sagemaker.estimator.Estimator``, deprecated) or v3
(``sagemaker.train.ModelTrainer``).

Both send the CreateTrainingJob request of :meth:`JobSpec.to_request`, except:

- empty ``HyperParameters``, ``Environment``, ``MetricDefinitions`` and ``Tags`` are left out;
- v2 adds ``ProfilerConfig: {DisableProfiler: true}``: the profiler and the debugger hook
  (``DebugHookConfig``, which v2 adds by default) are turned off here, as a GLM container has
  no use for them;
- v3 names the job ``<spec.name>-<timestamp>`` (``ModelTrainer`` takes only a base name) and
  adds ``OutputDataConfig.CompressionType: GZIP`` (the service's default).

The SDKs' own defaults (``MaxRuntimeInSeconds`` 86400 in v2, 3600 in v3; ``VolumeSizeInGB`` 30)
are all replaced by the spec's values. Checked against moto with SDK 2.257.7 and 3.27.0.

The production settings (VPC, network isolation, inter-container encryption, KMS keys, managed
spot with its wait, warm pool) are passed only when the spec sets them (v2: ``subnets``,
``security_group_ids``, ``enable_network_isolation``, ``encrypt_inter_container_traffic``,
``volume_kms_key``, ``output_kms_key``, ``use_spot_instances``, ``max_wait``,
``keep_alive_period_in_seconds``; v3: ``Networking``, ``Compute``, ``StoppingCondition`` and
``OutputDataConfig`` members), so that the SDK's own config file still fills what is unset.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from smglm.errors import ConfigError, Issue, MissingDependency
from smglm.launch.spec import JobSpec

__all__ = ["fit_inputs", "sdk_major_version", "start_with_sdk", "to_estimator"]

_FEATURE = "the SageMaker SDK bridge (smglm.launch.sdk)"


def sdk_major_version() -> int | None:
    """The installed SageMaker Python SDK's major version (2 or 3), or None if none is."""
    try:
        version = importlib.metadata.version("sagemaker")
    except importlib.metadata.PackageNotFoundError:
        return None
    try:
        return int(version.split(".")[0])
    except ValueError:
        return None


def _require_sdk() -> int:
    major = sdk_major_version()
    if major is None:
        raise MissingDependency("sagemaker", "sdk", _FEATURE)
    return major


def _bucket(uri: str) -> str | None:
    return uri[len("s3://") :].split("/", 1)[0] if uri.startswith("s3://") else None


def to_estimator(spec: JobSpec, *, session: Any | None = None) -> Any:
    """The SDK object that launches ``spec``: a v2 ``Estimator`` or a v3 ``ModelTrainer``.

    Parameters
    ----------
    spec
        The job. Its ``role_arn`` must be set (the SDK would otherwise look for one itself).
    session
        A ``boto3.Session``, or the SDK's own ``Session`` (used as it is). A boto3 session is
        wrapped in the SDK's Session with the output path's bucket as ``default_bucket``.

    Returns
    -------
    Estimator or ModelTrainer
        Configured as the spec: image, role, instance type and count, volume, max run time,
        hyperparameters, environment, output path, metric definitions, tags. v3's channels
        are set on the trainer (``trainer.train()`` uses them); for v2 pass
        :func:`fit_inputs` to ``estimator.fit`` (or call :func:`start_with_sdk`).

    Raises
    ------
    MissingDependency
        When no SageMaker SDK is installed (``pip install 'smglm[sdk]'``).
    ConfigError
        Naming ``role`` when the spec has no ``role_arn``; naming ``engine`` for a Spark job
        (a SageMaker Processing job, not a training job: :meth:`smglm.launch.Job.request`
        gives its CreateProcessingJob request).
    """
    if spec.hyperparameters.get("engine") == "spark":
        raise ConfigError(
            [
                Issue(
                    "engine",
                    "a job with engine 'spark' is a SageMaker Processing job on AWS's Spark "
                    "image, not a training job: it has no SDK Estimator or ModelTrainer; "
                    "job.request() gives the CreateProcessingJob request it was launched with",
                    "spark",
                )
            ]
        )
    major = _require_sdk()
    if not spec.role_arn:
        raise ConfigError(
            [Issue("role", "the SDK object needs the execution role: set JobSpec.role_arn")]
        )
    if major >= 3:
        return _model_trainer(spec, session)
    return _estimator_v2(spec, session)


def fit_inputs(spec: JobSpec) -> Any:
    """The spec's channels as the installed SDK takes them: v2 ``{name: TrainingInput}``,
    v3 a list of ``Channel``."""
    major = _require_sdk()
    if major >= 3:
        from sagemaker.train.configs import Channel, DataSource, S3DataSource

        return [
            Channel(
                channel_name=c.name,
                data_source=DataSource(
                    s3_data_source=S3DataSource(
                        s3_data_type="S3Prefix",
                        s3_uri=c.uri,
                        s3_data_distribution_type="FullyReplicated",
                    )
                ),
                input_mode=c.input_mode,
                **({"content_type": c.content_type} if c.content_type else {}),
            )
            for c in spec.channels
        ]
    from sagemaker.inputs import TrainingInput

    return {
        c.name: TrainingInput(
            s3_data=c.uri,
            distribution="FullyReplicated",
            s3_data_type="S3Prefix",
            content_type=c.content_type,
            input_mode=c.input_mode,
        )
        for c in spec.channels
    }


def start_with_sdk(
    spec: JobSpec, *, session: Any | None = None, wait: bool = False, logs: bool = False
) -> Any:
    """Launch ``spec`` through the installed SDK (``fit`` or ``train``); return the SDK object."""
    trainer = to_estimator(spec, session=session)
    if _require_sdk() >= 3:
        trainer.train(wait=wait, logs=logs)
    else:
        trainer.fit(
            inputs=fit_inputs(spec), job_name=spec.name, wait=wait, logs="All" if logs else "None"
        )
    return trainer


def _estimator_v2(spec: JobSpec, session: Any | None) -> Any:
    from sagemaker.estimator import Estimator

    sm_session = _session_v2(spec, session)
    # the production settings, only when set (so the SDK's own config file can still fill them)
    settings: dict[str, Any] = {}
    if spec.subnets:
        settings.update(
            subnets=list(spec.subnets), security_group_ids=list(spec.security_group_ids)
        )
    if spec.network_isolation:
        settings["enable_network_isolation"] = True
    if spec.inter_container_encryption:
        settings["encrypt_inter_container_traffic"] = True
    if spec.volume_kms_key:
        settings["volume_kms_key"] = spec.volume_kms_key
    if spec.output_kms_key:
        settings["output_kms_key"] = spec.output_kms_key
    if spec.use_spot:
        settings.update(use_spot_instances=True, max_wait=spec.max_wait_seconds)
    if spec.keep_alive_seconds:
        settings["keep_alive_period_in_seconds"] = spec.keep_alive_seconds
    return Estimator(
        image_uri=spec.image_uri,
        role=spec.role_arn,
        instance_count=spec.instance_count,
        instance_type=spec.instance_type,
        volume_size=spec.volume_size_gb,
        max_run=spec.max_runtime_seconds,
        input_mode="File",
        output_path=spec.output_path,
        base_job_name=spec.name,
        sagemaker_session=sm_session,
        hyperparameters=dict(spec.hyperparameters) or None,
        environment=dict(spec.environment) or None,
        metric_definitions=[dict(m) for m in spec.metric_definitions] or None,
        tags=[{"Key": k, "Value": v} for k, v in spec.tags.items()] or None,
        debugger_hook_config=False,
        disable_profiler=True,
        **settings,
    )


def _session_v2(spec: JobSpec, session: Any | None) -> Any:
    if session is not None and hasattr(session, "boto_session"):
        return session
    from sagemaker.session import Session

    from smglm.launch.aws import boto3_session

    return Session(boto_session=boto3_session(session), default_bucket=_bucket(spec.output_path))


def _model_trainer(spec: JobSpec, session: Any | None) -> Any:
    from sagemaker.train import ModelTrainer, configs
    from sagemaker.train.configs import Compute, MetricDefinition, StoppingCondition, Tag

    # the production settings, only when set (so the SDK's own config file can still fill them)
    compute: dict[str, Any] = {}
    if spec.volume_kms_key:
        compute["volume_kms_key_id"] = spec.volume_kms_key
    if spec.keep_alive_seconds:
        compute["keep_alive_period_in_seconds"] = spec.keep_alive_seconds
    if spec.use_spot:
        compute["enable_managed_spot_training"] = True
    stopping: dict[str, Any] = {}
    if spec.max_wait_seconds is not None:
        stopping["max_wait_time_in_seconds"] = spec.max_wait_seconds
    output: dict[str, Any] = {"kms_key_id": spec.output_kms_key} if spec.output_kms_key else {}
    extra: dict[str, Any] = {}
    if spec.subnets or spec.network_isolation or spec.inter_container_encryption:
        from sagemaker.train.configs import Networking

        extra["networking"] = Networking(
            subnets=list(spec.subnets) or None,
            security_group_ids=list(spec.security_group_ids) or None,
            enable_network_isolation=spec.network_isolation or None,
            enable_inter_container_traffic_encryption=spec.inter_container_encryption or None,
        )
    trainer = ModelTrainer(
        training_image=spec.image_uri,
        role=spec.role_arn,
        sagemaker_session=_session_v3(spec, session),
        base_job_name=spec.name,
        compute=Compute(
            instance_type=spec.instance_type,
            instance_count=spec.instance_count,
            volume_size_in_gb=spec.volume_size_gb,
            **compute,
        ),
        stopping_condition=StoppingCondition(
            max_runtime_in_seconds=spec.max_runtime_seconds, **stopping
        ),
        output_data_config=configs.OutputDataConfig(s3_output_path=spec.output_path, **output),
        input_data_config=fit_inputs(spec),
        training_input_mode="File",
        hyperparameters=dict(spec.hyperparameters),
        environment=dict(spec.environment),
        tags=[Tag(key=k, value=v) for k, v in spec.tags.items()] or None,
        **extra,
    )
    if spec.metric_definitions:
        trainer.with_metric_definitions(
            [MetricDefinition(name=m["Name"], regex=m["Regex"]) for m in spec.metric_definitions]
        )
    return trainer


def _session_v3(spec: JobSpec, session: Any | None) -> Any:
    if session is not None and hasattr(session, "boto_session"):
        return session
    from sagemaker.core.helper.session_helper import Session

    from smglm.launch.aws import boto3_session

    return Session(boto_session=boto3_session(session), default_bucket=_bucket(spec.output_path))
