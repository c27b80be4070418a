"""Contract tests of the runtime's ``train``: a real ``/opt/ml`` tree laid out as SageMaker does.

The success case, the SIGTERM case and two failure cases run ``python -m smglm.runtime train`` in
a subprocess with ``SMGLM_ML_ROOT`` pointing at a temporary tree; the other failure cases call
``smglm.runtime.train.main`` in-process (the same code, without the interpreter start-up).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import RESOURCE_CONFIG, FileContent, ml_tree
from smglm.contract import (
    EXIT_INTERNAL_ERROR,
    EXIT_STOPPED,
    EXIT_USER_ERROR,
    METRIC_DEFINITIONS,
)
from smglm.datasets import motor
from smglm.runtime import train as train_module
from smglm.runtime.hyperparameters import Hyperparameters, parse_hyperparameters
from smglm.runtime.metrics import capture_metrics
from smglm.runtime.paths import MLPaths

pytestmark = pytest.mark.usefixtures("restore_root_logging")

PREDICTORS = ["driver_age", "area", "vehicle_power", "region"]
CONFIG_YAML = (
    "target: claim_count\n"
    f"predictors: {json.dumps(PREDICTORS)}\n"
    "exposure: exposure\n"
    "family: negative_binomial   # the success case's hyperparameters make it poisson\n"
)
HYPERPARAMETERS = {  # as SageMaker writes them: strings, some JSON-encoded by the SDK
    "family": '"poisson"',
    "alpha": "0.001",
    "l1_ratio": "0",
    "sagemaker_region": '"eu-west-1"',
    "sagemaker_container_log_level": "20",
    "_tuning_objective_metric": "test:deviance",
}
JOB_NAME = "smglm-contract-test-0001"


def make_tree(
    root: Path,
    *,
    train: pd.DataFrame | None,
    train_files: tuple[str, ...] = ("part-1.csv",),
    test: pd.DataFrame | None = None,
    test_files: tuple[str, ...] = ("part-1.parquet",),
    config: str | None = CONFIG_YAML,
    config_name: str = "glm.yaml",
    hyperparameters: dict[str, str] | None = None,
    input_modes: dict[str, str] | None = None,
) -> Path:
    """Lay out ``root`` as SageMaker's /opt/ml (contract §1.2), extras included."""
    channels: dict[str, dict[str, FileContent]] = {}
    described: dict[str, dict[str, str]] = {}
    for name, df, files in (("train", train, train_files), ("test", test, test_files)):
        if df is None:
            continue
        parts = np.array_split(np.arange(len(df)), len(files))
        channels[name] = {file: df.iloc[part] for part, file in zip(parts, files, strict=True)}
        described[name] = {"S3DistributionType": "FullyReplicated"}
    if config is not None:
        channels["config"] = {config_name: config}
        described["config"] = {"ContentType": "application/x-yaml"}
    for name, mode in (input_modes or {}).items():
        described[name]["TrainingInputMode"] = mode
    ml_tree(root, channels, channel_config=described, hyperparameters=hyperparameters)
    (root / "input" / "config" / "trainingjobconfig.json").write_text('{"TrainingJobName": "x"}')
    for name in ("train", "test"):  # observed extras
        if name in channels:
            text = "observed next to File-mode channels\n"
            (root / "input" / "data" / f"{name}-manifest").write_text(text)
    return root


def run_subprocess(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "SMGLM_ML_ROOT": str(root), "TRAINING_JOB_NAME": JOB_NAME}
    return subprocess.run(
        [sys.executable, "-m", "smglm.runtime", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return motor(1500, seed=11)


@pytest.fixture(scope="module")
def success(tmp_path_factory, frame):
    """One real ``train`` run in a subprocess: train in a .csv and a .csv.gz, test in 2 Parquet."""
    root = make_tree(
        tmp_path_factory.mktemp("ml") / "opt-ml",
        train=frame.iloc[:1100],
        train_files=("part-1.csv", "part-2.csv.gz"),
        test=frame.iloc[1100:],
        test_files=("a.parquet", "b.parquet"),
        hyperparameters=HYPERPARAMETERS,
    )
    return root, run_subprocess(root, "train")


# -- success -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_train_success_writes_model_directory_and_pyfunc(success):
    root, proc = success
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (root / "output" / "failure").exists()
    model = root / "model"
    expected = {"model.json", "coefficients.csv", "metrics.json", "config.yaml", "convergence.csv"}
    expected.add("covariance.csv")
    assert expected | {"mlflow_model"} == {p.name for p in model.iterdir()}  # no staging left
    pyfunc = model / "mlflow_model"
    assert {"MLmodel", "model.json", "requirements.txt", "python_env.yaml"} <= {
        p.name for p in pyfunc.iterdir()
    }
    assert (pyfunc / "model.json").read_bytes() == (model / "model.json").read_bytes()
    flavor = yaml.safe_load((pyfunc / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavor["loader_module"] == "smglm.tracking.pyfunc"


@pytest.mark.slow
def test_train_success_applies_hyperparameters_and_reads_every_file(success, frame):
    root, _ = success
    config = yaml.safe_load((root / "model" / "config.yaml").read_text())
    assert config["family"] == "poisson"  # '"poisson"' (JSON-encoded) overrode the YAML's
    assert config["penalty"] == {"alpha": 0.001, "l1_ratio": 0.0, "search": None}
    metrics = json.loads((root / "model" / "metrics.json").read_text())
    assert metrics["train"]["n_obs"] == 1100  # both train files, concatenated
    assert metrics["test"]["n_obs"] == 400  # both test files
    # the same fit in-process, from the frames themselves, gives the same coefficients
    import smglm

    reference = smglm.fit(
        {**yaml.safe_load(CONFIG_YAML), "family": "poisson", "penalty": {"alpha": 0.001}},
        frame.iloc[:1100],
        test_data=frame.iloc[1100:],
    )
    coefs = pd.read_csv(root / "model" / "coefficients.csv")
    assert list(coefs["term"]) == list(reference.coefficients["term"])
    np.testing.assert_allclose(coefs["estimate"], reference.coefficients["estimate"], rtol=1e-9)
    assert metrics["test"]["deviance"] == pytest.approx(reference.metrics["test"]["deviance"])


@pytest.mark.slow
def test_train_success_writes_report_and_png_plots(success):
    root, _ = success
    out = root / "output" / "data"
    assert json.loads((out / "metrics.json").read_text()) == json.loads(
        (root / "model" / "metrics.json").read_text()
    )
    for split in ("train", "test"):
        names = {p.name for p in (out / split).iterdir()}
        pngs = {f"one_way_{c}.png" for c in PREDICTORS} | {"lift.png", "lorenz.png"}
        assert pngs | {"residuals.png", "report.json"} <= names, split
        for png in pngs:
            assert (out / split / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "train" / "convergence.png").exists()
    # The report's Gini is the metrics' Gini: same amounts, same rows. On train, fit scores with
    # glum's eta and the report with the portable model (last-bit differences); the Gini ties
    # rates equal to 12 significant digits, so both orders, and both Ginis, agree.
    metrics = json.loads((out / "metrics.json").read_text())
    test_report = json.loads((out / "test" / "report.json").read_text())
    assert test_report["gini"] == pytest.approx(metrics["test"]["gini"], abs=1e-12)
    train_report = json.loads((out / "train" / "report.json").read_text())
    assert train_report["gini"] == pytest.approx(metrics["train"]["gini"], rel=1e-12)


@pytest.mark.slow
def test_train_success_metric_lines_match_definitions_and_metrics_json(success):
    root, proc = success
    metrics = json.loads((root / "model" / "metrics.json").read_text())
    compiled = [(d["Name"], re.compile(d["Regex"])) for d in METRIC_DEFINITIONS]
    metric_lines = [ln for ln in proc.stdout.splitlines() if re.match(r"^\w+:\w+=", ln)]
    assert len(metric_lines) >= 20
    for line in metric_lines:
        hits = [(name, rx.search(line)) for name, rx in compiled if rx.search(line)]
        assert len(hits) == 1, (line, [h[0] for h in hits])
        name, match = hits[0]
        split, metric = name.split(":")
        assert float(match.group(1)) == float(metrics[split][metric]), line  # exact
    captured = capture_metrics(proc.stdout.splitlines())
    for split in ("train", "test"):
        for metric, value in metrics[split].items():
            if value is not None and math.isfinite(value):
                assert captured[f"{split}:{metric}"] == [float(value)]
    assert captured["fit:iterations"] == [metrics["fit"]["iterations"]]
    # one objective line per solver iteration, equal to convergence.csv
    conv = pd.read_csv(root / "model" / "convergence.csv")
    assert captured["fit:objective"] == conv["objective"].tolist()
    assert sum(ln.startswith("iteration=") for ln in proc.stdout.splitlines()) == len(conv)


@pytest.mark.slow
def test_train_success_logs_job_name_channels_and_steps(success):
    _, proc = success
    log = proc.stderr
    assert JOB_NAME in log
    assert "reading channel 'train'" in log
    assert "channel 'train': 1100 rows" in log and "from 2 file(s)" in log
    assert "channel 'test': 400 rows" in log
    assert "fitting a poisson/log GLM" in log
    assert "model written to" in log


def test_metric_definitions_are_valid_for_sagemaker():
    names = [d["Name"] for d in METRIC_DEFINITIONS]
    assert len(names) == len(set(names)) <= 40
    for d in METRIC_DEFINITIONS:
        assert 1 <= len(d["Name"]) <= 255 and 1 <= len(d["Regex"]) <= 500
        assert re.compile(d["Regex"]).groups == 1


# -- hyperparameters and config resolution (no fit) -----------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"family": '"tweedie"', "tweedie_power": "1.7"},
            {"family": "tweedie", "tweedie_power": 1.7},
        ),
        ({"predictors": '["a", "b"]'}, {"predictors": ["a", "b"]}),
        ({"predictors": "a, b,c"}, {"predictors": ["a", "b", "c"]}),
        ({"predictors": "['a', 'b']"}, {"predictors": ["a", "b"]}),  # the SDK's str(list)
        ({"predictors": '"a,b"'}, {"predictors": ["a", "b"]}),
        ({"fit_intercept": "False", "max_iter": "50"}, {"fit_intercept": False, "max_iter": 50}),
        (
            {"alpha": "0.5", "penalty.l1_ratio": "1"},
            {"penalty.alpha": 0.5, "penalty.l1_ratio": 1.0},
        ),
        ({"test_fraction": "0.3", "test_seed": "7"}, {"test.fraction": 0.3, "test.seed": 7}),
        ({"weights": "null", "link": '"log"'}, {"weights": None, "link": "log"}),
        ({"bounds": '{"x": [null, 0]}'}, {"constraints.bounds": {"x": [None, 0]}}),
        ({"sagemaker_program": "train.py", "_tuning_objective_metric": "test:gini"}, {}),
    ],
)
def test_parse_hyperparameters_converts_strings_to_field_types(raw, expected):
    assert parse_hyperparameters(raw).overrides == expected


def test_resolve_config_from_hyperparameters_alone(tmp_path):
    paths = MLPaths(tmp_path)
    hp = parse_hyperparameters(
        {"target": "y", "predictors": "a,b", "family": "gamma", "test_fraction": "0.25"}
    )
    config = train_module.resolve_config(paths, {}, hp)
    assert (config.target, config.predictors, config.family) == ("y", ["a", "b"], "gamma")
    assert config.test is not None and config.test.fraction == 0.25


def test_resolve_config_from_config_hyperparameter_with_override(tmp_path):
    hp = parse_hyperparameters(
        {"config": json.dumps({"target": "y", "penalty": {"alpha": 1.0}}), "l1_ratio": "0.5"}
    )
    config = train_module.resolve_config(MLPaths(tmp_path), {}, hp)
    assert (config.penalty.alpha, config.penalty.l1_ratio) == (1.0, 0.5)


def test_resolve_config_channel_with_dotted_override(tmp_path, frame):
    root = make_tree(tmp_path / "ml", train=frame.head(5))
    paths = MLPaths(root)
    hp = Hyperparameters(overrides={"penalty.alpha": 0.2, "family": "poisson"})
    config = train_module.resolve_config(paths, paths.read_input_data_config(), hp)
    assert (config.family, config.penalty.alpha, config.exposure) == ("poisson", 0.2, "exposure")


def test_paths_fall_back_to_camel_case_resource_config(tmp_path):
    cfg = tmp_path / "input" / "config"
    cfg.mkdir(parents=True)
    (cfg / "resourceConfig.json").write_text(
        '{"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}'
    )
    resources = MLPaths(tmp_path).read_resource_config()
    assert resources.current_host == "algo-2" and not resources.is_master
    assert MLPaths(tmp_path).read_hyperparameters() == {}  # absent file: no hyperparameters


def test_paths_from_env_uses_smglm_ml_root(monkeypatch, tmp_path):
    monkeypatch.setenv("SMGLM_ML_ROOT", str(tmp_path))
    paths = MLPaths.from_env()
    assert paths.model_dir == tmp_path / "model"
    assert paths.failure_file == tmp_path / "output" / "failure"
    assert paths.channel_dir("train") == tmp_path / "input" / "data" / "train"


# -- failures ----------------------------------------------------------------------------------
def assert_client_failure(root: Path, code: int, *names: str) -> str:
    """Exit 1, a one-line ClientError naming ``names``, and no model."""
    assert code == EXIT_USER_ERROR
    text = (root / "output" / "failure").read_text()
    assert text.endswith("\n") and "\n" not in text[:-1] and len(text) <= 1025
    assert text.startswith("ClientError: "), text
    for name in names:
        assert name in text, (name, text)
    assert not (root / "model" / "model.json").exists()
    return text


def run_in_process(monkeypatch, root: Path) -> int:
    monkeypatch.setenv("SMGLM_ML_ROOT", str(root))
    return train_module.main([])


def test_train_missing_train_channel_fails_in_subprocess(tmp_path):
    root = make_tree(tmp_path / "ml", train=None)
    proc = run_subprocess(root, "train", timeout=60)
    text = assert_client_failure(root, proc.returncode, "train", "channel")
    assert "bad config" in text
    assert "Traceback" in proc.stderr  # the full story is in the log


def test_train_bad_family_fails_in_subprocess_with_did_you_mean(tmp_path, frame):
    root = make_tree(
        tmp_path / "ml",
        train=frame.head(50),
        config=CONFIG_YAML.replace("negative_binomial", "poison"),
    )
    proc = run_subprocess(root, "train", timeout=60)
    text = assert_client_failure(root, proc.returncode, "family", "poison", "'poisson'")
    assert text.startswith("ClientError: bad config: family: 'poison' is not allowed")


def _drop(df: pd.DataFrame, column: str) -> pd.DataFrame:
    return df.drop(columns=[column])


def _with(df: pd.DataFrame, column: str, row: int, value: object) -> pd.DataFrame:
    out = df.copy()
    out[column] = out[column].astype(float) if value is np.nan else out[column]
    out.loc[out.index[row], column] = value
    return out


FAILURES = {
    "no_config": (dict(config=None), ("config", "target")),
    "unparsable_yaml": (dict(config="target: [unclosed\n"), ("glm.yaml", "cannot parse")),
    "unknown_config_field": (
        dict(config=CONFIG_YAML + "familly: poisson\n"),
        ("familly", "Did you mean 'family'"),
    ),
    "missing_column": (dict(train=lambda df: _drop(df, "driver_age")), ("driver_age",)),
    "gamma_with_zeros": (
        dict(hyperparameters={"family": "gamma", "exposure": "null", "target": "claim_amount"}),
        ("target", "claim_amount", "gamma"),
    ),
    "empty_data": (dict(train=lambda df: df.head(0)), ("no rows",)),
    "bad_hyperparameter_value": (dict(hyperparameters={"alpha": "abc"}), ("alpha", "'abc'")),
    "unknown_hyperparameter": (
        dict(hyperparameters={"l1ratio": "0.5"}),
        ("l1ratio", "Did you mean 'l1_ratio'"),
    ),
    "nan_in_predictor": (
        dict(train=lambda df: _with(df, "vehicle_power", 3, np.nan)),
        ("vehicle_power", "missing"),
    ),
    "negative_weights": (
        dict(
            train=lambda df: _with(df.assign(w=1.0), "w", 2, -1.0),
            hyperparameters={"weights": "w"},
        ),
        ("weights", "'w'", "negative"),
    ),
    "non_positive_exposure": (
        dict(train=lambda df: _with(df, "exposure", 0, 0.0)),
        ("exposure", "> 0"),
    ),
    "unreadable_data_file": (dict(garbage="part-9.csv.gz"), ("part-9.csv.gz", "cannot read")),
    "mixed_formats": (dict(garbage="part-9.parquet"), ("part-9.parquet", "one format")),
    "pipe_mode": (dict(input_modes={"train": "Pipe"}), ("channels.train", "Pipe")),
    "two_config_files": (dict(second_config=True), ("channels.config", "exactly one")),
    "negative_alpha": (dict(hyperparameters={"alpha": "-1"}), ("penalty.alpha", ">= 0")),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_train_user_error_writes_one_line_client_failure(case, tmp_path, monkeypatch, frame):
    spec, names = FAILURES[case]
    spec = dict(spec)
    train = frame.head(200)
    if callable(spec.get("train")):
        train = spec.pop("train")(train)
    garbage = spec.pop("garbage", None)
    second = spec.pop("second_config", False)
    root = make_tree(tmp_path / "ml", train=train, **spec)
    if garbage:
        (root / "input" / "data" / "train" / garbage).write_bytes(b"PAR1 this is not parquet")
    if second:
        (root / "input" / "data" / "config" / "other.json").write_text("{}")
    code = run_in_process(monkeypatch, root)
    assert_client_failure(root, code, *names)


def test_train_internal_error_is_reported_as_internal(tmp_path, monkeypatch, frame, capsys):
    import smglm.glm

    def broken_fit(*args, **kwargs):
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(smglm.glm, "fit", broken_fit)
    root = make_tree(tmp_path / "ml", train=frame.head(100))
    code = run_in_process(monkeypatch, root)
    assert code == EXIT_INTERNAL_ERROR
    text = (root / "output" / "failure").read_text()
    assert text == "InternalError: RuntimeError: solver exploded\n"
    assert "Traceback" in capsys.readouterr().err
    assert not (root / "model" / "model.json").exists()


def test_train_non_master_host_exits_cleanly_without_model(tmp_path, monkeypatch, frame):
    root = make_tree(tmp_path / "ml", train=frame.head(100))
    (root / "input" / "config" / "resourceconfig.json").write_text(
        json.dumps({**RESOURCE_CONFIG, "current_host": "algo-2", "hosts": ["algo-1", "algo-2"]})
    )
    assert run_in_process(monkeypatch, root) == 0
    assert not (root / "model" / "model.json").exists()
    assert not (root / "output" / "failure").exists()


@pytest.mark.slow
def test_train_sigterm_stops_promptly_with_stopped_reason(tmp_path):
    big = motor(100_000, seed=4)
    config = CONFIG_YAML.replace(
        json.dumps(PREDICTORS),
        json.dumps([*PREDICTORS, "vehicle_model", "vehicle_brand", "bonus_malus"]),
    )
    root = make_tree(
        tmp_path / "ml",
        train=big,
        train_files=("big.parquet",),
        config=config.replace("negative_binomial", "poisson"),
    )
    env = {**os.environ, "SMGLM_ML_ROOT": str(root)}
    log_path = tmp_path / "stderr.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "smglm.runtime", "train"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            deadline = time.monotonic() + 60
            while "fitting a poisson" not in log_path.read_text():
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "train never started fitting"
                time.sleep(0.05)
            time.sleep(1.0)  # into glum's import and fit (about 3 s on this data)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)  # SageMaker's grace before SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
    # handled (not killed) before the fit ended; the time it takes: benchmarks/responsiveness.py
    assert code == EXIT_STOPPED
    text = (root / "output" / "failure").read_text()
    assert text.startswith("Stopped: received SIGTERM") and text.count("\n") == 1
    assert not (root / "model" / "model.json").exists()
    assert not list((root / "model").glob(".smglm-staging*"))


def test_report_from_the_fit_equals_scoring_the_data_again(tmp_path):
    """The runtime reuses the fit's checked data and means for the report (keep_fitted);
    the tables equal those of scoring the data again with the portable model."""
    import smglm
    from smglm.datasets import motor
    from smglm.glm.report import ReportData
    from smglm.glm.report.scoring import score, scored_from_fit
    from smglm.runtime.report_files import write_report

    df = motor(3000, seed=5)
    df = df[df["driver_age"] > 20]  # a non-contiguous index, as a train/test split leaves
    config = {"target": "claim_count", "exposure": "exposure", "family": "poisson",
              "predictors": ["driver_age", "area", "vehicle_power"]}  # fmt: skip
    result = smglm.fit(config, df, keep_fitted=True)
    assert smglm.fit(config, df).fitted is None  # kept only when asked
    kept = scored_from_fit(result, "train")
    again = score(result.config, result.model, df, "train")
    assert kept is not None and scored_from_fit(result, "test") is None
    np.testing.assert_allclose(kept.mu, again.mu, rtol=1e-10)
    write_report(result.config, kept, tmp_path / "kept")
    write_report(result.config, again, tmp_path / "again")
    a, b = ReportData.from_dir(tmp_path / "kept"), ReportData.from_dir(tmp_path / "again")
    for column in config["predictors"]:
        pd.testing.assert_frame_equal(a.one_ways[column], b.one_ways[column], rtol=1e-9)
    pd.testing.assert_frame_equal(a.lift, b.lift, rtol=1e-9)


def test_train_aggregate_cells_fits_model_points_from_the_channel_files(tmp_path, monkeypatch):
    """``aggregate: cells`` (a hyperparameter, from JobConfig.aggregate): DuckDB sums the
    channel's files to rating cells, and the model, metrics and report equal the rows' fit
    (the same rows: a holdout by year, not a random split)."""
    import smglm
    from smglm.glm.report import ReportData

    df = motor(4000, seed=11)
    df["year"] = np.where(np.arange(len(df)) % 5 == 0, 2025, 2024)
    config = {
        "target": "claim_count",
        "exposure": "exposure",
        "family": "poisson",
        "predictors": ["driver_age", "area"],
        "terms": {"driver_age": {"bands": [25, 40, 60]}},
        "test": {"by": "year", "holdout": [2025]},
    }
    root = ml_tree(
        tmp_path / "ml",
        {"train": {"a.parquet": df.iloc[:2500], "b.parquet": df.iloc[2500:]}},
        hyperparameters={"config": json.dumps(config), "aggregate": "cells"},
    )
    assert run_in_process(monkeypatch, root) == 0
    paths = MLPaths(root)
    metrics = json.loads((paths.model_dir / "metrics.json").read_text())
    rows = smglm.fit(config, df)
    assert metrics["fit"]["model_points"]["rows"] == (df["year"] == 2024).sum()
    assert metrics["fit"]["model_points"]["cells"] <= 4 * df["area"].nunique()  # bands x areas
    coefs = pd.read_csv(paths.model_dir / "coefficients.csv").set_index("term")
    expected = rows.coefficients.set_index("term")
    np.testing.assert_allclose(coefs["estimate"], expected["estimate"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(coefs["std_error"], expected["std_error"], rtol=1e-8)
    for split in ("train", "test"):
        for key in ("deviance", "null_deviance", "aic", "n_obs", "df_resid", "gini"):
            assert metrics[split][key] == pytest.approx(rows.metrics[split][key], rel=1e-9)
        report = ReportData.from_dir(paths.output_data_dir / split)
        actual = report.one_ways["area"]
        assert actual is not None and len(actual) == df["area"].nunique()


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.xdist_group("spark")
def test_train_engine_spark_fits_the_channel_files_with_spark(tmp_path, monkeypatch, spark):
    """``engine: spark`` (a hyperparameter, from JobConfig.engine): the driver reads the
    channel's files in the local Spark session, and spark-finish writes the model and the
    report as a training job's; the coefficients are glum's."""
    import smglm

    df = motor(3000, seed=12)
    config = {
        "target": "claim_count",
        "exposure": "exposure",
        "family": "poisson",
        "predictors": ["driver_age", "area"],
        "terms": {"driver_age": {"bands": [25, 40, 60]}},
    }
    root = ml_tree(
        tmp_path / "ml",
        {"train": {"part-0.parquet": df}},
        hyperparameters={"config": json.dumps(config), "engine": "spark"},
    )
    assert run_in_process(monkeypatch, root) == 0
    paths = MLPaths(root)
    metrics = json.loads((paths.model_dir / "metrics.json").read_text())
    assert metrics["fit"]["engine"] == "spark"
    coefs = pd.read_csv(paths.model_dir / "coefficients.csv").set_index("term")
    expected = smglm.fit(config, df).coefficients.set_index("term")
    np.testing.assert_allclose(coefs["estimate"], expected["estimate"], rtol=0, atol=1e-8)
    assert (paths.model_dir / "model.json").is_file()
    assert (paths.output_data_dir / "train" / "lift.csv").is_file()
    model = smglm.load_model(paths.model_dir)
    np.testing.assert_allclose(
        model.predict(df), smglm.fit(config, df).model.predict(df), rtol=1e-7
    )


def test_a_sigterm_wrapped_by_an_import_is_still_a_stop():
    """A SIGTERM that lands while Python runs a class body (an import in progress) surfaces
    as ``RuntimeError: Error calling __set_name__ ...`` caused by the Stopped: the job still
    ends Stopped (exit 143), not as an internal error."""
    import signal as signals

    from smglm.contract import EXIT_STOPPED
    from smglm.runtime.failure import Stopped, failure_reason

    class Field:
        def __set_name__(self, owner, name):
            raise Stopped(signals.SIGTERM)

    caught: BaseException | None = None
    try:

        class MetricInfo:  # as scipy's, imported while the SIGTERM arrives
            types = Field()

    except BaseException as exc:  # RuntimeError from Stopped up to 3.11; Stopped itself later
        caught = exc
    assert caught is not None
    reason, code = failure_reason(caught)
    assert code == EXIT_STOPPED and reason.startswith("Stopped: ")
    assert "SIGTERM" in reason
    reason, code = failure_reason(RuntimeError("a bug"))
    assert code == EXIT_INTERNAL_ERROR and reason.startswith("InternalError: RuntimeError")
