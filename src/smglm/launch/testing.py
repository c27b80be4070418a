"""A backend for tests: :class:`FakeBackend`, jobs in memory (as httpx ships ``MockTransport``).

It runs nothing: no process, no AWS, no wait. Each job follows a script of states, one step
per look (``describe``/``job_state``), and ends in its last state; its log, metrics and
artifacts are what the test gives. :func:`smglm.train`, the :class:`~smglm.launch.job.Job`
handle, the magics and the form use it as they use a real backend::

    from smglm.launch.testing import FakeBackend

    backend = FakeBackend(tmp_path, script=["InProgress", "Completed"], log=["fitting..."],
                          model_dir=fit_result.save(tmp_path / "model"))
    job = smglm.train(config, df, backend=backend, tracking=False)
    job.wait(poll=0)                 # two looks: InProgress, then Completed
    job.model                        # the FitResult packed from model_dir

To reach it by name (``--backend fake`` in a magic, the form's dropdown), register it:
``register_backend("fake", lambda **_: backend)``, and unregister it after the test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from smglm.contract import TERMINAL
from smglm.errors import BackendError
from smglm.launch.backend import BaseBackend
from smglm.launch.spec import JobSpec

__all__ = ["FakeBackend", "FakeJob"]

#: The secondary status a scripted primary status shows when the script does not say.
_SECONDARY = {
    "InProgress": "Training",
    "Stopping": "Stopping",
    "Completed": "Completed",
    "Failed": "Failed",
    "Stopped": "Stopped",
}

_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)

Step = str | tuple[str, str] | dict[str, Any]


@dataclass
class FakeJob:
    """One job of a :class:`FakeBackend`: its script, its log and what was asked of it.

    Attributes
    ----------
    name
        The job's name.
    script
        Its states, one per look; a look past the end repeats the last.
    log
        Its log lines (all there from the start).
    spec
        The JobSpec it was launched with (None for a job added with ``add_job``).
    created
        Its creation time (ISO).
    looks
        How many times its state was read.
    stop_requested
        Whether ``stop`` was called while it ran.
    """

    name: str
    script: list[dict[str, Any]]
    log: list[str] = field(default_factory=list)
    spec: JobSpec | None = None
    created: str = ""
    looks: int = 0
    stop_requested: bool = False


class FakeBackend(BaseBackend):
    """An in-memory backend whose jobs follow a script.

    Parameters
    ----------
    home
        smglm's working folder for the test (default storage ``file://<home>/storage``,
        artifacts downloaded to ``home/artifacts``); default :func:`default_home`.
    script
        The states a launched job goes through, one per look: a primary status
        (``"InProgress"``, ``"Completed"``, ``"Failed"``, ``"Stopped"``), a
        ``(status, secondary status)`` pair, or a dict of DescribeTrainingJob keys
        (``{"TrainingJobStatus": "Failed", "FailureReason": "..."}``). Default: one look
        InProgress, then Completed.
    log
        The log lines of a launched job.
    model_dir, output_dir
        Folders packed into the job's ``model.tar.gz`` and ``output.tar.gz`` (at the spec's
        ``file://`` artifact locations) when a launched job completes; without ``model_dir``
        a completed job has no artifacts.
    metrics
        Final metrics (name -> value) a completed job reports, as SageMaker's
        ``FinalMetricDataList``.
    name
        The name it reports (default: the class's, ``fake``).

    Attributes
    ----------
    jobs
        The jobs by name (:class:`FakeJob`): what was launched, looked at and stopped.
    """

    name = "fake"
    poll_seconds = 0.0
    remote = False
    #: The image name launched jobs record unless ``JobConfig.image_uri`` is set.
    default_image: str | None = "smglm-fake"

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        script: Sequence[Step] = ("InProgress", "Completed"),
        log: Sequence[str] = (),
        model_dir: str | Path | None = None,
        output_dir: str | Path | None = None,
        metrics: dict[str, float] | None = None,
        name: str | None = None,
    ) -> None:
        if home is not None:
            self.home = Path(home)
        if name is not None:
            self.name = name
        self.script = list(script)
        self.log = list(log)
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.metrics = dict(metrics or {})
        self.jobs: dict[str, FakeJob] = {}

    def __repr__(self) -> str:
        return f"FakeBackend(name={self.name!r}, jobs={list(self.jobs)})"

    # -- setting up ---------------------------------------------------------------------------
    def add_job(
        self,
        name: str,
        *script: Step,
        log: Sequence[str] = (),
        tags: dict[str, str] | None = None,
    ) -> FakeJob:
        """Add a job that was not launched here (e.g. one to attach to), following ``script``
        (default: Completed); ``tags`` are its tags."""
        steps = [self._step(s) for s in (script or ("Completed",))]
        if tags:
            steps = [{"Tags": dict(tags), **s} for s in steps]
        job = FakeJob(name, steps, list(log), created=self._created())
        self.jobs[name] = job
        return job

    def _created(self) -> str:
        return (_EPOCH + timedelta(seconds=len(self.jobs))).isoformat()

    @staticmethod
    def _step(step: Step) -> dict[str, Any]:
        if isinstance(step, str):
            return {"TrainingJobStatus": step, "SecondaryStatus": _SECONDARY.get(step, step)}
        if isinstance(step, tuple):
            return {"TrainingJobStatus": step[0], "SecondaryStatus": step[1]}
        if "TrainingJobStatus" not in step:
            raise BackendError(f"a scripted state needs 'TrainingJobStatus'; got {step!r}")
        status = step["TrainingJobStatus"]
        return {"SecondaryStatus": _SECONDARY.get(status, status), **step}

    def _job(self, job_name: str) -> FakeJob:
        job = self.jobs.get(job_name)
        if job is None:
            raise BackendError(f"no {self.name} job named {job_name!r}; jobs: {list(self.jobs)}")
        return job

    # -- the five calls -----------------------------------------------------------------------
    def launch(self, spec: JobSpec) -> None:
        """Record the job; it starts at the first state of the script."""
        if spec.name in self.jobs:
            raise BackendError(f"a job named {spec.name!r} already exists")
        steps = [self._step(s) for s in self.script]
        self.jobs[spec.name] = FakeJob(
            spec.name, steps, list(self.log), spec=spec, created=self._created()
        )

    def describe(self, job_name: str) -> dict[str, Any]:
        """The job's next state (a DescribeTrainingJob-shaped dict); the last one repeats."""
        job = self._job(job_name)
        index = min(job.looks, len(job.script) - 1)
        job.looks += 1
        return self._state(job, index)

    def _state(self, job: FakeJob, index: int) -> dict[str, Any]:
        step = job.script[index]
        status = step["TrainingJobStatus"]
        seen: list[str] = []
        for s in job.script[: index + 1]:
            if not seen or seen[-1] != s["SecondaryStatus"]:
                seen.append(s["SecondaryStatus"])
        state: dict[str, Any] = {
            "TrainingJobName": job.name,
            "TrainingJobStatus": status,
            "CreationTime": job.created,
            "SecondaryStatusTransitions": [{"Status": s} for s in seen],
            "Tags": dict(job.spec.tags) if job.spec else {},
        }
        if job.spec is not None:
            request = job.spec.to_request()
            state.update(
                {k: request[k] for k in ("AlgorithmSpecification", "ResourceConfig")},
                HyperParameters=request["HyperParameters"],
                OutputDataConfig=request["OutputDataConfig"],
                InputDataConfig=request["InputDataConfig"],
            )
            if status == "Completed":
                state.update(self._artifacts(job.spec))
        if status == "Completed" and self.metrics:
            state["FinalMetricDataList"] = [
                {"MetricName": k, "Value": v} for k, v in self.metrics.items()
            ]
        state.update(step)
        return state

    def _artifacts(self, spec: JobSpec) -> dict[str, Any]:
        """Pack model_dir/output_dir to the spec's artifact locations (once); their URIs."""
        if self.model_dir is None or not spec.output_path.startswith("file://"):
            return {}
        from smglm.launch.storage import pack_dir

        out: dict[str, Any] = {}
        for folder, uri, key, inner in (
            (self.model_dir, spec.model_artifacts_uri, "ModelArtifacts", "S3ModelArtifacts"),
            (self.output_dir, spec.output_artifacts_uri, "OutputArtifacts", "S3OutputArtifacts"),
        ):
            if folder is None:
                continue
            path = Path(uri.removeprefix("file://"))
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                pack_dir(folder, path)
            out[key] = {inner: uri}
        return out

    def stop(self, job_name: str) -> None:
        """Stop the job: its next look is ``Stopped`` (a job that has ended is left alone)."""
        job = self._job(job_name)
        index = min(job.looks, len(job.script)) - 1
        if index >= 0 and job.script[index]["TrainingJobStatus"] in TERMINAL:
            return
        job.stop_requested = True
        job.script = [*job.script[: max(index + 1, 0)], self._step("Stopped")]
        job.looks = len(job.script) - 1

    def log_lines(self, job_name: str, start: int = 0) -> tuple[list[str], int]:
        """The job's log lines from line ``start`` on (all are there from the start)."""
        lines = self._job(job_name).log
        return lines[start:], max(start, len(lines))

    def list_jobs(self, max_results: int = 50) -> list[dict[str, Any]]:
        """The jobs' current states, newest first (looking does not move a script on)."""
        rows = [
            self._state(job, max(min(job.looks, len(job.script)) - 1, 0))
            for job in self.jobs.values()
        ]
        rows.sort(key=lambda s: s["CreationTime"], reverse=True)
        return rows[:max_results]

    def spec(self, job_name: str) -> JobSpec:
        """The spec the job was launched with."""
        job = self._job(job_name)
        if job.spec is None:
            raise BackendError(f"job {job_name!r} was added, not launched: it has no spec")
        return job.spec
