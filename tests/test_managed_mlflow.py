"""SageMaker's managed MLflow: a tracking server's ARN as the tracking URI, end to end.

AWS's plugin (``sagemaker-mlflow``, installed by the dev extra) does what it does against AWS:
it turns the ARN into the server's https endpoint and signs every request with SigV4 (the
fake credentials of moto's fixtures). The one thing redirected is the endpoint, through the
plugin's own ``SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT``: a loopback proxy that records each request's
headers (where the test checks the signature and the ARN header that SageMaker routes by)
and forwards it to a real ``mlflow server``. As on a managed server, runs' artifacts are
``s3://`` URIs (moto's S3) that the clients write themselves. The server checks no
signature: that is the boundary this test fakes.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import io
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd
import pytest

import smglm
from aws_harness import ACCOUNT, REGION, SageMakerSimulator, _Response, push_image
from mlflow_server import FAKE_AWS, MlflowServer
from smglm.datasets import motor
from smglm.errors import ConfigError, MissingDependency
from smglm.launch.local import LocalBackend
from smglm.launch.sagemaker import SageMakerBackend
from smglm.tracking import managed
from smglm.tracking.runs import resolve_tracking_uri

pytest_plugins = ["aws_harness"]  # the fixtures moto_server, aws, boto_session

ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:mlflow-tracking-server/pricing"
APP_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:mlflow-app/app-abc123"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/AmazonSageMaker-ExecutionRole-test"
ARTIFACTS = "managed-mlflow-artifacts"
CONFIG = {
    "target": "claim_count",
    "exposure": "exposure",
    "family": "poisson",
    "predictors": ["driver_age", "region"],
}
_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Proxy:
    """A loopback HTTP proxy in front of ``upstream`` that records every request."""

    upstream: str
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def start(self) -> ThreadingHTTPServer:
        target = urlparse(self.upstream)
        record = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                record.append(Recorded(self.command, self.path, dict(self.headers.items())))
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@dataclass
class Managed:
    server: MlflowServer
    proxy: Proxy


@pytest.fixture(scope="module")
def managed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Managed]:
    """A real ``mlflow server`` whose runs' artifacts are in S3, behind the recording proxy."""
    root = tmp_path_factory.mktemp("managed-mlflow")
    server = MlflowServer(
        root / "server", f"s3://{ARTIFACTS}/mlflow", env=FAKE_AWS, serve_artifacts=False
    )
    proxy = Proxy(server.url)
    http_server = proxy.start()
    try:
        server.wait_ready()
        yield Managed(server, proxy)
    finally:
        http_server.shutdown()
        server.stop()


@pytest.fixture
def through_arn(aws: Any, managed_server: Managed, monkeypatch: pytest.MonkeyPatch) -> Managed:
    """moto (fake credentials, its S3 with the artifact bucket) and the plugin's endpoint."""
    import boto3

    boto3.client("s3", region_name=REGION).create_bucket(Bucket=ARTIFACTS)
    monkeypatch.setenv("SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT", managed_server.proxy.url)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", aws.endpoint)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(managed, "_CHECKED", set())
    managed_server.proxy.requests.clear()
    return managed_server


def data() -> pd.DataFrame:
    return motor(3_000, seed=5)


def server_client(m: Managed) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=m.server.url)


def assert_signed_for_the_arn(requests: list[Recorded]) -> None:
    """Every request the plugin sent: SigV4 for service sagemaker-mlflow in the ARN's region,
    the credentials of the environment, and the ARN in SageMaker's routing header."""
    api = [r for r in requests if r.path.startswith("/api/")]
    assert api, "no MLflow request went through the ARN's endpoint"
    for r in api:
        headers = {k.lower(): v for k, v in r.headers.items()}
        auth = headers.get("authorization", "")
        assert auth.startswith("AWS4-HMAC-SHA256 Credential=testing/"), (r.path, auth)
        assert f"/{REGION}/sagemaker-mlflow/aws4_request" in auth
        assert headers.get("x-mlflow-sm-tracking-server-arn") == ARN
        assert "x-amz-content-sha256" in headers


def describe_server(version: str) -> Any:
    """A before-call handler answering DescribeMlflowTrackingServer (moto has no MLflow API)."""

    def handler(params: dict[str, Any], **_: Any) -> Any:
        return _Response(200), {
            "TrackingServerArn": ARN,
            "TrackingServerName": "pricing",
            "MlflowVersion": version,
            "TrackingServerStatus": "Created",
        }

    return handler


# -- the URI ------------------------------------------------------------------------------------


def test_a_malformed_or_foreign_arn_is_a_config_error_naming_the_field():
    for bad in (
        f"arn:aws:sagemaker:{REGION}:123:mlflow-tracking-server/x",  # account of 3 digits
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/x",
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:mlflow-tracking-server",
    ):
        with pytest.raises(ConfigError) as info:
            resolve_tracking_uri(bad)
        assert info.value.fields == ["mlflow_tracking_uri"]
        assert bad in str(info.value) and "mlflow-tracking-server/<name>" in str(info.value)
    assert managed.parse_arn(APP_ARN).kind == "mlflow-app"
    assert resolve_tracking_uri(ARN) == ARN


def test_without_the_plugin_an_arn_says_pip_install_sagemaker_mlflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(sys.modules, "sagemaker_mlflow", None)  # find_spec: not installed
    with pytest.raises(MissingDependency) as info:
        resolve_tracking_uri(ARN)
    assert "pip install sagemaker-mlflow" in str(info.value)
    assert "mlflow_tracking_uri" in str(info.value)
    backend = LocalBackend(tmp_path / "home", warm=False)
    with pytest.raises(MissingDependency, match="pip install sagemaker-mlflow"):
        smglm.train(CONFIG, data(), backend=backend, mlflow_tracking_uri=ARN)
    assert backend.list_jobs() == []  # nothing launched


def test_an_arn_clients_calls_leave_the_process_tracking_uri_alone(
    monkeypatch: pytest.MonkeyPatch,
):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    seen: list[str] = []
    with managed.signing_for(ARN):
        seen.append(mlflow.get_tracking_uri())
    assert seen == [ARN]
    assert mlflow.get_tracking_uri() == "http://127.0.0.1:9"


# -- the version check --------------------------------------------------------------------------


def test_a_server_of_another_mlflow_version_is_warned_about(aws: Any, monkeypatch):
    import boto3

    monkeypatch.setattr(managed, "_CHECKED", set())
    boto3.setup_default_session(region_name=REGION)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", boto3.DEFAULT_SESSION)
    events = boto3.DEFAULT_SESSION.events
    name = "before-call.sagemaker.DescribeMlflowTrackingServer"
    events.register(name, describe_server("2.16"), unique_id="old")
    with pytest.warns(UserWarning, match=r"runs MLflow 2\.16") as caught:
        text = managed.check_version(ARN)
    assert text is not None and "pip install 'mlflow==2.16.*'" in text
    # the one UserWarning is the text (a ResourceWarning from the GC may be caught beside it)
    said = [str(w.message) for w in caught if w.category is UserWarning]
    assert said == [text]
    assert managed.check_version(ARN) is None  # once per server
    events.unregister(name, unique_id="old")

    local = importlib.metadata.version("mlflow")
    monkeypatch.setattr(managed, "_CHECKED", set())
    events.register(name, describe_server(".".join(local.split(".")[:2])), unique_id="same")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert managed.check_version(ARN) is None
    events.unregister(name, unique_id="same")


@pytest.mark.slow
def test_a_plain_servers_version_comes_from_its_version_endpoint(managed_server: Managed):
    assert managed.server_version(managed_server.server.url) == importlib.metadata.version("mlflow")
    assert managed.check_version(managed_server.server.url) is None  # the same version


# -- end to end ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_local_job_is_tracked_through_the_arn(through_arn: Managed, tmp_path, monkeypatch):
    """The launcher creates the run and the local supervisor logs the results, every request
    signed for the ARN; MLFLOW_EXPERIMENT_NAME chooses the experiment."""
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "managed-local")
    backend = LocalBackend(tmp_path / "home", warm=False)
    job = smglm.train(CONFIG, data(), backend=backend, mlflow_tracking_uri=ARN)
    job.wait(logs=False, out=io.StringIO(), timeout=180)
    assert job.status == "Completed"
    assert backend.spec(job.name).mlflow_config == {
        "MlflowResourceArn": ARN,
        "MlflowExperimentName": "managed-local",
        "MlflowRunName": job.name,
    }
    client = server_client(through_arn)
    run = client.get_run(job.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "managed-local"
    assert backend.spec(job.name).tags["smglm.tracking_uri"] == ARN
    assert "train_deviance" in run.data.metrics
    assert run.info.artifact_uri.startswith(f"s3://{ARTIFACTS}/mlflow/")
    import boto3

    key = run.info.artifact_uri.removeprefix(f"s3://{ARTIFACTS}/") + "/model.json"
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=ARTIFACTS, Key=key)["Body"]
    assert body.read() == (job.artifacts() / "model" / "model.json").read_bytes()
    assert_signed_for_the_arn(through_arn.proxy.requests)


@pytest.mark.slow
def test_a_sagemaker_job_carries_mlflow_config_and_logs_through_the_arn(
    through_arn: Managed, boto_session: Any, tmp_path: Path, monkeypatch
):
    """CreateTrainingJob carries MlflowConfig (botocore validates it against the service
    model); the runtime, given the ARN, logs live through the plugin; the run ends FINISHED."""
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "managed-sagemaker")
    sim = SageMakerSimulator(tmp_path / "jobs").attach(boto_session)
    try:
        image = push_image(boto_session)
        backend = SageMakerBackend(session=boto_session)
        job = smglm.train(
            CONFIG,
            data(),
            backend=backend,
            image_uri=image,
            role=ROLE,
            mlflow_tracking_uri=ARN,
        )
        job.wait(logs=False, out=io.StringIO(), timeout=180)
    finally:
        sim.close()
    assert job.status == "Completed"
    request = sim.requests[-1]
    assert request["MlflowConfig"] == {
        "MlflowResourceArn": ARN,
        "MlflowExperimentName": "managed-sagemaker",
        "MlflowRunName": job.name,
    }
    assert request["Environment"]["MLFLOW_TRACKING_URI"] == ARN
    assert request["Environment"]["MLFLOW_EXPERIMENT_NAME"] == "managed-sagemaker"
    client = server_client(through_arn)
    run = client.get_run(job.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["smglm.logged_by"] == "runtime"
    assert client.get_experiment(run.info.experiment_id).name == "managed-sagemaker"
    assert "train_deviance" in run.data.metrics
    assert_signed_for_the_arn(through_arn.proxy.requests)
