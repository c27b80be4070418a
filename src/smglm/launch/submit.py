"""``smglm.train``: from a config and data to a running training job, on either backend.

Steps: validate the GLMConfig (and the data, when it is on this machine) before anything is
uploaded; upload data and config content-addressed; offer a finished job with the same config,
data and image instead of a new one (``reuse``); build the JobSpec; print the cost line and
apply the ``max_cost`` guard (SageMaker); launch; return a :class:`~smglm.launch.job.Job`.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smglm.config import GLMConfig, JobConfig, as_glm_config
from smglm.errors import ConfigError, Issue
from smglm.launch.backend import Backend, get_backend
from smglm.launch.job import Job
from smglm.launch.spec import Channel, JobSpec, make_job_name
from smglm.launch.storage import hash_bytes, hash_path, open_storage
from smglm.tracking.runs import RUN_ID_TAG, flatten_params, redact_uri

__all__ = ["LOCAL_IMAGE", "Upload", "frame_fingerprint", "train", "upload_config", "upload_data"]

log = logging.getLogger(__name__)

#: The image name the local backend records (it runs the installed package, not an image).
LOCAL_IMAGE = "smglm-local"

DataLike = Any  # a DataFrame, a local path, or an s3:// / file:// URI


@dataclass(frozen=True)
class Upload:
    """Where an input went, and the hash of its content."""

    uri: str
    sha256: str
    reused: bool


#: This process's memory of DataFrames it has serialized and checked, by content fingerprint
#: (:func:`frame_fingerprint`): the Parquet hash of each, and the (fingerprint, config hash)
#: pairs that passed the data checks. A notebook that launches several jobs on one DataFrame
#: writes and checks it once. Bounded; first in, first out.
_FRAME_DIGESTS: dict[str, str] = {}
_CHECKED: dict[tuple[str, str], None] = {}
_MEMORY = 64


def _remember(memory: dict[Any, Any], key: Any, value: Any) -> None:
    memory[key] = value
    while len(memory) > _MEMORY:
        del memory[next(iter(memory))]


def frame_fingerprint(df: Any) -> str | None:
    """A SHA-256 of a DataFrame's columns, dtypes (categories included) and row values, in
    order (pandas' row hashes; about 20x faster than writing the Parquet file); None when a
    column cannot be hashed."""
    import pandas as pd

    h = hashlib.sha256()
    for column, dtype in df.dtypes.items():
        h.update(repr((str(column), str(dtype))).encode())
        if isinstance(dtype, pd.CategoricalDtype):
            h.update(repr((list(dtype.categories), dtype.ordered)).encode())
    try:
        rows = pd.util.hash_pandas_object(df, index=False).to_numpy()
    except (TypeError, ValueError):
        return None
    h.update(len(df).to_bytes(8, "little"))
    h.update(rows.tobytes())
    return h.hexdigest()


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def upload_data(
    data: DataLike,
    base_uri: str,
    *,
    name: str = "train",
    s3_client: Any | None = None,
    fingerprint: str | None = None,
) -> Upload:
    """Upload a DataFrame (as Parquet), a file or a folder under ``<base>/inputs/<hash>/``;
    an ``s3://``/``file://`` URI is used as it is. Identical content is uploaded once.

    A DataFrame this process has uploaded before (same :func:`frame_fingerprint`, which is
    computed unless given) is not written to Parquet again when its file is still there.
    """
    import pandas as pd

    if isinstance(data, str) and data.startswith(("s3://", "file://")):
        return Upload(data, hashlib.sha256(data.encode()).hexdigest(), reused=True)
    if isinstance(data, pd.DataFrame):
        fingerprint = fingerprint or frame_fingerprint(data)
        known = _FRAME_DIGESTS.get(fingerprint) if fingerprint else None
        if known is not None:
            uri = _join(base_uri, "inputs", known[:20], f"{name}.parquet")
            if open_storage(uri, s3_client=s3_client).exists(uri):
                return Upload(_join(base_uri, "inputs", known[:20]) + "/", known, reused=True)
        buf = io.BytesIO()
        data.to_parquet(buf, index=False)
        payload = buf.getvalue()
        digest = hash_bytes(payload)
        if fingerprint:
            _remember(_FRAME_DIGESTS, fingerprint, digest)
        uri = _join(base_uri, "inputs", digest[:20], f"{name}.parquet")
        storage = open_storage(uri, s3_client=s3_client)
        if storage.exists(uri):
            return Upload(_join(base_uri, "inputs", digest[:20]) + "/", digest, reused=True)
        storage.upload_bytes(payload, uri)
        return Upload(_join(base_uri, "inputs", digest[:20]) + "/", digest, reused=False)
    path = Path(data)
    digest = hash_path(path)
    prefix = _join(base_uri, "inputs", digest[:20])
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    storage = open_storage(prefix, s3_client=s3_client)
    reused = True
    for f in files:
        rel = f.name if path.is_file() else str(f.relative_to(path))
        target = _join(prefix, rel)
        if not storage.exists(target):
            storage.upload_file(f, target, progress=True)
            reused = False
    return Upload(prefix + "/", digest, reused=reused)


def upload_config(config: GLMConfig, base_uri: str, *, s3_client: Any | None = None) -> Upload:
    """Upload the resolved GLMConfig as ``glm.json`` under ``<base>/inputs/<hash>/``."""
    payload = config.to_json().encode()
    digest = hash_bytes(payload)
    prefix = _join(base_uri, "inputs", digest[:20])
    uri = _join(prefix, "glm.json")
    storage = open_storage(uri, s3_client=s3_client)
    if storage.exists(uri):
        return Upload(prefix + "/", digest, reused=True)
    storage.upload_bytes(payload, uri)
    return Upload(prefix + "/", digest, reused=False)


def _check_local_data(
    config: GLMConfig, data: DataLike, what: str, fingerprint: str | None = None
) -> None:
    """Run the data checks here when the data is on this machine (before any upload); a
    DataFrame that passed them with the same config in this process is not checked again."""
    import warnings

    import pandas as pd

    from smglm.glm.data import prepare, read_table

    if isinstance(data, str) and data.startswith(("s3://", "file://")):
        return
    key = (fingerprint, hash_bytes(config.to_json().encode())) if fingerprint else None
    if key is not None and key in _CHECKED:
        return
    frame = (
        data
        if isinstance(data, pd.DataFrame)
        else read_table(data, what=what, columns=config.columns)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare(config, frame, what=what)
    if key is not None:
        _remember(_CHECKED, key, None)


def _job_config(job: JobConfig | dict[str, Any] | None, overrides: dict[str, Any]) -> JobConfig:
    base = job if isinstance(job, JobConfig) else JobConfig.from_dict(job or {})
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


def _storage_base(job: JobConfig, backend: Backend) -> str:
    if job.output_path:
        return job.output_path
    if backend.name == "local":
        home = getattr(backend, "home", Path(".smglm").absolute())
        return f"file://{Path(home) / 'storage'}"
    resolve = getattr(backend, "default_output_path", None)
    if resolve is None:
        raise ConfigError([Issue("output_path", "set output_path or bucket for this backend")])
    return str(resolve(job))


_REUSE_KEYS = ("smglm.config_hash", "smglm.data_hash", "smglm.test_data_hash", "smglm.image")


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
    find_completed = getattr(backend, "find_completed", None)
    if find_completed is not None:  # SageMaker: its job list carries no tags
        hit = find_completed(wanted)
        return (str(hit[0]), hit[1].get(RUN_ID_TAG)) if hit else None
    for state in backend.list_jobs(100):
        if state.get("TrainingJobStatus") != "Completed":
            continue
        job_tags = state.get("Tags") or {}
        if isinstance(job_tags, list):
            job_tags = {t["Key"]: t["Value"] for t in job_tags}
        if all(job_tags.get(k, "") == v for k, v in wanted.items()):
            return str(state["TrainingJobName"]), job_tags.get(RUN_ID_TAG)
    return None


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
        ``"local"`` (default: JobConfig.backend) or ``"sagemaker"``, or a Backend object.
    wait
        Follow the job until it ends (status and log lines), then return.
    reuse
        Return a completed job with the same config, data and image instead of a new one.
    tracking
        Track the job as an MLflow run (default: when mlflow is installed). The store is
        ``JobConfig.mlflow_tracking_uri``, else ``MLFLOW_TRACKING_URI``, else MLflow's local
        store in the working folder.
    """
    cfg = as_glm_config(config).resolved()
    jc = _job_config(job, job_fields)
    if isinstance(backend, Backend):
        be = backend
    elif (backend or jc.backend) == "sagemaker":
        be = get_backend("sagemaker", region=jc.region)
    else:
        be = get_backend(backend or jc.backend)
    import pandas as pd

    fingerprints = {
        role: frame_fingerprint(frame)
        for role, frame in (("train", data), ("test", test_data))
        if isinstance(frame, pd.DataFrame)
    }
    _check_local_data(cfg, data, "data", fingerprints.get("train"))
    if test_data is not None:
        _check_local_data(cfg, test_data, "test data", fingerprints.get("test"))

    image = jc.image_uri or (LOCAL_IMAGE if be.name == "local" else None)
    prepare_image = getattr(be, "prepare_image", None)
    if prepare_image is not None:
        image = prepare_image(jc)
    if not image:
        raise ConfigError([Issue("image_uri", "no image for the sagemaker backend")])

    base = _storage_base(jc, be)
    client_of = getattr(be, "s3_client", None)
    s3 = client_of() if client_of is not None and base.startswith("s3://") else None
    data_up = upload_data(
        data, base, name="train", s3_client=s3, fingerprint=fingerprints.get("train")
    )
    test_up = (
        upload_data(
            test_data, base, name="test", s3_client=s3, fingerprint=fingerprints.get("test")
        )
        if test_data is not None
        else None
    )
    config_up = upload_config(cfg, base, s3_client=s3)
    tags = {
        "smglm.config_hash": config_up.sha256[:20],
        "smglm.data_hash": data_up.sha256[:20],
        "smglm.test_data_hash": test_up.sha256[:20] if test_up else "",
        "smglm.image": image,
        "smglm.backend": be.name,
        "smglm.version": _version(),
        **jc.tags,
    }
    if reuse:
        found = _find_reusable(be, tags, jc, tracking)
        if found:
            print(f"[smglm] reusing completed job {found[0]} (same config, data and image)")
            return Job(found[0], be, reused=True, run_id=found[1])

    from smglm.runtime.metrics import METRIC_DEFINITIONS  # the one list (a constant module)

    name = jc.job_name or make_job_name(f"smglm-{cfg.family}")
    environment: dict[str, str] = {}
    tracker = _start_tracking(tracking, jc, cfg, name, be.name, image, base, tags)
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
    spec = JobSpec(
        name=name,
        image_uri=image,
        output_path=_join(base, "jobs"),
        channels=tuple(channels),
        role_arn=getattr(be, "resolve_role", lambda j: jc.role)(jc),
        instance_type=jc.instance_type,
        instance_count=jc.instance_count,
        volume_size_gb=jc.volume_size_gb,
        max_runtime_seconds=jc.max_runtime_seconds,
        environment=environment,
        metric_definitions=tuple(METRIC_DEFINITIONS),
        tags=tags,
    )
    cost_check = getattr(be, "check_cost", None)
    if cost_check is not None:
        cost_check(spec, jc.max_cost)
    try:
        be.launch(spec)
    except Exception as exc:
        if tracker is not None:
            tracker.fail(f"launch failed: {exc}")
        raise
    handle = Job(name, be, run_id=tracker.run_id if tracker else None)
    if wait:
        handle.wait(logs=logs)
    return handle


@dataclass
class _Tracker:
    uri: str
    run_id: str
    env: dict[str, str]

    def fail(self, reason: str) -> None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        client.set_tag(self.run_id, "smglm.failure_reason", reason[:5000])
        client.set_terminated(self.run_id, status="FAILED")


def _start_tracking(
    tracking: bool | None,
    jc: JobConfig,
    cfg: GLMConfig,
    name: str,
    backend: str,
    image: str,
    base: str,
    tags: dict[str, str],
) -> _Tracker | None:
    from smglm.tracking.runs import job_env, mlflow_available, resolve_tracking_uri, start_job_run

    if tracking is None:
        tracking = mlflow_available()
        if not tracking:
            log.info(
                "mlflow is not installed: the job is not tracked (pip install 'smglm[tracking]')"
            )
    if not tracking:
        return None
    uri = resolve_tracking_uri(jc.mlflow_tracking_uri)
    params = flatten_params(cfg.to_dict())
    params.update(
        {
            "job.backend": backend,
            "job.instance_type": jc.instance_type,
            "job.instance_count": str(jc.instance_count),
            "job.max_runtime_seconds": str(jc.max_runtime_seconds),
            "job.image": image,
        }
    )
    run_tags = {**tags, "smglm.output_path": _join(base, "jobs", name)}
    run_id = start_job_run(
        tracking_uri=uri,
        experiment=jc.mlflow_experiment,
        job_name=name,
        params=params,
        tags=run_tags,
    )
    env = job_env(uri, jc.mlflow_experiment, run_id, remote=backend != "local")
    return _Tracker(uri, run_id, env)


def _version() -> str:
    from smglm import __version__

    return __version__
