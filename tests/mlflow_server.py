"""Test helpers that start real servers: ``mlflow server`` as a subprocess and moto's S3.

Used by tests/test_tracking.py. A server that does not answer in time is a test failure that
shows the server's own output (never a skip).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from helpers import free_port

#: Fake AWS credentials for moto (never real ones).
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class MlflowServer:
    """``python -m mlflow server`` on 127.0.0.1 with a sqlite store, run as a subprocess.

    Parameters
    ----------
    folder
        Where the sqlite database and the server's output go.
    artifacts_destination
        ``--artifacts-destination``: a local folder or an ``s3://`` URI.
    env
        Extra environment of the server process (e.g. ``MLFLOW_S3_ENDPOINT_URL``).
    serve_artifacts
        False: clients write artifacts to ``artifacts_destination`` themselves
        (``--default-artifact-root``, ``--no-serve-artifacts``), as with SageMaker's managed
        MLflow, whose runs' artifact URIs are ``s3://`` ones.
    """

    def __init__(
        self,
        folder: Path,
        artifacts_destination: str,
        env: dict[str, str] | None = None,
        *,
        serve_artifacts: bool = True,
    ) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / "mlflow-server.log"
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{folder / 'db.sqlite'}",
            *(
                ["--artifacts-destination", artifacts_destination]
                if serve_artifacts
                else ["--default-artifact-root", artifacts_destination, "--no-serve-artifacts"]
            ),
        ]
        server_env = dict(os.environ)
        server_env.pop("MLFLOW_TRACKING_URI", None)
        # no job runner (7 huey consumer processes): tracking needs none of it
        server_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        server_env.update(env or {})
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=server_env,
                cwd=str(folder),
                start_new_session=True,  # its own process group: the workers end with it
            )

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-6000:]

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until ``GET /health`` answers; fail the test with the server's output if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"mlflow server exited with status {self.proc.returncode}:\n{self.output()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"mlflow server did not answer /health in {timeout:g} s:\n{self.output()}")

    def terminate(self) -> None:
        """SIGTERM the server's process group (its own: it started it)."""
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL it after 10 s."""
        self.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@contextmanager
def moto_s3(bucket: str) -> Iterator[tuple[str, Any]]:
    """moto's server on 127.0.0.1 (in this process) with ``bucket`` created; yields the
    endpoint URL and an S3 client for it. Nothing in this process's environment changes."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=FAKE_AWS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
            region_name=FAKE_AWS["AWS_DEFAULT_REGION"],
        )
        s3.create_bucket(Bucket=bucket)
        yield endpoint, s3
        urllib.request.urlopen(
            urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10
        ).close()  # moto's state is process-wide: leave none behind
    finally:
        server.stop()
