"""The sections of a report (summary, coefficients, one section per figure of
:data:`~smglm.glm.report.figures.FIGURES`, balance) as HTML and text, from a FitResult and the
report data of its splits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smglm.glm.report.figures import FIGURES, FigureSpec
from smglm.glm.report.render import esc, figure_png, fmt, html_table, img_tag, text_table
from smglm.glm.report.tables import (
    coefficients_html,
    coefficients_text,
    job_rows,
    metrics_frame,
    metrics_html,
    metrics_text,
)

if TYPE_CHECKING:
    import pandas as pd

    from smglm.glm.report.data import ReportData
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

    def png(self, stem: str, draw: Callable[[], Any]) -> bytes | Path:
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
    job_state: Mapping[str, Any] | None = None,
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
    figure_splits = with_model_tables(splits, result)
    for spec in FIGURES:
        sections += _figure_section(spec, figure_splits)
        if spec.key == "lorenz":
            sections += _balance_section(splits)
    return sections


def model_tables(result: FitResult) -> dict[str, Any]:
    """The tables of the model rather than of a data split, shown with the train split: the
    solver's trace (``convergence``) and the penalty search's path (``search``)."""
    from smglm.glm.report.term_views import search_table

    tables: dict[str, Any] = {"convergence": result.convergence}
    search = getattr(result, "search", None)
    if search is not None:
        try:
            tables["search"] = search_table(search)
        except ValueError:  # a search table from another version: shown as a table only
            tables["search"] = None
    return {k: v for k, v in tables.items() if v is not None}


def with_model_tables(splits: dict[str, SplitReport], result: FitResult) -> dict[str, SplitReport]:
    """``splits`` with the model's tables (:func:`model_tables`) added to the train split
    where it lacks them (a train split made of them alone when there is none)."""
    from smglm.glm.report.data import ReportData

    tables = model_tables(result)
    out = dict(splits)
    if "train" not in out:
        if tables:
            out["train"] = SplitReport("train", ReportData(**tables))
        return out
    split = out["train"]
    missing = {k: v for k, v in tables.items() if getattr(split.data, k) is None}
    if missing:
        out["train"] = SplitReport("train", replace(split.data, **missing), split.folder)
    return out


def _figure_grid(items: list[tuple[str, bytes | Path]]) -> str:
    cells = "".join(
        f"<figure style='margin:4px'>{img_tag(png, caption)}"
        f"<figcaption style='text-align:center'>{esc(caption)}</figcaption></figure>"
        for caption, png in items
    )
    return f"<div style='display:flex;flex-wrap:wrap'>{cells}</div>"


def _table_text(table: pd.DataFrame) -> str:
    return text_table([str(c) for c in table.columns], list(table.itertuples(index=False)))


def _caption_html(spec: FigureSpec) -> str:
    return f"<p style='font-size:smaller;color:#555'>{esc(spec.caption)}</p>"


def _figure_section(spec: FigureSpec, splits: dict[str, SplitReport]) -> list[Section]:
    """The section of one registered figure: its figures over the splits, and their tables as
    text. Figures with a label (one per predictor: the one-ways) are grouped by label."""
    groups: dict[str, list[tuple[str, bytes | Path]]] = {}
    texts: list[str] = []
    for name, split in splits.items():
        if name not in spec.splits:
            continue
        for item in spec.items(split.data):
            what = item.label or spec.key
            if spec.key == "lorenz":
                what = f"Lorenz ({name}), Gini {fmt(_nan(split.data.gini), 4)}"
            else:
                what = f"{what} ({name})"
            groups.setdefault(item.label, []).append((what, split.png(item.stem, item.make)))
            label = f"{item.label} ({name})" if item.label else name
            head = f"{label}:\n" if len(spec.splits) > 1 or item.label else ""
            texts.append(head + _table_text(item.table))
    if not groups:
        return []
    if list(groups) == [""]:
        html = _figure_grid(groups[""])
    else:
        html = "".join(f"<h4>{esc(k)}</h4>" + _figure_grid(v) for k, v in groups.items())
    text = "\n\n".join(texts)
    if spec.key == "lorenz":
        rows = [[n, _nan(s.data.gini)] for n, s in splits.items() if s.data.lorenz is not None]
        html += html_table(["split", "Gini"], rows)
        text = text_table(["split", "Gini"], rows)  # the curve's vertices are too many to print
    return [Section(spec.key, spec.title, _caption_html(spec) + html, text)]


def _balance_section(splits: dict[str, SplitReport]) -> list[Section]:
    """Actual against predicted totals per split (the A/E ratio)."""
    rows = []
    for name, split in splits.items():
        b = split.data.balance
        if b is not None:
            rows.append([name, b["sum_actual"], b["sum_predicted"], b["ratio"]])
    if not rows:
        return []
    headers = ["split", "sum actual", "sum predicted", "actual / predicted"]
    return [Section("balance", "Balance", html_table(headers, rows), text_table(headers, rows))]
