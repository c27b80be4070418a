"""The report of one data split computed by Spark: smglm's split metrics and report tables.

This module is STANDALONE: it imports only pyspark, numpy, pandas and the standard library
(never smglm), so that it runs beside ``spark_driver.py`` on AWS's Spark image (SageMaker
Processing) as well as on this machine. Everything is computed as Spark aggregations: no row
of the data is ever collected to the driver; what is collected is bounded by the number of
levels, bins, distinct values of a categorical, the points of the Lorenz curve kept, or
``collect_limit`` groups (see the spec).

Entry points
------------
``report_split(sdf, spec) -> dict``
    ``sdf`` is a Spark DataFrame of one split's rows (after the rows ``missing: drop`` drops,
    as smglm's ``prepare`` keeps them; rows with weight 0 may be there, they are left out as
    smglm leaves them out) holding the columns the spec names plus ``__mu`` (the fitted mean,
    offset and exposure included) and ``__mu0`` (the null model's mean, R's
    ``null.deviance`` model: intercept only, with the offset; as ``smglm.fit``'s metrics, a
    test split takes the training rows' null intercept plus its own offset). Returns::

        {"metrics": {...},          # exactly smglm's SplitMetrics.to_dict() keys
         "gini": float, "balance": {"sum_actual", "sum_predicted", "ratio"},
         "one_ways": {predictor: DataFrame},
         "tables": {"lift": DataFrame, "lorenz": DataFrame, "residuals": DataFrame},
         "terms": {"levels": {term: DataFrame}, "interactions": {...},
                   "consistency": {...}}}   # aggregates for the term views, see below

``write_split(out_dir, result) -> list[Path]``
    Writes ``result`` as a folder that ``smglm.glm.report.ReportData.from_dir`` reads
    (``report.json`` format 1 and one CSV per table, the same file names and columns as a
    row-level job's ``output/data/<split>/``), plus ``metrics.json`` (the split's metrics) and,
    for the term views, ``spark_terms.json`` with ``term_<kind>_<name>.csv`` aggregates.
    ``smglm.runtime.report_files.write_spark_reports`` turns that folder into the job's
    report folder (term views from the aggregates and the fitted model, PNGs).

``split_metrics(sdf, spec) -> dict``
    The metrics alone (the Gini included), without the report tables.

``spec_from_config(config, *, n_params, terms=None, link=None) -> dict``
    Builds the spec from a resolved GLMConfig as a JSON dict (``GLMConfig.to_dict()``).

The spec (a plain JSON-able dict)
---------------------------------
``target`` (str), ``weights``, ``exposure``, ``offset`` (str or null): the columns.
``family`` (gaussian, binomial, poisson, gamma, inverse_gaussian, tweedie,
negative_binomial), ``link`` (str, for the record), ``tweedie_power`` (float, default 1.5),
``theta`` (float, default 1.0).
``n_params`` (int): the number of coefficients, intercept included (as smglm's
``split_metrics``: df_resid = n_obs - n_params).
``predictors`` (list of str): the one-way columns, in order.
``categorical`` (list of str): predictors tabulated per level even when numeric (the
config's ``categorical``); a string or boolean column is always tabulated per level, a
numeric one is cut into at most ``bins`` exposure-quantile bins.
``levels`` (optional, {predictor: [labels]}): the order of a categorical's one-way rows
(a pandas ``category`` column's order); default: sorted.
``terms`` (optional, list): the model's terms as ``model.json`` writes them (``name``,
``type`` categorical | bands | numeric | spline | interaction, ``levels``, ``reference``,
``groups``, ``missing``, ``cuts``, ``terms`` of an interaction, ``coefficients``): the term
views' aggregates are computed for the level terms (per level), the interactions (per pair
of levels or bins; with ``coefficients``, also the interaction's fitted relativity per cell)
and, with ``by``, the consistency view (per level and value of ``by``).
``by`` (optional str): the time split column (``config.test.by``).
``bins`` (10), ``lorenz_points`` (1000), ``residual_bins`` (20): as smglm's report.
``collect_limit`` (50000): up to this many groups (distinct predicted rates, distinct values
of a numeric column, distinct fitted values or residuals), a table of running sums is
collected and summed with numpy on the driver; beyond, the running sums stay in Spark and only
the rows the tables need (at most a few per bin or Lorenz point) are collected.

Conventions (smglm's ``glm/report/scoring.py``): over the rows with weight w > 0, a row's
actual amount is ``y * w``, its predicted ``mu * w`` and its exposure ``w * exposure`` (``w``
without an exposure column). Rows tied on the predicted rate (rounded to 12 significant
digits) are pooled in the Lorenz curve, the Gini and the lift.

Exactness against smglm's pandas tables on the same rows and means: the sums agree to
rounding (about 1e-15 relative: Spark adds in another order). The lift's decile edges are
the same (equal-exposure slices, ties shared in proportion to exposure), so its values agree
to rounding too. The Lorenz curve keeps the same vertices except where two vertices' path
lengths agree to the last bits (then a neighbouring vertex of the same curve may be kept).
The residual table's quantiles are exact order statistics, interpolated as numpy does. The
log-likelihood's log-gamma terms (Poisson, binomial, negative binomial) are a Stirling series
in Spark SQL (which has no lgamma), within about 1e-15 of scipy's per row.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MU", "MU0", "report_split", "spec_from_config", "split_metrics", "write_split"]

#: The columns of the fitted mean and of the null model's mean that ``report_split`` reads.
MU = "__mu"
MU0 = "__mu0"
MISSING_LABEL = "(missing)"
REPORT_FORMAT = 1
FAMILIES = (
    "gaussian",
    "binomial",
    "poisson",
    "gamma",
    "inverse_gaussian",
    "tweedie",
    "negative_binomial",
)
#: Quantile bins of a numeric part of an interaction (smglm's term_views.INTERACTION_BINS).
INTERACTION_BINS = 5
#: Up to this many groups (distinct predicted rates, distinct values of a numeric column,
#: distinct fitted values), a table of running sums is collected and summed with numpy;
#: beyond, the running sums stay in Spark (range partitions), and only the few rows the
#: tables need are collected.
COLLECT_LIMIT = 50_000
_HAS_DISPERSION = {"gaussian", "gamma", "inverse_gaussian", "tweedie"}


# -- the spec --------------------------------------------------------------------------------
#: smglm's default link per family (``config/families.py``: the first of FAMILY_LINKS).
DEFAULT_LINK = {
    "gaussian": "identity",
    "binomial": "logit",
    "poisson": "log",
    "gamma": "log",
    "inverse_gaussian": "log",
    "tweedie": "log",
    "negative_binomial": "log",
}


def spec_from_config(
    config: Mapping[str, Any],
    *,
    n_params: int,
    terms: Sequence[Mapping[str, Any]] | None = None,
    link: str | None = None,
) -> dict[str, Any]:
    """The spec of :func:`report_split` from a resolved GLMConfig as a JSON dict
    (``GLMConfig.to_dict()``), the number of coefficients (intercept included, aliased ones
    not) and, for the term views, the model's terms (``model.json``'s ``terms``). ``link``:
    the resolved link (default: the config's, else the family's default)."""
    family = str(config.get("family", "gaussian"))
    link = link or config.get("link") or DEFAULT_LINK.get(family)
    test = config.get("test") or {}
    spec: dict[str, Any] = {
        "target": config["target"],
        "weights": config.get("weights"),
        "exposure": config.get("exposure"),
        "offset": config.get("offset"),
        "family": family,
        "link": link,
        "tweedie_power": config.get("tweedie_power"),
        "theta": config.get("theta"),
        "n_params": int(n_params),
        "predictors": list(config.get("predictors") or []),
        "categorical": list(config.get("categorical") or []),
        "by": test.get("by") if isinstance(test, Mapping) else None,
    }
    if terms is not None:
        spec["terms"] = [dict(t) for t in terms]
    return spec


def _check_spec(spec: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    """The spec with its defaults, or a ValueError naming each bad field, its value and what
    is allowed."""
    problems: list[str] = []
    s = dict(spec)
    if not isinstance(s.get("target"), str):
        problems.append(f"spec.target: must be a column name; got {s.get('target')!r}")
    if s.get("family") not in FAMILIES:
        problems.append(f"spec.family: {s.get('family')!r} is not one of {list(FAMILIES)}")
    n_params = s.get("n_params")
    if isinstance(n_params, bool) or not isinstance(n_params, int) or n_params < 0:
        problems.append(f"spec.n_params: must be an integer >= 0; got {n_params!r}")
    defaults = {"bins": 10, "lorenz_points": 1000, "residual_bins": 20}
    defaults["collect_limit"] = COLLECT_LIMIT
    for key, default in defaults.items():
        value = s.get(key, default)
        low = {"lorenz_points": 2, "collect_limit": 0}.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            problems.append(f"spec.{key}: must be an integer >= {low}; got {value!r}")
        s[key] = value
    s["tweedie_power"] = 1.5 if s.get("tweedie_power") is None else float(s["tweedie_power"])
    s["theta"] = 1.0 if s.get("theta") is None else float(s["theta"])
    s["predictors"] = list(s.get("predictors") or [])
    s["categorical"] = list(s.get("categorical") or [])
    s["terms"] = list(s.get("terms") or [])
    needed = [(k, s.get(k)) for k in ("target", "weights", "exposure", "offset", "by")]
    needed += [("predictors", p) for p in s["predictors"]]
    needed += [("column", c) for c in (MU, MU0)]
    known = set(columns)
    for field, col in needed:
        if isinstance(col, str) and col not in known:
            problems.append(
                f"spec.{field}: column {col!r} is not in the Spark DataFrame; it has "
                f"{sorted(known)[:30]}"
            )
    if problems:
        raise ValueError("the Spark report's spec is not valid:\n  " + "\n  ".join(problems))
    return s


# -- Spark helpers ---------------------------------------------------------------------------
def _col(name: str) -> Any:
    from pyspark.sql import functions as sf

    return sf.col("`" + name.replace("`", "``") + "`")


def _finite(c: Any) -> Any:
    from pyspark.sql import functions as sf

    return c.isNotNull() & ~sf.isnan(c) & (sf.abs(c) < sf.lit(float("inf")))


def _xlogy(x: Any, y: Any) -> Any:
    """``x * log(y)``, 0 where x is 0 (scipy's xlogy)."""
    from pyspark.sql import functions as sf

    return sf.when(x == 0, sf.lit(0.0)).otherwise(x * sf.log(y))


def _stirling(z: Any) -> Any:
    from pyspark.sql import functions as sf

    r = sf.lit(1.0) / z
    r2 = r * r
    series = r * (
        sf.lit(1 / 12)
        + r2
        * (
            sf.lit(-1 / 360)
            + r2
            * (
                sf.lit(1 / 1260)
                + r2
                * (
                    sf.lit(-1 / 1680)
                    + r2 * (sf.lit(1 / 1188) + r2 * (sf.lit(-691 / 360360) + r2 * sf.lit(1 / 156)))
                )
            )
        )
    )
    return (z - 0.5) * sf.log(z) - z + sf.lit(0.5 * math.log(2 * math.pi)) + series


def _lgamma(x: Any) -> Any:
    """``log(Gamma(x))`` for x > 0 as a Spark expression (Spark SQL has none): Stirling's
    series from 8 on, the recurrence below (about 1e-15 absolute)."""
    from pyspark.sql import functions as sf

    shifted = _stirling(x + 8.0)
    for k in range(8):
        shifted = shifted - sf.log(x + float(k))
    return sf.when(x >= 8.0, _stirling(x)).otherwise(shifted)


def _unit_deviance(family: str, power: float, theta: float, y: Any, mu: Any) -> Any:
    from pyspark.sql import functions as sf

    if family == "gaussian":
        return (y - mu) * (y - mu)
    if family == "binomial":
        return 2.0 * (
            _xlogy(y, y) - _xlogy(y, mu) + _xlogy(1.0 - y, 1.0 - y) - _xlogy(1.0 - y, 1.0 - mu)
        )
    if family == "poisson":
        return 2.0 * (_xlogy(y, y) - _xlogy(y, mu) - (y - mu))
    if family == "gamma":
        return 2.0 * (-sf.log(y / mu) + (y - mu) / mu)
    if family == "inverse_gaussian":
        return (y - mu) * (y - mu) / (y * mu * mu)
    if family == "tweedie":
        p = power
        return 2.0 * (
            sf.pow(y, 2 - p) / ((1 - p) * (2 - p))
            - y * sf.pow(mu, 1 - p) / (1 - p)
            + sf.pow(mu, 2 - p) / (2 - p)
        )
    th = theta  # negative binomial
    return 2.0 * (_xlogy(y, y) - _xlogy(y, mu) - (y + th) * sf.log((y + th) / (mu + th)))


def _variance(family: str, power: float, theta: float, mu: Any) -> Any:
    from pyspark.sql import functions as sf

    if family == "gaussian":
        return sf.lit(1.0)
    if family == "binomial":
        return mu * (1.0 - mu)
    if family == "poisson":
        return mu
    if family == "gamma":
        return mu * mu
    if family == "inverse_gaussian":
        return mu * mu * mu
    if family == "tweedie":
        return sf.pow(mu, float(power))
    return mu + mu * mu / theta


def _rate_key(rate: Any) -> Any:
    """smglm's ``ranking.rate_key``: rates rounded to 12 significant digits (ties pooled)."""
    from pyspark.sql import functions as sf

    scale = sf.pow(sf.lit(10.0), sf.lit(11.0) - sf.floor(sf.log10(sf.abs(rate))).cast("double"))
    rounded = sf.rint(rate * scale) / scale
    return sf.when((rate != 0) & _finite(rounded), rounded).otherwise(rate)


def _cumulate(df: Any, key: str, cols: Sequence[str]) -> tuple[Any, Any]:
    """``df`` (one row per distinct ``key``) with ``cum_<c>``: the sums of each of ``cols``
    over the rows with key <= this row's, computed in Spark (range partitions, a running sum
    in each, and the partitions' offsets: only one total per partition is collected)."""
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as sf

    spark = df.sparkSession
    parts = max(1, int(spark.conf.get("spark.sql.shuffle.partitions", "8")))
    ranged = df.repartitionByRange(parts, _col(key)).withColumn("__pid", sf.spark_partition_id())
    ranged = ranged.persist(StorageLevel.MEMORY_AND_DISK)
    totals = ranged.groupBy("__pid").agg(*[sf.sum(_col(c)).alias(c) for c in cols]).collect()
    rows, running = [], [0.0] * len(cols)
    for row in sorted(totals, key=lambda r: r["__pid"]):
        rows.append((int(row["__pid"]), *running))
        running = [r + float(row[c] or 0.0) for r, c in zip(running, cols, strict=True)]
    schema = "__pid int, " + ", ".join(f"__off{i} double" for i in range(len(cols)))
    offsets = spark.createDataFrame(rows, schema)
    window = (
        Window.partitionBy("__pid")
        .orderBy(_col(key))
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    out = ranged.join(sf.broadcast(offsets), "__pid").select(
        *[_col(c) for c in df.columns],
        *[
            (sf.sum(_col(c)).over(window) + sf.col(f"__off{i}")).alias(f"cum_{c}")
            for i, c in enumerate(cols)
        ],
    )
    return out.persist(StorageLevel.MEMORY_AND_DISK), ranged


class _Cum:
    """A table of one row per distinct ``key`` with the running sums ``cum_<c>`` of ``cols``
    (and ``cum_one``: the row's 1-based position) in key order.

    Up to ``limit`` rows (a bounded aggregate) it is collected and summed with numpy, as
    smglm's pandas report does; beyond, it stays in Spark (:func:`_cumulate`). Either way
    the callers select rows with expressions built from :meth:`col` (a Spark Column or a
    pandas Series) and collect only those."""

    def __init__(self, df: Any, key: str, cols: Sequence[str], limit: int) -> None:
        from pyspark.sql import functions as sf

        self.key = key
        df = df.withColumn("one", sf.lit(1.0))
        cols = [*cols, "one"]
        rows = df.limit(limit + 1).collect() if limit > 0 else None
        self.spark: Any = None
        self._ranged: Any = None
        if rows is not None and len(rows) <= limit:
            frame = pd.DataFrame.from_records(
                [tuple(r) for r in rows], columns=list(df.columns)
            ).sort_values(key, kind="stable", ignore_index=True)
            for c in cols:
                frame[f"cum_{c}"] = np.cumsum(frame[c].to_numpy(np.float64))
            self.local: pd.DataFrame | None = frame
        else:
            self.local = None
            self.spark, self._ranged = _cumulate(df, key, cols)

    def col(self, name: str) -> Any:
        from pyspark.sql import functions as sf

        return sf.col(name) if self.local is None else self.local[name]

    def floor(self, x: Any) -> Any:
        from pyspark.sql import functions as sf

        return sf.floor(x) if self.local is None else np.floor(x)

    def rows(self, cond: Any = None) -> list[dict[str, Any]]:
        """The rows where ``cond`` (built from :meth:`col`) holds, in key order, as dicts."""
        if self.local is not None:
            frame = self.local if cond is None else self.local[np.asarray(cond, dtype=bool)]
            return [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
        df = self.spark if cond is None else self.spark.filter(cond)
        return sorted((r.asDict() for r in df.collect()), key=lambda r: r["cum_one"])

    def total(self, expr: Any) -> float:
        from pyspark.sql import functions as sf

        if self.local is not None:
            return float(np.sum(np.asarray(expr, dtype=np.float64)))
        return float(self.spark.agg(sf.sum(expr)).collect()[0][0] or 0.0)

    def last(self) -> dict[str, Any] | None:
        """The last row (its running sums are the totals); None without rows."""
        from pyspark.sql import functions as sf

        if self.local is not None:
            if self.local.empty:
                return None
            return {str(k): v for k, v in self.local.iloc[-1].to_dict().items()}
        top = self.spark.orderBy(sf.desc("cum_one")).limit(1).collect()
        return top[0].asDict() if top else None

    def release(self) -> None:
        for df in (self.spark, self._ranged):
            if df is not None:
                df.unpersist()


def _any(conditions: Sequence[Any]) -> Any:
    """``c1 | c2 | ...`` of Spark Columns or pandas Series (False for none)."""
    out = conditions[0]
    for c in conditions[1:]:
        out = out | c
    return out


# -- labels (as smglm's one_way and terms write them) -----------------------------------------
def _format_number(v: float, digits: int) -> str:
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.{digits}g}"


def _distinct_labels(values: Sequence[float]) -> list[str]:
    for digits in range(4, 18):
        out = [_format_number(v, digits) for v in values]
        if len(set(out)) == len(out):
            return out
    return [repr(float(v)) for v in values]


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _level_string(v: Any) -> str | None:
    """smglm's ``terms.level_strings`` of one raw value (None where missing)."""
    if _is_missing(v):
        return None
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if math.isinf(v):
            return None
        return str(int(v)) if v == round(v) else str(np.float64(v))
    return str(v)


def band_labels(cuts: Sequence[float]) -> list[str]:
    """smglm's band level names: ``[-Inf,c1)``, ``[c1,c2)``, ..., ``[ck,Inf)`` (``%g``)."""
    edges = ["-Inf", *(f"{c:g}" for c in cuts), "Inf"]
    return [f"[{a},{b})" for a, b in itertools.pairwise(edges)]


def _stems(prefix: str, names: Iterable[str]) -> dict[str, str]:
    """``<prefix>_<name>``: safe as a file name, unique also ignoring case (as ReportData)."""
    stems: dict[str, str] = {}
    seen: set[str] = set()
    for name in names:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "column"
        stem, i = f"{prefix}_{safe}", 2
        while stem.lower() in seen:
            stem, i = f"{prefix}_{safe}_{i}", i + 1
        seen.add(stem.lower())
        stems[name] = stem
    return stems


# -- the split -------------------------------------------------------------------------------
def report_split(sdf: Any, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics and report tables of one split (see the module's doc for ``spec`` and
    the result)."""
    from pyspark import StorageLevel
    from pyspark.sql import types as st

    s = _check_spec(spec, sdf.columns)
    base = _base(sdf, s).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        types = {f.name: f.dataType for f in sdf.schema.fields}
        metrics, totals = _metrics(base, s)
        ranked = _ranked(base, s)
        metrics["gini"] = ranked["gini"]
        one_ways = {}
        memo: dict[Any, Any] = {}  # groupings shared by one-ways and term views
        for c in s["predictors"]:
            levels = isinstance(types[c], (st.StringType, st.BooleanType)) or c in s["categorical"]
            order = (s.get("levels") or {}).get(c)
            one_ways[c] = _one_way(base, c, levels, s["bins"], order, s["collect_limit"], memo)
        residuals = _residual_table(base, s)
        terms = _term_aggregates(base, s, memo)
    finally:
        base.unpersist()
    sa, sp = totals["sum_actual"], totals["sum_predicted"]
    ratio = sa / sp if sp != 0 else (math.nan if sa == 0 else math.copysign(math.inf, sa))
    return {
        "metrics": metrics,
        "gini": ranked["gini"],
        "balance": {"sum_actual": sa, "sum_predicted": sp, "ratio": ratio},
        "one_ways": one_ways,
        "tables": {"lift": ranked["lift"], "lorenz": ranked["lorenz"], "residuals": residuals},
        "terms": terms,
    }


def split_metrics(sdf: Any, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Only the split's metrics of :func:`report_split` (smglm's ``SplitMetrics`` keys, the
    Gini included), without the report tables."""
    from pyspark import StorageLevel

    s = _check_spec(spec, sdf.columns)
    base = _base(sdf, s).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        metrics, _ = _metrics(base, s)
        metrics["gini"] = _ranked(base, s)["gini"]
    finally:
        base.unpersist()
    return metrics


def _base(sdf: Any, s: Mapping[str, Any]) -> Any:
    """The rows with weight > 0, the columns the report reads, and per row: ``__y``, ``__w``,
    ``__x`` (exposure), ``__m``, ``__m0`` (means), ``__a``, ``__p``, ``__e`` (amounts) and
    ``__d`` (unit deviance)."""
    from pyspark.sql import functions as sf

    fam, power, theta = s["family"], s["tweedie_power"], s["theta"]
    y = _col(s["target"]).cast("double")
    w = _col(s["weights"]).cast("double") if s.get("weights") else sf.lit(1.0)
    expo = _col(s["exposure"]).cast("double") if s.get("exposure") else sf.lit(1.0)
    keep_cols = dict.fromkeys(
        [*s["predictors"], *_term_columns(s["terms"]), *([s["by"]] if s.get("by") else [])]
    )
    base = sdf.select(
        *[_col(c) for c in keep_cols],
        y.alias("__y"),
        w.alias("__w"),
        expo.alias("__x"),
        _col(MU).cast("double").alias("__m"),
        _col(MU0).cast("double").alias("__m0"),
    ).filter(sf.col("__w") > 0)
    base = base.select(
        "*",
        (sf.col("__y") * sf.col("__w")).alias("__a"),
        (sf.col("__m") * sf.col("__w")).alias("__p"),
        (sf.col("__w") * sf.col("__x")).alias("__e"),
        _unit_deviance(fam, power, theta, sf.col("__y"), sf.col("__m")).alias("__d"),
    )
    return base


def _metrics(base: Any, s: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    """smglm's SplitMetrics of the split (R's conventions; see ``glm/stats.py``)."""
    from pyspark.sql import functions as sf

    fam, power, theta = s["family"], s["tweedie_power"], s["theta"]
    yc, wc, mc = sf.col("__y"), sf.col("__w"), sf.col("__m")
    d0 = _unit_deviance(fam, power, theta, yc, sf.col("__m0"))
    pearson = wc * (yc - mc) * (yc - mc) / _variance(fam, power, theta, mc)
    aggs = [
        sf.count(sf.lit(1)).alias("n"),
        sf.sum(wc * sf.col("__d")).alias("dev"),
        sf.sum(wc * d0).alias("null_dev"),
        sf.sum(wc).alias("sw"),
        sf.sum(pearson).alias("pearson"),
        sf.sum("__a").alias("sa"),
        sf.sum("__p").alias("sp"),
    ]
    if fam == "gaussian":
        aggs.append(sf.sum(sf.log(wc)).alias("ll"))
    elif fam in ("gamma", "inverse_gaussian"):
        aggs += [sf.sum(wc * sf.log(yc)).alias("wlogy"), sf.sum(wc * yc / mc).alias("wy_mu")]
        aggs.append(sf.sum(wc * sf.log(mc)).alias("wlogmu"))
    elif fam == "poisson":
        aggs.append(sf.sum(wc * (_xlogy(yc, mc) - mc - _lgamma(yc + 1.0))).alias("ll"))
    elif fam == "binomial":
        trials = sf.rint(wc)
        wins = sf.rint(wc * yc)
        logc = _lgamma(trials + 1.0) - _lgamma(wins + 1.0) - _lgamma(trials - wins + 1.0)
        aggs.append(sf.sum(logc + _xlogy(wins, mc) + _xlogy(trials - wins, 1.0 - mc)).alias("ll"))
    elif fam == "negative_binomial":
        th = theta
        logf = (
            _lgamma(yc + th)
            - math.lgamma(th)
            - _lgamma(yc + 1.0)
            + th * math.log(th)
            + _xlogy(yc, mc)
            - (yc + th) * sf.log(mc + th)
        )
        aggs.append(sf.sum(wc * logf).alias("ll"))
    row = base.agg(*aggs).collect()[0]
    n = int(row["n"])
    dev = float(row["dev"] or 0.0)
    null_dev = float(row["null_dev"] or 0.0)
    sw = float(row["sw"] or 0.0)
    llf = _log_likelihood(fam, row, n, dev, sw)
    n_params = int(s["n_params"])
    df_resid = n - n_params
    if fam not in _HAS_DISPERSION:
        disp = 1.0
    elif df_resid <= 0:
        disp = math.nan
    else:
        disp = float(row["pearson"]) / df_resid
    k = n_params + (1 if fam in _HAS_DISPERSION else 0)
    metrics = {
        "n_obs": n,
        "deviance": dev,
        "null_deviance": null_dev,
        "explained_deviance": 1.0 - dev / null_dev if null_dev > 0 else math.nan,
        "log_likelihood": llf,
        "aic": -2 * llf + 2 * k,
        "bic": -2 * llf + math.log(n) * k if n > 0 else math.nan,
        "dispersion": disp,
        "df_resid": df_resid,
        "gini": math.nan,
    }
    totals = {"sum_actual": float(row["sa"] or 0.0), "sum_predicted": float(row["sp"] or 0.0)}
    return metrics, totals


def _log_likelihood(fam: str, row: Any, n: int, dev: float, sw: float) -> float:
    """R's ``logLik.glm`` from the aggregated sums (smglm's ``FamilySpec.log_likelihood``)."""
    if n == 0 or fam == "tweedie":
        return math.nan
    if fam == "gaussian":
        return float(-0.5 * (n * (math.log(2 * math.pi * dev / n) + 1) - float(row["ll"])))
    if fam == "gamma":
        disp = dev / sw
        shape = 1.0 / disp
        # sum w [(shape-1) log y - y/(mu disp) - lgamma(shape) - shape log(mu disp)]
        return float(
            (shape - 1) * float(row["wlogy"])
            - float(row["wy_mu"]) / disp
            - sw * math.lgamma(shape)
            - shape * (float(row["wlogmu"]) + sw * math.log(disp))
        )
    if fam == "inverse_gaussian":
        disp = dev / sw
        return float(-0.5 * (sw * (math.log(disp * 2 * math.pi) + 1) + 3 * float(row["wlogy"])))
    return float(row["ll"])


# -- Lorenz, Gini, lift ----------------------------------------------------------------------
def _ranked(base: Any, s: Mapping[str, Any]) -> dict[str, Any]:
    """The Lorenz curve (thinned), the Gini and the lift table, from the rows grouped by
    predicted rate (smglm's ``ranking.lift_and_curve``)."""
    from pyspark.sql import functions as sf

    grouped = (
        base.filter(sf.col("__e") > 0)
        .groupBy(_rate_key(sf.col("__p") / sf.col("__e")).alias("__k"))
        .agg(
            sf.sum("__e").alias("e"),
            sf.sum("__a").alias("a"),
            sf.sum("__p").alias("p"),
            sf.sum(sf.abs(sf.col("__a"))).alias("b"),
        )
    )
    cum = _Cum(grouped, "__k", ["e", "a", "p", "b"], int(s["collect_limit"]))
    try:
        last = cum.last()
        if last is None:
            raise ValueError("exposure: the split has no row with positive exposure")
        total_e, total_a, total_b = (float(last[f"cum_{c}"]) for c in ("e", "a", "b"))
        # Gini = 1 - sum_k dx_k (y_k + y_{k-1}), y = cum actual / total actual
        c = cum.col
        trap = cum.total(c("e") * (2.0 * c("cum_a") - c("a")))
        if not math.isfinite(total_a) or total_a == 0:
            gini = math.nan
        else:
            gini = 1.0 - trap / (total_e * total_a)
        lift = _lift(cum, total_e, int(s["bins"]))
        k = int(last["cum_one"])
        lorenz = _lorenz(cum, total_e, total_a, total_b, k, int(s["lorenz_points"]))
    finally:
        cum.release()
    return {"gini": gini, "lift": lift, "lorenz": lorenz}


def _lift(cum: _Cum, total_e: float, n_bins: int) -> pd.DataFrame:
    """smglm's ``ranking._lift_table``: ``n_bins`` equal-exposure slices, ties shared."""
    edges = np.linspace(0.0, total_e, n_bins + 1)
    c = cum.col
    prev = c("cum_e") - c("e")
    rows = cum.rows(_any([(prev < float(t)) & (c("cum_e") >= float(t)) for t in edges[1:]]))
    values = {}
    for name in ("a", "p"):
        out = [0.0]
        for t in edges[1:]:
            r = next((r for r in rows if r["cum_e"] - r["e"] < t <= r["cum_e"]), rows[-1])
            x0, x1 = float(r["cum_e"] - r["e"]), float(r["cum_e"])
            f0, f1 = float(r[f"cum_{name}"] - r[name]), float(r[f"cum_{name}"])
            out.append(f1 if t >= x1 else f0 + (f1 - f0) / (x1 - x0) * (t - x0))
        values[name] = np.diff(np.asarray(out))
    ex = np.diff(edges)
    return pd.DataFrame(
        {
            "bin": np.arange(1, n_bins + 1, dtype=np.int64),
            "exposure": ex,
            "actual": values["a"],
            "predicted": values["p"],
            "actual_rate": values["a"] / ex,
            "predicted_rate": values["p"] / ex,
        }
    )


def _lorenz(
    cum: _Cum, total_e: float, total_a: float, total_b: float, k: int, max_points: int
) -> pd.DataFrame:
    """smglm's ``ranking.thin`` of the Lorenz curve: at most ``max_points`` vertices, evenly
    spread along the curve's length (``k``: the curve's vertices after (0, 0))."""

    def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
        x = np.array([0.0] + [float(r["cum_e"]) for r in rows]) / total_e
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.array([0.0] + [float(r["cum_a"]) for r in rows]) / total_a
        return pd.DataFrame({"cum_exposure": x, "cum_actual": y})

    if k + 1 <= max_points:
        return frame(cum.rows())
    if cum.local is not None:  # smglm's own thinning, on the same vertices
        x = np.concatenate(([0.0], cum.local["cum_e"].to_numpy(np.float64))) / total_e
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.concatenate(([0.0], cum.local["cum_a"].to_numpy(np.float64))) / total_a
        steps = np.abs(np.diff(x)) + np.abs(np.nan_to_num(np.diff(y)))
        t = np.concatenate(([0.0], np.cumsum(steps)))
        idx = np.searchsorted(t, np.linspace(0.0, t[-1], max_points)).clip(0, len(t) - 1)
        idx = np.unique(np.concatenate(([0, len(t) - 1], idx)))
        return pd.DataFrame({"cum_exposure": x[idx], "cum_actual": y[idx]})
    # the vertex path length t = x + sum |dy| (x rises with exposure); targets evenly spread
    c = cum.col
    y_scale = abs(total_a) if total_a != 0 and math.isfinite(total_a) else math.inf
    t = c("cum_e") / total_e + c("cum_b") / y_scale
    t_prev = (c("cum_e") - c("e")) / total_e + (c("cum_b") - c("b")) / y_scale
    t_end = 1.0 + (total_b / y_scale if math.isfinite(y_scale) else 0.0)
    step = t_end / (max_points - 1)
    # keep a vertex when a target falls in (t_prev, t] (with slack; the exact choice below)
    slack = 1e-9
    pick = (cum.floor(t / step + slack) > cum.floor(t_prev / step - slack)) | (
        c("cum_one") == float(k)
    )
    rows = cum.rows(pick)
    ts = np.array([0.0] + [float(r["cum_e"]) / total_e + float(r["cum_b"]) / y_scale for r in rows])
    ts[-1] = t_end
    targets = np.linspace(0.0, t_end, max_points)
    idx = np.searchsorted(ts, targets).clip(0, len(ts) - 1)
    idx = np.unique(np.concatenate(([0, len(ts) - 1], idx)))
    return frame(rows).iloc[idx].reset_index(drop=True)


# -- one-ways --------------------------------------------------------------------------------
def _sums(
    df: Any, key: Any, by: str | None = None, memo: dict[Any, Any] | None = None
) -> list[Any]:
    """The exposure, actual and predicted sums and row counts (``e``, ``a``, ``p``, ``n``)
    by ``key`` (``__g``; and by column ``by``: ``__by``), collected (one row per group).
    ``memo`` keeps them for another table grouping the same way."""
    from pyspark.sql import functions as sf

    memo_key = (str(key), by)
    if memo is not None and memo_key in memo:
        return list(memo[memo_key])
    keys = [key.alias("__g"), *([_col(by).alias("__by")] if by else [])]
    rows = (
        df.groupBy(*keys)
        .agg(
            sf.sum("__e").alias("e"),
            sf.sum("__a").alias("a"),
            sf.sum("__p").alias("p"),
            sf.count(sf.lit(1)).alias("n"),
        )
        .collect()
    )
    if memo is not None:
        memo[memo_key] = rows
    return list(rows)


def _table(labels: list[str], sums: Mapping[int, tuple[float, float, float, int]]) -> pd.DataFrame:
    """The one-way table of the codes that have rows, in code order (missing last)."""
    codes = [i for i in range(len(labels)) if sums.get(i, (0, 0, 0, 0))[3] > 0]
    ex = np.array([sums[i][0] for i in codes], dtype=np.float64)
    ac = np.array([sums[i][1] for i in codes], dtype=np.float64)
    pr = np.array([sums[i][2] for i in codes], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.DataFrame(
            {
                "bin": pd.Series([labels[i] for i in codes], dtype=object).astype(str),
                "exposure": ex,
                "actual": ac,
                "predicted": pr,
                "actual_rate": ac / ex,
                "predicted_rate": pr / ex,
                "n_rows": np.array([sums[i][3] for i in codes], dtype=np.int64),
            }
        )


def _one_way(
    base: Any,
    column: str,
    levels: bool,
    bins: int,
    order: Sequence[str] | None,
    limit: int,
    memo: dict[Any, Any] | None = None,
) -> pd.DataFrame:
    """smglm's ``one_way_of_arrays``: per level (sorted, or ``order``) or per exposure
    quantile bin of a numeric column; missing values last, as ``(missing)``."""
    if levels:
        return _level_one_way(base, column, order, memo)
    codes, labels = _numeric_bins(base, column, bins, limit)
    got = {int(r["__g"]): (r["e"], r["a"], r["p"], int(r["n"])) for r in _sums(base, codes)}
    return _table([*labels, MISSING_LABEL], got)


def _level_one_way(
    base: Any, column: str, order: Sequence[str] | None, memo: dict[Any, Any] | None
) -> pd.DataFrame:
    rows = _sums(base, _col(column), None, memo)
    present = [r["__g"] for r in rows if not _is_missing(r["__g"])]
    if order is not None:
        values = [str(v) for v in order]
        labels_of = {v: str(v) for v in present}
        values += sorted({labels_of[v] for v in present} - set(values))
        index = {lv: i for i, lv in enumerate(values)}
        code_of = {v: index[labels_of[v]] for v in present}
        labels = values
    else:
        try:
            uniq = sorted(set(present))
        except TypeError:  # mixed types: first-seen order
            uniq = list(dict.fromkeys(present))
        if uniq and all(isinstance(v, float) for v in uniq):
            labels = _distinct_labels(uniq)
        else:
            labels = [str(v) for v in uniq]
        code_of = {v: i for i, v in enumerate(uniq)}
    sums: dict[int, list[float]] = {}
    for r in rows:
        code = len(labels) if _is_missing(r["__g"]) else code_of[r["__g"]]
        acc = sums.setdefault(code, [0.0, 0.0, 0.0, 0])
        acc[0] += r["e"]
        acc[1] += r["a"]
        acc[2] += r["p"]
        acc[3] += int(r["n"])
    return _table([*labels, MISSING_LABEL], {k: tuple(v) for k, v in sums.items()})  # type: ignore[misc]


def _numeric_bins(base: Any, column: str, bins: int, limit: int) -> tuple[Any, list[str]]:
    """smglm's ``one_way._numeric_codes``: the bin code of each row (a Spark expression;
    ``len(labels)`` where missing) and the bins' labels. At most ``bins`` bins cut where the
    cumulative exposure over the sorted distinct values reaches i / bins."""
    from pyspark.sql import functions as sf

    x = _col(column).cast("double")
    valid = x.isNotNull() & ~sf.isnan(x)
    distinct = (
        base.filter(valid)
        .groupBy(x.alias("__v"))
        .agg(sf.sum("__e").alias("e"), sf.count(sf.lit(1)).cast("double").alias("n"))
    )
    cum = _Cum(distinct, "__v", ["e", "n"], limit)
    try:
        last = cum.last()
        if last is None:
            return sf.lit(0), []
        k = int(last["cum_one"])
        c = cum.col
        if k <= bins:
            uniq = [float(r["__v"]) for r in cum.rows()]
            starts = uniq
            labels = _distinct_labels(uniq)
        else:
            weight = "e" if float(last["cum_e"]) > 0 else "n"
            running = c(f"cum_{weight}")
            targets = (np.arange(1, bins) / bins - 1e-10) * float(last[f"cum_{weight}"])
            prev = running - c(weight)
            hits = cum.rows(_any([(prev < float(t)) & (running >= float(t)) for t in targets]))
            ends = [int(r["cum_one"]) - 1 for r in hits]
            index = [i for i in sorted({0, *(e + 1 for e in ends)}) if i < k]
            wanted = sorted({*index, k - 1})
            picked = cum.rows(_any([c("cum_one") == float(i + 1) for i in wanted]))
            got = {int(r["cum_one"]) - 1: float(r["__v"]) for r in picked}
            starts = [got[i] for i in index]
            bounds = _distinct_labels([got[i] for i in [*index, k - 1]])
            labels = [f"[{bounds[i]}, {bounds[i + 1]})" for i in range(len(index) - 1)]
            labels.append(f"[{bounds[-2]}, {bounds[-1]}]")
    finally:
        cum.release()
    code = sf.lit(-1)
    for v in starts:
        code = code + sf.when(x >= float(v), 1).otherwise(0)
    return sf.when(valid, code).otherwise(sf.lit(len(labels))), labels


# -- residuals by fitted value ----------------------------------------------------------------
def _lerp(a: float, b: float, t: float) -> float:
    """numpy's quantile interpolation (``_lerp``)."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def _order_stats(cum_rows: Sequence[Mapping[str, Any]], ranks: Iterable[int]) -> dict[int, float]:
    """The value at each 0-based rank, from rows (value ``__v``, count ``n``, cumulative
    ``cum_n``) sorted by value."""
    out = {}
    for rank in ranks:
        for r in cum_rows:
            if r["cum_n"] - r["n"] <= rank < r["cum_n"]:
                out[rank] = float(r["__v"])
                break
    return out


def _residual_table(base: Any, s: Mapping[str, Any]) -> pd.DataFrame:
    """smglm's ``residuals.residual_bins`` of the deviance residuals against the fitted
    mean: bins cut at the exact quantiles of the fitted values (interpolated as numpy), and
    the exact quantiles of each bin's residuals."""
    from pyspark.sql import functions as sf

    n_bins, limit = int(s["residual_bins"]), int(s["collect_limit"])
    f = sf.col("__m")
    resid = sf.signum(sf.col("__y") - f) * sf.sqrt(
        sf.col("__w") * sf.greatest(sf.col("__d"), sf.lit(0.0))
    )
    distinct = base.groupBy(f.alias("__v")).agg(sf.count(sf.lit(1)).cast("double").alias("n"))
    cum = _Cum(distinct, "__v", ["n"], limit)
    try:
        last = cum.last()
        n = int(last["cum_n"]) if last is not None else 0
        if n == 0:
            raise ValueError("fitted: the split has no rows; at least one row is needed")
        probs = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
        pos = n * probs + (1 + probs * -1) - 1  # numpy's virtual index (method linear)
        lo = np.clip(np.floor(pos).astype(np.int64), 0, n - 1)
        ranks = sorted({int(i) for i in lo} | {int(min(i + 1, n - 1)) for i in lo})
        c = cum.col
        rows = cum.rows(_any([(c("cum_n") - c("n") <= r) & (c("cum_n") > r) for r in ranks]))
    finally:
        cum.release()
    stats = _order_stats(rows, ranks)
    quantiles = [
        _lerp(stats[int(a)], stats[int(min(a + 1, n - 1))], float(p - a))
        for a, p in zip(lo, pos, strict=True)
    ]
    cuts = np.unique(np.asarray(quantiles, dtype=np.float64))
    raw = sf.lit(0)
    for cut in cuts:
        raw = raw + sf.when(f >= float(cut), 1).otherwise(0)
    binned = base.select(raw.alias("__raw"), f.alias("__f"), resid.alias("__r"))
    per_raw = binned.groupBy("__raw").agg(
        sf.count(sf.lit(1)).alias("n"), sf.sum("__f").alias("sf"), sf.sum("__r").alias("sr")
    )
    per = {int(r["__raw"]): r for r in per_raw.collect()}
    occupied = sorted(per)
    counts = np.array([int(per[b]["n"]) for b in occupied], dtype=np.int64)
    # (positions counted over all rows sorted by bin, as numpy's residual_bins computes them)
    needed: dict[int, list[tuple[int, int, float]]] = {}
    start = 0
    for b in occupied:
        m = int(per[b]["n"])
        for q in (10, 50, 90):
            p = start + q / 100 * (m - 1)
            a = math.floor(p)
            needed.setdefault(b, []).append((a - start, min(a + 1, start + m - 1) - start, p - a))
        start += m
    dist = binned.groupBy("__raw", sf.col("__r").alias("__v")).agg(sf.count(sf.lit(1)).alias("n"))
    picked = _bin_order_rows(dist, needed, limit)
    table: dict[str, Any] = {
        "bin": np.arange(1, len(occupied) + 1, dtype=np.int64),
        "n_rows": counts,
        "fitted_mean": np.array([per[b]["sf"] for b in occupied], dtype=np.float64) / counts,
        "residual_mean": np.array([per[b]["sr"] for b in occupied], dtype=np.float64) / counts,
    }
    for j, q in enumerate((10, 50, 90)):
        values = []
        for b in occupied:
            a, hi, t = needed[b][j]
            st_ = _order_stats(picked.get(b, []), (a, hi))
            values.append(st_[a] + t * (st_[hi] - st_[a]))
        table[f"residual_q{q}"] = np.asarray(values, dtype=np.float64)
    return pd.DataFrame(table)


def _bin_order_rows(
    dist: Any, needed: Mapping[int, Sequence[tuple[int, int, float]]], limit: int
) -> dict[int, list[dict[str, Any]]]:
    """Per bin, the rows (``__v``, ``n``, ``cum_n``: running count in the bin, by value)
    that hold the ranks ``needed``: collected and summed with numpy up to ``limit`` distinct
    (bin, residual) pairs, else a running count per bin in Spark."""
    from pyspark.sql import Window
    from pyspark.sql import functions as sf

    rows = dist.limit(limit + 1).collect() if limit > 0 else None
    out: dict[int, list[dict[str, Any]]] = {}
    if rows is not None and len(rows) <= limit:
        frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=["__raw", "__v", "n"])
        frame = frame.sort_values(["__raw", "__v"], kind="stable", ignore_index=True)
        frame["cum_n"] = frame.groupby("__raw")["n"].cumsum()
        for b, group in frame.groupby("__raw"):
            out[int(str(b))] = [{str(k): v for k, v in r.items()} for r in group.to_dict("records")]
        return out
    window = (
        Window.partitionBy("__raw")
        .orderBy("__v")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    ranked = dist.withColumn("cum_n", sf.sum("n").over(window))
    hit = []
    for b, triples in needed.items():
        ranks_b = sorted({r for a, hi, _ in triples for r in (a, hi)})
        in_b = _any([(sf.col("cum_n") - sf.col("n") <= r) & (sf.col("cum_n") > r) for r in ranks_b])
        hit.append((sf.col("__raw") == b) & in_b)
    for r in ranked.filter(_any(hit)).collect():
        out.setdefault(int(r["__raw"]), []).append(r.asDict())
    for b in out:
        out[b].sort(key=lambda r: r["__v"])
    return out


# -- term views' aggregates ------------------------------------------------------------------
def _term_columns(terms: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(t["name"]) for t in terms if t.get("type") != "interaction"]


def _level_of(term: Mapping[str, Any], label: str | None) -> str | None:
    """smglm's ``_Levels.level_of``: missing -> ``(missing)`` under ``missing: level``, a
    group's member -> the group."""
    if label is None:
        return MISSING_LABEL if term.get("missing") == "level" else None
    for group, members in (term.get("groups") or {}).items():
        if label in [str(m) for m in members]:
            return str(group)
    return label


def _level_key(term: Mapping[str, Any]) -> tuple[Any, Any]:
    """A Spark expression to group a level term's rows by, and the function from a group's
    key to the row's level label as smglm's report labels it (None: no label)."""
    from pyspark.sql import functions as sf

    name = str(term["name"])
    if term.get("type") == "bands":
        cuts = [float(c) for c in term["cuts"]]
        x = _col(name).cast("double")
        code = sf.lit(0)
        for c in cuts:
            code = code + sf.when(x >= c, 1).otherwise(0)
        key = sf.when(x.isNull() | sf.isnan(x), sf.lit(-1)).otherwise(code)
        labels = band_labels(cuts)

        def band(k: Any) -> str | None:
            return _level_of(term, None if int(k) < 0 else labels[int(k)])

        return key, band
    return _col(name), lambda v: _level_of(term, _level_string(v))


def _numeric_part(base: Any, name: str, limit: int) -> tuple[Any, Any, list[str]]:
    codes, labels = _numeric_bins(base, name, INTERACTION_BINS, limit)
    shown = [*labels, MISSING_LABEL]
    return codes, lambda k: shown[int(k)], labels


def _add(acc: list[float], row: Any) -> None:
    """Add a collected group's sums into ``acc`` (exposure, actual, predicted, rows)."""
    acc[0] += row["e"]
    acc[1] += row["a"]
    acc[2] += row["p"]
    acc[3] += int(row["n"])


def _term_aggregates(
    base: Any, s: Mapping[str, Any], memo: dict[Any, Any] | None = None
) -> dict[str, dict[str, pd.DataFrame]]:
    """The sums the term views need (exposure, actual, expected, rows) by level of each
    level term, by pair of an interaction's levels or bins, and by level and ``by`` value;
    the smglm side adds the fitted model's estimates (``glm/report/spark_tables.py``)."""
    out: dict[str, dict[str, pd.DataFrame]] = {"levels": {}, "interactions": {}, "consistency": {}}
    terms = {str(t["name"]): t for t in s["terms"]}
    by = s.get("by")
    for name, term in terms.items():
        kind = term.get("type")
        if kind in ("categorical", "bands"):
            key, label = _level_key(term)
            known = [str(v) for v in term.get("levels") or []]
            split = by if by and by != name else None
            rows = _sums(base, key, split, memo)
            sums: dict[str, list[float]] = {}
            cells: dict[tuple[str, Any], list[float]] = {}
            for r in rows:
                lv = label(r["__g"])
                if lv is None:
                    continue
                _add(sums.setdefault(lv, [0.0, 0.0, 0.0, 0]), r)
                if split and not _is_missing(r["__by"]):
                    _add(cells.setdefault((lv, r["__by"]), [0.0, 0.0, 0.0, 0]), r)
            order = known + sorted(set(sums) - set(known))
            out["levels"][name] = _agg_frame({"level": order}, [sums.get(lv) for lv in order])
            if split:
                keys = sorted(cells, key=lambda k: (k[0], k[1]))
                rank = {v: i for i, v in enumerate(sorted({k[1] for k in keys}))}
                out["consistency"][name] = _agg_frame(
                    {
                        "level": [k[0] for k in keys],
                        "by": [_by_text(k[1]) for k in keys],
                        "by_rank": [rank[k[1]] for k in keys],
                    },
                    [cells[k] for k in keys],
                )
        elif kind == "interaction":
            table = _interaction_aggregate(base, term, terms, s.get("link"), s["collect_limit"])
            if table is not None:
                out["interactions"][name] = table
    return out


def _by_text(value: Any) -> str:
    """smglm's ``term_views._by_text``: a value of the split column as text (2024.0 as 2024)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _agg_frame(
    keys: Mapping[str, list[Any]], sums: Sequence[Sequence[float] | None]
) -> pd.DataFrame:
    filled = [list(v) if v is not None else [0.0, 0.0, 0.0, 0] for v in sums]
    frame = pd.DataFrame(dict(keys))
    frame["exposure"] = np.array([v[0] for v in filled], dtype=np.float64)
    frame["actual"] = np.array([v[1] for v in filled], dtype=np.float64)
    frame["expected"] = np.array([v[2] for v in filled], dtype=np.float64)
    frame["n_rows"] = np.array([v[3] for v in filled], dtype=np.int64)
    return frame


def _interaction_aggregate(
    base: Any,
    term: Mapping[str, Any],
    terms: Mapping[str, Mapping[str, Any]],
    link: str | None,
    limit: int,
) -> pd.DataFrame | None:
    """Sums by pair of levels (or bins of a numeric part) of an interaction: ``a``, ``b``,
    ``a_bin``/``b_bin`` (a numeric part's bin number, -1 for a level part), exposure,
    actual, expected, n_rows; with the coefficients and a numeric part, also ``fit_sum``: the
    sum over the cell's rows of exposure x the interaction's relativity (log link) or effect."""
    from pyspark.sql import functions as sf

    parts = [terms.get(str(n)) for n in term.get("terms") or []]
    if len(parts) != 2 or any(p is None for p in parts):
        return None
    keys, labels, numeric = [], [], []
    for part in parts:
        assert part is not None
        if part.get("type") in ("categorical", "bands"):
            key, label = _level_key(part)
            numeric.append(False)
        elif part.get("type") == "numeric":
            key, label, _ = _numeric_part(base, str(part["name"]), limit)
            numeric.append(True)
        else:
            return None  # splines: not built by the Spark engine
        keys.append(key)
        labels.append(label)
    aggs = [
        sf.sum("__e").alias("e"),
        sf.sum("__a").alias("a"),
        sf.sum("__p").alias("p"),
        sf.count(sf.lit(1)).alias("n"),
    ]
    coefs = term.get("coefficients")
    with_fit = any(numeric) and coefs is not None
    if with_fit:
        effect = _interaction_effect(base, parts, keys, labels, np.asarray(coefs, dtype=float))
        scaled = sf.exp(effect) if link == "log" else effect
        aggs.append(sf.sum(sf.col("__e") * scaled).alias("f"))
    rows = base.groupBy(keys[0].alias("__ka"), keys[1].alias("__kb")).agg(*aggs).collect()
    cells: dict[tuple[str, str], list[float]] = {}
    bin_of: dict[tuple[int, str], int] = {}
    for r in rows:
        pair = []
        for i, k in enumerate(("__ka", "__kb")):
            lab = labels[i](r[k])
            lab = MISSING_LABEL if lab is None else lab
            pair.append(lab)
            bin_of[(i, lab)] = int(r[k]) if numeric[i] else -1
        acc = cells.setdefault((pair[0], pair[1]), [0.0, 0.0, 0.0, 0, 0.0])
        for i, c in enumerate(("e", "a", "p")):
            acc[i] += r[c]
        acc[3] += int(r["n"])
        acc[4] += float(r["f"]) if with_fit else math.nan
    order = sorted(cells)
    frame = _agg_frame(
        {
            "a": [k[0] for k in order],
            "b": [k[1] for k in order],
            "a_bin": [bin_of[(0, k[0])] for k in order],
            "b_bin": [bin_of[(1, k[1])] for k in order],
        },
        [cells[k] for k in order],
    )
    if with_fit:
        frame["fit_sum"] = np.array([cells[k][4] for k in order], dtype=np.float64)
    return frame


def _interaction_effect(
    base: Any, parts: Sequence[Any], keys: Sequence[Any], labels: Sequence[Any], c: np.ndarray
) -> Any:
    """The interaction's contribution to each row's linear predictor (smglm's
    ``InteractionTerm.effect``; a missing number contributes 0, as the report's
    ``nan_to_num``), for interactions with a numeric part."""
    from pyspark.sql import functions as sf

    def factor(i: int) -> tuple[Any, Any]:
        """(the row's slot index of a level part or None, the numeric value or None)."""
        part = parts[i]
        if part.get("type") == "numeric":
            x = _col(str(part["name"])).cast("double")
            return None, sf.when(x.isNull() | sf.isnan(x), sf.lit(0.0)).otherwise(x)
        levels = [str(v) for v in part.get("levels") or []]
        index = {lv: j for j, lv in enumerate(levels)}
        seen = [r["__g"] for r in base.select(keys[i].alias("__g")).distinct().collect()]
        return (seen, index, i), None

    fa, xa = factor(0)
    fb, xb = factor(1)

    def by_level(level_part: Any, values: Any) -> Any:
        """sum over the level part's slots: the row's slot row (or column) of c times values."""
        seen, index, i = level_part
        expr = sf.lit(0.0)
        key = keys[i]
        for raw in seen:
            lab = labels[i](raw)
            slot = index.get(lab, -1) if lab is not None else -1
            if slot < 0:
                continue  # unseen levels contribute nothing (as the reference)
            coef = float(values(slot))
            if coef == 0.0:
                continue
            match = key.isNull() if raw is None else key == sf.lit(raw)
            expr = sf.when(match, sf.lit(coef)).otherwise(expr)
        return expr

    if fa is not None and xb is not None:
        return by_level(fa, lambda j: c[j, 0]) * xb
    if fb is not None and xa is not None:
        return by_level(fb, lambda j: c[0, j]) * xa
    return xa * float(c[0, 0]) * xb


# -- writing ---------------------------------------------------------------------------------
def _json_number(v: Any) -> Any:
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    v = float(v)
    return v if math.isfinite(v) else None


def write_split(out_dir: str | Path, result: Mapping[str, Any]) -> list[Path]:
    """Write what :func:`report_split` returned into ``out_dir``; return the files.

    The folder is one that ``smglm.glm.report.ReportData.from_dir`` reads: ``report.json``
    (format 1: ``gini``, ``balance``, ``one_ways``, ``files``) and ``<table>.csv`` with the
    row-level job's names (``one_way_<column>.csv``, ``lift.csv``, ``lorenz.csv``,
    ``residuals.csv``); plus ``metrics.json`` (the split's metrics, non-finite as null) and
    ``spark_terms.json`` naming the term views' aggregates (``term_<kind>_<name>.csv``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stems = _stems("one_way", result["one_ways"])
    tables = {f"{stems[c]}.csv": t for c, t in result["one_ways"].items()}
    tables |= {f"{n}.csv": t for n, t in result["tables"].items() if t is not None}
    terms_meta: dict[str, dict[str, str]] = {}
    for kind, by_name in (result.get("terms") or {}).items():
        files = _stems(f"term_{kind}", by_name)
        terms_meta[kind] = {name: f"{files[name]}.csv" for name in by_name}
        tables |= {f"{files[name]}.csv": t for name, t in by_name.items()}
    written = []
    for name, table in tables.items():
        table.to_csv(out / name, index=False)
        written.append(out / name)
    report_names = [n for n in tables if not n.startswith("term_")]
    meta: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "gini": _json_number(result["gini"]),
        "balance": {k: _json_number(v) for k, v in result["balance"].items()},
        "one_ways": {str(c): f"{s}.csv" for c, s in stems.items()},
        "files": report_names,
    }
    (out / "report.json").write_text(json.dumps(meta, indent=2) + "\n")
    metrics = {k: _json_number(v) for k, v in result["metrics"].items()}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    (out / "spark_terms.json").write_text(json.dumps(terms_meta, indent=2) + "\n")
    return [*written, out / "report.json", out / "metrics.json", out / "spark_terms.json"]
