"""The Job handle: what ``smglm.train(...)`` returns, for either backend.

A Job is a name plus a backend; everything else (status, logs, metrics, artifacts) is read
from the backend when asked, so a handle can be re-made by name after a kernel restart with
:meth:`Job.attach`.
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from smglm.contract import TERMINAL
from smglm.errors import BackendError, JobFailed
from smglm.launch.backend import Backend, get_backend

__all__ = ["Job", "list_jobs"]


class Job:
    """A training job on a backend.

    Attributes
    ----------
    name
        The training job's name.
    backend
        The :class:`~smglm.launch.backend.Backend` it runs on.
    """

    def __init__(
        self, name: str, backend: Backend, *, reused: bool = False, run_id: str | None = None
    ) -> None:
        self.name = name
        self.backend = backend
        self.reused = reused
        self.run_id = run_id
        self._final: dict[str, Any] | None = None
        self._log_pos = 0
        self._artifacts: Path | None = None

    @classmethod
    def attach(cls, name: str, backend: str | Backend = "local", **options: Any) -> Job:
        """Re-attach to an existing job by name (e.g. after a kernel restart)."""
        be = get_backend(backend, **options) if isinstance(backend, str) else backend
        job = cls(name, be)
        job.describe()  # raises if there is no such job
        return job

    # -- state ---------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The DescribeTrainingJob-shaped state (cached once the job has ended)."""
        if self._final is not None:
            return self._final
        state = self.backend.describe(self.name)
        if state.get("TrainingJobStatus") in TERMINAL:
            self._final = state
            self._finalize_tracking(state)
        return state

    def _finalize_tracking(self, state: dict[str, Any]) -> None:
        """End the job's MLflow run (the local supervisor does it for local jobs)."""
        if self.backend.name == "local" or not self.run_id:
            return
        import logging

        from smglm.tracking.runs import finalize_job_run, resolve_tracking_uri

        tags = state.get("Tags") or {}
        # the tag is redacted: credentials, if any, come from MLFLOW_TRACKING_URI
        uri = resolve_tracking_uri(tags.get("smglm.tracking_uri"))

        def fetch() -> tuple[Path, Path | None] | None:
            try:
                folder = self.artifacts()
            except BackendError:
                return None
            out = folder / "output"
            return folder / "model", out if out.exists() else None

        try:
            finalize_job_run(uri, self.run_id, state, fetch)
        except Exception as exc:  # tracking never breaks the handle
            logging.getLogger(__name__).warning("could not end MLflow run %s: %s", self.run_id, exc)

    @property
    def status(self) -> str:
        """The primary status: InProgress, Completed, Failed, Stopping or Stopped."""
        return str(self.describe().get("TrainingJobStatus"))

    @property
    def secondary_status(self) -> str:
        """SageMaker's secondary status: Starting, Downloading, Training, Uploading, ..."""
        return str(self.describe().get("SecondaryStatus"))

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @property
    def failure_reason(self) -> str | None:
        return self.describe().get("FailureReason")

    @property
    def billable_seconds(self) -> int | None:
        """Billable seconds, once the job has ended."""
        value = self.describe().get("BillableTimeInSeconds")
        return int(value) if value is not None else None

    @property
    def model_uri(self) -> str | None:
        return (self.describe().get("ModelArtifacts") or {}).get("S3ModelArtifacts")

    # -- logs and waiting ----------------------------------------------------------------
    def logs(self) -> str:
        """The whole log so far."""
        lines, _ = self.backend.log_lines(self.name, 0)
        return "\n".join(lines)

    def _new_log_lines(self) -> list[str]:
        lines, self._log_pos = self.backend.log_lines(self.name, self._log_pos)
        return lines

    def wait(
        self,
        *,
        logs: bool = True,
        timeout: float | None = None,
        poll: float | None = None,
        raise_on_failure: bool = True,
        out: TextIO | None = None,
        ask: Callable[[str], str] = input,
    ) -> Job:
        """Wait until the job ends, printing status changes (and log lines with ``logs``).

        ``poll``: seconds between looks at the job (default: the backend's ``poll_seconds``,
        0.1 s for the local backend, whose state is a file here; else 0.5 s).
        Ctrl-C while waiting asks whether to stop the job; it stops it if told ``y``.
        Raises :class:`~smglm.errors.JobFailed` if the job failed or was stopped (unless
        ``raise_on_failure`` is false).
        """
        stream = out or sys.stdout
        if poll is None:
            poll = float(getattr(self.backend, "poll_seconds", 0.5))
        deadline = None if timeout is None else time.monotonic() + timeout
        last_status = None
        try:
            while True:
                state = self.backend.describe(self.name)
                status = (state.get("TrainingJobStatus"), state.get("SecondaryStatus"))
                if status != last_status:
                    stream.write(f"[{self.name}] {status[0]} - {status[1]}\n")
                    last_status = status
                if logs:
                    for line in self._new_log_lines():
                        stream.write(line + "\n")
                stream.flush()
                if status[0] in TERMINAL:
                    self._final = state
                    self._finalize_tracking(state)
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"job {self.name!r} still {status[0]} after {timeout} s")
                time.sleep(poll)
        except KeyboardInterrupt:
            answer = ask(f"Stop training job {self.name!r}? [y/N] ").strip().lower()
            if answer in ("y", "yes"):
                self.stop()
                stream.write(f"[{self.name}] stop requested\n")
            else:
                stream.write(f"[{self.name}] still running; job.wait() to follow it again\n")
            return self
        if raise_on_failure and self.status != "Completed":
            raise JobFailed(self.name, self.status, self.failure_reason)
        return self

    def stop(self) -> None:
        """Stop the job (SIGTERM to training; SIGKILL after the grace period)."""
        self.backend.stop(self.name)

    # -- results -------------------------------------------------------------------------
    @property
    def metrics(self) -> dict[str, Any]:
        """Final metrics: the job's ``metrics.json`` when its artifacts are available, else
        the values SageMaker captured from the log (``FinalMetricDataList``)."""
        if self.status == "Completed":
            try:
                return dict(self.model.metrics)
            except BackendError:
                pass
        rows = self.describe().get("FinalMetricDataList") or []
        return {"final": {r["MetricName"]: r["Value"] for r in rows}}

    def artifacts(self, dest: str | Path | None = None) -> Path:
        """Download and extract model.tar.gz (to ``model/``) and output.tar.gz (to
        ``output/``); cached: a second call downloads nothing."""
        if self._artifacts is not None and dest is None:
            return self._artifacts
        from smglm.launch.local import default_home
        from smglm.launch.storage import extract_tar, open_storage

        state = self.describe()
        home = getattr(self.backend, "home", None) or default_home()
        folder = Path(dest) if dest else Path(home) / "artifacts" / self.name
        model_uri = (state.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
        if not model_uri:
            status = state.get("TrainingJobStatus")
            raise BackendError(f"job {self.name!r} has no model artifacts (status {status})")
        if not (folder / "model" / "model.json").exists():
            tmp = folder / ".download"
            archive = open_storage(model_uri).download_file(model_uri, tmp / "model.tar.gz")
            extract_tar(archive, folder / "model")
            out_uri = (state.get("OutputArtifacts") or {}).get(
                "S3OutputArtifacts", model_uri.replace("model.tar.gz", "output.tar.gz")
            )
            storage = open_storage(out_uri)
            if storage.exists(out_uri):
                archive = storage.download_file(out_uri, tmp / "output.tar.gz")
                extract_tar(archive, folder / "output")
        self._artifacts = folder
        return folder

    @property
    def model(self) -> Any:
        """The trained model as a :class:`~smglm.glm.FitResult` (loaded from the artifacts)."""
        from smglm.glm.result import load_model

        return load_model(self.artifacts() / "model")

    def spec(self) -> Any:
        """The job's :class:`~smglm.launch.spec.JobSpec` (its CreateTrainingJob request)."""
        from smglm.launch.spec import JobSpec

        own = getattr(self.backend, "spec", None)
        if own is not None:
            return own(self.name)
        return JobSpec.from_request(self.describe())

    def estimator(self, *, session: Any | None = None) -> Any:
        """The same job as a SageMaker SDK object (v2 ``Estimator`` or v3 ``ModelTrainer``,
        whichever SDK is installed), for Pipelines, tuning and deployment."""
        from smglm.launch.sdk import to_estimator

        return to_estimator(self.spec(), session=session)

    def report(self, **options: Any) -> Any:
        """The job's report: metrics, coefficients, one-ways, lift, Gini, residuals, log tail
        (an object that renders as HTML in a notebook and as text elsewhere)."""
        from smglm.notebook.views import report

        return report(self, **options)

    # -- reprs ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        state = self.describe()
        status = state.get("TrainingJobStatus")
        text = f"Job({self.name!r}, backend={self.backend.name!r}, status={status!r}"
        if state.get("FailureReason"):
            text += f", reason={state['FailureReason'][:80]!r}"
        return text + ")"

    def _repr_html_(self) -> str:
        state = self.describe()
        status = str(state.get("TrainingJobStatus"))
        color = {"Completed": "#1a7f37", "Failed": "#cf222e", "Stopped": "#9a6700"}.get(
            status, "#0969da"
        )
        rows = [
            ("job", self.name),
            ("backend", self.backend.name),
            ("status", f"{status} ({state.get('SecondaryStatus')})"),
            ("created", _fmt_time(state.get("CreationTime"))),
        ]
        if state.get("BillableTimeInSeconds") is not None:
            rows.append(("billable seconds", str(state["BillableTimeInSeconds"])))
        if state.get("FailureReason"):
            rows.append(("failure", state["FailureReason"]))
        for m in state.get("FinalMetricDataList") or []:
            rows.append((m["MetricName"], f"{m['Value']:.6g}"))
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        return (
            f"<div><b style='color:{color}'>&#9679;</b> <b>smglm training job</b>"
            f"<table>{body}</table></div>"
        )


def _fmt_time(value: Any) -> str:
    if not value:
        return ""
    try:
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M:%S %Z")
    except ValueError:
        return str(value)


def list_jobs(backend: str | Backend = "local", max_results: int = 20, **options: Any) -> list[Job]:
    """Recent jobs of a backend, newest first, as handles."""
    be = get_backend(backend, **options) if isinstance(backend, str) else backend
    return [Job(s["TrainingJobName"], be) for s in be.list_jobs(max_results)]
