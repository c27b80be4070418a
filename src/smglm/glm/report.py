"""Report data of a fitted GLM as pandas tables: one-way, lift, Lorenz/Gini, double lift, residuals.

Conventions shared by every function here: ``actual`` and ``predicted`` are *amounts* per row
(claim counts and the model's mu, which already includes exposure), ``exposure`` is the row's
exposure or weight (default 1), and a row's rate is amount / exposure. Rows with zero exposure
carry no weight: the ranking tables (Gini, Lorenz, lift, double lift) leave them out. Rows tied on
the ranking key are pooled, so no result depends on the order of the rows. Plotting lives in
:mod:`smglm.glm.plots`; this module imports no matplotlib. The one-way tables are computed
in :mod:`smglm.glm.one_way` (``one_way`` is offered here too) and the input checks in
:mod:`smglm.glm._report_inputs`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from smglm.glm._report_inputs import _F, Values, _check_bins, _error, _exposure, _inputs, _values
from smglm.glm.one_way import MISSING_LABEL as MISSING_LABEL
from smglm.glm.one_way import one_way as one_way

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

REPORT_FORMAT = 1
_PANDAS_2 = int(pd.__version__.split(".")[0]) < 3


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


def __getattr__(name: str) -> Any:
    # ReportData and build_report live in report_data.py (which imports this module); they
    # are offered here too, loaded on first use so that neither module imports the other first.
    if name in ("ReportData", "build_report"):
        from smglm.glm import report_data

        return getattr(report_data, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
