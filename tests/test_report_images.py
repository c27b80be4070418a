"""``JobConfig.report_images``: the job writes the report tables always and the PNGs when asked
(auto: on SageMaker, not on the local backend), and the report looks the same either way.
Also the runtime's shortcuts for the local loop: the train split's report from the fit's kept
values, and ``aggregate: auto`` decided from Parquet footers."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import smglm
from helpers import ml_tree
from smglm.config import JobConfig
from smglm.datasets import motor
from smglm.errors import ConfigError
from smglm.launch.local import LocalBackend
from smglm.launch.submit import fit_hyperparameters
from smglm.runtime import train as train_module
from smglm.runtime import zygote
from smglm.runtime.paths import MLPaths

pytestmark = pytest.mark.usefixtures("restore_root_logging")

CONFIG = {
    "target": "claim_count",
    "predictors": ["driver_age", "area", "vehicle_power"],
    "exposure": "exposure",
    "family": "poisson",
}


# -- the setting ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, None), (True, True), (False, False), ("true", True), ("FALSE", False), ("auto", None)],
)
def test_report_images_accepts_true_false_and_auto(given, expected):
    assert JobConfig(report_images=given).report_images is expected
    assert JobConfig().report_images is None  # auto by default


@pytest.mark.parametrize("bad", ["yes", 1, 0.5, ["true"]])
def test_report_images_refuses_anything_else_naming_field_value_and_choices(bad):
    with pytest.raises(ConfigError) as info:
        JobConfig(report_images=bad)
    text = str(info.value)
    assert "report_images" in text and "true, false or auto" in text
    assert repr(bad) in text


def test_report_images_auto_is_on_for_remote_backends_only():
    assert JobConfig().images_on(remote=True) is True
    assert JobConfig().images_on(remote=False) is False
    for remote in (True, False):
        assert JobConfig(report_images=True).images_on(remote) is True
        assert JobConfig(report_images=False).images_on(remote) is False


def test_the_launcher_tells_the_runtime_only_when_no_images_are_drawn():
    """The SageMaker request is unchanged at auto (no hyperparameter); the local backend's
    jobs get ``report_images: false`` unless they ask for the images."""
    assert fit_hyperparameters(JobConfig(), remote=True) == {}
    assert fit_hyperparameters(JobConfig(), remote=False) == {"report_images": "false"}
    assert fit_hyperparameters(JobConfig(report_images=True), remote=False) == {}
    assert fit_hyperparameters(JobConfig(report_images=False), remote=True) == {
        "report_images": "false"
    }
    # a Spark job on SageMaker takes engine/aggregate only; spark-finish draws on this machine
    spark = JobConfig(engine="spark", report_images=False)
    assert fit_hyperparameters(spark, remote=True) == {"engine": "spark"}
    assert fit_hyperparameters(spark, remote=False) == {
        "engine": "spark",
        "report_images": "false",
    }


def test_the_runtime_refuses_an_unknown_report_images_value(tmp_path):
    df = motor(300, seed=1)
    root = ml_tree(
        tmp_path / "ml",
        {"train": {"train.parquet": df}, "config": {"glm.json": json.dumps(CONFIG)}},
        hyperparameters={"report_images": "maybe"},
    )
    with pytest.raises(ConfigError, match=r"hyperparameters\.report_images.*'maybe'"):
        train_module.train(MLPaths(root))


# -- the runtime ----------------------------------------------------------------------------
def _run(root: Path) -> Path:
    train_module.train(MLPaths(root))
    return root / "output" / "data"


def _csvs(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.name: pd.read_csv(p) for p in sorted(folder.glob("*.csv"))}


def _assert_same_tables(a: Path, b: Path, rtol: float) -> None:
    left, right = _csvs(a), _csvs(b)
    assert sorted(left) == sorted(right) and left
    for name, frame in left.items():
        other = right[name]
        assert list(frame.columns) == list(other.columns), name
        for column in frame.columns:
            x, y = frame[column], other[column]
            if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
                np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-12, err_msg=f"{name}:{column}")
            else:
                assert list(x.astype(str)) == list(y.astype(str)), f"{name}:{column}"


@pytest.mark.slow
def test_without_images_the_runtime_writes_the_same_tables_and_no_png(tmp_path):
    df = motor(2000, seed=4)
    channels = {
        "train": {"train.parquet": df.iloc[:1600]},
        "test": {"test.parquet": df.iloc[1600:]},
        "config": {"glm.json": json.dumps(CONFIG)},
    }
    off = _run(ml_tree(tmp_path / "off", channels, hyperparameters={"report_images": "false"}))
    on = _run(ml_tree(tmp_path / "on", channels, hyperparameters={"report_images": "true"}))
    default = _run(ml_tree(tmp_path / "default", channels))
    for split in ("train", "test"):
        assert not list((off / split).glob("*.png")), split
        assert (off / split / "report.json").is_file()
        assert {p.stem for p in (on / split).glob("*.png")} >= {"lift", "lorenz", "one_way_area"}
        assert {p.name for p in (default / split).glob("*.png")} == {
            p.name for p in (on / split).glob("*.png")
        }
        _assert_same_tables(off / split, on / split, rtol=1e-12)
        assert json.loads((off / split / "report.json").read_text()) == json.loads(
            (on / split / "report.json").read_text()
        )


def test_the_train_report_from_kept_values_equals_scoring_again(tmp_path):
    """Every CSV of the train split's report, built from the fit's kept data and means (what
    the runtime does), equals the report of scoring the rows again with the portable model."""
    from smglm.glm.report.scoring import score, scored_from_fit
    from smglm.runtime.report_files import write_report

    df = motor(3000, seed=8)
    df = df[df["vehicle_age"] < 12]  # a non-contiguous index
    result = smglm.fit(CONFIG, df, keep_fitted=True)
    kept = scored_from_fit(result, "train")
    assert kept is not None
    again = score(result.config, result.model, df, "train")
    common = {"result": result, "convergence": result.convergence, "images": False}
    write_report(result.config, kept, tmp_path / "kept", **common)
    write_report(result.config, again, tmp_path / "again", **common)
    _assert_same_tables(tmp_path / "kept", tmp_path / "again", rtol=1e-9)


# -- aggregate: auto from the Parquet footers --------------------------------------------------
def _folder(tmp_path: Path, frames: dict[str, pd.DataFrame]) -> Path:
    folder = tmp_path / "train"
    folder.mkdir()
    for name, frame in frames.items():
        path = folder / name
        if name.endswith(".csv"):
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
    return folder


def test_rows_for_sure_from_parquet_footers_agrees_with_will_aggregate(tmp_path, monkeypatch):
    from smglm.config import GLMConfig
    from smglm.glm import points

    df = motor(400, seed=2)
    numeric = GLMConfig.from_dict(CONFIG)
    cells = GLMConfig.from_dict({**CONFIG, "predictors": ["area", "region"]})
    folder = _folder(tmp_path, {"a.parquet": df.iloc[:200], "b.parquet": df.iloc[200:]})
    # fewer rows than AUTO_MIN_ROWS: rows, without asking DuckDB
    assert train_module._rows_for_sure(cells, folder)
    assert not points.will_aggregate(cells, folder)
    monkeypatch.setattr(points, "AUTO_MIN_ROWS", 300)
    # enough rows: a numeric term varies within a cell (rows); categorical terms: ask DuckDB
    assert train_module._rows_for_sure(numeric, folder)
    assert not points.will_aggregate(numeric, folder)
    assert not train_module._rows_for_sure(cells, folder)
    # a column the footers lack (e.g. a hive partition column): ask DuckDB
    partitioned = GLMConfig.from_dict({**CONFIG, "predictors": ["area", "year"]})
    assert not train_module._rows_for_sure(partitioned, folder)
    # a CSV file: not from footers
    csv = _folder(tmp_path / "csv", {"a.csv": df}) if (tmp_path / "csv").mkdir() is None else None
    assert csv is not None and not train_module._rows_for_sure(cells, csv)


# -- the warm worker ------------------------------------------------------------------------
def test_a_forked_job_applies_its_malloc_settings():
    """glibc reads MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ at start-up; a forked job
    applies the ones the local supervisor sets: a freed 16 MB array is reused, not faulted in
    again page by page."""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's mallopt")
    code = (
        "import os, resource, numpy as np\n"
        "from smglm.runtime import zygote\n"
        "if os.environ.get('APPLY'):\n"
        "    os.environ['MALLOC_MMAP_THRESHOLD_'] = str(32 << 20)\n"
        "    os.environ['MALLOC_TRIM_THRESHOLD_'] = str(1 << 30)\n"
        "    zygote._apply_malloc_settings()\n"
        "a = np.ones(2 << 20); del a\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "b = np.ones(2 << 20)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    faults = {}
    for apply in ("", "1"):
        env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MALLOC_")}
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**env, "APPLY": apply, "NUMPY_MADVISE_HUGEPAGE": "0"},
            capture_output=True,
            text=True,
            check=True,
        )
        faults[apply] = int(out.stdout.split()[-1])
    pages = (16 << 20) // resource.getpagesize()
    assert faults["1"] < pages // 8 and faults[""] > pages // 2, faults
    assert "MALLOC_MMAP_THRESHOLD_" in zygote.ALLOWED_VARIABLES


# -- end to end on the local backend ----------------------------------------------------------
@pytest.mark.slow
def test_a_local_job_draws_pngs_only_when_asked_and_its_report_has_the_figures(tmp_path):
    df = motor(1500, seed=6)
    backend = LocalBackend(tmp_path / "home")
    try:
        auto = smglm.train(CONFIG, df, backend=backend, wait=True, logs=False, tracking=False)
        forced = smglm.train(
            CONFIG,
            df,
            backend=backend,
            wait=True,
            logs=False,
            tracking=False,
            report_images=True,
        )
    finally:
        backend.shutdown_warm()
    assert auto.status == forced.status == "Completed"
    assert auto.describe()["HyperParameters"] == {"report_images": "false"}
    assert forced.describe()["HyperParameters"] == {}
    auto_out, forced_out = auto.artifacts() / "output", forced.artifacts() / "output"
    assert not list(auto_out.rglob("*.png"))
    assert (auto_out / "train" / "report.json").is_file()
    assert {p.name for p in (forced_out / "train").glob("*.png")} >= {"lift.png", "lorenz.png"}
    # the report shows the same figures either way: drawn from the tables when there is no PNG
    auto_html, forced_html = auto.report().to_html(), forced.report().to_html()
    assert auto_html.count("<img") == forced_html.count("<img") > 0


def test_the_worker_freezes_its_preloaded_objects_and_fills_lazy_caches(tmp_path, monkeypatch):
    """After its preload the worker hides its objects from the garbage collector
    (``gc.freeze``): a forked job's first full collection would otherwise walk, and so copy,
    the worker's whole heap. It also fills narwhals' entry-point cache."""
    import gc

    from smglm.runtime import zygote

    monkeypatch.setattr(zygote, "PRELOAD", ("narwhals.plugins",))
    monkeypatch.setattr(zygote, "_prepare_tracking_store", lambda: None)
    plugins = __import__("narwhals.plugins", fromlist=["_discover_entrypoints"])
    plugins._discover_entrypoints.cache_clear()
    worker = zygote.Zygote(tmp_path / "s.sock", tmp_path / "s.lock", 60.0)
    try:
        worker.preload()
        assert gc.get_freeze_count() > 0
        assert plugins._discover_entrypoints.cache_info().currsize == 1
    finally:
        gc.unfreeze()
