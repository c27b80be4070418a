"""The fitted terms of a GLM: each term type's fitted state and its transform from a raw data
column to design columns (numpy and pandas only).

The fit (through :func:`smglm.glm.engines.glum.design_matrix`) and the portable scorer
(:class:`smglm.glm.model.PortableModel`) use the same functions here, so scoring reproduces the
fitted predictions to rounding.

Term types (``type`` in ``model.json``):

- ``numeric``: ``coefficient * x``.
- ``categorical``: a coefficient per level (the reference's is 0); raw values become levels as
  :func:`level_strings` writes them, then merged by ``groups``; missing values become the
  level ``(missing)`` under ``missing: level``. An unseen level scores as the reference.
- ``bands``: ``x`` cut at ``cuts`` into bands ``[lower, upper)`` (``np.searchsorted(cuts, x,
  side="right")``), each band a level (named by :func:`smglm.config.terms.band_labels`).
- ``spline``: ``kind: natural`` is R's ``ns()`` basis exactly (linear beyond the boundary
  knots); ``kind: monotone`` is a cubic B-spline basis summed cumulatively, so that
  coefficients of one sign give a monotone curve (values beyond the boundary are clamped).
  Both are 0 at the lower boundary knot.
- ``interaction``: the products of two main terms' columns (a level term enters as the
  indicators of its levels, the reference's being 0). A monotone spline's interaction columns
  are not sign-constrained: the main curve is monotone, the curve of each level need not be.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from smglm.config.terms import MISSING_LEVEL, band_labels
from smglm.errors import ModelError

#: A decimal number written as text (CSV): what :func:`numeric_values` reads as a number
#: even beyond float range.
_DECIMAL = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")

__all__ = [
    "MISSING_LEVEL",
    "BandsTerm",
    "CategoricalTerm",
    "InteractionTerm",
    "LevelTerm",
    "MainTerm",
    "NumericTerm",
    "SplineTerm",
    "Term",
    "bspline_basis",
    "level_strings",
    "monotone_basis",
    "natural_basis",
    "numeric_values",
    "quantile_knots",
    "term_from_dict",
]


# -- raw values ---------------------------------------------------------------------------------
def level_strings(col: pd.Series) -> np.ndarray:
    """The values of a column as level strings (None where missing), the same way for
    training and scoring: integer-valued floats print as integers ('3', not '3.0')."""
    values = col.to_numpy()
    if values.dtype.kind in "iub":
        return values.astype(str).astype(object)
    if values.dtype.kind == "f":
        out = np.empty(values.size, dtype=object)
        finite = np.isfinite(values)
        ints = finite & (values == np.round(values))
        out[ints] = values[ints].astype(np.int64).astype(str)
        other = finite & ~ints
        out[other] = values[other].astype(str)
        out[~finite] = None
        return out
    missing = pd.isna(values)
    out = np.array(
        [None if m else str(v) for v, m in zip(values, missing, strict=True)], dtype=object
    )
    return out


def _factorized_strings(col: pd.Series) -> tuple[np.ndarray, list[str | None]]:
    """``codes`` (-1 where missing) and the distinct values as level strings, such that value
    ``i`` of ``col`` is ``uniques[codes[i]]``. Categoricals reuse their codes; other columns are
    factorized first, so the per-value Python work is per distinct value."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = col.cat.categories
        uniques = list(level_strings(pd.Series(np.asarray(cats))))
        return col.cat.codes.to_numpy().astype(np.int64), uniques
    codes, uniq = pd.factorize(col, use_na_sentinel=True)
    uniques = list(level_strings(pd.Series(np.asarray(uniq, dtype=object))))
    return np.asarray(codes, dtype=np.int64), uniques


def _is_decimal(value: object) -> bool:
    return isinstance(value, str) and _DECIMAL.fullmatch(value) is not None


def numeric_values(col: pd.Series, name: str, *, allow_missing: bool = False) -> np.ndarray:
    """A column as floats; a :class:`~smglm.errors.ModelError` naming the column for text or
    (unless ``allow_missing``, where they are NaN) missing or infinite values."""
    if pd.api.types.is_bool_dtype(col.dtype):
        return col.to_numpy(dtype=float)
    if not pd.api.types.is_numeric_dtype(col.dtype):
        converted = pd.to_numeric(col, errors="coerce")
        bad = converted.isna() & col.notna()
        if bad.any():  # pandas 2 leaves a number beyond float range ('1e400') as text: infinite
            big = col[bad].map(lambda v: float(v) if _is_decimal(v) else np.nan)
            converted = converted.where(~bad, big)
            bad = converted.isna() & col.notna()
        if bad.any():
            example = col[bad].iloc[0]
            raise ModelError(f"column {name!r} must be numeric; got values such as {example!r}")
        col = converted
    try:
        values = col.to_numpy(dtype=float, na_value=np.nan)
    except (OverflowError, TypeError, ValueError):  # e.g. an integer beyond float range
        raise ModelError(
            f"column {name!r} must hold finite numbers; got values out of range"
        ) from None
    if not allow_missing and not np.isfinite(values).all():
        k = int((~np.isfinite(values)).sum())
        raise ModelError(f"column {name!r} has {k} missing or infinite value(s); need numbers")
    return values


# -- B-splines ----------------------------------------------------------------------------------
def bspline_basis(x: np.ndarray, t: np.ndarray, degree: int = 3, deriv: int = 0) -> np.ndarray:
    """The B-spline basis of ``degree`` on the knot vector ``t`` (or its ``deriv``-th
    derivative) at ``x``: shape ``(len(x), len(t) - degree - 1)``, by Cox-de Boor's recursion.

    ``x`` must lie in ``[t[0], t[-1]]``; at a knot the right-hand polynomial is used, at the
    last knot the left-hand one (as R's ``splineDesign``)."""
    x = np.asarray(x, dtype=float)
    t = np.asarray(t, dtype=float)
    n = len(t) - degree - 1
    if deriv > 0:
        if degree == 0:
            return np.zeros((x.size, n))
        lower = bspline_basis(x, t, degree - 1, deriv - 1)  # len(t) - degree columns
        out = np.zeros((x.size, n))
        for j in range(n):
            d1 = t[j + degree] - t[j]
            d2 = t[j + degree + 1] - t[j + 1]
            if d1 > 0:
                out[:, j] += degree * lower[:, j] / d1
            if d2 > 0:
                out[:, j] -= degree * lower[:, j + 1] / d2
        return out
    # the knot interval of each x: the last non-empty one at the right end
    i_min = int(np.searchsorted(t, t[0], side="right")) - 1
    i_max = int(np.searchsorted(t, t[-1], side="left")) - 1
    i = np.clip(np.searchsorted(t, x, side="right") - 1, i_min, i_max)
    m = x.size
    values = np.zeros((m, degree + 1))
    values[:, 0] = 1.0
    left = np.zeros((m, degree + 1))
    right = np.zeros((m, degree + 1))
    for d in range(1, degree + 1):
        left[:, d] = x - t[i + 1 - d]
        right[:, d] = t[i + d] - x
        saved = np.zeros(m)
        for r in range(d):
            denom = t[i + r + 1] - t[i + 1 - d + r]  # right[r + 1] + left[d - r]
            with np.errstate(divide="ignore", invalid="ignore"):
                temp = values[:, r] / denom
            if not (denom > 0).all():
                temp[denom <= 0] = 0.0
            values[:, r] = saved + right[:, r + 1] * temp
            saved = left[:, d - r] * temp
        values[:, d] = saved
    out = np.zeros((m, n))
    first = i - degree  # the column of each row's first non-zero function
    if m and first.min() >= 0 and first.max() + degree < n:  # boundary knots repeated: always
        flat = out.reshape(-1)
        start = np.arange(m) * n + first
        for r in range(degree + 1):
            flat[start + r] = values[:, r]
        return out
    rows = np.arange(m)
    for r in range(degree + 1):
        cols = first + r
        ok = (cols >= 0) & (cols < n)
        out[rows[ok], cols[ok]] = values[ok, r]
    return out


def _full_knots(knots: list[float], boundary: tuple[float, float]) -> np.ndarray:
    """R's ``Aknots``: the boundary knots four times each around the interior knots."""
    lo, hi = boundary
    return np.array([lo] * 4 + list(knots) + [hi] * 4, dtype=float)


def _householder_qt(a: np.ndarray) -> np.ndarray:
    """``Q'`` of the QR decomposition of ``a`` (p x k, full column rank) by Householder
    reflections as LINPACK's ``dqrdc2`` (R's ``qr``) computes them: ``qr.qty(qr(a), I)``."""
    a = np.array(a, dtype=float)
    p, k = a.shape
    qt = np.eye(p)
    for col in range(k):
        v = a[col:, col].copy()
        norm = float(np.sqrt(v @ v))
        if norm == 0.0:
            continue
        if v[0] != 0.0:
            norm = float(np.copysign(norm, v[0]))
        v /= norm
        v[0] += 1.0
        # apply H = I - v v' / v[0] to the remaining columns of a and to Q'
        for target in (a[col:, col + 1 :], qt[col:, :]):
            target -= np.outer(v, (v @ target) / v[0])
    return qt


def natural_basis(x: np.ndarray, knots: list[float], boundary: tuple[float, float]) -> np.ndarray:
    """R's ``ns(x, knots = knots, Boundary.knots = boundary)`` (no intercept): the cubic
    B-spline basis projected by QR on the splines whose second derivative is 0 at both boundary
    knots; linear beyond them. Shape ``(len(x), len(knots) + 1)``."""
    x = np.asarray(x, dtype=float)
    lo, hi = boundary
    t = _full_knots(knots, boundary)
    basis = np.empty((x.size, len(t) - 4))
    below, above = x < lo, x > hi
    inside = ~(below | above)
    if inside.all():
        basis = bspline_basis(x, t)
    else:
        basis[inside] = bspline_basis(x[inside], t)
        for mask, pivot in ((below, lo), (above, hi)):
            if mask.any():
                at = np.array([pivot])
                value, slope = bspline_basis(at, t)[0], bspline_basis(at, t, deriv=1)[0]
                basis[mask] = value[None, :] + (x[mask] - pivot)[:, None] * slope[None, :]
    const = bspline_basis(np.array([lo, hi]), t, deriv=2)
    qt = _householder_qt(const[:, 1:].T)
    return basis[:, 1:] @ qt[2:, :].T


def monotone_basis(x: np.ndarray, knots: list[float], boundary: tuple[float, float]) -> np.ndarray:
    """The cubic B-spline basis with ``knots`` inside ``boundary``, summed from the right
    (column j is the sum of B-splines j..end) without the constant first sum: each column is
    non-decreasing in x, so coefficients >= 0 give an increasing curve (<= 0 a decreasing one).
    Values beyond the boundary are clamped to it. Shape ``(len(x), len(knots) + 3)``."""
    lo, hi = boundary
    xc = np.clip(np.asarray(x, dtype=float), lo, hi)
    b = bspline_basis(xc, _full_knots(knots, boundary))
    return np.cumsum(b[:, ::-1], axis=1)[:, ::-1][:, 1:]


def quantile_knots(x: np.ndarray, n_interior: int) -> list[float]:
    """R's ``quantile(x, seq(0, 1, length = n + 2)[-c(1, n + 2)])`` (type 7): ``n_interior``
    knots at evenly spaced quantiles."""
    if n_interior <= 0:
        return []
    x = np.asarray(x, dtype=float)
    probs = np.arange(n_interior + 2)[1:-1] * (1.0 / (n_interior + 1))  # R's seq.int(0, 1, ...)
    # R's quantile.default, type 7, as written there (1-based index, (1 - h) a + h b)
    index = 1 + (x.size - 1) * probs
    lo = np.floor(index).astype(np.int64)
    hi = np.ceil(index).astype(np.int64)
    xs = np.partition(x, np.unique(np.concatenate([lo, hi])) - 1)
    qs = xs[lo - 1]
    h = index - lo
    between = (index > lo) & (xs[hi - 1] != qs)
    qs = np.where(between, (1 - h) * qs + h * xs[hi - 1], qs)
    return [float(q) for q in qs]


# -- the terms ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class NumericTerm:
    """A numeric predictor: ``coefficient * x``."""

    name: str
    coefficient: float = 0.0
    fixed: bool = False
    type: ClassVar[str] = "numeric"

    @property
    def slots(self) -> list[str]:
        """The names of the term's columns in an interaction (all of them estimated)."""
        return [self.name]

    @property
    def columns(self) -> list[str]:
        """The coefficient names of the term."""
        return [self.name]

    def encode(self, col: pd.Series) -> np.ndarray:
        """The raw column as floats."""
        return numeric_values(col, self.name)

    def dense(self, encoded: np.ndarray) -> np.ndarray:
        """The term's columns, ``(n, 1)``."""
        return np.asarray(encoded, dtype=float)[:, None]

    def effect(self, encoded: np.ndarray) -> np.ndarray:
        """The contribution to the linear predictor."""
        return self.coefficient * np.asarray(encoded, dtype=float)

    def coefficient_vector(self) -> np.ndarray:
        return np.array([self.coefficient])

    def with_coefficients(self, values: np.ndarray) -> NumericTerm:
        return replace(self, coefficient=float(values[0]))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": "numeric"}
        out["coefficient"] = self.coefficient
        if self.fixed:
            out["fixed"] = True
        return out


@dataclass(frozen=True)
class _Levels:
    """What categoricals and bands share: levels (the reference's coefficient is 0, unless the
    term is fixed), groups of raw levels and the missing level."""

    name: str
    levels: list[str]
    reference: str
    coefficients: list[float]
    groups: dict[str, list[str]] | None = field(default=None, kw_only=True)
    missing: str | None = field(default=None, kw_only=True)
    fixed: bool = field(default=False, kw_only=True)

    @property
    def reference_index(self) -> int:
        return self.levels.index(self.reference)

    @property
    def slots(self) -> list[str]:
        """The names of the levels' indicator columns (the reference's included)."""
        return [f"{self.name}[{lv}]" for lv in self.levels]

    @property
    def columns(self) -> list[str]:
        """The coefficient names: every level but the reference (every level when fixed)."""
        return [s for i, s in enumerate(self.slots) if self.fixed or i != self.reference_index]

    def level_of(self, label: str | None) -> str | None:
        """A raw level (as :func:`level_strings` writes it; None when missing) as a level of
        the term: missing -> ``(missing)`` under ``missing: level``, a group's member -> the
        group."""
        if label is None:
            return MISSING_LEVEL if self.missing == "level" else None
        for group, members in (self.groups or {}).items():
            if label in members:
                return group
        return label

    def _codes_of_labels(self, codes: np.ndarray, labels: list[str | None]) -> np.ndarray:
        lookup = {lv: i for i, lv in enumerate(self.levels)}
        mapping = np.array(
            [lookup.get(self.level_of(lb), -1) for lb in labels]  # type: ignore[arg-type]
            + [lookup.get(self.level_of(None), -1)],  # type: ignore[arg-type]
            dtype=np.int64,
        )
        return mapping[np.where(codes < 0, len(labels), codes)]

    def codes_of_levels(self, col: pd.Series) -> np.ndarray:
        """Each value's position in ``levels`` (raw levels, group names or ``(missing)``);
        -1 when unseen (or missing without a missing level)."""
        codes, labels = _factorized_strings(col)
        return self._codes_of_labels(codes, labels)

    def dense(self, encoded: np.ndarray) -> np.ndarray:
        """The indicator columns of every level, ``(n, n_levels)`` (unseen: none)."""
        out = np.zeros((encoded.size, len(self.levels)))
        ok = encoded >= 0
        out[np.arange(encoded.size)[ok], encoded[ok]] = 1.0
        return out

    def effect(self, encoded: np.ndarray) -> np.ndarray:
        """The contribution to the linear predictor; unseen levels score as the reference."""
        coefs = np.asarray(self.coefficients, dtype=float)
        return coefs[np.where(encoded < 0, self.reference_index, encoded)]

    def coefficient_vector(self) -> np.ndarray:
        keep = [i for i in range(len(self.levels)) if self.fixed or i != self.reference_index]
        return np.asarray(self.coefficients, dtype=float)[keep]

    def with_coefficients(self, values: np.ndarray) -> Any:
        coefs = [0.0] * len(self.levels)
        keep = [i for i in range(len(self.levels)) if self.fixed or i != self.reference_index]
        for i, v in zip(keep, values, strict=True):
            coefs[i] = float(v)
        return replace(self, coefficients=coefs)

    def _common_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "levels": list(self.levels),
            "reference": self.reference,
            "coefficients": list(self.coefficients),
        }
        if self.groups:
            out["groups"] = {k: list(v) for k, v in self.groups.items()}
        if self.missing:
            out["missing"] = self.missing
        if self.fixed:
            out["fixed"] = True
        return out


@dataclass(frozen=True)
class CategoricalTerm(_Levels):
    """A categorical predictor: a coefficient per level, the reference's 0."""

    type: ClassVar[str] = "categorical"

    def encode(self, col: pd.Series) -> np.ndarray:
        """Level codes (positions in ``levels``; -1 unseen)."""
        return self.codes_of_levels(col)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": "categorical", **self._common_dict()}


@dataclass(frozen=True)
class BandsTerm(_Levels):
    """A numeric predictor cut into bands ``[lower, upper)`` at ``cuts``; each band (or group
    of bands) is a level."""

    cuts: list[float] = field(default_factory=list, kw_only=True)
    type: ClassVar[str] = "bands"

    @property
    def band_labels(self) -> list[str]:
        return band_labels(self.cuts)

    def bands_of(self, x: np.ndarray) -> np.ndarray:
        """Each value's band index (0 .. len(cuts)); -1 where missing."""
        idx = np.searchsorted(np.asarray(self.cuts, dtype=float), x, side="right")
        return np.where(np.isnan(x), -1, idx)

    def encode(self, col: pd.Series) -> np.ndarray:
        """Level codes of raw numbers (or of band labels: a column of text or categories
        already cut, as prepared data holds); -1 unseen or missing without a missing level."""
        if _holds_text(col):
            return self.codes_of_levels(col)
        x = numeric_values(col, self.name, allow_missing=True)
        if self.missing != "level" and np.isnan(x).any():
            numeric_values(col, self.name)  # the error, naming the column
        return self._codes_of_labels(self.bands_of(x), list(self.band_labels))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": "bands",
            "cuts": [float(c) for c in self.cuts],
            **self._common_dict(),
        }


def _holds_text(col: pd.Series) -> bool:
    dt = col.dtype
    if isinstance(dt, pd.CategoricalDtype):
        return not pd.api.types.is_numeric_dtype(dt.categories.dtype)
    if pd.api.types.is_string_dtype(dt) and not pd.api.types.is_object_dtype(dt):
        return True
    if pd.api.types.is_object_dtype(dt):
        first = col.dropna()
        return bool(len(first)) and isinstance(first.iloc[0], str) and "[" in first.iloc[0]
    return False


@dataclass(frozen=True)
class SplineTerm:
    """A smooth curve in a numeric predictor: ``basis(x) @ coefficients``.

    ``monotone`` None is a natural cubic spline (R's ``ns``; linear beyond ``boundary``);
    ``increasing``/``decreasing`` the cumulative cubic B-spline basis, fitted with
    coefficients >= 0 / <= 0 (clamped beyond ``boundary``)."""

    name: str
    knots: list[float]
    boundary: tuple[float, float]
    monotone: str | None = None
    coefficients: list[float] = field(default_factory=list)
    fixed: bool = False
    type: ClassVar[str] = "spline"

    def __post_init__(self) -> None:
        if not self.coefficients:  # not fitted yet
            object.__setattr__(self, "coefficients", [0.0] * self.n_columns)

    @property
    def kind(self) -> str:
        return "natural" if self.monotone is None else "monotone"

    @property
    def n_columns(self) -> int:
        return len(self.knots) + (1 if self.monotone is None else 3)

    @property
    def slots(self) -> list[str]:
        return [f"{self.name}[s{k + 1}]" for k in range(self.n_columns)]

    @property
    def columns(self) -> list[str]:
        return self.slots

    def basis(self, x: np.ndarray) -> np.ndarray:
        """The basis columns at ``x``, ``(n, n_columns)``."""
        fn = natural_basis if self.monotone is None else monotone_basis
        return fn(np.asarray(x, dtype=float), list(self.knots), self.boundary)

    def encode(self, col: pd.Series) -> np.ndarray:
        """The basis columns of the raw column."""
        return self.basis(numeric_values(col, self.name))

    def dense(self, encoded: np.ndarray) -> np.ndarray:
        return encoded

    def effect(self, encoded: np.ndarray) -> np.ndarray:
        return encoded @ np.asarray(self.coefficients, dtype=float)

    def coefficient_vector(self) -> np.ndarray:
        return np.asarray(self.coefficients, dtype=float)

    def with_coefficients(self, values: np.ndarray) -> SplineTerm:
        return replace(self, coefficients=[float(v) for v in values])

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": "spline",
            "kind": self.kind,
            "knots": [float(k) for k in self.knots],
            "boundary": [float(self.boundary[0]), float(self.boundary[1])],
            "monotone": self.monotone,
            "coefficients": list(self.coefficients),
        }


MainTerm = NumericTerm | CategoricalTerm | BandsTerm | SplineTerm
LevelTerm = CategoricalTerm | BandsTerm


def _estimated_slots(term: MainTerm) -> list[int]:
    """The slots of a term that carry an interaction column (a level term's reference none)."""
    if isinstance(term, _Levels):
        return [i for i in range(len(term.levels)) if i != term.reference_index]
    return list(range(len(term.slots)))


@dataclass(frozen=True)
class InteractionTerm:
    """The products of two main terms' columns. ``coefficients[i][j]`` multiplies slot ``i``
    of ``a`` and slot ``j`` of ``b`` (a level term's slots are its levels, the reference's row
    or column 0; a numeric's the value; a spline's its basis columns)."""

    a: MainTerm
    b: MainTerm
    coefficients: list[list[float]] = field(default_factory=list)
    type: ClassVar[str] = "interaction"

    def __post_init__(self) -> None:
        if not self.coefficients:
            shape = (len(self.a.slots), len(self.b.slots))
            object.__setattr__(self, "coefficients", np.zeros(shape).tolist())

    @property
    def name(self) -> str:
        return f"{self.a.name}:{self.b.name}"

    @property
    def terms(self) -> tuple[str, str]:
        return (self.a.name, self.b.name)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """The (slot of a, slot of b) of each column, a's slots outermost."""
        return list(itertools.product(_estimated_slots(self.a), _estimated_slots(self.b)))

    @property
    def columns(self) -> list[str]:
        sa, sb = self.a.slots, self.b.slots
        return [f"{sa[i]}:{sb[j]}" for i, j in self.pairs]

    def effect(self, enc_a: np.ndarray, enc_b: np.ndarray) -> np.ndarray:
        """The contribution to the linear predictor, from both parts' encoded values (unseen
        levels contribute nothing, as the reference)."""
        c = np.asarray(self.coefficients, dtype=float)
        a_levels, b_levels = isinstance(self.a, _Levels), isinstance(self.b, _Levels)
        if a_levels and b_levels:
            ok = (enc_a >= 0) & (enc_b >= 0)
            return np.where(ok, c[np.maximum(enc_a, 0), np.maximum(enc_b, 0)], 0.0)
        if a_levels:
            rows = c[np.maximum(enc_a, 0)] * (enc_a >= 0)[:, None]
            return np.einsum("ij,ij->i", self.b.dense(enc_b), rows)
        if b_levels:
            cols = c.T[np.maximum(enc_b, 0)] * (enc_b >= 0)[:, None]
            return np.einsum("ij,ij->i", self.a.dense(enc_a), cols)
        return np.einsum("ij,jk,ik->i", self.a.dense(enc_a), c, self.b.dense(enc_b))

    def coefficient_vector(self) -> np.ndarray:
        c = np.asarray(self.coefficients, dtype=float)
        return np.array([c[i, j] for i, j in self.pairs])

    def with_coefficients(self, values: np.ndarray) -> InteractionTerm:
        c = np.zeros((len(self.a.slots), len(self.b.slots)))
        for (i, j), v in zip(self.pairs, values, strict=True):
            c[i, j] = v
        return replace(self, coefficients=c.tolist())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": "interaction",
            "terms": [self.a.name, self.b.name],
            "coefficients": [list(map(float, row)) for row in self.coefficients],
        }


Term = MainTerm | InteractionTerm


def term_from_dict(d: dict[str, Any], main: dict[str, MainTerm]) -> Term:
    """A term from its ``model.json`` entry (``main``: the main terms read so far, by name,
    which an interaction reuses). Raises KeyError/TypeError/ValueError/ModelError when
    malformed."""
    kind = d["type"]
    name = str(d["name"])
    fixed = bool(d.get("fixed", False))
    if kind == "numeric":
        return NumericTerm(name, float(d["coefficient"]), fixed=fixed)
    if kind in ("categorical", "bands"):
        levels = [str(v) for v in d["levels"]]
        coefs = [float(c) for c in d["coefficients"]]
        reference = str(d["reference"])
        if len(levels) != len(coefs) or reference not in levels:
            raise ModelError(f"term {name!r}: levels and coefficients disagree")
        groups = d.get("groups")
        extra: dict[str, Any] = {
            "groups": {str(k): [str(m) for m in v] for k, v in groups.items()} if groups else None,
            "missing": d.get("missing"),
            "fixed": fixed,
        }
        if kind == "categorical":
            return CategoricalTerm(name, levels, reference, coefs, **extra)
        cuts = [float(c) for c in d["cuts"]]
        return BandsTerm(name, levels, reference, coefs, cuts=cuts, **extra)
    if kind == "spline":
        lo, hi = (float(b) for b in d["boundary"])
        monotone = d.get("monotone")
        if monotone not in (None, "increasing", "decreasing"):
            raise ModelError(f"term {name!r}: monotone must be increasing, decreasing or null")
        knots = [float(k) for k in d["knots"]]
        coefs = [float(c) for c in d["coefficients"]]
        n_columns = len(knots) + (1 if monotone is None else 3)
        if len(coefs) != n_columns:
            raise ModelError(
                f"term {name!r}: {len(coefs)} coefficients for {n_columns} basis columns"
            )
        term = SplineTerm(name, knots, (lo, hi), monotone, coefs)
        return term
    if kind == "interaction":
        a, b = (str(n) for n in d["terms"])
        missing = [n for n in (a, b) if n not in main]
        if missing:
            raise ModelError(f"interaction {name!r} names {missing}, which are not main terms")
        inter = InteractionTerm(
            main[a], main[b], [[float(v) for v in row] for row in d["coefficients"]]
        )
        shape = np.asarray(inter.coefficients, dtype=float).shape
        if shape != (len(inter.a.slots), len(inter.b.slots)):
            raise ModelError(f"interaction {name!r}: coefficients of shape {shape}")
        return inter
    raise ModelError(f"term {d.get('name')!r} has unknown type {kind!r}")
