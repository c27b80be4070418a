"""Region, role, bucket and image resolution of smglm.launch.aws, against moto's server."""

from __future__ import annotations

import json
import warnings
from typing import Any

import boto3
import pytest

from aws_harness import error_response, push_image
from smglm.config.job import JobConfig
from smglm.errors import BackendError, ConfigError
from smglm.launch import aws as awsmod
from smglm.launch.ecr import check_image, parse_ecr_uri
from smglm.launch.sagemaker import SageMakerBackend

ACCOUNT = "123456789012"
STUDIO_ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/AmazonSageMaker-ExecutionRole-studio"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)

pytest_plugins = ["aws_harness"]  # the fixtures aws, boto_session, sagemaker_sim


def create_role(session: Any, name: str, path: str = "/service-role/") -> str:
    role = session.client("iam").create_role(
        RoleName=name, Path=path, AssumeRolePolicyDocument=TRUST
    )
    return str(role["Role"]["Arn"])


def assumed_session(session: Any, role_arn: str) -> Any:
    creds = session.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="SageMaker")
    c = creds["Credentials"]
    return boto3.Session(
        aws_access_key_id=c["AccessKeyId"],
        aws_secret_access_key=c["SecretAccessKey"],
        aws_session_token=c["SessionToken"],
        region_name=session.region_name,
    )


def user_session(session: Any, name: str) -> Any:
    iam = session.client("iam")
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return boto3.Session(
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        region_name=session.region_name,
    )


# -- region ----------------------------------------------------------------------------------


def test_region_argument_then_jobconfig_then_session(aws, boto_session):
    job = JobConfig(region="ap-southeast-2")
    assert awsmod.resolve_region("eu-west-1", job, session=boto_session) == "eu-west-1"
    assert awsmod.resolve_region(None, job, session=boto_session) == "ap-southeast-2"
    assert awsmod.resolve_region(None, JobConfig(), session=boto_session) == "us-east-1"
    assert awsmod.resolve_region() == "us-east-1"  # AWS_DEFAULT_REGION, through boto3


def test_region_missing_is_a_config_error_naming_aws_default_region(aws, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigError) as info:
        awsmod.resolve_region(None, JobConfig())
    assert info.value.fields == ["region"]
    assert "AWS_DEFAULT_REGION" in str(info.value) and "region=" in str(info.value)
    with pytest.raises(ConfigError, match="AWS_DEFAULT_REGION"):
        SageMakerBackend()


def test_region_malformed_is_a_config_error(aws):
    with pytest.raises(ConfigError, match="'Ireland' is not an AWS region"):
        awsmod.resolve_region("Ireland")


def test_account_id_from_sts(aws, boto_session):
    assert awsmod.account_id(boto_session) == ACCOUNT


# -- role ------------------------------------------------------------------------------------


def test_role_argument_and_jobconfig_come_first(aws, boto_session, tmp_path):
    metadata = tmp_path / "resource-metadata.json"
    metadata.write_text(json.dumps({"ExecutionRoleArn": STUDIO_ROLE}))
    given = f"arn:aws:iam::{ACCOUNT}:role/Mine"
    job = JobConfig(role=f"arn:aws:iam::{ACCOUNT}:role/FromConfig")
    assert awsmod.resolve_role(given, job, metadata_path=metadata) == given
    assert awsmod.resolve_role(None, job, metadata_path=metadata) == job.role


def test_role_name_is_looked_up_in_iam_with_its_path(aws, boto_session):
    arn = create_role(boto_session, "GlmTrainer", path="/ml/")
    assert arn == f"arn:aws:iam::{ACCOUNT}:role/ml/GlmTrainer"
    assert awsmod.resolve_role("GlmTrainer", session=boto_session) == arn
    with pytest.raises(ConfigError, match="no IAM role named 'Nope'"):
        awsmod.resolve_role("Nope", session=boto_session)
    with pytest.raises(ConfigError, match="is not an IAM role"):
        awsmod.resolve_role(f"arn:aws:iam::{ACCOUNT}:user/alice", session=boto_session)


def test_role_from_studio_metadata_file(aws, boto_session, tmp_path, monkeypatch):
    metadata = tmp_path / "resource-metadata.json"
    metadata.write_text(
        json.dumps({"AppType": "JupyterLab", "DomainId": "d-x", "ExecutionRoleArn": STUDIO_ROLE})
    )
    # the identity here is moto's default user: the file must win before STS is asked
    assert awsmod.resolve_role(session=boto_session, metadata_path=metadata) == STUDIO_ROLE
    monkeypatch.setattr(awsmod, "STUDIO_METADATA_PATH", metadata)  # the default path, moved
    assert awsmod.resolve_role(session=boto_session) == STUDIO_ROLE


def test_role_from_assumed_role_identity_keeps_the_service_role_path(aws, boto_session, tmp_path):
    name = "AmazonSageMaker-ExecutionRole-20240101T000000"
    arn = create_role(boto_session, name)
    assert arn == f"arn:aws:iam::{ACCOUNT}:role/service-role/{name}"
    studio = assumed_session(boto_session, arn)
    identity = studio.client("sts").get_caller_identity()["Arn"]
    assert identity == f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/SageMaker"
    metadata = tmp_path / "resource-metadata.json"
    metadata.write_text(json.dumps({"DomainId": "d-x"}))  # no ExecutionRoleArn: on to STS
    assert awsmod.resolve_role(session=studio, metadata_path=metadata) == arn
    assert awsmod.resolve_role(identity, session=studio) == arn  # an STS ARN given as role=


def test_role_guessed_when_iam_get_role_is_denied(aws, boto_session, tmp_path):
    name = "AmazonSageMaker-ExecutionRole-denied"
    create_role(boto_session, name, path="/custom/")
    studio = assumed_session(boto_session, f"arn:aws:iam::{ACCOUNT}:role/custom/{name}")
    studio.events.register(
        "before-call.iam.GetRole", lambda **_: error_response("AccessDenied", "not allowed")
    )
    # as the SDK does: SageMaker execution roles live under /service-role/
    role = awsmod.resolve_role(session=studio, metadata_path=tmp_path / "none.json")
    assert role == f"arn:aws:iam::{ACCOUNT}:role/service-role/{name}"


def test_role_for_an_iam_user_is_a_clear_config_error(aws, boto_session, tmp_path):
    alice = user_session(boto_session, "alice")
    with pytest.raises(ConfigError) as info:
        awsmod.resolve_role(session=alice, metadata_path=tmp_path / "none.json")
    message = str(info.value)
    assert info.value.fields == ["role"]
    assert f"arn:aws:iam::{ACCOUNT}:user/alice" in message
    assert "is an IAM user" in message
    assert "role='arn:aws:iam::<account>:role/<name>'" in message


# -- bucket ----------------------------------------------------------------------------------


def capture_create_bucket(session: Any) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    session.events.register(
        "provide-client-params.s3.CreateBucket", lambda params, **_: calls.append(dict(params))
    )
    return calls


def test_bucket_explicit_is_used_as_given(aws, boto_session):
    job = JobConfig(bucket="from-config")
    assert awsmod.resolve_bucket("my-bucket", job, session=boto_session) == "my-bucket"
    assert awsmod.resolve_bucket(None, job, session=boto_session) == "from-config"
    assert boto_session.client("s3").list_buckets()["Buckets"] == []  # nothing created
    with pytest.raises(ConfigError) as info:
        awsmod.resolve_bucket("s3://my-bucket/prefix", session=boto_session)
    assert info.value.fields == ["bucket"]


def test_default_bucket_created_in_us_east_1_without_location(aws, boto_session):
    calls = capture_create_bucket(boto_session)
    name = awsmod.resolve_bucket(session=boto_session)
    assert name == f"sagemaker-us-east-1-{ACCOUNT}"
    boto_session.client("s3").head_bucket(Bucket=name)
    assert calls == [{"Bucket": name}]
    assert awsmod.resolve_bucket(session=boto_session) == name
    assert len(calls) == 1  # exists now: not created again
    assert awsmod.ensure_bucket(name, "us-east-1", session=boto_session) is False


def test_default_bucket_created_with_the_regions_location_constraint(aws):
    session = boto3.Session(region_name="eu-west-1")
    calls = capture_create_bucket(session)
    name = awsmod.resolve_bucket(session=session)
    assert name == f"sagemaker-eu-west-1-{ACCOUNT}"
    assert calls == [
        {"Bucket": name, "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}}
    ]
    location = session.client("s3").get_bucket_location(Bucket=name)["LocationConstraint"]
    assert location == "eu-west-1"


def test_default_bucket_owned_by_someone_else_is_a_clear_error(aws, boto_session):
    boto_session.events.register(
        "before-call.s3.HeadBucket", lambda **_: error_response("403", "Forbidden")
    )
    with pytest.raises(BackendError, match="may belong to another account: pass bucket="):
        awsmod.resolve_bucket(session=boto_session)


def test_resolve_target_for_a_jobconfig(aws, boto_session):
    job = JobConfig(backend="sagemaker", role=STUDIO_ROLE)
    target = awsmod.resolve_target(job, session=boto_session)
    assert target == awsmod.AwsTarget(
        region="us-east-1",
        account=ACCOUNT,
        role_arn=STUDIO_ROLE,
        bucket=f"sagemaker-us-east-1-{ACCOUNT}",
    )


# -- image -----------------------------------------------------------------------------------


@pytest.fixture
def pushed(aws, boto_session) -> str:
    return push_image(boto_session, "smglm", "0.1.0").rsplit(":", 1)[0]


def test_check_image_present_returns_its_digest(pushed, boto_session):
    assert pushed == f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/smglm"
    digest = check_image(f"{pushed}:0.1.0", session=boto_session, region="us-east-1")
    described = boto_session.client("ecr").describe_images(repositoryName="smglm")
    assert digest == described["imageDetails"][0]["imageDigest"]
    assert digest is not None and digest.startswith("sha256:")
    assert check_image(f"{pushed}@{digest}", session=boto_session) == digest


def test_check_image_missing_tag_says_how_to_push(pushed, boto_session):
    with pytest.raises(ConfigError) as info:
        check_image(f"{pushed}:0.2.0", session=boto_session)
    message = str(info.value)
    assert info.value.fields == ["image_uri"]
    assert "has no image '0.2.0'" in message
    assert "smglm image push" in message and "container/build_and_push.sh" in message
    with pytest.raises(ConfigError, match="has no image 'latest'"):
        check_image(pushed, session=boto_session)


def test_check_image_missing_repository_says_how_to_push(aws, boto_session):
    uri = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/nope:1"
    with pytest.raises(ConfigError) as info:
        check_image(uri, session=boto_session)
    assert "there is no ECR repository 'nope'" in str(info.value)
    assert "smglm image push" in str(info.value)


def test_check_image_in_another_region_is_refused(pushed, boto_session):
    with pytest.raises(ConfigError, match="in ECR in us-east-1, but the job runs in eu-west-1"):
        check_image(f"{pushed}:0.1.0", session=boto_session, region="eu-west-1")


def test_check_image_outside_ecr_only_warns(aws, boto_session):
    with pytest.warns(UserWarning, match="is not an Amazon ECR image"):
        assert check_image("ghcr.io/org/smglm:0.1.0", session=boto_session) is None
    parts = parse_ecr_uri(f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/team/glm:v2")
    assert parts == {
        "account": ACCOUNT,
        "region": "eu-west-1",
        "repo": "team/glm",
        "tag": "v2",
        "digest": None,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_ecr_uri("docker.io/library/python:3.11") is None
