"""The settings a production account needs: JobConfig's rules, the CreateTrainingJob and
CreateProcessingJob requests they make, and what moto's server keeps of them.

Every request here is checked against botocore's service model, strictly
(:func:`helpers.check_against_model`: botocore's own validation, then the maximums, enums
and patterns it leaves out).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aws_harness import push_image
from helpers import check_against_model
from smglm.config import JobConfig
from smglm.errors import ConfigError
from smglm.launch import processing
from smglm.launch.local import LocalBackend
from smglm.launch.sagemaker import SageMakerBackend
from smglm.launch.spec import Channel, JobSpec, merge_environment

pytest_plugins = ["aws_harness"]

ROLE = "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole-test"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/smglm:latest"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:us-east-1:123456789012:key/{KEY_ID}"
MLFLOW_ARN = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/prod"
SETTINGS = {
    "subnets": ["subnet-0a1b2c3d4e5f67890", "subnet-0fedcba9876543210"],
    "security_group_ids": ["sg-0123456789abcdef0"],
    "enable_network_isolation": True,
    "encrypt_inter_container_traffic": True,
    "volume_kms_key": KEY_ARN,
    "output_kms_key": "alias/smglm-output",
    "environment": {"HTTPS_PROXY": "http://proxy.internal:3128", "TEAM": "pricing"},
    "max_runtime_seconds": 1800,
    "use_spot": True,
    "max_wait_seconds": 3600,
    "keep_alive_seconds": 600,
}


def make_spec(**fields: Any) -> JobSpec:
    base: dict[str, Any] = {
        "name": "smglm-settings",
        "image_uri": IMAGE,
        "output_path": "s3://bucket/smglm/jobs",
        "channels": (
            Channel("train", "s3://bucket/smglm/inputs/abc/"),
            Channel("config", "s3://bucket/smglm/inputs/def/", content_type="application/json"),
        ),
        "role_arn": ROLE,
        "environment": {"MLFLOW_RUN_ID": "r1"},
        "tags": {"smglm.backend": "sagemaker"},
    }
    return JobSpec(**{**base, **fields})


def spec_settings(jc: JobConfig) -> dict[str, Any]:
    """The JobSpec fields of ``jc``'s settings, as smglm.train builds them."""
    return {
        "subnets": tuple(jc.subnets),
        "security_group_ids": tuple(jc.security_group_ids),
        "network_isolation": jc.enable_network_isolation,
        "inter_container_encryption": jc.encrypt_inter_container_traffic,
        "volume_kms_key": jc.volume_kms_key,
        "output_kms_key": jc.output_kms_key,
        "max_runtime_seconds": jc.max_runtime_seconds,
        "use_spot": jc.use_spot,
        "max_wait_seconds": jc.max_wait_seconds,
        "keep_alive_seconds": jc.keep_alive_seconds,
    }


@pytest.fixture(autouse=True)
def no_sdk_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No SageMaker SDK config file of this machine's applies (test_sdk_config.py tests them)."""
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg-site"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-user"))
    for name in ("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", "SAGEMAKER_USER_CONFIG_OVERRIDE"):
        monkeypatch.delenv(name, raising=False)


# -- JobConfig's rules -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"subnets": ["subnet-0a1b"]}, "security_group_ids", "needs both"),
        ({"security_group_ids": ["sg-0a1b"]}, "subnets", "needs both"),
        ({"subnets": ["vpc-0a1b"], "security_group_ids": ["sg-1"]}, "subnets", "subnet-0123"),
        ({"subnets": ["subnet-1"], "security_group_ids": ["0a1b"]}, "security_group_ids", "sg-"),
        ({"subnets": ["subnet-1", "subnet-1"], "security_group_ids": ["sg-1"]}, "subnets", "once"),
        (
            {"subnets": ["subnet-1"], "security_group_ids": [f"sg-{i}" for i in range(6)]},
            "security_group_ids",
            "at most 5",
        ),
        ({"volume_kms_key": "alias/volume"}, "volume_kms_key", "not an alias"),
        ({"volume_kms_key": "my key"}, "volume_kms_key", "key id"),
        ({"output_kms_key": "arn:aws:s3:::bucket"}, "output_kms_key", "alias ARN"),
        ({"environment": {"2FAST": "x"}}, "environment", "not starting with a digit"),
        ({"environment": {"A-B": "x"}}, "environment", "letters, digits and '_'"),
        ({"environment": {f"V{i}": "x" for i in range(101)}}, "environment", "at most 100"),
        ({"environment": {"A": 1}}, "environment.A", "a string"),
        ({"environment": {"A": "x" * 513}}, "environment", "at most 512"),
        ({"max_wait_seconds": 7200}, "max_wait_seconds", "without use_spot"),
        ({"use_spot": True, "max_wait_seconds": 60}, "max_wait_seconds", ">= max_runtime"),
        ({"keep_alive_seconds": 3601}, "keep_alive_seconds", "<= 3600"),
        ({"keep_alive_seconds": -1}, "keep_alive_seconds", ">= 0"),
        ({"engine": "spark", "use_spot": True}, "use_spot", "no spot capacity"),
        ({"engine": "spark", "keep_alive_seconds": 60}, "keep_alive_seconds", "no warm pools"),
        ({"engine": "spark", "enable_network_isolation": True}, "enable_network_isolation", "S3"),
        ({"engine": "spark", "environment": {"A": "x" * 257}}, "environment", "at most 256"),
        ({"engine": "spark", "max_runtime_seconds": 777601}, "max_runtime_seconds", "9 days"),
        ({"tags": {"aws:owner": "me"}}, "tags", "reserved"),
        ({"tags": {"k": "v" * 257}}, "tags", "256"),
        ({"max_run": 60, "max_runtime_seconds": 120}, "max_run", "give one of them"),
        ({"max_wait": 60, "use_spot": True}, "max_wait_seconds", ">= max_runtime"),
    ],
)
def test_each_rule_names_the_field_the_value_and_what_is_allowed(fields, field, words):
    with pytest.raises(ConfigError) as info:
        JobConfig(**fields)
    assert field in info.value.fields, str(info.value)
    assert words in str(info.value)


def test_the_settings_are_accepted_and_the_sdk_spellings_stand_for_the_fields():
    jc = JobConfig(**SETTINGS)
    assert jc.subnets == SETTINGS["subnets"] and jc.keep_alive_seconds == 600
    sdk = JobConfig(max_run=1800, max_wait=3600, use_spot=True)
    assert (sdk.max_runtime_seconds, sdk.max_wait_seconds) == (1800, 3600)
    assert JobConfig(max_run=60, max_runtime_seconds=60).max_runtime_seconds == 60
    assert JobConfig.from_yaml(jc.to_yaml()) == jc  # the round trip keeps the field names
    for key in (KEY_ID, KEY_ARN, f"mrk-{'a' * 32}"):
        assert JobConfig(volume_kms_key=key, output_kms_key=key).volume_kms_key == key
    alias_arn = "arn:aws:kms:eu-west-1:123456789012:alias/team/key"
    assert JobConfig(output_kms_key=alias_arn).output_kms_key == alias_arn


def test_train_keywords_take_the_sdk_spellings(tmp_path):
    from smglm.launch.submit import _job_config

    jc = _job_config({"max_runtime_seconds": 600}, {"max_run": 1200, "use_spot": True})
    assert (jc.max_runtime_seconds, jc.use_spot) == (1200, True)
    assert _job_config(None, {"max_wait": 4000, "use_spot": True}).max_wait_seconds == 4000
    with pytest.raises(ConfigError) as info:
        _job_config(None, {"max_waits": 1})
    assert info.value.fields == ["max_waits"] and "max_wait_seconds" in str(info.value)


# -- the training request ------------------------------------------------------------------------
def test_a_spec_without_the_settings_sends_the_same_request_as_before():
    request = make_spec().to_request()
    expected = {
        "TrainingJobName": "smglm-settings",
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [],
        },
        "HyperParameters": {},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://bucket/smglm/inputs/abc/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "InputMode": "File",
            },
            {
                "ChannelName": "config",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://bucket/smglm/inputs/def/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "application/json",
                "InputMode": "File",
            },
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/smglm/jobs"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Environment": {"MLFLOW_RUN_ID": "r1"},
        "Tags": [{"Key": "smglm.backend", "Value": "sagemaker"}],
        "RoleArn": ROLE,
    }
    assert json.dumps(request) == json.dumps(expected)  # byte for byte, key order included
    check_against_model(request, "CreateTrainingJob")
    assert JobSpec.from_request(request) == make_spec()


def test_the_settings_map_onto_create_training_job():
    jc = JobConfig(**SETTINGS)
    mlflow = {"MlflowResourceArn": MLFLOW_ARN, "MlflowExperimentName": "motor"}
    spec = make_spec(**spec_settings(jc), mlflow_config=mlflow)
    request = spec.to_request()
    check_against_model(request, "CreateTrainingJob")
    assert request["VpcConfig"] == {
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "Subnets": ["subnet-0a1b2c3d4e5f67890", "subnet-0fedcba9876543210"],
    }
    assert request["EnableNetworkIsolation"] is True
    assert request["EnableInterContainerTrafficEncryption"] is True
    assert request["EnableManagedSpotTraining"] is True
    assert request["OutputDataConfig"]["KmsKeyId"] == "alias/smglm-output"
    assert request["ResourceConfig"]["VolumeKmsKeyId"] == KEY_ARN
    assert request["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 600
    assert request["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 1800,
        "MaxWaitTimeInSeconds": 3600,
    }
    assert request["MlflowConfig"] == mlflow
    assert JobSpec.from_request(request) == spec  # and back
    assert JobSpec.from_request(json.loads(json.dumps(request))) == spec  # through JSON


def test_a_spec_refuses_half_a_vpc_and_spot_without_its_wait():
    with pytest.raises(ConfigError, match="both subnets and security_group_ids"):
        make_spec(subnets=("subnet-1",))
    with pytest.raises(ConfigError) as info:
        make_spec(use_spot=True)
    assert info.value.fields == ["max_wait_seconds"]
    with pytest.raises(ConfigError, match="only with use_spot"):
        make_spec(max_wait_seconds=7200)


def test_merge_environment_refuses_a_variable_smglm_sets_and_more_than_100():
    own = {"MLFLOW_RUN_ID": "r1", "MLFLOW_TRACKING_URI": "http://mlflow:5000"}
    assert merge_environment(own, {"TEAM": "pricing"}) == {**own, "TEAM": "pricing"}
    with pytest.raises(ConfigError) as info:
        merge_environment(own, {"MLFLOW_RUN_ID": "mine"})
    assert info.value.fields == ["environment"] and "MLFLOW_RUN_ID" in str(info.value)
    with pytest.raises(ConfigError, match="at most 100 in all"):
        merge_environment(own, {f"V{i}": "x" for i in range(99)})


def test_moto_keeps_the_settings_and_describe_gives_the_spec_back(aws, boto_session):
    sent: list[dict[str, Any]] = []
    boto_session.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob",
        lambda params, **_: sent.append(json.loads(json.dumps(params))),
    )
    backend = SageMakerBackend(session=boto_session)
    spec = make_spec(**spec_settings(JobConfig(**SETTINGS)))
    backend.launch(spec)
    (request,) = sent
    assert request == spec.to_request()  # sent as built, validated by botocore on the way
    described = backend.describe(spec.name)
    assert described["VpcConfig"] == request["VpcConfig"]
    assert described["EnableManagedSpotTraining"] is True
    assert described["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 600
    back = backend.spec(spec.name)
    # moto drops Environment (testing-aws-here.md); Describe has no Tags; the rest comes back
    for name in (*spec_settings(JobConfig(**SETTINGS)), "role_arn"):
        assert getattr(back, name) == getattr(spec, name), name


# -- the processing request (engine: spark) ------------------------------------------------------
def test_the_settings_map_onto_create_processing_job():
    fields = {k: v for k, v in SETTINGS.items() if k not in ("use_spot", "max_wait_seconds")} | {
        "engine": "spark",
        "enable_network_isolation": False,
        "keep_alive_seconds": 0,
    }
    jc = JobConfig(**fields)
    spec = make_spec(
        **spec_settings(jc),
        hyperparameters={"engine": "spark"},
        environment={"MLFLOW_RUN_ID": "r1", **jc.environment},
        tags={"team": "pricing"},
    )
    request = processing.processing_request(spec, image_uri=processing.spark_image_uri("eu-west-1"))
    check_against_model(request, "CreateProcessingJob")
    assert request["NetworkConfig"] == {
        "EnableInterContainerTrafficEncryption": True,
        "VpcConfig": {
            "SecurityGroupIds": ["sg-0123456789abcdef0"],
            "Subnets": ["subnet-0a1b2c3d4e5f67890", "subnet-0fedcba9876543210"],
        },
    }
    assert request["ProcessingOutputConfig"]["KmsKeyId"] == "alias/smglm-output"
    assert request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KEY_ARN
    assert request["Environment"]["TEAM"] == "pricing"
    assert request["Tags"] == [{"Key": "team", "Value": "pricing"}]
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800}
    plain = processing.processing_request(
        make_spec(hyperparameters={"engine": "spark"}), image_uri="img"
    )
    assert "NetworkConfig" not in plain and "KmsKeyId" not in plain["ProcessingOutputConfig"]
    with pytest.raises(ConfigError) as info:
        processing.processing_request(
            make_spec(use_spot=True, max_wait_seconds=3600, hyperparameters={"engine": "spark"}),
            image_uri="img",
        )
    assert info.value.fields == ["use_spot"]


# -- through smglm.train -------------------------------------------------------------------------
def test_train_sends_the_settings_and_merges_the_environment(aws, boto_session, capsys):
    import smglm

    sent: list[dict[str, Any]] = []
    boto_session.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob",
        lambda params, **_: sent.append(json.loads(json.dumps(params))),
    )
    backend = SageMakerBackend(session=boto_session)
    config = {"target": "y", "predictors": ["x"], "family": "poisson"}
    frame = __import__("pandas").DataFrame({"x": [0.1, 0.2, 0.3, 0.4] * 10, "y": [0, 1, 2, 1] * 10})
    settings = {k: v for k, v in SETTINGS.items() if k != "max_wait_seconds"}
    smglm.train(
        config,
        frame,
        backend=backend,
        image_uri=push_image(boto_session),
        role=ROLE,
        tracking=False,
        **settings,
    )
    (request,) = sent
    check_against_model(request, "CreateTrainingJob")
    assert request["Environment"] == SETTINGS["environment"]
    assert request["VpcConfig"]["Subnets"] == SETTINGS["subnets"]
    assert request["EnableManagedSpotTraining"] is True
    # spot without max_wait: SageMaker needs MaxWaitTimeInSeconds; it is the run time
    assert request["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 1800,
        "MaxWaitTimeInSeconds": 1800,
    }
    assert request["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 600


def test_the_local_backend_takes_the_settings_and_applies_no_sdk_defaults(tmp_path, monkeypatch):
    admin = tmp_path / "admin.yaml"
    admin.write_text(
        "SchemaVersion: '1.0'\nSageMaker:\n  TrainingJob:\n    EnableNetworkIsolation: true\n"
    )
    monkeypatch.setenv("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", str(admin))
    backend = LocalBackend(home=tmp_path / "home")
    jc = JobConfig(**SETTINGS)
    assert backend.apply_defaults(jc) == (jc, [])
    spec = make_spec(**spec_settings(jc), output_path=f"file://{tmp_path}/jobs")
    assert backend.request(spec)["EnableManagedSpotTraining"] is True  # what SageMaker would get


# -- the command line, the magic and %sm_config ------------------------------------------------
@pytest.mark.slow  # the command line tracks the job in MLflow (a local store): mlflow's import
def test_smglm_train_flags_reach_the_request(aws, boto_session, tmp_path, monkeypatch, capsys):
    from smglm.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    (tmp_path / "glm.yaml").write_text("target: y\npredictors: [x]\nfamily: poisson\n")
    (tmp_path / "data.csv").write_text("x,y\n" + "0.1,0\n0.2,1\n0.3,2\n0.4,1\n" * 10)
    image = push_image(boto_session)
    argv = ["train", "glm.yaml", "data.csv", "--backend", "sagemaker", "--image", image]
    argv += ["--role", ROLE, "--use-spot", "--max-wait", "7200", "--keep-alive", "600"]
    assert main([*argv, "--new", "--no-wait"]) == 0
    name = capsys.readouterr().out.strip().splitlines()[-1]
    described = boto_session.client("sagemaker").describe_training_job(TrainingJobName=name)
    assert described["EnableManagedSpotTraining"] is True
    assert described["StoppingCondition"]["MaxWaitTimeInSeconds"] == 7200
    assert described["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 600


def test_sm_train_flags_and_sm_config_keys_fill_the_jobconfig(tmp_path, monkeypatch):
    from IPython.core.magic_arguments import parse_argstring

    from smglm.notebook import settings
    from smglm.notebook.magics import SmglmMagics

    args = parse_argstring(
        SmglmMagics.sm_train, "--data df --use-spot --max-wait 7200 --keep-alive 600"
    )
    assert (args.use_spot, args.max_wait, args.keep_alive) == (True, 7200, 600)
    plain = parse_argstring(SmglmMagics.sm_train, "--data df")
    assert (plain.use_spot, plain.max_wait, plain.keep_alive) == (None, None, None)
    monkeypatch.setenv("SMGLM_CONFIG_FILE", str(tmp_path / "settings.yaml"))
    settings.reset_session()
    try:
        values = settings.set_values({"keep_alive_seconds": "600", "use_spot": "true"})
        jc = JobConfig(**values.job_fields())
        assert (jc.keep_alive_seconds, jc.use_spot) == (600, True)
        with pytest.raises(ConfigError) as info:
            settings.set_values({"keep_alive_seconds": "7200"})
        assert info.value.fields == ["keep_alive_seconds"]
    finally:
        settings.reset_session()


@pytest.mark.slow  # a local job runs (a few seconds)
def test_a_local_job_runs_with_the_settings_and_gets_the_environment(tmp_path, monkeypatch):
    import pandas as pd

    import smglm

    monkeypatch.setenv("SMGLM_HOME", str(tmp_path / "home"))
    frame = pd.DataFrame({"x": [0.1, 0.2, 0.3, 0.4] * 25, "y": [0, 1, 2, 1] * 25})
    job = smglm.train(
        {"target": "y", "predictors": ["x"], "family": "poisson"},
        frame,
        backend="local",
        tracking=False,
        wait=True,
        logs=False,
        **SETTINGS,
    )
    assert job.status == "Completed"
    spec = job.backend.spec(job.name)
    assert spec.environment == SETTINGS["environment"]  # acts locally
    assert spec.use_spot and spec.keep_alive_seconds == 600  # kept, no meaning here


@pytest.mark.slow  # MLflow tracks the job (mlflow's import)
def test_a_variable_smglm_sets_is_refused_and_the_run_ends_failed(tmp_path, monkeypatch):
    import pandas as pd
    from mlflow.tracking import MlflowClient

    import smglm

    store = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("SMGLM_HOME", str(tmp_path / "home"))
    frame = pd.DataFrame({"x": [0.1, 0.2, 0.3, 0.4] * 25, "y": [0, 1, 2, 1] * 25})
    with pytest.raises(ConfigError) as info:
        smglm.train(
            {"target": "y", "predictors": ["x"], "family": "poisson"},
            frame,
            backend="local",
            tracking=True,
            mlflow_tracking_uri=store,
            environment={"MLFLOW_RUN_ID": "mine"},
        )
    assert info.value.fields == ["environment"] and "MLFLOW_RUN_ID" in str(info.value)
    (run,) = MlflowClient(store).search_runs(
        [e.experiment_id for e in MlflowClient(store).search_experiments()]
    )
    assert run.info.status == "FAILED"
