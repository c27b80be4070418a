"""Comparisons that guide the next model (``smglm.glm.compare``): the nested-model test against
statsmodels fits of both models with scipy's distributions, the reasons it does not apply, the
Gini's bootstrap interval; and ``%sm_jobs``'s compact table (best mark, cost, age).

Tolerances: smglm (glum, tol 1e-10) and statsmodels (IRLS, tol 1e-13) agree on each
deviance to ~1e-9 relative; the deviance saved by the bigger model is compared to 1e-6
relative (it is a difference of two large numbers), the statistic and the dispersion to 1e-6,
the p-values to 1e-5 relative (1e-12 absolute for tiny ones), ΔAIC to 1e-6 absolute.
"""

from __future__ import annotations

import dataclasses
import warnings
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

import smglm
from helpers import design
from smglm.datasets import motor
from smglm.errors import ConfigError
from smglm.glm.compare import GiniInterval, bootstrap_gini, nested_reason, nested_test
from smglm.glm.report.ranking import gini
from smglm.launch import pricing
from smglm.notebook.cmd.jobs import BEST, JobFacts, JobsTable, _age, _cost

TOL = 1e-10


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return motor(4000, seed=3)


@pytest.fixture(scope="module")
def fits(data) -> tuple[smglm.FitResult, smglm.FitResult]:
    """The small model (BASE) and the bigger one (BIG) on ``data``."""
    return _fit(data, **BASE), _fit(data, **BIG)


def _fit(df: pd.DataFrame, **config) -> smglm.FitResult:
    return smglm.fit({"tol": TOL, **config}, df)


def _sm(df: pd.DataFrame, result: smglm.FitResult, family, **kwargs):
    terms = {t.name: getattr(t, "levels", None) for t in result.model.terms}
    X = design(df, terms, intercept=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sm.GLM(df[result.config.target], X, family=family, **kwargs).fit(
            tol=1e-13, maxiter=300
        )


# -- the nested test against statsmodels + scipy ----------------------------------------------
def test_poisson_with_exposure_nested_test_is_the_chi2_test_of_statsmodels_fits(data):
    base = {"target": "claim_count", "exposure": "exposure", "family": "poisson"}
    small = _fit(data, predictors=["driver_age", "area"], **base)
    big = _fit(data, predictors=["driver_age", "area", "bonus_malus", "vehicle_power"], **base)
    offset = np.log(data["exposure"])
    ref_s = _sm(data, small, sm.families.Poisson(), offset=offset)
    ref_b = _sm(data, big, sm.families.Poisson(), offset=offset)

    test = nested_test(big, small, names=("big", "small"))  # either order
    assert test is not None and test.test == "chi2"
    assert (test.small, test.big) == ("small", "big")
    delta = ref_s.deviance - ref_b.deviance
    assert test.delta_df == ref_s.df_resid - ref_b.df_resid == 2
    assert test.delta_deviance == pytest.approx(delta, rel=1e-6)
    assert test.dispersion == 1.0
    assert test.statistic == pytest.approx(delta, rel=1e-6)
    expected_p = stats.chi2.sf(delta, 2)
    assert test.p_value == pytest.approx(expected_p, rel=1e-5, abs=1e-12)
    assert test.delta_aic == pytest.approx(ref_b.aic - ref_s.aic, abs=1e-6)
    assert test.df_resid == ref_b.df_resid
    text = test.to_text()
    assert "χ²(2)" in text and "big vs small (adds 2 coefficients; training rows): Δdev" in text
    assert test == nested_test(small, big, names=("small", "big"))


def test_gamma_nested_test_is_the_f_test_with_the_big_models_pearson_dispersion(data):
    claims = data[data["claim_count"] > 0].reset_index(drop=True)
    base = {"target": "severity", "family": "gamma", "link": "log"}
    small = _fit(claims, predictors=["driver_age"], **base)
    big = _fit(claims, predictors=["driver_age", "area", "vehicle_power"], **base)
    family = sm.families.Gamma(sm.families.links.Log())
    ref_s, ref_b = _sm(claims, small, family), _sm(claims, big, family)

    test = nested_test(small, big)
    assert test is not None and test.test == "F"
    phi = ref_b.pearson_chi2 / ref_b.df_resid  # the bigger model's Pearson dispersion
    delta_df = int(ref_s.df_resid - ref_b.df_resid)
    delta = ref_s.deviance - ref_b.deviance
    f_stat = delta / delta_df / phi
    assert test.delta_df == delta_df == len(big.coefficients) - len(small.coefficients)
    assert test.dispersion == pytest.approx(phi, rel=1e-6)
    assert test.delta_deviance == pytest.approx(delta, rel=1e-6)
    assert test.statistic == pytest.approx(f_stat, rel=1e-6)
    expected_p = stats.f.sf(f_stat, delta_df, ref_b.df_resid)
    assert test.p_value == pytest.approx(expected_p, rel=1e-5, abs=1e-12)
    # R's AIC (smglm's): statsmodels' density at R's dispersion deviance / n, the dispersion
    # counted as a parameter (the same count in both models: it cancels in the difference)
    y = claims["severity"].to_numpy()

    def aic(ref) -> float:
        llf = family.loglike(y, ref.mu, scale=ref.deviance / len(claims))
        return -2 * llf + 2 * (len(ref.params) + 1)

    assert test.delta_aic == pytest.approx(aic(ref_b) - aic(ref_s), abs=1e-6)
    assert f"F({delta_df}, {int(ref_b.df_resid)})" in test.to_text()


# -- when the test does not apply -----------------------------------------------------------
BASE = {
    "target": "claim_count",
    "exposure": "exposure",
    "family": "poisson",
    "predictors": ["driver_age", "area"],
}
BIG = {**BASE, "predictors": ["driver_age", "area", "vehicle_power"]}

NOT_NESTED = {
    "family": ({"family": "negative_binomial"}, "family differs (A: 'poisson', B: 'negative_"),
    "target": ({"target": "n_drivers"}, "target differs (A: 'claim_count', B: 'n_drivers')"),
    "exposure": ({"exposure": None}, "exposure differs (A: 'exposure', B: None)"),
    "weights": ({"weights": "n_drivers"}, "weights differs (A: None, B: 'n_drivers')"),
    "penalty": ({"penalty": {"alpha": 0.01}}, "B is penalized (penalty.alpha=0.01)"),
    "bounds": (
        {"constraints": {"bounds": {"vehicle_power": [0, None]}}},
        "B is bounded (constraints.bounds on ['vehicle_power'])",
    ),
    "fixed": (
        {"fixed": {"vehicle_power": 0.01}},
        "not nested: the fixed terms differ (A: none, B: {'vehicle_power': 0.01})",
    ),
    "test split": (
        {"test": {"fraction": 0.2, "seed": 1}},
        "not fitted on the same rows: the test split differs",
    ),
    "terms": (
        {"predictors": ["driver_age", "region"]},
        "neither model's terms contain the other's (A has area that B lacks; B has region that "
        "A lacks)",
    ),
    "term kind": (
        {"terms": {"driver_age": {"spline": {"df": 3}}}},
        "A has driver_age (entering differently) that B lacks",
    ),
}


@pytest.mark.parametrize("case", NOT_NESTED, ids=list(NOT_NESTED))
def test_not_nested_gives_a_reason_naming_what_differs(data, fits, case):
    change, message = NOT_NESTED[case]
    a = fits[0]
    b = _fit(data, **{**BIG, **change})
    assert nested_test(a, b) is None
    reason = nested_reason(a, b)
    assert reason is not None and message in reason, reason


def test_the_same_fixed_terms_in_both_still_nest(data):
    fixed = {"fixed": {"density_log": 0.09}}
    a = _fit(data, **{**BASE, "predictors": ["driver_age", "area", "density_log"]}, **fixed)
    b = _fit(data, **{**BIG, "predictors": [*BIG["predictors"], "density_log"]}, **fixed)
    test = nested_test(a, b)
    assert test is not None and (test.small, test.big, test.delta_df) == ("A", "B", 1)
    ma, mb = a.metrics["train"], b.metrics["train"]
    assert test.delta_deviance == ma["deviance"] - mb["deviance"]


def test_not_nested_with_another_link_names_the_links(fits):
    a, b = fits
    other = dataclasses.replace(b, config=b.config.model_copy(update={"link": "identity"}))
    assert nested_test(a, other) is None
    assert nested_reason(a, other) == "not nested: link differs (A: 'log', B: 'identity')"


def test_not_nested_on_other_rows_names_the_row_counts_or_the_null_deviance(data, fits):
    a = fits[0]
    fewer = _fit(data.iloc[:3000], **BIG)
    assert nested_reason(a, fewer) == (
        "not fitted on the same rows: A on 4,000 training rows, B on 3,000"
    )
    other = motor(4000, seed=4)  # as many rows, other data
    reason = nested_reason(a, _fit(other, **BIG))
    assert reason is not None
    assert reason.startswith("not fitted on the same rows: same row count but different null")


def test_same_terms_or_no_metrics_is_not_a_nested_test(data, fits):
    a, b = fits
    assert nested_reason(a, _fit(data, **BASE)) == (
        "not nested: A and B have the same terms (nothing to test)"
    )
    bare = smglm.FitResult(config=a.config, model=a.model, coefficients=a.coefficients, metrics={})
    assert nested_reason(bare, a) == (
        "A has no training deviance, df_resid, n_obs (a model without its metrics.json)"
    )
    assert nested_reason(a, b) is None


# -- the Gini's bootstrap interval ------------------------------------------------------------
@pytest.fixture(scope="module")
def scored(data, fits):
    result = fits[1]
    return data["claim_count"].to_numpy(float), result.predict(data), data["exposure"].to_numpy()


def test_bootstrap_gini_is_reproducible_and_its_interval_holds_the_gini(scored):
    actual, predicted, exposure = scored
    one = bootstrap_gini(actual, predicted, exposure, n=200, seed=7)
    again = bootstrap_gini(actual, predicted, exposure, n=200, seed=7)
    other = bootstrap_gini(actual, predicted, exposure, n=200, seed=8)
    assert isinstance(one, GiniInterval) and one.n == 200 and one.level == 0.95
    assert one == again and np.array_equal(one.replicates, again.replicates)
    assert (one.low, one.high) != (other.low, other.high)
    assert one.gini == gini(actual, predicted, exposure)
    assert one.low < one.gini < one.high
    assert [one.low, one.high] == pytest.approx(np.quantile(one.replicates, [0.025, 0.975]))
    narrow = bootstrap_gini(actual, predicted, exposure, n=200, seed=7, level=0.5)
    assert one.low < narrow.low < narrow.high < one.high


def test_each_bootstrap_gini_is_the_gini_of_rows_drawn_with_replacement(scored):
    actual, predicted, exposure = scored
    exposure = exposure.copy()
    exposure[:10] = 0.0  # rows without exposure are not drawn
    result = bootstrap_gini(actual, predicted, exposure, n=3, seed=11)
    keep = exposure > 0
    a, p, e = actual[keep], predicted[keep], exposure[keep]
    rng = np.random.default_rng(11)
    for value in result.replicates:
        rows = rng.integers(0, len(e), len(e))
        assert value == pytest.approx(gini(a[rows], p[rows], e[rows]), rel=1e-12, abs=1e-14)


def test_bootstrap_gini_without_resamples_and_bad_arguments(scored):
    actual, predicted, exposure = scored
    alone = bootstrap_gini(actual, predicted, exposure, n=0)
    assert alone.n == 0 and np.isnan(alone.low) and np.isnan(alone.high)
    assert alone.to_text() == f"{alone.gini:.3f}"
    with pytest.raises(ConfigError, match=r"n: the number of resamples must be an integer >= 0"):
        bootstrap_gini(actual, predicted, exposure, n=-1)
    with pytest.raises(ConfigError, match=r"level: the interval's coverage must be between 0"):
        bootstrap_gini(actual, predicted, exposure, level=95)


# -- %sm_jobs's compact table (the states as a backend gives them) ----------------------------
NOW = datetime(2026, 1, 2, 12, 0, tzinfo=timezone.utc)


def _state(name: str, status: str, test_gini: float | None, minutes: float) -> dict:
    created = (NOW - timedelta(minutes=minutes)).isoformat()
    metrics = [] if test_gini is None else [{"MetricName": "test:gini", "Value": test_gini}]
    return {
        "TrainingJobName": name,
        "TrainingJobStatus": status,
        "SecondaryStatus": "Training" if status == "InProgress" else status,
        "CreationTime": created,
        "FinalMetricDataList": metrics,
    }


def test_jobs_table_marks_the_best_test_gini_among_jobs_with_the_newest_target():
    states = [
        _state("running", "InProgress", None, 0.5),
        _state("newest", "Completed", 0.20, 2),
        _state("other-target", "Completed", 0.90, 30),
        _state("failed", "Failed", None, 70),
        _state("older", "Completed", 0.25, 60 * 5),
        _state("oldest", "Completed", 0.10, 60 * 24 * 3),
    ]
    counts = JobFacts("poisson", "claim_count", "driver_age + area", "local")
    facts = [counts, counts, JobFacts("gamma", "severity", "area", "local"), counts, counts, counts]
    table = JobsTable("local", states, facts=facts, now=NOW)
    assert table.best == "older"
    rows = {r[1]: r for r in table.rows}
    assert table.headers == ["", "job", "status", "family", "terms", "test Gini", "cost", "age"]
    assert rows["older"] == ["★", "older", "Completed", "poisson", "driver_age + area", 0.25,
                             "local", "5.0 h"]  # fmt: skip
    assert [r[0] for r in table.rows] == ["", "", "", "", BEST, ""]
    assert rows["running"][2] == "InProgress · Training" and rows["running"][7] == "30 s"
    assert rows["newest"][7] == "2 min" and rows["oldest"][7] == "3 d"
    text = table.to_text()
    assert "★ older: the best test Gini among the completed jobs with target claim_count" in text
    html = table.to_html()
    assert "font-weight:bold'><td style='text-align:left'>★</td>" in html
    assert "smglm-legend" in html
    wide = JobsTable("local", states, facts=facts, wide=True, now=NOW)
    assert wide.headers[:5] == ["job", "status", "secondary status", "created", "instance"]
    assert wide.rows[1][8] == 0.20 and "★" not in wide.to_html() + wide.to_text()


def test_jobs_table_marks_nothing_without_a_completed_test_gini():
    states = [_state("a", "Failed", None, 1), _state("b", "Completed", None, 2)]
    table = JobsTable("local", states, now=NOW)
    assert table.best is None and "★" not in table.to_text()
    assert [r[3:5] for r in table.rows] == [["", ""], ["", ""]]  # config not known


def test_jobs_cost_is_local_or_the_billed_seconds_at_the_tables_price():
    state = {
        "TrainingJobStatus": "Completed",
        "BillableTimeInSeconds": 300,
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2},
    }
    assert _cost(SimpleNamespace(remote=False), state) == "local"  # this machine: no cost
    be = SimpleNamespace(remote=True)
    price = pricing.price_per_hour("ml.m5.xlarge", region="us-east-1")
    assert price is not None
    assert _cost(be, state, "us-east-1") == f"${price * 2 * 300 / 3600:.4f}"
    assert _cost(be, {**state, "BillableTimeInSeconds": 3600 * 100}).startswith("$")
    running = {**state, "TrainingJobStatus": "InProgress", "BillableTimeInSeconds": None}
    running["CreationTime"] = datetime.now(timezone.utc).isoformat()
    assert _cost(be, running).startswith("~$0.0")
    unknown = {**state, "ResourceConfig": {"InstanceType": "ml.nope.large"}}
    assert _cost(be, unknown) == ""
    assert _age("not a time", NOW) == "" and _age(None, NOW) == ""
