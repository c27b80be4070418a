"""``%sm_jobs``, ``%sm_logs``, ``%sm_stop`` and ``%sm_show``: listing and handling jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smglm.glm.report.render import RichView, fmt, html_table, text_table

if TYPE_CHECKING:
    from smglm.glm.report import Report

__all__ = ["JobsTable", "jobs", "jobs_from_mlflow", "logs", "show", "stop"]

#: The metrics ``%sm_jobs`` shows for a completed job (SageMaker's metric names).
KEY_METRICS = ("train:deviance", "test:deviance", "train:gini", "test:gini")
HEADERS = ["job", "status", "secondary status", "created", "instance", *KEY_METRICS]


def _metrics(state: dict[str, Any]) -> dict[str, float]:
    return {m["MetricName"]: m["Value"] for m in state.get("FinalMetricDataList") or []}


class JobsTable(RichView):
    """Recent training jobs: status, secondary status, created, and key metrics when done."""

    def __init__(self, backend: str, states: list[dict[str, Any]]) -> None:
        self.backend = backend
        self.states = states

    @property
    def rows(self) -> list[list[Any]]:
        out = []
        for s in self.states:
            metrics = _metrics(s)
            resources = s.get("ResourceConfig") or {}
            out.append(
                [
                    s.get("TrainingJobName"),
                    s.get("TrainingJobStatus"),
                    s.get("SecondaryStatus", ""),
                    str(s.get("CreationTime", ""))[:19].replace("T", " "),
                    resources.get("InstanceType", ""),
                    *(metrics.get(m) for m in KEY_METRICS),
                ]
            )
        return out

    def __repr__(self) -> str:
        return f"JobsTable(backend={self.backend!r}, jobs={len(self.states)})"

    def to_html(self) -> str:
        if not self.states:
            return f"<p>No training jobs on the {fmt(self.backend)} backend yet.</p>"
        colors = {"Completed": "#1a7f3718", "Failed": "#cf222e18", "Stopped": "#9a670018"}
        statuses = [str(s.get("TrainingJobStatus")) for s in self.states]
        return html_table(HEADERS, self.rows, row_style=lambda i: colors.get(statuses[i]))

    def to_text(self) -> str:
        if not self.states:
            return f"no training jobs on the {self.backend} backend"
        return text_table(HEADERS, self.rows)


def jobs(backend: str | None = None, max_results: int = 20) -> JobsTable:
    """The recent jobs of ``backend`` (default: the ``backend`` setting), newest first."""
    from smglm.notebook.cmd.common import backend_for

    be = backend_for(backend)
    full = []
    for state in be.list_states(max_results):
        s = state.as_training_job()
        # SageMaker's list gives summaries: describe the finished ones for their metrics
        if "FinalMetricDataList" not in s and state.status == "Completed":
            s = {**s, **be.job_state(state.name).as_training_job()}
        full.append(s)
    return JobsTable(be.name, full)


def jobs_from_mlflow(max_results: int = 20) -> JobsTable:
    """Every backend's recent jobs, read from their MLflow runs (the secondary-status column
    shows the backend)."""
    from smglm.tracking.runs import job_runs, resolve_tracking_uri

    states = job_runs(resolve_tracking_uri(None), None, max_results)
    for s in states:
        s["SecondaryStatus"] = s.get("Backend", "")
    return JobsTable("mlflow", states)


def logs(ref: str, user_ns: dict[str, Any], backend: str | None = None, tail: int = 0) -> str:
    """The job's log (its last ``tail`` lines when ``tail`` > 0)."""
    from smglm.notebook.cmd.common import resolve_job

    text = resolve_job(ref, user_ns, backend).logs()
    if tail > 0:
        text = "\n".join(text.splitlines()[-tail:])
    return text


def follow(ref: str, user_ns: dict[str, Any], backend: str | None = None) -> None:
    """Print the job's log from its start, then its statuses and new lines until it ends
    (Ctrl-C asks whether to stop it); a job found by name after a kernel restart too."""
    from smglm.notebook.cmd.common import resolve_job

    job = resolve_job(ref, user_ns, backend)
    if not job.done:
        job.announce()
    job.wait(raise_on_failure=False)


def stop(ref: str, user_ns: dict[str, Any], backend: str | None = None) -> str:
    """Ask the job to stop; return what happened, in one line."""
    from smglm.notebook.cmd.common import resolve_job

    job = resolve_job(ref, user_ns, backend)
    status = job.status
    if job.done:
        return f"[smglm] job {job.name} has already ended ({status}); nothing to stop"
    job.stop()
    return f"[smglm] stop requested for job {job.name} (was {status})"


def show(ref: str, user_ns: dict[str, Any], backend: str | None = None) -> Report:
    """The job's report."""
    from smglm.notebook.cmd.common import resolve_job

    return resolve_job(ref, user_ns, backend).report()
