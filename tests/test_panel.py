"""The live job panel (``smglm.notebook.panel``) for real local jobs: running, completed and
failed, as text, as HTML and as the ipywidgets JobPanel; and the quickstart's ``%%sm_train``
cell executed by a real kernel, which must print at most 10 lines outside the report."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import pytest

import smglm
from smglm.datasets import motor
from smglm.launch import Job
from smglm.launch.local import LocalBackend
from smglm.notebook.panel import (
    STEPS,
    JobPanel,
    PanelView,
    panel_bundle,
    panel_view,
    render_html,
    render_text,
    watch,
)

CONFIG = {
    "target": "claim_count",
    "predictors": ["driver_age", "area"],
    "exposure": "exposure",
    "family": "poisson",
    "test": {"fraction": 0.2, "seed": 0},
}
ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "notebooks" / "01_quickstart.ipynb"


def _wait(job: Job) -> Job:
    job.wait(logs=False, raise_on_failure=False, timeout=300)
    return job


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One job seen right after its launch (running), then completed; one that failed (its
    data has no target column: the runtime finds out)."""
    home = tmp_path_factory.mktemp("panel")
    backend = LocalBackend(home / "smglm", warm=False)
    frame = motor(3000)
    ok = smglm.train(CONFIG, frame, backend=backend, tracking=False)
    running_state = ok.state()
    running_log = ok.logs()
    path = home / "no-target.parquet"
    frame.drop(columns=["claim_count"]).to_parquet(path)
    bad = smglm.train(CONFIG, f"file://{path}", backend=backend, tracking=False)
    _wait(ok)
    _wait(bad)
    return SimpleNamespace(ok=ok, bad=bad, running_state=running_state, running_log=running_log)


# -- running ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_panel_of_a_running_job_text_and_html(jobs):
    assert jobs.running_state.status == "InProgress"
    log = jobs.ok.logs()  # the whole log, as if read while it fitted: the IRLS lines are there
    view = panel_view(jobs.ok, jobs.running_state, log_text=log)
    assert view.status == "InProgress" and not view.done
    assert view.name == jobs.ok.name and view.backend == "local"
    assert view.instance == "ml.m5.xlarge x 1" and view.cost == 0.0
    assert [s for s, _ in view.steps] == list(STEPS)
    last = int(re.findall(r"iteration=(\d+) objective=", log)[-1])
    assert view.progress is not None and view.progress.phase == "IRLS"
    assert view.progress.done == last and view.progress.unit == "iterations"
    assert view.progress.detail.startswith("objective 0.")

    text = render_text(view)
    lines = text.splitlines()
    assert 3 <= len(lines) <= 6, text
    assert lines[0].startswith(f"● {jobs.ok.name} · local · ml.m5.xlarge x 1 · ")
    assert lines[0].endswith("$0 so far")
    assert lines[1].startswith("InProgress: ") and "Completed" in lines[1]
    assert lines[2] == f"IRLS: {last} iterations · {view.progress.detail}"
    assert all(line.startswith("  │ ") for line in lines[3:])

    html = render_html(view)
    assert html.startswith("<div class='smglm-panel' data-status='InProgress'")
    assert "<details class='smglm-log'>" in html and "show full log" in html
    assert "<details open" not in html  # the log area is closed
    assert "class='smglm-steps'" in html and "IRLS: " in html


@pytest.mark.slow
def test_panel_of_a_running_job_while_it_starts(jobs):
    view = panel_view(jobs.ok, jobs.running_state, log_text=jobs.running_log)
    assert view.progress is None or view.progress.phase == "IRLS"
    current = [step for step, mark in view.steps if mark == "current"]
    assert current == [jobs.running_state.secondary_status]
    assert len(render_text(view).splitlines()) <= 6


# -- completed -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_panel_of_a_completed_job_is_one_status_line(jobs):
    job = jobs.ok
    assert job.status == "Completed"
    view = panel_view(job)
    metrics = job.model.metrics
    assert view.done and view.iterations == metrics["fit"]["iterations"]
    assert view.gini_split == "test"
    assert view.gini == pytest.approx(metrics["test"]["gini"], rel=1e-9)
    assert view.cost == 0.0 and view.elapsed is not None and view.elapsed > 0
    labels = dict(view.links)
    assert labels["artifacts"].startswith("file://") and labels["artifacts"].endswith("/")

    text = render_text(view)
    assert "\n" not in text
    iterations = f"{view.iterations} iteration{'s' if view.iterations != 1 else ''}"
    assert text.startswith("✓ Completed in ")
    assert f" · {iterations} · $0 · test Gini {metrics['test']['gini']:.3f} · artifacts " in text

    html = render_html(view)
    assert html.startswith("<div class='smglm-panel smglm-status-line' data-status='Completed'")
    assert html.count("<div") == 1 and f"test Gini {metrics['test']['gini']:.3f}" in html
    assert f"<a class='smglm-link' href='{labels['artifacts']}'" in html


# -- failed ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_panel_of_a_failed_job_shows_reason_log_and_what_to_do(jobs):
    job = jobs.bad
    assert job.status == "Failed"
    view = panel_view(job)
    assert "claim_count" in (view.failure_reason or "")
    assert view.hint is not None and f"%sm_logs {job.name}" in view.hint

    lines = render_text(view).splitlines()
    assert 3 <= len(lines) <= 10
    assert lines[0].startswith("✗ Failed after ") and job.name in lines[0]
    assert lines[1].startswith("reason: ") and "claim_count" in lines[1]
    assert view.hint in lines
    assert any(line.startswith("  │ ") for line in lines)

    html = render_html(view)
    assert html.startswith("<div class='smglm-panel' data-status='Failed'")
    assert "<pre class='smglm-reason' style='color:#cf222e" in html
    assert "claim_count" in html and "smglm-hint" in html
    assert panel_bundle(view) == {"text/plain": render_text(view), "text/html": html}


# -- the widget ------------------------------------------------------------------------------------
def _classes(widget: Any) -> list[str]:
    return list(widget._dom_classes)


@pytest.mark.slow
def test_job_panel_widget_running_then_completed(jobs):
    pytest.importorskip("ipywidgets")
    panel = JobPanel(jobs.ok, interval=0)
    assert "smglm-panel" in _classes(panel.widget)
    running = panel_view(jobs.ok, jobs.running_state, log_text=jobs.ok.logs())
    panel.update(running)
    assert jobs.ok.name in panel._head.value and "data-status='InProgress'" in panel._head.value
    assert "smglm-log" in panel._log.value and "smglm-log" not in panel._head.value
    assert panel._bar_box.layout.display == "" and "IRLS: " in panel._bar_label.value
    assert panel._stop.layout.display != "none"
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"] == render_text(running)  # what a saved notebook keeps

    seen: list[PanelView | None] = []
    panel.on_end.append(seen.append)
    final = panel.follow()  # the job has ended: one look
    assert seen == [final] and final is not None and final.status == "Completed"
    assert list(panel.widget.children) == [panel._head]
    assert "smglm-status-line" in panel._head.value and "✓" in panel._head.value


@pytest.mark.slow
def test_job_panel_widget_failed_keeps_the_log_button(jobs):
    pytest.importorskip("ipywidgets")
    panel = JobPanel(jobs.bad, interval=0)
    final = panel.follow()
    assert final is not None and final.status == "Failed"
    assert list(panel.widget.children) == [panel._head, panel._buttons]
    assert panel._stop.layout.display == "none"
    assert "data-status='Failed'" in panel._head.value and "claim_count" in panel._head.value
    panel._show_log.click()
    assert panel._full.layout.display == "" and "claim_count" in panel._full.value
    panel._show_log.click()
    assert panel._full.layout.display == "none"


def test_watch_shows_changes_only_and_gives_up_after_errors():
    class Scripted:
        name = "scripted"

        def __init__(self, statuses: list[str]) -> None:
            self.statuses, self.calls = statuses, 0

        def describe(self) -> dict[str, Any]:
            status = self.statuses[min(self.calls, len(self.statuses) - 1)]
            self.calls += 1
            if status == "error":
                raise OSError("unreachable")
            return {
                "TrainingJobName": "scripted",
                "TrainingJobStatus": status,
                "SecondaryStatus": status,
                "CreationTime": "2026-01-02T03:04:05+00:00",
                "TrainingEndTime": "2026-01-02T03:04:09+00:00",
            }

        def logs(self) -> str:
            return "line"

    shown: list[PanelView] = []
    job = Scripted(["InProgress", "InProgress", "error", "Failed"])
    final = watch(job, shown.append, interval=0, sleep=lambda s: None)
    assert final is not None and final.status == "Failed"
    assert [v.status for v in shown][-1] == "Failed" and shown[0].status == "InProgress"
    assert watch(Scripted(["error"]), shown.append, max_errors=3, sleep=lambda s: None) is None


# -- the quickstart's job cell in a real kernel --------------------------------------------------
def _is_report(output: Any) -> bool:
    html = str(output.get("data", {}).get("text/html", ""))
    return "smglm-status-line" not in html and "<details" in html and "Coefficients" in html


def _text_lines(outputs: list[Any]) -> list[str]:
    """The lines of text a cell printed outside the report: its streams and the text/plain
    of its other outputs."""
    lines: list[str] = []
    for output in outputs:
        if output.output_type == "stream":
            lines += output.text.splitlines()
        elif output.output_type in ("display_data", "execute_result") and not _is_report(output):
            lines += str(output.data.get("text/plain", "")).splitlines()
    return [line for line in lines if line.strip()]


@pytest.mark.slow
@pytest.mark.notebook
def test_quickstart_job_cell_prints_at_most_ten_lines_outside_the_report(tmp_path, monkeypatch):
    from test_notebooks import execute

    source = nbformat.read(QUICKSTART, as_version=4)
    keep = ("setup", "data", "train")
    nb = nbformat.v4.new_notebook()
    nb.cells = [c for c in source.cells if set(c.get("metadata", {}).get("tags", [])) & set(keep)]
    assert [c.metadata["tags"][0] for c in nb.cells] == list(keep)
    path = tmp_path / "quickstart-job.ipynb"
    nbformat.write(nb, path)
    monkeypatch.setenv("JUPYTER_PATH", "")  # restored after the test (execute() sets it)
    done = execute(path, tmp_path / "work")
    train = done.cells[2]
    errors = [o for o in train.outputs if o.output_type == "error"]
    assert not errors, errors
    lines = _text_lines(train.outputs)
    assert len(lines) <= 10, "\n".join(lines)
    assert any(line.startswith("✓ Completed in ") for line in lines), lines
    joined = "\n".join(lines)
    for noise in ("INFO mlflow", "database tables", "train:deviance=", "Warning"):
        assert noise not in joined, joined
    reports = [o for o in train.outputs if _is_report(o)]
    assert len(reports) == 1  # the report once, after the status line
    assert "-- Coefficients --" in reports[0].data["text/plain"]
    # the panel's last state is the status line, saved as a plain mimebundle
    panels = [
        o for o in train.outputs if "smglm-panel " in o.get("data", {}).get("text/html", "")[:60]
    ]
    assert len(panels) == 1 and "smglm-status-line" in panels[0].data["text/html"]
    # MLflow's table-creation lines went to the launcher log instead
    launcher = tmp_path / "work" / ".smglm" / "launcher.log"
    assert launcher.is_file() and "database tables" in launcher.read_text()


# -- a SageMaker job's panel: price, cost, CloudWatch and console links --------------------------
class _SageMakerLike:
    """A Job-like handle whose state and log locations are shaped as the SageMaker backend
    gives them (the renderers read nothing else)."""

    name = "freq-v1"
    run_id = "0123456789abcdef"
    tracking_uri = "https://mlflow.example.com"

    def __init__(self, state: dict[str, Any]) -> None:
        from smglm.launch.sagemaker import job_console_url, log_console_url

        self.backend = SimpleNamespace(name="sagemaker", remote=True, log_lines=None)
        self._state = state
        group, stream = "/aws/sagemaker/TrainingJobs", "freq-v1/algo-1-1700000000"
        self._locations = [
            f"log group: {group}",
            f"log stream: {stream}",
            f"  {log_console_url('eu-west-1', group, stream=stream)}",
            f"SageMaker console: {job_console_url('eu-west-1', self.name)}",
        ]

    def state(self) -> Any:
        from smglm.launch.backend import JobState

        return JobState.from_training_job(self._state)

    def logs(self) -> str:
        return "iteration=0 objective=0.5;\niteration=1 objective=0.25;"

    def log_locations(self) -> list[str]:
        return list(self._locations)


def test_panel_of_a_sagemaker_job_prices_the_instance_and_links_cloudwatch():
    from smglm.launch.pricing import price_per_hour

    state = {
        "TrainingJobName": "freq-v1",
        "TrainingJobArn": "arn:aws:sagemaker:eu-west-1:123456789012:training-job/freq-v1",
        "TrainingJobStatus": "InProgress",
        "SecondaryStatus": "Training",
        "SecondaryStatusTransitions": [{"Status": "Starting"}, {"Status": "Downloading"}],
        "CreationTime": "2026-01-02T03:04:05+00:00",
        "ResourceConfig": {"InstanceType": "ml.m5.2xlarge", "InstanceCount": 2},
    }
    view = panel_view(_SageMakerLike(state))
    price = price_per_hour("ml.m5.2xlarge", region="eu-west-1")
    assert price is not None and view.price_per_hour == price
    assert view.instance == "ml.m5.2xlarge x 2" and view.cost is None  # not training yet
    assert view.progress is not None and view.progress.done == 1
    links = dict(view.links)
    assert links["MLflow run"] == "https://mlflow.example.com/#/runs/0123456789abcdef"
    assert links["CloudWatch freq-v1/algo-1-1700000000"].startswith("https://eu-west-1.console")
    assert links["SageMaker console"].endswith("#/jobs/freq-v1")
    assert "log group: /aws/sagemaker/TrainingJobs" in links
    first = render_text(view).splitlines()[0]
    assert f"ml.m5.2xlarge x 2 (${price:.3f}/h)" in first and first.endswith("cost unknown so far")
    html = render_html(view)
    assert "href='https://mlflow.example.com/#/runs/0123456789abcdef'" in html

    ended = {
        **state,
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "TrainingEndTime": "2026-01-02T03:09:05+00:00",
        "BillableTimeInSeconds": 180,
    }
    done = panel_view(_SageMakerLike(ended))
    assert done.elapsed == 300 and done.cost == pytest.approx(price * 2 * 180 / 3600)
    line = render_text(done)
    assert line.startswith("✓ Completed in 5 min 00 s · ") and "\n" not in line
    assert f"${price * 2 * 180 / 3600:.4f}" in line
