"""The form's view of a launched job: steps, live log tail, Stop button, then the report tabs."""

from __future__ import annotations

import threading
import time
from typing import Any

import ipywidgets as w

from smglm.contract import TERMINAL
from smglm.glm.report.render import esc
from smglm.notebook.live import poll_interval, steps_html

__all__ = ["JobMonitor"]

#: Log lines the monitor shows while the job runs.
TAIL = 15


class JobMonitor(w.VBox):
    """Follows ``job`` in a background thread (``start()``) and updates its widgets.

    ``tabs`` is the report (an ipywidgets Tab, one tab per report section) once the job has
    completed; ``error`` holds the failure reason or the error met while following.
    """

    def __init__(self, job: Any, *, interval: float | None = None) -> None:
        self.job = job
        self.interval = poll_interval(job) if interval is None else interval
        self.tabs: Any = None
        self.error: str | None = None
        self._status = w.HTML(f"<b>{esc(job.name)}</b>: starting")
        self._steps = w.HTML()
        self._log = w.HTML()
        self._stop = w.Button(description="Stop", icon="stop", button_style="danger")
        self._stop.on_click(self._on_stop)
        super().__init__(children=[self._status, self._steps, self._stop, self._log])

    def start(self) -> threading.Thread:
        """Start following the job; return the thread (join it to wait for the end)."""
        thread = threading.Thread(
            target=self.follow, name=f"smglm-form-{self.job.name}", daemon=True
        )
        thread.start()
        return thread

    def _on_stop(self, _button: Any = None) -> None:
        self.job.stop()
        self._stop.disabled = True
        self._stop.description = "Stopping"

    def follow(self) -> None:
        """Poll until the job ends, then show the report (or the failure)."""
        errors = 0
        while True:
            try:
                state = self.job.describe()
                errors = 0
            except Exception as exc:
                errors += 1
                if errors >= 5:
                    self.error = f"lost the job: {exc}"
                    self._status.value = f"<span style='color:#cf222e'>{esc(self.error)}</span>"
                    return
                time.sleep(self.interval)
                continue
            status = str(state.get("TrainingJobStatus"))
            self._status.value = f"<b>{esc(self.job.name)}</b>: {esc(status)}"
            self._steps.value = steps_html(state)
            try:
                tail = self.job.logs().splitlines()[-TAIL:]
            except Exception:
                tail = []
            self._log.value = f"<pre style='font-size:smaller'>{esc(chr(10).join(tail))}</pre>"
            if status in TERMINAL:
                break
            time.sleep(self.interval)
        self._stop.layout.display = "none"
        if status == "Completed":
            self._finish()
        else:
            self.error = str(state.get("FailureReason") or status)
            self._status.value += f"<pre style='color:#cf222e'>{esc(self.error)}</pre>"

    def _finish(self) -> None:

        try:
            self.tabs = self.job.report().widget()
        except Exception as exc:
            self.error = f"report not available: {exc}"
            self._status.value += f"<pre style='color:#cf222e'>{esc(self.error)}</pre>"
            return
        self.children = [self._status, self.tabs]
