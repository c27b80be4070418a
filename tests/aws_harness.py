"""Fixtures for the AWS path: moto's server in this process, and jobs completed as SageMaker would.

moto accepts CreateTrainingJob and marks the job ``Completed`` at once, running nothing. The
:class:`SageMakerSimulator` makes it behave like SageMaker (``shared/testing-aws-here.md``):
hooked on a boto3 Session's ``after-call.sagemaker.CreateTrainingJob``, it lays out a temporary
``/opt/ml`` from the captured request, downloads the S3 channels from moto, runs ``python -m
smglm.runtime train`` with the job's Environment and ``SMGLM_ML_ROOT``, writes the container's
lines to CloudWatch Logs ``/aws/sagemaker/TrainingJobs`` stream ``<job>/algo-1-<epoch>``, uploads
model.tar.gz and output.tar.gz to ``<S3OutputPath>/<job>/output/``, and sets the job's status
(``Completed``, or ``Failed`` with the failure file's text, or ``Stopped``) by editing moto's
backend in-process. From ``before-call`` handlers it also answers StopTrainingJob, which moto
lacks, and ListTrainingJobs with its SortBy/SortOrder honoured (moto ignores them). Register it
in tests/conftest.py with ``pytest_plugins = ["aws_harness"]`` (tests/ is on sys.path).

Fixtures: ``moto_server`` (session: the endpoint URL), ``aws`` (per test: fake credentials,
``AWS_ENDPOINT_URL``, a reset moto), ``boto_session``, ``sagemaker_sim`` and ``endpoint_sim``
(:class:`EndpointSimulator`: endpoints and batch transforms answered by the real ``serve``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
LOG_GROUP = "/aws/sagemaker/TrainingJobs"

_CLEARED = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_REGION",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


@dataclass(frozen=True)
class AwsEnv:
    """The fake AWS a test talks to."""

    endpoint: str
    region: str = REGION
    account: str = ACCOUNT

    def reset(self) -> None:
        """Forget every resource (moto's state is global to the process)."""
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200


def aws_environ(endpoint: str, home: Path) -> dict[str, str]:
    """Environment variables that point boto3 (and the SDKs) at moto with fake credentials."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": str(home / "aws-config-none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials-none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def use_moto(monkeypatch: pytest.MonkeyPatch, endpoint: str, home: Path) -> AwsEnv:
    """Point boto3 at moto with fake credentials, away from this machine's AWS and SageMaker SDK
    config files (undone with ``monkeypatch``); reset moto."""
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in aws_environ(endpoint, home).items():
        monkeypatch.setenv(name, value)
    # nor a SageMaker SDK config file of this machine (its site and user folders): a test that
    # wants one names it (SAGEMAKER_*_CONFIG_OVERRIDE, or these variables)
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(home / "xdg-site-none"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg-user-none"))
    for name in ("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", "SAGEMAKER_USER_CONFIG_OVERRIDE"):
        monkeypatch.delenv(name, raising=False)
    env = AwsEnv(endpoint)
    env.reset()
    return env


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's server on 127.0.0.1 (a free port), in this process; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AwsEnv:
    """A reset moto, fake credentials and ``AWS_ENDPOINT_URL`` for this test only."""
    return use_moto(monkeypatch, moto_server, tmp_path)


@pytest.fixture
def boto_session(aws: AwsEnv) -> Any:
    """A boto3 Session in the test region, talking to moto."""
    import boto3

    return boto3.Session(region_name=aws.region)


@pytest.fixture
def sagemaker_sim(boto_session: Any, tmp_path: Path) -> Iterator[SageMakerSimulator]:
    """A :class:`SageMakerSimulator` on ``boto_session`` (jobs run inside the create call)."""
    sim = SageMakerSimulator(tmp_path / "sagemaker-jobs").attach(boto_session)
    yield sim
    sim.close()


@pytest.fixture
def endpoint_sim(boto_session: Any, tmp_path: Path) -> Iterator[EndpointSimulator]:
    """An :class:`EndpointSimulator` on ``boto_session`` (endpoints served by the real serve)."""
    sim = EndpointSimulator(tmp_path / "sagemaker-hosting").attach(boto_session)
    yield sim
    sim.close()


def push_image(session: Any, repository: str = "smglm", tag: str = "0.1.0") -> str:
    """Create an ECR repository in moto and put a (v2 schema 2) image in it; return its URI."""
    import hashlib

    ecr = session.client("ecr")
    uri = ecr.create_repository(repositoryName=repository)["repository"]["repositoryUri"]
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 7023,
            "digest": "sha256:" + hashlib.sha256(repository.encode()).hexdigest(),
        },
        "layers": [],
    }
    ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)
    return f"{uri}:{tag}"


def moto_training_job(name: str, region: str = REGION, account: str = ACCOUNT) -> Any:
    """moto's stored training job (edit its attributes to change what Describe returns)."""
    from moto.backends import get_backend

    return get_backend("sagemaker")[account][region].training_jobs[name]


class _Response:
    """Just enough of botocore's AWSResponse for a before-call handler's short-circuit."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = b""
        self.raw = None
        self.url = ""


class SageMakerSimulator:
    """Runs moto's training jobs as SageMaker would (module docstring).

    ``mode``: ``"sync"`` runs the job inside the CreateTrainingJob call (it returns when the job
    has ended); ``"background"`` runs it in a thread (status ``InProgress`` until it ends);
    ``"hold"`` leaves it ``InProgress`` and runs nothing.
    """

    def __init__(self, workdir: Path, *, mode: str = "sync", timeout: float = 120) -> None:
        self.workdir = workdir
        self.mode = mode
        self.timeout = timeout
        self.requests: list[dict[str, Any]] = []
        self.stop_requests: list[str] = []
        self.processes: dict[str, subprocess.Popen[str]] = {}
        self.threads: dict[str, threading.Thread] = {}
        self._stopping: set[str] = set()

    def attach(self, session: Any) -> SageMakerSimulator:
        """Register the handlers on a boto3 Session (they reach every client made from it)."""
        events = session.events
        events.register("provide-client-params.sagemaker.CreateTrainingJob", self._capture)
        events.register("after-call.sagemaker.CreateTrainingJob", self._after_create)
        events.register("before-call.sagemaker.StopTrainingJob", self._stop)
        events.register("before-call.sagemaker.ListTrainingJobs", self._list)
        return self

    def close(self) -> None:
        """Kill what still runs and wait for the threads."""
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.kill()
        for thread in self.threads.values():
            thread.join(timeout=30)

    def wait(self, name: str, timeout: float = 60) -> None:
        """Wait for a background job to end."""
        thread = self.threads.get(name)
        if thread is not None:
            thread.join(timeout)
            assert not thread.is_alive(), f"job {name} still running after {timeout} s"

    # -- handlers ----------------------------------------------------------------------------
    def _capture(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        request = copy.deepcopy(params)
        context["smglm_request"] = request
        self.requests.append(request)

    def _after_create(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300 or "smglm_request" not in context:
            return
        request = context["smglm_request"]
        region = context.get("client_region") or REGION
        job = moto_training_job(request["TrainingJobName"], region)
        # moto drops Environment and replaces MetricDefinitions: echo them as SageMaker does.
        job.environment = dict(request.get("Environment") or {})
        job.algorithm_specification["MetricDefinitions"] = list(
            request["AlgorithmSpecification"].get("MetricDefinitions") or []
        )
        job.final_metric_data_list = []
        job.model_artifacts = None
        job.secondary_status_transitions = []
        job.training_end_time = None
        self._status(job, "InProgress", "Starting", "Launching requested ML instances")
        if self.mode == "sync":
            self.run(request, region)
        elif self.mode == "background":
            thread = threading.Thread(target=self.run, args=(request, region), daemon=True)
            self.threads[request["TrainingJobName"]] = thread
            thread.start()

    def _stop(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
        name = json.loads(params["body"])["TrainingJobName"]
        self.stop_requests.append(name)
        region = context.get("client_region") or REGION
        try:
            job = moto_training_job(name, region)
        except KeyError:
            return error_response("ValidationException", "Requested resource not found.")
        if job.training_job_status != "InProgress":
            return error_response(
                "ValidationException",
                f"The request was rejected because the training job is in status "
                f"{job.training_job_status}.",
            )
        self._stopping.add(name)
        proc = self.processes.get(name)
        if proc is not None and proc.poll() is None:
            self._status(job, "Stopping", "Stopping", "Stopping the training job")
            proc.terminate()  # SIGTERM; run() sets Stopped when the container has exited
        elif name not in self.threads or not self.threads[name].is_alive():
            self._status(job, "Stopped", "Stopped", "The job was stopped")
            job.training_end_time = _now()
        else:
            self._status(job, "Stopping", "Stopping", "Stopping the training job")
        return _Response(200), {"ResponseMetadata": {"HTTPStatusCode": 200}}

    def _list(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
        """ListTrainingJobs with SortBy/SortOrder honoured (moto ignores them)."""
        from moto.backends import get_backend

        args = json.loads(params["body"] or b"{}")
        region = context.get("client_region") or REGION
        jobs = list(get_backend("sagemaker")[ACCOUNT][region].training_jobs.values())
        key = {"Name": "training_job_name", "Status": "training_job_status"}.get(
            args.get("SortBy", ""), "creation_time"
        )
        jobs.sort(key=lambda j: getattr(j, key), reverse=args.get("SortOrder") != "Ascending")
        start = int(args.get("NextToken") or 0)
        end = start + int(args.get("MaxResults") or 10)
        summaries = [
            {
                "TrainingJobName": j.training_job_name,
                "TrainingJobArn": j.arn,
                "CreationTime": j.creation_time,
                "LastModifiedTime": j.last_modified_time,
                "TrainingJobStatus": j.training_job_status,
                **({"TrainingEndTime": j.training_end_time} if j.training_end_time else {}),
            }
            for j in jobs[start:end]
        ]
        parsed: dict[str, Any] = {"TrainingJobSummaries": summaries}
        if end < len(jobs):
            parsed["NextToken"] = str(end)
        return _Response(200), parsed

    # -- the job -----------------------------------------------------------------------------
    def run(self, request: dict[str, Any], region: str) -> None:
        """Run one job as SageMaker would and record its outcome in moto."""
        import boto3

        from smglm.launch.storage import S3Storage, pack_dir

        name = request["TrainingJobName"]
        job = moto_training_job(name, region)
        session = boto3.Session(region_name=region)  # a plain session: no handlers
        s3 = session.client("s3")
        root = self.workdir / name / "opt-ml"
        _layout(root, request)
        started = time.time()
        self._status(job, "InProgress", "Downloading", "Downloading input data")
        try:
            for channel in request.get("InputDataConfig", []):
                uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
                S3Storage(s3).download_prefix(uri, root / "input" / "data" / channel["ChannelName"])
        except Exception as exc:
            self._finish(job, "Failed", f"ClientError: Data download failed: {exc}", started)
            return
        if name in self._stopping:
            self._finish(job, "Stopped", None, started)
            return
        self._status(job, "InProgress", "Training", "Training in progress")
        returncode = self._run_container(request, region, job, root, session.client("logs"))
        self._status(job, "InProgress", "Uploading", "Uploading generated training model")
        output = request["OutputDataConfig"]["S3OutputPath"].rstrip("/") + f"/{name}/output"
        storage = S3Storage(s3)
        staging = self.workdir / name / "archives"
        model_dir = root / "model"
        has_model = model_dir.is_dir() and any(model_dir.iterdir())
        if has_model and (returncode == 0 or name in self._stopping):
            storage.upload_file(
                pack_dir(model_dir, staging / "model.tar.gz"), f"{output}/model.tar.gz"
            )
            job.model_artifacts = {"S3ModelArtifacts": f"{output}/model.tar.gz"}
        data_dir = root / "output" / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        storage.upload_file(
            pack_dir(data_dir, staging / "output.tar.gz"), f"{output}/output.tar.gz"
        )
        if name in self._stopping:
            self._finish(job, "Stopped", None, started)
        elif returncode == 0:
            self._finish(job, "Completed", None, started)
        else:
            failure = root / "output" / "failure"
            text = failure.read_text().strip() if failure.is_file() else ""
            reason = f"AlgorithmError: {text or f'exit code {returncode}'}"
            self._finish(job, "Failed", reason[:1024], started)

    def _run_container(
        self, request: dict[str, Any], region: str, job: Any, root: Path, logs: Any
    ) -> int:
        name = request["TrainingJobName"]
        env = {
            **os.environ,
            **(request.get("Environment") or {}),
            "SMGLM_ML_ROOT": str(root),
            "TRAINING_JOB_NAME": name,
            "TRAINING_JOB_ARN": job.arn,
            "AWS_REGION": region,
            "PYTHONUNBUFFERED": "1",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "smglm.runtime", "train"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=root,
        )
        self.processes[name] = proc
        if name in self._stopping:  # StopTrainingJob came while the container was starting
            proc.terminate()
        stream = f"{name}/algo-1-{int(time.time())}"
        _create_log_stream(logs, stream)
        pending: list[dict[str, Any]] = []
        lines: list[str] = []
        last_flush = time.monotonic()
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            if not line:  # CloudWatch Logs takes no empty event (SageMaker's agent drops them)
                continue
            pending.append({"timestamp": int(time.time() * 1000), "message": line})
            if len(pending) >= 50 or time.monotonic() - last_flush > 0.2:
                logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=pending)
                pending, last_flush = [], time.monotonic()
        if pending:
            logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=pending)
        returncode = proc.wait(timeout=self.timeout)
        job.final_metric_data_list = _final_metrics(
            request["AlgorithmSpecification"].get("MetricDefinitions") or [], lines
        )
        return returncode

    def _status(self, job: Any, status: str, secondary: str, message: str) -> None:
        if status == "InProgress" and job.training_job_name in self._stopping:
            status = "Stopping"  # e.g. Uploading after StopTrainingJob
        now = _now()
        transitions = job.secondary_status_transitions
        if transitions and transitions[-1]["Status"] == secondary:
            return
        if transitions:
            transitions[-1]["EndTime"] = now
        transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": message})
        job.training_job_status = status
        job.secondary_status = secondary
        job.last_modified_time = now

    def _finish(self, job: Any, status: str, reason: str | None, started: float) -> None:
        if reason:
            job.failure_reason = reason
            job.model_artifacts = None
        messages = {
            "Completed": "Training job completed",
            "Failed": "Training job failed",
            "Stopped": "Training job stopped",
        }
        self._status(job, status, status, messages[status])
        job.secondary_status_transitions[-1]["EndTime"] = _now()
        job.training_end_time = _now()
        seconds = max(1, round(time.time() - started))
        job.training_time_in_seconds = seconds
        job.billable_time_in_seconds = seconds


def _now() -> Any:
    from moto.core.utils import utcnow

    return utcnow()


def error_response(code: str, message: str) -> tuple[_Response, dict[str, Any]]:
    """What a ``before-call`` handler returns to make botocore raise ClientError ``code``."""
    return _Response(400), {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }


def _layout(root: Path, request: dict[str, Any]) -> None:
    """``/opt/ml/input/config`` as SageMaker writes it for the request (contract §1.2-1.5)."""
    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    for sub in ("input/data", "model", "output/data"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(request.get("HyperParameters") or {}))
    mode = request["AlgorithmSpecification"].get("TrainingInputMode", "File")
    channels = {}
    for ch in request.get("InputDataConfig", []):
        entry = {
            "TrainingInputMode": ch.get("InputMode", mode),
            "S3DistributionType": ch["DataSource"]["S3DataSource"].get(
                "S3DataDistributionType", "FullyReplicated"
            ),
            "RecordWrapperType": ch.get("RecordWrapperType", "None"),
        }
        if ch.get("ContentType"):
            entry["ContentType"] = ch["ContentType"]
        channels[ch["ChannelName"]] = entry
    (config / "inputdataconfig.json").write_text(json.dumps(channels))
    res = request["ResourceConfig"]
    hosts = [f"algo-{i + 1}" for i in range(res.get("InstanceCount", 1))]
    resource = {
        "current_host": "algo-1",
        "current_instance_type": res["InstanceType"],
        "current_group_name": "homogeneousCluster",
        "hosts": sorted(hosts),
        "instance_groups": [
            {
                "instance_group_name": "homogeneousCluster",
                "instance_type": res["InstanceType"],
                "hosts": hosts,
            }
        ],
        "network_interface_name": "eth0",
    }
    (config / "resourceconfig.json").write_text(json.dumps(resource))


def _create_log_stream(logs: Any, stream: str) -> None:
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=LOG_GROUP)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)


def _final_metrics(definitions: list[dict[str, str]], lines: list[str]) -> list[dict[str, Any]]:
    """The last value of each metric in the log (SageMaker's FinalMetricDataList)."""
    out = []
    for d in definitions:
        pattern = re.compile(d["Regex"])
        value = None
        for line in lines:
            for match in pattern.finditer(line):
                try:
                    value = float(match.group(1))
                except (IndexError, ValueError):
                    continue
        if value is not None:
            out.append({"MetricName": d["Name"], "Value": value, "Timestamp": _now()})
    return out


# -- SageMaker Processing (engine: spark) ---------------------------------------------------
#
# moto 5.2.5 implements CreateProcessingJob, DescribeProcessingJob, StopProcessingJob and
# ListProcessingJobs, but: a new job is Completed at once (ProcessingEndTime = its creation,
# no ProcessingStartTime) and runs nothing; ProcessingResources and Environment are dropped
# (Describe does not echo them); StopProcessingJob marks any job Stopped, even a completed one,
# with no ValidationException; ListProcessingJobs ignores SortBy/SortOrder. The
# ProcessingSimulator fills these in, as SageMakerSimulator does for training jobs.

PROCESSING_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
PROCESSING_ROOT = "/opt/ml/processing"


def moto_processing_job(name: str, region: str = REGION, account: str = ACCOUNT) -> Any:
    """moto's stored processing job (edit its attributes to change what Describe returns)."""
    from moto.backends import get_backend

    return get_backend("sagemaker")[account][region].processing_jobs[name]


@dataclass
class ContainerRun:
    """What a simulated processing container gets: the request, a temporary folder standing for
    ``/opt/ml`` (``root``), the job's environment, a way to write log lines (to CloudWatch),
    and an event set when StopProcessingJob arrives."""

    request: dict[str, Any]
    root: Path
    env: dict[str, str]
    log: Any  # Callable[[str], None]
    stopping: threading.Event
    region: str = REGION

    def local(self, path: str) -> Path:
        """The temporary folder's counterpart of a container path under ``/opt/ml``."""
        assert path.startswith("/opt/ml/"), path
        return self.root / path[len("/opt/ml/") :]

    def s3(self) -> Any:
        import boto3

        return boto3.Session(region_name=self.region).client("s3")


def scripted_container(
    lines: tuple[str, ...] = ("smspark-submit: running the driver",),
    *,
    exit_code: int = 0,
    files: dict[str, str] | None = None,
    message: str | None = None,
    wait_for_stop: bool = False,
) -> Any:
    """A container that writes ``lines`` to its log and ``files`` (paths under
    ``/opt/ml/processing/``) and exits with ``exit_code``; ``message`` goes to
    ``/opt/ml/output/message`` (SageMaker's ExitMessage); with ``wait_for_stop`` it runs until
    StopProcessingJob (then exits 143, as on SIGTERM)."""

    def run(job: ContainerRun) -> int:
        for line in lines:
            job.log(line)
        for rel, text in (files or {}).items():
            path = job.local(f"{PROCESSING_ROOT}/{rel}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        if message is not None:
            path = job.local("/opt/ml/output/message")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(message)
        if wait_for_stop:
            job.stopping.wait(60)
            return 143
        return exit_code

    return run


def spark_driver_container(job: ContainerRun) -> int:
    """Run the uploaded driver as ``smspark-submit`` would, in this process on the test's one
    Spark session (the ``spark`` fixture must have started it). EMRFS reads ``s3://`` in the
    real container; here the job document's data URIs are fetched from moto's S3 first."""
    import contextlib as _contextlib
    import importlib.util
    import io

    from smglm.launch.storage import S3Storage

    entry = job.request["AppSpecification"]["ContainerEntrypoint"]
    args = job.request["AppSpecification"]["ContainerArguments"]
    app = job.local(entry[-1])
    document_path = job.local(args[args.index("--job") + 1])
    out = job.local(args[args.index("--out") + 1])
    document = json.loads(document_path.read_text())
    storage = S3Storage(job.s3())
    for key in ("train", "test"):
        uri = document.get(key)
        if uri:
            local = job.root / "emrfs" / key
            storage.download_prefix(uri, local)
            document[key] = str(local)
    local_document = document_path.with_name("job.local.json")
    local_document.write_text(json.dumps(document))
    out.mkdir(parents=True, exist_ok=True)
    spec = importlib.util.spec_from_file_location("smglm_sim_spark_driver", app)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(app.parent))  # --py-files: spark_report next to the driver
    buffer = io.StringIO()
    try:
        spec.loader.exec_module(module)
        job.log(f"spark-submit --master yarn --deploy-mode client {entry[-1]} {' '.join(args)}")
        with _contextlib.redirect_stdout(buffer):
            code = module.main(["--job", str(local_document), "--out", str(out)])
    finally:
        sys.path.remove(str(app.parent))
        for line in buffer.getvalue().splitlines():
            job.log(line)
    return int(code or 0)


class ProcessingSimulator:
    """Runs moto's processing jobs as SageMaker Processing would (see the comment above).

    Hooked on a boto3 Session: it captures each CreateProcessingJob request, lays out a
    temporary ``/opt/ml/processing``, downloads the S3 inputs to their ``LocalPath``, runs
    ``container`` (a callable taking a :class:`ContainerRun`, returning the exit code), writes
    its lines to CloudWatch Logs ``/aws/sagemaker/ProcessingJobs`` stream
    ``<job>/algo-1-<epoch>``, uploads the outputs at the end of a successful job, and sets the
    job's status (``Completed``; ``Failed`` with SageMaker's FailureReason and the container's
    ExitMessage; ``Stopped``). ``mode`` as for :class:`SageMakerSimulator`.
    """

    def __init__(
        self, workdir: Path, container: Any, *, mode: str = "sync", timeout: float = 120
    ) -> None:
        self.workdir = workdir
        self.container = container
        self.mode = mode
        self.timeout = timeout
        self.requests: list[dict[str, Any]] = []
        self.stop_requests: list[str] = []
        self.threads: dict[str, threading.Thread] = {}
        self.stopping: dict[str, threading.Event] = {}

    def attach(self, session: Any) -> ProcessingSimulator:
        events = session.events
        events.register("provide-client-params.sagemaker.CreateProcessingJob", self._capture)
        events.register("after-call.sagemaker.CreateProcessingJob", self._after_create)
        events.register("before-call.sagemaker.StopProcessingJob", self._stop)
        events.register("before-call.sagemaker.ListProcessingJobs", self._list)
        return self

    def close(self) -> None:
        for event in self.stopping.values():
            event.set()
        for thread in self.threads.values():
            thread.join(timeout=60)

    def wait(self, name: str, timeout: float = 120) -> None:
        thread = self.threads.get(name)
        if thread is not None:
            thread.join(timeout)
            assert not thread.is_alive(), f"job {name} still running after {timeout} s"

    # -- handlers ----------------------------------------------------------------------------
    def _capture(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        request = copy.deepcopy(params)
        context["smglm_request"] = request
        self.requests.append(request)

    def _after_create(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300 or "smglm_request" not in context:
            return
        request = context["smglm_request"]
        region = context.get("client_region") or REGION
        name = request["ProcessingJobName"]
        job = moto_processing_job(name, region)
        # moto drops these: echo them as SageMaker does
        job.processing_resources = copy.deepcopy(request["ProcessingResources"])
        job.environment = dict(request.get("Environment") or {})
        job.processing_job_status = "InProgress"
        job.processing_end_time = None
        job.processing_start_time = None
        job.failure_reason = None
        job.exit_message = None
        self.stopping[name] = threading.Event()
        if self.mode == "sync":
            self.run(request, region)
        elif self.mode == "background":
            thread = threading.Thread(target=self.run, args=(request, region), daemon=True)
            self.threads[name] = thread
            thread.start()

    def _stop(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
        name = json.loads(params["body"])["ProcessingJobName"]
        self.stop_requests.append(name)
        region = context.get("client_region") or REGION
        try:
            job = moto_processing_job(name, region)
        except KeyError:
            return error_response(
                "ValidationException",
                f"Could not find processing job 'arn:aws:sagemaker:{region}:{ACCOUNT}:"
                f"processing-job/{name}'.",
            )
        if job.processing_job_status != "InProgress":
            return error_response(
                "ValidationException",
                f"The request was rejected because the processing job is in status "
                f"{job.processing_job_status}.",
            )
        self.stopping.setdefault(name, threading.Event()).set()
        thread = self.threads.get(name)
        if thread is not None and thread.is_alive():
            job.processing_job_status = "Stopping"
        else:
            self._end(job, "Stopped", None, None)
        job.last_modified_time = _now()
        return _Response(200), {"ResponseMetadata": {"HTTPStatusCode": 200}}

    def _list(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
        """ListProcessingJobs with SortBy/SortOrder and StatusEquals honoured."""
        from moto.backends import get_backend

        args = json.loads(params["body"] or b"{}")
        region = context.get("client_region") or REGION
        jobs = list(get_backend("sagemaker")[ACCOUNT][region].processing_jobs.values())
        if args.get("StatusEquals"):
            jobs = [j for j in jobs if j.processing_job_status == args["StatusEquals"]]
        key = {"Name": "processing_job_name", "Status": "processing_job_status"}.get(
            args.get("SortBy", ""), "creation_time"
        )
        jobs.sort(key=lambda j: getattr(j, key), reverse=args.get("SortOrder") == "Descending")
        start = int(args.get("NextToken") or 0)
        end = start + int(args.get("MaxResults") or 10)
        summaries = []
        for j in jobs[start:end]:
            summary = {
                "ProcessingJobName": j.processing_job_name,
                "ProcessingJobArn": j.arn,
                "CreationTime": j.creation_time,
                "LastModifiedTime": j.last_modified_time,
                "ProcessingJobStatus": j.processing_job_status,
            }
            for attr, field_ in (
                ("processing_end_time", "ProcessingEndTime"),
                ("failure_reason", "FailureReason"),
                ("exit_message", "ExitMessage"),
            ):
                if getattr(j, attr, None):
                    summary[field_] = getattr(j, attr)
            summaries.append(summary)
        parsed: dict[str, Any] = {"ProcessingJobSummaries": summaries}
        if end < len(jobs):
            parsed["NextToken"] = str(end)
        return _Response(200), parsed

    # -- the job -----------------------------------------------------------------------------
    def run(self, request: dict[str, Any], region: str) -> None:
        """Run one processing job as SageMaker would and record its outcome in moto."""
        import traceback

        import boto3

        from smglm.launch.storage import S3Storage

        name = request["ProcessingJobName"]
        job = moto_processing_job(name, region)
        session = boto3.Session(region_name=region)  # a plain session: no handlers
        storage = S3Storage(session.client("s3"))
        root = self.workdir / name / "opt-ml"
        stopping = self.stopping.setdefault(name, threading.Event())
        run = ContainerRun(request, root, {}, None, stopping, region)
        job.processing_start_time = _now()
        job.last_modified_time = _now()
        try:
            for item in request.get("ProcessingInputs", []):
                s3_input = item["S3Input"]
                storage.download_prefix(s3_input["S3Uri"], run.local(s3_input["LocalPath"]))
        except Exception as exc:
            self._end(job, "Failed", f"ClientError: Failed to download data. {exc}", None)
            return
        for output in request["ProcessingOutputConfig"]["Outputs"]:
            run.local(output["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
        if stopping.is_set():
            self._end(job, "Stopped", None, None)
            return
        logs = session.client("logs")
        stream = f"{name}/algo-1-{int(time.time())}"
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=PROCESSING_LOG_GROUP)
        logs.create_log_stream(logGroupName=PROCESSING_LOG_GROUP, logStreamName=stream)

        def write(line: str) -> None:
            event = {"timestamp": int(time.time() * 1000), "message": line}
            logs.put_log_events(
                logGroupName=PROCESSING_LOG_GROUP, logStreamName=stream, logEvents=[event]
            )

        run.log = write
        run.env = {**(request.get("Environment") or {})}
        try:
            returncode = int(self.container(run))
        except Exception:
            for line in traceback.format_exc().splitlines():
                write(line)
            returncode = 1
        if stopping.is_set():
            self._end(job, "Stopped", None, None)
            return
        if returncode != 0:
            message = run.local("/opt/ml/output/message")
            text = message.read_text().strip() if message.is_file() else None
            reason = "AlgorithmError: See job logs for more information"
            self._end(job, "Failed", reason, text)
            return
        for output in request["ProcessingOutputConfig"]["Outputs"]:
            s3_output = output["S3Output"]
            folder = run.local(s3_output["LocalPath"])
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                rel = path.relative_to(folder).as_posix()
                storage.upload_file(path, s3_output["S3Uri"].rstrip("/") + "/" + rel)
        self._end(job, "Completed", None, None)

    def _end(self, job: Any, status: str, reason: str | None, message: str | None) -> None:
        job.processing_job_status = status
        job.failure_reason = reason
        job.exit_message = message
        job.processing_end_time = _now()
        job.last_modified_time = _now()


# -- SageMaker hosting: endpoints, InvokeEndpoint, batch transform ----------------------------
#
# moto 5.2.5 implements CreateModel, CreateEndpointConfig, CreateEndpoint (InService at once),
# DescribeEndpoint, DeleteEndpoint/Config/Model, ListEndpoints and CreateTransformJob (Completed
# at once, no output written), but runs nothing: its InvokeEndpoint answers canned data and it
# drops CreateModel's EnableNetworkIsolation. The EndpointSimulator answers them with the real
# ``serve``: on CreateEndpoint it downloads the model's ModelDataUrl from moto's S3, extracts it
# into a temporary ``/opt/ml/model`` and starts ``python -m smglm.runtime serve`` there
# (SMGLM_ML_ROOT, 127.0.0.1, a free port) before the endpoint is InService (Failed with the
# process's last lines if it does not answer /ping); InvokeEndpoint is forwarded to its
# ``/invocations`` (a non-200 answer becomes SageMaker's ModelError); DeleteEndpoint stops it.
# A Create* call whose name is in use is refused, as SageMaker does (moto replaces the resource).
# A transform job runs as SageMaker's batch transform: serve with SAGEMAKER_BATCH, each input
# object split into lines (SplitType Line) and packed into requests of up to MaxPayloadInMB
# (MultiRecord), each answer followed by a newline (AssembleWith Line) into
# ``<S3OutputPath>/<key relative to the input prefix>.out``.


def moto_endpoint(name: str, region: str = REGION, account: str = ACCOUNT) -> Any:
    """moto's stored endpoint (edit its attributes to change what Describe returns)."""
    from moto.backends import get_backend

    return get_backend("sagemaker")[account][region].endpoints[name]


def moto_transform_job(name: str, region: str = REGION, account: str = ACCOUNT) -> Any:
    """moto's stored transform job."""
    from moto.backends import get_backend

    return get_backend("sagemaker")[account][region].transform_jobs[name]


class EndpointSimulator:
    """Runs moto's endpoints and transform jobs with the real ``serve`` (see the comment above).

    ``requests`` holds every captured request by operation name (``CreateModel``,
    ``CreateEndpointConfig``, ``CreateEndpoint``, ``CreateTransformJob``, ``InvokeEndpoint``,
    ``DeleteEndpoint``, ``DeleteEndpointConfig``, ``DeleteModel``), in order.
    """

    OPERATIONS = (
        "CreateModel",
        "CreateEndpointConfig",
        "CreateEndpoint",
        "CreateTransformJob",
        "DeleteEndpoint",
        "DeleteEndpointConfig",
        "DeleteModel",
    )

    def __init__(self, workdir: Path, *, timeout: float = 60) -> None:
        self.workdir = workdir
        self.timeout = timeout
        self.requests: dict[str, list[dict[str, Any]]] = {}
        self.servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}

    def attach(self, session: Any) -> EndpointSimulator:
        events = session.events
        for op in self.OPERATIONS:
            events.register(f"provide-client-params.sagemaker.{op}", self._capture(op))
        events.register(
            "provide-client-params.sagemaker-runtime.InvokeEndpoint",
            self._capture("InvokeEndpoint"),
        )
        for op in ("CreateModel", "CreateEndpointConfig", "CreateEndpoint"):
            events.register(f"before-call.sagemaker.{op}", self._refuse_existing(op))
        events.register("after-call.sagemaker.CreateEndpoint", self._after_endpoint)
        events.register("before-call.sagemaker.DeleteEndpoint", self._delete_endpoint)
        events.register("before-call.sagemaker-runtime.InvokeEndpoint", self._invoke)
        events.register("after-call.sagemaker.CreateTransformJob", self._after_transform)
        return self

    def close(self) -> None:
        """Stop every server still running."""
        for name in list(self.servers):
            self._stop(name)

    def _capture(self, operation: str) -> Any:
        def capture(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            request = copy.deepcopy(params)
            context["smglm_request"] = request
            self.requests.setdefault(operation, []).append(request)

        return capture

    def _refuse_existing(self, operation: str) -> Any:
        """SageMaker refuses a name in use (moto replaces the resource)."""
        key, store, what = {
            "CreateModel": ("ModelName", "_models", "model"),
            "CreateEndpointConfig": (
                "EndpointConfigName",
                "endpoint_configs",
                "endpoint configuration",
            ),
            "CreateEndpoint": ("EndpointName", "endpoints", "endpoint"),
        }[operation]

        def refuse(params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
            from moto.backends import get_backend

            name = json.loads(params["body"])[key]
            region = context.get("client_region") or REGION
            if name in getattr(get_backend("sagemaker")[ACCOUNT][region], store):
                kind = what.replace(" ", "-").replace("configuration", "config")
                arn = f"arn:aws:sagemaker:{region}:{ACCOUNT}:{kind}/{name}"
                return error_response(
                    "ValidationException", f'Cannot create already existing {what} "{arn}".'
                )
            return None

        return refuse

    def _model(self, name: str) -> dict[str, Any]:
        return next(r for r in reversed(self.requests["CreateModel"]) if r["ModelName"] == name)

    def _start(self, model_name: str, root: Path, env: dict[str, str]) -> tuple[Any, int]:
        """Download and extract the model into ``root/model``; start serve on it."""
        import boto3

        import serve_harness
        from smglm.launch.storage import S3Storage, extract_tar

        url = self._model(model_name)["PrimaryContainer"]["ModelDataUrl"]
        archive = root / "download" / "model.tar.gz"
        S3Storage(boto3.Session(region_name=REGION).client("s3")).download_file(url, archive)
        extract_tar(archive, root / "model", replace=True)
        log = root / "serve.log"
        proc = serve_harness.start(
            ["--port", "0", "--workers", "1"], log, env={"SMGLM_ML_ROOT": str(root), **env}
        )
        port = serve_harness.wait_listening(proc, log, self.timeout)
        return proc, port

    def _after_endpoint(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300 or "smglm_request" not in context:
            return
        request = context["smglm_request"]
        name = request["EndpointName"]
        region = context.get("client_region") or REGION
        endpoint = moto_endpoint(name, region)
        endpoint.endpoint_status = "Creating"
        config = next(
            r
            for r in reversed(self.requests["CreateEndpointConfig"])
            if r["EndpointConfigName"] == request["EndpointConfigName"]
        )
        model_name = config["ProductionVariants"][0]["ModelName"]
        try:
            self.servers[name] = self._start(model_name, self.workdir / "endpoints" / name, {})
        except Exception as exc:
            endpoint.endpoint_status = "Failed"
            endpoint.failure_reason = f"The primary container did not pass the ping check: {exc}"
            return
        endpoint.endpoint_status = "InService"

    def _stop(self, name: str) -> None:
        proc, _ = self.servers.pop(name)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def _delete_endpoint(self, params: dict[str, Any], **_: Any) -> None:
        name = json.loads(params["body"])["EndpointName"]
        if name in self.servers:
            self._stop(name)
        # moto deletes the endpoint (or says it does not exist)

    def _invoke(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
        import http.client
        import io

        from botocore.response import StreamingBody

        request = context["smglm_request"]
        name = request["EndpointName"]
        region = context.get("client_region") or REGION
        try:
            status = moto_endpoint(name, region).endpoint_status
        except KeyError:
            status = None
        if status != "InService" or name not in self.servers:
            return error_response(
                "ValidationException", f"Endpoint {name} of account {ACCOUNT} not found."
            )
        _, port = self.servers[name]
        body = request["Body"]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=70)
        try:
            headers = {"Content-Type": request.get("ContentType", "application/octet-stream")}
            if request.get("Accept"):
                headers["Accept"] = request["Accept"]
            conn.request(
                "POST",
                "/invocations",
                body=body if isinstance(body, bytes) else body.encode(),
                headers=headers,
            )
            resp = conn.getresponse()
            data = resp.read()
            content_type = resp.getheader("Content-Type") or ""
        finally:
            conn.close()
        if resp.status != 200:
            text = data.decode("utf-8", errors="replace")
            return _Response(424), {
                "Error": {
                    "Code": "ModelError",
                    "Message": f"Received client error ({resp.status}) from primary with "
                    f'message "{text}". See CloudWatch logs for more information.',
                },
                "OriginalStatusCode": resp.status,
                "OriginalMessage": text,
                "ResponseMetadata": {"HTTPStatusCode": 424},
            }
        return _Response(200), {
            "Body": StreamingBody(io.BytesIO(data), len(data)),
            "ContentType": content_type,
            "InvokedProductionVariant": "AllTraffic",
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }

    def _after_transform(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300 or "smglm_request" not in context:
            return
        request = context["smglm_request"]
        region = context.get("client_region") or REGION
        job = moto_transform_job(request["TransformJobName"], region)
        job.transform_job_status = "InProgress"
        job.transform_end_time = None
        try:
            self._transform(request)
        except Exception as exc:
            job.transform_job_status = "Failed"
            job.failure_reason = f"ClientError: {exc}"[:1024]
        else:
            job.transform_job_status = "Completed"
        job.transform_end_time = _now()
        job.last_modified_time = _now()

    def _transform(self, request: dict[str, Any]) -> None:
        import http.client

        import boto3

        from smglm.launch.storage import S3Storage

        name = request["TransformJobName"]
        root = self.workdir / "transforms" / name
        payload = int(request.get("MaxPayloadInMB") or 6) * 1024 * 1024
        env = {"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(payload >> 20)}
        proc, port = self._start(request["ModelName"], root, env)
        storage = S3Storage(boto3.Session(region_name=REGION).client("s3"))
        source = request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        inputs = root / "input"
        assert request["TransformInput"].get("SplitType") == "Line"
        assert request["TransformOutput"].get("AssembleWith") == "Line"
        try:
            for path in sorted(storage.download_prefix(source, inputs)):
                batches: list[bytes] = []
                for line in path.read_bytes().splitlines(keepends=True):
                    if not line.strip():
                        continue
                    if batches and len(batches[-1]) + len(line) <= payload:
                        batches[-1] += line
                    else:
                        batches.append(line)
                out = b""
                for body in batches:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                    try:
                        conn.request(
                            "POST",
                            "/invocations",
                            body=body,
                            headers={
                                "Content-Type": request["TransformInput"]["ContentType"],
                                "Accept": request["TransformOutput"]["Accept"],
                            },
                        )
                        resp = conn.getresponse()
                        data = resp.read()
                    finally:
                        conn.close()
                    assert resp.status == 200, data.decode("utf-8", errors="replace")
                    out += data + b"\n"
                rel = path.relative_to(inputs).as_posix()
                target = request["TransformOutput"]["S3OutputPath"].rstrip("/") + f"/{rel}.out"
                storage.upload_bytes(out, target)
        finally:
            proc.terminate()
            proc.wait(30)
