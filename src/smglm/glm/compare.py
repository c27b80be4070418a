"""Comparisons that guide the next model: the nested-model test and the Gini's bootstrap
interval.

:func:`nested_test` answers "does the bigger model fit significantly better?" when one model's
terms contain the other's and both were fitted the same way on the same rows: R's
``anova(small, big, test=...)`` from the two fits' training deviances, with the bigger model's
Pearson dispersion. :func:`nested_reason` says why two models cannot be tested that way.

:func:`bootstrap_gini` gives a Gini with a percentile interval from rows resampled with
replacement, so two models' Gini on the same test rows can be told apart from noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from smglm.errors import ConfigError, Issue

if TYPE_CHECKING:
    from smglm.glm.report._inputs import Values
    from smglm.glm.result import FitResult

__all__ = ["GiniInterval", "NestedTest", "bootstrap_gini", "nested_reason", "nested_test"]

#: Two fits on the same training rows have the same null deviance up to rounding.
NULL_DEVIANCE_RTOL = 1e-8


@dataclass(frozen=True)
class NestedTest:
    """The likelihood-ratio (analysis of deviance) test of a model against a bigger one that
    contains its terms, fitted on the same rows: R's ``anova(small, big, test="Chisq")`` for
    the families with a fixed dispersion (poisson, binomial, negative binomial) and
    ``anova(small, big, test="F")`` for those that estimate it (gaussian, gamma,
    inverse gaussian, tweedie).

    Attributes
    ----------
    small, big
        The names of the smaller model and of the bigger one.
    delta_deviance
        The small model's training deviance minus the big one's (>= 0 up to the solver's
        tolerance).
    delta_df
        The coefficients the big model adds (its residual degrees of freedom fewer).
    dispersion
        The big model's Pearson dispersion φ (1 for the fixed-dispersion families).
    statistic
        ``delta_deviance / φ`` (χ² test) or ``delta_deviance / delta_df / φ`` (F test).
    test
        ``"chi2"`` (χ² with ``delta_df`` degrees of freedom) or ``"F"`` (F with
        ``delta_df`` and the big model's residual degrees of freedom, ``df_resid``).
    p_value
        The probability of a statistic at least this large if the added terms were useless.
    delta_aic
        AIC of the big model minus AIC of the small one: negative when the big model's better
        fit is worth its extra coefficients by Akaike's criterion.
    df_resid
        The big model's residual degrees of freedom (the F test's second one).
    """

    small: str
    big: str
    delta_deviance: float
    delta_df: int
    dispersion: float
    statistic: float
    test: str
    p_value: float
    delta_aic: float
    df_resid: int

    @property
    def significant(self) -> bool:
        """Whether the added terms improve the fit at the 5% level."""
        return bool(self.p_value < 0.05)

    def to_text(self) -> str:
        """The test in one line, e.g. ``B vs A (adds 2 coefficients; training rows):
        Δdeviance 14.2, χ²(2) = 14.2, p = 0.0008; ΔAIC -10.2: B fits significantly better (5%
        level)``."""
        if self.test == "chi2":
            stat = f"χ²({self.delta_df}) = {self.statistic:.4g}"
        else:
            stat = (
                f"F({self.delta_df}, {self.df_resid}) = {self.statistic:.4g} "
                f"(φ = {self.dispersion:.4g})"
            )
        verdict = (
            f"{self.big} fits significantly better (5% level)"
            if self.significant
            else f"{self.big}'s extra terms are not significant at the 5% level: {self.small} "
            "is enough"
        )
        plural = "s" if self.delta_df != 1 else ""
        return (
            f"{self.big} vs {self.small} (adds {self.delta_df} coefficient{plural}; training "
            "rows): "
            f"Δdeviance {self.delta_deviance:.6g}, {stat}, p = {self.p_value:.3g}; "
            f"ΔAIC {self.delta_aic:+.4g}: {verdict}"
        )

    def __str__(self) -> str:
        return self.to_text()


@dataclass(frozen=True)
class GiniInterval:
    """A Gini and its bootstrap percentile interval.

    Attributes
    ----------
    gini
        The Gini of all rows (:func:`smglm.glm.report.ranking.gini`).
    low, high
        The interval's ends: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
        resampled Ginis.
    n
        The number of resamples (those whose actual amounts sum to zero have no Gini and are
        left out of the quantiles).
    level
        The interval's coverage (0.95: a 95% interval).
    replicates
        The resampled Ginis, in the order drawn.
    """

    gini: float
    low: float
    high: float
    n: int
    level: float = 0.95
    replicates: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)

    def to_text(self) -> str:
        """e.g. ``0.281 [0.262, 0.300]``."""
        if math.isnan(self.low):
            return f"{self.gini:.3f}"
        return f"{self.gini:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def __str__(self) -> str:
        return self.to_text()


# -- the nested-model test ----------------------------------------------------------------------
def nested_test(
    a: FitResult, b: FitResult, *, names: tuple[str, str] = ("A", "B")
) -> NestedTest | None:
    """The nested-model test of ``a`` against ``b`` (either may be the bigger), or None when it
    does not apply (:func:`nested_reason` says why).

    It applies when one model's terms contain the other's (the same predictors entering the
    same way, interactions and fixed terms included) and both share the family (and its
    parameter), link, target, weights, offset and exposure, were fitted unpenalized and
    without bounds, on the same training rows (same number of rows, same test split, same null
    deviance). ``names`` label the two models in the result.

    The statistic is R's ``anova``: the deviance the bigger model saves, ``Δdev``, over the
    coefficients it adds, ``Δdf``; χ² test of ``Δdev / φ`` on ``Δdf`` degrees of freedom where
    the family fixes the dispersion (φ = 1), F test of ``Δdev / Δdf / φ`` on ``Δdf`` and the big
    model's residual degrees of freedom where it is estimated (φ: the big model's Pearson
    dispersion).
    """
    found = _nested(a, b, names)
    if isinstance(found, str):
        return None
    small, big, (small_name, big_name) = found
    from scipy import stats

    from smglm.glm.families import family_of

    ms, mb = small.metrics["train"], big.metrics["train"]
    delta_dev = float(ms["deviance"]) - float(mb["deviance"])
    delta_df = int(ms["df_resid"]) - int(mb["df_resid"])
    df_resid = int(mb["df_resid"])
    if family_of(big.config).has_dispersion:
        phi = float(mb["dispersion"])
        statistic = delta_dev / delta_df / phi
        p_value = float(stats.f.sf(statistic, delta_df, df_resid))
        test = "F"
    else:
        phi = 1.0
        statistic = delta_dev / phi
        p_value = float(stats.chi2.sf(statistic, delta_df))
        test = "chi2"
    return NestedTest(
        small=small_name,
        big=big_name,
        delta_deviance=delta_dev,
        delta_df=delta_df,
        dispersion=phi,
        statistic=statistic,
        test=test,
        p_value=p_value,
        delta_aic=_number(mb.get("aic")) - _number(ms.get("aic")),
        df_resid=df_resid,
    )


def nested_reason(a: FitResult, b: FitResult, *, names: tuple[str, str] = ("A", "B")) -> str | None:
    """Why :func:`nested_test` does not apply to ``a`` and ``b`` (naming what differs), or
    None when it does."""
    found = _nested(a, b, names)
    return found if isinstance(found, str) else None


def _nested(
    a: FitResult, b: FitResult, names: tuple[str, str]
) -> str | tuple[FitResult, FitResult, tuple[str, str]]:
    """The (small, big, their names) of two nested fits, or the reason they are not."""
    na, nb = names
    for r, n in ((a, na), (b, nb)):
        m = r.metrics.get("train") or {}
        missing = [k for k in ("deviance", "df_resid", "n_obs") if m.get(k) is None]
        if missing:
            return f"{n} has no training {', '.join(missing)} (a model without its metrics.json)"
    from smglm.glm.families import family_of

    ca, cb = a.config, b.config
    same = [
        ("family", ca.family, cb.family),
        ("link", ca.resolved_link, cb.resolved_link),
        ("tweedie_power", ca.resolved_power, cb.resolved_power),
        ("theta", ca.resolved_theta, cb.resolved_theta),
        ("target", ca.target, cb.target),
        ("weights", ca.weights, cb.weights),
        ("offset", ca.offset, cb.offset),
        ("exposure", ca.exposure, cb.exposure),
        ("fit_intercept", ca.fit_intercept, cb.fit_intercept),
        ("missing", ca.missing, cb.missing),
    ]
    for what, va, vb in same:
        if va != vb:
            return f"not nested: {what} differs ({na}: {va!r}, {nb}: {vb!r})"
    for r, n in ((a, na), (b, nb)):
        constrained = _constrained(r)
        if constrained:
            return (
                f"no nested test: {n} is {constrained}; the χ²/F reference distribution holds "
                "for unpenalized, unconstrained fits"
            )
    fixed_a, fixed_b = _fixed(ca), _fixed(cb)
    if fixed_a != fixed_b:
        return (
            f"not nested: the fixed terms differ ({na}: {fixed_a or 'none'}, "
            f"{nb}: {fixed_b or 'none'}); they enter as an offset, which nested models share"
        )
    ta = None if ca.test is None else ca.test.to_dict()
    tb = None if cb.test is None else cb.test.to_dict()
    if ta != tb:
        return f"not fitted on the same rows: the test split differs ({na}: {ta}, {nb}: {tb})"
    ma, mb = a.metrics["train"], b.metrics["train"]
    if int(ma["n_obs"]) != int(mb["n_obs"]):
        return (
            f"not fitted on the same rows: {na} on {int(ma['n_obs']):,} training rows, "
            f"{nb} on {int(mb['n_obs']):,}"
        )
    da, db = _number(ma.get("null_deviance")), _number(mb.get("null_deviance"))
    if not (math.isnan(da) or math.isnan(db)) and not math.isclose(
        da, db, rel_tol=NULL_DEVIANCE_RTOL, abs_tol=1e-12
    ):
        return (
            f"not fitted on the same rows: same row count but different null deviance "
            f"({na}: {da:.10g}, {nb}: {db:.10g}), so not the same training data"
        )
    terms_a, terms_b = _terms(ca), _terms(cb)
    extra_a = {k: v for k, v in terms_a.items() if terms_b.get(k) != v}
    extra_b = {k: v for k, v in terms_b.items() if terms_a.get(k) != v}
    if not extra_a and not extra_b:
        return f"not nested: {na} and {nb} have the same terms (nothing to test)"
    if extra_a and extra_b:
        return (
            f"not nested: neither model's terms contain the other's ({na} has "
            f"{_term_list(extra_a, terms_b)} that {nb} lacks; {nb} has "
            f"{_term_list(extra_b, terms_a)} that {na} lacks)"
        )
    small, big, names_sb = (b, a, (nb, na)) if extra_a else (a, b, (na, nb))
    coef_small = _estimated(small)
    coef_big = _estimated(big)
    if not coef_small <= coef_big:
        lost = sorted(coef_small - coef_big)
        return (
            f"not nested: {names_sb[0]}'s coefficients {lost} are not in {names_sb[1]} (levels "
            "or knots fitted differently)"
        )
    m_big = big.metrics["train"]
    delta_df = int(small.metrics["train"]["df_resid"]) - int(m_big["df_resid"])
    if delta_df <= 0:
        return (
            f"not nested: {names_sb[1]} estimates no more coefficients than {names_sb[0]} "
            "(its extra terms are aliased)"
        )
    if family_of(big.config).has_dispersion:
        phi = _number(m_big.get("dispersion"))
        if int(m_big["df_resid"]) <= 0 or not (math.isfinite(phi) and phi > 0):
            return (
                f"no F test: {names_sb[1]}'s dispersion is not known (df_resid "
                f"{int(m_big['df_resid'])}, dispersion {m_big.get('dispersion')})"
            )
    return small, big, names_sb


def _constrained(r: FitResult) -> str | None:
    cfg = r.config
    if cfg.penalty.search is not None:
        return "penalized (penalty.search)"
    if cfg.penalty.alpha > 0:
        return f"penalized (penalty.alpha={cfg.penalty.alpha:g})"
    if cfg.constraints.bounds:
        return f"bounded (constraints.bounds on {sorted(cfg.constraints.bounds)})"
    mono = [c for c, t in cfg.terms.items() if t.spline is not None and t.spline.monotone]
    if mono:
        return f"bounded (monotone splines on {mono})"
    return None


def _terms(cfg: Any) -> dict[str, Any]:
    """Each estimated term of the config (predictors, interactions) and how it enters."""
    out: dict[str, Any] = {}
    for col in cfg.predictors:
        if col in cfg.fixed:
            continue  # in the offset: compared by _fixed
        spec = cfg.terms.get(col)
        out[col] = (col in cfg.categorical, None if spec is None else spec.to_dict())
    for x, y in cfg.interactions:
        out[":".join(sorted((x, y)))] = "interaction"
    return out


def _fixed(cfg: Any) -> dict[str, Any]:
    """The fixed terms (part of the offset) and how they enter."""
    spec = {c: cfg.terms[c].to_dict() for c in cfg.fixed if c in cfg.terms}
    return {c: (v, spec.get(c)) if spec.get(c) else v for c, v in sorted(cfg.fixed.items())}


def _term_list(extra: dict[str, Any], other: dict[str, Any]) -> str:
    parts = [f"{name} (entering differently)" if name in other else name for name in sorted(extra)]
    return ", ".join(parts)


def _estimated(r: FitResult) -> set[str]:
    """The names of the coefficients the fit estimated (aliased and fixed ones left out)."""
    table = r.coefficients
    terms = table["term"].astype(str)
    if "note" in table.columns:
        notes = table["note"].fillna("").astype(str)
        terms = terms[~(notes.str.startswith("aliased") | (notes == "fixed"))]
    return set(terms)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


# -- the Gini's bootstrap interval --------------------------------------------------------------
def bootstrap_gini(
    actual: Values,
    predicted: Values,
    exposure: Values | None = None,
    *,
    n: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> GiniInterval:
    """The Gini of ``predicted`` (:func:`smglm.glm.report.ranking.gini`) with a bootstrap
    percentile interval.

    Each of the ``n`` resamples draws as many rows as there are, with replacement, among the
    rows with positive exposure (rows with zero exposure carry no weight in the Gini), and
    takes their Gini; the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2``
    quantiles of those. The same ``seed`` gives the same interval. The rows are sorted by
    predicted rate once; a resample weights each row by the number of times it was drawn,
    which gives exactly the Gini of the resampled rows (tied rates are pooled either way).

    Parameters
    ----------
    actual, predicted, exposure
        As :func:`~smglm.glm.report.ranking.gini`: amounts per row and exposure (default 1).
    n
        Resamples (at least 1; 0 gives the Gini alone, with a NaN interval).
    seed
        The random generator's seed.
    level
        The interval's coverage, between 0 and 1.
    """
    from smglm.glm.report._inputs import amount_inputs
    from smglm.glm.report.ranking import gini, gini_of_curve, rate_key

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(
            [Issue("n", f"the number of resamples must be an integer >= 0; got {n!r}", n)]
        )
    if isinstance(level, bool) or not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ConfigError(
            [Issue("level", f"the interval's coverage must be between 0 and 1; got {level!r}")]
        )
    a, p, e = amount_inputs(actual, predicted, exposure)
    point = gini(a, p, e)
    if n == 0:
        return GiniInterval(point, math.nan, math.nan, 0, float(level))
    keep = e > 0
    a, p, e = a[keep], p[keep], e[keep]
    rows = len(e)
    key = rate_key(p / e)
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    ends = np.flatnonzero(np.concatenate((ordered[1:] != ordered[:-1], [True])))
    a_o, e_o = a[order], e[order]
    rng = np.random.default_rng(seed)
    reps = np.empty(n)
    for i in range(n):
        counts = np.bincount(rng.integers(0, rows, rows), minlength=rows)[order]
        ce = np.concatenate(([0.0], np.cumsum(e_o * counts)[ends]))
        ca = np.concatenate(([0.0], np.cumsum(a_o * counts)[ends]))
        with np.errstate(invalid="ignore", divide="ignore"):
            reps[i] = gini_of_curve(ce / ce[-1], ca / ca[-1])
    finite = reps[np.isfinite(reps)]
    if finite.size == 0:
        low = high = math.nan
    else:
        low, high = (float(q) for q in np.quantile(finite, [(1 - level) / 2, (1 + level) / 2]))
    return GiniInterval(float(point), low, high, n, float(level), reps)
