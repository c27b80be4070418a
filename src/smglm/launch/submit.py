"""``smglm.train``: from a config and data to a running training job, on either backend.

Steps: validate the GLMConfig (and the data, when it is on this machine) before anything is
uploaded; upload data and config content-addressed (:mod:`smglm.launch.inputs`); offer a
finished job with the same config, data and image instead of a new one (``reuse``); build the
JobSpec; print the cost line and apply the ``max_cost`` guard (SageMaker); launch; return a
:class:`~smglm.launch.job.Job`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smglm.config import GLMConfig, JobConfig, as_glm_config
from smglm.config.job import FIELD_ALIASES
from smglm.contract import METRIC_DEFINITIONS
from smglm.errors import ConfigError, Issue, MissingDependency
from smglm.launch.backend import Backend, backend_from_config
from smglm.launch.inputs import (
    DataLike,
    Upload,
    _check_local_data,
    _join,
    frame_fingerprint,
    upload_config,
    upload_data,
)
from smglm.launch.job import Job
from smglm.launch.spec import Channel, JobSpec, make_job_name, merge_environment
from smglm.launch.storage import UploadProgress
from smglm.redaction import redact, redact_uri
from smglm.tracking.runs import RUN_ID_TAG, flatten_params

__all__ = ["Upload", "frame_fingerprint", "train", "upload_config", "upload_data"]

log = logging.getLogger(__name__)


def _job_config(job: JobConfig | dict[str, Any] | None, overrides: dict[str, Any]) -> JobConfig:
    base = job if isinstance(job, JobConfig) else JobConfig.from_dict(job or {})
    overrides = {FIELD_ALIASES.get(k, k): v for k, v in overrides.items()}  # max_run=...
    if overrides:
        data = base.to_dict()
        unknown = [k for k in overrides if k not in data]
        if unknown:
            from smglm.errors import did_you_mean

            raise ConfigError(
                [
                    Issue(k, f"is not a JobConfig field.{did_you_mean(k, list(data))}", k)
                    for k in unknown
                ]
            )
        data.update(overrides)
        base = JobConfig.from_dict(data)
    return base


def storage_layout(job: JobConfig, backend: Backend) -> tuple[str, str]:
    """Where a job's files go, as the SageMaker SDK lays them out: ``(output_path, input_base)``.

    ``output_path`` is CreateTrainingJob's ``S3OutputPath``: the job's artifacts land at
    ``<output_path>/<job>/output/model.tar.gz``. It is ``JobConfig.output_path`` as given, else
    ``<backend's default base>/jobs``. Content-addressed inputs go to
    ``<input_base>/inputs/<hash>/`` (:meth:`~smglm.launch.backend.Backend.default_input_base`:
    ``s3://<bucket>/<prefix>`` on SageMaker, ``file://<home>/storage`` locally), never inside
    ``output_path``'s job layout, so identical inputs are uploaded once for every job."""
    output_path = job.output_path or _join(str(backend.default_output_path(job)), "jobs")
    return output_path.rstrip("/"), str(backend.default_input_base(job)).rstrip("/")


_REUSE_KEYS = (
    "smglm.config_hash",
    "smglm.data_hash",
    "smglm.test_data_hash",
    "smglm.image",
    "smglm.fit",
)


def _find_reusable(
    backend: Backend, tags: dict[str, str], jc: JobConfig, tracking: bool | None
) -> tuple[str, str | None] | None:
    """A completed job with the same config, data and image: looked up in MLflow by the
    hashes when tracking, else in the backend's own job list. Returns (job name, run id)."""
    from smglm.tracking.runs import find_runs, mlflow_available, resolve_tracking_uri

    wanted = {k: tags.get(k, "") for k in _REUSE_KEYS}
    if tracking or (tracking is None and mlflow_available()):
        uri = resolve_tracking_uri(jc.mlflow_tracking_uri)
        runs = find_runs(uri, jc.mlflow_experiment, {**wanted, "smglm.backend": backend.name})
        for run in runs:
            if run.info.status == "FINISHED":
                return str(run.data.tags["smglm.job_name"]), str(run.info.run_id)
    hit = backend.find_completed(wanted)
    return (str(hit[0]), hit[1].get(RUN_ID_TAG)) if hit else None


def train(
    config: GLMConfig | dict[str, Any] | str | Path,
    data: DataLike,
    *,
    test_data: DataLike | None = None,
    job: JobConfig | dict[str, Any] | None = None,
    backend: str | Backend | None = None,
    wait: bool = False,
    reuse: bool = False,
    logs: bool = True,
    tracking: bool | None = None,
    progress: UploadProgress | None = None,
    **job_fields: Any,
) -> Job:
    """Start a training job and return its handle.

    Parameters
    ----------
    config
        The GLMConfig (object, dict, or YAML/JSON path).
    data, test_data
        A DataFrame, a local CSV/Parquet file or folder, or an ``s3://``/``file://`` URI.
    job
        A :class:`~smglm.JobConfig` (or dict); keyword arguments override its fields, e.g.
        ``instance_type="ml.m5.2xlarge"``, ``job_name="freq-v1"``, ``max_cost=2.0``.
    backend
        A registered backend's name (default: ``JobConfig.backend``; see
        :func:`~smglm.launch.backend.backend_names`: ``"local"``, ``"sagemaker"``, ...), made
        with its options from the JobConfig (e.g. ``region``), or a Backend object.
    wait
        Follow the job until it ends (status and log lines), then return.
    reuse
        Return a completed job with the same config, data and image instead of a new one.
    tracking
        Track the job as an MLflow run (default: when mlflow is installed). The store is
        ``JobConfig.mlflow_tracking_uri``, else ``MLFLOW_TRACKING_URI``, else MLflow's local
        store in the working folder.
    progress
        Told the bytes sent of each data object uploaded, as ``progress(name, done, total)``
        (``done`` 0 first and ``total`` last; see
        :data:`~smglm.launch.storage.UploadProgress`): the notebook's upload line. Data
        already uploaded (the same content) is not sent again and not reported.
    """
    cfg = as_glm_config(config).resolved()
    jc = _job_config(job, job_fields)
    from smglm.glm.engines import check_engine  # the engine can fit it (no glum import)

    if issues := check_engine(cfg, jc.engine):
        raise ConfigError(issues)
    if jc.aggregate == "cells" and jc.engine == "glum":
        from smglm.glm.points import check_aggregate  # the terms allow model points

        local = data if not isinstance(data, str) or "://" not in data else None
        if issues := check_aggregate(cfg, jc.aggregate, local):
            raise ConfigError(issues)
    if backend is None or isinstance(backend, str):
        be = backend_from_config(backend or jc.backend, jc.to_dict())
    else:
        be = backend
    jc, notes = be.apply_defaults(jc)  # e.g. the SageMaker SDK config's VPC, KMS keys, tags
    for line in notes:
        print(f"[smglm] {line}")
    import pandas as pd

    fingerprints = {
        role: frame_fingerprint(frame)
        for role, frame in (("train", data), ("test", test_data))
        if isinstance(frame, pd.DataFrame)
    }
    _check_local_data(cfg, data, "data", fingerprints.get("train"), split=test_data is None)
    if test_data is not None:
        _check_local_data(cfg, test_data, "test data", fingerprints.get("test"))

    image = be.prepare_image(jc)
    output_path, base = storage_layout(jc, be)
    s3 = be.s3_client() if base.startswith("s3://") else None
    uploads = {
        role: upload_data(
            frame,
            base,
            name=role,
            s3_client=s3,
            fingerprint=fingerprints.get(role),
            progress=progress,
        )
        for role, frame in (("train", data), ("test", test_data))
        if frame is not None
    }
    data_up, test_up = uploads["train"], uploads.get("test")
    config_up = upload_config(cfg, base, s3_client=s3)
    tags = {
        "smglm.config_hash": config_up.sha256[:20],
        "smglm.data_hash": data_up.sha256[:20],
        "smglm.test_data_hash": test_up.sha256[:20] if test_up else "",
        "smglm.image": image,
        "smglm.backend": be.name,
        "smglm.fit": f"engine={jc.engine};aggregate={jc.aggregate}",
        "smglm.engine": jc.engine,
        "smglm.version": _version(),
        **{k: redact(v) for k, v in jc.tags.items()},  # a URI in a tag loses its user:password@
    }
    if reuse:
        found = _find_reusable(be, tags, jc, tracking)
        if found:
            print(f"[smglm] reusing completed job {found[0]} (same config, data and image)")
            return Job(found[0], be, reused=True, run_id=found[1])

    name = jc.job_name or make_job_name(f"smglm-{cfg.family}")
    environment: dict[str, str] = {}
    try:
        tracker = _start_tracking(tracking, jc, cfg, name, be, image, output_path, tags)
    except MissingDependency:
        raise
    except Exception as exc:  # tracking never costs the job: it runs untracked, and says so
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else repr(exc)
        print(f"[smglm] MLflow tracking failed, job {name} runs untracked: {reason}")
        log.warning("MLflow tracking failed for job %s: %s", name, reason)
        tracker = None
    if tracker is not None:
        environment.update(tracker.env)
        tags[RUN_ID_TAG] = tracker.run_id
        tags["smglm.tracking_uri"] = redact_uri(tracker.uri)
    channels = [
        Channel("train", data_up.uri),
        Channel("config", config_up.uri, content_type="application/json"),
    ]
    if test_up:
        channels.append(Channel("test", test_up.uri))
    try:  # the user's environment beside smglm's own (a variable of both is an error)
        job_environment = merge_environment(environment, jc.environment)
    except ConfigError as exc:
        if tracker is not None:
            tracker.fail(str(exc))
        raise
    spec = JobSpec(
        name=name,
        image_uri=image,
        output_path=output_path,
        channels=tuple(channels),
        role_arn=be.resolve_role(jc),
        instance_type=jc.instance_type,
        instance_count=jc.instance_count,
        volume_size_gb=jc.volume_size_gb,
        max_runtime_seconds=jc.max_runtime_seconds,
        environment=job_environment,
        hyperparameters=fit_hyperparameters(jc, remote=be.remote),
        metric_definitions=tuple(METRIC_DEFINITIONS) if be.uses_metric_definitions else (),
        tags=tags,
        subnets=tuple(jc.subnets),
        security_group_ids=tuple(jc.security_group_ids),
        network_isolation=jc.enable_network_isolation,
        inter_container_encryption=jc.encrypt_inter_container_traffic,
        volume_kms_key=jc.volume_kms_key,
        output_kms_key=jc.output_kms_key,
        use_spot=jc.use_spot,
        # managed spot needs MaxWaitTimeInSeconds: by default the run time (no extra wait)
        max_wait_seconds=jc.max_wait_seconds or (jc.max_runtime_seconds if jc.use_spot else None),
        keep_alive_seconds=jc.keep_alive_seconds,
        mlflow_config=tracker.mlflow_config if tracker is not None else None,
    )
    be.check_cost(spec, jc.max_cost)
    try:
        be.launch(spec)
    except Exception as exc:
        if tracker is not None:
            tracker.fail(f"launch failed: {exc}")
        raise
    handle = Job(
        name,
        be,
        run_id=tracker.run_id if tracker else None,
        tracking_uri=tracker.uri if tracker else None,
    )
    handle.announce()  # where the log is (SageMaker: CloudWatch and console links)
    if wait:
        handle.wait(logs=logs)
    return handle


def fit_hyperparameters(jc: JobConfig, *, remote: bool = True) -> dict[str, str]:
    """The ``train`` entry point's own hyperparameters for this job: the fitting ``engine``
    and ``aggregate`` (model points), when they are not the defaults, and ``report_images:
    false`` when the job draws no PNGs (:meth:`JobConfig.images_on` for a backend that runs
    jobs elsewhere, ``remote``, or here). A Spark job on a remote backend takes none but
    ``engine`` and ``aggregate``: its figures are drawn where spark-finish runs."""
    out: dict[str, str] = {}
    if jc.engine != "glum":
        out["engine"] = jc.engine
    if jc.aggregate != "auto":
        out["aggregate"] = jc.aggregate
    if not jc.images_on(remote) and not (remote and jc.engine == "spark"):
        out["report_images"] = "false"
    return out


@dataclass
class _Tracker:
    uri: str
    run_id: str
    env: dict[str, str]
    #: CreateTrainingJob's MlflowConfig, for a SageMaker managed MLflow tracking URI.
    mlflow_config: dict[str, str] | None = None

    def fail(self, reason: str) -> None:
        from smglm.tracking.runs import _client

        client = _client(self.uri)
        client.set_tag(self.run_id, "smglm.failure_reason", redact(reason)[:5000])
        client.set_terminated(self.run_id, status="FAILED")


def _start_tracking(
    tracking: bool | None,
    jc: JobConfig,
    cfg: GLMConfig,
    name: str,
    backend: Backend,
    image: str,
    output_path: str,
    tags: dict[str, str],
) -> _Tracker | None:
    from smglm.tracking import managed
    from smglm.tracking.runs import (
        job_env,
        mlflow_available,
        resolve_experiment,
        resolve_tracking_uri,
        start_job_run,
    )

    if tracking is None:
        tracking = mlflow_available()
        if not tracking:
            log.info(
                "mlflow is not installed: the job is not tracked (pip install 'smglm[tracking]')"
            )
    if not tracking:
        return None
    uri = resolve_tracking_uri(jc.mlflow_tracking_uri)
    experiment = resolve_experiment(jc.mlflow_experiment)  # MLFLOW_EXPERIMENT_NAME when unset
    managed.check_version(uri)  # warns when the server runs another MLflow major.minor
    params = flatten_params(cfg.to_dict())
    params.update(
        {
            "job.backend": backend.name,
            "job.instance_type": jc.instance_type,
            "job.instance_count": str(jc.instance_count),
            "job.engine": jc.engine,
            "job.aggregate": jc.aggregate,
            "job.max_runtime_seconds": str(jc.max_runtime_seconds),
            "job.image": image,
        }
    )
    run_tags = {**tags, "smglm.output_path": _join(output_path, name)}
    run_id = start_job_run(
        tracking_uri=uri,
        experiment=experiment,
        job_name=name,
        params=params,
        tags=run_tags,
    )
    env = job_env(uri, experiment, run_id, remote=backend.remote)
    mlflow_config = None
    if managed.is_managed_uri(uri):
        mlflow_config = {
            "MlflowResourceArn": uri,
            "MlflowExperimentName": experiment,
            "MlflowRunName": name,
        }
    return _Tracker(uri, run_id, env, mlflow_config)


def _version() -> str:
    from smglm._version import __version__

    return __version__
