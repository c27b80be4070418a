"""Every training job is one MLflow run: created by the launcher, filled by whoever can.

The launcher creates the run before the job starts (params, tags) and passes its id to the job
as ``MLFLOW_RUN_ID``. The runtime logs the results live (:func:`log_from_runtime`) when mlflow
is installed and the tracking store is reachable from where it runs; otherwise the launcher logs
them from the job's artifacts once it ends (:func:`finalize_job_run`). The tag
``smglm.logged_by`` records who did, so nothing is logged twice. A failed or stopped job ends
its run FAILED or KILLED with the reason as the tag ``smglm.failure_reason``.

No secrets: params are the model config and job settings only; a tracking URI's credentials
are never logged, and nothing from the environment is.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from smglm.errors import MissingDependency, SmglmError
from smglm.redaction import redact, redact_uri

__all__ = [
    "DEFAULT_EXPERIMENT",
    "finalize_job_run",
    "find_runs",
    "flatten_params",
    "job_env",
    "job_runs",
    "log_from_runtime",
    "log_results",
    "mlflow_available",
    "prepare_store",
    "resolve_experiment",
    "resolve_tracking_uri",
    "search_results",
    "start_job_run",
]

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "smglm"
LOGGED_BY = "smglm.logged_by"
RUN_ID_TAG = "smglm.mlflow_run_id"
_STATUS = {"Completed": "FINISHED", "Failed": "FAILED", "Stopped": "KILLED"}


def mlflow_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("mlflow") is not None


def _require_mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise MissingDependency("mlflow", "tracking", "MLflow tracking") from None
    return mlflow


def resolve_tracking_uri(explicit: str | None = None) -> str:
    """The tracking URI: given, else ``MLFLOW_TRACKING_URI``, else MLflow's embedded store in
    the working folder (``sqlite:///<cwd>/mlflow.db``, what ``mlflow ui`` there shows).

    A given URI that is ``MLFLOW_TRACKING_URI`` without its credentials (as recorded in a job's
    ``smglm.tracking_uri`` tag) resolves to ``MLFLOW_TRACKING_URI``, credentials included."""
    from smglm.config.environment import MLFLOW_TRACKING_URI

    env_uri = MLFLOW_TRACKING_URI.get()
    uri = explicit or env_uri
    if explicit and env_uri and explicit != env_uri and redact_uri(env_uri) == explicit:
        uri = env_uri  # a redacted URI (a job's tag): the credentials come from the environment
    if not uri:
        uri = f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    from smglm.tracking import managed

    if managed.is_managed_uri(uri):
        managed.parse_arn(uri)  # ConfigError naming mlflow_tracking_uri when malformed
        managed.require_plugin()  # MissingDependency: pip install sagemaker-mlflow
    return uri


def resolve_experiment(explicit: str | None = None) -> str:
    """The experiment a job's run goes to: given (``JobConfig.mlflow_experiment``), else MLflow's
    own ``MLFLOW_EXPERIMENT_NAME``, else ``smglm``."""
    from smglm.config.environment import MLFLOW_EXPERIMENT_NAME

    return explicit or MLFLOW_EXPERIMENT_NAME.get() or DEFAULT_EXPERIMENT


def is_local_store(uri: str) -> bool:
    """Whether the store lives on this machine's disk (unreachable from a remote job); a
    managed MLflow ARN does not."""
    from smglm.tracking.managed import is_managed_uri

    if is_managed_uri(uri):
        return False
    return uri.startswith(("sqlite:", "file:", "/")) or "://" not in uri


#: What MLflow allows in a parameter's name.
_PARAM_NAME = re.compile(r"^[A-Za-z0-9_\-. :/]+$")


def flatten_params(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"penalty": {"alpha": 0}}`` -> ``{"penalty.alpha": "0"}``; lists as JSON.

    A mapping keyed by data values that MLflow does not take in a parameter's name (band
    labels such as ``[60,80)`` in ``fixed``, levels such as ``area[B]`` in bounds) stays one
    parameter whose value is its JSON."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and all(_PARAM_NAME.match(str(k)) for k in value):
            out.update(flatten_params(value, f"{name}."))
        elif isinstance(value, (list, dict)):
            out[name] = json.dumps(value)
        else:
            out[name] = "" if value is None else str(value)
    return out


class TrackingStoreError(SmglmError, RuntimeError):
    """The MLflow tracking store cannot be opened (the message names it and what to do)."""


def sqlite_path(uri: str) -> Path | None:
    """The database file of an embedded ``sqlite:///`` store, else None."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :].split("?", 1)[0])
    return None


_READY: set[str] = set()  # stores this process has opened (mlflow caches them by URI)


def prepare_store(uri: str) -> None:
    """Make sure an embedded sqlite store exists, fully migrated, and opens; once per process.

    Concurrent first launches in one folder are safe: creation and migration happen under an
    exclusive ``flock`` on ``.<db>.lock`` beside it, into a temporary file renamed into place once
    complete, so no process ever sees (or leaves behind) a half-migrated ``mlflow.db``. A
    store that exists but cannot be opened raises :class:`TrackingStoreError` naming the file
    and what to do. Other stores (a tracking server, ``file:``) are left to MLflow."""
    path = sqlite_path(uri)
    if path is None or uri in _READY:
        return
    _require_mlflow()
    import contextlib
    import fcntl
    import os

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    root = _artifact_location(uri) or ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock: int | None = os.open(
            path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600
        )
    except OSError:  # a read-only folder: nobody creates a store there, no lock is needed
        lock = None
    try:
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)  # waits for a process creating the store
        if not path.exists():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp_uri = f"sqlite:///{tmp}"
            try:
                SqlAlchemyStore(tmp_uri, root)
                _dispose(SqlAlchemyStore, tmp_uri)
                _check_tables(tmp)
                os.replace(tmp, path)  # complete, or not there at all
            except Exception as exc:
                raise TrackingStoreError(
                    f"could not create the MLflow store {path} ({_first_line(exc)}): check "
                    "that its folder is writable and has free space, or set "
                    "MLFLOW_TRACKING_URI / JobConfig.mlflow_tracking_uri to another store"
                ) from exc
            finally:
                _dispose(SqlAlchemyStore, tmp_uri)
                for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
                    with contextlib.suppress(OSError):
                        leftover.unlink()
        try:
            from mlflow.tracking import MlflowClient

            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)  # opens it
        except Exception as exc:
            raise TrackingStoreError(
                f"the MLflow store {path} cannot be opened ({_first_line(exc)}): it may be "
                f"damaged or half-migrated. Move it aside (mv {path} {path}.broken) and launch "
                "again: a new store is created; or set MLFLOW_TRACKING_URI to another store"
            ) from exc
        _READY.add(uri)
    finally:
        if lock is not None:
            os.close(lock)


def _dispose(store_class: Any, uri: str) -> None:
    engine = store_class._engine_map.pop(uri, None)
    if engine is not None:
        engine.dispose()


def _check_tables(db: Path) -> None:
    """Raise unless ``db`` holds MLflow's tables (a store created completely)."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        tables = {r[0] for r in conn.execute("select name from sqlite_master")}
    finally:
        conn.close()
    missing = {"experiments", "runs", "alembic_version"} - tables
    if missing:
        raise RuntimeError(f"tables {sorted(missing)} missing after the migration")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _client(uri: str) -> Any:
    """An MLflow client of ``uri``, its store prepared (:func:`prepare_store`); for a managed
    MLflow ARN, one whose calls are signed for it (:func:`smglm.tracking.managed.client`)."""
    _require_mlflow()
    from mlflow.tracking import MlflowClient

    from smglm.tracking import managed

    if managed.is_managed_uri(uri):
        return managed.client(uri)
    prepare_store(uri)
    return MlflowClient(tracking_uri=uri)


def _artifact_location(uri: str) -> str | None:
    """For an embedded sqlite store, artifacts beside the database (``mlruns/``), wherever the
    process that creates the experiment runs; other stores choose for themselves."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return (db.parent / "mlruns").absolute().as_uri()
    return None


def _experiment_id(client: Any, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    try:
        return str(
            client.create_experiment(
                name, artifact_location=_artifact_location(client.tracking_uri)
            )
        )
    except Exception:  # created meanwhile by another process
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def start_job_run(
    *,
    tracking_uri: str,
    experiment: str | None,
    job_name: str,
    params: dict[str, str],
    tags: dict[str, str],
) -> str:
    """Create the job's run (status RUNNING) with its params and tags; return the run id.
    The experiment is :func:`resolve_experiment`'s (``MLFLOW_EXPERIMENT_NAME`` when None)."""
    from mlflow.entities import Param

    client = _client(tracking_uri)
    exp_id = _experiment_id(client, resolve_experiment(experiment))
    run = client.create_run(exp_id, run_name=job_name, tags={"smglm.job_name": job_name, **tags})
    run_id = str(run.info.run_id)
    client.log_batch(run_id, params=[Param(k, v[:6000]) for k, v in params.items()])
    client.set_tag(run_id, "mlflow.note.content", f"smglm training job `{job_name}`")
    return run_id


def job_env(
    tracking_uri: str, experiment: str | None, run_id: str, *, remote: bool
) -> dict[str, str]:
    """The environment that lets the runtime log live: only when the store is reachable from
    where the job runs (a local sqlite/file store is not reachable from SageMaker). A remote job
    is never given a URI with credentials (its environment shows in DescribeTrainingJob): the
    launcher then logs the results once the job has ended. ``MLFLOW_EXPERIMENT_NAME`` is the
    run's experiment (:func:`resolve_experiment`)."""
    if remote and (is_local_store(tracking_uri) or redact_uri(tracking_uri) != tracking_uri):
        return {}
    return {
        "MLFLOW_RUN_ID": run_id,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_EXPERIMENT_NAME": resolve_experiment(experiment),
    }


def _metric_key(split: str, name: str) -> str:
    return f"{split}_{name}"


def log_results(client: Any, run_id: str, model_dir: Path, output_dir: Path | None) -> None:
    """Log metrics (and the per-iteration objective as a series), the model files, the plots
    and the MLflow pyfunc model (``mlflow_model/`` logged as the run's ``model``)."""
    import math

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics: list[Metric] = []
    mpath = model_dir / "metrics.json"
    if mpath.exists():
        data = json.loads(mpath.read_text(encoding="utf-8"))
        for split in ("train", "test", "fit", "search"):
            for name, value in (data.get(split) or {}).items():
                if isinstance(value, bool):
                    value = float(value)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    metrics.append(Metric(_metric_key(split, name), float(value), now, 0))
    conv = model_dir / "convergence.csv"
    if conv.exists():
        import csv

        with conv.open(encoding="utf-8") as f:
            for row in csv.DictReader(f):
                value = float(row.get("objective", "nan"))
                if math.isfinite(value):
                    metrics.append(Metric("objective", value, now, int(float(row["iteration"]))))
    points, search_params = search_results(model_dir)
    metrics += [Metric(key, value, now, step) for key, value, step in points]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i : i + 1000])
    if search_params:
        from mlflow.entities import Param

        client.log_batch(run_id, params=[Param(k, v) for k, v in search_params.items()])
    for name in (
        "model.json",
        "coefficients.csv",
        "metrics.json",
        "config.yaml",
        "convergence.csv",
        "search.csv",
        "covariance.csv",
    ):
        if (model_dir / name).exists():
            client.log_artifact(run_id, str(model_dir / name))
    if (model_dir / "mlflow_model").is_dir():
        client.log_artifacts(run_id, str(model_dir / "mlflow_model"), "model")
    if output_dir is not None and output_dir.is_dir():
        client.log_artifacts(run_id, str(output_dir), "report")


def search_results(model_dir: Path) -> tuple[list[tuple[str, float, int]], dict[str, str]]:
    """The penalty search's path as metric points ``(key, value, step)`` and its choice as
    params, from ``search.csv`` and ``metrics.json`` (nothing without a search).

    Per l1_ratio ``r``, the series ``cv_deviance/l1_ratio_<r>``,
    ``cv_deviance_se/l1_ratio_<r>`` and ``alpha/l1_ratio_<r>`` with step = the alpha's
    index on the path (largest alpha first); params ``search.alpha`` and
    ``search.l1_ratio`` (the chosen ones; the run's ``penalty.*`` params are the config as
    given). The choice is also in the metrics ``search_alpha``, ``search_l1_ratio``,
    ``search_cv_deviance``, ... logged from ``metrics.json``.
    """
    import csv
    import math

    points: list[tuple[str, float, int]] = []
    path = model_dir / "search.csv"
    if path.exists():
        with path.open(encoding="utf-8") as f:
            for row in csv.DictReader(f):
                ratio = f"l1_ratio_{float(row['l1_ratio']):g}"
                step = int(float(row["alpha_index"]))
                for name in ("cv_deviance", "cv_deviance_se", "alpha"):
                    value = float(row.get(name) or "nan")
                    if math.isfinite(value):
                        points.append((f"{name}/{ratio}", value, step))
    params: dict[str, str] = {}
    mpath = model_dir / "metrics.json"
    if mpath.exists():
        chosen = json.loads(mpath.read_text(encoding="utf-8")).get("search") or {}
        params = {f"search.{k}": repr(chosen[k]) for k in ("alpha", "l1_ratio") if k in chosen}
    return points, params


def log_from_runtime(model_dir: Path, output_dir: Path | None) -> bool:
    """Called by the runtime at the end of ``train``: log live when told a run id and mlflow
    can reach the store. Returns whether it logged; never fails the training job."""
    from smglm.config.environment import MLFLOW_RUN_ID, MLFLOW_TRACKING_URI

    run_id, uri = MLFLOW_RUN_ID.get(), MLFLOW_TRACKING_URI.get()
    if not run_id or not uri or not mlflow_available():
        return False
    try:
        client = _client(uri)
        log_results(client, run_id, model_dir, output_dir)
        client.set_tag(run_id, LOGGED_BY, "runtime")
        return True
    except Exception as exc:  # tracking must never fail a finished fit
        log.warning("could not log to MLflow at %s: %s", redact_uri(uri), redact(str(exc)))
        return False


def finalize_job_run(
    tracking_uri: str,
    run_id: str,
    state: dict[str, Any],
    fetch_artifacts: Callable[[], tuple[Path, Path | None] | None],
) -> bool:
    """End the run of a job that has ended: log results from the artifacts if the runtime
    did not, then set the run's status. Idempotent: a run already ended is left alone."""
    status = state.get("TrainingJobStatus")
    if status not in _STATUS:
        return False
    client = _client(tracking_uri)
    run = client.get_run(run_id)
    if run.info.status != "RUNNING":
        return False
    if status == "Completed" and LOGGED_BY not in run.data.tags:
        found = fetch_artifacts()
        if found is not None:
            log_results(client, run_id, found[0], found[1])
            client.set_tag(run_id, LOGGED_BY, "launcher")
    if state.get("FailureReason"):
        reason = redact(str(state["FailureReason"]))
        client.set_tag(run_id, "smglm.failure_reason", reason[:5000])
    if state.get("BillableTimeInSeconds") is not None:
        client.set_tag(run_id, "smglm.billable_seconds", str(state["BillableTimeInSeconds"]))
    client.set_terminated(run_id, status=_STATUS[str(status)])
    return True


def find_runs(
    tracking_uri: str, experiment: str | None, tags: dict[str, str], max_results: int = 100
) -> list[Any]:
    """Runs of the experiment whose tags equal ``tags``, newest first."""
    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(resolve_experiment(experiment))
    if exp is None:
        return []
    clauses = [f"tags.`{k}` = '{v}'" for k, v in tags.items()]
    return list(
        client.search_runs(
            [exp.experiment_id],
            filter_string=" and ".join(clauses),
            order_by=["attributes.start_time DESC"],
            max_results=max_results,
        )
    )


_JOB_STATUS = {"RUNNING": "InProgress", "FINISHED": "Completed", "FAILED": "Failed"}


def job_runs(
    tracking_uri: str, experiment: str | None = None, max_results: int = 50
) -> list[dict[str, Any]]:
    """The jobs of every backend, as their runs record them, newest first, shaped like
    DescribeTrainingJob (``TrainingJobName``, ``TrainingJobStatus``, ``CreationTime``,
    ``FailureReason``, ``FinalMetricDataList``) plus ``Backend``, ``RunId`` and ``Params``
    (the run's parameters: the flattened GLMConfig)."""
    from datetime import datetime, timezone

    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(resolve_experiment(experiment))
    if exp is None:
        return []
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string="tags.`smglm.job_name` != ''",
        order_by=["attributes.start_time DESC"],
        max_results=max_results,
    )
    out = []
    for run in runs:
        tags = run.data.tags
        created = datetime.fromtimestamp(run.info.start_time / 1000, tz=timezone.utc)
        state: dict[str, Any] = {
            "TrainingJobName": tags["smglm.job_name"],
            "TrainingJobStatus": _JOB_STATUS.get(run.info.status, "Stopped"),
            "CreationTime": created.isoformat(),
            "Backend": tags.get("smglm.backend", ""),
            "RunId": run.info.run_id,
            "Params": dict(run.data.params),
            "FinalMetricDataList": [
                {"MetricName": k.replace("_", ":", 1), "Value": v}
                for k, v in run.data.metrics.items()
                if k.startswith(("train_", "test_"))
            ],
        }
        if "smglm.failure_reason" in tags:
            state["FailureReason"] = tags["smglm.failure_reason"]
        out.append(state)
    return out
