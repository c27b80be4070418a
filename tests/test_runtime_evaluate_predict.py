"""Contract tests of the runtime's ``evaluate`` and ``predict`` on ``/opt/ml`` trees.

The model channel holds a ``model.tar.gz`` packed the way SageMaker packs ``/opt/ml/model``
(members at the archive root), or the model directory itself. Metrics are checked against
formulas written out here (Poisson deviance, Gini via ``smglm.glm.report.gini``) and against
the training's own test metrics.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import xlogy

import smglm
from helpers import FileContent, ml_tree, tar_bytes
from smglm.datasets import motor
from smglm.errors import ModelError
from smglm.glm import PortableModel
from smglm.glm.io import EXACT_FLOATS
from smglm.glm.report import gini
from smglm.runtime import evaluate as evaluate_module
from smglm.runtime import predict as predict_module
from smglm.runtime.__main__ import EXIT_USAGE
from smglm.runtime.__main__ import main as dispatch
from smglm.runtime.channels import safe_extract

pytestmark = pytest.mark.usefixtures("restore_root_logging")

CONFIG = {
    "target": "claim_count",
    "predictors": ["driver_age", "area", "vehicle_power", "region"],
    "exposure": "exposure",
    "family": "poisson",
}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    df = motor(1600, seed=21)
    return df.iloc[:1200].reset_index(drop=True), df.iloc[1200:].reset_index(drop=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data):
    """A fitted model, saved as a model directory and as SageMaker's model.tar.gz."""
    train, test = data
    result = smglm.fit(CONFIG, train, test_data=test)
    folder = tmp_path_factory.mktemp("model") / "model"
    result.save(folder)
    archive = folder.parent / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for entry in sorted(folder.iterdir()):
            tar.add(entry, arcname=entry.name)
    return result, folder, archive


def make_tree(
    root: Path,
    *,
    model: Path | None,
    channel: str = "test",
    frame: pd.DataFrame | None = None,
    file: str = "data.csv",
    hyperparameters: dict[str, str] | None = None,
) -> Path:
    """Lay out ``root`` as SageMaker's /opt/ml with a ``model`` channel (a model directory's
    files, or an archive) and a data channel in FastFile mode."""
    channels: dict[str, dict[str, FileContent]] = {}
    if model is not None:
        files = sorted(model.iterdir()) if model.is_dir() else [model]
        channels["model"] = {entry.name: entry for entry in files}
    if frame is not None:
        channels[channel] = {file: frame}
    return ml_tree(
        root,
        channels,
        channel_config={channel: {"TrainingInputMode": "FastFile"}},
        hyperparameters=hyperparameters,
        resource_config={"current_host": "algo-1", "hosts": ["algo-1"]},
    )


def run(monkeypatch, module, root: Path) -> int:
    monkeypatch.setenv("SMGLM_ML_ROOT", str(root))
    return module.main([])


def failure_of(root: Path) -> str:
    text = (root / "output" / "failure").read_text()
    assert text.count("\n") == 1 and text.endswith("\n")
    return text


# -- evaluate ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_evaluate_tarball_metrics_match_formulas_and_training(tmp_path, monkeypatch, trained, data):
    result, _, archive = trained
    _, test = data
    root = make_tree(tmp_path / "ml", model=archive, frame=test)
    assert run(monkeypatch, evaluate_module, root) == 0
    out = root / "output" / "data"
    metrics = json.loads((out / "metrics.json").read_text())["test"]
    # independent formulas: Poisson deviance and log-likelihood, Gini of the amounts
    mu = result.model.predict(test)
    y = test["claim_count"].to_numpy(float)
    dev = 2 * np.sum(xlogy(y, y / mu) - (y - mu))
    assert metrics["n_obs"] == len(test)
    assert metrics["deviance"] == pytest.approx(dev, rel=1e-12)
    assert metrics["gini"] == pytest.approx(gini(y, mu, test["exposure"]), abs=1e-12)
    ybar = y.sum() / test["exposure"].sum()  # the null model refitted on this data
    null = 2 * np.sum(xlogy(y, y / (ybar * test["exposure"])) - (y - ybar * test["exposure"]))
    assert metrics["null_deviance"] == pytest.approx(null, rel=1e-9)
    # the training's test metrics, where the definitions agree
    for name in ("n_obs", "deviance", "log_likelihood", "aic", "bic", "df_resid", "gini"):
        assert metrics[name] == pytest.approx(result.metrics["test"][name], rel=1e-12), name
    names = {p.name for p in (out / "test").iterdir()}
    assert {"lift.png", "lorenz.png", "residuals.png", "one_way_area.png", "report.json"} <= names


@pytest.mark.slow
def test_evaluate_model_directory_and_train_channel_fallback(tmp_path, monkeypatch, trained, data):
    _, folder, _ = trained
    train, _ = data
    root = make_tree(tmp_path / "ml", model=folder, channel="train", frame=train, file="t.parquet")
    assert run(monkeypatch, evaluate_module, root) == 0
    metrics = json.loads((root / "output" / "data" / "metrics.json").read_text())
    assert list(metrics) == ["train"] and metrics["train"]["n_obs"] == len(train)


def test_evaluate_report_failure_is_logged_not_fatal(tmp_path, monkeypatch, trained, data, capsys):
    import smglm.runtime.report_files

    def broken(*args, **kwargs):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(smglm.runtime.report_files, "render_plots", broken)
    root = make_tree(tmp_path / "ml", model=trained[2], frame=data[1].head(100))
    assert run(monkeypatch, evaluate_module, root) == 0  # the metrics are the result
    assert (
        json.loads((root / "output" / "data" / "metrics.json").read_text())["test"]["n_obs"] == 100
    )
    assert "could not draw the report plots" in capsys.readouterr().err
    assert not (root / "output" / "failure").exists()
    tables = sorted(p.name for p in (root / "output" / "data" / "test").iterdir())
    assert "lift.csv" in tables and not [t for t in tables if t.endswith(".png")]


def test_evaluate_missing_model_channel_is_client_error(tmp_path, monkeypatch, data):
    root = make_tree(tmp_path / "ml", model=None, frame=data[1])
    assert run(monkeypatch, evaluate_module, root) == 1
    assert failure_of(root).startswith("ClientError: bad config: channels.model:")


def test_evaluate_data_without_target_is_client_error(tmp_path, monkeypatch, trained, data):
    root = make_tree(tmp_path / "ml", model=trained[2], frame=data[1].drop(columns="claim_count"))
    assert run(monkeypatch, evaluate_module, root) == 1
    text = failure_of(root)
    assert text.startswith("ClientError: bad data: target:") and "claim_count" in text


def test_evaluate_unsafe_tarball_is_refused(tmp_path, monkeypatch, data):
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../escape.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    root = make_tree(tmp_path / "ml", model=archive, frame=data[1])
    assert run(monkeypatch, evaluate_module, root) == 1
    assert "refusing member '../escape.json'" in failure_of(root)
    assert not (tmp_path / "escape.json").exists()


# -- safe_extract ------------------------------------------------------------------------------
def _tar_with(tmp_path: Path, member: tarfile.TarInfo, payload: bytes = b"x") -> Path:
    """A model archive: ``model.json`` and ``member``."""
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(tar_bytes([(tarfile.TarInfo("model.json"), b"{}"), (member, payload)]))
    return archive


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        ("/etc/evil", tarfile.REGTYPE, "outside"),
        ("a/../../evil", tarfile.REGTYPE, "outside"),
        ("link", tarfile.SYMTYPE, "link"),
        ("hard", tarfile.LNKTYPE, "link"),
        ("fifo", tarfile.FIFOTYPE, "special"),
    ],
)
def test_safe_extract_refuses_escapes_and_links(tmp_path, name, kind, reason):
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = "/etc/passwd" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    archive = _tar_with(tmp_path, member)
    dest = tmp_path / "out"
    with pytest.raises(ModelError, match=reason):
        safe_extract(archive, dest)
    assert not dest.exists()  # checked before anything is written


def test_safe_extract_writes_regular_members(tmp_path):
    member = tarfile.TarInfo("sub/coefficients.csv")
    archive = _tar_with(tmp_path, member, b"term,estimate\n")
    written = safe_extract(archive, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        "model.json",
        "sub/coefficients.csv",
    ]
    assert (tmp_path / "out" / "sub" / "coefficients.csv").read_bytes() == b"term,estimate\n"


# -- predict -----------------------------------------------------------------------------------
def test_predict_csv_keeps_order_and_id_and_matches_portable_model(
    tmp_path, monkeypatch, trained, data, capsys
):
    _, _, archive = trained
    frame = data[1].sample(frac=1.0, random_state=3).reset_index(drop=True)  # shuffled
    frame["area"] = frame["area"].astype(str)
    frame.loc[[0, 5], "area"] = "ZZ"  # a level the model never saw
    hp = {"id_column": '"policy_id"', "output_format": "csv"}
    root = make_tree(
        tmp_path / "ml", model=archive, channel="data", frame=frame, hyperparameters=hp
    )
    assert run(monkeypatch, predict_module, root) == 0
    out = pd.read_csv(root / "output" / "data" / "predictions.csv", **EXACT_FLOATS)
    assert list(out.columns) == ["policy_id", "prediction"]
    assert out["policy_id"].tolist() == frame["policy_id"].tolist()
    with pytest.warns(UserWarning, match="not seen"):
        expected = PortableModel.load(archive.parent / "model" / "model.json").predict(frame)
    np.testing.assert_array_equal(out["prediction"].to_numpy(), expected)  # %.17g round trip
    assert "2 of 400 row(s) have levels of 'area' not seen in training" in capsys.readouterr().err


def test_predict_parquet_output_without_id(tmp_path, monkeypatch, trained, data):
    _, folder, _ = trained
    frame = data[1].drop(columns=["claim_count", "exposure"])  # no target, no exposure
    root = make_tree(
        tmp_path / "ml",
        model=folder,
        channel="data",
        frame=frame,
        hyperparameters={"output_format": "parquet"},
    )
    assert run(monkeypatch, predict_module, root) == 0
    out = pd.read_parquet(root / "output" / "data" / "predictions.parquet")
    assert list(out.columns) == ["prediction"]
    expected = PortableModel.load(folder).predict(frame)  # per unit exposure
    np.testing.assert_array_equal(out["prediction"].to_numpy(), expected)


@pytest.mark.parametrize(
    ("hyperparameters", "names"),
    [
        ({"id_column": "row_id"}, ("id_column", "row_id")),
        ({"output_format": "xlsx"}, ("output_format", "xlsx", "parquet")),
        ({"alpha": "1"}, ("alpha", "unknown hyperparameter")),
    ],
)
def test_predict_bad_hyperparameters_are_client_errors(
    tmp_path, monkeypatch, trained, data, hyperparameters, names
):
    root = make_tree(
        tmp_path / "ml",
        model=trained[2],
        channel="data",
        frame=data[1],
        hyperparameters=hyperparameters,
    )
    assert run(monkeypatch, predict_module, root) == 1
    text = failure_of(root)
    assert text.startswith("ClientError: ")
    for name in names:
        assert name in text
    assert not (root / "output" / "data" / "predictions.csv").exists()


def test_predict_missing_predictor_names_the_column(tmp_path, monkeypatch, trained, data):
    frame = data[1].drop(columns=["vehicle_power"])
    root = make_tree(tmp_path / "ml", model=trained[2], channel="data", frame=frame)
    assert run(monkeypatch, predict_module, root) == 1
    text = failure_of(root)
    assert text.startswith("ClientError: bad model or data:") and "vehicle_power" in text


def test_predict_subprocess_via_module_dispatch(tmp_path, trained, data):
    root = make_tree(tmp_path / "ml", model=trained[2], channel="data", frame=data[1].head(10))
    env = {**os.environ, "SMGLM_ML_ROOT": str(root)}
    proc = subprocess.run(
        [sys.executable, "-m", "smglm.runtime", "predict"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = pd.read_csv(root / "output" / "data" / "predictions.csv", **EXACT_FLOATS)
    np.testing.assert_array_equal(out["prediction"], trained[0].model.predict(data[1].head(10)))


def test_dispatch_unknown_command_is_usage_error(capsys):
    assert dispatch(["fit"]) == EXIT_USAGE
    assert "unknown command 'fit'" in capsys.readouterr().err
    assert dispatch([]) == EXIT_USAGE
    assert dispatch(["--help"]) == 0


def test_dispatch_serve_passes_arguments_to_serve_main(monkeypatch):
    import types

    calls = []
    fake = types.ModuleType("smglm.runtime.serve")
    fake.main = lambda argv: calls.append(list(argv)) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "smglm.runtime.serve", fake)
    assert dispatch(["serve", "--port", "9000"]) == 7
    assert calls == [["--port", "9000"]]
