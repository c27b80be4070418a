"""Benchmark of how quickly smglm answers: imports, ``%load_ext``, and stops.

These were wall-clock assertions in the tests; the tests now check what happens (no heavy
import, the job ends Stopped with the SIGTERM reason, serve exits 0) and the times are here:

- ``import smglm`` and ``%load_ext smglm`` in a fresh interpreter (target: load_ext < 0.3 s);
- a local job's ``job.stop()`` while the runtime fits 300,000 rows, until ``Stopped``, cold
  (``python -m smglm.runtime train`` in a fresh interpreter) and warm (forked from the warm
  worker, started by an untimed first job) (target: < 10 s, the stop grace; SageMaker allows 120 s);
- ``python -m smglm.runtime serve``: SIGTERM to exit, with an idle kept-alive connection open
  (target: < 5 s; SageMaker allows 30 s).

Medians of ``--repeat`` runs. Run: ``python benchmarks/responsiveness.py [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

IMPORTS = """
import json, time
start = time.perf_counter()
import smglm
imported = time.perf_counter() - start
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
start = time.perf_counter()
shell.extension_manager.load_extension("smglm")
print(json.dumps({"import smglm": imported, "%load_ext smglm": time.perf_counter() - start}))
"""

CONFIG = {
    "target": "claim_count",
    "exposure": "exposure",
    "family": "poisson",
    "predictors": ["driver_age", "vehicle_power", "area", "region", "vehicle_brand"],
}


def imports(folder: Path) -> dict[str, float]:
    env = {**os.environ, "IPYTHONDIR": str(folder / "ipython")}
    out = subprocess.run(
        [sys.executable, "-c", IMPORTS], capture_output=True, text=True, check=True, env=env
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def job_stop(home: Path, data: Any, *, warm: bool) -> float:
    """Seconds from ``job.stop()`` (the runtime fitting) to the job's ``Stopped`` status."""
    import smglm
    from smglm.launch.local import LocalBackend

    backend = LocalBackend(home, warm=warm, stop_grace_seconds=10)
    job = smglm.train(CONFIG, data, backend=backend, tracking=False, reuse=False)
    deadline = time.monotonic() + 120
    while "fitting a poisson" not in job.logs() and time.monotonic() < deadline:
        time.sleep(0.02)
    start = time.perf_counter()
    job.stop()
    job.wait(out=io.StringIO(), raise_on_failure=False, timeout=60)
    seconds = time.perf_counter() - start
    if job.status != "Stopped":
        raise RuntimeError(f"{job.name} ended {job.status}, not Stopped: {job.failure_reason}")
    return seconds


def serve_stop(model_dir: Path, folder: Path) -> float:
    """Seconds from SIGTERM to the exit of ``serve``, with an idle kept-alive connection."""
    root = folder / "ml"
    (root / "model").mkdir(parents=True, exist_ok=True)
    for f in model_dir.iterdir():
        if f.is_file():
            (root / "model" / f.name).write_bytes(f.read_bytes())
    log = folder / "serve.log"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {
        **os.environ,
        "SMGLM_ML_ROOT": str(root),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
    }
    command = [sys.executable, "-m", "smglm.runtime", "serve", "--host", "127.0.0.1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while "Listening at" not in log.read_text() and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"serve did not start:\n{log.read_text()}")
            time.sleep(0.05)
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(100):
            try:
                idle.request("GET", "/ping")
                idle.getresponse().read()
                break
            except OSError:
                time.sleep(0.05)
        start = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        seconds = time.perf_counter() - start
        idle.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measure (median)")
    args = parser.parse_args(argv)
    import smglm
    from smglm.datasets import motor

    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="smglm-bench-") as tmp:
        folder = Path(tmp)
        os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        for _ in range(args.repeat):
            for name, seconds in imports(folder).items():
                results.setdefault(name, []).append(seconds)
        data = motor(300_000, seed=5)
        for warm in (False, True):
            name = f"local job stop, {'warm' if warm else 'cold'}"
            home = folder / ("warm" if warm else "cold")
            if warm:  # starts the warm worker: not timed
                job_stop(home, data, warm=True)
            for _ in range(args.repeat):
                results.setdefault(name, []).append(job_stop(home, data, warm=warm))
        model_dir = folder / "model"
        smglm.fit(CONFIG, motor(5_000, seed=1)).save(model_dir)
        for i in range(args.repeat):
            seconds = serve_stop(model_dir, folder / f"serve-{i}")
            results.setdefault("serve SIGTERM to exit", []).append(seconds)
        from smglm.launch import warm as warm_worker

        warm_worker.shutdown_worker(folder / "warm")
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, repeat {args.repeat}")
    print("| measure | median | min | max |\n|---|---|---|---|")
    for name, values in results.items():
        print(
            f"| {name} | {statistics.median(values):.3f} s | {min(values):.3f} s "
            f"| {max(values):.3f} s |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
