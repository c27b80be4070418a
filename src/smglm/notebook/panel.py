"""The live job panel: one compact view of a training job instead of a wall of log lines.

While a job runs, a ``%%sm_train`` cell (or a displayed :class:`~smglm.launch.Job`) shows one
panel: the job's name, backend, instance and its price, the status and its steps, the elapsed
time and the cost so far, a progress line for the phase it is in (IRLS iterations with the
objective), and the last log lines in a closed "show full log" area. When the job ends the
panel collapses to one status line (``✓ Completed in 4.2 s · 5 iterations · $0 · test Gini
0.281 · artifacts · MLflow run``), or on failure the reason, the last log lines and what to
do next.

:func:`panel_view` reads a job into a :class:`PanelView` (plain data, no IPython needed);
:func:`render_text` and :func:`render_html` draw it; :class:`JobPanel` is the ipywidgets form
of the same view, with a Stop button and "show full log", used where a widget manager exists
(the form's job monitor, a no-wait job's display in a Jupyter kernel). Before the job exists,
:class:`UploadLine` shows the data's upload in bytes (a ``progress`` callback of
:func:`smglm.train`).
"""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from smglm.contract import TERMINAL

__all__ = [
    "STEPS",
    "JobPanel",
    "PanelView",
    "Progress",
    "UploadLine",
    "panel_bundle",
    "panel_view",
    "render_html",
    "render_text",
]

#: SageMaker's secondary statuses of a training job, in order.
STEPS = ("Starting", "Downloading", "Training", "Uploading", "Completed")
#: Log lines kept in a view (the HTML log area shows them; the text form fewer).
LOG_LINES = 8
#: Log lines in the text form: while running, and after a failure.
TEXT_LOG_LINES_RUNNING = 3
TEXT_LOG_LINES_FAILED = 6
#: Characters of one log line in the text form.
TEXT_WIDTH = 140

_ITERATION = re.compile(r"iteration=(\d+) objective=([^;\s]+);")
_METRIC = re.compile(r"(?m)^(train|test|fit):([A-Za-z_]+)=([^;\s]+);")
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[,.]\d+ ")
_MARK = {"done": "✓", "current": "●", "todo": "○"}
_COLOR = {"Completed": "#1a7f37", "Failed": "#cf222e", "Stopped": "#9a6700"}


@dataclass(frozen=True)
class Progress:
    """How far a known phase is: ``done`` of ``total`` (None: not known) ``unit``."""

    phase: str
    done: float
    total: float | None
    unit: str
    detail: str = ""

    @property
    def fraction(self) -> float | None:
        """``done / total`` in [0, 1], None when the total is not known."""
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))


@dataclass(frozen=True)
class PanelView:
    """What the panel shows of one job at one moment (built by :func:`panel_view`).

    ``steps`` pairs each step with ``"done"``, ``"current"`` or ``"todo"``; ``cost`` is the
    cost so far in US dollars (0 on the local backend, None when not known); ``links`` maps
    a label to a URL (an empty URL: shown as text only); ``iterations``, ``gini`` and
    ``gini_split`` are read from the log once the job has completed.
    """

    name: str
    backend: str
    instance: str | None
    price_per_hour: float | None
    status: str
    secondary_status: str | None
    steps: tuple[tuple[str, str], ...]
    elapsed: float | None
    cost: float | None
    progress: Progress | None
    log_tail: tuple[str, ...]
    log_size: int
    links: tuple[tuple[str, str], ...]
    failure_reason: str | None
    hint: str | None
    iterations: int | None
    gini: float | None
    gini_split: str | None

    @property
    def done(self) -> bool:
        """Whether the job has ended."""
        return self.status in TERMINAL


# -- reading a job -------------------------------------------------------------------------------
def _steps(status: str, current: str | None, seen: list[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for step in STEPS:
        if status == "Completed" or (step in seen and step != current):
            out.append((step, "done"))
        elif step == current:
            out.append((step, "current"))
        else:
            out.append((step, "todo"))
    if current and current not in STEPS and status not in TERMINAL:
        out.append((current, "current"))
    return tuple(out)


def _when(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _seconds(start: Any, end: Any) -> float | None:
    begin = _when(start)
    if begin is None:
        return None
    finish = _when(end) or datetime.now(timezone.utc)
    return max(0.0, (finish - begin).total_seconds())


def _instance(raw: Mapping[str, Any]) -> tuple[str | None, int]:
    resources = raw.get("ResourceConfig") or (
        (raw.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    )
    kind = resources.get("InstanceType")
    return (str(kind) if kind else None), int(resources.get("InstanceCount") or 1)


def _progress(log_text: str, status: str) -> Progress | None:
    if status in TERMINAL:
        return None
    found = _ITERATION.findall(log_text)
    if not found:
        return None
    step, objective = found[-1]
    try:
        detail = f"objective {float(objective):.6g}"
    except ValueError:
        detail = f"objective {objective}"
    return Progress("IRLS", int(step), None, "iterations", detail)


def _metrics(log_text: str, final: Mapping[str, float]) -> dict[str, float]:
    out = {str(k): float(v) for k, v in final.items()}
    for split, name, value in _METRIC.findall(log_text):
        try:
            out[f"{split}:{name}"] = float(value)
        except ValueError:
            continue
    return out


_LOCATIONS: dict[str, tuple[float, list[str]]] = {}


def _locations(job: Any, done: bool) -> list[str]:
    """``job.log_locations()``, asked at most every 30 s while the job runs (they are
    SageMaker API calls) and once after it has ended."""
    find = getattr(job, "log_locations", None)
    if find is None:
        return []
    key = f"{id(getattr(job, 'backend', None))}:{job.name}"
    cached = _LOCATIONS.get(key)
    now = time.monotonic()
    if cached is not None and (cached[0] == float("inf") or now - cached[0] < 30):
        return cached[1]
    lines = list(find())
    _LOCATIONS[key] = (float("inf") if done else now, lines)
    return lines


def _folder(uri: str) -> str:
    return uri.rsplit("/", 1)[0] + "/" if "/" in uri else uri


def _links(job: Any, state: Any, locations: list[str]) -> tuple[tuple[str, str], ...]:
    links: list[tuple[str, str]] = []
    artifacts = state.model_uri or state.output_uri
    if state.status == "Completed" and artifacts:
        links.append(("artifacts", _folder(str(artifacts))))
    run_id = getattr(job, "run_id", None)
    if run_id:
        uri = str(getattr(job, "tracking_uri", None) or "")
        if uri.startswith(("http:", "https:")):
            links.append(("MLflow run", f"{uri.rstrip('/')}/#/runs/{run_id}"))
        else:  # a file store: no page to link to; the run's id finds it (mlflow ui)
            links.append((f"MLflow run {str(run_id)[:8]}", ""))
    label = ""
    for line in locations:
        text = line.strip()
        if text.startswith("log group:"):
            links.append((text, ""))
        elif text.startswith(("log stream:", "log streams:")):
            label = "CloudWatch " + text.split(":", 1)[1].strip().split(" ")[0]
        elif text.startswith("https://") and label:
            links.append((label, text))
            label = ""
        elif text.startswith("SageMaker console:"):
            links.append(("SageMaker console", text.split(":", 1)[1].strip()))
    return tuple(links)


def _hint(name: str, status: str) -> str | None:
    if status == "Failed":
        return (
            f"%sm_logs {name} shows the whole log; fix what the reason names, "
            "then run the cell again."
        )
    if status == "Stopped":
        return "The job was stopped; run the cell again (with --new) to start it anew."
    return None


def _region(raw: Mapping[str, Any]) -> str | None:
    """The region of the price table: the job's ARN's, else the ``%sm_config`` setting (else
    the price table's own)."""
    from smglm.notebook.settings import load_settings

    arn = str(raw.get("TrainingJobArn") or raw.get("ProcessingJobArn") or "")
    parts = arn.split(":")
    if arn.startswith("arn:") and len(parts) > 3 and parts[3]:
        return parts[3]
    return load_settings().get("region") or None


def panel_view(job: Any, state: Any = None, log_text: str | None = None) -> PanelView:
    """Read ``job`` into a :class:`PanelView`.

    ``state`` is the job's :class:`~smglm.launch.backend.JobState`, or its ``describe()``
    (a DescribeTrainingJob-shaped dict), when the caller has just read it; ``log_text`` its
    log so far (``job.logs()`` is read otherwise). Never raises on the log, the links or the
    price: a view is always drawn.
    """
    from smglm.launch.backend import JobState

    if state is None:
        state = job.state() if hasattr(job, "state") else job.describe()
    if isinstance(state, Mapping):
        state = JobState.from_training_job(state)
    if log_text is None:
        try:
            log_text = job.logs()
        except Exception as exc:  # a panel never fails on the log
            log_text = f"(log not available: {exc})"
    lines = log_text.splitlines()
    raw = state.raw
    backend: Any = getattr(job, "backend", None)
    backend_name = str(backend.name) if backend is not None else ""
    kind, count = _instance(raw)
    local = backend is not None and not backend.remote  # runs here: costs nothing
    price = None
    if kind and not local:
        try:
            from smglm.launch.pricing import price_per_hour

            price = price_per_hour(
                kind,
                region=_region(raw),
                processing="ProcessingJobStatus" in raw,
            )
        except Exception:
            price = None
    elapsed = _seconds(state.created, state.ended if state.done else None)
    cost: float | None
    if local:
        cost = 0.0
    elif price is None:
        cost = None
    elif state.billable_seconds is not None:
        cost = price * count * state.billable_seconds / 3600
    else:
        started = _seconds(raw.get("TrainingStartTime"), None)
        cost = price * count * started / 3600 if started is not None else None
    try:
        locations = _locations(job, state.done)
    except Exception:
        locations = []
    metrics = _metrics(log_text, state.final_metrics) if state.status == "Completed" else {}
    split = "test" if "test:gini" in metrics else "train" if "train:gini" in metrics else None
    iterations = metrics.get("fit:iterations")
    seen = [str(t.get("Status")) for t in state.transitions]
    return PanelView(
        name=str(getattr(job, "name", state.name)),
        backend=backend_name,
        instance=f"{kind} x {count}" if kind else None,
        price_per_hour=price,
        status=state.status,
        secondary_status=state.secondary_status,
        steps=_steps(state.status, state.secondary_status, seen),
        elapsed=elapsed,
        cost=cost,
        progress=_progress(log_text, state.status),
        log_tail=tuple(lines[-LOG_LINES:]),
        log_size=len(lines),
        links=_links(job, state, locations),
        failure_reason=state.failure_reason,
        hint=_hint(str(getattr(job, "name", state.name)), state.status),
        iterations=int(iterations) if iterations is not None else None,
        gini=metrics.get(f"{split}:gini") if split else None,
        gini_split=split,
    )


# -- text ----------------------------------------------------------------------------------------
def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _money(amount: float | None) -> str:
    if amount is None:
        return "cost unknown"
    if amount == 0:
        return "$0"
    return f"${amount:.4f}" if amount < 1 else f"${amount:.2f}"


def _head(view: PanelView) -> list[str]:
    parts = [view.name]
    if view.backend:
        parts.append(view.backend)
    if view.instance:
        price = f" (${view.price_per_hour:.3f}/h)" if view.price_per_hour is not None else ""
        parts.append(view.instance + price)
    parts.append(_duration(view.elapsed))
    parts.append(_money(view.cost) + ("" if view.done else " so far"))
    return parts


def _progress_text(progress: Progress) -> str:
    amount = f"{progress.done:g}" + (f"/{progress.total:g}" if progress.total else "")
    bar = ""
    if progress.fraction is not None:
        filled = round(progress.fraction * 20)
        bar = "[" + "#" * filled + "-" * (20 - filled) + "] "
    detail = f" · {progress.detail}" if progress.detail else ""
    return f"{progress.phase}: {bar}{amount} {progress.unit}{detail}"


def _short(line: str) -> str:
    """A log line for the text form: without its timestamp, cut at :data:`TEXT_WIDTH`."""
    line = _STAMP.sub("", line)
    return line if len(line) <= TEXT_WIDTH else line[: TEXT_WIDTH - 1] + "…"


def _summary(view: PanelView) -> list[str]:
    """The facts of the completed status line, without the links."""
    parts = [f"Completed in {_duration(view.elapsed)}"]
    if view.iterations is not None:
        parts.append(f"{view.iterations} iteration{'s' if view.iterations != 1 else ''}")
    parts.append(_money(view.cost))
    if view.gini is not None:
        parts.append(f"{view.gini_split} Gini {view.gini:.3f}")
    return parts


def render_text(view: PanelView) -> str:
    """The panel as text: while running at most 6 lines, completed ONE line, failed or
    stopped at most 10 lines (the reason, the last log lines, what to do)."""
    if view.status == "Completed":
        parts = _summary(view)
        for label, url in view.links:
            parts.append(f"{label} {url}" if url else label)
        return "✓ " + " · ".join(parts)
    if view.done:
        head = f"✗ {view.status} after {_duration(view.elapsed)} · {view.name}"
        if view.backend:
            head += f" · {view.backend}"
        lines = [head]
        if view.failure_reason:
            lines.append(_short("reason: " + " ".join(view.failure_reason.split())))
        lines += ["  │ " + _short(x) for x in view.log_tail[-TEXT_LOG_LINES_FAILED:]]
        if view.hint:
            lines.append(view.hint)
        links = [f"{label} {url}".strip() for label, url in view.links]
        if links:
            lines.append(_short(" · ".join(links)))
        return "\n".join(lines[:10])
    lines = ["● " + " · ".join(_head(view))]
    steps = " → ".join(f"{_MARK[mark]} {step}" for step, mark in view.steps)
    lines.append(f"{view.status}: {steps}")
    if view.progress is not None:
        lines.append(_progress_text(view.progress))
    lines += ["  │ " + _short(x) for x in view.log_tail[-TEXT_LOG_LINES_RUNNING:]]
    return "\n".join(lines[:6])


# -- HTML ----------------------------------------------------------------------------------------
def esc(value: Any) -> str:
    """HTML-escaped ``str(value)``."""
    return html.escape(str(value))


def _link_html(label: str, url: str) -> str:
    if not url:
        return f"<span class='smglm-link'>{esc(label)}</span>"
    return (
        f"<a class='smglm-link' href='{esc(url)}' target='_blank' rel='noopener' "
        f"title='{esc(url)}'>{esc(label)}</a>"
    )


def _log_html(view: PanelView) -> str:
    if not view.log_tail:
        return ""
    more = f" ({view.log_size} lines; %sm_logs {view.name} prints them all)"
    return (
        "<details class='smglm-log'><summary style='cursor:pointer;color:#57606a'>"
        f"show full log{esc(more)}</summary>"
        "<pre style='font-size:smaller;margin:2px 0;max-height:16em;overflow:auto'>"
        f"{esc(chr(10).join(view.log_tail))}</pre></details>"
    )


def _steps_html(view: PanelView) -> str:
    style = {
        "done": "color:#1a7f37",
        "current": "font-weight:bold;color:#0969da",
        "todo": "color:#8c959f",
    }
    parts = [
        f"<span class='smglm-step' data-step='{esc(mark)}' style='{style[mark]}'>"
        f"{_MARK[mark]} {esc(step)}</span>"
        for step, mark in view.steps
    ]
    return "<div class='smglm-steps'>" + " &rarr; ".join(parts) + "</div>"


def _progress_html(progress: Progress) -> str:
    bar = (
        f"<progress value='{progress.done:g}' max='{progress.total:g}'></progress> "
        if progress.total
        else ""
    )
    amount = f"{progress.done:g}" + (f" / {progress.total:g}" if progress.total else "")
    detail = f" · {esc(progress.detail)}" if progress.detail else ""
    return (
        f"<div class='smglm-progress'>{esc(progress.phase)}: {bar}{amount} "
        f"{esc(progress.unit)}{detail}</div>"
    )


def render_html(view: PanelView) -> str:
    """The panel as HTML: ``<div class="smglm-panel" data-status="...">``; a completed job is
    ``<div class="smglm-panel smglm-status-line" data-status="Completed">`` holding one line."""
    status = esc(view.status)
    if view.status == "Completed":
        parts = [esc(p) for p in _summary(view)] + [_link_html(k, u) for k, u in view.links]
        return (
            f"<div class='smglm-panel smglm-status-line' data-status='Completed' "
            f"title='{esc(view.name)}'><span style='color:#1a7f37'>✓</span> "
            + " · ".join(parts)
            + "</div>"
        )
    color = _COLOR.get(view.status, "#0969da")
    box = "border-left:3px solid " + color + ";padding:2px 8px;margin:2px 0"
    if view.done:
        head = (
            f"<b style='color:{color}'>✗ {status}</b> after {esc(_duration(view.elapsed))} · "
            f"<b>{esc(view.name)}</b> · {esc(view.backend)}"
        )
        body = ""
        if view.failure_reason:
            body += (
                "<pre class='smglm-reason' style='color:#cf222e;white-space:pre-wrap;"
                f"margin:2px 0'>{esc(view.failure_reason)}</pre>"
            )
        if view.log_tail:
            body += (
                "<pre style='font-size:smaller;margin:2px 0'>"
                f"{esc(chr(10).join(view.log_tail[-TEXT_LOG_LINES_FAILED:]))}</pre>"
            )
        if view.hint:
            body += f"<div class='smglm-hint'>{esc(view.hint)}</div>"
        if view.links:
            body += "<div>" + " · ".join(_link_html(k, u) for k, u in view.links) + "</div>"
        return (
            f"<div class='smglm-panel' data-status='{status}' style='{box}'>"
            f"<div>{head}</div>{body}</div>"
        )
    head = " · ".join(esc(p) for p in _head(view)[1:])
    body = _steps_html(view)
    if view.progress is not None:
        body += _progress_html(view.progress)
    body += _log_html(view)
    if view.links:
        body += "<div>" + " · ".join(_link_html(k, u) for k, u in view.links) + "</div>"
    return (
        f"<div class='smglm-panel' data-status='{status}' style='{box}'>"
        f"<div><b style='color:{color}'>●</b> <b>{esc(view.name)}</b> · {head}</div>"
        f"{body}</div>"
    )


def panel_bundle(view: PanelView) -> dict[str, str]:
    """The view as a plain mimebundle (``text/plain`` and ``text/html``): what a saved or
    nbconvert-executed notebook keeps."""
    return {"text/plain": render_text(view), "text/html": render_html(view)}


# -- the upload, before the job exists -------------------------------------------------------------
def _mb(n: float) -> float:
    return round(n / 1e6, 1)


class UploadLine:
    """The cell's upload line, an :data:`~smglm.launch.storage.UploadProgress` callback for
    :func:`smglm.train`'s ``progress``: ``upload train.parquet: [####----] 12.3/40.0 MB · 8.1
    MB/s``, redrawn in place through ``show(bundle)`` at most every ``interval`` seconds.

    An upload that ends within ``delay`` seconds (a local job's copy, a small frame) shows
    nothing; a slower one stays as ``uploaded train.parquet: 40.0 MB in 4.9 s (8.2 MB/s)``,
    one line per object (the data, then the test data). ``show`` receives plain mimebundles
    (``text/plain``, ``text/html``), as a display handle's ``update`` takes them. Calls may
    come from boto3's transfer threads.
    """

    def __init__(
        self,
        show: Callable[[dict[str, str]], None],
        *,
        delay: float = 0.5,
        interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.show, self.delay, self.interval, self.clock = show, delay, interval, clock
        self.lock = threading.Lock()
        self.started: dict[str, float] = {}
        self.last_drawn = -1.0
        self.shown: list[str] = []  # the objects whose line was drawn
        self.finished: list[str] = []  # their final lines

    def __call__(self, name: str, done: int, total: int) -> None:
        with self.lock:
            now = self.clock()
            start = self.started.setdefault(name, now)
            elapsed = now - start
            finished = done >= total
            if name not in self.shown and elapsed < self.delay:
                return  # fast so far: nothing to see yet (a fast upload never shows)
            if not finished and now - self.last_drawn < self.interval:
                return
            self.last_drawn = now
            if name not in self.shown:
                self.shown.append(name)
            rate = f"{_mb(done / elapsed):g} MB/s" if elapsed > 0 else ""
            if finished:
                self.finished.append(
                    f"uploaded {name}: {_mb(total):g} MB in {elapsed:.1f} s"
                    + (f" ({rate})" if rate else "")
                )
                self.show(self.bundle(None))
            else:
                self.show(
                    self.bundle(Progress(f"upload {name}", _mb(done), _mb(total), "MB", rate))
                )

    def bundle(self, current: Progress | None) -> dict[str, str]:
        """The finished uploads' lines, then the current one's progress bar in MB."""
        text = list(self.finished)
        html_lines = [f"<div data-done='1'>{esc(line)}</div>" for line in self.finished]
        if current is not None:
            text.append(_progress_text(current))
            html_lines.append(_progress_html(current))
        return {
            "text/plain": "\n".join(text),
            "text/html": "<div class='smglm-upload'>" + "".join(html_lines) + "</div>",
        }


# -- following a job -----------------------------------------------------------------------------
def watch(
    job: Any,
    show: Callable[[PanelView], None],
    *,
    interval: float = 0.25,
    max_errors: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> PanelView | None:
    """Poll ``job`` and call ``show(view)`` when what the panel shows changed (the elapsed
    time and cost are redrawn at most once a second). Returns the final view, or None when
    polling gave up after ``max_errors`` errors in a row."""
    last: tuple[Any, ...] | None = None
    errors = 0
    backend: Any = getattr(job, "backend", None)
    read_lines = backend.log_lines if backend is not None else None
    lines: list[str] = []
    position = 0
    while True:
        try:
            state = job.state() if hasattr(job, "state") else job.describe()
            if read_lines is not None:  # only the new lines (a SageMaker log is CloudWatch's)
                new, position = read_lines(job.name, position)
                lines += new
                log_text = "\n".join(lines)
            else:
                log_text = job.logs()
            view = panel_view(job, state, log_text)
            errors = 0
        except Exception:
            errors += 1
            if errors >= max_errors:
                return None
            sleep(interval)
            continue
        tick = None if view.done else int(view.elapsed or 0)
        key = (view.status, view.secondary_status, view.log_size, view.progress, tick)
        if key != last:
            show(view)
            last = key
        if view.done:
            return view
        sleep(interval)


# -- the widget ----------------------------------------------------------------------------------
class JobPanel:
    """The ipywidgets form of the panel: a VBox (CSS class ``smglm-panel``) with the head,
    the steps, a progress bar, the log area, a Stop and a "show full log" button.

    ``update(view)`` redraws it; ``start()`` follows the job in a thread (``on_end(view)``
    is called with the final view); ``widget`` is the VBox to display.
    """

    def __init__(self, job: Any, *, interval: float | None = None) -> None:
        import ipywidgets as w

        from smglm.notebook.live import poll_interval

        self.job = job
        self.interval = poll_interval(job) if interval is None else interval
        self.view: PanelView | None = None
        self.on_end: list[Callable[[PanelView | None], None]] = []
        self._head = w.HTML()
        self._bar = w.FloatProgress(value=0, min=0, max=1, layout=w.Layout(width="30%"))
        self._bar_label = w.HTML()
        self._bar_box = w.HBox([self._bar, self._bar_label])
        self._bar_box.layout.display = "none"
        self._log = w.HTML()
        self._full = w.HTML()
        self._full.layout.display = "none"
        self._stop = w.Button(description="Stop", icon="stop", button_style="danger")
        self._stop.add_class("smglm-stop")
        self._stop.on_click(self._on_stop)
        self._show_log = w.Button(description="show full log", icon="file-text")
        self._show_log.on_click(self._on_full_log)
        self._buttons = w.HBox([self._stop, self._show_log])
        self.widget = w.VBox([self._head, self._bar_box, self._log, self._buttons, self._full])
        self.widget.add_class("smglm-panel")

    def _on_stop(self, _button: Any = None) -> None:
        self.job.stop()
        self._stop.disabled = True
        self._stop.description = "Stopping"

    def _on_full_log(self, _button: Any = None) -> None:
        if self._full.layout.display == "none":
            try:
                text = self.job.logs()
            except Exception as exc:
                text = f"(log not available: {exc})"
            self._full.value = (
                f"<pre style='font-size:smaller;max-height:30em;overflow:auto'>{esc(text)}</pre>"
            )
            self._full.layout.display = ""
            self._show_log.description = "hide full log"
        else:
            self._full.layout.display = "none"
            self._show_log.description = "show full log"

    def update(self, view: PanelView) -> None:
        """Show ``view``: the live panel, or once the job ended its status line (completed)
        or its failure (reason, last log lines, what to do)."""
        self.view = view
        if view.done:
            self._head.value = render_html(view)
            self._bar_box.layout.display = "none"
            self._log.value = ""
            self._stop.layout.display = "none"
            self.widget.children = (
                [self._head] if view.status == "Completed" else [self._head, self._buttons]
            )
            return
        html_text = render_html(view)
        # the log area is this widget's own: the head holds name, steps and links
        self._head.value = html_text.replace(_log_html(view), "")
        self._log.value = _log_html(view)
        progress = view.progress
        if progress is not None:
            self._bar_box.layout.display = ""
            fraction = progress.fraction
            self._bar.bar_style = "" if fraction is not None else "info"
            self._bar.value = fraction if fraction is not None else 1.0
            self._bar_label.value = esc(_progress_text(progress))

    def follow(self) -> PanelView | None:
        """Poll the job until it ends, updating the widget; return the final view."""
        from smglm.notebook.noise import library_noise_to_log

        with library_noise_to_log(warnings_too=False):  # the job's end: MLflow in the kernel
            view = watch(self.job, self.update, interval=self.interval)
        for callback in self.on_end:
            callback(view)
        return view

    def start(self) -> threading.Thread:
        """Follow the job in a daemon thread; return the thread."""
        thread = threading.Thread(
            target=self.follow, name=f"smglm-panel-{self.job.name}", daemon=True
        )
        thread.start()
        return thread

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        if self.view is not None:
            bundle.update(panel_bundle(self.view))
        return bundle
