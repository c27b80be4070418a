"""GLMConfig and JobConfig: loading, the JSON round trip, and the table of bad configs and data,
each checked for its error type, the field it names, and what it says is allowed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import smglm
from smglm.config import GLMConfig, JobConfig
from smglm.errors import ConfigError, DataError

BASE = {"target": "y", "predictors": ["x", "cat"], "family": "poisson"}


def _data(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "y": rng.poisson(1.0, n).astype(float),
            "x": rng.normal(size=n),
            "cat": rng.choice(["a", "b", "c"], n),
            "w": rng.uniform(0.5, 2, n),
            "expo": rng.uniform(0.2, 1, n),
            "txt": ["t"] * n,
        }
    )


# --- loading ---------------------------------------------------------------------------


def test_glm_config_json_round_trip_is_identity():
    cfg = GLMConfig(
        **BASE,
        exposure="expo",
        penalty={"alpha": 0.1, "l1_ratio": 0.5},
        constraints={"bounds": {"x": [None, 0.0], "cat[b]": [-1, 1]}},
        test={"fraction": 0.25, "seed": 3},
    )
    again = GLMConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.constraints.bounds["x"] == (None, 0.0)
    assert json.loads(cfg.to_json())["schema_version"] == 1


def test_glm_config_yaml_file_and_text_load_the_same(tmp_path):
    text = "target: y\npredictors: [x, cat]\nfamily: poisson\nexposure: expo\n"
    path = tmp_path / "glm.yaml"
    path.write_text(text)
    assert (
        GLMConfig.from_file(path) == GLMConfig.from_yaml(text) == smglm.config.as_glm_config(text)
    )
    jpath = tmp_path / "glm.json"
    GLMConfig.from_yaml(text).save(jpath)
    assert GLMConfig.from_file(jpath) == GLMConfig.from_yaml(text)


def test_glm_config_resolved_makes_defaults_explicit():
    assert GLMConfig(target="y", family="gamma").resolved().link == "log"
    assert GLMConfig(target="y", family="binomial").resolved().link == "logit"
    tw = GLMConfig(target="y", family="tweedie").resolved()
    assert (tw.link, tw.tweedie_power) == ("log", 1.5)
    assert GLMConfig(target="y", family="negative_binomial").resolved().theta == 1.0


def test_glm_config_repr_leaves_out_defaults():
    assert (
        repr(GLMConfig(**BASE))
        == "GLMConfig(target='y', predictors=['x', 'cat'], family='poisson')"
    )


def test_glm_config_reports_all_problems_at_once():
    with pytest.raises(ConfigError) as info:
        GLMConfig(target="y", family="poison", predictorz=["x"], penalty={"alpha": -1})
    assert info.value.fields == ["family", "penalty.alpha", "predictorz"]
    assert str(info.value).startswith("3 configuration problems")


def test_job_config_defaults_and_round_trip():
    job = JobConfig(tags={"team": "pricing"})
    assert job.backend == "local" and job.instance_type == "ml.m5.xlarge"
    assert JobConfig.from_json(job.to_json()) == job


# --- the table of bad configs: (config changes, error field, words the message must hold) ---

BAD_CONFIGS = [
    ({"family": "poison"}, "family", ["'poison'", "poisson", "Did you mean"]),
    ({"link": "logt"}, "link", ["'logt'", "logit"]),
    (
        {"link": "logit"},
        "link",
        ["'logit'", "not a link for family 'poisson'", "['log', 'identity']"],
    ),
    ({"family": "gamma", "link": "probit"}, "link", ["'probit'", "'gamma'", "inverse"]),
    ({"predictorz": ["x"]}, "predictorz", ["unknown field", "Did you mean 'predictors'"]),
    ({"targt": "y"}, "targt", ["unknown field", "Did you mean 'target'"]),
    ({"target": None}, "target", ["must be a string", "None"]),
    ({"target": 3}, "target", ["must be a string", "3"]),
    ({"predictors": "x"}, "predictors", ["must be a list", "'x'"]),
    ({"family": "tweedie", "tweedie_power": 2.5}, "tweedie_power", ["between 1 and 2", "2.5"]),
    ({"family": "tweedie", "tweedie_power": 1.0}, "tweedie_power", ["between 1 and 2", "1.0"]),
    ({"tweedie_power": 1.5}, "tweedie_power", ["only used with family 'tweedie'", "'poisson'"]),
    ({"family": "negative_binomial", "theta": 0}, "theta", ["must be > 0", "0"]),
    ({"theta": 2.0}, "theta", ["only used with family 'negative_binomial'"]),
    ({"penalty": {"alpha": -0.1}}, "penalty.alpha", ["must be >= 0", "-0.1"]),
    ({"penalty": {"alpha": "lots"}}, "penalty.alpha", ["must be a number", "'lots'"]),
    ({"penalty": {"l1_ratio": 1.5}}, "penalty.l1_ratio", ["must be <= 1", "1.5"]),
    ({"penalty": {"l1": 0.5}}, "penalty.l1", ["unknown field", "Did you mean 'l1_ratio'"]),
    (
        {"constraints": {"bounds": {"x": [1, 0]}}},
        "constraints.bounds",
        ["lower 1.0 is above upper 0.0"],
    ),
    ({"constraints": {"bounds": {"x": [None, None]}}}, "constraints.bounds", ["bounds nothing"]),
    (
        {"constraints": {"bounds": {"x": [0]}}},
        "constraints.bounds",
        ["'x'", "a pair [lower, upper]", "[0]"],
    ),
    (
        {"constraints": {"bounds": {"intercept": [0, 1]}}},
        "constraints.bounds",
        ["'intercept' cannot be bounded"],
    ),
    ({"predictors": ["x", "y"]}, "predictors", ["target 'y' cannot also be a predictor"]),
    ({"predictors": ["x", "x"]}, "predictors", ["more than once", "['x']"]),
    ({"offset": "o", "exposure": "e"}, "exposure", ["not both", "offset='o'", "exposure='e'"]),
    ({"weights": "x"}, "weights", ["'x' is also a predictor"]),
    ({"weights": "y"}, "weights", ["'y' is the target"]),
    (
        {"categorical": ["catt"]},
        "categorical",
        ["['catt'] are not predictors", "Did you mean 'cat'"],
    ),
    ({"family": "gaussian", "exposure": "expo"}, "exposure", ["needs the log link", "'identity'"]),
    ({"test": {"fraction": 1.5}}, "test.fraction", ["must be < 1", "1.5"]),
    ({"test": {"fraction": 0.2, "sead": 1}}, "test.sead", ["unknown field", "Did you mean 'seed'"]),
    ({"missing": "ignore"}, "missing", ["'ignore'", "['error', 'drop']"]),
    ({"max_iter": 0}, "max_iter", ["must be > 0", "0"]),
    ({"fit_intercept": "maybe"}, "fit_intercept", ["true or false", "'maybe'"]),
    ({"schema_version": 2}, "schema_version", ["2", "[1]"]),
    ({"predictors": [], "fit_intercept": False}, "predictors", ["at least one predictor"]),
]


@pytest.mark.parametrize(
    ("changes", "field", "words"), BAD_CONFIGS, ids=[str(i) for i in range(len(BAD_CONFIGS))]
)
def test_glm_config_bad_value_names_field_and_allowed(changes, field, words):
    data = {**BASE, **changes}
    data = {k: v for k, v in data.items() if not (k == "target" and "targt" in changes)}
    with pytest.raises(ConfigError) as info:
        GLMConfig.from_dict(data)
    assert field in info.value.fields, str(info.value)
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


BAD_JOBS = [
    ({"instance_type": "m5.xlarge"}, "instance_type", ["'m5.xlarge'", "ml.<family>.<size>"]),
    ({"instance_count": 0}, "instance_count", ["must be >= 1"]),
    ({"job_name": "my_job"}, "job_name", ["'my_job'", "[a-zA-Z0-9-]"]),
    ({"output_path": "/tmp/x"}, "output_path", ["s3:// or file://", "'/tmp/x'"]),
    ({"max_runtime_seconds": -5}, "max_runtime_seconds", ["must be >= 1"]),
    ({"instance_typ": "ml.m5.large"}, "instance_typ", ["Did you mean 'instance_type'"]),
]


@pytest.mark.parametrize(
    ("changes", "field", "words"), BAD_JOBS, ids=[str(i) for i in range(len(BAD_JOBS))]
)
def test_job_config_bad_value_names_field_and_allowed(changes, field, words):
    with pytest.raises(ConfigError) as info:
        JobConfig.from_dict(changes)
    assert field in info.value.fields
    for word in words:
        assert word in str(info.value), str(info.value)


# --- the table of bad data ---------------------------------------------------------------


def _poisson_zero(df):
    df.loc[0, "y"] = 0.0
    return df


def _nan(col):
    def change(df):
        df[col] = df[col].astype(object if col == "cat" else float)
        df.loc[3, col] = np.nan
        return df

    return change


def _set(col, value, row=0):
    def change(df):
        df.loc[row, col] = value
        return df

    return change


BAD_DATA = [
    ({"predictors": ["x", "kat"]}, None, "predictors", ["'kat'", "Did you mean 'cat'"]),
    ({"target": "why"}, None, "target", ["'why'", "not in the data"]),
    ({"weights": "ww"}, None, "weights", ["'ww'", "Did you mean 'w'"]),
    ({"exposure": "exposure"}, None, "exposure", ["'exposure'", "Did you mean 'expo'"]),
    ({"offset": "zz"}, None, "offset", ["'zz'", "its columns are"]),
    ({}, _set("y", -1.0), "target", ["negative", "family 'poisson' needs a target >= 0"]),
    ({"family": "gamma"}, _poisson_zero, "target", ["<= 0", "family 'gamma' needs a target > 0"]),
    (
        {"family": "inverse_gaussian"},
        _poisson_zero,
        "target",
        ["family 'inverse_gaussian' needs a target > 0"],
    ),
    (
        {"family": "binomial"},
        _set("y", 2.0),
        "target",
        ["outside [0, 1]", "0/1 outcomes or proportions"],
    ),
    (
        {"family": "binomial"},
        lambda d: d.assign(y=0.5),
        "target",
        ["proportions", "number of trials as weights"],
    ),
    ({"weights": "w"}, _set("w", -2.0), "weights", ["negative", "weights must be >= 0"]),
    ({"weights": "w"}, lambda d: d.assign(w=0.0), "weights", ["all zero"]),
    ({"exposure": "expo"}, _set("expo", 0.0), "exposure", ["<= 0", "exposure must be > 0"]),
    ({}, _nan("x"), "predictors", ["'x'", "missing or infinite", "missing: drop"]),
    ({}, _nan("cat"), "predictors", ["'cat'", "missing or infinite"]),
    ({}, _set("x", np.inf, 5), "predictors", ["'x'", "first at row 5"]),
    ({}, _nan("y"), "target", ["'y'", "missing or infinite"]),
    (
        {"predictors": ["x", "txt"], "target": "txt"},
        None,
        "predictors",
        ["target 'txt' cannot also be a predictor"],
    ),
    ({"target": "txt"}, None, "target", ["'txt' must be numeric", "such as ['t']"]),
    ({"weights": "txt"}, None, "weights", ["'txt' must be numeric"]),
    ({}, lambda d: d.iloc[:0], "data", ["no rows"]),
    (
        {"constraints": {"bounds": {"xx": [0, 1]}}},
        None,
        "constraints.bounds.xx",
        ["not a term", "Did you mean 'x'"],
    ),
    (
        {"constraints": {"bounds": {"cat[zz]": [0, 1]}}},
        None,
        "constraints.bounds.cat[zz]",
        ["not a term"],
    ),
]


@pytest.mark.parametrize(
    ("changes", "mutate", "field", "words"), BAD_DATA, ids=[str(i) for i in range(len(BAD_DATA))]
)
def test_fit_bad_data_names_field_and_allowed(changes, mutate, field, words):
    df = _data()
    if mutate is not None:
        df = mutate(df)
    try:
        config = GLMConfig.from_dict({**BASE, **changes})
    except ConfigError as exc:  # some cases are caught before the data is read
        assert field in exc.fields
        for word in words:
            assert word in str(exc)
        return
    with pytest.raises(DataError) as info:
        smglm.fit(config, df)
    assert field in info.value.fields, str(info.value)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value!s}"


def test_fit_reports_every_data_problem_at_once():
    df = _data()
    with pytest.raises(DataError) as info:
        smglm.fit({**BASE, "predictors": ["xx", "kat"], "weights": "ww"}, df)
    assert info.value.fields == ["weights", "predictors", "predictors"]


def test_fit_missing_drop_policy_drops_and_warns():
    df = _nan("x")(_data())
    with pytest.warns(UserWarning, match="dropped 1 of 40 rows"):
        result = smglm.fit({**BASE, "missing": "drop"}, df)
    assert result.metrics["train"]["n_obs"] == 39
    assert result.metrics["fit"]["n_dropped"] == 1


def test_fit_reads_csv_gzip_and_parquet_folders(tmp_path):
    df = _data(200)
    folder = tmp_path / "train"
    folder.mkdir()
    df.iloc[:120].to_csv(folder / "part-0.csv.gz", index=False)
    df.iloc[120:].to_csv(folder / "part-1.csv", index=False)
    from_folder = smglm.fit(BASE, folder)
    pq = tmp_path / "train.parquet"
    df.to_parquet(pq)
    from_parquet = smglm.fit(BASE, pq)
    in_memory = smglm.fit(BASE, df)
    for r in (from_folder, from_parquet):
        np.testing.assert_allclose(
            r.coefficients["estimate"], in_memory.coefficients["estimate"], rtol=1e-10
        )


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p / "nope.csv", ["no such file"]),
        (lambda p: (p / "empty").mkdir() or p / "empty", ["holds no CSV or Parquet"]),
        (
            lambda p: (p / "bad.parquet").write_text("not parquet") and p / "bad.parquet",
            ["cannot read 'bad.parquet'"],
        ),
        (lambda p: (p / "x.txtx").write_text("a") and p / "x.txtx", ["not a data file"]),
    ],
)
def test_read_table_bad_source_is_data_error(tmp_path, make, words):
    with pytest.raises(DataError) as info:
        smglm.fit(BASE, make(tmp_path))
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("kind", ["parquet", "csv", "folder"])
def test_read_table_reads_only_the_columns_asked_for(tmp_path, kind):
    from smglm.glm.io import SOURCE_COLUMNS, read_table

    df = _data(60).assign(unused_a=1.0, unused_b="text")
    if kind == "parquet":
        source = tmp_path / "d.parquet"
        df.to_parquet(source)
    elif kind == "csv":
        source = tmp_path / "d.csv"
        df.to_csv(source, index=False)
    else:
        source = tmp_path / "parts"
        source.mkdir()
        df.iloc[:30].to_parquet(source / "a.parquet")
        df.iloc[30:].to_parquet(source / "b.parquet")
    wanted = [c for c in df.columns if not c.startswith("unused")][::-1]
    read = read_table(source, columns=[*wanted, "not_there"])
    assert list(read.columns) == [c for c in df.columns if c in wanted]  # the file's order
    assert read.attrs[SOURCE_COLUMNS] == list(df.columns) and len(read) == 60
    pd.testing.assert_frame_equal(read, df[list(read.columns)], check_dtype=False)
    assert list(read_table(source).columns) == list(df.columns)


def test_fit_on_a_file_suggests_from_every_column_of_the_file(tmp_path):
    df = _data(60).assign(region_code=1.0)
    df.to_parquet(tmp_path / "d.parquet")
    with pytest.raises(DataError) as info:
        smglm.fit({**BASE, "predictors": ["x", "region_cod"]}, tmp_path / "d.parquet")
    assert "column 'region_cod' is not in the data; Did you mean 'region_code'" in str(info.value)


def test_folder_files_with_other_columns_are_refused_also_when_pruned(tmp_path):
    from smglm.glm.io import read_table

    df = _data(40)
    df.iloc[:20].to_parquet(tmp_path / "a.parquet")
    df.iloc[20:].assign(extra=1).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(DataError, match="every file of a folder must have the same columns"):
        read_table(tmp_path, columns=list(df.columns))
