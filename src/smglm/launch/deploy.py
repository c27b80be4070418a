"""Deployment: a completed job's model as a real-time endpoint, or run over data as a batch
transform job, on the job's backend.

:meth:`Job.deploy <smglm.launch.job.Job.deploy>` and :meth:`Job.transform
<smglm.launch.job.Job.transform>` call :func:`deploy` and :func:`transform` here. Both read the
job (its ``model.tar.gz``, its image, its role, its network settings) and describe what to
create in the words of SageMaker's API (:class:`ModelPlan`, :class:`EndpointPlan`,
:class:`TransformPlan`, whose ``requests()``/``request()`` are the keyword arguments of
``CreateModel``, ``CreateEndpointConfig``, ``CreateEndpoint`` and ``CreateTransformJob``). The
job's backend carries them out through its :class:`Deployer` (``Backend.deployer()``):

- the sagemaker backend (:class:`SageMakerDeployer`) sends those requests; the endpoint runs
  the job's image with ``serve`` and bills per instance-hour until :meth:`Predictor.delete`;
- the local backend (:class:`LocalDeployer`) does on this machine what SageMaker would: it
  extracts ``model.tar.gz`` into the endpoint's folder (``<home>/endpoints/<name>/model``) and
  starts ``python -m smglm.runtime serve`` there on 127.0.0.1 (a free port), detached, so that
  the endpoint outlives the notebook's kernel as a SageMaker endpoint does; a transform runs
  the same ``serve`` over the data as SageMaker's batch transform does (below).

What both send: :meth:`Predictor.predict` posts the DataFrame as CSV with a header row
(``Content-Type: text/csv; header=present``, the model's columns when known, in requests
under 5 MiB) and reads one prediction per line (``Accept: text/csv``). A batch transform gets
the data as CSV **without** a header (the model's predictors in order, then its exposure or
offset column when the data has it): SageMaker splits the file into lines (``SplitType:
Line``) and packs them into requests of up to ``MaxPayloadInMB`` (``BatchStrategy:
MultiRecord``), so only the first request would see a header. The output is
``<output_path>/<input file>.out``: each request's answer followed by a newline
(``AssembleWith: Line``), which leaves an empty line after each request's predictions (what
AWS's own containers give too); :meth:`TransformJob.result` skips them.

Cost: an endpoint on the sagemaker backend prints what it bills per hour (the instance
price times the count, from :mod:`smglm.launch.pricing`'s table of training prices:
hosting prices are close but not the same) and that it bills until ``delete()``; a transform
bills its instances while it runs; the local backend bills nothing.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from smglm.errors import BackendError, ConfigError, Issue

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from smglm.launch.backend import Backend
    from smglm.launch.job import Job
    from smglm.launch.storage import Storage

__all__ = [
    "DEFAULT_INSTANCE_TYPE",
    "SERVERLESS_MEMORY_MB",
    "Deployer",
    "EndpointPlan",
    "LocalDeployer",
    "ModelPlan",
    "Predictor",
    "SageMakerDeployer",
    "TransformJob",
    "TransformPlan",
    "deploy",
    "list_endpoints",
    "transform",
]

log = logging.getLogger(__name__)

#: The instance type of an endpoint or a transform when none is given.
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
#: The memory sizes a serverless endpoint may have (ServerlessConfig.MemorySizeInMB).
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
#: ServerlessConfig.MaxConcurrency's range.
SERVERLESS_MAX_CONCURRENCY = (1, 200)
#: The largest request :meth:`Predictor.predict` sends (InvokeEndpoint takes up to 6 MB).
REQUEST_BYTES = 5 * 1024 * 1024
#: MaxPayloadInMB of a transform job (SageMaker's default).
TRANSFORM_PAYLOAD_MB = 6
#: The variant name of an endpoint's one production variant (the SDK's too).
VARIANT = "AllTraffic"
CSV = "text/csv"

_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
# Graviton (arm64) families: c7g, m6gd, r8g, c6gn, ... The smglm image is linux/amd64.
_GRAVITON_RE = re.compile(r"^ml\.[a-z]+\d+g[a-z]*\.")


# -- names and checks ---------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def resource_name(base: str, field_: str = "endpoint_name") -> str:
    """A new name for an endpoint or transform job made from ``base`` (a job's name): at most
    63 characters of ``[a-zA-Z0-9-]``, with a random suffix so that deploying twice never
    collides."""
    suffix = secrets.token_hex(3)
    clean = re.sub(r"[^a-zA-Z0-9-]+", "-", base).strip("-") or "smglm"
    head = re.sub(r"-{2,}", "-", clean)[: 63 - len(suffix) - 1].rstrip("-")
    return check_name(f"{head}-{suffix}", field_)


def check_name(name: str, field_: str) -> str:
    """``name`` if SageMaker accepts it for a model, endpoint (config) or transform job."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(
            [
                Issue(
                    field_,
                    f"{name!r} is not allowed: 1-63 characters of [a-zA-Z0-9-], starting and "
                    "ending with a letter or digit, no '--'",
                    name,
                )
            ]
        )
    return name


def _service_enum(shape: str) -> list[str] | None:
    """The values botocore's SageMaker service model allows for ``shape`` (None: no botocore)."""
    try:
        import botocore.session
    except ImportError:
        return None
    try:
        model = botocore.session.get_session().get_service_model("sagemaker")
        return list(model.shape_for(shape).metadata.get("enum") or []) or None
    except Exception:  # an older or newer botocore without the shape: no check
        return None


def check_instance_type(instance_type: str, field_: str, shape: str) -> str:
    """``instance_type`` if SageMaker hosts (``ProductionVariantInstanceType``) or transforms
    (``TransformInstanceType``) on it and the smglm image (linux/amd64) runs there."""
    if not isinstance(instance_type, str) or not instance_type.startswith("ml."):
        raise ConfigError(
            [
                Issue(
                    field_,
                    f"{instance_type!r} is not a SageMaker instance type; use one such as "
                    f"{DEFAULT_INSTANCE_TYPE!r}",
                    instance_type,
                )
            ]
        )
    allowed = _service_enum(shape)
    if allowed is not None and instance_type not in allowed:
        from smglm.errors import did_you_mean

        raise ConfigError(
            [
                Issue(
                    field_,
                    f"{instance_type!r} is not allowed for {shape} (botocore's SageMaker model "
                    f"lists {len(allowed)} types, e.g. {allowed[:4]})."
                    + did_you_mean(instance_type, allowed),
                    instance_type,
                )
            ]
        )
    if _GRAVITON_RE.match(instance_type):
        raise ConfigError(
            [
                Issue(
                    field_,
                    f"{instance_type!r} is a Graviton (arm64) instance and the smglm image is "
                    "linux/amd64; choose an x86 type such as ml.m5.large or ml.c5.large",
                    instance_type,
                )
            ]
        )
    return instance_type


def check_serverless(serverless: dict[str, Any]) -> dict[str, int]:
    """The ``ServerlessConfig`` of ``serverless`` (``{"memory_mb": 2048, "max_concurrency":
    5}``; ``MemorySizeInMB``/``MaxConcurrency`` accepted too)."""
    if not isinstance(serverless, dict):
        raise ConfigError(
            [
                Issue(
                    "serverless",
                    "must be a dict such as {'memory_mb': 2048, 'max_concurrency': 5}; got "
                    f"{serverless!r}",
                    serverless,
                )
            ]
        )
    aliases = {"MemorySizeInMB": "memory_mb", "MaxConcurrency": "max_concurrency"}
    values = {aliases.get(k, k): v for k, v in serverless.items()}
    unknown = sorted(set(values) - {"memory_mb", "max_concurrency"})
    issues = [
        Issue(f"serverless.{k}", f"{k!r} is not allowed; give memory_mb and max_concurrency", k)
        for k in unknown
    ]
    memory = values.get("memory_mb", 2048)
    if memory not in SERVERLESS_MEMORY_MB or isinstance(memory, bool):
        issues.append(
            Issue(
                "serverless.memory_mb",
                f"{memory!r} is not allowed; choose one of {list(SERVERLESS_MEMORY_MB)} "
                "(1024 to 6144 in steps of 1024)",
                memory,
            )
        )
    low, high = SERVERLESS_MAX_CONCURRENCY
    concurrency = values.get("max_concurrency", 5)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool):
        bad = True
    else:
        bad = not low <= concurrency <= high
    if bad:
        issues.append(
            Issue(
                "serverless.max_concurrency",
                f"{concurrency!r} is not allowed; an integer in {low}..{high}",
                concurrency,
            )
        )
    if issues:
        raise ConfigError(issues, source="deploy")
    return {"MemorySizeInMB": int(memory), "MaxConcurrency": int(concurrency)}


def _check_count(count: Any, field_: str) -> int:
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ConfigError(
            [Issue(field_, f"{count!r} is not allowed; an integer of at least 1", count)]
        )
    return count


# -- what to create, in SageMaker's words ------------------------------------------------------
@dataclass(frozen=True)
class ModelPlan:
    """A SageMaker model: the job's image with its ``model.tar.gz`` (``CreateModel``).

    The network settings are the training job's (``subnets``, ``security_group_ids``,
    ``network_isolation``): a model trained inside a VPC is served inside it.
    """

    name: str
    image_uri: str
    model_data_url: str
    role_arn: str | None = None
    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    network_isolation: bool = False
    environment: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def request(self) -> dict[str, Any]:
        """The keyword arguments of boto3's ``create_model``."""
        container: dict[str, Any] = {
            "Image": self.image_uri,
            "ModelDataUrl": self.model_data_url,
            "Mode": "SingleModel",
        }
        if self.environment:
            container["Environment"] = dict(self.environment)
        request: dict[str, Any] = {"ModelName": self.name, "PrimaryContainer": container}
        if self.role_arn:
            request["ExecutionRoleArn"] = self.role_arn
        if self.subnets or self.security_group_ids:
            request["VpcConfig"] = {
                "SecurityGroupIds": list(self.security_group_ids),
                "Subnets": list(self.subnets),
            }
        if self.network_isolation:
            request["EnableNetworkIsolation"] = True
        if self.tags:
            request["Tags"] = _tags(self.tags)
        return request


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


@dataclass(frozen=True)
class EndpointPlan:
    """A real-time endpoint (instances) or a serverless one, serving one model."""

    name: str
    model: ModelPlan
    instance_type: str | None = DEFAULT_INSTANCE_TYPE
    instance_count: int = 1
    serverless: dict[str, int] | None = None
    kms_key: str | None = None

    @property
    def config_name(self) -> str:
        """The endpoint configuration's name (the endpoint's: they are separate resources)."""
        return self.name

    def variant(self) -> dict[str, Any]:
        variant: dict[str, Any] = {"VariantName": VARIANT, "ModelName": self.model.name}
        if self.serverless is not None:
            variant["ServerlessConfig"] = dict(self.serverless)
        else:
            variant["InstanceType"] = self.instance_type
            variant["InitialInstanceCount"] = self.instance_count
            variant["InitialVariantWeight"] = 1.0
        return variant

    def requests(self) -> dict[str, dict[str, Any]]:
        """``{"CreateModel": ..., "CreateEndpointConfig": ..., "CreateEndpoint": ...}``: the
        keyword arguments of each call, in the order they are sent."""
        config: dict[str, Any] = {
            "EndpointConfigName": self.config_name,
            "ProductionVariants": [self.variant()],
        }
        if self.kms_key and self.serverless is None:  # serverless endpoints take none
            config["KmsKeyId"] = self.kms_key
        endpoint: dict[str, Any] = {
            "EndpointName": self.name,
            "EndpointConfigName": self.config_name,
        }
        if self.model.tags:
            config["Tags"] = _tags(self.model.tags)
            endpoint["Tags"] = _tags(self.model.tags)
        return {
            "CreateModel": self.model.request(),
            "CreateEndpointConfig": config,
            "CreateEndpoint": endpoint,
        }


@dataclass(frozen=True)
class TransformPlan:
    """A batch transform job: the model over the CSV files under ``input_uri``."""

    name: str
    model: ModelPlan
    input_uri: str
    output_uri: str
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = 1
    max_payload_mb: int = TRANSFORM_PAYLOAD_MB
    volume_kms_key: str | None = None
    output_kms_key: str | None = None

    def request(self) -> dict[str, Any]:
        """The keyword arguments of boto3's ``create_transform_job``."""
        output: dict[str, Any] = {
            "S3OutputPath": self.output_uri,
            "Accept": CSV,
            "AssembleWith": "Line",
        }
        if self.output_kms_key:
            output["KmsKeyId"] = self.output_kms_key
        resources: dict[str, Any] = {
            "InstanceType": self.instance_type,
            "InstanceCount": self.instance_count,
        }
        if self.volume_kms_key:
            resources["VolumeKmsKeyId"] = self.volume_kms_key
        request: dict[str, Any] = {
            "TransformJobName": self.name,
            "ModelName": self.model.name,
            "MaxPayloadInMB": self.max_payload_mb,
            "BatchStrategy": "MultiRecord",
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": self.input_uri}},
                "ContentType": CSV,
                "CompressionType": "None",
                "SplitType": "Line",
            },
            "TransformOutput": output,
            "TransformResources": resources,
        }
        if self.model.tags:
            request["Tags"] = _tags(self.model.tags)
        return request


# -- the backend's part ------------------------------------------------------------------------
class Deployer(Protocol):
    """What a backend does to deploy (``Backend.deployer()`` returns one)."""

    #: Whether endpoints and transforms bill (the cost line is printed).
    bills: bool
    #: Whether the model's image runs (else the installed smglm serves, whatever the image).
    runs_image: bool
    #: Seconds an endpoint may take to come InService before deploy(wait=True) gives up.
    endpoint_timeout: float
    #: Seconds between looks at an endpoint or a transform.
    poll_seconds: float
    #: The region of the prices (None: no region).
    region: str | None

    def create_endpoint(self, plan: EndpointPlan) -> list[str]:
        """Create the model, the endpoint configuration and the endpoint (returns at once,
        once the endpoint is being created); lines saying what was created."""
        ...

    def endpoint_status(self, name: str) -> tuple[str, str | None]:
        """(``Creating`` | ``InService`` | ``Failed`` | ..., failure reason)."""
        ...

    def invoke(self, name: str, body: bytes, content_type: str, accept: str) -> bytes:
        """POST ``body`` to the endpoint's ``/invocations``; the response body."""
        ...

    def delete_endpoint(self, name: str) -> list[str]:
        """Delete the endpoint, its configuration and its model (what is already gone is
        skipped); one line per step."""
        ...

    def list_endpoints(self) -> list[dict[str, Any]]:
        """The endpoints, newest first, as ListEndpoints' summaries (``EndpointName``,
        ``EndpointStatus``, ``CreationTime``)."""
        ...

    def start_transform(self, plan: TransformPlan) -> list[str]:
        """Create the model and the transform job (returns at once)."""
        ...

    def transform_status(self, name: str) -> tuple[str, str | None]:
        """(``InProgress`` | ``Completed`` | ``Failed`` | ``Stopped``, failure reason)."""
        ...

    def end_transform(self, name: str, model_name: str) -> list[str]:
        """After the transform has ended: delete the model made for it."""
        ...

    def storage(self, uri: str) -> Storage:
        """The storage that reads and writes ``uri`` (with the backend's credentials)."""
        ...

    def transform_input_base(self, job: Job) -> str:
        """Where a transform's data is uploaded (``<base>/inputs/<hash>/``)."""
        ...


# -- what the user holds -----------------------------------------------------------------------
class Predictor:
    """A deployed endpoint: send it data, read its predictions, delete it.

    Attributes
    ----------
    endpoint_name
        The endpoint's name (also its configuration's and its model's).
    columns
        The columns :meth:`predict` sends (the model's predictors and its exposure or offset
        column), or None to send every column of the DataFrame.
    """

    def __init__(
        self, endpoint_name: str, deployer: Deployer, *, columns: list[str] | None = None
    ) -> None:
        self.endpoint_name = endpoint_name
        self.deployer = deployer
        self.columns = columns
        self._deleted = False

    @classmethod
    def attach(
        cls, endpoint_name: str, backend: str | Backend | None = None, **options: Any
    ) -> Predictor:
        """The predictor of an existing endpoint (e.g. after a kernel restart), on ``backend``
        (a name, with its options, or a backend; default: the default backend)."""
        from smglm.launch.backend import DEFAULT_BACKEND, get_backend

        backend = DEFAULT_BACKEND if backend is None else backend

        be = get_backend(backend, **options) if isinstance(backend, str) else backend
        predictor = cls(endpoint_name, be.deployer())
        _ = predictor.status  # raises when there is no such endpoint
        return predictor

    @property
    def status(self) -> str:
        """The endpoint's status: ``Creating``, ``InService``, ``Failed``, ``Deleting``..."""
        return self.deployer.endpoint_status(self.endpoint_name)[0]

    def wait(self, timeout: float | None = None, *, out: TextIO | None = None) -> Predictor:
        """Wait until the endpoint is ``InService`` (at most ``timeout`` seconds; default: the
        backend's bound). Raises BackendError when it failed, TimeoutError when it is still
        not in service (it still exists then, and bills: :meth:`delete` it)."""
        stream = out or sys.stdout
        limit = self.deployer.endpoint_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        last = None
        while True:
            status, reason = self.deployer.endpoint_status(self.endpoint_name)
            if status != last:
                stream.write(f"[smglm] endpoint {self.endpoint_name}: {status}\n")
                stream.flush()
                last = status
            if status == "InService":
                return self
            if status in ("Failed", "OutOfService", "Deleting"):
                raise BackendError(
                    f"endpoint {self.endpoint_name!r} is {status}: {reason or 'no reason given'}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"endpoint {self.endpoint_name!r} is still {status} after {limit:g} s; it "
                    "exists (and bills once in service): wait again with predictor.wait(), or "
                    "remove it with predictor.delete()"
                )
            time.sleep(self.deployer.poll_seconds)

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        """The predicted means of ``data``'s rows, as the model's ``predict`` gives them.

        The rows go as CSV with a header (the model's columns; an exposure or offset column
        that ``data`` lacks means predictions per unit of exposure), in requests of at most
        5 MiB; the predictions come back as one number per line.
        """
        import numpy as np
        import pandas as pd

        if not isinstance(data, pd.DataFrame):
            raise ConfigError(
                [Issue("data", f"must be a pandas DataFrame; got {type(data).__name__}")]
            )
        frame = data
        if self.columns is not None:
            frame = data[[c for c in self.columns if c in data.columns]]
        if len(frame) == 0:
            return np.empty(0)
        parts = []
        for chunk in _chunks(frame, REQUEST_BYTES):
            body = chunk.to_csv(index=False).encode("utf-8")
            answer = self.deployer.invoke(self.endpoint_name, body, f"{CSV}; header=present", CSV)
            values = _parse_predictions(answer)
            if len(values) != len(chunk):
                raise BackendError(
                    f"endpoint {self.endpoint_name!r} answered {len(values)} prediction(s) for "
                    f"{len(chunk)} row(s)"
                )
            parts.append(values)
        return np.concatenate(parts)

    def invoke(self, body: bytes | str, content_type: str = CSV, accept: str = CSV) -> bytes:
        """Send ``body`` as is (any format ``serve`` reads: CSV, JSON, JSON lines); the raw
        answer."""
        raw = body.encode("utf-8") if isinstance(body, str) else body
        return self.deployer.invoke(self.endpoint_name, raw, content_type, accept)

    def delete(self, *, out: TextIO | None = None) -> list[str]:
        """Delete the endpoint, its configuration and its model (the endpoint stops billing).
        Safe to call again: what is gone already is skipped. Returns (and prints) one line
        per step."""
        stream = out or sys.stdout
        steps = self.deployer.delete_endpoint(self.endpoint_name)
        for line in steps:
            stream.write(f"[smglm] {line}\n")
        stream.flush()
        self._deleted = True
        return steps

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        """``with job.deploy() as predictor:`` deletes the endpoint when the block ends, even
        when it ends on an error (an endpoint bills until it is deleted)."""
        if not self._deleted:
            self.delete()

    def __repr__(self) -> str:
        return f"Predictor({self.endpoint_name!r})"


def _chunks(frame: pd.DataFrame, limit: int) -> list[pd.DataFrame]:
    """``frame`` cut into pieces whose CSV is under ``limit`` bytes (estimated from a sample)."""
    sample = frame.head(200).to_csv(index=False).encode("utf-8")
    per_row = max(1.0, len(sample) / max(1, min(len(frame), 200)))
    rows = max(1, int(limit * 0.8 / per_row))
    return [frame.iloc[i : i + rows] for i in range(0, len(frame), rows)]


def _parse_predictions(body: bytes) -> np.ndarray:
    import numpy as np

    text = body.decode("utf-8")
    try:
        return np.array([float(v) for v in text.split()], dtype=float)
    except ValueError:
        raise BackendError(
            f"the endpoint's answer is not one number per line: {text[:200]!r}"
        ) from None


class TransformJob:
    """A batch transform job: its status, waiting for it, and its predictions.

    Attributes
    ----------
    name
        The transform job's name.
    output_uri
        Where its ``<input file>.out`` files go.
    """

    def __init__(
        self,
        plan: TransformPlan,
        deployer: Deployer,
        *,
        files: list[str],
        index: pd.Index | None = None,
    ) -> None:
        self.plan = plan
        self.name = plan.name
        self.output_uri = plan.output_uri
        self.deployer = deployer
        self.files = files
        self.index = index
        self._ended = False

    @property
    def status(self) -> str:
        """``InProgress``, ``Completed``, ``Failed``, ``Stopping`` or ``Stopped``."""
        return self.deployer.transform_status(self.name)[0]

    @property
    def failure_reason(self) -> str | None:
        return self.deployer.transform_status(self.name)[1]

    def wait(self, timeout: float | None = 3600, *, out: TextIO | None = None) -> TransformJob:
        """Wait until the job ends (at most ``timeout`` seconds); BackendError when it did
        not complete. The model made for the job is then deleted."""
        stream = out or sys.stdout
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            status, reason = self.deployer.transform_status(self.name)
            if status != last:
                stream.write(f"[smglm] transform {self.name}: {status}\n")
                stream.flush()
                last = status
            if status in ("Completed", "Failed", "Stopped"):
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"transform job {self.name!r} still {status} after {timeout} s")
            time.sleep(self.deployer.poll_seconds)
        if not self._ended:
            self._ended = True
            for line in self.deployer.end_transform(self.name, self.plan.model.name):
                stream.write(f"[smglm] {line}\n")
        if status != "Completed":
            raise BackendError(
                f"transform job {self.name!r} {status}: {reason or 'no reason given'}"
            )
        return self

    def result(self) -> pd.Series:
        """The predictions, in the order of the input rows (the DataFrame's index when a
        DataFrame was given), read from the ``.out`` files; waits for the job first."""
        import numpy as np
        import pandas as pd

        self.wait(out=io.StringIO())
        parts = []
        for uri in self.files:
            rel = uri[len(self.plan.input_uri.rstrip("/")) :].lstrip("/") or uri.rsplit("/", 1)[-1]
            out = f"{self.output_uri.rstrip('/')}/{rel}.out"
            storage = self.deployer.storage(out)
            import tempfile

            with tempfile.TemporaryDirectory(prefix="smglm-transform-") as tmp:
                path = storage.download_file(out, Path(tmp) / "part.out")
                parts.append(_parse_predictions(path.read_bytes()))
        values = np.concatenate(parts) if parts else np.empty(0)
        index = self.index
        if index is not None and len(index) != len(values):
            raise BackendError(
                f"transform job {self.name!r} wrote {len(values)} prediction(s) for "
                f"{len(index)} row(s) under {self.output_uri}"
            )
        return pd.Series(values, index=index, name="prediction")

    def __repr__(self) -> str:
        return f"TransformJob({self.name!r})"


# -- the calls ---------------------------------------------------------------------------------
def _completed(job: Job, action: str) -> Any:
    state = job.state()
    if state.status != "Completed" or not state.model_uri:
        raise ConfigError(
            [
                Issue(
                    "job",
                    f"{action} needs a Completed job with a model; job {job.name!r} is "
                    f"{state.status}"
                    + (f" ({state.failure_reason})" if state.failure_reason else ""),
                    state.status,
                )
            ]
        )
    return state


def _model_plan(
    job: Job, name: str, model_uri: str, image_uri: str | None, deployer: Deployer
) -> ModelPlan:
    from smglm.launch.processing import is_spark

    spec = job.spec()
    if image_uri is None and is_spark(spec) and deployer.runs_image:
        raise ConfigError(
            [
                Issue(
                    "image_uri",
                    f"job {job.name!r} ran on AWS's Spark image, which has no `serve`: pass "
                    "image_uri= (the smglm image the model is served with)",
                )
            ]
        )
    user_tags = {k: v for k, v in spec.tags.items() if not k.startswith("smglm.")}
    return ModelPlan(
        name=name,
        image_uri=image_uri or spec.image_uri,
        model_data_url=model_uri,
        role_arn=spec.role_arn,
        # the training job's network settings (JobSpec fields of the production settings)
        subnets=spec.subnets,
        security_group_ids=spec.security_group_ids,
        network_isolation=spec.network_isolation,
        tags={**user_tags, "smglm.job_name": job.name},
    )


def _model_columns(job: Job) -> tuple[list[str], str | None]:
    """The model's predictors, and its exposure or offset column (None: neither)."""
    model = job.model.model
    return list(model.input_columns), (model.offset or model.exposure)


def _cost_line(deployer: Deployer, what: str, instance_type: str, count: int) -> str | None:
    from smglm.launch import pricing

    if not deployer.bills:
        return None
    table = pricing.prices(deployer.region)
    price = table.per_hour(instance_type)
    if price is None:
        return (
            f"{what}: {instance_type} x {count}: no price known for {instance_type!r} (not in "
            f"{table.label}); see the SageMaker AI pricing page"
        )
    where = f"{table.region}, {table.label}"
    if deployer.region and deployer.region != table.region:
        where = f"{table.region}; {deployer.region} may differ; {table.label}"
    return (
        f"{what}: {instance_type} x {count} at about ${price * count:.3f}/h (on-demand "
        f"training-instance price, {where}; hosting prices are close)"
    )


def deploy(
    job: Job,
    *,
    instance_type: str | None = None,
    initial_instance_count: int = 1,
    serverless: dict[str, Any] | None = None,
    endpoint_name: str | None = None,
    image_uri: str | None = None,
    wait: bool = True,
    timeout: float | None = None,
    out: TextIO | None = None,
) -> Predictor:
    """Serve a Completed job's model on an endpoint of the job's backend (see
    :meth:`Job.deploy <smglm.launch.job.Job.deploy>`)."""
    stream = out or sys.stdout
    state = _completed(job, "deploy")
    name = check_name(endpoint_name, "endpoint_name") if endpoint_name else resource_name(job.name)
    config = None
    if serverless is not None:
        if instance_type is not None:
            raise ConfigError(
                [
                    Issue(
                        "instance_type",
                        f"{instance_type!r} with serverless=: a serverless endpoint has no "
                        "instances; give one or the other",
                        instance_type,
                    )
                ]
            )
        config = check_serverless(serverless)
        kind = None
        count = 1
    else:
        kind = check_instance_type(
            instance_type or DEFAULT_INSTANCE_TYPE, "instance_type", "ProductionVariantInstanceType"
        )
        count = _check_count(initial_instance_count, "initial_instance_count")
    deployer = job.backend.deployer()
    model = _model_plan(job, name, state.model_uri, image_uri, deployer)
    spec = job.spec()
    plan = EndpointPlan(
        name=name,
        model=model,
        instance_type=kind,
        instance_count=count,
        serverless=config,
        kms_key=spec.volume_kms_key,
    )
    try:
        predicted, extra = _model_columns(job)
        columns: list[str] | None = [*predicted, *([extra] if extra else [])]
    except Exception as exc:  # the columns are an optimisation: every column is sent then
        log.info("model columns of %s not read: %s", job.name, exc)
        columns = None
    if kind is not None:
        line = _cost_line(deployer, f"endpoint {name}", kind, count)
        if line:
            stream.write(f"[smglm] {line}; it bills until predictor.delete()\n")
    elif deployer.bills and config is not None:
        stream.write(
            f"[smglm] serverless endpoint {name}: {config['MemorySizeInMB']} MB, billed per "
            "request (compute time x memory) while it exists; predictor.delete() removes it\n"
        )
    for line in deployer.create_endpoint(plan):
        stream.write(f"[smglm] {line}\n")
    stream.flush()
    predictor = Predictor(name, deployer, columns=columns)
    if wait:
        try:
            predictor.wait(timeout, out=stream)
        except BackendError:
            predictor.delete(out=stream)  # a failed endpoint serves nothing: remove it
            raise
    return predictor


def transform(
    job: Job,
    data: Any,
    *,
    instance_type: str | None = None,
    instance_count: int = 1,
    output_path: str | None = None,
    transform_name: str | None = None,
    image_uri: str | None = None,
    wait: bool = True,
    timeout: float | None = 3600,
    out: TextIO | None = None,
) -> TransformJob:
    """Run a Completed job's model over ``data`` as a batch transform job (see
    :meth:`Job.transform <smglm.launch.job.Job.transform>`)."""
    import pandas as pd

    stream = out or sys.stdout
    state = _completed(job, "transform")
    kind = check_instance_type(
        instance_type or DEFAULT_INSTANCE_TYPE, "instance_type", "TransformInstanceType"
    )
    count = _check_count(instance_count, "instance_count")
    name = (
        check_name(transform_name, "transform_name")
        if transform_name
        else resource_name(job.name, "transform_name")
    )
    deployer = job.backend.deployer()
    spec = job.spec()
    index = None
    if isinstance(data, pd.DataFrame):
        predicted, extra = _model_columns(job)
        missing = [c for c in predicted if c not in data.columns]
        if missing:
            raise ConfigError(
                [
                    Issue(
                        "data",
                        f"the model's predictor column(s) {missing} are not in the data; it has "
                        f"{list(data.columns)[:20]}",
                    )
                ]
            )
        columns = [*predicted, *([extra] if extra and extra in data.columns else [])]
        if len(data) == 0:
            raise ConfigError([Issue("data", "the DataFrame has no rows to transform", 0)])
        body = data[columns].to_csv(index=False, header=False).encode("utf-8")
        input_uri = _upload_csv(deployer, deployer.transform_input_base(job), body)
        files = [f"{input_uri}transform.csv"]
        index = data.index
    elif isinstance(data, str) and data.startswith(("s3://", "file://")):
        input_uri = data
        files = _list_inputs(deployer, data)
    else:
        path = Path(data)
        if not path.is_file():
            raise ConfigError(
                [
                    Issue(
                        "data",
                        "must be a DataFrame, an s3:// or file:// URI of headerless CSV files, "
                        f"or a CSV file on this machine; got {data!r}",
                        str(data),
                    )
                ]
            )
        input_uri = _upload_csv(deployer, deployer.transform_input_base(job), path.read_bytes())
        files = [f"{input_uri}transform.csv"]
    output = (output_path or f"{spec.output_path.rstrip('/')}/{job.name}/transform/{name}").rstrip(
        "/"
    ) + "/"
    plan = TransformPlan(
        name=name,
        model=_model_plan(job, name, state.model_uri, image_uri, deployer),
        input_uri=input_uri,
        output_uri=output,
        instance_type=kind,
        instance_count=count,
        volume_kms_key=spec.volume_kms_key,
        output_kms_key=spec.output_kms_key,
    )
    line = _cost_line(deployer, f"transform {name}", kind, count)
    if line:
        stream.write(f"[smglm] {line}, while it runs\n")
    for text in deployer.start_transform(plan):
        stream.write(f"[smglm] {text}\n")
    stream.flush()
    handle = TransformJob(plan, deployer, files=files, index=index)
    if wait:
        handle.wait(timeout, out=stream)
    return handle


def _upload_csv(deployer: Deployer, base: str, body: bytes) -> str:
    """``body`` at ``<base>/inputs/<hash>/transform.csv`` (uploaded once); the folder's URI."""
    from smglm.launch.storage import hash_bytes

    digest = hash_bytes(body)[:20]
    folder = f"{base.rstrip('/')}/inputs/{digest}/"
    uri = f"{folder}transform.csv"
    storage = deployer.storage(uri)
    if not storage.exists(uri):
        storage.upload_bytes(body, uri)
    return folder


def _list_inputs(deployer: Deployer, uri: str) -> list[str]:
    """The files under ``uri`` a transform reads, by key (nothing is downloaded)."""
    from smglm.launch.storage import S3Storage, file_path, split_s3

    storage = deployer.storage(uri)
    if isinstance(storage, S3Storage):
        bucket, prefix = split_s3(uri)
        keys: list[str] = []
        for page in storage.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
        found = [f"s3://{bucket}/{k}" for k in sorted(keys)]
    else:
        path = file_path(uri)
        if path.is_file():
            found = [uri]
        else:
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
            found = [f"{uri.rstrip('/')}/{p.relative_to(path).as_posix()}" for p in files]
    if not found:
        raise ConfigError([Issue("data", f"no files to transform under {uri!r}", uri)])
    return found


def list_endpoints(backend: str | Backend | None = None, **options: Any) -> list[dict[str, Any]]:
    """The endpoints of ``backend`` (default: the default backend), newest first: name,
    status, creation time."""
    from smglm.launch.backend import DEFAULT_BACKEND, get_backend

    backend = DEFAULT_BACKEND if backend is None else backend

    be = get_backend(backend, **options) if isinstance(backend, str) else backend
    return be.deployer().list_endpoints()


# -- SageMaker ---------------------------------------------------------------------------------
class SageMakerDeployer:
    """Endpoints and transform jobs on SageMaker, through the backend's boto3 session."""

    bills = True
    runs_image = True
    endpoint_timeout = 1800.0
    poll_seconds = 5.0

    def __init__(self, client: Any, runtime: Any, s3: Any, region: str | None) -> None:
        self.client = client
        self.runtime = runtime
        self.s3 = s3
        self.region = region

    def storage(self, uri: str) -> Storage:
        from smglm.launch.storage import open_storage

        return open_storage(uri, s3_client=self.s3)

    def transform_input_base(self, job: Job) -> str:
        return _input_base(job)

    def _check(self, plan_model: ModelPlan) -> None:
        if not plan_model.role_arn:
            raise ConfigError(
                [
                    Issue(
                        "role",
                        "a SageMaker model needs an execution role and the job's request has "
                        "none: deploy a job launched with role=",
                    )
                ]
            )
        if not plan_model.model_data_url.startswith("s3://"):
            raise ConfigError(
                [
                    Issue(
                        "model_data_url",
                        "SageMaker reads models from s3:// only; got "
                        f"{plan_model.model_data_url!r}",
                        plan_model.model_data_url,
                    )
                ]
            )

    def _request(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        """``request`` with the SageMaker SDK config's defaults for ``operation`` (an admin's
        KMS key, VPC or tags for models, endpoints and transforms); says what it applied."""
        from smglm.launch.sdk_config import hosting_defaults

        request, notes = hosting_defaults(operation, request)
        for note in notes:
            print(f"[smglm] {note}")
        return request

    def _create_model(self, model: ModelPlan) -> str:
        from smglm.launch.aws import aws_call

        with aws_call(f"CreateModel {model.name}"):
            self.client.create_model(**self._request("CreateModel", model.request()))
        return f"created model {model.name} ({model.image_uri}, {model.model_data_url})"

    def create_endpoint(self, plan: EndpointPlan) -> list[str]:
        from smglm.launch.aws import aws_call

        self._check(plan.model)
        requests = plan.requests()
        steps = [self._create_model(plan.model)]
        made = [("model", self.client.delete_model, "ModelName")]
        try:
            with aws_call(f"CreateEndpointConfig {plan.config_name}"):
                self.client.create_endpoint_config(
                    **self._request("CreateEndpointConfig", requests["CreateEndpointConfig"])
                )
            steps.append(f"created endpoint configuration {plan.config_name}")
            made.append(
                ("endpoint configuration", self.client.delete_endpoint_config, "EndpointConfigName")
            )
            with aws_call(f"CreateEndpoint {plan.name}"):
                self.client.create_endpoint(
                    **self._request("CreateEndpoint", requests["CreateEndpoint"])
                )
            steps.append(f"created endpoint {plan.name}")
        except BackendError:
            # leave nothing half made, and never touch what existed before (a name in use)
            for what, call, key in reversed(made):
                with contextlib.suppress(BackendError):
                    log.info("%s", self._delete(what, call, key, plan.name))
            raise
        return steps

    def endpoint_status(self, name: str) -> tuple[str, str | None]:
        from smglm.launch.aws import aws_call

        with aws_call(f"DescribeEndpoint {name}"):
            resp = self.client.describe_endpoint(EndpointName=name)
        return str(resp["EndpointStatus"]), resp.get("FailureReason")

    def invoke(self, name: str, body: bytes, content_type: str, accept: str) -> bytes:
        from smglm.launch.aws import aws_call

        with aws_call(f"InvokeEndpoint {name}"):
            resp = self.runtime.invoke_endpoint(
                EndpointName=name, Body=body, ContentType=content_type, Accept=accept
            )
        data: bytes = resp["Body"].read()
        return data

    def delete_endpoint(self, name: str) -> list[str]:
        steps = []
        for what, call, key in (
            ("endpoint", self.client.delete_endpoint, "EndpointName"),
            ("endpoint configuration", self.client.delete_endpoint_config, "EndpointConfigName"),
            ("model", self.client.delete_model, "ModelName"),
        ):
            steps.append(self._delete(what, call, key, name))
        return steps

    def _delete(self, what: str, call: Any, key: str, name: str) -> str:
        from smglm.launch.aws import AwsError, aws_call

        action = "Delete" + "".join(w.title() for w in what.split())
        try:
            with aws_call(f"{action} {name}"):
                call(**{key: name})
        except AwsError as exc:
            if exc.code == "ValidationException" and "not find" in exc.aws_message.lower():
                return f"{what} {name}: already gone"
            raise
        return f"deleted {what} {name}"

    def list_endpoints(self) -> list[dict[str, Any]]:
        from smglm.launch.aws import aws_call

        with aws_call("ListEndpoints"):
            resp = self.client.list_endpoints(
                SortBy="CreationTime", SortOrder="Descending", MaxResults=100
            )
        rows: list[dict[str, Any]] = resp.get("Endpoints", [])
        return rows

    def start_transform(self, plan: TransformPlan) -> list[str]:
        from smglm.launch.aws import aws_call

        self._check(plan.model)
        steps = [self._create_model(plan.model)]
        try:
            with aws_call(f"CreateTransformJob {plan.name}"):
                self.client.create_transform_job(
                    **self._request("CreateTransformJob", plan.request())
                )
        except BackendError:
            self._delete("model", self.client.delete_model, "ModelName", plan.model.name)
            raise
        steps.append(f"created transform job {plan.name} -> {plan.output_uri}")
        return steps

    def transform_status(self, name: str) -> tuple[str, str | None]:
        from smglm.launch.aws import aws_call

        with aws_call(f"DescribeTransformJob {name}"):
            resp = self.client.describe_transform_job(TransformJobName=name)
        return str(resp["TransformJobStatus"]), resp.get("FailureReason")

    def end_transform(self, name: str, model_name: str) -> list[str]:
        return [self._delete("model", self.client.delete_model, "ModelName", model_name)]


def _input_base(job: Job) -> str:
    """Where a job's inputs went: the base before ``/inputs/`` of its data channel (where
    :mod:`smglm.launch.inputs` put them), else the job's output path."""
    spec = job.spec()
    for channel in spec.channels:
        if "/inputs/" in channel.uri:
            return channel.uri.split("/inputs/", 1)[0]
    return spec.output_path.rstrip("/")


# -- this machine ------------------------------------------------------------------------------
_LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")
#: The serve processes of local endpoints this process started (by folder): kept to be reaped.
_SERVERS: dict[str, subprocess.Popen[bytes]] = {}
#: The threads running this process's local transforms (by folder).
_THREADS: dict[str, threading.Thread] = {}


class LocalDeployer:
    """Endpoints and transforms on this machine: ``python -m smglm.runtime serve`` on
    127.0.0.1, as SageMaker runs the image's ``serve`` (module docstring).

    An endpoint's folder ``<home>/endpoints/<name>/`` holds ``state.json`` (its status and
    port, and the requests SageMaker would have received), ``model/`` (``model.tar.gz``
    extracted), ``serve.log`` and ``serve.pid`` (pid and start time: only that very process is
    ever signalled). A transform runs in a thread of this process, its state in
    ``<home>/transforms/<name>/state.json``.
    """

    bills = False
    runs_image = False
    endpoint_timeout = 120.0
    poll_seconds = 0.1
    region = None

    def __init__(self, home: Path, python: str | None = None) -> None:
        self.home = Path(home)
        self.python = python or sys.executable

    # -- storage -----------------------------------------------------------------------------
    def storage(self, uri: str) -> Storage:
        from smglm.launch.storage import open_storage

        return open_storage(uri)

    def transform_input_base(self, job: Job) -> str:
        return _input_base(job)

    # -- endpoints ---------------------------------------------------------------------------
    def _folder(self, name: str) -> Path:
        return self.home / "endpoints" / name

    def _state(self, name: str) -> dict[str, Any]:
        path = self._folder(name) / "state.json"
        try:
            state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            known = [e["EndpointName"] for e in self.list_endpoints()]
            raise BackendError(
                f"no local endpoint named {name!r} under {self.home / 'endpoints'}; "
                f"endpoints: {known}"
            ) from None
        return state

    def _write(self, name: str, state: dict[str, Any]) -> None:
        from smglm.launch.local import write_json_atomic

        write_json_atomic(self._folder(name) / "state.json", state)

    def _serve(
        self, model_dir: Path, log_path: Path, env: dict[str, str], folder: Path
    ) -> subprocess.Popen[bytes]:
        """``python -m smglm.runtime serve`` on 127.0.0.1, a free port, one worker; in a
        session of its own (it outlives the notebook's kernel, as an endpoint does)."""
        cmd = [
            self.python,
            "-m",
            "smglm.runtime",
            "serve",
            "--model-dir",
            str(model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--workers",
            "1",
        ]
        with open(log_path, "ab") as f:
            return subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
                cwd=str(folder),
                start_new_session=True,
                env={**os.environ, **env},
            )

    def _extract_model(self, model_data_url: str, folder: Path) -> Path:
        import tempfile

        from smglm.launch.storage import extract_tar

        with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as tmp:
            archive = self.storage(model_data_url).download_file(
                model_data_url, Path(tmp) / "model.tar.gz"
            )
            extract_tar(archive, folder / "model", replace=True)
        return folder / "model"

    def create_endpoint(self, plan: EndpointPlan) -> list[str]:
        from smglm.launch.local import private_dir
        from smglm.launch.processes import record_process

        folder = self._folder(plan.name)
        if (folder / "state.json").exists():
            raise ConfigError(
                [
                    Issue(
                        "endpoint_name",
                        f"an endpoint named {plan.name!r} exists already ({folder}); choose "
                        "another name or delete it first",
                        plan.name,
                    )
                ]
            )
        private_dir(folder.parent)
        private_dir(folder)
        state: dict[str, Any] = {
            "EndpointName": plan.name,
            "EndpointArn": f"arn:smglm:local:endpoint/{plan.name}",
            "EndpointStatus": "Creating",
            "CreationTime": _now(),
            "ModelDataUrl": plan.model.model_data_url,
            "Requests": plan.requests(),
        }
        self._write(plan.name, state)
        try:
            model_dir = self._extract_model(plan.model.model_data_url, folder)
        except BackendError as exc:
            state.update(EndpointStatus="Failed", FailureReason=str(exc))
            self._write(plan.name, state)
            raise
        proc = self._serve(model_dir, folder / "serve.log", {}, folder)
        record_process(folder / "serve.pid", proc.pid)
        _SERVERS[str(folder)] = proc
        state["Pid"] = proc.pid
        self._write(plan.name, state)
        return [
            f"local endpoint {plan.name}: serving {plan.model.model_data_url} "
            f"(python -m smglm.runtime serve, pid {proc.pid}; log {folder / 'serve.log'})"
        ]

    def endpoint_status(self, name: str) -> tuple[str, str | None]:
        from smglm.launch.processes import read_recorded

        state = self._state(name)
        status = state["EndpointStatus"]
        if status not in ("Creating", "InService"):
            return status, state.get("FailureReason")
        folder = self._folder(name)
        process = read_recorded(folder / "serve.pid")
        running = process is not None and process.running()
        if not running:
            reason = "the serve process ended: " + _tail(folder / "serve.log")
            state.update(EndpointStatus="Failed", FailureReason=reason)
            self._write(name, state)
            return "Failed", reason
        if status == "Creating":
            match = _LISTENING.search(_read(folder / "serve.log"))
            if match and _ping(int(match.group(1))):
                state.update(EndpointStatus="InService", Port=int(match.group(1)))
                self._write(name, state)
                return "InService", None
        return status, None

    def invoke(self, name: str, body: bytes, content_type: str, accept: str) -> bytes:
        state = self._state(name)
        if state["EndpointStatus"] != "InService":
            status, reason = self.endpoint_status(name)
            if status != "InService":
                raise BackendError(
                    f"endpoint {name!r} is {status}, not InService"
                    + (f": {reason}" if reason else "")
                )
            state = self._state(name)
        conn = http.client.HTTPConnection("127.0.0.1", int(state["Port"]), timeout=70)
        try:
            conn.request(
                "POST",
                "/invocations",
                body=body,
                headers={"Content-Type": content_type, "Accept": accept},
            )
            resp = conn.getresponse()
            data = resp.read()
        except OSError as exc:
            raise BackendError(f"endpoint {name!r} did not answer: {exc}") from None
        finally:
            conn.close()
        if resp.status != 200:
            text = data.decode("utf-8", errors="replace")[:1000]
            raise BackendError(
                f"endpoint {name!r} answered {resp.status} (ModelError on SageMaker): {text}"
            )
        return data

    def delete_endpoint(self, name: str) -> list[str]:
        folder = self._folder(name)
        if not (folder / "state.json").exists():
            return [f"local endpoint {name}: already gone"]
        state = self._state(name)
        steps = [_stop_recorded(folder / "serve.pid", f"local endpoint {name}")]
        proc = _SERVERS.pop(str(folder), None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        if state.get("Port"):
            steps[-1] += f" (port {state['Port']} freed)"
        shutil.rmtree(folder, ignore_errors=True)
        steps.append(f"removed {folder} (the endpoint, its configuration and its model)")
        return steps

    def list_endpoints(self) -> list[dict[str, Any]]:
        root = self.home / "endpoints"
        rows = []
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            if (folder / "state.json").exists():
                with contextlib.suppress(BackendError, OSError, ValueError, KeyError):
                    status, _ = self.endpoint_status(folder.name)
                    state = self._state(folder.name)
                    rows.append(
                        {
                            "EndpointName": folder.name,
                            "EndpointStatus": status,
                            "CreationTime": state.get("CreationTime"),
                        }
                    )
        rows.sort(key=lambda r: str(r["CreationTime"]), reverse=True)
        return rows

    # -- transforms --------------------------------------------------------------------------
    def _tfolder(self, name: str) -> Path:
        return self.home / "transforms" / name

    def start_transform(self, plan: TransformPlan) -> list[str]:
        from smglm.launch.local import private_dir, write_json_atomic

        folder = self._tfolder(plan.name)
        if folder.exists():
            raise ConfigError(
                [
                    Issue(
                        "transform_name",
                        f"a transform job named {plan.name!r} exists already ({folder})",
                        plan.name,
                    )
                ]
            )
        private_dir(folder.parent)
        private_dir(folder)
        write_json_atomic(
            folder / "state.json",
            {
                "TransformJobName": plan.name,
                "TransformJobStatus": "InProgress",
                "CreationTime": _now(),
                "Request": plan.request(),
                "ModelDataUrl": plan.model.model_data_url,
            },
        )
        thread = threading.Thread(
            target=self._run_transform,
            args=(plan, folder),
            name=f"transform-{plan.name}",
            daemon=True,
        )
        _THREADS[str(folder)] = thread
        thread.start()
        return [f"local transform {plan.name}: {plan.input_uri} -> {plan.output_uri}"]

    def _run_transform(self, plan: TransformPlan, folder: Path) -> None:
        from smglm.launch.local import read_json, write_json_atomic

        status, reason = "Completed", None
        try:
            self._transform(plan, folder)
        except Exception as exc:
            status, reason = "Failed", f"ClientError: {exc}"
        state = read_json(folder / "state.json")
        state.update(TransformJobStatus=status, TransformEndTime=_now())
        if reason:
            state["FailureReason"] = reason[:1024]
        write_json_atomic(folder / "state.json", state)

    def _transform(self, plan: TransformPlan, folder: Path) -> None:
        """What SageMaker's batch transform does: the model extracted, ``serve`` started (with
        ``SAGEMAKER_BATCH``), each input file split into lines and sent in requests of up to
        ``MaxPayloadInMB``, each answer followed by a newline into ``<file>.out``."""
        import tempfile

        model_dir = self._extract_model(plan.model.model_data_url, folder)
        env = {
            "SAGEMAKER_BATCH": "true",
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(plan.max_payload_mb),
            "SAGEMAKER_BATCH_STRATEGY": "MULTI_RECORD",
        }
        log_path = folder / "serve.log"
        proc = self._serve(model_dir, log_path, env, folder)
        try:
            port = _wait_listening(proc, log_path, self.endpoint_timeout)
            inputs = Path(tempfile.mkdtemp(prefix="input-", dir=folder))
            files = self.storage(plan.input_uri).download_prefix(plan.input_uri, inputs)
            limit = plan.max_payload_mb * 1024 * 1024
            for path in sorted(files):
                rel = path.relative_to(inputs).as_posix()
                answers = []
                for body in _batches(path.read_bytes(), limit):
                    answers.append(_post(port, body) + b"\n")  # AssembleWith: Line
                out = f"{plan.output_uri.rstrip('/')}/{rel}.out"
                self.storage(out).upload_bytes(b"".join(answers), out)
        finally:
            _terminate(proc)

    def transform_status(self, name: str) -> tuple[str, str | None]:
        from smglm.launch.local import read_json

        try:
            state = read_json(self._tfolder(name) / "state.json")
        except (OSError, ValueError):
            raise BackendError(f"no local transform job named {name!r}") from None
        status = str(state["TransformJobStatus"])
        thread = _THREADS.get(str(self._tfolder(name)))
        if status == "InProgress" and (thread is None or not thread.is_alive()):
            # the process that ran it is gone (a kernel restart): it never ends now
            return "Failed", "the process running the local transform ended before it did"
        return status, state.get("FailureReason")

    def end_transform(self, name: str, model_name: str) -> list[str]:
        model = self._tfolder(name) / "model"
        shutil.rmtree(model, ignore_errors=True)
        return [f"local transform {name}: removed its model copy"]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _tail(path: Path, lines: int = 12) -> str:
    text = "\n".join(_read(path).strip().splitlines()[-lines:])
    return text or "(no output)"


def _ping(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _wait_listening(proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = _LISTENING.search(_read(log_path))
        if match and _ping(int(match.group(1))):
            return int(match.group(1))
        if proc.poll() is not None:
            raise BackendError(f"serve exited with {proc.returncode}: {_tail(log_path)}")
        time.sleep(0.05)
    raise BackendError(f"serve did not answer /ping within {timeout:g} s: {_tail(log_path)}")


def _post(port: int, body: bytes) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request(
            "POST", "/invocations", body=body, headers={"Content-Type": CSV, "Accept": CSV}
        )
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        raise BackendError(
            f"serve answered {resp.status}: {data.decode('utf-8', errors='replace')[:1000]}"
        )
    return data


def _batches(data: bytes, limit: int) -> list[bytes]:
    """``data``'s lines packed into bodies of at most ``limit`` bytes (MultiRecord); blank
    lines dropped; a line longer than ``limit`` is an error, as on SageMaker."""
    batches: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in data.splitlines(keepends=True):
        if not line.strip():
            continue
        if not line.endswith(b"\n"):
            line += b"\n"
        if len(line) > limit:
            raise BackendError(f"a record of {len(line)} bytes is over MaxPayloadInMB")
        if size + len(line) > limit and current:
            batches.append(b"".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        batches.append(b"".join(current))
    return batches


def _terminate(proc: subprocess.Popen[bytes], grace: float = 25) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _stop_recorded(pid_file: Path, what: str, grace: float = 25) -> str:
    """SIGTERM the recorded serve process (only that very process), SIGKILL its group after
    ``grace`` seconds; a line saying what happened."""
    from smglm.launch.processes import end_recorded, read_recorded

    process = read_recorded(pid_file)
    if process is None or not process.running():
        return f"{what}: serve process already ended"
    process.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while process.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    if process.running():
        end_recorded(pid_file)
        return f"{what}: serve process {process.pid} did not stop in {grace:g} s: killed"
    return f"{what}: stopped serve process {process.pid}"
