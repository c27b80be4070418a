"""No credential reaches a file smglm writes (issue 12, defect 6).

A tracking URI's ``user:password@`` and the AWS secrets of the environment are passed to the
processes that need them through their environment only: ``spec.json``, ``state.json``, the
logs, the artifacts and the MLflow run's params and tags never hold them, and a local job's
files are private to the user (folders 0700, files 0600).
"""

from __future__ import annotations

import io
import json
import logging
import os
import stat
from pathlib import Path

import pytest

import smglm
from mlflow_server import MlflowServer
from smglm.datasets import motor
from smglm.launch.local import LocalBackend
from smglm.launch.processes import ContainerLauncher
from smglm.launch.spec import Channel, JobSpec
from smglm.launch.supervisor import Supervisor
from smglm.redaction import (
    RedactingStream,
    is_secret_name,
    redact,
    restore_secrets,
    secret_values,
    split_secrets,
)

PASSWORD = "s3cret"
AWS_SECRET = "s3cretAWSkey/abcdefghijklmnop"
AWS_TOKEN = "s3cretSessionToken+zyxwvu"


# -- the redaction --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "View run at: http://user:s3cret@127.0.0.1:5000/#/experiments/1",
            "View run at: http://127.0.0.1:5000/#/experiments/1",
        ),
        ("to https://tok@h.example.com/api failed", "to https://h.example.com/api failed"),
        ("'http://a:b@h:1' and 'http://c:d@h:2'", "'http://h:1' and 'http://h:2'"),
        ("https://h/x?token=abc&run=1", "https://h/x?token=***&run=1"),
        ("s3://b/k?X-Amz-Signature=beef&X-Amz-Credential=AK/x", "s3://b/k?X-Amz-Signature=***&X-Amz-Credential=***"),
        ("user@example.com wrote http://host:5000", "user@example.com wrote http://host:5000"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
    ],
)  # fmt: skip
def test_redact_drops_credentials_from_text(text, expected):
    assert redact(text) == expected


def test_redact_hides_the_values_of_secret_variables():
    env = {"AWS_SECRET_ACCESS_KEY": AWS_SECRET, "HOME": "/root", "AWS_SESSION_TOKEN": "short"}
    secrets = secret_values(env)
    assert secrets == [AWS_SECRET]  # too short a value is not searched for
    assert redact(f"signing with {AWS_SECRET} failed", secrets) == "signing with *** failed"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("AWS_SECRET_ACCESS_KEY", True),
        ("AWS_SESSION_TOKEN", True),
        ("AWS_ACCESS_KEY_ID", True),
        ("MLFLOW_TRACKING_PASSWORD", True),
        ("MLFLOW_TRACKING_TOKEN", True),
        ("MY_API_KEY", True),
        ("MLFLOW_TRACKING_URI", False),
        ("MLFLOW_RUN_ID", False),
        ("AWS_DEFAULT_REGION", False),
        ("PYTHONUNBUFFERED", False),
    ],
)
def test_is_secret_name(name, secret):
    assert is_secret_name(name) is secret


def test_split_and_restore_secrets_round_trip():
    env = {
        "MLFLOW_TRACKING_URI": f"http://user:{PASSWORD}@127.0.0.1:5000",
        "MLFLOW_RUN_ID": "r1",
        "MLFLOW_TRACKING_PASSWORD": PASSWORD,
    }
    public, secret = split_secrets(env)
    assert public == {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000", "MLFLOW_RUN_ID": "r1"}
    assert PASSWORD not in json.dumps(public)
    assert restore_secrets(public, {**os.environ, **secret}) == {
        "MLFLOW_TRACKING_URI": env["MLFLOW_TRACKING_URI"],
        "MLFLOW_RUN_ID": "r1",
    }
    # another store's credentials in the environment are not taken for this one
    other = {"MLFLOW_TRACKING_URI": "http://u:p@elsewhere:5000"}
    assert restore_secrets(public, other) == public


def test_redacting_stream_sees_a_uri_printed_in_pieces():
    out = io.StringIO()
    stream = RedactingStream(out, [AWS_SECRET])
    stream.write("View run at: http://user:s3")
    stream.write("cret@host:1/#/x\nkey ")
    stream.write(AWS_SECRET)
    stream.flush()
    assert out.getvalue() == "View run at: http://host:1/#/x\nkey ***"


def test_runtime_log_lines_are_redacted(monkeypatch, restore_root_logging, capsys):
    from smglm.runtime.logging_config import configure_logging

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    configure_logging()
    logging.getLogger("smglm.test").warning(
        "could not reach http://user:%s@h:5000 with %s", PASSWORD, AWS_SECRET
    )
    err = capsys.readouterr().err
    assert "could not reach http://h:5000 with ***" in err
    assert PASSWORD not in err and AWS_SECRET not in err


# -- the supervisor gets the secrets through its environment ---------------------------------
def _job_folder(tmp_path: Path, environment: dict[str, str]) -> Path:
    folder = tmp_path / "job"
    folder.mkdir()
    spec = JobSpec(
        name="smglm-secret-1",
        image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/smglm:1",
        output_path="file:///tmp/out",
        channels=(Channel("train", "file:///tmp/in/"),),
        environment=split_secrets(environment)[0],  # as the local backend writes it
    )
    (folder / "spec.json").write_text(json.dumps(spec.to_request()))
    return folder


def test_supervisor_takes_the_tracking_credentials_from_its_environment(tmp_path, monkeypatch):
    uri = f"http://user:{PASSWORD}@127.0.0.1:5000"
    folder = _job_folder(tmp_path, {"MLFLOW_RUN_ID": "r1", "MLFLOW_TRACKING_URI": uri})
    assert PASSWORD not in (folder / "spec.json").read_text()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # what LocalBackend passes
    supervisor = Supervisor(folder, 5.0, runner="podman")
    assert supervisor.environment["MLFLOW_TRACKING_URI"] == uri
    request = supervisor.training_request()
    assert request.env["MLFLOW_TRACKING_URI"] == uri
    assert request.job_env["MLFLOW_TRACKING_URI"] == uri
    # the container engine gets the secret by name, never on its command line
    cmd = ContainerLauncher("podman").command(request)
    assert "MLFLOW_TRACKING_URI" in cmd and PASSWORD not in " ".join(cmd)
    supervisor.log(f"[smglm-local] tracking at {uri}")
    assert PASSWORD not in (folder / "logs.txt").read_text()


# -- a whole local job ----------------------------------------------------------------------
def _modes(root: Path) -> dict[str, str]:
    """Every path under ``root`` whose mode is not private (0700 folders, 0600 files)."""
    bad = {}
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_socket():
            want = 0o600
        elif path.is_dir():
            want = 0o700
        else:
            want = 0o600
        if mode & ~want:
            bad[str(path.relative_to(root))] = oct(mode)
    return bad


def _files_holding(root: Path, needle: bytes) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.is_socket() and needle in p.read_bytes()
    )


@pytest.mark.slow
def test_a_local_job_writes_no_credential_and_only_private_files(tmp_path, monkeypatch):
    server = MlflowServer(tmp_path / "mlflow", str(tmp_path / "mlflow" / "artifacts"))
    server.wait_ready()
    uri = f"http://user:{PASSWORD}@127.0.0.1:{server.port}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", AWS_TOKEN)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    backend = LocalBackend(home, stop_grace_seconds=5, warm=True)  # the forked supervisor
    try:
        config = {
            "target": "claim_count",
            "predictors": ["driver_age", "area"],
            "exposure": "exposure",
            "family": "poisson",
        }
        job = smglm.train(
            config,
            motor(2000, seed=1),
            backend=backend,
            mlflow_tracking_uri=uri,
            mlflow_experiment="smglm-secrets",
        )
        job.wait(out=io.StringIO())
        assert job.status == "Completed", job.failure_reason
        artifacts = job.artifacts()
        from mlflow.tracking import MlflowClient

        run = MlflowClient(tracking_uri=uri).get_run(job.run_id)
    finally:
        backend.shutdown_warm()
        server.stop()
    assert run.info.status == "FINISHED"  # the supervisor reached the store and ended the run
    logged = json.dumps([run.data.params, run.data.tags])
    for secret in (PASSWORD, AWS_SECRET, AWS_TOKEN):
        assert secret not in logged
        assert _files_holding(home, secret.encode()) == [], secret
        assert _files_holding(artifacts, secret.encode()) == [], secret
    state = json.loads((home / "jobs" / job.name / "state.json").read_text())
    assert state["Tags"]["smglm.tracking_uri"] == f"http://127.0.0.1:{server.port}"
    spec = json.loads((home / "jobs" / job.name / "spec.json").read_text())
    assert spec["Environment"]["MLFLOW_TRACKING_URI"] == f"http://127.0.0.1:{server.port}"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert _modes(home / "jobs") == {}
    assert _modes(home / "warm") == {}
