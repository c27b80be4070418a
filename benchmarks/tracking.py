"""Benchmark of what MLflow tracking adds to a local training job, and where the time goes.

The data is the synthetic motor portfolio (:func:`smglm.datasets.motor`); the model a Poisson
claim frequency with exposure and five predictors (3 numeric, 2 categorical). For each row
count, the same DataFrame is trained as a local job with ``tracking=True`` and with
``tracking=False`` (``reuse=False``, distinct job names, alternating order), ``--repeat`` times
each, after one untracked warm-up job (which uploads the data once; uploads are
content-addressed) and one run creation (so this process has imported mlflow before the clock
starts: a notebook pays that import once per kernel, reported separately).

Per job it reports the wall time of ``smglm.train(..., wait=True)`` (``Job.wait`` polls every
0.5 s, so the wall time is quantized), the job's own duration (created to ended, from its
state file), the runtime's live logging (its log lines "model written" to "results logged
live"), the runtime's exit (its last log line to the supervisor seeing it gone: interpreter
shutdown, longer once mlflow's ~1800 modules are loaded) and the supervisor's ending of the run
(``TrainingEndTime`` to the last write of the state file). What tracking added is given both as
the difference of the medians and as the sum of those tracking phases, which a busy machine
blurs less. The breakdown then times the tracking calls directly, each in a fresh process
where a job pays them (mlflow's import apart from the work): ``start_job_run`` in the
launcher, ``log_from_runtime`` in the runtime, ``finalize_job_run`` in the supervisor (ending a
run the runtime logged, and the launcher path that logs the results itself).

The store is the embedded sqlite store in a temporary folder (the default of a user who set
nothing), or with ``--server`` a real ``mlflow server`` started on 127.0.0.1.

Run: ``python benchmarks/tracking.py [--rows 100000 1000000] [--repeat 3] [--server]``;
``--python EXE`` runs the local supervisor with another interpreter (a wrapper script), to
measure a changed supervisor without changing the tree.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

CONFIG = {
    "target": "claim_count",
    "predictors": ["driver_age", "vehicle_power", "bonus_malus", "area", "region"],
    "exposure": "exposure",
    "family": "poisson",
}
EXPERIMENT = "smglm-benchmark"
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


# --- children: one tracking call in a fresh process, as a job pays it ----------------------


def _child(kind: str, uri: str, run_id: str, folder: str) -> None:
    import smglm.tracking.runs as runs  # the job's processes have smglm imported already

    model_dir, output_dir = Path(folder) / "model", Path(folder) / "output"
    t0 = time.perf_counter()
    from mlflow.entities import Metric, Param  # noqa: F401  (what the calls import)
    from mlflow.tracking import MlflowClient  # noqa: F401

    t1 = time.perf_counter()
    if kind == "runtime":
        os.environ.update(MLFLOW_RUN_ID=run_id, MLFLOW_TRACKING_URI=uri)
        ok = runs.log_from_runtime(model_dir, output_dir)
    elif kind in ("supervisor", "launcher-path"):
        state = {"TrainingJobStatus": "Completed", "BillableTimeInSeconds": 1}
        ok = runs.finalize_job_run(uri, run_id, state, lambda: (model_dir, output_dir))
    elif kind == "launcher":
        params = {"family": "poisson", "job.backend": "local"}
        ok = bool(
            runs.start_job_run(
                tracking_uri=uri, experiment=EXPERIMENT, job_name=run_id, params=params, tags={}
            )
        )
    else:
        raise SystemExit(f"unknown child {kind!r}")
    t2 = time.perf_counter()
    print(json.dumps({"import": t1 - t0, "work": t2 - t1, "ok": bool(ok)}), flush=True)


def _run_child(kind: str, uri: str, run_id: str = "", folder: str = "") -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, uri, run_id, folder]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child {kind} failed ({proc.returncode}):\n{proc.stderr}")
    out = dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    if not out["ok"]:
        raise RuntimeError(f"child {kind} did nothing:\n{proc.stderr}")
    return out


# --- jobs -------------------------------------------------------------------------------------


def _log_time(line: str) -> float | None:
    match = _STAMP.match(line)
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _runtime_times(logs: str) -> tuple[float, float | None]:
    """The runtime's live logging ("model written" to "results logged live" line; 0 if it did
    not log) and the time of its last line ("train finished")."""
    start = end = finished = None
    for line in logs.splitlines():
        if "model written to" in line:
            start = _log_time(line)
        elif "results logged live" in line:
            end = _log_time(line)
        elif "train finished" in line:
            finished = _log_time(line)
    return (end - start if start is not None and end is not None else 0.0), finished


def _job(data: Any, backend: Any, uri: str, tracked: bool, name: str) -> dict[str, Any]:
    import smglm

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        job = smglm.train(
            CONFIG,
            data,
            backend=backend,
            wait=True,
            logs=False,
            reuse=False,
            tracking=tracked,
            job_name=name,
            mlflow_tracking_uri=uri,
            mlflow_experiment=EXPERIMENT,
        )
    wall = time.perf_counter() - t0
    state = job.describe()
    state_file = backend.job_dir(job.name) / "state.json"
    ended = state_file.stat().st_mtime
    created = datetime.fromisoformat(state["CreationTime"]).timestamp()
    training_end = datetime.fromisoformat(state["TrainingEndTime"]).timestamp()
    uploading = next(
        datetime.fromisoformat(t["StartTime"]).timestamp()
        for t in state["SecondaryStatusTransitions"]
        if t["Status"] == "Uploading"
    )
    runtime_log, runtime_finished = _runtime_times(job.logs())
    logged_by = ""
    if job.run_id:
        from mlflow.tracking import MlflowClient

        logged_by = MlflowClient(uri).get_run(job.run_id).data.tags.get("smglm.logged_by", "")
    return {
        "wall": wall,
        "job": ended - created,
        "runtime_log": runtime_log,
        # the runtime's last log line to the supervisor seeing it exit: interpreter shutdown
        "runtime_exit": uploading - runtime_finished if runtime_finished else float("nan"),
        "supervisor_end": ended - training_end,
        "logged_by": logged_by,
        "folder": str(job.artifacts()),
    }


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


def _bench_rows(rows: int, repeat: int, uri: str, home: Path, python: str | None) -> dict[str, Any]:
    from smglm.datasets import motor
    from smglm.launch.local import LocalBackend

    data = motor(rows, seed=0)
    backend = LocalBackend(home, python=python)
    tag = uuid.uuid4().hex[:6]
    print(f"{rows:,} rows: warm-up job ...", file=sys.stderr, flush=True)
    _job(data, backend, uri, False, f"bench-{rows}-warmup-{tag}")
    results: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for i in range(repeat):
        for tracked in (True, False) if i % 2 == 0 else (False, True):
            name = f"bench-{rows}-{'on' if tracked else 'off'}-{i}-{tag}"
            res = _job(data, backend, uri, tracked, name)
            results[tracked].append(res)
            print(f"  {name}: {res['wall']:.2f} s", file=sys.stderr, flush=True)
    return {"on": results[True], "off": results[False]}


def _breakdown(uri: str, folder: str, repeat: int) -> dict[str, list[float]]:
    """Each tracking call timed where a job makes it; mlflow's import apart from the work."""
    from mlflow.tracking import MlflowClient

    from smglm.tracking.runs import LOGGED_BY, start_job_run

    client = MlflowClient(uri)
    out: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        out.setdefault(key, []).append(value)

    params = {f"p{i}": str(i) for i in range(26)}  # as many params as a job has
    for i in range(repeat):
        t0 = time.perf_counter()
        start_job_run(
            tracking_uri=uri,
            experiment=EXPERIMENT,
            job_name=f"breakdown-{i}",
            params=params,
            tags={"smglm.backend": "local"},
        )
        add("launcher_warm", time.perf_counter() - t0)
        cold = _run_child("launcher", uri, f"breakdown-cold-{i}")
        add("launcher_import", cold["import"])
        add("launcher_cold", cold["work"])

        def fresh_run() -> str:
            return start_job_run(
                tracking_uri=uri, experiment=EXPERIMENT, job_name="r", params={}, tags={}
            )

        live = fresh_run()
        res = _run_child("runtime", uri, live, folder)
        add("runtime_import", res["import"])
        add("runtime_log", res["work"])
        res = _run_child("supervisor", uri, live, folder)  # the runtime logged: status only
        add("supervisor_import", res["import"])
        add("supervisor_end", res["work"])
        unlogged = fresh_run()
        res = _run_child("launcher-path", uri, unlogged, folder)
        add("launcher_path_end", res["work"])
        assert client.get_run(unlogged).data.tags.get(LOGGED_BY) == "launcher"
    return out


# --- report -----------------------------------------------------------------------------------


def _report(results: dict[int, dict[str, Any]], repeat: int, store: str) -> str:
    """Per row count: the medians with tracking off and on, and what tracking added, both as
    the difference of the medians and as the sum of the tracking phases measured in each job
    (runtime logging + its longer exit + the supervisor's end of the run), which a busy
    machine blurs less."""
    lines = [
        f"store: {store}; median of {repeat} job(s) per cell, seconds",
        "",
        "| rows | tracking | train(wait=True) wall | job created->ended | runtime logging "
        "| runtime exit | supervisor end of run | logged by |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for rows, res in results.items():
        for key in ("off", "on"):
            runs = res[key]
            who = ",".join(sorted({r["logged_by"] for r in runs})) or "-"
            cells = [_median(runs, k) for k in ("wall", "job", "runtime_log", "runtime_exit")]
            cells.append(_median(runs, "supervisor_end"))
            lines.append(
                f"| {rows:,} | {key} | " + " | ".join(f"{c:.2f}" for c in cells) + f" | {who} |"
            )
    lines += [
        "",
        "| rows | added per job (wall) | ratio (wall) | added (job created->ended) "
        "| tracking phases in the job |",
        "|---:|---:|---:|---:|---:|",
    ]
    for rows, res in results.items():
        on, off = res["on"], res["off"]
        phases = (
            _median(on, "runtime_log")
            + _median(on, "runtime_exit")
            - _median(off, "runtime_exit")
            + _median(on, "supervisor_end")
            - _median(off, "supervisor_end")
        )
        lines.append(
            f"| {rows:,} | {_median(on, 'wall') - _median(off, 'wall'):+.2f} "
            f"| {_median(on, 'wall') / _median(off, 'wall'):.3f} "
            f"| {_median(on, 'job') - _median(off, 'job'):+.2f} | {phases:+.2f} |"
        )
    return "\n".join(lines)


def _report_breakdown(parts: dict[str, list[float]]) -> str:
    labels = [
        ("launcher_warm", "launcher: start_job_run, mlflow already imported (per job)"),
        ("launcher_import", "launcher: import mlflow (once per kernel)"),
        ("launcher_cold", "launcher: first start_job_run in a process (once per kernel)"),
        ("runtime_import", "runtime: import mlflow (per job, in the job)"),
        ("runtime_log", "runtime: log_from_runtime's work (per job, in the job)"),
        ("supervisor_import", "supervisor: import mlflow (per job, in the job)"),
        ("supervisor_end", "supervisor: finalize_job_run, results logged live (per job)"),
        ("launcher_path_end", "supervisor: finalize_job_run logging the results itself"),
    ]
    lines = ["| where | median s | min s |", "|---|---:|---:|"]
    for key, label in labels:
        values = parts.get(key, [])
        if values:
            lines.append(f"| {label} | {statistics.median(values):.2f} | {min(values):.2f} |")
    return "\n".join(lines)


def _machine() -> str:
    import mlflow
    import numpy
    import pandas

    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, mlflow {mlflow.__version__}, numpy {numpy.__version__}, "
        f"pandas {pandas.__version__}; load average {os.getloadavg()[0]:.1f}"
    )


@contextlib.contextmanager
def _server(folder: Path) -> Any:
    """A real ``mlflow server`` on 127.0.0.1 (sqlite store, artifacts in ``folder``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{folder / 'server.db'}",
        "--artifacts-destination",
        str(folder / "server-artifacts"),
    ]
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((folder / "server.log").read_text()[-3000:])
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--child``, one timed tracking call) and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3, help="jobs per cell (median)")
    parser.add_argument("--server", action="store_true", help="track to a real mlflow server")
    parser.add_argument(
        "--python", help="interpreter the local backend runs its supervisor with (to try a change)"
    )
    parser.add_argument("--child", nargs=4, metavar=("KIND", "URI", "RUN", "FOLDER"))
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    print(_machine(), flush=True)
    with tempfile.TemporaryDirectory(prefix="smglm-bench-tracking-") as tmp:
        root = Path(tmp)
        with contextlib.ExitStack() as stack:
            if args.server:
                uri, store = stack.enter_context(_server(root)), "mlflow server (sqlite, local)"
            else:
                uri, store = f"sqlite:///{root / 'mlflow.db'}", "embedded sqlite"
            from smglm.tracking.runs import start_job_run

            start_job_run(  # mlflow imported and the store made before any clock starts
                tracking_uri=uri, experiment=EXPERIMENT, job_name="warm", params={}, tags={}
            )
            results = {
                r: _bench_rows(r, args.repeat, uri, root / "home", args.python) for r in args.rows
            }
            last = results[args.rows[-1]]["on"][-1]["folder"]
            parts = _breakdown(uri, last, args.repeat)
        print(_report(results, args.repeat, store))
        print()
        print(_report_breakdown(parts))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
