"""GLMConfig: what model to fit. It travels to the container as the ``config`` channel.

Example (YAML)::

    target: claim_count
    predictors: [driver_age, vehicle_group, region]
    exposure: exposure
    family: poisson            # link defaults to log
    penalty: {alpha: 0.0}
    constraints:
      bounds: {driver_age: [null, 0.0]}
    test: {fraction: 0.2, seed: 42}
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from smglm.config._base import ConfigModel
from smglm.config.families import (
    DEFAULT_LINK,
    DEFAULT_THETA,
    DEFAULT_TWEEDIE_POWER,
    FAMILY_LINKS,
    FamilyName,
    LinkName,
)
from smglm.errors import Issue, did_you_mean, short_repr

__all__ = ["SCHEMA_VERSION", "Constraints", "GLMConfig", "Penalty", "TestSplit", "apply_overrides"]

SCHEMA_VERSION = 1

Bound = tuple[float | None, float | None]


class Penalty(ConfigModel):
    """Elastic-net penalty: ``alpha * (l1_ratio * |b|_1 + (1 - l1_ratio) / 2 * |b|_2^2)``.

    The objective is glum's: the mean deviance / 2 plus this penalty; the intercept is never
    penalized. ``alpha = 0`` (the default) is an ordinary, unpenalized GLM.
    """

    alpha: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    l1_ratio: Annotated[float, Field(ge=0, le=1)] = 0.0


class Constraints(ConfigModel):
    """Box constraints on coefficients: ``term -> [lower, upper]``, ``null`` for unbounded.

    A term is a numeric predictor's name, a categorical level ``column[level]``, or a
    categorical column's name (which bounds every non-reference level of it). An infinite
    bound (``-.inf`` in YAML, ``-Infinity`` in JSON, ``-math.inf``) means unbounded and is
    stored as ``null``, so the config reads the same after its JSON upload to the job.
    """

    bounds: dict[str, Bound] = Field(default_factory=dict)

    @field_validator("bounds", mode="before")
    @classmethod
    def _pairs(cls, bounds: Any) -> Any:
        if isinstance(bounds, dict):
            for term, pair in bounds.items():
                if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                    raise ValueError(
                        f"{short_repr(term)}: bounds must be a pair [lower, upper] (null for "
                        f"unbounded); got {short_repr(pair)}"
                    )
        return bounds

    @field_validator("bounds")
    @classmethod
    def _well_formed(cls, bounds: dict[str, Bound]) -> dict[str, Bound]:
        problems = []
        out: dict[str, Bound] = {}
        for term, (lo, hi) in bounds.items():
            given = f"[{_bound_text(lo)}, {_bound_text(hi)}]"
            if any(v is not None and math.isnan(v) for v in (lo, hi)):
                problems.append(f"{term!r}: bounds must be numbers or null, not NaN; got {given}")
            elif lo == math.inf or hi == -math.inf:
                problems.append(
                    f"{term!r}: {given} leaves no value (a lower bound of +inf or an upper "
                    "bound of -inf); use finite numbers, or null for unbounded"
                )
            else:
                lo = None if lo == -math.inf else lo  # unbounded: null, as JSON stores it
                hi = None if hi == math.inf else hi
                if lo is None and hi is None:
                    problems.append(f"{term!r}: {given} bounds nothing; remove it")
                elif lo is not None and hi is not None and lo > hi:
                    problems.append(
                        f"{term!r}: lower {lo} is above upper {hi}; need lower <= upper"
                    )
            out[term] = (lo, hi)
        if problems:
            raise ValueError("; ".join(problems))
        return out


def _bound_text(value: float | None) -> str:
    return "null" if value is None else repr(value)


class TestSplit(ConfigModel):
    """A random train/test split, used when no ``test`` data is given: ``fraction`` of the
    rows (0 < fraction < 1) for testing, drawn with ``seed`` (an integer from 0 to 2**32 - 1)."""

    __test__ = False  # not a pytest test class

    fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_not_bool(cls, seed: Any) -> Any:
        if isinstance(seed, bool):  # YAML's yes/no/on/off: a bool, which int() would take
            raise ValueError(
                f"must be an integer from 0 to {2**32 - 1}; got {seed!r} (bool; YAML reads "
                "yes/no/on/off as true/false)"
            )
        return seed


class GLMConfig(ConfigModel):
    """The model to fit: target, predictors, family, link and the rest.

    Parameters
    ----------
    target
        The response column. Binomial: 0/1, or proportions in [0, 1] with the number of
        trials as ``weights``.
    predictors
        Columns used as predictors. String and category columns are categorical.
    categorical
        Further columns to treat as categorical (e.g. integer-coded regions).
    weights
        Prior weights (R's ``weights``): the variance of row i is ``phi * V(mu_i) / w_i``.
    offset, exposure
        An offset column on the linear-predictor scale, or an exposure column (offset =
        log(exposure), for log-link models). Not both.
    family, link
        The distribution and link; ``link`` defaults to the family's canonical or conventional
        one (log for poisson, gamma, tweedie...). See :data:`smglm.config.FAMILY_LINKS`.
    tweedie_power
        The Tweedie variance power, 1 < p < 2 (default 1.5); only for ``family: tweedie``.
    theta
        The negative binomial's theta (variance ``mu + mu^2 / theta``), fixed (default 1).
    penalty, constraints
        Elastic-net penalty and coefficient bounds. With either active, standard errors
        are those of the unpenalized likelihood at the estimate: indicative, not exact.
    fit_intercept
        Whether to fit an intercept (term ``intercept``).
    test
        A random test split, used when no test data is given.
    missing
        ``error`` (default): NaN or infinite values in a used column are an error;
        ``drop``: such rows are dropped and counted in a warning.
    max_iter, tol
        Solver limits: iterations and the gradient tolerance (1e-8 matches R to about 1e-7).
    """

    schema_version: Literal[1] = 1
    target: str
    predictors: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    weights: str | None = None
    offset: str | None = None
    exposure: str | None = None
    family: FamilyName = "gaussian"
    link: LinkName | None = None
    tweedie_power: float | None = None
    theta: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    penalty: Penalty = Field(default_factory=Penalty)
    constraints: Constraints = Field(default_factory=Constraints)
    fit_intercept: bool = True
    test: TestSplit | None = None
    missing: Literal["error", "drop"] = "error"
    max_iter: Annotated[int, Field(gt=0)] = 100
    tol: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1e-8

    def _cross_field_issues(self) -> list[Issue]:
        issues: list[Issue] = []
        allowed = FAMILY_LINKS[self.family]
        if self.link is not None and self.link not in allowed:
            issues.append(
                Issue(
                    "link",
                    f"{self.link!r} is not a link for family {self.family!r}; "
                    f"choose one of {list(allowed)}",
                    self.link,
                )
            )
        if self.tweedie_power is not None:
            if self.family != "tweedie":
                issues.append(
                    Issue(
                        "tweedie_power",
                        f"is only used with family 'tweedie'; got family {self.family!r}",
                        self.tweedie_power,
                    )
                )
            elif not 1 < self.tweedie_power < 2:
                issues.append(
                    Issue(
                        "tweedie_power",
                        f"must be between 1 and 2 (exclusive); got {self.tweedie_power} "
                        "(use poisson for 1, gamma for 2, inverse_gaussian for 3)",
                        self.tweedie_power,
                    )
                )
        if self.theta is not None and self.family != "negative_binomial":
            issues.append(
                Issue(
                    "theta",
                    f"is only used with family 'negative_binomial'; got family {self.family!r}",
                    self.theta,
                )
            )
        if self.offset and self.exposure:
            issues.append(
                Issue(
                    "exposure",
                    f"give an offset or an exposure, not both; got offset={self.offset!r} "
                    f"and exposure={self.exposure!r}",
                    self.exposure,
                )
            )
        if self.target in self.predictors:
            issues.append(
                Issue(
                    "predictors",
                    f"the target {self.target!r} cannot also be a predictor",
                    self.predictors,
                )
            )
        for role in ("weights", "offset", "exposure"):
            col = getattr(self, role)
            if col is not None and col in self.predictors:
                issues.append(Issue(role, f"{col!r} is also a predictor; use it in one role", col))
            if col is not None and col == self.target:
                issues.append(Issue(role, f"{col!r} is the target; use it in one role", col))
        dupes = sorted(p for p, n in Counter(self.predictors).items() if n > 1)
        if dupes:
            issues.append(Issue("predictors", f"listed more than once: {dupes}", dupes))
        known = set(self.predictors)
        unknown_cat = [c for c in self.categorical if c not in known]
        if unknown_cat:
            issues.append(
                Issue(
                    "categorical",
                    f"{unknown_cat} are not predictors; categorical names a subset of "
                    f"predictors {self.predictors}.{did_you_mean(unknown_cat[0], self.predictors)}",
                    unknown_cat,
                )
            )
        issues += _term_name_issues(self.predictors)
        if not self.predictors and not self.fit_intercept:
            issues.append(
                Issue("predictors", "with fit_intercept false, give at least one predictor", [])
            )
        if "intercept" in self.constraints.bounds:
            issues.append(
                Issue(
                    "constraints.bounds",
                    "'intercept' cannot be bounded (glum bounds coefficients, not the "
                    "intercept); bound predictors' terms instead",
                    "intercept",
                )
            )
        if self.exposure and self.resolved_link != "log":
            issues.append(
                Issue(
                    "exposure",
                    f"exposure means offset = log(exposure), which needs the log link; "
                    f"got link {self.resolved_link!r} (use offset for other links)",
                    self.exposure,
                )
            )
        return issues

    # -- derived ---------------------------------------------------------------------------
    @property
    def resolved_link(self) -> str:
        """The link in use: the one given, or the family's default."""
        return self.link or DEFAULT_LINK[self.family]

    @property
    def resolved_power(self) -> float | None:
        """The Tweedie power in use (None for other families)."""
        if self.family != "tweedie":
            return None
        return DEFAULT_TWEEDIE_POWER if self.tweedie_power is None else self.tweedie_power

    @property
    def resolved_theta(self) -> float | None:
        """The negative binomial theta in use (None for other families)."""
        if self.family != "negative_binomial":
            return None
        return DEFAULT_THETA if self.theta is None else self.theta

    def resolved(self) -> GLMConfig:
        """This config with every default made explicit (link, power, theta)."""
        return self.model_copy(
            update={
                "link": self.resolved_link,
                "tweedie_power": self.resolved_power,
                "theta": self.resolved_theta,
            }
        )

    @property
    def columns(self) -> list[str]:
        """Every column the config uses, target first."""
        cols = [self.target, *self.predictors]
        cols += [c for c in (self.weights, self.offset, self.exposure) if c]
        return cols

    def with_overrides(self, overrides: dict[str, Any]) -> GLMConfig:
        """A copy with fields replaced (validated again); dotted keys reach nested fields."""
        return GLMConfig.from_dict(apply_overrides(self.to_dict(), overrides))


#: The coefficient name of the intercept.
INTERCEPT = "intercept"


def _term_name_issues(predictors: list[str]) -> list[Issue]:
    """Predictor names that would make coefficient names ambiguous: ``intercept`` (the
    intercept's term) and names with brackets (a categorical level's term is
    ``column[level]``, so a column ``area[B]`` could be the level ``B`` of ``area``)."""
    issues = []
    for col in predictors:
        if col.strip().lower() == INTERCEPT:
            issues.append(
                Issue(
                    "predictors",
                    f"column {col!r} has the name of the intercept's coefficient "
                    f"({INTERCEPT!r}); rename the column (e.g. df.rename(columns={{{col!r}: "
                    f"'{col}_col'}}))",
                    col,
                )
            )
        elif "[" in col or "]" in col:
            issues.append(
                Issue(
                    "predictors",
                    f"column {col!r} has a bracket in its name; coefficient names of "
                    "categorical levels are column[level], so it would be ambiguous: rename "
                    "the column without '[' and ']'",
                    col,
                )
            )
    return issues


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``data`` (GLMConfig fields, not yet validated) with ``overrides`` set: a dotted key
    (``test.fraction``) sets a field of a nested mapping. ``data`` itself is not changed."""
    out = dict(data)
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if rest:
            sub = out.get(head)
            out[head] = {**(sub if isinstance(sub, dict) else {}), rest: value}
        else:
            out[head] = value
    return out
