"""The local backend: SageMaker's training-job lifecycle emulated on this machine, no Docker.

Each job gets a folder ``<home>/jobs/<name>/`` holding ``spec.json`` (the CreateTrainingJob
request), ``state.json`` (shaped like DescribeTrainingJob), ``logs.txt`` and ``ml/`` (the
``/opt/ml`` tree). A detached supervisor process (:mod:`smglm.launch.supervisor`) does what
SageMaker does: downloads the channels, runs the runtime's ``train`` with the job's environment
(:mod:`smglm.launch.processes`), applies the metric definitions to the log, packs and uploads
``model.tar.gz`` and ``output.tar.gz``, and records statuses with timestamps. Because the state
lives on disk and the supervisor is detached, a job survives a kernel restart and can be
re-attached by name. The supervisor holds the job's ``runner.lock`` for its whole life: a job
whose state is still running while no process holds that lock has lost its supervisor. This
module never imports the runtime.

The production settings of a JobConfig (:class:`~smglm.config.JobConfig`) are accepted and
kept in ``spec.json`` (so :meth:`LocalBackend.request` shows what SageMaker would receive), and
two of them act here: ``environment`` (the job's variables) and ``max_runtime_seconds`` (the
job is stopped after it). The others have no meaning on this machine and do nothing: VPC
subnets and security groups, network isolation, inter-container encryption, the KMS keys,
``use_spot``/``max_wait_seconds`` and ``keep_alive_seconds`` (the local warm worker is this
backend's warm pool, :mod:`smglm.launch.warm`). The SageMaker SDK's config file is not read
(:meth:`~smglm.launch.backend.BaseBackend.apply_defaults` is the default, which does nothing).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smglm.errors import BackendError, ConfigError, Issue
from smglm.launch.backend import BaseBackend, default_home
from smglm.launch.processes import (
    end_recorded,
    lock_held,
    record_process,
    start_detached,
    take_lock,
)
from smglm.launch.spec import JobSpec
from smglm.redaction import split_secrets

if TYPE_CHECKING:
    from smglm.config.job import JobConfig

__all__ = [
    "LOCAL_IMAGE",
    "STOP_FILE",
    "SUPERVISOR_PID_FILE",
    "TRAIN_PID_FILE",
    "LocalBackend",
    "disk_full",
    "end_tracking_run",
    "now_iso",
    "private_dir",
    "read_json",
    "write_json_atomic",
    "write_private",
]

#: Written into a job's folder to ask its supervisor to stop the job.
STOP_FILE = "stop-requested"
#: A job's supervisor and training process, each as "PID START-TIME" (:class:`ProcessId`).
SUPERVISOR_PID_FILE = "runner.pid"
TRAIN_PID_FILE = "train.pid"

log = logging.getLogger(__name__)

#: The image name the local backend records (it runs the installed package, not an image).
LOCAL_IMAGE = "smglm-local"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, a file readable by this user only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def private_dir(path: Path) -> Path:
    """Create folder ``path`` (and missing parents) readable by this user only (0700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file renamed into place (readers
    never see half a file). On a full disk (ENOSPC) an existing file is rewritten in place
    instead, in the space it frees: a job's last state is recorded even then. The temporary
    file never stays behind."""
    text = json.dumps(data, indent=1, default=str)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write_private(tmp, text)
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if exc.errno != errno.ENOSPC or not path.exists():
            raise
        with path.open("r+", encoding="utf-8") as f:  # keeps the file's mode (0600)
            f.truncate(0)
            f.write(text)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


#: A disk with less free space than this is full for a job (its next write fails).
FULL_BELOW = 1 << 20


def disk_full(path: Path) -> str | None:
    """A reason that names the disk of ``path`` ("no space left on device (ENOSPC) ...") when
    that disk is full, else None."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    free = st.f_bavail * st.f_frsize
    if free >= FULL_BELOW:
        return None
    return (
        f"no space left on device (ENOSPC) on the disk of {path} ({free:,} bytes free): free "
        "space there and launch the job again"
    )


def end_tracking_run(state: dict[str, Any]) -> None:
    """End the MLflow run of a local job that has ended (its ``smglm.mlflow_run_id`` tag) with
    the job's status and reason, when its supervisor could not; never raises."""
    tags = state.get("Tags") or {}
    run_id = tags.get("smglm.mlflow_run_id")
    if not run_id:
        return
    try:
        from smglm.tracking.runs import finalize_job_run, mlflow_available, resolve_tracking_uri

        if not mlflow_available():
            return
        uri = resolve_tracking_uri(tags.get("smglm.tracking_uri"))
        finalize_job_run(uri, run_id, state, lambda: None)
    except Exception as exc:  # the job's end is recorded whatever MLflow does
        log.warning("could not end MLflow run %s: %s", run_id, exc)


class LocalBackend(BaseBackend):
    """Runs training jobs on this machine as SageMaker would run them on an instance.

    Parameters
    ----------
    home
        smglm's working folder (default :func:`default_home`); jobs go to ``home/jobs``.
    stop_grace_seconds
        Seconds between SIGTERM and SIGKILL when a job is stopped or times out (SageMaker: 120).
    python
        The interpreter that runs the supervisor and ``train`` (default: this one).
    warm
        Fork ``train`` from the home's warm runtime worker (:mod:`smglm.launch.warm`), which
        has done the heavy imports: the local counterpart of SageMaker's warm pools. The worker
        starts with the first job (that job waits for it, about as long as a cold start) and
        exits after ``SMGLM_WARM_IDLE_SECONDS`` (900) without a job, or on
        :meth:`shutdown_warm`. A job that the worker cannot take runs cold, and its log says
        why (e.g. an environment variable read at start-up that differs from the worker's; see
        :mod:`smglm.runtime.zygote`). Default: the ``SMGLM_LOCAL_WARM`` environment variable,
        else on; off, each job starts a fresh interpreter (slower: benchmarks/README.md).
    runner
        ``"podman"`` or ``"docker"``: run each job's image (``JobConfig.image_uri``, e.g. the
        one built for SageMaker) with ``ENGINE run``, ``/opt/ml`` mounted from the job's folder,
        as SageMaker runs it; no warm worker then. Default None: the installed smglm runs
        ``train``.
    engine
        Deprecated spelling of ``runner`` (a DeprecationWarning): ``engine`` now names the
        fitting engine (``JobConfig.engine``: glum or spark).
    """

    name = "local"
    #: Seconds between looks at a job in :meth:`Job.wait` (its state is a file here).
    poll_seconds = 0.1
    #: Jobs run on this machine: they read its files and its MLflow store.
    remote = False
    #: The supervisor ends the job's MLflow run.
    ends_tracking_runs = True
    #: Without ``runner``, the installed package runs; this name is recorded as the image.
    default_image: str | None = LOCAL_IMAGE

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        stop_grace_seconds: float = 120.0,
        python: str | None = None,
        warm: bool | None = None,
        runner: str | None = None,
        engine: str | None = None,
    ) -> None:
        if engine is not None:  # the old spelling, before "engine" meant the fitting engine
            import warnings

            warnings.warn(
                f"LocalBackend(engine={engine!r}) is now LocalBackend(runner={engine!r}): "
                "'engine' names the fitting engine (glum or spark) everywhere else",
                DeprecationWarning,
                stacklevel=2,
            )
            if runner is None:
                runner = engine
        if runner not in (None, "docker", "podman"):
            raise BackendError(f"runner must be 'docker', 'podman' or None; got {runner!r}")
        self.runner = runner
        self.home = Path(home) if home else default_home()
        self.stop_grace_seconds = stop_grace_seconds
        self.python = python or sys.executable
        if warm is None:
            from smglm.config.environment import SMGLM_LOCAL_WARM

            setting = SMGLM_LOCAL_WARM.get()
            if setting not in (0, 1):
                raise BackendError(f"SMGLM_LOCAL_WARM must be 0 or 1; got {setting!r}")
            warm = bool(setting)
        self.warm = warm

    # -- paths ---------------------------------------------------------------------------
    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    def job_dir(self, job_name: str) -> Path:
        return self.jobs_dir / job_name

    def _require(self, job_name: str) -> Path:
        folder = self.job_dir(job_name)
        if not (folder / "state.json").exists():
            known = [j["TrainingJobName"] for j in self.list_jobs(10)]
            raise BackendError(
                f"no local training job named {job_name!r} under {self.jobs_dir}; "
                f"recent jobs: {known}"
            )
        return folder

    # -- Backend -------------------------------------------------------------------------
    def launch(self, spec: JobSpec) -> None:
        folder = self.job_dir(spec.name)
        if folder.exists():
            raise BackendError(f"a training job named {spec.name!r} already exists ({folder})")
        private_dir(self.home)  # the jobs' files are this user's only: 0700 folders, 0600 files
        private_dir(self.jobs_dir)
        folder.mkdir(mode=0o700)
        (folder / "ml").mkdir(mode=0o700)
        # taken before the state exists and handed to the supervisor, which holds it for life
        lock = take_lock(folder / "runner.lock")
        if lock is None:
            raise BackendError(f"another process is launching training job {spec.name!r}")
        try:
            self._launch(spec, folder, lock)
        finally:
            os.close(lock)  # the supervisor's copy keeps the lock

    def _launch(self, spec: JobSpec, folder: Path, lock: int) -> None:
        # no credential in the job's files: the supervisor gets them through its environment
        public, secrets = split_secrets(spec.environment)
        written = dataclasses.replace(spec, environment=public)
        write_json_atomic(folder / "spec.json", written.to_request())
        created = now_iso()
        write_json_atomic(
            folder / "state.json",
            {
                "TrainingJobName": spec.name,
                "TrainingJobArn": f"arn:smglm:local:training-job/{spec.name}",
                "TrainingJobStatus": "InProgress",
                "SecondaryStatus": "Starting",
                "SecondaryStatusTransitions": [
                    {
                        "Status": "Starting",
                        "StartTime": created,
                        "StatusMessage": "Preparing the instances for training",
                    }
                ],
                "CreationTime": created,
                "LastModifiedTime": created,
                "HyperParameters": spec.hyperparameters,
                "AlgorithmSpecification": {"TrainingImage": spec.image_uri},
                "ResourceConfig": {
                    "InstanceType": spec.instance_type,
                    "InstanceCount": spec.instance_count,
                    "VolumeSizeInGB": spec.volume_size_gb,
                },
                "OutputDataConfig": {"S3OutputPath": spec.output_path},
                "Tags": spec.tags,
            },
        )
        (folder / "logs.txt").touch(mode=0o600)
        cmd = [
            self.python,
            "-m",
            "smglm.launch.supervisor",
            str(folder),
            "--grace",
            str(self.stop_grace_seconds),
        ]
        if self.runner is not None:
            import shutil

            if shutil.which(self.runner) is None:
                raise BackendError(
                    f"runner {self.runner!r} is not on PATH: install it, or use runner=None to "
                    "run the installed smglm instead of the image"
                )
            cmd += ["--runner", self.runner]
        elif self.warm:
            self.prewarm()
            cmd += ["--warm", str(self.home)]
        pid = self._start_supervisor(cmd, folder, lock, secrets)
        if record_process(folder / SUPERVISOR_PID_FILE, pid) is None:
            write_private(folder / SUPERVISOR_PID_FILE, str(pid))  # it has ended already

    def _start_supervisor(
        self, cmd: list[str], folder: Path, lock: int, secrets: dict[str, str]
    ) -> int:
        """Start the job's supervisor, detached, handing it the job's lock and, through its
        environment only, the job's ``secrets``: forked from the home's warm worker when that
        runs this interpreter and is ready, else in a fresh one."""
        log = folder / "runner.log"
        log.touch(mode=0o600)
        env = {**os.environ, **secrets}
        if self.warm and self.runner is None and self.python == sys.executable:
            from smglm.launch.warm import start_supervisor

            pid = start_supervisor(self.home, env, folder, log, cmd[3:], lock)
            if pid is not None:
                with log.open("a") as out:
                    out.write(f"[smglm-local] supervisor forked from the warm worker ({pid})\n")
                return pid
        return start_detached(cmd, folder, log, lock, env=env)

    def describe(self, job_name: str) -> dict[str, Any]:
        folder = self._require(job_name)
        state: dict[str, Any] = read_json(folder / "state.json")
        if state["TrainingJobStatus"] in ("InProgress", "Stopping") and not self._runner_alive(
            job_name
        ):
            state = self._end_orphan(folder, state)
        return state

    def _end_orphan(self, folder: Path, state: dict[str, Any]) -> dict[str, Any]:
        """The job's supervisor is gone without recording an end (kill -9, a crash, a full
        disk, the machine restarted): SIGKILL the job's training process (its recorded pid
        and start time) with its process group, record the end with the likeliest reason, and
        end the job's MLflow run FAILED (KILLED when a stop was asked) with that reason."""
        lock = take_lock(folder / "runner.lock")  # one process ends it; a supervisor has none
        if lock is None:
            return state
        try:
            state = read_json(folder / "state.json")
            if state["TrainingJobStatus"] not in ("InProgress", "Stopping"):
                return state  # ended meanwhile
            killed = end_recorded(folder / TRAIN_PID_FILE)
            stopped = (folder / STOP_FILE).exists()
            reason = (
                "InternalServerError: the local job supervisor is gone (killed, or the machine "
                "restarted)"
            )
            full = disk_full(folder)
            if full:
                reason = f"ClientError: {full}; {reason[len('InternalServerError: ') :]}"
            if killed:
                reason += "; its training process was ended"
            reason += "; see logs.txt"
            status = "Stopped" if stopped else "Failed"
            now = now_iso()
            transitions = state.setdefault("SecondaryStatusTransitions", [])
            if transitions and "EndTime" not in transitions[-1]:
                transitions[-1]["EndTime"] = now
            transitions.append({"Status": status, "StartTime": now, "StatusMessage": reason})
            state.update(
                TrainingJobStatus=status,
                SecondaryStatus=status,
                FailureReason=reason,
                TrainingEndTime=now,
                LastModifiedTime=now,
            )
            with contextlib.suppress(OSError), (folder / "logs.txt").open("a") as f:
                f.write(f"[smglm-local] {status}: {reason}\n")
            end_tracking_run(state)
            with contextlib.suppress(OSError):
                write_json_atomic(folder / "state.json", state)
            return state
        finally:
            os.close(lock)

    def stop(self, job_name: str) -> None:
        """Ask the supervisor to stop the job: it polls for the ``stop-requested`` file (a
        signal could arrive before it has installed its handler), then SIGTERMs training and
        SIGKILLs it after the grace period. A job that has ended is left alone (and the log
        says so); an unknown job is a BackendError; a job whose supervisor is gone is ended
        at once (see :meth:`describe`)."""
        state = self.describe(job_name)
        status = state["TrainingJobStatus"]
        if status != "InProgress":
            log.info("job %s is %s: nothing to stop", job_name, status)
            return
        (self.job_dir(job_name) / STOP_FILE).write_text(now_iso())

    def log_lines(self, job_name: str, start: int = 0) -> tuple[list[str], int]:
        """Complete log lines from byte offset ``start``, and the offset after them."""
        path = self._require(job_name) / "logs.txt"
        with path.open("rb") as f:
            f.seek(start)
            chunk = f.read()
        end = chunk.rfind(b"\n")
        if end < 0:
            return [], start
        text = chunk[: end + 1].decode("utf-8", errors="replace")
        return text.splitlines(), start + end + 1

    def list_jobs(self, max_results: int = 50) -> list[dict[str, Any]]:
        if not self.jobs_dir.exists():
            return []
        rows = []
        for folder in self.jobs_dir.iterdir():
            state_path = folder / "state.json"
            if state_path.exists():
                try:
                    rows.append(self.describe(folder.name))
                except (OSError, ValueError):
                    continue
        rows.sort(key=lambda s: s.get("CreationTime", ""), reverse=True)
        return rows[:max_results]

    def prewarm(self) -> bool:
        """Start this home's warm runtime worker now, in the background, so that the first job
        does not wait for its imports (e.g. when a launch form opens). Returns whether the
        worker is used (warm, no ``runner``); never waits."""
        if not self.warm or self.runner is not None:
            return False
        from smglm.config.environment import SMGLM_WARM_IDLE_SECONDS
        from smglm.launch.warm import IDLE_SECONDS, ensure_worker

        ensure_worker(self.home, self.python, float(SMGLM_WARM_IDLE_SECONDS.get() or IDLE_SECONDS))
        return True

    def deployer(self) -> Any:
        """Endpoints and batch transforms on this machine: the runtime's ``serve`` on
        127.0.0.1 (:class:`smglm.launch.deploy.LocalDeployer`)."""
        from smglm.launch.deploy import LocalDeployer

        return LocalDeployer(self.home, self.python)

    def shutdown_warm(self) -> bool:
        """Stop this home's warm runtime worker, if one runs (jobs in flight go on)."""
        from smglm.launch.warm import shutdown_worker

        return shutdown_worker(self.home)

    def prepare_image(self, job: JobConfig) -> str:
        """``job.image_uri`` or :data:`LOCAL_IMAGE`; with a ``runner``, ``job.image_uri``
        (the runner runs it), a ConfigError naming ``image_uri`` when it is not set."""
        if self.runner and not job.image_uri:
            msg = f"the local backend with runner={self.runner!r} runs an image; give image_uri"
            raise ConfigError([Issue("image_uri", msg)])
        return super().prepare_image(job)

    def request(self, spec: JobSpec, *, region: str | None = None) -> dict[str, Any]:
        """The request SageMaker would receive for ``spec`` (nothing is sent): CreateTrainingJob's
        (:meth:`JobSpec.to_request`), or for a Spark job (``engine`` hyperparameter ``spark``)
        CreateProcessingJob's on AWS's Spark image of ``region`` (default
        ``AWS_DEFAULT_REGION``, ``AWS_REGION``, else us-east-1), as the sagemaker backend sends
        it (:func:`smglm.launch.processing.processing_request`). The URIs are this job's
        (``file://``); on SageMaker they are ``s3://``."""
        from smglm.launch import processing

        if not processing.is_spark(spec):
            return spec.to_request()
        region = (
            region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
        ) or "us-east-1"
        return processing.processing_request(spec, image_uri=processing.spark_image_uri(region))

    # -- helpers -------------------------------------------------------------------------
    def spec(self, job_name: str) -> JobSpec:
        """The spec as launched (the job's ``spec.json``)."""
        return JobSpec.from_request(read_json(self._require(job_name) / "spec.json"))

    def _runner_alive(self, job_name: str) -> bool:
        """Whether the job's supervisor runs: it holds the job's ``runner.lock`` from before
        the job's state exists until it ends, however it ends (never a pid, which the system
        reuses)."""
        return lock_held(self.job_dir(job_name) / "runner.lock")
