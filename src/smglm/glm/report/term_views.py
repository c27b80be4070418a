"""The tables behind the term views of the report: a spline's fitted curve with its confidence
band and the observed rate beside it, the relativities of levels (categoricals, bands, groups)
with their exposure, the actual-vs-expected of each interaction by pair of levels, the CV
deviance path of a penalty search, and the relativities of each level by value of a time split
(consistency).

The table functions take plain arrays (tested on their own); :func:`term_tables` reads a fitted
model, its covariance and a scored split and calls them. Conventions as in the report: a row's
actual amount is ``y * w``, its expected ``mu * w`` and its exposure ``w * exposure``; A/E is
actual / expected. For a log link the term views show relativities (``exp`` of the effect);
for other links, the effect on the linear predictor.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from smglm.glm.report.one_way import MISSING_LABEL
from smglm.glm.search import SEARCH_COLUMNS

if TYPE_CHECKING:
    from smglm.config import GLMConfig
    from smglm.glm.report.scoring import Scored

__all__ = [
    "consistency_table",
    "interaction_table",
    "level_table",
    "search_table",
    "spline_bins",
    "spline_curve",
    "term_tables",
]

log = logging.getLogger(__name__)

#: The two-sided 95% normal quantile (R's ``qnorm(0.975)``).
Z95 = 1.959963984540054
#: Actual amounts, expected amounts and exposure of a split's rows.
Amounts = tuple[np.ndarray, np.ndarray, np.ndarray]
#: Points of a spline's curve grid, and bins of its exposure histogram.
CURVE_POINTS = 101
SPLINE_BINS = 30
#: Quantile bins of a numeric part of an interaction.
INTERACTION_BINS = 5


def _scale(effect: np.ndarray, link: str) -> np.ndarray:
    if link == "log":
        with np.errstate(over="ignore"):
            return np.exp(effect)
    return np.asarray(effect, dtype=np.float64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _from_codes(codes: Any, categories: Sequence[str]) -> pd.Categorical:
    """A Categorical of text from codes (-1: missing) and its categories."""
    index = pd.Index(list(categories), dtype=object)
    made: Any = pd.Categorical.from_codes(np.asarray(codes, dtype=np.intp), categories=index)
    return cast("pd.Categorical", made)


def _categorical(labels: Any) -> pd.Categorical:
    """Row labels as a Categorical of text (missing values stay missing: code -1)."""
    if isinstance(labels, pd.Categorical):
        if all(isinstance(c, str) for c in labels.categories):
            return labels
        return _from_codes(labels.codes, [str(c) for c in labels.categories])
    values = pd.Series(np.asarray(labels, dtype=object))
    made: Any = pd.Categorical(values.where(values.isna(), values.astype(str)))
    return cast("pd.Categorical", made)


def _codes(labels: pd.Categorical, levels: Sequence[str]) -> np.ndarray:
    """The position of each row's label in ``levels`` (-1 for other labels and missing)."""
    lookup = pd.Index(list(levels)).get_indexer(pd.Index(labels.categories))
    return np.append(lookup, -1)[np.asarray(labels.codes, dtype=np.intp)]


def _present(labels: pd.Categorical) -> list[str]:
    """The labels that some row has, in category order."""
    codes = np.asarray(labels.codes)
    used = np.bincount(codes[codes >= 0], minlength=len(labels.categories)) > 0
    return [str(c) for c, u in zip(labels.categories, used, strict=True) if u]


def _observed(
    fit: np.ndarray, actual: np.ndarray, expected: np.ndarray, exposure: np.ndarray, link: str
) -> np.ndarray:
    """The fitted value adjusted by what the data say: ``fit * A/E`` for a log link, else
    ``fit + (actual - expected) / exposure``."""
    if link == "log":
        return fit * _ratio(actual, expected)
    return fit + _ratio(actual - expected, exposure)


# -- splines ---------------------------------------------------------------------------------
def spline_curve(
    grid: np.ndarray,
    basis: np.ndarray,
    beta: np.ndarray,
    covariance: np.ndarray | None,
    link: str,
) -> pd.DataFrame:
    """A spline's fitted curve on ``grid`` with its pointwise 95% confidence band.

    Parameters
    ----------
    grid
        The predictor's values (G).
    basis
        The spline's basis at ``grid``, shape (G, K): the term's effect is ``basis @ beta``.
    beta
        The K fitted coefficients.
    covariance
        Their (K, K) covariance (None, or any NaN: no band). The variance of the effect at x
        is ``B(x) Cov B(x)'``; the band is ``effect ± 1.96 se`` (the curve's own uncertainty,
        without the intercept's).
    link
        For ``log``, ``fit``/``lower``/``upper`` are relativities (``exp``); else the effect.

    Returns
    -------
    DataFrame
        ``x``, ``effect``, ``se``, ``fit``, ``lower``, ``upper``.
    """
    x = np.asarray(grid, dtype=np.float64)
    b = np.asarray(basis, dtype=np.float64).reshape(len(x), -1)
    coef = np.asarray(beta, dtype=np.float64)
    effect = b @ coef
    se = np.full(len(x), np.nan)
    if covariance is not None:
        cov = np.asarray(covariance, dtype=np.float64)
        if cov.shape == (len(coef), len(coef)) and np.isfinite(cov).all():
            se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", b, cov, b), 0.0))
    return pd.DataFrame(
        {
            "x": x,
            "effect": effect,
            "se": se,
            "fit": _scale(effect, link),
            "lower": _scale(effect - Z95 * se, link),
            "upper": _scale(effect + Z95 * se, link),
        }
    )


def _edges(x: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin edges over ``x`` (one bin per value for few integer values)."""
    lo, hi = float(np.min(x)), float(np.max(x))
    if lo == hi:
        return np.array([lo - 0.5, hi + 0.5])
    values = np.unique(x) if len(x) <= 1_000_000 else np.unique(x[:: len(x) // 100_000])
    if len(values) <= 2 * bins and np.all(values == np.round(values)):
        return np.concatenate((values - 0.5, [values[-1] + 0.5]))
    return np.linspace(lo, hi, bins + 1)


def spline_bins(
    x: np.ndarray,
    actual: np.ndarray,
    expected: np.ndarray,
    exposure: np.ndarray,
    term_effect: np.ndarray,
    link: str,
    bins: int = SPLINE_BINS,
) -> pd.DataFrame:
    """The data beside a spline's curve: equal-width bins of ``x`` (one per value for few
    integers) with their exposure and the observed relativity.

    ``fit`` is the exposure-weighted mean of the term's fitted value over the bin's rows
    (relativity ``exp(term_effect)`` for a log link, else the effect); ``observed`` is ``fit``
    adjusted by the bin's actual / expected (see the module's doc): where the model's other
    terms and the curve explain the data, it lies on the curve.

    Returns
    -------
    DataFrame
        ``x`` (exposure-weighted mean of the bin's values), ``x_lo``, ``x_hi``, ``exposure``,
        ``actual``, ``expected``, ``ae``, ``fit``, ``observed``, ``n_rows``; bins without rows
        are left out.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        columns = ["x", "x_lo", "x_hi", "exposure", "actual", "expected", "ae", "fit", "observed"]
        return pd.DataFrame({c: np.array([], dtype=float) for c in columns} | {"n_rows": []})
    edges = _edges(x, bins)
    k = len(edges) - 1
    code = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, k - 1)

    def total(w: np.ndarray | None) -> np.ndarray:
        return np.bincount(code, weights=w, minlength=k)

    count = total(None)
    e, a, p = total(exposure), total(actual), total(expected)
    fit_rows = _scale(np.asarray(term_effect, dtype=np.float64), link)
    weight = np.where(exposure > 0, exposure, 0.0)
    sw = total(weight)
    fit = np.where(sw > 0, _ratio(total(weight * fit_rows), sw), _ratio(total(fit_rows), count))
    mean_x = np.where(sw > 0, _ratio(total(weight * x), sw), _ratio(total(x), count))
    keep = count > 0
    table = pd.DataFrame(
        {
            "x": mean_x,
            "x_lo": edges[:-1],
            "x_hi": edges[1:],
            "exposure": e,
            "actual": a,
            "expected": p,
            "ae": _ratio(a, p),
            "fit": fit,
            "observed": _observed(fit, a, p, e, link),
            "n_rows": count.astype(np.int64),
        }
    )
    return table.loc[keep].reset_index(drop=True)


# -- levels ----------------------------------------------------------------------------------
def level_table(
    levels: Sequence[str],
    reference: str | None,
    estimates: Sequence[float],
    ci_lower: Sequence[float],
    ci_upper: Sequence[float],
    labels: np.ndarray | pd.Categorical,
    actual: np.ndarray,
    expected: np.ndarray,
    exposure: np.ndarray,
    link: str,
    *,
    fixed: bool = False,
) -> pd.DataFrame:
    """The relativities of a term's levels beside their exposure and actual vs expected.

    Parameters
    ----------
    levels, reference
        The term's levels in model order, and its base level (None for a fixed term).
    estimates, ci_lower, ci_upper
        Each level's coefficient and 95% confidence interval (the base level's: 0 and NaN).
    labels
        The level of each row of the split (rows of other labels, e.g. levels unseen in
        training, are counted in no level).
    actual, expected, exposure
        Amounts and exposure per row.

    Returns
    -------
    DataFrame
        ``level``, ``base``, ``fixed``, ``estimate``, ``fit``, ``lower``, ``upper`` (the
        relativity and its CI for a log link, else the coefficient's), ``exposure``,
        ``actual``, ``expected``, ``ae``, ``observed`` (``fit`` adjusted by A/E), ``n_rows``.
    """
    levels = [str(v) for v in levels]
    codes = _codes(_categorical(labels), levels)
    ok = codes >= 0
    k = len(levels)

    def total(w: np.ndarray | None) -> np.ndarray:
        return np.bincount(codes[ok], weights=None if w is None else w[ok], minlength=k)

    e, a, p = total(exposure), total(actual), total(expected)
    est = np.asarray(estimates, dtype=np.float64)
    fit = _scale(est, link)
    return pd.DataFrame(
        {
            "level": levels,
            "base": [level == reference for level in levels],
            "fixed": fixed,
            "estimate": est,
            "fit": fit,
            "lower": _scale(np.asarray(ci_lower, dtype=np.float64), link),
            "upper": _scale(np.asarray(ci_upper, dtype=np.float64), link),
            "exposure": e,
            "actual": a,
            "expected": p,
            "ae": _ratio(a, p),
            "observed": _observed(fit, a, p, e, link),
            "n_rows": total(None).astype(np.int64),
        }
    )


# -- interactions ----------------------------------------------------------------------------
def interaction_table(
    labels_a: np.ndarray | pd.Categorical,
    labels_b: np.ndarray | pd.Categorical,
    actual: np.ndarray,
    expected: np.ndarray,
    exposure: np.ndarray,
    effect: np.ndarray,
    link: str,
    *,
    order_a: Sequence[str] | None = None,
    order_b: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Actual vs expected of an interaction by pair of levels (or bins), with its relativity.

    Parameters
    ----------
    labels_a, labels_b
        The level (or bin label) of each row in each part of the interaction.
    actual, expected, exposure
        Amounts and exposure per row.
    effect
        The interaction's contribution to each row's linear predictor (its main effects
        excluded).
    order_a, order_b
        The order of the levels (default: sorted); cells without rows are listed with zero
        exposure.

    Returns
    -------
    DataFrame
        ``a``, ``b`` (one row per pair), ``exposure``, ``actual``, ``expected``, ``ae``,
        ``fit`` (the exposure-weighted mean over the cell's rows of the interaction's
        relativity ``exp(effect)`` for a log link, else of the effect), ``n_rows``.
    """
    la, lb = _categorical(labels_a), _categorical(labels_b)
    present_a, present_b = _present(la), _present(lb)
    levels_a = [str(v) for v in order_a] if order_a is not None else sorted(present_a)
    levels_b = [str(v) for v in order_b] if order_b is not None else sorted(present_b)
    levels_a += sorted(set(present_a) - set(levels_a))
    levels_b += sorted(set(present_b) - set(levels_b))
    ia, ib = _codes(la, levels_a), _codes(lb, levels_b)
    ok = (ia >= 0) & (ib >= 0)  # rows with a missing label are in no cell
    ka, kb = len(levels_a), len(levels_b)
    cell = ia[ok] * kb + ib[ok]

    def total(w: np.ndarray | None) -> np.ndarray:
        return np.bincount(cell, weights=None if w is None else w[ok], minlength=ka * kb)

    count = total(None)
    e, a, p = total(exposure), total(actual), total(expected)
    fit_rows = _scale(np.asarray(effect, dtype=np.float64), link)
    weight = np.where(exposure > 0, exposure, 0.0)
    sw = total(weight)
    fit = np.where(sw > 0, _ratio(total(weight * fit_rows), sw), _ratio(total(fit_rows), count))
    return pd.DataFrame(
        {
            "a": np.repeat(np.asarray(levels_a, dtype=object), kb),
            "b": np.tile(np.asarray(levels_b, dtype=object), ka),
            "exposure": e,
            "actual": a,
            "expected": p,
            "ae": _ratio(a, p),
            "fit": fit,
            "n_rows": count.astype(np.int64),
        }
    )


# -- penalty search --------------------------------------------------------------------------
def search_table(search: pd.DataFrame) -> pd.DataFrame:
    """A penalty search's path (``FitResult.search``) checked and ordered: by l1_ratio, then
    alpha descending (the path's order). Raises a ValueError naming the missing columns."""
    missing = [c for c in SEARCH_COLUMNS if c not in search.columns]
    if missing:
        raise ValueError(
            f"the penalty search table lacks columns {missing}; it needs {list(SEARCH_COLUMNS)}"
        )
    table = search.loc[:, list(SEARCH_COLUMNS)].copy()
    table["chosen"] = table["chosen"].astype(bool)
    return table.sort_values(["l1_ratio", "alpha"], ascending=[True, False]).reset_index(drop=True)


# -- consistency over a time split -----------------------------------------------------------
def consistency_table(
    levels: Sequence[str],
    fit: Sequence[float] | np.ndarray,
    labels: np.ndarray | pd.Categorical,
    by: np.ndarray,
    actual: np.ndarray,
    expected: np.ndarray,
    exposure: np.ndarray,
    link: str,
) -> pd.DataFrame:
    """The relativities of a term's levels as each value of ``by`` (e.g. each year) sees them.

    ``fit`` is each level's fitted relativity (log link) or effect. For every level and value
    of ``by``: ``ae`` (actual / expected of that level in that year), ``ae_by`` (actual /
    expected of the whole year) and ``observed``: ``fit * ae / ae_by`` (log link; else
    ``fit + (actual - expected) / exposure - (year's actual - expected) / exposure``), the
    relativity the year's data would give the level, with the year's overall level divided
    out. Lines of ``observed`` that agree across the years are a consistent effect.

    Returns
    -------
    DataFrame
        ``level``, ``by``, ``fit``, ``exposure``, ``actual``, ``expected``, ``ae``, ``ae_by``,
        ``observed``, ``n_rows``; pairs without rows are left out.
    """
    levels = [str(v) for v in levels]
    fit_values = np.asarray(fit, dtype=np.float64)
    il = _codes(_categorical(labels), levels)
    by_codes, by_values = pd.factorize(pd.Series(by), sort=True)
    ok = (il >= 0) & (by_codes >= 0)
    kl, kb = len(levels), len(by_values)
    cell = il[ok] * kb + by_codes[ok]

    def total(w: np.ndarray | None) -> np.ndarray:
        return np.bincount(cell, weights=None if w is None else w[ok], minlength=kl * kb)

    def year(w: np.ndarray) -> np.ndarray:
        return np.bincount(by_codes[ok], weights=w[ok], minlength=kb)

    count = total(None)
    e, a, p = total(exposure), total(actual), total(expected)
    ya, yp, ye = np.tile(year(actual), kl), np.tile(year(expected), kl), np.tile(year(exposure), kl)
    f = np.repeat(fit_values, kb)
    if link == "log":
        observed = f * _ratio(a, p) / _ratio(ya, yp)
    else:
        observed = f + _ratio(a - p, e) - _ratio(ya - yp, ye)
    table = pd.DataFrame(
        {
            "level": np.repeat(np.asarray(levels, dtype=object), kb),
            "by": np.tile(np.asarray([_by_text(v) for v in by_values], dtype=object), kl),
            "fit": f,
            "exposure": e,
            "actual": a,
            "expected": p,
            "ae": _ratio(a, p),
            "ae_by": _ratio(ya, yp),
            "observed": observed,
            "n_rows": count.astype(np.int64),
        }
    )
    return table.loc[count > 0].reset_index(drop=True)


def _by_text(value: Any) -> str:
    """A value of the split column as text (a year 2024.0 as ``2024``)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


# -- from a fitted model and a scored split --------------------------------------------------
def _term_dicts(model: Any) -> list[dict[str, Any]]:
    return list(model.to_dict().get("terms", []))


def _coefficient_rows(result: Any) -> dict[str, dict[str, Any]]:
    table = result.coefficients
    return {str(r["term"]): r for r in table.to_dict("records")}


def _level_strings() -> Callable[[pd.Series], np.ndarray]:
    """smglm's raw value -> level string conversion (the fitted terms' module holds it)."""
    import importlib

    for module in ("smglm.glm.terms", "smglm.glm.model"):
        try:
            found = getattr(importlib.import_module(module), "level_strings", None)
        except ImportError:
            continue
        if found is not None:
            return cast("Callable[[pd.Series], np.ndarray]", found)
    raise ImportError("smglm.glm.terms.level_strings is missing")  # pragma: no cover


def _with_missing(labels: pd.Categorical) -> pd.Categorical:
    """``labels`` with missing values as the level ``(missing)``."""
    labels = _categorical(labels)
    codes = np.asarray(labels.codes)
    if not (codes < 0).any():
        return labels
    categories = [str(c) for c in labels.categories]
    if MISSING_LABEL not in categories:
        categories.append(MISSING_LABEL)
    codes = np.where(codes < 0, categories.index(MISSING_LABEL), codes)
    return _from_codes(codes, categories)


def _level_labels(term: dict[str, Any], scored: Scored) -> pd.Categorical:
    """The level of each row of ``scored`` in a levels term (categorical or bands), as a
    Categorical of text (missing values as ``(missing)``)."""
    name = term["name"]
    column = scored.prep.X[name] if name in scored.prep.X.columns else scored.data[name]
    if isinstance(column.dtype, pd.CategoricalDtype):
        return _with_missing(column.array)
    if term.get("type") == "bands" and pd.api.types.is_numeric_dtype(column.dtype):
        from smglm.config.terms import band_labels

        cuts = [float(c) for c in term["cuts"]]
        x = column.to_numpy(dtype=np.float64, na_value=np.nan)
        codes = np.searchsorted(np.asarray(cuts), np.nan_to_num(x), side="right")
        codes = np.where(np.isnan(x), -1, codes)
        return _with_missing(_from_codes(codes, band_labels(cuts)))
    values = _level_strings()(column)
    groups = term.get("groups") or {}
    labels = pd.Categorical(values)
    if groups:
        mapping = {str(m): str(g) for g, members in groups.items() for m in members}
        grouped = [mapping.get(str(c), str(c)) for c in labels.categories]
        merged = list(dict.fromkeys(grouped))
        lookup = np.append(pd.Index(merged).get_indexer(pd.Index(grouped)), -1)
        codes = lookup[np.asarray(labels.codes, dtype=np.intp)]
        labels = _from_codes(codes, merged)
    return _with_missing(labels)


def _spline_names(term: dict[str, Any]) -> list[str]:
    k = len(term["coefficients"])
    return [f"{term['name']}[s{i + 1}]" for i in range(k)]


def _spline_basis(model: Any, term: dict[str, Any], values: np.ndarray) -> np.ndarray:
    """The basis of spline ``term`` at ``values``, (n, K): the fitted term's own ``basis``,
    else the term's effect with each coefficient set to 1 in turn
    (``PortableModel.term_effect`` is linear in the coefficients)."""
    getter = getattr(model, "term", None)
    fitted = getter(term["name"]) if callable(getter) else None
    if fitted is not None and callable(getattr(fitted, "basis", None)):
        return np.asarray(fitted.basis(np.asarray(values, dtype=np.float64)), dtype=np.float64)
    return basis_of_unit_effects(model, term, values)


def basis_of_unit_effects(model: Any, term: dict[str, Any], values: np.ndarray) -> np.ndarray:
    """The basis of spline ``term`` at ``values`` from ``model.term_effect`` alone: the
    effect with each coefficient set to 1 in turn (the effect is linear in them)."""
    base = model.to_dict()
    position = next(i for i, t in enumerate(base["terms"]) if t["name"] == term["name"])
    k = len(term["coefficients"])
    columns = []
    for j in range(k):
        d = copy.deepcopy(base)
        d["terms"][position]["coefficients"] = [1.0 if i == j else 0.0 for i in range(k)]
        unit = type(model).from_dict(d)
        columns.append(np.asarray(unit.term_effect(term["name"], values), dtype=np.float64))
    return np.column_stack(columns) if columns else np.zeros((len(values), 0))


def _covariance_block(result: Any, names: list[str]) -> np.ndarray | None:
    cov = getattr(result, "covariance", None)
    if cov is None or not all(n in cov.index and n in cov.columns for n in names):
        return None
    return cov.loc[names, names].to_numpy(dtype=np.float64)


def _kept(scored: Scored, values: Any) -> Any:
    keep = scored.keep
    return values if keep.all() else values[keep]


def _raw_numbers(scored: Scored, name: str) -> np.ndarray:
    column = scored.prep.X[name] if name in scored.prep.X.columns else scored.data[name]
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def _natural_key(level: str) -> tuple[Any, ...]:
    """Sort key of level names: numbers inside names by value (R2 < R10), ``(missing)`` last."""
    import re

    parts = re.split(r"(\d+(?:\.\d+)?)", level)
    key = tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts) if p)
    return (level == MISSING_LABEL, key)


def display_order(term: dict[str, Any]) -> list[int]:
    """The positions of a levels term's levels in display order: bands in band order, other
    levels naturally sorted (R2 before R10), ``(missing)`` last."""
    levels = [str(v) for v in term["levels"]]
    if term.get("type") == "bands" and term.get("cuts") is not None:
        from smglm.config.terms import band_labels

        rank = {label: i for i, label in enumerate(band_labels([float(c) for c in term["cuts"]]))}
        return sorted(range(len(levels)), key=lambda i: (rank.get(levels[i], len(rank)), levels[i]))
    return sorted(range(len(levels)), key=lambda i: _natural_key(levels[i]))


def level_estimates(
    term: dict[str, Any], coefs: dict[str, dict[str, Any]]
) -> tuple[list[str], str | None, list[float], list[float], list[float]]:
    """A level term's levels in display order, its reference, and each level's estimate and
    95% CI (the reference's: its estimate; a fixed level's: NaN), from the model's term
    (``model.json`` entry) and the coefficient table's rows by name."""
    name = term["name"]
    order = display_order(term)
    levels = [str(term["levels"][i]) for i in order]
    reference = term.get("reference")
    estimates = [float(term["coefficients"][i]) for i in order]
    lower, upper = [], []
    for level, estimate in zip(levels, estimates, strict=True):
        row = coefs.get(f"{name}[{level}]", {})
        if level == reference or term.get("fixed"):
            lower.append(estimate if level == reference else np.nan)
            upper.append(estimate if level == reference else np.nan)
        else:
            lower.append(float(row.get("ci_lower", np.nan)))
            upper.append(float(row.get("ci_upper", np.nan)))
    return levels, reference, estimates, lower, upper


def _level_view(
    term: dict[str, Any],
    coefs: dict[str, dict[str, Any]],
    scored: Scored,
    amounts: Amounts,
    link: str,
) -> pd.DataFrame:
    levels, reference, estimates, lower, upper = level_estimates(term, coefs)
    labels = _kept(scored, _level_labels(term, scored))
    a, p, e = amounts
    return level_table(
        levels,
        reference,
        estimates,
        lower,
        upper,
        labels,
        a,
        p,
        e,
        link,
        fixed=bool(term.get("fixed")),
    )


def _spline_view(
    model: Any, term: dict[str, Any], result: Any, scored: Scored, amounts: Amounts, link: str
) -> pd.DataFrame:
    name = term["name"]
    x = _kept(scored, _raw_numbers(scored, name))
    lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
    boundary = term.get("boundary")
    if boundary:
        lo, hi = min(lo, float(boundary[0])), max(hi, float(boundary[1]))
    grid = np.linspace(lo, hi, CURVE_POINTS)
    beta = np.asarray(term["coefficients"], dtype=np.float64)
    basis = _spline_basis(model, term, grid)
    curve = spline_curve(grid, basis, beta, _covariance_block(result, _spline_names(term)), link)
    a, p, e = amounts
    effect_rows = np.asarray(model.term_effect(name, x), dtype=np.float64)
    bins = spline_bins(x, a, p, e, effect_rows, link)
    return pd.concat(
        [curve.assign(part="curve"), bins.assign(part="bins")], ignore_index=True, sort=False
    )[["part", *dict.fromkeys([*curve.columns, *bins.columns])]]


def _part_basis(
    model: Any, term: dict[str, Any], scored: Scored, amounts_e: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray, pd.Categorical, list[str]]:
    """One part of an interaction: (level codes or None, numeric basis (n, dim) or the codes'
    dimension, labels per row, label order)."""
    from smglm.glm.report.one_way import _numeric_codes

    kind = term.get("type")
    if kind in ("categorical", "bands"):
        levels = [str(v) for v in term["levels"]]
        labels = _kept(scored, _level_labels(term, scored))
        codes = _codes(labels, levels)
        ref = levels.index(str(term["reference"])) if term.get("reference") in levels else 0
        codes = np.where(codes < 0, ref, codes)  # unseen levels score as the reference
        shown = [levels[i] for i in display_order(term)]
        return codes, np.empty((len(labels), 0)), labels, shown
    x = _kept(scored, _raw_numbers(scored, term["name"]))
    basis = x[:, None] if kind == "numeric" else _spline_basis(model, term, x)
    bin_codes, bin_labels = _numeric_codes(x, amounts_e, INTERACTION_BINS)
    labels = _with_missing(_from_codes(bin_codes, list(bin_labels)))
    return None, basis, labels, list(bin_labels)


def _interaction_view(
    model: Any,
    term: dict[str, Any],
    by_name: dict[str, dict[str, Any]],
    scored: Scored,
    amounts: Amounts,
    link: str,
) -> pd.DataFrame:
    name_a, name_b = (str(t) for t in term["terms"])
    coef = np.asarray(term["coefficients"], dtype=np.float64)
    a, p, e = amounts
    codes_a, basis_a, labels_a, order_a = _part_basis(model, by_name[name_a], scored, e)
    codes_b, basis_b, labels_b, order_b = _part_basis(model, by_name[name_b], scored, e)
    n = len(labels_a)
    left = coef[codes_a] if codes_a is not None else basis_a @ coef  # (n, dim_b)
    if codes_b is not None:
        effect = left[np.arange(n), codes_b]
    else:
        effect = np.einsum("ij,ij->i", left, basis_b)
    return interaction_table(
        labels_a, labels_b, a, p, e, np.nan_to_num(effect), link, order_a=order_a, order_b=order_b
    )


def term_tables(config: GLMConfig, scored: Scored, result: Any) -> dict[str, Any]:
    """Every term view's table of one scored split: ``splines``, ``levels``,
    ``interactions`` (dicts by term name), ``consistency`` (by level term, with a time split)
    and ``search`` (the penalty search's path, train split only), plus the ``link``.

    A view that fails (e.g. a model written without the state it needs) is logged and left
    out: the report's other tables do not depend on it.
    """
    model = result.model
    link = str(model.link)
    out: dict[str, Any] = {
        "link": link,
        "splines": {},
        "levels": {},
        "interactions": {},
        "consistency": {},
        "search": None,
    }
    try:
        terms = _term_dicts(model)
    except Exception:  # pragma: no cover - a model without to_dict is a bug elsewhere
        log.exception("term views: cannot read the model's terms")
        return out
    amounts = scored.amounts()
    coefs = _coefficient_rows(result)
    by_name = {str(t["name"]): t for t in terms}
    by = getattr(getattr(config, "test", None), "by", None)

    def attempt(kind: str, name: str, make: Callable[[], pd.DataFrame]) -> None:
        try:
            out[kind][name] = make()
        except Exception:
            log.exception("term views: no %s view of %r", kind, name)

    for term in terms:
        name, kind = str(term["name"]), term.get("type")
        if kind in ("categorical", "bands"):
            attempt("levels", name, partial(_level_view, term, coefs, scored, amounts, link))
            if by and by in scored.data.columns and by != name:
                view = partial(_consistency_view, term, scored, amounts, by, link)
                attempt("consistency", name, view)
        elif kind == "spline":
            view = partial(_spline_view, model, term, result, scored, amounts, link)
            attempt("splines", name, view)
        elif kind == "interaction":
            view = partial(_interaction_view, model, term, by_name, scored, amounts, link)
            attempt("interactions", name, view)
    search = getattr(result, "search", None)
    if search is not None and scored.name == "train":
        try:
            out["search"] = search_table(search)
        except ValueError:
            log.exception("term views: no penalty search view")
    if by:
        out["by"] = by
    return out


def _consistency_view(
    term: dict[str, Any], scored: Scored, amounts: Amounts, by: str, link: str
) -> pd.DataFrame:
    order = display_order(term)
    levels = [str(term["levels"][i]) for i in order]
    fit = _scale(np.asarray(term["coefficients"], dtype=np.float64)[order], link)
    labels = _kept(scored, _level_labels(term, scored))
    by_values = _kept(scored, scored.data[by].to_numpy())
    a, p, e = amounts
    return consistency_table(levels, fit, labels, by_values, a, p, e, link)
