"""Virtualenvs with the SageMaker Python SDK, for the tests that run the SDK itself
(``tests/test_sdk_bridge.py``, ``tests/test_sdk_local_mode.py``).

smglm never depends on the SDK, so each major version is installed into a virtualenv of its
own, with a ``.pth`` file putting smglm's sources on its path. One test run installs each
requirement once: the virtualenvs live in the run's temporary folder, which the xdist workers
of a run share (``<basetemp>/sdk-venvs/``, under a lock). ``SMGLM_TEST_SDK2_PYTHON`` /
``SMGLM_TEST_SDK3_PYTHON`` name an interpreter that already has that SDK, to use instead.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import smglm

#: The requirement of each major version (Studio's images ship either).
REQUIREMENTS = {"2": "sagemaker<3", "3": "sagemaker>=3,<4"}


def _run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary folder of this test run: an xdist worker's basetemp is
    ``<run's basetemp>/popen-gwN``, so its parent is shared by the run's workers."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def sdk_python(major: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An interpreter with SageMaker SDK ``major`` ("2" or "3") and smglm's sources."""
    given = os.environ.get(f"SMGLM_TEST_SDK{major}_PYTHON")
    if given:
        return given
    requirement = REQUIREMENTS[major]
    folder = _run_folder(tmp_path_factory) / "sdk-venvs" / f"v{major}"
    folder.mkdir(parents=True, exist_ok=True)
    venv = folder / "venv"
    python = venv / "bin" / "python"
    stamp = folder / "installed"
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == requirement:
            return str(python)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        start = time.monotonic()
        pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]
        done = subprocess.run(
            [*pip, "install", "--quiet", requirement], capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, f"pip install {requirement!r} failed:\n{done.stderr[-3000:]}"
        print(f"SDK v{major} virtualenv installed in {time.monotonic() - start:.1f} s")
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        source = Path(smglm.__file__).resolve().parents[1]
        Path(site, "smglm-sources.pth").write_text(f"{source}\n")
        stamp.write_text(requirement)
    return str(python)
