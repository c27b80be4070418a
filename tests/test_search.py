"""The penalty search (``penalty.search``) and the test split by a column (``test.by``).

Folds: random folds partition the rows; grouped folds never split a group and are balanced
by rows; forward folds validate each period on the periods before it. The search: glum's
``GeneralizedLinearRegressorCV`` called directly on the same folds chooses the same alpha;
its CV deviance is the weighted mean unit deviance of the validation rows; ``1se`` takes the
largest alpha within one standard error; the refit equals a plain fit with the chosen
penalty. The job writes ``search.csv`` and logs the choice.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

import smglm
from smglm.config import GLMConfig
from smglm.datasets import motor
from smglm.errors import ConfigError, DataError
from smglm.glm.fitting import split_by_column, split_test
from smglm.glm.search import (
    SEARCH_COLUMNS,
    CVPath,
    choose,
    forward_folds,
    grouped_folds,
    make_folds,
    path_table,
    random_folds,
)

slow = pytest.mark.slow

BASE: dict[str, Any] = {
    "target": "claim_count",
    "predictors": ["driver_age", "bonus_malus", "area", "region"],
    "exposure": "exposure",
    "family": "poisson",
}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    df = motor(3000, seed=5)
    df["year"] = 2019 + (df["policy_id"] % 5)
    df["household"] = df["policy_id"] // 3
    return df


def _search(**changes: Any) -> dict[str, Any]:
    spec = {"l1_ratio": [0.0, 1.0], "n_alphas": 6, "cv": {"folds": 3, "seed": 4}}
    spec.update(changes)
    return {**BASE, "penalty": {"search": spec}}


@pytest.fixture(scope="module")
def searched(data: pd.DataFrame) -> smglm.FitResult:
    return smglm.fit(_search(), data)


# -- folds ----------------------------------------------------------------------------------


def _assert_partition(folds: list[tuple[np.ndarray, np.ndarray]], n: int) -> None:
    tests = np.concatenate([t for _, t in folds])
    assert np.array_equal(np.sort(tests), np.arange(n))  # each row validated exactly once
    for train, test in folds:
        assert np.intersect1d(train, test).size == 0
        assert np.union1d(train, test).size == n


def test_random_folds_partition_the_rows_evenly_and_follow_the_seed() -> None:
    folds = random_folds(103, 5, seed=1)
    _assert_partition(folds, 103)
    sizes = [t.size for _, t in folds]
    assert max(sizes) - min(sizes) <= 1
    again = random_folds(103, 5, seed=1)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    other = random_folds(103, 5, seed=2)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other, strict=True))


def test_grouped_folds_never_split_a_group_and_balance_rows() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 12, size=300)
    groups = np.repeat([f"p{i}" for i in range(300)], sizes)
    rng.shuffle(groups)
    folds = grouped_folds(groups, 4, seed=3)
    _assert_partition(folds, groups.size)
    fold_of = {}
    for k, (_, test) in enumerate(folds):
        for g in set(groups[test]):
            assert fold_of.setdefault(g, k) == k, f"group {g} is in two folds"
    assert set(fold_of) == set(groups)
    rows = [t.size for _, t in folds]
    assert max(rows) - min(rows) <= sizes.max()  # balanced by rows, not by groups


def test_grouped_folds_need_enough_groups_and_no_missing() -> None:
    with pytest.raises(DataError, match="3 folds need at least 3 groups") as info:
        grouped_folds(np.array(["a", "a", "b"], dtype=object), 3, 0, column="policy")
    assert "penalty.search.cv.folds" in info.value.fields
    with pytest.raises(DataError, match="has 1 missing value") as info:
        grouped_folds(np.array(["a", None, "b", "c"], dtype=object), 2, 0, column="policy")
    assert "penalty.search.cv.group" in info.value.fields


def test_forward_folds_are_in_time_order_and_train_only_on_the_past() -> None:
    years = np.array([2021, 2019, 2020, 2023, 2022, 2021, 2023, 2019, 2022, 2020] * 3)
    folds = forward_folds(years, 3, column="year")
    validated = []
    for train, test in folds:
        (year,) = set(years[test])
        validated.append(year)
        assert set(np.flatnonzero(years == year)) == set(test)  # all of that year's rows
        assert set(train) == set(np.flatnonzero(years < year))  # every earlier row, only those
    assert validated == [2021, 2022, 2023]  # the last three years, in order


def test_forward_folds_order_numbers_written_as_text_as_numbers() -> None:
    periods = np.array(["9", "10", "11", "9", "10", "11"], dtype=object)
    folds = forward_folds(periods, 2, column="period")
    assert [sorted(set(periods[f.test])) for f in folds] == [["10"], ["11"]]
    assert sorted(set(periods[folds[0].train])) == ["9"]


def test_forward_folds_need_more_values_than_folds() -> None:
    with pytest.raises(DataError) as info:
        forward_folds(np.array([2020, 2021, 2022, 2020]), 3, column="accident_year")
    message = str(info.value)
    assert "penalty.search.cv.folds" in info.value.fields
    assert "penalty.search.cv.by" in message and "'accident_year'" in message
    assert "need at least 4 distinct values" in message and "[2020, 2021, 2022]" in message


def test_make_folds_reads_the_spec() -> None:
    spec = GLMConfig.from_dict(_search(cv={"folds": 2, "by": "year"})).penalty.search
    assert spec is not None
    folds = make_folds(pd.DataFrame({"year": [1, 2, 3, 3]}), spec.cv)
    assert [f.test.tolist() for f in folds] == [[1], [2, 3]]
    assert [f.train.tolist() for f in folds] == [[0], [0, 1]]
    with pytest.raises(DataError, match="column 'year' is not in the data") as info:
        make_folds(pd.DataFrame({"yr": [1, 2, 3]}), spec.cv)
    assert "penalty.search.cv.by" in info.value.fields


# -- the path table and the choice ----------------------------------------------------------


def _path(cv: list[float], se: list[float]) -> pd.DataFrame:
    """A one-l1_ratio table with the given mean CV deviances and standard errors."""
    n = len(cv)
    rng = np.random.default_rng(0)
    table = path_table(
        CVPath(
            l1_ratios=np.array([0.5]),
            alphas=np.geomspace(1.0, 1e-3, n)[None, :],
            deviance=rng.normal(size=(3, 1, n)),
            train_deviance=np.zeros((3, 1, n)),
        )
    )
    table["cv_deviance"] = cv
    table["cv_deviance_se"] = se
    return table


def test_rule_min_takes_the_lowest_cv_deviance_and_1se_the_largest_alpha_within_one_se() -> None:
    table = _path([5.0, 3.0, 2.2, 2.0, 2.1, 2.4], [0.1, 0.1, 0.1, 0.25, 0.1, 0.1])
    assert choose(table, "min") == 3
    # within 2.0 + 0.25: rows 2 (2.2), 3, 4 (2.1); the largest alpha is row 2's
    assert choose(table, "1se") == 2
    # a larger alpha just outside the band is not taken
    assert choose(_path([2.26, 2.2, 2.0], [0.1, 0.1, 0.25]), "1se") == 1


def test_path_table_has_the_contract_columns_and_standard_errors() -> None:
    dev = np.arange(2 * 2 * 3, dtype=float).reshape(2, 2, 3) ** 1.5
    table = path_table(
        CVPath(
            l1_ratios=np.array([0.0, 1.0]),
            alphas=np.array([[3.0, 2.0, 1.0], [0.3, 0.2, 0.1]]),
            deviance=dev,
            train_deviance=dev / 2,
        )
    )
    assert tuple(table.columns) == SEARCH_COLUMNS
    assert table["l1_ratio"].tolist() == [0.0] * 3 + [1.0] * 3
    assert table["alpha_index"].tolist() == [0, 1, 2] * 2
    np.testing.assert_allclose(table["cv_deviance"], dev.mean(axis=0).ravel())
    np.testing.assert_allclose(
        table["cv_deviance_se"], dev.std(axis=0, ddof=1).ravel() / math.sqrt(2)
    )


# -- the search against glum ----------------------------------------------------------------


def _glum_cv_on_the_same_folds(result: smglm.FitResult, data: pd.DataFrame) -> Any:
    """glum's GeneralizedLinearRegressorCV called directly, on smglm's design and folds."""
    from glum import GeneralizedLinearRegressorCV

    from smglm.glm.data import prepare
    from smglm.glm.engines.glum import design_matrix

    cfg = GLMConfig.from_dict(_search()).resolved()
    spec = cfg.penalty.search
    assert spec is not None
    prep = prepare(cfg, data)
    folds = make_folds(data, spec.cv)
    est = GeneralizedLinearRegressorCV(
        family="poisson",
        l1_ratio=spec.l1_ratio,
        n_alphas=spec.n_alphas,
        cv=folds,
        gradient_tol=cfg.tol,
        max_iter=cfg.max_iter,
        n_jobs=1,
    )
    est.fit(design_matrix(prep), prep.y, sample_weight=prep.weights, offset=prep.offset)
    return est, prep, folds


@slow
def test_chosen_alpha_is_glums_on_the_same_folds_and_cv_deviance_is_the_weighted_mean(
    searched: smglm.FitResult, data: pd.DataFrame
) -> None:
    from smglm.glm.engines.glum import design_matrix
    from smglm.glm.families import family_of
    from smglm.glm.stats import deviance

    est, prep, folds = _glum_cv_on_the_same_folds(searched, data)
    chosen = searched.metrics["search"]
    assert chosen["alpha"] == pytest.approx(float(est.alpha_), rel=1e-12)
    assert chosen["l1_ratio"] == float(est.l1_ratio_)
    table = searched.search
    assert table is not None
    np.testing.assert_allclose(
        table["cv_deviance"], est.deviance_path_.mean(axis=0).ravel(), rtol=1e-10
    )
    # glum's CV deviance of a fold = sum(w * unit deviance) / sum(w) on its validation rows
    k, i, j = 1, 1, 3
    _, test = folds[k]
    coef = est.coef_path_[k, i, j]
    eta = est.intercept_path_[k, i, j, 0] + design_matrix(prep)[test, :].matvec(coef)
    mu = np.exp(eta + prep.offset[test])
    fam = family_of(GLMConfig.from_dict(BASE))
    w = prep.weights[test]
    ours = deviance(fam, prep.y[test], mu, w) / w.sum()
    assert ours == pytest.approx(float(est.deviance_path_[k, i, j]), rel=1e-9)


@slow
def test_search_outputs_follow_the_contract(searched: smglm.FitResult) -> None:
    table = searched.search
    assert table is not None
    assert tuple(table.columns) == SEARCH_COLUMNS
    assert len(table) == 2 * 6 and table["chosen"].sum() == 1
    row = table[table["chosen"]].iloc[0]
    summary = searched.metrics["search"]
    assert set(summary) >= {
        "alpha",
        "l1_ratio",
        "rule",
        "folds",
        "cv_deviance",
        "cv_deviance_se",
        "n_fits",
    }
    assert (summary["alpha"], summary["l1_ratio"]) == (row["alpha"], row["l1_ratio"])
    assert summary["cv_deviance"] == row["cv_deviance"] == table["cv_deviance"].min()
    assert summary["folds"] == 3 and summary["n_fits"] == 3 * 2 * 6 and summary["rule"] == "min"
    assert searched.metrics["fit"]["search_seconds"] == summary["seconds"] > 0
    assert (table["cv_deviance_se"] > 0).all()
    assert searched.config.penalty.search is not None  # the config as given
    assert f"penalty search: alpha={summary['alpha']:.6g}" in searched.summary()


@slow
def test_refit_equals_a_plain_fit_with_the_chosen_penalty(
    searched: smglm.FitResult, data: pd.DataFrame
) -> None:
    chosen = searched.metrics["search"]
    plain = smglm.fit(
        {**BASE, "penalty": {"alpha": chosen["alpha"], "l1_ratio": chosen["l1_ratio"]}}, data
    )
    # the same fit, to rounding: the two fits run the same solver from the same start, but
    # threaded sums need not add in the same order twice
    pd.testing.assert_frame_equal(searched.coefficients, plain.coefficients, rtol=1e-10)
    assert searched.metrics["train"] == pytest.approx(plain.metrics["train"], rel=1e-10)
    np.testing.assert_allclose(searched.predict(data), plain.predict(data), rtol=1e-12)


@slow
def test_1se_rule_picks_the_largest_alpha_within_one_se(data: pd.DataFrame) -> None:
    result = smglm.fit(_search(l1_ratio=[0.0], n_alphas=8, rule="1se"), data)
    table = result.search
    assert table is not None
    best = table["cv_deviance"].idxmin()
    limit = table.loc[best, "cv_deviance"] + table.loc[best, "cv_deviance_se"]
    within = table[table["cv_deviance"] <= limit]
    chosen = table[table["chosen"]].iloc[0]
    assert chosen["alpha"] == within["alpha"].max() >= table.loc[best, "alpha"]
    assert result.metrics["search"]["rule"] == "1se"
    assert result.metrics["search"]["alpha"] == chosen["alpha"]


@slow
def test_grouped_and_forward_searches_run_on_their_columns(data: pd.DataFrame) -> None:
    grouped = smglm.fit(
        _search(l1_ratio=[0.0], n_alphas=4, cv={"folds": 3, "group": "household"}), data
    )
    assert grouped.metrics["search"]["folds"] == 3
    forward = smglm.fit(
        _search(l1_ratio=[0.0], alphas=[0.1, 0.01, 0.001], cv={"folds": 2, "by": "year"}), data
    )
    table = forward.search
    assert table is not None
    np.testing.assert_allclose(table["alpha"], [0.1, 0.01, 0.001])
    assert forward.metrics["search"]["folds"] == 2


@slow
def test_search_with_bounds_keeps_them_on_every_fold_and_in_the_refit(data: pd.DataFrame) -> None:
    config = {
        **_search(l1_ratio=[0.0, 0.5], n_alphas=4),
        "constraints": {"bounds": {"driver_age": [0, None], "area": [None, 0]}},
    }
    result = smglm.fit(config, data)
    chosen = result.metrics["search"]
    table = result.search
    assert table is not None and np.isfinite(table["cv_deviance"]).all()
    coefs = result.coefficients.set_index("term")["estimate"]
    assert coefs["driver_age"] >= 0 and (coefs[coefs.index.str.startswith("area[")] <= 0).all()
    plain = smglm.fit(
        {
            **BASE,
            "constraints": config["constraints"],
            "penalty": {"alpha": chosen["alpha"], "l1_ratio": chosen["l1_ratio"]},
        },
        data,
    )
    pd.testing.assert_frame_equal(result.coefficients, plain.coefficients, rtol=1e-10)


def test_search_with_bounds_excluding_zero_is_refused_before_reading_data() -> None:
    """glum's penalized fit cannot hold a coefficient in bounds that exclude 0 (it stops at
    max_iter outside them): with a search, such bounds are a ConfigError naming them."""
    config = {
        **_search(),
        "constraints": {"bounds": {"bonus_malus": [0.02, 0.05], "driver_age": [0, None]}},
    }
    with pytest.raises(ConfigError) as info:
        smglm.fit(config, "/nonexistent/data.csv")
    assert info.value.fields == ["constraints.bounds.bonus_malus"]
    message = str(info.value)
    assert "[0.02, 0.05] exclude 0" in message and "penalty.search" in message


@slow
def test_search_after_dropping_rows_finds_the_fold_column_rows(data: pd.DataFrame) -> None:
    df = data.copy()
    df.index = np.repeat(np.arange(len(df) // 2 + 1), 2)[: len(df)]  # repeated row labels
    age = df["driver_age"].to_numpy(dtype=float)
    age[::7] = np.nan
    df["driver_age"] = age
    config = {
        **_search(l1_ratio=[0.0], n_alphas=3, cv={"folds": 3, "by": "year"}),
        "missing": "drop",
    }
    with pytest.warns(UserWarning, match="dropped"):
        result = smglm.fit(config, df)
    assert result.metrics["train"]["n_obs"] == len(df) - len(range(0, len(df), 7))


def test_search_of_a_forward_fold_column_with_too_few_values_names_the_fields(
    data: pd.DataFrame,
) -> None:
    with pytest.raises(DataError) as info:
        smglm.fit(_search(cv={"folds": 5, "by": "year"}), data)
    assert "penalty.search.cv.folds" in info.value.fields
    assert "penalty.search.cv.by" in str(info.value)


def test_alphas_and_min_alpha_ratio_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="min_alpha_ratio") as info:
        GLMConfig.from_dict(_search(alphas=[1.0, 0.1], min_alpha_ratio=1e-3))
    assert any("min_alpha_ratio" in f for f in info.value.fields)


# -- the time split ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "years",
    [
        np.array([2023, 2024, 2025, 2025, 2024]),
        np.array([2023.0, 2024.0, 2025.0, 2025.0, 2024.0]),
        np.array(["2023", "2024", "2025", "2025", "2024"], dtype=object),
    ],
    ids=["int", "float", "text"],
)
@pytest.mark.parametrize("holdout", [[2025], [2025.0], ["2025"]], ids=["int", "float", "text"])
def test_split_by_column_matches_values_as_level_strings(years: np.ndarray, holdout: list) -> None:
    df = pd.DataFrame({"year": years, "y": range(5)})
    train, test = split_by_column(df, "year", holdout)
    assert test["y"].tolist() == [2, 3] and train["y"].tolist() == [0, 1, 4]


def test_a_boolean_holdout_stays_a_boolean_through_the_config() -> None:
    """``holdout: [true]`` on a boolean column: the config keeps True (not 1), and the split
    finds the column's True rows."""
    from smglm.config import GLMConfig

    config = GLMConfig.from_dict(
        {"target": "y", "predictors": ["x"], "test": {"by": "flag", "holdout": [True]}}
    )
    assert config.test is not None and config.test.holdout == [True]
    assert type(config.test.holdout[0]) is bool
    df = pd.DataFrame({"flag": [False, True, True, False], "y": range(4)})
    train, test = split_by_column(df, "flag", config.test.holdout)
    assert test["y"].tolist() == [1, 2] and train["y"].tolist() == [0, 3]


def test_split_by_column_absent_value_names_test_holdout_and_the_values_present() -> None:
    df = pd.DataFrame({"year": [2023, 2024, 2024], "y": [1, 2, 3]})
    with pytest.raises(DataError) as info:
        split_by_column(df, "year", [2024, 2026])
    message = str(info.value)
    assert "test.holdout" in info.value.fields
    assert "2026" in message and "['2023', '2024']" in message and "'year'" in message


def test_split_by_column_holding_out_every_row_is_refused() -> None:
    df = pd.DataFrame({"year": [2024, 2024, 2025], "y": [1, 2, 3]})
    with pytest.raises(DataError, match="holds out every row") as info:
        split_by_column(df, "year", [2024, 2025])
    assert "test.holdout" in info.value.fields


def test_split_test_logs_the_sizes(caplog: pytest.LogCaptureFixture) -> None:
    df = pd.DataFrame({"year": [2023, 2024, 2024, 2025], "y": [1, 2, 3, 4]})
    test = GLMConfig.from_dict(
        {"target": "y", "predictors": [], "test": {"by": "year", "holdout": [2024]}}
    ).test
    assert test is not None
    with caplog.at_level("INFO", logger="smglm.glm.fitting"):
        train, held = split_test(df, test)
    assert len(train) == 2 and len(held) == 2
    assert "2 rows train, 2 rows test" in caplog.text


def test_fit_with_a_time_split_tests_on_the_holdout_rows(data: pd.DataFrame) -> None:
    result = smglm.fit({**BASE, "test": {"by": "year", "holdout": [2023]}}, data)
    n_test = int((data["year"] == 2023).sum())
    assert result.metrics["test"]["n_obs"] == n_test
    assert result.metrics["train"]["n_obs"] == len(data) - n_test
    direct = smglm.fit(BASE, data[data["year"] != 2023])
    pd.testing.assert_frame_equal(result.coefficients, direct.coefficients, rtol=1e-10)


# -- the job ----------------------------------------------------------------------------------


@slow
def test_search_results_give_mlflow_series_and_params(
    searched: smglm.FitResult, tmp_path: Any
) -> None:
    from smglm.tracking.runs import search_results

    searched.save(tmp_path)
    points, params = search_results(tmp_path)
    table = searched.search
    assert table is not None
    series = [(k, v, s) for k, v, s in points if k == "cv_deviance/l1_ratio_1"]
    assert [s for _, _, s in series] == list(range(6))
    np.testing.assert_allclose(
        [v for _, v, _ in series], table.loc[table["l1_ratio"] == 1.0, "cv_deviance"]
    )
    assert float(params["search.alpha"]) == searched.metrics["search"]["alpha"]
    assert float(params["search.l1_ratio"]) == searched.metrics["search"]["l1_ratio"]
    loaded = smglm.load_model(tmp_path)
    assert loaded.search is not None
    pd.testing.assert_frame_equal(loaded.search, table)


@slow
def test_local_job_writes_search_csv_and_logs_the_choice(tmp_path: Any, data: pd.DataFrame) -> None:
    from smglm.launch.local import LocalBackend

    backend = LocalBackend(tmp_path / "home")
    config = {
        **_search(l1_ratio=[0.0], n_alphas=4, cv={"folds": 2, "by": "year"}),
        "test": {"by": "year", "holdout": [2023]},
    }
    job = smglm.train(config, data, backend=backend, tracking=False)
    job.wait(out=io.StringIO())
    assert job.status == "Completed", job.failure_reason
    model = job.artifacts() / "model"
    table = pd.read_csv(model / "search.csv")
    assert tuple(table.columns) == SEARCH_COLUMNS and table["chosen"].sum() == 1
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["search"]["alpha"] == table.loc[table["chosen"], "alpha"].iloc[0]
    assert metrics["test"]["n_obs"] == int((data["year"] == 2023).sum())
    logs = job.logs()
    assert "penalty search: chose alpha" in logs and "search.csv" in logs
    assert "rows of train held out for testing (year in [2023])" in logs


@slow
def test_search_is_logged_to_mlflow(searched: smglm.FitResult, tmp_path: Any) -> None:
    from smglm.tracking.runs import _client, log_results, prepare_store

    searched.save(tmp_path / "model")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    prepare_store(uri)
    client = _client(uri)
    run_id = client.create_run(client.create_experiment("search")).info.run_id
    log_results(client, run_id, tmp_path / "model", None)
    run = client.get_run(run_id)
    summary = searched.metrics["search"]
    assert run.data.params["search.alpha"] == repr(summary["alpha"])
    assert run.data.metrics["search_cv_deviance"] == summary["cv_deviance"]
    history = client.get_metric_history(run_id, "cv_deviance/l1_ratio_0")
    table = searched.search
    assert table is not None
    expected = table[table["l1_ratio"] == 0.0]
    assert sorted((m.step, m.value) for m in history) == list(
        zip(expected["alpha_index"], expected["cv_deviance"], strict=True)
    )
    assert "search.csv" in [a.path for a in client.list_artifacts(run_id)]
