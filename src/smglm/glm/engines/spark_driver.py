"""Fit an smglm GLMConfig with Spark MLlib's ``GeneralizedLinearRegression`` (engine ``spark``).

A standalone script: it imports only pyspark, numpy, pandas and the standard library (never
smglm, pydantic or scipy), so that it runs unchanged on AWS's Spark image (SageMaker
Processing, ``smspark-submit``) as on this machine (``smglm.fit(..., engine="spark")``).

Usage::

    python spark_driver.py --job JOB_JSON --out DIR [--master local[2]]

``JOB_JSON`` holds ``{"config": <the resolved GLMConfig as a JSON dict>, "train": "<path or
s3:// uri, a Parquet/CSV file or a folder of them>", "test": <uri or null>}``.

What it does, as smglm's ``prepare`` and fit would:

- reads the config's columns with Spark; drops (``missing: drop``) or refuses (``missing:
  error``) rows with missing or infinite values; splits off the test data (``test.by`` /
  ``holdout`` exactly; ``test.fraction`` by Spark's seeded ``rand``, so its rows differ from
  the row-level engine's split);
- builds the terms: categorical levels as smglm writes them (integer-valued numbers without
  ``.0``), ``groups``, the ``(missing)`` level, bands ``[lower, upper)``, the reference level
  (``base``, else the level with the most exposure, else weight, else rows), fixed terms into
  the offset; the design columns named and ordered as smglm names them (main terms in
  predictor order, then the interactions, a's levels outermost);
- fits with ``tol=1e-10`` and ``maxIter = max_iter``, after the known traps of Spark's GLR:
  columns without a row of positive weight are left out (R's ``NA``: ``aliased``), rows of
  weight 0 are filtered (Spark counts them in the residual df), and for log links with an
  estimated dispersion the target is divided by its weighted mean (Spark's IRLS has no
  step-halving; the offset takes ``-log(scale)``, so the coefficients and standard errors
  are those of the unscaled fit exactly);
- writes ``DIR/spark_fit.json``: the fitted terms (``model.json`` term dicts), the
  coefficients and standard errors by name, Spark's summary statistics (on the target's
  scale), iterations, seconds and Spark's version; and per split (train, test), when the
  report module (``spark_report``) is there, the split's metrics and report tables computed by
  Spark aggregations (``DIR/report/<split>/``).

Errors are raised as :class:`DriverError`, one line per problem (``field: message``), and
``main`` exits 2 with them on stderr (and in ``DIR/failure``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from typing import Any

__all__ = ["MAX_FEATURES", "DriverError", "main", "run"]

#: Spark's GeneralizedLinearRegression fits at most this many columns.
MAX_FEATURES = 4096
#: The level that missing values become under ``missing: level`` (smglm's MISSING_LEVEL).
MISSING_LEVEL = "(missing)"
#: The output file of the fit.
FIT_FILE = "spark_fit.json"
#: Spark's IRLS tolerance on the coefficients' change (its default 1e-6 is too loose).
TOL = 1e-10

_LINK_POWER = {"log": 0.0, "identity": 1.0, "inverse": -1.0}
_SPARK_LINKS = {
    "gaussian": ("identity", "log", "inverse"),
    "binomial": ("logit", "probit", "cloglog"),
    "poisson": ("log", "identity", "sqrt"),
    "gamma": ("log", "inverse", "identity"),
}
#: Families whose dispersion is estimated (Pearson / df), as in R.
#: A coefficient this large after max_iter iterations means Spark's IRLS ran away.
DIVERGED = 1e15
_HAS_DISPERSION = ("gaussian", "gamma", "tweedie", "inverse_gaussian")


class DriverError(Exception):
    """A problem with the job, the config or the data; ``issues`` are ``(field, message)``."""

    def __init__(self, issues: list[tuple[str, str]]) -> None:
        self.issues = issues
        super().__init__("\n".join(f"{f}: {m}" for f, m in issues))


# -- the job -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run the job of ``--job`` and write ``--out``; exit code 0, or 2 on a DriverError."""
    parser = argparse.ArgumentParser(prog="spark_driver", description=__doc__.split("\n")[0])
    parser.add_argument("--job", required=True, help="the job JSON (config, train, test)")
    parser.add_argument("--out", required=True, help="the output directory")
    parser.add_argument("--master", default=None, help="Spark master (default: spark-submit's)")
    args = parser.parse_args(argv)
    with open(args.job, encoding="utf-8") as fh:
        job = json.load(fh)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("smglm-spark-fit")
    if args.master:
        builder = builder.master(args.master)
    spark = builder.getOrCreate()
    try:
        run(spark, job, args.out)
    except DriverError as exc:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "failure"), "w", encoding="utf-8") as fh:
            fh.write(str(exc) + "\n")
        print(str(exc), file=sys.stderr)
        return 2
    return 0


def read_data(spark: Any, uri: str, columns: list[str], what: str) -> Any:
    """A Parquet or CSV file or folder (local path or ``s3://``) as a Spark DataFrame of
    ``columns`` (CSV: header row, types inferred)."""
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    fmt = "parquet"
    lowered = path.lower().rstrip("/")
    if lowered.endswith((".csv", ".csv.gz", ".txt")):
        fmt = "csv"
    elif "://" not in path and os.path.isdir(path):
        names = [n.lower() for n in os.listdir(path) if not n.startswith((".", "_"))]
        if names and all(n.endswith((".csv", ".csv.gz")) for n in names):
            fmt = "csv"
    if "://" not in path and not os.path.exists(path):
        raise DriverError([(what, f"{uri!r} does not exist; give a Parquet or CSV file or folder")])
    if fmt == "csv":
        df = spark.read.csv(path, header=True, inferSchema=True)
    else:
        df = spark.read.parquet(path)
    absent = [c for c in columns if c not in df.columns]
    if absent:
        raise DriverError(
            [
                (
                    _role_field(c, {}),
                    f"column {c!r} is not in the {what}; its columns are {df.columns[:20]}",
                )
                for c in absent
            ]
        )
    return df.select(*columns)


def run(
    spark: Any,
    job: dict[str, Any],
    out_dir: str,
    *,
    train: Any = None,
    test: Any = None,
) -> dict[str, Any]:
    """Fit the job's config and write ``out_dir/spark_fit.json`` (and the report tables);
    returns what it wrote. ``train``/``test`` (Spark DataFrames) replace the job's URIs."""

    t_start = time.perf_counter()
    cfg = job["config"]
    _check_config(cfg)
    columns = _columns(cfg)
    split_col = (cfg.get("test") or {}).get("by")
    wanted = columns + ([split_col] if split_col and split_col not in columns else [])
    if train is None:
        train = read_data(spark, job["train"], wanted, "data")
    else:
        _check_columns(train, wanted, "data")
        train = train.select(*wanted)
    if test is None and job.get("test"):
        test = read_data(spark, job["test"], columns, "test data")
    elif test is not None:
        _check_columns(test, columns, "test data")
        test = test.select(*columns)
    if test is None and cfg.get("test"):
        train, test = _split(train, cfg["test"])

    phases: dict[str, float] = {}
    mark = [time.perf_counter()]

    def phase(name: str) -> None:
        now = time.perf_counter()
        phases[name] = now - mark[0]
        mark[0] = now

    model = _Model(cfg, train.schema)
    train, n_dropped = model.handle_missing(train, "data")
    if test is not None:
        test, _ = model.handle_missing(test, "test data")
    model.check_values(train)
    phase("checks")
    model.fit_terms(train)
    phase("terms")
    design = model.design(train)
    phase("design")
    fitted = model.fit(design)
    phase("fit")
    out = model.output(fitted, spark_version=spark.version)
    out["n_dropped"] = n_dropped
    os.makedirs(out_dir, exist_ok=True)

    splits: dict[str, Any] = {}
    scored = {"train": model.scored(train, fitted)}
    report = _report_module()
    if report is None:  # else the report's split metrics are the statistics
        out["statistics"] = model.statistics(scored["train"])
    phase("statistics")
    if test is not None:
        scored["test"] = model.scored(test, fitted)
        out["unseen_test"] = model.unseen_levels(test)
    report = _report_module()
    for name, sdf in scored.items():
        entry: dict[str, Any] = {}
        if report is not None:
            t0 = time.perf_counter()
            spec = report.spec_from_config(
                cfg, n_params=out["n_params"], terms=out["terms"], link=cfg["link"]
            )
            if spec.get("by") and spec["by"] not in sdf.columns:
                spec["by"] = None  # a test file without the split column
            result = report.report_split(sdf, spec)
            report.write_split(os.path.join(out_dir, "report", name), result)
            entry = {
                "metrics": result.get("metrics"),
                "report": f"report/{name}",
                "seconds": time.perf_counter() - t0,
            }
        splits[name] = entry
    phase("report")
    out["phases"] = phases
    out["splits"] = splits
    out["report_module"] = report is not None
    out["total_seconds"] = time.perf_counter() - t_start
    with open(os.path.join(out_dir, FIT_FILE), "w", encoding="utf-8") as fh:
        json.dump(_json_safe(out), fh, indent=1, allow_nan=False)
    return out


def _report_module() -> Any:
    """The report module ``spark_report`` (this module's sibling: in the package, or beside
    the script on the Spark image), or None where it is not there."""
    import importlib

    names = [f"{__package__}.spark_report"] if __package__ else []
    for name in [*names, "spark_report"]:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _json_safe(value.item())
    return value


# -- the config --------------------------------------------------------------------------------
def spark_params(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """GeneralizedLinearRegression's family parameters for the config (None: not fittable)."""
    family, link = cfg["family"], cfg["link"]
    if family in _SPARK_LINKS:
        return {"family": family, "link": link} if link in _SPARK_LINKS[family] else None
    if family in ("tweedie", "inverse_gaussian") and link in _LINK_POWER:
        power = 3.0 if family == "inverse_gaussian" else float(cfg.get("tweedie_power") or 1.5)
        return {"family": "tweedie", "variancePower": power, "linkPower": _LINK_POWER[link]}
    return None


def _check_config(cfg: dict[str, Any]) -> None:
    """What Spark's GLR cannot fit, one issue per problem (smglm checks it before, too)."""
    issues: list[tuple[str, str]] = []
    if spark_params(cfg) is None:
        issues.append(
            ("link", f"Spark cannot fit family {cfg['family']!r} with link {cfg['link']!r}")
        )
    if float((cfg.get("penalty") or {}).get("alpha") or 0.0) > 0:
        issues.append(("penalty.alpha", "engine 'spark' fits no penalty; set alpha to 0"))
    if (cfg.get("penalty") or {}).get("search"):
        issues.append(("penalty.search", "engine 'spark' has no penalty search"))
    if ((cfg.get("constraints") or {}).get("bounds")) or {}:
        issues.append(("constraints.bounds", "engine 'spark' takes no bounds on coefficients"))
    for col, spec in (cfg.get("terms") or {}).items():
        if spec and spec.get("spline"):
            issues.append((f"terms.{col}.spline", "engine 'spark' fits no spline terms"))
    if issues:
        raise DriverError(issues)


def _columns(cfg: dict[str, Any]) -> list[str]:
    cols = [cfg["target"], *cfg["predictors"]]
    cols += [cfg[r] for r in ("weights", "offset", "exposure") if cfg.get(r)]
    return list(dict.fromkeys(cols))


def _role_field(col: str, cfg: dict[str, Any]) -> str:
    for role in ("target", "weights", "offset", "exposure"):
        if cfg.get(role) == col:
            return role
    return "predictors"


def _check_columns(df: Any, columns: list[str], what: str) -> None:
    absent = [c for c in columns if c not in df.columns]
    if absent:
        raise DriverError(
            [
                (
                    "predictors",
                    f"column {c!r} is not in the {what}; its columns are {df.columns[:20]}",
                )
                for c in absent
            ]
        )


def _split(df: Any, test: dict[str, Any]) -> tuple[Any, Any]:
    """``config.test``: by a column's values (as level strings), else a seeded random
    fraction (Spark's ``rand``: deterministic for the same data and partitioning)."""
    from pyspark.sql import functions as sf

    if test.get("by"):
        by = test["by"]
        wanted = [_level_text(v) for v in test.get("holdout") or []]
        text = _level_string(sf.col(by), dict(df.dtypes)[by])
        is_test = text.isin(wanted)
        present = {r[0] for r in df.select(text.alias("v")).distinct().collect()}
        absent = [v for v in wanted if v not in present]
        if absent:
            raise DriverError(
                [
                    (
                        "test.holdout",
                        f"value {a!r} is not in column {by!r}; its values are "
                        f"{sorted(str(p) for p in present)[:20]}",
                    )
                    for a in absent
                ]
            )
        return df.where(~is_test | text.isNull()), df.where(is_test)
    fraction = float(test.get("fraction") or 0.2)
    marked = df.withColumn("__test", sf.rand(int(test.get("seed") or 0)) < fraction)
    return (
        marked.where(~sf.col("__test")).drop("__test"),
        marked.where(sf.col("__test")).drop("__test"),
    )


def _level_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _level_string(col: Any, dtype: str) -> Any:
    """A column's values as smglm's level strings (integer-valued numbers without '.0',
    booleans as True/False; null where missing)."""
    from pyspark.sql import functions as sf

    if dtype == "string":
        return col
    if dtype == "boolean":
        return sf.when(col.isNull(), sf.lit(None)).when(col, "True").otherwise("False")
    if dtype in ("double", "float") or dtype.startswith("decimal"):
        x = col.cast("double")
        finite = x.isNotNull() & ~sf.isnan(x) & (sf.abs(x) != float("inf"))
        return (
            sf.when(~finite, sf.lit(None).cast("string"))
            .when(x == sf.floor(x), x.cast("long").cast("string"))
            .otherwise(x.cast("string"))
        )
    return col.cast("string")


def band_labels(cuts: list[float]) -> list[str]:
    """Band level names ``[-Inf,c1)``, ..., ``[ck,Inf)`` (numbers as ``%g``), as smglm's."""
    edges = ["-Inf", *(f"{c:g}" for c in cuts), "Inf"]
    return [f"[{a},{b})" for a, b in itertools.pairwise(edges)]


# -- the model ---------------------------------------------------------------------------------
class _Model:
    """The config's terms, fitted on the training data, and the design built from them."""

    def __init__(self, cfg: dict[str, Any], schema: Any) -> None:
        self.cfg = cfg
        self.dtypes = {f.name: f.dataType.simpleString() for f in schema.fields}
        self.family = cfg["family"]
        self.link = cfg["link"]
        self.params = spark_params(cfg) or {}
        self.intercept = bool(cfg.get("fit_intercept", True))
        terms = cfg.get("terms") or {}
        self.specs = {p: (terms.get(p) or {}) for p in cfg["predictors"]}
        self.kinds: dict[str, str] = {}
        for p in cfg["predictors"]:
            spec = self.specs[p]
            if spec.get("bands"):
                self.kinds[p] = "bands"
            elif p in (cfg.get("categorical") or []) or self.dtypes.get(p) == "string":
                self.kinds[p] = "categorical"
            else:
                self.kinds[p] = "numeric"
        self.terms: list[dict[str, Any]] = []  # model.json term dicts, in predictor order
        self.by_name: dict[str, dict[str, Any]] = {}
        self.scale = 1.0
        self.materialize_seconds = 0.0
        self.separated: dict[str, str] = {}  # design column -> note (see design)

    # -- rows ----------------------------------------------------------------------------
    def _numeric_columns(self) -> dict[str, str]:
        cfg = self.cfg
        out = {cfg["target"]: "target"}
        out.update({p: "predictors" for p, k in self.kinds.items() if k != "categorical"})
        for role in ("weights", "offset", "exposure"):
            if cfg.get(role):
                out[cfg[role]] = role
        return out

    def _level_expr(self, name: str) -> Any:
        """The raw level string of a categorical (None where missing), or a band's label."""
        from pyspark.sql import functions as sf

        if self.kinds[name] == "bands":
            cuts = [float(c) for c in self.specs[name]["bands"]]
            labels = band_labels(cuts)
            x = sf.col(name).cast("double")
            idx = sum((sf.when(x >= c, 1).otherwise(0) for c in cuts), sf.lit(0))
            expr = sf.lit(None).cast("string")
            for i, lb in enumerate(labels):
                expr = sf.when(idx == i, lb).otherwise(expr) if i else sf.when(idx == i, lb)
            return sf.when(x.isNull() | sf.isnan(x), sf.lit(None).cast("string")).otherwise(expr)
        return _level_string(sf.col(name), self.dtypes.get(name, "string"))

    def handle_missing(self, df: Any, what: str) -> tuple[Any, int]:
        """Rows with missing or infinite values in a used column: an error (``missing:
        error``) or dropped (``missing: drop``); a ``missing: level`` predictor keeps them."""
        from pyspark.sql import functions as sf

        bad: dict[str, Any] = {}
        for col, role in self._numeric_columns().items():
            x = sf.col(col).cast("double")
            as_level = role == "predictors" and self.specs[col].get("missing") == "level"
            inf = sf.abs(x) == float("inf")
            bad[col] = (
                sf.coalesce(inf, sf.lit(False)) if as_level else (x.isNull() | sf.isnan(x) | inf)
            )
        for p, kind in self.kinds.items():
            if kind == "categorical" and self.specs[p].get("missing") != "level":
                bad[p] = self._level_expr(p).isNull()
        if not bad:
            return df, 0
        counts = df.agg(
            *[sf.sum(sf.when(e, 1).otherwise(0)).alias(f"c{i}") for i, e in enumerate(bad.values())]
        ).first()
        found = {c: int(counts[i] or 0) for i, c in enumerate(bad)}
        found = {c: k for c, k in found.items() if k}
        if not found:
            return df, 0
        if self.cfg.get("missing", "error") == "error":
            roles = self._numeric_columns()
            raise DriverError(
                [
                    (
                        roles.get(c, "predictors"),
                        f"column {c!r} has {k} missing or infinite "
                        f"value(s) in the {what}; fix the data or set missing: drop",
                    )
                    for c, k in found.items()
                ]
            )
        any_bad = sf.lit(False)
        for e in bad.values():
            any_bad = any_bad | sf.coalesce(e, sf.lit(True))
        total = df.count()
        kept = df.where(~any_bad)
        n_kept = kept.count()
        if n_kept == 0:
            raise DriverError([(what, f"no rows left after dropping {total}")])
        return kept, total - n_kept

    def check_values(self, df: Any) -> None:
        """Weights >= 0 and not all 0, exposure > 0, rows to fit, and the target in the
        family's range on the rows with a positive weight (the glum engine's rules and words;
        Spark would stop on the first bad row with a Java stack trace): one aggregation."""
        from pyspark.sql import functions as sf

        cfg = self.cfg
        aggs = [sf.count(sf.lit(1)).alias("n")]
        y = sf.col(cfg["target"]).cast("double")
        used = self.weight() > 0
        target = {
            "y_min": sf.min(sf.when(used, y)),
            "y_max": sf.max(sf.when(used, y)),
            "y_neg": sf.sum(sf.when(used & (y < 0), 1).otherwise(0)),
            "y_nonpos": sf.sum(sf.when(used & (y <= 0), 1).otherwise(0)),
            "y_frac": sf.first(sf.when(used & (y != 0) & (y != 1), y), ignorenulls=True),
        }
        if self.family == "binomial":  # where each numeric predictor lies for 0s and for 1s
            for i, p in enumerate(self.separating_candidates()):
                x = sf.col(p).cast("double")
                for v in (0, 1):
                    on = used & (y == v)
                    target[f"x{v}min_{i}"] = sf.min(sf.when(on, x))
                    target[f"x{v}max_{i}"] = sf.max(sf.when(on, x))
        aggs += [e.alias(k) for k, e in target.items()]
        if cfg.get("weights"):
            w = sf.col(cfg["weights"])
            aggs += [
                sf.sum(sf.when(w < 0, 1).otherwise(0)).alias("neg"),
                sf.sum(sf.when(w > 0, 1).otherwise(0)).alias("pos"),
            ]
        if cfg.get("exposure"):
            aggs.append(sf.sum(sf.when(sf.col(cfg["exposure"]) <= 0, 1).otherwise(0)).alias("expo"))
        r = df.agg(*aggs).first().asDict()
        issues = []
        if r["n"] == 0:
            issues.append(("data", "the data has no rows; need at least one"))
        if r.get("neg"):
            issues.append(
                (
                    "weights",
                    f"column {cfg['weights']!r} has {r['neg']} negative "
                    "value(s); weights must be >= 0",
                )
            )
        elif cfg.get("weights") and not r.get("pos"):
            issues.append(
                ("weights", f"column {cfg['weights']!r} is all zero; need a positive weight")
            )
        if r.get("expo"):
            issues.append(
                (
                    "exposure",
                    f"column {cfg['exposure']!r} has {r['expo']} value(s) "
                    "<= 0; exposure must be > 0",
                )
            )
        if r["n"] and not issues:
            issues += self._target_issues(r)
        if issues:
            raise DriverError(issues)

    def _target_issues(self, r: dict[str, Any]) -> list[tuple[str, str]]:
        """The target outside the family's range (``check_values``' aggregates ``r``)."""
        col, fam = self.cfg["target"], self.family
        lo, hi = r["y_min"], r["y_max"]
        if fam == "binomial":
            if lo < 0 or hi > 1:
                return [
                    (
                        "target",
                        f"column {col!r} has values outside [0, 1] (min {lo:g}, max {hi:g}); "
                        "family 'binomial' needs 0/1 outcomes or proportions in [0, 1] with "
                        "the number of trials as weights",
                    )
                ]
            if r["y_frac"] is not None and not self.cfg.get("weights"):
                return [
                    (
                        "target",
                        f"column {col!r} holds proportions (e.g. {r['y_frac']:g}) but no "
                        "weights were given; family 'binomial' needs the number of trials as "
                        "weights",
                    )
                ]
        elif fam in ("gamma", "inverse_gaussian") and r["y_nonpos"]:
            return [
                (
                    "target",
                    f"column {col!r} has {r['y_nonpos']} value(s) <= 0 (min {lo:g}); family "
                    f"{fam!r} needs a target > 0 (drop the zero rows, or use tweedie)",
                )
            ]
        elif fam in ("poisson", "tweedie", "negative_binomial") and r["y_neg"]:
            return [
                (
                    "target",
                    f"column {col!r} has {r['y_neg']} negative value(s) (min {lo:g}); family "
                    f"{fam!r} needs a target >= 0",
                )
            ]
        if fam in ("poisson", "negative_binomial", "tweedie") and hi == 0:
            return [
                (
                    "target",
                    f"column {col!r} is 0 on every row: family {fam!r} has no finite estimate "
                    "(the fitted mean would be 0, the intercept -inf); check the target "
                    "column, or fit data where it is positive somewhere",
                )
            ]
        if fam == "binomial" and (hi == 0 or lo == 1):
            return [
                (
                    "target",
                    f"column {col!r} is {lo:g} on every row: family 'binomial' has no finite "
                    f"estimate (the fitted probability would be exactly {lo:g}); fit data with "
                    "both outcomes",
                )
            ]
        if fam in _HAS_DISPERSION and lo == hi:
            return [
                (
                    "target",
                    f"column {col!r} is constant ({lo:g} on every row): a {fam!r} model of a "
                    "constant has zero dispersion and no standard errors; check the target "
                    "column",
                )
            ]
        if fam == "binomial" and r["y_frac"] is None:
            return self._complete_separation(r)
        return []

    def separating_candidates(self) -> list[str]:
        """The estimated numeric predictors (a fixed one has no coefficient to run off)."""
        fixed = self.cfg.get("fixed") or {}
        return [p for p, k in self.kinds.items() if k == "numeric" and p not in fixed]

    def _complete_separation(self, r: dict[str, Any]) -> list[tuple[str, str]]:
        """A numeric predictor that splits the 0s from the 1s of a 0/1 target: its coefficient
        is infinite, so no estimate of the model exists (the glum engine's error; Spark would
        stop at max_iter with meaningless estimates)."""
        target = self.cfg["target"]
        for i, col in enumerate(self.separating_candidates()):
            lo0, hi0, lo1, hi1 = (r[f"x{v}{m}_{i}"] for v in (0, 1) for m in ("min", "max"))
            if None in (lo0, hi0, lo1, hi1) or not (hi0 < lo1 or hi1 < lo0):
                continue
            low, high, cut = (0, 1, hi0) if hi0 < lo1 else (1, 0, hi1)
            return [
                (
                    "predictors",
                    f"column {col!r} separates the target {target!r} completely (it is {low} "
                    f"wherever {col} <= {cut:g} and {high} above): the maximum likelihood "
                    "estimate does not exist (its coefficient is infinite); drop the "
                    "predictor (is it the target in disguise?), or fit with engine: glum "
                    "and penalty.alpha > 0",
                )
            ]
        return []

    def weight(self) -> Any:
        from pyspark.sql import functions as sf

        w = self.cfg.get("weights")
        return sf.col(w).cast("double") if w else sf.lit(1.0)

    def data_offset(self) -> Any:
        """The offset from the data: log(exposure), the offset column, or 0."""
        from pyspark.sql import functions as sf

        cfg = self.cfg
        if cfg.get("exposure"):
            return sf.log(sf.col(cfg["exposure"]).cast("double"))
        if cfg.get("offset"):
            return sf.col(cfg["offset"]).cast("double")
        return sf.lit(0.0)

    # -- terms ---------------------------------------------------------------------------
    def fit_terms(self, df: Any) -> None:
        """The main terms' state on the training rows: levels (sorted; bands in order;
        grouped; ``(missing)`` last), the reference (base, else the most exposure), fixed
        terms' coefficients."""
        from pyspark.sql import functions as sf

        cfg = self.cfg
        size = self.weight()
        if cfg.get("exposure"):
            size = size * sf.col(cfg["exposure"]).cast("double")
        issues: list[tuple[str, str]] = []
        fixed = cfg.get("fixed") or {}
        by_level = self._level_counts(df, size)
        for p in cfg["predictors"]:
            kind = self.kinds[p]
            spec = self.specs[p]
            if kind == "numeric":
                for key in ("groups", "base", "missing"):
                    if spec.get(key) is not None:
                        issues.append(
                            (
                                f"terms.{p}.{key}",
                                f"{key} applies to levels "
                                f"(categoricals and bands); {p!r} is numeric",
                            )
                        )
                term: dict[str, Any] = {"name": p, "type": "numeric", "coefficient": 0.0}
                if p in fixed:
                    if isinstance(fixed[p], dict):
                        issues.append(
                            (
                                f"fixed.{p}",
                                f"{p!r} is numeric, so its fixed term is "
                                "a coefficient, not relativities by level",
                            )
                        )
                    else:
                        term.update(coefficient=float(fixed[p]), fixed=True)
                self._add(term)
                continue
            counts = by_level[p]
            groups = {str(g): [str(m) for m in ms] for g, ms in (spec.get("groups") or {}).items()}
            member_of = {m: g for g, ms in groups.items() for m in ms}
            missing_level = spec.get("missing") == "level"
            if kind == "bands":
                cuts = [float(c) for c in spec["bands"]]
                labels = band_labels(cuts)
                empty = [lb for lb in labels if lb not in counts]
                if empty:
                    issues.append(
                        (
                            f"terms.{p}.bands",
                            f"the band(s) {empty} of {p!r} have no "
                            "rows; choose cut points inside the data so that every band "
                            "has rows",
                        )
                    )
                known = set(labels)
                order = list(dict.fromkeys(member_of.get(lb, lb) for lb in labels))
            else:
                known = {lb for lb in counts if lb is not None}
                order = sorted({member_of.get(lb, lb) for lb in known})
            for g, ms in groups.items():
                for m in ms:
                    if m not in known:
                        issues.append(
                            (
                                f"terms.{p}.groups.{g}",
                                f"{m!r} is not a level of "
                                f"{p!r}; its levels are {sorted(known)[:20]}",
                            )
                        )
                if g in known and g not in ms:
                    issues.append(
                        (
                            f"terms.{p}.groups.{g}",
                            f"the group's name {g!r} is also a level of {p!r} outside the group",
                        )
                    )
            if missing_level and None in counts:
                order.append(MISSING_LEVEL)
            totals = dict.fromkeys(order, 0.0)
            for lb, (_, s) in counts.items():
                lv = (
                    (MISSING_LEVEL if missing_level else None)
                    if lb is None
                    else (member_of.get(lb, lb))
                )
                if lv in totals:
                    totals[lv] += s
            if not order:
                issues.append(("predictors", f"column {p!r} has no levels"))
                continue
            if spec.get("base") is not None:
                ref = str(spec["base"])
                if ref not in totals:
                    issues.append(
                        (
                            f"terms.{p}.base",
                            f"{ref!r} is not a level of {p!r}; its levels are {order[:20]}",
                        )
                    )
                    ref = order[0]
            else:
                best = max(totals.values())
                ref = next(lv for lv in order if totals[lv] == best)
            levels = [ref] + [lv for lv in order if lv != ref]
            if len(levels) == 1 and p not in fixed:
                issues.append(
                    (
                        "predictors",
                        f"column {p!r} has a single level "
                        f"({levels[0]!r}), which cannot explain anything; drop it",
                    )
                )
            term = {
                "name": p,
                "type": kind,
                "levels": levels,
                "reference": ref,
                "coefficients": [0.0] * len(levels),
            }
            if kind == "bands":
                term["cuts"] = [float(c) for c in spec["bands"]]
            if groups:
                term["groups"] = groups
            if spec.get("missing"):
                term["missing"] = spec["missing"]
            if p in fixed:
                value = fixed[p]
                if not isinstance(value, dict):
                    issues.append(
                        (
                            f"fixed.{p}",
                            f"{p!r} has levels, so its fixed term is a "
                            f"relativity per level, not a coefficient ({value})",
                        )
                    )
                else:
                    rel = {str(k): float(v) for k, v in value.items()}
                    absent = [lv for lv in levels if lv not in rel]
                    unknown = [k for k in rel if k not in levels]
                    if absent or unknown:
                        issues.append(
                            (
                                f"fixed.{p}",
                                f"relativities must name exactly the "
                                f"levels {levels[:20]}; missing {absent}, unknown "
                                f"{unknown}",
                            )
                        )
                    else:
                        term["coefficients"] = [math.log(rel[lv]) for lv in levels]
                        term["fixed"] = True
            self._add(term)
        if issues:
            raise DriverError(issues)

    def _level_counts(self, df: Any, size: Any) -> dict[str, dict[Any, tuple[int, float]]]:
        """Per level term, each raw level's (rows, size): one pass over the data for all the
        level terms (the (term, level) pairs exploded, then grouped)."""
        from pyspark.sql import functions as sf

        names = [p for p in self.cfg["predictors"] if self.kinds[p] != "numeric"]
        out: dict[str, dict[Any, tuple[int, float]]] = {p: {} for p in names}
        if not names:
            return out
        pairs = sf.explode(
            sf.array(
                *[
                    sf.struct(sf.lit(i).alias("t"), self._level_expr(p).alias("label"))
                    for i, p in enumerate(names)
                ]
            )
        )
        rows = (
            df.select(size.alias("__size"), pairs.alias("__pair"))
            .groupBy(sf.col("__pair.t").alias("t"), sf.col("__pair.label").alias("label"))
            .agg(sf.count(sf.lit(1)).alias("n"), sf.sum("__size").alias("size"))
            .collect()
        )
        for r in rows:
            out[names[int(r["t"])]][r["label"]] = (int(r["n"]), float(r["size"] or 0.0))
        return out

    def _add(self, term: dict[str, Any]) -> None:
        self.terms.append(term)
        self.by_name[term["name"]] = term

    def level_index(self, name: str) -> Any:
        """The level of a level term per row (a string; null when unseen or missing without
        a missing level)."""
        from pyspark.sql import functions as sf

        term = self.by_name[name]
        raw = self._level_expr(name)
        member_of = {m: g for g, ms in (term.get("groups") or {}).items() for m in ms}
        lev = raw
        if member_of:
            mapping = sf.create_map(*[sf.lit(x) for kv in member_of.items() for x in kv])
            lev = sf.coalesce(mapping[raw], raw)
        if term.get("missing") == "level":
            lev = sf.when(raw.isNull(), sf.lit(MISSING_LEVEL)).otherwise(lev)
        return sf.when(lev.isin(term["levels"]), lev)

    @staticmethod
    def slots(term: dict[str, Any]) -> list[str]:
        if term["type"] == "numeric":
            return [term["name"]]
        return [f"{term['name']}[{lv}]" for lv in term["levels"]]

    @staticmethod
    def estimated_slots(term: dict[str, Any]) -> list[int]:
        if term["type"] == "numeric":
            return [0]
        return [i for i, lv in enumerate(term["levels"]) if lv != term["reference"]]

    def columns(self) -> list[tuple[str, Any]]:
        """Every estimated coefficient's (name, column expression), in smglm's order."""
        from pyspark.sql import functions as sf

        lev = {
            t["name"]: sf.col(f"__lev_{i}")
            for i, t in enumerate(self.terms)
            if t["type"] != "numeric"
        }

        def slot_expr(term: dict[str, Any], i: int) -> Any:
            if term["type"] == "numeric":
                return sf.col(term["name"]).cast("double")
            return sf.when(lev[term["name"]] == term["levels"][i], 1.0).otherwise(0.0)

        out: list[tuple[str, Any]] = []
        for term in self.terms:
            if term.get("fixed"):
                continue
            names = self.slots(term)
            for i in self.estimated_slots(term):
                out.append((names[i], slot_expr(term, i)))
        for a_name, b_name in self.cfg.get("interactions") or []:
            a, b = self.by_name[a_name], self.by_name[b_name]
            sa, sb = self.slots(a), self.slots(b)
            for i in self.estimated_slots(a):
                for j in self.estimated_slots(b):
                    out.append((f"{sa[i]}:{sb[j]}", slot_expr(a, i) * slot_expr(b, j)))
        return out

    def fixed_offset(self) -> Any:
        """The fixed terms' contribution to the linear predictor."""
        from pyspark.sql import functions as sf

        total = sf.lit(0.0)
        for i, t in enumerate(self.terms):
            if not t.get("fixed"):
                continue
            if t["type"] == "numeric":
                total = total + sf.lit(float(t["coefficient"])) * sf.col(t["name"]).cast("double")
            else:
                mapping = sf.create_map(
                    *[
                        sf.lit(x)
                        for kv in zip(t["levels"], t["coefficients"], strict=True)
                        for x in kv
                    ]
                )
                total = total + sf.coalesce(mapping[sf.col(f"__lev_{i}")], sf.lit(0.0))
        return total

    def with_levels(self, df: Any) -> Any:
        return df.select(
            "*",
            *[
                self.level_index(t["name"]).alias(f"__lev_{i}")
                for i, t in enumerate(self.terms)
                if t["type"] != "numeric"
            ],
        )

    def design(self, df: Any) -> dict[str, Any]:
        """The design on the training rows: the columns (names and expressions), those
        without a row of positive weight (aliased), the target's scale."""
        from pyspark.sql import functions as sf

        cfg = self.cfg
        cols = self.columns()
        if len(cols) > MAX_FEATURES:
            raise DriverError(
                [
                    (
                        "predictors",
                        f"the design has {len(cols)} columns; Spark's "
                        f"GeneralizedLinearRegression fits at most {MAX_FEATURES}: group "
                        "levels or drop interactions",
                    )
                ]
            )
        from pyspark.ml.feature import VectorAssembler
        from pyspark.ml.stat import Summarizer

        base = self.with_levels(df)
        w = self.weight()
        # one pass: read the data, build every design column and cache the rows to fit (weight
        # > 0; Spark would count the others in the residual df) with their column counts
        frame = base.select(
            sf.col(cfg["target"]).cast("double").alias("__yraw"),
            w.alias("__w"),
            (self.data_offset() + self.fixed_offset()).alias("__off0"),
            *[e.alias(f"__f{k}") for k, (_, e) in enumerate(cols)],
        ).where(sf.col("__w") > 0)
        if cols:
            assembler = VectorAssembler(
                inputCols=[f"__f{k}" for k in range(len(cols))], outputCol="__all"
            )
            frame = assembler.transform(frame)
        else:
            frame = frame.withColumn("__all", _ones_vector())
        cached = frame.select("__yraw", "__w", "__off0", "__all").persist()
        t0 = time.perf_counter()
        # the same pass counts, per level or cell column, its rows whose target is not 0
        # (and, binomial, is 1) for the separation check: Summarizer's sum weighted by
        # 1 + indicator (every weight positive, so no summary is ever empty) minus the rows
        y = sf.col("__yraw")
        checks = self.separation_checks() if cols else {}
        stats = cached.select(
            Summarizer.metrics("numNonZeros").summary(sf.col("__all")).alias("__s"),
            sf.count(sf.lit(1)).alias("__n"),
            sf.sum(sf.col("__w") * sf.col("__yraw")).alias("__wy"),
            sf.sum("__w").alias("__sw"),
            *[
                Summarizer.metrics("sum")
                .summary(sf.col("__all"), sf.lit(1.0) + when(y).cast("double"))
                .alias(f"__c_{key}")
                for key, when in checks.items()
            ],
        ).first()
        self.materialize_seconds = time.perf_counter() - t0
        nonzero = [int(v) for v in stats["__s"]["numNonZeros"].toArray()] if cols else []
        aliased = [n for (n, _), c in zip(cols, nonzero, strict=True) if c == 0]
        kept = [k for k, c in enumerate(nonzero) if c > 0]
        counted = {
            key: [
                round(v) - n
                for v, n in zip(stats[f"__c_{key}"]["sum"].toArray(), nonzero, strict=True)
            ]
            for key in checks
        }
        self.separated = self.separated_columns(cols, kept, nonzero, counted)
        n_obs = int(stats["__n"])
        ybar = float(stats["__wy"]) / float(stats["__sw"])
        rescale = self.link == "log" and self.family in _HAS_DISPERSION and ybar > 0
        self.scale = ybar if rescale else 1.0
        n_params = len(kept) + int(self.intercept)
        if n_obs <= n_params:
            cached.unpersist()
            raise DriverError(
                [
                    (
                        "data",
                        f"the data has {n_obs} row(s) with a positive weight for "
                        f"{n_params} coefficient(s); a GLM needs more rows than "
                        "coefficients",
                    )
                ]
            )
        return {
            "columns": cols,
            "aliased": aliased,
            "kept": kept,
            "n_obs": n_obs,
            "ybar": ybar,
            "weight_sum": float(stats["__sw"]),
            "data": self._fit_rows(cached, kept, len(cols)),
            "cached": cached,
        }

    def separation_checks(self) -> dict[str, Any]:
        """What the separation check counts per level column (R's "fitted probabilities
        numerically 0 or 1", smglm's ``separated`` note): for a binomial target its rows not 0
        and its rows equal to 1; for Poisson and Tweedie with the log link its rows not 0 (a
        level without claims has a mean of 0, its log -inf). Other fits: nothing."""
        counts = self.family in ("poisson", "tweedie") and self.link == "log"
        if self.family != "binomial" and not counts:
            return {}
        out: dict[str, Any] = {"nonzero": lambda y: y != 0}
        if self.family == "binomial":
            out["ones"] = lambda y: y == 1
        return out

    def indicator_columns(self) -> set[str]:
        """The design columns that are 0/1 indicators: the levels of categoricals and bands,
        and the cells of their interactions with each other."""
        levels = {t["name"] for t in self.terms if t["type"] != "numeric"}
        out: set[str] = set()
        for t in self.terms:
            if t["type"] != "numeric" and not t.get("fixed"):
                out.update(self.slots(t))
        for a_name, b_name in self.cfg.get("interactions") or []:
            if a_name in levels and b_name in levels:
                sa, sb = self.slots(self.by_name[a_name]), self.slots(self.by_name[b_name])
                out.update(f"{x}:{y}" for x in sa for y in sb)
        return out

    def separated_columns(
        self,
        cols: list[tuple[str, Any]],
        kept: list[int],
        rows: list[int],
        counted: dict[str, list[int]],
    ) -> dict[str, str]:
        """The level and cell columns whose rows all have the target 0 (or, binomial, all 1),
        with the coefficient table's note (the glum engine's words): their estimates run off
        to infinity."""
        if not counted:
            return {}
        indicators = self.indicator_columns()
        out: dict[str, str] = {}
        for k in kept:
            name = cols[k][0]
            if name not in indicators:
                continue
            what = "cell" if ":" in name else "level"
            if counted["nonzero"][k] == 0:
                out[name] = f"separated: the target is 0 on all {rows[k]} rows of this {what}"
            elif "ones" in counted and counted["ones"][k] == rows[k]:
                out[name] = f"separated: the target is 1 on all {rows[k]} rows of this {what}"
        return out

    def _fit_rows(self, cached: Any, kept: list[int], n_cols: int) -> Any:
        """The rows to fit, as projections of the cached rows: the target divided by its
        scale (the offset takes -log(scale)), the design columns ``kept`` (the others are
        R's NA: left out)."""
        from pyspark.ml.feature import VectorSlicer
        from pyspark.sql import functions as sf

        data = cached.select(
            (sf.col("__yraw") / sf.lit(self.scale)).alias("__y"),
            "__w",
            (sf.col("__off0") - sf.lit(math.log(self.scale))).alias("__off"),
            "__all",
        )
        if not kept:
            data = data.withColumn("__features", _ones_vector())
        elif len(kept) < n_cols:
            slicer = VectorSlicer(inputCol="__all", outputCol="__features", indices=kept)
            data = slicer.transform(data)
        else:
            data = data.withColumnRenamed("__all", "__features")
        return data.select("__y", "__w", "__off", "__features")

    def _collinear(self, data: Any, kept: list[int]) -> list[int]:
        """The kept columns that are linear combinations of earlier ones (the intercept
        first), by R's rule as smglm applies it (:func:`aliased_columns`) on the prior-weight
        cross-product X'WX: one pass (rows to Python; only after Spark met a singular
        design)."""
        from pyspark.mllib.linalg import Vectors as MLlibVectors
        from pyspark.mllib.linalg.distributed import RowMatrix

        intercept = self.intercept

        def row(r: Any) -> Any:
            import numpy as np

            x = r["__features"].toArray()
            if intercept:
                x = np.concatenate([[1.0], x])
            return MLlibVectors.dense(x * math.sqrt(r["__w"]))

        gram = RowMatrix(data.select("__w", "__features").rdd.map(row)).computeGramianMatrix()
        info = gram.toArray()
        shift = int(intercept)
        return [kept[j - shift] for j in aliased_columns(info) if j >= shift]

    def _glr(self, features: str, intercept: bool) -> Any:
        from pyspark.ml.regression import GeneralizedLinearRegression

        glr = GeneralizedLinearRegression(
            featuresCol=features,
            labelCol="__y",
            weightCol="__w",
            offsetCol="__off",
            fitIntercept=intercept,
            maxIter=int(self.cfg.get("max_iter") or 100),
            tol=TOL,
            regParam=0.0,
            solver="irls",
        )
        if self.params.get("family") == "tweedie":
            glr.setFamily("tweedie").setVariancePower(self.params["variancePower"])
            glr.setLinkPower(self.params["linkPower"])
        else:
            glr.setFamily(self.params["family"]).setLink(self.params["link"])
        return glr

    def fit(self, design: dict[str, Any]) -> dict[str, Any]:
        """Spark's fit of the model and of the null model (intercept only, with the offset)."""
        cols = design["columns"]
        aliased = set(design["aliased"])
        kept = design["kept"]
        data = design["data"]
        materialize = self.materialize_seconds
        try:
            for attempt in range(2):
                t0 = time.perf_counter()
                model = self._glr("__features", self.intercept and bool(kept)).fit(data)
                seconds = time.perf_counter() - t0
                summary = model.summary
                coef = model.coefficients.toArray().tolist()
                try:
                    se = list(summary.coefficientStandardErrors)
                    break
                except Exception as exc:  # py4j: no SEs (a singular design: Spark left its
                    # normal solver); find the aliased columns and fit without them, as R
                    more = self._collinear(data, kept) if attempt == 0 else []
                    if not more:
                        raise DriverError(
                            [
                                (
                                    "predictors",
                                    f"Spark found no standard errors ({exc}): the design is "
                                    "singular (predictors collinear once weighted); group "
                                    "levels or drop predictors",
                                )
                            ]
                        ) from None
                    aliased |= {cols[k][0] for k in more}
                    kept = [k for k in kept if k not in more]
                    data = self._fit_rows(design["cached"], kept, len(cols))
            stats = _summary_stats(summary)
            self._check_diverged(coef, float(model.intercept), int(summary.numIterations))
            null_b = None
            has_offset = bool(self.cfg.get("exposure") or self.cfg.get("offset"))
            if self.intercept and (has_offset or self.fixed_offset_used()):
                null_b = self._null_intercept(data, design["ybar"] / self.scale)
        finally:
            design["cached"].unpersist()
        intercept = float(model.intercept) if self.intercept and kept else 0.0
        if not kept:  # no estimated column: the intercept is the constant feature's
            intercept, coef = (float(coef[0]), []) if self.intercept else (0.0, [])
        intercept_se = float(se[-1]) if self.intercept else None
        if not kept and self.intercept:
            intercept_se = float(se[0])
        names = [n for n, _ in cols]
        beta = dict.fromkeys(names, 0.0)
        ses: dict[str, float | None] = dict.fromkeys(names)
        for pos, k in enumerate(kept):
            beta[names[k]] = float(coef[pos])
            ses[names[k]] = float(se[pos])
        if null_b is None and self.intercept:
            null_b = _linkfun(self.link, design["ybar"])
        return {
            "names": names,
            "kept": kept,
            "aliased": [n for n in names if n in aliased],
            "intercept": intercept,
            "intercept_se": intercept_se,
            "beta": beta,
            "se": ses,
            "null_intercept": null_b,
            "n_obs": design["n_obs"],
            "weight_sum": design["weight_sum"],
            "summary": stats,
            "iterations": int(summary.numIterations),
            "seconds": seconds,
            "materialize_seconds": materialize,
            "model": model,
            "columns": cols,
        }

    def _check_diverged(self, coef: list[float], intercept: float, iterations: int) -> None:
        """Spark's IRLS has no step-halving: on some data and links (the gamma family's
        inverse link, for one) it runs away to max_iter, to coefficients near the limits of
        double precision and fitted means outside the family's range. That is an error naming
        what to do, not a model (nor a division by zero in the report)."""
        max_iter = int(self.cfg.get("max_iter") or 100)
        if iterations < max_iter:
            return
        size = max([abs(intercept), *(abs(c) for c in coef)], default=0.0)
        if math.isfinite(size) and size < DIVERGED:
            return
        raise DriverError(
            [
                (
                    "link",
                    f"Spark's solver diverged: the {self.family}/{self.link} fit ran "
                    f"{iterations} iterations (max_iter) to a coefficient of {size:.3g} "
                    "(Spark's IRLS has no step-halving); fit with engine: glum (which "
                    "converges where this does not), or choose another link",
                )
            ]
        )

    def _null_intercept(self, data: Any, ybar: float) -> float:
        """The intercept of the null model (intercept only, with the offset) by a
        one-parameter IRLS on Spark aggregates, as R's glm (and smglm) find it."""
        from pyspark.sql import functions as sf

        link = self.link
        power = float(self.params.get("variancePower") or 0.0)
        y, w, off = sf.col("__y"), sf.col("__w"), sf.col("__off")
        if link == "log" and self.family in ("poisson", "gamma"):  # closed forms
            ratio = (
                sf.sum(w * y) / sf.sum(w * sf.exp(off))
                if self.family == "poisson"
                else (sf.sum(w * y * sf.exp(-off)) / sf.sum(w))
            )
            value = float(data.agg(ratio).first()[0])
            if value > 0:
                return math.log(value)
        mean_off = float(data.agg(sf.sum(w * off) / sf.sum(w)).first()[0])
        b = _linkfun(link, ybar) - mean_off
        for _ in range(int(self.cfg.get("max_iter") or 100)):
            eta = sf.lit(b) + off
            mu = _linkinv(link, eta)
            d = _mu_eta(link, eta, mu)
            ww = w * d * d / _variance(self.family, power, mu)
            z = sf.lit(b) + (y - mu) / d
            row = data.agg(sf.sum(ww * z).alias("num"), sf.sum(ww).alias("den")).first()
            b_new = float(row["num"]) / float(row["den"])
            if abs(b_new - b) <= 1e-12 * (1 + abs(b)):
                return b_new
            b = b_new
        return b

    def unseen_levels(self, df: Any) -> dict[str, int]:
        """Per level term, the rows of ``df`` whose level was not seen in training (they
        score as the reference level, as in the glum engine): one aggregation."""
        from pyspark.sql import functions as sf

        names = [t["name"] for t in self.terms if t["type"] != "numeric"]
        if not names:
            return {}
        row = df.agg(
            *[
                sf.sum(
                    sf.when(
                        self._level_expr(n).isNotNull() & self.level_index(n).isNull(), 1
                    ).otherwise(0)
                ).alias(f"u{i}")
                for i, n in enumerate(names)
            ]
        ).first()
        return {n: int(row[f"u{i}"]) for i, n in enumerate(names) if row[f"u{i}"]}

    def fixed_offset_used(self) -> bool:
        return any(t.get("fixed") for t in self.terms)

    def output(self, fitted: dict[str, Any], spark_version: str) -> dict[str, Any]:
        """What ``spark_fit.json`` holds (the splits added by :func:`run`)."""
        terms = []
        beta = fitted["beta"]
        by_name: dict[str, dict[str, Any]] = {}
        for t in self.terms:
            t = dict(t)
            if not t.get("fixed"):
                if t["type"] == "numeric":
                    t["coefficient"] = beta[t["name"]]
                else:
                    slots = self.slots(t)
                    t["coefficients"] = [
                        0.0 if lv == t["reference"] else beta[slots[i]]
                        for i, lv in enumerate(t["levels"])
                    ]
            terms.append(t)
            by_name[t["name"]] = t
        for a_name, b_name in self.cfg.get("interactions") or []:
            a, b = by_name[a_name], by_name[b_name]
            sa, sb = self.slots(a), self.slots(b)
            grid = [[0.0] * len(sb) for _ in sa]
            for i in self.estimated_slots(a):
                for j in self.estimated_slots(b):
                    grid[i][j] = beta[f"{sa[i]}:{sb[j]}"]
            terms.append(
                {
                    "name": f"{a_name}:{b_name}",
                    "type": "interaction",
                    "terms": [a_name, b_name],
                    "coefficients": grid,
                }
            )
        stats = dict(fitted["summary"])
        return {
            "format": "smglm-spark-fit",
            "version": 1,
            "config": self.cfg,
            "spark_version": spark_version,
            "spark_params": self.params,
            "terms": terms,
            "intercept": fitted["intercept"],
            "intercept_se": fitted["intercept_se"],
            "names": fitted["names"],
            "coefficients": [beta[n] for n in fitted["names"]],
            "std_errors": [fitted["se"][n] for n in fitted["names"]],
            "aliased": fitted["aliased"],
            "separated": {
                n: note for n, note in self.separated.items() if n not in fitted["aliased"]
            },
            "null_intercept": fitted["null_intercept"],
            "n_obs": fitted["n_obs"],
            "weight_sum": fitted["weight_sum"],
            "n_params": len(fitted["kept"]) + int(self.intercept),
            "target_scale": self.scale,
            "summary": stats,
            "iterations": fitted["iterations"],
            "converged": fitted["iterations"] < int(self.cfg.get("max_iter") or 100),
            "seconds": fitted["seconds"],
            "materialize_seconds": fitted["materialize_seconds"],
        }

    # -- scoring -------------------------------------------------------------------------
    def scored(self, df: Any, fitted: dict[str, Any]) -> Any:
        """``df``'s data columns with ``__mu`` (the fitted mean, with the offset) and
        ``__mu0`` (the null model's, with the offset)."""
        from pyspark.sql import functions as sf

        base = self.with_levels(df)
        eta = sf.lit(float(fitted["intercept"]))
        beta = fitted["beta"]
        for name, expr in fitted["columns"]:
            b = beta[name]
            if b != 0.0:
                eta = eta + sf.lit(b) * expr
        off = self.data_offset() + self.fixed_offset()
        mu = _linkinv(self.link, eta + off)
        b0 = fitted["null_intercept"]
        mu0 = _linkinv(self.link, (sf.lit(float(b0)) if b0 is not None else sf.lit(0.0)) + off)
        data_cols = [c for c in df.columns]
        return base.select(*data_cols, mu.alias("__mu"), mu0.alias("__mu0"))

    def statistics(self, scored: Any) -> dict[str, float]:
        """The training rows' deviance, null deviance and Pearson statistic on the target's
        own scale, with smglm's exact unit deviances (Spark's summary works on the rescaled
        target and its Tweedie deviance bounds y away from 0): one aggregation."""
        from pyspark.sql import functions as sf

        y = sf.col(self.cfg["target"]).cast("double")
        w = self.weight()
        mu, mu0 = sf.col("__mu"), sf.col("__mu0")
        power = float(self.params.get("variancePower") or 0.0)
        row = scored.agg(
            sf.sum(w * _unit_deviance(self.family, power, y, mu)).alias("deviance"),
            sf.sum(w * _unit_deviance(self.family, power, y, mu0)).alias("null_deviance"),
            sf.sum(w * (y - mu) * (y - mu) / _variance(self.family, power, mu)).alias("pearson"),
        ).first()
        return {k: float(row[k]) for k in ("deviance", "null_deviance", "pearson")}


#: smglm's ALIAS_TOLERANCE: a column whose share of sum of squares left after projecting it
#: on the earlier columns is below this is aliased.
ALIAS_TOLERANCE = 1e-10


def aliased_columns(info: Any, tol: float = ALIAS_TOLERANCE) -> list[int]:
    """The columns of ``info = X'WX`` that are linear combinations of earlier ones (R's
    pivoting rule; smglm's ``glm.stats.aliased_columns``, with numpy only)."""
    import numpy as np

    p = info.shape[0]
    diag = np.diag(info).astype(float)
    zero = ~(diag > 0) | ~np.isfinite(diag)
    d = np.sqrt(np.where(zero, 1.0, diag))
    gram = info / d[:, None] / d[None, :]
    factor = np.zeros((p, p))
    kept: list[int] = []
    out: list[int] = []
    for j in range(p):
        if zero[j] or not np.all(np.isfinite(gram[j])):
            out.append(j)
            continue
        k = len(kept)
        if k:
            v = np.linalg.solve(factor[:k, :k], gram[kept, j])
            rest = float(gram[j, j] - v @ v)
        else:
            v, rest = np.empty(0), float(gram[j, j])
        if rest < tol:
            out.append(j)
            continue
        factor[k, :k] = v
        factor[k, k] = math.sqrt(rest)
        kept.append(j)
    return out


def _xlogy(x: Any, y: Any) -> Any:
    """``x * log(y)``, 0 where x is 0 (scipy's xlogy)."""
    from pyspark.sql import functions as sf

    return sf.when(x == 0, sf.lit(0.0)).otherwise(x * sf.log(y))


def _unit_deviance(family: str, power: float, y: Any, mu: Any) -> Any:
    """The family's unit deviance ``d(y, mu)`` as a Spark expression (smglm's formulas)."""
    from pyspark.sql import functions as sf

    one = sf.lit(1.0)
    if family == "gaussian":
        return (y - mu) * (y - mu)
    if family == "poisson":
        return sf.lit(2.0) * (_xlogy(y, y) - _xlogy(y, mu) - (y - mu))
    if family == "binomial":
        return sf.lit(2.0) * (
            _xlogy(y, y) - _xlogy(y, mu) + _xlogy(one - y, one - y) - _xlogy(one - y, one - mu)
        )
    if family == "gamma":
        return sf.lit(2.0) * (-sf.log(y / mu) + (y - mu) / mu)
    if family == "inverse_gaussian":
        return (y - mu) * (y - mu) / (y * mu * mu)
    p = power
    return sf.lit(2.0) * (
        sf.pow(y, 2 - p) / ((1 - p) * (2 - p))
        - y * sf.pow(mu, 1 - p) / (1 - p)
        + sf.pow(mu, 2 - p) / (2 - p)
    )


def _variance(family: str, power: float, mu: Any) -> Any:
    from pyspark.sql import functions as sf

    if family == "gaussian":
        return sf.lit(1.0)
    if family == "poisson":
        return mu
    if family == "binomial":
        return mu * (sf.lit(1.0) - mu)
    if family == "gamma":
        return mu * mu
    if family == "inverse_gaussian":
        return mu * mu * mu
    return sf.pow(mu, power)


def _ones_vector() -> Any:
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as sf

    return array_to_vector(sf.array(sf.lit(1.0)))


def _summary_stats(summary: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # deviance, null deviance and dispersion come from the driver's own aggregation (exact
    # unit deviances on the target's scale); Spark's null deviance would refit a model
    for key, attr in (
        ("aic", "aic"),
        ("df_resid", "residualDegreeOfFreedom"),
        ("df_null", "residualDegreeOfFreedomNull"),
        ("rank", "rank"),
        ("n_instances", "numInstances"),
    ):
        try:
            value = getattr(summary, attr)
        except Exception:  # e.g. "No AIC available for the tweedie family"
            value = None
        out[key] = value
    return out


def _linkfun(link: str, mu: float) -> float:
    if link == "identity":
        return mu
    if link == "log":
        return math.log(mu)
    if link == "inverse":
        return 1.0 / mu
    if link == "sqrt":
        return math.sqrt(mu)
    if link == "logit":
        return math.log(mu / (1.0 - mu))
    if link == "cloglog":
        return math.log(-math.log(1.0 - mu))
    if link == "probit":
        return _norm_ppf(mu)
    raise DriverError([("link", f"unknown link {link!r}")])


def _norm_ppf(p: float) -> float:
    """The standard normal quantile (bisection on erf: exact to rounding)."""
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _linkinv(link: str, eta: Any) -> Any:
    """The inverse link as a Spark column expression."""
    from pyspark.sql import functions as sf

    if link == "identity":
        return eta
    if link == "log":
        return sf.exp(eta)
    if link == "inverse":
        return sf.lit(1.0) / eta
    if link == "sqrt":
        return eta * eta
    if link == "logit":
        return sf.lit(1.0) / (sf.lit(1.0) + sf.exp(-eta))
    if link == "cloglog":
        return sf.lit(1.0) - sf.exp(-sf.exp(eta))
    if link == "probit":
        return _probit_udf()(eta)
    raise DriverError([("link", f"unknown link {link!r}")])


def _mu_eta(link: str, eta: Any, mu: Any) -> Any:
    """d mu / d eta as a Spark expression."""
    from pyspark.sql import functions as sf

    if link == "identity":
        return sf.lit(1.0)
    if link == "log":
        return mu
    if link == "inverse":
        return sf.lit(-1.0) / (eta * eta)
    if link == "sqrt":
        return sf.lit(2.0) * eta
    if link == "logit":
        return mu * (sf.lit(1.0) - mu)
    if link == "cloglog":
        return sf.exp(eta - sf.exp(eta))
    if link == "probit":
        return sf.exp(-eta * eta / 2.0) / math.sqrt(2.0 * math.pi)
    raise DriverError([("link", f"unknown link {link!r}")])


def _probit_udf() -> Any:
    import pandas as pd
    from pyspark.sql.functions import pandas_udf

    def phi(eta: pd.Series) -> pd.Series:
        return eta.map(lambda v: 0.5 * math.erfc(-v / math.sqrt(2.0)))

    # the module's annotations are strings (``from __future__ import annotations``), and
    # ``pd`` is not a module global: pyspark reads the UDF's kind from real classes
    phi.__annotations__ = {"eta": pd.Series, "return": pd.Series}
    return pandas_udf(phi, "double")  # type: ignore[call-overload]


if __name__ == "__main__":
    sys.exit(main())
