"""smglm.fit against statsmodels (which follows R's glm) on its shipped data sets and on
synthetic data for every family: coefficients, standard errors, p-values, deviance, null
deviance, log-likelihood and AIC to 1e-6 relative.

Where statsmodels' log-likelihood convention differs from R's (gamma and inverse gaussian use
the ML dispersion deviance / sum(w) in R, Pearson in statsmodels), the reference is
statsmodels' own density evaluated at R's dispersion (``family.loglike(..., scale=...)``), or
scipy's density for weighted gamma, which R weights as ``sum(w * log f)``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import statsmodels.api as sm

import smglm
from helpers import design

RTOL = 1e-6
sml = sm.families.links


def _sm_fit(model: sm.GLM) -> object:
    # R's summary.glm: t tests where the dispersion is estimated, z tests where it is fixed
    fixed = (sm.families.Binomial, sm.families.Poisson, sm.families.NegativeBinomial)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(tol=1e-13, maxiter=300, use_t=not isinstance(model.family, fixed))


def _design(df: pd.DataFrame, predictors: list[str], result: smglm.FitResult) -> pd.DataFrame:
    """statsmodels' design with the same terms and reference levels as smglm's."""
    terms = {t.name: getattr(t, "levels", None) for t in result.model.terms}
    return design(df, terms, intercept=result.config.fit_intercept)


def _assert_matches(result: smglm.FitResult, ref: object, *, n_dispersion: int, llf=None):
    coefs = result.coefficients.set_index("term")
    params = ref.params
    np.testing.assert_allclose(coefs.loc[params.index, "estimate"], params, rtol=RTOL, atol=1e-9)
    np.testing.assert_allclose(coefs.loc[params.index, "std_error"], ref.bse, rtol=RTOL)
    np.testing.assert_allclose(
        coefs.loc[params.index, "p_value"], ref.pvalues, rtol=1e-5, atol=1e-12
    )
    m = result.metrics["train"]
    assert m["deviance"] == pytest.approx(ref.deviance, rel=RTOL)
    assert m["null_deviance"] == pytest.approx(ref.null_deviance, rel=RTOL)
    assert m["dispersion"] == pytest.approx(ref.scale, rel=RTOL)
    assert m["df_resid"] == ref.df_resid
    llf_ref = ref.llf if llf is None else llf
    assert m["log_likelihood"] == pytest.approx(llf_ref, rel=RTOL)
    k = len(params) + n_dispersion
    assert m["aic"] == pytest.approx(-2 * llf_ref + 2 * k, rel=RTOL)
    assert m["bic"] == pytest.approx(-2 * llf_ref + np.log(m["n_obs"]) * k, rel=RTOL)


# ---------------------------------------------------------------------------------------
# statsmodels' shipped data sets (the classic R examples)


def test_fit_star98_binomial_proportions_with_trials_matches_statsmodels():
    data = sm.datasets.star98.load_pandas()
    endog, exog = data.endog, data.exog
    trials = endog["NABOVE"] + endog["NBELOW"]
    df = exog.copy()
    df["prop"] = endog["NABOVE"] / trials
    df["trials"] = trials
    predictors = list(exog.columns)
    result = smglm.fit(
        {"target": "prop", "predictors": predictors, "weights": "trials", "family": "binomial"},
        df,
    )
    ref = _sm_fit(
        sm.GLM(
            endog[["NABOVE", "NBELOW"]],
            _design(df, predictors, result),
            family=sm.families.Binomial(),
        )
    )
    _assert_matches(result, ref, n_dispersion=0)
    # R: deviance 4078.77 on 282 df (glum's own binomial deviance is ~331,028 here)
    assert result.metrics["train"]["deviance"] == pytest.approx(4078.765, abs=0.01)


def test_fit_scotland_gamma_inverse_link_matches_statsmodels():
    data = sm.datasets.scotland.load_pandas()
    df = data.exog.copy()
    df["YES"] = data.endog
    predictors = list(data.exog.columns)
    result = smglm.fit(
        {"target": "YES", "predictors": predictors, "family": "gamma", "link": "inverse"}, df
    )
    fam = sm.families.Gamma(sml.InversePower())
    ref = _sm_fit(sm.GLM(df["YES"], _design(df, predictors, result), family=fam))
    dev = ref.deviance
    llf_r = fam.loglike(df["YES"].to_numpy(), ref.mu, scale=dev / len(df))
    _assert_matches(result, ref, n_dispersion=1, llf=llf_r)


@pytest.mark.parametrize("with_offset", [False, True])
def test_fit_cpunish_poisson_matches_statsmodels(with_offset):
    data = sm.datasets.cpunish.load_pandas()
    df = data.exog.copy()
    df["EXECUTIONS"] = data.endog
    df["LN_VC100k96"] = np.log(df["VC100k96"])
    predictors = ["INCOME", "PERPOVERTY", "PERBLACK", "SOUTH", "DEGREE"]
    cfg = {"target": "EXECUTIONS", "predictors": predictors, "family": "poisson"}
    if with_offset:
        cfg["offset"] = "LN_VC100k96"
    else:
        predictors.append("LN_VC100k96")
    result = smglm.fit(cfg, df)
    offset = df["LN_VC100k96"] if with_offset else None
    ref = _sm_fit(
        sm.GLM(
            df["EXECUTIONS"],
            _design(df, predictors, result),
            family=sm.families.Poisson(),
            offset=offset,
        )
    )
    _assert_matches(result, ref, n_dispersion=0)


# ---------------------------------------------------------------------------------------
# synthetic data, every family


def _synthetic(n: int = 3000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.uniform(-1, 1, size=n),
            "cat": rng.choice(["lo", "mid", "hi", "top"], size=n, p=[0.2, 0.45, 0.25, 0.1]),
            "w": rng.uniform(0.5, 2.5, size=n),
            "expo": rng.uniform(0.1, 1.0, size=n),
        }
    )
    df["eta"] = (
        0.3 * df["x1"]
        - 0.4 * df["x2"]
        + df["cat"].map({"lo": 0.2, "mid": 0.0, "hi": -0.25, "top": 0.4})
    )
    return df


PRED = ["x1", "x2", "cat"]

CASES = {
    # name: (config extras, make target from (df, rng), statsmodels family, dispersion params)
    "gaussian-identity-weights": (
        {"family": "gaussian", "weights": "w"},
        lambda d, r: 1 + d.eta + r.normal(scale=0.5, size=len(d)) / np.sqrt(d.w),
        sm.families.Gaussian(),
        1,
    ),
    "gaussian-log": (
        {"family": "gaussian", "link": "log"},
        lambda d, r: np.exp(1 + d.eta) + r.normal(scale=0.3, size=len(d)),
        sm.families.Gaussian(sml.Log()),
        1,
    ),
    "binomial-logit": (
        {"family": "binomial"},
        lambda d, r: r.binomial(1, 1 / (1 + np.exp(-d.eta))).astype(float),
        sm.families.Binomial(),
        0,
    ),
    "binomial-probit": (
        {"family": "binomial", "link": "probit"},
        lambda d, r: r.binomial(1, scipy.stats.norm.cdf(d.eta)).astype(float),
        sm.families.Binomial(sml.Probit()),
        0,
    ),
    "binomial-cloglog": (
        {"family": "binomial", "link": "cloglog"},
        lambda d, r: r.binomial(1, 1 - np.exp(-np.exp(d.eta - 0.5))).astype(float),
        sm.families.Binomial(sml.CLogLog()),
        0,
    ),
    "poisson-weights": (
        {"family": "poisson", "weights": "w"},
        lambda d, r: r.poisson(np.exp(d.eta)).astype(float),
        sm.families.Poisson(),
        0,
    ),
    "poisson-identity": (
        {"family": "poisson", "link": "identity"},
        lambda d, r: r.poisson(3 + d.eta).astype(float),
        sm.families.Poisson(sml.Identity()),
        0,
    ),
    "gamma-log": (
        {"family": "gamma"},
        lambda d, r: r.gamma(2.0, np.exp(1 + d.eta) / 2.0),
        sm.families.Gamma(sml.Log()),
        1,
    ),
    "inverse_gaussian-log": (
        {"family": "inverse_gaussian"},
        lambda d, r: r.wald(np.exp(d.eta), 4.0),
        sm.families.InverseGaussian(sml.Log()),
        1,
    ),
    "negative_binomial-log": (
        {"family": "negative_binomial", "theta": 2.0},
        lambda d, r: r.negative_binomial(2.0, 2.0 / (2.0 + np.exp(d.eta))).astype(float),
        sm.families.NegativeBinomial(alpha=0.5),
        0,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fit_synthetic_family_matches_statsmodels(case):
    extra, make_y, fam, n_disp = CASES[case]
    df = _synthetic()
    df["y"] = make_y(df, np.random.default_rng(7))
    result = smglm.fit({"target": "y", "predictors": PRED, **extra}, df)
    var_w = df["w"] if "weights" in extra else None
    ref = _sm_fit(sm.GLM(df["y"], _design(df, PRED, result), family=fam, var_weights=var_w))
    llf = None
    if extra["family"] in ("gamma", "inverse_gaussian", "gaussian"):
        # R's log-likelihood uses the ML dispersion: deviance / n
        llf = fam.loglike(
            df["y"].to_numpy(),
            ref.mu,
            var_weights=1.0 if var_w is None else var_w.to_numpy(),
            scale=ref.deviance / len(df),
        )
    _assert_matches(result, ref, n_dispersion=n_disp, llf=llf)


def test_fit_poisson_with_exposure_matches_statsmodels_exposure():
    df = _synthetic()
    df["y"] = np.random.default_rng(3).poisson(df.expo * np.exp(df.eta - 1)).astype(float)
    result = smglm.fit(
        {"target": "y", "predictors": PRED, "exposure": "expo", "family": "poisson"}, df
    )
    # exposure as an array: statsmodels 0.14.6 under pandas 2.3 gives NaN estimates for a Series
    expo = df["expo"].to_numpy()
    ref = _sm_fit(
        sm.GLM(df["y"], _design(df, PRED, result), family=sm.families.Poisson(), exposure=expo)
    )
    _assert_matches(result, ref, n_dispersion=0)


def test_fit_gamma_with_weights_loglik_follows_r_convention():
    df = _synthetic()
    df["y"] = np.random.default_rng(5).gamma(2.0, np.exp(1 + df.eta) / 2.0)
    result = smglm.fit({"target": "y", "predictors": PRED, "weights": "w", "family": "gamma"}, df)
    fam = sm.families.Gamma(sml.Log())
    ref = _sm_fit(sm.GLM(df["y"], _design(df, PRED, result), family=fam, var_weights=df["w"]))
    coefs = result.coefficients.set_index("term")
    np.testing.assert_allclose(coefs.loc[ref.params.index, "estimate"], ref.params, rtol=RTOL)
    np.testing.assert_allclose(coefs.loc[ref.params.index, "std_error"], ref.bse, rtol=RTOL)
    # R's Gamma()$aic: -2 * sum(w * dgamma(y, 1/disp, scale = mu * disp, log = TRUE)) + 2,
    # with disp = deviance / sum(w)
    disp = ref.deviance / df["w"].sum()
    llf_r = float(
        np.sum(df["w"] * scipy.stats.gamma.logpdf(df["y"], a=1 / disp, scale=ref.mu * disp))
    )
    assert result.metrics["train"]["log_likelihood"] == pytest.approx(llf_r, rel=RTOL)
    assert result.metrics["train"]["aic"] == pytest.approx(
        -2 * llf_r + 2 * (len(ref.params) + 1), rel=RTOL
    )


@pytest.mark.parametrize("power", [1.2, 1.5, 1.8])
def test_fit_tweedie_matches_statsmodels(power):
    df = _synthetic()
    rng = np.random.default_rng(11)
    mu = np.exp(df.eta)
    counts = rng.poisson(mu * 0.8)
    df["y"] = [rng.gamma(2.0, m / 1.6, size=k).sum() for m, k in zip(mu, counts, strict=True)]
    result = smglm.fit(
        {"target": "y", "predictors": PRED, "family": "tweedie", "tweedie_power": power}, df
    )
    ref = _sm_fit(
        sm.GLM(
            df["y"],
            _design(df, PRED, result),
            family=sm.families.Tweedie(var_power=power, eql=True),
        )
    )
    coefs = result.coefficients.set_index("term")
    np.testing.assert_allclose(
        coefs.loc[ref.params.index, "estimate"], ref.params, rtol=RTOL, atol=1e-9
    )
    np.testing.assert_allclose(coefs.loc[ref.params.index, "std_error"], ref.bse, rtol=RTOL)
    m = result.metrics["train"]
    assert m["deviance"] == pytest.approx(ref.deviance, rel=RTOL)
    assert m["dispersion"] == pytest.approx(ref.scale, rel=RTOL)
    assert np.isnan(m["log_likelihood"]) and np.isnan(m["aic"])  # R's tweedie: AIC is NA


def test_fit_without_intercept_matches_statsmodels():
    df = _synthetic()
    df["y"] = np.random.default_rng(2).poisson(np.exp(df.eta)).astype(float)
    result = smglm.fit(
        {"target": "y", "predictors": ["x1", "x2"], "family": "poisson", "fit_intercept": False}, df
    )
    ref = _sm_fit(sm.GLM(df["y"], df[["x1", "x2"]], family=sm.families.Poisson()))
    coefs = result.coefficients.set_index("term")
    np.testing.assert_allclose(coefs.loc[["x1", "x2"], "estimate"], ref.params, rtol=RTOL)
    np.testing.assert_allclose(coefs.loc[["x1", "x2"], "std_error"], ref.bse, rtol=RTOL)
    assert result.metrics["train"]["deviance"] == pytest.approx(ref.deviance, rel=RTOL)


def test_fit_single_categorical_predictor_matches_statsmodels():
    """A design of one categorical alone (tabmat gives a sparse sandwich there)."""
    df = _synthetic()
    df["y"] = 1 + df.eta + np.random.default_rng(9).normal(size=len(df))
    result = smglm.fit({"target": "y", "predictors": ["cat"], "family": "gaussian"}, df)
    ref = _sm_fit(sm.GLM(df["y"], _design(df, ["cat"], result), family=sm.families.Gaussian()))
    coefs = result.coefficients.set_index("term")
    np.testing.assert_allclose(coefs.loc[ref.params.index, "estimate"], ref.params, rtol=RTOL)
    np.testing.assert_allclose(coefs.loc[ref.params.index, "std_error"], ref.bse, rtol=RTOL)


@pytest.mark.parametrize(
    ("name", "sm_family"),
    [
        ("poisson", lambda: sm.families.Poisson()),
        ("gamma", lambda: sm.families.Gamma(sm.families.links.Log())),
        ("tweedie", lambda: sm.families.Tweedie(sm.families.links.Log(), var_power=1.5)),
    ],
)
def test_null_model_with_offset_matches_statsmodels(name, sm_family):
    """The intercept-only model with an offset: closed form for the Poisson and Gamma with the
    log link, a one-parameter IRLS for the others; statsmodels' fit is the reference."""
    from smglm.glm.families import get_family
    from smglm.glm.stats import null_mean

    rng = np.random.default_rng(17)
    n = 4000
    off = np.log(rng.uniform(0.2, 2.0, n))
    w = rng.uniform(0.5, 2.0, n)
    mu = np.exp(-0.7 + off + 0.3 * rng.normal(size=n))
    y = rng.poisson(mu).astype(float) if name == "poisson" else rng.gamma(2.0, mu / 2.0)
    fam = get_family(name, tweedie_power=1.5 if name == "tweedie" else None)
    fitted, b = null_mean(fam, "log", y, w, off, intercept=True)
    ref = sm.GLM(y, np.ones((n, 1)), family=sm_family(), offset=off, var_weights=w).fit(tol=1e-14)
    assert b == pytest.approx(float(ref.params[0]), rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(fitted, ref.fittedvalues, rtol=1e-9)
