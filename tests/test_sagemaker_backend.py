"""The SageMaker backend against moto's server, with jobs run as SageMaker would (aws_harness).

A real job goes through :class:`SageMakerBackend`: a small CSV and a GLMConfig JSON are uploaded
to moto's S3, CreateTrainingJob starts ``python -m smglm.runtime train`` on a temporary
``/opt/ml``, its lines go to CloudWatch Logs and its archives to S3. The success case runs once
per module (in the background, so the log is read while it grows) and its observations are
kept for the tests that check them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest

from aws_harness import (
    REGION,
    SageMakerSimulator,
    error_response,
    moto_training_job,
    push_image,
    use_moto,
)
from smglm.contract import METRIC_DEFINITIONS, TERMINAL
from smglm.errors import ConfigError
from smglm.launch.aws import AwsError, resolve_bucket
from smglm.launch.backend import Backend
from smglm.launch.sagemaker import LOG_GROUP, SageMakerBackend
from smglm.launch.spec import Channel, JobSpec
from smglm.launch.storage import S3Storage, extract_tar, split_s3

ROLE = "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole-test"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/smglm:latest"
GOOD_CONFIG = {
    "target": "y",
    "predictors": ["x1", "cat"],
    "exposure": "exposure",
    "family": "poisson",
}

pytest_plugins = ["aws_harness"]  # the fixtures aws, boto_session, sagemaker_sim


def make_frame(n: int = 300, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    cat = rng.choice(["a", "b", "c"], size=n)
    exposure = rng.uniform(0.5, 1.5, size=n)
    effect = pd.Series({"a": 0.0, "b": 0.4, "c": -0.3})[cat].to_numpy()
    mu = exposure * np.exp(-0.5 + 0.3 * x1 + effect)
    return pd.DataFrame({"x1": x1, "cat": cat, "exposure": exposure, "y": rng.poisson(mu)})


def make_spec(session: Any, tmp: Path, config: dict[str, Any], name: str) -> JobSpec:
    """Upload the data and the config to moto's S3 (S3Storage) and describe the job."""
    bucket = resolve_bucket(session=session)  # sagemaker-us-east-1-123456789012, created
    storage = S3Storage(session.client("s3"))
    csv = tmp / f"{name}.csv"
    make_frame().to_csv(csv, index=False)
    base = f"s3://{bucket}/smglm/{name}"
    storage.upload_file(csv, f"{base}/train/data.csv")
    storage.upload_bytes(json.dumps(config).encode(), f"{base}/config/glm.json")
    return JobSpec(
        name=name,
        image_uri=IMAGE,
        output_path=f"s3://{bucket}/smglm/output",
        channels=(
            Channel("train", f"{base}/train/", content_type="text/csv"),
            Channel("config", f"{base}/config/", content_type="application/json"),
        ),
        role_arn=ROLE,
        environment={"SMGLM_TEST_MARK": "from-the-request"},
        metric_definitions=tuple(METRIC_DEFINITIONS),
        tags={"project": "smglm-tests"},
    )


@dataclass
class Completed:
    spec: JobSpec
    request: dict[str, Any]
    statuses: list[str]
    polled_lines: list[str]
    positions: list[int]
    full_lines: list[str]
    describe: dict[str, Any]
    model_files: dict[str, Path]
    output_exists: bool
    listed: list[dict[str, Any]]


@pytest.fixture(scope="module")
def completed(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Run the success job once (background mode) and record what the backend shows of it."""
    tmp = tmp_path_factory.mktemp("completed")
    with pytest.MonkeyPatch.context() as mp:
        use_moto(mp, moto_server, tmp)
        session = boto3.Session(region_name=REGION)
        sim = SageMakerSimulator(tmp / "jobs", mode="background").attach(session)
        backend = SageMakerBackend(session=session)
        spec = make_spec(session, tmp, GOOD_CONFIG, "smglm-backend-ok")
        start = time.monotonic()
        backend.launch(spec)
        statuses, polled, positions, pos = [], [], [0], 0
        while True:  # read the log while the job runs, as Job.wait(logs=True) would
            status = backend.describe(spec.name)["TrainingJobStatus"]
            statuses.append(status)
            lines, pos = backend.log_lines(spec.name, pos)
            polled += lines
            positions.append(pos)
            if status in TERMINAL:
                break
            assert time.monotonic() - start < 120, "the job did not end in 120 s"
            time.sleep(0.2)
        sim.wait(spec.name)
        lines, pos = backend.log_lines(spec.name, pos)
        polled += lines
        positions.append(pos)
        fresh = SageMakerBackend(session=boto3.Session(region_name=REGION))
        full, _ = fresh.log_lines(spec.name, 0)
        describe = backend.describe(spec.name)
        storage = S3Storage(session.client("s3"))
        model_uri = describe.get("ModelArtifacts", {}).get("S3ModelArtifacts", "")
        archive = storage.download_file(model_uri, tmp / "model.tar.gz") if model_uri else None
        files = extract_tar(archive, tmp / "model") if archive else []
        output_exists = storage.exists(spec.output_artifacts_uri)
        yield Completed(
            spec=spec,
            request=sim.requests[0],
            statuses=statuses,
            polled_lines=polled,
            positions=positions,
            full_lines=full,
            describe=describe,
            model_files={str(p.relative_to(tmp / "model")): p for p in files},
            output_exists=output_exists,
            listed=backend.list_jobs(),
        )
        sim.close()


# -- a real job ------------------------------------------------------------------------------


@pytest.mark.slow
def test_launch_sends_the_specs_request_unchanged(completed):
    assert completed.request == completed.spec.to_request()
    assert completed.request["RoleArn"] == ROLE


@pytest.mark.slow
def test_describe_goes_from_in_progress_to_completed(completed):
    assert completed.statuses[0] == "InProgress"
    assert completed.statuses[-1] == "Completed"
    desc = completed.describe
    assert desc["TrainingJobStatus"] == "Completed"
    assert desc["SecondaryStatus"] == "Completed"
    seen = [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert seen == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert "FailureReason" not in desc
    assert desc["Environment"] == {"SMGLM_TEST_MARK": "from-the-request"}
    assert "ResponseMetadata" not in desc


@pytest.mark.slow
def test_model_artifacts_exist_and_extract_to_model_json(completed):
    uri = completed.describe["ModelArtifacts"]["S3ModelArtifacts"]
    assert uri == completed.spec.model_artifacts_uri
    assert split_s3(uri)[1] == "smglm/output/smglm-backend-ok/output/model.tar.gz"
    assert {"model.json", "coefficients.csv", "metrics.json"} <= set(completed.model_files)
    model = json.loads(completed.model_files["model.json"].read_text())
    assert model["family"] == "poisson"
    assert completed.output_exists


@pytest.mark.slow
def test_model_deviance_matches_statsmodels_on_the_uploaded_csv(completed):
    import statsmodels.api as sm

    df = make_frame()
    X = pd.get_dummies(df[["x1", "cat"]], columns=["cat"], drop_first=True, dtype=float)
    ref = sm.GLM(
        df["y"], sm.add_constant(X), family=sm.families.Poisson(), offset=np.log(df["exposure"])
    ).fit()
    metrics = json.loads(completed.model_files["metrics.json"].read_text())
    # the same maximum-likelihood fit: deviances agree to solver tolerance
    assert metrics["train"]["deviance"] == pytest.approx(ref.deviance, rel=1e-6)
    assert metrics["train"]["n_obs"] == len(df)


@pytest.mark.slow
def test_final_metrics_are_parsed_from_the_log_with_the_runtimes_definitions(completed):
    final = {m["MetricName"]: m["Value"] for m in completed.describe["FinalMetricDataList"]}
    metrics = json.loads(completed.model_files["metrics.json"].read_text())
    assert final["train:deviance"] == pytest.approx(metrics["train"]["deviance"], rel=1e-12)
    assert final["train:n_obs"] == 300


@pytest.mark.slow
def test_log_lines_read_while_running_have_no_duplicates_or_gaps(completed):
    assert len(completed.full_lines) > 5
    # the lines gathered across many incremental calls are exactly the whole log, in order
    assert completed.polled_lines == completed.full_lines
    assert completed.positions == sorted(completed.positions)
    assert completed.positions[-1] == len(completed.full_lines)
    assert any("train:deviance=" in line for line in completed.full_lines)


@pytest.mark.slow
def test_list_jobs_shows_the_completed_job(completed):
    assert [j["TrainingJobName"] for j in completed.listed] == ["smglm-backend-ok"]
    assert completed.listed[0]["TrainingJobStatus"] == "Completed"


# -- logs ------------------------------------------------------------------------------------


def test_log_lines_two_calls_split_the_log_without_overlap(aws, boto_session):
    logs = boto_session.client("logs")
    logs.create_log_group(logGroupName=LOG_GROUP)
    now = int(time.time() * 1000)  # CloudWatch refuses events older than 14 days
    for stream, offset in (("job-a/algo-1-1700000000", 0), ("job-a/algo-2-1700000000", 1)):
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        events = [
            {"timestamp": now + 10 * (2 * i + offset), "message": f"{stream[6:12]} {i}"}
            for i in range(3)
        ]
        logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=events)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName="job-ab/algo-1-1")  # other job
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName="job-ab/algo-1-1",
        logEvents=[{"timestamp": now, "message": "not mine"}],
    )
    backend = SageMakerBackend(session=boto_session)
    first, pos = backend.log_lines("job-a", 0)
    expected = ["algo-1 0", "algo-2 0", "algo-1 1", "algo-2 1", "algo-1 2", "algo-2 2"]
    assert first == expected and pos == 6
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName="job-a/algo-1-1700000000",
        logEvents=[{"timestamp": now + 90, "message": "late\nand multi-line"}],
    )
    second, pos2 = backend.log_lines("job-a", pos)
    assert second == ["late", "and multi-line"] and pos2 == 8
    assert backend.log_lines("job-a", pos2) == ([], 8)
    assert backend.log_lines("job-a", 3)[0] == [*expected[3:], "late", "and multi-line"]


def test_log_lines_before_the_log_exists_is_empty(aws, boto_session):
    backend = SageMakerBackend(session=boto_session)
    assert backend.log_lines("not-started-yet", 0) == ([], 0)


# -- failure ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_failing_job_ends_failed_with_the_runtimes_reason(
    aws, boto_session, sagemaker_sim, tmp_path
):
    config = {**GOOD_CONFIG, "predictors": ["x1", "no_such_column"]}
    spec = make_spec(boto_session, tmp_path, config, "smglm-backend-bad")
    backend = SageMakerBackend(session=boto_session)
    backend.launch(spec)  # sync mode: returns when the job has ended
    desc = backend.describe(spec.name)
    assert desc["TrainingJobStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert reason.startswith("AlgorithmError: ClientError: bad data")
    assert "no_such_column" in reason
    assert "ModelArtifacts" not in desc
    lines, _ = backend.log_lines(spec.name)
    assert any("no_such_column" in line for line in lines)


# -- stop ------------------------------------------------------------------------------------


def test_stop_moves_an_in_progress_job_to_stopped(aws, boto_session, tmp_path):
    sim = SageMakerSimulator(tmp_path / "jobs", mode="hold").attach(boto_session)
    spec = make_spec(boto_session, tmp_path, GOOD_CONFIG, "smglm-backend-stop")
    backend = SageMakerBackend(session=boto_session)
    backend.launch(spec)
    assert backend.describe(spec.name)["TrainingJobStatus"] == "InProgress"
    backend.stop(spec.name)
    assert sim.stop_requests == [spec.name]
    assert backend.describe(spec.name)["TrainingJobStatus"] == "Stopped"
    backend.stop(spec.name)  # already stopped: SageMaker's ValidationException is absorbed
    assert sim.stop_requests == [spec.name, spec.name]
    assert backend.describe(spec.name)["TrainingJobStatus"] == "Stopped"


@pytest.mark.slow
def test_stop_sends_sigterm_to_a_running_container(aws, boto_session, tmp_path):
    sim = SageMakerSimulator(tmp_path / "jobs", mode="background").attach(boto_session)
    spec = make_spec(boto_session, tmp_path, GOOD_CONFIG, "smglm-backend-sigterm")
    backend = SageMakerBackend(session=boto_session)
    backend.launch(spec)
    deadline = time.monotonic() + 30
    while spec.name not in sim.processes:
        assert time.monotonic() < deadline, "the container did not start"
        time.sleep(0.05)
    backend.stop(spec.name)
    assert backend.describe(spec.name)["TrainingJobStatus"] in ("Stopping", "Stopped")
    sim.wait(spec.name)
    desc = backend.describe(spec.name)
    assert desc["TrainingJobStatus"] == "Stopped"
    assert sim.processes[spec.name].returncode != 0


def test_stop_of_an_unknown_job_is_an_aws_error(aws, boto_session, sagemaker_sim):
    with pytest.raises(AwsError) as info:
        SageMakerBackend(session=boto_session).stop("no-such-job")
    assert info.value.code == "ValidationException"


# -- requests and errors ---------------------------------------------------------------------


def test_backend_satisfies_the_protocol_and_takes_region_from_session(aws, boto_session):
    backend = SageMakerBackend(session=boto_session)
    assert isinstance(backend, Backend)
    assert backend.name == "sagemaker" and backend.region == "us-east-1"
    assert SageMakerBackend(session=boto_session, region="eu-west-1").region == "eu-west-1"


def test_launch_without_role_is_a_config_error_naming_role(aws, boto_session, tmp_path):
    spec = JobSpec(
        name="no-role",
        image_uri=IMAGE,
        output_path="file:///nowhere/out",
        channels=(Channel("train", "file:///nowhere/data"),),
    )
    with pytest.raises(ConfigError) as info:
        SageMakerBackend(session=boto_session).launch(spec)
    assert info.value.fields == ["role", "channels.train", "output_path"]
    assert "role=" in str(info.value)


def test_describe_unknown_job_maps_client_error_with_code_and_hint(aws, boto_session):
    with pytest.raises(AwsError) as info:
        SageMakerBackend(session=boto_session).describe("no-such-job")
    err = info.value
    assert err.code == "ValidationException"
    assert "no-such-job" in err.aws_message
    assert "DescribeTrainingJob no-such-job failed: ValidationException" in str(err)
    assert "Hint: AWS rejected a value" in str(err)


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("ResourceLimitExceeded", "Service Quotas"),
        ("AccessDeniedException", "lacks a permission"),
        ("ValidationException", "rejected a value"),
    ],
)
def test_launch_error_carries_aws_code_message_and_hint(aws, boto_session, code, hint):
    boto_session.events.register(
        "before-call.sagemaker.CreateTrainingJob",
        lambda **_: error_response(code, f"simulated {code}"),
    )
    spec = JobSpec(
        name="refused",
        image_uri=IMAGE,
        output_path="s3://b/out",
        channels=(Channel("train", "s3://b/in/"),),
        role_arn=ROLE,
    )
    with pytest.raises(AwsError) as info:
        SageMakerBackend(session=boto_session).launch(spec)
    assert info.value.code == code
    assert f"simulated {code}" in str(info.value)
    assert hint in str(info.value)


def test_list_jobs_is_newest_first_limited_and_paged(aws, boto_session, tmp_path, monkeypatch):
    SageMakerSimulator(tmp_path / "jobs", mode="hold").attach(boto_session)
    backend = SageMakerBackend(session=boto_session)
    names = [f"smglm-list-{i}" for i in range(4)]
    for name in names:
        backend.launch(
            JobSpec(
                name=name,
                image_uri=IMAGE,
                output_path="s3://b/out",
                channels=(Channel("train", "s3://b/in/"),),
                role_arn=ROLE,
            )
        )
        time.sleep(0.01)
    assert [j["TrainingJobName"] for j in backend.list_jobs()] == names[::-1]
    two = backend.list_jobs(max_results=2)
    assert [j["TrainingJobName"] for j in two] == names[:1:-1]
    assert all(j["TrainingJobStatus"] == "InProgress" for j in two)
    assert moto_training_job(names[0]).training_job_status == "InProgress"
    monkeypatch.setattr("smglm.launch.sagemaker._PAGE", 2)  # three pages for max_results=5
    assert [j["TrainingJobName"] for j in backend.list_jobs(max_results=5)] == names[::-1]


# -- smglm.train() through this backend ------------------------------------------------------


@pytest.mark.slow
def test_train_runs_end_to_end_on_the_sagemaker_backend(aws, boto_session, sagemaker_sim, capsys):
    import smglm

    image = push_image(boto_session)
    backend = SageMakerBackend(session=boto_session)
    heard: list[tuple[str, int, int]] = []
    job = smglm.train(
        GOOD_CONFIG,
        make_frame(),
        backend=backend,
        image_uri=image,
        role=ROLE,
        max_cost=1.0,
        wait=True,
        tracking=False,
        progress=lambda name, done, total: heard.append((name, done, total)),
    )
    out = capsys.readouterr().out
    assert (
        "[smglm] ml.m5.xlarge x 1, up to 1.0 h: at most $0.23 "
        "(on-demand, us-east-1; smglm's price table of 2025-06)"
    ) in out
    assert "train:deviance=" in out  # the log, followed through log_lines
    assert backend.describe(job.name)["TrainingJobStatus"] == "Completed"
    request = sagemaker_sim.requests[-1]
    assert request["AlgorithmSpecification"]["TrainingImage"] == image
    assert request["RoleArn"] == ROLE
    bucket = "sagemaker-us-east-1-123456789012"  # SageMaker's default bucket, created
    assert request["OutputDataConfig"]["S3OutputPath"].startswith(f"s3://{bucket}/smglm/")
    assert {c["ChannelName"] for c in request["InputDataConfig"]} == {"train", "config"}
    # the data's upload was told in bytes: 0 first, the Parquet object's size last
    train_uri = next(
        c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in request["InputDataConfig"]
        if c["ChannelName"] == "train"
    )
    bucket_name, prefix = split_s3(train_uri)
    size = boto_session.client("s3").head_object(
        Bucket=bucket_name, Key=prefix.rstrip("/") + "/train.parquet"
    )["ContentLength"]
    assert heard[0] == ("train.parquet", 0, size) and heard[-1] == ("train.parquet", size, size)
    # %sm_jobs's compact row: family and terms read from the job's config channel on S3
    from smglm.notebook.cmd.jobs import jobs

    table = jobs(backend)
    row = next(r for r in table.rows if r[1] == job.name)
    assert row[2:5] == ["Completed", GOOD_CONFIG["family"], " + ".join(GOOD_CONFIG["predictors"])]
    billed = backend.describe(job.name).get("BillableTimeInSeconds")
    price = 0.23  # ml.m5.xlarge, us-east-1, the shipped table (the cost line above)
    assert billed is not None and row[6] == f"${price * billed / 3600:.4f}"


def test_train_refuses_before_launch_over_budget_or_without_image(aws, boto_session, sagemaker_sim):
    import smglm

    backend = SageMakerBackend(session=boto_session)
    image = push_image(boto_session)
    common = {"backend": backend, "role": ROLE, "tracking": False}
    with pytest.raises(ConfigError) as info:
        smglm.train(GOOD_CONFIG, make_frame(), image_uri=image, max_cost=0.05, **common)
    assert info.value.fields == ["max_cost"]
    with pytest.raises(ConfigError) as info:
        smglm.train(GOOD_CONFIG, make_frame(), image_uri=image.replace("0.1.0", "9"), **common)
    assert info.value.fields == ["image_uri"] and "smglm image push" in str(info.value)
    with pytest.raises(ConfigError) as info:
        smglm.train(GOOD_CONFIG, make_frame(), **common)
    assert info.value.fields == ["image_uri"]
    assert sagemaker_sim.requests == []  # nothing was launched


@pytest.mark.slow
def test_train_reuse_finds_the_completed_sagemaker_job_by_its_tags(
    aws, boto_session, sagemaker_sim, capsys
):
    """ListTrainingJobs carries no tags: reuse without MLflow reads each recent job's tags."""
    import smglm

    image = push_image(boto_session)
    backend = SageMakerBackend(session=boto_session)
    frame = make_frame(seed=11)
    options = {"backend": backend, "image_uri": image, "role": ROLE, "tracking": False}
    first = smglm.train(GOOD_CONFIG, frame, wait=True, **options)
    sent = len(sagemaker_sim.requests)
    again = smglm.train(GOOD_CONFIG, frame, reuse=True, **options)
    assert again.name == first.name and again.reused
    assert len(sagemaker_sim.requests) == sent  # no new CreateTrainingJob
    assert f"reusing completed job {first.name}" in capsys.readouterr().out
    other = smglm.train(GOOD_CONFIG, make_frame(seed=12), reuse=True, wait=True, **options)
    assert other.name != first.name and len(sagemaker_sim.requests) == sent + 1
