"""glum, the fitting engine: family and link objects, and the estimator as smglm configures it.

Imported only where a fit happens (``import glum`` costs 1.5-2 s). glum has no probit link and
its ``inverse`` is ``TweedieLink(2)`` (= 1/mu); both are provided here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from glum import (
    GeneralizedLinearRegressor,
    Link,
    NegativeBinomialDistribution,
    TweedieDistribution,
    TweedieLink,
)
from scipy.special import ndtr, ndtri

from smglm.config import GLMConfig

__all__ = ["ProbitLink", "design_matrix", "glum_family", "glum_link", "make_estimator"]

_SQRT_2PI = np.sqrt(2.0 * np.pi)


def _pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * np.square(x)) / _SQRT_2PI


class ProbitLink(Link):
    """The probit link ``Phi^-1(mu)`` (glum has none)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProbitLink)

    def __hash__(self) -> int:
        return hash(type(self))

    def link(self, mu: Any) -> Any:
        return ndtri(mu)

    def derivative(self, mu: Any) -> Any:
        return 1.0 / _pdf(ndtri(mu))

    def inverse(self, lin_pred: Any) -> Any:
        eps = 50 * np.finfo(float).eps
        return np.clip(ndtr(lin_pred), eps, 1 - eps)

    def inverse_derivative(self, lin_pred: Any) -> Any:
        return _pdf(lin_pred)

    def inverse_derivative2(self, lin_pred: Any) -> Any:
        return -lin_pred * _pdf(lin_pred)


_FAMILY = {
    "gaussian": "normal",
    "binomial": "binomial",
    "poisson": "poisson",
    "gamma": "gamma",
    "inverse_gaussian": "inverse.gaussian",
}


def glum_family(config: GLMConfig) -> Any:
    """glum's family for the config (a name, or a distribution object with its parameter)."""
    if config.family == "tweedie":
        return TweedieDistribution(config.resolved_power)
    if config.family == "negative_binomial":
        # glum's "theta" is the variance coefficient mu + theta * mu^2, i.e. R's 1 / theta
        return NegativeBinomialDistribution(1.0 / float(config.resolved_theta or 1.0))
    return _FAMILY[config.family]


def glum_link(config: GLMConfig) -> Any:
    """glum's link for the config."""
    link = config.resolved_link
    if link == "probit":
        return ProbitLink()
    if link == "inverse":
        return TweedieLink(2)
    return link


def make_estimator(
    config: GLMConfig,
    *,
    lower_bounds: np.ndarray | None = None,
    upper_bounds: np.ndarray | None = None,
) -> GeneralizedLinearRegressor:
    """The glum estimator, configured as smglm fits: categoricals with their first level (the
    reference) dropped, ``alpha`` always explicit, a tight gradient tolerance."""
    return GeneralizedLinearRegressor(
        family=glum_family(config),
        link=glum_link(config),
        alpha=config.penalty.alpha,
        l1_ratio=config.penalty.l1_ratio,
        fit_intercept=config.fit_intercept,
        drop_first=True,
        gradient_tol=config.tol,
        max_iter=config.max_iter,
        lower_bounds=lower_bounds,
        upper_bounds=upper_bounds,
        robust=False,
        expected_information=True,
        categorical_format="{name}[{category}]",
    )


def design_matrix(X: Any) -> Any:
    """The tabmat design of the predictors: numeric columns dense, categoricals as sparse
    CategoricalMatrix with the first level (the reference) dropped, columns named as smglm's
    terms (``column[level]``)."""
    import tabmat

    return tabmat.from_df(
        X, drop_first=True, categorical_format="{name}[{category}]", cat_missing_method="fail"
    )
