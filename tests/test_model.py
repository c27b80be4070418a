"""The portable model (model.json scored with numpy) and the model directory."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import smglm
from smglm.datasets import MOTOR_CATEGORICAL, MOTOR_NUMERIC, motor, motor_truth
from smglm.errors import ModelError
from smglm.glm.model import PortableModel, UnseenLevelWarning

FREQ = {
    "target": "claim_count",
    "predictors": MOTOR_NUMERIC + MOTOR_CATEGORICAL,
    "exposure": "exposure",
    "family": "poisson",
}


def _glum_design(result: smglm.FitResult, data: pd.DataFrame):
    """glum's design of new data, with the training's levels (reference first, dropped)."""
    import tabmat

    X = data.copy()
    for term in result.model.terms:
        if hasattr(term, "levels"):
            X[term.name] = pd.Categorical(X[term.name].astype(str), categories=term.levels)
    return tabmat.from_df(X, drop_first=True, categorical_format="{name}[{category}]")


@pytest.fixture(scope="module")
def motor_fit():
    df = motor(60_000, seed=1)
    train, held_out = df.iloc[:50_000], df.iloc[50_000:]
    return smglm.fit(FREQ, train), held_out


def test_fit_recovers_true_frequency_coefficients_within_3_se(motor_fit):
    result, _ = motor_fit
    truth = motor_truth("frequency")
    table = result.coefficients.set_index("term")
    assert set(truth) == set(table.index)
    z = (table.loc[list(truth), "estimate"] - pd.Series(truth)) / table.loc[
        list(truth), "std_error"
    ]
    assert (z.abs() < 3).mean() >= 0.99, z[z.abs() >= 3]
    assert z.abs().max() < 4


def test_portable_model_predictions_equal_glum_on_held_out_data(motor_fit):
    result, held_out = motor_fit
    expected = result.estimator.predict(
        _glum_design(result, held_out[FREQ["predictors"]]),
        offset=np.log(held_out["exposure"].to_numpy()),
    )
    got = result.predict(held_out)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=0)
    reloaded = PortableModel.from_dict(json.loads(json.dumps(result.model.to_dict())))
    np.testing.assert_array_equal(reloaded.predict(held_out), got)


def test_portable_model_without_exposure_predicts_the_rate(motor_fit):
    result, held_out = motor_fit
    with_expo = result.predict(held_out)
    rate = result.predict(held_out.drop(columns="exposure"))
    np.testing.assert_allclose(rate * held_out["exposure"].to_numpy(), with_expo, rtol=1e-12)


def test_portable_model_unseen_level_scores_as_reference_and_warns(motor_fit):
    result, held_out = motor_fit
    rows = held_out.iloc[:5].copy()
    ref = result.model.terms[[t.name for t in result.model.terms].index("area")].reference
    as_ref = rows.assign(area=ref)
    rows["area"] = rows["area"].astype(str)
    rows.loc[rows.index[:2], "area"] = "Atlantis"
    with pytest.warns(UnseenLevelWarning, match="area: 2"):
        got = result.predict(rows)
    np.testing.assert_allclose(got[:2], result.predict(as_ref)[:2], rtol=1e-14)


def test_portable_model_missing_and_mistyped_columns_are_clear_errors(motor_fit):
    result, held_out = motor_fit
    with pytest.raises(ModelError, match=r"missing column\(s\) \['region'\]"):
        result.predict(held_out.drop(columns="region"))
    bad = held_out.iloc[:3].assign(driver_age=["old", "young", "x"])
    with pytest.raises(ModelError, match="'driver_age' must be numeric; got values such as 'old'"):
        result.predict(bad)


def test_model_directory_round_trip(tmp_path, motor_fit):
    result, held_out = motor_fit
    folder = result.save(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == [
        "coefficients.csv",
        "config.yaml",
        "convergence.csv",
        "covariance.csv",
        "metrics.json",
        "model.json",
    ]
    loaded = smglm.load_model(folder)
    assert loaded.config == result.config
    assert loaded.metrics == json.loads(json.dumps(result.metrics))
    pd.testing.assert_frame_equal(loaded.coefficients, result.coefficients, check_exact=True)
    np.testing.assert_array_equal(loaded.predict(held_out), result.predict(held_out))
    coefs = pd.read_csv(folder / "coefficients.csv")
    assert list(coefs.columns) == [
        "term",
        "estimate",
        "std_error",
        "statistic",
        "p_value",
        "ci_lower",
        "ci_upper",
        "relativity",
    ]
    assert coefs["term"].iloc[0] == "intercept"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert set(metrics["train"]) == {
        "n_obs",
        "deviance",
        "null_deviance",
        "explained_deviance",
        "log_likelihood",
        "aic",
        "bic",
        "dispersion",
        "df_resid",
        "gini",
    }
    assert metrics["fit"]["converged"] is True


def test_model_json_is_small_and_needs_no_pickle(tmp_path, motor_fit):
    result, _ = motor_fit
    path = result.model.save(tmp_path)
    assert path.stat().st_size < 10_000
    assert json.loads(path.read_text())["format_version"] == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": 3}, "format_version 3 is not supported"),
        ({"format": "sklearn"}, "not an smglm model"),
        ({"terms": [{"name": "x", "type": "wavelet"}]}, "unknown type 'wavelet'"),
        ({"terms": [{"name": "x", "type": "spline"}]}, "malformed"),
        ({"intercept": "abc"}, "malformed"),
    ],
)
def test_portable_model_refuses_unknown_or_malformed_files(tmp_path, motor_fit, change, message):
    result, _ = motor_fit
    data = {**result.model.to_dict(), **change}
    (tmp_path / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match=message):
        PortableModel.load(tmp_path)


@pytest.mark.parametrize(
    ("family", "link"),
    [
        ("binomial", "probit"),
        ("binomial", "cloglog"),
        ("gamma", "inverse"),
        ("gaussian", "identity"),
    ],
)
def test_portable_model_matches_glum_for_every_link(family, link):
    rng = np.random.default_rng(4)
    n = 2000
    df = pd.DataFrame({"x": rng.normal(size=n), "g": rng.choice(["a", "b", "c"], n)})
    eta = 0.4 * df["x"] + df["g"].map({"a": 0.0, "b": 0.3, "c": -0.2})
    if family == "binomial":
        df["y"] = rng.binomial(1, 1 / (1 + np.exp(-eta))).astype(float)
    elif family == "gamma":
        df["y"] = rng.gamma(3.0, 1 / (2 + 0.2 * eta) / 3.0)
    else:
        df["y"] = 1 + eta + rng.normal(size=n)
    result = smglm.fit(
        {"target": "y", "predictors": ["x", "g"], "family": family, "link": link}, df
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = result.estimator.predict(_glum_design(result, df[["x", "g"]]))
    np.testing.assert_allclose(result.predict(df), expected, rtol=1e-10)


def test_fit_collinear_column_is_aliased_even_with_a_penalty():
    """Issue 12: a collinear column gave a warning-only fit with NaN standard errors. It is now
    aliased as R does (estimate NA, a note), and the others keep finite standard errors."""
    rng = np.random.default_rng(8)
    df = pd.DataFrame({"x": rng.normal(size=500)})
    df["x_copy"] = df["x"] * 2.0  # collinear: the unpenalized information is singular
    df["y"] = rng.poisson(np.exp(0.3 * df["x"])).astype(float)
    config = {
        "target": "y",
        "predictors": ["x", "x_copy"],
        "family": "poisson",
        "penalty": {"alpha": 0.01},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = smglm.fit(config, df)
    table = result.coefficients.set_index("term")
    assert np.isnan(table.loc["x_copy", "estimate"])
    assert table.loc["x_copy", "note"].startswith("aliased")
    assert np.isfinite(table.loc[["intercept", "x"], "std_error"]).all()
    assert result.metrics["fit"]["aliased"] == ["x_copy"]
