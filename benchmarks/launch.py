"""Benchmark of a local training job end to end against the bare in-process ``smglm.fit``.

The data is the synthetic motor portfolio (:func:`smglm.datasets.motor`, seed 0): a Poisson
claim-frequency model with exposure and 8 predictors (5 numeric, 3 categorical). For each row
count it measures, median of ``--repeat`` runs (interleaved):

- ``bare fit``: ``smglm.fit(config, df)`` in this process, after one warm-up fit;
- ``fit + report``: the same fit, then what a local job writes besides: the report tables (no
  PNGs: ``JobConfig.report_images`` is auto, off on the local backend) and the model folder,
  in this process; ``job / (fit + report)`` is then the cost of running it as a job, not of
  the work itself;
- ``cold job``: ``smglm.train(config, df, backend=LocalBackend(), wait=True)``: the
  supervisor runs ``python -m smglm.runtime train`` in a fresh interpreter;
- ``warm job``: the same with ``LocalBackend(warm=True)`` after one warm-up job that started
  the warm worker (:mod:`smglm.launch.warm`), which forks ``train`` from its warm imports;
- ``to Training``: from the ``smglm.train`` call to the job's SecondaryStatus "Training";
- ``to fit``: from "Training" to the runtime's "fitting" log line: the interpreter start and
  imports when cold (the fork when warm), reading the channels, checking the config;
- ``job fit``: the fit seconds in the job's ``metrics.json``; ``overhead`` = job wall - job fit;
- ``report display``: after each warm job, ``job.report().to_html()`` in this process: reading
  the job's output and drawing the figures from its tables (where the PNGs went), as a
  notebook cell shows the report; ``warm + display`` is the warm job's wall plus that;
- the phases of a job (:data:`PHASES`), between the call, the job's CreationTime, "Training",
  the runtime's log lines of :data:`PHASE_MARKS`, "Completed" and the return of ``wait``.

All jobs run with ``tracking=False`` (MLflow tracking has its own benchmark, ``tracking.py``).

Run: ``python benchmarks/launch.py [--rows 10000 1000000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

CONFIG = {
    "target": "claim_count",
    "exposure": "exposure",
    "family": "poisson",
    "predictors": [
        "driver_age",
        "vehicle_age",
        "vehicle_power",
        "bonus_malus",
        "density_log",
        "area",
        "vehicle_brand",
        "region",
    ],
}


def _stamp(line: str) -> float | None:
    try:
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    except ValueError:
        return None


#: Log lines that end one phase of a job and start the next (their first occurrence).
PHASE_MARKS = (
    "smglm.runtime.channels: reading channel 'train'",
    "smglm.runtime.train: fitting a",
    "smglm.runtime.train: fit done",
    "smglm.runtime.failure: train finished",
)
#: The phases between the call, CreationTime, "Training", the marks, "Completed" and the return.
PHASES = (
    "submit",
    "supervisor",
    "runtime start",
    "read data",
    "fit phase",
    "report + model",
    "end, upload",
    "wait returns",
)


def _first_stamp(log: str, text: str) -> float:
    stamp = next((_stamp(x) for x in log.splitlines() if text in x), None)
    return float("nan") if stamp is None else stamp


def _bare(df: Any) -> dict[str, float]:
    import smglm

    t0 = time.perf_counter()
    result = smglm.fit(CONFIG, df)
    return {"wall": time.perf_counter() - t0, "fit": float(result.fit_seconds)}


def _fit_and_report(df: Any) -> dict[str, float]:
    import smglm
    from smglm.glm.report.scoring import scored_from_fit
    from smglm.runtime.report_files import plot_workers, write_reports
    from smglm.tracking.pyfunc import save_pyfunc_model

    with tempfile.TemporaryDirectory(prefix="smglm-launch-bench-report-") as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        result = smglm.fit(CONFIG, df, keep_fitted=True)
        scored = scored_from_fit(result, "train")
        write_reports(
            result.config,
            [(scored, out / "train", result.convergence)],
            workers=plot_workers(),
            result=result,
            images=False,
        )
        result.save(out / "model")
        save_pyfunc_model(out / "model" / "mlflow_model", out / "model" / "model.json")
        return {"wall": time.perf_counter() - t0}


def _job(df: Any, backend: Any, display: bool = False) -> dict[str, float]:
    import smglm

    called = time.time()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        job = smglm.train(CONFIG, df, backend=backend, wait=True, logs=False, tracking=False)
    wall = time.perf_counter() - t0
    if job.status != "Completed":
        raise RuntimeError(f"job {job.name} ended {job.status}: {job.failure_reason}")
    folder = backend.job_dir(job.name)
    state = job.describe()
    training = next(t for t in state["SecondaryStatusTransitions"] if t["Status"] == "Training")
    t_training = datetime.fromisoformat(training["StartTime"]).timestamp()
    first = next(
        (_stamp(x) for x in job.logs().splitlines() if "smglm.runtime.train: fitting a" in x), None
    )
    metrics = json.loads((folder / "ml" / "output" / "data" / "metrics.json").read_text())
    fit = float(metrics["fit"]["seconds"])
    warm = "forked from the warm worker" in job.logs()
    ended = datetime.fromisoformat(state["SecondaryStatusTransitions"][-1]["StartTime"])
    marks = [
        called,
        datetime.fromisoformat(state["CreationTime"]).timestamp(),
        t_training,
        *(_first_stamp(job.logs(), text) for text in PHASE_MARKS),
        ended.timestamp(),
        called + wall,
    ]
    phases = {name: b - a for name, a, b in zip(PHASES, marks[:-1], marks[1:], strict=True)}
    shown = float("nan")
    if display:
        t0 = time.perf_counter()
        html = job.report().to_html()
        shown = time.perf_counter() - t0
        if "<img" not in html:
            raise RuntimeError(f"job {job.name}'s report shows no figure")
    return {
        "display": shown,
        **phases,
        "wall": wall,
        "to_training": t_training - called,
        "to_fit": (first - t_training) if first else float("nan"),
        "fit": fit,
        "overhead": wall - fit,
        "warm": float(warm),
    }


def _med(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--home", type=Path, default=None, help="smglm home (default: a tmp dir)")
    parser.add_argument(
        "--jobs",
        nargs="+",
        choices=["cold", "warm"],
        default=["cold", "warm"],
        help="the kinds of job to run (default: both)",
    )
    args = parser.parse_args()

    import smglm
    from smglm.datasets import motor
    from smglm.launch.local import LocalBackend

    print(
        f"python {platform.python_version()}, smglm {smglm.__version__}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
    )
    with tempfile.TemporaryDirectory(prefix="smglm-launch-bench-") as tmp:
        home = args.home or Path(tmp)
        cold = LocalBackend(home / "cold", warm=False)
        warm = LocalBackend(home / "warm", warm=True)
        try:
            table = []
            for n in args.rows:
                df = motor(n, seed=0)
                _bare(df)  # warm-up: first-call costs of this process
                _fit_and_report(df)
                if "warm" in args.jobs:
                    _job(df, warm)  # warm-up: starts the warm worker (and uploads the data)
                if "cold" in args.jobs:
                    _job(df, cold)  # uploads the data for the cold home
                runs: dict[str, list[dict[str, float]]] = {
                    "bare": [],
                    "report": [],
                    "cold": [],
                    "warm": [],
                }
                for _ in range(args.repeat):
                    runs["bare"].append(_bare(df))
                    runs["report"].append(_fit_and_report(df))
                    if "cold" in args.jobs:
                        runs["cold"].append(_job(df, cold))
                    if "warm" in args.jobs:
                        runs["warm"].append(_job(df, warm, display=True))
                if not all(r["warm"] for r in runs["warm"]):
                    print(f"WARNING: some warm jobs at {n:,} rows fell back to a cold start")
                table.append((n, runs))
        finally:
            warm.shutdown_warm()
    print(f"load average {os.getloadavg()[0]:.1f} at end; medians of {args.repeat}, seconds\n")
    print(
        "| rows | bare fit (glum fit) | fit + report | job | wall | job / bare | "
        "job / (fit + report) | to Training | to fit | job fit | overhead |"
    )
    print("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for n, runs in table:
        bare = _med(runs["bare"], "wall")
        report = _med(runs["report"], "wall")
        for kind in args.jobs:
            r = runs[kind]
            wall = _med(r, "wall")
            print(
                f"| {n:,} | {bare:.2f} ({_med(runs['bare'], 'fit'):.2f}) | {report:.2f} | {kind} "
                f"| {wall:.2f} | {wall / bare:.2f} | {wall / report:.2f} "
                f"| {_med(r, 'to_training'):.2f} | {_med(r, 'to_fit'):.2f} "
                f"| {_med(r, 'fit'):.2f} | {_med(r, 'overhead'):.2f} |"
            )

    print("\nThe warm job, each run against the bare fit run just before it (medians of ratios):\n")
    print(
        "| rows | warm / bare | warm job | report display | warm + display | "
        "(warm + display) / bare | warm / bare per run |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|")
    for n, runs in table:
        if not runs["warm"]:
            continue
        pairs = [w["wall"] / b["wall"] for w, b in zip(runs["warm"], runs["bare"], strict=True)]
        shown = [w["wall"] + w["display"] for w in runs["warm"]]
        ends = [x / b["wall"] for x, b in zip(shown, runs["bare"], strict=True)]
        print(
            f"| {n:,} | {statistics.median(pairs):.2f} | {_med(runs['warm'], 'wall'):.2f} "
            f"| {_med(runs['warm'], 'display'):.2f} | {statistics.median(shown):.2f} "
            f"| {statistics.median(ends):.2f} | {', '.join(f'{x:.2f}' for x in pairs)} |"
        )

    print("\nWhere a job's time goes (medians, seconds, from the job's state and log times):\n")
    print(f"| rows | job | {' | '.join(PHASES)} |")
    print("|---:|---|" + "---:|" * len(PHASES))
    for n, runs in table:
        for kind in args.jobs:
            cells = " | ".join(f"{_med(runs[kind], p):.2f}" for p in PHASES)
            print(f"| {n:,} | {kind} | {cells} |")


if __name__ == "__main__":
    main()
