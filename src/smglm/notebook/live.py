"""How a Job handle shows in a notebook: its status, and the report once it has completed.

After ``%load_ext smglm`` a displayed :class:`~smglm.launch.Job` (the value of a
``%%sm_train`` cell, or ``job`` typed in a cell) shows through :func:`display_job`. A job still
running in a Jupyter kernel is shown with a display id, and a daemon thread polls
``job.describe()`` and updates that display in place (status, steps, log tail) until the job
ends, then shows the report. Elsewhere (terminal IPython, plain Python) it shows once.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from smglm.contract import TERMINAL

__all__ = ["display_fit_result", "display_job", "follow", "job_bundle", "register_formatters"]

log = logging.getLogger(__name__)


def esc(value: Any) -> str:
    """HTML-escaped ``str(value)`` (this module stays light: it is loaded by ``%load_ext``)."""
    return html.escape(str(value))


def in_kernel(shell: Any) -> bool:
    """Whether ``shell`` runs in a Jupyter kernel (where displays can be updated in place)."""
    return shell is not None and getattr(shell, "kernel", None) is not None


#: SageMaker's secondary statuses of a training job, in order.
STEPS = ("Starting", "Downloading", "Training", "Uploading", "Completed")
#: Log lines shown while a job runs.
LIVE_LOG_LINES = 8


def steps_html(state: dict[str, Any]) -> str:
    """The secondary statuses as a row of steps: done, current, to come."""
    current = str(state.get("SecondaryStatus"))
    seen = [t.get("Status") for t in state.get("SecondaryStatusTransitions") or []]
    parts = []
    for step in STEPS:
        if step == current:
            mark, style = "&#9679;", "font-weight:bold;color:#0969da"
        elif step in seen:
            mark, style = "&#10003;", "color:#1a7f37"
        else:
            mark, style = "&#9675;", "color:#8c959f"
        parts.append(f"<span style='{style}'>{mark} {step}</span>")
    if current not in STEPS:
        parts.append(f"<span style='font-weight:bold'>&#9679; {esc(current)}</span>")
    return "<div class='smglm-steps'>" + " &rarr; ".join(parts) + "</div>"


def job_bundle(
    job: Any, state: dict[str, Any] | None = None, *, log_lines: int = LIVE_LOG_LINES
) -> dict[str, str]:
    """The job's ``text/plain`` and ``text/html``: the status, and the report when completed.

    ``state`` is the job's ``describe()`` when the caller has just read it.
    """
    state = state if state is not None else job.describe()
    status = str(state.get("TrainingJobStatus"))
    head_html, head_text = job._repr_html_(), repr(job)
    if status == "Completed":
        try:
            rep = job.report()
        except Exception as exc:  # the status still shows if the report cannot be read
            log.warning("could not build the report of %s: %s", job.name, exc)
            note = f"report not available: {exc}"
            return {"text/plain": f"{head_text}\n{note}", "text/html": head_html + esc(note)}
        return {
            "text/plain": f"{head_text}\n\n{rep.to_text()}",
            "text/html": head_html + rep.to_html(),
        }
    try:
        tail = job.logs().splitlines()[-log_lines:]
    except Exception:
        tail = []
    body = steps_html(state)
    if tail:
        body += "<pre style='font-size:smaller'>" + esc("\n".join(tail)) + "</pre>"
    text = head_text + ("\n" + "\n".join(tail) if status not in TERMINAL and tail else "")
    return {"text/plain": text, "text/html": head_html + body}


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


def start_follow(
    job: Any, update: Callable[..., Any], interval: float | None = None
) -> threading.Thread:
    """Run :func:`follow` in a daemon thread; return the thread."""
    thread = threading.Thread(
        target=follow,
        args=(job, update),
        kwargs={"interval": interval},
        name=f"smglm-follow-{job.name}",
        daemon=True,
    )
    thread.start()
    return thread


def display_job(job: Any) -> None:
    """Display a Job: once when it has ended (or outside a kernel), else updated in place."""
    from IPython import get_ipython
    from IPython.display import display

    bundle = job_bundle(job)
    if job.done or not in_kernel(get_ipython()):
        display(bundle, raw=True)
        return
    handle = display(bundle, raw=True, display_id=True)
    start_follow(job, handle.update)


def display_fit_result(result: Any) -> None:
    """Display a FitResult as its report (metrics, coefficients, convergence)."""
    from IPython.display import display

    display(result.report())


def register_formatters(shell: Any) -> None:
    """Show Jobs and FitResults through the functions above (by name: nothing is imported)."""
    formatter = shell.display_formatter.ipython_display_formatter
    formatter.for_type_by_name("smglm.launch.job", "Job", display_job)
    formatter.for_type_by_name("smglm.glm.result", "FitResult", display_fit_result)
