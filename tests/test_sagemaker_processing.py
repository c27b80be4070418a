"""engine: spark on the sagemaker backend, a SageMaker Processing job, against moto's server.

The request is captured as boto3 sends it (aws_harness.ProcessingSimulator), the job is run by
a scripted container (statuses, logs, stop, failures) or, in the Spark tests, by the real
driver on the test process's one Spark session, and its output is turned into a training
job's artifacts by ``python -m smglm.runtime spark-finish``.
"""

from __future__ import annotations

import importlib.util
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from botocore.validate import validate_parameters

from aws_harness import (
    ACCOUNT,
    REGION,
    ProcessingSimulator,
    moto_processing_job,
    scripted_container,
    spark_driver_container,
)
from smglm.config import GLMConfig
from smglm.errors import BackendError, ConfigError, JobFailed
from smglm.launch import processing
from smglm.launch.aws import AwsError, resolve_bucket
from smglm.launch.job import Job
from smglm.launch.local import LocalBackend
from smglm.launch.sagemaker import SageMakerBackend
from smglm.launch.spec import Channel, JobSpec
from smglm.launch.storage import S3Storage, split_s3

ROLE = "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole-test"
SPARK_IMAGE = (
    "173754725891.dkr.ecr.us-east-1.amazonaws.com/sagemaker-spark-processing:3.5-cpu-py312-v1.3"
)
CONFIG = {
    "target": "y",
    "predictors": ["cat", "band"],
    "exposure": "exposure",
    "family": "poisson",
}


def make_frame(n: int = 400, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cat = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
    band = rng.choice(["low", "mid", "high"], size=n)
    exposure = rng.uniform(0.2, 1.0, size=n)
    eff = pd.Series({"a": 0.0, "b": 0.3, "c": -0.4})[cat].to_numpy()
    eff = eff + pd.Series({"low": -0.2, "mid": 0.0, "high": 0.25})[band].to_numpy()
    y = rng.poisson(exposure * np.exp(-1.0 + eff))
    return pd.DataFrame({"cat": cat, "band": band, "exposure": exposure, "y": y})


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    """A stand-in driver for the tests whose container does not run it (the scripted ones)."""
    folder = tmp_path / "spark-code"
    folder.mkdir()
    (folder / "spark_driver.py").write_text("def main(argv):\n    return 0\n")
    (folder / "spark_report.py").write_text("")
    return folder


def upload_inputs(session: Any, tmp: Path, name: str, *, test: bool = False) -> dict[str, str]:
    """The data and the config in moto's S3, as smglm.train uploads them."""
    bucket = resolve_bucket(session=session)
    storage = S3Storage(session.client("s3"))
    base = f"s3://{bucket}/smglm/inputs/{name}"
    path = tmp / f"{name}.parquet"
    make_frame().to_parquet(path, index=False)
    storage.upload_file(path, f"{base}/train/train.parquet")
    storage.upload_bytes(json.dumps(CONFIG).encode(), f"{base}/config/glm.json")
    uris = {"train": f"{base}/train/", "config": f"{base}/config/", "bucket": bucket}
    if test:
        make_frame(150, seed=9).to_parquet(tmp / "test.parquet", index=False)
        storage.upload_file(tmp / "test.parquet", f"{base}/test/test.parquet")
        uris["test"] = f"{base}/test/"
    return uris


def spark_spec(session: Any, tmp: Path, name: str, **fields: Any) -> JobSpec:
    uris = upload_inputs(session, tmp, name, test=fields.pop("test", False))
    channels = [
        Channel("train", uris["train"]),
        Channel("config", uris["config"], content_type="application/json"),
    ]
    if "test" in uris:
        channels.append(Channel("test", uris["test"]))
    values: dict[str, Any] = {
        "name": name,
        "image_uri": SPARK_IMAGE,
        "output_path": f"s3://{uris['bucket']}/smglm/jobs",
        "channels": tuple(channels),
        "role_arn": ROLE,
        "instance_type": "ml.r5.4xlarge",
        "instance_count": 3,
        "volume_size_gb": 100,
        "max_runtime_seconds": 7200,
        "hyperparameters": {"engine": "spark"},
        "environment": {"SMGLM_TEST_MARK": "from-the-request"},
        "tags": {"project": "smglm-tests", "smglm.engine": "spark"},
    }
    values.update(fields)
    return JobSpec(**values)


def s3_text(session: Any, uri: str) -> str:
    bucket, key = split_s3(uri)
    return session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def simulator(session: Any, tmp: Path, container: Any, mode: str = "sync") -> ProcessingSimulator:
    return ProcessingSimulator(tmp / "processing-jobs", container, mode=mode).attach(session)


# -- the image ---------------------------------------------------------------------------------


def test_spark_image_is_resolved_per_region_as_the_sdk_does():
    assert processing.spark_image_uri("us-east-1") == SPARK_IMAGE
    assert processing.spark_image_uri("eu-west-1") == (
        "571004829621.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-spark-processing:3.5-cpu-py312-v1.3"
    )
    assert processing.spark_image_uri("cn-north-1").startswith(
        "671472414489.dkr.ecr.cn-north-1.amazonaws.com.cn/"
    )
    with pytest.raises(ConfigError) as info:
        processing.spark_image_uri("eu-west-9")
    assert info.value.fields == ["region"]
    assert "'eu-west-9'" in str(info.value) and "eu-west-1" in str(info.value)


def test_prepare_image_of_a_spark_job_is_the_spark_image_not_image_uri(aws, boto_session):
    import smglm

    backend = SageMakerBackend(session=boto_session)
    job = smglm.JobConfig(engine="spark", image_uri="123.dkr.ecr.us-east-1.amazonaws.com/x:1")
    assert backend.prepare_image(job) == SPARK_IMAGE  # no ECR check: AWS's image
    mine = SageMakerBackend(session=boto_session, spark_image="my/spark:1")
    assert mine.prepare_image(job) == "my/spark:1"
    with pytest.raises(ConfigError) as info:  # a glum job still needs smglm's image in ECR
        backend.prepare_image(smglm.JobConfig())
    assert info.value.fields == ["image_uri"]


# -- the request -------------------------------------------------------------------------------


def test_launch_uploads_code_and_job_document_and_sends_the_processing_request(
    aws, boto_session, tmp_path, code_dir
):
    sim = simulator(boto_session, tmp_path, scripted_container(), mode="hold")
    spec = spark_spec(boto_session, tmp_path, "smglm-spark-request", test=True)
    backend = SageMakerBackend(session=boto_session, spark_code=code_dir)
    backend.launch(spec)
    (request,) = sim.requests
    job = f"{spec.output_path}/{spec.name}"
    root = "/opt/ml/processing"
    s3_input = {
        "S3DataType": "S3Prefix",
        "S3InputMode": "File",
        "S3DataDistributionType": "FullyReplicated",
        "S3CompressionType": "None",
    }
    assert request == {
        "ProcessingJobName": "smglm-spark-request",
        "RoleArn": ROLE,
        "AppSpecification": {
            "ImageUri": SPARK_IMAGE,
            "ContainerEntrypoint": [
                "smspark-submit",
                "--py-files",
                f"{root}/input/code/spark_report.py",
                f"{root}/input/code/spark_driver.py",
            ],
            "ContainerArguments": [
                "--job",
                f"{root}/input/config/job.json",
                "--out",
                f"{root}/output/spark",
            ],
        },
        "ProcessingInputs": [
            {
                "InputName": "code",
                "AppManaged": False,
                "S3Input": {
                    "S3Uri": f"{job}/input/code/",
                    "LocalPath": f"{root}/input/code",
                    **s3_input,
                },
            },
            {
                "InputName": "config",
                "AppManaged": False,
                "S3Input": {
                    "S3Uri": f"{job}/input/config/",
                    "LocalPath": f"{root}/input/config",
                    **s3_input,
                },
            },
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "spark",
                    "AppManaged": False,
                    "S3Output": {
                        "S3Uri": f"{job}/output/spark/",
                        "LocalPath": f"{root}/output/spark",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 3,
                "InstanceType": "ml.r5.4xlarge",
                "VolumeSizeInGB": 100,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 7200},
        "Environment": {"SMGLM_TEST_MARK": "from-the-request"},
        "Tags": [
            {"Key": "project", "Value": "smglm-tests"},
            {"Key": "smglm.engine", "Value": "spark"},
        ],
    }
    assert request == backend.request(spec)
    fresh = SageMakerBackend(session=boto_session, spark_code=code_dir)
    assert Job(spec.name, fresh).request() == request
    # the inputs: the driver's code, and the job document with the config and the data's URIs
    listed = boto_session.client("s3").list_objects_v2(
        Bucket=split_s3(job)[0], Prefix=split_s3(job)[1] + "/input/code/"
    )
    assert sorted(o["Key"].rsplit("/", 1)[1] for o in listed["Contents"]) == [
        "spark_driver.py",
        "spark_report.py",
    ]
    assert (
        s3_text(boto_session, f"{job}/input/code/spark_driver.py")
        == (code_dir / "spark_driver.py").read_text()
    )
    document = json.loads(s3_text(boto_session, f"{job}/input/config/job.json"))
    resolved = json.loads(GLMConfig.from_dict(CONFIG).resolved().to_json())
    assert resolved["link"] == "log"  # the driver reads every resolved value
    assert document == {
        "config": resolved,
        "train": spec.channel("train").uri,
        "test": spec.channel("test").uri,
    }
    # the job is in moto as sent (the harness echoes what moto drops)
    desc = backend.describe(spec.name)
    assert desc["ProcessingJobStatus"] == "InProgress"
    assert desc["ProcessingResources"] == request["ProcessingResources"]
    assert desc["AppSpecification"] == request["AppSpecification"]


def test_the_request_is_valid_for_botocore_and_without_a_report_module():
    import botocore.session

    spec = JobSpec(
        name="shape",
        image_uri=SPARK_IMAGE,
        output_path="s3://b/jobs",
        channels=(Channel("train", "s3://b/data/"), Channel("config", "s3://b/cfg/")),
        role_arn=ROLE,
        hyperparameters={"engine": "spark"},
    )
    request = processing.processing_request(spec, image_uri=SPARK_IMAGE, code=["spark_driver.py"])
    model = botocore.session.get_session().get_service_model("sagemaker")
    validate_parameters(request, model.operation_model("CreateProcessingJob").input_shape)
    assert request["AppSpecification"]["ContainerEntrypoint"] == [
        "smspark-submit",
        "/opt/ml/processing/input/code/spark_driver.py",
    ]
    assert request["Environment"] == {} and request["Tags"] == []


def test_launch_refuses_a_spark_job_without_config_or_with_other_hyperparameters(
    aws, boto_session, tmp_path, code_dir
):
    sim = simulator(boto_session, tmp_path, scripted_container(), mode="hold")
    backend = SageMakerBackend(session=boto_session, spark_code=code_dir)
    spec = spark_spec(boto_session, tmp_path, "smglm-spark-refused")
    no_config = JobSpec(**{**spec.to_dict(), "channels": (spec.channels[0],)})
    with pytest.raises(ConfigError) as info:
        backend.launch(no_config)
    assert info.value.fields == ["channels"] and "'config' channel" in str(info.value)
    extra = JobSpec(
        **{
            **spec.to_dict(),
            "channels": spec.channels,
            "hyperparameters": {"engine": "spark", "alpha": "0.1"},
        }
    )
    with pytest.raises(ConfigError) as info:
        backend.launch(extra)
    assert info.value.fields == ["hyperparameters"] and "['alpha']" in str(info.value)
    with pytest.raises(BackendError, match=r"spark_driver\.py is not in"):
        SageMakerBackend(session=boto_session, spark_code=tmp_path).launch(spec)
    assert sim.requests == []


def test_local_backend_shows_the_processing_request_without_aws(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    spec = JobSpec(
        name="smglm-local-spark",
        image_uri="smglm-local",
        output_path=f"file://{tmp_path}/storage/jobs",
        channels=(
            Channel("train", f"file://{tmp_path}/storage/inputs/abc/"),
            Channel("config", f"file://{tmp_path}/storage/inputs/def/"),
        ),
        instance_count=2,
        hyperparameters={"engine": "spark"},
    )
    backend = LocalBackend(home=tmp_path)
    request = backend.request(spec)
    assert request["AppSpecification"]["ImageUri"] == processing.spark_image_uri("eu-west-1")
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 2
    assert request["ProcessingInputs"][0]["S3Input"]["S3Uri"] == (
        f"file://{tmp_path}/storage/jobs/smglm-local-spark/input/code/"
    )
    assert backend.request(spec, region="us-west-2")["AppSpecification"]["ImageUri"].startswith(
        "153931337802.dkr.ecr.us-west-2."
    )
    glum = JobSpec(**{**spec.to_dict(), "channels": spec.channels, "hyperparameters": {}})
    assert backend.request(glum) == glum.to_request()


# -- following the job -------------------------------------------------------------------------


def test_statuses_map_onto_a_training_jobs(aws, boto_session, tmp_path, code_dir):
    from moto.core.utils import utcnow

    simulator(boto_session, tmp_path, scripted_container(), mode="hold")
    spec = spark_spec(boto_session, tmp_path, "smglm-spark-status")
    backend = SageMakerBackend(session=boto_session, spark_code=code_dir)
    backend.launch(spec)
    state = backend.job_state(spec.name)
    assert (state.status, state.secondary_status) == ("InProgress", "Starting")
    assert state.tags == spec.tags  # ListTags: DescribeProcessingJob has none
    assert state.raw["ResourceConfig"]["InstanceCount"] == 3
    job = moto_processing_job(spec.name)
    job.processing_start_time = utcnow()
    state = backend.job_state(spec.name)
    assert (state.status, state.secondary_status) == ("InProgress", "Training")
    assert [t["Status"] for t in state.transitions] == ["Starting", "Training"]
    assert state.billable_seconds is None and state.model_uri is None
    view = state.as_training_job()
    assert view["TrainingJobStatus"] == "InProgress" and view["SecondaryStatus"] == "Training"
    assert view["ResourceConfig"]["InstanceType"] == "ml.r5.4xlarge"
    job.processing_job_status = "Stopping"
    assert backend.job_state(spec.name).secondary_status == "Stopping"
    # a fresh backend finds the job as a processing job by its name
    fresh = SageMakerBackend(session=boto_session)
    assert fresh.job_state(spec.name).status == "Stopping"
    assert fresh.spec(spec.name) == spec


def test_a_completed_job_whose_artifacts_exist_is_not_finished_again(
    aws, boto_session, tmp_path, code_dir
):
    simulator(boto_session, tmp_path, scripted_container(), mode="sync")
    spec = spark_spec(boto_session, tmp_path, "smglm-spark-done")
    storage = S3Storage(boto_session.client("s3"))
    storage.upload_bytes(b"made by another client", spec.model_artifacts_uri)
    backend = SageMakerBackend(session=boto_session, spark_code=code_dir)
    backend.launch(spec)
    state = backend.job_state(spec.name)
    assert (state.status, state.secondary_status) == ("Completed", "Completed")
    assert state.model_uri == spec.model_artifacts_uri
    assert state.output_uri is None  # no output.tar.gz there
    assert [t["Status"] for t in state.transitions] == ["Starting", "Training", "Completed"]
    assert state.billable_seconds is not None and state.failure_reason is None
    assert s3_text(boto_session, spec.model_artifacts_uri) == "made by another client"


def test_logs_come_from_the_processing_log_group_and_wait_prints_them(
    aws, boto_session, tmp_path, code_dir
):
    lines = ("smspark-submit: starting YARN", "driver: 6 IRLS iterations", "driver: done")
    container = scripted_container(lines, exit_code=2, message="the driver failed")
    simulator(boto_session, tmp_path, container, mode="background")
    spec = spark_spec(boto_session, tmp_path, "smglm-spark-logs")
    backend = SageMakerBackend(session=boto_session, spark_code=code_dir)
    backend.launch(spec)
    out = io.StringIO()
    job = Job(spec.name, backend).wait(out=out, poll=0.05, raise_on_failure=False)
    printed = out.getvalue()
    for line in lines:
        assert line in printed
    assert f"[{spec.name}] InProgress - " in printed
    assert f"[{spec.name}] Failed - Failed" in printed
    assert job.logs().splitlines() == list(lines)
    # a new backend reads the same log from the start
    assert SageMakerBackend(session=boto_session).log_lines(spec.name) == (list(lines), 3)


def test_failure_reason_keeps_the_containers_exit_message(aws, boto_session, tmp_path, code_dir):
    container = scripted_container(exit_code=1, message="ValueError: no column 'band'")
    simulator(boto_session, tmp_path, container)
    spec = spark_spec(boto_session, tmp_path, "smglm-spark-fails")
    backend = SageMakerBackend(session=boto_session, spark_code=code_dir)
    backend.launch(spec)
    state = backend.job_state(spec.name)
    assert state.status == "Failed" and state.model_uri is None
    assert state.failure_reason == (
        "AlgorithmError: See job logs for more information: ValueError: no column 'band'"
    )
    with pytest.raises(JobFailed, match="no column 'band'"):
        Job(spec.name, backend).wait(out=io.StringIO())


@pytest.mark.slow  # spark-finish runs as a process (imports the runtime)
def test_a_driver_output_that_cannot_be_finished_fails_the_job_with_the_reason(
    aws, boto_session, tmp_path, code_dir
):
    files = {"output/spark/not-a-driver-output.txt": "nothing useful"}
    simulator(boto_session, tmp_path, scripted_container(files=files))
    spec = spark_spec(boto_session, tmp_path, "smglm-spark-unfinished")
    backend = SageMakerBackend(session=boto_session, spark_code=code_dir)
    backend.launch(spec)
    assert moto_processing_job(spec.name).processing_job_status == "Completed"
    state = backend.job_state(spec.name)
    assert state.status == "Failed"
    assert state.failure_reason.startswith(
        "ClientError: the job's artifacts could not be made from the Spark driver's output "
        "(python -m smglm.runtime spark-finish exited with "
    )
    assert state.transitions[-1]["StatusMessage"] == state.failure_reason
    assert not S3Storage(boto_session.client("s3")).exists(spec.model_artifacts_uri)
    assert backend.job_state(spec.name).failure_reason == state.failure_reason  # tried once


# -- stop, list, reuse -------------------------------------------------------------------------


def test_stop_sends_stop_processing_job_and_the_job_ends_stopped(
    aws, boto_session, tmp_path, code_dir
):
    sim = simulator(boto_session, tmp_path, scripted_container(wait_for_stop=True), "background")
    spec = spark_spec(boto_session, tmp_path, "smglm-spark-stop")
    backend = SageMakerBackend(session=boto_session, spark_code=code_dir)
    backend.launch(spec)
    job = Job(spec.name, backend)
    assert job.stop() is True
    assert sim.stop_requests == [spec.name]
    sim.wait(spec.name)
    assert job.status == "Stopped" and job.state().secondary_status == "Stopped"
    assert job.stop() is False  # ended: nothing sent
    backend.stop(spec.name)  # SageMaker's ValidationException on an ended job is absorbed
    assert sim.stop_requests == [spec.name, spec.name]
    with pytest.raises(AwsError) as info:
        backend.stop("no-such-job")
    assert info.value.code == "ValidationException"


def test_list_states_and_reuse_see_processing_jobs(aws, boto_session, tmp_path, code_dir):
    simulator(boto_session, tmp_path, scripted_container(), mode="hold")
    backend = SageMakerBackend(session=boto_session, spark_code=code_dir)
    names = []
    for i in range(3):
        spec = spark_spec(
            boto_session, tmp_path, f"smglm-spark-list-{i}", tags={"smglm.data_hash": f"h{i}"}
        )
        backend.launch(spec)
        names.append(spec.name)
    states = backend.list_states()
    assert [s.name for s in states] == names[::-1]
    assert all(s.status == "InProgress" for s in states)
    assert backend.find_completed({"smglm.data_hash": "h1"}) is None
    moto_processing_job(names[1]).processing_job_status = "Completed"
    found = backend.find_completed({"smglm.data_hash": "h1"})
    assert found is not None and found[0] == names[1]
    assert found[1]["smglm.data_hash"] == "h1"


def test_cost_line_and_max_cost_count_every_instance(aws, boto_session, tmp_path, capsys):
    backend = SageMakerBackend(session=boto_session)
    spec = JobSpec(
        name="smglm-spark-cost",
        image_uri=SPARK_IMAGE,
        output_path="s3://b/jobs",
        channels=(Channel("train", "s3://b/d/"),),
        instance_type="ml.m5.xlarge",
        instance_count=8,
        max_runtime_seconds=3 * 3600,
        hyperparameters={"engine": "spark"},
    )
    from smglm.launch import pricing

    cost = pricing.price_per_hour("ml.m5.xlarge") * 8 * 3
    backend.check_cost(spec, max_cost=cost + 0.01)
    assert f"ml.m5.xlarge x 8, up to 3.0 h: at most ${cost:,.2f}" in capsys.readouterr().out
    with pytest.raises(ConfigError) as info:
        backend.check_cost(spec, max_cost=cost - 0.01)
    assert info.value.fields == ["max_cost"]


# -- a real Spark job, finished into a training job's artifacts --------------------------------


def _spark_parts_missing() -> str | None:
    from smglm.glm.engines import ENGINES

    engines = Path(importlib.util.find_spec("smglm.glm.engines").origin).parent
    if not (engines / processing.DRIVER).is_file():
        return f"the Spark driver ({processing.DRIVER}) is not in this tree yet"
    if importlib.util.find_spec("smglm.runtime.spark_finish") is None:
        return "the runtime's spark-finish entry point is not in this tree yet"
    if "spark" not in ENGINES:
        return "engine 'spark' is not registered in this tree yet"
    return None


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
@pytest.mark.slow
@pytest.mark.usefixtures("spark")
@pytest.mark.skipif(_spark_parts_missing() is not None, reason=str(_spark_parts_missing()))
def test_train_with_engine_spark_ends_with_a_training_jobs_artifacts(aws, boto_session, tmp_path):
    """One real Spark job (the driver on the test session's Spark), launched by smglm.train,
    finished by spark-finish, read back as a training job's artifacts and MLflow run."""
    from mlflow.tracking import MlflowClient

    import smglm

    sim = simulator(boto_session, tmp_path, spark_driver_container, mode="sync")
    backend = SageMakerBackend(session=boto_session)
    job = smglm.train(
        CONFIG,
        make_frame(),
        test_data=make_frame(150, seed=9),
        backend=backend,
        engine="spark",
        role=ROLE,
        instance_count=2,
        instance_type="ml.m5.xlarge",
        max_cost=5.0,
        wait=True,
        logs=False,
    )
    (request,) = sim.requests
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 2
    assert request["AppSpecification"]["ImageUri"] == SPARK_IMAGE
    assert request["AppSpecification"]["ContainerEntrypoint"][-1].endswith("spark_driver.py")
    state = job.state()
    assert state.status == "Completed", "\n".join(backend.log_lines(job.name)[0][-30:])
    spec = job.spec()
    assert state.model_uri == spec.model_artifacts_uri
    assert state.output_uri == spec.output_artifacts_uri
    archive = S3Storage(boto_session.client("s3")).download_file(
        spec.model_artifacts_uri, tmp_path / "model-check.tar.gz"
    )
    with tarfile.open(archive) as tar:
        assert {"model.json", "coefficients.csv", "metrics.json"} <= set(tar.getnames())
    # job.model and job.report() as for a training job, the fit as glum's
    model = job.model
    assert model.metrics["fit"]["engine"] == "spark"
    reference = smglm.fit(CONFIG, make_frame())
    got = model.coefficients.set_index("term")["estimate"]
    want = reference.coefficients.set_index("term")["estimate"]
    assert list(got.index) == list(want.index)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=1e-6)
    # the output data as a training job's: the report tables and plots per split, from Spark
    output = job.artifacts() / "output"
    for split in ("train", "test"):
        for name in ("one_way_cat.csv", "one_way_band.png", "lift.csv", "lorenz.csv"):
            assert (output / split / name).is_file(), f"{split}/{name}"
    text = job.report().to_text()
    assert job.name in text and "ml.m5.xlarge x 2" in text and "Completed" in text
    # one MLflow run, ended by the launcher with the results, the engine as a tag
    run = MlflowClient().get_run(job.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["smglm.engine"] == "spark"
    assert run.data.metrics["train_deviance"] == pytest.approx(
        model.metrics["train"]["deviance"], rel=1e-12
    )
    assert ACCOUNT in request["RoleArn"] and backend.region == REGION


def test_a_spark_job_has_no_sdk_estimator():
    from smglm.launch.sdk import to_estimator

    spec = JobSpec(
        name="smglm-spark-sdk",
        image_uri=SPARK_IMAGE,
        output_path="s3://b/jobs",
        channels=(Channel("train", "s3://b/d/"),),
        role_arn=ROLE,
        hyperparameters={"engine": "spark"},
    )
    with pytest.raises(ConfigError) as info:
        to_estimator(spec)
    assert info.value.fields == ["engine"] and "job.request()" in str(info.value)


def test_another_tools_processing_job_is_listed_and_has_no_artifacts(aws, boto_session):
    boto_session.client("sagemaker").create_processing_job(
        ProcessingJobName="not-smglms",
        RoleArn=ROLE,
        AppSpecification={"ImageUri": SPARK_IMAGE},
        ProcessingResources={
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.xlarge",
                "VolumeSizeInGB": 10,
            }
        },
    )  # moto: Completed at once
    backend = SageMakerBackend(session=boto_session)
    assert [s.name for s in backend.list_states()] == ["not-smglms"]
    state = backend.job_state("not-smglms")
    assert state.status == "Completed" and state.failure_reason is None
    assert state.model_uri is None
    with pytest.raises(BackendError, match="has no model artifacts"):
        Job("not-smglms", backend).artifacts()
