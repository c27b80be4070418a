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
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smglm.errors import BackendError, ConfigError, Issue
from smglm.launch.backend import BaseBackend, default_home
from smglm.launch.processes import lock_held, start_detached, take_lock
from smglm.launch.spec import JobSpec
from smglm.redaction import split_secrets

if TYPE_CHECKING:
    from smglm.config.job import JobConfig

__all__ = [
    "LOCAL_IMAGE",
    "STOP_FILE",
    "LocalBackend",
    "now_iso",
    "private_dir",
    "read_json",
    "write_json_atomic",
    "write_private",
]

#: Written into a job's folder to ask its supervisor to stop the job.
STOP_FILE = "stop-requested"

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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write_private(tmp, json.dumps(data, indent=1, default=str))
    tmp.replace(path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


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
    engine
        ``"podman"`` or ``"docker"``: run each job's image (``JobConfig.image_uri``, e.g. the
        one built for SageMaker) with ``ENGINE run``, ``/opt/ml`` mounted from the job's folder,
        as SageMaker runs it; no warm worker then. Default None: the installed smglm runs
        ``train``.
    """

    name = "local"
    #: Seconds between looks at a job in :meth:`Job.wait` (its state is a file here).
    poll_seconds = 0.1
    #: Jobs run on this machine: they read its files and its MLflow store.
    remote = False
    #: The supervisor ends the job's MLflow run.
    ends_tracking_runs = True
    #: Without ``engine``, the installed package runs; this name is recorded as the image.
    default_image: str | None = LOCAL_IMAGE

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        stop_grace_seconds: float = 120.0,
        python: str | None = None,
        warm: bool | None = None,
        engine: str | None = None,
    ) -> None:
        if engine not in (None, "docker", "podman"):
            raise BackendError(f"engine must be 'docker', 'podman' or None; got {engine!r}")
        self.engine = engine
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
        if self.engine is not None:
            import shutil

            if shutil.which(self.engine) is None:
                raise BackendError(
                    f"engine {self.engine!r} is not on PATH: install it, or use engine=None to "
                    "run the installed smglm instead of the image"
                )
            cmd += ["--engine", self.engine]
        elif self.warm:
            self.prewarm()
            cmd += ["--warm", str(self.home)]
        pid = self._start_supervisor(cmd, folder, lock, secrets)
        write_private(folder / "runner.pid", str(pid))

    def _start_supervisor(
        self, cmd: list[str], folder: Path, lock: int, secrets: dict[str, str]
    ) -> int:
        """Start the job's supervisor, detached, handing it the job's lock and, through its
        environment only, the job's ``secrets``: forked from the home's warm worker when that
        runs this interpreter and is ready, else in a fresh one."""
        log = folder / "runner.log"
        log.touch(mode=0o600)
        env = {**os.environ, **secrets}
        if self.warm and self.engine is None and self.python == sys.executable:
            from smglm.launch.warm import start_supervisor

            pid = start_supervisor(self.home, env, folder, log, cmd[3:], lock)
            if pid is not None:
                with log.open("a") as out:
                    out.write(f"[smglm-local] supervisor forked from the warm worker ({pid})\n")
                return pid
        return start_detached(cmd, folder, log, lock, env=env)

    def describe(self, job_name: str) -> dict[str, Any]:
        state: dict[str, Any] = read_json(self._require(job_name) / "state.json")
        if state["TrainingJobStatus"] in ("InProgress", "Stopping") and not self._runner_alive(
            job_name
        ):
            # the supervisor died without recording an end (machine reboot, kill -9)
            state["TrainingJobStatus"] = "Failed"
            state["FailureReason"] = (
                "InternalServerError: the local job supervisor is gone (killed or the machine "
                "restarted); see logs.txt"
            )
        return state

    def stop(self, job_name: str) -> None:
        """Ask the supervisor to stop the job: it polls for the ``stop-requested`` file (a
        signal could arrive before it has installed its handler), then SIGTERMs training and
        SIGKILLs it after the grace period."""
        folder = self._require(job_name)
        state = read_json(folder / "state.json")
        if state["TrainingJobStatus"] != "InProgress":
            return
        (folder / STOP_FILE).write_text(now_iso())

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
        worker is used (warm, no ``engine``); never waits."""
        if not self.warm or self.engine is not None:
            return False
        from smglm.config.environment import SMGLM_WARM_IDLE_SECONDS
        from smglm.launch.warm import IDLE_SECONDS, ensure_worker

        ensure_worker(self.home, self.python, float(SMGLM_WARM_IDLE_SECONDS.get() or IDLE_SECONDS))
        return True

    def shutdown_warm(self) -> bool:
        """Stop this home's warm runtime worker, if one runs (jobs in flight go on)."""
        from smglm.launch.warm import shutdown_worker

        return shutdown_worker(self.home)

    def prepare_image(self, job: JobConfig) -> str:
        """``job.image_uri`` or :data:`LOCAL_IMAGE`; with an ``engine``, ``job.image_uri``
        (the engine runs it), a ConfigError naming ``image_uri`` when it is not set."""
        if self.engine and not job.image_uri:
            msg = f"the local backend with engine={self.engine!r} runs an image; give image_uri"
            raise ConfigError([Issue("image_uri", msg)])
        return super().prepare_image(job)

    # -- helpers -------------------------------------------------------------------------
    def spec(self, job_name: str) -> JobSpec:
        """The spec as launched (the job's ``spec.json``)."""
        return JobSpec.from_request(read_json(self._require(job_name) / "spec.json"))

    def _runner_alive(self, job_name: str) -> bool:
        """Whether the job's supervisor runs: it holds the job's ``runner.lock`` from before
        the job's state exists until it ends, however it ends (never a pid, which the system
        reuses)."""
        return lock_held(self.job_dir(job_name) / "runner.lock")
