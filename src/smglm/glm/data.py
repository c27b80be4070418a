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
    num_cols = [p for p in config.predictors if p not in cat_cols]
    roles = _numeric_roles(config, num_cols)
    arrays = _numeric_arrays(df, roles)
    df, arrays, n_dropped = _drop_missing(config, df, arrays, roles, cat_cols, what)
    y, w, offset, expo, issues = _target_and_weights(config, arrays)
    size = w * (expo if expo is not None else 1.0)
    X, refs, cat_issues = _predictors(config, df, arrays, num_cols, size, references, levels)
    issues += cat_issues
    if issues:
        raise DataError(issues)
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
            issues.append(
                Issue(
                    role,
                    f"column {col!r} must be numeric; got {s.dtype} values such as {sample}{hint}",
                    col,
                )
            )
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
