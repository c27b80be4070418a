"""The family objects (smglm.glm.families): in line with the config's table of names and links,
consistent with themselves (variance and unit deviance), and an unknown family is an error
everywhere, never a NaN."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

import smglm
from smglm.config import GLMConfig
from smglm.config.families import DEFAULT_LINK, FAMILIES, FAMILY_LINKS, LINKS
from smglm.errors import ConfigError, DataError
from smglm.glm import stats
from smglm.glm.families import (
    FAMILY_SPECS,
    FamilySpec,
    NegativeBinomial,
    Tweedie,
    family_of,
    get_family,
)

#: A mean inside every family's domain, and targets inside each family's domain.
MU = np.array([0.2, 0.45, 0.7, 0.9])
Y = {
    "gaussian": np.array([-0.3, 0.5, 1.2, 0.9]),
    "binomial": np.array([0.0, 1.0, 0.25, 1.0]),
    "poisson": np.array([0.0, 1.0, 3.0, 2.0]),
    "gamma": np.array([0.1, 0.5, 2.0, 1.3]),
    "inverse_gaussian": np.array([0.1, 0.5, 2.0, 1.3]),
    "tweedie": np.array([0.0, 0.5, 2.0, 1.3]),
    "negative_binomial": np.array([0.0, 1.0, 3.0, 2.0]),
}
DISPERSED = {"gaussian", "gamma", "inverse_gaussian", "tweedie"}


# -- the two tables agree ----------------------------------------------------------------------
def test_family_objects_and_the_config_table_name_the_same_families_in_the_same_order():
    assert tuple(FAMILY_SPECS) == FAMILIES


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_object_has_the_config_tables_links(name):
    fam = get_family(name)
    assert isinstance(fam, FamilySpec)
    assert fam.name == name == FAMILY_SPECS[name].name
    assert fam.links == FAMILY_LINKS[name]
    assert fam.default_link == DEFAULT_LINK[name] == fam.links[0]
    assert set(fam.links) <= set(LINKS)


@pytest.mark.parametrize("name", FAMILIES)
def test_has_dispersion_is_rs_rule(name):
    """R estimates the dispersion (t statistics, one more parameter in AIC) except for the
    poisson, binomial and negative binomial."""
    assert get_family(name).has_dispersion is (name in DISPERSED)


# -- unknown families --------------------------------------------------------------------------
def test_unknown_family_is_a_config_error_naming_field_value_and_choices():
    with pytest.raises(ConfigError) as err:
        get_family("poison")
    assert err.value.fields == ["family"]
    issue = err.value.issues[0]
    assert issue.value == "poison"
    assert "'poison'" in issue.message and str(list(FAMILIES)) in issue.message
    assert "Did you mean 'poisson'?" in issue.message


def test_unknown_family_is_an_error_in_the_statistics_not_a_nan_log_likelihood():
    """Before the family objects, ``log_likelihood`` of an unknown family was NaN, and so were
    AIC and BIC: now the statistics cannot be asked for one."""
    with pytest.raises(ConfigError, match="unknown family 'weibull'"):
        get_family("weibull")
    with pytest.raises(ConfigError, match="unknown family 'weibull'"):
        family_of(GLMConfig.model_construct(family="weibull", link=None))


def test_unknown_family_in_a_config_is_a_config_error_listing_the_families():
    with pytest.raises(ConfigError) as err:
        GLMConfig(target="y", family="weibull")
    assert "family" in err.value.fields


# -- parameters --------------------------------------------------------------------------------
def test_parameters_are_bound_to_the_family_object_with_rs_defaults():
    assert get_family("tweedie") == Tweedie(1.5)
    assert get_family("tweedie", tweedie_power=1.2).power == 1.2
    assert get_family("negative_binomial") == NegativeBinomial(1.0)
    assert get_family("negative_binomial", theta=3.0).theta == 3.0
    # a family without parameters ignores them
    assert get_family("poisson", tweedie_power=1.2, theta=3.0) == get_family("poisson")


def test_family_of_a_config_carries_its_parameter():
    cfg = GLMConfig(target="y", family="tweedie", tweedie_power=1.7)
    assert family_of(cfg) == Tweedie(1.7)
    cfg = GLMConfig(target="y", family="negative_binomial", theta=2.5)
    assert family_of(cfg) == NegativeBinomial(2.5)


# -- variance, unit deviance, log-likelihood ---------------------------------------------------
def _instances() -> list[FamilySpec]:
    return [
        *(get_family(n) for n in FAMILIES),
        Tweedie(1.2),
        Tweedie(1.8),
        NegativeBinomial(0.5),
    ]


@pytest.mark.parametrize("fam", _instances(), ids=repr)
def test_unit_deviance_is_zero_at_the_mean_and_its_slope_is_minus_2_residual_over_variance(fam):
    """d(y, y) = 0 and dd/dmu = -2 (y - mu) / V(mu): the variance function and the unit
    deviance of a family agree (a new family that gets one of them wrong fails here)."""
    y = Y[fam.name]
    mu = MU
    ok = (y > 0) & (y < 1) if fam.name == "binomial" else (y > 0)
    np.testing.assert_allclose(fam.unit_deviance(y[ok], y[ok]), 0.0, atol=1e-12)
    h = 1e-6
    slope = (fam.unit_deviance(y, mu + h) - fam.unit_deviance(y, mu - h)) / (2 * h)
    np.testing.assert_allclose(slope, -2 * (y - mu) / fam.variance(mu), rtol=1e-6)
    assert np.all(fam.unit_deviance(y, mu) >= 0)


def test_log_likelihood_is_the_density_for_unit_weights():
    w = np.ones(4)
    poisson = get_family("poisson")
    y = Y["poisson"]
    assert poisson.log_likelihood(y, MU, w, 0.0) == pytest.approx(
        scipy.stats.poisson.logpmf(y, MU).sum(), rel=1e-12
    )
    nb = get_family("negative_binomial", theta=2.0)
    assert nb.log_likelihood(y, MU, w, 0.0) == pytest.approx(
        scipy.stats.nbinom.logpmf(y, 2.0, 2.0 / (2.0 + MU)).sum(), rel=1e-12
    )
    gauss = get_family("gaussian")
    y = Y["gaussian"]
    dev = float(np.sum(gauss.unit_deviance(y, MU)))
    sigma = np.sqrt(dev / y.size)  # R's ML dispersion
    assert gauss.log_likelihood(y, MU, w, dev) == pytest.approx(
        scipy.stats.norm.logpdf(y, MU, sigma).sum(), rel=1e-12
    )


@pytest.mark.parametrize("name", FAMILIES)
def test_log_likelihood_counts_only_rows_with_positive_weight(name):
    fam = get_family(name)
    y, w = Y[name], np.array([1.0, 2.0, 1.0, 1.0])
    dev = stats.deviance(fam, y, MU, w)
    with_zero = fam.log_likelihood(np.append(y, y[0]), np.append(MU, 0.5), np.append(w, 0.0), dev)
    without = fam.log_likelihood(y, MU, w, dev)
    np.testing.assert_equal(with_zero, without)
    assert np.isnan(fam.log_likelihood(y, MU, np.zeros(4), dev))
    assert bool(np.isnan(without)) is (name == "tweedie")  # no closed form, as R's NA


def test_split_metrics_count_the_dispersion_in_aic_where_it_is_estimated():
    w = np.ones(4)
    for name in FAMILIES:
        fam = get_family(name)
        m = stats.split_metrics(fam, Y[name], MU, w, np.full(4, 0.6), 2, 0.0)
        if name == "tweedie":
            assert np.isnan(m.aic)
            continue
        k = 2 + (1 if name in DISPERSED else 0)
        assert m.aic == pytest.approx(-2 * m.log_likelihood + 2 * k, rel=1e-12)


# -- the target's domain -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "y", "weighted", "words"),
    [
        ("binomial", [0.0, 1.5], False, "outside [0, 1] (min 0, max 1.5)"),
        ("binomial", [0.0, 0.5], False, "holds proportions (e.g. 0.5) but no weights"),
        ("poisson", [0.0, -1.0], False, "1 negative value(s) (min -1); family 'poisson'"),
        ("tweedie", [-2.0, 1.0], False, "family 'tweedie' needs a target >= 0"),
        ("negative_binomial", [-2.0, 1.0], False, "family 'negative_binomial' needs"),
        ("gamma", [0.0, 1.0], False, "1 value(s) <= 0 (min 0); family 'gamma' needs a target > 0"),
        ("inverse_gaussian", [-1.0, 1.0], False, "family 'inverse_gaussian' needs a target > 0"),
    ],
)
def test_check_target_names_the_column_the_values_and_the_domain(name, y, weighted, words):
    issues = get_family(name).check_target(
        np.array(y), np.ones(len(y)), column="claims", weighted=weighted
    )
    assert len(issues) == 1
    assert issues[0].field == "target" and issues[0].value == "claims"
    assert words in issues[0].message and "'claims'" in issues[0].message


@pytest.mark.parametrize("name", FAMILIES)
def test_check_target_accepts_the_domain_and_ignores_zero_weight_rows(name):
    fam = get_family(name)
    y = Y[name]
    assert fam.check_target(y, np.ones(4), column="y", weighted=True) == []
    outside = np.append(y, -5.0 if name != "gaussian" else 1e9)
    assert fam.check_target(outside, np.append(np.ones(4), 0.0), column="y", weighted=True) == []


def test_prepare_reports_the_familys_target_check_as_a_data_error():
    df = pd.DataFrame({"y": [1.0, 0.0, 2.0], "x": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match="family 'gamma' needs a target > 0"):
        smglm.fit({"target": "y", "predictors": ["x"], "family": "gamma"}, df)


# -- engines -----------------------------------------------------------------------------------
def test_glum_distribution_of_each_family():
    from glum import NegativeBinomialDistribution, TweedieDistribution

    names = {n: get_family(n).glum() for n in FAMILIES if n not in ("tweedie", "negative_binomial")}
    assert names == {
        "gaussian": "normal",
        "binomial": "binomial",
        "poisson": "poisson",
        "gamma": "gamma",
        "inverse_gaussian": "inverse.gaussian",
    }
    tweedie = Tweedie(1.3).glum()
    # glum keeps the power as a float32: equal to 1.3 under numpy 2's promotion, not numpy 1's
    assert isinstance(tweedie, TweedieDistribution) and tweedie.power == pytest.approx(1.3)
    nb = NegativeBinomial(4.0).glum()  # glum's theta is R's 1 / theta
    assert isinstance(nb, NegativeBinomialDistribution) and nb.theta == 0.25


def test_spark_parameters_say_what_spark_glr_fits():
    assert get_family("poisson").spark_params("log") == {"family": "poisson", "link": "log"}
    assert get_family("binomial").spark_params("probit") == {"family": "binomial", "link": "probit"}
    assert get_family("binomial").spark_params("log") is None  # Spark's binomial has no log link
    assert get_family("inverse_gaussian").spark_params("log") == {
        "family": "tweedie",
        "variancePower": 3.0,
        "linkPower": 0.0,
    }
    assert Tweedie(1.4).spark_params("identity") == {
        "family": "tweedie",
        "variancePower": 1.4,
        "linkPower": 1.0,
    }
    assert get_family("negative_binomial").spark_params("log") is None
    for name in FAMILIES:  # whatever Spark takes is a link smglm offers for the family
        fam = get_family(name)
        assert set(fam.spark_links) <= set(fam.links)
