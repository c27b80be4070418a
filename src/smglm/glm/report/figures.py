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
from collections.abc import Callable, Mapping, Sequence
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
    "fitted_by_bin",
    "one_way_split_files",
    "one_way_split_items",
    "plot_consistency",
    "plot_convergence",
    "plot_double_lift",
    "plot_interaction",
    "plot_levels",
    "plot_lift",
    "plot_lorenz",
    "plot_one_way",
    "plot_one_way_overlay",
    "plot_one_way_splits",
    "plot_residuals",
    "plot_search",
    "plot_spline",
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


def _tick_layout(table: pd.DataFrame) -> tuple[int, bool, float]:
    """The tick step, whether the bin labels are rotated, and the bottom margin they need."""
    n = len(table)
    labels = table["bin"].astype(str).tolist()
    step = max(1, -(-n // MAX_TICK_LABELS))
    rotate = n > 8 or sum(len(s) for s in labels) > 60
    longest = max((len(s) for s in labels[::step]), default=0)
    return step, rotate, 0.6 + (0.72 * _CHAR_INCHES * longest if rotate else 0.0)


def _one_way_axes(ax: Axes, table: pd.DataFrame) -> tuple[Axes, np.ndarray]:
    """Exposure as grey bars on a right axis of ``ax`` kept to the lower third, ``ax`` in front
    (for the rates) with one x position per bin; returns the bars' axis and the positions."""
    n = len(table)
    labels = table["bin"].astype(str).tolist()
    from matplotlib.ticker import MaxNLocator

    step, rotate, _ = _tick_layout(table)
    bars = ax.twinx()
    x = np.arange(n)
    exposure = table["exposure"].to_numpy(dtype=float)
    bars.bar(x, exposure, width=0.8, color=BARS, label="exposure")
    top = float(exposure.max()) if n else 0.0
    bars.set_ylim(0.0, 3.0 * top if top > 0 and math.isfinite(top) else 1.0)
    bars.set_ylabel("exposure")
    bars.yaxis.set_major_locator(MaxNLocator(4))  # fewer ticks: cheaper to draw, as readable
    ax.set_zorder(bars.get_zorder() + 1)  # lines in front of the bars
    ax.patch.set_visible(False)
    ax.set_xticks(
        x[::step], labels[::step], rotation=45 if rotate else 0, ha="right" if rotate else "center"
    )
    return bars, x


def _one_way_frame(table: pd.DataFrame) -> tuple[Figure, Axes, Axes, np.ndarray]:
    """A one-way figure's frame: exposure as grey bars on a right axis kept to the lower third,
    and the left axis (in front, for the rates) with one x position per bin."""
    n = len(table)
    bottom = _tick_layout(table)[2]
    fig = _figure(width=min(14.0, max(7.0, 3.0 + 0.3 * n)), right=0.95, bottom=bottom)
    ax = fig.add_subplot()
    bars, x = _one_way_axes(ax, table)
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


def plot_one_way_splits(
    tables: Mapping[str, pd.DataFrame],
    column: str,
    fitted: Mapping[str, pd.DataFrame | None] | None = None,
) -> Figure:
    """The one-way of ``column`` on each split, side by side (train left, test right), on a
    shared rate axis: actual and predicted rate per bin, exposure as grey bars (right axis),
    and, where ``fitted[split]`` is given (from :func:`fitted_by_bin`), the model's fitted
    relativity of the predictor with its 95% band, rescaled to the rate axis (its
    exposure-weighted mean is the predicted rate; shifted instead for a non-log link)."""
    names = list(tables)
    first = tables[names[0]]
    n = max(len(t) for t in tables.values())
    bottom = max(_tick_layout(t)[2] for t in tables.values())
    panel = min(7.0, max(4.2, 1.6 + 0.28 * n))
    gap = 0.95 + 0.55  # the exposure axis of the left panel, and the rate labels of the right
    width = 0.85 + len(names) * panel + (len(names) - 1) * gap + 0.95
    fig = _figure(width=width, height=4.2, right=0.95, bottom=bottom, top=0.45)
    fig.subplots_adjust(wspace=gap / panel)
    axes = fig.subplots(1, len(names), sharey=True, squeeze=False)[0]
    handles: list = []
    limits: list[np.ndarray] = []
    for ax, name in zip(axes, names, strict=True):
        table = tables[name]
        bars, x = _one_way_axes(ax, table)
        _rates(ax, x, table)
        band = (fitted or {}).get(name)
        shown = [table["actual_rate"].to_numpy(float), table["predicted_rate"].to_numpy(float)]
        if band is not None:
            fit = band["fit"].to_numpy(dtype=float)
            lower, upper = band["lower"].to_numpy(dtype=float), band["upper"].to_numpy(dtype=float)
            if band.attrs.get("kind") == "levels":  # one estimate per level: its interval
                has = np.isfinite(lower) & np.isfinite(upper) & (upper > lower)
                ax.errorbar(
                    x[has],
                    fit[has],
                    yerr=np.vstack((fit - lower, upper - fit))[:, has],
                    fmt="none",
                    ecolor=OTHER,
                    capsize=3,
                    label="95% interval",
                )
                ax.plot(
                    x, fit, color=OTHER, linestyle="none", marker="D", label="fitted relativity"
                )
            else:
                ax.fill_between(x, lower, upper, color=OTHER, alpha=0.18, label="95% band")
                ax.plot(x, fit, color=OTHER, linestyle="--", label="fitted relativity")
            shown.append(fit)
        limits.append(np.concatenate(shown))
        ax.set_title(f"{name}", fontsize="medium")
        ax.set_xlabel(column)
        ax.grid(True, axis="y", alpha=0.3)  # the bins are apart already: no vertical lines
        if len(ax.get_legend_handles_labels()[0]) > len(handles):
            handles = ax.get_legend_handles_labels()[0] + bars.get_legend_handles_labels()[0]
    values = np.concatenate(limits) if limits else np.array([])
    values = values[np.isfinite(values)]
    if values.size:  # the rates set the scale; a wide band may run off it
        lo, hi = float(values.min()), float(values.max())
        pad = 0.08 * (hi - lo or abs(hi) or 1.0)
        axes[0].set_ylim(lo - pad, hi + 2.5 * pad)
    axes[0].set_ylabel("rate (amount / exposure)")
    axes[0].legend(handles=handles, loc="upper left", fontsize="x-small")
    fig.suptitle(f"{column}: actual vs predicted" + ("" if len(first) else " (no rows)"))
    return fig


def fitted_by_bin(table: pd.DataFrame, column: str, data: ReportData) -> pd.DataFrame | None:
    """The fitted effect of ``column`` at each bin of its one-way ``table``, on the table's rate
    scale: columns ``fit``, ``lower``, ``upper`` (the 95% band), one row per bin (NaN where a
    bin has no fitted value). From the split's level view (bins that are levels) or spline view
    (the curve at each bin's middle); None when the model has neither for ``column`` or they
    do not match the bins. The effect is rescaled so that its exposure-weighted mean is the
    table's predicted rate (log link: a factor; other links: a shift)."""
    view = None
    if column in data.levels:
        levels = data.levels[column]
        by_level = levels.assign(level=levels["level"].astype(str)).set_index("level")
        bins = table["bin"].astype(str)
        if not bins.isin(by_level.index).any():
            return None
        view = by_level.reindex(bins)[["fit", "lower", "upper"]].reset_index(drop=True)
        base = view["fit"].notna() & view["lower"].isna()  # the base level: no interval
        view.loc[base, "lower"] = view.loc[base, "fit"]
        view.loc[base, "upper"] = view.loc[base, "fit"]
    elif column in data.splines:
        spline = data.splines[column]
        curve = spline[spline["part"] == "curve"].sort_values("x")
        middles = np.array([_bin_middle(b) for b in table["bin"].astype(str)])
        if curve.empty or np.isnan(middles).all():
            return None
        cx = curve["x"].to_numpy(dtype=float)
        inside = (middles >= cx.min()) & (middles <= cx.max())

        def at(part: str) -> np.ndarray:
            values = np.interp(middles, cx, curve[part].to_numpy(dtype=float))
            return np.where(inside, values, np.nan)

        view = pd.DataFrame({"fit": at("fit"), "lower": at("lower"), "upper": at("upper")})
    if view is None:
        return None
    fit = view["fit"].to_numpy(dtype=float)
    exposure = table["exposure"].to_numpy(dtype=float)
    known = np.isfinite(fit) & (exposure > 0)
    total = float(exposure[known].sum())
    if not known.any() or total <= 0:
        return None
    rate = float(table["predicted"].to_numpy(dtype=float)[known].sum()) / total
    mean = float((fit[known] * exposure[known]).sum()) / total
    if data.link == "log" or data.link is None:
        if not (mean > 0 and math.isfinite(mean)):
            return None
        out = view.astype(float) * (rate / mean)
    else:
        out = view.astype(float) + (rate - mean)
    out.attrs["kind"] = "levels" if column in data.levels else "spline"
    return out


def _bin_middle(label: str) -> float:
    """The middle of a numeric one-way bin label (``"[lo, hi)"`` or one value); NaN else."""
    text = label.strip("[]()")
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return float("nan")
    return sum(values) / len(values) if values and len(values) <= 2 else float("nan")


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


# -- term views ------------------------------------------------------------------------------
def _scale_label(link: str | None) -> str:
    return "relativity" if link == "log" else "effect (linear predictor)"


def _base_line(link: str | None) -> float:
    return 1.0 if link == "log" else 0.0


def plot_spline(table: pd.DataFrame, column: str, link: str | None = "log") -> Figure:
    """Plot a spline's view (:func:`~smglm.glm.report.term_views.term_tables`): the fitted
    curve with its 95% band, the observed relativity per bin (dots) and the exposure per bin
    (grey bars, right axis)."""
    curve = table[table["part"] == "curve"]
    bins = table[table["part"] == "bins"]
    fig = _figure(right=0.95)
    ax = fig.add_subplot()
    bars = ax.twinx()
    exposure = bins["exposure"].to_numpy(dtype=float)
    widths = (bins["x_hi"] - bins["x_lo"]).to_numpy(dtype=float)
    centers = ((bins["x_hi"] + bins["x_lo"]) / 2).to_numpy(dtype=float)
    bars.bar(centers, exposure, width=0.9 * widths, color=BARS, label="exposure")
    top = float(exposure.max()) if len(exposure) else 0.0
    bars.set_ylim(0.0, 3.0 * top if top > 0 and math.isfinite(top) else 1.0)
    bars.set_ylabel("exposure")
    ax.set_zorder(bars.get_zorder() + 1)
    ax.patch.set_visible(False)
    x = curve["x"].to_numpy(dtype=float)
    lower, upper = curve["lower"].to_numpy(dtype=float), curve["upper"].to_numpy(dtype=float)
    if np.isfinite(lower).any():
        ax.fill_between(x, lower, upper, color=PREDICTED, alpha=0.2, label="95% CI")
    fit = curve["fit"].to_numpy(dtype=float)
    ax.plot(x, fit, color=PREDICTED, label="fitted")
    observed = bins["observed"].to_numpy(dtype=float)
    ax.plot(
        bins["x"].to_numpy(dtype=float),
        observed,
        linestyle="none",
        marker="o",
        color=ACTUAL,
        markersize=4,
        label="observed",
    )
    ax.axhline(_base_line(link), color="grey", linewidth=0.8)
    # the y range: the curve, its band where the data are (1% to 99% of the exposure), and
    # the observed points of bins with some exposure; the band may run off beyond them
    share = exposure / exposure.sum() if exposure.sum() > 0 else np.ones_like(exposure)
    cum = np.cumsum(share)
    x_bins = bins["x"].to_numpy(dtype=float)
    if len(x_bins):
        inside = (x >= x_bins[np.searchsorted(cum, 0.01)]) & (
            x <= x_bins[min(len(x_bins) - 1, int(np.searchsorted(cum, 0.99)))]
        )
    else:
        inside = np.ones(len(x), dtype=bool)
    shown = np.concatenate((fit, lower[inside], upper[inside], observed[share >= 0.005]))
    shown = shown[np.isfinite(shown)]
    if shown.size:
        lo, hi = float(shown.min()), float(shown.max())
        pad = 0.05 * (hi - lo or abs(hi) or 1.0)
        ax.set_ylim(lo - pad, hi + pad)
    _finish(ax, f"{column}: fitted curve", column, _scale_label(link))
    _one_way_legend(ax, bars)
    return fig


def plot_levels(table: pd.DataFrame, column: str, link: str | None = "log") -> Figure:
    """Plot a level view: each level's fitted relativity (bars from 1, or from 0 for the
    effect of other links) with its 95% CI, the observed relativity (dots) and the exposure
    (grey bars, right axis)."""
    names = [
        f"{level} (base)" if base else str(level)
        for level, base in zip(table["level"], table["base"].astype(bool), strict=True)
    ]
    frame = table.assign(bin=names)
    fig, ax, bars, x = _one_way_frame(frame)
    base = _base_line(link)
    fit = table["fit"].to_numpy(dtype=float)
    lower = table["lower"].to_numpy(dtype=float)
    upper = table["upper"].to_numpy(dtype=float)
    fixed = bool(table["fixed"].any()) if "fixed" in table else False
    ax.bar(
        x,
        fit - base,
        bottom=base,
        width=0.35,
        color=PREDICTED,
        alpha=0.8,
        label="fixed" if fixed else "fitted",
    )
    has_ci = np.isfinite(lower) & np.isfinite(upper) & ~table["base"].to_numpy(dtype=bool)
    if has_ci.any():
        err = np.vstack((fit - lower, upper - fit))[:, has_ci]
        ax.errorbar(
            x[has_ci], fit[has_ci], yerr=err, fmt="none", ecolor="black", capsize=3, label="95% CI"
        )
    ax.plot(
        x,
        table["observed"].to_numpy(dtype=float),
        linestyle="none",
        marker="o",
        color=ACTUAL,
        label="observed",
    )
    ax.axhline(base, color="grey", linewidth=0.8)
    title = f"{column}: {_scale_label(link)} by level" + (" (fixed)" if fixed else "")
    _finish(ax, title, column, _scale_label(link))
    _one_way_legend(ax, bars)
    return fig


def _heat(
    ax: Axes,
    matrix: np.ndarray,
    rows: list[str],
    cols: list[str],
    title: str,
    center: float,
    log: bool,
) -> None:
    from matplotlib.colors import LogNorm, Normalize

    finite = matrix[np.isfinite(matrix) & ((matrix > 0) if log else True)]
    distance = np.abs(np.log(finite / center) if log else finite - center)
    # the colour scale spans 90% of the cells, at most a factor 4 (or 4 units) either way:
    # a separated cell's huge value saturates instead of washing out the others; small
    # differences look small
    spread = float(np.quantile(distance, 0.9)) if finite.size else 1.0
    spread = min(max(spread, 0.05), math.log(4.0) if log else 4.0) if math.isfinite(spread) else 1.0
    norm = (
        LogNorm(center * math.exp(-spread), center * math.exp(spread))
        if log
        else Normalize(center - spread, center + spread)
    )
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    shown = np.where(np.isfinite(matrix) & ((matrix > 0) if log else True), matrix, np.nan)
    image = ax.imshow(shown, cmap="RdBu_r", norm=norm, aspect="auto")
    over = bool((distance > spread * (1 + 1e-9)).any())
    bar = ax.figure.colorbar(
        image, ax=ax, fraction=0.046, pad=0.04, extend="both" if over else "neither"
    )
    steps = np.linspace(-spread, spread, 5)
    bar.set_ticks(list(center * np.exp(steps) if log else center + steps))
    bar.ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    bar.ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(
        np.arange(len(cols)),
        cols,
        rotation=45 if len(cols) > 4 else 0,
        ha="right" if len(cols) > 4 else "center",
    )
    ax.set_yticks(np.arange(len(rows)), rows)
    ax.set_title(title)
    if len(cols) <= 12 and len(rows) <= 25:  # cells wide enough for their number
        for (i, j), value in np.ndenumerate(shown):
            if math.isfinite(value):
                strong = abs(norm(value) - 0.5) > 0.3  # a dark cell: white text
                ax.text(
                    j,
                    i,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize="small",
                    color="white" if strong else "black",
                )


def plot_interaction(table: pd.DataFrame, name: str, link: str | None = "log") -> Figure:
    """Plot an interaction's view: actual / expected by pair of levels (left; blank where
    there is no expected amount) and the interaction's fitted relativity (right)."""
    rows = list(dict.fromkeys(table["a"].astype(str)))
    cols = list(dict.fromkeys(table["b"].astype(str)))
    ae = table.pivot(index="a", columns="b", values="ae").reindex(index=rows, columns=cols)
    fit = table.pivot(index="a", columns="b", values="fit").reindex(index=rows, columns=cols)
    longest = max((len(c) for c in cols), default=1)
    stacked = len(cols) > 8  # many columns: the two maps one above the other
    panel_w = min(14.0, max(4.0, 0.7 * len(cols) + 1.5))
    panel_h = min(8.0, max(2.5, 0.35 * len(rows) + 0.8 + 0.07 * longest))
    left = min(3.0, 0.4 + 0.08 * max((len(r) for r in rows), default=1))
    width = left + panel_w + 1.0 if stacked else left + 2 * panel_w + 2.5
    height = 2 * panel_h + 1.5 if stacked else panel_h + 1.2
    fig = _figure(width, height, left=left, right=0.7, bottom=0.5 + 0.07 * longest, top=0.75)
    axes = fig.subplots(2, 1) if stacked else fig.subplots(1, 2)
    part_a, _, part_b = name.partition(":")
    _heat(axes[0], ae.to_numpy(dtype=float), rows, cols, "actual / expected", 1.0, True)
    log = link == "log"
    _heat(
        axes[1],
        fit.to_numpy(dtype=float),
        rows,
        cols,
        f"interaction {_scale_label(link)}",
        _base_line(link),
        log,
    )
    for ax in axes:
        ax.set_xlabel(part_b)
        ax.set_ylabel(part_a)
    fig.suptitle(f"{name}: actual vs expected")
    fig.subplots_adjust(wspace=0.45, hspace=0.25 + 0.1 * longest / max(panel_h, 1.0))
    return fig


def plot_search(table: pd.DataFrame) -> Figure:
    """Plot a penalty search's path: mean CV deviance against log10(alpha), one line per
    l1_ratio, its ±1 SE band shaded, the chosen alpha marked."""
    fig = _figure()
    ax = fig.add_subplot()
    colors = [ACTUAL, PREDICTED, OTHER, "#7570b3", "#e7298a", "#66a61e"]
    for i, (ratio, group) in enumerate(table.groupby("l1_ratio", sort=True)):
        group = group.sort_values("alpha")
        x = np.log10(group["alpha"].to_numpy(dtype=float))
        y = group["cv_deviance"].to_numpy(dtype=float)
        se = group["cv_deviance_se"].to_numpy(dtype=float)
        color = colors[i % len(colors)]
        ax.fill_between(x, y - se, y + se, color=color, alpha=0.15)
        ax.plot(x, y, marker=".", color=color, label=f"l1_ratio {ratio:g}")
        chosen = group["chosen"].to_numpy(dtype=bool)
        if chosen.any():
            ax.plot(
                x[chosen],
                y[chosen],
                marker="*",
                markersize=14,
                color=color,
                markeredgecolor="black",
                linestyle="none",
                label="chosen",
            )
            ax.axvline(float(x[chosen][0]), color="grey", linestyle="--", linewidth=0.8)
    _finish(ax, "Penalty search: CV deviance", "log10(alpha)", "mean CV deviance")
    ax.legend(loc="best", fontsize="small")
    return fig


def plot_consistency(
    table: pd.DataFrame, column: str, by: str | None = None, link: str | None = "log"
) -> Figure:
    """Plot a consistency view: per level, the fitted relativity (black) and the relativity
    each value of the split column (e.g. each year) observes (one line each)."""
    levels = list(dict.fromkeys(table["level"].astype(str)))
    frame = (
        table.groupby("level", sort=False)["exposure"].sum().reindex(levels).reset_index()
    ).rename(columns={"level": "bin"})
    fig, ax, bars, x = _one_way_frame(frame)
    position = {level: i for i, level in enumerate(levels)}
    fits = table.drop_duplicates("level").set_index("level")["fit"].reindex(levels)
    ax.plot(x, fits.to_numpy(dtype=float), color="black", linewidth=2.5, marker="s", label="fitted")
    for value, group in table.groupby("by", sort=True):
        xs = np.asarray([position[str(v)] for v in group["level"]])
        ax.plot(
            xs, group["observed"].to_numpy(dtype=float), marker="o", linewidth=1.0, label=str(value)
        )
    ax.axhline(_base_line(link), color="grey", linewidth=0.8)
    what = by or "split value"
    _finish(ax, f"{column}: {_scale_label(link)} by {what}", column, _scale_label(link))
    _one_way_legend(ax, bars)
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


def _term_items(kind: str, draw: Callable[..., Figure]) -> Callable[[ReportData], list[FigureItem]]:
    """Items of a term view: one figure per term of ``kind`` that the split has (none when
    the model has no such term)."""

    def items(d: ReportData) -> list[FigureItem]:
        tables: dict[str, pd.DataFrame] = getattr(d, kind)
        stems = d.term_files(kind)
        out = []
        for name, table in tables.items():
            extra = (d.split_by, d.link) if kind == "consistency" else (d.link,)
            shown = _thin_curve(table) if kind == "splines" else table
            out.append(
                FigureItem(stems[name], str(name), shown, partial(draw, table, name, *extra))
            )
        return out

    return items


def _thin_curve(table: pd.DataFrame, points: int = 11) -> pd.DataFrame:
    """A spline view's table for reading as text: the curve at ``points`` grid points (its
    figure draws them all) and the bins."""
    curve = table[table["part"] == "curve"]
    step = max(1, (len(curve) - 1) // max(1, points - 1))
    keep = curve.iloc[::step]
    return pd.concat([keep, table[table["part"] != "curve"]], ignore_index=True)


def _search_items(d: ReportData) -> list[FigureItem]:
    if d.search is None or d.search.empty:
        return []
    return [FigureItem("search", "", d.search, partial(plot_search, d.search))]


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
        "levels",
        "Relativities by level",
        "For each categorical, banded or grouped predictor: orange bars are the fitted "
        "relativity of each level (the base level at 1; for a non-log link, the coefficient, "
        "base at 0) with its 95% confidence interval; blue dots the observed relativity (the "
        "fitted one times the level's actual / expected: where they sit off the bar, the data "
        "disagree with the fit); grey bars exposure. A fixed term shows its fixed values, "
        "without an interval. On the training data of a model with a canonical link (Poisson "
        "with log, ...), an estimated level's actual / expected is 1 by construction: the test "
        "split is the one to read.",
        _term_items("levels", plot_levels),
    ),
    FigureSpec(
        "splines",
        "Spline curves",
        "The fitted curve of each spline (relativity to the value where the basis is 0, the "
        "lower boundary; effect for a non-log link) with its pointwise 95% confidence band "
        "(from the coefficients' covariance, the intercept's uncertainty excluded); blue dots "
        "the observed relativity per bin (the curve's mean relativity in the bin times the "
        "bin's actual / expected); grey bars the exposure per bin. Dots that leave the band "
        "where the bars are tall point to a misfit curve (more df, other knots).",
        _term_items("splines", plot_spline),
    ),
    FigureSpec(
        "interactions",
        "Interactions",
        "For each interaction: left, actual / expected by pair of levels (numeric parts in "
        "quantile bins; red: more claims than the model expects, blue: fewer; blank: no "
        "expected amount); right, the interaction's own fitted relativity in each cell (main "
        "effects excluded; exposure-weighted mean over the cell's rows). A/E near 1 everywhere "
        "means the interaction captures the joint effect (on the training data of a "
        "categorical x categorical interaction with a canonical link it is 1 by construction: "
        "read the test split).",
        _term_items("interactions", plot_interaction),
    ),
    FigureSpec(
        "consistency",
        "Consistency over time",
        "For each level predictor and each value of the time split column: the relativity "
        "that value's rows observe (the fitted relativity times the level's actual / expected "
        "in that year, divided by the year's overall actual / expected); black: the fitted "
        "relativity. Lines that follow the black one are a stable effect; lines that cross "
        "it, an effect that changes over time.",
        _term_items("consistency", plot_consistency),
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
    FigureSpec(
        "search",
        "Penalty search",
        "Mean cross-validated deviance against log10(alpha), one line per l1_ratio, shaded "
        "±1 standard error across the folds; the star marks the chosen alpha (the lowest mean, "
        "or with rule 1se the largest alpha within 1 SE of it), refitted on all training data.",
        _search_items,
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


#: The folder, beside the splits' folders, of the train/test one-way PNGs.
ONE_WAY_FOLDER = "one_way"


def one_way_split_items(
    splits: Mapping[str, ReportData],
) -> list[tuple[str, str, Callable[[], Figure]]]:
    """The train/test one-way figure of each predictor (:func:`plot_one_way_splits`, with the
    fitted relativity where the splits' term views have it): ``(column, file stem, draw)``."""
    from smglm.glm.report.data import _stems

    shown = {n: d for n, d in splits.items() if d.one_ways}
    columns = list(dict.fromkeys(c for d in shown.values() for c in d.one_ways))
    stems = _stems("one_way", dict.fromkeys(columns))

    def draw(column: str) -> Figure:
        tables = {n: d.one_ways[column] for n, d in shown.items() if column in d.one_ways}
        fitted = {n: fitted_by_bin(t, column, shown[n]) for n, t in tables.items()}
        return plot_one_way_splits(tables, column, fitted)

    return [(c, stems[c], partial(draw, c)) for c in columns]


def one_way_split_files(
    splits: Mapping[str, ReportData], outdir: str | Path
) -> list[tuple[Path, Callable[[], Figure]]]:
    """The train/test one-way PNGs of ``splits`` (the report data of each split, by name), in
    ``<outdir>/one_way/<stem>.png`` where ``outdir`` holds the splits' folders; each with the
    function that draws it. A report shows these when they exist, else draws them."""
    folder = Path(outdir) / ONE_WAY_FOLDER
    return [(folder / f"{stem}.png", make) for _, stem, make in one_way_split_items(splits)]


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
