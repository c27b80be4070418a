"""The Job handle: what ``smglm.train(...)`` returns, for any backend.

A Job is a name plus a backend; everything else (status, logs, metrics, artifacts) is read
from the backend when asked, so a handle can be re-made by name after a kernel restart with
:meth:`Job.attach`. It reads the job's state through the backend's neutral
:class:`~smglm.launch.backend.JobState` (:meth:`Job.state`), never a service's own response,
so it works the same for a training job, a processing job or the local emulation.
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from smglm.errors import BackendError, JobFailed
from smglm.launch.backend import DEFAULT_BACKEND, Backend, JobState, get_backend

if TYPE_CHECKING:
    from smglm.glm.report import Report
    from smglm.launch.deploy import Predictor, TransformJob

__all__ = ["Job", "list_jobs"]

#: Written last into an artifacts folder: the folder holds the job's whole artifacts.
_ARTIFACTS_MARKER = ".smglm-artifacts.json"


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
        self,
        name: str,
        backend: Backend,
        *,
        reused: bool = False,
        run_id: str | None = None,
        tracking_uri: str | None = None,
    ) -> None:
        self.name = name
        self.backend = backend
        self.reused = reused
        self.run_id = run_id
        #: The store of the job's run, as the launching process resolved it (None: the one
        #: the job's ``smglm.tracking_uri`` tag names, when the backend shows its tags).
        self.tracking_uri = tracking_uri
        self._final: JobState | None = None
        self._log_pos = 0
        self._artifacts: Path | None = None

    @classmethod
    def attach(cls, name: str, backend: str | Backend = DEFAULT_BACKEND, **options: Any) -> Job:
        """Re-attach to an existing job by name (e.g. after a kernel restart), with its MLflow
        run's id (:attr:`run_id`) when the job was tracked."""
        from smglm.tracking.runs import RUN_ID_TAG

        be = get_backend(backend, **options) if isinstance(backend, str) else backend
        job = cls(name, be)
        state = be.job_state(name)  # raises if there is no such job
        job.run_id = state.tags.get(RUN_ID_TAG) or job._find_run_id(state)
        job._record(state)
        return job

    def _find_run_id(self, state: JobState) -> str | None:
        """The id of the MLflow run tagged with this job's name (jobs whose tags do not hold
        the run id), looked up in the store the job recorded, else the default one."""
        import logging

        from smglm.tracking.runs import find_runs, mlflow_available, resolve_tracking_uri

        if not mlflow_available():
            return None
        try:
            uri = resolve_tracking_uri(state.tags.get("smglm.tracking_uri"))
            db = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else None
            if db is not None and not Path(db).exists():
                return None  # never create a store only to look in it
            runs = find_runs(uri, None, {"smglm.job_name": self.name}, max_results=1)
        except Exception as exc:  # tracking never breaks the handle
            logging.getLogger(__name__).info("no MLflow run found for %s: %s", self.name, exc)
            return None
        return str(runs[0].info.run_id) if runs else None

    # -- state ---------------------------------------------------------------------------
    def state(self) -> JobState:
        """The job's state in backend-neutral words (cached once the job has ended)."""
        if self._final is not None:
            return self._final
        return self._record(self.backend.job_state(self.name))

    def _record(self, state: JobState) -> JobState:
        if state.done and self._final is None:
            self._final = state
            self._finalize_tracking(state)
        return state

    def describe(self) -> dict[str, Any]:
        """The state shaped like DescribeTrainingJob's response, whatever the backend (cached
        once the job has ended); :meth:`state` has it in backend-neutral words."""
        return self.state().as_training_job()

    def _finalize_tracking(self, state: JobState) -> None:
        """End the job's MLflow run, unless the backend's own job process does."""
        if self.backend.ends_tracking_runs or not self.run_id:
            return
        import logging

        from smglm.tracking.runs import finalize_job_run, resolve_tracking_uri

        # the tag is redacted: credentials, if any, come from MLFLOW_TRACKING_URI
        uri = self.tracking_uri or resolve_tracking_uri(state.tags.get("smglm.tracking_uri"))

        def fetch() -> tuple[Path, Path | None] | None:
            try:
                folder = self.artifacts()
            except BackendError:
                return None
            out = folder / "output"
            return folder / "model", out if out.exists() else None

        try:
            finalize_job_run(uri, self.run_id, state.as_training_job(), fetch)
        except Exception as exc:  # tracking never breaks the handle
            logging.getLogger(__name__).warning("could not end MLflow run %s: %s", self.run_id, exc)

    @property
    def status(self) -> str:
        """The primary status: InProgress, Completed, Failed, Stopping or Stopped."""
        return self.state().status

    @property
    def secondary_status(self) -> str:
        """The step the job is at: Starting, Downloading, Training, Uploading, ..."""
        return str(self.state().secondary_status)

    @property
    def done(self) -> bool:
        """Whether the job has ended (Completed, Failed or Stopped)."""
        return self.state().done

    @property
    def failure_reason(self) -> str | None:
        """Why the job failed or was stopped (None otherwise)."""
        return self.state().failure_reason

    @property
    def billable_seconds(self) -> int | None:
        """Billable seconds, once the job has ended."""
        return self.state().billable_seconds

    @property
    def model_uri(self) -> str | None:
        """Where the job's ``model.tar.gz`` is, once written."""
        return self.state().model_uri

    # -- logs and waiting ----------------------------------------------------------------
    def log_locations(self) -> list[str]:
        """Where to read the job's log outside smglm: for a SageMaker job its CloudWatch log
        group and streams with console links, and the SageMaker console's page of the job
        (empty for a local job: :meth:`logs` has the whole log). Never raises: a failure to
        look is one line saying so."""
        try:
            return list(self.backend.log_locations(self.name))
        except Exception as exc:  # a hint never breaks the handle
            return [f"(log location not available: {exc})"]

    def announce(self, out: TextIO | None = None) -> None:
        """Print where the job's log is and how to follow it again after a kernel restart
        (done when the job is launched; nothing for a local job)."""
        lines = self.log_locations()
        if not lines:
            return
        stream = out or sys.stdout
        for line in lines:
            stream.write(f"[smglm] {line}\n")
        backend = self.backend.name
        stream.write(
            f"[smglm] to follow it from another kernel or after a restart: "
            f"%sm_logs {self.name} --backend {backend} --follow "
            f"(shell: smglm logs {self.name} --backend {backend} -f)\n"
        )
        stream.flush()

    def billing(self) -> str | None:
        """What the ended job cost, in one line (billable seconds, managed spot's saving, the
        warm pool's idle time, the cost at the price table's price); None while it runs or
        when it costs nothing (local jobs)."""
        state = self.state()
        if not state.done:
            return None
        try:
            return self.backend.billing_summary(state)
        except Exception as exc:  # a cost line never breaks the handle
            return f"(cost not available: {exc})"

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
        0.1 s for the local backend, whose state is a file here; 0.5 s for SageMaker).
        Ctrl-C while waiting asks whether to stop the job; it stops it if told ``y``.
        Raises :class:`~smglm.errors.JobFailed` if the job failed or was stopped (unless
        ``raise_on_failure`` is false).
        """
        stream = out or sys.stdout
        if poll is None:
            poll = float(self.backend.poll_seconds)
        deadline = None if timeout is None else time.monotonic() + timeout
        last_status = None
        try:
            while True:
                state = self.backend.job_state(self.name)
                status = (state.status, state.secondary_status)
                if status != last_status:
                    stream.write(f"[{self.name}] {status[0]} - {status[1]}\n")
                    last_status = status
                if logs:
                    for line in self._new_log_lines():
                        stream.write(line + "\n")
                stream.flush()
                if state.done:
                    self._record(state)
                    self._report_end(state, stream)
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

    def _report_end(self, state: JobState, stream: TextIO) -> None:
        """At the end of :meth:`wait`: the bill, and on failure the reason and where the log is."""
        line = self.billing()
        if line:
            stream.write(f"[smglm] {line}\n")
        locations = self.log_locations() if state.status != "Completed" else []
        if locations:  # a remote job failed or was stopped: why, and where its log is
            if state.failure_reason:
                stream.write(f"[smglm] failure reason: {state.failure_reason}\n")
            for location in locations:
                stream.write(f"[smglm] {location}\n")
        stream.flush()

    def stop(self) -> bool:
        """Stop the job (SIGTERM to training; SIGKILL after the grace period). Returns whether
        a stop was requested: False when the job had already ended (nothing to stop; its
        :attr:`status` and :attr:`failure_reason` say how). An unknown job is a BackendError."""
        state = self.backend.job_state(self.name)
        if state.done:
            self._record(state)
            return False
        self.backend.stop(self.name)
        return True

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
        return {"final": dict(self.state().final_metrics)}

    def artifacts(self, dest: str | Path | None = None) -> Path:
        """Download and extract model.tar.gz (to ``model/``) and output.tar.gz (to
        ``output/``); cached: a second call downloads nothing.

        Each archive is unpacked safely into a temporary folder and renamed into place; the
        file ``.smglm-artifacts.json``, written last, marks the folder complete (a failed or
        interrupted extraction is redone on the next call, never served as complete)."""
        if self._artifacts is not None and dest is None:
            return self._artifacts
        import json
        import tempfile

        from smglm.launch.storage import extract_tar, open_storage

        state = self.state()
        folder = Path(dest) if dest else Path(self.backend.home) / "artifacts" / self.name
        model_uri = state.model_uri
        if not model_uri:
            status = state.status
            raise BackendError(f"job {self.name!r} has no model artifacts (status {status})")
        marker = folder / _ARTIFACTS_MARKER
        record = {"job": self.name, "model_uri": model_uri, "output_uri": state.output_uri}
        try:
            complete = json.loads(marker.read_text(encoding="utf-8")) == record
        except (OSError, ValueError):
            complete = False
        if not complete or not (folder / "model" / "model.json").is_file():
            marker.unlink(missing_ok=True)
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as tmp:
                archive = open_storage(model_uri).download_file(
                    model_uri, Path(tmp) / "model.tar.gz"
                )
                extract_tar(archive, folder / "model", replace=True)
                out_uri = state.output_uri
                storage = open_storage(out_uri) if out_uri else None
                if out_uri and storage is not None and storage.exists(out_uri):
                    archive = storage.download_file(out_uri, Path(tmp) / "output.tar.gz")
                    extract_tar(archive, folder / "output", replace=True)
            partial = marker.with_name(f"{marker.name}.tmp")
            partial.write_text(json.dumps(record), encoding="utf-8")
            partial.replace(marker)
        self._artifacts = folder
        return folder

    @property
    def model(self) -> Any:
        """The trained model as a :class:`~smglm.glm.FitResult` (loaded from the artifacts)."""
        from smglm.glm.result import load_model

        return load_model(self.artifacts() / "model")

    def spec(self) -> Any:
        """The job's :class:`~smglm.launch.spec.JobSpec` (its CreateTrainingJob request)."""
        return self.backend.spec(self.name)

    def request(self) -> dict[str, Any]:
        """The request the job's service received, e.g. to print it: CreateTrainingJob's
        keyword arguments, or CreateProcessingJob's for a Spark job (on the local backend,
        the one SageMaker would receive, with this machine's ``file://`` URIs)."""
        return self.backend.request(self.backend.spec(self.name))

    def estimator(self, *, session: Any | None = None) -> Any:
        """The same job as a SageMaker SDK object (v2 ``Estimator`` or v3 ``ModelTrainer``,
        whichever SDK is installed), for Pipelines, tuning and deployment."""
        from smglm.launch.sdk import to_estimator

        return to_estimator(self.spec(), session=session)

    def deploy(
        self,
        *,
        instance_type: str | None = None,
        initial_instance_count: int = 1,
        serverless: dict[str, Any] | None = None,
        endpoint_name: str | None = None,
        image_uri: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> Predictor:
        """Serve the job's model on an endpoint; returns its
        :class:`~smglm.launch.deploy.Predictor` (``predict(df)``, ``delete()``).

        On SageMaker: ``CreateModel`` (the job's image and ``model.tar.gz``, its role, its
        VPC and network isolation), ``CreateEndpointConfig`` and ``CreateEndpoint``; the
        endpoint bills per instance-hour until ``predictor.delete()``. On the local backend:
        the runtime's ``serve`` on 127.0.0.1 (a free port), until ``delete()``.

        Parameters
        ----------
        instance_type
            The hosting instance type (default ``ml.m5.large``); not with ``serverless``.
            (Keyword-only: the SageMaker SDK's ``deploy`` takes the count first.)
        initial_instance_count
            The number of instances.
        serverless
            A serverless endpoint instead: ``{"memory_mb": 1024..6144 in steps of 1024,
            "max_concurrency": 1..200}``.
        endpoint_name
            The endpoint's name (also its configuration's and its model's); default: the
            job's name with a random suffix.
        image_uri
            The image that serves the model (default: the job's; required for a Spark job,
            whose image has no ``serve``). The local backend runs the installed smglm.
        wait
            Wait until the endpoint is ``InService`` (bounded by ``timeout``, default 30 min
            on SageMaker, 2 min locally). An endpoint that fails is deleted.

        Raises
        ------
        ConfigError
            The job has not completed, or an argument is not allowed (field, value, allowed).
        """
        from smglm.launch.deploy import deploy

        return deploy(
            self,
            instance_type=instance_type,
            initial_instance_count=initial_instance_count,
            serverless=serverless,
            endpoint_name=endpoint_name,
            image_uri=image_uri,
            wait=wait,
            timeout=timeout,
        )

    def transform(
        self,
        data: Any,
        *,
        instance_type: str | None = None,
        instance_count: int = 1,
        output_path: str | None = None,
        image_uri: str | None = None,
        wait: bool = True,
        timeout: float | None = 3600,
    ) -> TransformJob:
        """Run the job's model over ``data`` as a batch transform job; returns its
        :class:`~smglm.launch.deploy.TransformJob` (``status``, ``wait()``, ``result()``: the
        predictions as a Series, in the data's order and with a DataFrame's index).

        ``data``: a DataFrame (written as CSV without a header, the model's columns, and
        uploaded content-addressed beside the job's inputs), a CSV file here, or an
        ``s3://``/``file://`` URI of headerless CSV files in the model's column order.
        ``output_path``: where the ``<file>.out`` files go (default
        ``<job output path>/<job>/transform/<transform>/``). On SageMaker a
        ``CreateTransformJob`` with the job's image (billed while it runs); locally the
        runtime's ``serve`` over the files, as SageMaker's batch transform runs it.
        ``image_uri`` as for :meth:`deploy`.
        """
        from smglm.launch.deploy import transform

        return transform(
            self,
            data,
            instance_type=instance_type,
            instance_count=instance_count,
            output_path=output_path,
            image_uri=image_uri,
            wait=wait,
            timeout=timeout,
        )

    def report(self, *, log_lines: int = 40) -> Report:
        """The job's report: its summary (status, instance, failure reason), and once it has
        completed the model's metrics, coefficients, one-ways, lift, Gini and residuals; then the
        last ``log_lines`` lines of its log. Renders as HTML in a notebook, text elsewhere."""
        from smglm.glm.report import load

        state = self.describe()
        folder = None
        if state.get("TrainingJobStatus") == "Completed":
            folder = self.artifacts()
        try:
            lines = self.logs().splitlines()[-log_lines:]
        except Exception as exc:  # a report never fails on the log
            lines = [f"(log not available: {exc})"]
        return load(
            folder,
            title=f"Training job {self.name}",
            job_state=state,
            backend=self.backend.name,
            log="\n".join(lines),
        )

    # -- reprs ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        state = self.state()
        text = f"Job({self.name!r}, backend={self.backend.name!r}, status={state.status!r}"
        if state.failure_reason:
            text += f", reason={state.failure_reason[:80]!r}"
        return text + ")"

    def _repr_html_(self) -> str:
        state = self.state()
        status = state.status
        color = {"Completed": "#1a7f37", "Failed": "#cf222e", "Stopped": "#9a6700"}.get(
            status, "#0969da"
        )
        rows = [
            ("job", self.name),
            ("backend", self.backend.name),
            ("status", f"{status} ({state.secondary_status})"),
            ("created", _fmt_time(state.created)),
        ]
        if state.billable_seconds is not None:
            rows.append(("billable seconds", str(state.billable_seconds)))
        if state.done:
            bill = self.billing()
            if bill:
                rows.append(("cost", bill))
        if state.failure_reason:
            rows.append(("failure", state.failure_reason))
            for location in self.log_locations():
                rows.append(("logs", location.strip()))
        for metric, value in state.final_metrics.items():
            rows.append((metric, f"{value:.6g}"))
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


def list_jobs(
    backend: str | Backend = DEFAULT_BACKEND, max_results: int = 20, **options: Any
) -> list[Job]:
    """Recent jobs of a backend, newest first, as handles."""
    be = get_backend(backend, **options) if isinstance(backend, str) else backend
    return [Job(s.name, be) for s in be.list_states(max_results)]
