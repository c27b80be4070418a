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

``--model language`` fits the model language's terms instead (same data): natural splines
on driver_age (df 5) and vehicle_age (df 4), bands on bonus_malus, two numeric and three
categorical predictors, and the interactions area x region and driver_age (spline) x area.
glum is then called directly on the same design, built by hand with tabmat as smglm builds it
(spline bases from :mod:`smglm.glm.terms`, levels with the most-exposure reference first,
area x region as one categorical, the spline x area columns sparse).

``--model search`` times a penalty search (3 l1 ratios x 12 alphas x 5 random folds, main
effects): smglm's ``penalty.search`` against glum's ``GeneralizedLinearRegressorCV`` called
directly with the same folds (``cv=[(train, test), ...]``) and then the refit at its alpha_,
which smglm's job also does.

Run: ``python benchmarks/fit.py [--rows 1000000 5000000] [--repeat 3] [--no-statsmodels]
[--model main|language|search]``.
"""

from __future__ import annotations

import argparse
import itertools
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


# --- the model language: splines, bands, interactions ------------------------------------------
LANGUAGE_NUMERIC = ["density_log", "vehicle_power"]
LANGUAGE_LEVELS = ["area", "region", "vehicle_brand"]
LANGUAGE_SPLINES = {"driver_age": 5, "vehicle_age": 4}
LANGUAGE_BANDS = {"bonus_malus": [60.0, 80.0, 100.0, 125.0]}
LANGUAGE_PREDICTORS = [*LANGUAGE_SPLINES, *LANGUAGE_BANDS, *LANGUAGE_NUMERIC, *LANGUAGE_LEVELS]
LANGUAGE_COLUMNS = [TARGET, EXPOSURE, *LANGUAGE_PREDICTORS]


def _language_config() -> dict[str, Any]:
    return {
        "target": TARGET,
        "predictors": LANGUAGE_PREDICTORS,
        "exposure": EXPOSURE,
        "family": "poisson",
        "terms": {
            **{c: {"spline": {"df": df}} for c, df in LANGUAGE_SPLINES.items()},
            **{c: {"bands": cuts} for c, cuts in LANGUAGE_BANDS.items()},
        },
        "interactions": [["area", "region"], ["driver_age", "area"]],
    }


def _reference_first(s: Any, expo: Any) -> Any:
    """``s`` (categorical) with its most-exposure level first, unused levels dropped."""
    s = s.cat.remove_unused_categories()
    totals = expo.groupby(s, observed=True).sum()
    ref = totals.idxmax()
    return s.cat.reorder_categories([ref, *[c for c in s.cat.categories if c != ref]])


def _language_design(df: Any) -> Any:
    """The design of :func:`_language_config`, built directly with tabmat."""
    import numpy as np
    import pandas as pd
    import scipy.sparse as sps
    import tabmat

    from smglm.glm.terms import natural_basis, quantile_knots

    expo = df[EXPOSURE]
    frame = pd.DataFrame(index=df.index)
    bases = {}
    for col, dfree in LANGUAGE_SPLINES.items():
        x = df[col].to_numpy(dtype=float)
        knots = quantile_knots(x, dfree - 1)
        bases[col] = natural_basis(x, knots, (float(x.min()), float(x.max())))
        for j in range(dfree):
            frame[f"{col}[s{j + 1}]"] = bases[col][:, j]
    for col, cuts in LANGUAGE_BANDS.items():
        codes = np.searchsorted(np.asarray(cuts), df[col].to_numpy(dtype=float), side="right")
        edges = ["-Inf", *(f"{c:g}" for c in cuts), "Inf"]
        labels = [f"[{a},{b})" for a, b in itertools.pairwise(edges)]
        frame[col] = _reference_first(pd.Series(pd.Categorical.from_codes(codes, labels)), expo)
    for col in LANGUAGE_NUMERIC:
        frame[col] = df[col].to_numpy(dtype=float)
    for col in LANGUAGE_LEVELS:
        frame[col] = _reference_first(df[col].astype("category"), expo)
    main = tabmat.from_df(
        frame, drop_first=True, categorical_format="{name}[{category}]", cat_missing_method="fail"
    )
    area = frame["area"].cat.codes.to_numpy().astype(np.int64)
    region = frame["region"].cat.codes.to_numpy().astype(np.int64)
    n_region = len(frame["region"].cat.categories) - 1
    combined = np.where((area > 0) & (region > 0), 1 + (area - 1) * n_region + (region - 1), 0)
    n_area = len(frame["area"].cat.categories) - 1
    area_region = tabmat.CategoricalMatrix(
        combined.astype(np.int32),
        categories=np.arange(1 + n_area * n_region).astype(str),
        drop_first=True,
    )
    basis = bases["driver_age"]
    rows = np.flatnonzero(area > 0)
    k = basis.shape[1]
    cols = [(area[rows] - 1) + j * n_area for j in range(k)]  # spline slot outermost
    age_area = tabmat.SparseMatrix(
        sps.csc_matrix(
            (
                np.concatenate([basis[rows, j] for j in range(k)]),
                (np.tile(rows, k), np.concatenate(cols)),
            ),
            shape=(len(df), k * n_area),
        )
    )
    return tabmat.SplitMatrix([main, area_region, age_area])


def _child_glum_language(path: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    import tabmat  # noqa: F401
    from glum import GeneralizedLinearRegressor

    import smglm.glm.terms  # noqa: F401  (imported before the clock)

    base = _peak_rss_bytes()
    t0, c0 = time.perf_counter(), _cpu_seconds()
    df = pd.read_parquet(path, columns=LANGUAGE_COLUMNS)
    design = _language_design(df)
    t1 = time.perf_counter()
    model = GeneralizedLinearRegressor(
        family="poisson", link="log", alpha=0, gradient_tol=1e-8, max_iter=100
    )
    offset = np.log(df[EXPOSURE].to_numpy())
    model.fit(design, df[TARGET].to_numpy(dtype=float), offset=offset)
    t2, c2 = time.perf_counter(), _cpu_seconds()
    peak = _peak_rss_bytes()
    mu = model.predict(design, offset=offset)
    return {
        "load_fit": t2 - t0,
        "cpu": c2 - c0,
        "fit": t2 - t1,
        "peak_rss": peak,
        "base_rss": base,
        "iterations": int(model.n_iter_),
        "deviance": _poisson_deviance(df[TARGET].to_numpy(dtype=float), mu),
        "n_coef": int(design.shape[1]) + 1,
    }


def _child_smglm_language(path: Path) -> dict[str, Any]:
    import glum  # noqa: F401

    import smglm
    import smglm.glm.engines.glum

    base = _peak_rss_bytes()
    t0, c0 = time.perf_counter(), _cpu_seconds()
    result = smglm.fit(_language_config(), path)
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
        "n_coef": len(result.coefficients),
    }


# --- the penalty search ------------------------------------------------------------------------
SEARCH = {"l1_ratio": [0.0, 0.5, 1.0], "n_alphas": 12, "cv": {"folds": 5, "seed": 0}}


def _search_config() -> dict[str, Any]:
    return {
        "target": TARGET,
        "predictors": _predictors(),
        "exposure": EXPOSURE,
        "family": "poisson",
        "penalty": {"search": SEARCH},
    }


def _child_glum_search(path: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    from glum import GeneralizedLinearRegressor, GeneralizedLinearRegressorCV

    from smglm.glm.search import make_folds

    predictors = _predictors()
    base = _peak_rss_bytes()
    t0, c0 = time.perf_counter(), _cpu_seconds()
    df = pd.read_parquet(path)
    y = df[TARGET].to_numpy(dtype=float)
    offset = np.log(df[EXPOSURE].to_numpy())
    X = df[predictors]
    folds = make_folds(df, _search_cv())  # the same folds as smglm's
    t1 = time.perf_counter()
    cv = GeneralizedLinearRegressorCV(
        family="poisson",
        link="log",
        l1_ratio=SEARCH["l1_ratio"],
        n_alphas=SEARCH["n_alphas"],
        cv=[(f.train, f.test) for f in folds],
        drop_first=True,
        gradient_tol=1e-8,
        max_iter=100,
        n_jobs=1,
    )
    cv.fit(X, y, offset=offset)
    final = GeneralizedLinearRegressor(
        family="poisson",
        link="log",
        alpha=cv.alpha_,
        l1_ratio=cv.l1_ratio_,
        drop_first=True,
        gradient_tol=1e-8,
        max_iter=100,
    )
    final.fit(X, y, offset=offset)
    t2, c2 = time.perf_counter(), _cpu_seconds()
    peak = _peak_rss_bytes()
    mu = final.predict(X, offset=offset)
    return {
        "load_fit": t2 - t0,
        "cpu": c2 - c0,
        "fit": t2 - t1,
        "peak_rss": peak,
        "base_rss": base,
        "iterations": int(final.n_iter_),
        "deviance": _poisson_deviance(y, mu),
        "alpha": float(cv.alpha_),
        "l1_ratio": float(cv.l1_ratio_),
    }


def _search_cv() -> Any:
    from smglm.config import CVSpec

    return CVSpec(**SEARCH["cv"])


def _child_smglm_search(path: Path) -> dict[str, Any]:
    import glum  # noqa: F401

    import smglm
    import smglm.glm.engines.glum

    base = _peak_rss_bytes()
    t0, c0 = time.perf_counter(), _cpu_seconds()
    result = smglm.fit(_search_config(), path)
    t2, c2 = time.perf_counter(), _cpu_seconds()
    peak = _peak_rss_bytes()
    chosen = result.metrics["search"]
    return {
        "load_fit": t2 - t0,
        "cpu": c2 - c0,
        "fit": float(result.metrics["fit"].get("search_seconds", 0.0)) + float(result.fit_seconds),
        "peak_rss": peak,
        "base_rss": base,
        "iterations": int(result.metrics["fit"]["iterations"]),
        "deviance": float(result.metrics["train"]["deviance"]),
        "alpha": float(chosen["alpha"]),
        "l1_ratio": float(chosen["l1_ratio"]),
    }


CHILDREN = {
    ("main", "glum"): _child_glum,
    ("main", "smglm"): _child_smglm,
    ("main", "statsmodels"): _child_statsmodels,
    ("language", "glum"): _child_glum_language,
    ("language", "smglm"): _child_smglm_language,
    ("search", "glum"): _child_glum_search,
    ("search", "smglm"): _child_smglm_search,
}


def _child(engine: str, path: Path, model: str = "main") -> None:
    run = CHILDREN[(model, engine)]
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


def _run_child(engine: str, path: Path, model: str = "main") -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        engine,
        "--data",
        str(path),
        "--model",
        model,
    ]
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
    parser.add_argument(
        "--model",
        choices=("main", "language", "search"),
        default="main",
        help="main effects (default), the model language's terms, or a penalty search",
    )
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.data, args.model)
        return 0

    print(_machine(), f"; model: {args.model}", flush=True)
    results: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for rows in args.rows:
        path = _data_file(rows, args.data_dir)
        engines = [
            e
            for e in args.engines
            if e != "statsmodels"
            or (args.model == "main" and not args.no_statsmodels and rows <= STATSMODELS_MAX_ROWS)
        ]
        for i in range(args.repeat):  # interleaved, so slow drift hits every engine alike
            for engine in engines:
                run = _run_child(engine, path, args.model)
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
