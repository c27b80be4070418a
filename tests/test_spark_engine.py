"""engine: spark: the same config fitted by Spark MLlib's GeneralizedLinearRegression (local[2],
the shared session) and by glum gives the same coefficients, standard errors, statistics and
portable model; what Spark cannot fit is refused at validation, one issue per problem.

The Spark tests share the session-wide ``spark`` fixture (one JVM) and stay few and small.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import smglm
from smglm.datasets import motor
from smglm.errors import ConfigError, DataError, MissingDependency
from smglm.glm.engines import ENGINES, check_engine


def uses_spark(fn: Any) -> Any:
    """Mark a test that starts Spark (the shared session)."""
    return pytest.mark.spark(pytest.mark.xdist_group("spark")(fn))


BANDS = {"driver_age": {"bands": [25, 35, 50, 65]}}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    d = motor(4000, seed=3)
    d["has_claim"] = (d["claim_count"] > 0).astype(float)
    d["pure_premium"] = d["claim_amount"] / d["exposure"]
    return d


def _base(**extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "predictors": ["area", "region", "driver_age", "bonus_malus"],
        "terms": dict(BANDS),
        "interactions": [["area", "driver_age"]],
        "tol": 1e-10,
    }
    cfg.update(extra)
    return cfg


CASES = {
    "poisson_exposure": (
        _base(
            family="poisson",
            target="claim_count",
            exposure="exposure",
            interactions=[["area", "driver_age"], ["area", "density_log"]],
            predictors=["area", "region", "driver_age", "bonus_malus", "density_log"],
        ),
        None,
    ),
    "gamma_weights": (
        _base(family="gamma", target="severity", weights="claim_count"),
        "claims",
    ),
    "tweedie": (
        _base(family="tweedie", tweedie_power=1.5, target="pure_premium", weights="exposure"),
        None,
    ),
    "binomial": (_base(family="binomial", target="has_claim"), None),
    "gaussian": (
        _base(family="gaussian", target="density_log", predictors=["area", "region", "driver_age"]),
        None,
    ),
}


def _parity(glum: Any, spark: Any) -> dict[str, float]:
    a = glum.coefficients.set_index("term")
    b = spark.coefficients.set_index("term")
    assert list(a.index) == list(b.index)
    out = {
        "beta": float(np.nanmax(np.abs(a["estimate"] - b["estimate"]))),
        "se": float(np.nanmax(np.abs(b["std_error"] / a["std_error"] - 1))),
    }
    for key in ("deviance", "null_deviance", "aic"):
        x, y = glum.metrics["train"][key], spark.metrics["train"][key]
        if np.isnan(x):  # tweedie: no AIC, as R
            assert np.isnan(y)
            continue
        out[key] = abs(y / x - 1)
    assert glum.metrics["train"]["df_resid"] == spark.metrics["train"]["df_resid"]
    assert glum.metrics["train"]["n_obs"] == spark.metrics["train"]["n_obs"]
    return out


@uses_spark
@pytest.mark.parametrize("case", list(CASES))
def test_parity_with_glum(spark: Any, data: pd.DataFrame, case: str) -> None:
    cfg, subset = CASES[case]
    df = data[data["claim_count"] > 0] if subset == "claims" else data
    glum = smglm.fit(cfg, df)
    fitted = smglm.fit(cfg, df, engine="spark")
    figures = _parity(glum, fitted)
    assert figures["beta"] <= 1e-8, figures
    assert figures["se"] <= 1e-8, figures
    for key in ("deviance", "null_deviance", "aic"):
        if key in figures:
            assert figures[key] <= 1e-10, (key, figures)
    assert fitted.metrics["fit"]["engine"] == fitted.engine == "spark"
    assert glum.engine == "glum"
    assert fitted.metrics["fit"]["converged"]
    # the portable model predicts as glum's, and survives model.json
    new = df.head(300)
    np.testing.assert_allclose(fitted.predict(new), glum.predict(new), rtol=1e-8)


@uses_spark
def test_levels_groups_missing_fixed_and_model_dir(
    spark: Any, data: pd.DataFrame, tmp_path: Path
) -> None:
    """Grouped levels, a base, a missing level, a fixed term and the model directory."""
    df = data.copy()
    # no rows of area D at the reference band: area[D] is the sum of its interaction columns,
    # the last of which is aliased (R's NA) in both engines
    df = df[~((df["area"] == "D") & df["driver_age"].between(35, 49))]
    df["vehicle_brand"] = df["vehicle_brand"].astype(object)
    df.loc[df.index[::37], "vehicle_brand"] = None
    cfg = {
        "family": "poisson",
        "target": "claim_count",
        "exposure": "exposure",
        "predictors": ["area", "vehicle_brand", "driver_age", "n_drivers"],
        "categorical": ["n_drivers"],
        "terms": {
            "area": {"groups": {"AB": ["A", "B"]}, "base": "C"},
            "vehicle_brand": {"missing": "level"},
            **BANDS,
        },
        "fixed": {"n_drivers": {"1": 1.0, "2": 1.1, "3": 1.25, "4": 1.3}},
        "interactions": [["area", "driver_age"]],
        "tol": 1e-10,
    }
    assert set(df["n_drivers"].astype(str)) == {"1", "2", "3", "4"}
    glum = smglm.fit(cfg, df)
    fitted = smglm.fit(cfg, df, engine="spark")
    figures = _parity(glum, fitted)
    assert figures["beta"] <= 1e-8 and figures["se"] <= 1e-8, figures
    cell = "area[D]:driver_age[[65,Inf)]"
    assert fitted.metrics["fit"]["aliased"] == glum.metrics["fit"]["aliased"] == [cell]
    table = fitted.coefficients.set_index("term")
    assert np.isnan(table.loc[cell, "estimate"]) and table.loc[cell, "note"].startswith("aliased")
    assert fitted.model.term("area").reference == "C"
    assert "(missing)" in fitted.model.term("vehicle_brand").levels
    fitted.save(tmp_path / "m")
    loaded = smglm.load_model(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict(df.head(200)), glum.predict(df.head(200)), rtol=1e-8)


SEPARATION = {
    # a region without claims, and a cell (area E, drivers 65+) without claims
    "poisson": (
        _base(family="poisson", target="claim_count", exposure="exposure"),
        lambda d: (d["region"] == "R15") | ((d["area"] == "E") & (d["driver_age"] >= 65)),
        0,
        {"region[R15]": "level", "area[E]:driver_age[[65,Inf)]": "cell"},
    ),
    # a region where every policy claims (binomial: all ones)
    "binomial": (
        _base(family="binomial", target="has_claim"),
        lambda d: d["region"] == "R15",
        1,
        {"region[R15]": "level"},
    ),
}


@uses_spark
@pytest.mark.parametrize("case", list(SEPARATION))
def test_separated_levels_and_cells_are_noted_as_glum_notes_them(
    spark: Any, data: pd.DataFrame, case: str
) -> None:
    """Levels and interaction cells whose rows all have the target 0 (or, binomial, 1) carry
    the glum engine's ``separated`` note, in metrics["fit"] and in a warning, with the same
    row counts; the other terms' estimates agree with glum's."""
    cfg, where, value, expected = SEPARATION[case]
    df = data.copy()
    rows = where(df)
    df.loc[rows, cfg["target"]] = value
    with pytest.warns(UserWarning, match="the data separate the target") as glum_warned:
        glum = smglm.fit(cfg, df)
    with pytest.warns(UserWarning, match="the data separate the target") as spark_warned:
        fitted = smglm.fit(cfg, df, engine="spark")
    said = {
        engine: [str(w.message) for w in warned if "separate" in str(w.message)]
        for engine, warned in (("glum", glum_warned), ("spark", spark_warned))
    }
    assert [m.split("; ")[0] for m in said["spark"]] == [m.split("; ")[0] for m in said["glum"]]
    assert said["spark"][0].endswith("or fit with engine: glum and penalty.alpha > 0")
    assert fitted.metrics["fit"]["separated"] == glum.metrics["fit"]["separated"]
    assert sorted(fitted.metrics["fit"]["separated"]) == sorted(expected)
    a = glum.coefficients.set_index("term")
    b = fitted.coefficients.set_index("term")
    for term, what in expected.items():
        assert b.loc[term, "note"] == a.loc[term, "note"], term
        assert b.loc[term, "note"].startswith(f"separated: the target is {value} on all ")
        assert b.loc[term, "note"].endswith(f"rows of this {what}")
    plain = [t for t in a.index if not str(a.loc[t, "note"])]
    # the separated estimates run off (each solver stops at its own large value); the rest
    # barely depend on where they stop
    np.testing.assert_allclose(b.loc[plain, "estimate"], a.loc[plain, "estimate"], atol=1e-6)
    assert "Separation: the data separate the target" in "\n".join(fitted.notes())


@uses_spark
def test_driver_output_and_spark_finish(spark: Any, data: pd.DataFrame, tmp_path: Path) -> None:
    """The standalone driver reads Parquet with Spark and writes spark_fit.json; the runtime's
    spark-finish turns it into a model directory that load_model reads."""
    from smglm.config import as_glm_config
    from smglm.glm.engines import spark_driver
    from smglm.glm.engines.spark import job_document

    path = tmp_path / "train.parquet"
    data.to_parquet(path)
    cfg = as_glm_config(CASES["poisson_exposure"][0]).resolved()
    job = job_document(cfg, str(path))
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job))
    out = tmp_path / "driver"
    spark_driver.run(spark, job, str(out))
    doc = json.loads((out / "spark_fit.json").read_text())
    assert doc["spark_version"].startswith("3.5")
    glum = smglm.fit(cfg, data)
    assert doc["names"] == list(glum.coefficients["term"][1:])
    model_dir, output = tmp_path / "model", tmp_path / "output"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "smglm.runtime",
            "spark-finish",
            "--driver-out",
            str(out),
            "--model-dir",
            str(model_dir),
            "--output-data-dir",
            str(output),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (model_dir / "model.json").is_file() and (model_dir / "coefficients.csv").is_file()
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["fit"]["engine"] == "spark"
    loaded = smglm.load_model(model_dir)
    np.testing.assert_allclose(
        loaded.predict(data.head(200)), glum.predict(data.head(200)), rtol=1e-8
    )
    # a missing driver output is a user error naming the folder
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "smglm.runtime",
            "spark-finish",
            "--driver-out",
            str(tmp_path / "nothing"),
            "--model-dir",
            str(model_dir),
            "--output-data-dir",
            str(output),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1 and "spark_fit.json" in proc.stderr


@uses_spark
def test_data_problems_are_data_errors(spark: Any, data: pd.DataFrame) -> None:
    df = data.head(500).copy()
    df.loc[df.index[:3], "bonus_malus"] = np.nan
    cfg = _base(family="poisson", target="claim_count", exposure="exposure")
    with pytest.raises(DataError, match="'bonus_malus' has 3 missing"):
        smglm.fit(cfg, df, engine="spark")
    many = pd.DataFrame({"y": np.arange(5000) % 3, "code": [f"c{i}" for i in range(5000)]})
    with pytest.raises(DataError, match="at most 4096"):
        smglm.fit(
            {"family": "poisson", "target": "y", "predictors": ["code"]}, many, engine="spark"
        )


def _same_data_error(cfg: dict[str, Any], df: pd.DataFrame) -> DataError:
    """Both engines refuse ``df`` with a DataError, in the same words; returns Spark's."""
    with pytest.raises(DataError) as glum_error:
        smglm.fit(cfg, df)
    with pytest.raises(DataError) as spark_error:
        smglm.fit(cfg, df, engine="spark")
    assert str(spark_error.value) == str(glum_error.value)
    return spark_error.value


TARGETS = {
    "negative counts": (
        {"family": "poisson", "target": "claim_count", "exposure": "exposure"},
        "claim_count",
        -1.0,
    ),
    "zero amounts (gamma)": ({"family": "gamma", "target": "severity"}, "severity", 0.0),
    "binomial outside [0, 1]": ({"family": "binomial", "target": "has_claim"}, "has_claim", 2.0),
    "proportions without weights": (
        {"family": "binomial", "target": "has_claim"},
        "has_claim",
        0.5,
    ),
}


@uses_spark
@pytest.mark.parametrize("case", list(TARGETS))
def test_a_target_outside_the_family_range_is_the_glum_engines_error(
    spark: Any, data: pd.DataFrame, case: str
) -> None:
    """A target the family cannot take is a DataError on ``target`` naming the column, the
    values and the rule, in the glum engine's words (Spark itself would stop on the first bad
    row with a Java stack trace)."""
    extra, column, value = TARGETS[case]
    df = data[data["claim_count"] > 0].head(400).copy()
    df.loc[df.index[:2], column] = value
    cfg = _base(predictors=["area", "region"], terms={}, interactions=[], **extra)
    error = _same_data_error(cfg, df)
    assert "target" in error.fields
    assert repr(column) in str(error)


CONSTANT_TARGETS = {
    "no claims at all": ({"family": "poisson", "target": "claim_count"}, "claim_count", 0.0),
    "every policy claims (binomial)": (
        {"family": "binomial", "target": "has_claim"},
        "has_claim",
        1.0,
    ),
    "a constant amount (gamma)": ({"family": "gamma", "target": "severity"}, "severity", 250.0),
}


@uses_spark
@pytest.mark.parametrize("case", list(CONSTANT_TARGETS))
def test_a_target_without_a_finite_estimate_is_the_glum_engines_error(
    spark: Any, data: pd.DataFrame, case: str
) -> None:
    """A target that is the same on every row has no finite estimate (or no dispersion): the
    glum engine's error, word for word (Spark stopped with a ZeroDivisionError or a math
    domain error)."""
    extra, column, value = CONSTANT_TARGETS[case]
    df = data[data["claim_count"] > 0].head(300).assign(**{column: value})
    cfg = _base(predictors=["area", "driver_age"], terms={}, interactions=[], **extra)
    assert _same_data_error(cfg, df).fields == ["target"]


@uses_spark
def test_the_probit_link_fits_as_glum_in_the_workers_python(spark: Any, data: pd.DataFrame) -> None:
    """The probit link's inverse runs in a pandas UDF: Spark's Python workers must be this
    interpreter (they were ``python3`` from the PATH, without pandas)."""
    cfg = _base(
        family="binomial", link="probit", target="has_claim", predictors=["area", "driver_age"]
    )
    cfg.update(terms={}, interactions=[])
    figures = _parity(smglm.fit(cfg, data), smglm.fit(cfg, data, engine="spark"))
    assert figures["beta"] <= 1e-8 and figures["se"] <= 1e-8, figures
    assert figures["deviance"] <= 1e-10 and figures["aic"] <= 1e-10, figures


@uses_spark
def test_a_fit_spark_cannot_converge_is_an_error_naming_what_to_do(
    spark: Any, data: pd.DataFrame
) -> None:
    """Spark's IRLS (no step-halving) runs away on the gamma family's inverse link where glum
    converges: an error on ``link`` saying so, not a ZeroDivisionError from the report."""
    cfg = {"family": "gamma", "link": "inverse", "target": "severity", "predictors": ["area"]}
    claims = data[data["claim_count"] > 0]
    assert smglm.fit(cfg, claims).metrics["fit"]["converged"]
    with pytest.raises(DataError) as error:
        smglm.fit(cfg, claims, engine="spark")
    said = str(error.value)
    assert error.value.fields == ["link"]
    assert "Spark's solver diverged: the gamma/inverse fit ran 100 iterations" in said
    assert "fit with engine: glum" in said


@uses_spark
def test_a_numeric_predictor_that_separates_a_binomial_target_is_an_error(
    spark: Any, data: pd.DataFrame
) -> None:
    """As in the glum engine: a numeric predictor splitting the 0s from the 1s is an error
    naming it and the cut (Spark alone ran to max_iter with estimates in the thousands)."""
    df = data.head(600).copy()
    df["has_claim"] = (df["bonus_malus"] > 100).astype(float)
    cfg = _base(family="binomial", target="has_claim", predictors=["area", "bonus_malus"])
    cfg.update(terms={}, interactions=[])
    with pytest.raises(DataError) as glum_error:
        smglm.fit(cfg, df)
    with pytest.raises(DataError) as spark_error:
        smglm.fit(cfg, df, engine="spark")
    said = str(spark_error.value)
    assert said.split("; ")[0] == str(glum_error.value).split("; ")[0]
    assert "column 'bonus_malus' separates the target 'has_claim' completely" in said
    assert said.endswith("or fit with engine: glum and penalty.alpha > 0")
    assert spark_error.value.fields == ["predictors"]


@uses_spark
def test_test_data_levels_not_seen_in_training_warn_as_the_glum_engine_warns(
    spark: Any, data: pd.DataFrame
) -> None:
    """Test rows of a level the training data lacks score as the reference level in both
    engines, with the same warning naming the term and the rows, and the same test metrics."""
    from smglm.glm.model import UnseenLevelWarning

    df = data.copy()
    df["region"] = df["region"].astype(str)
    train, test = df[df["region"] != "R15"], df
    rows = int((df["region"] == "R15").sum())
    cfg = _base(family="poisson", target="claim_count", exposure="exposure")
    with pytest.warns(UnseenLevelWarning) as glum_warned:
        glum = smglm.fit(cfg, train, test_data=test)
    with pytest.warns(UnseenLevelWarning) as spark_warned:
        fitted = smglm.fit(cfg, train, test_data=test, engine="spark")
    said = [str(w.message) for w in spark_warned if w.category is UnseenLevelWarning]
    assert said == [str(w.message) for w in glum_warned if w.category is UnseenLevelWarning]
    assert said == [
        f"test data: levels not seen in training scored as the reference level (region: {rows} "
        "rows)"
    ]
    for key in ("deviance", "null_deviance"):
        assert fitted.metrics["test"][key] == pytest.approx(glum.metrics["test"][key], rel=1e-10)


# -- no Spark needed ---------------------------------------------------------------------------
def test_capability_refusals_one_line_per_problem() -> None:
    cfg = {
        "family": "binomial",
        "link": "log",
        "target": "y",
        "predictors": ["a", "x"],
        "terms": {"x": {"spline": {"df": 4}}},
        "penalty": {"alpha": 0.1, "l1_ratio": 0.5},
        "constraints": {"bounds": {"a": [0, None]}},
    }
    issues = check_engine(smglm.GLMConfig.from_dict(cfg), "spark")
    fields = [i.field for i in issues]
    assert fields == [
        "link",
        "penalty.l1_ratio",
        "penalty.l1_ratio",
        "constraints.bounds",
        "terms.x.spline",
    ], fields
    with pytest.raises(ConfigError) as err:
        smglm.fit(
            cfg, pd.DataFrame({"y": [0, 1], "a": ["u", "v"], "x": [1.0, 2.0]}), engine="spark"
        )
    text = str(err.value)
    assert "engine 'spark' cannot fit family 'binomial' with link 'log'" in text
    assert "engine 'spark' has no l1 penalty" in text and "fits no spline terms" in text
    nb = {"family": "negative_binomial", "target": "y", "predictors": ["a"]}
    (issue,) = check_engine(smglm.GLMConfig.from_dict(nb), "spark")
    assert issue.field == "family" and "negative_binomial" in issue.message


def test_spark_links_match_the_families() -> None:
    """The engine's declared links are exactly those FamilySpec.spark_params maps."""
    from smglm.config.families import FAMILIES, FAMILY_LINKS
    from smglm.glm.families import family_of

    caps = ENGINES["spark"].capabilities
    for fam in FAMILIES:
        cfg = smglm.GLMConfig.from_dict({"family": fam, "target": "y", "predictors": ["a"]})
        spec = family_of(cfg)
        want = tuple(x for x in FAMILY_LINKS[fam] if spec.spark_params(x) is not None)
        assert caps.links.get(fam, ()) == want, fam


def test_missing_dependency_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from smglm.glm.engines import spark as spark_engine

    monkeypatch.setattr(spark_engine, "_SESSION", None)
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    with pytest.raises(MissingDependency, match=r"smglm\[spark\]"):
        spark_engine.spark_session()


def test_driver_is_standalone() -> None:
    """The driver runs on AWS's Spark image: it imports pyspark, numpy, pandas and the
    standard library only (never smglm, pydantic or scipy)."""
    import ast

    from smglm.glm.engines import spark_driver

    tree = ast.parse(Path(spark_driver.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    allowed = {"pyspark", "numpy", "pandas", "__future__"} | set(sys.stdlib_module_names)
    assert roots <= allowed, roots - allowed
