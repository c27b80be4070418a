"""Test-wide set-up: every test runs with smglm's working folder, MLflow's store, smglm's user
config and IPython's folder in a temporary folder, so the suite never writes into the
repository or the user's home. Local jobs run without the warm worker, except in the tests
that ask for it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# moto's server, the SageMaker simulator and AWS fixtures (tests/aws_harness.py); the IPython
# shell of the magic and form tests (tests/notebook_shell.py); the image and podman's settings
# (tests/container_harness.py)
pytest_plugins = ["aws_harness", "notebook_shell", "container_harness"]


@pytest.fixture(autouse=True, scope="session")
def _isolated_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("stores")
    names = (
        "SMGLM_HOME",
        "MLFLOW_TRACKING_URI",
        "SMGLM_CONFIG_FILE",
        "IPYTHONDIR",
        "SMGLM_LOCAL_WARM",
        "SMGLM_WARM_IDLE_SECONDS",
    )
    saved = {k: os.environ.get(k) for k in names}
    os.environ["SMGLM_HOME"] = str(root / "smglm-home")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["SMGLM_CONFIG_FILE"] = str(root / "smglm-config.yaml")
    os.environ["IPYTHONDIR"] = str(root / "ipython")
    # local jobs run cold unless a test asks for the warm worker (tests/test_launch_warm.py):
    # most tests use a home of their own, and a resident worker per home would add up
    os.environ["SMGLM_LOCAL_WARM"] = "0"
    os.environ["SMGLM_WARM_IDLE_SECONDS"] = "120"
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    """In-process runs of the runtime configure the root logger; put it back after the test."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


@pytest.fixture
def fresh_notebook_settings() -> Iterator[None]:
    """Each test starts and ends with no session settings (``%sm_config``)."""
    from smglm.notebook.settings import reset_session

    reset_session()
    yield
    reset_session()


@pytest.fixture(scope="session")
def spark():
    """The test process's one Spark session (local[2]), started on first use and shared by
    every Spark test in the process. Spark tests carry ``pytest.mark.spark`` and
    ``pytest.mark.xdist_group("spark")`` so that one xdist worker runs them all (one JVM)."""
    from smglm.glm.engines.spark import spark_session

    return spark_session("local[2]")
