"""Checking data against a GLMConfig (reading data files is :mod:`smglm.glm.io`).

:func:`prepare` returns the arrays the engine needs and the fitted terms
(:mod:`smglm.glm.terms`), and collects *every* problem it finds into one
:class:`~smglm.errors.DataError`: missing columns (with a did-you-mean), a target the family
cannot take, negative weights, non-positive exposure, NaN or infinite values, no rows, bounds on
terms that do not exist, and the model language's rules that need the data: a spline's df
against the distinct values, bands that leave a band empty, groups and base levels naming
levels the data does not have, fixed relativities that do not match the levels.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from smglm.config import GLMConfig
from smglm.errors import DataError, Issue, did_you_mean
from smglm.glm.families import family_of
from smglm.glm.io import source_columns
from smglm.glm.terms import (
    MISSING_LEVEL,
    BandsTerm,
    CategoricalTerm,
    InteractionTerm,
    MainTerm,
    NumericTerm,
    SplineTerm,
    quantile_knots,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from smglm.config.terms import TermSpec

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

    ``X`` holds the predictors: numeric columns (and splines' raw columns) as floats,
    categoricals and bands as pandas categoricals with string levels after grouping, the
    reference level first. ``references`` maps each level term (categorical or bands) to its
    reference level. ``terms`` are the fitted main terms (:mod:`smglm.glm.terms`, one per
    predictor, in predictor order; coefficients 0 until fitted, fixed terms with their fixed
    values), ``interactions`` the fitted interaction terms. ``fixed_offset`` is the fixed
    terms' contribution to the linear predictor, already added into ``offset``.
    """

    X: pd.DataFrame
    y: np.ndarray
    weights: np.ndarray
    offset: np.ndarray | None
    exposure: np.ndarray | None
    categorical: list[str]
    references: dict[str, str] = field(default_factory=dict)
    n_dropped: int = 0
    terms: list[MainTerm] = field(default_factory=list)
    interactions: list[InteractionTerm] = field(default_factory=list)
    fixed_offset: np.ndarray | None = None
    base_offset: np.ndarray | None = field(default=None, repr=False)

    @property
    def data_offset(self) -> np.ndarray | None:
        """The offset from the data alone (the offset column, or log(exposure)), without the
        fixed terms'."""
        return self.offset if self.fixed_offset is None else self.base_offset

    @property
    def estimated_terms(self) -> list[MainTerm]:
        """The main terms whose coefficients the fit estimates (not fixed)."""
        return [t for t in self.terms if not t.fixed]

    @property
    def level_columns(self) -> list[str]:
        """The predictors entering as levels: categoricals and bands."""
        return [t.name for t in self.terms if isinstance(t, (CategoricalTerm, BandsTerm))]


def _bad_rows(values: np.ndarray) -> np.ndarray:
    return ~np.isfinite(values)


def prepare(
    config: GLMConfig,
    df: pd.DataFrame,
    *,
    references: dict[str, str] | None = None,
    levels: dict[str, Sequence[str]] | None = None,
    terms: Sequence[Any] | None = None,
    what: str = "data",
    n_obs: int | None = None,
) -> Prepared:
    """Check ``df`` against ``config`` and return the engine's inputs and the fitted terms.

    ``terms`` (the fitted main terms of a model: ``Prepared.terms`` of the training data, or
    ``PortableModel.main_terms``) are reused as they are, e.g. for test data scored with the
    training's encoding: levels, references, band cuts, spline knots. Without them the terms
    are fitted on ``df`` (knots at its quantiles, the reference level the one with the most
    exposure, else weight, else rows, unless ``base`` names it); ``references`` (and
    ``levels``) may still fix the reference level (and level order) of categoricals.

    The checks run in stages, each raising a :class:`~smglm.errors.DataError` with all the
    problems it found before the next one starts: the columns exist and there are rows; the
    numeric columns are numeric; missing or infinite values (an error, or dropped rows with
    ``missing: drop``; a level of its own under a term's ``missing: level``); then the target's
    domain, the weights and the exposure, and the terms (levels, groups, bases, bands, splines,
    fixed terms), reported together. The terms' data rules are checked on training data (no
    ``terms``, ``references`` or ``levels`` given, ``what`` other than ``"test data"``).

    ``n_obs`` is the number of observations when ``df`` holds model points (rating cells,
    :mod:`smglm.glm.points`): the check for more observations than coefficients counts them,
    not the cells.
    """
    _check_columns(config, df, what)
    fitted = {t.name: t for t in terms} if terms is not None else None
    cat_cols = categorical_columns(config, df)
    if fitted is not None:
        cat_cols = [
            p
            for p in config.predictors
            if isinstance(fitted.get(p), CategoricalTerm) or (p not in fitted and p in cat_cols)
        ]
    _check_numbers_as_text(config, df, cat_cols)
    num_cols = [p for p in config.predictors if p not in cat_cols]
    as_level = _missing_as_level(config, fitted)
    roles = _numeric_roles(config, num_cols)
    arrays = _numeric_arrays(df, roles)
    df, arrays, n_dropped = _drop_missing(config, df, arrays, roles, cat_cols, what, as_level)
    y, w, offset, expo, issues = _target_and_weights(config, arrays)
    issues += _magnitudes(arrays, roles)
    size = w * (expo if expo is not None else 1.0)
    training = fitted is None and references is None and levels is None and what != "test data"
    X, main, refs, term_issues = _predictors(
        config, df, arrays, cat_cols, size, references, levels, fitted, training
    )
    issues += term_issues
    if issues:
        raise DataError(issues)
    by_name = {t.name: t for t in main}
    interactions = [
        InteractionTerm(by_name[a], by_name[b])
        for a, b in config.interactions
        if a in by_name and b in by_name
    ]
    fixed_offset = _fixed_offset(X, main)
    base_offset = offset
    if fixed_offset is not None:
        offset = fixed_offset if offset is None else offset + fixed_offset
    if training:
        _check_estimable(config, X, main, interactions, y, w, n_obs)
    return Prepared(
        X=X,
        y=y,
        weights=w,
        offset=offset,
        exposure=expo,
        categorical=cat_cols,
        references=refs,
        n_dropped=n_dropped,
        terms=main,
        interactions=interactions,
        fixed_offset=fixed_offset,
        base_offset=base_offset,
    )


def _missing_as_level(config: GLMConfig, fitted: dict[str, Any] | None) -> set[str]:
    """The predictors whose missing values are a level (``missing: level``)."""
    if fitted is not None:
        return {n for n, t in fitted.items() if getattr(t, "missing", None) == "level"}
    return {c for c in config.predictors if config.term(c).missing == "level"}


def _fixed_offset(X: pd.DataFrame, main: list[MainTerm]) -> np.ndarray | None:
    """The fixed terms' contribution to the linear predictor (None without fixed terms)."""
    out: np.ndarray | None = None
    for t in main:
        if t.fixed:
            contrib = np.asarray(t.effect(t.encode(X[t.name])), dtype=float)
            out = contrib if out is None else out + contrib
    return out


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
    as_level: set[str] | frozenset[str] = frozenset(),
) -> tuple[pd.DataFrame, dict[str, np.ndarray], int]:
    """Rows with a missing or infinite value in a used column: an error (``missing: error``),
    or dropped with a warning (``missing: drop``). Returns the rows kept and how many went.
    Missing values of a predictor with ``missing: level`` (``as_level``) are a level, kept."""
    bad = np.zeros(len(df), dtype=bool)
    bad_by_col: dict[str, np.ndarray] = {}
    for col, values in arrays.items():
        b = (
            np.isinf(values)
            if col in as_level and roles.get(col) == "predictors"
            else _bad_rows(values)
        )
        if b.any():
            bad_by_col[col] = b
            bad |= b
    for col in cat_cols:
        if col in as_level:
            continue
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
    cat_cols: list[str],
    size: np.ndarray,
    references: dict[str, str] | None,
    levels: dict[str, Sequence[str]] | None,
    fitted: dict[str, Any] | None,
    training: bool,
) -> tuple[pd.DataFrame, list[MainTerm], dict[str, str], list[Issue]]:
    """The predictors' frame (numeric columns as arrays, level terms as categoricals with
    string levels, the reference first), the fitted main terms, the references, and the
    problems found (the terms' data rules only count on training data)."""
    issues: list[Issue] = []
    X = pd.DataFrame(index=df.index)
    refs: dict[str, str] = {}
    main: list[MainTerm] = []
    for col in config.predictors:
        spec = config.term(col)
        given: Any = fitted.get(col) if fitted is not None else None
        found: list[Issue] = []
        term: MainTerm | None
        if given is not None:
            term = given
            if isinstance(given, (CategoricalTerm, BandsTerm)):
                X[col] = _given_levels(given, df[col], arrays.get(col))
                refs[col] = given.reference
            else:
                X[col] = arrays[col]
        elif col in cat_cols:
            if spec.kind in ("spline", "bands"):
                found.append(
                    Issue(
                        f"terms.{col}.{spec.kind}",
                        f"{'bands need' if spec.kind == 'bands' else 'a spline needs'} a "
                        f"numeric column; {col!r} holds "
                        f"{_held(df[col])}"
                        f" (convert it with pd.to_numeric(df[{col!r}]), or drop the {spec.kind})",
                        col,
                    )
                )
                term = None
            else:
                level, s, found = _level_term(
                    config, col, spec, df[col], None, size, references, levels
                )
                term = level
                if level is not None:
                    X[col] = s
                    refs[col] = level.reference
        elif spec.kind == "bands":
            level, s, found = _level_term(
                config, col, spec, df[col], arrays[col], size, references, levels
            )
            term = level
            if level is not None:
                X[col] = s
                refs[col] = level.reference
        else:
            X[col] = arrays[col]
            if spec.kind == "spline":
                term, found = _spline_term(col, spec, arrays[col])
            else:
                term, found = _numeric_term(config, col, spec)
        if training:
            issues += found
        if term is not None:
            main.append(term)
        elif not training and col not in X:
            X[col] = arrays[col] if col in arrays else df[col]
    return X, main, refs, issues


def _held(col: pd.Series) -> str:
    return "categories" if isinstance(col.dtype, pd.CategoricalDtype) else "text"


def _given_levels(term: Any, col: pd.Series, x: np.ndarray | None) -> pd.Series:
    """A level term's column of new data as a categorical of the fitted term's levels (in its
    order) followed by the levels it has not seen."""
    if isinstance(term, BandsTerm) and x is not None:
        codes = term.bands_of(x)
        labels: list[str | None] = list(term.band_labels)
    else:
        from smglm.glm.terms import _factorized_strings

        codes, labels = _factorized_strings(col)
    mapped = [term.level_of(lb) for lb in labels] + [term.level_of(None)]
    known = list(term.levels)
    extra = sorted({m for m in mapped if m is not None and m not in known})
    cats = known + extra
    lookup = {lv: i for i, lv in enumerate(cats)}
    mapping = np.array([lookup.get(m, -1) if m is not None else -1 for m in mapped], dtype=np.int64)
    full = mapping[np.where(codes < 0, len(labels), codes)]
    return pd.Series(pd.Categorical.from_codes(full, categories=pd.Index(cats)), index=col.index)


def _numeric_term(
    config: GLMConfig, col: str, spec: TermSpec
) -> tuple[MainTerm | None, list[Issue]]:
    """A numeric predictor's term (fixed when ``fixed`` gives its coefficient)."""
    issues: list[Issue] = []
    for name in ("groups", "base", "missing"):
        if getattr(spec, name) is not None:
            issues.append(
                Issue(
                    f"terms.{col}.{name}",
                    f"{name} applies to levels (categoricals and bands); {col!r} is numeric: "
                    f"give it bands, or list it under categorical",
                    getattr(spec, name),
                )
            )
    value = config.fixed.get(col)
    if isinstance(value, dict):
        issues.append(
            Issue(
                f"fixed.{col}",
                f"{col!r} is numeric, so its fixed term is a coefficient (a number, e.g. "
                f"{col}: 0.1), not relativities by level {_short(value)}; give it bands (or list "
                "it under categorical) to fix relativities",
                value,
            )
        )
        return None, issues
    if value is not None:
        return NumericTerm(col, float(value), fixed=True), issues
    return NumericTerm(col), issues


def _short(value: Any) -> str:
    from smglm.errors import short_repr

    return short_repr(value)


def _level_term(
    config: GLMConfig,
    col: str,
    spec: TermSpec,
    raw: pd.Series | None,
    x: np.ndarray | None,
    size: np.ndarray,
    references: dict[str, str] | None,
    levels: dict[str, Sequence[str]] | None,
) -> tuple[CategoricalTerm | BandsTerm | None, pd.Series | None, list[Issue]]:
    """A categorical's term (``x`` None) or bands' (``x`` the numbers), its column as a
    categorical with the reference first, and the problems found: groups naming unknown
    levels, an unknown base, an empty band, fixed relativities that do not match the levels."""
    from smglm.config.terms import band_labels
    from smglm.glm.terms import _factorized_strings

    issues: list[Issue] = []
    field_ = f"terms.{col}"
    if x is not None:  # bands
        assert spec.bands is not None
        cuts = list(spec.bands)
        labels: list[str | None] = list(band_labels(cuts))
        codes = np.searchsorted(np.asarray(cuts), x, side="right")
        codes = np.where(np.isnan(x), -1, codes)
        index = raw.index if raw is not None else pd.RangeIndex(len(x))
    else:
        assert raw is not None
        try:
            codes, labels = _factorized_strings(raw)
        except ValueError:
            return (
                None,
                None,
                [Issue("categorical", f"column {col!r}: levels collide as strings", col)],
            )
        cuts = []
        index = raw.index
    n_labels = len(labels)
    counts = np.bincount(codes[codes >= 0], minlength=n_labels)
    has_missing = bool((codes < 0).any())
    present = [lb for lb, k in zip(labels, counts, strict=True) if k > 0 and lb is not None]
    if x is not None and len(present) < n_labels:
        empty = [lb for lb, k in zip(labels, counts, strict=True) if k == 0]
        lo, hi = (float(np.nanmin(x)), float(np.nanmax(x))) if np.isfinite(x).any() else (0, 0)
        issues.append(
            Issue(
                f"{field_}.bands",
                f"the band(s) {empty} of {col!r} have no rows (the data runs from {lo:g} to "
                f"{hi:g}); choose cut points inside the data so that every band has rows",
                list(cuts),
            )
        )
    # groups: every member a level of the data; a group's name not another level
    groups = {g: list(m) for g, m in (spec.groups or {}).items()}
    known = set(present) if x is None else {str(lb) for lb in labels}
    for group, members in groups.items():
        for m in members:
            if m not in known:
                shown = sorted(known, key=str)[:20]
                issues.append(
                    Issue(
                        f"{field_}.groups.{group}",
                        f"{m!r} is not a level of {col!r}; its levels are {shown}."
                        f"{did_you_mean(m, [str(k) for k in known])}",
                        m,
                    )
                )
        if group in known and group not in members:
            issues.append(
                Issue(
                    f"{field_}.groups.{group}",
                    f"the group's name {group!r} is also a level of {col!r} outside the group; "
                    "name the group differently, or list the level in it",
                    group,
                )
            )
    member_of = {m: g for g, ms in groups.items() for m in ms}
    missing_level = spec.missing == "level"

    def level_of(label: str | None) -> str | None:
        if label is None:
            return MISSING_LEVEL if missing_level else None
        return member_of.get(label, label)

    mapped = [level_of(lb) for lb in labels]
    # the term's levels: the data's (sorted; bands in their order), grouped, (missing) last
    if x is not None:
        order = list(dict.fromkeys(m for m in mapped if m is not None))
    else:
        order = sorted({m for m, k in zip(mapped, counts, strict=True) if k > 0 and m is not None})
    if missing_level and has_missing:
        order.append(MISSING_LEVEL)
    if levels and col in levels:
        order = [str(lv) for lv in levels[col]]
    if not order:
        return None, None, [*issues, Issue("predictors", f"column {col!r} has no levels", col)]
    lookup = {lv: i for i, lv in enumerate(order)}
    mapping = np.array(
        [lookup.get(m, -1) if m is not None else -1 for m in mapped]
        + [lookup.get(MISSING_LEVEL, -1) if missing_level else -1],
        dtype=np.int64,
    )
    codes = mapping[np.where(codes < 0, n_labels, codes)]
    # the reference: given, the base, else the level with the largest size
    if references and col in references:
        ref = references[col]
    elif spec.base is not None:
        ref = spec.base
        if ref not in lookup:
            issues.append(
                Issue(
                    f"{field_}.base",
                    f"{ref!r} is not a level of {col!r}"
                    f"{' after grouping' if groups else ''}; its levels are {order[:20]}."
                    f"{did_you_mean(ref, order)}",
                    ref,
                )
            )
            ref = order[0]
    else:
        ok = codes >= 0
        totals = np.bincount(codes[ok], weights=size[ok], minlength=len(order))
        ref = order[int(np.argmax(totals))]
    cats = [ref] + [c for c in order if c != ref] if ref in lookup else order
    reorder = np.array([cats.index(c) for c in order] + [-1], dtype=np.int64)
    codes = reorder[np.where(codes < 0, len(order), codes)]
    s = pd.Series(
        pd.Categorical.from_codes(codes, categories=pd.Index(cats)), index=index, name=col
    )
    coefs = [0.0] * len(cats)
    fixed = False
    value = config.fixed.get(col)
    if value is not None:
        f_issues, coefs = _fixed_levels(col, value, cats, x is not None)
        issues += f_issues
        fixed = True
    ref_out = cats[0]
    if x is not None:
        bands = BandsTerm(
            col,
            cats,
            ref_out,
            coefs,
            cuts=cuts,
            groups=groups or None,
            missing=spec.missing,
            fixed=fixed,
        )
        return bands, s, issues
    cat = CategoricalTerm(
        col, cats, ref_out, coefs, groups=groups or None, missing=spec.missing, fixed=fixed
    )
    return cat, s, issues


def _fixed_levels(
    col: str, value: float | dict[str, float], levels: list[str], bands: bool
) -> tuple[list[Issue], list[float]]:
    """A fixed level term's coefficients (log relativities, aligned with ``levels``) and the
    problems: a number instead of relativities, unknown levels, levels without a relativity."""
    field_ = f"fixed.{col}"
    kind = "bands" if bands else "a categorical"
    zeros = [0.0] * len(levels)
    if not isinstance(value, dict):
        return [
            Issue(
                field_,
                f"{col!r} is {kind}, so its fixed term is a relativity per level (e.g. "
                f"{{{levels[0]}: 1.0{', ' + levels[1] + ': 1.2' if len(levels) > 1 else ''}}}), "
                f"not a coefficient ({value}); its levels are {levels[:20]}",
                value,
            )
        ], zeros
    issues: list[Issue] = []
    rel = {str(k): float(v) for k, v in value.items()}
    unknown = [k for k in rel if k not in levels]
    for k in unknown:
        issues.append(
            Issue(
                f"{field_}.{k}",
                f"{k!r} is not a level of {col!r}; its levels are {levels[:20]}."
                f"{did_you_mean(k, levels)}",
                k,
            )
        )
    absent = [lv for lv in levels if lv not in rel]
    if absent:
        issues.append(
            Issue(
                field_,
                f"no relativity for the level(s) {absent[:20]} of {col!r} in the data; give "
                "every level's relativity (1.0 for the base)",
                absent,
            )
        )
    if issues:
        return issues, zeros
    return [], [float(np.log(rel[lv])) for lv in levels]


def _spline_term(col: str, spec: TermSpec, x: np.ndarray) -> tuple[MainTerm | None, list[Issue]]:
    """A spline's fitted state: its knots (given, or for ``df`` at quantiles of ``x`` as R's
    ``ns``; where ties make quantiles coincide, at quantiles of its distinct values) and its
    boundary (given, or the data's range), and the problems: too few distinct values for the
    df, knots outside the data."""
    s = spec.spline
    assert s is not None
    field_ = f"terms.{col}.spline"
    distinct = np.unique(x)
    k = distinct.size
    lo, hi = s.boundary if s.boundary is not None else (float(distinct[0]), float(distinct[-1]))
    monotone = s.monotone
    if s.df is not None:
        df = s.df
        if monotone is not None and df < 4:
            return None, [
                Issue(
                    f"{field_}.df",
                    f"a monotone spline needs df >= 4 (3 basis columns and at least one "
                    f"interior knot); got df {df}",
                    df,
                )
            ]
        if k < df + 1:
            return None, [
                Issue(
                    f"{field_}.df",
                    f"df {df} needs at least {df + 1} distinct values of {col!r}; it has {k}: "
                    f"choose df <= {max(k - 1, 1)}"
                    + (" (and >= 4 for a monotone spline)" if monotone else "")
                    + " or model it with bands or as categorical",
                    df,
                )
            ]
        inside = x[(x >= lo) & (x <= hi)]
        n_interior = df - 1 if monotone is None else df - 3
        knots = quantile_knots(inside, n_interior) if inside.size else [lo] * n_interior
        if inside.size and any(b <= a for a, b in itertools.pairwise([lo, *knots, hi])):
            # ties make quantiles coincide (R's ns would repeat the knots and give a degenerate
            # basis): the quantiles of the distinct values instead
            knots = quantile_knots(np.unique(inside), n_interior)
            log.info(
                "%s: tied values give repeated quantile knots; knots at quantiles of the "
                "distinct values instead: %s",
                col,
                knots,
            )
        if any(b <= a for a, b in itertools.pairwise([lo, *knots, hi])):
            return None, [
                Issue(
                    f"{field_}.df",
                    f"df {df} needs {n_interior} interior knots strictly inside [{lo:g}, {hi:g}];"
                    f" {col!r} has too few distinct values there: choose a smaller df, or give "
                    "knots",
                    df,
                )
            ]
    else:
        assert s.knots is not None
        knots = list(s.knots)
        if not (lo < knots[0] and knots[-1] < hi):
            return None, [
                Issue(
                    f"{field_}.knots",
                    f"interior knots must lie strictly inside the data's range of {col!r} "
                    f"([{lo:g}, {hi:g}]) or the boundary; got {knots}",
                    knots,
                )
            ]
        n_cols = len(knots) + (1 if monotone is None else 3)
        if k < n_cols + 1:
            return None, [
                Issue(
                    f"{field_}.knots",
                    f"{len(knots)} knots make {n_cols} basis columns, which need at least "
                    f"{n_cols + 1} distinct values of {col!r}; it has {k}: give fewer knots",
                    knots,
                )
            ]
    return SplineTerm(col, knots, (float(lo), float(hi)), monotone), []


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


def _check_estimable(
    config: GLMConfig,
    X: pd.DataFrame,
    main: list[MainTerm],
    interactions: list[InteractionTerm],
    y: np.ndarray,
    w: np.ndarray,
    n_rows: int | None = None,
) -> None:
    """Training data on which the model has no finite estimate: a categorical with one level,
    a target with no information for the family (all zero for counts, all 0 or all 1 for
    binomial, constant where the dispersion is estimated), no more rows than coefficients
    (counted per term: a numeric 1, levels all but the reference, a spline its basis columns,
    an interaction the products of its parts'; fixed terms none)."""
    issues: list[Issue] = []
    used = w > 0
    n_obs = int(used.sum()) if n_rows is None else n_rows
    n_params = int(config.fit_intercept)
    n_params += sum(len(t.columns) for t in interactions)
    for term in main:
        if term.fixed:
            continue
        col = term.name
        if not isinstance(term, (CategoricalTerm, BandsTerm)):
            n_params += len(term.columns)
            continue
        n_levels = len(term.levels)
        n_params += max(n_levels - 1, 0)
        if n_levels == 1:
            issues.append(
                Issue(
                    "predictors",
                    f"column {col!r} has a single level ({term.levels[0]!r}), which cannot "
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
                "predictors, non-reference levels, spline and interaction columns); a GLM "
                "needs more rows than "
                "coefficients to estimate them and their standard errors: add rows, drop "
                "predictors or group levels",
                n_obs,
            )
        )
    if issues:
        raise DataError(issues)
