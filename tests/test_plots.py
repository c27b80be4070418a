"""Tests of smglm.glm.report.figures: figures show the table values; the PNG files are valid."""

from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from smglm.glm.report import double_lift, one_way
from smglm.glm.report.data import build_report
from smglm.glm.report.figures import (
    figure_files,
    fitted_by_bin,
    plot_convergence,
    plot_double_lift,
    plot_lift,
    plot_lorenz,
    plot_one_way,
    plot_one_way_splits,
    plot_residuals,
    save_figures,
)
from smglm.runtime.report_files import render_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def save_report_plots(report, outdir, *, dpi=100):
    """Every registered figure of one train split's report, saved as PNG under ``outdir``."""
    return save_figures(figure_files(report, outdir), dpi=dpi)


def png_size(path):
    """Width and height in pixels from a PNG's IHDR chunk (after checking the signature)."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def line(ax, label):
    """The Line2D of ``ax`` with legend label ``label``."""
    (found,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return found


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(21)
    n = 3000
    frame = pd.DataFrame(
        {
            "power": rng.gamma(3.0, 30.0, n),
            "region": pd.Categorical(rng.choice(["north", "south", "east"], n)),
            "exposure": rng.uniform(0.1, 1.0, n),
        }
    )
    frame["mu"] = frame["exposure"] * np.exp(-2.0 + 0.01 * (frame["power"] - 90))
    frame["claims"] = rng.poisson(frame["mu"]).astype(float)
    return frame


@pytest.fixture(scope="module")
def report(data):
    return build_report(
        data,
        predictors=["power", "region"],
        actual="claims",
        predicted="mu",
        exposure="exposure",
        residuals=(data["claims"] - data["mu"]).to_numpy(),
        convergence={"iteration": [1, 2, 3], "deviance": [2000.0, 1800.0, 1790.0]},
    )


def test_plot_one_way_lines_bars_and_labels_show_the_table(data):
    table = one_way(data, "power", "claims", "mu", "exposure")
    fig = plot_one_way(table, "power")
    ax, bars = fig.axes
    assert ax.get_title() == "power: actual vs predicted"
    assert ax.get_xlabel() == "power"
    assert "rate" in ax.get_ylabel()
    assert bars.get_ylabel() == "exposure"
    np.testing.assert_array_equal(line(ax, "actual").get_ydata(), table["actual_rate"])
    np.testing.assert_array_equal(line(ax, "predicted").get_ydata(), table["predicted_rate"])
    np.testing.assert_array_equal(line(ax, "actual").get_xdata(), np.arange(len(table)))
    heights = [p.get_height() for p in bars.patches]
    np.testing.assert_array_equal(heights, table["exposure"])
    assert [t.get_text() for t in ax.get_xticklabels()] == table["bin"].tolist()
    assert ax.get_xticklabels()[0].get_rotation() == 45  # long interval labels are rotated
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "actual",
        "predicted",
        "exposure",
    ]


def test_plot_one_way_splits_shows_both_splits_with_the_fitted_band(data):
    train, test = data.iloc[:2000], data.iloc[2000:]
    tables = {
        n: one_way(d, "region", "claims", "mu", "exposure")
        for n, d in (("train", train), ("test", test))
    }
    band = pd.DataFrame(
        {"fit": [0.1, 0.2, 0.3], "lower": [0.05, 0.15, 0.25], "upper": [0.2, 0.3, 0.4]}
    )
    band.attrs["kind"] = "spline"
    fig = plot_one_way_splits(tables, "region", {"train": band, "test": None})
    left, right = fig.axes[0], fig.axes[1]  # the rate axes (then their exposure twins)
    assert [left.get_title(), right.get_title()] == ["train", "test"]
    for ax, name in ((left, "train"), (right, "test")):
        np.testing.assert_allclose(line(ax, "actual").get_ydata(), tables[name]["actual_rate"])
        np.testing.assert_allclose(
            line(ax, "predicted").get_ydata(), tables[name]["predicted_rate"]
        )
        assert [t.get_text() for t in ax.get_xticklabels()] == tables[name]["bin"].tolist()
    np.testing.assert_allclose(line(left, "fitted relativity").get_ydata(), band["fit"])
    assert [ln.get_label() for ln in right.get_lines()] == ["actual", "predicted"]
    bars = [ax for ax in fig.axes[2:]]
    heights = [p.get_height() for p in bars[0].patches]
    np.testing.assert_allclose(heights, tables["train"]["exposure"])
    assert left.get_shared_y_axes().joined(left, right)  # one rate scale for both splits
    assert "region" in fig.texts[0].get_text()


def test_fitted_by_bin_rescales_levels_and_splines_to_the_predicted_rate():
    from smglm.glm.report.data import ReportData

    table = pd.DataFrame(
        {
            "bin": ["a", "b", "c", "(missing)"],
            "exposure": [10.0, 20.0, 30.0, 5.0],
            "predicted": [1.0, 4.0, 9.0, 0.5],
        }
    )
    levels = pd.DataFrame(
        {
            "level": ["a", "b", "c"],
            "base": [True, False, False],
            "fit": [1.0, 1.5, 2.0],
            "lower": [np.nan, 1.2, 1.6],
            "upper": [np.nan, 1.9, 2.5],
        }
    )
    out = fitted_by_bin(table, "x", ReportData(levels={"x": levels}, link="log"))
    assert out.attrs["kind"] == "levels"
    known = slice(0, 3)
    # the ratios between levels are the relativities; the weighted mean is the predicted rate
    np.testing.assert_allclose(out["fit"][known] / out["fit"][0], [1.0, 1.5, 2.0])
    np.testing.assert_allclose(out["upper"][1] / out["fit"][0], 1.9)
    mean = (out["fit"][known] * table["exposure"][known]).sum() / 60.0
    assert mean == pytest.approx(14.0 / 60.0)
    assert out["lower"][0] == out["fit"][0] == out["upper"][0]  # the base: no interval
    assert np.isnan(out["fit"][3])  # a bin the model has no level for
    # an identity link: shifted, not scaled
    shifted = fitted_by_bin(table, "x", ReportData(levels={"x": levels}, link="identity"))
    np.testing.assert_allclose(shifted["fit"][known] - shifted["fit"][0], [0.0, 0.5, 1.0])
    # a spline: the curve at each bin's middle
    numeric = table.assign(bin=["[0, 2)", "[2, 4)", "[4, 6]", "8"])
    curve = pd.DataFrame(
        {
            "part": "curve",
            "x": [0.0, 6.0],
            "fit": [1.0, 4.0],
            "lower": [0.5, 3.0],
            "upper": [2.0, 5.0],
        }
    )
    out = fitted_by_bin(numeric, "x", ReportData(splines={"x": curve}, link="log"))
    assert out.attrs["kind"] == "spline"
    np.testing.assert_allclose(out["fit"][known] / out["fit"][0], [1.0, 2.5 / 1.5, 3.5 / 1.5])
    assert np.isnan(out["fit"][3])  # beyond the curve
    # no term view of the column, or no bin matching it: nothing to draw
    assert fitted_by_bin(table, "y", ReportData(levels={"x": levels})) is None
    other = table.assign(bin=["p", "q", "r", "s"])
    assert fitted_by_bin(other, "x", ReportData(levels={"x": levels})) is None


def test_plot_one_way_few_short_labels_stay_flat_and_many_are_thinned(data):
    table = one_way(data, "region", "claims", "mu", "exposure")
    fig = plot_one_way(table, "region", title="By region")
    ax = fig.axes[0]
    assert ax.get_title() == "By region"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["east", "north", "south"]
    assert ax.get_xticklabels()[0].get_rotation() == 0
    many = pd.DataFrame({"bin": [f"level {i}" for i in range(100)], "exposure": 1.0,
                         "actual_rate": 0.1, "predicted_rate": 0.1})  # fmt: skip
    labels = [t.get_text() for t in plot_one_way(many, "x").axes[0].get_xticklabels()]
    assert len(labels) <= 40
    assert labels[:2] == ["level 0", "level 3"]


def test_plot_lift_lines_are_the_table(report):
    fig = plot_lift(report.lift)
    (ax,) = fig.axes
    assert ax.get_title() == "Lift"
    assert "predicted rate" in ax.get_xlabel()
    np.testing.assert_array_equal(line(ax, "actual").get_xdata(), report.lift["bin"])
    np.testing.assert_array_equal(line(ax, "actual").get_ydata(), report.lift["actual_rate"])
    np.testing.assert_array_equal(line(ax, "predicted").get_ydata(), report.lift["predicted_rate"])


def test_plot_lorenz_shows_curve_diagonal_and_gini(report):
    fig = plot_lorenz(report.lorenz, report.gini)
    (ax,) = fig.axes
    assert ax.get_title() == f"Lorenz curve (Gini = {report.gini:.3f})"
    assert "exposure" in ax.get_xlabel() and "actual" in ax.get_ylabel()
    curve = line(ax, "model")
    np.testing.assert_array_equal(curve.get_xdata(), report.lorenz["cum_exposure"])
    np.testing.assert_array_equal(curve.get_ydata(), report.lorenz["cum_actual"])
    np.testing.assert_array_equal(line(ax, "no ranking").get_ydata(), [0.0, 1.0])


def test_plot_double_lift_names_both_models(data):
    mu_b = data["mu"] * np.exp(0.2 * np.sin(data["power"]))
    table = double_lift(data["claims"], data["mu"], mu_b, data["exposure"], n_bins=5)
    fig = plot_double_lift(table, "new", "old")
    (ax,) = fig.axes
    assert ax.get_title() == "Double lift: new vs old"
    assert "new / old" in ax.get_xlabel()
    np.testing.assert_array_equal(line(ax, "actual").get_ydata(), table["actual_rate"])
    np.testing.assert_array_equal(line(ax, "new").get_ydata(), table["rate_a"])
    np.testing.assert_array_equal(line(ax, "old").get_ydata(), table["rate_b"])


def test_plot_residuals_shows_mean_median_and_band(report):
    table = report.residuals
    fig = plot_residuals(table)
    (ax,) = fig.axes
    assert ax.get_title() == f"Residuals vs fitted ({len(table)} bins)"
    np.testing.assert_array_equal(line(ax, "mean").get_xdata(), table["fitted_mean"])
    np.testing.assert_array_equal(line(ax, "mean").get_ydata(), table["residual_mean"])
    np.testing.assert_array_equal(line(ax, "median").get_ydata(), table["residual_q50"])
    (band,) = ax.collections
    assert band.get_label() == "10% to 90%"


def test_plot_convergence_one_panel_per_column_log_when_wide():
    trace = pd.DataFrame({"iteration": [1, 2, 3, 4], "deviance": [10.0, 9.0, 8.9, 8.9],
                          "step": [1.0, 1e-2, 1e-5, 1e-9]})  # fmt: skip
    fig = plot_convergence(trace)
    top, bottom = fig.axes
    assert top.get_title() == "Convergence"
    assert (top.get_ylabel(), bottom.get_ylabel()) == ("deviance", "step")
    assert bottom.get_xlabel() == "iteration"
    assert (top.get_yscale(), bottom.get_yscale()) == ("linear", "log")
    np.testing.assert_array_equal(top.get_lines()[0].get_ydata(), trace["deviance"])
    np.testing.assert_array_equal(bottom.get_lines()[0].get_xdata(), trace["iteration"])


def test_save_report_plots_writes_valid_pngs(report, tmp_path):
    paths = save_report_plots(report, tmp_path / "plots", dpi=50)
    names = [p.name for p in paths]
    assert names == [
        "one_way_power.png",
        "one_way_region.png",
        "lift.png",
        "lorenz.png",
        "residuals.png",
        "convergence.png",
    ]
    for path in paths:
        width, height = png_size(path)
        assert 150 <= width <= 1000 and 150 <= height <= 1000, (path.name, width, height)
        assert path.stat().st_size > 3000
    assert png_size(tmp_path / "plots" / "lift.png") == (350, 225)  # 7 x 4.5 inches at 50 dpi


def test_save_report_plots_skips_missing_tables(report, tmp_path):
    from dataclasses import replace

    partial = replace(report, convergence=None, residuals=None, one_ways={})
    names = [p.name for p in save_report_plots(partial, tmp_path)]
    assert names == ["lift.png", "lorenz.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lift.png", "lorenz.png"]


def test_plots_need_no_pyplot():
    code = (
        "import sys, numpy as np, pandas as pd\n"
        "import smglm.glm.report.figures as p\n"
        "assert 'matplotlib' not in sys.modules\n"
        "t = pd.DataFrame({'bin': [1, 2], 'actual_rate': [1.0, 2], 'predicted_rate': [1.0, 2]})\n"
        "import io; p.plot_lift(t).savefig(io.BytesIO(), format='png')\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_render_plots_with_forked_workers_writes_the_same_files(report, tmp_path):
    one = render_plots(figure_files(report, tmp_path / "one"), dpi=40, workers=1)
    three = render_plots(figure_files(report, tmp_path / "three"), dpi=40, workers=3)
    assert [p.name for p in one] == [p.name for p in three] and len(one) == 6
    for a, b in zip(one, three, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name  # Agg output is deterministic


def test_render_plots_draws_again_what_a_worker_could_not(report, tmp_path, caplog):
    import os

    parent = os.getpid()
    jobs = []
    for path, make in figure_files(report, tmp_path):

        def only_here(make=make):
            if os.getpid() != parent:
                raise RuntimeError("this worker cannot draw")
            return make()

        jobs.append((path, only_here))
    paths = render_plots(jobs, dpi=40, workers=2)
    assert all(png_size(p)[0] > 100 for p in paths)
    assert "a plot worker ended with status" in caplog.text


def test_render_plots_leaves_no_worker_behind_when_stopped(report, tmp_path):
    """A stop (SIGTERM raises in the runtime's main thread) while drawing: the forked workers
    are killed before the exception goes on, so none writes into a job that has ended."""
    import os
    import time

    parent = os.getpid()

    def slow_in_worker():
        if os.getpid() != parent:
            (tmp_path / f"worker-{os.getpid()}").touch()
            time.sleep(60)
            (tmp_path / f"finished-{os.getpid()}").touch()  # only if never killed
        deadline = time.monotonic() + 20  # here: once both workers are drawing, stop
        while len(list(tmp_path.glob("worker-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        raise KeyboardInterrupt  # as the runtime's Stopped would

    jobs = [(tmp_path / f"p{i}.png", slow_in_worker) for i in range(4)]
    with pytest.raises(KeyboardInterrupt):
        render_plots(jobs, workers=3)
    assert not list(tmp_path.glob("finished-*"))  # killed while drawing, not waited for
    pids = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
    assert len(pids) == 2
    for pid in pids:  # killed and reaped: no such process any more
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
