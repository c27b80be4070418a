"""Benchmark of ``smglm.fit`` against glum called directly and statsmodels' GLM.

The data is the synthetic motor portfolio (:func:`smglm.datasets.write_motor`): a Poisson
claim-frequency model with exposure, 10 numeric and 4 categorical predictors (5/12/25/50
levels), read from one Parquet file per row count (cached in ``benchmarks/.data/``).

Each measurement runs in a fresh Python process, so the peak RSS (``ru_maxrss``) belongs to one
engine and one fit. Imports (numpy, pandas, glum, smglm, statsmodels) happen before the clock
starts in every child; what is timed is:

- ``load+fit``: reading the Parquet file and fitting (for smglm: the whole ``smglm.fit(config,
  path)`` call, which also checks the data and computes R-convention standard errors, metrics
  and the Gini index);
- ``fit``: the fit alone (glum's ``fit``; for smglm its ``FitResult.fit_seconds``, the same
  glum call; for statsmodels the dummy coding plus ``GLM(...).fit()``).

glum is configured as smglm configures it (``alpha=0``, ``drop_first=True``,
``gradient_tol=1e-8``, ``max_iter=100``, pandas categoricals, ``offset=log(exposure)``).
statsmodels runs only up to 1M rows (it needs ~10 GiB there).

Run: ``python benchmarks/fit.py [--rows 1000000 5000000] [--repeat 3] [--no-statsmodels]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGET = "claim_count"
EXPOSURE = "exposure"
ENGINES = ("glum", "smglm", "statsmodels")
STATSMODELS_MAX_ROWS = 1_000_000


def _predictors() -> list[str]:
    from smglm.datasets import MOTOR_CATEGORICAL, MOTOR_NUMERIC

    return [*MOTOR_NUMERIC, *MOTOR_CATEGORICAL]


def _peak_rss_bytes() -> int:
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    scale = 1 if sys.platform == "darwin" else 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return float(usage.ru_utime + usage.ru_stime)


def _poisson_deviance(y: Any, mu: Any) -> float:
    import numpy as np
    from scipy.special import xlogy

    return float(2.0 * np.sum(xlogy(y, y / mu) - (y - mu)))


# --- children: one engine, one fit, one JSON line on stdout -----------------------------------


def _child_glum(path: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    from glum import GeneralizedLinearRegressor

    predictors = _predictors()
    base = _peak_rss_bytes()
    t0, c0 = time.perf_counter(), _cpu_seconds()
    df = pd.read_parquet(path)
    t1 = time.perf_counter()
    model = GeneralizedLinearRegressor(
        family="poisson",
        link="log",
        alpha=0,
        drop_first=True,
        gradient_tol=1e-8,
        max_iter=100,
    )
    offset = np.log(df[EXPOSURE].to_numpy())
    model.fit(df[predictors], df[TARGET], offset=offset)
    t2, c2 = time.perf_counter(), _cpu_seconds()
    peak = _peak_rss_bytes()
    mu = model.predict(df[predictors], offset=offset)
    return {
        "load_fit": t2 - t0,
        "cpu": c2 - c0,
        "fit": t2 - t1,
        "peak_rss": peak,
        "base_rss": base,
        "iterations": int(model.n_iter_),
        "deviance": _poisson_deviance(df[TARGET].to_numpy(dtype=float), mu),
    }


def _child_smglm(path: Path) -> dict[str, Any]:
    import glum  # noqa: F401  (imported before the clock, as in the other children)

    import smglm
    import smglm.glm.engines.glum

    config = {
        "target": TARGET,
        "predictors": _predictors(),
        "exposure": EXPOSURE,
        "family": "poisson",
    }
    base = _peak_rss_bytes()
    t0, c0 = time.perf_counter(), _cpu_seconds()
    result = smglm.fit(config, path)
    t2, c2 = time.perf_counter(), _cpu_seconds()
    peak = _peak_rss_bytes()
    return {
        "load_fit": t2 - t0,
        "cpu": c2 - c0,
        "fit": float(result.fit_seconds),
        "peak_rss": peak,
        "base_rss": base,
        "iterations": int(result.metrics["fit"]["iterations"]),
        "deviance": float(result.metrics["train"]["deviance"]),
    }


def _child_statsmodels(path: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    import statsmodels.api as sm

    from smglm.datasets import MOTOR_CATEGORICAL, MOTOR_NUMERIC

    base = _peak_rss_bytes()
    t0, c0 = time.perf_counter(), _cpu_seconds()
    df = pd.read_parquet(path)
    t1 = time.perf_counter()
    parts = [pd.DataFrame({"intercept": 1.0}, index=df.index), df[MOTOR_NUMERIC].astype(float)]
    for column in MOTOR_CATEGORICAL:
        # the reference is the level with the most exposure, as smglm chooses it
        reference = df.groupby(column, observed=True)[EXPOSURE].sum().idxmax()
        dummies = pd.get_dummies(df[column], prefix=column, dtype=float)
        parts.append(dummies.drop(columns=f"{column}_{reference}"))
    X = pd.concat(parts, axis=1)
    offset = np.log(df[EXPOSURE].to_numpy())
    result = sm.GLM(df[TARGET], X, family=sm.families.Poisson(), offset=offset).fit()
    _ = result.bse  # the standard errors, as smglm reports them
    t2, c2 = time.perf_counter(), _cpu_seconds()
    peak = _peak_rss_bytes()
    return {
        "load_fit": t2 - t0,
        "cpu": c2 - c0,
        "fit": t2 - t1,
        "peak_rss": peak,
        "base_rss": base,
        "iterations": int(result.fit_history["iteration"]),
        "deviance": float(result.deviance),
    }


def _child(engine: str, path: Path) -> None:
    run = {"glum": _child_glum, "smglm": _child_smglm, "statsmodels": _child_statsmodels}[engine]
    print(json.dumps({"engine": engine, **run(path)}), flush=True)


# --- parent: data, runs, table ----------------------------------------------------------------


def _data_file(rows: int, data_dir: Path) -> Path:
    from smglm.datasets import write_motor

    path = data_dir / f"motor-{rows}-seed0.parquet"
    if not path.exists():
        print(f"writing {path} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        tmp = path.with_suffix(".parquet.tmp")
        write_motor(tmp, rows, seed=0, format="parquet")
        tmp.replace(path)
        print(f"  {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return path


def _run_child(engine: str, path: Path) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", engine, "--data", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} on {path.name} failed ({proc.returncode}):\n{proc.stderr}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def _both(runs: list[dict[str, Any]], key: str) -> str:
    return f"{_median(runs, key):.2f} ({min(r[key] for r in runs):.2f})"


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f}"


def _report(results: dict[tuple[int, str], list[dict[str, Any]]], repeat: int) -> str:
    lines = [
        f"median of {repeat} run(s) (best run in brackets); load+fit and fit in seconds, "
        "RSS in GiB",
        "",
        "| rows | engine | load+fit s | fit s | load+fit CPU s | peak RSS GiB | RSS after imports "
        "| iters | deviance |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (rows, engine), runs in results.items():
        lines.append(
            f"| {rows:,} | {engine} | {_both(runs, 'load_fit')} | {_both(runs, 'fit')}"
            f" | {_both(runs, 'cpu')}"
            f" | {_gib(_median(runs, 'peak_rss'))} | {_gib(_median(runs, 'base_rss'))}"
            f" | {runs[0]['iterations']} | {runs[0]['deviance']:.6f} |"
        )
    lines += [
        "",
        "| rows | ratio | load+fit | fit | load+fit CPU | peak RSS | deviance rel. diff |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for rows in sorted({r for r, _ in results}):
        base = results.get((rows, "glum"))
        if not base:
            continue
        for engine in ("smglm", "statsmodels"):
            runs = results.get((rows, engine))
            if not runs:
                continue
            keys = ("load_fit", "fit", "cpu", "peak_rss")
            ratio = {k: _median(runs, k) / _median(base, k) for k in keys}
            best = {k: min(r[k] for r in runs) / min(r[k] for r in base) for k in keys}
            dev = abs(runs[0]["deviance"] / base[0]["deviance"] - 1)
            cells = [f"{ratio[k]:.2f} ({best[k]:.2f})" for k in keys[:3]]
            lines.append(
                f"| {rows:,} | {engine}/glum | {' | '.join(cells)} "
                f"| {ratio['peak_rss']:.2f} | {dev:.1e} |"
            )
    return "\n".join(lines)


def _machine() -> str:
    blas = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL_"))}
    import glum
    import numpy
    import pandas
    import statsmodels

    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, numpy {numpy.__version__}, pandas {pandas.__version__}, "
        f"glum {glum.__version__}, statsmodels {statsmodels.__version__}; "
        f"environment {blas or 'no BLAS variables'}; load average {os.getloadavg()[0]:.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--child``, one measurement) and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[1_000_000, 5_000_000], help="row counts"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine (median shown)")
    parser.add_argument(
        "--no-statsmodels", action="store_true", help="skip statsmodels (it only runs at <= 1M)"
    )
    parser.add_argument(
        "--engines", nargs="+", choices=ENGINES, default=list(ENGINES), help="engines to run"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=HERE / ".data", help="where the Parquet files are cached"
    )
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.data)
        return 0

    print(_machine(), flush=True)
    results: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for rows in args.rows:
        path = _data_file(rows, args.data_dir)
        engines = [
            e
            for e in args.engines
            if e != "statsmodels" or (not args.no_statsmodels and rows <= STATSMODELS_MAX_ROWS)
        ]
        for i in range(args.repeat):  # interleaved, so slow drift hits every engine alike
            for engine in engines:
                run = _run_child(engine, path)
                results.setdefault((rows, engine), []).append(run)
                print(
                    f"{rows:>10,} {engine:<12} run {i + 1}: load+fit {run['load_fit']:.2f} s, "
                    f"fit {run['fit']:.2f} s, CPU {run['cpu']:.2f} s, "
                    f"peak RSS {_gib(run['peak_rss'])} GiB",
                    file=sys.stderr,
                    flush=True,
                )
    print(_report(results, args.repeat))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
