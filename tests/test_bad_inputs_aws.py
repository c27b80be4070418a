"""The bad-input table, entry "aws settings": JobConfig fields and their AWS resolution.

Each case is a call into what resolves a job's AWS settings (``JobConfig``, the resolvers of
:mod:`smglm.launch.aws`, the ECR check, the SageMaker backend's pre-launch checks, storage
URIs, the secrets of a job's environment) that needs no AWS account: a clear error (smglm's
class, a message naming the field and the value) or a correct accept. Credentials in a URI
are refused (S3) or redacted (a tracking URI), and never appear in a message.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest

from bad_inputs import Case, ids
from smglm.config import JobConfig
from smglm.errors import BackendError, ConfigError
from smglm.launch import aws
from smglm.launch.ecr import check_image
from smglm.launch.inputs import upload_data
from smglm.launch.sagemaker import SageMakerBackend
from smglm.launch.spec import Channel, JobSpec
from smglm.launch.storage import open_storage, split_s3
from smglm.redaction import split_secrets
from smglm.tracking.runs import job_env


class _NoAwsSession:
    """A boto3 session stand-in with no region and no client: a case that reaches AWS fails."""

    region_name = None

    def client(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("this case must not call AWS")


def _job(**fields: Any) -> Callable[[], Any]:
    return lambda: JobConfig(**fields)


def _sagemaker_launch(**spec: Any) -> Callable[[], Any]:
    def call() -> None:
        backend = SageMakerBackend(session=_NoAwsSession(), region="us-east-1")
        backend.launch(
            JobSpec(
                **{
                    "name": "smglm-1",
                    "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/smglm:1",
                    "output_path": "s3://bucket/p",
                    "channels": (Channel("train", "s3://bucket/in/"),),
                    "role_arn": "arn:aws:iam::123456789012:role/R",
                    **spec,
                }
            )
        )

    return call


def _public_env(uri: str) -> Callable[[], Any]:
    def call() -> dict[str, str]:
        public, secret = split_secrets({"MLFLOW_TRACKING_URI": uri, "AWS_SESSION_TOKEN": "tok3n-v"})
        assert "AWS_SESSION_TOKEN" not in public and secret["AWS_SESSION_TOKEN"] == "tok3n-v"
        return public

    return call


SECRET = "s3cretKEY42"

CASES: list[Case] = [
    # JobConfig fields
    Case("instance-type-no-ml-prefix", "aws settings", _job(instance_type="m5.xlarge"),
         "is not a SageMaker instance type"),
    Case("instance-type-no-size", "aws settings", _job(instance_type="ml.m5"),
         "is not a SageMaker instance type"),
    Case("instance-type-upper-case", "aws settings", _job(instance_type="ML.M5.XLARGE"),
         "is not a SageMaker instance type"),
    Case("instance-count-two", "aws settings", _job(instance_count=2),
         "instance_count: a glum training job runs on one instance; got 2"),
    Case("volume-zero", "aws settings", _job(volume_size_gb=0), "volume_size_gb: must be >= 1"),
    Case("max-run-zero", "aws settings", _job(max_runtime_seconds=0),
         "max_runtime_seconds: must be >= 1"),
    Case("max-run-over-28-days", "aws settings", _job(max_runtime_seconds=29 * 86400),
         "max_runtime_seconds: must be <= 2419200"),
    Case("max-run-as-text", "aws settings", _job(max_runtime_seconds="1h"),
         "max_runtime_seconds: must be an integer"),
    Case("job-name-leading-dash", "aws settings", _job(job_name="-freq"),
         "is not a valid training job name"),
    Case("job-name-64-chars", "aws settings", _job(job_name="a" * 64),
         "is not a valid training job name"),
    Case("job-name-underscore", "aws settings", _job(job_name="freq_v1"),
         "is not a valid training job name"),
    Case("output-path-local", "aws settings", _job(output_path="/tmp/out"),
         "output_path: must be an s3:// or file:// URI"),
    Case("max-cost-negative", "aws settings", _job(max_cost=-1), "max_cost: must be > 0"),
    Case("backend-empty", "aws settings", _job(backend=""), "backend"),
    Case("field-misspelt", "aws settings", _job(instanc_type="ml.m5.xlarge"),
         "unknown field 'instanc_type'"),
    Case("tag-not-a-string", "aws settings", _job(tags={"team": 1}), "tags.team: must be a string"),
    Case("jobconfig-defaults", "aws settings", _job(), None),
    # region
    Case("region-malformed", "aws settings",
         lambda: aws.resolve_region("us-east", session=_NoAwsSession()),
         "is not an AWS region name"),
    Case("region-upper-case", "aws settings",
         lambda: aws.resolve_region("US-EAST-1", session=_NoAwsSession()),
         "is not an AWS region name"),
    Case("region-none-anywhere", "aws settings",
         lambda: aws.resolve_region(None, JobConfig(), session=_NoAwsSession()),
         "AWS_DEFAULT_REGION"),
    Case("region-from-jobconfig", "aws settings",
         lambda: aws.resolve_region(None, JobConfig(region="eu-west-3"), session=_NoAwsSession()),
         None),
    # role
    Case("role-arn-short-account", "aws settings",
         lambda: aws.resolve_role("arn:aws:iam::123:role/x", session=_NoAwsSession()),
         "is not an IAM role"),
    Case("role-arn-of-a-user", "aws settings",
         lambda: aws.resolve_role("arn:aws:iam::123456789012:user/bob", session=_NoAwsSession()),
         "is not an IAM role"),
    Case("role-with-slash", "aws settings",
         lambda: aws.resolve_role("service-role/x", session=_NoAwsSession()),
         "is not an IAM role"),
    Case("role-arn-s3", "aws settings",
         lambda: aws.resolve_role("arn:aws:s3:::bucket", session=_NoAwsSession()),
         "is not an IAM role"),
    Case("role-arn-with-path", "aws settings",
         lambda: aws.resolve_role(
             "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole-1",
             session=_NoAwsSession()),
         None),
    Case("role-arn-china-partition", "aws settings",
         lambda: aws.resolve_role("arn:aws-cn:iam::123456789012:role/R", session=_NoAwsSession()),
         None),
    # bucket
    Case("bucket-as-s3-uri", "aws settings",
         lambda: aws.resolve_bucket("s3://my-bucket", session=_NoAwsSession()),
         "is not an S3 bucket name"),
    Case("bucket-upper-case", "aws settings",
         lambda: aws.resolve_bucket("My_Bucket", session=_NoAwsSession()),
         "is not an S3 bucket name"),
    Case("bucket-too-short", "aws settings",
         lambda: aws.resolve_bucket("ab", session=_NoAwsSession()), "is not an S3 bucket name"),
    Case("bucket-with-prefix", "aws settings",
         lambda: aws.resolve_bucket("my-bucket/models", session=_NoAwsSession()),
         "set prefix="),
    Case("bucket-dotted", "aws settings",
         lambda: aws.resolve_bucket("my.bucket-v2", session=_NoAwsSession()), None),
    # image
    Case("image-in-another-region", "aws settings",
         lambda: check_image("123456789012.dkr.ecr.eu-west-1.amazonaws.com/smglm:1",
                             session=_NoAwsSession(), region="us-east-1"),
         "SageMaker pulls images only from the job's region"),
    Case("image-not-ecr-warns", "aws settings",
         lambda: check_image("docker.io/library/python:3.11", session=_NoAwsSession()),
         None, {"warns": "is not an Amazon ECR image"}),
    Case("sagemaker-without-image", "aws settings",
         lambda: SageMakerBackend(session=_NoAwsSession(), region="us-east-1").prepare_image(
             JobConfig(backend="sagemaker")),
         "image_uri"),
    # what SageMaker can read
    Case("sagemaker-file-channel", "aws settings",
         _sagemaker_launch(channels=(Channel("train", "file:///tmp/data/"),)),
         "SageMaker reads s3:// URIs only"),
    Case("sagemaker-file-output", "aws settings",
         _sagemaker_launch(output_path="file:///tmp/out"), "SageMaker writes to s3:// only"),
    Case("sagemaker-no-role", "aws settings", _sagemaker_launch(role_arn=None),
         "needs an execution role ARN"),
    # S3 URIs
    Case("s3-uri-no-bucket", "aws settings", lambda: split_s3("s3:///key"), "not an s3:// URI"),
    Case("s3-uri-http", "aws settings", lambda: split_s3("https://bucket.s3.amazonaws.com/k"),
         "not an s3:// URI"),
    Case("storage-ftp", "aws settings", lambda: open_storage("ftp://host/x"),
         "must be s3:// or file://"),
    Case("s3-uri-with-credentials", "aws settings",
         lambda: split_s3(f"s3://AKIAEXAMPLE:{SECRET}@bucket/key"), "must not carry credentials"),
    Case("data-uri-with-credentials", "aws settings",
         lambda: upload_data(f"s3://AKIAEXAMPLE:{SECRET}@bucket/data.csv", "s3://bucket/p",
                             name="train"),
         "must not carry credentials"),
    Case("storage-uri-with-credentials", "aws settings",
         lambda: open_storage(f"gs://user:{SECRET}@bucket/x"), "must be s3:// or file://"),
    Case("s3-uri-plain", "aws settings", lambda: split_s3("s3://bucket/a/b.csv"), None),
    # tracking URIs with credentials: redacted wherever they are written down
    Case("tracking-uri-password-redacted", "aws settings",
         _public_env(f"https://user:{SECRET}@mlflow.example.com"), None,
         {"returns": {"MLFLOW_TRACKING_URI": "https://mlflow.example.com"}}),
    Case("tracking-uri-token-redacted", "aws settings",
         _public_env(f"https://mlflow.example.com/?token={SECRET}"), None,
         {"returns": {"MLFLOW_TRACKING_URI": "https://mlflow.example.com/?token=***"}}),
    Case("remote-job-gets-no-credentials", "aws settings",
         lambda: job_env(f"https://u:{SECRET}@mlflow.example.com", "e", "r1", remote=True),
         None, {"returns": {}}),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_aws_setting(case: Case) -> None:
    assert case.entry == "aws settings"
    if case.accepted:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            result = case.given()
        if "warns" in case.extra:
            assert any(case.extra["warns"] in str(w.message) for w in seen)
        if "returns" in case.extra:
            assert result == case.extra["returns"]
        assert SECRET not in repr(result)
        return
    with pytest.raises((ConfigError, BackendError)) as raised:
        case.given()
    message = str(raised.value)
    assert case.expect in message, message
    assert SECRET not in message  # a credential never shows, not even in an error


def test_the_table_has_enough_cases() -> None:
    assert len(CASES) >= 20
