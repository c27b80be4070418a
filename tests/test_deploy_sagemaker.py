"""Deployment on the sagemaker backend against moto's server, endpoints and transform jobs run
by aws_harness's EndpointSimulator with the real ``serve`` on the model from S3: every request
goes through a real boto3 client (botocore validates it against the service model), and the
predictions come from the served model, not from moto's canned answers."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

import smglm
from aws_harness import push_image
from smglm.datasets import motor
from smglm.errors import BackendError, ConfigError
from smglm.launch.aws import AwsError, resolve_bucket
from smglm.launch.deploy import EndpointPlan, ModelPlan, Predictor
from smglm.launch.sagemaker import SageMakerBackend
from smglm.launch.storage import S3Storage

ROLE = "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole-test"
CONFIG = {
    "target": "claim_count",
    "predictors": ["driver_age", "vehicle_power", "area"],
    "exposure": "exposure",
    "family": "poisson",
}

pytest_plugins = ["aws_harness"]


@pytest.mark.slow
def test_deploy_predict_transform_and_delete_on_sagemaker(
    aws, boto_session, sagemaker_sim, endpoint_sim, capsys
):
    image = push_image(boto_session)
    backend = SageMakerBackend(session=boto_session)
    data = motor(2_000, seed=5)
    job = smglm.train(
        CONFIG, data, backend=backend, image_uri=image, role=ROLE, wait=True, tracking=False
    )
    capsys.readouterr()
    predictor = job.deploy(instance_type="ml.m5.large", endpoint_name="smglm-moto-endpoint")
    printed = capsys.readouterr().out
    assert "endpoint smglm-moto-endpoint: ml.m5.large x 1 at about $0.115/h" in printed
    assert "bills until predictor.delete()" in printed
    assert "us-east-1, smglm's price table of" in printed  # the prices' region and date
    assert "endpoint smglm-moto-endpoint: InService" in printed

    [model] = endpoint_sim.requests["CreateModel"]
    assert model["ModelName"] == "smglm-moto-endpoint"
    assert model["PrimaryContainer"]["Image"] == image
    assert model["PrimaryContainer"]["ModelDataUrl"] == job.model_uri
    assert model["ExecutionRoleArn"] == ROLE
    assert {"Key": "smglm.job_name", "Value": job.name} in model["Tags"]
    [config] = endpoint_sim.requests["CreateEndpointConfig"]
    assert config["ProductionVariants"] == [
        {
            "VariantName": "AllTraffic",
            "ModelName": "smglm-moto-endpoint",
            "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 1,
            "InitialVariantWeight": 1.0,
        }
    ]

    rows = data.sample(300, random_state=3)
    expected = job.model.predict(rows)
    np.testing.assert_allclose(predictor.predict(rows), expected, rtol=1e-12)
    [invoke] = endpoint_sim.requests["InvokeEndpoint"]
    assert invoke["ContentType"] == "text/csv; header=present"
    assert invoke["Accept"] == "text/csv"
    assert invoke["Body"].decode().splitlines()[0] == "driver_age,vehicle_power,area,exposure"
    # a bad request is the container's 400, raised as SageMaker's ModelError
    with pytest.raises(AwsError, match="ModelError") as info:
        predictor.invoke(b"driver_age\nold\n")
    assert "400" in str(info.value)
    again = Predictor.attach("smglm-moto-endpoint", backend)
    np.testing.assert_allclose(again.predict(rows.head(5)), expected[:5], rtol=1e-12)

    handle = job.transform(rows, instance_type="ml.m5.xlarge")
    printed = capsys.readouterr().out
    assert "ml.m5.xlarge x 1 at about $0.230/h" in printed and "while it runs" in printed
    result = handle.result()
    np.testing.assert_allclose(result.to_numpy(), expected, rtol=1e-12)
    assert list(result.index) == list(rows.index)
    [request] = endpoint_sim.requests["CreateTransformJob"]
    assert request["TransformInput"]["SplitType"] == "Line"
    assert request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"].endswith("/")
    assert "/inputs/" in request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    assert request["TransformOutput"]["S3OutputPath"] == handle.output_uri
    # the model made for the transform is deleted once it has ended
    assert {"ModelName": handle.name} in endpoint_sim.requests["DeleteModel"]

    steps = predictor.delete(out=io.StringIO())
    assert steps == [
        "deleted endpoint smglm-moto-endpoint",
        "deleted endpoint configuration smglm-moto-endpoint",
        "deleted model smglm-moto-endpoint",
    ]
    assert "smglm-moto-endpoint" not in endpoint_sim.servers
    assert predictor.delete(out=io.StringIO()) == [
        "endpoint smglm-moto-endpoint: already gone",
        "endpoint configuration smglm-moto-endpoint: already gone",
        "model smglm-moto-endpoint: already gone",
    ]
    with pytest.raises(AwsError, match="ValidationException"):
        predictor.predict(rows.head(2))


def _plan(boto_session, name: str, model_json: bytes, **endpoint) -> EndpointPlan:
    bucket = resolve_bucket(session=boto_session)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.json")
        info.size = len(model_json)
        tar.addfile(info, io.BytesIO(model_json))
    url = f"s3://{bucket}/models/{name}/model.tar.gz"
    S3Storage(boto_session.client("s3")).upload_bytes(buf.getvalue(), url)
    model = ModelPlan(
        name=name,
        image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/smglm:0.1.0",
        model_data_url=url,
        role_arn=ROLE,
        subnets=("subnet-0abc",),
        security_group_ids=("sg-0abc",),
        network_isolation=True,
    )
    return EndpointPlan(name=name, model=model, **endpoint)


def test_a_serverless_endpoint_that_fails_its_ping_is_reported_and_deleted(
    aws, boto_session, endpoint_sim
):
    backend = SageMakerBackend(session=boto_session)
    deployer = backend.deployer()
    plan = _plan(
        boto_session,
        "smglm-broken",
        json.dumps({"not": "a model"}).encode(),
        instance_type=None,
        serverless={"MemorySizeInMB": 2048, "MaxConcurrency": 3},
    )
    deployer.create_endpoint(plan)
    [model] = endpoint_sim.requests["CreateModel"]
    assert model["VpcConfig"] == {"SecurityGroupIds": ["sg-0abc"], "Subnets": ["subnet-0abc"]}
    assert model["EnableNetworkIsolation"] is True
    [config] = endpoint_sim.requests["CreateEndpointConfig"]
    assert config["ProductionVariants"][0]["ServerlessConfig"] == {
        "MemorySizeInMB": 2048,
        "MaxConcurrency": 3,
    }
    assert "InstanceType" not in config["ProductionVariants"][0]
    predictor = Predictor("smglm-broken", deployer)
    with pytest.raises(BackendError, match="Failed: The primary container did not pass"):
        predictor.wait(out=io.StringIO())
    assert len(predictor.delete(out=io.StringIO())) == 3
    assert backend.deployer().list_endpoints() == []


def test_sagemaker_models_need_a_role_and_an_s3_model(aws, boto_session):
    deployer = SageMakerBackend(session=boto_session).deployer()
    model = ModelPlan("m", "img", "file:///tmp/model.tar.gz", role_arn=ROLE)
    with pytest.raises(ConfigError) as info:
        deployer.create_endpoint(EndpointPlan("m", model))
    assert info.value.fields == ["model_data_url"]
    with pytest.raises(ConfigError) as info:
        deployer.create_endpoint(
            EndpointPlan("m", ModelPlan("m", "img", "s3://b/model.tar.gz", role_arn=None))
        )
    assert info.value.fields == ["role"]


def test_a_name_in_use_rolls_back_only_what_deploy_created(aws, boto_session, endpoint_sim):
    """CreateEndpointConfig refused (the name is taken): the model just made is deleted, the
    existing configuration is left alone."""
    deployer = SageMakerBackend(session=boto_session).deployer()
    plan = _plan(boto_session, "smglm-taken", b"{}")
    client = boto_session.client("sagemaker")
    client.create_model(
        ModelName="other-model",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": plan.model.image_uri},
    )
    client.create_endpoint_config(
        EndpointConfigName="smglm-taken",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "other-model",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    with pytest.raises(AwsError, match="CreateEndpointConfig"):
        deployer.create_endpoint(plan)
    assert client.describe_endpoint_config(EndpointConfigName="smglm-taken")
    with pytest.raises(Exception, match="Could not find model"):
        client.describe_model(ModelName="smglm-taken")


def test_the_sdk_configs_hosting_defaults_reach_model_endpoint_and_transform(
    aws, boto_session, endpoint_sim, tmp_path, monkeypatch, capsys
):
    """An admin's ``SageMaker.Model``/``EndpointConfig``/``Endpoint``/``TransformJob`` defaults
    (the SDK's config file) are sent with deploy's requests; what deploy sets itself wins."""
    from smglm.launch.sdk_config import hosting_defaults

    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    admin = tmp_path / "admin.yaml"
    admin.write_text(
        "SchemaVersion: '1.0'\n"
        "SageMaker:\n"
        "  Model:\n"
        "    EnableNetworkIsolation: true\n"
        "    VpcConfig: {Subnets: [subnet-0fff], SecurityGroupIds: [sg-0fff]}\n"
        "    Tags: [{Key: cost-centre, Value: pricing}]\n"
        "  EndpointConfig:\n"
        f"    KmsKeyId: {key}\n"
        "    Tags: [{Key: cost-centre, Value: pricing}]\n"
        "  Endpoint:\n"
        "    Tags: [{Key: cost-centre, Value: pricing}, {Key: smglm.job_name, Value: x}]\n"
        "  TransformJob:\n"
        f"    TransformOutput: {{KmsKeyId: {key}}}\n"
        "    Environment: {HTTPS_PROXY: 'http://proxy:3128'}\n"
    )
    monkeypatch.setenv("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", str(admin))
    monkeypatch.delenv("SAGEMAKER_USER_CONFIG_OVERRIDE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-user-config"))
    sent: dict[str, dict] = {}
    for op in ("CreateModel", "CreateEndpointConfig", "CreateEndpoint"):
        boto_session.events.register(
            f"provide-client-params.sagemaker.{op}",
            lambda params, op=op, **_: sent.__setitem__(op, json.loads(json.dumps(params))),
        )
    deployer = SageMakerBackend(session=boto_session).deployer()
    plan = _plan(boto_session, "smglm-admin", b"{}")
    deployer.create_endpoint(plan)
    deployer.delete_endpoint("smglm-admin")
    # the plan's own VPC wins over the file's; the file's tag is added
    assert sent["CreateModel"]["VpcConfig"]["Subnets"] == ["subnet-0abc"]
    assert {"Key": "cost-centre", "Value": "pricing"} in sent["CreateModel"]["Tags"]
    assert sent["CreateEndpointConfig"]["KmsKeyId"] == key
    tags = {t["Key"]: t["Value"] for t in sent["CreateEndpoint"].get("Tags", [])}
    assert tags["cost-centre"] == "pricing"
    out = capsys.readouterr().out
    assert "SageMaker SDK defaults (SageMaker.EndpointConfig) from" in out and "KmsKeyId" in out
    # a transform: output key and environment from the file, its own variables kept
    request, notes = hosting_defaults(
        "CreateTransformJob",
        {"TransformOutput": {"S3OutputPath": "s3://b/out"}, "Environment": {"A": "1"}},
    )
    assert request["TransformOutput"] == {"S3OutputPath": "s3://b/out", "KmsKeyId": key}
    assert request["Environment"] == {"A": "1", "HTTPS_PROXY": "http://proxy:3128"}
    assert len(notes) == 1 and "Environment: HTTPS_PROXY" in notes[0]
    # a model without a VPC of its own takes the file's, and the file's isolation
    request, _ = hosting_defaults("CreateModel", {"ModelName": "m"})
    assert request["VpcConfig"] == {"Subnets": ["subnet-0fff"], "SecurityGroupIds": ["sg-0fff"]}
    assert request["EnableNetworkIsolation"] is True
    # wrong types name the key and the file
    admin.write_text("SchemaVersion: '1.0'\nSageMaker:\n  Endpoint:\n    Tags: {a: b}\n")
    with pytest.raises(ConfigError) as info:
        hosting_defaults("CreateEndpoint", {"EndpointName": "e"})
    assert info.value.fields == ["SageMaker.Endpoint.Tags"] and str(admin) in str(info.value)
