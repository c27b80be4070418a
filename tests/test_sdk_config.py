"""The SageMaker SDK's config file ("intelligent defaults"), read by smglm without the SDK.

Files live in temporary folders, found through the SDK's override variables
(``SAGEMAKER_ADMIN_CONFIG_OVERRIDE``/``SAGEMAKER_USER_CONFIG_OVERRIDE``) or its default
locations (XDG folders pointed at a temporary one).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from aws_harness import REGION, push_image
from helpers import check_against_model
from smglm.config import JobConfig
from smglm.errors import ConfigError
from smglm.launch import processing
from smglm.launch.sagemaker import SageMakerBackend
from smglm.launch.sdk_config import (
    _fallback_dirs,
    apply_sdk_defaults,
    default_config_paths,
    load_sdk_defaults,
)
from smglm.launch.spec import Channel, JobSpec

pytest_plugins = ["aws_harness"]

ROLE = "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole-admin"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"

ADMIN = f"""\
SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      Session:
        DefaultS3Bucket: corp-ml-bucket
        DefaultS3ObjectKeyPrefix: team/pricing
  TrainingJob:
    RoleArn: {ROLE}
    VpcConfig:
      Subnets: [subnet-0a1b2c3d4e5f67890]
      SecurityGroupIds: [sg-0123456789abcdef0]
    EnableNetworkIsolation: true
    EnableInterContainerTrafficEncryption: true
    OutputDataConfig:
      KmsKeyId: alias/admin-output
    ResourceConfig:
      VolumeKmsKeyId: {KEY_ARN}
    Tags:
      - {{Key: cost-center, Value: '1234'}}
      - {{Key: owner, Value: admin}}
    Environment:
      HTTPS_PROXY: http://proxy.internal:3128
      NO_PROXY: 169.254.169.254
  ProcessingJob:
    NetworkConfig:
      EnableInterContainerTrafficEncryption: true
      VpcConfig:
        Subnets: [subnet-0fedcba9876543210]
        SecurityGroupIds: [sg-0fedcba9876543210]
    ProcessingOutputConfig:
      KmsKeyId: alias/admin-processing
    ProcessingResources:
      ClusterConfig:
        VolumeKmsKeyId: {KEY_ARN}
    Tags:
      - {{Key: cost-center, Value: '1234'}}
"""

USER = """\
SchemaVersion: '1.0'
SageMaker:
  TrainingJob:
    OutputDataConfig:
      KmsKeyId: alias/user-output
    Tags:
      - {Key: owner, Value: me}
    Environment:
      NO_PROXY: localhost
"""


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """An admin and a user file, found through the override variables."""
    admin = tmp_path / "admin" / "config.yaml"
    user = tmp_path / "user.yaml"
    admin.parent.mkdir()
    admin.write_text(ADMIN)
    user.write_text(USER)
    monkeypatch.setenv("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", str(admin.parent))  # a folder
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(user))  # a file
    return admin, user


@pytest.fixture(autouse=True)
def no_default_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default locations point at empty temporary folders (not this machine's files)."""
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg-site"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-user"))
    for name in ("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", "SAGEMAKER_USER_CONFIG_OVERRIDE"):
        monkeypatch.delenv(name, raising=False)


# -- locations and merging -----------------------------------------------------------------------
def test_user_file_overrides_the_admins_mappings_merge_and_lists_are_replaced(files):
    admin, user = files
    d = load_sdk_defaults()
    assert d.source == (str(admin), str(user))
    job = d.get("SageMaker", "TrainingJob")
    assert job["OutputDataConfig"]["KmsKeyId"] == "alias/user-output"  # user wins
    assert job["ResourceConfig"]["VolumeKmsKeyId"] == KEY_ARN  # admin's kept
    assert job["Environment"] == {  # mappings merge key by key
        "HTTPS_PROXY": "http://proxy.internal:3128",
        "NO_PROXY": "localhost",
    }
    assert job["Tags"] == [{"Key": "owner", "Value": "me"}]  # a list is replaced whole
    assert d.origin("SageMaker", "TrainingJob", "Tags") == str(user)
    assert d.origin("SageMaker", "TrainingJob", "Environment", "HTTPS_PROXY") == str(admin)
    assert d.origin("SageMaker", "TrainingJob", "VpcConfig", "Subnets") == str(admin)
    assert (d.default_s3_bucket, d.default_s3_object_key_prefix) == (
        "corp-ml-bucket",
        "team/pricing",
    )


def test_default_locations_are_the_sdks_and_a_missing_one_is_skipped(tmp_path):
    site, user = default_config_paths()
    assert site == tmp_path / "xdg-site" / "sagemaker" / "config.yaml"
    assert user == tmp_path / "xdg-user" / "sagemaker" / "config.yaml"
    fallback = _fallback_dirs()  # without platformdirs: the same answers
    assert (fallback[0] / "config.yaml", fallback[1] / "config.yaml") == (site, user)
    assert load_sdk_defaults().source == ()  # no file: nothing, no error
    user.parent.mkdir(parents=True)
    user.write_text(USER)
    assert load_sdk_defaults().source == (str(user),)


def test_an_override_that_names_nothing_or_s3_is_an_error_naming_the_variable(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError) as info:
        load_sdk_defaults()
    assert info.value.fields == ["SAGEMAKER_USER_CONFIG_OVERRIDE"]
    assert "missing.yaml" in str(info.value)
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", "s3://bucket/sagemaker/")
    with pytest.raises(ConfigError, match="copy the file here"):
        load_sdk_defaults()


# -- bad files -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("SageMaker: [unclosed", "", "not valid YAML"),
        ("- a list\n", "", "must be a mapping"),
        ("SageMaker: {}\n", "SchemaVersion", "must be '1.0'"),
        ("SchemaVersion: '2.0'\n", "SchemaVersion", "got '2.0'"),
        (
            "SchemaVersion: '1.0'\nSageMaker:\n  TrainingJob:\n    VpcConfig:\n"
            "      Subnets: subnet-1\n",
            "SageMaker.TrainingJob.VpcConfig.Subnets",
            "a list of strings",
        ),
        (
            "SchemaVersion: '1.0'\nSageMaker:\n  TrainingJob:\n    EnableNetworkIsolation: 'yes'\n",
            "SageMaker.TrainingJob.EnableNetworkIsolation",
            "true or false",
        ),
        (
            "SchemaVersion: '1.0'\nSageMaker:\n  TrainingJob:\n    Tags: {owner: me}\n",
            "SageMaker.TrainingJob.Tags",
            "{Key: ..., Value: ...}",
        ),
        (
            "SchemaVersion: '1.0'\nSageMaker:\n  TrainingJob:\n    Environment: {N: 1}\n",
            "SageMaker.TrainingJob.Environment",
            "mapping of variable names to strings",
        ),
        (
            "SchemaVersion: '1.0'\nSageMaker:\n  TrainingJob:\n    RoleArn: MyRole\n",
            "SageMaker.TrainingJob.RoleArn",
            "IAM role ARN",
        ),
        (
            "SchemaVersion: '1.0'\nSageMaker:\n  TrainingJob: [1]\n",
            "SageMaker.TrainingJob",
            "must be a mapping",
        ),
    ],
)
def test_a_bad_file_is_an_error_naming_the_file_and_the_key(
    tmp_path, monkeypatch, text, field, words
):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    monkeypatch.setenv("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", str(path))
    with pytest.raises(ConfigError) as info:
        load_sdk_defaults()
    assert field in info.value.fields, str(info.value)
    assert words in str(info.value) and str(path) in str(info.value)


def test_a_value_jobconfig_refuses_names_the_files_key(tmp_path, monkeypatch):
    path = tmp_path / "config.yaml"
    path.write_text(
        "SchemaVersion: '1.0'\nSageMaker:\n  TrainingJob:\n    VpcConfig:\n"
        "      Subnets: [vpc-123]\n      SecurityGroupIds: [sg-1]\n"
    )
    monkeypatch.setenv("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", str(path))
    with pytest.raises(ConfigError) as info:
        apply_sdk_defaults(JobConfig())
    assert info.value.fields == ["SageMaker.TrainingJob.VpcConfig.Subnets"]
    assert str(path) in str(info.value) and "subnet-0123456789abcdef0" in str(info.value)
    path.write_text(  # half a VPC: the missing key is named, in the file
        "SchemaVersion: '1.0'\nSageMaker:\n  TrainingJob:\n    VpcConfig:\n"
        "      Subnets: [subnet-123]\n"
    )
    with pytest.raises(ConfigError) as info:
        apply_sdk_defaults(JobConfig())
    assert info.value.fields == ["SageMaker.TrainingJob.VpcConfig.SecurityGroupIds"]
    assert str(path) in str(info.value) and "needs both" in str(info.value)
    path.write_text(  # a setting a Spark job cannot have
        "SchemaVersion: '1.0'\nSageMaker:\n  ProcessingJob:\n    NetworkConfig:\n"
        "      EnableNetworkIsolation: true\n"
    )
    with pytest.raises(ConfigError) as info:
        apply_sdk_defaults(JobConfig(engine="spark"))
    assert info.value.fields == ["SageMaker.ProcessingJob.NetworkConfig.EnableNetworkIsolation"]


# -- applying ------------------------------------------------------------------------------------
def test_defaults_fill_what_the_jobconfig_left_and_say_so(files):
    admin, user = files
    jc, notes = apply_sdk_defaults(JobConfig(tags={"owner": "explicit"}))
    assert jc.role == ROLE
    assert jc.subnets == ["subnet-0a1b2c3d4e5f67890"]
    assert jc.security_group_ids == ["sg-0123456789abcdef0"]
    assert jc.enable_network_isolation and jc.encrypt_inter_container_traffic
    assert jc.output_kms_key == "alias/user-output" and jc.volume_kms_key == KEY_ARN
    assert jc.tags == {"owner": "explicit"}  # the user file's Tags replaced the admin's
    assert jc.environment == {"HTTPS_PROXY": "http://proxy.internal:3128", "NO_PROXY": "localhost"}
    text = "\n".join(notes)
    assert len(notes) == 2 and str(admin) in notes[0] and str(user) in notes[1]
    assert "subnets (VpcConfig.Subnets)" in notes[0] and "role (RoleArn)" in notes[0]
    assert "output_kms_key (OutputDataConfig.KmsKeyId)" in notes[1]
    assert "HTTPS_PROXY" in notes[0] and "NO_PROXY" in notes[1]
    assert KEY_ARN not in text and "proxy.internal" not in text  # names, not values


def test_explicit_values_win_and_tags_and_environment_merge_per_key(files):
    explicit = JobConfig(
        role="arn:aws:iam::123456789012:role/mine",
        subnets=["subnet-0000000000000000a"],
        security_group_ids=["sg-0000000000000000a"],
        output_kms_key="alias/mine",
        environment={"NO_PROXY": "mine", "EXTRA": "1"},
        tags={"project": "motor"},
    )
    jc, _ = apply_sdk_defaults(explicit)
    assert jc.role == explicit.role and jc.subnets == explicit.subnets
    assert jc.security_group_ids == explicit.security_group_ids
    assert jc.output_kms_key == "alias/mine"
    assert jc.environment == {
        "NO_PROXY": "mine",
        "EXTRA": "1",
        "HTTPS_PROXY": "http://proxy.internal:3128",
    }
    assert jc.tags == {"project": "motor", "owner": "me"}
    nothing = JobConfig(**{**jc.to_dict()})
    assert apply_sdk_defaults(nothing) == (nothing, [])  # all there already: no lines


def test_a_spark_job_reads_the_processing_job_section(files):
    jc, notes = apply_sdk_defaults(JobConfig(engine="spark"))
    assert jc.subnets == ["subnet-0fedcba9876543210"]
    assert jc.security_group_ids == ["sg-0fedcba9876543210"]
    assert jc.encrypt_inter_container_traffic and not jc.enable_network_isolation
    assert jc.output_kms_key == "alias/admin-processing" and jc.volume_kms_key == KEY_ARN
    assert jc.tags == {"cost-center": "1234"} and jc.role is None and jc.environment == {}
    assert "ProcessingOutputConfig.KmsKeyId" in notes[0]
    spec = JobSpec(  # the processing request with the admin's defaults: valid for botocore
        name="smglm-spark-defaults",
        image_uri="img",
        output_path="s3://bucket/jobs",
        channels=(Channel("train", "s3://bucket/data/"), Channel("config", "s3://bucket/cfg/")),
        role_arn=ROLE,
        hyperparameters={"engine": "spark"},
        tags=jc.tags,
        subnets=tuple(jc.subnets),
        security_group_ids=tuple(jc.security_group_ids),
        inter_container_encryption=jc.encrypt_inter_container_traffic,
        volume_kms_key=jc.volume_kms_key,
        output_kms_key=jc.output_kms_key,
    )
    request = processing.processing_request(spec, image_uri=processing.spark_image_uri(REGION))
    check_against_model(request, "CreateProcessingJob")
    assert request["NetworkConfig"]["VpcConfig"]["Subnets"] == ["subnet-0fedcba9876543210"]


def test_no_file_no_change(tmp_path):
    jc = JobConfig()
    assert apply_sdk_defaults(jc) == (jc, [])


def test_reading_and_applying_never_imports_the_sdk(files):
    code = textwrap.dedent(
        """
        import json, sys
        from smglm.config import JobConfig
        from smglm.launch.sdk_config import apply_sdk_defaults
        jc, notes = apply_sdk_defaults(JobConfig())
        print(json.dumps([jc.role, len(notes), sorted(m for m in sys.modules
                          if m == "sagemaker" or m.startswith("sagemaker."))]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [ROLE, 2, []]


# -- on the sagemaker backend ------------------------------------------------------------------
def test_train_on_sagemaker_sends_the_admins_defaults(aws, boto_session, files, capsys):
    import pandas as pd

    import smglm

    sent: list[dict[str, Any]] = []
    boto_session.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob",
        lambda params, **_: sent.append(json.loads(json.dumps(params))),
    )
    frame = pd.DataFrame({"x": [0.1, 0.2, 0.3, 0.4] * 10, "y": [0, 1, 2, 1] * 10})
    smglm.train(
        {"target": "y", "predictors": ["x"], "family": "poisson"},
        frame,
        backend=SageMakerBackend(session=boto_session),
        image_uri=push_image(boto_session),
        tracking=False,
        tags={"project": "motor"},
    )
    (request,) = sent
    check_against_model(request, "CreateTrainingJob")
    assert request["RoleArn"] == ROLE  # the file's, before Studio's or the caller's role
    assert request["VpcConfig"] == {
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "Subnets": ["subnet-0a1b2c3d4e5f67890"],
    }
    assert request["EnableNetworkIsolation"] is True
    assert request["OutputDataConfig"]["KmsKeyId"] == "alias/user-output"
    assert request["ResourceConfig"]["VolumeKmsKeyId"] == KEY_ARN
    tags = {t["Key"]: t["Value"] for t in request["Tags"]}
    assert tags["project"] == "motor" and tags["owner"] == "me"
    assert request["Environment"]["HTTPS_PROXY"] == "http://proxy.internal:3128"
    # the inputs went to the config's DefaultS3Bucket (created, as the SDK creates it)
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in request["InputDataConfig"]
    }
    assert channels["train"].startswith("s3://corp-ml-bucket/team/pricing/smglm/inputs/")
    out = capsys.readouterr().out
    assert (
        "[smglm] SageMaker SDK defaults (SageMaker.TrainingJob) from" in out
        and "subnets (VpcConfig.Subnets)" in out
    )
