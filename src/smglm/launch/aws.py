"""AWS resolution for the SageMaker backend: region, account, execution role and bucket.

Each value is resolved as SageMaker Studio users expect, first match wins:

- region: the argument, ``JobConfig.region``, the boto3 session's region (``AWS_DEFAULT_REGION``
  or the profile's), else an error naming ``AWS_DEFAULT_REGION``;
- role: the argument, ``JobConfig.role``, Studio's ``/opt/ml/metadata/resource-metadata.json``
  ``ExecutionRoleArn``, else the caller's STS assumed-role ARN mapped to its IAM role ARN (with
  its path, e.g. ``/service-role/``). An IAM user is not a role: that is an error saying how to
  pass ``role=``;
- bucket: the argument, ``JobConfig.bucket``, else ``sagemaker-<region>-<account>``, created if
  missing with the region's LocationConstraint (as the SageMaker SDK does).

botocore's errors become :class:`AwsError` (a :class:`~smglm.errors.BackendError`) carrying the
AWS error code and message, with a hint for the common ones. boto3 is imported only when used.
The ECR image check lives in :mod:`smglm.launch.ecr`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smglm.errors import BackendError, ConfigError, Issue, MissingDependency

if TYPE_CHECKING:
    from smglm.config.job import JobConfig

__all__ = [
    "STUDIO_METADATA_PATH",
    "AwsError",
    "AwsTarget",
    "account_id",
    "aws_call",
    "boto3_session",
    "default_bucket_name",
    "ensure_bucket",
    "resolve_bucket",
    "resolve_region",
    "resolve_role",
    "resolve_target",
]

log = logging.getLogger(__name__)

#: Where SageMaker Studio (and notebook instances) describe the running app; read at call time,
#: so tests may point it elsewhere.
STUDIO_METADATA_PATH = Path("/opt/ml/metadata/resource-metadata.json")

_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
_ASSUMED_RE = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.+$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

_HINTS = {
    "AccessDenied": "the AWS identity in use lacks a permission this call needs; ask your "
    "administrator, or use a role with the AmazonSageMakerFullAccess policy",
    "ValidationException": "AWS rejected a value of the request; the message above names it "
    "(a job name already used, a bad role ARN, an image in another region, ...)",
    "ResourceLimitExceeded": "an account quota is reached (instances of this type for training "
    "jobs, or concurrent jobs): choose another instance_type, wait for running jobs to end, or "
    "request an increase in the Service Quotas console (Amazon SageMaker)",
    "ExpiredToken": "the credentials have expired: refresh them (e.g. `aws sso login`)",
    "InvalidClientTokenId": "the access key is not valid: check the credentials in use",
    "UnrecognizedClientException": "the access key is not valid: check the credentials in use",
    "ThrottlingException": "AWS is throttling the requests: retry in a moment",
    "ResourceInUse": "a training job of this name exists already (names are unique per account "
    "and region, even for ended jobs): choose another job_name",
}
_HINT_ALIASES = {
    "AccessDeniedException": "AccessDenied",
    "UnauthorizedOperation": "AccessDenied",
    "ExpiredTokenException": "ExpiredToken",
    "Throttling": "ThrottlingException",
}


class AwsError(BackendError):
    """An AWS call failed; ``code`` and ``aws_message`` are AWS's error code and message."""

    def __init__(self, action: str, code: str, aws_message: str) -> None:
        self.action = action
        self.code = code
        self.aws_message = aws_message
        hint = _HINTS.get(_HINT_ALIASES.get(code, code))
        text = f"{action} failed: {code}: {aws_message}"
        super().__init__(f"{text}. Hint: {hint}" if hint else text)


@contextlib.contextmanager
def aws_call(action: str) -> Iterator[None]:
    """Turn botocore's errors raised in the block into :class:`AwsError` / BackendError.

    Parameters
    ----------
    action
        What was being done, for the message (``"CreateTrainingJob smglm-..."``).
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        NoRegionError,
    )

    try:
        yield
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(
            err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        )
        raise AwsError(action, code, str(err.get("Message") or exc)) from exc
    except NoCredentialsError as exc:
        raise BackendError(
            f"{action} failed: no AWS credentials found; in SageMaker Studio they come with "
            "the execution role, elsewhere configure them (`aws configure`, `aws sso login`, "
            "or the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY environment variables)"
        ) from exc
    except NoRegionError as exc:
        raise ConfigError([_no_region_issue()]) from exc
    except BotoCoreError as exc:
        raise BackendError(f"{action} failed: {exc}") from exc


def boto3_session(session: Any | None = None, region: str | None = None) -> Any:
    """``session`` itself, or a new ``boto3.Session`` (in ``region`` when given)."""
    if session is not None:
        return session
    try:
        import boto3
    except ImportError:
        raise MissingDependency("boto3", "aws", "the SageMaker backend") from None
    return boto3.Session(region_name=region) if region else boto3.Session()


def _no_region_issue() -> Issue:
    return Issue(
        "region",
        "no AWS region is set: pass region='eu-west-1' (for example), set JobConfig.region, "
        "or set the AWS_DEFAULT_REGION environment variable (or a region in ~/.aws/config)",
    )


def resolve_region(
    region: str | None = None, job: JobConfig | None = None, *, session: Any | None = None
) -> str:
    """The AWS region: ``region``, ``job.region``, the boto3 session's region, else an error.

    Raises
    ------
    ConfigError
        Naming ``region`` (and ``AWS_DEFAULT_REGION``) when none is found or one is malformed.
    """
    value = region or (job.region if job is not None else None)
    if not value:
        value = boto3_session(session).region_name
    if not value:
        raise ConfigError([_no_region_issue()])
    if not _REGION_RE.match(value):
        raise ConfigError(
            [Issue("region", f"{value!r} is not an AWS region name such as 'us-east-1'", value)]
        )
    return str(value)


def account_id(session: Any | None = None) -> str:
    """The AWS account of the credentials in use (STS GetCallerIdentity)."""
    return str(_caller_identity(boto3_session(session))["Account"])


def _caller_identity(session: Any) -> dict[str, Any]:
    with aws_call("STS GetCallerIdentity"):
        identity: dict[str, Any] = session.client("sts").get_caller_identity()
    return identity


def resolve_role(
    role: str | None = None,
    job: JobConfig | None = None,
    *,
    session: Any | None = None,
    metadata_path: Path | str | None = None,
) -> str:
    """The SageMaker execution role's ARN, resolved as Studio users expect (module docstring).

    Parameters
    ----------
    role, job
        An explicit role (ARN or role name) and the JobConfig whose ``role`` comes next.
    session
        The boto3 session for STS and IAM (default: a new one).
    metadata_path
        Studio's resource-metadata file (default :data:`STUDIO_METADATA_PATH`).

    Raises
    ------
    ConfigError
        Naming ``role`` when the identity is an IAM user or root (not a role), or a value given
        is neither a role ARN nor a role name.
    """
    given = role or (job.role if job is not None else None)
    if given:
        return _as_role_arn(given, session)
    path = Path(metadata_path) if metadata_path is not None else STUDIO_METADATA_PATH
    studio_role = _studio_role(path)
    if studio_role:
        log.info("execution role from %s: %s", path, studio_role)
        return studio_role
    session = boto3_session(session)
    arn = str(_caller_identity(session)["Arn"])
    if _ASSUMED_RE.match(arn):
        return _role_from_assumed(arn, session)
    kind = (
        "an IAM user"
        if ":user/" in arn
        else "the account's root user"
        if arn.endswith(":root")
        else "not an IAM role"
    )
    raise ConfigError(
        [
            Issue(
                "role",
                f"no SageMaker execution role found: the AWS identity in use ({arn}) is {kind}, "
                "and SageMaker needs an IAM role it can assume. Pass "
                "role='arn:aws:iam::<account>:role/<name>' (or set JobConfig.role) to a role "
                "that trusts sagemaker.amazonaws.com, e.g. an AmazonSageMaker-ExecutionRole",
                arn,
            )
        ]
    )


def _studio_role(path: Path) -> str | None:
    try:
        text = path.read_text("utf-8")
    except OSError:
        return None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError:
        log.warning("ignoring %s: not JSON", path)
        return None
    value = meta.get("ExecutionRoleArn") if isinstance(meta, dict) else None
    return str(value) if value else None


def _as_role_arn(value: str, session: Any | None) -> str:
    if _ROLE_ARN_RE.match(value):
        return value
    if _ASSUMED_RE.match(value):
        return _role_from_assumed(value, boto3_session(session))
    if value.startswith("arn:") or "/" in value:
        raise ConfigError(
            [
                Issue(
                    "role",
                    f"{value!r} is not an IAM role: give a role ARN "
                    "('arn:aws:iam::<account>:role/<name>') or a role name",
                    value,
                )
            ]
        )
    iam = boto3_session(session).client("iam")
    try:
        with aws_call(f"IAM GetRole {value}"):
            return str(iam.get_role(RoleName=value)["Role"]["Arn"])
    except AwsError as exc:
        if exc.code == "NoSuchEntity":
            raise ConfigError(
                [Issue("role", f"no IAM role named {value!r} in this account", value)]
            ) from exc
        raise


def _role_from_assumed(arn: str, session: Any) -> str:
    """``arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`` -> the role's IAM ARN (with its path)."""
    match = _ASSUMED_RE.match(arn)
    assert match is not None
    partition, account, name = match.groups()
    try:
        with aws_call(f"IAM GetRole {name}"):
            return str(session.client("iam").get_role(RoleName=name)["Role"]["Arn"])
    except AwsError as exc:
        if exc.code not in ("AccessDenied", "AccessDeniedException"):
            raise
        # Studio roles often may not call iam:GetRole; the SDK then guesses the path the same way.
        path = "service-role/" if name.startswith("AmazonSageMaker-ExecutionRole") else ""
        guess = f"arn:{partition}:iam::{account}:role/{path}{name}"
        log.warning("iam:GetRole is not allowed (%s); assuming role ARN %s", exc.code, guess)
        return guess


def default_bucket_name(region: str, account: str) -> str:
    """SageMaker's default bucket: ``sagemaker-<region>-<account>``."""
    return f"sagemaker-{region}-{account}"


def resolve_bucket(
    bucket: str | None = None,
    job: JobConfig | None = None,
    *,
    session: Any | None = None,
    region: str | None = None,
    create: bool = True,
) -> str:
    """The S3 bucket for inputs and outputs: ``bucket``, ``job.bucket``, else SageMaker's default.

    The default bucket ``sagemaker-<region>-<account>`` is created when missing (``create``);
    a bucket named explicitly is used as it is.

    Raises
    ------
    ConfigError
        Naming ``bucket`` when the value is not a bucket name (e.g. an ``s3://`` URI).
    """
    given = bucket or (job.bucket if job is not None else None)
    if given:
        if not _BUCKET_RE.match(given):
            raise ConfigError(
                [
                    Issue(
                        "bucket",
                        f"{given!r} is not an S3 bucket name (3-63 characters of [a-z0-9.-]; "
                        "no 's3://' and no key prefix: set prefix= for that)",
                        given,
                    )
                ]
            )
        return given
    session = boto3_session(session)
    region = resolve_region(region, job, session=session)
    name = default_bucket_name(region, account_id(session))
    if create:
        ensure_bucket(name, region, session=session)
    return name


def sdk_session_defaults() -> tuple[str | None, str | None]:
    """The SageMaker Python SDK config's ``SageMaker.PythonSDK.Modules.Session``
    ``DefaultS3Bucket`` and ``DefaultS3ObjectKeyPrefix`` (None where not set), read by
    :func:`smglm.launch.sdk_config.load_sdk_defaults` (the one reader of the SDK's files)."""
    from smglm.launch.sdk_config import load_sdk_defaults

    defaults = load_sdk_defaults()
    return defaults.default_s3_bucket, defaults.default_s3_object_key_prefix


def storage_base(
    job: JobConfig,
    *,
    session: Any | None = None,
    region: str | None = None,
    output_path: str | None = None,
) -> str:
    """``s3://<bucket>/<prefix>``, smglm's base in S3 (inputs under ``inputs/``, and jobs
    under ``jobs/`` when no ``output_path`` is given), as the SageMaker SDK chooses a bucket:

    1. ``job.bucket`` with ``job.prefix``;
    2. the SDK config's ``DefaultS3Bucket`` (created when missing, as the SDK does) with
       ``<DefaultS3ObjectKeyPrefix>/<job.prefix>``;
    3. ``output_path``'s bucket (when an ``s3://`` one is given) with ``job.prefix``;
    4. SageMaker's default bucket ``sagemaker-<region>-<account>`` (created when missing) with
       ``<DefaultS3ObjectKeyPrefix>/<job.prefix>``.
    """
    sdk_bucket, sdk_prefix = sdk_session_defaults()
    parts: list[str]
    if job.bucket:
        bucket, parts = resolve_bucket(None, job, session=session, region=region), [job.prefix]
    elif sdk_bucket:
        # created when missing, as the SDK's Session.default_bucket() does with the config's
        bucket, parts = resolve_bucket(sdk_bucket, session=session), [sdk_prefix or "", job.prefix]
        session = boto3_session(session)
        ensure_bucket(bucket, resolve_region(region, job, session=session), session=session)
    elif output_path and output_path.startswith("s3://"):
        from smglm.launch.storage import split_s3

        bucket, parts = split_s3(output_path)[0], [job.prefix]
    else:
        bucket = resolve_bucket(None, job, session=session, region=region)
        parts = [sdk_prefix or "", job.prefix]
    prefix = "/".join(p.strip("/") for p in parts if p.strip("/"))
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def ensure_bucket(name: str, region: str, *, session: Any | None = None) -> bool:
    """Create bucket ``name`` in ``region`` unless it exists; return whether it was created."""
    s3 = boto3_session(session).client("s3", region_name=region)
    try:
        with aws_call(f"S3 HeadBucket {name}"):
            s3.head_bucket(Bucket=name)
        return False
    except AwsError as exc:
        if exc.code not in ("404", "NoSuchBucket", "NotFound"):
            if exc.code in ("403", "AccessDenied"):
                raise BackendError(
                    f"bucket {name!r} exists but this identity may not use it (403); it may "
                    "belong to another account: pass bucket= (or set JobConfig.bucket)"
                ) from exc
            raise
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        with aws_call(f"S3 CreateBucket {name}"):
            s3.create_bucket(**kwargs)
    except AwsError as exc:
        if exc.code in ("BucketAlreadyOwnedByYou", "OperationAborted"):
            return False  # created meanwhile by another call
        raise
    log.info("created S3 bucket %s in %s", name, region)
    return True


@dataclass(frozen=True)
class AwsTarget:
    """Where a SageMaker job goes: region, account, execution role and bucket."""

    region: str
    account: str
    role_arn: str
    bucket: str


def resolve_target(
    job: JobConfig | None = None,
    *,
    session: Any | None = None,
    metadata_path: Path | str | None = None,
    create_bucket: bool = True,
) -> AwsTarget:
    """Region, account, role and bucket for ``job``, each resolved as described above."""
    session = boto3_session(session, job.region if job is not None else None)
    region = resolve_region(None, job, session=session)
    role = resolve_role(None, job, session=session, metadata_path=metadata_path)
    bucket = resolve_bucket(None, job, session=session, region=region, create=create_bucket)
    return AwsTarget(region=region, account=account_id(session), role_arn=role, bucket=bucket)
