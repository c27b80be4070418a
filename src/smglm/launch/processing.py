"""The Spark engine on SageMaker: a job as a SageMaker Processing job on AWS's Spark image.

With ``JobConfig.engine == "spark"`` on the ``sagemaker`` backend, the same :class:`JobSpec`
that describes a training job becomes a ``CreateProcessingJob`` request
(:func:`processing_request`), shaped as the SageMaker SDK's ``PySparkProcessor`` builds one:

- the image is AWS's prebuilt ``sagemaker-spark-processing`` image (Spark 3.5, Python 3.12,
  container v1.3), resolved per region as the SDK's ``image_uris.retrieve("spark", ...)`` does
  (:func:`spark_image_uri`); smglm's own image is not used, so nothing is pushed to ECR;
- the command is ``smspark-submit --py-files <code>/spark_report.py <code>/spark_driver.py
  --job <config>/job.json --out <output>``, which runs Spark on YARN over every instance
  (``instance_count`` > 1 makes a cluster);
- the inputs are the driver's code (``code``, the standalone scripts of
  :mod:`smglm.glm.engines` in the installed package) and the job document (``config``:
  ``job.json`` = the resolved GLMConfig and the data's URIs). The data itself is not an
  input: Spark reads it from ``s3://`` where it is (EMRFS);
- the driver's output (``spark``) is uploaded at the end of the job under the training-job
  layout, ``<output_path>/<job>/output/spark/``.

A completed processing job's driver output is turned into the artifacts a training job
leaves, ``<output_path>/<job>/output/model.tar.gz`` and ``output.tar.gz``, by ``python -m
smglm.runtime spark-finish`` run on this machine (the launch layer never imports the
runtime); the SageMaker backend does it when it first sees the job completed, so that
``job.model``, ``job.report()``, tracking, serving and the pyfunc model work unchanged.

:data:`LAYOUT` below lists where each file goes. Statuses map onto the training job's
(:func:`processing_state`): ``InProgress`` is ``Starting`` until the instances run, then
``Training``; the log is CloudWatch Logs' ``/aws/sagemaker/ProcessingJobs`` group, one stream
``<job>/algo-<n>-<epoch>`` per instance, as for training jobs.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from smglm.errors import BackendError, ConfigError, Issue
from smglm.launch.backend import JobState
from smglm.launch.spec import JobSpec

__all__ = [
    "DRIVER",
    "LAYOUT",
    "LOG_GROUP",
    "OUTPUT_NAME",
    "PROCESSING_ROOT",
    "PY_FILES",
    "SPARK_CONTAINER_VERSION",
    "SPARK_PY_VERSION",
    "SPARK_REPOSITORY",
    "SPARK_VERSION",
    "ProcessingLayout",
    "driver_files",
    "is_spark",
    "job_document",
    "processing_request",
    "processing_state",
    "spark_image_uri",
    "spark_regions",
]

#: The processing directory inside the container (SageMaker's contract).
PROCESSING_ROOT = "/opt/ml/processing"
#: CloudWatch Logs group of SageMaker Processing jobs.
LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
#: The Spark image smglm runs: ``sagemaker-spark-processing:3.5-cpu-py312-v1.3``.
SPARK_REPOSITORY = "sagemaker-spark-processing"
SPARK_VERSION = "3.5"
SPARK_PY_VERSION = "py312"
SPARK_CONTAINER_VERSION = "v1.3"
#: The driver script (the Spark application) and the modules it imports, shipped in
#: ``smglm/glm/engines/`` as standalone files (they import no smglm module).
DRIVER = "spark_driver.py"
PY_FILES = ("spark_report.py",)
#: The processing output that holds the driver's files.
OUTPUT_NAME = "spark"

#: Where a Spark job's files go, relative to ``<output_path>/<job>/``.
LAYOUT = {
    "code": "input/code/",  # spark_driver.py, spark_report.py (input "code")
    "config": "input/config/",  # job.json (input "config")
    "spec": "input/spec.json",  # the JobSpec (its CreateTrainingJob shape), for Job.spec()
    "driver": f"output/{OUTPUT_NAME}/",  # the driver's output (processing output "spark")
    "model": "output/model.tar.gz",  # as a training job's, written by spark-finish
    "output": "output/output.tar.gz",
}

# sagemaker-python-sdk's image_uri_config/spark.json, "processing" 3.5 (aws/sagemaker-python-sdk
# sagemaker-core/src/sagemaker/core/image_uri_config/spark.json): the account of AWS's image
# registry in each region.
_REGISTRIES = {
    "af-south-1": "309385258863",
    "ap-east-1": "732049463269",
    "ap-east-2": "533267296287",
    "ap-northeast-1": "411782140378",
    "ap-northeast-2": "860869212795",
    "ap-northeast-3": "102471314380",
    "ap-south-1": "105495057255",
    "ap-south-2": "873151114052",
    "ap-southeast-1": "759080221371",
    "ap-southeast-2": "440695851116",
    "ap-southeast-3": "800295151634",
    "ap-southeast-4": "819679513684",
    "ap-southeast-5": "841784149062",
    "ap-southeast-6": "278240940207",
    "ap-southeast-7": "471112967968",
    "ca-central-1": "446299261295",
    "ca-west-1": "000907499111",
    "cn-north-1": "671472414489",
    "cn-northwest-1": "844356804704",
    "eu-central-1": "906073651304",
    "eu-central-2": "142351485170",
    "eu-isoe-west-1": "010264522435",
    "eu-north-1": "330188676905",
    "eu-south-1": "753923664805",
    "eu-south-2": "833944533722",
    "eu-west-1": "571004829621",
    "eu-west-2": "836651553127",
    "eu-west-3": "136845547031",
    "eusc-de-east-1": "713710892325",
    "il-central-1": "408426139102",
    "me-central-1": "395420993607",
    "me-south-1": "750251592176",
    "mx-central-1": "211125459255",
    "sa-east-1": "737130764395",
    "us-east-1": "173754725891",
    "us-east-2": "314815235551",
    "us-gov-east-1": "260923028637",
    "us-gov-west-1": "271483468897",
    "us-west-1": "667973535471",
    "us-west-2": "153931337802",
}
# ECR's DNS suffix by partition (botocore's endpoints.json), longest prefix first.
_DNS_SUFFIXES = (
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-isof-", "csp.hci.ic.gov"),
    ("us-iso-", "c2s.ic.gov"),
    ("eu-isoe-", "cloud.adc-e.uk"),
    ("eusc-", "amazonaws.eu"),
    ("cn-", "amazonaws.com.cn"),
)


def spark_regions() -> list[str]:
    """The regions where AWS publishes the Spark processing image, sorted."""
    return sorted(_REGISTRIES)


def spark_image_uri(region: str) -> str:
    """AWS's Spark processing image in ``region``, as the SageMaker SDK resolves it
    (``image_uris.retrieve("spark", region, version="3.5", py_version="py312",
    container_version="v1.3")``), e.g.
    ``173754725891.dkr.ecr.us-east-1.amazonaws.com/sagemaker-spark-processing:3.5-cpu-py312-v1.3``.

    Raises
    ------
    ConfigError
        Naming ``region`` and the regions that have the image, when ``region`` has none.
    """
    account = _REGISTRIES.get(region)
    if account is None:
        from smglm.errors import did_you_mean

        raise ConfigError(
            [
                Issue(
                    "region",
                    f"AWS publishes no Spark processing image ({SPARK_REPOSITORY}) in "
                    f"{region!r}, which engine 'spark' runs on SageMaker; use one of "
                    f"{spark_regions()}.{did_you_mean(region, spark_regions())}",
                    region,
                )
            ]
        )
    suffix = next((s for p, s in _DNS_SUFFIXES if region.startswith(p)), "amazonaws.com")
    tag = f"{SPARK_VERSION}-cpu-{SPARK_PY_VERSION}-{SPARK_CONTAINER_VERSION}"
    return f"{account}.dkr.ecr.{region}.{suffix}/{SPARK_REPOSITORY}:{tag}"


def is_spark(spec: JobSpec) -> bool:
    """Whether the job fits with the Spark engine (its ``engine`` hyperparameter)."""
    return spec.hyperparameters.get("engine") == "spark"


def driver_files(folder: str | Path | None = None) -> list[Path]:
    """The files uploaded as a Spark job's code: :data:`DRIVER` first, then those of
    :data:`PY_FILES` that exist, from ``folder`` (default: ``smglm/glm/engines/`` of the
    installed package).

    Raises
    ------
    BackendError
        When ``folder`` has no :data:`DRIVER`.
    """
    if folder is None:
        from importlib import resources

        folder = Path(str(resources.files("smglm.glm.engines")))
    base = Path(folder)
    driver = base / DRIVER
    if not driver.is_file():
        raise BackendError(
            f"the Spark driver {DRIVER} is not in {base}: this smglm installation cannot run "
            "engine 'spark' on SageMaker (reinstall smglm, or pass the folder that holds it "
            "as SageMakerBackend(spark_code=...))"
        )
    return [driver, *(base / name for name in PY_FILES if (base / name).is_file())]


@dataclass(frozen=True)
class ProcessingLayout:
    """Where a Spark job's files are in S3: ``<output_path>/<name>/`` + :data:`LAYOUT`."""

    output_path: str
    name: str

    @property
    def prefix(self) -> str:
        return f"{self.output_path.rstrip('/')}/{self.name}/"

    def uri(self, what: str) -> str:
        """The URI of ``what``, a key of :data:`LAYOUT`."""
        return self.prefix + LAYOUT[what]

    @classmethod
    def from_request(cls, request: Mapping[str, Any]) -> ProcessingLayout:
        """The layout of a processing job, from its request or DescribeProcessingJob's answer
        (the output named :data:`OUTPUT_NAME`)."""
        name = str(request["ProcessingJobName"])
        outputs = (request.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        for out in outputs:
            if out.get("OutputName") == OUTPUT_NAME:
                uri = str(out["S3Output"]["S3Uri"])
                tail = f"/{name}/{LAYOUT['driver']}"
                if uri.endswith(tail):
                    return cls(uri[: -len(tail)], name)
        raise BackendError(
            f"processing job {name!r} was not launched by smglm: it has no output "
            f"{OUTPUT_NAME!r} at <output_path>/{name}/{LAYOUT['driver']}"
        )


def job_document(spec: JobSpec, config: Mapping[str, Any]) -> dict[str, Any]:
    """The driver's ``job.json``: the resolved GLMConfig as a dict and the URIs of the
    training and test data (the ``train`` and ``test`` channels), which Spark reads directly.

    Raises
    ------
    ConfigError
        Naming ``channels`` when the spec has no ``train`` channel, and ``hyperparameters``
        when it carries any but ``engine`` and ``aggregate`` (a Spark job takes its whole
        configuration from ``config``).
    """
    issues = []
    train = spec.channel("train")
    if train is None:
        issues.append(
            Issue(
                "channels",
                f"a Spark job needs a 'train' channel; got {[c.name for c in spec.channels]}",
            )
        )
    extra = sorted(set(spec.hyperparameters) - {"engine", "aggregate"})
    if extra:
        issues.append(
            Issue(
                "hyperparameters",
                f"a Spark job takes its configuration from the GLMConfig only; {extra} would "
                "be ignored: set them in the GLMConfig instead",
                extra,
            )
        )
    if issues:
        raise ConfigError(issues)
    assert train is not None
    test = spec.channel("test")
    return {"config": dict(config), "train": train.uri, "test": test.uri if test else None}


def _s3_input(name: str, uri: str, local: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "AppManaged": False,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
            "S3CompressionType": "None",
        },
    }


def processing_request(
    spec: JobSpec, *, image_uri: str, code: list[str] | tuple[str, ...] | None = None
) -> dict[str, Any]:
    """The keyword arguments of boto3's ``create_processing_job`` for a Spark job ``spec``.

    Parameters
    ----------
    spec
        The job, as for a training job: name, role, instance type and count, volume, run-time
        limit, environment, tags; its output path says where the files go (:data:`LAYOUT`).
        Its production settings map onto the processing job's own keys: subnets, security
        groups, network isolation and inter-container encryption onto ``NetworkConfig``,
        ``output_kms_key`` onto ``ProcessingOutputConfig.KmsKeyId``, ``volume_kms_key`` onto
        ``ProcessingResources.ClusterConfig.VolumeKmsKeyId``. ``mlflow_config`` has no place
        in a processing request (the driver is told its MLflow run by ``Environment``);
        ``use_spot`` and ``keep_alive_seconds`` are refused (ConfigError naming them).
    image_uri
        The Spark image (:func:`spark_image_uri` of the job's region).
    code
        The names of the code files uploaded (default: :data:`DRIVER` and :data:`PY_FILES`):
        the first is the Spark application, the others go to ``--py-files``.
    """
    root = PROCESSING_ROOT
    layout = ProcessingLayout(spec.output_path, spec.name)
    files = list(code) if code is not None else [DRIVER, *PY_FILES]
    entry = ["smspark-submit"]
    if files[1:]:
        entry += ["--py-files", ",".join(f"{root}/input/code/{f}" for f in files[1:])]
    entry.append(f"{root}/input/code/{files[0]}")
    request: dict[str, Any] = {
        "ProcessingJobName": spec.name,
        "ProcessingInputs": [
            _s3_input("code", layout.uri("code"), f"{root}/input/code"),
            _s3_input("config", layout.uri("config"), f"{root}/input/config"),
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": OUTPUT_NAME,
                    "AppManaged": False,
                    "S3Output": {
                        "S3Uri": layout.uri("driver"),
                        "LocalPath": f"{root}/output/{OUTPUT_NAME}",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": spec.instance_count,
                "InstanceType": spec.instance_type,
                "VolumeSizeInGB": spec.volume_size_gb,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": spec.max_runtime_seconds},
        "AppSpecification": {
            "ImageUri": image_uri,
            "ContainerEntrypoint": entry,
            "ContainerArguments": [
                "--job",
                f"{root}/input/config/job.json",
                "--out",
                f"{root}/output/{OUTPUT_NAME}",
            ],
        },
        "Environment": dict(spec.environment),
        "Tags": [{"Key": k, "Value": v} for k, v in spec.tags.items()],
    }
    if spec.role_arn:
        request["RoleArn"] = spec.role_arn
    # the production settings, in CreateProcessingJob's shape, only when set
    if spec.use_spot or spec.keep_alive_seconds:
        name = "use_spot" if spec.use_spot else "keep_alive_seconds"
        raise ConfigError(
            [
                Issue(
                    name,
                    "a SageMaker Processing job (engine 'spark') has neither managed spot "
                    f"capacity nor warm pools; got use_spot={spec.use_spot}, "
                    f"keep_alive_seconds={spec.keep_alive_seconds}",
                    getattr(spec, name),
                )
            ]
        )
    if spec.output_kms_key:
        request["ProcessingOutputConfig"]["KmsKeyId"] = spec.output_kms_key
    if spec.volume_kms_key:
        request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] = spec.volume_kms_key
    network: dict[str, Any] = {}
    if spec.inter_container_encryption:
        network["EnableInterContainerTrafficEncryption"] = True
    if spec.network_isolation:
        network["EnableNetworkIsolation"] = True
    if spec.subnets:
        network["VpcConfig"] = {
            "SecurityGroupIds": list(spec.security_group_ids),
            "Subnets": list(spec.subnets),
        }
    if network:
        request["NetworkConfig"] = network
    return request


# -- the state of a processing job, in the training job's words --------------------------------
_SECONDARY = {
    "Completed": "Completed",
    "Failed": "Failed",
    "Stopping": "Stopping",
    "Stopped": "Stopped",
}
_MESSAGES = {
    "Starting": "Launching requested ML instances",
    "Training": "Fitting with Spark (smspark-submit)",
    "Completed": "Processing job completed; artifacts written by spark-finish",
    "Failed": "Processing job failed",
    "Stopping": "Stopping the processing job",
    "Stopped": "The processing job was stopped",
}


def _seconds(start: Any, end: Any) -> int | None:
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        return None
    return max(0, round((end - start).total_seconds()))


def processing_state(
    response: Mapping[str, Any],
    *,
    tags: Mapping[str, str] | None = None,
    model_uri: str | None = None,
    output_uri: str | None = None,
    failure: str | None = None,
) -> JobState:
    """A DescribeProcessingJob answer (or a ListProcessingJobs summary) as a :class:`JobState`.

    ``ProcessingJobStatus`` is the status, except that ``failure`` (the artifacts could not
    be made from a completed job's output) makes it ``Failed``. ``InProgress`` has the
    secondary status ``Starting`` before ``ProcessingStartTime``, ``Training`` after. The
    failure reason is ``FailureReason``, with the container's ``ExitMessage`` when it adds to
    it. Billable seconds are the time from ``ProcessingStartTime`` to ``ProcessingEndTime``
    (per instance, like a training job's). ``raw`` also carries ``ResourceConfig`` and
    ``AlgorithmSpecification.TrainingImage``, so the views that read those find them.
    """
    status = str(response.get("ProcessingJobStatus"))
    reason = response.get("FailureReason")
    exit_message = (response.get("ExitMessage") or "").strip()
    if exit_message and status == "Failed" and exit_message not in (reason or ""):
        reason = f"{reason}: {exit_message}" if reason else exit_message
    if failure:
        status, reason = "Failed", failure
    created = response.get("CreationTime")
    started = response.get("ProcessingStartTime")
    ended = response.get("ProcessingEndTime") if status in _SECONDARY else None
    if status == "InProgress":
        secondary = "Training" if started else "Starting"
    else:
        secondary = _SECONDARY.get(status, status)
    transitions: list[dict[str, Any]] = []
    if created:
        transitions.append({"Status": "Starting", "StartTime": created})
    if started:
        transitions.append({"Status": "Training", "StartTime": started})
    if status != "InProgress" and ended:
        transitions.append({"Status": secondary, "StartTime": ended, "EndTime": ended})
    elif status != "InProgress":
        transitions.append({"Status": secondary, "StartTime": response.get("LastModifiedTime")})
    for before, after in itertools.pairwise(transitions):
        before.setdefault("EndTime", after["StartTime"])
    for t in transitions:
        t["StatusMessage"] = _MESSAGES.get(t["Status"], t["Status"])
    if failure and transitions:
        transitions[-1]["StatusMessage"] = failure
    cluster = (response.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    raw = dict(response)
    if cluster:
        raw["ResourceConfig"] = dict(cluster)
    image = (response.get("AppSpecification") or {}).get("ImageUri")
    if image:
        raw["AlgorithmSpecification"] = {"TrainingImage": image}
    done = status in ("Completed", "Failed", "Stopped")
    return JobState(
        name=str(response.get("ProcessingJobName", "")),
        status=status,
        secondary_status=secondary,
        failure_reason=str(reason) if reason and status != "Completed" else None,
        transitions=tuple(transitions),
        created=created,
        ended=ended,
        model_uri=model_uri if status == "Completed" else None,
        output_uri=output_uri if status == "Completed" else None,
        billable_seconds=_seconds(started, response.get("ProcessingEndTime")) if done else None,
        tags=dict(tags or {}),
        raw=raw,
    )


def read_spec(text: str) -> JobSpec:
    """The JobSpec stored at ``LAYOUT["spec"]`` (its CreateTrainingJob shape, as JSON)."""
    return JobSpec.from_request(json.loads(text))
