"""The :class:`Report` of a model, and the two ways to get one: :func:`report` builds it in
process from a FitResult and data; :func:`load` reads it from what a training job wrote
(``model/`` and ``output/{train,test}/``, see DESIGN.md).

A Report shows as HTML with embedded PNGs in a notebook (``_repr_mimebundle_``): one tab per
section and, in the one-ways, one pill per predictor, in plain HTML and CSS (no kernel needed,
the same in a saved notebook and in :meth:`Report.save`'s file); as text elsewhere; and as
ipywidgets tabs with :meth:`Report.show`. Figures are drawn from the tables where the job
saved no PNG, once (the Report keeps them). Building one needs neither IPython nor ipywidgets.
"""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smglm.glm.report.figures import FIGURES
from smglm.glm.report.render import ID_TOKEN, RichView, esc, nav_html, report_css
from smglm.glm.report.sections import Section, SplitReport, model_sections
from smglm.glm.report.tables import coefficient_frame, key_metrics_frame, metrics_frame

if TYPE_CHECKING:
    import pandas as pd

    from smglm.glm.result import FitResult

__all__ = ["Report", "Section", "SplitReport", "load", "report"]

log = logging.getLogger(__name__)

#: What a section whose figures are not drawn yet shows (``Report.to_html(draw=False)``).
PENDING = "<p class='smglm-pending'><i>Drawing the figures\u2026</i></p>"


class Report(RichView):
    """A model's report: metrics, coefficients, one-ways, lift, Lorenz/Gini, residuals, ...

    Attributes
    ----------
    title
        What the report is of (a job name, or the model's formula).
    sections
        The :class:`Section` list, in display order (``[s.key for s in sections]``).
    result
        The :class:`~smglm.glm.FitResult` (None for a job that did not complete).
    splits
        ``{"train": SplitReport, "test": SplitReport}`` where report data exists.
    metrics, key_metrics, coefficients
        The tables shown: all metrics (rows) by split (columns), the compact table of those
        compared first (deviance explained, Gini, AIC, actual / expected, n_obs), and the
        coefficient table with the base levels of categoricals as rows (relativity 1).
    """

    def __init__(
        self,
        title: str,
        sections: list[Section],
        *,
        result: FitResult | None = None,
        splits: dict[str, SplitReport] | None = None,
    ) -> None:
        self.title = title
        self.sections = sections
        self.result = result
        self.splits = splits or {}
        self._html: str | None = None

    @property
    def metrics(self) -> pd.DataFrame | None:
        return None if self.result is None else metrics_frame(self.result, self.splits)

    @property
    def key_metrics(self) -> pd.DataFrame | None:
        """The metrics compared first (rows: ``deviance explained``, ``Gini``, ``AIC``,
        ``actual / expected``, ``n_obs``) by split (columns), as the summary shows them."""
        frame = self.metrics
        return None if frame is None else key_metrics_frame(frame)

    @property
    def coefficients(self) -> pd.DataFrame | None:
        return None if self.result is None else coefficient_frame(self.result)

    def section(self, key: str) -> Section:
        """The section called ``key`` (``summary``, ``coefficients``, ``one_way``, ...)."""
        for s in self.sections:
            if s.key == key:
                return s
        raise KeyError(f"no section {key!r}; sections are {[s.key for s in self.sections]}")

    def __repr__(self) -> str:
        return f"Report({self.title!r}, sections={[s.key for s in self.sections]!r})"

    def to_html(self, *, draw: bool = True) -> str:
        """The report as one HTML fragment: its own ``<style>``, the title, one tab
        (``label.smglm-tab``, the full title) per section. Each call gives the report's inputs
        new ids, so two reports (or one shown twice) in a page never clash; the figures are
        drawn on the first call only.

        ``draw=False`` draws nothing: a section whose figures are not drawn yet says so (a
        notebook shows that page at once, then the full one: see ``%%sm_train``)."""
        if self._html is None and not draw:
            return self._page([s.html if s.ready else PENDING for s in self.sections]).replace(
                ID_TOKEN, f"smglm-{uuid.uuid4().hex[:12]}"
            )
        if self._html is None:
            self._html = self._page([s.html for s in self.sections])
        return self._html.replace(ID_TOKEN, f"smglm-{uuid.uuid4().hex[:12]}")

    def _page(self, bodies: list[str]) -> str:
        panels = [
            (s.title, f"<div class='smglm-{s.key}'>{body}</div>")
            for s, body in zip(self.sections, bodies, strict=True)
        ]
        most = max([len(panels), *(body.count("class='smglm-radio'") for body in bodies)])
        return (
            f"<div class='smglm-report'>{report_css(most)}<h3>{esc(self.title)}</h3>"
            f"{nav_html(f'{ID_TOKEN}-tabs', panels, 'smglm-tab')}</div>"
        )

    def to_text(self) -> str:
        """The report as plain text: the summary's compact metrics (all of them are in
        :attr:`metrics`), the coefficients and each section's tables."""
        blocks = [self.title, "=" * len(self.title)]
        for s in self.sections:
            blocks += ["", f"-- {s.title} --", s.text]
        return "\n".join(blocks)

    def widget(self) -> Any:
        """The report as an ipywidgets Tab, one tab per section (needs ipywidgets). A tab's
        figures are drawn when it is first selected."""
        import ipywidgets as w

        style = report_css(0)
        pages = [w.HTML() for _ in self.sections]
        tab = w.Tab(children=pages)
        tab.titles = tuple(s.title for s in self.sections)

        def fill(index: int | None) -> None:
            if index is not None and 0 <= index < len(pages) and not pages[index].value:
                html = self.sections[index].html.replace(ID_TOKEN, f"smglm-{uuid.uuid4().hex[:12]}")
                pages[index].value = f"<div class='smglm-report'>{style}{html}</div>"

        fill(0)
        tab.observe(lambda change: fill(change["new"]), names="selected_index")
        return tab

    def show(self) -> Any:
        """Display the report as tabs (ipywidgets), or as HTML without ipywidgets; return it."""
        from IPython.display import display

        try:
            shown = self.widget()
        except ImportError:
            shown = self
        display(shown)
        return shown

    def figures(self) -> dict[str, Any]:
        """The report's matplotlib Figures, drawn from its tables (those of
        :data:`~smglm.glm.report.figures.FIGURES`): ``"<split>/<stem>"`` keys, or ``"<stem>"``
        for a figure of the model rather than of a split (the convergence)."""
        from smglm.glm.report.sections import with_model_tables

        splits = self.splits
        if self.result is not None:
            splits = with_model_tables(splits, self.result)
        figs: dict[str, Any] = {}
        for spec in FIGURES:
            for name, split in splits.items():
                if name not in spec.splits:
                    continue
                for item in spec.items(split.data):
                    key = item.stem if len(spec.splits) == 1 else f"{name}/{item.stem}"
                    figs[key] = item.make()
        return figs

    def save(self, path: str | Path) -> Path:
        """Save the report; return the path written.

        A ``path`` ending in ``.html`` is written as one self-contained page (figures and
        styles inside; opens without a kernel or a network, looks as in the notebook). Any
        other path is a folder: ``report.html`` and ``report.txt`` are written into it.
        """
        out = Path(path)
        page = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{esc(self.title)}</title></head>"
            f"<body style='font-family:sans-serif'>{self.to_html()}</body></html>"
        )
        if out.suffix.lower() in (".html", ".htm"):
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(page, encoding="utf-8")
            return out
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.html").write_text(page, encoding="utf-8")
        (out / "report.txt").write_text(self.to_text() + "\n", encoding="utf-8")
        return out


# -- building ------------------------------------------------------------------------------
def _title(result: FitResult) -> str:
    cfg = result.config
    rhs = " + ".join(cfg.predictors) or "1"
    return f"GLM {cfg.family}/{cfg.resolved_link}: {cfg.target} ~ {rhs}"


def report(
    result: FitResult,
    data: Any = None,
    test_data: Any = None,
    *,
    out: str | Path | None = None,
) -> Report:
    """Build the :class:`Report` of a fitted model in process.

    Parameters
    ----------
    result
        A :class:`~smglm.glm.FitResult` (from :func:`smglm.fit` or :func:`smglm.load_model`).
    data, test_data
        DataFrames or paths to tabulate the one-ways, lift, Lorenz and residuals on. Without
        them: metrics, coefficients and convergence only (or the report tables saved beside a
        loaded model, when there are some). With ``data`` and a ``test`` split in the config,
        the same split as :func:`smglm.fit`.
    out
        A folder to also save each split's tables (CSV, ``report.json``) and PNGs into, as a
        training job lays them out (``out/train``, ``out/test``; the train/test one-ways in
        ``out/one_way``). Default: nothing is written;
        the figures are drawn when shown.

    Returns
    -------
    Report
    """
    from smglm.glm.result import FitResult

    if not isinstance(result, FitResult):
        raise TypeError(f"report() takes a FitResult; got {type(result).__name__}")
    splits: dict[str, SplitReport] = {}
    if data is not None:
        splits = _build_splits(result, data, test_data, None if out is None else Path(out))
    elif result.path is not None and (Path(result.path).parent / "output").is_dir():
        splits = _read_splits(Path(result.path).parent / "output")
    return Report(_title(result), model_sections(result, splits), result=result, splits=splits)


def load(
    folder: str | Path | None,
    *,
    title: str | None = None,
    job_state: Mapping[str, Any] | None = None,
    backend: str | None = None,
    log: str | None = None,
) -> Report:
    """Read the :class:`Report` that a training job wrote.

    Parameters
    ----------
    folder
        The job's artifacts folder, holding ``model/`` (model.tar.gz unpacked) and
        ``output/{train,test}/`` (the report tables and PNGs). ``None`` for a job that did not
        complete: the report then has its summary (and log) only.
    title
        The report's title (default: the model's formula).
    job_state, backend
        The job's DescribeTrainingJob-shaped state and the backend's name, shown in the summary.
    log
        The last lines of the job's log, shown as the last section.
    """
    from smglm.glm.result import load_model

    result, splits = None, {}
    if folder is not None:
        root = Path(folder)
        result = load_model(root / "model")
        splits = _read_splits(root / "output")
    sections = model_sections(result, splits, job_state=job_state, backend=backend)
    if log is not None:
        sections.append(Section("log", "Log (last lines)", f"<pre>{esc(log)}</pre>", log))
    if title is None:
        title = _title(result) if result is not None else "Report"
    return Report(title, sections, result=result, splits=splits)


def _read_splits(output: Path) -> dict[str, SplitReport]:
    from smglm.glm.report.data import ReportData

    splits = {}
    for name in ("train", "test"):
        folder = output / name
        if (folder / "report.json").is_file():
            splits[name] = SplitReport(name, ReportData.from_dir(folder), folder)
    return splits


def _build_splits(
    result: FitResult, data: Any, test_data: Any, out: Path | None
) -> dict[str, SplitReport]:
    """Score the data with the model and build each split's tables in memory (and, with
    ``out``, save them and their PNGs as a training job does)."""
    from smglm.glm.fitting import split_test
    from smglm.glm.io import read_table
    from smglm.glm.report.figures import figure_files, one_way_split_files, save_figures
    from smglm.glm.report.scoring import build_split, score

    cfg = result.config
    train = read_table(data, what="data")
    test = read_table(test_data, what="test data") if test_data is not None else None
    if test is None and cfg.test is not None:
        train, test = split_test(train, cfg.test)
    splits = {}
    for name, df in (("train", train), ("test", test)):
        if df is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scored = score(cfg, result.model, df, name)
        conv = result.convergence if name == "train" else None
        table = build_split(cfg, scored, conv, result=result)
        folder = None
        if out is not None:
            folder = out / name
            table.to_dir(folder)
            save_figures(figure_files(table, folder, name))
        splits[name] = SplitReport(name, table, folder)
    if out is not None:
        save_figures(one_way_split_files({n: s.data for n, s in splits.items()}, out))
    return splits
