"""``%sm_jobs``, ``%sm_logs``, ``%sm_stop`` and ``%sm_show``: listing and handling jobs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from smglm.glm.report.render import RichView, esc, fmt, html_table, text_table

if TYPE_CHECKING:
    from smglm.glm.report import Report
    from smglm.launch import Backend

__all__ = ["JobFacts", "JobsTable", "jobs", "jobs_from_mlflow", "logs", "show", "stop"]

#: The metrics ``%sm_jobs --wide`` shows for a completed job (SageMaker's metric names).
KEY_METRICS = ("train:deviance", "test:deviance", "train:gini", "test:gini")
#: The wide table's columns (``%sm_jobs --wide``).
HEADERS = ["job", "status", "secondary status", "created", "instance", *KEY_METRICS]
#: The compact table's columns (``%sm_jobs``): the first holds :data:`BEST` on the best job.
COMPACT_HEADERS = ["", "job", "status", "family", "terms", "test Gini", "cost", "age"]
#: The mark of the best completed job in the compact table.
BEST = "★"
#: The terms column's longest text (longer formulas end with "…").
TERMS_WIDTH = 60

_CONFIGS: dict[str, Any] = {}  # config channel URI -> GLMConfig (content-addressed: immutable)


def _metrics(state: dict[str, Any]) -> dict[str, float]:
    return {m["MetricName"]: m["Value"] for m in state.get("FinalMetricDataList") or []}


@dataclass(frozen=True)
class JobFacts:
    """What the compact table shows of a job beside its state: its model's family, target and
    terms (from the job's config; None when it cannot be read) and its cost's text
    (``local`` for a job on this machine, which costs nothing; ``$0.0123`` once billed,
    ``~$0.01`` while it runs, empty when not known)."""

    family: str | None = None
    target: str | None = None
    terms: str | None = None
    cost: str = ""


class JobsTable(RichView):
    """Recent training jobs, newest first.

    The compact table (the default): job, status, family, terms, test Gini, cost and age, the
    best completed job marked :data:`BEST` (the highest test Gini among the completed jobs
    with the same target as the newest completed one; :attr:`best`). ``wide=True`` (``%sm_jobs
    --wide``): status, secondary status, created, instance and the key metrics
    (:attr:`wide_rows`). ``states`` keeps every job's DescribeTrainingJob-shaped state."""

    def __init__(
        self,
        backend: str,
        states: list[dict[str, Any]],
        *,
        facts: list[JobFacts] | None = None,
        wide: bool = False,
        now: datetime | None = None,
    ) -> None:
        self.backend = backend
        self.states = states
        self.facts = facts if facts is not None else [JobFacts() for _ in states]
        self.wide = wide
        self.now = now

    @property
    def headers(self) -> list[str]:
        """The shown table's column names."""
        return HEADERS if self.wide else COMPACT_HEADERS

    @property
    def rows(self) -> list[list[Any]]:
        """The shown table's rows: :attr:`wide_rows` with ``wide``, else :attr:`compact_rows`."""
        return self.wide_rows if self.wide else self.compact_rows

    @property
    def wide_rows(self) -> list[list[Any]]:
        """Job, status, secondary status, created, instance, then :data:`KEY_METRICS`."""
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

    @property
    def compact_rows(self) -> list[list[Any]]:
        """The best mark, job, status (with the step while it runs, or the backend for a
        listing of every backend's jobs), family, terms, test Gini, cost and age."""
        best = self.best
        now = self.now or datetime.now(timezone.utc)
        out = []
        for s, f in zip(self.states, self.facts, strict=True):
            status = str(s.get("TrainingJobStatus"))
            step = s.get("SecondaryStatus")
            if "Backend" in s:  # every backend's jobs (from MLflow): say whose
                status = f"{status} · {s['Backend']}"
            elif status == "InProgress" and step and step != status:
                status = f"{status} · {step}"
            name = s.get("TrainingJobName")
            out.append(
                [
                    BEST if name is not None and name == best else "",
                    name,
                    status,
                    f.family or "",
                    _short(f.terms or "", TERMS_WIDTH),
                    _metrics(s).get("test:gini"),
                    f.cost,
                    _age(s.get("CreationTime"), now),
                ]
            )
        return out

    @property
    def best(self) -> str | None:
        """The name of the completed job with the highest test Gini among those with the same
        target as the newest completed job; None when no completed job has a test Gini."""
        _, best = self._best()
        return best

    def _best(self) -> tuple[str | None, str | None]:
        done = [
            (s, f)
            for s, f in zip(self.states, self.facts, strict=True)
            if s.get("TrainingJobStatus") == "Completed"
        ]
        if not done:
            return None, None
        target = done[0][1].target
        scored = [
            (float(g), str(s.get("TrainingJobName")))
            for s, f in done
            if f.target == target
            and (g := _metrics(s).get("test:gini")) is not None
            and math.isfinite(float(g))
        ]
        if not scored:
            return target, None
        return target, max(scored, key=lambda t: t[0])[1]

    def legend(self) -> str:
        """What the best mark means, in one line ("" when no job is marked)."""
        target, best = self._best()
        if self.wide or best is None:
            return ""
        among = f" with target {target}" if target else ""
        return f"{BEST} {best}: the best test Gini among the completed jobs{among}"

    def __repr__(self) -> str:
        return f"JobsTable(backend={self.backend!r}, jobs={len(self.states)})"

    def to_html(self) -> str:
        if not self.states:
            return f"<p>No training jobs on the {fmt(self.backend)} backend yet.</p>"
        colors = {"Completed": "#1a7f3718", "Failed": "#cf222e18", "Stopped": "#9a670018"}
        statuses = [str(s.get("TrainingJobStatus")) for s in self.states]
        best = None if self.wide else self.best
        names = [s.get("TrainingJobName") for s in self.states]

        def style(i: int) -> str | None:
            if best is not None and names[i] == best:
                return "#1a7f3740;font-weight:bold"
            return colors.get(statuses[i])

        table = html_table(self.headers, self.rows, row_style=style)
        legend = self.legend()
        return table + (f"<p class='smglm-legend'><i>{esc(legend)}</i></p>" if legend else "")

    def to_text(self) -> str:
        if not self.states:
            return f"no training jobs on the {self.backend} backend"
        legend = self.legend()
        return text_table(self.headers, self.rows) + (f"\n{legend}" if legend else "")


def jobs(
    backend: str | Backend | None = None, max_results: int = 20, *, wide: bool = False
) -> JobsTable:
    """The recent jobs of ``backend`` (a name, default: the ``backend`` setting; or a
    backend), newest first; the compact table, or the wide one with ``wide``."""
    from smglm.notebook.cmd.common import backend_for
    from smglm.notebook.settings import load_settings

    be = backend if backend is not None and not isinstance(backend, str) else backend_for(backend)
    full = []
    for state in be.list_states(max_results):
        s = state.as_training_job()
        # SageMaker's list gives summaries: describe the finished ones for their metrics
        if "FinalMetricDataList" not in s and state.status == "Completed":
            s = {**s, **be.job_state(state.name).as_training_job()}
        full.append(s)
    region = load_settings().get("region") or None
    facts = [] if wide else [_backend_facts(be, s, region) for s in full]
    return JobsTable(be.name, full, facts=facts or None, wide=wide)


def jobs_from_mlflow(max_results: int = 20, *, wide: bool = False) -> JobsTable:
    """Every backend's recent jobs, read from their MLflow runs (the wide table's secondary
    status column shows the backend; the compact one reads the family and terms from the
    runs' parameters)."""
    from smglm.tracking.runs import job_runs, resolve_tracking_uri

    states = job_runs(resolve_tracking_uri(None), None, max_results)
    for s in states:
        s["SecondaryStatus"] = s.get("Backend", "")
    facts = [_mlflow_facts(s) for s in states]
    return JobsTable("mlflow", states, facts=facts, wide=wide)


def _backend_facts(be: Any, state: dict[str, Any], region: str | None) -> JobFacts:
    """A job's family, target, terms (its config channel, read once per content hash) and
    cost; what cannot be read stays empty (a listing never fails on one job)."""
    try:
        config = _job_config(be, state)
    except Exception:  # a job whose config is gone still lists
        config = None
    try:
        cost = _cost(be, state, region)
    except Exception:  # nor does a cost that cannot be worked out break the listing
        cost = ""
    return JobFacts(
        family=None if config is None else config.family,
        target=None if config is None else config.target,
        terms=None if config is None else _terms_text(config),
        cost=cost,
    )


def _job_config(be: Any, state: dict[str, Any]) -> Any:
    """The job's GLMConfig, from its ``config`` input channel (None when it has none)."""
    import tempfile
    from pathlib import Path

    from smglm.config import GLMConfig
    from smglm.launch.storage import open_storage

    channels = state.get("InputDataConfig")
    if channels is None:
        channels = be.spec(str(state.get("TrainingJobName"))).to_request()["InputDataConfig"]
    uris = [
        c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in channels or []
        if c.get("ChannelName") == "config"
    ]
    if not uris:
        return None
    uri = uris[0]
    if uri not in _CONFIGS:
        with tempfile.TemporaryDirectory(prefix="smglm-config-") as tmp:
            files = open_storage(uri).download_prefix(uri, Path(tmp))
            found = [f for f in files if f.suffix in (".json", ".yaml", ".yml")]
            if not found:
                return None
            _CONFIGS[uri] = GLMConfig.from_file(found[0])
    return _CONFIGS[uri]


def _mlflow_facts(state: dict[str, Any]) -> JobFacts:
    """A job's family, target and terms from its run's parameters (the flattened config)."""
    import json

    params = state.get("Params") or {}

    def listed(key: str) -> list[Any]:
        try:
            value = json.loads(params.get(key) or "[]")
        except ValueError:
            return []
        return value if isinstance(value, list) else []

    terms = [str(p) for p in listed("predictors")]
    terms += [":".join(map(str, pair)) for pair in listed("interactions")]
    return JobFacts(
        family=params.get("family") or None,
        target=params.get("target") or None,
        terms=" + ".join(terms) if "predictors" in params else None,
    )


def _terms_text(config: Any) -> str:
    """The model's right-hand side as a formula, offset left out (``1``: intercept only)."""
    text = str(config.formula_text())
    rhs = text.split("~", 1)[1].strip() if "~" in text else text
    parts = [p for p in rhs.split(" + ") if not p.startswith("offset(")]
    return " + ".join(parts) or "1"


def _cost(be: Any, state: dict[str, Any], region: str | None = None) -> str:
    """``local`` for a backend that runs jobs on this machine; else the billed cost at the
    price table's price (``region``'s when given and fresh), ``~`` the cost so far while it
    runs, empty when unknown."""
    from smglm.launch import pricing

    if not be.remote:  # runs on this machine: costs nothing
        return "local"
    resources = state.get("ResourceConfig") or (
        (state.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    )
    kind = resources.get("InstanceType")
    if not kind:
        return ""
    seconds = state.get("BillableTimeInSeconds")
    prefix = ""
    if seconds is None:
        if state.get("TrainingJobStatus") != "InProgress":
            return ""
        started = _when(state.get("TrainingStartTime") or state.get("CreationTime"))
        if started is None:
            return ""
        seconds = max(0.0, (datetime.now(timezone.utc) - started).total_seconds())
        prefix = "~"
    try:
        price = pricing.price_per_hour(
            str(kind),
            region=region,
            processing="ProcessingJobStatus" in state,
        )
    except Exception:  # a price table that cannot be read never breaks the listing
        price = None
    if price is None:
        return ""
    cost = price * int(resources.get("InstanceCount") or 1) * float(seconds) / 3600.0
    return prefix + (f"${cost:,.2f}" if cost >= 1 else f"${cost:.4f}")


def _when(value: Any) -> datetime | None:
    """A state's time (ISO text or datetime) as an aware UTC datetime; None if unreadable."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str) and value:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _age(created: Any, now: datetime) -> str:
    """How long ago the job was created: ``42 s``, ``5 min``, ``3.2 h``, ``2 d``."""
    when = _when(created)
    if when is None:
        return ""
    seconds = max(0.0, (now - when).total_seconds())
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


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
