"""How a Job handle shows in a notebook: its status, and the report once it has completed.

After ``%load_ext smglm`` a displayed :class:`~smglm.launch.Job` (the value of a
``%%sm_train`` cell, or ``job`` typed in a cell) shows through :func:`display_job`. A job still
running in a Jupyter kernel is shown as a live panel (:mod:`smglm.notebook.panel`) with a
display id, and a daemon thread polls the job and updates it in place until the job ends;
the panel then becomes one status line and the report appears below it. Elsewhere (terminal
IPython, plain Python) it shows once.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from smglm.contract import TERMINAL

__all__ = [
    "display_fit_result",
    "display_job",
    "follow",
    "job_bundle",
    "live_panel",
    "register_formatters",
    "report_bundle",
]

log = logging.getLogger(__name__)


def esc(value: Any) -> str:
    """HTML-escaped ``str(value)`` (this module stays light: it is loaded by ``%load_ext``)."""
    return html.escape(str(value))


def in_kernel(shell: Any) -> bool:
    """Whether ``shell`` runs in a Jupyter kernel (where displays can be updated in place)."""
    return shell is not None and getattr(shell, "kernel", None) is not None


#: Log lines shown while a job runs.
LIVE_LOG_LINES = 8


def report_bundle(job: Any, rep: Any = None, *, draw: bool = True) -> dict[str, str]:
    """The completed job's report (``rep``, else read) as ``text/plain`` and ``text/html``
    (a note when it cannot be read); ``draw=False``: its figures not drawn yet."""
    try:
        rep = rep if rep is not None else job.report()
        return {"text/plain": rep.to_text(), "text/html": rep.to_html(draw=draw)}
    except Exception as exc:  # the status still shows if the report cannot be read
        log.warning("could not build the report of %s: %s", job.name, exc)
        note = f"report not available: {exc}"
        return {"text/plain": note, "text/html": esc(note)}


def show_report(job: Any, handle: Any = None) -> None:
    """Show the completed job's report in the cell at once (its summary and coefficients,
    the figures' places saying they are being drawn), then update it in place when its
    figures are drawn (a local job leaves them to the notebook: ``report_images``).
    ``handle``: a display to update instead of a new one."""
    from IPython.display import display

    try:
        rep = job.report()
    except Exception:
        rep = None
    if rep is None:
        bundle = report_bundle(job)
        if handle is None:
            display(bundle, raw=True)
        else:
            handle.update(bundle, raw=True)
        return
    if all(getattr(s, "ready", True) for s in getattr(rep, "sections", [])):
        bundle = report_bundle(job, rep)  # nothing to draw (the job wrote its PNGs)
        if handle is None:
            display(bundle, raw=True)
        else:
            handle.update(bundle, raw=True)
        return
    first = report_bundle(job, rep, draw=False)
    if handle is None:
        handle = display(first, raw=True, display_id=True)
    else:
        handle.update(first, raw=True)
    handle.update(report_bundle(job, rep), raw=True)


def job_bundle(
    job: Any, state: dict[str, Any] | None = None, *, report_only: bool = False
) -> dict[str, str]:
    """The job's ``text/plain`` and ``text/html``: its panel (:mod:`smglm.notebook.panel`)
    while it runs or after it failed; once completed its one status line, then the report
    (only the report with ``report_only``: the cell that ran it already showed the line).

    ``state`` is the job's ``describe()`` when the caller has just read it.
    """
    from smglm.notebook.panel import panel_bundle, panel_view

    state = state if state is not None else job.describe()
    status = str(state.get("TrainingJobStatus"))
    if status == "Completed" and report_only:
        return report_bundle(job)
    panel = panel_bundle(panel_view(job, state))
    if status != "Completed":
        return panel
    rep = report_bundle(job)
    return {
        "text/plain": f"{panel['text/plain']}\n\n{rep['text/plain']}",
        "text/html": panel["text/html"] + rep["text/html"],
    }


def poll_interval(job: Any) -> float:
    """Seconds between looks at a job in a display: its backend's ``poll_seconds`` (0.1 s for
    the local backend, whose state is a file here) but at least 0.25 s; 1 s for an object
    without a backend."""
    backend = getattr(job, "backend", None)
    return max(0.25, float(backend.poll_seconds if backend is not None else 1.0))


def follow(
    job: Any,
    update: Callable[..., Any],
    *,
    interval: float | None = None,
    max_errors: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Poll ``job`` and call ``update(bundle, raw=True)`` when anything shown changed.

    Returns the final status, or None when polling gave up after ``max_errors`` errors in a
    row (a backend that cannot be reached).
    """
    pause = poll_interval(job) if interval is None else interval
    last: tuple[Any, ...] | None = None
    errors = 0
    while True:
        try:
            state = job.describe()
            status = str(state.get("TrainingJobStatus"))
            size = len(job.logs()) if status not in TERMINAL else -1
            key = (status, state.get("SecondaryStatus"), size)
            if key != last:
                update(job_bundle(job, state), raw=True)
                last = key
            errors = 0
        except Exception as exc:
            errors += 1
            log.debug("polling %s failed (%d in a row): %s", getattr(job, "name", job), errors, exc)
            if errors >= max_errors:
                return None
            status = ""
        if status in TERMINAL:
            return status
        sleep(pause)


def display_job(job: Any) -> None:
    """Display a Job: once when it has ended (or outside a kernel), else as a live panel
    (a widget where ipywidgets is installed) that ends as the status line, with the report
    below it once the job has completed. A job whose ``%%sm_train`` cell already showed the
    panel displays its report only."""
    from IPython import get_ipython
    from IPython.display import display

    if getattr(job, "_panel_shown", False):
        job._panel_shown = False
        if in_kernel(get_ipython()):
            show_report(job)
        else:
            display(job_bundle(job, report_only=True), raw=True)
        return
    if job.done or not in_kernel(get_ipython()):
        display(job_bundle(job), raw=True)
        return
    live_panel(job)


def live_panel(job: Any) -> threading.Thread:
    """Show a running job's live panel in the current cell and follow the job in a daemon
    thread; when it ends the panel becomes the status line (a plain mimebundle, which saved
    notebooks keep) and the report appears below it. Returns the thread."""
    from IPython.display import display

    from smglm.notebook.noise import library_noise_to_log
    from smglm.notebook.panel import JobPanel, panel_bundle, panel_view, watch

    view = panel_view(job)
    widget: Any = None
    try:
        widget = JobPanel(job)
        widget.update(view)
        first: dict[str, Any] = widget._repr_mimebundle_()
    except ImportError:  # no ipywidgets: the HTML panel, redrawn in place
        first = panel_bundle(view)
    panel = display(first, raw=True, display_id=True)
    below = display({"text/plain": ""}, raw=True, display_id=True)

    def show(current: Any) -> None:
        if widget is not None and not current.done:
            widget.update(current)
        else:
            panel.update(panel_bundle(current), raw=True)

    def run() -> None:
        with library_noise_to_log(warnings_too=False):
            final = watch(job, show, interval=poll_interval(job))
        if final is not None and final.status == "Completed":
            show_report(job, below)

    thread = threading.Thread(target=run, name=f"smglm-follow-{job.name}", daemon=True)
    thread.start()
    return thread


def display_fit_result(result: Any) -> None:
    """Display a FitResult as its report (metrics, coefficients, convergence)."""
    from IPython.display import display

    display(result.report())


def register_formatters(shell: Any) -> None:
    """Show Jobs and FitResults through the functions above (by name: nothing is imported)."""
    formatter = shell.display_formatter.ipython_display_formatter
    formatter.for_type_by_name("smglm.launch.job", "Job", display_job)
    formatter.for_type_by_name("smglm.glm.result", "FitResult", display_fit_result)
