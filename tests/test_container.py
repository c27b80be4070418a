"""The container image: built from ``container/`` by buildah, run by podman as SageMaker runs it.

No Docker engine is needed (``/work/shared/container-build-here.md``): ``scripts/container-tools``
installs buildah and podman, ``scripts/container-base`` makes a Debian base image with debootstrap
(cached in ``.cache/container/``), and ``container/build_and_push.sh --local-only --offline``
builds the image from wheels made on this machine. ``train`` then runs on a bind-mounted
``/opt/ml`` tree laid out as in ``sagemaker-contract.md`` §1.2, and ``serve`` answers on a free
port of the host network with the trained model mounted read-only.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from container_harness import poisson_frame
from container_harness import run as _run
from helpers import design, free_port, ml_tree

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "container" / "build_and_push.sh"
#: A fit of the same data with statsmodels (IRLS to 1e-12) is the reference; glum stops earlier.
RTOL = 1e-5
#: One xdist worker runs the tests of the image (those here and tests/test_sdk_local_mode.py):
#: the others go on with other tests instead of waiting for the image's build lock.
pytestmark = pytest.mark.xdist_group("container")


# -- the build script's AWS part, printed, never run ------------------------------------------
def _version() -> str:
    from smglm._version import __version__

    return __version__


@pytest.mark.parametrize("engine", ["podman", "buildah", "docker"])
def test_build_and_push_dry_run_prints_the_ecr_commands(engine):
    aws = ["--account", "123456789012", "--region", "eu-west-1", "--repository", "glms"]
    proc = _run([str(BUILD), "--dry-run", "--engine", engine, *aws], timeout=30)
    uri = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/glms:{_version()}"
    lines = proc.stdout.splitlines()
    assert lines[-1] == uri
    text = proc.stdout
    starts = ("+ docker build ", "+ podman build ", "+ buildah bud ")
    build = next(line for line in lines if line.startswith(starts))
    assert "--platform linux/amd64" in build
    assert "BASE_IMAGE=python:3.11-slim" in build
    if engine == "docker":
        assert build.startswith("+ docker build") and "--provenance=false" in build
    else:
        assert build.startswith("+ buildah bud" if engine == "buildah" else "+ podman build")
        assert "--format docker" in build
    assert "aws ecr create-repository --region eu-west-1 --repository-name glms" in text
    pusher = "docker" if engine == "docker" else "podman"
    assert (
        f"aws ecr get-login-password --region eu-west-1 | {pusher} login --username AWS "
        "--password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    ) in text
    local = f"smglm:{_version()}" if engine == "docker" else f"localhost/smglm:{_version()}"
    assert f"+ {pusher} tag {local} {uri}" in lines
    push = "+ docker push" if engine == "docker" else "+ podman push --format v2s2"
    assert f"{push} {uri}" in lines


def test_build_and_push_rejects_an_unknown_engine():
    proc = _run([str(BUILD), "--dry-run", "--engine", "kaniko"], timeout=30, check=False)
    assert proc.returncode == 2
    assert "--engine must be docker, podman or buildah; got 'kaniko'" in proc.stderr


# -- the image ---------------------------------------------------------------------------------
@pytest.fixture
def podman(podman_env):
    def run(*args: str, timeout: float = 120, check: bool = True):
        return _run(["podman", *args], podman_env, timeout=timeout, check=check)

    return run


@pytest.mark.container
@pytest.mark.slow
def test_image_is_docker_v2s2_amd64_with_sagemaker_settings(image, podman):
    info = json.loads(podman("image", "inspect", image).stdout)[0]
    assert info["ManifestType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert info["Architecture"] == "amd64"
    config = info["Config"]
    assert config["Labels"]["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert not config.get("Entrypoint")
    assert config.get("User", "") in ("", "root", "0")
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert info["Size"] < 900e6, f"the image grew to {info['Size'] / 1e6:.0f} MB"


@pytest.mark.container
@pytest.mark.slow
def test_image_has_the_runtime_and_not_the_notebook_stack(image, podman):
    script = (
        "import importlib.util, shutil, os, smglm, smglm.runtime, gunicorn;"
        "absent = ['IPython', 'ipywidgets', 'sagemaker', 'mlflow', 'pytest', 'statsmodels'];"
        "print(json.dumps({"
        "'present': [m for m in absent if importlib.util.find_spec(m)],"
        "'train': shutil.which('train'), 'serve': shutil.which('serve'),"
        "'opt_ml': os.path.exists('/opt/ml'), 'uid': os.getuid(),"
        "'compilers': [c for c in ('gcc', 'cc', 'g++', 'make') if shutil.which(c)]}))"
    )
    out = podman("run", "--rm", "--pull=never", image, "python", "-c", "import json;" + script)
    found = json.loads(out.stdout.splitlines()[-1])
    assert found == {
        "present": [],
        "train": "/usr/local/bin/train",
        "serve": "/usr/local/bin/serve",
        "opt_ml": False,
        "uid": 0,
        "compilers": [],
    }


# -- train and serve as SageMaker runs them -----------------------------------------------------
def _design(df: pd.DataFrame) -> pd.DataFrame:
    return design(df, {"x1": None, "x2": None, "cat": ["a", "b", "c"]})


def _ml_tree(tmp: Path, data: pd.DataFrame, config: str, hyperparameters: dict[str, str]) -> Path:
    """An /opt/ml tree as SageMaker lays it out for channels ``train`` and ``config``."""
    half = len(data) // 2  # two files: a channel may hold many
    channel = {"S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
    root = ml_tree(
        tmp / "ml",
        {
            "train": {"part-0.csv": data.iloc[:half], "part-1.csv": data.iloc[half:]},
            "config": {"glm.yaml": config},
        },
        channel_config={"train": {"ContentType": "text/csv", **channel}, "config": channel},
        hyperparameters=hyperparameters,
    )
    for sub in ("model", "output/data", "checkpoints"):
        (root / sub).mkdir(parents=True)
    return root


CONFIG = "target: y\npredictors: [x1, x2, cat]\nfamily: poisson\n"
HYPERPARAMETERS = {
    "fit_intercept": "true",
    "sagemaker_container_log_level": "20",
    "sagemaker_job_name": "smglm-container-test",
}


@pytest.fixture(scope="module")
def trained(image, podman_env, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """A training job run in the image: its /opt/ml tree and its data."""
    data = poisson_frame(600, seed=3)
    root = _ml_tree(tmp_path_factory.mktemp("train"), data, CONFIG, HYPERPARAMETERS)
    job = ["-e", "TRAINING_JOB_NAME=smglm-container-test", "-v", f"{root}:/opt/ml"]
    proc = _run(
        ["podman", "run", "--rm", "--pull=never", *job, image, "train"],
        podman_env,
        timeout=300,
        check=False,
    )
    failure = root / "output" / "failure"
    assert proc.returncode == 0, (
        f"train exited {proc.returncode}; failure: "
        f"{failure.read_text() if failure.exists() else None}\n{proc.stderr[-4000:]}"
    )
    return root, data


@pytest.mark.container
@pytest.mark.slow
def test_train_in_image_writes_the_model_matching_statsmodels(trained):
    import statsmodels.api as sm

    root, data = trained
    model = root / "model"
    for name in ("model.json", "coefficients.csv", "metrics.json", "config.yaml"):
        assert (model / name).is_file(), sorted(p.name for p in model.iterdir())
    assert not (root / "output" / "failure").exists()
    assert any((root / "output" / "data").rglob("*.png"))
    reference = sm.GLM(data.y, _design(data), family=sm.families.Poisson()).fit(tol=1e-12)
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["train"]["n_obs"] == len(data)
    assert metrics["train"]["deviance"] == pytest.approx(reference.deviance, rel=RTOL)
    assert metrics["train"]["aic"] == pytest.approx(reference.aic, rel=RTOL)
    # The numeric slopes do not depend on which level of `cat` is the reference.
    coefficients = pd.read_csv(model / "coefficients.csv").set_index("term")["estimate"]
    assert coefficients["x1"] == pytest.approx(reference.params["x1"], abs=1e-4)
    assert coefficients["x2"] == pytest.approx(reference.params["x2"], abs=1e-4)


@pytest.mark.container
@pytest.mark.slow
def test_train_in_image_with_a_missing_column_writes_failure_and_exits_nonzero(
    image, podman_env, tmp_path
):
    config = "target: y\npredictors: [x1, x9]\nfamily: poisson\n"
    root = _ml_tree(tmp_path, poisson_frame(50, seed=4), config, {})
    proc = _run(
        ["podman", "run", "--rm", "--pull=never", "-v", f"{root}:/opt/ml", image, "train"],
        podman_env,
        timeout=300,
        check=False,
    )
    assert proc.returncode != 0
    reason = (root / "output" / "failure").read_text()
    assert "x9" in reason
    assert 0 < len(reason) <= 1024
    assert not (root / "model" / "model.json").exists()


def _http(url: str, body: bytes | None = None, content_type: str = "text/csv") -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@contextlib.contextmanager
def _serving(image: str, podman_env: dict[str, str], model: Path) -> Iterator[tuple[str, str]]:
    """``serve`` running detached in the image; yields (container name, base URL)."""
    name = f"smglm-serve-{uuid.uuid4().hex[:8]}"
    port = free_port()
    options = ["-e", f"SAGEMAKER_BIND_TO_PORT={port}", "-v", f"{model}:/opt/ml/model:ro"]
    _run(
        ["podman", "run", "-d", "--pull=never", "--name", name, *options, image, "serve"],
        podman_env,
    )
    try:
        yield name, f"http://127.0.0.1:{port}"
    finally:
        _run(["podman", "rm", "-f", "-t", "0", name], podman_env, check=False)


def _wait_for_ping(base: str, name: str, podman_env: dict[str, str], limit: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        with contextlib.suppress(OSError):
            status, _ = _http(f"{base}/ping")
            if status == 200:
                return time.monotonic() - start
        time.sleep(0.2)
    logs = _run(["podman", "logs", name], podman_env, check=False)
    raise AssertionError(f"no 200 from /ping within {limit} s\n{logs.stdout}\n{logs.stderr}")


@pytest.mark.container
@pytest.mark.slow
def test_serve_in_image_answers_ping_and_csv_invocations_and_stops_on_sigterm(
    trained, image, podman_env
):
    import statsmodels.api as sm

    root, data = trained
    reference = sm.GLM(data.y, _design(data), family=sm.families.Poisson()).fit(tol=1e-12)
    rows = poisson_frame(5, seed=11)
    expected = reference.predict(_design(rows))
    body = rows[["x1", "x2", "cat"]].to_csv(index=False, header=False).encode()
    with _serving(image, podman_env, root / "model") as (name, base):
        _wait_for_ping(base, name, podman_env, limit=60)
        status, text = _http(f"{base}/invocations", body)
        assert status == 200, text
        predictions = [float(v) for v in text.split()]
        np.testing.assert_allclose(predictions, expected, rtol=1e-4)
        status, _ = _http(f"{base}/invocations", b"{}", content_type="application/x-unknown")
        assert status == 415
        _run(["podman", "stop", "-t", "20", name], podman_env, timeout=60)
        state = _run(
            ["podman", "inspect", "--format", "{{.State.ExitCode}}", name], podman_env
        ).stdout.strip()
    assert state == "0", f"exit code {state}: SIGTERM not handled (137: killed after 20 s)"


# -- the local backend running the image ------------------------------------------------------
@pytest.mark.container
@pytest.mark.slow
def test_local_backend_with_podman_runs_the_image_end_to_end(image, podman_env, tmp_path):
    """``LocalBackend(runner="podman")``: the same job as the default local backend, but in the
    image, as SageMaker runs it; then a failing job keeps the reason the image wrote."""
    import io

    import smglm
    from smglm.errors import JobFailed
    from smglm.launch.local import LocalBackend

    data = poisson_frame(600, seed=5)
    config = {"target": "y", "predictors": ["x1", "x2", "cat"], "family": "poisson"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in podman_env.items():  # the supervisor runs podman with this environment
            if os.environ.get(key) != value:
                mp.setenv(key, value)
        backend = LocalBackend(tmp_path / "home", runner="podman")
        job = smglm.train(  # PNGs too: the image draws them as on SageMaker
            config, data, backend=backend, image_uri=image, tracking=False, report_images=True
        )
        job.wait(out=io.StringIO(), timeout=300)
        assert job.status == "Completed", job.failure_reason
        log = job.logs()
        assert "smglm.runtime.train: fitting a poisson/log GLM on 600 rows" in log
        assert "forked from the warm worker" not in log
        assert job.describe()["AlgorithmSpecification"]["TrainingImage"] == image
        in_process = smglm.fit(config, data)
        np.testing.assert_allclose(job.model.predict(data), in_process.predict(data), rtol=1e-8)
        assert any((job.artifacts() / "output").rglob("one_way_cat.png"))

        broken = smglm.train({**config, "predictors": ["x1", "x3"]}, "file://" + str(
            _csv(tmp_path, data)), backend=backend, image_uri=image, tracking=False)  # fmt: skip
        with pytest.raises(JobFailed):
            broken.wait(out=io.StringIO(), timeout=300)
        assert broken.status == "Failed"
        assert "column 'x3' is not in the" in (broken.failure_reason or "")


def _csv(tmp_path: Path, data: pd.DataFrame) -> Path:
    folder = tmp_path / "csv"
    folder.mkdir()
    data.to_csv(folder / "train.csv", index=False)
    return folder
