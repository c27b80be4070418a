"""Test-wide set-up: every test runs with smglm's working folder and MLflow's store in a
temporary folder, so the suite never writes into the repository or the user's home."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# moto's server, the SageMaker simulator and AWS fixtures (tests/aws_harness.py)
pytest_plugins = ["aws_harness"]


@pytest.fixture(autouse=True, scope="session")
def _isolated_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("stores")
    saved = {k: os.environ.get(k) for k in ("SMGLM_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["SMGLM_HOME"] = str(root / "smglm-home")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
