"""Beyond one machine's memory: model points out of core (``--part points``).

``--part points`` writes the synthetic motor portfolio (:func:`smglm.datasets.write_motor`) as
a folder of Parquet files, 10M rows each (file ``i`` is ``motor(10_000_000, seed=1000 + i)``),
cached in ``benchmarks/.data/``, and fits a Poisson claim-frequency model with exposure whose
predictors are all categorical or banded (area, vehicle_brand, region; bands on driver_age,
vehicle_age, bonus_malus, vehicle_power, density_log) three ways, each in a fresh process so
that its peak RSS (``ru_maxrss``) is its own:

- ``points``: ``smglm.fit(config, folder, aggregate="cells")`` on the whole folder (DuckDB sums
  the rows to rating cells out of core; glum fits the cells; row-level statistics);
- ``rows``: ``smglm.fit(config, file, aggregate="rows")`` (glum on the rows, in memory) on the
  largest row counts that fit in memory (``--glum-rows``), and ``points`` on the same files,
  whose coefficients, standard errors and deviance are compared with the rows' fit.

The table gives wall time, CPU time, peak RSS, cells, and the rows' time and memory extrapolated
per row to the big row count (an estimate: glum's cost is about linear in rows).

Run: ``python benchmarks/scale.py --part points [--rows 100000000] [--glum-rows 5000000
10000000]``. ``--part spark`` (Spark local[2] against glum, and the per-row cost of one IRLS
aggregation) runs ``benchmarks/scale_spark.py`` with the options that follow it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FILE_ROWS = 10_000_000
SEED = 1000

CONFIG: dict[str, Any] = {
    "target": "claim_count",
    "family": "poisson",
    "exposure": "exposure",
    "predictors": [
        "area",
        "vehicle_brand",
        "region",
        "driver_age",
        "vehicle_age",
        "bonus_malus",
        "vehicle_power",
        "density_log",
    ],
    "terms": {
        "driver_age": {"bands": [25, 35, 45, 55, 65]},
        "vehicle_age": {"bands": [3, 6, 10]},
        "bonus_malus": {"bands": [60, 80, 100]},
        "vehicle_power": {"bands": [5, 7, 9]},
        "density_log": {"bands": [4, 6, 8]},
    },
}


def _folder(rows: int, data_dir: Path) -> Path:
    """The Parquet folder of ``rows`` rows (written once, a file at a time)."""
    from smglm.datasets import write_motor

    folder = data_dir / f"motor_points_{rows}"
    folder.mkdir(parents=True, exist_ok=True)
    for i, start in enumerate(range(0, rows, FILE_ROWS)):
        path = folder / f"part-{i:03d}.parquet"
        if path.exists():
            continue
        tmp = folder / f".part-{i:03d}.parquet.tmp"  # hidden: not data until renamed
        t0 = time.perf_counter()
        write_motor(tmp, min(FILE_ROWS, rows - start), seed=SEED + i, format="parquet")
        tmp.rename(path)
        print(f"wrote {path.name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return folder


def _file(rows: int, data_dir: Path) -> Path:
    """One Parquet file of the first ``rows`` rows of part 0 (``motor(rows, seed=1000)``)."""
    from smglm.datasets import write_motor

    path = data_dir / f"motor_points_head_{rows}.parquet"
    if not path.exists():
        tmp = data_dir / f".motor_points_head_{rows}.parquet.tmp"
        write_motor(tmp, rows, seed=SEED, format="parquet")
        tmp.rename(path)
    return path


def _child(mode: str, data: str) -> None:
    """One fit in this process; prints a JSON line of its measurements."""
    import numpy as np

    import smglm

    t0, c0 = time.perf_counter(), os.times()
    result = smglm.fit(CONFIG, data, aggregate="cells" if mode == "points" else "rows")
    c1 = os.times()
    wall = time.perf_counter() - t0
    table = result.coefficients
    out = {
        "mode": mode,
        "data": data,
        "wall": wall,
        "cpu": (c1.user - c0.user) + (c1.system - c0.system),
        "fit_seconds": result.fit_seconds,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "n_obs": result.metrics["train"]["n_obs"],
        "deviance": result.metrics["train"]["deviance"],
        "aic": result.metrics["train"]["aic"],
        "model_points": result.metrics["fit"].get("model_points"),
        "terms": table["term"].tolist(),
        "estimate": np.asarray(table["estimate"], dtype=float).tolist(),
        "std_error": np.asarray(table["std_error"], dtype=float).tolist(),
    }
    print(json.dumps(out))


def _run(mode: str, data: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", mode, "--data", str(data)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} on {data} failed:\n{proc.stderr[-4000:]}")
    line = proc.stdout.strip().splitlines()[-1]
    out: dict[str, Any] = json.loads(line)
    print(
        f"{mode:6s} {out['n_obs']:>12,} rows: {out['wall']:8.1f} s wall, {out['cpu']:8.1f} s CPU, "
        f"peak RSS {out['peak_rss_gib']:.2f} GiB"
        + (f", {out['model_points']['cells']:,} cells" if out.get("model_points") else ""),
        file=sys.stderr,
        flush=True,
    )
    return out


def _compare(rows: dict[str, Any], points: dict[str, Any]) -> dict[str, float]:
    import numpy as np

    assert rows["terms"] == points["terms"]
    b1, b2 = np.array(rows["estimate"]), np.array(points["estimate"])
    s1, s2 = np.array(rows["std_error"]), np.array(points["std_error"])
    return {
        "max_abs_dbeta": float(np.nanmax(np.abs(b1 - b2))),
        "max_rel_dse": float(np.nanmax(np.abs(s2 / s1 - 1))),
        "rel_ddeviance": abs(points["deviance"] - rows["deviance"]) / abs(rows["deviance"]),
    }


def part_points(args: argparse.Namespace) -> None:
    data_dir: Path = args.data_dir
    folder = _folder(args.rows, data_dir)
    print(f"data: {folder} ({args.rows:,} rows)", file=sys.stderr)
    big = _run("points", folder)
    small = []
    for n in args.glum_rows:
        path = _file(n, data_dir)
        r = _run("rows", path)
        p = _run("points", path)
        small.append((n, r, p, _compare(r, p)))
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "big": big,
        "small": [{"rows": n, "glum": r, "points": p, "diff": d} for n, r, p, d in small],
    }
    (data_dir / "scale_points.json").write_text(json.dumps(results, indent=1, default=str))
    print("\n| fit | rows | cells | wall s | CPU s | peak RSS GiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for n, r, p, _ in small:
        print(
            f"| glum on rows | {n:,} | - | {r['wall']:.1f} | {r['cpu']:.1f} | "
            f"{r['peak_rss_gib']:.2f} |"
        )
        mp = p["model_points"]
        print(
            f"| model points | {n:,} | {mp['cells']:,} | {p['wall']:.1f} | {p['cpu']:.1f} | "
            f"{p['peak_rss_gib']:.2f} |"
        )
    mp = big["model_points"]
    print(
        f"| model points | {args.rows:,} | {mp['cells']:,} | {big['wall']:.1f} | {big['cpu']:.1f} "
        f"| {big['peak_rss_gib']:.2f} |"
    )
    print(f"\nmodel points at {args.rows:,} rows: aggregation {mp['aggregate_seconds']:.1f} s")
    if small:
        n, r, _, _ = small[-1]
        per_row_s = r["wall"] / n
        per_row_b = r["peak_rss_gib"] / n
        est_s, est_gib = per_row_s * args.rows, per_row_b * args.rows
        print(
            f"glum on rows extrapolated from {n:,} rows to {args.rows:,}: {est_s:.0f} s wall, "
            f"{est_gib:.1f} GiB peak RSS; model points are {est_s / big['wall']:.1f}x faster "
            f"and need {est_gib / big['peak_rss_gib']:.1f}x less memory"
        )
        print("\n| rows | max abs Δβ | max rel ΔSE | rel Δ deviance |")
        print("|---:|---:|---:|---:|")
        for n, _, _, d in small:
            print(
                f"| {n:,} | {d['max_abs_dbeta']:.1e} | {d['max_rel_dse']:.1e} | "
                f"{d['rel_ddeviance']:.1e} |"
            )


def main() -> None:
    if sys.argv[1:3] == ["--part", "spark"]:  # Spark local[2] vs glum: scale_spark.py's options
        sys.path.insert(0, str(HERE))
        import scale_spark

        raise SystemExit(scale_spark.main(sys.argv[3:]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["points", "spark"], default="points")
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--glum-rows", type=int, nargs="*", default=[5_000_000, 10_000_000])
    parser.add_argument("--data-dir", type=Path, default=HERE / ".data")
    parser.add_argument("--child", choices=["points", "rows"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.data)
        return
    part_points(args)


if __name__ == "__main__":
    main()
