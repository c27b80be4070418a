"""The SageMaker backend: training jobs through boto3's SageMaker API, logs from CloudWatch Logs.

:meth:`SageMakerBackend.launch` sends :meth:`JobSpec.to_request` to ``CreateTrainingJob`` as it
is; ``describe``, ``stop`` and ``list_jobs`` are DescribeTrainingJob, StopTrainingJob and
ListTrainingJobs. The SageMaker Python SDK is not needed (nor imported): the request is the one
the SDK would send (see :mod:`smglm.launch.sdk` for the bridge to it).

A job whose engine is ``spark`` (its ``engine`` hyperparameter) is a SageMaker Processing job
on AWS's Spark image instead (:mod:`smglm.launch.processing`): ``launch`` uploads the driver's
code and the job document and sends ``CreateProcessingJob``; ``describe``, ``stop`` and the
log read DescribeProcessingJob, StopProcessingJob and ``/aws/sagemaker/ProcessingJobs``;
:meth:`SageMakerBackend.job_state` maps its statuses onto a training job's and, the first time
it sees the job completed, turns the driver's output into ``model.tar.gz`` and
``output.tar.gz`` where a training job's would be (``python -m smglm.runtime spark-finish``,
run on this machine). A job name is looked up as a training job first, then as a processing
job; the answer is remembered.

Log positions. A job's log is the CloudWatch Logs group ``/aws/sagemaker/TrainingJobs``, one
stream per instance named ``<job>/algo-<n>-<epoch>``. :meth:`SageMakerBackend.log_lines` counts
lines: ``start`` is the number of lines already returned, and the position returned is that
count after the new lines. The backend remembers, per job, the lines in the order it first
returned them and how far it has read each stream (CloudWatch's forward token), so successive
calls never repeat or skip a line, even with several streams. A new backend (another process)
rebuilds that order by reading the streams from their start, new events sorted by timestamp,
then stream name: for a job that has ended this order is the same whoever reads it. That is what
lets ``smglm logs JOB -f`` or ``%sm_logs JOB --follow`` pick a job up after a kernel restart.

Where to look outside smglm. :meth:`SageMakerBackend.log_locations` gives the job's log group,
its streams (or their prefix while none exists yet) with CloudWatch console links
(:func:`log_console_url`), and the SageMaker console's page of the job
(:func:`job_console_url`); the Job handle prints them when the job starts and when it fails.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smglm.contract import TERMINAL
from smglm.errors import BackendError, ConfigError, Issue
from smglm.launch import aws, pricing, processing
from smglm.launch.aws import AwsError, aws_call, boto3_session, resolve_region
from smglm.launch.backend import BaseBackend, JobState
from smglm.launch.spec import JobSpec

if TYPE_CHECKING:
    from smglm.config.job import JobConfig

__all__ = ["LOG_GROUP", "SageMakerBackend", "job_console_url", "log_console_url"]

log = logging.getLogger(__name__)

#: CloudWatch Logs group of SageMaker training jobs.
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
_PAGE = 100  # ListTrainingJobs' largest page
_TRAINING, _PROCESSING = "training", "processing"
#: How much of spark-finish's error output a failure reason keeps.
_REASON_CHARS = 2000
#: The longest spark-finish may take on this machine (it reads summaries, not the data).
_FINISH_SECONDS = 1800


def _console_encode(value: str) -> str:
    """The CloudWatch console's escaping of a path part of its URL fragment: percent-encoded,
    then ``%`` written ``$25`` (so ``/`` becomes ``$252F``)."""
    from urllib.parse import quote

    return quote(value, safe="").replace("%", "$25")


def log_console_url(
    region: str, group: str, *, stream: str | None = None, prefix: str | None = None
) -> str:
    """The CloudWatch console's page of a log stream, or of a group's streams whose name
    starts with ``prefix``.

    Parameters
    ----------
    region
        The job's region.
    group
        The log group (``/aws/sagemaker/TrainingJobs``).
    stream
        One stream (``<job>/algo-1-<epoch>``): the page of its events.
    prefix
        Without ``stream``: the group's streams filtered on this prefix (the job's name), as
        the SageMaker Python SDK prints it.

    Returns
    -------
    str
        e.g. ``https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logsV2:
        log-groups/log-group/$252Faws$252Fsagemaker$252FTrainingJobs/log-events/
        job$252Falgo-1-1700000000`` (one line).
    """
    url = (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{_console_encode(group)}"
    )
    if stream is not None:
        return f"{url}/log-events/{_console_encode(stream)}"
    if prefix is not None:
        return f"{url}$3FlogStreamNameFilter$3D{_console_encode(prefix)}"
    return url


def job_console_url(region: str, job_name: str, *, processing: bool = False) -> str:
    """The SageMaker console's page of a training job (or of a processing job)."""
    page = "processing-jobs" if processing else "jobs"
    return (
        f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/{page}/{job_name}"
    )


@dataclass
class _StreamState:
    token: str | None = None  # the forward token to continue from


@dataclass
class _JobLog:
    lines: list[str] = field(default_factory=list)
    streams: dict[str, _StreamState] = field(default_factory=dict)


class SageMakerBackend(BaseBackend):
    """Training jobs on Amazon SageMaker (the :class:`~smglm.launch.backend.Backend` protocol),
    and Spark jobs as SageMaker Processing jobs (module docstring).

    Parameters
    ----------
    session
        A ``boto3.Session``; its credentials and region are used. Default: a new session.
    region
        The region of the jobs (default: the session's region, then ``AWS_DEFAULT_REGION``).
    spark_image
        The image of ``engine: spark`` jobs (default: AWS's Spark processing image of the
        region, :func:`~smglm.launch.processing.spark_image_uri`). ``JobConfig.image_uri``
        (smglm's own image) is not used by Spark jobs.
    spark_code
        The folder whose ``spark_driver.py`` (and ``spark_report.py``) a Spark job runs
        (default: the installed smglm's, ``smglm/glm/engines/``).
    """

    name = "sagemaker"
    #: Jobs run on SageMaker's instances: no access to this machine's files or MLflow store.
    remote = True

    def __init__(
        self,
        *,
        session: Any | None = None,
        region: str | None = None,
        spark_image: str | None = None,
        spark_code: str | Path | None = None,
    ) -> None:
        self.session = boto3_session(session, region)
        self.region = resolve_region(region, session=self.session)
        self.spark_image = spark_image
        self.spark_code = Path(spark_code) if spark_code is not None else None
        self._clients: dict[str, Any] = {}
        self._logs: dict[str, _JobLog] = {}
        self._lock = threading.Lock()
        self._kinds: dict[str, str] = {}  # job name -> training | processing
        self._tags: dict[str, dict[str, str]] = {}  # processing job -> its tags
        self._finished: dict[str, tuple[str | None, str | None, str | None]] = {}
        self._finish_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SageMakerBackend(region={self.region!r})"

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.region)
        return self._clients[service]

    def s3_client(self) -> Any:
        """The S3 client of this backend's session (uploads use the same credentials)."""
        return self._client("s3")

    # -- before a launch (hooks of smglm.train(); see smglm.launch.backend.Backend) ----------
    def apply_defaults(self, job: JobConfig) -> tuple[JobConfig, list[str]]:
        """The SageMaker SDK config file's defaults (its ``SageMaker.TrainingJob`` keys, or
        ``SageMaker.ProcessingJob`` for ``engine: spark``) where ``job`` left a field at its
        default, e.g. the admin's subnets, KMS keys, tags and execution role
        (:func:`~smglm.launch.sdk_config.apply_sdk_defaults`)."""
        from smglm.launch.sdk_config import apply_sdk_defaults

        return apply_sdk_defaults(job)

    def default_output_path(self, job: JobConfig) -> str:
        """``s3://<bucket>/<prefix>`` (jobs then go to ``<that>/jobs/``): ``job.bucket``, else the
        SageMaker Python SDK config's ``DefaultS3Bucket``, else SageMaker's default bucket
        ``sagemaker-<region>-<account>`` (created). See :func:`~smglm.launch.aws.storage_base`."""
        return aws.storage_base(job, session=self.session, region=self.region)

    def default_input_base(self, job: JobConfig) -> str:
        """``s3://<bucket>/<prefix>``, inputs under its ``inputs/<hash>/``: as
        :meth:`default_output_path`, except that a job with an ``s3://`` ``output_path`` and no
        bucket configured uses ``output_path``'s bucket before SageMaker's default one."""
        return aws.storage_base(
            job, session=self.session, region=self.region, output_path=job.output_path
        )

    def resolve_role(self, job: JobConfig) -> str:
        """The execution role: ``job.role``, Studio's, or the caller's role (see aws.py)."""
        return aws.resolve_role(None, job, session=self.session)

    def prepare_image(self, job: JobConfig) -> str:
        """``job.image_uri``, checked in ECR in the job's region; with ``job.engine ==
        "spark"``, the Spark image instead (``spark_image``, else AWS's for the region).

        Raises
        ------
        ConfigError
            Naming ``image_uri`` when it is missing or not in ECR (saying how to push it);
            naming ``region`` when AWS has no Spark image there (engine spark).
        """
        if job.engine == "spark":
            return self.spark_image or processing.spark_image_uri(self.region)
        if not job.image_uri:
            raise ConfigError(
                [
                    Issue(
                        "image_uri",
                        "the sagemaker backend needs the smglm image in ECR: build and push it "
                        f"(`smglm image push --region {self.region}`, or "
                        "container/build_and_push.sh) and pass the URI it prints as image_uri=",
                    )
                ]
            )
        from smglm.launch.ecr import check_image

        check_image(job.image_uri, session=self.session, region=self.region)
        return job.image_uri

    def check_cost(self, spec: JobSpec, max_cost: float | None) -> None:
        """Print what the job may cost (:func:`~smglm.launch.pricing.cost_lines`: on-demand,
        managed spot's expected and largest cost, a warm pool's idle cost, the price table's
        date) and whether it may reuse a warm pool; refuse it when its worst case is over
        ``max_cost``."""
        options: dict[str, Any] = {
            "region": self.region,
            "processing": processing.is_spark(spec),
            "use_spot": spec.use_spot,
            "max_wait_seconds": spec.max_wait_seconds,
            "keep_alive_seconds": spec.keep_alive_seconds,
        }
        kind, count, seconds = spec.instance_type, spec.instance_count, spec.max_runtime_seconds
        for line in pricing.cost_lines(kind, count, seconds, **options):
            print(f"[smglm] {line}")
        if options["keep_alive_seconds"] and not options["processing"]:
            pool = self.warm_pool_for(spec)
            if pool is not None:
                print(
                    f"[smglm] may reuse the warm pool of {pool} (same instance type and count, "
                    "image, role, volume and VPC): it starts in seconds"
                )
        pricing.check_budget(pricing.estimate_cost(kind, count, seconds, **options), max_cost)

    def warm_pool_for(self, spec: JobSpec, limit: int = 10) -> str | None:
        """The newest training job whose warm pool is ``Available`` and matches ``spec`` the way
        SageMaker matches jobs to warm pools (instance type and count, volume size and KMS
        key, image, role, VPC), or None. Looks at the last ``limit`` jobs with an available
        pool (ListTrainingJobs ``WarmPoolStatusEquals=Available``, then DescribeTrainingJob)."""
        request = spec.to_request()
        client = self._client("sagemaker")
        with aws_call("ListTrainingJobs (warm pools)"):
            page = client.list_training_jobs(
                WarmPoolStatusEquals="Available",
                SortBy="CreationTime",
                SortOrder="Descending",
                MaxResults=limit,
            )
        for summary in page.get("TrainingJobSummaries", [])[:limit]:
            name = str(summary["TrainingJobName"])
            if name == spec.name:
                continue
            resp = self._describe_as(_TRAINING, name)
            if (resp.get("WarmPoolStatus") or {}).get("Status") != "Available":
                continue
            if _pool_key(resp) == _pool_key(request):
                return name
        return None

    # -- after a job, and where to look ------------------------------------------------------
    def billing_summary(self, state: JobState) -> str | None:
        """What the ended job cost (:func:`~smglm.launch.pricing.billing_line`): billable
        seconds, managed spot's saving (``1 - billable / training seconds``), the warm pool's
        idle time, and the cost at the price table's price."""
        raw = state.raw
        resources = raw.get("ResourceConfig") or (
            (raw.get("ProcessingResources") or {}).get("ClusterConfig") or {}
        )
        kind = resources.get("InstanceType")
        if not kind or state.billable_seconds is None:
            return None
        pool = (raw.get("WarmPoolStatus") or {}).get("ResourceRetainedBillableTimeInSeconds")
        return pricing.billing_line(
            str(kind),
            int(resources.get("InstanceCount") or 1),
            billable_seconds=state.billable_seconds,
            training_seconds=state.training_seconds,
            use_spot=bool(raw.get("EnableManagedSpotTraining")),
            warm_pool_seconds=pool,
            region=self.region,
            processing="ProcessingJobStatus" in raw,
        )

    def log_locations(self, job_name: str) -> list[str]:
        """Where the job's log is, for a person: the CloudWatch log group and streams (their
        prefix while the job has written none) with console links, and the SageMaker
        console's page of the job. Lines without a ``[smglm]`` prefix."""
        kind = self._kinds.get(job_name) or self._describe_any(job_name)[0]
        group = processing.LOG_GROUP if kind == _PROCESSING else LOG_GROUP
        try:
            streams = self._find_streams(self._client("logs"), group, job_name)
        except BackendError:  # no permission to read logs: still say where they are
            streams = []
        lines = [f"log group: {group}"]
        if streams:
            for stream in streams:
                lines.append(f"log stream: {stream}")
                lines.append(f"  {log_console_url(self.region, group, stream=stream)}")
        else:
            pattern = f"{job_name}/algo-<n>-<epoch>"
            lines.append(f"log streams: {pattern} (created when the job starts running)")
            lines.append(f"  {log_console_url(self.region, group, prefix=job_name)}")
        console = job_console_url(self.region, job_name, processing=kind == _PROCESSING)
        lines.append(f"SageMaker console: {console}")
        return lines

    def request(self, spec: JobSpec) -> dict[str, Any]:
        """The request :meth:`launch` sends for ``spec``: CreateTrainingJob's, or for a Spark
        job CreateProcessingJob's (:func:`~smglm.launch.processing.processing_request`)."""
        if not processing.is_spark(spec):
            return spec.to_request()
        try:
            names: list[str] | None = [p.name for p in processing.driver_files(self.spark_code)]
        except BackendError:  # no driver here (launch would say so): the usual files
            names = None
        return processing.processing_request(spec, image_uri=spec.image_uri, code=names)

    def deployer(self) -> Any:
        """SageMaker endpoints and batch transform jobs through this backend's session
        (:class:`smglm.launch.deploy.SageMakerDeployer`)."""
        from smglm.launch.deploy import SageMakerDeployer

        return SageMakerDeployer(
            self._client("sagemaker"),
            self._client("sagemaker-runtime"),
            self.s3_client(),
            self.region,
        )

    # -- jobs --------------------------------------------------------------------------------
    def launch(self, spec: JobSpec) -> None:
        """Send ``CreateTrainingJob`` with :meth:`JobSpec.to_request`; return at once. A Spark
        job (``engine`` hyperparameter ``spark``) uploads its code and job document under
        ``<output_path>/<job>/input/`` and sends ``CreateProcessingJob`` instead.

        Raises
        ------
        ConfigError
            When the spec has no ``role_arn``, or channels or output path that are not
            ``s3://`` (SageMaker reads and writes S3 only).
        AwsError
            When SageMaker refuses the request (its error code and message, and a hint).
        """
        issues = []
        if not spec.role_arn:
            issues.append(
                Issue(
                    "role",
                    "a SageMaker job needs an execution role ARN and none was given: pass "
                    "role='arn:aws:iam::<account>:role/<name>' or set JobConfig.role "
                    "(in SageMaker Studio it is found by itself: see smglm.launch.aws)",
                )
            )
        issues += [
            Issue(f"channels.{c.name}", f"SageMaker reads s3:// URIs only; got {c.uri!r}", c.uri)
            for c in spec.channels
            if not c.uri.startswith("s3://")
        ]
        if not spec.output_path.startswith("s3://"):
            issues.append(
                Issue(
                    "output_path",
                    f"SageMaker writes to s3:// only; got {spec.output_path!r}",
                    spec.output_path,
                )
            )
        if issues:
            raise ConfigError(issues)
        if processing.is_spark(spec):
            self._launch_processing(spec)
            return
        with aws_call(f"CreateTrainingJob {spec.name}"):
            resp = self._client("sagemaker").create_training_job(**spec.to_request())
        self._kinds[spec.name] = _TRAINING
        log.info("created training job %s", resp.get("TrainingJobArn", spec.name))

    def _launch_processing(self, spec: JobSpec) -> None:
        """Upload the driver's code, ``job.json`` and the spec; send CreateProcessingJob."""
        import dataclasses
        import json

        from smglm.launch.storage import S3Storage, split_s3
        from smglm.redaction import split_secrets

        files = processing.driver_files(self.spark_code)
        config = spec.channel("config")
        if config is None:
            raise ConfigError(
                [
                    Issue(
                        "channels",
                        "a Spark job needs a 'config' channel (the GLMConfig as glm.json); got "
                        f"{[c.name for c in spec.channels]}",
                    )
                ]
            )
        s3 = self.s3_client()
        uri = config.uri if config.uri.endswith(".json") else f"{config.uri.rstrip('/')}/glm.json"
        bucket, key = split_s3(uri)
        with aws_call(f"S3 GetObject {uri}"):
            text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        from smglm.config import GLMConfig

        # the driver reads a resolved config (every default and derived value written out)
        glm = json.loads(GLMConfig.from_json(text).resolved().to_json())
        document = processing.job_document(spec, glm)
        layout = processing.ProcessingLayout(spec.output_path, spec.name)
        storage = S3Storage(s3)
        with aws_call(f"S3 upload of {spec.name}'s code and job document"):
            for path in files:
                storage.upload_file(path, layout.uri("code") + path.name)
            storage.upload_bytes(
                json.dumps(document, indent=1).encode(), layout.uri("config") + "job.json"
            )
            public, _ = split_secrets(spec.environment)  # no credential in a file
            written = dataclasses.replace(spec, environment=public)
            storage.upload_bytes(json.dumps(written.to_request()).encode(), layout.uri("spec"))
        request = processing.processing_request(
            spec, image_uri=spec.image_uri, code=[p.name for p in files]
        )
        with aws_call(f"CreateProcessingJob {spec.name}"):
            resp = self._client("sagemaker").create_processing_job(**request)
        self._kinds[spec.name] = _PROCESSING
        log.info("created processing job %s", resp.get("ProcessingJobArn", spec.name))

    def _describe_as(self, kind: str, job_name: str) -> dict[str, Any]:
        client = self._client("sagemaker")
        if kind == _TRAINING:
            with aws_call(f"DescribeTrainingJob {job_name}"):
                resp: dict[str, Any] = client.describe_training_job(TrainingJobName=job_name)
        else:
            with aws_call(f"DescribeProcessingJob {job_name}"):
                resp = client.describe_processing_job(ProcessingJobName=job_name)
        resp.pop("ResponseMetadata", None)
        return resp

    def _describe_any(self, job_name: str) -> tuple[str, dict[str, Any]]:
        """(kind, response): the training job of this name, else the processing job."""
        kind = self._kinds.get(job_name)
        if kind is not None:
            return kind, self._describe_as(kind, job_name)
        try:
            resp = self._describe_as(_TRAINING, job_name)
        except AwsError as exc:
            if exc.code != "ValidationException":
                raise
            try:
                resp = self._describe_as(_PROCESSING, job_name)
            except AwsError as other:
                if other.code != "ValidationException":
                    raise
                raise exc from None  # neither: the training job's error, as before
            self._kinds[job_name] = _PROCESSING
            return _PROCESSING, resp
        self._kinds[job_name] = _TRAINING
        return _TRAINING, resp

    def describe(self, job_name: str) -> dict[str, Any]:
        """DescribeTrainingJob's response (without ``ResponseMetadata``); for a Spark job,
        DescribeProcessingJob's (:meth:`job_state` reads either)."""
        return self._describe_any(job_name)[1]

    def job_state(self, job_name: str) -> JobState:
        """The job's state (see :class:`~smglm.launch.backend.JobState`). A processing job's
        statuses are mapped onto a training job's
        (:func:`~smglm.launch.processing.processing_state`); the first time it is seen
        completed, its driver's output becomes the job's artifacts (:meth:`finish`), and
        a failure to do so makes the job ``Failed`` with the reason."""
        kind, resp = self._describe_any(job_name)
        if kind == _TRAINING:
            return JobState.from_training_job(resp)
        model_uri = output_uri = failure = None
        if resp.get("ProcessingJobStatus") == "Completed":
            model_uri, output_uri, failure = self.finish(job_name, resp)
        tags = self._processing_tags(job_name, str(resp.get("ProcessingJobArn", "")))
        return processing.processing_state(
            resp, tags=tags, model_uri=model_uri, output_uri=output_uri, failure=failure
        )

    def _processing_tags(self, job_name: str, arn: str) -> dict[str, str]:
        """A processing job's tags (ListTags: DescribeProcessingJob has none), read once."""
        if job_name not in self._tags and arn:
            with aws_call(f"ListTags {job_name}"):
                found = self._client("sagemaker").list_tags(ResourceArn=arn).get("Tags", [])
            self._tags[job_name] = {t["Key"]: t["Value"] for t in found}
        return dict(self._tags.get(job_name, {}))

    def finish(
        self, job_name: str, response: dict[str, Any] | None = None
    ) -> tuple[str | None, str | None, str | None]:
        """Make a completed Spark job's artifacts, once: ``(model_uri, output_uri, failure)``.

        When ``<output_path>/<job>/output/model.tar.gz`` exists already (made by this or
        another client), nothing is done. Else the driver's output is downloaded, ``python -m
        smglm.runtime spark-finish --driver-out D --model-dir M --output-data-dir O`` runs on
        this machine, and ``output.tar.gz`` then ``model.tar.gz`` are uploaded where a training
        job's would be. When that fails, ``failure`` says why (with spark-finish's last
        lines); it is remembered by this backend only, so another client (or a fixed
        installation) tries again.
        """
        with self._finish_lock:
            if job_name in self._finished:
                return self._finished[job_name]
            resp = response or self._describe_as(_PROCESSING, job_name)
            try:
                layout = processing.ProcessingLayout.from_request(resp)
            except BackendError as exc:  # another tool's processing job: no artifacts
                log.info("%s", exc)
                return None, None, None
            result = self._finish(layout)
            self._finished[job_name] = result
            return result

    def _finish(
        self, layout: processing.ProcessingLayout
    ) -> tuple[str | None, str | None, str | None]:
        import os
        import subprocess
        import sys
        import tempfile

        from smglm.launch.storage import S3Storage, pack_dir

        storage = S3Storage(self.s3_client())
        model_uri, output_uri = layout.uri("model"), layout.uri("output")
        with aws_call(f"S3 ListObjectsV2 {model_uri}"):
            if storage.exists(model_uri):
                return model_uri, output_uri if storage.exists(output_uri) else None, None
        print(
            f"[smglm] {layout.name}: Spark job completed; writing its artifacts from the "
            "driver's output (spark-finish)",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="smglm-spark-finish-") as tmp:
            driver, model, out = Path(tmp, "driver"), Path(tmp, "model"), Path(tmp, "output")
            try:
                with aws_call(f"S3 download of {layout.uri('driver')}"):
                    storage.download_prefix(layout.uri("driver"), driver)
            except BackendError as exc:
                return (
                    None,
                    None,
                    (
                        f"ClientError: the Spark driver's output could not be read from "
                        f"{layout.uri('driver')}: {exc}"
                    ),
                )
            model.mkdir()
            out.mkdir()
            command = [
                sys.executable,
                "-m",
                "smglm.runtime",
                "spark-finish",
                "--driver-out",
                str(driver),
                "--model-dir",
                str(model),
                "--output-data-dir",
                str(out),
            ]
            # the launcher logs the job's MLflow run; spark-finish must not log into another
            env = {k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID"}
            try:
                proc = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    env=env,
                    check=False,
                    timeout=_FINISH_SECONDS,
                )
            except subprocess.TimeoutExpired:
                return (
                    None,
                    None,
                    (
                        "ClientError: the job's artifacts could not be made from the Spark "
                        f"driver's output: python -m smglm.runtime spark-finish ran for more than "
                        f"{_FINISH_SECONDS} s and was stopped"
                    ),
                )
            for line in (proc.stdout + proc.stderr).splitlines():
                log.info("spark-finish %s: %s", layout.name, line)
            if proc.returncode != 0:
                tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
                return (
                    None,
                    None,
                    (
                        f"ClientError: the job's artifacts could not be made from the Spark "
                        f"driver's output (python -m smglm.runtime spark-finish exited with "
                        f"{proc.returncode}): {tail}"
                    )[:_REASON_CHARS],
                )
            with aws_call(f"S3 upload of {layout.name}'s artifacts"):
                storage.upload_file(pack_dir(out, Path(tmp, "output.tar.gz")), output_uri)
                # model.tar.gz last: its presence says the artifacts are complete
                storage.upload_file(pack_dir(model, Path(tmp, "model.tar.gz")), model_uri)
        return model_uri, output_uri, None

    def spec(self, job_name: str) -> JobSpec:
        """The job's spec: rebuilt from DescribeTrainingJob, or for a Spark job read from the
        spec stored at launch (``<output_path>/<job>/input/spec.json``)."""
        kind, resp = self._describe_any(job_name)
        if kind == _TRAINING:
            return JobSpec.from_request(resp)
        from smglm.launch.storage import split_s3

        uri = processing.ProcessingLayout.from_request(resp).uri("spec")
        bucket, key = split_s3(uri)
        with aws_call(f"S3 GetObject {uri}"):
            text = self.s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return processing.read_spec(text.decode("utf-8"))

    def stop(self, job_name: str) -> None:
        """StopTrainingJob (SIGTERM, SIGKILL 120 s later), or StopProcessingJob for a Spark
        job. A job already ended is left alone."""
        kind = self._kinds.get(job_name) or self._describe_any(job_name)[0]
        action = "StopTrainingJob" if kind == _TRAINING else "StopProcessingJob"
        client = self._client("sagemaker")
        try:
            with aws_call(f"{action} {job_name}"):
                if kind == _TRAINING:
                    client.stop_training_job(TrainingJobName=job_name)
                else:
                    client.stop_processing_job(ProcessingJobName=job_name)
        except AwsError as exc:
            if exc.code != "ValidationException":
                raise
            resp = self._describe_as(kind, job_name)
            status = resp.get("TrainingJobStatus", resp.get("ProcessingJobStatus"))
            if status not in TERMINAL and status != "Stopping":
                raise
            log.info("job %s is already %s: nothing to stop", job_name, status)

    def list_jobs(self, max_results: int = 50) -> list[dict[str, Any]]:
        """ListTrainingJobs' summaries, newest first (at most ``max_results``)."""
        return self._list("TrainingJobSummaries", max_results)

    def list_processing_jobs(self, max_results: int = 50) -> list[dict[str, Any]]:
        """ListProcessingJobs' summaries, newest first (at most ``max_results``)."""
        return self._list("ProcessingJobSummaries", max_results)

    def _list(self, field_: str, max_results: int) -> list[dict[str, Any]]:
        client = self._client("sagemaker")
        processing_jobs = field_ == "ProcessingJobSummaries"
        call = client.list_processing_jobs if processing_jobs else client.list_training_jobs
        action = "ListProcessingJobs" if processing_jobs else "ListTrainingJobs"
        jobs: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"SortBy": "CreationTime", "SortOrder": "Descending"}
        with aws_call(action):
            while len(jobs) < max_results:
                page = call(MaxResults=min(_PAGE, max_results - len(jobs)), **kwargs)
                jobs += page.get(field_, [])
                if not page.get("NextToken"):
                    break
                kwargs["NextToken"] = page["NextToken"]
        jobs.sort(key=lambda j: j["CreationTime"], reverse=True)
        return jobs[:max_results]

    def list_states(self, max_results: int = 50) -> list[JobState]:
        """Recent training and processing jobs, newest first, in backend-neutral words (a
        processing job's summary as :func:`~smglm.launch.processing.processing_state` maps
        it; its artifacts are made when its own state is asked for)."""
        states = [JobState.from_training_job(s) for s in self.list_jobs(max_results)]
        states += [processing.processing_state(s) for s in self.list_processing_jobs(max_results)]
        states.sort(key=lambda s: s.created, reverse=True)
        return states[:max_results]

    def find_completed(
        self, tags: dict[str, str], limit: int = 20
    ) -> tuple[str, dict[str, str]] | None:  # ListTrainingJobs' summaries carry no tags
        """The newest of the last ``limit`` Completed training jobs whose tags hold ``tags``,
        with all its tags (ListTrainingJobs' summaries carry none: one ListTags call per job
        looked at); then the same among processing jobs (Spark jobs)."""
        client = self._client("sagemaker")
        for action, call, field_, name_key, arn_key in (
            (
                "ListTrainingJobs",
                client.list_training_jobs,
                "TrainingJobSummaries",
                "TrainingJobName",
                "TrainingJobArn",
            ),
            (
                "ListProcessingJobs",
                client.list_processing_jobs,
                "ProcessingJobSummaries",
                "ProcessingJobName",
                "ProcessingJobArn",
            ),
        ):
            with aws_call(action):
                page = call(
                    StatusEquals="Completed",
                    SortBy="CreationTime",
                    SortOrder="Descending",
                    MaxResults=min(limit, _PAGE),
                )
            for summary in page.get(field_, []):
                with aws_call("ListTags"):
                    found = client.list_tags(ResourceArn=summary[arn_key]).get("Tags", [])
                have = {t["Key"]: t["Value"] for t in found}
                if all(have.get(k, "") == v for k, v in tags.items()):
                    return str(summary[name_key]), have
        return None

    # -- logs --------------------------------------------------------------------------------
    def log_lines(self, job_name: str, start: int = 0) -> tuple[list[str], int]:
        """The job's log lines from position ``start`` on, and the position to continue from.

        Positions count lines (module docstring). A job whose log does not exist yet (still
        starting) has no lines: ``([], start)``. A Spark job's log is in
        ``/aws/sagemaker/ProcessingJobs``.
        """
        with self._lock:
            state = self._logs.setdefault(job_name, _JobLog())
            self._read_new(job_name, state)
            lines = state.lines[start:]
            return lines, max(start, len(state.lines))

    def _log_group(self, job_name: str) -> str:
        return processing.LOG_GROUP if self._kinds.get(job_name) == _PROCESSING else LOG_GROUP

    def _read_new(self, job_name: str, state: _JobLog) -> None:
        logs = self._client("logs")
        group = self._log_group(job_name)
        streams = self._find_streams(logs, group, job_name)
        if not streams and job_name not in self._kinds and not state.streams:
            # a job not looked at yet: its log may be a processing job's
            found = self._find_streams(logs, processing.LOG_GROUP, job_name)
            if found:
                self._kinds[job_name] = _PROCESSING
                group, streams = processing.LOG_GROUP, found
        new: list[tuple[int, str, int, str]] = []
        tokens: dict[str, str | None] = {}
        for stream in streams:
            st = state.streams.setdefault(stream, _StreamState())
            events, tokens[stream] = self._events(logs, group, stream, st.token)
            new += [(e["timestamp"], stream, i, e["message"]) for i, e in enumerate(events)]
        # commit only once every stream was read: a failed call loses no line
        for stream, token in tokens.items():
            state.streams[stream].token = token
        new.sort(key=lambda e: (e[0], e[1], e[2]))
        for *_, message in new:
            state.lines += message.rstrip("\n").split("\n") if message else [""]

    def _find_streams(self, logs: Any, group: str, job_name: str) -> list[str]:
        try:
            return self._streams(logs, group, job_name)
        except AwsError as exc:
            if exc.code == "ResourceNotFoundException":
                return []  # no log group yet: the job has not started
            raise

    def _streams(self, logs: Any, group: str, job_name: str) -> list[str]:
        names: list[str] = []
        kwargs: dict[str, Any] = {"logGroupName": group, "logStreamNamePrefix": f"{job_name}/"}
        with aws_call(f"DescribeLogStreams {job_name}"):
            while True:
                page = logs.describe_log_streams(**kwargs)
                names += [s["logStreamName"] for s in page.get("logStreams", [])]
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
        return sorted(names)

    def _events(
        self, logs: Any, group: str, stream: str, token: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The stream's events after forward token ``token``, and the token to continue from."""
        events: list[dict[str, Any]] = []
        with aws_call(f"GetLogEvents {stream}"):
            while True:
                kwargs: dict[str, Any] = {
                    "logGroupName": group,
                    "logStreamName": stream,
                    "startFromHead": True,
                }
                if token:
                    kwargs["nextToken"] = token
                page = logs.get_log_events(**kwargs)
                events += page.get("events", [])
                following = page.get("nextForwardToken")
                # CloudWatch returns the same token once the end of the stream is reached.
                if not following or following == token:
                    return events, token
                token = following


def _pool_key(request: dict[str, Any]) -> tuple[Any, ...]:
    """What SageMaker matches a training job to a warm pool on, from a CreateTrainingJob
    request or a DescribeTrainingJob response."""
    res = request.get("ResourceConfig") or {}
    vpc = request.get("VpcConfig") or {}
    return (
        res.get("InstanceType"),
        res.get("InstanceCount"),
        res.get("VolumeSizeInGB"),
        res.get("VolumeKmsKeyId"),
        (request.get("AlgorithmSpecification") or {}).get("TrainingImage"),
        request.get("RoleArn"),
        tuple(sorted(vpc.get("Subnets") or ())),
        tuple(sorted(vpc.get("SecurityGroupIds") or ())),
    )
