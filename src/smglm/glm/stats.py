"""Fit statistics with R's glm conventions: deviance, dispersion, log-likelihood, AIC, BIC.

glum's own figures differ from R's in several cases (weights treated as frequency weights,
no offset in AIC, binomial deviance without the saturated term, an approximate Tweedie unit
deviance): see ``glum-notes.md``. Everything here is computed from ``y``, ``mu`` and the prior
weights with the formulas of R's ``family`` objects, so it does not depend on glum.

Conventions, as in R:

* prior weights ``w``: the variance of row i is ``phi * V(mu_i) / w_i``; rows with ``w = 0``
  are not observations (they do not count in ``n_obs`` or the degrees of freedom);
* ``dispersion`` is 1 for poisson, binomial and negative_binomial, else the Pearson statistic
  ``sum(w (y - mu)^2 / V(mu)) / df_resid``;
* the log-likelihood of gaussian, gamma and inverse_gaussian uses the ML dispersion
  ``deviance / n`` (gaussian) or ``deviance / sum(w)`` (gamma, inverse gaussian), and AIC/BIC
  count it as a parameter; binomial with proportions uses ``k = w y`` successes of ``w``
  trials; the Tweedie log-likelihood has no closed form, and is reported as NaN (as R does);
* the null deviance is that of the intercept-only model *with the offset* (R refits it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln, xlogy

from smglm.config.families import has_dispersion
from smglm.glm.links import linkfun, linkinv, mu_eta

__all__ = [
    "SplitMetrics",
    "deviance",
    "dispersion",
    "log_likelihood",
    "null_mean",
    "split_metrics",
    "unit_deviance",
    "variance",
]

Array = np.ndarray


@dataclass(frozen=True)
class Family:
    """A family name with its parameters (Tweedie power, negative binomial theta)."""

    name: str
    power: float | None = None
    theta: float | None = None


def variance(fam: Family, mu: Array) -> Array:
    """The variance function ``V(mu)``."""
    name = fam.name
    if name == "gaussian":
        return np.ones_like(mu)
    if name == "binomial":
        return mu * (1.0 - mu)
    if name == "poisson":
        return mu
    if name == "gamma":
        return mu**2
    if name == "inverse_gaussian":
        return mu**3
    if name == "tweedie":
        return mu ** float(fam.power or 1.5)
    if name == "negative_binomial":
        return mu + mu**2 / float(fam.theta or 1.0)
    raise ValueError(f"unknown family {name!r}")


def unit_deviance(fam: Family, y: Array, mu: Array) -> Array:
    """The unit deviance ``d(y, mu)``, exact for every family (Tweedie included)."""
    name = fam.name
    if name == "gaussian":
        return (y - mu) ** 2
    if name == "binomial":
        return 2.0 * (xlogy(y, y) - xlogy(y, mu) + xlogy(1 - y, 1 - y) - xlogy(1 - y, 1 - mu))
    if name == "poisson":
        return 2.0 * (xlogy(y, y) - xlogy(y, mu) - (y - mu))
    if name == "gamma":
        return 2.0 * (-np.log(y / mu) + (y - mu) / mu)
    if name == "inverse_gaussian":
        return (y - mu) ** 2 / (y * mu**2)
    if name == "tweedie":
        p = float(fam.power or 1.5)
        return 2.0 * (
            np.power(y, 2 - p) / ((1 - p) * (2 - p))
            - y * np.power(mu, 1 - p) / (1 - p)
            + np.power(mu, 2 - p) / (2 - p)
        )
    if name == "negative_binomial":
        th = float(fam.theta or 1.0)
        return 2.0 * (xlogy(y, y) - xlogy(y, mu) - (y + th) * np.log((y + th) / (mu + th)))
    raise ValueError(f"unknown family {name!r}")


def deviance(fam: Family, y: Array, mu: Array, w: Array) -> float:
    """``sum(w * d(y, mu))``."""
    return float(np.sum(w * unit_deviance(fam, y, mu)))


def dispersion(fam: Family, y: Array, mu: Array, w: Array, df_resid: float) -> float:
    """R's dispersion: 1 for poisson, binomial, negative binomial; else Pearson / df_resid."""
    if not has_dispersion(fam.name):
        return 1.0
    if df_resid <= 0:
        return math.nan
    return float(np.sum(w * (y - mu) ** 2 / variance(fam, mu)) / df_resid)


def log_likelihood(fam: Family, y: Array, mu: Array, w: Array, dev: float) -> float:
    """The log-likelihood as R's ``logLik.glm`` computes it (rows with w > 0 only)."""
    keep = w > 0
    y, mu, w = y[keep], mu[keep], w[keep]
    name = fam.name
    n = y.size
    if n == 0:
        return math.nan
    if name == "gaussian":
        return float(-0.5 * (n * (math.log(2 * math.pi * dev / n) + 1) - np.sum(np.log(w))))
    if name == "binomial":
        trials = np.round(w)
        k = np.round(w * y)
        logc = gammaln(trials + 1) - gammaln(k + 1) - gammaln(trials - k + 1)
        return float(np.sum(logc + xlogy(k, mu) + xlogy(trials - k, 1 - mu)))
    if name == "poisson":
        return float(np.sum(w * (xlogy(y, mu) - mu - gammaln(y + 1))))
    if name == "gamma":
        disp = dev / np.sum(w)
        shape = 1.0 / disp
        scale = mu * disp
        logf = (shape - 1) * np.log(y) - y / scale - gammaln(shape) - shape * np.log(scale)
        return float(np.sum(w * logf))
    if name == "inverse_gaussian":
        disp = dev / np.sum(w)
        return float(
            -0.5 * (np.sum(w) * (math.log(disp * 2 * math.pi) + 1) + 3 * np.sum(w * np.log(y)))
        )
    if name == "negative_binomial":
        th = float(fam.theta or 1.0)
        logf = (
            gammaln(th + y)
            - gammaln(th)
            - gammaln(y + 1)
            + th * math.log(th)
            + xlogy(y, mu)
            - (th + y) * np.log(th + mu)
        )
        return float(np.sum(w * logf))
    return math.nan  # tweedie: no closed form (R's statmod reports NA as well)


def null_mean(
    fam: Family,
    link: str,
    y: Array,
    w: Array,
    offset: Array | None,
    *,
    intercept: bool,
    max_iter: int = 50,
) -> tuple[Array, float]:
    """The fitted mean of the null model (intercept only, with the offset), and its intercept.

    Without an offset the intercept-only MLE is the weighted mean of y, whatever the link;
    with one, it has a closed form for the log link of the Poisson (``e^b = sum(w y) /
    sum(w e^offset)``) and the Gamma (``e^b = sum(w y e^-offset) / sum(w)``), and a
    one-parameter IRLS finds it otherwise (as R's ``glm`` does for ``null.deviance``).
    Without an intercept the null model is ``linkinv(offset)``.
    """
    off = np.zeros_like(y, dtype=float) if offset is None else np.asarray(offset, dtype=float)
    if not intercept:
        return linkinv(link, off), math.nan
    ybar = float(np.sum(w * y) / np.sum(w))
    if offset is None:
        return np.full_like(y, ybar, dtype=float), float(linkfun(link, np.array(ybar)))
    if link == "log" and fam.name in ("poisson", "gamma"):
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            if fam.name == "poisson":
                ratio = float(np.sum(w * y) / np.sum(w * np.exp(off)))
            else:
                ratio = float(np.sum(w * y * np.exp(-off)) / np.sum(w))
        if math.isfinite(ratio) and ratio > 0:
            b = math.log(ratio)
            return np.exp(b + off), b
    # start from the link of the mean minus the mean offset
    b = float(linkfun(link, np.array(ybar))) - float(np.sum(w * off) / np.sum(w))
    for _ in range(max_iter):
        eta = b + off
        mu = linkinv(link, eta)
        d = mu_eta(link, eta)
        var = variance(fam, mu)
        ww = w * d**2 / var
        z = b + (y - mu) / d
        b_new = float(np.sum(ww * z) / np.sum(ww))
        if abs(b_new - b) <= 1e-12 * (1 + abs(b)):
            b = b_new
            break
        b = b_new
    return linkinv(link, b + off), b


@dataclass(frozen=True)
class SplitMetrics:
    """The metrics of one data split (train or test), R conventions throughout."""

    n_obs: int
    deviance: float
    null_deviance: float
    explained_deviance: float
    log_likelihood: float
    aic: float
    bic: float
    dispersion: float
    df_resid: int
    gini: float

    def to_dict(self) -> dict[str, float | int]:
        return {k: _json_number(v) for k, v in self.__dict__.items()}


def _json_number(v: float | int) -> float | int:
    return v if isinstance(v, int) else float(v)


def split_metrics(
    fam: Family,
    y: Array,
    mu: Array,
    w: Array,
    mu_null: Array,
    n_params: int,
    gini: float,
) -> SplitMetrics:
    """All metrics of one split, given the fitted and null means and the number of
    coefficients ``n_params`` (intercept included)."""
    n_obs = int(np.count_nonzero(w > 0))
    dev = deviance(fam, y, mu, w)
    null_dev = deviance(fam, y, mu_null, w)
    df_resid = n_obs - n_params
    llf = log_likelihood(fam, y, mu, w, dev)
    k = n_params + (1 if has_dispersion(fam.name) else 0)
    return SplitMetrics(
        n_obs=n_obs,
        deviance=dev,
        null_deviance=null_dev,
        explained_deviance=1.0 - dev / null_dev if null_dev > 0 else math.nan,
        log_likelihood=llf,
        aic=-2 * llf + 2 * k,
        bic=-2 * llf + math.log(n_obs) * k if n_obs > 0 else math.nan,
        dispersion=dispersion(fam, y, mu, w, df_resid),
        df_resid=df_resid,
        gini=gini,
    )
