"""Model points (``smglm.fit(..., aggregate="cells")``, :mod:`smglm.glm.points`): the fit on
rows summed to rating cells by DuckDB equals the fit on the rows, coefficients, standard
errors and every row-level statistic, per family; files are read out of core; test splits;
the report's cells; ``auto``; and every refusal."""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import smglm
from smglm.datasets import motor
from smglm.errors import ConfigError, DataError
from smglm.glm import points

pytest.importorskip("duckdb")

BANDS = {"driver_age": {"bands": [25, 35, 50, 65]}, "bonus_malus": {"bands": [60, 80, 100]}}
PREDICTORS = ["area", "region", "driver_age", "bonus_malus"]
METRICS = ("deviance", "null_deviance", "log_likelihood", "aic", "bic")


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    df = motor(4000, seed=11)
    df["severity"] = df["claim_amount"] / df["claim_count"].clip(lower=1)
    df["pure_premium"] = df["claim_amount"] / df["exposure"] / 1000
    df["trials"] = (df["driver_age"] % 4 + 1).astype(float)
    df["log_exposure"] = np.log(df["exposure"])
    rng = np.random.default_rng(3)
    df["share"] = rng.binomial(df["trials"].astype(int), 0.3) / df["trials"]
    df["score"] = np.log1p(df["claim_amount"]) + df["driver_age"] / 10 + rng.normal(0, 1, len(df))
    return df


def _config(**kw: Any) -> dict[str, Any]:
    return {"predictors": PREDICTORS, "terms": BANDS, "tol": 1e-12, **kw}


def _assert_same(rows: Any, cells: Any, split: str = "train", gini_rel: float = 1e-10) -> None:
    """Coefficients within 1e-10, SEs 1e-8 relative, statistics 1e-10 relative, df equal.

    The Gini pools rows of equal predicted rate; where the exposure is a cell key (not folded
    into the weight), rates of one cell's rows differ in the last bits between exposures
    (``exp(eta + log e) / e``), so their order, and the Gini, moves at about 1e-6 whether
    rows or cells are ranked: ``gini_rel``."""
    a, b = rows.coefficients, cells.coefficients
    assert a["term"].tolist() == b["term"].tolist()
    np.testing.assert_allclose(b["estimate"], a["estimate"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(b["std_error"], a["std_error"], rtol=1e-8)
    np.testing.assert_allclose(b["p_value"], a["p_value"], rtol=1e-6, atol=1e-12)
    m1, m2 = rows.metrics[split], cells.metrics[split]
    for key in (*METRICS, "dispersion", "explained_deviance", "gini"):
        if math.isnan(m1[key]):
            assert math.isnan(m2[key]), key
        else:
            rel = gini_rel if key == "gini" else 1e-10
            assert m2[key] == pytest.approx(m1[key], rel=rel, abs=1e-12), key
    assert m2["df_resid"] == m1["df_resid"]
    assert m2["n_obs"] == m1["n_obs"]


FAMILIES = {
    "poisson_exposure": {"target": "claim_count", "family": "poisson", "exposure": "exposure"},
    "poisson_offset_weights": {
        "target": "claim_count",
        "family": "poisson",
        "offset": "log_exposure",
        "weights": "trials",
    },
    "gamma_weights": {"target": "severity", "family": "gamma", "weights": "claim_count"},
    "tweedie": {"target": "pure_premium", "family": "tweedie", "weights": "exposure"},
    "binomial_weights": {"target": "share", "family": "binomial", "weights": "trials"},
    "gaussian": {"target": "score", "family": "gaussian", "weights": "exposure"},
    "negative_binomial": {
        "target": "claim_count",
        "family": "negative_binomial",
        "theta": 1.5,
        "exposure": "exposure",
    },
    "inverse_gaussian": {
        "target": "severity",
        "family": "inverse_gaussian",
        "link": "log",
        "weights": "claim_count",
        "tol": 1e-8,  # converges in ~60 iterations; tighter runs to max_iter (rows as cells)
    },
    "gamma_exposure": {"target": "severity", "family": "gamma", "exposure": "exposure"},
}


def _rows_of(df: pd.DataFrame, family: dict[str, Any]) -> pd.DataFrame:
    if family["family"] in ("gamma", "inverse_gaussian"):
        return df[df["claim_count"] > 0]
    return df


@pytest.mark.parametrize(
    "name",
    [  # the inverse gaussian's ~60 IRLS iterations, twice, take several seconds
        pytest.param(n, marks=pytest.mark.slow) if n == "inverse_gaussian" else n for n in FAMILIES
    ],
)
def test_cells_equal_rows_per_family(data: pd.DataFrame, name: str) -> None:
    family = FAMILIES[name]
    cfg = _config(**family, interactions=[["area", "bonus_malus"]])
    df = _rows_of(data, family)
    rows = smglm.fit(cfg, df, aggregate="rows")
    cells = smglm.fit(cfg, df, aggregate="cells")
    key = family["family"] != "poisson" and "exposure" in family
    _assert_same(rows, cells, gini_rel=1e-5 if key else 1e-10)
    mp = cells.metrics["fit"]["model_points"]
    assert mp["rows"] == len(df)
    assert 0 < mp["cells"] < len(df)
    assert mp["aggregate_seconds"] >= 0
    assert "model_points" not in rows.metrics["fit"]
    # the model is the user's: it scores rows with their own exposure, as the rows' model does
    np.testing.assert_allclose(cells.predict(df.head(50)), rows.predict(df.head(50)), rtol=1e-9)
    assert cells.config.target == family["target"]


def test_cat_by_cat_interaction_saturated_cells(data: pd.DataFrame) -> None:
    """area x region with nothing else: as many cells as coefficients, yet the dispersion,
    SEs and df are the rows' (the cells alone would have no residual df)."""
    cfg = {
        "target": "severity",
        "family": "gamma",
        "weights": "claim_count",
        "predictors": ["area", "region"],
        "interactions": [["area", "region"]],
        "tol": 1e-12,
    }
    df = data[data["claim_count"] > 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sparse cells may be aliased: the same either way
        rows = smglm.fit(cfg, df, aggregate="rows")
        cells = smglm.fit(cfg, df, aggregate="cells")
    _assert_same(rows, cells)
    assert cells.metrics["train"]["df_resid"] > 0


def test_levels_groups_base_missing_level_and_fixed_terms(data: pd.DataFrame) -> None:
    df = data.copy()
    region = df["region"].astype(object)
    region[::97] = None
    df["region"] = region
    cfg = _config(
        target="claim_count",
        family="poisson",
        exposure="exposure",
        predictors=["area", "region", "vehicle_brand", "driver_age", "bonus_malus"],
        terms={
            **BANDS,
            "region": {"groups": {"north": ["R01", "R02", "R03"]}, "missing": "level"},
            "area": {"base": "A"},
        },
        fixed={"vehicle_brand": {f"B{i:02d}": 1 + i / 100 for i in range(1, 13)}},
    )
    rows = smglm.fit(cfg, df, aggregate="rows")
    cells = smglm.fit(cfg, df, aggregate="cells")
    _assert_same(rows, cells)
    assert "region[(missing)]" in cells.coefficients["term"].tolist()

    def shape(result: Any) -> list[tuple[Any, ...]]:
        keys = ("name", "type", "levels", "reference", "cuts", "groups", "missing", "fixed")
        return [tuple(t.get(k) for k in keys) for t in result.model.to_dict()["terms"]]

    assert shape(cells) == shape(rows)  # levels, bases, bands, groups, missing level: the rows'


def test_penalty_with_folded_exposure(data: pd.DataFrame) -> None:
    """glum's penalty is relative to the total weight: the cells' alpha is rescaled, so the
    penalized estimate is the rows' one."""
    cfg = _config(
        target="claim_count", family="poisson", exposure="exposure", penalty={"alpha": 1e-3}
    )
    rows = smglm.fit(cfg, data, aggregate="rows")
    cells = smglm.fit(cfg, data, aggregate="cells")
    np.testing.assert_allclose(
        cells.coefficients["estimate"], rows.coefficients["estimate"], atol=1e-7
    )


def test_parquet_folder_and_csv_read_out_of_core(data: pd.DataFrame, tmp_path: Path) -> None:
    folder = tmp_path / "motor"
    folder.mkdir()
    data.iloc[:1500].to_parquet(folder / "part-0.parquet", index=False)
    data.iloc[1500:].to_parquet(folder / "part-1.parquet", index=False)
    (folder / "_SUCCESS").write_text("")
    csv = tmp_path / "motor.csv"
    data.to_csv(csv, index=False)
    cfg = _config(target="claim_count", family="poisson", exposure="exposure")
    rows = smglm.fit(cfg, data, aggregate="rows")
    for source in (folder, csv):
        cells = smglm.fit(cfg, source, aggregate="cells")
        _assert_same(rows, cells)
        assert cells.metrics["fit"]["model_points"]["rows"] == len(data)
    # the random split hashes each row's file and row number (Parquet) or its position (CSV)
    split = {**cfg, "predictors": PREDICTORS[:1] + PREDICTORS[2:], "test": {"fraction": 0.3}}
    for source in (folder, csv):
        m = smglm.fit(split, source, aggregate="cells").metrics
        assert m["train"]["n_obs"] + m["test"]["n_obs"] == len(data)
        assert 0.25 < m["test"]["n_obs"] / len(data) < 0.35


def test_without_duckdb(data: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    from smglm.errors import MissingDependency

    monkeypatch.setitem(sys.modules, "duckdb", None)
    monkeypatch.setattr(points, "AUTO_MIN_ROWS", 1000)
    cfg = _config(target="claim_count", family="poisson", exposure="exposure")
    with pytest.raises(MissingDependency, match=r"pip install 'smglm\[points\]'"):
        smglm.fit(cfg, data, aggregate="cells")
    assert "model_points" not in smglm.fit(cfg, data).metrics["fit"]  # auto: the rows


def test_test_split_by_holdout_is_exact(data: pd.DataFrame) -> None:
    cfg = _config(
        target="claim_count",
        family="poisson",
        exposure="exposure",
        predictors=["region", "driver_age", "bonus_malus"],
        test={"by": "area", "holdout": ["E"]},
    )
    rows = smglm.fit(cfg, data, aggregate="rows")
    cells = smglm.fit(cfg, data, aggregate="cells")
    _assert_same(rows, cells)
    _assert_same(rows, cells, split="test")


def test_test_data_and_random_split(data: pd.DataFrame) -> None:
    cfg = _config(target="claim_count", family="poisson", exposure="exposure")
    train, test = data.iloc[:3000], data.iloc[3000:]
    rows = smglm.fit(cfg, train, test_data=test, aggregate="rows")
    cells = smglm.fit(cfg, train, test_data=test, aggregate="cells")
    _assert_same(rows, cells, split="test")

    split = {**cfg, "test": {"fraction": 0.25, "seed": 4}}
    a = smglm.fit(split, data, aggregate="cells")
    b = smglm.fit(split, data, aggregate="cells")
    n_train, n_test = a.metrics["train"]["n_obs"], a.metrics["test"]["n_obs"]
    assert n_train + n_test == len(data)
    assert 0.2 < n_test / len(data) < 0.3
    assert a.metrics == {**b.metrics, "fit": a.metrics["fit"]}  # deterministic
    assert a.metrics["train"]["deviance"] == b.metrics["train"]["deviance"]


def test_keep_fitted_cells_give_the_report(data: pd.DataFrame) -> None:
    from smglm.glm.report.ranking import gini
    from smglm.glm.report.scoring import build_split, scored_from_fit

    cfg = _config(
        target="claim_count",
        family="poisson",
        exposure="exposure",
        interactions=[["area", "bonus_malus"]],
    )
    rows = smglm.fit(cfg, data, aggregate="rows", keep_fitted=True)
    cells = smglm.fit(cfg, data, aggregate="cells", keep_fitted=True)
    scored = scored_from_fit(cells, "train")
    assert scored is not None
    assert len(scored.data) == cells.metrics["fit"]["model_points"]["cells"]
    actual, predicted, exposure = scored.amounts()
    r_actual, r_predicted, r_exposure = scored_from_fit(rows, "train").amounts()  # type: ignore[union-attr]
    assert actual.sum() == pytest.approx(r_actual.sum(), rel=1e-12)
    assert predicted.sum() == pytest.approx(r_predicted.sum(), rel=1e-10)
    assert exposure.sum() == pytest.approx(r_exposure.sum(), rel=1e-12)
    assert gini(actual, predicted, exposure) == pytest.approx(
        gini(r_actual, r_predicted, r_exposure), rel=1e-10
    )
    report = build_split(cells.config, scored, result=cells)  # with the term views
    rows_report = build_split(rows.config, scored_from_fit(rows, "train"), result=rows)  # type: ignore[arg-type]
    assert set(report.levels) == set(rows_report.levels)
    assert set(report.interactions) == set(rows_report.interactions)
    area = report.one_ways["area"].set_index("bin")
    by_area = data.groupby("area", observed=True)[["claim_count", "exposure"]].sum()
    np.testing.assert_allclose(area.loc[by_area.index, "actual"], by_area["claim_count"])
    bands = report.one_ways["driver_age"]["bin"].tolist()
    assert bands[0] == "[35,50)"  # the bands, the reference first: one row per band
    assert len(bands) == 5


def test_auto(data: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config(target="claim_count", family="poisson", exposure="exposure")
    small = smglm.fit(cfg, data)
    assert "model_points" not in small.metrics["fit"]
    monkeypatch.setattr(points, "AUTO_MIN_ROWS", 1000)
    big = smglm.fit(cfg, data)
    assert big.metrics["fit"]["model_points"]["rows"] == len(data)
    numeric = {**cfg, "predictors": [*PREDICTORS, "vehicle_age"]}
    assert "model_points" not in smglm.fit(numeric, data).metrics["fit"]  # not allowed: rows


def _refusal(cfg: dict[str, Any], df: pd.DataFrame, error: type[Exception] = ConfigError) -> str:
    with pytest.raises(error) as info:
        smglm.fit(cfg, df, aggregate="cells")
    return str(info.value)


def test_refusals_name_aggregate_and_the_term(data: pd.DataFrame) -> None:
    base = _config(target="claim_count", family="poisson", exposure="exposure")
    text = _refusal({**base, "predictors": [*PREDICTORS, "vehicle_age"]}, data)
    assert "aggregate" in text and "'cells'" in text and "'vehicle_age'" in text
    assert "numeric (linear)" in text and "terms.vehicle_age.bands" in text
    text = _refusal(
        {
            **base,
            "predictors": [*PREDICTORS, "vehicle_age"],
            "terms": {**BANDS, "vehicle_age": {"spline": {"df": 3}}},
        },
        data,
    )
    assert "'vehicle_age' is a spline" in text and "terms.vehicle_age.spline" in text
    text = _refusal(
        {**base, "predictors": [*PREDICTORS, "vehicle_age"], "fixed": {"vehicle_age": -0.02}},
        data,
    )
    assert "fixed at a coefficient" in text
    text = _refusal({**base, "penalty": {"search": {"cv": {"folds": 3}}}}, data)
    assert "penalty.search" in text and "folds are rows" in text
    with pytest.raises(ConfigError, match=r"aggregate.*'bogus'.*'auto', 'cells', 'rows'"):
        smglm.fit(base, data, aggregate="bogus")


def test_data_checks_count_rows(data: pd.DataFrame) -> None:
    base = _config(target="claim_count", family="poisson", exposure="exposure")
    df = data.copy()
    df.loc[df.index[:3], "driver_age"] = np.nan
    text = _refusal(base, df, DataError)
    assert "column 'driver_age' has 3 missing or infinite value(s)" in text
    with pytest.warns(UserWarning, match=r"dropped 3 of 4000 rows .*driver_age"):
        cells = smglm.fit({**base, "missing": "drop"}, df, aggregate="cells")
    with pytest.warns(UserWarning, match="dropped 3"):
        rows = smglm.fit({**base, "missing": "drop"}, df, aggregate="rows")
    _assert_same(rows, cells)
    assert cells.metrics["fit"]["n_dropped"] == 3

    df = data.copy()
    df.loc[df.index[:2], "claim_count"] = -1
    df.loc[df.index[5], "exposure"] = 0.0
    text = _refusal(base, df, DataError)
    assert "column 'claim_count' has 2 negative value(s) (min -1)" in text
    assert "column 'exposure' has 1 value(s) <= 0" in text
    text = _refusal(_config(target="severity", family="gamma"), data, DataError)
    assert "value(s) <= 0" in text and "family 'gamma' needs a target > 0" in text
    text = _refusal(_config(target="share", family="binomial"), data, DataError)
    assert "proportions" in text and "weights" in text
    text = _refusal({**base, "predictors": [*PREDICTORS, "colour"]}, data, DataError)
    assert "column 'colour' is not in the data" in text


def test_train_refuses_aggregate_cells_before_launching(data: pd.DataFrame, tmp_path) -> None:
    """``smglm.train(..., aggregate="cells")`` with a numeric predictor: the refusal comes
    before anything is uploaded or launched (the data's schema says the column is numeric)."""
    import smglm
    from smglm.launch.local import LocalBackend

    backend = LocalBackend(tmp_path / "home")
    config = {"target": "claim_count", "predictors": ["driver_age", "area"], "family": "poisson"}
    with pytest.raises(ConfigError, match=r"predictor 'driver_age' is numeric \(linear\)") as exc:
        smglm.train(config, data, backend=backend, aggregate="cells", tracking=False)
    assert [i.field for i in exc.value.issues] == ["aggregate"]
    assert not backend.jobs_dir.exists() or not any(backend.jobs_dir.iterdir())
