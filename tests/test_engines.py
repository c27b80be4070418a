"""The engine seam (smglm.glm.engines): the registry, the capability check that runs before
any data is read or job launched, and glum's engine returning what smglm's statistics need."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import smglm
from smglm.config import GLMConfig
from smglm.config.families import FAMILIES, FAMILY_LINKS
from smglm.errors import ConfigError
from smglm.glm import engines
from smglm.glm.data import prepare
from smglm.glm.engines import (
    DEFAULT_ENGINE,
    ENGINES,
    Capabilities,
    EngineFit,
    ModuleEngine,
    check_engine,
    get_engine,
)
from smglm.glm.fitting import feature_names

CONFIG = GLMConfig(target="y", predictors=["x", "g"], family="poisson")


def _data(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    g = rng.choice(["a", "b", "c"], n)
    mu = np.exp(0.3 + 0.4 * x + pd.Series(g).map({"a": 0.0, "b": 0.3, "c": -0.2}).to_numpy())
    return pd.DataFrame({"y": rng.poisson(mu).astype(float), "x": x, "g": g})


# -- registry --------------------------------------------------------------------------------
def test_glum_is_the_default_engine_and_fits_every_family_and_link():
    assert DEFAULT_ENGINE == "glum"
    glum = get_engine()
    assert glum is ENGINES["glum"] and glum.name == "glum"
    assert glum.capabilities.families == FAMILIES
    assert dict(glum.capabilities.links) == FAMILY_LINKS
    for family, links in FAMILY_LINKS.items():
        for link in links:
            assert check_engine(CONFIG.model_copy(update={"family": family, "link": link})) == []


def test_unknown_engine_names_the_field_the_value_and_the_engines():
    with pytest.raises(ConfigError) as err:
        get_engine("glumm")
    assert err.value.fields == ["engine"]
    assert "'glumm'" in str(err.value) and "['glum', 'spark']" in str(err.value)
    assert "Did you mean 'glum'?" in str(err.value)
    [issue] = check_engine(CONFIG, "h2o")
    assert issue.field == "engine" and issue.value == "h2o"


# -- capabilities ----------------------------------------------------------------------------
LIMITED = ModuleEngine(
    name="limited",
    module="smglm.glm.engines.glum",
    capabilities=Capabilities(
        links={"poisson": ("log",), "gamma": ("log", "inverse")},
        penalties=frozenset({"l2"}),
        bounds=False,
        terms=frozenset({"numeric"}),
    ),
)


def test_a_config_the_engine_cannot_fit_gives_one_issue_per_field():
    cfg = GLMConfig(
        target="y",
        predictors=["x", "g"],
        categorical=["g"],
        family="poisson",
        link="identity",
        penalty={"alpha": 0.1, "l1_ratio": 0.5},
        constraints={"bounds": {"x": [0, None]}},
    )
    issues = check_engine(cfg, LIMITED)
    assert [i.field for i in issues] == [
        "link",
        "penalty.l1_ratio",
        "constraints.bounds",
        "categorical",
    ]
    text = "\n".join(i.message for i in issues)
    assert "engine 'limited' cannot fit family 'poisson' with link 'identity'" in text
    assert "takes ['log']" in text
    assert "no l1 penalty" in text and "supports ['l2']" in text
    assert "takes no bounds" in text and "['x']" in text
    assert "fits no categorical terms (['g'])" in text and "['numeric']" in text
    [family] = check_engine(GLMConfig(target="y", predictors=["x"], family="binomial"), LIMITED)
    assert family.field == "family" and family.value == "binomial"
    assert "fits ['poisson', 'gamma']" in family.message


def test_penalties_are_checked_only_when_alpha_is_positive():
    ridge_only = replace(LIMITED, capabilities=replace(LIMITED.capabilities, penalties=frozenset()))
    cfg = GLMConfig(target="y", predictors=["x"], family="poisson")
    assert check_engine(cfg, ridge_only) == []
    cfg = cfg.model_copy(update={"penalty": cfg.penalty.model_copy(update={"alpha": 1.0})})
    [issue] = check_engine(cfg, ridge_only)
    assert issue.field == "penalty.l1_ratio" and "no l2 penalty" in issue.message


def test_fit_checks_the_engine_before_reading_any_data(monkeypatch, tmp_path):
    monkeypatch.setitem(ENGINES, "glum", replace(LIMITED, name="glum"))
    cfg = {"target": "y", "predictors": ["x"], "family": "binomial"}
    with pytest.raises(ConfigError) as err:
        smglm.fit(cfg, tmp_path / "no-such-file.csv")  # a DataError if the data were read
    assert err.value.fields == ["family"]


def test_train_checks_the_engine_before_launching(monkeypatch):
    monkeypatch.setitem(ENGINES, "glum", replace(LIMITED, name="glum"))
    cfg = {"target": "y", "predictors": ["x"], "family": "poisson", "link": "identity"}
    with pytest.raises(ConfigError) as err:
        smglm.train(cfg, "s3://no-such-bucket/data.csv", backend="sagemaker")
    assert err.value.fields == ["link"]


# -- the seam ---------------------------------------------------------------------------------
class RecordingEngine:
    """An engine of another class (the Protocol, not ModuleEngine): glum's fit, recorded."""

    name = "glum"
    capabilities = ENGINES["glum"].capabilities

    def __init__(self) -> None:
        self.calls: list[tuple[GLMConfig, list[str]]] = []

    def check(self, config: GLMConfig) -> list:
        return self.capabilities.issues(config, self.name)

    def fit(self, config, prepared, *, lower_bounds=None, upper_bounds=None) -> EngineFit:
        from smglm.glm.engines import glum

        self.calls.append((config, list(prepared.X.columns)))
        return glum.fit(config, prepared, lower_bounds=lower_bounds, upper_bounds=upper_bounds)


def test_fit_goes_through_the_registered_engine(monkeypatch):
    engine = RecordingEngine()
    monkeypatch.setitem(ENGINES, "glum", engine)
    result = smglm.fit(CONFIG, _data())
    [(config, columns)] = engine.calls
    assert config == CONFIG.resolved() and columns == ["x", "g"]
    names = feature_names(prepare(CONFIG.resolved(), _data()))
    assert list(result.coefficients["term"]) == ["intercept", *names] and len(names) == 3


def test_glum_engine_returns_what_the_statistics_need():
    cfg = CONFIG.resolved()
    prep = prepare(cfg, _data())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = get_engine().fit(cfg, prep)
    names = feature_names(prep)
    assert res.feature_names == names and res.coef.shape == (len(names),)
    assert res.converged and 0 < res.n_iter < cfg.max_iter and res.seconds >= 0
    assert list(res.convergence.columns) == ["iteration", "objective", "convergence"]
    # the dense design, with the reference level dropped
    X = np.column_stack(
        [prep.X["x"].to_numpy()]
        + [(prep.X["g"] == lv).to_numpy(dtype=float) for lv in prep.X["g"].cat.categories[1:]]
    )
    np.testing.assert_allclose(res.xb, X @ res.coef, rtol=1e-12, atol=1e-12)
    W = np.random.default_rng(1).uniform(0.5, 2.0, len(prep.y))
    X1 = np.column_stack([np.ones(len(prep.y)), X])
    np.testing.assert_allclose(res.information(W), X1.T @ (W[:, None] * X1), rtol=1e-12)
    no_intercept = cfg.model_copy(update={"fit_intercept": False})
    res0 = get_engine().fit(no_intercept, prep)
    assert res0.intercept == 0.0
    np.testing.assert_allclose(res0.information(W), X.T @ (W[:, None] * X), rtol=1e-12)


def test_checking_a_config_does_not_import_glum():
    code = (
        "import json, sys\n"
        "from smglm.config import GLMConfig\n"
        "from smglm.glm.engines import check_engine\n"
        "issues = check_engine(GLMConfig(target='y', family='tweedie'))\n"
        "print(json.dumps([issues == [], 'glum' in sys.modules, 'tabmat' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [True, False, False]


def test_engines_module_lists_its_public_names():
    assert set(engines.__all__) == {
        "DEFAULT_ENGINE",
        "ENGINES",
        "Capabilities",
        "Engine",
        "EngineFit",
        "ModuleEngine",
        "check_engine",
        "get_engine",
    }
