"""smglm.explore and %sm_explore: the pre-fit one-ways against sums computed directly."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

import smglm
from smglm.datasets import motor
from smglm.errors import ConfigError, DataError
from smglm.glm.report.explore import Exploration, explore
from smglm.notebook.cmd.explore import parse_options

pytestmark = pytest.mark.usefixtures("fresh_notebook_settings")


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    df = motor(3000, seed=11)
    df.loc[df.index[:40], "driver_age"] = np.nan  # some missing values
    return df


@pytest.fixture(scope="module")
def explored(data) -> Exploration:
    return explore(
        data,
        target="claim_count",
        exposure="exposure",
        predictors=["driver_age", "area", "region", "n_drivers"],
    )


def test_smglm_explore_is_the_function():
    assert smglm.explore is explore
    assert "explore" in dir(smglm)


def test_categorical_table_equals_pandas_sums(data, explored):
    table = explored.table("area").set_index("bin")
    direct = data.groupby("area", observed=True)[["exposure", "claim_count"]].sum()
    direct.index = direct.index.astype(str)
    np.testing.assert_allclose(table.loc[direct.index, "exposure"], direct["exposure"], rtol=1e-12)
    np.testing.assert_allclose(table.loc[direct.index, "actual"], direct["claim_count"])
    np.testing.assert_allclose(
        table.loc[direct.index, "rate"], direct["claim_count"] / direct["exposure"], rtol=1e-12
    )
    overall = data["claim_count"].sum() / data["exposure"].sum()
    assert explored.overall_rate == pytest.approx(overall, rel=1e-12)
    np.testing.assert_allclose(table["relative"], table["rate"] / overall, rtol=1e-12)
    assert table["exposure_share"].sum() == pytest.approx(1.0)


def test_numeric_is_binned_with_a_missing_row_and_sums_kept(data, explored):
    table = explored.table("driver_age")
    assert len(table) == 11  # 10 quantile bins and (missing)
    assert table["bin"].iloc[-1] == "(missing)"
    missing = data["driver_age"].isna()
    assert table["exposure"].iloc[-1] == pytest.approx(data.loc[missing, "exposure"].sum())
    assert table["exposure"].sum() == pytest.approx(data["exposure"].sum())
    assert table["actual"].sum() == pytest.approx(data["claim_count"].sum())
    # a numeric column with few values: one row per value
    n_drivers = explored.table("n_drivers")
    assert list(n_drivers["bin"]) == [str(v) for v in sorted(data["n_drivers"].unique())]


def test_summary_row_values(data, explored):
    s = explored.summary.set_index("predictor")
    assert list(s.index) == ["driver_age", "area", "region", "n_drivers"]
    assert s.loc["driver_age", "type"] == "numeric"
    assert s.loc["area", "type"] == "categorical"
    assert s.loc["driver_age", "missing_share"] == pytest.approx(40 / len(data))
    assert s.loc["region", "distinct"] == data["region"].nunique()
    table = explored.table("area")
    e, r = table["exposure"].to_numpy(), table["rate"].to_numpy()
    overall = explored.overall_rate
    spread = np.sqrt(np.sum(e * (r - overall) ** 2) / e.sum()) / overall
    assert s.loc["area", "spread"] == pytest.approx(spread, rel=1e-12)
    assert s.loc["area", "rate_max"] == pytest.approx(r.max())


def test_rare_levels_and_merged_levels():
    rng = np.random.default_rng(0)
    n = 5000
    levels = np.array([f"L{i:02d}" for i in range(30)])
    p = np.r_[np.full(5, 0.19), np.full(25, 0.05 / 25)]
    df = pd.DataFrame({"y": rng.poisson(0.1, n), "cat": rng.choice(levels, n, p=p / p.sum())})
    x = explore(df, target="y", rare=0.01)
    table = x.table("cat")
    assert x.summary.loc[0, "rare_levels"] == int(table["rare"].sum()) > 0
    assert (table.loc[table["rare"], "exposure_share"] < 0.01).all()
    merged = explore(df, target="y", max_levels=6)
    t = merged.table("cat")
    assert len(t) == 6
    assert t["bin"].str.startswith("(other 25 levels)").sum() == 1
    assert t["exposure"].sum() == n
    assert any("merged" in note for note in merged.notes)
    # no exposure: the rate is the mean of the target
    assert x.rate_name == "mean"
    assert x.overall_rate == pytest.approx(df["y"].mean())


def test_weights_make_a_weighted_mean():
    df = pd.DataFrame({"sev": [100.0, 200.0, 50.0, 10.0], "n": [1, 3, 2, 0], "g": list("aabb")})
    x = explore(df, target="sev", weights="n")
    t = x.table("g").set_index("bin")
    assert t.loc["a", "rate"] == pytest.approx((100 + 600) / 4)
    assert t.loc["b", "rate"] == pytest.approx(100 / 2)


def test_missing_target_rows_are_left_out_and_noted():
    df = pd.DataFrame(
        {"y": [1.0, np.nan, 0.0, 2.0], "e": [1.0, 1.0, np.nan, 2.0], "g": list("abab")}
    )
    x = explore(df, target="y", exposure="e")
    assert x.table("g")["n_rows"].sum() == 2
    assert "2 row(s)" in x.notes[0]


@pytest.mark.parametrize(
    ("kwargs", "error", "field", "text"),
    [
        ({"target": "claim_cont"}, DataError, "target", "Did you mean"),
        ({"target": "area"}, DataError, "target", "must be numeric"),
        ({"target": "claim_count", "exposure": "expo"}, DataError, "exposure", "not in the data"),
        ({"target": "claim_count", "predictors": ["nope"]}, DataError, "predictors", "'nope'"),
        (
            {"target": "claim_count", "predictors": ["claim_count"]},
            ConfigError,
            "predictors",
            "target",
        ),
        ({"target": "claim_count", "bins": 0}, ConfigError, "bins", "integer >= 1"),
        ({"target": "claim_count", "rare": 2}, ConfigError, "rare", "from 0 to 1"),
    ],
)
def test_bad_inputs_name_the_field(data, kwargs, error, field, text):
    with pytest.raises(error) as info:
        explore(data, **kwargs)
    assert info.value.issues[0].field == field
    assert text in str(info.value)


def test_negative_exposure_is_an_error():
    df = pd.DataFrame({"y": [1, 0], "e": [1.0, -1.0], "g": ["a", "b"]})
    with pytest.raises(DataError, match="1 negative values; exposure must be >= 0"):
        explore(df, target="y", exposure="e")


def test_html_text_and_figures(explored):
    html = explored._repr_html_()
    assert html.count("<details") == 4
    assert html.count("data:image/png;base64,") == 4
    assert "spread" in html
    assert "driver_age" in explored.to_text()
    fig = explored.figure("area")
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), explored.table("area")["rate"])
    assert set(explored.figures()) == {"driver_age", "area", "region", "n_drivers"}
    with pytest.raises(KeyError, match="Did you mean"):
        explored.table("areas")


def test_widget_switches_predictor(explored):
    pytest.importorskip("ipywidgets")
    box = explored.widget()
    summary, choose, detail = box.children
    assert "spread" in summary.value
    assert list(choose.options) == explored.predictors
    first = detail.value
    choose.value = "region"
    assert detail.value != first and "R01" in detail.value


def test_explore_reads_a_file(data, tmp_path):
    path = tmp_path / "d.parquet"
    data.to_parquet(path)
    x = explore(path, target="claim_count", exposure="exposure", predictors=["area"])
    assert x.table("area")["exposure"].sum() == pytest.approx(data["exposure"].sum())


def test_default_predictors_are_every_other_column():
    df = pd.DataFrame({"y": [1, 0, 2], "e": [1.0, 1.0, 2.0], "a": [1, 2, 3], "b": list("xyz")})
    assert explore(df, target="y", exposure="e").predictors == ["a", "b"]


def test_parse_options():
    assert parse_options(["target=y", "exposure=e", "predictors=a, b", "bins=5", "rare=0.02"]) == {
        "target": "y",
        "exposure": "e",
        "predictors": ["a", "b"],
        "bins": 5,
        "rare": 0.02,
    }
    with pytest.raises(ConfigError, match=r"Did you mean .exposure."):
        parse_options(["target=y", "exposre=e"])
    with pytest.raises(ConfigError, match="give the target column"):
        parse_options(["exposure=e"])
    with pytest.raises(ConfigError, match="bins: must be an integer"):
        parse_options(["target=y", "bins=many"])


def test_sm_explore_magic(shell):
    result = shell.run_cell(
        "%sm_explore df target=claim_count exposure=exposure predictors=area,driver_age",
        store_history=False,
    )
    assert result.error_in_exec is None, result.error_in_exec
    x = result.result
    assert isinstance(x, Exploration)
    assert x.predictors == ["area", "driver_age"]
    df = shell.user_ns["df"]
    assert x.table("area")["exposure"].sum() == pytest.approx(df["exposure"].sum())


def test_sm_explore_takes_a_config_variable(shell):
    shell.user_ns["cfg"] = {
        "target": "claim_count",
        "exposure": "exposure",
        "predictors": ["region"],
        "family": "poisson",
    }
    result = shell.run_cell("%sm_explore df config=cfg", store_history=False)
    assert result.error_in_exec is None, result.error_in_exec
    assert result.result.predictors == ["region"]


def test_sm_explore_errors_are_usage_errors(shell):
    result = shell.run_cell("%sm_explore df exposure=exposure", store_history=False)
    assert isinstance(result.error_in_exec, UsageError)
    assert "target" in str(result.error_in_exec)
    result = shell.run_cell("%sm_explore nosuchframe target=claim_count", store_history=False)
    assert isinstance(result.error_in_exec, UsageError)


def test_import_smglm_does_not_import_the_explorer():
    code = (
        "import sys, smglm; "
        "print('smglm.glm.report.explore' in sys.modules, 'pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_config_gives_target_exposure_and_predictors(data):
    config = {
        "target": "claim_count",
        "exposure": "exposure",
        "predictors": ["area", "driver_age"],
        "family": "poisson",
    }
    x = explore(data, config=config)
    assert (x.target, x.exposure, x.predictors) == (
        "claim_count",
        "exposure",
        ["area", "driver_age"],
    )
    assert explore(data, config=config, predictors=["region"]).predictors == ["region"]
    with pytest.raises(ConfigError, match="give the target column"):
        explore(data)
