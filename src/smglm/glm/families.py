"""The GLM families as objects: everything one family means to smglm, in one place.

One object per family (glum's pattern: ``ExponentialDispersionModel`` and one class per family)
holds its variance function, unit deviance and log-likelihood with R's ``glm`` conventions, the
domain its target must lie in, whether its dispersion is estimated (t or z statistics), the glum
distribution it maps to and what Spark's ``GeneralizedLinearRegression`` needs to fit it.

The names and the links each family accepts stay in :mod:`smglm.config.families` (validation
needs them without numpy); ``tests/test_families.py`` checks the two tables agree. Look a family
up with :func:`get_family` (or :func:`family_of` for a config); an unknown name is a
:class:`~smglm.errors.ConfigError`, never a silent NaN.

Adding a family: its name (and links) in :mod:`smglm.config.families`, one subclass here and its
entry in :data:`FAMILY_SPECS`.

Example::

    >>> fam = get_family("tweedie", tweedie_power=1.3)
    >>> fam.has_dispersion, fam.default_link
    (True, 'log')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from scipy.special import gammaln, xlogy

from smglm.config.families import (
    DEFAULT_LINK,
    DEFAULT_THETA,
    DEFAULT_TWEEDIE_POWER,
    FAMILIES,
    FAMILY_LINKS,
)
from smglm.errors import ConfigError, Issue, did_you_mean

if TYPE_CHECKING:
    from smglm.config import GLMConfig

__all__ = [
    "FAMILY_SPECS",
    "Binomial",
    "FamilySpec",
    "Gamma",
    "Gaussian",
    "InverseGaussian",
    "NegativeBinomial",
    "Poisson",
    "Tweedie",
    "family_of",
    "get_family",
]

Array = np.ndarray

#: Spark's ``linkPower`` for the links smglm offers with Spark's tweedie family.
_SPARK_LINK_POWER = {"log": 0.0, "identity": 1.0, "inverse": -1.0}


@dataclass(frozen=True)
class FamilySpec:
    """One GLM family, with its parameters (Tweedie power, negative binomial theta) bound.

    Subclasses set the class attributes and implement :meth:`variance`,
    :meth:`unit_deviance`, :meth:`_log_likelihood` and :meth:`check_target`.
    """

    #: The family's name in the config (``family: poisson``).
    name: ClassVar[str]
    #: Whether the dispersion is estimated (Pearson / df): t statistics instead of z, and one
    #: more parameter in AIC and BIC.
    has_dispersion: ClassVar[bool]
    #: The links Spark's GLR takes with its family of the same name; empty when Spark has no
    #: such family, or fits it as its tweedie family (with a ``linkPower``: see
    #: :meth:`spark_params`).
    spark_links: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def with_parameters(
        cls, *, tweedie_power: float | None = None, theta: float | None = None
    ) -> FamilySpec:
        """The family with the config's parameters (None: the default); a family without
        parameters ignores them."""
        return cls()

    @property
    def links(self) -> tuple[str, ...]:
        """The links the family accepts (from :data:`smglm.config.FAMILY_LINKS`)."""
        return FAMILY_LINKS[self.name]

    @property
    def default_link(self) -> str:
        """The link used when the config gives none."""
        return DEFAULT_LINK[self.name]

    def variance(self, mu: Array) -> Array:
        """The variance function ``V(mu)``: the variance of a row is ``phi * V(mu) / w``."""
        raise NotImplementedError

    def unit_deviance(self, y: Array, mu: Array) -> Array:
        """The unit deviance ``d(y, mu)``, exact (R's ``dev.resids`` without the weights)."""
        raise NotImplementedError

    def log_likelihood(self, y: Array, mu: Array, weights: Array, deviance: float) -> float:
        """The log-likelihood as R's ``logLik.glm`` computes it, over the rows with weight > 0.

        ``deviance`` is the model's weighted deviance: R's ``family$aic`` derives the maximum
        likelihood dispersion of gaussian, gamma and inverse_gaussian from it. NaN when no row
        has a positive weight, and for tweedie (no closed form; R's statmod reports NA too).
        """
        keep = weights > 0
        y, mu, weights = y[keep], mu[keep], weights[keep]
        if y.size == 0:
            return math.nan
        return self._log_likelihood(y, mu, weights, deviance)

    def _log_likelihood(self, y: Array, mu: Array, w: Array, dev: float) -> float:
        raise NotImplementedError

    def null_log_mean_ratio(self, y: Array, w: Array, offset: Array) -> float | None:
        """``e^b`` of the intercept-only model with the log link and ``offset``, where it has a
        closed form (else None: smglm finds ``b`` by IRLS)."""
        return None

    def check_target(self, y: Array, weights: Array, *, column: str, weighted: bool) -> list[Issue]:
        """Problems with the target ``y`` (column ``column``) for this family: values outside
        its domain, among the rows with weight > 0. ``weighted``: the config names a weights
        column (binomial proportions need the trials as weights)."""
        return []

    def glum(self) -> Any:
        """glum's distribution for this family: a name, or a distribution object."""
        raise NotImplementedError

    def spark_params(self, link: str) -> dict[str, Any] | None:
        """The parameters of Spark's ``GeneralizedLinearRegression`` for this family and
        ``link`` (``family`` and ``link``, or ``variancePower`` and ``linkPower`` for its
        tweedie family), or None when Spark cannot fit them."""
        if link not in self.spark_links:
            return None
        return {"family": self.name, "link": link}


def _used(y: Array, weights: Array) -> Array:
    used = weights > 0
    return y[used] if used.any() else y


@dataclass(frozen=True)
class Gaussian(FamilySpec):
    """Normal errors with constant variance (``V(mu) = 1``)."""

    name: ClassVar[str] = "gaussian"
    has_dispersion: ClassVar[bool] = True
    spark_links: ClassVar[tuple[str, ...]] = ("identity", "log", "inverse")

    def variance(self, mu: Array) -> Array:
        return np.ones_like(mu)

    def unit_deviance(self, y: Array, mu: Array) -> Array:
        return (y - mu) ** 2

    def _log_likelihood(self, y: Array, mu: Array, w: Array, dev: float) -> float:
        n = y.size
        return float(-0.5 * (n * (math.log(2 * math.pi * dev / n) + 1) - np.sum(np.log(w))))

    def glum(self) -> Any:
        return "normal"


@dataclass(frozen=True)
class Binomial(FamilySpec):
    """0/1 outcomes, or proportions with the number of trials as weights."""

    name: ClassVar[str] = "binomial"
    has_dispersion: ClassVar[bool] = False
    spark_links: ClassVar[tuple[str, ...]] = ("logit", "probit", "cloglog")

    def variance(self, mu: Array) -> Array:
        return mu * (1.0 - mu)

    def unit_deviance(self, y: Array, mu: Array) -> Array:
        return 2.0 * (xlogy(y, y) - xlogy(y, mu) + xlogy(1 - y, 1 - y) - xlogy(1 - y, 1 - mu))

    def _log_likelihood(self, y: Array, mu: Array, w: Array, dev: float) -> float:
        trials = np.round(w)
        k = np.round(w * y)
        logc = gammaln(trials + 1) - gammaln(k + 1) - gammaln(trials - k + 1)
        return float(np.sum(logc + xlogy(k, mu) + xlogy(trials - k, 1 - mu)))

    def check_target(self, y: Array, weights: Array, *, column: str, weighted: bool) -> list[Issue]:
        yy = _used(y, weights)
        if ((yy < 0) | (yy > 1)).any():
            return [
                Issue(
                    "target",
                    f"column {column!r} has values outside [0, 1] (min {yy.min():g}, max "
                    f"{yy.max():g}); family 'binomial' needs 0/1 outcomes or proportions in "
                    "[0, 1] with the number of trials as weights",
                    column,
                )
            ]
        frac = (yy != 0) & (yy != 1)
        if frac.any() and not weighted:
            return [
                Issue(
                    "target",
                    f"column {column!r} holds proportions (e.g. {yy[frac][0]:g}) but no weights "
                    "were given; family 'binomial' needs the number of trials as weights",
                    column,
                )
            ]
        return []

    def glum(self) -> Any:
        return "binomial"


def _non_negative(fam: str, y: Array, weights: Array, column: str) -> list[Issue]:
    yy = _used(y, weights)
    if (yy < 0).any():
        return [
            Issue(
                "target",
                f"column {column!r} has {int((yy < 0).sum())} negative value(s) (min "
                f"{yy.min():g}); family {fam!r} needs a target >= 0",
                column,
            )
        ]
    return []


def _positive(fam: str, y: Array, weights: Array, column: str) -> list[Issue]:
    yy = _used(y, weights)
    if (yy <= 0).any():
        return [
            Issue(
                "target",
                f"column {column!r} has {int((yy <= 0).sum())} value(s) <= 0 (min {yy.min():g}); "
                f"family {fam!r} needs a target > 0 (drop the zero rows, or use tweedie)",
                column,
            )
        ]
    return []


@dataclass(frozen=True)
class Poisson(FamilySpec):
    """Counts (or rates with an exposure): ``V(mu) = mu``, dispersion fixed at 1."""

    name: ClassVar[str] = "poisson"
    has_dispersion: ClassVar[bool] = False
    spark_links: ClassVar[tuple[str, ...]] = ("log", "identity")

    def variance(self, mu: Array) -> Array:
        return mu

    def unit_deviance(self, y: Array, mu: Array) -> Array:
        return 2.0 * (xlogy(y, y) - xlogy(y, mu) - (y - mu))

    def _log_likelihood(self, y: Array, mu: Array, w: Array, dev: float) -> float:
        return float(np.sum(w * (xlogy(y, mu) - mu - gammaln(y + 1))))

    def null_log_mean_ratio(self, y: Array, w: Array, offset: Array) -> float | None:
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            return float(np.sum(w * y) / np.sum(w * np.exp(offset)))

    def check_target(self, y: Array, weights: Array, *, column: str, weighted: bool) -> list[Issue]:
        return _non_negative(self.name, y, weights, column)

    def glum(self) -> Any:
        return "poisson"


@dataclass(frozen=True)
class Gamma(FamilySpec):
    """Positive amounts with a constant coefficient of variation: ``V(mu) = mu^2``."""

    name: ClassVar[str] = "gamma"
    has_dispersion: ClassVar[bool] = True
    spark_links: ClassVar[tuple[str, ...]] = ("log", "inverse", "identity")

    def variance(self, mu: Array) -> Array:
        return mu**2

    def unit_deviance(self, y: Array, mu: Array) -> Array:
        return 2.0 * (-np.log(y / mu) + (y - mu) / mu)

    def _log_likelihood(self, y: Array, mu: Array, w: Array, dev: float) -> float:
        disp = dev / np.sum(w)
        shape = 1.0 / disp
        scale = mu * disp
        logf = (shape - 1) * np.log(y) - y / scale - gammaln(shape) - shape * np.log(scale)
        return float(np.sum(w * logf))

    def null_log_mean_ratio(self, y: Array, w: Array, offset: Array) -> float | None:
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            return float(np.sum(w * y * np.exp(-offset)) / np.sum(w))

    def check_target(self, y: Array, weights: Array, *, column: str, weighted: bool) -> list[Issue]:
        return _positive(self.name, y, weights, column)

    def glum(self) -> Any:
        return "gamma"


@dataclass(frozen=True)
class InverseGaussian(FamilySpec):
    """Positive amounts with a heavier tail than the gamma: ``V(mu) = mu^3``."""

    name: ClassVar[str] = "inverse_gaussian"
    has_dispersion: ClassVar[bool] = True

    def variance(self, mu: Array) -> Array:
        return mu**3

    def unit_deviance(self, y: Array, mu: Array) -> Array:
        return (y - mu) ** 2 / (y * mu**2)

    def _log_likelihood(self, y: Array, mu: Array, w: Array, dev: float) -> float:
        disp = dev / np.sum(w)
        return float(
            -0.5 * (np.sum(w) * (math.log(disp * 2 * math.pi) + 1) + 3 * np.sum(w * np.log(y)))
        )

    def check_target(self, y: Array, weights: Array, *, column: str, weighted: bool) -> list[Issue]:
        return _positive(self.name, y, weights, column)

    def glum(self) -> Any:
        return "inverse.gaussian"

    def spark_params(self, link: str) -> dict[str, Any] | None:
        # Spark has no inverse gaussian family: it is its tweedie family with power 3
        if link not in _SPARK_LINK_POWER:
            return None
        return {"family": "tweedie", "variancePower": 3.0, "linkPower": _SPARK_LINK_POWER[link]}


@dataclass(frozen=True)
class Tweedie(FamilySpec):
    """Compound Poisson-gamma (pure premiums with exact zeros): ``V(mu) = mu^power``,
    ``1 < power < 2``."""

    power: float = DEFAULT_TWEEDIE_POWER
    name: ClassVar[str] = "tweedie"
    has_dispersion: ClassVar[bool] = True

    @classmethod
    def with_parameters(
        cls, *, tweedie_power: float | None = None, theta: float | None = None
    ) -> FamilySpec:
        return cls() if tweedie_power is None else cls(float(tweedie_power))

    def variance(self, mu: Array) -> Array:
        return mu ** float(self.power)

    def unit_deviance(self, y: Array, mu: Array) -> Array:
        p = float(self.power)
        return 2.0 * (
            np.power(y, 2 - p) / ((1 - p) * (2 - p))
            - y * np.power(mu, 1 - p) / (1 - p)
            + np.power(mu, 2 - p) / (2 - p)
        )

    def _log_likelihood(self, y: Array, mu: Array, w: Array, dev: float) -> float:
        return math.nan  # no closed form (R's statmod reports NA as well)

    def check_target(self, y: Array, weights: Array, *, column: str, weighted: bool) -> list[Issue]:
        return _non_negative(self.name, y, weights, column)

    def glum(self) -> Any:
        from glum import TweedieDistribution

        return TweedieDistribution(self.power)

    def spark_params(self, link: str) -> dict[str, Any] | None:
        if link not in _SPARK_LINK_POWER:
            return None
        return {
            "family": "tweedie",
            "variancePower": float(self.power),
            "linkPower": _SPARK_LINK_POWER[link],
        }


@dataclass(frozen=True)
class NegativeBinomial(FamilySpec):
    """Overdispersed counts with a fixed ``theta``: ``V(mu) = mu + mu^2 / theta``."""

    theta: float = DEFAULT_THETA
    name: ClassVar[str] = "negative_binomial"
    has_dispersion: ClassVar[bool] = False

    @classmethod
    def with_parameters(
        cls, *, tweedie_power: float | None = None, theta: float | None = None
    ) -> FamilySpec:
        return cls() if theta is None else cls(float(theta))

    def variance(self, mu: Array) -> Array:
        return mu + mu**2 / float(self.theta)

    def unit_deviance(self, y: Array, mu: Array) -> Array:
        th = float(self.theta)
        return 2.0 * (xlogy(y, y) - xlogy(y, mu) - (y + th) * np.log((y + th) / (mu + th)))

    def _log_likelihood(self, y: Array, mu: Array, w: Array, dev: float) -> float:
        th = float(self.theta)
        logf = (
            gammaln(th + y)
            - gammaln(th)
            - gammaln(y + 1)
            + th * math.log(th)
            + xlogy(y, mu)
            - (th + y) * np.log(th + mu)
        )
        return float(np.sum(w * logf))

    def check_target(self, y: Array, weights: Array, *, column: str, weighted: bool) -> list[Issue]:
        return _non_negative(self.name, y, weights, column)

    def glum(self) -> Any:
        from glum import NegativeBinomialDistribution

        # glum's "theta" is the variance coefficient mu + theta * mu^2, i.e. R's 1 / theta
        return NegativeBinomialDistribution(1.0 / float(self.theta))


#: Every family by name, in the order of :data:`smglm.config.FAMILIES`.
FAMILY_SPECS: dict[str, type[FamilySpec]] = {
    spec.name: spec
    for spec in (Gaussian, Binomial, Poisson, Gamma, InverseGaussian, Tweedie, NegativeBinomial)
}


def get_family(
    name: str, *, tweedie_power: float | None = None, theta: float | None = None
) -> FamilySpec:
    """The family called ``name``, with its parameter (Tweedie power, negative binomial theta;
    None for the default: 1.5 and 1). Raises :class:`~smglm.errors.ConfigError` naming the
    field ``family`` for a name smglm does not know."""
    spec = FAMILY_SPECS.get(name)
    if spec is None:
        raise ConfigError(
            [
                Issue(
                    "family",
                    f"unknown family {name!r}; choose one of {list(FAMILIES)}."
                    f"{did_you_mean(name, FAMILIES)}",
                    name,
                )
            ]
        )
    return spec.with_parameters(tweedie_power=tweedie_power, theta=theta)


def family_of(config: GLMConfig) -> FamilySpec:
    """The family of a GLMConfig, with its Tweedie power or theta."""
    return get_family(
        config.family, tweedie_power=config.resolved_power, theta=config.resolved_theta
    )
