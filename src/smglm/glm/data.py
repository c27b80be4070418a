"""Checking data against a GLMConfig (reading data files is :mod:`smglm.glm.tables`).

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
from smglm.glm.model import level_strings
from smglm.glm.tables import DATA_SUFFIXES, SOURCE_COLUMNS, _source_columns, read_table

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DATA_SUFFIXES",
    "SOURCE_COLUMNS",
    "Prepared",
    "categorical_columns",
    "prepare",
    "read_table",
]

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
    """
    issues: list[Issue] = []
    cols = _source_columns(df)
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
    if len(df) == 0:
        raise DataError([Issue(what, f"the {what} has no rows; need at least one", 0)])

    cat_cols = categorical_columns(config, df)
    num_cols = [p for p in config.predictors if p not in cat_cols]

    # --- numeric arrays, each checked for type, then for missing/infinite values -------
    arrays: dict[str, np.ndarray] = {}
    roles = {config.target: "target"}
    roles.update({c: "predictors" for c in num_cols})
    for role in ("weights", "offset", "exposure"):
        col = getattr(config, role)
        if col:
            roles[col] = role
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
    n_dropped = 0
    if bad.any():
        if config.missing == "error":
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
            stacklevel=2,
        )
        if len(df) == 0:
            raise DataError([Issue(what, f"no rows left after dropping {n_dropped}", 0)])

    y = arrays[config.target]
    w = arrays[config.weights] if config.weights else np.ones_like(y)
    expo = arrays[config.exposure] if config.exposure else None
    offset = arrays[config.offset] if config.offset else None
    issues += _check_target(config, y, w)
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

    # --- categoricals: string levels, reference first -----------------------------------
    X = pd.DataFrame(index=df.index)
    refs: dict[str, str] = {}
    size = w * (expo if expo is not None else 1.0)
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


def _cols_hint(col: str, cols: list[str]) -> str:
    hint = did_you_mean(col, [str(c) for c in cols])
    if hint:
        return f";{hint}"
    shown = [str(c) for c in cols[:12]]
    more = f" and {len(cols) - 12} more" if len(cols) > 12 else ""
    return f"; its columns are {shown}{more}"


def _check_target(config: GLMConfig, y: np.ndarray, w: np.ndarray) -> list[Issue]:
    fam, col = config.family, config.target
    used = w > 0
    yy = y[used] if used.any() else y
    if fam == "binomial":
        if ((yy < 0) | (yy > 1)).any():
            return [
                Issue(
                    "target",
                    f"column {col!r} has values outside [0, 1] (min {yy.min():g}, max "
                    f"{yy.max():g}); family 'binomial' needs 0/1 outcomes or proportions in "
                    "[0, 1] with the number of trials as weights",
                    col,
                )
            ]
        frac = (yy != 0) & (yy != 1)
        if frac.any() and not config.weights:
            return [
                Issue(
                    "target",
                    f"column {col!r} holds proportions (e.g. {yy[frac][0]:g}) but no weights "
                    "were given; family 'binomial' needs the number of trials as weights",
                    col,
                )
            ]
    elif fam in ("poisson", "tweedie", "negative_binomial"):
        if (yy < 0).any():
            return [
                Issue(
                    "target",
                    f"column {col!r} has {int((yy < 0).sum())} negative value(s) (min "
                    f"{yy.min():g}); family {fam!r} needs a target >= 0",
                    col,
                )
            ]
    elif fam in ("gamma", "inverse_gaussian") and (yy <= 0).any():
        return [
            Issue(
                "target",
                f"column {col!r} has {int((yy <= 0).sum())} value(s) <= 0 (min {yy.min():g}); "
                f"family {fam!r} needs a target > 0 (drop the zero rows, or use tweedie)",
                col,
            )
        ]
    return []
