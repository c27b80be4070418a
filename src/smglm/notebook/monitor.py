"""The form's view of a launched job: the live panel (:class:`~smglm.notebook.panel.JobPanel`,
with its Stop and "show full log" buttons), then the status line and the report tabs."""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as w

from smglm.notebook.panel import JobPanel, PanelView, esc, render_html

__all__ = ["JobMonitor"]


class JobMonitor(w.VBox):
    """Follows ``job`` in a background thread (``start()``) and updates its widgets.

    ``panel`` is the job's :class:`~smglm.notebook.panel.JobPanel`; ``tabs`` is the report
    (an ipywidgets Tab, one tab per report section) once the job has completed, shown below
    the panel's status line; ``error`` holds the failure reason or the error met while
    following.
    """

    def __init__(self, job: Any, *, interval: float | None = None) -> None:
        self.job = job
        self.panel = JobPanel(job, interval=interval)
        self.interval = self.panel.interval
        self.tabs: Any = None
        self.error: str | None = None
        self.panel._head.value = f"<b>{esc(job.name)}</b>: starting"
        super().__init__(children=[self.panel.widget])
        self.add_class("smglm-monitor")

    def start(self) -> threading.Thread:
        """Start following the job; return the thread (join it to wait for the end)."""
        thread = threading.Thread(
            target=self.follow, name=f"smglm-form-{self.job.name}", daemon=True
        )
        thread.start()
        return thread

    def follow(self) -> None:
        """Poll until the job ends, then show the report (or the failure)."""
        view = self.panel.follow()
        self._end(view)

    def _end(self, view: PanelView | None) -> None:
        if view is None:
            self.error = "lost the job: it could not be read 5 times in a row"
            self.panel._head.value = f"<span style='color:#cf222e'>{esc(self.error)}</span>"
            return
        if view.status != "Completed":
            self.error = str(view.failure_reason or view.status)
            return
        try:
            self.tabs = self.job.report().widget()
        except Exception as exc:
            self.error = f"report not available: {exc}"
            self.panel._head.value = render_html(view) + (
                f"<pre style='color:#cf222e'>{esc(self.error)}</pre>"
            )
            return
        self.children = [self.panel.widget, self.tabs]
