"""The report's term views: each table against sums computed directly with pandas, the
figures drawn from them, their storage and their place in the registry."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import smglm
from smglm.datasets import motor
from smglm.glm.report import FIGURES, ReportData
from smglm.glm.report.figures import (
    figure_files,
    plot_consistency,
    plot_interaction,
    plot_levels,
    plot_search,
    plot_spline,
    save_figures,
)
from smglm.glm.report.sections import model_sections
from smglm.glm.report.term_views import (
    SEARCH_COLUMNS,
    Z95,
    basis_of_unit_effects,
    consistency_table,
    interaction_table,
    level_table,
    search_table,
    spline_bins,
    spline_curve,
)

RNG = np.random.default_rng(5)
N = 3000


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """Rows with two level columns, a numeric one, a year, amounts and exposure."""
    n = N
    exposure = RNG.uniform(0.1, 1.0, n)
    expected = exposure * RNG.uniform(0.05, 0.2, n)
    return pd.DataFrame(
        {
            "a": RNG.choice(["x", "y", "z"], n),
            "b": RNG.choice(["p", "q"], n, p=[0.7, 0.3]),
            "x": RNG.uniform(18, 80, n),
            "year": RNG.choice([2021, 2022, 2023], n),
            "exposure": exposure,
            "expected": expected,
            "actual": RNG.poisson(expected * 1.1).astype(float),
            "effect": RNG.normal(0, 0.1, n),
        }
    )


def _search_frame() -> pd.DataFrame:
    alphas = np.geomspace(1.0, 1e-3, 6)
    rows = []
    for ratio in (0.0, 1.0):
        dev = 1.0 + (np.log10(alphas) + 2) ** 2 / 10 + ratio / 20
        for i, (alpha, d) in enumerate(zip(alphas, dev, strict=True)):
            rows.append([ratio, i, alpha, d, 0.01 + i / 500, d - 0.05, False])
    frame = pd.DataFrame(rows, columns=list(SEARCH_COLUMNS))
    frame.loc[4, "chosen"] = True
    return frame


def test_spline_curve_band_is_the_basis_covariance_quadratic_form():
    grid = np.linspace(0.0, 1.0, 11)
    basis = np.column_stack([grid, grid**2, np.sin(3 * grid)])
    beta = np.array([0.3, -0.2, 0.1])
    a = RNG.normal(size=(3, 3))
    cov = a @ a.T / 50
    curve = spline_curve(grid, basis, beta, cov, "log")
    effect = basis @ beta
    se = np.sqrt(np.array([b @ cov @ b for b in basis]))
    np.testing.assert_allclose(curve["effect"], effect, rtol=1e-14)
    np.testing.assert_allclose(curve["se"], se, rtol=1e-12)
    np.testing.assert_allclose(curve["fit"], np.exp(effect), rtol=1e-14)
    np.testing.assert_allclose(curve["lower"], np.exp(effect - Z95 * se), rtol=1e-12)
    np.testing.assert_allclose(curve["upper"], np.exp(effect + Z95 * se), rtol=1e-12)
    identity = spline_curve(grid, basis, beta, cov, "identity")
    np.testing.assert_allclose(identity["upper"], effect + Z95 * se, rtol=1e-12)
    # no covariance (or an aliased, NaN one): the curve without a band
    assert spline_curve(grid, basis, beta, None, "log")["lower"].isna().all()
    cov[0, 0] = np.nan
    assert spline_curve(grid, basis, beta, cov, "log")["se"].isna().all()


def test_spline_bins_equal_pandas_sums(rows):
    table = spline_bins(
        rows["x"].to_numpy(),
        rows["actual"].to_numpy(),
        rows["expected"].to_numpy(),
        rows["exposure"].to_numpy(),
        rows["effect"].to_numpy(),
        "log",
        bins=8,
    )
    edges = np.linspace(rows["x"].min(), rows["x"].max(), 9)
    code = np.clip(np.searchsorted(edges, rows["x"], side="right") - 1, 0, 7)
    g = rows.assign(
        code=code, rel=np.exp(rows["effect"]) * rows["exposure"], xe=rows["x"] * rows["exposure"]
    ).groupby("code")
    sums = g[["exposure", "actual", "expected", "rel", "xe"]].sum()
    np.testing.assert_allclose(table["exposure"], sums["exposure"], rtol=1e-12)
    np.testing.assert_allclose(table["actual"], sums["actual"], rtol=1e-12)
    np.testing.assert_allclose(table["ae"], sums["actual"] / sums["expected"], rtol=1e-12)
    fit = sums["rel"] / sums["exposure"]
    np.testing.assert_allclose(table["fit"], fit, rtol=1e-12)
    np.testing.assert_allclose(table["x"], sums["xe"] / sums["exposure"], rtol=1e-12)
    np.testing.assert_allclose(
        table["observed"], fit * sums["actual"] / sums["expected"], rtol=1e-12
    )
    np.testing.assert_allclose(table["x_lo"], edges[:-1])
    # few integer values: one bin per value
    ages = np.array([20.0, 21.0, 21.0, 25.0])
    ones = np.ones(4)
    small = spline_bins(ages, ones, ones, ones, np.zeros(4), "log")
    assert list(small["x"]) == [20.0, 21.0, 25.0]
    assert list(small["n_rows"]) == [1, 2, 1]


def test_level_table_equals_pandas_sums(rows):
    levels = ["x", "y", "z"]
    table = level_table(
        levels,
        "x",
        [0.0, 0.2, -0.1],
        [0.0, 0.1, -0.3],
        [0.0, 0.3, 0.1],
        rows["a"].to_numpy(),
        rows["actual"].to_numpy(),
        rows["expected"].to_numpy(),
        rows["exposure"].to_numpy(),
        "log",
    )
    sums = rows.groupby("a")[["exposure", "actual", "expected"]].sum().loc[levels]
    np.testing.assert_allclose(table["exposure"], sums["exposure"], rtol=1e-12)
    np.testing.assert_allclose(table["ae"], sums["actual"] / sums["expected"], rtol=1e-12)
    np.testing.assert_allclose(table["fit"], np.exp([0.0, 0.2, -0.1]), rtol=1e-14)
    np.testing.assert_allclose(table["upper"], np.exp([0.0, 0.3, 0.1]), rtol=1e-14)
    np.testing.assert_allclose(
        table["observed"], table["fit"] * sums["actual"].to_numpy() / sums["expected"].to_numpy()
    )
    assert table["base"].tolist() == [True, False, False]
    assert table["n_rows"].sum() == len(rows)


def test_interaction_heat_map_cells_equal_pandas_sums(rows):
    effect = rows["effect"].to_numpy()
    table = interaction_table(
        rows["a"].to_numpy(),
        rows["b"].to_numpy(),
        rows["actual"].to_numpy(),
        rows["expected"].to_numpy(),
        rows["exposure"].to_numpy(),
        effect,
        "log",
        order_a=["z", "y", "x"],
    )
    assert list(zip(table["a"], table["b"], strict=True))[:2] == [("z", "p"), ("z", "q")]
    direct = (
        rows.assign(rel=np.exp(effect) * rows["exposure"])
        .groupby(["a", "b"])[["exposure", "actual", "expected", "rel"]]
        .sum()
    )
    cells = table.set_index(["a", "b"])
    for (a, b), row in direct.iterrows():
        cell = cells.loc[(a, b)]
        assert cell["exposure"] == pytest.approx(row["exposure"], rel=1e-12)
        assert cell["ae"] == pytest.approx(row["actual"] / row["expected"], rel=1e-12)
        assert cell["fit"] == pytest.approx(row["rel"] / row["exposure"], rel=1e-12)
    fig = plot_interaction(table, "a:b")
    image = fig.axes[0].images[0].get_array()
    pivot = (direct["actual"] / direct["expected"]).unstack().loc[["z", "y", "x"], ["p", "q"]]
    np.testing.assert_allclose(np.asarray(image), pivot.to_numpy(), rtol=1e-12)


def test_a_cell_without_rows_is_listed_without_a_ratio():
    one = np.ones(2)
    table = interaction_table(
        np.array(["x", "y"]), np.array(["p", "q"]), one, one, one, np.zeros(2), "log"
    )
    assert len(table) == 4
    empty = table[(table["a"] == "x") & (table["b"] == "q")].iloc[0]
    assert empty["exposure"] == 0 and np.isnan(empty["ae"]) and np.isnan(empty["fit"])
    plot_interaction(table, "a:b")  # draws the empty cell blank


def test_consistency_equals_pandas_sums(rows):
    fit = np.array([1.0, 1.3, 0.8])
    table = consistency_table(
        ["x", "y", "z"],
        fit,
        rows["a"].to_numpy(),
        rows["year"].to_numpy(),
        rows["actual"].to_numpy(),
        rows["expected"].to_numpy(),
        rows["exposure"].to_numpy(),
        "log",
    )
    cell = rows.groupby(["a", "year"])[["actual", "expected"]].sum()
    year = rows.groupby("year")[["actual", "expected"]].sum()
    assert sorted(set(table["by"])) == ["2021", "2022", "2023"]
    for r in table.itertuples():
        c = cell.loc[(r.level, int(r.by))]
        y = year.loc[int(r.by)]
        ae, ae_year = c["actual"] / c["expected"], y["actual"] / y["expected"]
        assert r.ae == pytest.approx(ae, rel=1e-12)
        assert r.ae_by == pytest.approx(ae_year, rel=1e-12)
        assert r.observed == pytest.approx(fit[["x", "y", "z"].index(r.level)] * ae / ae_year)
    fig = plot_consistency(table, "a", "year")
    assert [line.get_label() for line in fig.axes[0].lines[1:4]] == ["2021", "2022", "2023"]


def test_search_band_is_mean_plus_minus_se():
    frame = _search_frame()
    table = search_table(frame.sample(frac=1.0, random_state=1))
    assert list(table.columns) == list(SEARCH_COLUMNS)
    assert table["alpha"].iloc[0] == 1.0  # path order: alpha descending per l1_ratio
    fig = plot_search(table)
    ax = fig.axes[0]
    band = ax.collections[0].get_paths()[0].vertices
    first = table[table["l1_ratio"] == 0.0].sort_values("alpha")
    x = np.log10(first["alpha"].to_numpy())
    upper = first["cv_deviance"] + first["cv_deviance_se"]
    lower = first["cv_deviance"] - first["cv_deviance_se"]
    for xi, lo, hi in zip(x, lower, upper, strict=True):
        ys = band[np.isclose(band[:, 0], xi), 1]
        assert np.isclose(ys, lo).any() and np.isclose(ys, hi).any()
    chosen = [line for line in ax.lines if line.get_label() == "chosen"]
    assert len(chosen) == 1
    chosen_row = table[table["chosen"]].iloc[0]
    assert chosen[0].get_xdata()[0] == pytest.approx(np.log10(chosen_row["alpha"]))
    with pytest.raises(ValueError, match=r"lacks columns \['chosen'\]"):
        search_table(frame.drop(columns="chosen"))


def _views(rows: pd.DataFrame) -> ReportData:
    """A ReportData holding one table of each term view, built from ``rows``."""
    arrays = [rows[c].to_numpy() for c in ("actual", "expected", "exposure")]
    grid = np.linspace(18, 80, 21)
    basis = np.column_stack([(grid - 18) / 62, ((grid - 18) / 62) ** 2])
    curve = spline_curve(grid, basis, np.array([0.4, -0.6]), np.eye(2) * 1e-3, "log")
    bins = spline_bins(rows["x"].to_numpy(), *arrays, rows["effect"].to_numpy(), "log")
    spline = pd.concat([curve.assign(part="curve"), bins.assign(part="bins")], ignore_index=True)
    return ReportData(
        splines={"x": spline},
        levels={
            "a": level_table(
                ["x", "y", "z"],
                "x",
                [0, 0.2, -0.1],
                [0, 0.1, -0.3],
                [0, 0.3, 0.1],
                rows["a"].to_numpy(),
                *arrays,
                "log",
            )
        },
        interactions={
            "a:b": interaction_table(
                rows["a"].to_numpy(), rows["b"].to_numpy(), *arrays, rows["effect"], "log"
            )
        },
        consistency={
            "a": consistency_table(
                ["x", "y", "z"],
                [1, 1.2, 0.9],
                rows["a"].to_numpy(),
                rows["year"].to_numpy(),
                *arrays,
                "log",
            )
        },
        search=search_table(_search_frame()),
        link="log",
        split_by="year",
    )


def test_term_tables_round_trip_through_files(rows, tmp_path):
    data = _views(rows)
    data.to_dir(tmp_path)
    back = ReportData.from_dir(tmp_path)
    assert back.link == "log" and back.split_by == "year"
    for kind in ("splines", "levels", "interactions", "consistency"):
        mine, theirs = getattr(data, kind), getattr(back, kind)
        assert list(mine) == list(theirs), kind
        for name in mine:
            pd.testing.assert_frame_equal(
                mine[name].reset_index(drop=True), theirs[name], check_dtype=False, rtol=1e-12
            )
    pd.testing.assert_frame_equal(data.search, back.search, check_dtype=False)


def test_every_term_view_is_registered_and_drawn(rows, tmp_path):
    data = _views(rows)
    files = figure_files(data, tmp_path, "train")
    names = {path.name for path, _ in files}
    assert {
        "spline_x.png",
        "levels_a.png",
        "interaction_a_b.png",
        "consistency_a.png",
        "search.png",
    } <= names
    # the test split gets the term views but not the penalty search (a model-wide figure)
    assert "search.png" not in {p.name for p, _ in figure_files(data, tmp_path, "test")}
    written = save_figures(files)
    assert all(path.stat().st_size > 1000 for path in written)
    keys = {spec.key for spec in FIGURES}
    assert {"splines", "levels", "interactions", "consistency", "search"} <= keys
    for spec in FIGURES:
        assert "read" in spec.caption or len(spec.caption) > 80, spec.key  # says how to read it


def test_spline_figure_draws_curve_band_and_observed(rows):
    spline = _views(rows).splines["x"]
    fig = plot_spline(spline, "x", "log")
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.lines]
    assert "fitted" in labels and "observed" in labels
    curve = spline[spline["part"] == "curve"]
    fitted = next(line for line in ax.lines if line.get_label() == "fitted")
    np.testing.assert_allclose(fitted.get_ydata(), curve["fit"])
    assert ax.collections, "the 95% band"
    bars = fig.axes[1].patches
    assert len(bars) == (spline["part"] == "bins").sum()


def test_level_figure_marks_the_base_and_draws_ci(rows):
    table = _views(rows).levels["a"]
    fig = plot_levels(table, "a")
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks[0] == "x (base)"
    heights = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_allclose(heights, table["fit"] - 1.0)


# -- from a fitted model ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    df = motor(3000, seed=3)
    df["year"] = np.where(np.arange(len(df)) % 3 == 0, 2022, 2023)
    config = {
        "target": "claim_count",
        "predictors": ["driver_age", "area", "region"],
        "exposure": "exposure",
        "family": "poisson",
    }
    return smglm.fit(config, df, keep_fitted=True), df


def test_a_fitted_model_gets_level_views_with_its_coefficients(fitted):
    result, df = fitted
    rep = result.report(df)
    data = rep.splits["train"].data
    assert set(data.levels) == {"area", "region"}
    assert not data.splines and not data.interactions and data.search is None
    area = data.levels["area"].set_index("level")
    coefs = result.coefficients.set_index("term")
    for level in area.index:
        term = f"area[{level}]"
        if term in coefs.index:
            assert area.loc[level, "fit"] == pytest.approx(np.exp(coefs.loc[term, "estimate"]))
            assert area.loc[level, "lower"] == pytest.approx(np.exp(coefs.loc[term, "ci_lower"]))
        else:
            assert area.loc[level, "base"] and area.loc[level, "fit"] == 1.0
    direct = df.groupby("area", observed=True)["exposure"].sum()
    for level, exposure in direct.items():
        assert area.loc[str(level), "exposure"] == pytest.approx(exposure, rel=1e-12)
    # region levels in natural order
    assert list(data.levels["region"]["level"]) == sorted(data.levels["region"]["level"])
    keys = [s.key for s in rep.sections]
    assert "levels" in keys and "splines" not in keys


def test_a_job_writes_the_term_views(fitted, tmp_path):
    from smglm.glm.report.scoring import scored_from_fit
    from smglm.runtime.report_files import write_reports

    result, _ = fitted
    scored = scored_from_fit(result, "train")
    files = write_reports(result.config, [(scored, tmp_path, None)], result=result)
    names = {p.name for p in files["train"]}
    assert {"levels_area.png", "levels_area.csv", "levels_region.png"} <= names
    assert json.loads((tmp_path / "report.json").read_text())["levels"] == {
        "area": "levels_area.csv",
        "region": "levels_region.csv",
    }
    # without the FitResult (as before): no term views
    other = write_reports(result.config, [(scored, tmp_path / "plain", None)])
    assert not any(p.name.startswith("levels_") for p in other["train"])


def test_a_search_table_on_the_result_becomes_the_train_figure(fitted):
    result, df = fitted
    result.search = _search_frame()
    try:
        sections = [s.key for s in model_sections(result, {})]
        assert "search" in sections
        rep = result.report(df)
        assert rep.splits["train"].data.search is not None
        assert rep.splits["test"].data.search is None if "test" in rep.splits else True
        assert "search" in rep.figures()
    finally:
        result.search = None


@pytest.mark.slow
def test_penalty_search_and_time_split_views_from_a_fit_and_a_job_folder(tmp_path):
    df = motor(2000, seed=5)
    df["year"] = 2019 + (df["policy_id"] % 4)
    config = {
        "target": "claim_count",
        "predictors": ["driver_age", "area"],
        "exposure": "exposure",
        "family": "poisson",
        "penalty": {"search": {"l1_ratio": [0.0], "n_alphas": 4, "cv": {"folds": 2}}},
        "test": {"by": "year", "holdout": [2022]},
    }
    result = smglm.fit(config, df, keep_fitted=True)
    rep = result.report(df, out=tmp_path / "output")
    keys = [s.key for s in rep.sections]
    assert {"levels", "consistency", "search"} <= set(keys)
    train = rep.splits["train"].data
    pd.testing.assert_frame_equal(train.search, search_table(result.search))
    assert rep.splits["test"].data.search is None
    # consistency: one line per year of the split, observed = fit * A/E(level, year) / A/E(year)
    table = train.consistency["area"]
    assert sorted(set(table["by"])) == ["2019", "2020", "2021"]
    assert sorted(set(rep.splits["test"].data.consistency["area"]["by"])) == ["2022"]
    np.testing.assert_allclose(table["observed"], table["fit"] * table["ae"] / table["ae_by"])
    written = {p.name for p in (tmp_path / "output" / "train").iterdir()}
    assert {"search.png", "search.csv", "consistency_area.png", "levels_area.png"} <= written
    # a job's folder gives the same views back
    result.save(tmp_path / "model")
    loaded = smglm.glm.report.load(tmp_path)
    again = loaded.splits["train"].data
    pd.testing.assert_frame_equal(again.search, train.search, check_dtype=False)
    pd.testing.assert_frame_equal(
        again.consistency["area"], train.consistency["area"], check_dtype=False
    )
    assert [s.key for s in loaded.sections] == keys


# -- the model language's terms, fitted (needs smglm.glm.terms) ------------------------------
@pytest.fixture(scope="module")
def language_fit():
    pytest.importorskip("smglm.glm.terms")
    df = motor(2000, seed=9)
    config = {
        "target": "claim_count",
        "predictors": ["driver_age", "bonus_malus", "area"],
        "exposure": "exposure",
        "family": "poisson",
        "terms": {
            "driver_age": {"spline": {"df": 4}},
            "bonus_malus": {"bands": [70, 100]},
        },
        "interactions": [["area", "bonus_malus"], ["driver_age", "area"]],
    }
    result = smglm.fit(config, df)
    return result, df, result.report(df)


@pytest.mark.slow
def test_spline_view_band_from_the_covariance_of_the_fitted_basis(language_fit):
    from smglm.glm.terms import natural_basis

    result, df, rep = language_fit
    table = rep.splits["train"].data.splines["driver_age"]
    curve = table[table["part"] == "curve"]
    term = next(t for t in result.model.to_dict()["terms"] if t["name"] == "driver_age")
    grid = curve["x"].to_numpy()
    basis = natural_basis(grid, term["knots"], tuple(term["boundary"]))
    names = [f"driver_age[s{k + 1}]" for k in range(basis.shape[1])]
    cov = result.covariance.loc[names, names].to_numpy()
    effect = result.model.term_effect("driver_age", grid)
    np.testing.assert_allclose(curve["effect"], effect, rtol=1e-10, atol=1e-12)
    se = np.sqrt(np.einsum("ij,jk,ik->i", basis, cov, basis))
    np.testing.assert_allclose(curve["se"], se, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(curve["upper"], np.exp(effect + Z95 * se), rtol=1e-8)
    # the basis from term_effect alone (the contract's API) is the same
    unit = basis_of_unit_effects(result.model, term, grid)
    np.testing.assert_allclose(unit, basis, rtol=1e-10, atol=1e-12)
    bins = table[table["part"] == "bins"]
    assert bins["exposure"].sum() == pytest.approx(df["exposure"].sum())
    assert "splines" in [s.key for s in rep.sections]


@pytest.mark.slow
def test_bands_and_interaction_views_equal_pandas_sums(language_fit):
    result, df, rep = language_fit
    data = rep.splits["train"].data
    mu = result.predict(df)
    band = pd.cut(df["bonus_malus"], [-np.inf, 70, 100, np.inf], right=False)
    band = band.cat.rename_categories(["[-Inf,70)", "[70,100)", "[100,Inf)"]).astype(str)
    frame = df.assign(band=band, mu=mu, area=df["area"].astype(str))
    levels = data.levels["bonus_malus"].set_index("level")
    assert list(levels.index) == ["[-Inf,70)", "[70,100)", "[100,Inf)"]
    sums = frame.groupby("band")[["exposure", "claim_count", "mu"]].sum()
    for label, row in sums.iterrows():
        assert levels.loc[label, "exposure"] == pytest.approx(row["exposure"], rel=1e-12)
        ae = row["claim_count"] / row["mu"]
        assert levels.loc[label, "ae"] == pytest.approx(ae, rel=1e-9)
    coefs = result.coefficients.set_index("term")["estimate"]
    base = levels.index[levels["base"]][0]
    for label in levels.index.drop(base):
        expected = np.exp(coefs[f"bonus_malus[{label}]"])
        assert levels.loc[label, "fit"] == pytest.approx(expected, rel=1e-12)
    # the A/E heat map of area x bonus_malus: every cell equals the direct sums
    cells = data.interactions["area:bonus_malus"].set_index(["a", "b"])
    direct = frame.groupby(["area", "band"])[["claim_count", "mu", "exposure"]].sum()
    for (a, b), row in direct.iterrows():
        assert cells.loc[(a, b), "exposure"] == pytest.approx(row["exposure"], rel=1e-12)
        assert cells.loc[(a, b), "ae"] == pytest.approx(row["claim_count"] / row["mu"], rel=1e-9)
    # the interaction's relativity of a cell is exp of its coefficient (0 at a reference)
    for (a, b), row in cells.iterrows():
        name = f"area[{a}]:bonus_malus[{b}]"
        value = np.exp(coefs[name]) if name in coefs.index else 1.0
        assert row["fit"] == pytest.approx(value, rel=1e-9), name
    # a numeric x categorical interaction: the numeric part in quantile bins
    mixed = data.interactions["driver_age:area"]
    assert mixed["exposure"].sum() == pytest.approx(df["exposure"].sum())
    assert mixed["a"].str.startswith("[").all()
    keys = [s.key for s in rep.sections]
    assert {"levels", "splines", "interactions"} <= set(keys)
    figures = rep.figures()
    assert {"train/spline_driver_age", "train/interaction_area_bonus_malus"} <= set(figures)
