"""Benchmark of the Spark engine (Spark MLlib's GLR in ``local[2]``) against glum on one machine.

The data is the synthetic motor portfolio (:func:`smglm.datasets.write_motor`): the Poisson
claim-frequency model with exposure, 10 numeric and 4 categorical predictors (5/12/25/50
levels; 98 coefficients and the intercept), as ``benchmarks/fit.py`` fits it, read from one
Parquet file per row count (cached in ``benchmarks/.data/``).

Each measurement runs in a fresh Python process. What is timed:

- glum: ``smglm.fit(config, path)``: reading the Parquet file into pandas, the checks, the
  fit, standard errors and metrics (``fit``: glum's own fit); peak RSS of the process;
- Spark: the engine's driver (:func:`smglm.glm.engines.spark_driver.run`) on the Parquet file
  in a Spark session started before the clock (JVM start-up reported apart): Spark reads the
  file, finds the levels and the most-exposure references, builds the design, fits
  ``GeneralizedLinearRegression`` and computes the exact deviances (and, when the report
  module is installed, the report tables; reported apart). ``materialize``: the one pass that
  reads the file, builds the design columns and caches them; ``glr``: Spark's IRLS on the
  cached rows; per iteration, one ``treeAggregate`` of X'WX and X'Wz over the rows.

The per-row cost of one IRLS aggregation is ``glr / (iterations) / rows`` on 2 cores.

Run: ``python benchmarks/scale_spark.py [--rows 1000000 5000000] [--engines glum spark]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from smglm.datasets import MOTOR_CATEGORICAL, MOTOR_NUMERIC

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"

CONFIG: dict[str, Any] = {
    "family": "poisson",
    "target": "claim_count",
    "exposure": "exposure",
    "predictors": MOTOR_NUMERIC + MOTOR_CATEGORICAL,  # benchmarks/fit.py's model
}


def data_file(rows: int) -> Path:
    """The Parquet file of ``rows`` motor rows (written once)."""
    from smglm.datasets import write_motor

    path = DATA / f"motor_{rows}.parquet"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        write_motor(path, rows)
    return path


def child_glum(path: Path) -> dict[str, Any]:
    import smglm

    t0 = time.perf_counter()
    result = smglm.fit(CONFIG, path)
    wall = time.perf_counter() - t0
    return {
        "wall": wall,
        "fit": result.fit_seconds,
        "iterations": result.metrics["fit"]["iterations"],
        "deviance": result.metrics["train"]["deviance"],
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def child_spark(path: Path) -> dict[str, Any]:
    from smglm.config import as_glm_config
    from smglm.glm.engines import spark_driver
    from smglm.glm.engines.spark import job_document, spark_session

    t0 = time.perf_counter()
    spark = spark_session()
    spark.range(1).count()  # the JVM up and warm
    startup = time.perf_counter() - t0
    cfg = as_glm_config(CONFIG).resolved()
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        doc = spark_driver.run(spark, job_document(cfg, str(path)), out)
        wall = time.perf_counter() - t0
    phases = doc["phases"]
    report = phases.get("report", 0.0)
    return {
        "wall": wall,
        "wall_without_report": wall - report,
        "report": report,
        "startup": startup,
        "phases": phases,
        "materialize": doc["materialize_seconds"],
        "glr": doc["seconds"],
        "iterations": doc["iterations"],
        # the driver's own aggregation, or the report module's split metrics when it ran
        "deviance": (doc.get("statistics") or doc["splits"]["train"]["metrics"])["deviance"],
        "spark_version": doc["spark_version"],
    }


def run_child(engine: str, rows: int) -> dict[str, Any]:
    path = data_file(rows)
    env = dict(os.environ)
    env.setdefault("SMGLM_SPARK_DRIVER_MEMORY", "6g")
    proc = subprocess.run(
        [sys.executable, __file__, "--child", engine, "--data", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} at {rows} rows failed:\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out.update(engine=engine, rows=rows)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--engines", nargs="+", default=["glum", "spark"])
    parser.add_argument("--child", choices=["glum", "spark"])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.child:
        fn = child_glum if args.child == "glum" else child_spark
        print(json.dumps(fn(args.data)))
        return 0
    results = []
    for rows in args.rows:
        for engine in args.engines:
            res = run_child(engine, rows)
            results.append(res)
            if engine == "glum":
                print(
                    f"glum  {rows:>10,} rows: {res['wall']:7.1f} s (fit {res['fit']:.1f} s, "
                    f"{res['iterations']} it), peak RSS {res['peak_rss_gib']:.2f} GiB",
                    flush=True,
                )
            else:
                per_row = res["glr"] / max(res["iterations"], 1) / rows
                res["per_row_iteration_ns"] = per_row * 1e9
                print(
                    f"spark {rows:>10,} rows: {res['wall']:7.1f} s (without report "
                    f"{res['wall_without_report']:.1f} s; materialize {res['materialize']:.1f} "
                    f"s, IRLS {res['glr']:.1f} s / {res['iterations']} it = "
                    f"{per_row * 1e9:.0f} ns per row and iteration; JVM start "
                    f"{res['startup']:.1f} s); phases "
                    + ", ".join(f"{k} {v:.1f}" for k, v in res["phases"].items()),
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
