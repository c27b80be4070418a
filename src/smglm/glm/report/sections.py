"""The sections of a report (summary, coefficients, one section per figure of
:data:`~smglm.glm.report.figures.FIGURES`, balance) as HTML and text, from a FitResult and the
report data of its splits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smglm.glm.report.figures import FIGURES, FigureSpec
from smglm.glm.report.render import (
    ID_TOKEN,
    esc,
    figure_png,
    figure_tag,
    fmt,
    html_table,
    nav_html,
    text_table,
)
from smglm.glm.report.tables import (
    coefficients_html,
    coefficients_text,
    job_rows,
    key_metrics_frame,
    metrics_frame,
    metrics_html,
    metrics_text,
)

if TYPE_CHECKING:
    import pandas as pd

    from smglm.glm.report.data import ReportData
    from smglm.glm.result import FitResult

__all__ = ["SHORT_CAPTIONS", "Section", "SplitReport", "model_sections", "short_caption"]

#: The registry's own one-way figure (a registered replacement is shown per split instead).
ONE_WAY_SPEC = next(spec for spec in FIGURES if spec.key == "one_way")


@dataclass(frozen=True, eq=False)
class Section:
    """One part of a report: a key, a title, and its HTML and plain-text forms.

    ``content`` is the HTML, or a function that makes it (a section of figures draws them
    when its HTML is first asked for, once: :attr:`html` keeps it).
    """

    key: str
    title: str
    content: str | Callable[[], str] = field(repr=False)
    text: str = ""

    @property
    def ready(self) -> bool:
        """Whether the HTML is made (a section of plain HTML, or figures already drawn)."""
        return isinstance(self.content, str) or "html" in self.__dict__

    @cached_property
    def html(self) -> str:
        """The section's HTML (made, and its figures drawn, on first use)."""
        return self.content if isinstance(self.content, str) else self.content()


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
        key = key_metrics_frame(frame)
        summary_html += metrics_html(key, "smglm-table smglm-key-metrics", digits=4) + (
            "<details class='smglm-all-metrics'><summary>All metrics</summary>"
            f"{metrics_html(frame)}</details>"
        )
        summary_text += ("\n\n" if summary_text else "") + metrics_text(key, digits=4)
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


#: The short caption of each figure (the FigureSpec's caption is the long form).
SHORT_CAPTIONS = {
    "one_way": "Train (left) and test (right): actual (blue) and predicted (orange) rate per "
    "level or band; green, the model's fitted relativity of the predictor (rescaled to the "
    "rates) with its 95% interval, where the model has one; grey bars exposure. Lines apart "
    "where the bars are tall point to a missing effect.",
    "levels": "Fitted relativity per level (orange bars, base at 1) with its 95% interval; blue "
    "dots the observed relativity; grey bars exposure. Read the test split: dots off the bars "
    "mean the data disagree with the fit.",
    "splines": "Fitted curve with its 95% band; blue dots the observed relativity per bin; grey "
    "bars exposure. Dots outside the band where bars are tall: a misfit curve.",
    "interactions": "Left: actual / expected by pair of levels (red: more than expected, blue: "
    "fewer). Right: the interaction's own fitted relativity.",
    "consistency": "Observed relativity per level, one line per value of the time column; black "
    "the fitted one. Lines that follow it: a stable effect.",
    "lift": "Rows in bins of equal exposure by predicted rate: a steeper actual line ranks "
    "better; predicted on actual is well calibrated.",
    "lorenz": "Share of actual against share of exposure, lowest predicted first: the further "
    "below the diagonal, the better the ranking.",
    "residuals": "Deviance residuals by band of fitted value: a mean that drifts from 0 shows a "
    "misfit link or variance.",
    "convergence": "The solver's objective per iteration: it should fall and level off.",
    "search": "Cross-validated deviance against log10(alpha), ±1 SE shaded; the star is the "
    "chosen alpha.",
}


def short_caption(spec: FigureSpec) -> str:
    """How to read ``spec``'s figure, in a sentence or two (the spec's own caption cut at its
    second sentence for a registered figure without a short one)."""
    if spec.key in SHORT_CAPTIONS:
        return SHORT_CAPTIONS[spec.key]
    sentences = spec.caption.split(". ")
    return ". ".join(sentences[:2]) + ("" if len(sentences) <= 2 else ".")


def _figure_grid(items: list[tuple[str, Callable[[], bytes | Path]]], caption: str) -> str:
    cells = "".join(figure_tag(png(), what, f"{what}: {caption}") for what, png in items)
    return f"<div class='smglm-grid'>{cells}</div>"


def _table_text(table: pd.DataFrame) -> str:
    return text_table([str(c) for c in table.columns], list(table.itertuples(index=False)))


def _caption_html(spec: FigureSpec) -> str:
    """The figure's long caption, one click away (its short one is under each figure)."""
    return (
        "<details class='smglm-note'><summary>How to read these figures</summary>"
        f"<p>{esc(spec.caption)}</p></details>"
    )


def _figure_section(spec: FigureSpec, splits: dict[str, SplitReport]) -> list[Section]:
    """The section of one registered figure: its figures over the splits, and their tables as
    text. Figures with a label (one per term: the term views) are grouped by label, one
    label shown at a time (pills)."""
    if spec.key == "one_way" and spec is ONE_WAY_SPEC:
        return _one_way_section(spec, splits)
    groups: dict[str, list[tuple[str, Callable[[], bytes | Path]]]] = {}
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
            draw = partial(split.png, item.stem, item.make)
            groups.setdefault(item.label, []).append((what, draw))
            label = f"{item.label} ({name})" if item.label else name
            head = f"{label}:\n" if len(spec.splits) > 1 or item.label else ""
            texts.append(head + _table_text(item.table))
    if not groups:
        return []
    caption = short_caption(spec)
    text = "\n\n".join(texts)
    extra = ""
    if spec.key == "lorenz":
        rows = [[n, _nan(s.data.gini)] for n, s in splits.items() if s.data.lorenz is not None]
        extra = html_table(["split", "Gini"], rows)
        text = text_table(["split", "Gini"], rows)  # the curve's vertices are too many to print

    def content() -> str:
        if list(groups) == [""]:
            body = _figure_grid(groups[""], caption)
        else:
            body = nav_html(
                f"{ID_TOKEN}-{spec.key}",
                [(k, _figure_grid(v, caption)) for k, v in groups.items()],
                "smglm-pill",
            )
        return _caption_html(spec) + body + extra

    return [Section(spec.key, spec.title, content, text)]


def _one_way_section(spec: FigureSpec, splits: dict[str, SplitReport]) -> list[Section]:
    """The one-ways: one figure per predictor with the train and test panels side by side
    (the job's ``one_way/<stem>.png`` beside the splits' folders when it wrote one, else drawn
    from the tables of both splits), one predictor shown at a time (pills); the tables as
    text."""
    from smglm.glm.report.figures import ONE_WAY_FOLDER, one_way_split_items

    shown = {n: s for n, s in splits.items() if n in spec.splits and s.data.one_ways}
    items = one_way_split_items({n: s.data for n, s in shown.items()})
    if not items:
        return []
    texts = [
        f"{column} ({name}):\n" + _table_text(split.data.one_ways[column])
        for column, _, _ in items
        for name, split in shown.items()
        if column in split.data.one_ways
    ]
    caption = short_caption(spec)
    if list(shown) != ["train", "test"]:  # one split (or others): say which
        caption = caption.replace("Train (left) and test (right)", " and ".join(shown).capitalize())
    folders = [s.folder.parent / ONE_WAY_FOLDER for s in shown.values() if s.folder is not None]

    def png(stem: str, draw: Callable[[], Any]) -> bytes | Path:
        saved = [f / f"{stem}.png" for f in folders if (f / f"{stem}.png").is_file()]
        return saved[0] if saved else figure_png(draw())

    def content() -> str:
        panels = [
            (c, figure_tag(png(stem, draw), f"{c}: actual vs predicted", f"{c}: {caption}"))
            for c, stem, draw in items
        ]
        return _caption_html(spec) + nav_html(f"{ID_TOKEN}-one-way", panels, "smglm-pill")

    return [Section(spec.key, spec.title, content, "\n\n".join(texts))]


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
