"""Deployment on the local backend, end to end: a real job trained, its model served by the
runtime's ``serve`` process on 127.0.0.1, predictions over HTTP equal to the model's own, a
batch transform as SageMaker runs it, and delete() ending the process and freeing the port.
The argument checks (field, value, allowed) run without a job."""

from __future__ import annotations

import io
import json
import socket

import numpy as np
import pandas as pd
import pytest

import smglm
from smglm.datasets import motor
from smglm.errors import BackendError, ConfigError
from smglm.launch.deploy import (
    EndpointPlan,
    ModelPlan,
    Predictor,
    TransformPlan,
    check_instance_type,
    check_serverless,
    list_endpoints,
)
from smglm.launch.local import LocalBackend
from smglm.launch.processes import read_recorded
from smglm.launch.storage import file_path

CONFIG = {
    "target": "claim_count",
    "predictors": ["driver_age", "vehicle_power", "area", "region"],
    "exposure": "exposure",
    "family": "poisson",
}


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return motor(3_000, seed=11)


@pytest.fixture(scope="module")
def job(tmp_path_factory, data):
    be = LocalBackend(tmp_path_factory.mktemp("deploy") / "home", warm=False)
    job = smglm.train(CONFIG, data, backend=be)
    job.wait(out=io.StringIO())
    return job


@pytest.mark.slow
def test_local_endpoint_predicts_as_the_model_and_delete_frees_the_port(job, data):
    out = io.StringIO()
    predictor = job.deploy(endpoint_name="smglm-test-endpoint")
    try:
        assert predictor.status == "InService"
        folder = job.backend.home / "endpoints" / "smglm-test-endpoint"
        state = json.loads((folder / "state.json").read_text())
        port = state["Port"]
        process = read_recorded(folder / "serve.pid")
        assert process is not None and process.running()
        # the requests SageMaker would receive: the job's model.tar.gz and image
        model = state["Requests"]["CreateModel"]
        assert model["PrimaryContainer"]["ModelDataUrl"] == job.model_uri
        variant = state["Requests"]["CreateEndpointConfig"]["ProductionVariants"][0]
        assert variant["InstanceType"] == "ml.m5.large"

        rows = data.sample(500, random_state=1)
        expected = smglm.load_model(job.artifacts() / "model").predict(rows)
        got = predictor.predict(rows)
        np.testing.assert_allclose(got, expected, rtol=1e-12)
        # without the exposure column: per unit of exposure, as the model says
        bare = rows.drop(columns=["exposure", "claim_count"])
        np.testing.assert_allclose(
            predictor.predict(bare),
            smglm.load_model(job.artifacts() / "model").predict(bare),
            rtol=1e-12,
        )
        assert [e["EndpointName"] for e in list_endpoints(job.backend)] == ["smglm-test-endpoint"]
        again = Predictor.attach("smglm-test-endpoint", job.backend)
        np.testing.assert_allclose(again.predict(rows.head(3)), expected[:3], rtol=1e-12)
        with pytest.raises(ConfigError, match="endpoint_name"):
            job.deploy(endpoint_name="smglm-test-endpoint")
    finally:
        steps = predictor.delete(out=out)
    assert any("stopped serve process" in s for s in steps), steps
    assert not process.running()
    assert _refused(port)
    assert not folder.exists()
    assert predictor.delete(out=out) == ["local endpoint smglm-test-endpoint: already gone"]
    with pytest.raises(BackendError, match="no local endpoint"):
        predictor.predict(rows.head(2))


@pytest.mark.slow
def test_local_transform_writes_out_files_and_reads_them_back(job, data, tmp_path):
    rows = data.sample(700, random_state=2)
    rows.index = rows.index + 10_000  # the result keeps the DataFrame's index
    output = f"file://{tmp_path / 'transform-out'}"
    handle = job.transform(rows, output_path=output)
    assert handle.status == "Completed"
    result = handle.result()
    expected = smglm.load_model(job.artifacts() / "model").predict(rows)
    assert list(result.index) == list(rows.index)
    np.testing.assert_allclose(result.to_numpy(), expected, rtol=1e-12)
    # SageMaker's layout: <output>/<input file>.out, each request's answer then a newline
    out_file = tmp_path / "transform-out" / "transform.csv.out"
    assert out_file.is_file()
    assert out_file.read_bytes().endswith(b"\n\n")
    # the data went content-addressed beside the job's inputs, headerless, the model's columns
    [line] = [ln for ln in file_path(handle.plan.input_uri + "transform.csv").open()][:1]
    assert len(line.strip().split(",")) == 5
    assert "/inputs/" in handle.plan.input_uri


def test_deploy_needs_a_completed_job(tmp_path):
    from smglm.launch.testing import FakeBackend

    be = FakeBackend(
        tmp_path / "home",
        script=[{"TrainingJobStatus": "Failed", "FailureReason": "AlgorithmError: boom"}],
    )
    job = smglm.train(CONFIG, motor(200, seed=1), backend=be, tracking=False)
    with pytest.raises(ConfigError) as info:
        job.deploy()
    assert info.value.issues[0].field == "job"
    assert "Failed (AlgorithmError: boom)" in str(info.value)
    with pytest.raises(ConfigError, match="transform needs a Completed job"):
        job.transform(motor(10, seed=2))


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"memory_mb": 1000}, "serverless.memory_mb"),
        ({"memory_mb": 7168}, "1024 to 6144"),
        ({"max_concurrency": 0}, "serverless.max_concurrency"),
        ({"max_concurrency": 201}, "1..200"),
        ({"memory": 2048}, "serverless.memory"),
        ("2048", "serverless"),
    ],
)
def test_serverless_settings_name_field_value_and_allowed(value, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        check_serverless(value)


def test_serverless_config_shape():
    assert check_serverless({"memory_mb": 4096, "max_concurrency": 10}) == {
        "MemorySizeInMB": 4096,
        "MaxConcurrency": 10,
    }
    assert check_serverless({"MemorySizeInMB": 1024}) == {
        "MemorySizeInMB": 1024,
        "MaxConcurrency": 5,
    }


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("m5.large", "not a SageMaker instance type"),
        ("ml.m5.huge", "not allowed"),
        ("ml.c7g.large", "Graviton"),
    ],
)
def test_instance_types_are_checked_against_the_service_model(value, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        check_instance_type(value, "instance_type", "ProductionVariantInstanceType")
    assert info.value.issues[0].field == "instance_type"
    assert info.value.issues[0].value == value


def test_plans_are_valid_sagemaker_requests():
    """Every request shape botocore validates against the SageMaker service model."""
    from botocore.session import get_session
    from botocore.validate import ParamValidator

    service = get_session().get_service_model("sagemaker")
    model = ModelPlan(
        name="m",
        image_uri="1.dkr.ecr.us-east-1.amazonaws.com/smglm:1",
        model_data_url="s3://b/k/model.tar.gz",
        role_arn="arn:aws:iam::123456789012:role/r",
        subnets=("subnet-1",),
        security_group_ids=("sg-1",),
        network_isolation=True,
        tags={"team": "pricing"},
    )
    plans = [
        EndpointPlan("e", model, kms_key="arn:aws:kms:us-east-1:1:key/k"),
        EndpointPlan("s", model, instance_type=None, serverless=check_serverless({})),
    ]
    calls = {}
    for plan in plans:
        calls.update({f"{k}-{plan.name}": (k, v) for k, v in plan.requests().items()})
    t = TransformPlan(
        "t", model, "s3://b/in/", "s3://b/out/", volume_kms_key="k", output_kms_key="k"
    )
    calls["t"] = ("CreateTransformJob", t.request())
    for operation, params in calls.values():
        shape = service.operation_model(operation).input_shape
        report = ParamValidator().validate(params, shape)
        assert not report.has_errors(), (operation, report.generate_report())
    assert plans[0].requests()["CreateModel"]["VpcConfig"] == {
        "SecurityGroupIds": ["sg-1"],
        "Subnets": ["subnet-1"],
    }
    assert "KmsKeyId" not in plans[1].requests()["CreateEndpointConfig"]


@pytest.mark.slow
def test_cli_deploys_lists_and_deletes_an_endpoint(job, monkeypatch, capsys):
    from smglm.cli import main

    monkeypatch.setenv("SMGLM_HOME", str(job.backend.home))
    assert main(["deploy", job.name, "--name", "smglm-cli-endpoint"]) == 0
    out = capsys.readouterr().out
    assert "endpoint smglm-cli-endpoint is InService" in out
    assert "smglm endpoints --backend local --delete smglm-cli-endpoint" in out
    assert main(["endpoints"]) == 0
    assert "smglm-cli-endpoint" in capsys.readouterr().out
    folder = job.backend.home / "endpoints" / "smglm-cli-endpoint"
    process = read_recorded(folder / "serve.pid")
    assert main(["endpoints", "--delete", "smglm-cli-endpoint"]) == 0
    assert "stopped serve process" in capsys.readouterr().out
    assert not process.running() and not folder.exists()
    assert main(["endpoints"]) == 0
    assert "no endpoints" in capsys.readouterr().out
    assert main(["deploy", job.name, "--serverless-memory", "1000"]) != 0
    assert "serverless.memory_mb: 1000 is not allowed" in capsys.readouterr().err


def test_the_model_carries_the_training_jobs_network_settings(tmp_path, monkeypatch):
    """A spec without VPC settings deploys without a VpcConfig; one with them serves inside
    the training job's VPC, with its network isolation."""
    import dataclasses

    from smglm.launch import deploy as deploy_module
    from smglm.launch.testing import FakeBackend

    be = FakeBackend(tmp_path / "home", script=["Completed"])
    job = smglm.train(CONFIG, motor(200, seed=1), backend=be, tracking=False, tags={"team": "x"})
    sagemaker = deploy_module.SageMakerDeployer(None, None, None, "us-east-1")
    plain = deploy_module._model_plan(job, "m", "s3://b/model.tar.gz", None, sagemaker).request()
    assert "VpcConfig" not in plain and "EnableNetworkIsolation" not in plain
    assert {"Key": "team", "Value": "x"} in plain["Tags"]
    network = dataclasses.replace(
        be.spec(job.name),
        subnets=("subnet-0a",),
        security_group_ids=("sg-0a",),
        network_isolation=True,
    )
    monkeypatch.setattr(be, "spec", lambda name: network)
    request = deploy_module._model_plan(job, "m", "s3://b/model.tar.gz", None, sagemaker).request()
    assert request["VpcConfig"] == {"SecurityGroupIds": ["sg-0a"], "Subnets": ["subnet-0a"]}
    assert request["EnableNetworkIsolation"] is True
    # a Spark job ran on AWS's Spark image: SageMaker needs the smglm image to serve it
    spark = dataclasses.replace(network, hyperparameters={"engine": "spark"})
    monkeypatch.setattr(be, "spec", lambda name: spark)
    with pytest.raises(ConfigError) as info:
        deploy_module._model_plan(job, "m", "s3://b/model.tar.gz", None, sagemaker)
    assert info.value.issues[0].field == "image_uri"
    plan = deploy_module._model_plan(job, "m", "s3://b/m.tar.gz", "ecr/smglm:1", sagemaker)
    assert plan.image_uri == "ecr/smglm:1"
    local = deploy_module.LocalDeployer(tmp_path / "home")
    assert deploy_module._model_plan(job, "m", "file:///m.tar.gz", None, local).name == "m"
    # a backend without a deployer says so, naming the field
    with pytest.raises(ConfigError) as info:
        be.deployer()
    assert info.value.issues[0].field == "backend"


@pytest.mark.slow
def test_local_transform_of_a_folder_of_headerless_csv_files(job, data, tmp_path):
    """A URI of the user's own files: each file gets its ``.out``, read back in key order."""
    model = smglm.load_model(job.artifacts() / "model").model
    columns = [*model.input_columns, "exposure"]
    folder = tmp_path / "to-score"
    (folder / "b").mkdir(parents=True)
    first, second = data.iloc[:40], data.iloc[40:100]
    first[columns].to_csv(folder / "a.csv", index=False, header=False)
    second[columns].to_csv(folder / "b" / "c.csv", index=False, header=False)
    out = tmp_path / "scored"
    handle = job.transform(f"file://{folder}/", output_path=f"file://{out}")
    result = handle.result()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.out")) == [
        "a.csv.out",
        "b/c.csv.out",
    ]
    expected = smglm.load_model(job.artifacts() / "model").predict(data.iloc[:100])
    np.testing.assert_allclose(result.to_numpy(), expected, rtol=1e-12)
    with pytest.raises(ConfigError, match="no files to transform"):
        job.transform(f"file://{tmp_path / 'nothing'}/")
