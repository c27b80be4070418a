"""Acceptance of MLflow tracking: every local training job is one MLflow run.

Against a real ``mlflow server`` (sqlite store, artifacts on disk), a second one whose artifacts
go to moto's S3, and the embedded sqlite store. One module fixture launches every job at once
(they run side by side); each test waits for the job it checks.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import smglm
from mlflow_server import FAKE_AWS, MlflowServer, moto_s3
from smglm.config import GLMConfig
from smglm.datasets import motor
from smglm.launch import Job
from smglm.launch.local import LocalBackend
from smglm.launch.spec import JobSpec
from smglm.launch.storage import file_path
from smglm.redaction import redact_uri
from smglm.tracking.runs import (
    finalize_job_run,
    find_runs,
    job_env,
    resolve_tracking_uri,
    start_job_run,
)

EXPERIMENT = "smglm-acceptance"
UNTRACKED_EXPERIMENT = "smglm-untracked"
LAUNCHER_EXPERIMENT = "smglm-launcher-path"
BUCKET = "smglm-mlflow"
CONFIG = {
    "target": "claim_count",
    "predictors": ["driver_age", "vehicle_power", "area"],
    "exposure": "exposure",
    "family": "poisson",
    "penalty": {"alpha": 0.001},
    "test": {"fraction": 0.25, "seed": 7},
}
SMALL = {
    "target": "claim_count",
    "predictors": ["driver_age", "area"],
    "exposure": "exposure",
    "family": "poisson",
}
INSTANCE = "ml.m5.large"
# made-up secrets, present in the launching environment of one job
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYsmglmTEST"
TOKEN = "hf_smglmTestTokenValue0123456789abcdef"
PASSWORD = "s3cr3t-pw-smglm"
LOGGED_BY = ("runtime", "launcher")
MODEL_FILES = {
    "model.json",
    "coefficients.csv",
    "metrics.json",
    "config.yaml",
    "convergence.csv",
    "model/MLmodel",
    "model/model.json",
    "model/requirements.txt",
    "model/python_env.yaml",
    "model/conda.yaml",
}

slow = pytest.mark.slow


@dataclass
class Stores:
    root: Path
    embedded: str
    server: str
    s3: str
    s3_client: Any

    def uri(self, name: str) -> str:
        return str(getattr(self, name))


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return motor(5000, seed=11)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    """Two real MLflow servers (artifacts on disk; artifacts in moto's S3) and a sqlite file."""
    root = tmp_path_factory.mktemp("tracking")
    (root / "embedded").mkdir()
    with moto_s3(BUCKET) as (endpoint, s3):
        plain = MlflowServer(root / "server", str(root / "server" / "artifacts"))
        on_s3 = MlflowServer(
            root / "s3-server",
            f"s3://{BUCKET}/mlflow",
            env={**FAKE_AWS, "MLFLOW_S3_ENDPOINT_URL": endpoint},
        )
        try:
            plain.wait_ready()
            on_s3.wait_ready()
            yield Stores(
                root=root,
                embedded=f"sqlite:///{root / 'embedded' / 'mlflow.db'}",
                server=plain.url,
                s3=on_s3.url,
                s3_client=s3,
            )
        finally:
            plain.terminate()
            on_s3.terminate()
            plain.stop()
            on_s3.stop()


@pytest.fixture(scope="module")
def jobs(stores: Stores, data: pd.DataFrame) -> Iterator[dict[str, Job]]:
    """Every job of the module, launched at once; tests wait for the one they check."""
    home = stores.root / "home"
    backend = LocalBackend(home)

    def launch(config: dict[str, Any], uri: str, source: Any = data, **kw: Any) -> Job:
        kw.setdefault("mlflow_experiment", EXPERIMENT)
        return smglm.train(
            config,
            source,
            backend=kw.pop("backend", backend),
            mlflow_tracking_uri=uri,
            instance_type=INSTANCE,
            **kw,
        )

    launched: dict[str, Job] = {}
    launched["server"] = launch(CONFIG, stores.server, report_images=True)  # PNGs drawn too
    launched["embedded"] = launch(CONFIG, stores.embedded)
    launched["s3"] = launch(SMALL, stores.s3)
    with pytest.MonkeyPatch.context() as mp:  # secrets in the launching environment
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        mp.setenv("HF_TOKEN", TOKEN)
        credentialed = stores.server.replace("http://", f"http://alice:{PASSWORD}@")
        launched["server_again"] = launch(CONFIG, credentialed, reuse=False)
    launched["untracked"] = launch(
        SMALL, stores.server, tracking=False, mlflow_experiment=UNTRACKED_EXPERIMENT
    )
    bad = stores.root / "train.csv"
    data.to_csv(bad, index=False)
    missing = {**SMALL, "predictors": ["driver_age", "no_such_column"]}
    launched["failed"] = launch(missing, stores.server, source=f"file://{bad}")
    stopper = LocalBackend(home, stop_grace_seconds=5)
    launched["stopped"] = launch(SMALL, stores.server, backend=stopper)
    launched["stopped"].stop()
    yield launched
    for job in launched.values():  # no job outlives the servers it logs to
        job.wait(logs=False, out=io.StringIO(), timeout=300, raise_on_failure=False)


def finished(job: Job) -> Job:
    job.wait(logs=False, out=io.StringIO(), timeout=300, raise_on_failure=False)
    return job


def client_for(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def artifact_paths(client: Any, run_id: str | None, path: str | None = None) -> set[str]:
    """Every artifact file of a run, as paths relative to its artifact root."""
    out: set[str] = set()
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            out |= artifact_paths(client, run_id, info.path)
        else:
            out.add(info.path)
    return out


def expected_metrics(model_dir: Path) -> dict[str, float]:
    """The MLflow metrics a job's ``metrics.json`` stands for: ``<split>_<name>``."""
    data = json.loads((model_dir / "metrics.json").read_text(encoding="utf-8"))
    out = {}
    for split in ("train", "test", "fit"):
        for name, value in (data.get(split) or {}).items():
            if isinstance(value, (bool, int, float)) and math.isfinite(float(value)):
                out[f"{split}_{name}"] = float(value)
    return out


def spec_of(job: Job) -> JobSpec:
    backend = job.backend
    assert isinstance(backend, LocalBackend)
    return backend.spec(job.name)


def sha20(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:20]


def pyfunc_predictions(
    uri: str, run_id: str | None, df: pd.DataFrame, mp: pytest.MonkeyPatch
) -> Any:
    import mlflow.pyfunc

    mp.setenv("MLFLOW_TRACKING_URI", uri)  # what runs:/ URIs resolve against
    return mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(df)


# -- a completed job, on the server and in the embedded store ------------------------------

STORES = pytest.mark.parametrize("store", ["server", "embedded"])


@slow
@STORES
def test_completed_job_run_is_finished_with_smglm_tags(jobs, stores, store):
    job = finished(jobs[store])
    assert job.status == "Completed"
    client = client_for(stores.uri(store))
    run = client.get_run(job.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    tags = run.data.tags
    spec = spec_of(job)
    channels = {c.name: file_path(c.uri) for c in spec.channels}
    assert tags["smglm.job_name"] == job.name == run.info.run_name
    assert tags["smglm.backend"] == "local"
    assert tags["smglm.image"] == "smglm-local"
    assert tags["smglm.version"] == smglm.__version__
    assert tags["smglm.config_hash"] == sha20(channels["config"] / "glm.json")
    assert tags["smglm.data_hash"] == sha20(channels["train"] / "train.parquet")
    assert tags["smglm.test_data_hash"] == ""
    assert tags["smglm.output_path"] == f"{spec.output_path}/{job.name}"
    assert (job.model_uri or "").startswith(tags["smglm.output_path"] + "/")
    assert tags["smglm.logged_by"] in LOGGED_BY
    assert tags["smglm.billable_seconds"] == str(job.billable_seconds)
    assert "smglm.failure_reason" not in tags
    assert job.describe()["Tags"]["smglm.mlflow_run_id"] == job.run_id
    # the config channel holds the resolved GLMConfig that was hashed
    glm = json.loads((channels["config"] / "glm.json").read_text(encoding="utf-8"))
    assert glm == json.loads(GLMConfig.from_dict(CONFIG).resolved().to_json())


@slow
@STORES
def test_completed_job_run_params_are_config_and_job_settings(jobs, stores, store):
    job = finished(jobs[store])
    params = client_for(stores.uri(store)).get_run(job.run_id).data.params
    expected = {
        "target": "claim_count",
        "family": "poisson",
        "link": "log",
        "exposure": "exposure",
        "predictors": json.dumps(CONFIG["predictors"]),
        "penalty.alpha": "0.001",
        "penalty.l1_ratio": "0.0",
        "test.fraction": "0.25",
        "test.seed": "7",
        "max_iter": "100",
        "job.backend": "local",
        "job.instance_type": INSTANCE,
        "job.instance_count": "1",
        "job.max_runtime_seconds": "3600",
        "job.image": "smglm-local",
    }
    assert {k: params.get(k) for k in expected} == expected
    for field in GLMConfig.model_fields:  # every config field is a param (nested as a.b)
        assert any(k == field or k.startswith(f"{field}.") for k in params), field


@slow
@STORES
def test_completed_job_run_metrics_equal_metrics_json(jobs, stores, store):
    job = finished(jobs[store])
    run = client_for(stores.uri(store)).get_run(job.run_id)
    expected = expected_metrics(job.artifacts() / "model")
    got = {k: v for k, v in run.data.metrics.items() if k != "objective"}
    assert set(got) == set(expected)
    assert {"train_deviance", "test_deviance", "test_gini", "fit_iterations"} <= set(got)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=0), key
    assert expected["test_n_obs"] == 1250 and expected["train_n_obs"] == 3750


@slow
@STORES
def test_completed_job_objective_history_has_one_point_per_iteration(jobs, stores, store):
    job = finished(jobs[store])
    client = client_for(stores.uri(store))
    history = sorted(client.get_metric_history(job.run_id, "objective"), key=lambda m: m.step)
    conv = pd.read_csv(job.artifacts() / "model" / "convergence.csv")
    iterations = json.loads((job.artifacts() / "model" / "metrics.json").read_text())["fit"]
    steps = [m.step for m in history]
    assert steps == conv["iteration"].tolist() == list(range(iterations["iterations"] + 1))
    np.testing.assert_allclose([m.value for m in history], conv["objective"], rtol=1e-12)
    assert client.get_run(job.run_id).data.metrics["objective"] == history[-1].value


@slow
@STORES
def test_completed_job_run_artifacts_are_model_files_plots_and_model(jobs, stores, store, tmp_path):
    import mlflow.artifacts

    job = finished(jobs[store])
    uri = stores.uri(store)
    client = client_for(uri)
    paths = artifact_paths(client, job.run_id)
    assert paths >= MODEL_FILES
    output = job.artifacts() / "output"
    files = {f"report/{p.relative_to(output).as_posix()}" for p in output.rglob("*") if p.is_file()}
    assert {p for p in paths if p.startswith("report/")} == files  # the report, as the job wrote it
    assert {"report/train/report.json", "report/test/lift.csv"} <= files
    plots = {p for p in files if p.endswith(".png")}
    if store == "server":  # report_images: true, the plots of both splits (and the one-ways)
        assert any(p.startswith("report/train/") for p in plots)
        assert any(p.startswith("report/test/") for p in plots)
        assert any(p.startswith("report/data/one_way/") or "/one_way/" in p for p in plots)
    else:  # a local job's default: the notebook draws the figures from the tables
        assert plots == set()
    local = mlflow.artifacts.download_artifacts(
        run_id=job.run_id, artifact_path="model.json", dst_path=str(tmp_path), tracking_uri=uri
    )
    assert Path(local).read_bytes() == (job.artifacts() / "model" / "model.json").read_bytes()
    if store == "embedded":  # artifacts beside the database
        artifact_uri = client.get_run(job.run_id).info.artifact_uri
        assert artifact_uri.startswith((stores.root / "embedded" / "mlruns").as_uri())


@slow
@STORES
def test_completed_job_pyfunc_model_predicts_as_job_model(jobs, stores, store, data, monkeypatch):
    job = finished(jobs[store])
    got = pyfunc_predictions(stores.uri(store), job.run_id, data, monkeypatch)
    np.testing.assert_array_equal(np.asarray(got), job.model.predict(data))


# -- artifacts in S3 -----------------------------------------------------------------------


@slow
def test_server_with_s3_artifacts_keeps_them_in_the_bucket(jobs, stores, data, monkeypatch):
    job = finished(jobs["s3"])
    client = client_for(stores.s3)
    run = client.get_run(job.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["smglm.logged_by"] in LOGGED_BY
    prefix = "mlflow/" + run.info.artifact_uri.removeprefix("mlflow-artifacts:/") + "/"
    pages = stores.s3_client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    in_bucket = {k[len(prefix) :] for k in keys if k.startswith(prefix)}
    assert in_bucket >= MODEL_FILES
    assert in_bucket == artifact_paths(client, job.run_id)
    body = stores.s3_client.get_object(Bucket=BUCKET, Key=prefix + "model/model.json")["Body"]
    assert body.read() == (job.artifacts() / "model" / "model.json").read_bytes()
    assert not (stores.root / "s3-server" / "artifacts").exists()
    got = pyfunc_predictions(stores.s3, job.run_id, data, monkeypatch)
    np.testing.assert_array_equal(np.asarray(got), job.model.predict(data))


# -- failed and stopped jobs ---------------------------------------------------------------


@slow
def test_failed_job_run_is_failed_with_reason_naming_the_column(jobs, stores):
    job = finished(jobs["failed"])
    assert job.status == "Failed"
    run = client_for(stores.server).get_run(job.run_id)
    assert run.info.status == "FAILED"
    assert run.info.end_time is not None
    reason = run.data.tags["smglm.failure_reason"]
    assert "no_such_column" in reason
    assert reason == job.failure_reason
    assert "smglm.logged_by" not in run.data.tags
    assert run.data.metrics == {}


@slow
def test_stopped_job_run_is_killed(jobs, stores):
    job = finished(jobs["stopped"])
    assert job.status == "Stopped"
    run = client_for(stores.server).get_run(job.run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["smglm.failure_reason"] == job.failure_reason
    assert "stopped" in (job.failure_reason or "").lower()
    assert "smglm.logged_by" not in run.data.tags


# -- finding runs and reusing jobs ---------------------------------------------------------


@slow
def test_same_config_and_data_runs_are_found_and_reused(jobs, stores, data):
    first, second = finished(jobs["server"]), finished(jobs["server_again"])
    assert first.status == second.status == "Completed" and first.name != second.name
    tags = client_for(stores.server).get_run(first.run_id).data.tags
    wanted = {k: tags[k] for k in ("smglm.config_hash", "smglm.data_hash")}
    runs = find_runs(stores.server, EXPERIMENT, wanted)
    assert [r.info.run_id for r in runs] == [second.run_id, first.run_id]  # newest first
    assert [r.data.tags["smglm.job_name"] for r in runs] == [second.name, first.name]

    again = smglm.train(
        CONFIG,
        data,
        backend=first.backend,
        reuse=True,
        mlflow_tracking_uri=stores.server,
        mlflow_experiment=EXPERIMENT,
        instance_type=INSTANCE,
    )
    newest = runs[0]
    assert again.reused
    assert again.run_id == newest.info.run_id
    assert again.name == newest.data.tags["smglm.job_name"]
    assert again.status == "Completed"
    assert len(find_runs(stores.server, EXPERIMENT, wanted)) == 2  # no new run
    assert len(first.backend.list_jobs(100)) == len(jobs)  # no new job


# -- no secrets ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://user:pw@host:5000/x", "http://host:5000/x"),
        ("https://token@mlflow.example.com/p?q=1", "https://mlflow.example.com/p?q=1"),
        ("http://u:p@[::1]:5000/", "http://[::1]:5000/"),
        ("http://host:5000", "http://host:5000"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/t", None),
    ],
)
def test_redact_uri_drops_credentials_only(uri, expected):
    assert redact_uri(uri) == (uri if expected is None else expected)


def test_job_env_never_gives_a_remote_job_credentials_or_a_local_store(monkeypatch):
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    assert job_env("http://u:pw@h:5000", "e", "r1", remote=True) == {}
    assert job_env("sqlite:///m.db", "e", "r1", remote=True) == {}
    assert job_env("https://h:5000", "e", "r1", remote=True) == {
        "MLFLOW_RUN_ID": "r1",
        "MLFLOW_TRACKING_URI": "https://h:5000",
        "MLFLOW_EXPERIMENT_NAME": "e",
    }
    assert job_env("http://u:pw@h:5000", None, "r1", remote=False) == {
        "MLFLOW_RUN_ID": "r1",
        "MLFLOW_TRACKING_URI": "http://u:pw@h:5000",
        "MLFLOW_EXPERIMENT_NAME": "smglm",  # the run's experiment: the default one
    }


def test_resolve_tracking_uri_takes_credentials_of_a_redacted_uri_from_env(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://u:pw@h:5000")
    assert resolve_tracking_uri("http://h:5000") == "http://u:pw@h:5000"  # a job's tag
    assert resolve_tracking_uri("http://other:5000") == "http://other:5000"
    assert resolve_tracking_uri(None) == "http://u:pw@h:5000"


@slow
def test_no_secret_reaches_params_or_tags(jobs, stores):
    job = finished(jobs["server_again"])
    run = client_for(stores.server).get_run(job.run_id)
    assert run.info.status == "FINISHED"  # the credentialed URI worked end to end
    assert run.data.tags["smglm.logged_by"] in LOGGED_BY
    values = [*run.data.params.values(), *run.data.tags.values(), *run.data.params.keys()]
    job_tags = job.describe()["Tags"]
    environment = spec_of(job).environment
    for secret in (SECRET, TOKEN, PASSWORD):
        assert not any(secret in v for v in values), secret
        assert not any(secret in v for v in job_tags.values()), secret
    for secret in (SECRET, TOKEN):
        assert not any(secret in v for v in environment.values()), secret
    assert job_tags["smglm.tracking_uri"] == stores.server  # redacted


# -- tracking off --------------------------------------------------------------------------


@slow
def test_tracking_false_creates_no_run(jobs, stores):
    job = finished(jobs["untracked"])
    assert job.status == "Completed"
    assert job.run_id is None
    assert not [k for k in spec_of(job).environment if k.startswith("MLFLOW_")]
    assert "smglm.mlflow_run_id" not in job.describe()["Tags"]
    client = client_for(stores.server)
    assert client.get_experiment_by_name(UNTRACKED_EXPERIMENT) is None
    experiments = [e.experiment_id for e in client.search_experiments()]
    named = client.search_runs(experiments, filter_string=f"tags.`smglm.job_name` = '{job.name}'")
    assert named == []


# -- the launcher path: results logged from the job's artifacts ----------------------------


@slow
@STORES
def test_finalize_job_run_logs_results_from_artifacts_when_runtime_did_not(jobs, stores, store):
    job = finished(jobs[store])
    folder = job.artifacts()
    uri = stores.uri(store)
    client = client_for(uri)
    run_id = start_job_run(
        tracking_uri=uri,
        experiment=LAUNCHER_EXPERIMENT,
        job_name=f"launcher-path-{store}",
        params={"family": "poisson"},
        tags={"smglm.backend": "sagemaker"},
    )
    calls: list[int] = []

    def fetch() -> tuple[Path, Path | None]:
        calls.append(1)
        return folder / "model", folder / "output"

    assert not finalize_job_run(uri, run_id, {"TrainingJobStatus": "InProgress"}, fetch)
    assert client.get_run(run_id).info.status == "RUNNING"
    state = {"TrainingJobStatus": "Completed", "BillableTimeInSeconds": 42}
    assert finalize_job_run(uri, run_id, state, fetch)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["smglm.logged_by"] == "launcher"
    assert run.data.tags["smglm.billable_seconds"] == "42"
    assert calls == [1]
    expected = expected_metrics(folder / "model")
    got = {k: v for k, v in run.data.metrics.items() if k != "objective"}
    assert got == pytest.approx(expected, rel=1e-12, abs=0)
    conv = pd.read_csv(folder / "model" / "convergence.csv")
    assert len(client.get_metric_history(run_id, "objective")) == len(conv)
    # the same artifacts as the job's own run, whoever logged that one
    assert artifact_paths(client, run_id) == artifact_paths(client, job.run_id)
    # ended runs are left alone
    assert not finalize_job_run(uri, run_id, {"TrainingJobStatus": "Failed"}, fetch)
    assert client.get_run(run_id).info.status == "FINISHED" and calls == [1]


@slow
def test_finalize_job_run_does_not_log_again_what_the_runtime_logged(stores):
    client = client_for(stores.embedded)
    run_id = start_job_run(
        tracking_uri=stores.embedded,
        experiment=LAUNCHER_EXPERIMENT,
        job_name="logged-live",
        params={},
        tags={},
    )
    client.set_tag(run_id, "smglm.logged_by", "runtime")

    def fetch() -> None:
        raise AssertionError("the artifacts were fetched although the runtime logged them")

    state = {"TrainingJobStatus": "Completed", "BillableTimeInSeconds": 3}
    assert finalize_job_run(stores.embedded, run_id, state, fetch)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["smglm.logged_by"] == "runtime"
    assert artifact_paths(client, run_id) == set()


@slow
def test_jobs_are_listed_from_their_runs(tmp_path, monkeypatch):
    """``smglm jobs --mlflow`` / ``%sm_jobs --mlflow``: every backend's jobs, from MLflow."""
    import smglm
    from smglm.datasets import motor
    from smglm.launch.local import LocalBackend
    from smglm.notebook.cmd.jobs import jobs_from_mlflow
    from smglm.tracking.runs import job_runs

    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    config = {
        "target": "claim_count",
        "predictors": ["driver_age"],
        "exposure": "exposure",
        "family": "poisson",
    }
    job = smglm.train(config, motor(2000, seed=2), backend=LocalBackend(tmp_path / "home"))
    job.wait(logs=False, out=io.StringIO())
    rows = job_runs(uri)
    assert [r["TrainingJobName"] for r in rows] == [job.name]
    assert rows[0]["TrainingJobStatus"] == "Completed" and rows[0]["Backend"] == "local"
    metrics = {m["MetricName"]: m["Value"] for m in rows[0]["FinalMetricDataList"]}
    assert metrics["train:deviance"] == pytest.approx(job.metrics["train"]["deviance"])
    table = jobs_from_mlflow()
    assert job.name in table.to_text() and "local" in table.to_text()
    row = next(r for r in table.rows if r[1] == job.name)  # the compact table, from the params
    assert row[2:5] == ["Completed · local", "poisson", "driver_age"]
    wide = jobs_from_mlflow(wide=True)
    assert wide.rows[0][:3] == [job.name, "Completed", "local"]


def test_params_keyed_by_levels_or_bands_are_logged_as_json(tmp_path):
    """MLflow refuses '[' in a parameter's name: a mapping keyed by band labels or levels
    (fixed relativities, bounds on levels) is one parameter holding its JSON, and a real
    store takes the batch."""
    from mlflow.entities import Param

    from smglm.tracking.runs import flatten_params

    config = {
        "fixed": {"bonus_malus": {"[-Inf,60)": 1.0, "[60,Inf)": 1.2}, "density_log": 0.09},
        "constraints": {"bounds": {"area[B]": [0, None]}},
        "penalty": {"alpha": 0.0},
    }
    params = flatten_params(config)
    assert json.loads(params["fixed.bonus_malus"]) == {"[-Inf,60)": 1.0, "[60,Inf)": 1.2}
    assert params["fixed.density_log"] == "0.09"
    assert json.loads(params["constraints.bounds"]) == {"area[B]": [0, None]}
    assert params["penalty.alpha"] == "0.0"
    client = client_for(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("params"))
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
    assert client.get_run(run.info.run_id).data.params == params


def test_mlflow_experiment_name_chooses_the_experiment_when_the_job_config_names_none(
    tmp_path, monkeypatch
):
    """MLflow's own ``MLFLOW_EXPERIMENT_NAME``: the run's experiment, the job's environment,
    the reuse lookup and the job list follow it; ``JobConfig.mlflow_experiment`` wins."""
    import smglm
    from smglm.datasets import motor
    from smglm.launch.testing import FakeBackend
    from smglm.tracking.runs import find_runs, job_runs

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "pricing-2027")
    backend = FakeBackend(tmp_path / "home", script=["Completed"])
    frame = motor(500, seed=8)
    job = smglm.train(SMALL, frame, backend=backend)
    named = smglm.train(SMALL, frame, backend=backend, mlflow_experiment="explicit")
    client = client_for(store)
    for handle, experiment in ((job, "pricing-2027"), (named, "explicit")):
        run = client.get_run(handle.run_id)
        assert client.get_experiment(run.info.experiment_id).name == experiment
        env = backend.jobs[handle.name].spec.environment
        assert env["MLFLOW_EXPERIMENT_NAME"] == experiment
    assert "smglm" not in {e.name for e in client.search_experiments()}
    assert [r["TrainingJobName"] for r in job_runs(store)] == [job.name]
    assert [r.info.run_id for r in find_runs(store, None, {"smglm.job_name": job.name})] == [
        job.run_id
    ]
