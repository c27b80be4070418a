"""The SageMaker backend: training jobs through boto3's SageMaker API, logs from CloudWatch Logs.

:meth:`SageMakerBackend.launch` sends :meth:`JobSpec.to_request` to ``CreateTrainingJob`` as it
is; ``describe``, ``stop`` and ``list_jobs`` are DescribeTrainingJob, StopTrainingJob and
ListTrainingJobs. The SageMaker Python SDK is not needed (nor imported): the request is the one
the SDK would send (see :mod:`smglm.launch.sdk` for the bridge to it).

Log positions. A job's log is the CloudWatch Logs group ``/aws/sagemaker/TrainingJobs``, one
stream per instance named ``<job>/algo-<n>-<epoch>``. :meth:`SageMakerBackend.log_lines` counts
lines: ``start`` is the number of lines already returned, and the position returned is that
count after the new lines. The backend remembers, per job, the lines in the order it first
returned them and how far it has read each stream (CloudWatch's forward token), so successive
calls never repeat or skip a line, even with several streams. A new backend (another process)
rebuilds that order by reading the streams from their start, new events sorted by timestamp,
then stream name: for a job that has ended this order is the same whoever reads it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from smglm.contract import TERMINAL
from smglm.errors import ConfigError, Issue
from smglm.launch import aws, pricing
from smglm.launch.aws import AwsError, aws_call, boto3_session, resolve_region
from smglm.launch.backend import BaseBackend
from smglm.launch.spec import JobSpec

if TYPE_CHECKING:
    from smglm.config.job import JobConfig

__all__ = ["LOG_GROUP", "SageMakerBackend"]

log = logging.getLogger(__name__)

#: CloudWatch Logs group of SageMaker training jobs.
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
_PAGE = 100  # ListTrainingJobs' largest page


@dataclass
class _StreamState:
    token: str | None = None  # the forward token to continue from


@dataclass
class _JobLog:
    lines: list[str] = field(default_factory=list)
    streams: dict[str, _StreamState] = field(default_factory=dict)


class SageMakerBackend(BaseBackend):
    """Training jobs on Amazon SageMaker (the :class:`~smglm.launch.backend.Backend` protocol).

    Parameters
    ----------
    session
        A ``boto3.Session``; its credentials and region are used. Default: a new session.
    region
        The region of the jobs (default: the session's region, then ``AWS_DEFAULT_REGION``).
    """

    name = "sagemaker"
    #: Jobs run on SageMaker's instances: no access to this machine's files or MLflow store.
    remote = True

    def __init__(self, *, session: Any | None = None, region: str | None = None) -> None:
        self.session = boto3_session(session, region)
        self.region = resolve_region(region, session=self.session)
        self._clients: dict[str, Any] = {}
        self._logs: dict[str, _JobLog] = {}
        self._lock = threading.Lock()

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
    def default_output_path(self, job: JobConfig) -> str:
        """``s3://<bucket>/<prefix>``: ``job.bucket``, else SageMaker's default bucket (created)."""
        bucket = aws.resolve_bucket(None, job, session=self.session, region=self.region)
        prefix = job.prefix.strip("/")
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"

    def resolve_role(self, job: JobConfig) -> str:
        """The execution role: ``job.role``, Studio's, or the caller's role (see aws.py)."""
        return aws.resolve_role(None, job, session=self.session)

    def prepare_image(self, job: JobConfig) -> str:
        """``job.image_uri``, checked in ECR in the job's region.

        Raises
        ------
        ConfigError
            Naming ``image_uri`` when it is missing or not in ECR (saying how to push it).
        """
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
        """Print the job's worst-case cost line; refuse it when over ``max_cost``."""
        kind, count, seconds = spec.instance_type, spec.instance_count, spec.max_runtime_seconds
        print(f"[smglm] {pricing.cost_line(kind, count, seconds, region=self.region)}")
        cost = pricing.estimate_cost(kind, count, seconds)
        pricing.check_budget(cost, max_cost)

    # -- jobs --------------------------------------------------------------------------------
    def launch(self, spec: JobSpec) -> None:
        """Send ``CreateTrainingJob`` with :meth:`JobSpec.to_request`; return at once.

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
        with aws_call(f"CreateTrainingJob {spec.name}"):
            resp = self._client("sagemaker").create_training_job(**spec.to_request())
        log.info("created training job %s", resp.get("TrainingJobArn", spec.name))

    def describe(self, job_name: str) -> dict[str, Any]:
        """DescribeTrainingJob's response (without ``ResponseMetadata``)."""
        with aws_call(f"DescribeTrainingJob {job_name}"):
            resp: dict[str, Any] = self._client("sagemaker").describe_training_job(
                TrainingJobName=job_name
            )
        resp.pop("ResponseMetadata", None)
        return resp

    def stop(self, job_name: str) -> None:
        """StopTrainingJob (SIGTERM, SIGKILL 120 s later). A job already ended is left alone."""
        try:
            with aws_call(f"StopTrainingJob {job_name}"):
                self._client("sagemaker").stop_training_job(TrainingJobName=job_name)
        except AwsError as exc:
            if exc.code != "ValidationException":
                raise
            status = self.describe(job_name).get("TrainingJobStatus")
            if status not in TERMINAL and status != "Stopping":
                raise
            log.info("job %s is already %s: nothing to stop", job_name, status)

    def list_jobs(self, max_results: int = 50) -> list[dict[str, Any]]:
        """ListTrainingJobs' summaries, newest first (at most ``max_results``)."""
        client = self._client("sagemaker")
        jobs: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"SortBy": "CreationTime", "SortOrder": "Descending"}
        with aws_call("ListTrainingJobs"):
            while len(jobs) < max_results:
                page = client.list_training_jobs(
                    MaxResults=min(_PAGE, max_results - len(jobs)), **kwargs
                )
                jobs += page.get("TrainingJobSummaries", [])
                if not page.get("NextToken"):
                    break
                kwargs["NextToken"] = page["NextToken"]
        jobs.sort(key=lambda j: j["CreationTime"], reverse=True)
        return jobs[:max_results]

    def find_completed(
        self, tags: dict[str, str], limit: int = 20
    ) -> tuple[str, dict[str, str]] | None:  # ListTrainingJobs' summaries carry no tags
        """The newest of the last ``limit`` Completed training jobs whose tags hold ``tags``,
        with all its tags (ListTrainingJobs' summaries carry none: one ListTags call per job
        looked at)."""
        client = self._client("sagemaker")
        with aws_call("ListTrainingJobs"):
            page = client.list_training_jobs(
                StatusEquals="Completed",
                SortBy="CreationTime",
                SortOrder="Descending",
                MaxResults=min(limit, _PAGE),
            )
        for summary in page.get("TrainingJobSummaries", []):
            with aws_call("ListTags"):
                found = client.list_tags(ResourceArn=summary["TrainingJobArn"]).get("Tags", [])
            have = {t["Key"]: t["Value"] for t in found}
            if all(have.get(k, "") == v for k, v in tags.items()):
                return str(summary["TrainingJobName"]), have
        return None

    # -- logs --------------------------------------------------------------------------------
    def log_lines(self, job_name: str, start: int = 0) -> tuple[list[str], int]:
        """The job's log lines from position ``start`` on, and the position to continue from.

        Positions count lines (module docstring). A job whose log does not exist yet (still
        starting) has no lines: ``([], start)``.
        """
        with self._lock:
            state = self._logs.setdefault(job_name, _JobLog())
            self._read_new(job_name, state)
            lines = state.lines[start:]
            return lines, max(start, len(state.lines))

    def _read_new(self, job_name: str, state: _JobLog) -> None:
        logs = self._client("logs")
        try:
            streams = self._streams(logs, job_name)
        except AwsError as exc:
            if exc.code == "ResourceNotFoundException":
                return  # no log group yet: the job has not started
            raise
        new: list[tuple[int, str, int, str]] = []
        tokens: dict[str, str | None] = {}
        for stream in streams:
            st = state.streams.setdefault(stream, _StreamState())
            events, tokens[stream] = self._events(logs, stream, st.token)
            new += [(e["timestamp"], stream, i, e["message"]) for i, e in enumerate(events)]
        # commit only once every stream was read: a failed call loses no line
        for stream, token in tokens.items():
            state.streams[stream].token = token
        new.sort(key=lambda e: (e[0], e[1], e[2]))
        for *_, message in new:
            state.lines += message.rstrip("\n").split("\n") if message else [""]

    def _streams(self, logs: Any, job_name: str) -> list[str]:
        names: list[str] = []
        kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamNamePrefix": f"{job_name}/"}
        with aws_call(f"DescribeLogStreams {job_name}"):
            while True:
                page = logs.describe_log_streams(**kwargs)
                names += [s["logStreamName"] for s in page.get("logStreams", [])]
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
        return sorted(names)

    def _events(
        self, logs: Any, stream: str, token: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The stream's events after forward token ``token``, and the token to continue from."""
        events: list[dict[str, Any]] = []
        with aws_call(f"GetLogEvents {stream}"):
            while True:
                kwargs: dict[str, Any] = {
                    "logGroupName": LOG_GROUP,
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
