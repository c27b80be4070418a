"""The Spark engine's report (``smglm.glm.engines.spark_report``) against smglm's own pandas
report on the same rows and the same fitted means: the split metrics, every report table, the
term views built from Spark's sums, and the job's report folder (PNGs, ``load``) from them.

The means come from ``smglm.fit`` (glum), so the comparison isolates the report: each table
and metric must agree within 1e-10 relative (Spark sums in another order: about 1e-15). The
lift's decile edges are the same (equal-exposure slices, ties shared by exposure), so no
table here has a looser tolerance.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import smglm
from smglm.datasets import motor, motor_history
from smglm.glm.families import family_of
from smglm.glm.links import linkinv
from smglm.glm.report import load
from smglm.glm.report.data import ReportData
from smglm.glm.report.scoring import build_split, scored_from_fit, split_metrics_of
from smglm.glm.stats import null_mean

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.xdist_group("spark")]

spark_report = pytest.importorskip("smglm.glm.engines.spark_report")

RTOL = 1e-10

CONFIG = {
    "target": "claim_count",
    "predictors": ["driver_age", "area", "region", "vehicle_power", "density_log"],
    "exposure": "exposure",
    "family": "poisson",
    "terms": {"driver_age": {"bands": [25, 40, 60]}, "region": {"groups": {"R0x": ["R01", "R02"]}}},
    "interactions": [["area", "driver_age"], ["area", "vehicle_power"]],
    "test": {"by": "accident_year", "holdout": [2023]},
}


def _as_text(df: pd.DataFrame) -> pd.DataFrame:
    """The categoricals as text columns, as a job reads them from CSV."""
    out = df.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype(str)
    return out


def _spark_frame(spark, result, name: str):
    """The split's rows as the Spark driver hands them over: data columns, __mu, __mu0."""
    scored = scored_from_fit(result, name)
    mu0 = _null_mean(result, scored)
    rows = scored.data.reset_index(drop=True).copy()
    rows[spark_report.MU] = scored.mu
    rows[spark_report.MU0] = mu0
    return scored, spark.createDataFrame(rows)


def _null_intercept(result) -> float:
    """The null model's intercept on the training rows (as smglm.fit computes it)."""
    config, prep = result.config, scored_from_fit(result, "train").prep
    fam, link = family_of(config), config.resolved_link
    return null_mean(fam, link, prep.y, prep.weights, prep.offset, intercept=True)[1]


def _null_mean(result, scored) -> np.ndarray:
    """__mu0 as smglm.fit's metrics take it: the training rows' null model; on a test split,
    the training's null intercept plus the test rows' offset."""
    off = np.zeros_like(scored.prep.y) if scored.prep.offset is None else scored.prep.offset
    return linkinv(result.config.resolved_link, _null_intercept(result) + off)


def _want_metrics(result, scored) -> dict:
    null = None if scored.name == "train" else _null_intercept(result)
    return split_metrics_of(result.config, scored, _n_params(result), null_intercept=null)


def _spec(result) -> dict:
    return spark_report.spec_from_config(
        result.config.to_dict(),
        n_params=_n_params(result),
        terms=result.model.to_dict()["terms"],
        link=result.config.resolved_link,
    )


def _n_params(result) -> int:
    return int(result.metrics["train"]["n_obs"] - result.metrics["train"]["df_resid"])


def assert_close(actual, expected, what: str) -> None:
    """Numbers equal within RTOL relative (NaN where NaN), text and integers equal."""
    if isinstance(expected, pd.DataFrame):
        assert isinstance(actual, pd.DataFrame), what
        actual, expected = actual.reset_index(drop=True), expected.reset_index(drop=True)
        assert list(actual.columns) == list(expected.columns), what
        assert len(actual) == len(expected), (what, actual, expected)
        for c in expected.columns:
            a, e = actual[c], expected[c]
            if pd.api.types.is_float_dtype(e.dtype) or pd.api.types.is_float_dtype(a.dtype):
                assert_close(a.to_numpy(float), e.to_numpy(float), f"{what}.{c}")
            else:
                assert a.astype(str).tolist() == e.astype(str).tolist(), f"{what}.{c}"
        return
    a = np.asarray(actual, dtype=float)
    e = np.asarray(expected, dtype=float)
    assert a.shape == e.shape, what
    assert np.array_equal(np.isnan(a), np.isnan(e)), (what, a, e)
    ok = ~np.isnan(e)
    np.testing.assert_allclose(a[ok], e[ok], rtol=RTOL, atol=1e-13, err_msg=what)


@pytest.fixture(scope="module")
def fitted():
    data = _as_text(motor_history(4000, seed=11))
    return smglm.fit(CONFIG, data, keep_fitted=True)


@pytest.fixture(scope="module")
def reports(spark, fitted):
    """{split: (scored, Spark's result)} for train and test."""
    out = {}
    for name in ("train", "test"):
        scored, sdf = _spark_frame(spark, fitted, name)
        out[name] = (scored, spark_report.report_split(sdf, _spec(fitted)))
    return out


@pytest.mark.parametrize("name", ["train", "test"])
def test_metrics_equal_smglm_split_metrics(fitted, reports, name):
    scored, got = reports[name]
    want = _want_metrics(fitted, scored)
    assert list(got["metrics"]) == list(want)  # exactly SplitMetrics' keys, in order
    for key, value in want.items():
        if isinstance(value, int):
            assert got["metrics"][key] == value, key
        else:
            assert_close(got["metrics"][key], value, key)
    assert_close(list(got["metrics"].values()), [fitted.metrics[name][k] for k in want], "fit")


@pytest.mark.parametrize("name", ["train", "test"])
def test_tables_equal_smglm_report_tables(fitted, reports, name):
    scored, got = reports[name]
    want = build_split(fitted.config, scored)
    assert list(got["one_ways"]) == list(want.one_ways)
    for column, table in want.one_ways.items():
        assert_close(got["one_ways"][column], table, f"one_way {column}")
    assert_close(got["tables"]["lift"], want.lift, "lift")
    assert_close(got["tables"]["lorenz"], want.lorenz, "lorenz")
    assert_close(got["tables"]["residuals"], want.residuals, "residuals")
    assert_close(got["gini"], want.gini, "gini")
    assert want.balance is not None
    for key, value in want.balance.items():
        assert_close(got["balance"][key], value, f"balance {key}")


def test_job_report_folder_from_spark_tables(fitted, reports, tmp_path):
    """write_split's folder becomes the job's report folder: the same tables (term views
    included) as the row-level runtime writes, the PNGs, and load() reads it as a job's."""
    from smglm.glm.report.spark_tables import spark_split_metrics
    from smglm.runtime.report_files import write_reports, write_spark_reports

    root = tmp_path / "job"
    fitted.save(root / "model")
    splits, rows = [], []
    for name, (scored, got) in reports.items():
        spark_dir = tmp_path / "driver" / "report" / name
        spark_report.write_split(spark_dir, got)
        assert spark_split_metrics(spark_dir) == pytest.approx(got["metrics"], nan_ok=True)
        convergence = fitted.convergence if name == "train" else None
        splits.append((name, spark_dir, root / "output" / name, convergence))
        rows.append((scored, tmp_path / "rows" / name, convergence))
    files = write_spark_reports(fitted.config, splits, result=fitted)
    expected = write_reports(fitted.config, rows, result=fitted)
    for name in ("train", "test"):
        names = sorted(p.name for p in files[name])
        assert names == sorted(p.name for p in expected[name])
        assert any(n.endswith(".png") for n in names)
        got = ReportData.from_dir(root / "output" / name)
        want = ReportData.from_dir(tmp_path / "rows" / name)
        for kind in ("one_ways", "levels", "interactions", "consistency"):
            assert list(getattr(got, kind)) == list(getattr(want, kind)), kind
            for key, table in getattr(want, kind).items():
                assert_close(getattr(got, kind)[key], table, f"{name} {kind} {key}")
        for table in ("lift", "lorenz", "residuals", "convergence"):
            if getattr(want, table) is None:
                assert getattr(got, table) is None
            else:
                assert_close(getattr(got, table), getattr(want, table), f"{name} {table}")
        assert (got.link, got.split_by) == (want.link, want.split_by)
    levels = {t["name"] for t in fitted.model.to_dict()["terms"] if "levels" in t}
    assert levels == set(ReportData.from_dir(root / "output" / "train").levels)
    report = load(root)
    assert set(report.splits) == {"train", "test"}
    figures = report.figures()
    assert "train/lift" in figures and "test/one_way_area" in figures


FAMILIES = {
    "gamma": {"target": "severity", "weights": "claim_count", "family": "gamma"},
    "tweedie": {
        "target": "pure_premium",
        "weights": "exposure",
        "family": "tweedie",
        "tweedie_power": 1.6,
    },
    "binomial": {"target": "share", "weights": "trials", "family": "binomial"},
    "gaussian": {"target": "centred", "family": "gaussian", "weights": "exposure"},
    "negative_binomial": {
        "target": "claim_count",
        "exposure": "exposure",
        "family": "negative_binomial",
        "theta": 2.0,
    },
    "inverse_gaussian": {"target": "severity", "family": "inverse_gaussian"},
}


@pytest.fixture(scope="module")
def family_data():
    df = _as_text(motor(3000, seed=4))
    df["pure_premium"] = df["claim_amount"] / df["exposure"]
    df["trials"] = df["n_drivers"] + 1
    rng = np.random.default_rng(2)
    df["share"] = rng.binomial(df["trials"], 0.3) / df["trials"]
    df["centred"] = df["density_log"] - df["density_log"].mean() + rng.normal(0, 1, len(df))
    df["severity"] = df["severity"].where(df["claim_count"] > 0)
    return df


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_metrics_per_family(spark, family_data, family):
    """Deviance, null deviance, log-likelihood (lgamma in Spark), AIC, BIC, dispersion and
    the Gini of every family agree with smglm's on the same means (weights, exposure)."""
    config = {**FAMILIES[family], "predictors": ["area", "vehicle_power"]}
    data = family_data
    if family in ("gamma", "inverse_gaussian"):
        data = data[data["claim_count"] > 0]
    result = smglm.fit(config, data, keep_fitted=True)
    scored, sdf = _spark_frame(spark, result, "train")
    got = spark_report.split_metrics(sdf, _spec(result))
    want = _want_metrics(result, scored)
    assert list(got) == list(want)
    for key, value in want.items():
        if isinstance(value, int):
            assert got[key] == value, key
        elif math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert_close(got[key], value, f"{family} {key}")


def test_spec_errors_name_field_value_and_choices(spark, fitted):
    _, sdf = _spark_frame(spark, fitted, "test")
    spec = {**_spec(fitted), "family": "poison", "bins": 0, "exposure": "expo"}
    with pytest.raises(ValueError) as err:
        spark_report.report_split(sdf, spec)
    text = str(err.value)
    assert "spec.family: 'poison' is not one of" in text
    assert "spec.bins: must be an integer >= 1; got 0" in text
    assert "spec.exposure: column 'expo' is not in the Spark DataFrame" in text


def test_spec_is_json(fitted):
    spec = _spec(fitted)
    assert json.loads(json.dumps(spec)) == spec
    assert spec["link"] == "log" and spec["by"] == "accident_year"


def test_running_sums_in_spark_equal_collected(spark, fitted, reports):
    """With collect_limit 0 every running sum stays in Spark (range partitions; a Lorenz
    curve of more vertices than it keeps): the same tables as smglm's."""
    scored, sdf = _spark_frame(spark, fitted, "train")
    columns = ["density_log", "area"]  # a numeric of many distinct values, a categorical
    spec = {**_spec(fitted), "collect_limit": 0, "predictors": columns, "terms": []}
    got = spark_report.report_split(sdf, spec)
    want = build_split(fitted.config, scored)
    assert len(want.lorenz) <= 1000 < len(np.unique(scored.mu))  # the curve is thinned
    for column in columns:
        assert_close(got["one_ways"][column], want.one_ways[column], f"one_way {column}")
    for table in ("lift", "lorenz", "residuals"):
        assert_close(got["tables"][table], getattr(want, table), table)
    assert_close(got["gini"], want.gini, "gini")
    assert got["metrics"] == pytest.approx(reports["train"][1]["metrics"], rel=RTOL)


def test_module_is_standalone():
    """spark_report runs beside the driver on AWS's Spark image: it imports pyspark, numpy,
    pandas and the standard library only, never smglm (nor pydantic or scipy)."""
    import ast
    import sys
    from pathlib import Path

    tree = ast.parse(Path(spark_report.__file__).read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports: the driver loads it as a plain module"
            roots.add(str(node.module).split(".")[0])
    allowed = {"pyspark", "numpy", "pandas"} | set(sys.stdlib_module_names)
    assert roots <= allowed, roots - allowed
