"""The report's figures: one drawing function per table, and :data:`FIGURES`, the registry that
declares each figure once (its table, drawing function, file stem, title, caption and splits).

Every function returns a :class:`matplotlib.figure.Figure` made directly, without pyplot: no
global figure registry, no backend to choose, safe in threads and in headless containers (saving
to PNG uses Agg). In a notebook, a returned Figure displays itself. matplotlib is imported inside
the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from smglm.glm.report.data import ReportData

__all__ = [
    "FIGURES",
    "FigureItem",
    "FigureSpec",
    "figure_files",
    "plot_convergence",
    "plot_double_lift",
    "plot_lift",
    "plot_lorenz",
    "plot_one_way",
    "plot_one_way_overlay",
    "plot_residuals",
    "register_figure",
    "save_figures",
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

    Fixed margins instead of matplotlib's constrained layout, which measures every text twice
    (see benchmarks/README.md). The margins fit the labels these plots draw (the one-way plots
    widen the bottom one for their rotated bin labels).
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


def _one_way_frame(table: pd.DataFrame) -> tuple[Figure, Axes, Axes, np.ndarray]:
    """A one-way figure's frame: exposure as grey bars on a right axis kept to the lower third,
    and the left axis (in front, for the rates) with one x position per bin."""
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
    exposure = table["exposure"].to_numpy(dtype=float)
    bars.bar(x, exposure, width=0.8, color=BARS, label="exposure")
    top = float(exposure.max()) if n else 0.0
    bars.set_ylim(0.0, 3.0 * top if top > 0 and math.isfinite(top) else 1.0)
    bars.set_ylabel("exposure")
    ax.set_zorder(bars.get_zorder() + 1)  # lines in front of the bars
    ax.patch.set_visible(False)
    ax.set_xticks(
        x[::step], labels[::step], rotation=45 if rotate else 0, ha="right" if rotate else "center"
    )
    return fig, ax, bars, x


def _one_way_legend(ax: Axes, bars: Axes) -> None:
    handles = ax.get_legend_handles_labels()[0] + bars.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", fontsize="small")


def plot_one_way(table: pd.DataFrame, column: str, *, title: str | None = None) -> Figure:
    """Plot a :func:`~smglm.glm.report.one_way` table: actual and predicted rates per bin.

    The rates are lines on the left axis; exposure is grey bars on a secondary (right) axis,
    kept to the lower third of the plot. One x position per bin, labelled with the ``bin``
    labels (rotated when there are many or long ones; at most 40 labels are shown).
    """
    fig, ax, bars, x = _one_way_frame(table)
    _rates(ax, x, table)
    _finish(ax, title or f"{column}: actual vs predicted", column, "rate (amount / exposure)")
    _one_way_legend(ax, bars)
    return fig


def plot_one_way_overlay(table: pd.DataFrame, column: str) -> Figure:
    """One-way of several models on the same rows: the actual rate and each model's predicted
    rate (columns ``predicted_rate <model>``) per bin, exposure bars as in :func:`plot_one_way`."""
    fig, ax, bars, x = _one_way_frame(table)
    ax.plot(x, table["actual_rate"].to_numpy(), marker="o", color="black", label="actual")
    for name in [c for c in table.columns if str(c).startswith("predicted_rate ")]:
        ax.plot(x, table[name].to_numpy(), marker="s", label=name.removeprefix("predicted_rate "))
    _finish(ax, f"{column}: actual vs predicted", column, "rate (amount / exposure)")
    _one_way_legend(ax, bars)
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


# -- the registry ----------------------------------------------------------------------------
@dataclass(frozen=True)
class FigureItem:
    """One figure of a split: its file stem, its label (a column for one-ways, else empty),
    the table it shows and the function that draws it."""

    stem: str
    label: str
    table: pd.DataFrame
    make: Callable[[], Figure]


@dataclass(frozen=True)
class FigureSpec:
    """A report figure, declared once: the runtime's PNG writer, the report's sections, its
    ``figures()``, the CLI and ``%sm_compare`` all read :data:`FIGURES`.

    Attributes
    ----------
    key
        The report section's key (``one_way``, ``lift``, ...).
    title
        The section's title.
    caption
        How to read the figure, shown under it.
    items
        ``items(report_data)``: the figures of one split, :class:`FigureItem` each (none when
        the split lacks the table).
    splits
        The splits that get the figure (``convergence``: the solver's trace, train only).
    """

    key: str
    title: str
    caption: str
    items: Callable[[ReportData], list[FigureItem]]
    splits: tuple[str, ...] = ("train", "test")


def _one_way_items(d: ReportData) -> list[FigureItem]:
    stems = d.one_way_files()
    return [
        FigureItem(stems[c], str(c), t, partial(plot_one_way, t, c)) for c, t in d.one_ways.items()
    ]


def _single(
    attr: str, draw: Callable[..., Figure], *extra: Callable[[ReportData], object]
) -> Callable[[ReportData], list[FigureItem]]:
    """Items of a figure drawn from one table of ReportData (``attr``), when the split has it."""

    def items(d: ReportData) -> list[FigureItem]:
        table = getattr(d, attr)
        if table is None:
            return []
        return [FigureItem(attr, "", table, partial(draw, table, *(f(d) for f in extra)))]

    return items


def _gini(d: ReportData) -> float:
    return float("nan") if d.gini is None else float(d.gini)


def _convergence_items(d: ReportData) -> list[FigureItem]:
    trace = d.convergence
    if trace is None or len(trace.columns) < 2:
        return []
    return [FigureItem("convergence", "", trace, partial(plot_convergence, trace))]


#: Every figure of a report, in display order. Adding a figure: a table in ReportData, its
#: drawing function above, and one entry here (or :func:`register_figure` from outside).
FIGURES: list[FigureSpec] = [
    FigureSpec(
        "one_way",
        "One-way",
        "Actual (blue) and predicted (orange) rate per level or band of each predictor; grey "
        "bars are exposure. Lines apart where the bars are tall point to a missing effect.",
        _one_way_items,
    ),
    FigureSpec(
        "lift",
        "Lift",
        "Rows sorted by predicted rate into bins of equal exposure: a steeper actual line "
        "means better ranking; predicted on actual means good calibration.",
        _single("lift", plot_lift),
    ),
    FigureSpec(
        "lorenz",
        "Lorenz and Gini",
        "Share of actual amount against share of exposure, lowest predicted rate first; the "
        "further below the diagonal, the better the ranking (Gini = 1 - 2 x the area under it).",
        _single("lorenz", plot_lorenz, _gini),
    ),
    FigureSpec(
        "residuals",
        "Deviance residuals vs fitted",
        "Deviance residuals by band of fitted value: mean, median and the 10-90% band. A mean "
        "that drifts from 0 shows a misfit link or variance.",
        _single("residuals", plot_residuals),
    ),
    FigureSpec(
        "convergence",
        "Convergence",
        "The solver's objective per iteration (and its convergence measure): it should fall and "
        "level off.",
        _convergence_items,
        splits=("train",),
    ),
]


def register_figure(spec: FigureSpec) -> None:
    """Add ``spec`` to :data:`FIGURES` (last, or in place of a figure with the same key): the
    report's sections, ``Report.figures()`` and the job's PNG files then include it."""
    for i, known in enumerate(FIGURES):
        if known.key == spec.key:
            FIGURES[i] = spec
            return
    FIGURES.append(spec)


def figure_files(
    report: ReportData, outdir: str | Path, split: str = "train"
) -> list[tuple[Path, Callable[[], Figure]]]:
    """The PNG files of one split's ``report`` under ``outdir`` (``<stem>.png``, the same stems
    as :meth:`ReportData.to_dir`'s CSV files), each with the function that draws it."""
    out = Path(outdir)
    return [
        (out / f"{item.stem}.png", item.make)
        for spec in FIGURES
        if split in spec.splits
        for item in spec.items(report)
    ]


def save_figures(
    jobs: Sequence[tuple[Path, Callable[[], Figure]]], *, dpi: int = 100
) -> list[Path]:
    """Draw and save each ``(path, make_figure)`` of ``jobs``, one at a time; return the paths.

    Figures are not registered with pyplot, so each is dropped once saved. (The training
    runtime draws the same list in forked processes: ``smglm.runtime.report_files``.)
    """
    for folder in {path.parent for path, _ in jobs}:
        folder.mkdir(parents=True, exist_ok=True)
    for path, make in jobs:
        fig = make()
        fig.savefig(path, dpi=dpi)
        fig.clear()
    logger.debug("wrote %d report plots", len(jobs))
    return [path for path, _ in jobs]
