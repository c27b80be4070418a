"""The local backend end to end: real supervisor and runtime subprocesses, real files."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import smglm
from helpers import tar_bytes
from smglm.datasets import motor
from smglm.errors import BackendError, ConfigError, DataError, JobFailed
from smglm.launch import Job, JobSpec, list_jobs, make_job_name
from smglm.launch.local import LocalBackend
from smglm.launch.spec import Channel
from smglm.launch.storage import extract_tar, file_path
from smglm.launch.submit import upload_data

CONFIG = {
    "target": "claim_count",
    "predictors": ["driver_age", "vehicle_power", "area", "region"],
    "exposure": "exposure",
    "family": "poisson",
}


@pytest.fixture
def backend(tmp_path) -> LocalBackend:
    return LocalBackend(tmp_path / "home", stop_grace_seconds=5)


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return motor(8_000, seed=3)


@pytest.fixture(scope="module")
def completed(tmp_path_factory, data):
    be = LocalBackend(tmp_path_factory.mktemp("done") / "home")
    out = io.StringIO()
    job = smglm.train(CONFIG, data, backend=be)
    job.wait(out=out)
    return job, out.getvalue()


def test_train_local_job_completes_through_sagemaker_statuses(completed):
    job, printed = completed
    state = job.describe()
    assert state["TrainingJobStatus"] == "Completed"
    steps = [t["Status"] for t in state["SecondaryStatusTransitions"]]
    assert steps == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert all("EndTime" in t for t in state["SecondaryStatusTransitions"])
    assert job.billable_seconds >= 1
    assert "Completed - Completed" in printed and "train:deviance=" in printed


def test_train_local_job_uploads_artifacts_where_sagemaker_would(completed):
    job, _ = completed
    spec = job.backend.spec(job.name)
    assert job.model_uri == spec.model_artifacts_uri
    assert job.model_uri.endswith(f"/{job.name}/output/model.tar.gz")
    with tarfile.open(file_path(job.model_uri)) as tar:
        names = tar.getnames()
    assert {"model.json", "metrics.json", "coefficients.csv", "config.yaml"} <= set(names)
    assert file_path(spec.output_artifacts_uri).exists()


def test_train_local_job_model_equals_in_process_fit(completed, data):
    job, _ = completed
    direct = smglm.fit(CONFIG, data)
    pd.testing.assert_series_equal(
        job.model.coefficients["estimate"], direct.coefficients["estimate"], rtol=1e-9
    )
    np.testing.assert_allclose(job.model.predict(data), direct.predict(data), rtol=1e-9)


def test_train_local_job_final_metrics_match_metrics_json(completed):
    job, _ = completed
    captured = {r["MetricName"]: r["Value"] for r in job.describe()["FinalMetricDataList"]}
    train = job.metrics["train"]
    for name in ("deviance", "aic", "gini", "n_obs"):
        assert captured[f"train:{name}"] == pytest.approx(train[name], rel=1e-12)


def test_artifacts_are_cached_and_attach_after_restart(completed):
    job, _ = completed
    folder = job.artifacts()
    assert (folder / "model" / "model.json").exists()
    # the report's tables; no PNGs on the local backend (report_images auto: the notebook
    # draws the figures from the tables; tests/test_report_images.py)
    assert (folder / "output" / "train" / "report.json").is_file()
    assert any((folder / "output").rglob("*.csv"))
    assert not any((folder / "output").rglob("*.png"))
    again = Job.attach(job.name, LocalBackend(job.backend.home))  # a new process would do this
    assert again.status == "Completed"
    assert again.artifacts() == folder
    assert [j.name for j in list_jobs(LocalBackend(job.backend.home))] == [job.name]


def test_train_reuse_returns_the_completed_job_and_new_runs_otherwise(completed, data):
    job, _ = completed
    same = smglm.train(CONFIG, data, backend=job.backend, reuse=True)
    assert same.name == job.name and same.reused
    other = smglm.train(
        {**CONFIG, "predictors": ["driver_age"]}, data, backend=job.backend, reuse=True
    )
    assert other.name != job.name and not other.reused
    other.wait(logs=False, out=io.StringIO())


def test_train_failure_keeps_reason_and_logs(backend, data, tmp_path):
    path = tmp_path / "train.csv"
    data.drop(columns="region").to_csv(path, index=False)
    job = smglm.train(CONFIG, f"file://{path}", backend=backend)  # a URI: checked remotely
    with pytest.raises(JobFailed) as info:
        job.wait(out=io.StringIO())
    assert job.status == "Failed"
    assert info.value.reason.startswith("AlgorithmError: ClientError")
    assert "'region'" in info.value.reason
    assert "Traceback" in job.logs() or "region" in job.logs()
    assert job.model_uri is None
    with pytest.raises(BackendError, match="no model artifacts"):
        job.artifacts()


def test_train_checks_local_data_before_uploading(backend, data):
    with pytest.raises(DataError, match="'regoin'"):
        smglm.train({**CONFIG, "predictors": ["regoin"]}, data, backend=backend)
    assert not (backend.home / "storage").exists()


def test_train_unknown_job_field_is_a_config_error(backend, data):
    with pytest.raises(ConfigError, match="Did you mean 'instance_type'"):
        smglm.train(CONFIG, data, backend=backend, instance_typ="ml.m5.large")


@pytest.mark.slow
def test_stop_sends_sigterm_and_job_ends_stopped(tmp_path):
    be = LocalBackend(tmp_path / "home", stop_grace_seconds=10)
    big = motor(600_000, seed=5)
    cfg = {
        **CONFIG,
        "predictors": [
            c
            for c in big.columns
            if c not in ("policy_id", "exposure", "claim_count", "claim_amount", "severity")
        ],
    }
    job = smglm.train(cfg, big, backend=be)
    deadline = time.monotonic() + 120
    while "fitting a poisson" not in job.logs() and time.monotonic() < deadline:
        time.sleep(0.1)  # the runtime is fitting (its SIGTERM handler is in place)
    job.stop()
    job.wait(out=io.StringIO(), raise_on_failure=False, timeout=30)
    assert job.status == "Stopped"
    assert "SIGTERM" in (job.failure_reason or "")


def test_wait_ctrl_c_asks_and_stops_when_told(backend, data):
    job = smglm.train(CONFIG, data, backend=backend)

    class Interrupting(io.StringIO):
        fired = False

        def write(self, s):  # Ctrl-C arrives while the first status line prints
            if not self.fired:
                self.fired = True
                raise KeyboardInterrupt
            return super().write(s)

    questions = []
    job.wait(out=Interrupting(), ask=lambda q: questions.append(q) or "y")
    assert questions and job.name in questions[0]
    job.wait(out=io.StringIO(), raise_on_failure=False, timeout=60)
    assert job.status in ("Stopped", "Completed")  # a fast job may finish before SIGTERM lands


def test_upload_data_is_content_addressed(tmp_path, data):
    base = f"file://{tmp_path}/store"
    first = upload_data(data, base)
    second = upload_data(data.copy(), base)
    assert first.uri == second.uri and not first.reused and second.reused
    changed = upload_data(data.iloc[:-1], base)
    assert changed.uri != first.uri


def test_frame_fingerprint_follows_content_order_dtypes_and_categories(data):
    from smglm.launch.submit import frame_fingerprint

    base = frame_fingerprint(data)
    assert base is not None and base == frame_fingerprint(data.copy())
    changed = data.copy()
    changed.loc[changed.index[7], "driver_age"] += 1
    recat = data.copy()
    recat["area"] = recat["area"].cat.reorder_categories(recat["area"].cat.categories[::-1])
    others = [
        changed,
        data.iloc[::-1],  # same rows, other order
        data.astype({"claim_count": "float64"}),  # same values, other dtype
        data[list(data.columns[::-1])],  # same columns, other order
        data.rename(columns={"driver_age": "age"}),
        recat,  # same labels, other category order
        data.iloc[:-1],
    ]
    prints = [frame_fingerprint(x) for x in others]
    assert base not in prints and len(set(prints)) == len(prints)
    assert frame_fingerprint(pd.DataFrame({"x": [[1], [2]]})) is None  # unhashable: no memory


def test_a_dataframe_is_serialized_and_checked_once_per_process(backend, data, monkeypatch):
    import smglm.glm.data
    from smglm.launch import submit

    frame = data.head(500).copy()
    calls = {"parquet": 0, "prepare": 0}
    to_parquet, prepare = pd.DataFrame.to_parquet, smglm.glm.data.prepare

    def counting_to_parquet(self, *args, **kwargs):
        calls["parquet"] += 1
        return to_parquet(self, *args, **kwargs)

    def counting_prepare(*args, **kwargs):
        calls["prepare"] += 1
        return prepare(*args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", counting_to_parquet)
    monkeypatch.setattr(smglm.glm.data, "prepare", counting_prepare)
    config = {"target": "claim_count", "predictors": ["driver_age"], "family": "poisson"}
    base = f"file://{backend.home}/store"
    fp = submit.frame_fingerprint(frame)
    first = submit.upload_data(frame, base)
    submit._check_local_data(smglm.GLMConfig(**config), frame, "data", fp)
    for _ in range(2):
        again = submit.upload_data(frame.copy(), base)
        submit._check_local_data(smglm.GLMConfig(**config), frame, "data", fp)
    assert again.uri == first.uri and again.sha256 == first.sha256 and again.reused
    assert calls == {"parquet": 1, "prepare": 1}
    other = smglm.GLMConfig(**{**config, "predictors": ["driver_age", "area"]})
    submit._check_local_data(other, frame, "data", fp)  # another config: checked again
    assert calls["prepare"] == 2
    frame.loc[frame.index[0], "driver_age"] += 1  # changed in place: written again
    assert submit.upload_data(frame, base).uri != first.uri and calls["parquet"] == 2
    file_path(first.uri).joinpath("train.parquet").unlink()  # gone from storage: written again
    assert submit.upload_data(data.head(500), base).uri == first.uri
    assert calls["parquet"] == 3


def test_job_names_follow_sagemaker_rules():
    names = {make_job_name("smglm_poisson model!" * 5) for _ in range(20)}
    assert len(names) == 20
    for name in names:
        assert len(name) <= 63 and all(c.isalnum() or c == "-" for c in name)
    with pytest.raises(ConfigError, match="1-63 characters"):
        JobSpec(name="bad_name", image_uri="x", output_path="file:///tmp", channels=())


def test_job_spec_request_round_trip():
    spec = JobSpec(
        name="a-job",
        image_uri="123.dkr.ecr.us-east-1.amazonaws.com/smglm:0.1.0",
        output_path="s3://bucket/smglm/jobs",
        channels=(Channel("train", "s3://bucket/in/"), Channel("config", "s3://bucket/cfg/")),
        role_arn="arn:aws:iam::123:role/x",
        hyperparameters={"alpha": "0.1"},
        environment={"A": "1"},
        metric_definitions=({"Name": "m", "Regex": "m=(.*?);"},),
        tags={"k": "v"},
    )
    request = spec.to_request()
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://bucket/in/"
    assert JobSpec.from_request(json.loads(json.dumps(request))) == spec
    with pytest.raises(ConfigError, match="strings"):
        JobSpec(
            name="a", image_uri="x", output_path="s3://b/p", channels=(), hyperparameters={"a": 1}
        )


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink"])
def test_extract_tar_refuses_escapes_and_links(tmp_path, kind):
    if kind == "dotdot":
        member = tarfile.TarInfo("../evil.txt")
        member.size = 1
    elif kind == "absolute":
        member = tarfile.TarInfo("/tmp/evil.txt")
        member.size = 1
    else:
        member = tarfile.TarInfo("link")
        member.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
        member.linkname = "/etc/passwd"
    archive = tar_bytes([(member, b"x")])
    with pytest.raises(BackendError, match="refusing"):
        extract_tar(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    assert not any(Path(tmp_path / "out").rglob("*")) if (tmp_path / "out").exists() else True


def test_job_spec_of_a_local_job_is_its_request(completed):
    job, _ = completed
    spec = job.spec()
    assert spec.name == job.name
    assert {c.name for c in spec.channels} == {"train", "config"}
    assert spec.model_artifacts_uri == job.model_uri


def test_local_runner_is_checked_and_needs_an_image(tmp_path, data, monkeypatch):
    with pytest.raises(BackendError, match=r"runner must be 'docker', 'podman' or None; got 'lxc'"):
        LocalBackend(tmp_path, runner="lxc")
    with pytest.warns(DeprecationWarning, match=r"LocalBackend\(engine='podman'\) is now"):
        assert LocalBackend(tmp_path, engine="podman").runner == "podman"
    backend = LocalBackend(tmp_path, runner="podman")
    config = {"target": "claim_count", "predictors": ["driver_age"], "family": "poisson"}
    with pytest.raises(ConfigError, match=r"image_uri: the local backend with runner='podman'"):
        smglm.train(config, data.head(200), backend=backend, tracking=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no runner on PATH
    with pytest.raises(BackendError, match=r"runner 'podman' is not on PATH"):
        smglm.train(config, data.head(200), backend=backend, image_uri="smglm:test",
                    tracking=False)  # fmt: skip


def test_container_command_runs_the_image_as_sagemaker_would(tmp_path):
    from smglm.launch.processes import ContainerLauncher
    from smglm.launch.supervisor import Supervisor

    folder = tmp_path / "job"
    folder.mkdir()
    spec = JobSpec(
        name="smglm-engine-1",
        image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/smglm:1",
        output_path="file:///tmp/out",
        channels=(Channel("train", "file:///tmp/in/"),),
        environment={"MLFLOW_RUN_ID": "r1", "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"},
    )
    (folder / "spec.json").write_text(json.dumps(spec.to_request()))
    request = Supervisor(folder, 5.0, runner="podman").training_request()
    cmd = ContainerLauncher("podman").command(request)
    assert cmd[:7] == ["podman", "run", "--rm", "--name", "smglm-smglm-engine-1", "-v",
                       f"{folder / 'ml'}:/opt/ml"]  # fmt: skip
    assert cmd[-2:] == [spec.image_uri, "train"]
    env = dict(cmd[i + 1].split("=", 1) for i, word in enumerate(cmd) if word == "-e")
    assert env == {
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",  # the run id is the supervisor's
        "PYTHONUNBUFFERED": "1",
        "TRAINING_JOB_ARN": "arn:smglm:local:training-job/smglm-engine-1",
        "TRAINING_JOB_NAME": "smglm-engine-1",
    }


def test_a_job_whose_supervisor_is_gone_fails_even_if_its_pid_was_reused(completed, tmp_path):
    """The supervisor's liveness is the lock it holds, not its pid: a stale ``runner.pid`` that
    now names another process (never signalled) does not keep a dead job running."""
    import shutil
    import subprocess

    from smglm.launch.processes import lock_held, take_lock

    job, _ = completed
    be = LocalBackend(tmp_path / "home")
    done = job.backend.job_dir(job.name)
    # released when the supervisor ends, which is just after it records Completed
    deadline = time.monotonic() + 60
    while lock_held(done / "runner.lock") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not lock_held(done / "runner.lock")
    folder = be.job_dir("smglm-orphan-1")
    shutil.copytree(done, folder)
    state = json.loads((folder / "state.json").read_text())
    state.update(TrainingJobName="smglm-orphan-1", TrainingJobStatus="InProgress")
    (folder / "state.json").write_text(json.dumps(state))
    other = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
    try:
        (folder / "runner.pid").write_text(str(other.pid))
        described = be.describe("smglm-orphan-1")
        assert described["TrainingJobStatus"] == "Failed"
        assert "supervisor is gone" in described["FailureReason"]
        assert other.poll() is None  # the pid file names another process: never signalled
        # the end is recorded; a job whose supervisor holds the lock is running, whatever
        # its pid file says
        assert json.loads((folder / "state.json").read_text())["TrainingJobStatus"] == "Failed"
        (folder / "state.json").write_text(json.dumps(state))
        lock = take_lock(folder / "runner.lock")  # as a supervisor holds it
        assert lock is not None
        try:
            assert be.describe("smglm-orphan-1")["TrainingJobStatus"] == "InProgress"
        finally:
            os.close(lock)
        be.stop("smglm-orphan-1")  # asks through a file, never by signal
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
