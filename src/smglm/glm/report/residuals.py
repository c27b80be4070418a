"""Residual and balance tables of a model: A/E balance, deviance residuals, residuals by bin."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from smglm.glm.report._inputs import F, Values, as_values, check_bins, data_error, exposure_values

__all__ = ["balance", "deviance_residuals", "residual_bins"]


def balance(actual: Values, predicted: Values, weights: Values | None = None) -> dict[str, float]:
    """Return ``sum_actual``, ``sum_predicted`` (weighted sums) and ``ratio`` = actual / predicted.

    ``ratio`` is the A/E ratio: 1 for a model that reproduces the total (a canonical-link GLM with
    an intercept does on its training data); NaN or infinite when ``sum_predicted`` is 0.
    """
    a = as_values(actual, "actual", None, None)
    p = as_values(predicted, "predicted", None, len(a))
    w = exposure_values(weights, len(a)) if weights is not None else None
    sa = float(a.sum() if w is None else a @ w)
    sp = float(p.sum() if w is None else p @ w)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.float64(sa) / np.float64(sp))
    return {"sum_actual": sa, "sum_predicted": sp, "ratio": ratio}


def deviance_residuals(
    y: ArrayLike, mu: ArrayLike, weights: ArrayLike | None, unit_deviance: ArrayLike
) -> F:
    """Return the deviance residuals ``sign(y - mu) * sqrt(weights * unit_deviance)``.

    ``unit_deviance`` is d(y, mu) per row, computed by the caller for the model's family (e.g.
    with ``FamilySpec.unit_deviance`` of :mod:`smglm.glm.families`); tiny negative values from
    rounding count as 0. The sum of the squared residuals is the model's total deviance
    ``sum(weights * unit_deviance)``. ``weights`` may be ``None`` (all 1).
    """
    yy = as_values(y, "y", None, None)
    m = as_values(mu, "mu", None, len(yy))
    d = as_values(unit_deviance, "unit_deviance", None, len(yy))
    w = exposure_values(weights, len(yy))
    return np.sign(yy - m) * np.sqrt(w * np.clip(d, 0.0, None))


def residual_bins(fitted: ArrayLike, residuals: ArrayLike, n_bins: int = 20) -> pd.DataFrame:
    """Summarise residuals against fitted values in ``n_bins`` quantile bins of ``fitted``.

    Bins are cut at the quantiles of ``fitted`` (rows with equal fitted values stay together, so
    there are fewer bins when fitted takes few values) and numbered 1.. in increasing order.
    Columns: ``bin``, ``n_rows``, ``fitted_mean``, ``residual_mean``, ``residual_q10``,
    ``residual_q50``, ``residual_q90`` (quantiles interpolated linearly, as ``numpy.quantile``).
    """
    check_bins("n_bins", n_bins)
    f = as_values(fitted, "fitted", None, None)
    r = as_values(residuals, "residuals", None, len(f))
    if len(f) == 0:
        raise data_error("fitted", "has no rows; at least one row is needed")
    cuts = np.unique(np.quantile(f, np.linspace(0.0, 1.0, n_bins + 1)[1:-1]))
    raw = np.searchsorted(cuts, f, side="right")
    occupied = np.bincount(raw, minlength=len(cuts) + 1) > 0
    codes = (np.cumsum(occupied) - 1)[raw]  # number the occupied bins 0, 1, ...
    counts = np.bincount(codes)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    # the residuals by bin (a stable radix sort of the small bin numbers), then sorted within
    # each bin: the same values as sorting all rows by residual, at a fraction of the cost
    small = codes.astype(np.int16) if len(counts) <= np.iinfo(np.int16).max else codes
    rs = r[np.argsort(small, kind="stable")]
    for start, count in zip(starts.tolist(), counts.tolist(), strict=True):
        rs[start : start + count].sort()
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
