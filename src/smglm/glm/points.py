"""Model points: fit a GLM on its rows summed to rating cells, out of core, with the row-level
statistics.

When every estimated term is categorical or banded (and interactions of those; fixed level
terms too), the rows of one rating cell share their design row, so the score equations of the
GLM depend on the rows only through per-cell sums: the fit on the cells, with the weighted mean
of the target as the response and the summed weights as weights, has the same coefficients. The
cells are built by DuckDB straight from the Parquet or CSV files (a file or a folder, as
:func:`smglm.glm.io.read_table` reads them), never loading the rows into pandas, so a portfolio
larger than memory fits on one machine; a DataFrame is aggregated the same way.

What a cell is:

- its key: each categorical predictor's raw value, each banded predictor's band (the cell keeps
  one value of the band, so the fitted terms are exactly those of the rows: levels, groups, the
  base level with the most exposure, the missing level, the bands), the offset or exposure when
  it must be constant in a cell, and the train/test split;
- Poisson with the log link folds its exposure into the weight: the cell's response is
  ``sum(w y) / sum(w e)`` and its weight ``sum(w e)`` (exact, the unit deviance included);
  other families keep the exposure as a key, and an offset column is a key for every family
  (a continuous one multiplies the cells: band or round it upstream if it need not be exact);
- what the statistics need: the row count, ``sum(w y^2)`` for the Pearson dispersion, and the
  per-row constants of the deviance and the log-likelihood (for an exponential family
  ``sum_i w_i d(y_i, mu) = sum_i w_i d(y_i, ybar) + W d(ybar, mu)`` within a cell, and the first
  sum is carried, once per split, as ``sum(w t(y))`` with ``t(y) = y theta(y) -
  b(theta(y))``).

So the result is the rows' fit: coefficients, standard errors, dispersion, deviance, null
deviance, log-likelihood, AIC, BIC, ``n_obs`` and ``df_resid`` are the row-level ones (within
rounding), and ``model.json`` scores new rows with their own exposure. ``metrics["fit"]
["model_points"]`` says ``rows``, ``cells`` and ``aggregate_seconds``.

``aggregate``: ``"cells"`` aggregates (an error naming the terms that prevent it), ``"rows"``
never does, ``"auto"`` does when the terms allow it and the data has at least
:data:`AUTO_MIN_ROWS` rows (counted from the Parquet metadata, a DataFrame's length, or
estimated from a CSV file's size).

Test splits: ``test: {by, holdout}`` selects exactly the rows the row-level split does;
``test: {fraction, seed}`` draws each row by a deterministic hash of its position (file and row
number) and the seed, so its rows differ from those of the row-level split (same fraction, a
different random draw). Given test data is aggregated in the same way.

With ``keep_fitted=True`` the splits kept for the report are the cells (data, prepared form and
fitted means), with each banded predictor as its bands: one-way tables are exact per level and
band, the Gini is exact (rows of a cell share their predicted rate, and the Gini pools ties;
where the exposure is a key, rates equal but for rounding may order differently, about 1e-6),
lift deciles and residuals are at cell granularity.

DuckDB works within :data:`DUCKDB_MEMORY_LIMIT` (``$SMGLM_POINTS_MEMORY``), spilling to a
temporary folder beyond it: 100M rows of 8 rating factors (2.1M cells) fit in under 1 GiB of
peak memory (``benchmarks/README.md``).

Counts in the data checks (missing values, values outside the family's domain) are of rows; the
separation notes of the coefficient table count cells.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from smglm.errors import ConfigError, DataError, Issue, MissingDependency

if TYPE_CHECKING:
    from smglm.config import GLMConfig
    from smglm.glm.data import Prepared
    from smglm.glm.families import FamilySpec
    from smglm.glm.result import FitResult
    from smglm.glm.stats import SplitMetrics

__all__ = [
    "AGGREGATE_CHOICES",
    "AUTO_MIN_ROWS",
    "Cells",
    "aggregate_cells",
    "blockers",
    "check_aggregate",
    "fit_points",
    "will_aggregate",
]

log = logging.getLogger(__name__)

#: ``aggregate: auto`` fits on model points from this many rows on.
AUTO_MIN_ROWS = 1_000_000
#: The values of ``aggregate``.
AGGREGATE_CHOICES = ("auto", "cells", "rows")
#: DuckDB's memory limit while aggregating (it spills to disk beyond it);
#: ``$SMGLM_POINTS_MEMORY`` overrides it.
DUCKDB_MEMORY_LIMIT = "2GB"

# the cells' own columns (prefixed so as not to meet the data's)
_Y, _W = "__smglm_y", "__smglm_w"


# -- the public entry ---------------------------------------------------------------------------
def fit_points(
    config: GLMConfig,
    data: Any,
    *,
    test_data: Any = None,
    aggregate: str = "auto",
    keep_fitted: bool = False,
) -> FitResult | None:
    """The fit on model points, or None when the rows are to be fitted as they are.

    ``config`` is the resolved config :func:`smglm.fit` was given, ``data`` and ``test_data``
    a DataFrame or a CSV/Parquet file or folder. See the module's documentation for
    ``aggregate`` and what the result holds.
    """
    if aggregate not in AGGREGATE_CHOICES:
        raise ConfigError(
            [
                Issue(
                    "aggregate",
                    f"unknown value {aggregate!r}; choose one of {list(AGGREGATE_CHOICES)} "
                    "('cells': fit on model points, 'rows': on the rows, 'auto': cells when the "
                    f"terms allow it and the data has >= {AUTO_MIN_ROWS:,} rows)",
                    aggregate,
                )
            ]
        )
    if aggregate == "rows":
        return None
    config_reasons = blockers(config)
    if aggregate == "auto":
        if config_reasons:
            return None
        if isinstance(data, pd.DataFrame) and len(data) < AUTO_MIN_ROWS:
            return None
        try:
            import duckdb  # noqa: F401
        except ImportError:
            log.info("aggregate auto: duckdb is not installed (smglm[points]); fitting the rows")
            return None
    elif config_reasons:
        raise ConfigError(_refusals(config_reasons))
    t0 = time.perf_counter()
    try:
        source = _Source.open(data, config, what="data")
    except DataError:
        if aggregate == "auto":  # e.g. a file DuckDB cannot read: the rows' path says why
            return None
        raise
    try:
        reasons = blockers(config, source.types)
        if aggregate == "auto":
            if reasons or source.count_rows() < AUTO_MIN_ROWS:
                return None
            log.info(
                "aggregate auto: %s rows, every term categorical or banded: fitting on model "
                "points",
                f"{source.count_rows():,}",
            )
        elif reasons:
            raise ConfigError(_refusals(reasons))
        split = config.test is not None and test_data is None
        cells = aggregate_cells(config, source, split=split)
    finally:
        source.close()
    test_cells: Cells | None = None
    if split:
        train, test_cells = cells.split()
    else:
        train = cells
        if test_data is not None:
            tsource = _Source.open(test_data, config, what="test data")
            try:
                test_cells = aggregate_cells(config, tsource, split=False)
            finally:
                tsource.close()
    seconds = time.perf_counter() - t0
    log.info(
        "model points: %s rows -> %s cells in %.1f s",
        f"{train.n_rows:,}",
        f"{len(train.frame):,}",
        seconds,
    )
    return _fit_cells(config, train, test_cells, seconds, keep_fitted, t0)


# -- what allows model points ---------------------------------------------------------------------
def will_aggregate(config: GLMConfig, data: Any, aggregate: str = "auto") -> bool:
    """Whether :func:`fit_points` fits ``data`` on model points, found cheaply (no
    aggregation): always for ``"cells"`` (it refuses with the reasons when the terms do not
    allow it), never for ``"rows"``; for ``"auto"`` when the terms allow it and the data has
    at least :data:`AUTO_MIN_ROWS` rows. The training runtime asks this before it reads a
    channel, to hand DuckDB the files instead of loading the rows."""
    if aggregate == "rows":
        return False
    if aggregate == "cells":
        return True
    if blockers(config):
        return False
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return False
    if isinstance(data, pd.DataFrame):
        return len(data) >= AUTO_MIN_ROWS
    try:
        source = _Source.open(data, config, what="data")
    except DataError:
        return False
    try:
        return not blockers(config, source.types) and source.count_rows() >= AUTO_MIN_ROWS
    finally:
        source.close()


def blockers(config: GLMConfig, types: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """What prevents fitting ``config`` on model points: (config field, reason) pairs, empty
    when every estimated term is categorical or banded. ``types`` (column -> DuckDB type) tells
    text from numbers; without it only the config is looked at."""
    out: list[tuple[str, str]] = []
    for col in config.predictors:
        spec = config.term(col)
        if spec.spline is not None:
            out.append(
                (
                    f"terms.{col}.spline",
                    f"predictor {col!r} is a spline, which varies within a rating cell; give "
                    "it bands instead",
                )
            )
            continue
        if spec.bands is not None:
            continue
        text = col in config.categorical or (types is not None and _is_text(types.get(col)))
        if types is None and col not in config.categorical:
            continue  # the data's type decides
        if text:
            continue
        fixed = config.fixed.get(col)
        what = "fixed at a coefficient" if isinstance(fixed, (int, float)) else "linear"
        out.append(
            (
                "predictors",
                f"predictor {col!r} is numeric ({what}), which varies within a rating cell; "
                f"give it bands (terms.{col}.bands) or list it under categorical",
            )
        )
    if config.penalty.search is not None:
        out.append(
            (
                "penalty.search",
                "the penalty search cross-validates over rows (its folds are rows), not cells",
            )
        )
    return out


def check_aggregate(config: GLMConfig, aggregate: str, data: Any = None) -> list[Issue]:
    """What prevents ``aggregate: cells`` for ``config``: one issue per term that varies within
    a rating cell. ``data`` (a DataFrame, or a local Parquet/CSV file or folder), when given,
    tells numeric columns from text ones (only its schema is read); without it only what the
    config says is checked. Empty for ``auto`` and ``rows``. :func:`smglm.train` raises them
    before it uploads anything."""
    if aggregate != "cells":
        return []
    types = None
    if data is not None:
        try:
            import duckdb  # noqa: F401

            source = _Source.open(data, config, what="data")
        except (ImportError, DataError):  # the data checks, or the job, say why
            pass
        else:
            try:
                types = source.types
            finally:
                source.close()
    return _refusals(blockers(config, types))


def _refusals(reasons: list[tuple[str, str]]) -> list[Issue]:
    return [
        Issue(
            "aggregate",
            f"aggregate 'cells' needs every estimated term categorical or banded; {reason} "
            f"({where}); or use aggregate 'rows' (or 'auto')",
            "cells",
        )
        for where, reason in reasons
    ]


def _is_text(duck_type: str | None) -> bool:
    if duck_type is None:
        return False
    t = duck_type.upper()
    return t.startswith(("VARCHAR", "ENUM", "STRING", "TEXT")) or t in ("UUID", "BLOB")


def _is_float(duck_type: str | None) -> bool:
    return duck_type is not None and duck_type.upper() in ("DOUBLE", "FLOAT", "REAL")


# -- reading the data with DuckDB ------------------------------------------------------------------
def _q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _num(value: float) -> str:
    """A float as an exact SQL DOUBLE."""
    return f"'{float(value)!r}'::DOUBLE"


@dataclass
class _Source:
    """The data as DuckDB reads it: the connection, the FROM clause, the columns' types."""

    con: Any
    relation: str
    types: dict[str, str]
    what: str
    kind: str
    files: list[Path] = field(default_factory=list)
    n_rows: int | None = None
    size_bytes: int = 0

    @property
    def label(self) -> str:
        """The data as the user gave it, for messages."""
        if self.kind == "frame":
            return "the DataFrame"
        return self.files[0].parent.as_posix() if len(self.files) > 1 else str(self.files[0])

    @classmethod
    def open(cls, data: Any, config: GLMConfig, *, what: str) -> _Source:
        try:
            import duckdb
        except ImportError:
            raise MissingDependency(
                "duckdb", "points", "aggregate 'cells' (model points)"
            ) from None
        con = duckdb.connect()
        limit = os.environ.get("SMGLM_POINTS_MEMORY", DUCKDB_MEMORY_LIMIT)
        tmp = Path(tempfile.gettempdir()) / "smglm-duckdb"
        con.execute(f"SET memory_limit = '{limit}'")
        con.execute(f"SET temp_directory = '{tmp.as_posix()}'")
        con.execute(f"SET threads = {max(1, os.cpu_count() or 1)}")
        fraction = config.test is not None and config.test.by is None
        if not fraction:  # the order of rows matters only to the random split's positions
            con.execute("SET preserve_insertion_order = false")
        if isinstance(data, pd.DataFrame):
            wanted = [c for c in config.columns if c in data.columns]
            frame = data[wanted]
            if not frame.columns.is_unique:
                con.close()
                _missing_columns(config, data, what)  # raises on duplicates
            con.register("__smglm_data", frame)
            src = cls(con, "__smglm_data", {}, what, "frame", n_rows=len(frame))
        else:
            src = cls._of_files(con, Path(data), what, positions=fraction)
        try:
            described = con.execute(f"DESCRIBE SELECT * FROM {src.relation}").fetchall()
        except Exception as exc:
            con.close()
            raise _read_error(exc, what, src.label) from None
        src.types = {str(r[0]): str(r[1]) for r in described}
        missing = [c for c in config.columns if c not in src.types]
        if missing:
            con.close()
            _missing_columns(config, pd.DataFrame(columns=list(src.types)), what)
        return src

    @classmethod
    def _of_files(cls, con: Any, path: Path, what: str, *, positions: bool) -> _Source:
        from smglm.glm.io import _kind, data_files

        if path.is_dir():
            files = data_files(path, what=what)
        elif path.exists():
            files = [path]
        else:
            con.close()
            raise DataError([Issue(what, f"no such file or folder: {str(path)!r}", str(path))])
        kinds = {_kind(p) for p in files}
        if None in kinds:
            con.close()
            from smglm.glm.io import DATA_SUFFIXES

            raise DataError(
                [
                    Issue(
                        what,
                        f"{files[0].name!r} is not a data file smglm reads; use one of "
                        f"{list(DATA_SUFFIXES)}",
                        str(files[0]),
                    )
                ]
            )
        listed = "[" + ", ".join("'" + p.as_posix().replace("'", "''") + "'" for p in files) + "]"
        size = sum(p.stat().st_size for p in files)
        if kinds == {"parquet"}:
            extra = ", filename = true, file_row_number = true" if positions else ""
            relation = f"read_parquet({listed}{extra})"
            return cls(con, relation, {}, what, "parquet", files=files, size_bytes=size)
        tsv = all(p.name.lower().endswith(".tsv") for p in files)
        delim = "\\t" if tsv else ","
        relation = f"read_csv({listed}, header = true, delim = E'{delim}')"
        return cls(con, relation, {}, what, "csv", files=files, size_bytes=size)

    def count_rows(self) -> int:
        """The number of rows, cheaply: Parquet metadata, a frame's length, or (CSV) an
        estimate from the files' size and the length of their first lines."""
        if self.n_rows is not None:
            return self.n_rows
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            self.n_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in self.files)
            return self.n_rows
        sample = b""
        if self.files:
            with self.files[0].open("rb") as handle:
                sample = handle.read(1 << 16)
        if self.files and self.files[0].name.lower().endswith((".gz", ".bz2")):
            return int(self.size_bytes / 20)  # compressed: about 20 bytes a row
        lines = max(sample.count(b"\n"), 1)
        return int(self.size_bytes / (len(sample) / lines)) if sample else 0

    def position(self) -> str:
        """A SQL expression of each row's position (for the hashed random split)."""
        if self.kind == "parquet":
            return "hash(filename, file_row_number)"
        return "hash(row_number() OVER ())"

    def close(self) -> None:
        self.con.close()


def _read_error(exc: Exception, what: str, data: Any) -> DataError:
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DataError(
        [
            Issue(
                what,
                f"cannot aggregate {str(data)!r} to model points with DuckDB: {msg}",
                str(data),
            )
        ]
    )


def _missing_columns(config: GLMConfig, frame: pd.DataFrame, what: str) -> None:
    """Raise prepare's errors for the config's columns missing (or repeated) in ``frame``."""
    from smglm.glm.data import _check_columns

    _check_columns(config, frame, what)
    if config.test is not None and config.test.by is not None and config.test.by not in frame:
        from smglm.errors import did_you_mean

        by = config.test.by
        raise DataError(
            [
                Issue(
                    "test.by",
                    f"column {by!r} is not in the {what}."
                    f"{did_you_mean(by, [str(c) for c in frame.columns])}",
                    by,
                )
            ]
        )


# -- the family's per-row sums ---------------------------------------------------------------------
def _fold(config: GLMConfig) -> bool:
    """Whether the exposure folds into the weight: Poisson with the log link and an exposure.

    An offset column is a cell key instead: folding ``exp(offset)`` would fit the same
    coefficients and statistics, but the report ranks and sums an offset's rows by their own
    means (the exposure amount of such a row is its weight), which cells of mixed offsets
    cannot reproduce."""
    return config.family == "poisson" and config.resolved_link == "log" and bool(config.exposure)


def _xlogy_sql(y: str) -> str:
    return f"(CASE WHEN {y} > 0 THEN {y} * ln({y}) ELSE 0 END)"


def _t_sql(config: GLMConfig, y: str) -> str | None:
    """``t(y) = y theta(y) - b(theta(y))`` of the family, in SQL (None where not finite)."""
    fam = config.family
    if fam == "gaussian":
        return f"({y} * {y} / 2)"
    if fam == "poisson":
        return f"({_xlogy_sql(y)} - {y})"
    if fam == "binomial":
        return f"({_xlogy_sql(y)} + {_xlogy_sql('(1 - ' + y + ')')})"
    if fam == "gamma":
        return f"(CASE WHEN {y} > 0 THEN -1 - ln({y}) END)"
    if fam == "inverse_gaussian":
        return f"(CASE WHEN {y} > 0 THEN 1 / (2 * {y}) END)"
    if fam == "tweedie":
        p = float(config.resolved_power or 1.5)
        return f"(CASE WHEN {y} >= 0 THEN pow({y}, {_num(2 - p)}) / {_num((1 - p) * (2 - p))} END)"
    if fam == "negative_binomial":
        k = float(config.resolved_theta or 1.0)
        return (
            f"(CASE WHEN {y} >= 0 THEN {_xlogy_sql(y)} - ({y} + {_num(k)}) * ln({y} + {_num(k)})"
            f" + {_num(k * math.log(k))} END)"
        )
    return None


def _t(fam: FamilySpec, y: np.ndarray) -> np.ndarray:
    """``t(y) = y theta(y) - b(theta(y))`` (see :func:`_t_sql`), in numpy."""
    from scipy.special import xlogy

    name = fam.name
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "gaussian":
            return y * y / 2
        if name == "poisson":
            return xlogy(y, y) - y
        if name == "binomial":
            return xlogy(y, y) + xlogy(1 - y, 1 - y)
        if name == "gamma":
            return -1 - np.log(y)
        if name == "inverse_gaussian":
            return 1 / (2 * y)
        if name == "tweedie":
            p = float(fam.power)  # type: ignore[attr-defined]
            return np.power(y, 2 - p) / ((1 - p) * (2 - p))
        k = float(fam.theta)  # type: ignore[attr-defined]
        return xlogy(y, y) - (y + k) * np.log(y + k) + k * math.log(k)


def _llf_sums(config: GLMConfig, y: str, w: str) -> dict[str, str]:
    """The per-row sums the family's log-likelihood needs (over rows with weight > 0)."""
    fam = config.family
    if fam == "poisson":
        return {"s_lg": f"{w} * {_lgamma(f'{y} + 1')}"}
    if fam == "negative_binomial":
        k = _num(float(config.resolved_theta or 1.0))
        return {"s_lg": f"{w} * ({_lgamma(f'{y} + {k}')} - {_lgamma(f'{y} + 1')})"}
    if fam == "binomial":
        n, k = f"round_even({w}, 0)", f"round_even({w} * {y}, 0)"
        lchoose = [_lgamma(f"{n} + 1"), _lgamma(f"{k} + 1"), _lgamma(f"{n} - {k} + 1")]
        return {
            "s_lchoose": " - ".join(lchoose),
            "s_k": k,
            "s_n": n,
        }
    if fam == "gaussian":
        return {"s_lnw": f"ln({w})"}
    if fam in ("gamma", "inverse_gaussian"):
        return {"s_lny": f"(CASE WHEN {y} > 0 THEN {w} * ln({y}) END)"}
    return {}


def _lgamma(x: str) -> str:
    """DuckDB's ``lgamma(x)`` where ``x > 0``, NULL elsewhere: DuckDB 1.x refuses
    ``lgamma(0)`` (an error, where 2.x gives inf), which a negative count or a proportion above
    1 reaches before the checks computed in the same query refuse that row."""
    return f"lgamma(CASE WHEN ({x}) > 0 THEN ({x}) END)"


# -- the aggregation ------------------------------------------------------------------------------
@dataclass
class Cells:
    """Rows summed to rating cells: one row per cell with its key columns (the predictors'
    values, the offset or exposure when it is a key, ``__test`` with a split) and the sums
    (``n_rows``, ``n_obs``, ``sw``, ``swy``, ``swyy``, ``swe``...). ``frame`` holds the cells
    with at least one usable row; ``n_rows`` counts the rows in them; ``n_dropped`` the rows
    dropped under ``missing: drop``; ``totals`` the sums the statistics need only in total (per
    split): the per-row constants of the deviance and the log-likelihood."""

    config: GLMConfig
    frame: pd.DataFrame
    fold: bool
    n_rows: int
    n_dropped: int = 0
    totals: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def total(self, name: str) -> float:
        """A sum over the cells' rows that only the totals need (``st``, ``s_lg``...)."""
        return float(self.totals[name].sum())

    def split(self) -> tuple[Cells, Cells]:
        """The train and test cells of a split aggregation (the ``__test`` key)."""
        is_test = self.frame["__test"].to_numpy(dtype=bool)
        train = self.frame.loc[~is_test].drop(columns="__test").reset_index(drop=True)
        test = self.frame.loc[is_test].drop(columns="__test").reset_index(drop=True)
        n_train = int(train["n_rows"].sum())
        n_test = int(test["n_rows"].sum())
        if n_train == 0 or n_test == 0:
            t = self.config.test
            assert t is not None
            field_ = "test.holdout" if t.by is not None else "test.fraction"
            raise DataError(
                [
                    Issue(
                        field_,
                        f"the split leaves {n_train} row(s) to train and {n_test} to test; "
                        "both need rows",
                        t.holdout if t.by is not None else t.fraction,
                    )
                ]
            )
        log.info("test split on model points: %d rows train, %d rows test", n_train, n_test)
        flags = self.totals["__test"].to_numpy(dtype=bool)
        return (
            Cells(self.config, train, self.fold, n_train, self.n_dropped, self.totals[~flags]),
            Cells(self.config, test, self.fold, n_test, 0, self.totals[flags]),
        )


def _test_expr(config: GLMConfig, source: _Source) -> str:
    """The SQL expression that is true for a test row of ``config.test``."""
    t = config.test
    assert t is not None
    if t.by is None:
        scale = 1 << 32
        return f"(hash({source.position()}, {int(t.seed)}) % {scale}) < {int(t.fraction * scale)}"
    from smglm.glm.fitting import holdout_levels
    from smglm.glm.terms import level_strings

    by = _q(t.by)
    values = source.con.execute(
        f"SELECT DISTINCT {by} FROM {source.relation} WHERE {by} IS NOT NULL"
    ).df()[t.by]
    strings = level_strings(values)
    wanted = holdout_levels(t.by, list(t.holdout or []), strings)
    chosen = values[np.isin(strings, np.array(wanted, dtype=object))]
    source.con.register("__smglm_holdout", pd.DataFrame({"v": chosen.to_numpy()}))
    return f"({by} IN (SELECT v FROM __smglm_holdout))"


def aggregate_cells(config: GLMConfig, source: _Source, *, split: bool) -> Cells:
    """Sum the rows of ``source`` to rating cells (see :class:`Cells`) in two passes of DuckDB
    over the data: one without grouping for prepare's checks of the rows (missing values, the
    target's domain, weights, exposure) and the sums only the totals need, one ``GROUP BY`` of
    the rating cells. ``split``: add the ``__test`` key of ``config.test``."""
    fold = _fold(config)
    types = source.types
    y = f"CAST({_q(config.target)} AS DOUBLE)"
    w = f"CAST({_q(config.weights)} AS DOUBLE)" if config.weights else "1.0::DOUBLE"
    select: list[str] = [f"{y} AS __y", f"{w} AS __w"]
    bad: dict[str, str] = {}  # column -> SQL true where its value is missing/infinite

    def finite(col: str) -> str:
        return f"NOT coalesce(isfinite(CAST({_q(col)} AS DOUBLE)), false)"

    bad[config.target] = finite(config.target)
    if config.weights:
        bad[config.weights] = finite(config.weights)
    e_col = config.exposure or config.offset
    if e_col:
        bad[e_col] = finite(e_col)
    if fold:  # the exposure folds into the weight (its log is in the deviance's constant)
        e = f"CAST({_q(e_col or '')} AS DOUBLE)"
        select.append(f"{e} AS __e")
        select.append(f"CASE WHEN {e} > 0 THEN ln({e}) END AS __lo")
    keys: list[str] = []
    reps: dict[str, list[float]] = {}  # banded predictor -> its cut points
    for i, col in enumerate(config.predictors):
        spec = config.term(col)
        level = spec.missing == "level"
        if spec.bands is not None and not _is_text(types.get(col)):
            x = f"CAST({_q(col)} AS DOUBLE)"
            band = " + ".join(f"({x} >= {_num(c)})::INTEGER" for c in spec.bands)
            select.append(
                f"CASE WHEN {x} IS NULL OR isnan({x}) THEN NULL ELSE {band} END AS __b{i}"
            )
            keys.append(f"__b{i}")
            reps[col] = list(spec.bands)
            bad[col] = f"coalesce(isinf({x}), false)" if level else finite(col)
        else:
            select.append(f"{_q(col)} AS __k{i}")
            keys.append(f"__k{i}")
            if not level:
                nan = f" OR isnan({_q(col)})" if _is_float(types.get(col)) else ""
                bad[col] = f"({_q(col)} IS NULL{nan})"
    if e_col and not fold:
        select.append(f"CAST({_q(e_col)} AS DOUBLE) AS __off")
        keys.append("__off")
    if split:
        select.append(f"{_test_expr(config, source)} AS __test")
        keys.append("__test")
    bad_names = list(bad)
    for j, col in enumerate(bad_names):
        select.append(f"{bad[col]} AS __bad{j}")
    if config.exposure:
        select.append(f"CAST({_q(config.exposure)} AS DOUBLE) AS __ex")
    ok = " AND ".join(f"NOT __bad{j}" for j in range(len(bad_names))) or "true"
    rows = f"WITH r AS (SELECT {', '.join(select)} FROM {source.relation}) "
    # the checks, over all rows (one pass, no grouping): rows with bad values per column, the
    # target's domain, weights, exposure
    pos = f"({ok}) AND __w > 0"
    checks: dict[str, str] = {
        f"bad:{col}": f"count(*) FILTER (WHERE __bad{j})" for j, col in enumerate(bad_names)
    }
    checks.update(
        {
            "n_all": "count(*)",
            "n_obs": f"count(*) FILTER (WHERE {pos})",
            "y_min": f"min(__y) FILTER (WHERE {pos})",
            "y_max": f"max(__y) FILTER (WHERE {pos})",
            "y_neg": f"count(*) FILTER (WHERE {pos} AND __y < 0)",
            "y_nonpos": f"count(*) FILTER (WHERE {pos} AND __y <= 0)",
            "y_frac": f"count(*) FILTER (WHERE {pos} AND __y <> 0 AND __y <> 1)",
            "y_frac_ex": f"min(__y) FILTER (WHERE {pos} AND __y <> 0 AND __y <> 1)",
            "w_neg": f"count(*) FILTER (WHERE ({ok}) AND __w < 0)",
            "w_min": f"min(__w) FILTER (WHERE {ok})",
        }
    )
    if config.exposure:
        checks["e_nonpos"] = f"count(*) FILTER (WHERE ({ok}) AND __ex <= 0)"
        checks["e_min"] = f"min(__ex) FILTER (WHERE {ok})"
    checks["n_ok"] = f"count(*) FILTER (WHERE {ok})"
    # the sums only the totals need: the deviance's and the log-likelihood's per-row constants
    t = _t_sql(config, "__y")
    checks["st"] = f"sum(__w * {t}) FILTER (WHERE {pos})"
    if fold:
        checks["swylo"] = (
            f"sum(CASE WHEN __y > 0 THEN __w * __y * __lo ELSE 0 END) FILTER (WHERE {pos})"
        )
    per_cell = {"s_k", "s_n"}  # binomial: successes and trials, per cell
    for name, expr in _llf_sums(config, "__y", "__w").items():
        if name not in per_cell:
            checks[name] = f"sum({expr}) FILTER (WHERE {pos})"
    by = "__test, " if split else ""
    totals = _query(
        source,
        rows
        + f"SELECT {by}"
        + ", ".join(f"{e} AS {_q(n)}" for n, e in checks.items())
        + " FROM r"
        + (" GROUP BY __test" if split else ""),
    )
    _check(config, totals, bad_names, source.what)
    n_all = int(totals["n_all"].sum())
    n_dropped = n_all - int(totals["n_ok"].sum())
    if n_dropped:
        by_col = sorted(c for c in bad_names if int(totals[f"bad:{c}"].sum()) > 0)
        warnings.warn(
            f"dropped {n_dropped} of {n_all} rows with missing or infinite values "
            f"in {by_col} (missing: drop)",
            stacklevel=4,
        )
    # the cells: the usable rows summed by key
    aggs: dict[str, str] = {"n_rows": "count(*)", "swy": "sum(__w * __y)"}
    if config.weights:
        aggs.update(n_obs="count(*) FILTER (WHERE __w > 0)", sw="sum(__w)", ymean="min(__y)")
    if family_has_dispersion(config):
        aggs["swyy"] = "sum(__w * __y * __y)"
    if fold:
        aggs["swe"] = "sum(__w * __e)"
    for name, expr in _llf_sums(config, "__y", "__w").items():
        if name in per_cell:
            aggs[name] = f"sum(CASE WHEN __w > 0 THEN {expr} END)"
    key_list = ", ".join(keys)
    sql = (
        rows
        + f"SELECT {key_list + ', ' if keys else ''}"
        + ", ".join(f"{expr} AS {_q(name)}" for name, expr in aggs.items())
        + f" FROM r WHERE {ok}"
        + (
            f" GROUP BY {key_list} ORDER BY {', '.join(k + ' NULLS LAST' for k in keys)}"
            if keys
            else ""
        )
    )
    out = _query(source, sql)
    out = out.loc[out["n_rows"] > 0].reset_index(drop=True)
    if out.empty:
        raise DataError(
            [Issue(source.what, f"no rows left after dropping {n_dropped}", 0)]
            if n_dropped
            else [Issue(source.what, f"the {source.what} has no rows; need at least one", 0)]
        )
    frame = pd.DataFrame(index=out.index)
    for i, col in enumerate(config.predictors):
        if col in reps:  # a value of each band (its lower end; below the first cut)
            cuts = reps[col]
            values = np.array([cuts[0] - max(1.0, abs(cuts[0])), *cuts])
            codes = out[f"__b{i}"].to_numpy(dtype=float, na_value=np.nan)
            known = ~np.isnan(codes)
            xs = np.full(len(codes), np.nan)
            xs[known] = values[codes[known].astype(np.int64)]
            frame[col] = xs
        else:
            frame[col] = out[f"__k{i}"]
    if "__off" in out:
        frame[e_col] = out["__off"]
    if split:
        frame["__test"] = out["__test"].astype(bool)
    for name in aggs:
        frame[name] = out[name]
    if not config.weights:
        frame["n_obs"] = frame["n_rows"]
        frame["sw"] = frame["n_rows"].astype(float)
        frame["ymean"] = 0.0  # unused: every cell has a positive weight
    for name in ("n_rows", "n_obs"):
        frame[name] = frame[name].astype(np.int64)
    return Cells(config, frame, fold, int(frame["n_rows"].sum()), n_dropped, totals)


def _query(source: _Source, sql: str) -> pd.DataFrame:
    try:
        return source.con.execute(sql).df()
    except Exception as exc:
        raise _read_error(exc, source.what, source.label) from None


def family_has_dispersion(config: GLMConfig) -> bool:
    """Whether the family's dispersion is estimated (the cells then carry ``sum(w y^2)``)."""
    from smglm.glm.families import family_of

    return family_of(config).has_dispersion


def _check(config: GLMConfig, out: pd.DataFrame, bad_names: list[str], what: str) -> None:
    """prepare's checks of the rows, from the cells' counts: missing or infinite values (an
    error unless ``missing: drop``), the target's domain, negative weights, exposure <= 0."""
    issues: list[Issue] = []
    role = {config.target: "target"}
    role.update({c: r for r in ("weights", "offset", "exposure") if (c := getattr(config, r))})
    if config.missing == "error":
        for col in bad_names:
            n = int(out[f"bad:{col}"].sum())
            if n:
                issues.append(
                    Issue(
                        role.get(col, "predictors"),
                        f"column {col!r} has {n} missing or infinite value(s); fix the data or "
                        "set missing: drop",
                        col,
                    )
                )
        if issues:
            raise DataError(issues)
    fam, target = config.family, config.target

    def total(name: str) -> int:
        return int(out[name].sum())

    y_min, y_max = out["y_min"].min(), out["y_max"].max()
    if fam in ("poisson", "negative_binomial", "tweedie") and total("y_neg"):
        issues.append(
            Issue(
                "target",
                f"column {target!r} has {total('y_neg')} negative value(s) (min {y_min:g}); "
                f"family {fam!r} needs a target >= 0",
                target,
            )
        )
    elif fam in ("gamma", "inverse_gaussian") and total("y_nonpos"):
        issues.append(
            Issue(
                "target",
                f"column {target!r} has {total('y_nonpos')} value(s) <= 0 (min {y_min:g}); "
                f"family {fam!r} needs a target > 0 (drop the zero rows, or use tweedie)",
                target,
            )
        )
    elif fam == "binomial":
        if y_min < 0 or y_max > 1:
            issues.append(
                Issue(
                    "target",
                    f"column {target!r} has values outside [0, 1] (min {y_min:g}, max "
                    f"{y_max:g}); family 'binomial' needs 0/1 outcomes or proportions in "
                    "[0, 1] with the number of trials as weights",
                    target,
                )
            )
        elif total("y_frac") and not config.weights:
            example = out["y_frac_ex"].dropna().iloc[0]
            issues.append(
                Issue(
                    "target",
                    f"column {target!r} holds proportions (e.g. {example:g}) but no weights "
                    "were given; family 'binomial' needs the number of trials as weights",
                    target,
                )
            )
    if config.weights:
        if total("w_neg"):
            issues.append(
                Issue(
                    "weights",
                    f"column {config.weights!r} has {total('w_neg')} negative value(s) "
                    f"(min {out['w_min'].min():g}); weights must be >= 0",
                    config.weights,
                )
            )
        elif total("n_obs") == 0:
            issues.append(
                Issue("weights", f"column {config.weights!r} is all zero; need a positive weight")
            )
    if config.exposure and total("e_nonpos"):
        issues.append(
            Issue(
                "exposure",
                f"column {config.exposure!r} has {total('e_nonpos')} value(s) <= 0 "
                f"(min {out['e_min'].min():g}); exposure must be > 0",
                config.exposure,
            )
        )
    if issues:
        raise DataError(issues)


# -- fitting the cells ----------------------------------------------------------------------------
def _cells_config(config: GLMConfig, cells: Cells, alpha_scale: float) -> GLMConfig:
    """The config that fits the cells: the cell mean as target, the summed weight as weights;
    Poisson/log without its exposure or offset (folded into the weight)."""
    update: dict[str, Any] = {"target": _Y, "weights": _W, "test": None}
    if cells.fold:
        update.update(exposure=None, offset=None)
    if config.penalty.alpha > 0 and alpha_scale != 1.0:
        update["penalty"] = config.penalty.model_copy(
            update={"alpha": config.penalty.alpha * alpha_scale}
        )
    return config.model_copy(update=update)


def _cells_frame(config: GLMConfig, cells: Cells) -> pd.DataFrame:
    """The cells as the rows the cells' config fits: key columns, ``_Y`` and ``_W``."""
    f = cells.frame
    cols = [*config.predictors]
    e_col = config.exposure or config.offset
    if e_col and not cells.fold:
        cols.append(e_col)
    out = f[cols].copy()
    weight = f["swe"] if cells.fold else f["sw"]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(weight > 0, f["swy"] / weight, f["ymean"])
    out[_Y] = mean
    out[_W] = weight.to_numpy(dtype=float)
    return out


@dataclass
class _Split:
    """One split's cells, prepared, with its row-level sums."""

    cells: Cells
    frame: pd.DataFrame
    prep: Prepared


def _row_metrics(
    config: GLMConfig,
    fam: FamilySpec,
    split: _Split,
    mu: np.ndarray,
    mu0: np.ndarray,
    n_params: int,
    gini: float,
) -> SplitMetrics:
    """The row-level metrics of a split from its cells' sums and the cells' fitted means
    (``mu`` and ``mu0``: the rate for folded Poisson, else the mean incl. the offset)."""
    from scipy.special import xlogy

    from smglm.glm.stats import SplitMetrics

    f = split.cells.frame
    n_obs = int(f["n_obs"].sum())
    W = split.prep.weights  # summed weights (Poisson/log: of w * e)
    ybar = split.prep.y
    pos = W > 0
    Sy = f["swy"].to_numpy(dtype=float)
    total = split.cells.total
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        within = total("st") - float(np.sum(np.where(pos, W * _t(fam, ybar), 0.0)))
        if split.cells.fold:
            within -= total("swylo")
        within *= 2.0
        dev = float(np.sum(W * fam.unit_deviance(ybar, mu))) + within
        null_dev = float(np.sum(W * fam.unit_deviance(ybar, mu0))) + within
    df_resid = n_obs - n_params
    sw_rows = float(f["sw"].sum())
    if fam.has_dispersion and df_resid > 0:
        Syy = f["swyy"].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            pearson = np.where(pos, (Syy - 2 * mu * Sy + mu * mu * W) / fam.variance(mu), 0.0)
        phi = float(np.sum(pearson)) / df_resid
    elif fam.has_dispersion:
        phi = math.nan
    else:
        phi = 1.0
    name = fam.name
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if name == "poisson":
            g = total("s_lg")
            if split.cells.fold:
                llf = float(np.sum(xlogy(Sy, mu) - W * mu)) + total("swylo") - g
            else:
                llf = float(np.sum(xlogy(Sy, mu) - W * mu)) - g
        elif name == "negative_binomial":
            k = float(fam.theta)  # type: ignore[attr-defined]
            llf = total("s_lg") + float(
                np.sum(
                    W * (k * math.log(k) - math.lgamma(k))
                    + xlogy(Sy, mu)
                    - (k * W + Sy) * np.log(k + mu)
                )
            )
        elif name == "binomial":
            K = f["s_k"].to_numpy(dtype=float)
            N = f["s_n"].to_numpy(dtype=float)
            llf = total("s_lchoose") + float(np.sum(xlogy(K, mu) + xlogy(N - K, 1 - mu)))
        elif name == "gaussian":
            llf = float(-0.5 * (n_obs * (math.log(2 * math.pi * dev / n_obs) + 1) - total("s_lnw")))
        elif name == "gamma":
            disp = dev / sw_rows
            shape = 1.0 / disp
            slny = total("s_lny")
            llf = float(
                (shape - 1) * slny
                - np.sum(Sy / (mu * disp))
                - sw_rows * math.lgamma(shape)
                - shape * np.sum(W * np.log(mu * disp))
            )
        elif name == "inverse_gaussian":
            disp = dev / sw_rows
            llf = float(-0.5 * (sw_rows * (math.log(disp * 2 * math.pi) + 1) + 3 * total("s_lny")))
        else:
            llf = math.nan
    return SplitMetrics.from_fit(
        fam,
        n_obs=n_obs,
        deviance=dev,
        null_deviance=null_dev,
        log_likelihood=llf,
        n_params=n_params,
        dispersion=phi,
        gini=gini,
    )


def _predict_frame(config: GLMConfig, split: _Split) -> pd.DataFrame:
    """The frame the user's model scores a split's cells from: the predictors, and the
    exposure or offset of the cells (1 for folded Poisson cells, whose means are then rates)."""
    X = split.prep.X.copy()
    e_col = config.exposure or config.offset
    if e_col is None:
        return X
    if split.cells.fold:
        X[e_col] = 1.0
    else:
        X[e_col] = split.frame[e_col].to_numpy(dtype=float)
    return X


def _report_frame(config: GLMConfig, split: _Split) -> pd.DataFrame:
    """The cells as the report's data: predictors (banded ones as their bands), exposure or
    offset."""
    from smglm.glm.terms import BandsTerm

    out = split.frame.drop(columns=[_Y, _W]).copy()
    for term in split.prep.terms:
        if isinstance(term, BandsTerm):
            out[term.name] = split.prep.X[term.name]
    return out


def _fit_cells(
    config: GLMConfig,
    train: Cells,
    test: Cells | None,
    aggregate_seconds: float,
    keep_fitted: bool,
    t_start: float,
) -> FitResult:
    """The fit on the cells, with row-level statistics (see the module's documentation)."""
    from smglm.glm.data import prepare
    from smglm.glm.engines import DEFAULT_ENGINE, get_engine
    from smglm.glm.families import family_of
    from smglm.glm.fitting import (
        _bounds,
        _check_finite,
        _check_null_model,
        _coefficient_table,
        _fit_engine,
        _fit_info,
        _gini,
        _inference,
        _portable,
        _separated,
        feature_names,
    )
    from smglm.glm.links import linkinv
    from smglm.glm.memory import check_fit_memory, memory_error
    from smglm.glm.model import UnseenLevelWarning
    from smglm.glm.result import FitResult

    f = train.frame
    sw_rows = float(f["sw"].sum())
    sw_cells = float(f["swe"].sum()) if train.fold else sw_rows
    ccfg = _cells_config(config, train, sw_rows / sw_cells if sw_cells > 0 else 1.0)
    frame = _cells_frame(config, train)
    n_obs = int(f["n_obs"].sum())
    prep = prepare(ccfg, frame, n_obs=n_obs)
    tr = _Split(train, frame, prep)
    engine = get_engine(DEFAULT_ENGINE)
    fam = family_of(config)
    names = feature_names(prep)
    lower, upper = _bounds(config, prep, names)
    n_coef = len(names) + int(config.fit_intercept)
    check_fit_memory(prep, n_coef)
    _check_null_model(ccfg, prep)
    try:
        res, scales, info = _fit_engine(ccfg, engine, prep, names, lower, upper)
    except MemoryError:
        raise memory_error(prep, n_coef) from None
    except np.linalg.LinAlgError as exc:
        raise DataError(
            [
                Issue(
                    "predictors",
                    f"the solver met a singular system ({exc}): the predictors "
                    f"{config.predictors} are (nearly) collinear or separate the target; drop "
                    "or group levels, or set penalty.alpha > 0",
                )
            ]
        ) from None
    if res.feature_names != names:
        raise RuntimeError(f"feature order mismatch: {res.feature_names} vs {names}")
    intercept, coef = res.intercept, res.coef / scales
    model = _portable(config, prep, intercept, coef, res.aliased)
    n_params = coef.size + int(config.fit_intercept) - len(res.aliased)
    link = config.resolved_link
    eta = intercept + res.xb + (0.0 if prep.offset is None else prep.offset)
    from smglm.glm.stats import null_mean

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        mu = linkinv(link, eta)
        mu0, b0 = null_mean(
            fam, link, prep.y, prep.weights, prep.offset, intercept=config.fit_intercept
        )
        metrics_train = _row_metrics(config, fam, tr, mu, mu0, n_params, _gini(prep, mu))
    _check_finite(config, fam, intercept, coef, mu, metrics_train)
    separated = _separated(ccfg, prep, names, mu)
    se, covariance = _inference(
        res, prep, eta, mu, fam, config, metrics_train.dispersion, names, info, scales
    )
    coefs = _coefficient_table(
        config, prep, names, intercept, coef, se, fam, res.aliased, separated, n_obs=n_obs
    )
    metrics: dict[str, Any] = {"train": metrics_train.to_dict()}
    fitted: dict[str, Any] = {"train": (_report_frame(config, tr), prep, mu)}
    if test is not None:
        tframe = _cells_frame(config, test)
        tprep = prepare(ccfg, tframe, terms=prep.terms, what="test data")
        ts = _Split(test, tframe, tprep)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mu_t = model.predict(_predict_frame(config, ts), use_offset=True)
        for w in caught:
            if issubclass(w.category, UnseenLevelWarning):
                warnings.warn(f"test data: {w.message}", UnseenLevelWarning, stacklevel=3)
        off_t = np.zeros_like(tprep.y) if tprep.offset is None else tprep.offset
        mu0_t = linkinv(link, (b0 if config.fit_intercept else 0.0) + off_t)
        metrics["test"] = _row_metrics(
            config, fam, ts, mu_t, mu0_t, n_params, _gini(tprep, mu_t)
        ).to_dict()
        fitted["test"] = (_report_frame(config, ts), tprep, mu_t)
    metrics["fit"] = _fit_info(res, train.n_dropped, t_start, separated)
    metrics["fit"]["model_points"] = {
        "rows": train.n_rows,
        "cells": len(train.frame),
        "aggregate_seconds": aggregate_seconds,
    }
    return FitResult(
        config=config,
        model=model,
        coefficients=coefs,
        metrics=metrics,
        convergence=res.convergence,
        estimator=res.native,
        fitted=fitted if keep_fitted else None,
        covariance=covariance,
    )
