"""Tests of smglm.glm.report: each table against a direct, slow computation or a known value."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from scipy.integrate import trapezoid

from smglm.errors import ConfigError, DataError
from smglm.glm.report import (
    ReportData,
    balance,
    build_report,
    deviance_residuals,
    double_lift,
    gini,
    lift,
    lorenz,
    one_way,
    residual_bins,
)


def slow_gini(actual, predicted, exposure):
    """Lorenz-curve Gini with Python loops: pool rows of equal rate, then trapezoids."""
    groups: dict[float, list[float]] = {}
    for a, p, e in zip(actual, predicted, exposure, strict=True):
        if e > 0:
            g = groups.setdefault(p / e, [0.0, 0.0])
            g[0] += e
            g[1] += a
    total_e = sum(g[0] for g in groups.values())
    total_a = sum(g[1] for g in groups.values())
    area, x, y = 0.0, 0.0, 0.0
    for rate in sorted(groups):
        e, a = groups[rate]
        x2, y2 = x + e / total_e, y + a / total_a
        area += (x2 - x) * (y + y2) / 2
        x, y = x2, y2
    return 1 - 2 * area


@pytest.fixture
def claims():
    """Small Poisson claims data with exposure, two numeric and two categorical columns."""
    rng = np.random.default_rng(7)
    n = 2000
    data = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "power": rng.gamma(3.0, 30.0, n),
            "region": pd.Categorical(
                rng.choice(["N", "S", "E"], n), categories=["S", "N", "E", "W"]
            ),
            "fuel": rng.choice(["diesel", "petrol"], n),
            "exposure": rng.uniform(0.05, 1.0, n),
        }
    )
    rate = np.exp(-2.0 + 0.01 * (data["power"] - 90) + 0.4 * (data["region"] == "N"))
    data["mu"] = data["exposure"] * rate
    data["claims"] = rng.poisson(data["mu"]).astype(float)
    return data


# --- gini and lorenz ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gini_random_data_matches_slow_reference(seed):
    rng = np.random.default_rng(seed)
    n = 300
    e = rng.uniform(0.1, 2.0, n)
    p = e * rng.gamma(2.0, 0.1, n)
    a = rng.poisson(p).astype(float)
    assert gini(a, p, e) == pytest.approx(slow_gini(a, p, e), abs=1e-12)


def test_gini_ties_match_slow_reference_and_ignore_row_order():
    rng = np.random.default_rng(3)
    n = 500
    e = rng.choice([0.5, 1.0], n)
    p = e * rng.choice([0.1, 0.2, 0.3], n)  # three distinct rates, many ties
    a = rng.poisson(p).astype(float)
    expected = slow_gini(a, p, e)
    perm = rng.permutation(n)
    assert gini(a, p, e) == pytest.approx(expected, abs=1e-12)
    assert gini(a[perm], p[perm], e[perm]) == pytest.approx(expected, abs=1e-12)


def test_gini_perfect_ranking_of_linear_amounts_is_known():
    # actual = predicted = 1..n: Lorenz points y_k = k(k+1)/(n(n+1)), Gini = (n - 1) / (3n).
    n = 50
    a = np.arange(1.0, n + 1)
    assert gini(a, a) == pytest.approx((n - 1) / (3 * n), abs=1e-12)
    assert gini(a, a[::-1].copy()) == pytest.approx(-(n - 1) / (3 * n), abs=1e-12)


def test_gini_perfect_ranking_of_skewed_risk_approaches_one():
    # 10% of the exposure holds all claims: the curve is 0 up to x = 0.9, Gini = 0.9.
    a = np.r_[np.zeros(900), np.ones(100)]
    assert gini(a, a + 0.5) == pytest.approx(0.9, abs=1e-12)
    a = np.r_[np.zeros(99_999), 1.0]
    assert gini(a, a) == pytest.approx(1 - 1e-5, abs=1e-12)


def test_gini_constant_prediction_is_zero():
    rng = np.random.default_rng(4)
    a = rng.poisson(0.3, 1000).astype(float)
    assert gini(a, np.full(1000, 0.3)) == pytest.approx(0.0, abs=1e-12)


def test_gini_ranks_by_rate_not_amount():
    # Same rates, exposure doubled on some rows: the ranking and the Gini do not change.
    rng = np.random.default_rng(5)
    rate = rng.uniform(0.1, 0.5, 200)
    a = rng.poisson(rate).astype(float)
    scale = np.where(rng.random(200) < 0.5, 2.0, 1.0)
    assert gini(a * scale, rate * scale, scale) == pytest.approx(
        slow_gini(a * scale, rate * scale, scale), abs=1e-12
    )
    assert gini(a, rate * scale, np.ones(200)) != pytest.approx(gini(a, rate, None), abs=1e-6)


def test_gini_zero_exposure_rows_are_left_out():
    a, p, e = np.array([0.0, 1, 2, 5]), np.array([1.0, 2, 3, 4]), np.array([1.0, 1, 1, 1])
    g = gini(a, p, e)
    assert gini(np.r_[a, 7.0], np.r_[p, 0.1], np.r_[e, 0.0]) == pytest.approx(g, abs=1e-15)


def test_gini_no_claims_is_nan():
    assert np.isnan(gini(np.zeros(10), np.arange(1.0, 11)))


@pytest.mark.parametrize(
    ("kwargs", "field", "match"),
    [
        ({"predicted": [1.0, np.nan, 2.0]}, "predicted", "1 missing or infinite"),
        ({"predicted": [1.0, 2.0]}, "predicted", "has 2 values; expected 3"),
        ({"exposure": [1.0, -1.0, 1.0]}, "exposure", "negative"),
        ({"exposure": [0.0, 0.0, 0.0]}, "exposure", "no row with positive exposure"),
        ({"actual": []}, "actual", "no rows"),
    ],
)
def test_gini_bad_input_raises_data_error(kwargs, field, match):
    args = {"actual": [0.0, 1.0, 2.0], "predicted": [1.0, 2.0, 3.0], "exposure": None} | kwargs
    with pytest.raises(DataError, match=match) as info:
        gini(**args)
    assert info.value.fields == [field]


def test_lorenz_runs_from_origin_to_one_and_integrates_to_gini(claims):
    table = lorenz(claims["claims"], claims["mu"], claims["exposure"])
    assert list(table.columns) == ["cum_exposure", "cum_actual"]
    assert tuple(table.iloc[0]) == (0.0, 0.0)
    assert tuple(table.iloc[-1]) == pytest.approx((1.0, 1.0), abs=1e-12)
    assert (np.diff(table["cum_exposure"]) > 0).all()
    area = trapezoid(table["cum_actual"], table["cum_exposure"])
    assert 1 - 2 * area == pytest.approx(gini(claims["claims"], claims["mu"], claims["exposure"]))


def test_lorenz_max_points_keeps_ends_and_shape(claims):
    full = lorenz(claims["claims"], claims["mu"], claims["exposure"])
    thin = lorenz(claims["claims"], claims["mu"], claims["exposure"], max_points=100)
    assert len(thin) <= 100
    assert len(full) == len(claims) + 1
    assert_frame_equal(
        thin.iloc[[0, -1]].reset_index(drop=True), full.iloc[[0, -1]].reset_index(drop=True)
    )
    assert thin["cum_exposure"].isin(full["cum_exposure"]).all()  # vertices of the exact curve
    thin_gini = 1 - 2 * trapezoid(thin["cum_actual"], thin["cum_exposure"])
    full_gini = 1 - 2 * trapezoid(full["cum_actual"], full["cum_exposure"])
    assert thin_gini == pytest.approx(full_gini, abs=5e-3)


# --- one_way ------------------------------------------------------------------------------


@pytest.mark.parametrize("decimals", [1, -1])  # about 1500 distinct values (sorted), 30 (hashed)
def test_one_way_numeric_bins_sum_to_totals_and_match_labels(claims, decimals):
    claims["power"] = claims["power"].round(decimals)  # < 1000: labels show values exactly
    table = one_way(claims, "power", "claims", "mu", "exposure", bins=10)
    assert list(table.columns) == [
        "bin", "exposure", "actual", "predicted", "actual_rate", "predicted_rate", "n_rows"
    ]  # fmt: skip
    assert len(table) == 10
    for col, source in (("exposure", "exposure"), ("actual", "claims"), ("predicted", "mu")):
        assert table[col].sum() == pytest.approx(claims[source].sum(), rel=1e-12)
    assert table["n_rows"].sum() == len(claims)
    # Each label "[lo, hi)" holds exactly the rows with lo <= power < hi (the last: <= hi).
    for i, label in enumerate(table["bin"]):
        lo, hi = (float(v) for v in label[1:-1].split(", "))
        upper = claims["power"] <= hi if label.endswith("]") else claims["power"] < hi
        rows = claims[(claims["power"] >= lo) & upper]
        assert len(rows) == table["n_rows"][i]
        assert rows["mu"].sum() == pytest.approx(table["predicted"][i], rel=1e-12)
    # Exposure-weighted quantile bins: equal exposure up to the exposure of one value.
    share = claims["exposure"].sum() / 10
    assert np.abs(table["exposure"] - share).max() < claims.groupby("power")["exposure"].sum().max()
    assert table["actual_rate"].to_numpy() == pytest.approx(table["actual"] / table["exposure"])


def test_one_way_few_distinct_values_get_one_bin_each():
    data = pd.DataFrame({"x": [3, 1, 2, 2, 1, 3, 3], "y": [1.0, 0, 2, 0, 1, 1, 0]})
    table = one_way(data, "x", "y", np.ones(7))
    assert table["bin"].tolist() == ["1", "2", "3"]
    assert table["n_rows"].tolist() == [2, 2, 3]
    assert table["actual"].tolist() == [1.0, 2.0, 2.0]


def test_one_way_mass_point_merges_bins():
    data = pd.DataFrame({"x": np.r_[np.zeros(800), np.arange(1.0, 201)]})
    table = one_way(data, "x", np.ones(1000), np.ones(1000), bins=10)
    assert table["bin"][0] == "[0, 1)"
    assert table["n_rows"][0] == 800
    assert len(table) == 3  # 80% at 0, then two bins of 10%
    assert table["predicted"].sum() == 1000


def test_one_way_categorical_uses_category_order_and_drops_empty_levels(claims):
    table = one_way(claims, "region", "claims", "mu", "exposure")
    expected = claims.groupby("region", observed=True)[["exposure", "claims", "mu"]].sum()
    assert table["bin"].tolist() == ["S", "N", "E"]  # category order; "W" has no rows
    assert table["exposure"].to_numpy() == pytest.approx(expected["exposure"].to_numpy(), rel=1e-12)
    assert table["actual"].to_numpy() == pytest.approx(expected["claims"].to_numpy(), rel=1e-12)
    assert table["predicted"].to_numpy() == pytest.approx(expected["mu"].to_numpy(), rel=1e-12)


def test_one_way_string_column_is_categorical_in_sorted_order(claims):
    table = one_way(claims, "fuel", claims["claims"].to_numpy(), claims["mu"].to_numpy())
    assert table["bin"].tolist() == ["diesel", "petrol"]
    assert table["exposure"].tolist() == table["n_rows"].astype(float).tolist()


def test_one_way_numeric_forced_categorical_has_one_row_per_value(claims):
    table = one_way(claims, "age", "claims", "mu", "exposure", categorical=True)
    assert table["bin"].tolist() == [str(v) for v in sorted(claims["age"].unique())]


def test_one_way_missing_values_form_last_row():
    data = pd.DataFrame({"x": [1.5, np.nan, 2.5, None], "c": ["a", None, "b", "a"]})
    for column, labels in (("x", ["1.5", "2.5", "(missing)"]), ("c", ["a", "b", "(missing)"])):
        table = one_way(data, column, np.arange(4.0), np.ones(4))
        assert table["bin"].tolist() == labels
        assert table["actual"].sum() == 6.0


def test_one_way_all_missing_column_has_one_row():
    data = pd.DataFrame({"x": [np.nan, np.nan, np.nan]})
    table = one_way(data, "x", np.ones(3), np.full(3, 2.0))
    assert table["bin"].tolist() == ["(missing)"]
    assert table["predicted"].tolist() == [6.0]


def test_one_way_bad_column_or_mode_raises(claims):
    with pytest.raises(DataError, match=r"'powr' is not in the data\. Did you mean 'power'"):
        one_way(claims, "powr", "claims", "mu")
    with pytest.raises(DataError, match="only numeric columns can be binned"):
        one_way(claims, "fuel", "claims", "mu", categorical=False)
    with pytest.raises(DataError, match="'clams' is not in the data"):
        one_way(claims, "age", "clams", "mu")
    with pytest.raises(ConfigError, match="bins: must be an integer >= 1; got 0"):
        one_way(claims, "age", "claims", "mu", bins=0)


# --- lift and double lift ------------------------------------------------------------------


def test_lift_equal_exposure_bins_match_sorted_chunks():
    # 100 rows of exposure 1 with distinct rates: each bin is exactly 10 consecutive rows.
    rng = np.random.default_rng(8)
    p = rng.permutation(np.linspace(0.05, 0.5, 100))
    a = rng.poisson(p).astype(float)
    table = lift(a, p, n_bins=10)
    order = np.argsort(p)
    assert table["bin"].tolist() == list(range(1, 11))
    assert table["exposure"].to_numpy() == pytest.approx(np.full(10, 10.0), abs=1e-12)
    chunks = a[order].reshape(10, 10).sum(axis=1)
    assert table["actual"].to_numpy() == pytest.approx(chunks, abs=1e-9)
    assert table["predicted"].to_numpy() == pytest.approx(p[order].reshape(10, 10).sum(1), abs=1e-9)
    assert (np.diff(table["predicted_rate"]) > 0).all()


def test_lift_bins_hold_equal_exposure_and_all_totals(claims):
    table = lift(claims["claims"], claims["mu"], claims["exposure"], n_bins=7)
    share = claims["exposure"].sum() / 7
    assert np.abs(table["exposure"] - share).max() <= claims["exposure"].max()
    assert table["actual"].sum() == pytest.approx(claims["claims"].sum(), rel=1e-12)
    assert table["predicted"].sum() == pytest.approx(claims["mu"].sum(), rel=1e-12)
    assert (np.diff(table["predicted_rate"]) > 0).all()


def test_lift_ties_do_not_depend_on_row_order():
    rng = np.random.default_rng(9)
    p = rng.choice([0.1, 0.2], 400)
    a = rng.poisson(p).astype(float)
    perm = rng.permutation(400)
    assert_frame_equal(lift(a, p, n_bins=4), lift(a[perm], p[perm], n_bins=4), rtol=1e-12)
    # Constant prediction: every bin shows the overall rate.
    flat = lift(a, np.full(400, 0.15), n_bins=4)
    assert flat["actual_rate"].to_numpy() == pytest.approx(np.full(4, a.mean()), rel=1e-12)


def test_double_lift_rates_are_normalised_to_mean_one(claims):
    rng = np.random.default_rng(10)
    mu_b = claims["mu"] * rng.lognormal(0.0, 0.3, len(claims))
    table = double_lift(claims["claims"], claims["mu"], mu_b, claims["exposure"], n_bins=5)
    assert list(table.columns) == ["bin", "exposure", "actual_rate", "rate_a", "rate_b"]
    w = table["exposure"] / table["exposure"].sum()
    for col in ("actual_rate", "rate_a", "rate_b"):
        assert (w * table[col]).sum() == pytest.approx(1.0, abs=1e-12)
    assert (np.diff(table["rate_a"] / table["rate_b"]) > 0).all()


def test_double_lift_matches_sorted_chunks():
    rng = np.random.default_rng(11)
    pa, pb = rng.uniform(0.1, 0.3, 50), rng.uniform(0.1, 0.3, 50)
    a = rng.poisson(pa).astype(float)
    table = double_lift(a, pa, pb, n_bins=5)
    order = np.argsort(pa / pb)
    for col, x in (("actual_rate", a), ("rate_a", pa), ("rate_b", pb)):
        chunks = x[order].reshape(5, 10).mean(axis=1) / x.mean()
        assert table[col].to_numpy() == pytest.approx(chunks, rel=1e-12)


def test_double_lift_needs_positive_predictions():
    with pytest.raises(DataError, match="1 values <= 0") as info:
        double_lift([1.0, 0.0], [0.1, 0.2], [0.1, 0.0])
    assert info.value.fields == ["predicted_b"]


# --- balance and residuals -----------------------------------------------------------------


def test_balance_sums_and_ratio():
    out = balance([1.0, 2.0, 3.0], [2.0, 2.0, 4.0], weights=[1.0, 2.0, 0.5])
    assert out == {"sum_actual": 6.5, "sum_predicted": 8.0, "ratio": 6.5 / 8.0}
    assert balance([1.0, 1.0], [1.0, 1.0])["ratio"] == 1.0


def poisson_unit_deviance(y, mu):
    ylogy = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    return 2 * (ylogy - (y - mu))


def test_deviance_residuals_sign_and_total_deviance():
    rng = np.random.default_rng(12)
    mu = rng.uniform(0.2, 3.0, 500)
    y = rng.poisson(mu).astype(float)
    w = rng.uniform(0.5, 2.0, 500)
    d = poisson_unit_deviance(y, mu)
    res = deviance_residuals(y, mu, w, d)
    assert np.all(np.sign(res) == np.sign(y - mu))
    assert np.sum(res**2) == pytest.approx(np.sum(w * d), rel=1e-12)
    assert deviance_residuals([1.0], [1.0], None, [-1e-17]).tolist() == [0.0]


def test_residual_bins_match_numpy_per_bin():
    rng = np.random.default_rng(13)
    fitted = rng.gamma(2.0, 1.0, 1003)
    res = rng.standard_normal(1003)
    table = residual_bins(fitted, res, n_bins=10)
    assert table["bin"].tolist() == list(range(1, 11))
    assert table["n_rows"].sum() == 1003
    order = np.argsort(fitted)
    chunks = np.split(order, np.cumsum(table["n_rows"])[:-1])
    for i, rows in enumerate(chunks):
        assert table["fitted_mean"][i] == pytest.approx(fitted[rows].mean(), rel=1e-12)
        assert table["residual_mean"][i] == pytest.approx(res[rows].mean(), rel=1e-12, abs=1e-15)
        for q in (10, 50, 90):
            expected = np.quantile(res[rows], q / 100)
            assert table[f"residual_q{q}"][i] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert abs(table["n_rows"] - 100.3).max() <= 1


def test_residual_bins_keep_ties_together():
    fitted = np.repeat([1.0, 2.0, 3.0], [50, 30, 20])
    table = residual_bins(fitted, np.arange(100.0), n_bins=10)
    assert table["fitted_mean"].tolist() == [1.0, 2.0, 3.0]
    assert table["n_rows"].tolist() == [50, 30, 20]


# --- ReportData and build_report -----------------------------------------------------------


@pytest.fixture
def built(claims):
    claims = claims.assign(**{"odd name/x": ["NA", "", "a,b", "1"] * 500})
    mu = claims["mu"].to_numpy()
    res = deviance_residuals(
        claims["claims"], mu, None, poisson_unit_deviance(claims["claims"], mu)
    )
    return build_report(
        claims,
        predictors=["age", "power", "region", "fuel", "odd name/x"],
        actual="claims",
        predicted="mu",
        exposure="exposure",
        residuals=res,
        fitted=mu / claims["exposure"],
        convergence={"iteration": [1, 2, 3], "deviance": [1500.5, 1400.25, 1399.125]},
        categorical=["age"],
        lorenz_points=200,
    )


def test_build_report_agrees_with_the_single_tables(built, claims):
    assert list(built.one_ways) == ["age", "power", "region", "fuel", "odd name/x"]
    assert len(built.one_ways["age"]) == claims["age"].nunique()  # forced categorical
    assert_frame_equal(
        built.one_ways["power"], one_way(claims, "power", "claims", "mu", "exposure")
    )
    assert_frame_equal(built.lift, lift(claims["claims"], claims["mu"], claims["exposure"]))
    assert built.gini == gini(claims["claims"], claims["mu"], claims["exposure"])
    assert built.balance == balance(claims["claims"], claims["mu"])
    assert len(built.lorenz) <= 200
    assert built.convergence["deviance"].tolist() == [1500.5, 1400.25, 1399.125]
    assert built.residuals["n_rows"].sum() == len(claims)
    assert "gini=" in repr(built) and "'lift'" in repr(built)


def test_report_data_round_trip_is_exact(built, tmp_path):
    built.one_ways["region"].loc[0, "actual_rate"] = np.nan  # a zero-exposure bin's rate
    files = built.to_dir(tmp_path / "out")
    names = sorted(p.name for p in files)
    assert names == sorted([
        "one_way_age.csv", "one_way_power.csv", "one_way_region.csv", "one_way_fuel.csv",
        "one_way_odd_name_x.csv", "lift.csv", "lorenz.csv", "residuals.csv", "convergence.csv",
        "report.json",
    ])  # fmt: skip
    meta = json.loads((tmp_path / "out" / "report.json").read_text())
    assert meta["gini"] == built.gini
    assert meta["one_ways"]["odd name/x"] == "one_way_odd_name_x.csv"
    back = ReportData.from_dir(tmp_path / "out")
    assert list(back.one_ways) == list(built.one_ways)
    for column, table in built.one_ways.items():
        assert_frame_equal(back.one_ways[column], table, check_exact=True)
    assert back.one_ways["odd name/x"]["bin"].tolist() == ["", "1", "NA", "a,b"]
    for name in ("lift", "lorenz", "residuals", "convergence"):
        assert_frame_equal(getattr(back, name), getattr(built, name), check_exact=True)
    assert back.gini == built.gini
    assert back.balance == built.balance


def test_report_data_round_trip_of_missing_parts(tmp_path):
    data = ReportData(gini=float("nan"))
    data.to_dir(tmp_path)
    back = ReportData.from_dir(tmp_path)
    assert np.isnan(back.gini)
    assert back.lift is None and back.balance is None and back.one_ways == {}


def test_report_data_file_names_are_safe_and_unique():
    frame = pd.DataFrame()
    data = ReportData(one_ways={"a b": frame, "a/b": frame, "A_B": frame, "../x": frame, "": frame})
    assert data.one_way_files() == {
        "a b": "one_way_a_b",
        "a/b": "one_way_a_b_2",
        "A_B": "one_way_A_B_3",
        "../x": "one_way_x",
        "": "one_way_column",
    }


def test_report_data_from_dir_rejects_unknown_format(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps({"format": 99, "one_ways": {}}))
    with pytest.raises(DataError, match="has format 99; this smglm reads format 1"):
        ReportData.from_dir(tmp_path)


def test_build_report_names_every_missing_column(claims):
    with pytest.raises(DataError, match="2 data problems") as info:
        build_report(claims, predictors=["age", "agee", "regoin"], actual="claims", predicted="mu")
    assert info.value.fields == ["agee", "regoin"]
    with pytest.raises(DataError, match="needs an 'iteration' column"):
        build_report(claims, predictors=[], actual="claims", predicted="mu", convergence={"x": [1]})


@pytest.mark.slow
def test_build_report_one_million_rows():
    """Every table of a 1M-row report (its time: benchmarks/launch.py, report + model)."""
    rng = np.random.default_rng(14)
    n = 1_000_000
    cols: dict[str, object] = {f"num{i}": rng.gamma(2.0, 10.0, n).round(i % 3) for i in range(8)}
    cols |= {f"cat{i}": pd.Categorical(rng.integers(0, 20 * (i + 1), n)) for i in range(4)}
    cols |= {"int": rng.integers(18, 90, n), "str": rng.choice(["a", "b", "c"], n)}
    data = pd.DataFrame(cols)
    e = rng.uniform(0.1, 1.0, n)
    mu = e * np.exp(-2 + 0.01 * data["num0"].to_numpy())
    y = rng.poisson(mu).astype(float)
    out = build_report(data, predictors=list(data), actual=y, predicted=mu, exposure=e,
                       residuals=y - mu)  # fmt: skip
    assert len(out.one_ways) == 14


def test_report_module_does_not_import_matplotlib():
    code = "import sys, smglm.glm.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_build_report_in_a_thread_equals_in_sequence(monkeypatch):
    """Large data builds the one-way tables in a thread beside the lift, Lorenz and residual
    tables; the tables are the same as built one after the other."""
    import smglm.glm.report.data as report_data
    from smglm.glm.report.data import build_report

    rng = np.random.default_rng(8)
    n = 5000
    data = pd.DataFrame({"x": rng.normal(size=n), "g": rng.choice(list("abcd"), n)})
    mu = np.exp(0.3 * data["x"].to_numpy())
    actual = rng.poisson(mu).astype(float)
    built = {}
    for label, threshold in (("sequence", 10**9), ("thread", 0)):
        monkeypatch.setattr(report_data, "_THREADED_ROWS", threshold)
        built[label] = build_report(data, predictors=["x", "g"], actual=actual, predicted=mu,
                                    residuals=actual - mu)  # fmt: skip
    a, b = built["sequence"], built["thread"]
    for column in ("x", "g"):
        assert_frame_equal(a.one_ways[column], b.one_ways[column])
    for table in ("lift", "lorenz", "residuals"):
        assert_frame_equal(getattr(a, table), getattr(b, table))
    assert a.gini == b.gini
