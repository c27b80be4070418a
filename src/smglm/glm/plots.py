"""Matplotlib figures of the report tables of :mod:`smglm.glm.report`, and their PNG files.

Every function returns a :class:`matplotlib.figure.Figure` made directly, without pyplot: no
global figure registry, no backend to choose, safe in threads and in headless containers (saving
to PNG uses Agg). In a notebook, a returned Figure displays itself. matplotlib is imported inside
the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from smglm.glm.report_data import ReportData

__all__ = [
    "plot_convergence",
    "plot_double_lift",
    "plot_lift",
    "plot_lorenz",
    "plot_one_way",
    "plot_residuals",
    "render_plots",
    "report_plot_jobs",
    "save_report_plots",
]

logger = logging.getLogger(__name__)

ACTUAL = "#1f4e79"
PREDICTED = "#d95f02"
OTHER = "#1b9e77"
BARS = "#c9c9c9"
MAX_TICK_LABELS = 40

#: A function that draws one report figure.
PlotJob = Callable[[], "Figure"]


#: Width of one tick-label character of the default 10 pt font, in inches (an upper estimate).
_CHAR_INCHES = 0.078


def _figure(
    width: float = 7.0,
    height: float = 4.5,
    *,
    left: float = 0.85,
    right: float = 0.25,
    bottom: float = 0.6,
    top: float = 0.4,
) -> Figure:
    """A figure with fixed margins, in inches, around its axes.

    Fixed margins instead of matplotlib's constrained layout: that layout measures every text
    twice and made up 40% of the time to save a report's PNGs. The margins fit the labels these
    plots draw (the one-way plot widens the bottom one for its rotated bin labels).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    bottom = min(bottom, 0.45 * height)
    fig.subplots_adjust(
        left=left / width, right=1.0 - right / width, bottom=bottom / height, top=1.0 - top / height
    )
    return fig


def _finish(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)


def _rates(ax: Axes, x: np.ndarray, table: pd.DataFrame) -> None:
    """Plot ``actual_rate`` and ``predicted_rate`` of ``table`` against ``x``."""
    ax.plot(x, table["actual_rate"].to_numpy(), marker="o", color=ACTUAL, label="actual")
    ax.plot(x, table["predicted_rate"].to_numpy(), marker="s", color=PREDICTED, label="predicted")


def plot_one_way(table: pd.DataFrame, column: str, *, title: str | None = None) -> Figure:
    """Plot a :func:`~smglm.glm.report.one_way` table: actual and predicted rates per bin.

    The rates are lines on the left axis; exposure is grey bars on a secondary (right) axis,
    kept to the lower third of the plot. One x position per bin, labelled with the ``bin``
    labels (rotated when there are many or long ones; at most 40 labels are shown).
    """
    n = len(table)
    labels = table["bin"].astype(str).tolist()
    step = max(1, -(-n // MAX_TICK_LABELS))
    rotate = n > 8 or sum(len(s) for s in labels) > 60
    longest = max((len(s) for s in labels[::step]), default=0)
    bottom = 0.6 + (0.72 * _CHAR_INCHES * longest if rotate else 0.0)
    fig = _figure(width=min(14.0, max(7.0, 3.0 + 0.3 * n)), right=0.95, bottom=bottom)
    ax = fig.add_subplot()
    bars = ax.twinx()
    x = np.arange(n)
    exposure = table["exposure"].to_numpy()
    bars.bar(x, exposure, width=0.8, color=BARS, label="exposure")
    bars.set_ylim(0.0, 3.0 * float(exposure.max()) if n and exposure.max() > 0 else 1.0)
    bars.set_ylabel("exposure")
    ax.set_zorder(bars.get_zorder() + 1)  # lines in front of the bars
    ax.patch.set_visible(False)
    _rates(ax, x, table)
    _finish(ax, title or f"{column}: actual vs predicted", column, "rate (amount / exposure)")
    ax.set_xticks(
        x[::step], labels[::step], rotation=45 if rotate else 0, ha="right" if rotate else "center"
    )
    handles = ax.get_legend_handles_labels()[0] + bars.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", fontsize="small")
    return fig


def plot_lift(table: pd.DataFrame) -> Figure:
    """Plot a :func:`~smglm.glm.report.lift` table: actual and predicted rate per bin."""
    fig = _figure()
    ax = fig.add_subplot()
    x = table["bin"].to_numpy()
    _rates(ax, x, table)
    ax.set_xticks(x)
    _finish(ax, "Lift", "bin (equal exposure, by predicted rate)", "rate (amount / exposure)")
    ax.legend(loc="upper left", fontsize="small")
    return fig


def plot_lorenz(lorenz_table: pd.DataFrame, gini: float) -> Figure:
    """Plot a :func:`~smglm.glm.report.lorenz` curve against the diagonal; the Gini in the title."""
    fig = _figure(5.5, 5.5)
    ax = fig.add_subplot()
    x, y = lorenz_table["cum_exposure"].to_numpy(), lorenz_table["cum_actual"].to_numpy()
    ax.plot(x, y, color=ACTUAL, label="model")
    ax.plot([0.0, 1.0], [0.0, 1.0], color="grey", linestyle="--", label="no ranking")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(
        min(0.0, float(np.nanmin(y, initial=0.0))), max(1.0, float(np.nanmax(y, initial=1.0)))
    )
    ax.set_aspect("equal", adjustable="box")
    _finish(
        ax,
        f"Lorenz curve (Gini = {gini:.3f})",
        "cumulative share of exposure (lowest predicted rate first)",
        "cumulative share of actual",
    )
    ax.legend(loc="upper left", fontsize="small")
    return fig


def plot_double_lift(table: pd.DataFrame, name_a: str, name_b: str) -> Figure:
    """Plot a :func:`~smglm.glm.report.double_lift` table: actual and both models' rates per bin."""
    fig = _figure()
    ax = fig.add_subplot()
    x = table["bin"].to_numpy()
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.plot(x, table["actual_rate"].to_numpy(), marker="o", color=ACTUAL, label="actual")
    ax.plot(x, table["rate_a"].to_numpy(), marker="s", color=PREDICTED, label=name_a)
    ax.plot(x, table["rate_b"].to_numpy(), marker="^", color=OTHER, label=name_b)
    ax.set_xticks(x)
    _finish(
        ax,
        f"Double lift: {name_a} vs {name_b}",
        f"bin (equal exposure, by {name_a} / {name_b})",
        "rate / overall rate",
    )
    ax.legend(loc="upper left", fontsize="small")
    return fig


def plot_residuals(residual_bins: pd.DataFrame) -> Figure:
    """Plot a :func:`~smglm.glm.report.residual_bins` table: mean, median and 10-90% band."""
    fig = _figure()
    ax = fig.add_subplot()
    x = residual_bins["fitted_mean"].to_numpy()
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.fill_between(
        x,
        residual_bins["residual_q10"].to_numpy(),
        residual_bins["residual_q90"].to_numpy(),
        color=ACTUAL,
        alpha=0.15,
        label="10% to 90%",
    )
    ax.plot(x, residual_bins["residual_mean"].to_numpy(), marker="o", color=ACTUAL, label="mean")
    if "residual_q50" in residual_bins:
        ax.plot(
            x,
            residual_bins["residual_q50"].to_numpy(),
            linestyle="--",
            color=PREDICTED,
            label="median",
        )
    _finish(ax, f"Residuals vs fitted ({len(residual_bins)} bins)", "fitted (bin mean)", "residual")
    ax.legend(loc="best", fontsize="small")
    return fig


def plot_convergence(table: pd.DataFrame) -> Figure:
    """Plot a solver trace: one panel per column against ``iteration`` (log scale when wide)."""
    columns = [c for c in table.columns if c != "iteration"]
    fig = _figure(7.0, max(3.0, 2.2 * len(columns)))
    x = table["iteration"].to_numpy()
    axes = fig.subplots(max(1, len(columns)), 1, sharex=True, squeeze=False)[:, 0]
    for ax, column in zip(axes, columns, strict=False):
        y = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
        ax.plot(x, y, marker="o", color=ACTUAL)
        finite = y[np.isfinite(y)]
        if finite.size and finite.min() > 0 and finite.max() > 100 * finite.min():
            ax.set_yscale("log")
        ax.set_ylabel(str(column))
        ax.grid(True, alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_title("Convergence")
    axes[-1].set_xlabel("iteration")
    return fig


def report_plot_jobs(report: ReportData, outdir: str | Path) -> list[tuple[Path, PlotJob]]:
    """The PNG files of ``report`` under ``outdir``, each with the function that draws it.

    Files: ``one_way_<column>.png`` (same names as :meth:`ReportData.to_dir`'s CSV files),
    ``lift.png``, ``lorenz.png``, ``residuals.png`` and ``convergence.png``, each only when
    ``report`` has the table.
    """
    out = Path(outdir)
    jobs: list[tuple[Path, PlotJob]] = []
    for column, stem in report.one_way_files().items():
        jobs.append((out / f"{stem}.png", partial(plot_one_way, report.one_ways[column], column)))
    lift, lorenz, residuals, trace = (
        report.lift,
        report.lorenz,
        report.residuals,
        report.convergence,
    )
    if lift is not None:
        jobs.append((out / "lift.png", partial(plot_lift, lift)))
    if lorenz is not None:
        gini = float("nan") if report.gini is None else report.gini
        jobs.append((out / "lorenz.png", partial(plot_lorenz, lorenz, gini)))
    if residuals is not None:
        jobs.append((out / "residuals.png", partial(plot_residuals, residuals)))
    if trace is not None and len(trace.columns) > 1:
        jobs.append((out / "convergence.png", partial(plot_convergence, trace)))
    return jobs


def render_plots(
    jobs: Sequence[tuple[Path, PlotJob]], *, dpi: int = 100, workers: int = 1
) -> list[Path]:
    """Draw and save each ``(path, make_figure)`` of ``jobs``; return the paths, in order.

    With ``workers > 1`` (POSIX only), ``workers - 1`` forked processes draw their share of
    the figures while this one draws its own: matplotlib holds the GIL, so processes are the
    only way to use more than one core. Forking is for batch processes such as the training
    runtime, not for a process with other busy threads (a notebook kernel). A share that a
    child could not save is drawn again here, so the result does not depend on ``workers``.
    """
    jobs = list(jobs)
    for folder in {path.parent for path, _ in jobs}:
        folder.mkdir(parents=True, exist_ok=True)
    n = max(1, min(int(workers), len(jobs)))
    if n == 1 or not hasattr(os, "fork"):
        for path, make in jobs:
            _save(make, path, dpi)
        return [path for path, _ in jobs]
    children = []
    for k in range(1, n):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which leaves with os._exit
            code = 1
            try:
                for path, make in jobs[k::n]:
                    _save(make, path, dpi)
                code = 0
            finally:
                os._exit(code)
        children.append((pid, jobs[k::n]))
    redraw = []
    try:
        for path, make in jobs[0::n]:
            _save(make, path, dpi)
        while children:
            pid, share = children[0]
            _, status = os.waitpid(pid, 0)
            children.pop(0)
            if os.waitstatus_to_exitcode(status) != 0:
                logger.warning("a plot worker ended with status %s: drawing its plots here", status)
                redraw += share
    except BaseException:  # e.g. a stop (SIGTERM) while drawing: no worker outlives this process
        for pid, _ in children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        raise
    for path, make in redraw:
        _save(make, path, dpi)
    return [path for path, _ in jobs]


def _save(make: PlotJob, path: Path, dpi: int) -> None:
    fig = make()
    fig.savefig(path, dpi=dpi)
    fig.clear()


def save_report_plots(
    report: ReportData, outdir: str | Path, *, dpi: int = 100, workers: int = 1
) -> list[Path]:
    """Write the PNG of every table in ``report`` to ``outdir``; return the files written.

    The files are those of :func:`report_plot_jobs`. Figures are drawn and saved one at a time
    and then dropped (they are not registered with pyplot, so nothing else holds them);
    ``workers`` is as in :func:`render_plots`.
    """
    Path(outdir).mkdir(parents=True, exist_ok=True)
    paths = render_plots(report_plot_jobs(report, outdir), dpi=dpi, workers=workers)
    logger.debug("wrote %d report plots to %s", len(paths), outdir)
    return paths
