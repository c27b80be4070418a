"""The bad-input table of ``smglm.fit`` (issue 12, defects 7, 8 and 10, and the "also seen" fits).

Each :class:`~bad_inputs.Case` gives a config and a DataFrame factory. A bad input must raise
an smglm error whose message holds the fragment and names the column or field; an accepted
input must give finite statistics: every term either has a finite standard error or a ``note``
saying why not (aliased as R's ``NA``, or separated), never a warning-only fit with a bare NaN.
The data checks are those of the pre-launch checks (``smglm.train`` calls ``prepare`` on data
on this machine): ``test_train_refuses_bad_local_data_before_launch`` proves it for one case.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

import smglm
from bad_inputs import Case, ids
from smglm.errors import DataError, SmglmError

N = 400
RNG_SEED = 12


def _base(n: int = N, seed: int = RNG_SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n).round(3)
    g = rng.choice(["a", "b", "c"], size=n)
    exposure = rng.uniform(0.2, 1.0, size=n)
    mu = exposure * np.exp(-1.0 + 0.3 * x + np.where(g == "b", 0.4, 0.0))
    return pd.DataFrame(
        {
            "y": rng.poisson(mu).astype(float),
            "x": x,
            "g": g,
            "exposure": exposure,
            "w": rng.uniform(0.5, 2.0, size=n),
            "amount": rng.gamma(2.0, 500.0, size=n),
            "flag": rng.integers(0, 2, size=n).astype(float),
        }
    )


def _with(**changes: Any) -> Any:
    """A factory: the base frame with columns replaced (a value, or a function of the frame)."""

    def make() -> pd.DataFrame:
        df = _base()
        for col, value in changes.items():
            df[col] = value(df) if callable(value) else value
        return df

    return make


def _rows(n: int, **changes: Any) -> Any:
    def make() -> pd.DataFrame:
        df = _base().head(n).copy()
        for col, value in changes.items():
            df[col] = value(df) if callable(value) else value
        return df

    return make


def _comma(df: pd.DataFrame) -> pd.Series:
    text = df["x"].astype(str)
    text.iloc[3] = "1,5"
    text.iloc[7] = "-0,25"
    return text


POISSON = {"target": "y", "predictors": ["x", "g"], "family": "poisson", "exposure": "exposure"}
GAMMA = {"target": "amount", "predictors": ["x", "g"], "family": "gamma"}
BINOMIAL = {"target": "flag", "predictors": ["x", "g"], "family": "binomial"}
GAUSSIAN = {"target": "amount", "predictors": ["x", "g"], "family": "gaussian"}


def cfg(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def _mixed(df: pd.DataFrame) -> pd.Series:
    values: list[Any] = df["x"].tolist()
    values[0] = "n/a"
    return pd.Series(values, index=df.index, dtype=object)


def _many_levels(n_levels: int, n: int) -> Any:
    def make() -> pd.DataFrame:
        rng = np.random.default_rng(1)
        return pd.DataFrame(
            {
                "y": rng.poisson(0.5, size=n).astype(float),
                "c": pd.Series(rng.integers(0, n_levels, size=n)).map("L{}".format),
                "x": rng.normal(size=n),
            }
        )

    return make


def _motor() -> pd.DataFrame:
    from smglm.datasets import motor

    return motor(5000, seed=3)


MOTOR = {
    "target": "claim_count",
    "predictors": [
        "driver_age",
        "vehicle_age",
        "bonus_malus",
        "density_log",
        "area",
        "vehicle_brand",
        "region",
        "vehicle_model",
    ],
    "family": "poisson",
    "exposure": "exposure",
}


def _level_all_ones(df: pd.DataFrame) -> pd.Series:
    return np.where(df["g"] == "c", 1.0, df["flag"])


def _level_no_claims(df: pd.DataFrame) -> pd.Series:
    return np.where(df["g"] == "c", 0.0, df["y"])


CASES: list[Case] = [
    # -- defect 8: numbers stored as text, decimal commas ------------------------------------
    Case(
        "decimal comma in a predictor",
        "fit",
        (POISSON, _with(x=_comma)),
        "decimal comma",
        {"field": "predictors", "column": "x", "values": "1,5"},
    ),
    Case(
        "numbers stored as text",
        "fit",
        (POISSON, _with(x=lambda d: d["x"].astype(str))),
        "numbers stored as text",
        {"field": "predictors", "column": "x"},
    ),
    Case(
        "integer codes stored as text",
        "fit",
        (POISSON, _with(g=lambda d: d["g"].map({"a": "1", "b": "2", "c": "3"}))),
        "List 'g' under categorical",
        {"field": "predictors", "column": "g"},
    ),
    Case(
        "mixed-type object column",
        "fit",
        (POISSON, _with(x=_mixed)),
        "not numbers (e.g. ['n/a'])",
        {"field": "predictors", "column": "x"},
    ),
    Case(
        "decimal comma in the target",
        "fit",
        (GAMMA, _with(amount=lambda d: d["amount"].map("{:.2f}".format).str.replace(".", ","))),
        "decimal comma",
        {"field": "target", "column": "amount"},
    ),
    Case(
        "decimal comma in the weights",
        "fit",
        (
            cfg(GAMMA, weights="w"),
            _with(w=lambda d: d["w"].map("{:.3f}".format).str.replace(".", ",")),
        ),
        "decimal comma",
        {"field": "weights", "column": "w"},
    ),
    Case(
        "exposure as text",
        "fit",
        (POISSON, _with(exposure=lambda d: d["exposure"].astype(str))),
        "must be numeric",
        {"field": "exposure", "column": "exposure"},
    ),
    Case(
        "target of words",
        "fit",
        (POISSON, _with(y="many")),
        "must be numeric",
        {"field": "target", "column": "y"},
    ),
    Case(
        "datetime predictor",
        "fit",
        (
            POISSON,
            _with(
                x=lambda d: (
                    pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(len(d)), unit="D")
                )
            ),
        ),
        "must be numeric",
        {"field": "predictors", "column": "x"},
    ),
    # -- defect 8: non-finite results --------------------------------------------------------
    Case(
        "theta 1e308",
        "fit",
        (cfg(POISSON, family="negative_binomial", theta=1e308), _base),
        "non-finite results",
        {"field": "fit"},
    ),
    # -- defect 10: degenerate data ------------------------------------------------------------
    Case("one row", "fit", (POISSON, _rows(1)), "more rows than coefficients", {"field": "data"}),
    Case(
        "two rows",
        "fit",
        (cfg(POISSON, predictors=["x"]), _rows(2)),
        "2 row(s) for 2 coefficient(s)",
        {"field": "data"},
    ),
    Case(
        "no more rows than coefficients",
        "fit",
        (POISSON, _rows(4, g=["a", "b", "c", "a"])),
        "more rows than coefficients",
        {"field": "data"},
    ),
    Case(
        "a single non-zero weight",
        "fit",
        (cfg(GAMMA, weights="w"), _with(w=lambda d: np.r_[1.0, np.zeros(len(d) - 1)])),
        "1 row(s) with a positive weight in column 'w'",
        {"field": "weights", "column": "w"},
    ),
    Case(
        "predictor around 1e300",
        "fit",
        (POISSON, _with(x=lambda d: d["x"] * 1e300)),
        "beyond 1e100",
        {"field": "predictors", "column": "x"},
    ),
    Case(
        "target of 1e200",
        "fit",
        (GAMMA, _with(amount=lambda d: d["amount"] * 1e200)),
        "beyond 1e100",
        {"field": "target", "column": "amount"},
    ),
    Case(
        "predictor around 1e-300",
        "fit",
        (POISSON, _with(x=lambda d: d["x"] * 1e-300)),
        "below 1e-100",
        {"field": "predictors", "column": "x"},
    ),
    Case(
        "weights around 1e300",
        "fit",
        (cfg(GAMMA, weights="w"), _with(w=lambda d: d["w"] * 1e300)),
        "beyond 1e100",
        {"field": "weights", "column": "w"},
    ),
    Case(
        "exposure around 1e300",
        "fit",
        (POISSON, _with(exposure=lambda d: d["exposure"] * 1e300)),
        "beyond 1e100",
        {"field": "exposure", "column": "exposure"},
    ),
    Case(
        "all-zero target, poisson",
        "fit",
        (POISSON, _with(y=0.0)),
        "no finite estimate",
        {"field": "target", "column": "y"},
    ),
    Case(
        "all-zero target, tweedie",
        "fit",
        (cfg(POISSON, family="tweedie"), _with(y=0.0)),
        "no finite estimate",
        {"field": "target", "column": "y"},
    ),
    Case(
        "all-zero target, negative binomial",
        "fit",
        (cfg(POISSON, family="negative_binomial"), _with(y=0.0)),
        "no finite estimate",
        {"field": "target", "column": "y"},
    ),
    Case(
        "all-zero target, binomial",
        "fit",
        (BINOMIAL, _with(flag=0.0)),
        "both outcomes",
        {"field": "target", "column": "flag"},
    ),
    Case(
        "all-one target, binomial",
        "fit",
        (BINOMIAL, _with(flag=1.0)),
        "both outcomes",
        {"field": "target", "column": "flag"},
    ),
    Case(
        "constant target, gaussian",
        "fit",
        (GAUSSIAN, _with(amount=3.0)),
        "is constant",
        {"field": "target", "column": "amount"},
    ),
    Case(
        "constant target, gamma",
        "fit",
        (GAMMA, _with(amount=3.0)),
        "is constant",
        {"field": "target", "column": "amount"},
    ),
    Case(
        "a categorical with one level",
        "fit",
        (POISSON, _with(g="only")),
        "a single level",
        {"field": "predictors", "column": "g"},
    ),
    # -- other degenerate data ---------------------------------------------------------------
    Case("empty frame", "fit", (POISSON, _rows(0)), "no rows", {}),
    Case(
        "all-NaN column",
        "fit",
        (POISSON, _with(x=np.nan)),
        "missing or infinite",
        {"field": "predictors", "column": "x"},
    ),
    Case(
        "all rows dropped for missing values",
        "fit",
        (cfg(POISSON, missing="drop"), _with(x=np.nan)),
        "no rows left",
        {},
    ),
    Case(
        "negative exposure",
        "fit",
        (POISSON, _with(exposure=lambda d: -d["exposure"])),
        "exposure must be > 0",
        {"field": "exposure", "column": "exposure"},
    ),
    Case(
        "zero exposure everywhere",
        "fit",
        (POISSON, _with(exposure=0.0)),
        "exposure must be > 0",
        {"field": "exposure", "column": "exposure"},
    ),
    Case(
        "binomial target above 1",
        "fit",
        (BINOMIAL, _with(flag=lambda d: d["flag"] * 2)),
        "outside [0, 1]",
        {"field": "target", "column": "flag"},
    ),
    Case(
        "binomial target negative",
        "fit",
        (BINOMIAL, _with(flag=lambda d: -d["flag"])),
        "outside [0, 1]",
        {"field": "target", "column": "flag"},
    ),
    Case(
        "gamma target with zeros",
        "fit",
        (GAMMA, _with(amount=lambda d: np.where(d.index % 5 == 0, 0.0, d["amount"]))),
        "amount",
        {"field": "target", "column": "amount"},
    ),
    Case(
        "inverse gaussian negative target",
        "fit",
        (cfg(GAMMA, family="inverse_gaussian"), _with(amount=lambda d: -d["amount"])),
        "amount",
        {"field": "target", "column": "amount"},
    ),
    Case(
        "poisson negative target",
        "fit",
        (POISSON, _with(y=lambda d: d["y"] - 5)),
        "y",
        {"field": "target", "column": "y"},
    ),
    Case(
        "negative weights",
        "fit",
        (cfg(GAMMA, weights="w"), _with(w=lambda d: d["w"] - 1.5)),
        "weights must be >= 0",
        {"field": "weights", "column": "w"},
    ),
    Case(
        "NaN weights",
        "fit",
        (cfg(GAMMA, weights="w"), _with(w=lambda d: np.where(d.index == 5, np.nan, d["w"]))),
        "missing or infinite",
        {"field": "weights", "column": "w"},
    ),
    Case(
        "all-zero weights",
        "fit",
        (cfg(GAMMA, weights="w"), _with(w=0.0)),
        "need a positive weight",
        {"field": "weights"},
    ),
    Case(
        "offset inf",
        "fit",
        (
            cfg(POISSON, exposure=None, offset="o"),
            _with(o=lambda d: np.where(d.index == 9, np.inf, 0.0)),
        ),
        "missing or infinite",
        {"field": "offset", "column": "o"},
    ),
    Case(
        "numeric predictor separates a binomial target",
        "fit",
        (cfg(BINOMIAL, predictors=["x"]), _with(flag=lambda d: (d["x"] > 0).astype(float))),
        "separates the target",
        {"field": "predictors", "column": "x"},
    ),
    Case(
        "predictor equal to the target (binomial)",
        "fit",
        (cfg(BINOMIAL, predictors=["x", "copy"]), _with(copy=lambda d: d["flag"])),
        "separates the target",
        {"field": "predictors", "column": "copy"},
    ),
    Case(
        "defect 7: a 50,000-level categorical",
        "fit",
        (
            {"target": "y", "predictors": ["c", "x"], "family": "poisson"},
            _many_levels(50_000, 200_000),
        ),
        "of memory",
        {"field": "predictors", "column": "c", "values": "group the rare levels"},
    ),
    # -- correct accepts ------------------------------------------------------------------------
    Case("the motor frequency model", "fit", (MOTOR, _motor), None),
    Case(
        "constant column (aliased with the intercept)",
        "fit",
        (cfg(POISSON, predictors=["x", "const", "g"]), _with(const=2.5)),
        None,
        {"aliased": ["const"]},
    ),
    Case(
        "collinear columns",
        "fit",
        (cfg(POISSON, predictors=["x", "x2", "g"]), _with(x2=lambda d: 2 * d["x"] - 1)),
        None,
        {"aliased": ["x2"]},
    ),
    Case(
        "duplicated categorical",
        "fit",
        (cfg(POISSON, predictors=["g", "g2", "x"]), _with(g2=lambda d: d["g"].str.upper())),
        None,
        {"aliased": ["g2[B]", "g2[C]"]},
    ),
    Case(
        "tiny-scale column",
        "fit",
        (cfg(POISSON, predictors=["tiny", "g"]), _with(tiny=lambda d: d["x"] * 1e-12)),
        None,
        {"relative": ("tiny", "x", 1e12)},
    ),
    Case(
        "huge-scale column",
        "fit",
        (cfg(POISSON, predictors=["huge", "g"]), _with(huge=lambda d: d["x"] * 1e9)),
        None,
        {"relative": ("huge", "x", 1e-9)},
    ),
    Case(
        "tiny values beside normal ones",
        "fit",
        (POISSON, _with(x=lambda d: np.where(d.index == 0, 1e-300, d["x"]))),
        None,
    ),
    Case(
        "boolean predictor",
        "fit",
        (cfg(POISSON, predictors=["b", "g"]), _with(b=lambda d: d["x"] > 0)),
        None,
    ),
    Case("boolean binomial target", "fit", (BINOMIAL, _with(flag=lambda d: d["flag"] > 0)), None),
    Case(
        "numeric categories as a category dtype",
        "fit",
        (POISSON, _with(g=lambda d: d["g"].map({"a": 1, "b": 2, "c": 3}).astype("category"))),
        None,
    ),
    Case(
        "numbers as text listed under categorical",
        "fit",
        (
            cfg(POISSON, categorical=["g"]),
            _with(g=lambda d: d["g"].map({"a": "1", "b": "2", "c": "3"})),
        ),
        None,
    ),
    Case(
        "a level with only ones (binomial, quasi-separation)",
        "fit",
        (BINOMIAL, _with(flag=_level_all_ones)),
        None,
        {"separated": ["g[c]"]},
    ),
    Case(
        "a level with no claims (poisson)",
        "fit",
        (POISSON, _with(y=_level_no_claims)),
        None,
        {"separated": ["g[c]"]},
    ),
    Case("integer target", "fit", (POISSON, _with(y=lambda d: d["y"].astype(int))), None),
    Case(
        "some zero weights",
        "fit",
        (cfg(GAMMA, weights="w"), _with(w=lambda d: np.where(d.index % 3 == 0, 0.0, d["w"]))),
        None,
    ),
    Case(
        "gaussian with a near-constant target",
        "fit",
        (GAUSSIAN, _with(amount=lambda d: 3.0 + 1e-6 * d["x"])),
        None,
    ),
]


def _assert_finite_statistics(result: Any, case: Case) -> None:
    table = result.coefficients
    notes = (
        table["note"].fillna("") if "note" in table.columns else pd.Series("", index=table.index)
    )
    plain = notes == ""
    assert not notes.str.startswith("no standard error").any(), table
    assert np.isfinite(table.loc[plain, "estimate"]).all(), table
    assert np.isfinite(table.loc[plain, "std_error"]).all(), table
    for name in ("deviance", "null_deviance", "log_likelihood", "aic", "dispersion"):
        value = result.metrics["train"][name]
        assert value is not None and math.isfinite(value), (name, value)
    by_term = table.set_index("term")
    for term in case.extra.get("aliased", []):
        assert math.isnan(by_term.loc[term, "estimate"])
        assert by_term.loc[term, "note"].startswith("aliased")
    assert result.metrics["fit"].get("aliased", []) == case.extra.get("aliased", [])
    for term in case.extra.get("separated", []):
        assert by_term.loc[term, "note"].startswith("separated")
    if "relative" in case.extra:  # a rescaled column's coefficient is the unscaled one's
        term, like, factor = case.extra["relative"]
        base = smglm.fit(
            {**case.given[0], "predictors": [like, *case.given[0]["predictors"][1:]]},
            case.given[1](),
        ).coefficients.set_index("term")
        np.testing.assert_allclose(
            by_term.loc[term, "estimate"], base.loc[like, "estimate"] * factor, rtol=1e-6
        )


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_fit_bad_input(case: Case) -> None:
    assert case.entry == "fit"
    config, make = case.given
    data = make()
    if case.accepted:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = smglm.fit(config, data)
        _assert_finite_statistics(result, case)
        messages = [str(w.message) for w in caught]
        assert not [m for m in messages if "NaN" in m], messages  # no warning-only NaN fit
        if case.extra.get("separated"):
            assert any("separate" in m for m in messages)
        return
    with pytest.raises(SmglmError) as info:
        smglm.fit(config, data)
    message = str(info.value)
    assert case.expect in message
    if "field" in case.extra:
        assert case.extra["field"] in getattr(info.value, "fields", []), message
    if "column" in case.extra:
        assert repr(case.extra["column"]) in message
    if "values" in case.extra:
        assert case.extra["values"] in message


def test_the_table_has_forty_cases_or_more() -> None:
    assert len(CASES) >= 40
    assert sum(c.accepted for c in CASES) >= 10


# -- the other displays and paths of these defects -------------------------------------------
def test_train_refuses_bad_local_data_before_launch(tmp_path) -> None:
    """The pre-launch checks run ``prepare``: a decimal comma is refused before any job."""
    from smglm.launch.backend import register_backend, unregister_backend
    from smglm.launch.testing import FakeBackend

    backend = FakeBackend(tmp_path / "home", name="badfit")
    register_backend("badfit", lambda **_: backend, summary="in memory")
    try:
        with pytest.raises(DataError, match="decimal comma") as info:
            smglm.train(POISSON, _with(x=_comma)(), backend="badfit", tracking=False)
    finally:
        unregister_backend("badfit")
    assert "'x'" in str(info.value) and not backend.jobs


def test_unseen_test_levels_warn_once_with_counts() -> None:
    from smglm.glm.model import UnseenLevelWarning

    train = _base()
    test = _base(seed=5).head(50).copy()
    test.loc[test.index[:4], "g"] = "z"
    with pytest.warns(UnseenLevelWarning, match=r"test data: .*g: 4") as caught:
        smglm.fit(POISSON, train, test_data=test)
    assert len([w for w in caught if issubclass(w.category, UnseenLevelWarning)]) == 1


def test_summary_and_report_show_missing_metrics_as_na(tmp_path) -> None:
    """metrics.json holds None for a NaN metric: no display may crash on it."""
    result = smglm.fit(POISSON, _base())
    result.metrics["train"]["explained_deviance"] = None
    result.metrics["train"]["gini"] = None
    result.metrics["fit"]["seconds"] = None
    loaded = smglm.load_model(result.save(tmp_path / "m"))
    for r in (result, loaded):
        text = r.summary()
        assert "explained=n/a" in text and "gini=n/a" in text
        assert math.isnan(r.fit_seconds)
        repr(r)
        report = r.report()
        assert report.to_text() and report.to_html()


def test_aliased_terms_agree_in_every_output(tmp_path) -> None:
    config = cfg(POISSON, predictors=["x", "x2", "g"])
    data = _with(x2=lambda d: 2 * d["x"] - 1)()
    result = smglm.fit(config, data)
    assert "Coefficients: (1 not defined because of singularities: x2)" in result.summary()
    folder = result.save(tmp_path / "m")
    assert '"aliased": [' in (folder / "model.json").read_text()
    csv = pd.read_csv(folder / "coefficients.csv").set_index("term")
    assert math.isnan(csv.loc["x2", "estimate"]) and csv.loc["x2", "note"].startswith("aliased")
    model_only = smglm.load_model(folder / "model.json")
    assert math.isnan(model_only.coefficients.set_index("term").loc["x2", "estimate"])
    report = result.report()
    text = report.to_text()
    assert "not defined because of singularities" in report.to_html()
    assert "x2 (aliased)" in text and "not defined because of singularities" in text
    # scoring: the aliased term counts 0, the model predicts the fitted means
    np.testing.assert_allclose(
        result.predict(data), smglm.fit(cfg(POISSON), data).predict(data), rtol=1e-6
    )


def test_memory_estimate_does_not_refuse_a_model_that_fits() -> None:
    from smglm.glm.data import prepare
    from smglm.glm.fitting import feature_names
    from smglm.glm.memory import available_bytes, check_fit_memory, fit_bytes

    prep = prepare(smglm.GLMConfig(**MOTOR), _motor())
    n_coef = len(feature_names(prep)) + 1
    check_fit_memory(prep, n_coef)
    have = available_bytes()
    assert have is not None and have > 0
    assert fit_bytes(5000, 4, 4, n_coef) < 100 * 2**20  # the motor model: well under 100 MB
    assert fit_bytes(200_000, 1, 1, 50_001) > 100 * 2**30  # 50,000 levels: over 100 GB


@pytest.mark.slow
def test_memory_error_during_a_fit_becomes_a_clear_error(tmp_path) -> None:
    """Under an address-space limit below what the fit needs (but above the estimate's view of
    the machine), the MemoryError of the fit is a DataError saying what to do."""
    script = textwrap.dedent(
        """
        import resource, sys
        import numpy as np, pandas as pd
        import smglm, glum, tabmat, scipy.stats  # the imports first, then the limit
        from smglm.errors import DataError
        rng = np.random.default_rng(1)
        n, levels = 60_000, 6_000
        df = pd.DataFrame({"y": rng.poisson(0.5, size=n).astype(float),
                           "c": pd.Series(rng.integers(0, levels, size=n)).map("L{}".format)})
        import smglm.glm.memory as memory
        status = open("/proc/self/status").read().split("VmSize:")[1].split()[0]
        limit = int(status) * 1024 + 600 * 2**20  # the address space now, and 600 MB more
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            smglm.fit({"target": "y", "predictors": ["c"], "family": "poisson"}, df)
        except DataError as exc:
            print("DATAERROR", exc)
            sys.exit(0)
        except MemoryError:
            print("RAW MEMORYERROR")
            sys.exit(3)
        print("FITTED")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ran out of memory" in done.stdout and "group the rare levels of 'c'" in done.stdout


def test_aliased_columns_keeps_the_first_of_dependent_columns_whatever_the_scales() -> None:
    from smglm.glm.stats import aliased_columns

    rng = np.random.default_rng(3)
    x = rng.normal(size=200)
    z = rng.normal(size=200)
    one = np.ones(200)
    design = np.column_stack([one, x * 1e-9, z * 1e8, 3 * x - 2, np.zeros(200), x + z * 1e8])
    info = design.T @ design
    assert aliased_columns(info) == [3, 4, 5]  # R: the later column of a dependent set is NA
    assert aliased_columns(info[:3, :3]) == []  # tiny and huge scales alone are not aliasing
