"""Checking data against a GLMConfig (reading data files is :mod:`smglm.glm.io`).

:func:`prepare` returns the arrays the engine needs and collects *every* problem it finds into
one :class:`~smglm.errors.DataError`: missing columns (with a did-you-mean), a target the family
cannot take, negative weights, non-positive exposure, NaN or infinite values, no rows, bounds on
terms that do not exist.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from smglm.config import GLMConfig
from smglm.errors import DataError, Issue, did_you_mean
from smglm.glm.families import family_of
from smglm.glm.io import source_columns
from smglm.glm.model import level_strings

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Prepared", "categorical_columns", "prepare"]

log = logging.getLogger(__name__)


def categorical_columns(config: GLMConfig, df: pd.DataFrame) -> list[str]:
    """Predictors treated as categorical: string, boolean-free object and category columns,
    plus those the config names in ``categorical``."""
    out = []
    for col in config.predictors:
        if col not in df.columns:
            continue
        dt = df[col].dtype
        if (
            col in config.categorical
            or isinstance(dt, pd.CategoricalDtype)
            or pd.api.types.is_object_dtype(dt)
            or pd.api.types.is_string_dtype(dt)
        ):
            out.append(col)
    return out


@dataclass
class Prepared:
    """Checked data, ready for the engine.

    ``X`` holds the predictors (categoricals as pandas categoricals with string levels, the
    reference level first); ``references`` maps each categorical to its reference level.
    """

    X: pd.DataFrame
    y: np.ndarray
    weights: np.ndarray
    offset: np.ndarray | None
    exposure: np.ndarray | None
    categorical: list[str]
    references: dict[str, str] = field(default_factory=dict)
    n_dropped: int = 0


def _as_string_categorical(s: pd.Series) -> pd.Series:
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = [str(c) for c in s.cat.categories]
        if len(set(cats)) != len(cats):
            raise ValueError("levels collide once written as strings")
        return s.cat.rename_categories(cats)
    return pd.Series(pd.Categorical(level_strings(s)), index=s.index, name=s.name)


def _drop_unused_levels(s: pd.Series) -> pd.Series:
    """``remove_unused_categories`` without its sort of the codes (a count instead)."""
    codes = s.cat.codes.to_numpy()
    counts = np.bincount(codes[codes >= 0], minlength=len(s.cat.categories))
    if counts.all():
        return s
    return s.cat.remove_unused_categories()


def _reference_level(s: pd.Series, weight: np.ndarray) -> str:
    codes = s.cat.codes.to_numpy()
    ok = codes >= 0
    totals = np.bincount(codes[ok], weights=weight[ok], minlength=len(s.cat.categories))
    return str(s.cat.categories[int(np.argmax(totals))])


def _bad_rows(values: np.ndarray) -> np.ndarray:
    return ~np.isfinite(values)


def prepare(
    config: GLMConfig,
    df: pd.DataFrame,
    *,
    references: dict[str, str] | None = None,
    levels: dict[str, Sequence[str]] | None = None,
    what: str = "data",
) -> Prepared:
    """Check ``df`` against ``config`` and return the engine's inputs.

    ``references`` (and ``levels``) fix the reference level (and level order) of each
    categorical, e.g. for test data scored with the training's encoding; by default the
    reference is the level with the most exposure (else weight, else rows).

    The checks run in stages, each raising a :class:`~smglm.errors.DataError` with all the
    problems it found before the next one starts: the columns exist and there are rows; the
    numeric columns are numeric; missing or infinite values (an error, or dropped rows with
    ``missing: drop``); then the target's domain, the weights and the exposure, and the
    categoricals' levels, reported together.
    """
    _check_columns(config, df, what)
    cat_cols = categorical_columns(config, df)
    _check_numbers_as_text(config, df, cat_cols)
    num_cols = [p for p in config.predictors if p not in cat_cols]
    roles = _numeric_roles(config, num_cols)
    arrays = _numeric_arrays(df, roles)
    df, arrays, n_dropped = _drop_missing(config, df, arrays, roles, cat_cols, what)
    y, w, offset, expo, issues = _target_and_weights(config, arrays)
    issues += _magnitudes(arrays, roles)
    size = w * (expo if expo is not None else 1.0)
    X, refs, cat_issues = _predictors(config, df, arrays, num_cols, size, references, levels)
    issues += cat_issues
    if issues:
        raise DataError(issues)
    if references is None and levels is None and what != "test data":  # the training data
        _check_estimable(config, X, y, w)
    return Prepared(
        X=X,
        y=y,
        weights=w,
        offset=offset,
        exposure=expo,
        categorical=cat_cols,
        references=refs,
        n_dropped=n_dropped,
    )


def _check_columns(config: GLMConfig, df: pd.DataFrame, what: str) -> None:
    """Every column the config names is in ``df`` (with a did-you-mean), and it has rows."""
    issues: list[Issue] = []
    cols = source_columns(df)
    for role in ("target", "weights", "offset", "exposure"):
        col = getattr(config, role)
        if col is not None and col not in df.columns:
            issues.append(
                Issue(role, f"column {col!r} is not in the {what}{_cols_hint(col, cols)}", col)
            )
    missing_pred = [p for p in config.predictors if p not in df.columns]
    for p in missing_pred:
        issues.append(
            Issue("predictors", f"column {p!r} is not in the {what}{_cols_hint(p, cols)}", p)
        )
    if issues:
        raise DataError(issues)
    seen = pd.Index(df.columns)
    if not seen.is_unique:
        for role, col in _roles_of_columns(config):
            n = int((seen == col).sum())
            if n > 1:
                issues.append(
                    Issue(
                        role,
                        f"column {col!r} appears {n} times in the {what}; column names must be "
                        "unique: rename or drop the copies",
                        col,
                    )
                )
        if issues:
            raise DataError(issues)
    if len(df) == 0:
        raise DataError([Issue(what, f"the {what} has no rows; need at least one", 0)])


def _roles_of_columns(config: GLMConfig) -> list[tuple[str, str]]:
    """(config field, column) for every column the config uses."""
    out = [("target", config.target)]
    out += [("predictors", p) for p in config.predictors]
    out += [(r, c) for r in ("weights", "offset", "exposure") if (c := getattr(config, r))]
    return out


def _numeric_roles(config: GLMConfig, num_cols: list[str]) -> dict[str, str]:
    """The numeric columns, each with its role (the config field that names it)."""
    roles = {config.target: "target"}
    roles.update({c: "predictors" for c in num_cols})
    for role in ("weights", "offset", "exposure"):
        col = getattr(config, role)
        if col:
            roles[col] = role
    return roles


def _numeric_arrays(df: pd.DataFrame, roles: dict[str, str]) -> dict[str, np.ndarray]:
    """The numeric columns as float arrays (booleans as 0/1; missing values as NaN)."""
    issues: list[Issue] = []
    arrays: dict[str, np.ndarray] = {}
    for col, role in roles.items():
        s = df[col]
        if pd.api.types.is_bool_dtype(s.dtype):
            s = s.astype(float)
        if not pd.api.types.is_numeric_dtype(s.dtype):
            sample = s.dropna().astype(str).unique()[:3].tolist()
            hint = " (or list it under categorical)" if role == "predictors" else ""
            text = _number_text_hint(col, s) if s.dtype == object or s.dtype == "string" else None
            found = f"it {text}" if text else f"got {s.dtype} values such as {sample}"
            issues.append(Issue(role, f"column {col!r} must be numeric; {found}{hint}", col))
            continue
        arrays[col] = s.to_numpy(dtype=float, na_value=np.nan)
    if issues:
        raise DataError(issues)
    return arrays


def _drop_missing(
    config: GLMConfig,
    df: pd.DataFrame,
    arrays: dict[str, np.ndarray],
    roles: dict[str, str],
    cat_cols: list[str],
    what: str,
) -> tuple[pd.DataFrame, dict[str, np.ndarray], int]:
    """Rows with a missing or infinite value in a used column: an error (``missing: error``),
    or dropped with a warning (``missing: drop``). Returns the rows kept and how many went."""
    bad = np.zeros(len(df), dtype=bool)
    bad_by_col: dict[str, np.ndarray] = {}
    for col, values in arrays.items():
        b = _bad_rows(values)
        if b.any():
            bad_by_col[col] = b
            bad |= b
    for col in cat_cols:
        b = df[col].isna().to_numpy()
        if b.any():
            bad_by_col[col] = b
            bad |= b
    if not bad.any():
        return df, arrays, 0
    if config.missing == "error":
        issues = []
        for col, b in bad_by_col.items():
            first = int(np.argmax(b))
            issues.append(
                Issue(
                    roles.get(col, "predictors"),
                    f"column {col!r} has {int(b.sum())} missing or infinite value(s) "
                    f"(first at row {first}); fix the data or set missing: drop",
                    col,
                )
            )
        raise DataError(issues)
    n_dropped = int(bad.sum())
    keep = ~bad
    arrays = {k: v[keep] for k, v in arrays.items()}
    df = df.loc[keep]
    warnings.warn(
        f"dropped {n_dropped} of {len(bad)} rows with missing or infinite values "
        f"in {sorted(bad_by_col)} (missing: drop)",
        stacklevel=3,  # prepare's caller
    )
    if len(df) == 0:
        raise DataError([Issue(what, f"no rows left after dropping {n_dropped}", 0)])
    return df, arrays, n_dropped


def _target_and_weights(
    config: GLMConfig, arrays: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, list[Issue]]:
    """The target (checked against the family's domain), the weights (>= 0, not all zero),
    the offset and the exposure (> 0; the offset is then its log), and the problems found."""
    y = arrays[config.target]
    w = arrays[config.weights] if config.weights else np.ones_like(y)
    expo = arrays[config.exposure] if config.exposure else None
    offset = arrays[config.offset] if config.offset else None
    issues = family_of(config).check_target(
        y, w, column=config.target, weighted=bool(config.weights)
    )
    if config.weights:
        neg = w < 0
        if neg.any():
            issues.append(
                Issue(
                    "weights",
                    f"column {config.weights!r} has {int(neg.sum())} negative value(s) "
                    f"(min {w.min():g}); weights must be >= 0",
                    config.weights,
                )
            )
        elif not (w > 0).any():
            issues.append(
                Issue("weights", f"column {config.weights!r} is all zero; need a positive weight")
            )
    if expo is not None and (expo <= 0).any():
        issues.append(
            Issue(
                "exposure",
                f"column {config.exposure!r} has {int((expo <= 0).sum())} value(s) <= 0 "
                f"(min {expo.min():g}); exposure must be > 0",
                config.exposure,
            )
        )
    if expo is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            offset = np.log(expo)
    return y, w, offset, expo, issues


def _predictors(
    config: GLMConfig,
    df: pd.DataFrame,
    arrays: dict[str, np.ndarray],
    num_cols: list[str],
    size: np.ndarray,
    references: dict[str, str] | None,
    levels: dict[str, Sequence[str]] | None,
) -> tuple[pd.DataFrame, dict[str, str], list[Issue]]:
    """The predictors' frame: numeric columns as arrays, categoricals with string levels and
    the reference first (given, else the level with the largest ``size``); the references;
    and the problems found."""
    issues: list[Issue] = []
    X = pd.DataFrame(index=df.index)
    refs: dict[str, str] = {}
    for col in config.predictors:
        if col in num_cols:
            X[col] = arrays[col]
            continue
        try:
            s = _as_string_categorical(df[col])
        except ValueError:
            issues.append(Issue("categorical", f"column {col!r}: levels collide as strings", col))
            continue
        if levels and col in levels:
            known = list(levels[col])
            s = s.cat.set_categories(known)
        else:
            s = _drop_unused_levels(s)
        if references and col in references:
            ref = references[col]
        else:
            if len(s.cat.categories) == 0:
                issues.append(Issue("predictors", f"column {col!r} has no levels", col))
                continue
            ref = _reference_level(s, size)
        cats = list(s.cat.categories)
        if ref in cats:
            s = s.cat.reorder_categories([ref] + [c for c in cats if c != ref])
        refs[col] = ref
        X[col] = s
    return X, refs, issues


def _cols_hint(col: str, cols: list[str]) -> str:
    hint = did_you_mean(col, [str(c) for c in cols])
    if hint:
        return f";{hint}"
    shown = [str(c) for c in cols[:12]]
    more = f" and {len(cols) - 12} more" if len(cols) > 12 else ""
    return f"; its columns are {shown}{more}"


#: Beyond this size a value overflows the fit in double precision (its square exceeds 1e200).
_HUGE = 1e100
#: A column whose non-zero values are all below this size underflows the fit.
_TINY = 1e-100
#: The share of a text column's distinct values that must read as numbers for the column to be
#: taken for numbers stored as text.
_NUMERIC_SHARE = 0.9
#: The families whose mean must be positive somewhere: an all-zero target has no finite MLE.
_POSITIVE_MEAN = ("poisson", "negative_binomial", "tweedie")


def _as_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``values`` (strings) read as numbers as written, and with a decimal comma read as a
    point (NaN where a value is not a number)."""
    text = values.astype(str).str.strip()
    as_written = pd.to_numeric(text, errors="coerce")
    comma = pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce")
    return as_written, comma


def _number_text_hint(col: str, values: pd.Series) -> str | None:
    """Why a text column looks like numbers (decimal commas, or numbers stored as text), or
    None when most of its distinct values are not numbers."""
    distinct = pd.Series(values.dropna().unique())
    distinct = distinct[distinct.astype(str).str.strip() != ""]
    if distinct.empty or pd.api.types.is_bool_dtype(distinct.dtype):
        return None
    if distinct.map(lambda v: isinstance(v, (bool, np.bool_))).any():
        return None
    as_written, comma = _as_numbers(distinct)
    if comma.notna().mean() < _NUMERIC_SHARE:
        return None
    with_comma = distinct[as_written.isna() & comma.notna()].astype(str).tolist()
    not_numbers = distinct[comma.isna()].astype(str).tolist()
    if with_comma:
        hint = (
            f"holds numbers written with a decimal comma (e.g. {with_comma[:3]}), read as text; "
            f"write them with a decimal point (pd.to_numeric(df[{col!r}].str.replace(',', '.')),"
            " or read the file with decimal=',')"
        )
    else:
        shown = distinct.astype(str).tolist()[:3]
        hint = (
            f"holds numbers stored as text (e.g. {shown}); convert it with "
            f"pd.to_numeric(df[{col!r}])"
        )
    if not_numbers:
        hint += f"; {len(not_numbers)} value(s) are not numbers (e.g. {not_numbers[:3]})"
    return hint


def _check_numbers_as_text(config: GLMConfig, df: pd.DataFrame, cat_cols: list[str]) -> None:
    """A text predictor whose values nearly all read as numbers (with a decimal point or a
    decimal comma) is refused unless the config lists it under ``categorical``: it would
    otherwise become a categorical with a level per distinct number (a saturated model)."""
    issues: list[Issue] = []
    for col in cat_cols:
        s = df[col]
        if col in config.categorical or isinstance(s.dtype, pd.CategoricalDtype):
            continue
        hint = _number_text_hint(col, s)
        if hint is None:
            continue
        n_levels = int(s.nunique())
        issues.append(
            Issue(
                "predictors",
                f"column {col!r} {hint}; as text it would be a categorical with {n_levels} "
                f"level(s). List {col!r} under categorical if its values are labels (codes)",
                col,
            )
        )
    if issues:
        raise DataError(issues)


def _magnitudes(arrays: dict[str, np.ndarray], roles: dict[str, str]) -> list[Issue]:
    """Numeric columns whose values overflow (beyond 1e100 in size) or underflow (all non-zero
    values below 1e-100) a fit in double precision."""
    issues: list[Issue] = []
    for col, values in arrays.items():
        size = np.abs(values[np.isfinite(values)])
        if size.size == 0:
            continue
        role = roles.get(col, "predictors")
        huge = size > _HUGE
        nonzero = size[size > 0]
        if huge.any():
            issues.append(
                Issue(
                    role,
                    f"column {col!r} has {int(huge.sum())} value(s) beyond 1e100 in size (max "
                    f"{size.max():g}); the fit overflows double precision on such values: "
                    "rescale the column (e.g. divide it by a power of ten) or fix the values",
                    col,
                )
            )
        elif nonzero.size and nonzero.max() < _TINY:
            issues.append(
                Issue(
                    role,
                    f"column {col!r} has only values below 1e-100 in size (max {nonzero.max():g})"
                    "; the fit underflows double precision on such values: rescale the column "
                    "(e.g. multiply it by a power of ten)",
                    col,
                )
            )
    return issues


def _check_estimable(config: GLMConfig, X: pd.DataFrame, y: np.ndarray, w: np.ndarray) -> None:
    """Training data on which the model has no finite estimate: a categorical with one level,
    a target with no information for the family (all zero for counts, all 0 or all 1 for
    binomial, constant where the dispersion is estimated), no more rows than coefficients."""
    issues: list[Issue] = []
    used = w > 0
    n_obs = int(used.sum())
    n_params = int(config.fit_intercept)
    for col in X.columns:
        s = X[col]
        if not isinstance(s.dtype, pd.CategoricalDtype):
            n_params += 1
            continue
        n_levels = len(s.cat.categories)
        n_params += max(n_levels - 1, 0)
        if n_levels == 1:
            issues.append(
                Issue(
                    "predictors",
                    f"column {col!r} has a single level ({s.cat.categories[0]!r}), which cannot "
                    "explain anything (R refuses it too); drop it from predictors",
                    col,
                )
            )
    fam = family_of(config)
    yy = y[used]
    target = config.target
    if yy.size:
        if fam.name in _POSITIVE_MEAN and not (yy != 0).any():
            issues.append(
                Issue(
                    "target",
                    f"column {target!r} is 0 on every row: family {fam.name!r} has no finite "
                    "estimate (the fitted mean would be 0, the intercept -inf); check the target "
                    "column, or fit data where it is positive somewhere",
                    target,
                )
            )
        elif fam.name == "binomial" and (not (yy != 0).any() or not (yy != 1).any()):
            issues.append(
                Issue(
                    "target",
                    f"column {target!r} is {yy[0]:g} on every row: family 'binomial' has no "
                    "finite estimate (the fitted probability would be exactly "
                    f"{yy[0]:g}); fit data with both outcomes",
                    target,
                )
            )
        elif fam.has_dispersion and (yy == yy[0]).all():
            issues.append(
                Issue(
                    "target",
                    f"column {target!r} is constant ({yy[0]:g} on every row): a "
                    f"{fam.name!r} model of a constant has zero dispersion and no standard "
                    "errors; check the target column",
                    target,
                )
            )
    if n_obs <= n_params:
        if config.weights and n_obs < len(w):
            where: str = "weights"
            rows = f"{n_obs} row(s) with a positive weight in column {config.weights!r}"
        else:
            where, rows = "data", f"{n_obs} row(s)"
        issues.append(
            Issue(
                where,
                f"the data has {rows} for {n_params} coefficient(s) (intercept, numeric "
                "predictors and non-reference levels); a GLM needs more rows than "
                "coefficients to estimate them and their standard errors: add rows, drop "
                "predictors or group levels",
                n_obs,
            )
        )
    if issues:
        raise DataError(issues)
