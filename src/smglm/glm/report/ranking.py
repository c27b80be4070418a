"""Ranking tables of a model: Lorenz curve and Gini, lift, double lift.

Conventions shared by the report tables: ``actual`` and ``predicted`` are *amounts* per row
(claim counts and the model's mu, which already includes exposure), ``exposure`` is the row's
exposure or weight (default 1), and a row's rate is amount / exposure. Rows with zero exposure
carry no weight: the ranking tables leave them out. Rows tied on the ranking key are pooled, so
no result depends on the order of the rows. This module imports no matplotlib.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smglm.glm.report._inputs import (
    F,
    Values,
    amount_inputs,
    as_values,
    check_bins,
    data_error,
)

__all__ = [
    "double_lift",
    "gini",
    "gini_of_curve",
    "lift",
    "lift_and_curve",
    "lorenz",
    "rate_key",
    "thin",
]


def _cumulative(key: F, e: F, *amounts: F) -> tuple[F, list[F]]:
    """Cumulative exposure and amounts over the groups of equal ``key``, ascending, from 0."""
    key = rate_key(key)
    order = np.argsort(key)
    ordered = key[order]
    ends = np.flatnonzero(np.concatenate((ordered[1:] != ordered[:-1], [True])))

    def cum(w: F) -> F:
        return np.concatenate(([0.0], np.cumsum(w[order])[ends]))

    return cum(e), [cum(x) for x in amounts]


def rate_key(rate: F) -> F:
    """Rates rounded to 12 significant digits: rates equal but for the last bits (the same
    risk computed as exp(a + b) and exp(b + a)) tie, so the order never hangs on rounding."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = 10.0 ** (11 - np.floor(np.log10(np.abs(rate))))
        rounded = np.round(rate * scale) / scale
    return np.where(np.isfinite(rounded) & (rate != 0), rounded, rate)


def _positive(e: F, *arrays: F) -> tuple[F, ...]:
    """Drop rows with zero exposure (they have no rate and no weight)."""
    keep = e > 0
    if not keep.any():
        raise data_error("exposure", "has no row with positive exposure")
    if keep.all():
        return (e, *arrays)
    return (e[keep], *(x[keep] for x in arrays))


def _curve(a: F, p: F, e: F) -> tuple[F, F]:
    """The Lorenz curve's vertices: cumulative exposure and actual shares, by predicted rate."""
    e, a, p = _positive(e, a, p)
    ce, (ca,) = _cumulative(p / e, e, a)
    return _shares(ce, ca)


def _shares(ce: F, ca: F) -> tuple[F, F]:
    with np.errstate(invalid="ignore", divide="ignore"):
        return ce / ce[-1], ca / ca[-1]


def lift_and_curve(a: F, p: F, e: F, n_bins: int) -> tuple[pd.DataFrame, F, F]:
    """:func:`lift`'s table and the vertices of :func:`lorenz`'s curve from one sort of the
    rows by predicted rate (arrays of equal length, as :func:`gini` takes them)."""
    check_bins("n_bins", n_bins)
    e, a, p = _positive(e, a, p)
    ce, (ca, cp) = _cumulative(p / e, e, a, p)
    return _lift_table(ce, ca, cp, n_bins), *_shares(ce, ca)


def gini_of_curve(x: F, y: F) -> float:
    if not np.isfinite(y[-1]):
        return float("nan")
    return 1.0 - float(np.sum(np.diff(x) * (y[1:] + y[:-1])))


def thin(x: F, y: F, max_points: int | None) -> pd.DataFrame:
    """At most ``max_points`` vertices of the curve (x, y), evenly spread along its length."""
    if max_points is not None:
        check_bins("max_points", max_points, minimum=2)
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
    return gini_of_curve(*_curve(*amount_inputs(actual, predicted, exposure)))


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
    return thin(*_curve(*amount_inputs(actual, predicted, exposure)), max_points)


def _equal_exposure_bins(key: F, e: F, n_bins: int, *amounts: F) -> tuple[F, list[F]]:
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
    return _lift(*amount_inputs(actual, predicted, exposure), n_bins)


def _lift(a: F, p: F, e: F, n_bins: int) -> pd.DataFrame:
    check_bins("n_bins", n_bins)
    e, a, p = _positive(e, a, p)
    ce, (ca, cp) = _cumulative(p / e, e, a, p)
    return _lift_table(ce, ca, cp, n_bins)


def _lift_table(ce: F, ca: F, cp: F, n_bins: int) -> pd.DataFrame:
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
    check_bins("n_bins", n_bins)
    a, pa, e = amount_inputs(actual, predicted_a, exposure)
    pb = as_values(predicted_b, "predicted_b", None, len(a))
    for name, p in (("predicted_a", pa), ("predicted_b", pb)):
        if (p <= 0).any():
            msg = f"has {int((p <= 0).sum())} values <= 0; double lift needs positive predictions"
            raise data_error(name, msg)
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
