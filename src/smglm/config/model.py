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

from pydantic import Field, field_validator, model_validator

from smglm.config._base import ConfigModel
from smglm.config.families import (
    DEFAULT_LINK,
    DEFAULT_THETA,
    DEFAULT_TWEEDIE_POWER,
    FAMILY_LINKS,
    FamilyName,
    LinkName,
)
from smglm.config.terms import CVSpec, PenaltySearch, Spline, TermSpec
from smglm.errors import ConfigError, Issue, did_you_mean, short_repr

__all__ = [
    "SCHEMA_VERSION",
    "CVSpec",
    "Constraints",
    "GLMConfig",
    "Penalty",
    "PenaltySearch",
    "Spline",
    "TermSpec",
    "TestSplit",
    "apply_overrides",
]

SCHEMA_VERSION = 1

Bound = tuple[float | None, float | None]


class Penalty(ConfigModel):
    """Elastic-net penalty: ``alpha * (l1_ratio * |b|_1 + (1 - l1_ratio) / 2 * |b|_2^2)``.

    The objective is glum's: the mean deviance / 2 plus this penalty; the intercept is never
    penalized. ``alpha = 0`` (the default) is an ordinary, unpenalized GLM. ``search``
    chooses alpha and l1_ratio by cross-validation instead (:class:`PenaltySearch`).
    """

    alpha: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    l1_ratio: Annotated[float, Field(ge=0, le=1)] = 0.0
    search: PenaltySearch | None = None

    def _cross_field_issues(self) -> list[Issue]:
        if self.search is None:
            return []
        return [
            Issue(
                name,
                f"is chosen by penalty.search; remove {name} (got {getattr(self, name)}) or "
                "remove search",
                getattr(self, name),
            )
            for name in ("alpha", "l1_ratio")
            if name in self.model_fields_set and getattr(self, name) != 0
        ]


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
    """The test split, used when no ``test`` data is given.

    Random: ``fraction`` of the rows (0 < fraction < 1) for testing, drawn with ``seed`` (an
    integer from 0 to 2**32 - 1). By time (or any column): ``by`` names the column and
    ``holdout`` the values whose rows are the test data, e.g. ``{by: accident_year,
    holdout: [2025]}``; every other row trains.
    """

    __test__ = False  # not a pytest test class

    fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    by: str | None = None
    holdout: list[bool | str | int | float] | None = None

    def _cross_field_issues(self) -> list[Issue]:
        issues = []
        if (self.by is None) != (self.holdout is None):
            given = "by" if self.by is not None else "holdout"
            issues.append(
                Issue(
                    given,
                    "a split by column needs both by (the column) and holdout (its values for "
                    f"testing); got only {given}={getattr(self, given)!r}",
                    getattr(self, given),
                )
            )
        if self.holdout is not None and not self.holdout:
            issues.append(Issue("holdout", "give at least one value to hold out; got []", []))
        changed = {"fraction": self.fraction != 0.2, "seed": self.seed != 0}
        if self.by is not None and any(changed.values()):  # defaults: a JSON round trip has them
            issues.append(
                Issue(
                    "fraction",
                    "a split by column takes no fraction or seed (its holdout values choose the "
                    f"test rows); remove them (got fraction={self.fraction}, seed={self.seed})",
                    sorted(k for k, v in changed.items() if v),
                )
            )
        return issues

    @property
    def is_random(self) -> bool:
        """Whether this is a random split (not one by a column's values)."""
        return self.by is None

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
    terms
        How predictors enter the model, by column: ``spline``, ``bands``, ``groups``,
        ``base``, ``missing: level`` (:class:`~smglm.config.terms.TermSpec`). A predictor
        without an entry enters as it is (numeric: linear; text: a level each).
    interactions
        Pairs of predictors whose effects combine: categorical x categorical (a relativity
        per pair of levels), numeric or spline x categorical (a slope or curve per level),
        numeric x numeric (the product). Main effects stay in the model.
    fixed
        Predictors whose effect is given, not fitted (from a previous or a market model):
        a number is a numeric predictor's coefficient; a mapping ``level: relativity`` gives
        a categorical's (or bands') relativities, every level of the data listed (log link).
        They enter as an offset and are reported as fixed, without a standard error.
    penalty, constraints
        Elastic-net penalty (or a cross-validated search for it) and coefficient bounds.
        With either active, standard errors are those of the unpenalized likelihood at the
        estimate: indicative, not exact.
    fit_intercept
        Whether to fit an intercept (term ``intercept``).
    test
        A random test split, used when no test data is given.
    missing
        ``error`` (default): NaN or infinite values in a used column are an error;
        ``drop``: such rows are dropped and counted in a warning.
    max_iter, tol
        Solver limits: iterations and the gradient tolerance (1e-8 matches R to about 1e-7).
    formula
        Another spelling of the model's columns, e.g. ``claim_count ~ ns(driver_age, 5) +
        area * region + offset(log(exposure))``: parsed into ``target``, ``predictors``,
        ``categorical``, ``terms``, ``interactions``, ``fixed``, ``exposure``/``offset`` and
        ``fit_intercept`` (which are then not given), and not kept: the config holds the
        fields. The language is in :mod:`smglm.config.formula`; :meth:`formula_text` writes
        a config back as a formula.
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
    terms: dict[str, TermSpec] = Field(default_factory=dict)
    interactions: list[tuple[str, str]] = Field(default_factory=list)
    fixed: dict[str, float | dict[str, float]] = Field(default_factory=dict)
    penalty: Penalty = Field(default_factory=Penalty)
    constraints: Constraints = Field(default_factory=Constraints)
    fit_intercept: bool = True
    test: TestSplit | None = None
    missing: Literal["error", "drop"] = "error"
    max_iter: Annotated[int, Field(gt=0)] = 100
    tol: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1e-8

    @field_validator("interactions", mode="before")
    @classmethod
    def _pairs_of_columns(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        bad = [
            (i, pair)
            for i, pair in enumerate(value)
            if isinstance(pair, (list, tuple)) and len(pair) != 2
        ]
        if bad:
            raise ConfigError(
                [
                    Issue(
                        f"[{i}]",
                        "an interaction is a pair of predictors [a, b]; got "
                        f"{short_repr(list(pair))} ({len(pair)} column"
                        f"{'s' if len(pair) != 1 else ''})"
                        f"{' (smglm fits two-way interactions)' if len(pair) > 2 else ''}",
                        list(pair),
                    )
                    for i, pair in bad
                ]
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _formula(cls, data: Any) -> Any:
        # ``formula`` is another spelling of target, predictors, terms, ...: the config holds
        # the fields it spells, not the formula (smglm.config.formula)
        if isinstance(data, dict) and "formula" in data:
            from smglm.config.formula import expand_formula

            return expand_formula(data)
        if isinstance(data, dict):  # 'formula' is not a field: say it to a misspelt one
            typos = [k for k in data if isinstance(k, str) and k not in cls.model_fields]
            close = [k for k in typos if did_you_mean(k, ["formula"])]
            if close:
                raise ConfigError(
                    [
                        Issue(
                            k,
                            f"unknown field {k!r}; allowed fields are {list(cls.model_fields)} "
                            "and formula. Did you mean 'formula'?",
                            k,
                        )
                        for k in close
                    ]
                )
        return data

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
        issues += self._model_language_issues()
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

    def _model_language_issues(self) -> list[Issue]:
        """terms, interactions, fixed, penalty.search and test.by against the predictors and
        each other (the data's checks come when it is prepared)."""
        issues: list[Issue] = []
        known = set(self.predictors)

        def unknown(field: str, col: str) -> Issue:
            return Issue(
                field,
                f"{col!r} is not a predictor; name one of {self.predictors}."
                f"{did_you_mean(col, self.predictors)}",
                col,
            )

        for col, spec in self.terms.items():
            if col not in known:
                issues.append(unknown(f"terms.{col}", col))
            elif spec.kind in ("spline", "bands") and col in self.categorical:
                issues.append(
                    Issue(
                        f"terms.{col}.{spec.kind}",
                        f"{col!r} is listed under categorical; a {spec.kind} needs a numeric "
                        "predictor",
                        col,
                    )
                )
        seen_pairs: set[frozenset[str]] = set()
        for i, pair in enumerate(self.interactions):
            a, b = pair
            for col in (a, b):
                if col not in known:
                    issues.append(unknown(f"interactions[{i}]", col))
            if a == b:
                issues.append(
                    Issue(
                        f"interactions[{i}]",
                        f"a predictor cannot interact with itself; got [{a}, {b}] (a spline "
                        "gives a curve)",
                        list(pair),
                    )
                )
            key = frozenset(pair)
            if key in seen_pairs and a != b:
                issues.append(
                    Issue(f"interactions[{i}]", f"[{a}, {b}] is listed twice", list(pair))
                )
            seen_pairs.add(key)
        in_interactions = {c for pair in self.interactions for c in pair}
        for col, value in self.fixed.items():
            field = f"fixed.{col}"
            if col not in known:
                issues.append(unknown(field, col))
                continue
            fixed_spec = self.terms.get(col)
            if fixed_spec is not None and fixed_spec.kind == "spline":
                issues.append(
                    Issue(
                        field,
                        f"{col!r} has a spline (terms.{col}.spline), and a spline cannot be "
                        "fixed; fix a numeric or a banded one",
                        col,
                    )
                )
            if col in in_interactions:
                issues.append(
                    Issue(field, f"{col!r} is in an interaction; a fixed term cannot be", col)
                )
            bounded = [t for t in self.constraints.bounds if t == col or t.startswith(f"{col}[")]
            if bounded:
                issues.append(
                    Issue(
                        field,
                        f"{col!r} is fixed, so its bounds mean nothing: remove them "
                        f"(constraints.bounds {bounded})",
                        col,
                    )
                )
            if fixed_spec is not None and fixed_spec.bands is not None and isinstance(value, dict):
                from smglm.config.terms import band_labels

                labels = band_labels(fixed_spec.bands) + list(fixed_spec.groups or {})
                odd = [k for k in value if k not in labels]
                if odd:
                    issues.append(
                        Issue(
                            field,
                            f"{odd} are not bands of {col!r} (cut points {fixed_spec.bands}); "
                            f"give relativities of {labels}",
                            odd,
                        )
                    )
            if isinstance(value, dict):
                if self.resolved_link != "log":
                    issues.append(
                        Issue(
                            field,
                            "relativities (level: value) need the log link; got link "
                            f"{self.resolved_link!r} (give coefficients through an offset)",
                            value,
                        )
                    )
                bad = {k: v for k, v in value.items() if not (math.isfinite(v) and v > 0)}
                if bad:
                    issues.append(
                        Issue(field, f"relativities must be finite and > 0; got {bad}", bad)
                    )
                if not value:
                    issues.append(Issue(field, "give the relativity of every level; got {}", value))
            elif not math.isfinite(value):
                issues.append(Issue(field, f"a coefficient must be finite; got {value}", value))
        if set(self.fixed) >= known and known and not self.fit_intercept:
            issues.append(
                Issue(
                    "fixed",
                    "every predictor is fixed and there is no intercept: nothing to fit",
                    sorted(self.fixed),
                )
            )
        search = self.penalty.search
        if search is not None:
            for name in ("group", "by"):
                col = getattr(search.cv, name)
                if col is not None and col in (
                    self.target,
                    self.weights,
                    self.offset,
                    self.exposure,
                ):
                    issues.append(
                        Issue(
                            f"penalty.search.cv.{name}",
                            f"{col!r} is the model's {self._role_of(col)}; folds need another "
                            "column (e.g. a policy id or a year)",
                            col,
                        )
                    )
        if self.test is not None and self.test.by is not None and self.test.by == self.target:
            issues.append(
                Issue(
                    "test.by",
                    f"{self.test.by!r} is the target; split by another column",
                    self.test.by,
                )
            )
        return issues

    def _role_of(self, col: str) -> str:
        for role in ("target", "weights", "offset", "exposure"):
            if getattr(self, role) == col:
                return role
        return "predictor"

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
        """Every column the config uses, target first (with the columns that only split the
        data: ``test.by``, ``penalty.search.cv.group`` or ``.by``)."""
        cols = [self.target, *self.predictors]
        cols += [c for c in (self.weights, self.offset, self.exposure) if c]
        cols += [c for c in self.split_columns if c not in cols]
        return cols

    @property
    def split_columns(self) -> list[str]:
        """Columns used only to split the data (test holdout, CV folds), not as predictors."""
        out: list[str] = []
        if self.test is not None and self.test.by is not None:
            out.append(self.test.by)
        search = self.penalty.search
        if search is not None:
            out += [c for c in (search.cv.group, search.cv.by) if c is not None]
        return list(dict.fromkeys(out))

    def term(self, column: str) -> TermSpec:
        """How ``column`` enters the model (an empty :class:`TermSpec` when not said)."""
        return self.terms.get(column) or TermSpec()

    def formula_text(self) -> str:
        """The model as a formula (R / Wilkinson style), for display: target, predictors with
        their terms, interactions, fixed terms, offset or exposure, ``- 1`` without an
        intercept (see :mod:`smglm.config.formula` for the language). The config's other
        fields (family, penalty, ...) are not part of a formula."""
        from smglm.config.formula import formula_text

        return formula_text(self)

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
