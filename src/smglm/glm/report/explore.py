"""A look at the data before fitting: :func:`explore` tabulates, for each candidate predictor,
its exposure and the observed rate (frequency, or mean) by level or by quantile bin, so that
bands, groups and splines can be chosen before the first fit.

No model, no glum: only numpy, pandas and (to draw) matplotlib. ``smglm.explore`` and the
``%sm_explore`` magic call :func:`explore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from smglm.errors import ConfigError, DataError, Issue, did_you_mean
from smglm.glm.report._inputs import check_bins
from smglm.glm.report.one_way import MISSING_LABEL, one_way_of_arrays
from smglm.glm.report.render import RichView, esc, figure_png, fmt, html_table, img_tag, text_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Exploration", "explore"]

#: Columns of :meth:`Exploration.summary`.
SUMMARY_COLUMNS = (
    "predictor",
    "type",
    "distinct",
    "missing_share",
    "bins",
    "rare_levels",
    "rate_min",
    "rate_max",
    "spread",
)


class Exploration(RichView):
    """What :func:`explore` found: a summary row per predictor and a one-way table each.

    Attributes
    ----------
    target, exposure, weights
        The columns the rates are made of (exposure and weights may be None).
    rate_name
        ``frequency`` (with an exposure column) or ``mean`` (the observed rate's meaning).
    overall_rate
        Sum of the target amounts over the total exposure, all rows used.
    summary
        One row per predictor: ``predictor``, ``type`` (numeric or categorical), ``distinct``
        (distinct non-missing values), ``missing_share`` (share of rows missing),
        ``bins`` (rows of its table), ``rare_levels`` (levels under ``rare`` of the exposure;
        categoricals only), ``rate_min``/``rate_max`` (of its bins) and ``spread``: the
        exposure-weighted standard deviation of the bins' observed rates around the overall
        rate, divided by the overall rate (0: flat; larger: the predictor separates more).
    notes
        What was left out or merged, and why.
    """

    def __init__(
        self,
        *,
        target: str,
        exposure: str | None,
        weights: str | None,
        overall_rate: float,
        summary: pd.DataFrame,
        tables: dict[str, pd.DataFrame],
        notes: list[str],
        rare: float,
    ) -> None:
        self.target = target
        self.exposure = exposure
        self.weights = weights
        self.rate_name = "frequency" if exposure else "mean"
        self.overall_rate = overall_rate
        self.summary = summary
        self.tables = tables
        self.notes = notes
        self.rare = rare
        self._png: dict[str, bytes] = {}

    @property
    def predictors(self) -> list[str]:
        """The predictors explored, in the order given."""
        return list(self.tables)

    def __repr__(self) -> str:
        return f"Exploration(target={self.target!r}, predictors={self.predictors!r})"

    def table(self, column: str) -> pd.DataFrame:
        """The one-way table of ``column``: ``bin`` (level, or ``[lo, hi)`` quantile bin, and
        ``(missing)``), ``exposure``, ``actual`` (target amount), ``rate`` (actual / exposure),
        ``relative`` (rate / overall rate), ``exposure_share``, ``n_rows`` and ``rare``
        (a level holding less than ``rare`` of the exposure)."""
        if column not in self.tables:
            hint = did_you_mean(column, self.predictors)
            raise KeyError(f"{column!r} was not explored; explored: {self.predictors}.{hint}")
        return self.tables[column].copy()

    def figure(self, column: str) -> Figure:
        """The one-way of ``column``: exposure bars and the observed rate per bin."""
        return plot_exploration(self.table(column), column, self.overall_rate, self.rate_name)

    def figures(self) -> dict[str, Figure]:
        """Every predictor's :meth:`figure`, by column."""
        return {c: self.figure(c) for c in self.predictors}

    def png(self, column: str) -> bytes:
        """The PNG of :meth:`figure` (drawn once, then kept)."""
        if column not in self._png:
            self._png[column] = figure_png(self.figure(column))
        return self._png[column]

    # -- rendering -------------------------------------------------------------------------
    def _summary_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = list(SUMMARY_COLUMNS)
        return headers, [list(r) for r in self.summary.itertuples(index=False)]

    def _caption(self) -> str:
        what = f"{self.target} / {self.exposure}" if self.exposure else f"mean {self.target}"
        if self.weights:
            what += f", weighted by {self.weights}"
        return (
            f"Grey bars: exposure per level or quantile bin; blue line: observed {self.rate_name} "
            f"({what}); dashed line: overall ({fmt(self.overall_rate, 4)}); hollow markers: rare "
            f"levels (under {self.rare:.0%} of the exposure), candidates for a group. A line "
            "that moves where the bars are tall is a strong one-way effect (before the other "
            "predictors are accounted for)."
        )

    def to_html(self) -> str:
        headers, rows = self._summary_rows()
        parts = [
            "<div class='smglm-explore'>",
            f"<h3>Exploration of {esc(self.target)}: observed {esc(self.rate_name)} "
            f"{esc(fmt(self.overall_rate, 4))} overall</h3>",
            html_table(headers, rows),
            "<p style='font-size:smaller;color:#555'>spread: exposure-weighted standard "
            "deviation of the bins' observed rates, relative to the overall rate.</p>",
        ]
        parts += [f"<p><i>{esc(n)}</i></p>" for n in self.notes]
        parts.append(f"<p style='font-size:smaller;color:#555'>{esc(self._caption())}</p>")
        for i, column in enumerate(self.predictors):
            parts.append(
                f"<details{' open' if i == 0 else ''}><summary><b>{esc(column)}</b></summary>"
                f"{self._detail_html(column)}</details>"
            )
        return "".join(parts) + "</div>"

    def _repr_html_(self) -> str:
        return self.to_html()

    def widget(self) -> Any:
        """The exploration as ipywidgets: the summary, then a dropdown of the predictors that
        shows the chosen one's figure and table (needs ipywidgets)."""
        import ipywidgets as w

        headers, rows = self._summary_rows()
        summary = w.HTML(html_table(headers, rows))
        detail = w.HTML(self._detail_html(self.predictors[0]) if self.predictors else "")
        choose = w.Dropdown(options=self.predictors, description="predictor")

        def show(change: dict[str, Any]) -> None:
            detail.value = self._detail_html(change["new"])

        choose.observe(show, names="value")
        return w.VBox([summary, choose, detail])

    def show(self) -> Any:
        """Display :meth:`widget` (or the HTML without ipywidgets); return what was shown."""
        from IPython.display import display

        try:
            shown = self.widget()
        except ImportError:
            shown = self
        display(shown)
        return shown

    def _detail_html(self, column: str) -> str:
        table = self.tables[column]
        cols = ["bin", "exposure", "actual", "rate", "relative", "n_rows"]
        body = html_table(cols, list(table[cols].itertuples(index=False)))
        return img_tag(self.png(column), column) + body

    def to_text(self) -> str:
        headers, rows = self._summary_rows()
        title = (
            f"Exploration of {self.target}: observed {self.rate_name} "
            f"{fmt(self.overall_rate, 4)} overall"
        )
        return "\n".join([title, text_table(headers, rows), *self.notes])


def plot_exploration(
    table: pd.DataFrame, column: str, overall: float, rate_name: str = "rate"
) -> Figure:
    """Plot an :meth:`Exploration.table`: exposure bars and the observed rate per bin, the
    overall rate dashed, rare levels with hollow markers."""
    from smglm.glm.report.figures import ACTUAL, _finish, _one_way_frame

    fig, ax, bars, x = _one_way_frame(table)
    rate = table["rate"].to_numpy(dtype=float)
    rare = table["rare"].to_numpy(dtype=bool)
    ax.plot(x, rate, color=ACTUAL, marker="o", label=f"observed {rate_name}")
    if rare.any():
        ax.plot(
            x[rare],
            rate[rare],
            linestyle="none",
            marker="o",
            markerfacecolor="white",
            color=ACTUAL,
            label="rare level",
        )
    if np.isfinite(overall):
        ax.axhline(overall, color="grey", linestyle="--", linewidth=1.0, label="overall")
    _finish(ax, f"{column}: observed {rate_name}", column, f"observed {rate_name}")
    handles = ax.get_legend_handles_labels()[0] + bars.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", fontsize="small")
    return fig


def _unknown(field: str, name: str, data: pd.DataFrame) -> Issue:
    known = [str(c) for c in data.columns]
    hint = did_you_mean(name, known) or (f" Columns: {known}." if len(known) <= 30 else "")
    return Issue(field, f"column {name!r} is not in the data.{hint}", name)


def _column_values(data: pd.DataFrame, name: str, field: str) -> np.ndarray:
    if name not in data.columns:
        raise DataError([_unknown(field, name, data)])
    series = data[name]
    if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        msg = f"column {name!r} has dtype {series.dtype}; {field} must be numeric"
        raise DataError([Issue(field, msg, str(series.dtype))])
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def _is_categorical(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(
        series.dtype
    )


def _merge_levels(series: pd.Series, e: np.ndarray, max_levels: int) -> tuple[pd.Series, int]:
    """``series`` with its levels beyond the ``max_levels - 1`` largest by exposure merged
    into one level ``(other N levels)``; also N (0 when nothing is merged)."""
    codes, levels = pd.factorize(series, sort=False)
    if len(levels) <= max_levels:
        return series, 0
    ok = codes >= 0
    totals = np.bincount(codes[ok], weights=e[ok], minlength=len(levels))
    keep = np.argsort(-totals, kind="stable")[: max_levels - 1]
    merged = len(levels) - len(keep)
    other = f"(other {merged} levels)"
    names = np.full(len(levels), other, dtype=object)
    names[keep] = np.asarray(levels.astype(str), dtype=object)[keep]
    out = names[np.where(ok, codes, 0)]
    out[~ok] = None
    return pd.Series(out, index=series.index, name=series.name, dtype=object), merged


def explore(
    data: Any,
    target: str | None = None,
    exposure: str | None = None,
    weights: str | None = None,
    predictors: Sequence[str] | None = None,
    *,
    config: Any = None,
    bins: int = 10,
    rare: float = 0.01,
    max_levels: int = 50,
) -> Exploration:
    """Look at each candidate predictor's one-way before fitting a model.

    For every predictor: its exposure and the observed rate (``target / exposure``, a
    frequency; without ``exposure`` the mean of ``target``) by level, or by quantile bin of
    equal exposure for a numeric column, as in the report's one-ways. Amounts follow the
    report's convention: a row's amount is ``target * weights`` and its exposure
    ``weights * exposure`` (``weights`` alone without an exposure column), so with a claim
    amount as ``target`` and the claim count as ``weights`` the rate is the mean severity.

    Parameters
    ----------
    data : DataFrame or path
        The data (a CSV or Parquet file or folder is read).
    target : str
        The column whose rate is observed.
    exposure, weights : str, optional
        Columns of exposure and of weights.
    predictors : list of str, optional
        The columns to look at (default: every column but target, exposure and weights).
    config : GLMConfig, dict or path, optional
        A model's config: its target, exposure, weights and predictors are used where the
        arguments above are not given (e.g. ``explore(df, config=cfg)`` before fitting it).
    bins : int
        Quantile bins of a numeric column (each value its own bin when it has no more).
    rare : float
        A level holding less than this share of the exposure is marked rare (a candidate
        for a group).
    max_levels : int
        A categorical with more levels shows its ``max_levels - 1`` largest by exposure and
        merges the others into one ``(other N levels)`` row.

    Returns
    -------
    Exploration
        Shows as HTML in a notebook (summary table, one figure and table per predictor);
        ``.summary``, ``.table(column)``, ``.figure(column)``.

    Rows whose target, exposure or weight is missing are left out (the notes count them).
    """
    from smglm.glm.io import read_table

    if config is not None:
        from smglm.config import as_glm_config

        cfg = as_glm_config(config)
        target = target or cfg.target
        exposure = exposure or cfg.exposure
        weights = weights or cfg.weights
        if predictors is None and cfg.predictors:
            predictors = list(cfg.predictors)
    if not target:
        msg = "give the target column (or a config holding it), e.g. target='claim_count'"
        raise ConfigError([Issue("target", msg)])
    check_bins("bins", bins)
    check_bins("max_levels", max_levels, minimum=2)
    if isinstance(rare, bool) or not isinstance(rare, (int, float)) or not 0 <= rare < 1:
        raise ConfigError([Issue("rare", f"must be a share from 0 to 1; got {rare!r}", rare)])
    df = read_table(data, what="data")
    y = _column_values(df, target, "target")
    w = np.ones(len(df)) if weights is None else _column_values(df, weights, "weights")
    ex = np.ones(len(df)) if exposure is None else _column_values(df, exposure, "exposure")
    roles = {target, exposure, weights} - {None}
    if predictors is None:
        predictors = [str(c) for c in df.columns if c not in roles]
    else:
        if isinstance(predictors, str):
            predictors = [predictors]
        predictors = list(dict.fromkeys(predictors))
        unknown = [p for p in predictors if p not in df.columns]
        if unknown:
            raise DataError([_unknown("predictors", p, df) for p in unknown])
        both = [p for p in predictors if p in roles]
        if both:
            msg = f"{both} are the target, exposure or weights; they cannot also be predictors"
            raise ConfigError([Issue("predictors", msg, both)])
    for name, values in (("exposure", ex), ("weights", w)):
        negative = int((values < 0).sum())
        if negative:
            column = exposure if name == "exposure" else weights
            msg = f"column {column!r} has {negative} negative values; {name} must be >= 0"
            raise DataError([Issue(name, msg, column)])
    notes: list[str] = []
    usable = np.isfinite(y) & np.isfinite(w) & np.isfinite(ex)
    if not usable.all():
        dropped = int((~usable).sum())
        notes.append(
            f"{dropped} row(s) with a missing or infinite target, exposure or weight are left out."
        )
        df = df.loc[usable].reset_index(drop=True)
        y, w, ex = y[usable], w[usable], ex[usable]
    if len(df) == 0:
        raise DataError([Issue("data", "has no rows to explore (after leaving out missing ones)")])
    amount, expo = y * w, w * ex
    total = float(expo.sum())
    overall = float(amount.sum()) / total if total > 0 else float("nan")
    tables: dict[str, pd.DataFrame] = {}
    summary = []
    for column in predictors:
        series = df[column]
        categorical = _is_categorical(series)
        distinct = int(series.nunique(dropna=True))
        missing_share = float(series.isna().mean())
        frame, merged = df, 0
        if categorical:
            merged_series, merged = _merge_levels(series, expo, max_levels)
            if merged:
                frame = pd.DataFrame({column: merged_series})
                notes.append(
                    f"{column}: {distinct} levels; the {merged} smallest by exposure are merged "
                    f"into one row (max_levels={max_levels})."
                )
        table = one_way_of_arrays(frame, column, amount, amount, expo, bins, categorical)
        table = _exploration_table(table, overall, total, rare if categorical else None)
        tables[column] = table
        summary.append(
            {
                "predictor": column,
                "type": "categorical" if categorical else "numeric",
                "distinct": distinct,
                "missing_share": missing_share,
                "bins": len(table),
                "rare_levels": int(table["rare"].sum()) if categorical else 0,
                "rate_min": float(np.nanmin(table["rate"]))
                if table["rate"].notna().any()
                else np.nan,
                "rate_max": float(np.nanmax(table["rate"]))
                if table["rate"].notna().any()
                else np.nan,
                "spread": _spread(table, overall),
            }
        )
    return Exploration(
        target=target,
        exposure=exposure,
        weights=weights,
        overall_rate=overall,
        summary=pd.DataFrame(summary, columns=list(SUMMARY_COLUMNS)),
        tables=tables,
        notes=notes,
        rare=float(rare),
    )


def _exploration_table(
    one_way: pd.DataFrame, overall: float, total: float, rare: float | None
) -> pd.DataFrame:
    share = one_way["exposure"] / total if total > 0 else one_way["exposure"] * np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = one_way["actual_rate"] / overall
    is_rare = (share < rare) & (one_way["bin"] != MISSING_LABEL) if rare else share < 0
    return pd.DataFrame(
        {
            "bin": one_way["bin"],
            "exposure": one_way["exposure"],
            "actual": one_way["actual"],
            "rate": one_way["actual_rate"],
            "relative": relative,
            "exposure_share": share,
            "n_rows": one_way["n_rows"],
            "rare": is_rare.to_numpy(dtype=bool),
        }
    )


def _spread(table: pd.DataFrame, overall: float) -> float:
    """Exposure-weighted standard deviation of the bins' rates around ``overall``, / overall."""
    e = table["exposure"].to_numpy(dtype=float)
    r = table["rate"].to_numpy(dtype=float)
    ok = (e > 0) & np.isfinite(r)
    if not ok.any() or not np.isfinite(overall) or overall == 0:
        return float("nan")
    variance = float(np.sum(e[ok] * (r[ok] - overall) ** 2) / np.sum(e[ok]))
    return float(np.sqrt(variance) / abs(overall))
