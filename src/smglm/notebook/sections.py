"""The sections of a report (summary, coefficients, one-way, lift, Lorenz, balance, residuals,
convergence) as HTML and text, from a FitResult and the report data of its splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smglm.notebook.display import esc, figure_png, fmt, html_table, img_tag, text_table
from smglm.notebook.tables import (
    coefficients_html,
    coefficients_text,
    job_rows,
    metrics_frame,
    metrics_html,
    metrics_text,
)

if TYPE_CHECKING:
    import pandas as pd

    from smglm.glm.report_data import ReportData
    from smglm.glm.result import FitResult

__all__ = ["Section", "SplitReport", "model_sections"]


@dataclass(frozen=True)
class Section:
    """One part of a report: a key, a title, and its HTML and plain-text forms."""

    key: str
    title: str
    html: str
    text: str


@dataclass
class SplitReport:
    """The report tables of one data split and the folder holding their PNGs (if any)."""

    name: str
    data: ReportData
    folder: Path | None = None

    def png(self, stem: str, draw: Any) -> bytes | Path:
        """The saved ``<stem>.png`` when there is one, else the figure ``draw()`` as PNG."""
        if self.folder is not None and (self.folder / f"{stem}.png").is_file():
            return self.folder / f"{stem}.png"
        return figure_png(draw())


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def model_sections(
    result: FitResult | None,
    splits: dict[str, SplitReport],
    *,
    job_state: dict[str, Any] | None = None,
    backend: str | None = None,
) -> list[Section]:
    """The sections of a model's report: the summary (the job's facts when ``job_state`` is
    given, and the metrics), then, when there is a model, coefficients and the plots."""
    summary_html, summary_text = "", ""
    if job_state is not None:
        rows = job_rows(job_state, backend)
        summary_html += html_table(["job", ""], rows)
        summary_text += text_table(["job", ""], rows)
    if result is not None:
        frame = metrics_frame(result, splits)
        summary_html += metrics_html(frame)
        summary_text += ("\n\n" if summary_text else "") + metrics_text(frame)
    sections = [Section("summary", "Summary", summary_html, summary_text)]
    if result is None:
        return sections
    sections.append(
        Section(
            "coefficients", "Coefficients", coefficients_html(result), coefficients_text(result)
        )
    )
    sections += _one_way_section(result, splits)
    sections += _split_sections(splits)
    sections += _convergence_section(result, splits)
    return sections


def _figure_grid(items: list[tuple[str, bytes | Path]]) -> str:
    cells = "".join(
        f"<figure style='margin:4px'>{img_tag(png, caption)}"
        f"<figcaption style='text-align:center'>{esc(caption)}</figcaption></figure>"
        for caption, png in items
    )
    return f"<div style='display:flex;flex-wrap:wrap'>{cells}</div>"


def _table_text(table: pd.DataFrame) -> str:
    return text_table([str(c) for c in table.columns], list(table.itertuples(index=False)))


def _table_html(table: pd.DataFrame) -> str:
    return html_table([str(c) for c in table.columns], list(table.itertuples(index=False)))


def _one_way_section(result: FitResult, splits: dict[str, SplitReport]) -> list[Section]:
    """Actual vs predicted per predictor, one figure per split (exposure bars included)."""
    from smglm.glm.plots import plot_one_way

    columns = list(result.config.predictors)
    if not splits or not columns:
        return []
    html_parts, text_parts = [], []
    for column in columns:
        items = []
        for name, split in splits.items():
            table = split.data.one_ways.get(column)
            if table is None:
                continue
            stem = split.data.one_way_files()[column]
            draw = lambda t=table, c=column: plot_one_way(t, c)  # noqa: E731
            items.append((f"{column} ({name})", split.png(stem, draw)))
            text_parts.append(f"{column} ({name}):\n" + _table_text(table))
        html_parts.append(f"<h4>{esc(column)}</h4>" + _figure_grid(items))
    return [Section("one_way", "One-way", "".join(html_parts), "\n\n".join(text_parts))]


def _split_sections(splits: dict[str, SplitReport]) -> list[Section]:
    """Lift, Lorenz and Gini, balance, and residuals: one figure or row per split."""
    from smglm.glm import plots

    lift: list[tuple[str, bytes | Path]] = []
    lorenz: list[tuple[str, bytes | Path]] = []
    resid: list[tuple[str, bytes | Path]] = []
    lift_text, resid_text, gini_rows, balance_rows = [], [], [], []
    for name, split in splits.items():
        d = split.data
        if d.lift is not None:
            lift.append((f"lift ({name})", split.png("lift", lambda t=d.lift: plots.plot_lift(t))))
            lift_text.append(f"{name}:\n" + _table_text(d.lift))
        if d.lorenz is not None:
            gini = _nan(d.gini)
            draw = lambda t=d.lorenz, g=gini: plots.plot_lorenz(t, g)  # noqa: E731
            lorenz.append((f"Lorenz ({name}), Gini {fmt(gini, 4)}", split.png("lorenz", draw)))
            gini_rows.append([name, gini])
        if d.balance is not None:
            b = d.balance
            balance_rows.append([name, b["sum_actual"], b["sum_predicted"], b["ratio"]])
        if d.residuals is not None:
            draw_r = lambda t=d.residuals: plots.plot_residuals(t)  # noqa: E731
            resid.append((f"residuals ({name})", split.png("residuals", draw_r)))
            resid_text.append(f"{name}:\n" + _table_text(d.residuals))
    out = []
    if lift:
        out.append(Section("lift", "Lift", _figure_grid(lift), "\n\n".join(lift_text)))
    if lorenz:
        html = _figure_grid(lorenz) + html_table(["split", "Gini"], gini_rows)
        text = text_table(["split", "Gini"], gini_rows)
        out.append(Section("lorenz", "Lorenz and Gini", html, text))
    if balance_rows:
        headers = ["split", "sum actual", "sum predicted", "actual / predicted"]
        html, text = html_table(headers, balance_rows), text_table(headers, balance_rows)
        out.append(Section("balance", "Balance", html, text))
    if resid:
        title = "Deviance residuals vs fitted"
        out.append(Section("residuals", title, _figure_grid(resid), "\n\n".join(resid_text)))
    return out


def _convergence_section(result: FitResult, splits: dict[str, SplitReport]) -> list[Section]:
    """The solver's objective (and convergence measure) per iteration."""
    from smglm.glm.plots import plot_convergence

    conv = result.convergence
    if conv is None or len(conv.columns) < 2:
        return []
    train = splits.get("train")
    draw = lambda: plot_convergence(conv)  # noqa: E731
    png = train.png("convergence", draw) if train else figure_png(draw())
    html = _figure_grid([("objective per iteration", png)]) + _table_html(conv)
    return [Section("convergence", "Convergence", html, _table_text(conv))]
