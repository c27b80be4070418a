"""The SDK bridge sends the same CreateTrainingJob request as the boto3 path (against moto).

smglm never depends on the SageMaker SDK, so each SDK runs in a separate virtualenv made in
this run's temp dir by tests/sdk_venv.py (once per run; tests/test_sdk_local_mode.py shares
the v2 one), with a ``.pth`` file putting smglm's sources on its path:
``pip install 'sagemaker<3'`` (SDK v2, about 25-35 s; SageMaker Distribution 2.x/3.x images
carry v2) and ``pip install 'sagemaker>=3,<4'`` (SDK v3, about 3.5 min and 1 GB; Distribution
4.x). Set ``SMGLM_TEST_SDK2_PYTHON`` / ``SMGLM_TEST_SDK3_PYTHON`` to an interpreter that already
has that SDK to use it instead. In that interpreter, ``start_with_sdk`` calls ``fit``/``train``
with a boto3 session whose ``provide-client-params.sagemaker.CreateTrainingJob`` handler
captures the request; moto (in this process) answers it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import sdk_venv
from smglm.contract import METRIC_DEFINITIONS
from smglm.errors import ConfigError, MissingDependency
from smglm.launch import sdk
from smglm.launch.sagemaker import SageMakerBackend
from smglm.launch.spec import Channel, JobSpec

ROLE = "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole-test"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/smglm:0.1.0"

FULL = JobSpec(
    name="smglm-sdk-full",
    image_uri=IMAGE,
    output_path="s3://sdk-bucket/smglm/output",
    channels=(
        Channel("train", "s3://sdk-bucket/smglm/inputs/abc/train/", content_type="text/csv"),
        Channel("config", "s3://sdk-bucket/smglm/inputs/def/config/", "application/json"),
    ),
    role_arn=ROLE,
    instance_type="ml.c5.2xlarge",
    volume_size_gb=50,
    max_runtime_seconds=5400,
    hyperparameters={"alpha": "0.01", "family": "poisson"},
    environment={"MLFLOW_EXPERIMENT_NAME": "glm", "SMGLM_LOG_LEVEL": "INFO"},
    metric_definitions=tuple(METRIC_DEFINITIONS),
    tags={"project": "smglm", "owner": "tests"},
)
MINIMAL = JobSpec(
    name="smglm-sdk-minimal",
    image_uri=IMAGE,
    output_path="s3://sdk-bucket/out",
    channels=(Channel("train", "s3://sdk-bucket/in/train.csv"),),
    role_arn=ROLE,
)

SCRIPT = """
import copy, json, os, sys
import boto3
for module in ("sagemaker.core.telemetry.telemetry_logging",  # v3
               "sagemaker.telemetry.telemetry_logging"):  # v2
    try:
        telemetry = __import__(module, fromlist=["_send_telemetry_request"])
    except ImportError:
        continue
    telemetry._send_telemetry_request = lambda *a, **k: None  # no calls home from tests
from smglm.launch.sdk import sdk_major_version, start_with_sdk
from smglm.launch.spec import JobSpec

session = boto3.Session(region_name="us-east-1")
captured = []
session.events.register(
    "provide-client-params.sagemaker.CreateTrainingJob",
    lambda params, **kw: captured.append(copy.deepcopy(params)),
)
session.client("s3").create_bucket(Bucket="sdk-bucket")
kinds = []
for request in json.load(open(sys.argv[1])):
    trainer = start_with_sdk(JobSpec.from_request(request), session=session, wait=False)
    kinds.append(type(trainer).__module__ + "." + type(trainer).__name__)
json.dump({"major": sdk_major_version(), "kinds": kinds, "requests": captured},
          open(sys.argv[2], "w"), default=str)
"""

pytest_plugins = ["aws_harness"]  # the fixtures aws, boto_session, sagemaker_sim


@pytest.fixture(scope="module", params=["2", "3"], ids=["sdk-v2", "sdk-v3"])
def sdk_python(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An interpreter with a SageMaker SDK (v2, then v3: Studio images ship either) and
    smglm's sources (tests/sdk_venv.py)."""
    return sdk_venv.sdk_python(request.param, tmp_path_factory)


def run_sdk(python: str, specs: list[JobSpec], tmp: Path) -> dict[str, Any]:
    (tmp / "bridge.py").write_text(SCRIPT)
    (tmp / "requests.json").write_text(json.dumps([s.to_request() for s in specs]))
    env = {
        **os.environ,
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
        "SAGEMAKER_VALIDATE_ROLE": "false",  # v3 would call iam:SimulatePrincipalPolicy
    }
    done = subprocess.run(
        [python, str(tmp / "bridge.py"), str(tmp / "requests.json"), str(tmp / "out.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads((tmp / "out.json").read_text())
    return result


def drop_empty(request: dict[str, Any]) -> dict[str, Any]:
    """The request less its empty values (the SDKs leave some of them out)."""
    out = {k: v for k, v in request.items() if v not in ({}, [], None)}
    algo = dict(out["AlgorithmSpecification"])
    if not algo.get("MetricDefinitions"):
        algo.pop("MetricDefinitions", None)
    out["AlgorithmSpecification"] = algo
    return out


def without_sdk_additions(request: dict[str, Any], spec: JobSpec, major: int) -> dict[str, Any]:
    """The SDK's request less what sdk.py's docstring lists as the SDK's own additions."""
    out = drop_empty(request)
    if major == 2:
        assert out.pop("ProfilerConfig") == {"DisableProfiler": True}
        assert "DebugHookConfig" not in out
    else:
        assert out["TrainingJobName"].startswith(f"{spec.name}-")
        out["TrainingJobName"] = spec.name
        output = dict(out["OutputDataConfig"])
        assert output.pop("CompressionType") == "GZIP"
        out["OutputDataConfig"] = output
    return out


def differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return {k: {"sdk": a.get(k), "boto3": b.get(k)} for k in keys}


@pytest.mark.slow
@pytest.mark.sdk
def test_sdk_sends_the_same_create_training_job_as_boto3(sdk_python, aws, boto_session, tmp_path):
    result = run_sdk(sdk_python, [FULL, MINIMAL], tmp_path)
    major = result["major"]
    expected_kind = "sagemaker.estimator.Estimator" if major == 2 else "ModelTrainer"
    assert all(kind.endswith(expected_kind) for kind in result["kinds"])
    assert len(result["requests"]) == 2

    aws.reset()
    captured: list[dict[str, Any]] = []
    boto_session.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob",
        lambda params, **_: captured.append(json.loads(json.dumps(params))),
    )
    backend = SageMakerBackend(session=boto_session)
    for spec in (FULL, MINIMAL):
        backend.launch(spec)
    for spec, via_sdk, via_boto3 in zip((FULL, MINIMAL), result["requests"], captured, strict=True):
        assert via_boto3 == spec.to_request()
        sdk_request = without_sdk_additions(via_sdk, spec, major)
        boto3_request = drop_empty(via_boto3)
        assert sdk_request == boto3_request, differences(sdk_request, boto3_request)


def test_to_estimator_without_an_sdk_names_the_extra(monkeypatch):
    monkeypatch.setattr(sdk, "sdk_major_version", lambda: None)
    with pytest.raises(MissingDependency) as info:
        sdk.to_estimator(MINIMAL)
    assert info.value.extra == "sdk"
    assert "pip install 'smglm[sdk]'" in str(info.value)
    assert "sagemaker" in str(info.value)


def test_to_estimator_without_role_names_role(monkeypatch):
    monkeypatch.setattr(sdk, "sdk_major_version", lambda: 2)
    no_role = JobSpec.from_request({**MINIMAL.to_request(), "RoleArn": None})
    with pytest.raises(ConfigError) as info:
        sdk.to_estimator(no_role)
    assert info.value.fields == ["role"]


def test_core_modules_do_not_import_the_sdk():
    code = (
        "import sys, smglm.launch.sagemaker, smglm.launch.aws, smglm.launch.sdk, "
        "smglm.launch.pricing; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sagemaker', 'boto3')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
