"""Benchmark of smglm's penalty search against glum's ``GeneralizedLinearRegressorCV`` called
directly on the same design and the same folds.

The data is the synthetic motor portfolio of ``benchmarks/fit.py`` (the same cached Parquet
files): a Poisson claim-frequency model with exposure, 10 numeric and 4 categorical
predictors. Each measurement runs in a fresh Python process (imports and reading the Parquet
file before the clock starts). What is timed:

- ``glum``: building the tabmat design from the DataFrame (categoricals with smglm's reference
  level first, dropped) and ``GeneralizedLinearRegressorCV(...).fit`` with ``cv=`` smglm's
  random folds (:func:`smglm.glm.search.random_folds`, same seed), the same l1_ratios,
  ``n_alphas``, ``gradient_tol=1e-8`` and ``max_iter=100``. glum fits each l1_ratio's path on
  each fold, then the best l1_ratio's path on all the rows.
- ``smglm``: the whole ``smglm.fit(config, df)`` with ``penalty.search``: the data checks, the
  folds, the same glum CV call, the refit with the chosen penalty and its R-convention
  standard errors and metrics. ``search`` is the glum CV call inside it.

The issue's target: smglm's time <= 1.1 x glum's.

Run: ``python benchmarks/search.py [--rows 1000000] [--repeat 3] [--l1-ratio 0 1]
[--n-alphas 10] [--folds 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGET = "claim_count"
EXPOSURE = "exposure"
ENGINES = ("glum", "smglm")
SEED = 0


def _predictors() -> list[str]:
    from smglm.datasets import MOTOR_CATEGORICAL, MOTOR_NUMERIC

    return [*MOTOR_NUMERIC, *MOTOR_CATEGORICAL]


def _config(l1_ratio: list[float], n_alphas: int, folds: int) -> dict[str, Any]:
    return {
        "target": TARGET,
        "predictors": _predictors(),
        "exposure": EXPOSURE,
        "family": "poisson",
        "penalty": {
            "search": {
                "l1_ratio": l1_ratio,
                "n_alphas": n_alphas,
                "cv": {"folds": folds, "seed": SEED},
            }
        },
    }


def _child_glum(path: Path, l1_ratio: list[float], n_alphas: int, folds: int) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    import tabmat
    from glum import GeneralizedLinearRegressorCV

    from smglm.datasets import MOTOR_CATEGORICAL
    from smglm.glm.search import random_folds

    df = pd.read_parquet(path)
    t0 = time.perf_counter()
    X = df[_predictors()].copy()
    for column in MOTOR_CATEGORICAL:  # smglm's reference (most exposure) first, then dropped
        reference = df.groupby(column, observed=True)[EXPOSURE].sum().idxmax()
        cats = [
            reference,
            *(c for c in X[column].astype("category").cat.categories if c != reference),
        ]
        X[column] = pd.Categorical(X[column].astype(str), categories=[str(c) for c in cats])
    for column in X.columns:
        if column not in MOTOR_CATEGORICAL:
            X[column] = X[column].astype(float)
    design = tabmat.from_df(X, drop_first=True, categorical_format="{name}[{category}]")
    y = df[TARGET].to_numpy(dtype=float)
    offset = np.log(df[EXPOSURE].to_numpy(dtype=float))
    est = GeneralizedLinearRegressorCV(
        family="poisson",
        link="log",
        l1_ratio=l1_ratio,
        n_alphas=n_alphas,
        gradient_tol=1e-8,
        max_iter=100,
        cv=random_folds(len(df), folds, SEED),
        n_jobs=1,
    )
    est.fit(design, y, sample_weight=np.ones_like(y), offset=offset)
    seconds = time.perf_counter() - t0
    return {"total": seconds, "search": seconds, "alpha": float(est.alpha_)}


def _child_smglm(path: Path, l1_ratio: list[float], n_alphas: int, folds: int) -> dict[str, Any]:
    import glum  # noqa: F401  (imported before the clock, as in the other child)
    import pandas as pd

    import smglm
    import smglm.glm.engines.glum

    df = pd.read_parquet(path)
    t0 = time.perf_counter()
    result = smglm.fit(_config(l1_ratio, n_alphas, folds), df)
    seconds = time.perf_counter() - t0
    chosen = result.metrics["search"]
    return {"total": seconds, "search": float(chosen["seconds"]), "alpha": float(chosen["alpha"])}


def _run_child(engine: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        engine,
        "--data",
        str(path),
        "--n-alphas",
        str(args.n_alphas),
        "--folds",
        str(args.folds),
        "--l1-ratio",
        *(str(r) for r in args.l1_ratio),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} on {path.name} failed ({proc.returncode}):\n{proc.stderr}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--child``, one measurement) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000], help="row counts")
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine (median shown)")
    parser.add_argument("--l1-ratio", type=float, nargs="+", default=[0.0, 1.0])
    parser.add_argument("--n-alphas", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--data-dir", type=Path, default=HERE / ".data", help="where the Parquet files are cached"
    )
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run = {"glum": _child_glum, "smglm": _child_smglm}[args.child]
        out = run(args.data, args.l1_ratio, args.n_alphas, args.folds)
        print(json.dumps({"engine": args.child, **out}), flush=True)
        return 0

    sys.path.insert(0, str(HERE))
    from fit import _data_file  # the same cached data files as benchmarks/fit.py

    results: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for rows in args.rows:
        path = _data_file(rows, args.data_dir)
        for i in range(args.repeat):  # interleaved, so slow drift hits both alike
            for engine in ENGINES:
                run = _run_child(engine, path, args)
                results.setdefault((rows, engine), []).append(run)
                print(
                    f"{rows:>10,} {engine:<6} run {i + 1}: total {run['total']:.2f} s, glum CV "
                    f"{run['search']:.2f} s, alpha {run['alpha']:.6g}",
                    file=sys.stderr,
                    flush=True,
                )
    print(
        f"l1_ratio {args.l1_ratio}, {args.n_alphas} alphas, {args.folds} folds; medians of "
        f"{args.repeat}"
    )
    print("| rows | glum CV (s) | smglm fit with search (s) | ratio | smglm's glum CV (s) |")
    print("|---:|---:|---:|---:|---:|")
    for rows in args.rows:
        glum_t = statistics.median(r["total"] for r in results[(rows, "glum")])
        ours = statistics.median(r["total"] for r in results[(rows, "smglm")])
        inner = statistics.median(r["search"] for r in results[(rows, "smglm")])
        print(f"| {rows:,} | {glum_t:.2f} | {ours:.2f} | {ours / glum_t:.3f} | {inner:.2f} |")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
