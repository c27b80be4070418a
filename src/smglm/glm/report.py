"""Report data of a fitted GLM as pandas tables: one-way, lift, Lorenz/Gini, double lift, residuals.

Conventions shared by every function here: ``actual`` and ``predicted`` are *amounts* per row
(claim counts and the model's mu, which already includes exposure), ``exposure`` is the row's
exposure or weight (default 1), and a row's rate is amount / exposure. Rows with zero exposure
carry no weight: the ranking tables (Gini, Lorenz, lift, double lift) leave them out. Rows tied on
the ranking key are pooled, so no result depends on the order of the rows. Plotting lives in
:mod:`smglm.glm.plots`; this module imports no matplotlib.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from smglm.errors import ConfigError, DataError, Issue, did_you_mean

__all__ = [
    "balance",
    "deviance_residuals",
    "double_lift",
    "gini",
    "lift",
    "lorenz",
    "one_way",
    "residual_bins",
]

logger = logging.getLogger(__name__)

#: An array of one value per row, or (where a DataFrame is given) the name of one of its columns.
Values: TypeAlias = "ArrayLike | str"
_F = np.ndarray  # float64 arrays, for brevity in the private helpers
MISSING_LABEL = "(missing)"
REPORT_FORMAT = 1
_PANDAS_2 = int(pd.__version__.split(".")[0]) < 3


def _error(field: str, message: str, value: Any = None) -> DataError:
    return DataError([Issue(field=field, message=message, value=value)])


def _check_bins(name: str, n: int, minimum: int = 1) -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < minimum:
        raise ConfigError([Issue(name, f"must be an integer >= {minimum}; got {n!r}", n)])


def _values(values: Values, role: str, data: pd.DataFrame | None, n: int | None) -> _F:
    """Return ``values`` (an array, or a column of ``data``) as finite float64, one per row."""
    label = role
    if isinstance(values, str):
        if data is None or values not in data.columns:
            known = [] if data is None else [str(c) for c in data.columns]
            hint = did_you_mean(values, known) if known else " Pass an array instead."
            raise _error(role, f"column {values!r} is not in the data.{hint}", values)
        label, values = f"{role} (column {values!r})", data[values]
    try:
        if isinstance(values, pd.Series):  # nullable dtypes: pd.NA -> NaN, reported below
            arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise _error(role, f"{label} must be numeric; could not convert it ({exc})") from exc
    if arr.ndim != 1:
        raise _error(role, f"{label} must be one value per row (1-D); got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise _error(role, f"{label} has {len(arr)} values; expected {n}, one per row")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        msg = f"{label} has {int(bad.sum())} missing or infinite values (first at row {first})"
        raise _error(role, msg + "; all values must be finite")
    return arr


def _exposure(exposure: Values | None, n: int, data: pd.DataFrame | None = None) -> _F:
    if exposure is None:
        return np.ones(n)
    e = _values(exposure, "exposure", data, n)
    if (e < 0).any():
        raise _error("exposure", f"has {int((e < 0).sum())} negative values; it must be >= 0")
    return e


def _inputs(actual: Values, predicted: Values, exposure: Values | None) -> tuple[_F, _F, _F]:
    a = _values(actual, "actual", None, None)
    if len(a) == 0:
        raise _error("actual", "has no rows; at least one row is needed")
    return a, _values(predicted, "predicted", None, len(a)), _exposure(exposure, len(a))


def _cumulative(key: _F, e: _F, *amounts: _F) -> tuple[_F, list[_F]]:
    """Cumulative exposure and amounts over the groups of equal ``key``, ascending, from 0."""
    key = _rate_key(key)
    order = np.argsort(key)
    ordered = key[order]
    ends = np.flatnonzero(np.concatenate((ordered[1:] != ordered[:-1], [True])))

    def cum(w: _F) -> _F:
        return np.concatenate(([0.0], np.cumsum(w[order])[ends]))

    return cum(e), [cum(x) for x in amounts]


def _rate_key(rate: _F) -> _F:
    """Rates rounded to 12 significant digits: rates equal but for the last bits (the same
    risk computed as exp(a + b) and exp(b + a)) tie, so the order never hangs on rounding."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = 10.0 ** (11 - np.floor(np.log10(np.abs(rate))))
        rounded = np.round(rate * scale) / scale
    return np.where(np.isfinite(rounded) & (rate != 0), rounded, rate)


def _positive(e: _F, *arrays: _F) -> tuple[_F, ...]:
    """Drop rows with zero exposure (they have no rate and no weight)."""
    keep = e > 0
    if not keep.any():
        raise _error("exposure", "has no row with positive exposure")
    if keep.all():
        return (e, *arrays)
    return (e[keep], *(x[keep] for x in arrays))


def _curve(a: _F, p: _F, e: _F) -> tuple[_F, _F]:
    """The Lorenz curve's vertices: cumulative exposure and actual shares, by predicted rate."""
    e, a, p = _positive(e, a, p)
    ce, (ca,) = _cumulative(p / e, e, a)
    return _shares(ce, ca)


def _shares(ce: _F, ca: _F) -> tuple[_F, _F]:
    with np.errstate(invalid="ignore", divide="ignore"):
        return ce / ce[-1], ca / ca[-1]


def _lift_and_curve(a: _F, p: _F, e: _F, n_bins: int) -> tuple[pd.DataFrame, _F, _F]:
    """:func:`lift`'s table and the vertices of :func:`lorenz`'s curve from one sort of the
    rows by predicted rate (arrays of equal length, as :func:`gini` takes them)."""
    _check_bins("n_bins", n_bins)
    e, a, p = _positive(e, a, p)
    ce, (ca, cp) = _cumulative(p / e, e, a, p)
    return _lift_table(ce, ca, cp, n_bins), *_shares(ce, ca)


def _gini(x: _F, y: _F) -> float:
    if not np.isfinite(y[-1]):
        return float("nan")
    return 1.0 - float(np.sum(np.diff(x) * (y[1:] + y[:-1])))


def _thin(x: _F, y: _F, max_points: int | None) -> pd.DataFrame:
    """At most ``max_points`` vertices of the curve (x, y), evenly spread along its length."""
    if max_points is not None:
        _check_bins("max_points", max_points, minimum=2)
        if len(x) > max_points:
            step = np.abs(np.diff(x)) + np.abs(np.nan_to_num(np.diff(y)))
            t = np.concatenate(([0.0], np.cumsum(step)))
            idx = np.searchsorted(t, np.linspace(0.0, t[-1], max_points)).clip(0, len(t) - 1)
            idx = np.unique(np.concatenate(([0, len(t) - 1], idx)))
            x, y = x[idx], y[idx]
    return pd.DataFrame({"cum_exposure": x, "cum_actual": y})


def gini(actual: Values, predicted: Values, exposure: Values | None = None) -> float:
    """Return the insurance Gini of ``predicted``: 1 - 2 x the area under the Lorenz curve.

    Rows are ordered by predicted rate (``predicted / exposure``) ascending; the curve joins
    (cumulative exposure share, cumulative actual share) from (0, 0) to (1, 1) and its area is
    taken by trapezoids. A perfect ranking of a skewed risk approaches 1, a useless (random or
    constant) prediction gives about 0, a reversed ranking is negative.

    Parameters
    ----------
    actual, predicted : array-like
        The observed and predicted amounts per row (e.g. claim counts and mu).
    exposure : array-like, optional
        Exposure or weight per row (default 1). Rows with zero exposure are left out.

    Returns
    -------
    float
        The Gini; NaN when the actual amounts sum to zero (the curve is then undefined).

    Notes
    -----
    Rows with equal predicted rates are pooled into one point, so the curve crosses a tie with a
    straight segment and the result does not depend on the order of the rows.
    """
    return _gini(*_curve(*_inputs(actual, predicted, exposure)))


def lorenz(
    actual: Values,
    predicted: Values,
    exposure: Values | None = None,
    *,
    max_points: int | None = None,
) -> pd.DataFrame:
    """Return the Lorenz curve behind :func:`gini` as columns ``cum_exposure, cum_actual``.

    The first row is (0, 0) and the last (1, 1); there is one row per distinct predicted rate.
    ``max_points`` (at least 2) keeps at most that many of the curve's vertices, spread evenly
    along its length, so a curve of millions of rows plots and stores cheaply; leave it ``None``
    for the exact curve. Arguments as in :func:`gini`; ``cum_actual`` is NaN when actual sums to 0.
    """
    return _thin(*_curve(*_inputs(actual, predicted, exposure)), max_points)


def _equal_exposure_bins(key: _F, e: _F, n_bins: int, *amounts: _F) -> tuple[_F, list[_F]]:
    """Sum exposure and ``amounts`` over ``n_bins`` equal-exposure slices of rows sorted by key.

    A group of rows with the same key that straddles a slice boundary is shared between the two
    slices in proportion to exposure (the rows of a tie are indistinguishable to the model), so
    every slice holds exactly total / n_bins exposure and no result depends on row order.
    """
    ce, cums = _cumulative(key, e, *amounts)
    edges = np.linspace(0.0, ce[-1], n_bins + 1)
    return np.diff(edges), [np.diff(np.interp(edges, ce, c)) for c in cums]


def lift(
    actual: Values, predicted: Values, exposure: Values | None = None, *, n_bins: int = 10
) -> pd.DataFrame:
    """Return the lift table: rows sorted by predicted rate, cut into ``n_bins`` equal exposures.

    Columns: ``bin`` (1..n_bins, lowest predicted rate first), ``exposure``, ``actual`` and
    ``predicted`` (sums), ``actual_rate`` and ``predicted_rate`` (sum / exposure). Rows with
    the same predicted rate on both sides of a boundary are shared between the two bins in
    proportion to exposure, so each bin holds exactly 1 / n_bins of the exposure (and a bin's
    ``actual`` may be fractional). Arguments as in :func:`gini`.
    """
    return _lift(*_inputs(actual, predicted, exposure), n_bins)


def _lift(a: _F, p: _F, e: _F, n_bins: int) -> pd.DataFrame:
    _check_bins("n_bins", n_bins)
    e, a, p = _positive(e, a, p)
    ce, (ca, cp) = _cumulative(p / e, e, a, p)
    return _lift_table(ce, ca, cp, n_bins)


def _lift_table(ce: _F, ca: _F, cp: _F, n_bins: int) -> pd.DataFrame:
    """The lift table from the cumulative exposure, actual and predicted by predicted rate:
    ``n_bins`` equal-exposure slices, ties shared in proportion to exposure."""
    edges = np.linspace(0.0, ce[-1], n_bins + 1)
    ex = np.diff(edges)
    ac, pr = (np.diff(np.interp(edges, ce, c)) for c in (ca, cp))
    return pd.DataFrame(
        {
            "bin": np.arange(1, n_bins + 1, dtype=np.int64),
            "exposure": ex,
            "actual": ac,
            "predicted": pr,
            "actual_rate": ac / ex,
            "predicted_rate": pr / ex,
        }
    )


def double_lift(
    actual: Values,
    predicted_a: Values,
    predicted_b: Values,
    exposure: Values | None = None,
    *,
    n_bins: int = 10,
) -> pd.DataFrame:
    """Return the double-lift table of model A against model B.

    Rows are sorted by ``predicted_a / predicted_b`` (both must be positive) and cut into
    ``n_bins`` slices of equal exposure, sharing tied rows as in :func:`lift`. Columns: ``bin``,
    ``exposure``, ``actual_rate``, ``rate_a``, ``rate_b``. Each rate is the slice's amount /
    exposure divided by the same quantity over all rows (sum / total exposure), so the
    exposure-weighted mean of each rate column over the bins is exactly 1. The better model's
    rate follows ``actual_rate`` more closely.
    """
    _check_bins("n_bins", n_bins)
    a, pa, e = _inputs(actual, predicted_a, exposure)
    pb = _values(predicted_b, "predicted_b", None, len(a))
    for name, p in (("predicted_a", pa), ("predicted_b", pb)):
        if (p <= 0).any():
            msg = f"has {int((p <= 0).sum())} values <= 0; double lift needs positive predictions"
            raise _error(name, msg)
    e, a, pa, pb = _positive(e, a, pa, pb)
    ex, sums = _equal_exposure_bins(pa / pb, e, n_bins, a, pa, pb)
    total = e.sum()
    rates = [s / ex / (x.sum() / total) for s, x in zip(sums, (a, pa, pb), strict=True)]
    return pd.DataFrame(
        {
            "bin": np.arange(1, n_bins + 1, dtype=np.int64),
            "exposure": ex,
            "actual_rate": rates[0],
            "rate_a": rates[1],
            "rate_b": rates[2],
        }
    )


def balance(actual: Values, predicted: Values, weights: Values | None = None) -> dict[str, float]:
    """Return ``sum_actual``, ``sum_predicted`` (weighted sums) and ``ratio`` = actual / predicted.

    ``ratio`` is the A/E ratio: 1 for a model that reproduces the total (a canonical-link GLM with
    an intercept does on its training data); NaN or infinite when ``sum_predicted`` is 0.
    """
    a = _values(actual, "actual", None, None)
    p = _values(predicted, "predicted", None, len(a))
    w = _exposure(weights, len(a)) if weights is not None else None
    sa = float(a.sum() if w is None else a @ w)
    sp = float(p.sum() if w is None else p @ w)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.float64(sa) / np.float64(sp))
    return {"sum_actual": sa, "sum_predicted": sp, "ratio": ratio}


def deviance_residuals(
    y: ArrayLike, mu: ArrayLike, weights: ArrayLike | None, unit_deviance: ArrayLike
) -> _F:
    """Return the deviance residuals ``sign(y - mu) * sqrt(weights * unit_deviance)``.

    ``unit_deviance`` is d(y, mu) per row, computed by the caller for the model's family (e.g. with
    ``smglm.glm.stats.unit_deviance``); tiny negative values from rounding count as 0. The sum of
    the squared residuals is the model's total deviance ``sum(weights * unit_deviance)``.
    ``weights`` may be ``None`` (all 1).
    """
    yy = _values(y, "y", None, None)
    m = _values(mu, "mu", None, len(yy))
    d = _values(unit_deviance, "unit_deviance", None, len(yy))
    w = _exposure(weights, len(yy))
    return np.sign(yy - m) * np.sqrt(w * np.clip(d, 0.0, None))


def residual_bins(fitted: ArrayLike, residuals: ArrayLike, n_bins: int = 20) -> pd.DataFrame:
    """Summarise residuals against fitted values in ``n_bins`` quantile bins of ``fitted``.

    Bins are cut at the quantiles of ``fitted`` (rows with equal fitted values stay together, so
    there are fewer bins when fitted takes few values) and numbered 1.. in increasing order.
    Columns: ``bin``, ``n_rows``, ``fitted_mean``, ``residual_mean``, ``residual_q10``,
    ``residual_q50``, ``residual_q90`` (quantiles interpolated linearly, as ``numpy.quantile``).
    """
    _check_bins("n_bins", n_bins)
    f = _values(fitted, "fitted", None, None)
    r = _values(residuals, "residuals", None, len(f))
    if len(f) == 0:
        raise _error("fitted", "has no rows; at least one row is needed")
    cuts = np.unique(np.quantile(f, np.linspace(0.0, 1.0, n_bins + 1)[1:-1]))
    raw = np.searchsorted(cuts, f, side="right")
    occupied = np.bincount(raw, minlength=len(cuts) + 1) > 0
    codes = (np.cumsum(occupied) - 1)[raw]  # number the occupied bins 0, 1, ...
    counts = np.bincount(codes)
    by_r = np.argsort(r)
    order = by_r[np.argsort(codes[by_r], kind="stable")]  # by bin, then by residual
    rs, starts = r[order], np.concatenate(([0], np.cumsum(counts)[:-1]))
    table: dict[str, Any] = {
        "bin": np.arange(1, len(counts) + 1, dtype=np.int64),
        "n_rows": counts.astype(np.int64),
        "fitted_mean": np.bincount(codes, weights=f) / counts,
        "residual_mean": np.bincount(codes, weights=r) / counts,
    }
    for q in (10, 50, 90):
        pos = starts + q / 100 * (counts - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, starts + counts - 1)
        table[f"residual_q{q}"] = rs[lo] + (pos - lo) * (rs[hi] - rs[lo])
    return pd.DataFrame(table)


def one_way(
    data: pd.DataFrame,
    column: str,
    actual: Values,
    predicted: Values,
    exposure: Values | None = None,
    *,
    bins: int = 10,
    categorical: bool | None = None,
) -> pd.DataFrame:
    """Return the one-way actual-vs-expected table of ``column``.

    A categorical column (category, string, object or bool dtype, or ``categorical=True``) gets
    one row per level that has rows, in category order (sorted levels for other dtypes). A
    numeric column gets at most ``bins`` bins cut at exposure-weighted quantiles, labelled
    ``"[lo, hi)"`` (the last ``"[lo, hi]"``) where lo and hi are values of the column; each value
    is its own bin when there are at most ``bins`` distinct values, and bins merge where one value
    holds much exposure. Missing values of ``column`` form a last row labelled ``"(missing)"``.

    Parameters
    ----------
    data : DataFrame
        Holds ``column`` (and the columns named by ``actual``, ``predicted``, ``exposure``).
    column : str
        The column to tabulate.
    actual, predicted, exposure : array-like or str
        Amounts per row and exposure (default 1): arrays, or names of columns of ``data``.
    bins : int
        Maximum number of bins of a numeric column.
    categorical : bool, optional
        Force (True) or forbid (False) treating ``column`` as categorical; default: by dtype.

    Returns
    -------
    DataFrame
        ``bin`` (str), ``exposure``, ``actual``, ``predicted`` (sums), ``actual_rate``,
        ``predicted_rate`` (sum / exposure; NaN for a bin of zero exposure), ``n_rows``.
        The sums over the rows of the table equal the sums over all rows of ``data``.
    """
    _check_bins("bins", bins)
    n = len(data)
    a = _values(actual, "actual", data, n)
    p = _values(predicted, "predicted", data, n)
    return _one_way(data, column, a, p, _exposure(exposure, n, data), bins, categorical)


def _one_way(
    data: pd.DataFrame,
    column: str,
    a: _F,
    p: _F,
    e: _F,
    bins: int,
    categorical: bool | None,
) -> pd.DataFrame:
    if column not in data.columns:
        hint = did_you_mean(column, [str(c) for c in data.columns])
        raise _error(column, f"column {column!r} is not in the data.{hint}", column)
    series = data[column]
    numeric = pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
        series.dtype
    )
    if categorical is False and not numeric:
        msg = f"column {column!r} has dtype {series.dtype}; only numeric columns can be binned"
        raise _error(column, msg + " (use categorical=True or None)", str(series.dtype))
    if numeric and not categorical:
        codes, labels = _numeric_codes(series.to_numpy(np.float64, na_value=np.nan), e, bins)
    else:
        codes, labels = _level_codes(series)
    k = len(labels)
    codes = np.where(codes < 0, k, codes)
    labels = [*labels, MISSING_LABEL]

    def sums(w: _F | None) -> _F:
        return np.bincount(codes, weights=w, minlength=k + 1)

    count = sums(None).astype(np.int64)
    keep = count > 0
    ex, ac, pr = sums(e)[keep], sums(a)[keep], sums(p)[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.DataFrame(
            {
                "bin": pd.Series(np.asarray(labels, dtype=object)[keep]).astype(str),
                "exposure": ex,
                "actual": ac,
                "predicted": pr,
                "actual_rate": ac / ex,
                "predicted_rate": pr / ex,
                "n_rows": count[keep],
            }
        )


def _format_number(v: float, digits: int) -> str:
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.{digits}g}"


def _distinct_labels(values: Sequence[float]) -> list[str]:
    """Format distinct numbers with the fewest significant digits (>= 4) that keep them apart."""
    for digits in range(4, 18):
        out = [_format_number(v, digits) for v in values]
        if len(set(out)) == len(out):
            return out
    return [repr(float(v)) for v in values]


def _distinct(v: _F, w: _F) -> tuple[_F, _F]:
    """The distinct values of ``v``, ascending, and the total of ``w`` over the rows of each."""
    sample = v[:: max(1, len(v) // 10_000)]
    if len(np.unique(sample)) < 1_000:  # few distinct values: hashing beats sorting
        codes, uniq = pd.factorize(v)
        order = np.argsort(uniq)
        return uniq[order], np.bincount(codes, weights=w, minlength=len(uniq))[order]
    order = np.argsort(v)
    ordered = v[order]
    last = np.flatnonzero(np.concatenate((ordered[1:] != ordered[:-1], [True])))
    return ordered[last], np.diff(np.cumsum(w[order])[last], prepend=0.0)


def _numeric_codes(values: _F, e: _F, bins: int) -> tuple[np.ndarray, list[str]]:
    valid = ~np.isnan(values)
    v, w = (values, e) if valid.all() else (values[valid], e[valid])
    uniq, exposure = _distinct(v, w)
    k = len(uniq)
    if k <= bins:
        starts = np.arange(k)
        labels = _distinct_labels(uniq.tolist())
    else:
        cum = np.cumsum(exposure)
        if cum[-1] <= 0:  # no exposure at all: quantiles of the row counts
            cum = np.cumsum(_distinct(v, np.ones(len(v)))[1])
        # Bin i ends at the first value where the cumulative share reaches i / bins.
        targets = (np.arange(1, bins) / bins - 1e-10) * cum[-1]
        ends = np.searchsorted(cum, targets, side="left")
        starts = np.unique(np.concatenate(([0], ends + 1)))
        starts = starts[starts < k]
        bounds = _distinct_labels(uniq[np.concatenate((starts, [k - 1]))].tolist())
        labels = [f"[{bounds[i]}, {bounds[i + 1]})" for i in range(len(starts) - 1)]
        labels.append(f"[{bounds[-2]}, {bounds[-1]}]")
    codes = np.full(len(values), -1, dtype=np.intp)
    codes[valid] = np.searchsorted(uniq[starts], v, side="right") - 1
    return codes, labels


def _level_codes(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = np.asarray(series.cat.codes, dtype=np.intp)
        levels: Any = series.cat.categories
    else:
        try:
            codes, levels = pd.factorize(series, sort=True)
        except TypeError:  # levels of mixed types that cannot be sorted: first-seen order
            codes, levels = pd.factorize(series, sort=False)
    if pd.api.types.is_float_dtype(levels.dtype):
        return np.asarray(codes), _distinct_labels(list(levels))
    return np.asarray(codes), [str(v) for v in levels]


def __getattr__(name: str) -> Any:
    # ReportData and build_report live in report_data.py (which imports this module); they
    # are offered here too, loaded on first use so that neither module imports the other first.
    if name in ("ReportData", "build_report"):
        from smglm.glm import report_data

        return getattr(report_data, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
