"""Fit statistics with R's glm conventions: deviance, dispersion, log-likelihood, AIC, BIC.

glum's own figures differ from R's in several cases (weights treated as frequency weights,
no offset in AIC, binomial deviance without the saturated term, an approximate Tweedie unit
deviance): see ``glum-notes.md``. Everything here is computed from ``y``, ``mu`` and the prior
weights with the formulas of R's ``family`` objects (the family's own formulas are methods of
its :class:`~smglm.glm.families.FamilySpec`), so it does not depend on glum.

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

from smglm.glm.families import FamilySpec
from smglm.glm.links import linkfun, linkinv, mu_eta

__all__ = [
    "ALIAS_TOLERANCE",
    "SplitMetrics",
    "aliased_columns",
    "deviance",
    "dispersion",
    "null_mean",
    "split_metrics",
]

Array = np.ndarray

#: A column is aliased when the share of its (weighted, scaled) sum of squares left after
#: projecting it on the earlier columns is below this: R's ``qr`` tolerance 1e-7 on the norm is
#: 1e-14 on the sum of squares; a cross-product matrix loses about half the digits of a QR, so
#: the threshold is 1e-10 (a column with R^2 > 1 - 1e-10 on the earlier ones).
ALIAS_TOLERANCE = 1e-10


def aliased_columns(info: Array, tol: float = ALIAS_TOLERANCE) -> list[int]:
    """The columns of a design that are linear combinations of earlier columns, given its
    weighted cross-product ``info = X' W X`` (R's rank detection: its pivoted QR keeps the
    columns in order and sets the coefficient of each dependent column to ``NA``).

    Columns are scaled to unit sum of squares first, so a column's scale does not matter; a
    column that is zero on every weighted row is aliased. One Cholesky factorisation answers
    when nothing is aliased; otherwise the columns are taken one at a time.
    """
    from scipy.linalg import solve_triangular

    p = info.shape[0]
    if p == 0:
        return []
    diag = np.diag(info).astype(float)
    zero = ~(diag > 0) | ~np.isfinite(diag)
    d = np.sqrt(np.where(zero, 1.0, diag))
    gram = info / d[:, None] / d[None, :]
    if not zero.any() and np.all(np.isfinite(gram)):
        try:
            chol = np.linalg.cholesky(gram)
        except np.linalg.LinAlgError:
            chol = None
        if chol is not None and np.min(np.diag(chol)) ** 2 >= tol:
            return []
    factor = np.zeros((p, p))
    kept: list[int] = []
    aliased: list[int] = []
    for j in range(p):
        if zero[j] or not np.all(np.isfinite(gram[j])):
            aliased.append(j)
            continue
        k = len(kept)
        if k:
            v = solve_triangular(factor[:k, :k], gram[kept, j], lower=True, check_finite=False)
            rest = float(gram[j, j] - v @ v)
        else:
            v, rest = np.empty(0), float(gram[j, j])
        if rest < tol:
            aliased.append(j)
            continue
        factor[k, :k] = v
        factor[k, k] = math.sqrt(rest)
        kept.append(j)
    return aliased


def deviance(fam: FamilySpec, y: Array, mu: Array, w: Array) -> float:
    """``sum(w * d(y, mu))``."""
    return float(np.sum(w * fam.unit_deviance(y, mu)))


def dispersion(fam: FamilySpec, y: Array, mu: Array, w: Array, df_resid: float) -> float:
    """R's dispersion: 1 for poisson, binomial, negative binomial; else Pearson / df_resid."""
    if not fam.has_dispersion:
        return 1.0
    if df_resid <= 0:
        return math.nan
    return float(np.sum(w * (y - mu) ** 2 / fam.variance(mu)) / df_resid)


def null_mean(
    fam: FamilySpec,
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
    with one, some families have a closed form for the log link
    (:meth:`~smglm.glm.families.FamilySpec.null_log_mean_ratio`), and a one-parameter IRLS
    finds it otherwise (as R's ``glm`` does for ``null.deviance``).
    Without an intercept the null model is ``linkinv(offset)``.
    """
    off = np.zeros_like(y, dtype=float) if offset is None else np.asarray(offset, dtype=float)
    if not intercept:
        return linkinv(link, off), math.nan
    ybar = float(np.sum(w * y) / np.sum(w))
    if offset is None:
        return np.full_like(y, ybar, dtype=float), float(linkfun(link, np.array(ybar)))
    ratio = fam.null_log_mean_ratio(y, w, off) if link == "log" else None
    if ratio is not None and math.isfinite(ratio) and ratio > 0:
        b = math.log(ratio)
        return np.exp(b + off), b
    # start from the link of the mean minus the mean offset
    b = float(linkfun(link, np.array(ybar))) - float(np.sum(w * off) / np.sum(w))
    for _ in range(max_iter):
        eta = b + off
        mu = linkinv(link, eta)
        d = mu_eta(link, eta)
        var = fam.variance(mu)
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

    @classmethod
    def from_fit(
        cls,
        fam: FamilySpec,
        *,
        n_obs: int,
        deviance: float,
        null_deviance: float,
        log_likelihood: float,
        n_params: int,
        dispersion: float,
        gini: float,
    ) -> SplitMetrics:
        """The metrics from a split's deviances and log-likelihood: explained deviance, AIC
        and BIC (``n_params`` coefficients, plus the dispersion when the family estimates it)
        and ``df_resid = n_obs - n_params``, R's conventions."""
        k = n_params + (1 if fam.has_dispersion else 0)
        return cls(
            n_obs=n_obs,
            deviance=deviance,
            null_deviance=null_deviance,
            explained_deviance=(1.0 - deviance / null_deviance if null_deviance > 0 else math.nan),
            log_likelihood=log_likelihood,
            aic=-2 * log_likelihood + 2 * k,
            bic=-2 * log_likelihood + math.log(n_obs) * k if n_obs > 0 else math.nan,
            dispersion=dispersion,
            df_resid=n_obs - n_params,
            gini=gini,
        )


def _json_number(v: float | int) -> float | int:
    return v if isinstance(v, int) else float(v)


def split_metrics(
    fam: FamilySpec,
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
    return SplitMetrics.from_fit(
        fam,
        n_obs=n_obs,
        deviance=dev,
        null_deviance=deviance(fam, y, mu_null, w),
        log_likelihood=fam.log_likelihood(y, mu, w, dev),
        n_params=n_params,
        dispersion=dispersion(fam, y, mu, w, n_obs - n_params),
        gini=gini,
    )
