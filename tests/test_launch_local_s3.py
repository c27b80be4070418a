"""The local backend end to end on ``s3://`` storage served by moto's server in this process."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import smglm
from smglm.datasets import motor
from smglm.errors import BackendError, JobFailed
from smglm.launch.local import LocalBackend

BUCKET = "smglm-local-test"
BASE = f"s3://{BUCKET}/smglm"

CONFIG = {
    "target": "claim_count",
    "predictors": ["driver_age", "vehicle_power", "area", "region"],
    "exposure": "exposure",
    "family": "poisson",
}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return motor(4_000, seed=11)


@pytest.fixture
def s3(aws: Any) -> Any:
    """An S3 client on moto with the test bucket created (``aws`` exports the endpoint and
    fake credentials in os.environ, so the detached supervisor inherits them)."""
    import boto3

    client = boto3.client("s3", region_name=aws.region)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "home", stop_grace_seconds=5)


def _keys(s3: Any, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def _train(data: Any, backend: LocalBackend, **kw: Any) -> smglm.Job:
    return smglm.train(CONFIG, data, backend=backend, output_path=BASE, tracking=False, **kw)


@pytest.mark.slow
def test_train_local_s3_job_completes_with_sagemaker_layout(s3, backend, data):
    job = _train(data, backend)
    inputs = _keys(s3, "smglm/inputs/")
    # content-addressed: inputs/<hash>/train.parquet and inputs/<hash>/glm.json
    assert len(inputs) == 2
    by_name = {Path(k).name: Path(k).parent for k in inputs}
    assert set(by_name) == {"train.parquet", "glm.json"}
    for folder in by_name.values():
        assert folder.parent == Path("smglm/inputs") and len(folder.name) == 20
    channels = {c.name: c.uri for c in backend.spec(job.name).channels}
    assert channels["train"] == f"s3://{BUCKET}/{by_name['train.parquet']}/"
    assert channels["config"] == f"s3://{BUCKET}/{by_name['glm.json']}/"

    job.wait(out=io.StringIO(), timeout=90)
    assert job.status == "Completed", job.failure_reason
    output = f"{BASE}/{job.name}/output"
    assert job.describe()["ModelArtifacts"]["S3ModelArtifacts"] == f"{output}/model.tar.gz"
    # SageMaker's layout: <S3OutputPath>/<job>/output/{model,output}.tar.gz and nothing else
    assert _keys(s3, f"smglm/{job.name}/") == [
        f"smglm/{job.name}/output/model.tar.gz",
        f"smglm/{job.name}/output/output.tar.gz",
    ]
    body = s3.get_object(Bucket=BUCKET, Key=f"smglm/{job.name}/output/model.tar.gz")["Body"]
    with tarfile.open(fileobj=io.BytesIO(body.read()), mode="r:gz") as tar:
        names = set(tar.getnames())
    assert {"model.json", "metrics.json", "coefficients.csv", "config.yaml"} <= names

    folder = job.artifacts()
    assert (folder / "model" / "model.json").is_file()
    assert any((folder / "output").rglob("*"))
    direct = smglm.fit(CONFIG, data)
    np.testing.assert_allclose(job.model.predict(data), direct.predict(data), rtol=1e-9)

    # the same config and data again: nothing new under inputs/, the same channels
    again = _train(data, backend, reuse=False)
    assert again.name != job.name
    assert _keys(s3, "smglm/inputs/") == inputs
    assert {c.name: c.uri for c in backend.spec(again.name).channels} == channels
    again.stop()  # its training would repeat the first job's: end it now
    again.wait(out=io.StringIO(), raise_on_failure=False, timeout=60)
    assert again.status == "Stopped"


def test_train_local_s3_failure_keeps_reason_and_no_model(s3, backend, data):
    s3.put_object(
        Bucket=BUCKET,
        Key="raw/train.csv",
        Body=data.drop(columns="region").to_csv(index=False).encode(),
    )
    job = _train(f"s3://{BUCKET}/raw/train.csv", backend)  # a URI: checked by the runtime
    with pytest.raises(JobFailed) as info:
        job.wait(out=io.StringIO(), timeout=90)
    assert job.status == "Failed"
    reason = info.value.reason or ""
    assert reason.startswith("AlgorithmError:")
    assert "column 'region' is not in the data" in reason
    assert job.model_uri is None
    assert not [k for k in _keys(s3, "smglm/") if k.endswith("model.tar.gz")]
    # the output archive is uploaded for a failed job too, as SageMaker does
    assert _keys(s3, f"smglm/{job.name}/") == [f"smglm/{job.name}/output/output.tar.gz"]
    assert job.describe()["OutputArtifacts"]["S3OutputArtifacts"].endswith("output.tar.gz")
    with pytest.raises(BackendError, match="no model artifacts"):
        job.artifacts()


def test_train_local_s3_stop_right_after_launch_ends_stopped(s3, backend, data):
    job = _train(data, backend)
    job.stop()
    job.wait(out=io.StringIO(), raise_on_failure=False, timeout=60)
    assert job.status == "Stopped"
    assert job.model_uri is None
    assert not [k for k in _keys(s3, "smglm/") if k.endswith("model.tar.gz")]
