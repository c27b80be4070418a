"""Fitting the model language: splines, monotone splines, bands, groups, base levels, missing
levels, interactions and fixed terms. The portable scorer reproduces glum's own predictions on
the design to 1e-10 for every term type; model.json round trips; the data-level mistakes are
DataErrors naming the field; statsmodels gives the same fits on equivalently prepared columns.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import smglm
from smglm.datasets import motor
from smglm.errors import DataError
from smglm.glm.data import prepare
from smglm.glm.engines.glum import design_matrix
from smglm.glm.fitting import feature_names
from smglm.glm.model import PortableModel
from smglm.glm.terms import MISSING_LEVEL, SplineTerm

BASE = {"target": "claim_count", "exposure": "exposure", "family": "poisson"}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    df = motor(6000, seed=11)
    rng = np.random.default_rng(11)
    brand = df["vehicle_brand"].astype(object)
    brand[rng.random(len(df)) < 0.05] = None  # missing values: a level of their own
    df["vehicle_brand"] = brand
    return df


CASES: dict[str, dict] = {
    "numeric": {"predictors": ["driver_age", "density_log"]},
    "categorical": {"predictors": ["area", "vehicle_power"]},
    "groups_base": {
        "predictors": ["region", "driver_age"],
        "terms": {"region": {"groups": {"north": ["R01", "R02", "R03"]}, "base": "R05"}},
    },
    "missing_level": {
        "predictors": ["vehicle_brand", "area"],
        "terms": {"vehicle_brand": {"missing": "level"}},
    },
    "bands": {
        "predictors": ["bonus_malus", "area"],
        "terms": {"bonus_malus": {"bands": [60, 80, 100, 125]}},
    },
    "spline": {
        "predictors": ["driver_age", "area"],
        "terms": {"driver_age": {"spline": {"df": 5}}},
    },
    "spline_knots": {
        "predictors": ["driver_age"],
        "terms": {"driver_age": {"spline": {"knots": [30, 45, 60], "boundary": [17, 95]}}},
    },
    "monotone": {
        "predictors": ["vehicle_age", "area"],
        "terms": {"vehicle_age": {"spline": {"df": 5, "monotone": "decreasing"}}},
    },
    "cat_x_cat": {"predictors": ["area", "region"], "interactions": [["area", "region"]]},
    "spline_x_cat": {
        "predictors": ["driver_age", "area"],
        "terms": {"driver_age": {"spline": {"df": 4}}},
        "interactions": [["driver_age", "area"]],
    },
    "cat_x_num": {
        "predictors": ["area", "vehicle_power"],
        "interactions": [["area", "vehicle_power"]],
    },
    "num_x_num": {
        "predictors": ["density_log", "vehicle_power"],
        "interactions": [["density_log", "vehicle_power"]],
    },
    "bands_x_spline": {
        "predictors": ["bonus_malus", "driver_age"],
        "terms": {"bonus_malus": {"bands": [80, 100]}, "driver_age": {"spline": {"df": 3}}},
        "interactions": [["bonus_malus", "driver_age"]],
    },
    "fixed": {
        "predictors": ["density_log", "area", "driver_age"],
        "fixed": {"density_log": 0.09, "area": {"A": 0.9, "B": 1.0, "C": 1.1, "D": 1.2, "E": 1.3}},
    },
}


def _fit(config: dict, df: pd.DataFrame) -> smglm.FitResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return smglm.fit({**BASE, "tol": 1e-12, **config}, df, keep_fitted=True)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_portable_scorer_equals_glums_predictions(case, data, tmp_path):
    result = _fit(CASES[case], data)
    _, prep, mu = result.fitted["train"]
    design = design_matrix(prep)
    assert list(design.column_names) == feature_names(prep)
    glum_mu = result.estimator.predict(design, offset=prep.offset)
    rows = data.loc[prep.X.index]
    scored = result.model.predict(rows)
    np.testing.assert_allclose(scored, glum_mu, rtol=1e-10)
    np.testing.assert_allclose(mu, glum_mu, rtol=1e-10)
    # model.json round trip: the same terms, the same predictions
    result.save(tmp_path / "m")
    loaded = smglm.load_model(tmp_path / "m")
    assert loaded.model == result.model
    np.testing.assert_array_equal(loaded.model.predict(rows), scored)
    assert json.loads((tmp_path / "m" / "model.json").read_text())["format_version"] == 2
    cov = loaded.covariance
    assert cov is not None and list(cov.index) == ["intercept", *feature_names(prep)]


@pytest.mark.slow
def test_monotone_spline_fits_a_monotone_curve(data):
    for direction in ("increasing", "decreasing"):
        cfg = {
            "predictors": ["driver_age", "area"],
            "terms": {"driver_age": {"spline": {"df": 6, "monotone": direction}}},
        }
        result = _fit(cfg, data)
        grid = np.linspace(10, 100, 300)
        curve = result.model.term_effect("driver_age", grid)
        steps = np.diff(curve)
        assert (steps >= -1e-12).all() if direction == "increasing" else (steps <= 1e-12).all()
        lo, hi = result.model.term("driver_age").boundary
        clamped = result.model.term_effect("driver_age", [lo - 5, lo, hi, hi + 5])
        assert clamped[0] == clamped[1] and clamped[2] == clamped[3]
        coefs = result.coefficients.set_index("term")["estimate"]
        spline = coefs[coefs.index.str.startswith("driver_age[s")]
        assert (spline >= 0).all() if direction == "increasing" else (spline <= 0).all()


def test_spline_term_state_and_effect(data):
    result = _fit(CASES["spline"], data)
    term = result.model.term("driver_age")
    assert isinstance(term, SplineTerm) and term.kind == "natural"
    x = data["driver_age"].to_numpy(dtype=float)
    expected = np.quantile(x, [0.2, 0.4, 0.6, 0.8])
    np.testing.assert_allclose(term.knots, expected)
    assert term.boundary == (x.min(), x.max())
    # beyond the boundary a natural spline is linear
    far = result.model.term_effect("driver_age", [x.max() + 10, x.max() + 20, x.max() + 30])
    assert far[2] - far[1] == pytest.approx(far[1] - far[0], rel=1e-9)
    assert result.model.term_effect("driver_age", [x.min()])[0] == 0.0


def test_fixed_terms_are_offsets_reported_as_fixed(data):
    result = _fit(CASES["fixed"], data)
    table = result.coefficients.set_index("term")
    assert table.loc["density_log", "note"] == "fixed"
    assert table.loc["density_log", "estimate"] == 0.09
    assert np.isnan(table.loc["density_log", "std_error"])
    assert table.loc["area[C]", "estimate"] == pytest.approx(np.log(1.1))
    assert table.loc["area[B]", "relativity"] == pytest.approx(1.0)
    estimated = table[table["note"] != "fixed"]
    m = result.metrics["train"]
    assert m["df_resid"] == m["n_obs"] - len(estimated)
    assert "density_log" not in result.covariance.index


def test_version_1_model_still_loads(tmp_path):
    v1 = {
        "format": "smglm.glm",
        "format_version": 1,
        "smglm_version": "0.1.0",
        "family": "poisson",
        "link": "log",
        "tweedie_power": None,
        "theta": None,
        "target": "y",
        "weights": None,
        "offset": None,
        "exposure": None,
        "intercept": -1.0,
        "terms": [
            {"name": "x", "type": "numeric", "coefficient": 0.5},
            {"name": "a", "type": "categorical", "levels": ["C", "A"], "reference": "C",
             "coefficients": [0.0, 0.25]},
        ],
    }  # fmt: skip
    (tmp_path / "model.json").write_text(json.dumps(v1))
    model = PortableModel.load(tmp_path)
    mu = model.predict(pd.DataFrame({"x": [0.0, 2.0], "a": ["C", "A"]}))
    np.testing.assert_allclose(mu, np.exp([-1.0, -1.0 + 1.0 + 0.25]))
    assert model.to_dict()["format_version"] == 2


def test_unseen_levels_and_values_outside_the_range_score(data):
    cfg = {
        "predictors": ["driver_age", "bonus_malus", "region", "vehicle_age"],
        "terms": {
            "driver_age": {"spline": {"df": 4}},
            "vehicle_age": {"spline": {"df": 4, "monotone": "decreasing"}},
            "bonus_malus": {"bands": [80, 100]},
            "region": {"groups": {"north": ["R01", "R02"]}},
        },
        "interactions": [["driver_age", "region"]],
    }
    result = _fit(cfg, data)
    new = pd.DataFrame(
        {"driver_age": [5.0, 150.0], "bonus_malus": [10, 1000], "region": ["R01", "R99"],
         "vehicle_age": [-5, 99]}
    )  # fmt: skip
    with pytest.warns(smglm.glm.UnseenLevelWarning):
        mu = result.model.predict(new)
    assert np.isfinite(mu).all()


def test_missing_level_in_the_model(data):
    result = _fit(CASES["missing_level"], data)
    term = result.model.term("vehicle_brand")
    assert MISSING_LEVEL in term.levels
    mu = result.model.predict(pd.DataFrame({"vehicle_brand": [None], "area": ["A"]}))
    code = term.levels.index(MISSING_LEVEL)
    area = result.model.term("area")
    expected = result.model.intercept + term.coefficients[code]
    expected += area.coefficients[area.levels.index("A")]
    assert mu[0] == pytest.approx(np.exp(expected), rel=1e-12)


# -- data-level mistakes ----------------------------------------------------------------------
def _issues(config: dict, df: pd.DataFrame) -> list:
    cfg = smglm.GLMConfig.from_dict({**BASE, **config}).resolved()
    with pytest.raises(DataError) as info:
        prepare(cfg, df)
    return info.value.issues


@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        (
            {"predictors": ["n_drivers"], "terms": {"n_drivers": {"spline": {"df": 6}}}},
            "terms.n_drivers.spline.df",
            ["df 6", "distinct values", "choose df <="],
        ),
        (
            {
                "predictors": ["driver_age"],
                "terms": {"driver_age": {"spline": {"df": 4, "boundary": [0, 10]}}},
            },
            "terms.driver_age.spline.df",
            ["3 interior knots", "too few distinct values"],
        ),
        (
            {
                "predictors": ["driver_age"],
                "terms": {"driver_age": {"spline": {"knots": [10, 50]}}},
            },
            "terms.driver_age.spline.knots",
            ["inside the data's range", "[10.0, 50.0]"],
        ),
        (
            {"predictors": ["bonus_malus"], "terms": {"bonus_malus": {"bands": [80, 400]}}},
            "terms.bonus_malus.bands",
            ["[400,Inf)", "no rows", "every band"],
        ),
        (
            {"predictors": ["region"], "terms": {"region": {"groups": {"north": ["R01", "R0X"]}}}},
            "terms.region.groups.north",
            ["'R0X' is not a level", "R01"],
        ),
        (
            {"predictors": ["region"], "terms": {"region": {"base": "R5"}}},
            "terms.region.base",
            ["'R5' is not a level", "R05"],
        ),
        (
            {"predictors": ["area"], "fixed": {"area": {"A": 1.0, "B": 1.1, "Z": 2.0}}},
            "fixed.area.Z",
            ["'Z' is not a level"],
        ),
        (
            {"predictors": ["area"], "fixed": {"area": {"A": 1.0, "B": 1.1}}},
            "fixed.area",
            ["no relativity", "'C'"],
        ),
        (
            {"predictors": ["area"], "fixed": {"area": 0.3}},
            "fixed.area",
            ["relativity per level", "not a coefficient"],
        ),
        (
            {"predictors": ["driver_age", "area"], "fixed": {"driver_age": {"A": 1.0}}},
            "fixed.driver_age",
            ["numeric", "a number"],
        ),
        (
            {"predictors": ["driver_age"], "terms": {"driver_age": {"base": "30"}}},
            "terms.driver_age.base",
            ["applies to levels", "numeric"],
        ),
        (
            {"predictors": ["area"], "terms": {"area": {"bands": [1, 2]}}},
            "terms.area.bands",
            ["need a numeric column", "categories"],
        ),
    ],
)
def test_data_level_mistakes_name_the_field(data, config, field, words):
    issues = _issues(config, data)
    found = [i for i in issues if i.field == field]
    assert found, [str(i) for i in issues]
    text = str(found[0])
    for w in words:
        assert w in text, text


def test_missing_values_under_missing_level_are_kept(data):
    cfg = smglm.GLMConfig.from_dict({**BASE, **CASES["missing_level"]}).resolved()
    prep = prepare(cfg, data)
    assert len(prep.y) == len(data) and prep.n_dropped == 0
    assert (prep.X["vehicle_brand"] == MISSING_LEVEL).sum() == data["vehicle_brand"].isna().sum()
    without = smglm.GLMConfig.from_dict({**BASE, "predictors": ["vehicle_brand"]}).resolved()
    with pytest.raises(DataError, match="missing"):
        prepare(without, data)


def test_bounds_name_splines_interactions_and_levels(data):
    cfg = {
        **CASES["spline_x_cat"],
        "constraints": {"bounds": {"driver_age": [-1, 1], "driver_age:area": [-0.5, 0.5]}},
    }
    result = _fit(cfg, data)
    est = result.coefficients.set_index("term")["estimate"]
    assert est[est.index.str.contains(":")].abs().max() <= 0.5 + 1e-12
    spline = est[est.index.str.startswith("driver_age[s") & ~est.index.str.contains(":")]
    assert spline.abs().max() <= 1 + 1e-12
    with pytest.raises(DataError, match=r"constraints\.bounds\.driver_age:region"):
        _fit({**cfg, "constraints": {"bounds": {"driver_age:region": [0, 1]}}}, data)


# -- statsmodels on equivalently prepared columns -------------------------------------------------
def _dummies(values: pd.Series, reference: str, name: str) -> pd.DataFrame:
    levels = sorted(set(values.astype(str)) - {reference})
    return pd.DataFrame(
        {f"{name}[{lv}]": (values.astype(str) == lv).astype(float) for lv in levels},
        index=values.index,
    )


def _statsmodels(X: pd.DataFrame, df: pd.DataFrame, offset=None, *, intercept: bool = True):
    import statsmodels.api as sm

    design = sm.add_constant(X, has_constant="add") if intercept else X
    model = sm.GLM(
        df["claim_count"].to_numpy(dtype=float),
        design,
        family=sm.families.Poisson(),
        offset=np.log(df["exposure"].to_numpy()) + (0.0 if offset is None else offset),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(tol=1e-13, maxiter=300)


def _assert_same_fit(result: smglm.FitResult, ref, rtol: float) -> None:
    mu = result.fitted["train"][2]
    assert result.metrics["train"]["deviance"] == pytest.approx(ref.deviance, rel=rtol)
    # atol: the cells the data separate have fitted values ~0 (1e-12 vs 1e-16)
    np.testing.assert_allclose(mu, ref.fittedvalues, rtol=rtol, atol=1e-10)


@pytest.mark.slow
def test_levels_bands_groups_missing_and_cat_x_cat_match_statsmodels(data):
    cuts = [60, 80, 100, 125]
    north = ["R01", "R02", "R03"]
    cfg = {
        "predictors": ["bonus_malus", "region", "vehicle_brand", "area"],
        "terms": {
            "bonus_malus": {"bands": cuts, "base": "[80,100)"},
            "region": {"groups": {"north": north}, "base": "R05"},
            "vehicle_brand": {"missing": "level"},
            "area": {"base": "C"},
        },
        "interactions": [["area", "vehicle_brand"]],
    }
    result = _fit(cfg, data)
    bands = pd.cut(data["bonus_malus"], [-np.inf, *cuts, np.inf], right=False)
    labels = bands.astype(str).str.replace("inf", "Inf").str.replace(", ", ",")
    labels = labels.str.replace(r"\.0(?=[,)])", "", regex=True)
    region = data["region"].astype(str).where(~data["region"].isin(north), "north")
    brand = data["vehicle_brand"].astype(object).where(data["vehicle_brand"].notna(), MISSING_LEVEL)
    brand_ref = result.model.term("vehicle_brand").reference
    area = _dummies(data["area"], "C", "area")
    brand_d = _dummies(brand.astype(str), brand_ref, "vehicle_brand")
    inter = pd.DataFrame(
        {f"{a}:{b}": area[a] * brand_d[b] for a in area.columns for b in brand_d.columns},
        index=data.index,
    )
    X = pd.concat(
        [
            _dummies(labels, "[80,100)", "bonus_malus"),
            _dummies(region, "R05", "region"),
            brand_d,
            area,
            inter,
        ],
        axis=1,
    )
    ref = _statsmodels(X, data)
    _assert_same_fit(result, ref, 1e-8)
    est = result.coefficients.set_index("term")["estimate"]
    finite = ref.params.drop("const")
    finite = finite[finite.abs() < 10]  # not the cells the data separate (estimates -> -inf)
    np.testing.assert_allclose(est[finite.index], finite, rtol=1e-6, atol=1e-8)


@pytest.mark.slow
def test_natural_spline_matches_statsmodels_with_patsys_cr(data):
    patsy = pytest.importorskip("patsy")
    result = _fit({**CASES["spline"], "terms": {"driver_age": {"spline": {"df": 5}}}}, data)
    term = result.model.term("driver_age")
    lo, hi = term.boundary
    cr = patsy.dmatrix(
        f"cr(driver_age, knots={list(term.knots)}, lower_bound={lo!r}, upper_bound={hi!r}) - 1",
        data,
        return_type="dataframe",
    )
    cr.columns = [f"cr{i}" for i in range(cr.shape[1])]
    X = pd.concat([cr, _dummies(data["area"], result.model.term("area").reference, "area")], axis=1)
    ref = _statsmodels(X, data, intercept=False)  # cr spans the constant
    _assert_same_fit(result, ref, 1e-6)


@pytest.mark.slow
def test_fixed_terms_match_statsmodels_with_the_same_offset(data):
    rel = CASES["fixed"]["fixed"]["area"]
    result = _fit(CASES["fixed"], data)
    offset = 0.09 * data["density_log"].to_numpy() + np.log(data["area"].astype(str).map(rel))
    X = data[["driver_age"]].astype(float)
    ref = _statsmodels(X, data, offset=offset.to_numpy(dtype=float))
    _assert_same_fit(result, ref, 1e-8)
    est = result.coefficients.set_index("term")
    assert est.loc["driver_age", "std_error"] == pytest.approx(ref.bse["driver_age"], rel=1e-6)


# -- serving and the MLflow model ---------------------------------------------------------------
RICH = {
    "predictors": ["driver_age", "vehicle_age", "bonus_malus", "region", "area", "vehicle_brand"],
    "terms": {
        "driver_age": {"spline": {"df": 4}},
        "vehicle_age": {"spline": {"df": 4, "monotone": "decreasing"}},
        "bonus_malus": {"bands": [80, 100]},
        "region": {"groups": {"north": ["R01", "R02", "R03"]}, "base": "R05"},
        "vehicle_brand": {"missing": "level"},
    },
    "interactions": [["bonus_malus", "area"], ["driver_age", "area"]],
}


@pytest.fixture(scope="module")
def rich(data, tmp_path_factory):
    result = _fit(RICH, data.iloc[:5000])
    folder = tmp_path_factory.mktemp("rich") / "model"
    result.save(folder)
    _, prep, _ = result.fitted["train"]
    glum_mu = result.estimator.predict(design_matrix(prep), offset=prep.offset)
    return result, folder, glum_mu, data.iloc[:5000].loc[prep.X.index]


@pytest.mark.slow
@pytest.mark.parametrize("media", ["text/csv", "application/json"])
def test_serve_scores_a_rich_model_as_glum_predicts(rich, media):
    from smglm.runtime._app import Scorer
    from smglm.runtime._codec import parse_body

    result, folder, glum_mu, rows = rich
    scorer = Scorer(PortableModel.load(folder))
    cols = [*result.model.input_columns, "exposure"]
    frame = rows[cols].head(300)
    if media == "text/csv":
        text = frame.to_csv(index=False)
        params = {"header": "present"}
    else:
        text = json.dumps(frame.astype(object).to_dict(orient="records"))
        params = {}
    mu, unseen = scorer.score(parse_body(text, media, params, scorer.columns))
    np.testing.assert_allclose(mu, glum_mu[:300], rtol=1e-10)
    assert unseen == {}


@pytest.mark.slow
def test_pyfunc_and_load_model_score_a_rich_model_as_glum_predicts(rich):
    from smglm.tracking.pyfunc import _load_pyfunc, save_pyfunc_model

    _, folder, glum_mu, rows = rich
    pyfunc = save_pyfunc_model(folder / "mlflow_model", folder / "model.json")
    model = _load_pyfunc(str(pyfunc / "model.json"))
    np.testing.assert_allclose(np.asarray(model.predict(rows)), glum_mu, rtol=1e-10)
    loaded = smglm.load_model(folder)
    np.testing.assert_allclose(loaded.predict(rows), glum_mu, rtol=1e-10)
    # views' API: a main term's effect on raw values, the covariance of its coefficients
    grid = np.linspace(18, 90, 7)
    curve = loaded.model.term_effect("driver_age", grid)
    basis = loaded.model.term("driver_age").basis(grid)
    np.testing.assert_allclose(curve, basis @ loaded.model.term("driver_age").coefficients)
    names = loaded.model.term("driver_age").columns
    var = np.einsum("ij,jk,ik->i", basis, loaded.covariance.loc[names, names].to_numpy(), basis)
    assert (var >= 0).all()


def test_a_test_split_is_scored_with_the_training_terms(data):
    cfg = {
        "predictors": ["bonus_malus", "driver_age", "region"],
        "terms": {
            "bonus_malus": {"bands": [80, 100]},
            "driver_age": {"spline": {"df": 3}},
            "region": {"groups": {"north": ["R01", "R02"]}},
        },
        "test": {"fraction": 0.25, "seed": 3},
    }
    result = _fit(cfg, data)
    test_df, tprep, mu = result.fitted["test"]
    assert tprep.terms == [result.model.term(c).with_coefficients(
        np.zeros(len(result.model.term(c).columns))) for c in cfg["predictors"]]  # fmt: skip
    np.testing.assert_allclose(mu, result.model.predict(test_df.loc[tprep.X.index]), rtol=1e-12)
    assert np.isfinite(result.metrics["test"]["deviance"])


def test_tied_values_put_the_knots_at_quantiles_of_the_distinct_values():
    rng = np.random.default_rng(0)
    x = np.where(rng.random(2000) < 0.6, 50.0, rng.integers(50, 150, 2000).astype(float))
    df = pd.DataFrame({"x": x, "y": rng.poisson(0.1, 2000), "e": np.ones(2000)})
    cfg = smglm.GLMConfig.from_dict(
        {"target": "y", "exposure": "e", "family": "poisson", "predictors": ["x"],
         "terms": {"x": {"spline": {"df": 3}}}}
    ).resolved()  # fmt: skip
    [term] = prepare(cfg, df).terms
    assert isinstance(term, SplineTerm)
    np.testing.assert_allclose(term.knots, np.quantile(np.unique(x), [1 / 3, 2 / 3]))
    assert 50 < term.knots[0] < term.knots[1] < x.max()


def test_an_interaction_cell_with_no_claims_is_noted_as_separated():
    """A cell of a categorical x categorical interaction whose rows all have 0 claims has no
    finite estimate, as a main-effect level would not: noted in the table and warned about."""
    rng = np.random.default_rng(0)
    n = 3000
    df = pd.DataFrame(
        {
            "a": rng.choice(list("XYZ"), n, p=[0.5, 0.3, 0.2]),
            "b": rng.choice(list("PQR"), n, p=[0.5, 0.3, 0.2]),
            "e": rng.uniform(0.5, 1.0, n),
        }
    )
    df["y"] = rng.poisson(0.3 * df["e"])
    empty = (df["a"] == "Z") & (df["b"] == "R")
    df.loc[empty, "y"] = 0
    config = {
        "target": "y",
        "predictors": ["a", "b"],
        "exposure": "e",
        "family": "poisson",
        "interactions": [["a", "b"]],
    }
    with pytest.warns(UserWarning, match=r"separate the target for \['a\[Z\]:b\[R\]'\]"):
        result = smglm.fit(config, df)
    notes = result.coefficients.set_index("term")["note"]
    assert (
        notes["a[Z]:b[R]"]
        == f"separated: the target is 0 on all {int(empty.sum())} rows of this cell"
    )
    assert (notes.drop("a[Z]:b[R]") == "").all()
