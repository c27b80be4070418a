"""Link functions in numpy: the link, its inverse and d(mu)/d(eta), by name.

The portable model scores with these (numpy alone; scipy only speeds up probit), and the
statistics use them; :mod:`smglm.glm.engines.glum` maps the same names to glum's link objects.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = ["linkfun", "linkinv", "mu_eta"]

Array = np.ndarray


def _norm_cdf(x: Array) -> Array:
    try:
        from scipy.special import ndtr

        return np.asarray(ndtr(x))
    except ImportError:  # numpy-only fallback, slower but exact to double precision
        erf = np.frompyfunc(math.erf, 1, 1)
        return 0.5 * (1.0 + np.asarray(erf(np.asarray(x) / math.sqrt(2.0)), dtype=float))


def _norm_ppf(p: Array) -> Array:
    from scipy.special import ndtri

    return np.asarray(ndtri(p))


def _norm_pdf(x: Array) -> Array:
    return np.exp(-0.5 * np.square(x)) / math.sqrt(2.0 * math.pi)


def _cloglog_inv(eta: Array) -> Array:
    return -np.expm1(-np.exp(eta))


_LINKFUN: dict[str, Callable[[Array], Array]] = {
    "identity": lambda mu: np.asarray(mu, dtype=float),
    "log": np.log,
    "logit": lambda mu: np.log(mu) - np.log1p(-mu),
    "probit": _norm_ppf,
    "cloglog": lambda mu: np.log(-np.log1p(-mu)),
    "inverse": lambda mu: 1.0 / mu,
}
_LINKINV: dict[str, Callable[[Array], Array]] = {
    "identity": lambda eta: np.asarray(eta, dtype=float),
    "log": np.exp,
    "logit": lambda eta: 1.0 / (1.0 + np.exp(-eta)),
    "probit": _norm_cdf,
    "cloglog": _cloglog_inv,
    "inverse": lambda eta: 1.0 / eta,
}
_MU_ETA: dict[str, Callable[[Array], Array]] = {
    "identity": lambda eta: np.ones_like(eta, dtype=float),
    "log": np.exp,
    "logit": lambda eta: np.exp(-eta) / np.square(1.0 + np.exp(-eta)),
    "probit": _norm_pdf,
    "cloglog": lambda eta: np.exp(eta - np.exp(eta)),
    "inverse": lambda eta: -1.0 / np.square(eta),
}


def linkfun(link: str, mu: Array) -> Array:
    """``g(mu)``: the linear predictor for a mean."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _LINKFUN[link](np.asarray(mu, dtype=float))


def linkinv(link: str, eta: Array) -> Array:
    """``g^-1(eta)``: the mean for a linear predictor."""
    with np.errstate(over="ignore", divide="ignore"):
        return _LINKINV[link](np.asarray(eta, dtype=float))


def mu_eta(link: str, eta: Array) -> Array:
    """``d mu / d eta`` at ``eta``."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return _MU_ETA[link](np.asarray(eta, dtype=float))
