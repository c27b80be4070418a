"""Where a job's files land, as the SageMaker SDK's users expect them (issue 15, §1).

``output_path`` given: the model at ``<output_path>/<job>/output/model.tar.gz``; not given:
``<base>/jobs/<job>/output/...`` as before. Content-addressed inputs always at
``<input base>/inputs/<hash>/``, never inside ``output_path``'s job layout. Checked object by
object against moto's S3 (the SageMaker backend, jobs run by the simulator) and on disk (the
local backend).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

import smglm
from aws_harness import ACCOUNT, REGION, SageMakerSimulator, push_image
from smglm.config import JobConfig
from smglm.datasets import motor
from smglm.launch.local import LocalBackend
from smglm.launch.sagemaker import SageMakerBackend
from smglm.launch.submit import storage_layout

pytest_plugins = ["aws_harness"]  # the fixtures aws, boto_session

ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/AmazonSageMaker-ExecutionRole-test"
DEFAULT_BUCKET = f"sagemaker-{REGION}-{ACCOUNT}"
CONFIG = {
    "target": "claim_count",
    "exposure": "exposure",
    "family": "poisson",
    "predictors": ["driver_age", "region"],
}


def keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# -- where each backend puts things (no job run) ------------------------------------------------


def test_local_layout_with_and_without_output_path(tmp_path: Path):
    be = LocalBackend(tmp_path / "home", warm=False)
    storage = f"file://{tmp_path / 'home' / 'storage'}"
    assert storage_layout(JobConfig(), be) == (f"{storage}/jobs", storage)
    given = JobConfig(output_path=f"file://{tmp_path}/models/")
    assert storage_layout(given, be) == (f"file://{tmp_path}/models", storage)
    # writing to S3 from this machine: the inputs go to the same bucket, under the prefix
    on_s3 = JobConfig(output_path="s3://team-models/glm/runs", prefix="pricing")
    assert storage_layout(on_s3, be) == ("s3://team-models/glm/runs", "s3://team-models/pricing")
    named = JobConfig(output_path="s3://team-models/runs", bucket="team-inputs")
    assert storage_layout(named, be) == ("s3://team-models/runs", "s3://team-inputs/smglm")


def test_sagemaker_layout_chooses_the_bucket_as_the_sdk_does(aws: Any, boto_session: Any):
    be = SageMakerBackend(session=boto_session)
    default = f"s3://{DEFAULT_BUCKET}/smglm"
    assert storage_layout(JobConfig(backend="sagemaker"), be) == (f"{default}/jobs", default)
    out = JobConfig(backend="sagemaker", output_path="s3://team-models/glm")
    assert storage_layout(out, be) == ("s3://team-models/glm", "s3://team-models/smglm")
    both = JobConfig(backend="sagemaker", output_path="s3://team-models/glm", bucket="in-b")
    assert storage_layout(both, be) == ("s3://team-models/glm", "s3://in-b/smglm")
    bare = JobConfig(backend="sagemaker", bucket="in-b", prefix="")
    assert storage_layout(bare, be) == ("s3://in-b/jobs", "s3://in-b")


def test_sagemaker_layout_takes_the_sdk_configs_default_bucket_and_prefix(
    aws: Any, boto_session: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """``SageMaker.PythonSDK.Modules.Session.DefaultS3Bucket``/``DefaultS3ObjectKeyPrefix``
    from the SDK's config file: before output_path's bucket and SageMaker's default one, after
    JobConfig.bucket."""
    settings = tmp_path / "config.yaml"

    def sdk_file(session: str) -> None:
        settings.write_text(
            "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      Session:\n"
            + session
        )

    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg-site"))  # no admin file
    monkeypatch.delenv("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", raising=False)
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(settings))
    sdk_file("        DefaultS3Bucket: studio-bucket\n        DefaultS3ObjectKeyPrefix: team/a/\n")
    be = SageMakerBackend(session=boto_session)
    assert storage_layout(JobConfig(backend="sagemaker"), be) == (
        "s3://studio-bucket/team/a/smglm/jobs",
        "s3://studio-bucket/team/a/smglm",
    )
    out = JobConfig(backend="sagemaker", output_path="s3://team-models/glm")
    assert storage_layout(out, be) == ("s3://team-models/glm", "s3://studio-bucket/team/a/smglm")
    mine = JobConfig(backend="sagemaker", bucket="mine")
    assert storage_layout(mine, be) == ("s3://mine/smglm/jobs", "s3://mine/smglm")
    sdk_file("        DefaultS3ObjectKeyPrefix: team/a\n")
    assert storage_layout(JobConfig(backend="sagemaker"), be)[1] == (
        f"s3://{DEFAULT_BUCKET}/team/a/smglm"
    )


# -- jobs run: the objects at their keys ---------------------------------------------------------


@pytest.mark.slow
def test_a_sagemaker_job_with_output_path_writes_where_the_sdk_would(
    aws: Any, boto_session: Any, tmp_path: Path
):
    s3 = boto_session.client("s3")
    s3.create_bucket(Bucket="team-models")
    sim = SageMakerSimulator(tmp_path / "jobs").attach(boto_session)
    try:
        image = push_image(boto_session)
        backend = SageMakerBackend(session=boto_session)
        job = smglm.train(
            CONFIG,
            motor(2_000, seed=3),
            backend=backend,
            image_uri=image,
            role=ROLE,
            output_path="s3://team-models/glm",
            tracking=False,
            wait=True,
            logs=False,
        )
    finally:
        sim.close()
    assert job.status == "Completed"
    request = sim.requests[-1]
    assert request["OutputDataConfig"]["S3OutputPath"] == "s3://team-models/glm"
    assert keys(s3, "team-models", "glm/") == [
        f"glm/{job.name}/output/model.tar.gz",
        f"glm/{job.name}/output/output.tar.gz",
    ]
    assert job.model_uri == f"s3://team-models/glm/{job.name}/output/model.tar.gz"
    inputs = keys(s3, "team-models", "smglm/")
    assert sorted(Path(k).name for k in inputs) == ["glm.json", "train.parquet"]
    for key in inputs:
        assert key.startswith("smglm/inputs/") and len(Path(key).parent.name) == 20
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in request["InputDataConfig"]
    }
    assert channels == {
        "train": f"s3://team-models/{Path(next(k for k in inputs if 'parquet' in k)).parent}/",
        "config": f"s3://team-models/{Path(next(k for k in inputs if 'json' in k)).parent}/",
    }
    assert keys(s3, "team-models") == sorted(inputs + keys(s3, "team-models", "glm/"))


@pytest.mark.slow
def test_local_jobs_with_and_without_output_path(tmp_path: Path):
    """Two jobs on one DataFrame: the inputs are uploaded once under ``<home>/storage/inputs``;
    one job's model is under ``<output_path>/<job>/output/``, the other's under
    ``<home>/storage/jobs/<job>/output/``; the run's ``smglm.output_path`` tag says so."""
    import mlflow

    home = tmp_path / "home"
    backend = LocalBackend(home, warm=False)
    frame = motor(2_000, seed=4)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "models"
    given = smglm.train(
        CONFIG, frame, backend=backend, output_path=out.as_uri(), mlflow_tracking_uri=store
    )
    default = smglm.train(CONFIG, frame, backend=backend, tracking=False)
    for job in (given, default):
        job.wait(logs=False, out=io.StringIO(), timeout=180)
        assert job.status == "Completed", job.failure_reason
    assert files(out) == [
        f"{given.name}/output/model.tar.gz",
        f"{given.name}/output/output.tar.gz",
    ]
    storage = home / "storage"
    stored = files(storage)
    assert [f for f in stored if f.startswith("jobs/")] == [
        f"jobs/{default.name}/output/model.tar.gz",
        f"jobs/{default.name}/output/output.tar.gz",
    ]
    inputs = [f for f in stored if f.startswith("inputs/")]
    assert sorted(Path(f).name for f in inputs) == ["glm.json", "train.parquet"]  # once
    assert len(stored) == 4
    run = mlflow.tracking.MlflowClient(tracking_uri=store).get_run(given.run_id)
    assert run.data.tags["smglm.output_path"] == f"{out.as_uri()}/{given.name}"
    assert given.model_uri == f"{out.as_uri()}/{given.name}/output/model.tar.gz"
