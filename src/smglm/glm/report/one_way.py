"""The one-way actual-vs-expected tables of the report: one row per level or bin of a column.

Conventions as in :mod:`smglm.glm.report.ranking` (amounts, exposure, rates).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from smglm.errors import did_you_mean
from smglm.glm.report._inputs import F, Values, as_values, check_bins, data_error, exposure_values

__all__ = ["MISSING_LABEL", "one_way", "one_way_of_arrays"]

MISSING_LABEL = "(missing)"


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
    check_bins("bins", bins)
    n = len(data)
    a = as_values(actual, "actual", data, n)
    p = as_values(predicted, "predicted", data, n)
    return one_way_of_arrays(
        data, column, a, p, exposure_values(exposure, n, data), bins, categorical
    )


def one_way_of_arrays(
    data: pd.DataFrame,
    column: str,
    a: F,
    p: F,
    e: F,
    bins: int,
    categorical: bool | None,
) -> pd.DataFrame:
    """:func:`one_way` of checked float64 arrays (actual, predicted and exposure amounts)."""
    if column not in data.columns:
        hint = did_you_mean(column, [str(c) for c in data.columns])
        raise data_error(column, f"column {column!r} is not in the data.{hint}", column)
    series = data[column]
    numeric = pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
        series.dtype
    )
    if categorical is False and not numeric:
        msg = f"column {column!r} has dtype {series.dtype}; only numeric columns can be binned"
        raise data_error(column, msg + " (use categorical=True or None)", str(series.dtype))
    if numeric and not categorical:
        codes, labels = _numeric_codes(series.to_numpy(np.float64, na_value=np.nan), e, bins)
    else:
        codes, labels = _level_codes(series)
    k = len(labels)
    codes = np.where(codes < 0, k, codes)
    labels = [*labels, MISSING_LABEL]

    def sums(w: F | None) -> F:
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


def _distinct(v: F, w: F) -> tuple[F, F]:
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


def _numeric_codes(values: F, e: F, bins: int) -> tuple[np.ndarray, list[str]]:
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
