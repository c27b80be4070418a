"""The image fixtures shared by the container tests (``tests/test_container.py``,
``tests/test_sdk_local_mode.py``): registered in tests/conftest.py's ``pytest_plugins``.

``podman_env`` (session): installs the tools if missing (``scripts/container-tools``, as root)
and returns the environment that points buildah and podman at the cache folder
(``scripts/container-env``). ``image`` (session): the image built from ``container/`` once per
test run; xdist workers share it through a lock and a stamp file in the cache folder, so a run
builds it once however many workers ask for it.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "container" / "build_and_push.sh"


def run(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command; with ``check``, a non-zero exit fails with its output's tail."""
    proc = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{shlex.join(args)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def podman_env() -> dict[str, str]:
    """The environment that points buildah and podman at the repository's cache folder."""
    run([str(ROOT / "scripts" / "container-tools")], timeout=300)
    out = run([str(ROOT / "scripts" / "container-env")], timeout=30).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        words = shlex.split(line)
        assert words[0] == "export", line
        name, _, value = words[1].partition("=")
        env[name] = value
    return env


@pytest.fixture(scope="session")
def image(podman_env) -> str:
    """The image, built once per test run (xdist workers share it through a lock and a stamp)."""
    cache = Path(podman_env["SMGLM_CONTAINER_CACHE"])
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    stamp = cache / "image.testrun"
    with open(cache / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if run_id and stamp.exists():
            recorded_run, _, name = stamp.read_text().partition(" ")
            if recorded_run == run_id:
                return name
        base = run([str(ROOT / "scripts" / "container-base")], podman_env, timeout=600)
        local = ["--local-only", "--offline", "--engine", "buildah", "--no-pull"]
        base_image = ["--base-image", base.stdout.split()[-1]]
        built = run([str(BUILD), *local, *base_image], podman_env, timeout=900)
        name = built.stdout.split()[-1]
        # Earlier builds' images, now untagged; the layers the build cache uses stay.
        run(["podman", "image", "prune", "--force"], podman_env)
        stamp.write_text(f"{run_id} {name}")
    return name


def poisson_frame(n: int, seed: int) -> pd.DataFrame:
    """A small Poisson data set (x1, x2, cat -> y) that the container tests fit and score."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "x1": rng.normal(size=n).round(4),
            "x2": rng.uniform(-1, 1, size=n).round(4),
            "cat": rng.choice(["a", "b", "c"], size=n),
        }
    )
    eta = 0.3 + 0.5 * df.x1 - 0.4 * df.x2 + df.cat.map({"a": 0.0, "b": 0.3, "c": -0.5})
    df["y"] = rng.poisson(np.exp(eta))
    return df
