"""How predictors enter the model: splines, bands, level groups, base levels, missing levels,
interactions, fixed terms, and the penalty search's cross-validation.

These are parts of :class:`smglm.config.GLMConfig` (``terms``, ``interactions``, ``fixed``,
``penalty.search``)::

    terms:
      driver_age: {spline: {df: 5}}                  # natural cubic spline, knots at quantiles
      vehicle_age: {spline: {df: 4, monotone: decreasing}}
      bonus_malus: {bands: [60, 80, 100, 125]}       # interior cut points: [lower, upper)
      region: {groups: {north: [R01, R02, R03]}, base: R05}
      vehicle_brand: {missing: level}                # missing values as their own level
    interactions: [[area, region], [driver_age, area]]
    fixed: {density_log: 0.09, area: {A: 1.20, B: 1.35}}

Rules that need only the config are checked here; rules that need the data (a spline's df
against the distinct values, bands outside the data, unknown levels) when the data is prepared.
"""

from __future__ import annotations

import itertools
import math
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from smglm.config._base import ConfigModel
from smglm.errors import short_repr

__all__ = [
    "MAX_SPLINE_DF",
    "MISSING_LEVEL",
    "CVSpec",
    "PenaltySearch",
    "Spline",
    "TermSpec",
    "band_labels",
]

#: The most basis columns one spline may have.
MAX_SPLINE_DF = 30
#: The level that missing values become under ``missing: level``.
MISSING_LEVEL = "(missing)"


class Spline(ConfigModel):
    """A smooth curve in one numeric predictor.

    Give ``df`` (the number of basis columns; knots at evenly spaced quantiles of the
    training data, as R's ``ns(x, df)``) or ``knots`` (the interior knots). ``boundary``
    (default: the training data's minimum and maximum) bounds the knots.

    ``kind: natural`` (the default) is a natural cubic spline (R's ``ns``): cubic between
    the knots, linear beyond the boundary knots, so scoring a value outside the training
    range extrapolates the boundary's slope. ``monotone: increasing | decreasing`` fits a
    cubic B-spline whose coefficients are constrained so that the curve is monotone; beyond
    the boundary its value is held at the boundary's (clamped).
    """

    df: Annotated[int, Field(ge=1, le=MAX_SPLINE_DF)] | None = None
    knots: list[float] | None = None
    boundary: tuple[float, float] | None = None
    kind: Literal["natural"] = "natural"
    monotone: Literal["increasing", "decreasing"] | None = None

    @field_validator("knots")
    @classmethod
    def _knots_increasing(cls, knots: list[float] | None) -> list[float] | None:
        if knots is None:
            return None
        if not knots:
            raise ValueError("give at least one interior knot, or df instead of knots; got []")
        if len(knots) > MAX_SPLINE_DF - 1:
            raise ValueError(f"at most {MAX_SPLINE_DF - 1} interior knots; got {len(knots)}")
        if not all(math.isfinite(k) for k in knots):
            raise ValueError(f"knots must be finite numbers; got {short_repr(knots)}")
        if any(b <= a for a, b in itertools.pairwise(knots)):
            raise ValueError(f"knots must be strictly increasing; got {short_repr(knots)}")
        return knots

    @field_validator("boundary")
    @classmethod
    def _boundary_ordered(cls, b: tuple[float, float] | None) -> tuple[float, float] | None:
        if b is not None and not (math.isfinite(b[0]) and math.isfinite(b[1]) and b[0] < b[1]):
            raise ValueError(
                f"boundary must be two finite numbers [low, high], low < high; got {b}"
            )
        return b

    def _cross_field_issues(self) -> list[Any]:
        from smglm.errors import Issue

        issues = []
        if (self.df is None) == (self.knots is None):
            got = (
                f"got df={self.df} and knots={self.knots}" if self.df is not None else "got neither"
            )
            issues.append(
                Issue(
                    "df",
                    "give either df (the number of basis columns) or knots (the interior "
                    f"knots), not {'both' if self.df is not None else 'neither'}; {got}",
                    {"df": self.df, "knots": self.knots},
                )
            )
        if self.monotone is not None and self.df is not None and self.df < 4:
            issues.append(
                Issue(
                    "df",
                    f"a monotone spline has df >= 4 (a cubic B-spline: df - 3 interior knots); "
                    f"got df={self.df}",
                    self.df,
                )
            )
        if self.knots is not None and self.boundary is not None:
            lo, hi = self.boundary
            if not (lo < self.knots[0] and self.knots[-1] < hi):
                issues.append(
                    Issue(
                        "knots",
                        f"interior knots {self.knots} must lie strictly inside the boundary "
                        f"[{lo:g}, {hi:g}]",
                        self.knots,
                    )
                )
        return issues

    @property
    def n_columns(self) -> int | None:
        """The number of basis columns (None until the data gives the knots of ``df``)."""
        if self.df is not None:
            return self.df
        assert self.knots is not None
        return len(self.knots) + 1 if self.monotone is None else len(self.knots) + 3


class TermSpec(ConfigModel):
    """How one predictor enters the model (``terms: {column: {...}}``).

    A numeric predictor may have a ``spline`` or ``bands`` (interior cut points, strictly
    increasing; the bands are ``[lower, upper)`` with open-ended first and last bands, and
    become levels named as R's ``cut(..., right = FALSE)``, e.g. ``[60,80)``, ``[-Inf,60)``,
    ``[125,Inf)``). A categorical predictor (or bands) may have ``groups`` (new level ->
    the levels it merges) and a ``base`` (the reference level; default the level with the
    most exposure, else weight, else rows). ``missing: level`` makes missing values a level
    of their own, ``(missing)``, instead of an error or a dropped row.
    """

    spline: Spline | None = None
    bands: list[float] | None = None
    groups: dict[str, list[str]] | None = None
    base: str | None = None
    missing: Literal["level"] | None = None

    @field_validator("bands")
    @classmethod
    def _bands_increasing(cls, bands: list[float] | None) -> list[float] | None:
        if bands is None:
            return None
        if not bands:
            raise ValueError("give at least one cut point, e.g. [60, 80, 100]; got []")
        if not all(math.isfinite(b) for b in bands):
            raise ValueError(f"cut points must be finite numbers; got {short_repr(bands)}")
        if any(b <= a for a, b in itertools.pairwise(bands)):
            raise ValueError(f"cut points must be strictly increasing; got {short_repr(bands)}")
        return bands

    @field_validator("groups", mode="before")
    @classmethod
    def _group_members_as_text(cls, groups: Any) -> Any:
        if isinstance(groups, dict):  # YAML reads R01 as text but 1 as a number: levels are text
            return {
                str(k): [_level_text(v) for v in members] if isinstance(members, list) else members
                for k, members in groups.items()
            }
        return groups

    @field_validator("base", mode="before")
    @classmethod
    def _base_as_text(cls, base: Any) -> Any:
        return None if base is None else _level_text(base)

    def _cross_field_issues(self) -> list[Any]:
        from smglm.errors import Issue

        issues = []
        if self.spline is not None and self.bands is not None:
            issues.append(
                Issue(
                    "spline",
                    f"a predictor takes a spline or bands, not both; got spline {self.spline!r} "
                    f"and bands {self.bands}",
                    "spline+bands",
                )
            )
        if self.spline is not None:
            for name in ("groups", "base", "missing"):
                if getattr(self, name) is not None:
                    issues.append(
                        Issue(
                            name,
                            f"{name} applies to levels (categoricals and bands), not to a "
                            f"spline; got {name}={getattr(self, name)!r}",
                            getattr(self, name),
                        )
                    )
        if self.groups:
            seen: dict[str, str] = {}
            for group, members in self.groups.items():
                if not members:
                    issues.append(
                        Issue(
                            f"groups.{group}",
                            f"group {group!r} is empty (got []); list its levels",
                            [],
                        )
                    )
                for m in members:
                    if m in seen and seen[m] != group:
                        issues.append(
                            Issue(
                                f"groups.{group}",
                                f"level {m!r} is in two groups ({seen[m]!r} and {group!r}); a "
                                "level belongs to one group",
                                m,
                            )
                        )
                    seen.setdefault(m, group)
        if self.bands is not None:
            issues += self._band_level_issues(band_labels(self.bands))
        return issues

    def _band_level_issues(self, labels: list[str]) -> list[Any]:
        """Groups and base of bands name the bands' labels (and the groups' names)."""
        from smglm.errors import Issue

        issues = []
        for group, members in (self.groups or {}).items():
            bad = [m for m in members if m not in labels]
            if bad:
                issues.append(
                    Issue(
                        f"groups.{group}",
                        f"{bad} are not bands of cut points {self.bands}; the bands are {labels}",
                        bad,
                    )
                )
        if self.base is not None:
            grouped = {m for members in (self.groups or {}).values() for m in members}
            allowed = [lb for lb in labels if lb not in grouped] + list(self.groups or {})
            if self.missing == "level":
                allowed.append(MISSING_LEVEL)
            if self.base not in allowed:
                issues.append(
                    Issue(
                        "base",
                        f"{self.base!r} is not a band (or group) of cut points {self.bands}; "
                        f"choose one of {allowed}",
                        self.base,
                    )
                )
        return issues

    @property
    def kind(self) -> str:
        """``spline``, ``bands`` or ``levels`` (a categorical's options only)."""
        if self.spline is not None:
            return "spline"
        if self.bands is not None:
            return "bands"
        return "levels"


def _level_text(value: Any) -> Any:
    """A level as the data's level strings write it (integers without '.0')."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    return value


def band_labels(cuts: list[float]) -> list[str]:
    """The level names of bands with interior cut points ``cuts``: ``[-Inf,c1)``,
    ``[c1,c2)``, ..., ``[ck,Inf)`` (numbers written as ``%g`` does)."""
    edges = ["-Inf", *(f"{c:g}" for c in cuts), "Inf"]
    return [f"[{a},{b})" for a, b in itertools.pairwise(edges)]


class CVSpec(ConfigModel):
    """The folds of a penalty search.

    ``folds`` random folds (drawn with ``seed``); ``group`` keeps all rows of one value of
    that column (e.g. a policy) in one fold. ``by`` instead makes forward time folds on that
    column: for each of its last ``folds`` values (in sorted order), fit on the rows before
    it and validate on its rows.
    """

    folds: Annotated[int, Field(ge=2, le=50)] = 5
    group: str | None = None
    by: str | None = None
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0

    def _cross_field_issues(self) -> list[Any]:
        from smglm.errors import Issue

        if self.group is not None and self.by is not None:
            return [
                Issue(
                    "",
                    "give group (grouped random folds) or by (forward time folds), not both; "
                    f"got group={self.group!r} and by={self.by!r}",
                    {"group": self.group, "by": self.by},
                )
            ]
        return []


class PenaltySearch(ConfigModel):
    """Choose the penalty by cross-validation, in the same training job (glum's
    ``GeneralizedLinearRegressorCV``): a path of ``n_alphas`` alphas (or the given ``alphas``)
    for each ``l1_ratio``, the deviance of each on the validation folds, the choice (``rule``:
    ``min`` the lowest mean CV deviance, ``1se`` the largest alpha within one standard error
    of it), then a refit on all the training data with the chosen alpha and l1_ratio."""

    l1_ratio: list[Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=lambda: [0.0])
    n_alphas: Annotated[int, Field(ge=2, le=200)] = 20
    alphas: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] | None = None
    min_alpha_ratio: Annotated[float, Field(gt=0, lt=1)] | None = None
    cv: CVSpec = Field(default_factory=CVSpec)
    rule: Literal["min", "1se"] = "min"

    def _cross_field_issues(self) -> list[Any]:
        from smglm.errors import Issue

        if self.alphas is not None and self.min_alpha_ratio is not None:
            return [
                Issue(
                    "min_alpha_ratio",
                    "applies to the path of n_alphas alphas smglm chooses; with the alphas "
                    "given, remove min_alpha_ratio (or remove alphas)",
                    self.min_alpha_ratio,
                )
            ]
        return []

    @field_validator("l1_ratio", mode="before")
    @classmethod
    def _one_ratio(cls, value: Any) -> Any:
        return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @field_validator("l1_ratio")
    @classmethod
    def _ratios(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("give at least one l1_ratio, e.g. [0, 0.5, 1]")
        if len(set(value)) != len(value):
            raise ValueError(f"l1_ratio values must differ; got {value}")
        return value
