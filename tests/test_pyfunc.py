"""Tests of smglm.tracking.pyfunc: the folder it writes is loaded by the real ``mlflow.pyfunc``.

One fit for the module; mlflow's import (about 2 s) happens once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

import smglm
from smglm.datasets import motor
from smglm.glm import PortableModel
from smglm.tracking.pyfunc import LOADER_MODULE, _load_pyfunc, save_pyfunc_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    df = motor(800, seed=5)
    config = {
        "target": "claim_count",
        "predictors": ["driver_age", "area", "region", "vehicle_power"],
        "exposure": "exposure",
        "family": "poisson",
    }
    folder = tmp_path_factory.mktemp("pyfunc") / "model"
    smglm.fit(config, df.iloc[:600]).save(folder)
    pyfunc = save_pyfunc_model(folder / "mlflow_model", folder / "model.json")
    return folder, pyfunc, df.iloc[600:].reset_index(drop=True)


def test_save_pyfunc_model_writes_mlmodel_and_environment(saved):
    folder, pyfunc, _ = saved
    assert {p.name for p in pyfunc.iterdir()} == {
        "MLmodel",
        "model.json",
        "requirements.txt",
        "python_env.yaml",
        "conda.yaml",
    }
    flavor = yaml.safe_load((pyfunc / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavor["loader_module"] == LOADER_MODULE == "smglm.tracking.pyfunc"
    assert flavor["data"] == "model.json"
    assert flavor["env"] == {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}
    requirements = (pyfunc / "requirements.txt").read_text().split()
    assert requirements[0] == f"smglm=={smglm.__version__}"
    assert any(r.startswith("numpy==") for r in requirements)
    assert any(r.startswith("pandas==") for r in requirements)
    env = yaml.safe_load((pyfunc / "python_env.yaml").read_text())
    assert env["dependencies"] == ["-r requirements.txt"]
    assert (pyfunc / "model.json").read_bytes() == (folder / "model.json").read_bytes()


def test_mlflow_pyfunc_load_model_predicts_exactly_as_portable_model(saved):
    import mlflow.pyfunc as mlflow_pyfunc  # a dev dependency: this test fails without it

    folder, pyfunc, test = saved
    loaded = mlflow_pyfunc.load_model(str(pyfunc))
    expected = PortableModel.load(folder / "model.json").predict(test)
    got = np.asarray(loaded.predict(test))
    np.testing.assert_array_equal(got, expected)
    per_unit = np.asarray(loaded.predict(test, params={"use_offset": False}))
    np.testing.assert_array_equal(
        per_unit, PortableModel.load(folder).predict(test, use_offset=False)
    )


def test_load_pyfunc_scores_a_mapping_like_a_dataframe(saved):
    _, pyfunc, test = saved
    model = _load_pyfunc(str(pyfunc / "model.json"))
    head = test.head(5)
    as_dict = {c: head[c].tolist() for c in head.columns}
    np.testing.assert_array_equal(model.predict(as_dict), model.predict(pd.DataFrame(as_dict)))
