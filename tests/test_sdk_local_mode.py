"""The image as the SageMaker Python SDK v2's local mode runs it: a client none of us wrote.

Local mode mirrors how SageMaker runs a container: it writes ``/opt/ml``'s config files, a
compose file per step, and runs ``docker-compose up``. Here the Docker engine is podman's
Docker-compatible API (``podman system service`` on a unix socket in a temporary folder, with
the storage settings of ``scripts/container-env`` and ``DOCKER_HOST`` pointing at it) and the
compose is Debian's ``docker-compose`` 1.29 (``scripts/container-tools`` installs it). The SDK
runs in a virtualenv of its own (``tests/sdk_venv.py``, shared with ``test_sdk_bridge.py``) and
runs ``tests/sdk_local_mode_script.py``: ``fit`` with the ``train`` and ``config`` channels and
hyperparameter overrides, ``deploy(1, "local")`` and ``predict``, the predictor's delete, a
batch transform, and a failing ``fit``. Its results are compared here with
``smglm.load_model(...).predict`` on the model it trained; the failing job's reason is read from
its ``output.tar.gz``.

Settings: the SDK's telemetry is off in its own configuration file
(``SageMaker.PythonSDK.Modules.TelemetryOptOut``, through ``SAGEMAKER_USER_CONFIG_OVERRIDE``);
``HOME`` is a temporary folder (no user's ``~/.sagemaker`` or ``~/.aws`` is read) and there are
no AWS credentials. podman's networks (the SDK's ``sagemaker-local``) are kept in the temporary
folder, not in /etc. Every wait is bounded, and the containers the SDK created are removed
afterwards, also when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import sdk_venv
import smglm
from container_harness import poisson_frame, run
from helpers import free_port

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "sdk_local_mode_script.py"
MARKER = "SMGLM-RESULT "
#: The SDK's whole run (fit, deploy and predict, transform: about 1-2 minutes on 2 busy cores).
SDK_TIMEOUT = 300
#: The network the SDK's compose files attach every container to.
NETWORK = "sagemaker-local"
#: Where compose records a container's project folder (every one is under our container root).
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
TELEMETRY_OFF = """\
SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""
#: The config channel says gaussian on x1; the hyperparameters make it the Poisson GLM on all
#: three predictors. The SDK's generic Estimator sends each value as ``str(value)``.
CONFIG = "target: y\npredictors: [x1]\nfamily: gaussian\n"
HYPERPARAMETERS: dict[str, Any] = {
    "family": "poisson",
    "predictors": ["x1", "x2", "cat"],
    "fit_intercept": True,
    "max_iter": 100,
}
#: Predictions through the endpoint and the transform against the model read in this process:
#: both sides evaluate the same coefficients, and the wire carries floats as repr().
PREDICTION_RTOL = 1e-12


# -- podman's Docker API ------------------------------------------------------------------------
def _answers_ping(sock: Path) -> bool:
    """Whether the Docker API on the unix socket answers ``GET /_ping``."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        s.connect(str(sock))
        s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        return s.recv(64).startswith(b"HTTP/1.")
    return False


def _ours(podman_env: dict[str, str], root: Path) -> list[str]:
    """The containers compose created for a project folder under ``root``."""
    listed = run(["podman", "ps", "--all", "--format", "json"], podman_env, timeout=60).stdout
    return [
        c["Id"]
        for c in json.loads(listed or "[]")
        if (c.get("Labels") or {}).get(WORKING_DIR_LABEL, "").startswith(f"{root}/")
    ]


def _create_network(env: dict[str, str], folder: Path) -> None:
    """The SDK's network, made before compose asks for it, with a subnet and a bridge of its
    own: podman would name the bridge of a new network ``cni-podman1`` and pick the same subnet
    in every temporary network folder, so two runs at once would share (and one would remove)
    the other's bridge. Compose takes the network as it finds it."""
    subnet = f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24"
    run(["podman", "network", "create", "--subnet", subnet, NETWORK], env, timeout=60)
    # podman 4.3 (Debian 12) writes a CNI conflist; 4.4 and later have --interface-name.
    for conflist in folder.glob("*.conflist"):
        config = json.loads(conflist.read_text())
        for plugin in config["plugins"]:
            if plugin.get("type") == "bridge":
                plugin["bridge"] = f"smglm{uuid.uuid4().hex[:8]}"
        conflist.write_text(json.dumps(config, indent=1))


@pytest.fixture(scope="module")
def docker_api(podman_env, tmp_path_factory) -> Iterator[dict[str, str]]:
    """podman's Docker-compatible API on a unix socket; yields the environment that reaches it
    (``DOCKER_HOST``; ``SMGLM_SDK_CONTAINER_ROOT``, the folder under which the SDK must put its
    compose projects). Afterwards: the containers of those projects, the network and the
    service are removed."""
    folder = tmp_path_factory.mktemp("docker-api")
    # The storage and engine settings of the image's tests, plus a network folder of our own:
    # podman keeps the SDK's network there, not in /etc/cni.
    conf = folder / "containers.conf"
    shared = Path(podman_env["CONTAINERS_CONF"]).read_text()
    (folder / "networks").mkdir()
    conf.write_text(f'{shared}\n[network]\nnetwork_config_dir = "{folder / "networks"}"\n')
    env = {**podman_env, "CONTAINERS_CONF": str(conf)}
    _create_network(env, folder / "networks")
    sock = folder / "podman.sock"
    log = open(folder / "service.log", "w")  # noqa: SIM115 (closed below)
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{sock}"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    root = folder / "compose"
    root.mkdir()
    try:
        deadline = time.monotonic() + 30
        while not _answers_ping(sock):
            if service.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"podman system service did not answer on {sock} within 30 s "
                    f"(exit {service.poll()}):\n{(folder / 'service.log').read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield {**env, "DOCKER_HOST": f"unix://{sock}", "SMGLM_SDK_CONTAINER_ROOT": str(root)}
    finally:
        try:
            left = _ours(env, root)
            if left:
                run(["podman", "rm", "--force", "--time", "0", *left], env, timeout=120)
            run(["podman", "network", "rm", "--force", NETWORK], env, timeout=60, check=False)
            remaining = _ours(env, root)
        finally:
            service.send_signal(signal.SIGTERM)
            try:
                service.wait(timeout=20)
            except subprocess.TimeoutExpired:
                service.kill()
                service.wait(timeout=20)
            log.close()
        assert remaining == [], f"containers left behind: {remaining}"


# -- the SDK's side -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sdk2_python(tmp_path_factory) -> str:
    return sdk_venv.sdk_python("2", tmp_path_factory)


def _sdk_environment(docker_api: dict[str, str], home: Path) -> dict[str, str]:
    """The SDK process's environment: podman's API and settings, no AWS credentials, no user's
    configuration, telemetry off."""
    inherited = {
        k: v
        for k, v in docker_api.items()
        if not k.startswith(("AWS_", "SAGEMAKER_", "DOCKER_", "COMPOSE_"))
    }
    home.mkdir()
    config = home / "sagemaker-config.yaml"
    config.write_text(TELEMETRY_OFF)
    return {
        **inherited,
        "HOME": str(home),
        "DOCKER_HOST": docker_api["DOCKER_HOST"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",  # no credentials: do not ask an instance for them
        # The SDK's defaults files: ours for the user's and the admin's (none of the machine's).
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config),
        "SAGEMAKER_ADMIN_CONFIG_OVERRIDE": str(config),
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
        "PYTHONUNBUFFERED": "1",
    }


def _run_sdk(python: str, spec: dict[str, Any], env: dict[str, str], folder: Path) -> dict:
    """Run the SDK's script; its process group is killed if it outlives ``SDK_TIMEOUT``."""
    (folder / "spec.json").write_text(json.dumps(spec))
    proc = subprocess.Popen(
        [python, str(SCRIPT), str(folder / "spec.json")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the SDK and the docker-compose processes it starts
    )
    try:
        out, err = proc.communicate(timeout=SDK_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        raise AssertionError(
            f"the SDK's run did not end within {SDK_TIMEOUT} s\n--- stdout\n{out[-4000:]}"
            f"\n--- stderr\n{err[-4000:]}"
        ) from None
    finally:
        # A docker-compose the SDK left running (after a failure) goes too; its containers are
        # removed by the docker_api fixture.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    lines = [line for line in out.splitlines() if line.startswith(MARKER)]
    assert proc.returncode == 0 and lines, (
        f"the SDK's run exited {proc.returncode}\n--- stdout\n{out[-6000:]}"
        f"\n--- stderr\n{err[-6000:]}"
    )
    result: dict[str, Any] = json.loads(lines[-1][len(MARKER) :])
    result["log"] = out
    return result


def _extract(tarball: Path, folder: Path) -> list[str]:
    folder.mkdir()
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        tar.extractall(folder, filter="data")
    return names


def _numbers(text: str) -> list[float]:
    """A CSV response's predictions (batch transform puts an empty line after each batch)."""
    return [float(line) for line in text.splitlines() if line.strip()]


@pytest.mark.container
@pytest.mark.sdk
@pytest.mark.slow
@pytest.mark.xdist_group("container")
def test_sdk_v2_local_mode_trains_deploys_transforms_and_fails_with_the_image(
    image, docker_api, sdk2_python, tmp_path
):
    data = poisson_frame(600, seed=3)
    train = tmp_path / "train"  # two files: a channel may hold many
    train.mkdir()
    data.iloc[:300].to_csv(train / "part-0.csv", index=False)
    data.iloc[300:].to_csv(train / "part-1.csv", index=False)
    config = tmp_path / "config"
    config.mkdir()
    (config / "glm.yaml").write_text(CONFIG)
    failing_config = tmp_path / "failing-config"
    failing_config.mkdir()
    (failing_config / "glm.yaml").write_text("target: y\npredictors: [x1, x9]\nfamily: poisson\n")
    rows = poisson_frame(7, seed=11)[["x1", "x2", "cat"]]
    rows.to_csv(tmp_path / "predict.csv", index=False)
    batches = {"a.csv": poisson_frame(40, seed=12), "b.csv": poisson_frame(25, seed=13)}
    transform_input = tmp_path / "transform-input"
    transform_input.mkdir()
    for name, frame in batches.items():
        frame[["x1", "x2", "cat"]].to_csv(transform_input / name, index=False, header=False)
    work = Path(docker_api["SMGLM_SDK_CONTAINER_ROOT"]) / tmp_path.name
    work.mkdir()
    spec = {
        "region": "us-east-1",
        "image": image,
        "role": "arn:aws:iam::111111111111:role/SageMakerRole",
        "hyperparameters": HYPERPARAMETERS,
        "train": str(train),
        "config": str(config),
        "output": str(tmp_path / "output"),
        "predict": str(tmp_path / "predict.csv"),
        "transform_input": str(transform_input),
        "transform_output": str(tmp_path / "transform-output"),
        "failing_config": str(failing_config),
        "failing_output": str(tmp_path / "failing-output"),
        "container_root": str(work),
        "serving_port": free_port(),
        "transform_port": free_port(),
    }
    env = _sdk_environment(docker_api, tmp_path / "home")
    result = _run_sdk(sdk2_python, spec, env, tmp_path)
    log = result.pop("log")
    print("SDK", result["sdk_version"], "timings (s):", result["timings"])
    print("the failing fit raised:", result["failing_fit_raised"])

    # The request the SDK made: our image, both channels, the overrides str()-encoded.
    assert result["sdk_version"].startswith("2.")
    assert result["job"] == {
        "status": "Completed",
        "hyperparameters": {k: str(v) for k, v in HYPERPARAMETERS.items()},
        "channels": ["train", "config"],
        "image": image,
    }
    assert "hyperparameter sets predictors = ['x1', 'x2', 'cat']" in log
    assert "Applied value from config key = SageMaker.PythonSDK.Modules.TelemetryOptOut" in log

    # The artifacts the SDK collected: model.tar.gz, and output.tar.gz without a failure file.
    model_tar = Path(result["model_data"].removeprefix("file://"))
    assert model_tar.name == "model.tar.gz" and model_tar.is_file(), result["model_data"]
    output_names = _extract(model_tar.with_name("output.tar.gz"), tmp_path / "job-output")
    assert "failure" not in output_names, (tmp_path / "job-output" / "failure").read_text()
    model_names = _extract(model_tar, tmp_path / "model")
    assert "model.json" in model_names
    model = smglm.load_model(tmp_path / "model")
    assert model.config.family == "poisson"
    assert model.config.predictors == ["x1", "x2", "cat"]
    # The config channel with the overrides applied, fitted in this process.
    in_process = smglm.fit({"target": "y", **HYPERPARAMETERS}, data)
    np.testing.assert_allclose(model.predict(data), in_process.predict(data), rtol=1e-8)

    # deploy(1, "local"): CSV in, CSV out; then the endpoint is gone.
    assert result["endpoint_up"] is True
    predicted = [float(row[0]) for row in result["predictions"]]
    np.testing.assert_allclose(predicted, model.predict(rows), rtol=PREDICTION_RTOL)
    assert result["endpoint_down"] is True

    # Batch transform: one .out file per input file, a prediction per row.
    outputs = result["transform_outputs"]
    assert sorted(outputs) == [f"{name}.out" for name in sorted(batches)]
    for name, frame in batches.items():
        got = _numbers(outputs[f"{name}.out"])
        np.testing.assert_allclose(got, model.predict(frame), rtol=PREDICTION_RTOL)

    # The failing job: its reason in output.tar.gz's failure file, no model. (fit() raised or
    # not, as compose over podman passed the exit code on or lost it: not asserted.)
    failed = tmp_path / "failing-output"
    output_names = _extract(failed / "output.tar.gz", tmp_path / "failing-job-output")
    assert "failure" in output_names, output_names
    reason = (tmp_path / "failing-job-output" / "failure").read_text()
    assert "x9" in reason and 0 < len(reason) <= 1024, reason
    assert "model.json" not in _extract(failed / "model.tar.gz", tmp_path / "failing-model")
