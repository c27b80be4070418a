"""The report of a training job or a fitted model: :func:`report` and the :class:`Report` view.

A Report is built from the model directory and the report folders a training job writes
(``model/`` and ``output/{train,test}/``, see DESIGN.md), or, for an in-process
:func:`smglm.fit`, from the same folders written by the runtime's own report code. It shows as
HTML with embedded PNGs in a notebook (``_repr_mimebundle_``), as text elsewhere, and as tabs
with :meth:`Report.show` when ipywidgets is installed. Works without IPython or ipywidgets.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smglm.notebook.display import RichView, esc
from smglm.notebook.sections import Section, SplitReport, model_sections
from smglm.notebook.tables import coefficient_frame, metrics_frame

if TYPE_CHECKING:
    import pandas as pd

    from smglm.glm.result import FitResult

__all__ = ["Report", "Section", "SplitReport", "report"]

log = logging.getLogger(__name__)

#: Log lines shown in a job's report.
LOG_TAIL = 40


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
    metrics, coefficients
        The tables shown: metrics (rows) by split (columns), and the coefficient table with
        the base levels of categoricals as rows (relativity 1).
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

    @property
    def metrics(self) -> pd.DataFrame | None:
        return None if self.result is None else metrics_frame(self.result, self.splits)

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

    def to_html(self) -> str:
        parts = [f"<div class='smglm-report'><h3>{esc(self.title)}</h3>"]
        for s in self.sections:
            parts.append(
                f"<details open class='smglm-{s.key}'><summary><b>{esc(s.title)}</b></summary>"
                f"{s.html}</details>"
            )
        return "".join(parts) + "</div>"

    def to_text(self) -> str:
        blocks = [self.title, "=" * len(self.title)]
        for s in self.sections:
            blocks += ["", f"-- {s.title} --", s.text]
        return "\n".join(blocks)

    def widget(self) -> Any:
        """The report as an ipywidgets Tab, one tab per section (needs ipywidgets)."""
        import ipywidgets as w

        tab = w.Tab(children=[w.HTML(s.html) for s in self.sections])
        tab.titles = tuple(s.title for s in self.sections)
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
        """The report's matplotlib Figures, drawn from its tables: ``"<split>/<name>"`` keys."""
        from smglm.glm import plots

        figs: dict[str, Any] = {}
        for name, split in self.splits.items():
            d = split.data
            for column, table in d.one_ways.items():
                figs[f"{name}/one_way_{column}"] = plots.plot_one_way(table, column)
            if d.lift is not None:
                figs[f"{name}/lift"] = plots.plot_lift(d.lift)
            if d.lorenz is not None:
                gini = float("nan") if d.gini is None else d.gini
                figs[f"{name}/lorenz"] = plots.plot_lorenz(d.lorenz, gini)
            if d.residuals is not None:
                figs[f"{name}/residuals"] = plots.plot_residuals(d.residuals)
        conv = self.result.convergence if self.result is not None else None
        if conv is not None and len(conv.columns) > 1:
            figs["convergence"] = plots.plot_convergence(conv)
        return figs

    def save(self, path: str | Path) -> Path:
        """Write ``report.html`` (self-contained) and ``report.txt`` into folder ``path``."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        page = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(self.title)}"
        page += f"</title></head><body>{self.to_html()}</body></html>"
        (out / "report.html").write_text(page, encoding="utf-8")
        (out / "report.txt").write_text(self.to_text() + "\n", encoding="utf-8")
        return out


# -- building ------------------------------------------------------------------------------
def report(obj: Any, **options: Any) -> Report:
    """The :class:`Report` of a training job or a fitted model.

    Parameters
    ----------
    obj
        A :class:`~smglm.launch.Job` (its artifacts are downloaded once and cached) or a
        :class:`~smglm.glm.FitResult`.
    **options
        For a FitResult: ``data`` and ``test_data`` (DataFrames or paths) to tabulate the
        one-ways, lift, Lorenz and residuals on (without them: metrics, coefficients and
        convergence only; with ``data`` and a ``test`` split in the config, the same split as
        :func:`smglm.fit`), and ``out`` (the folder for the tables and PNGs; default a new
        temporary folder). For a Job: ``log_lines`` (default 40).

    Returns
    -------
    Report
    """
    from smglm.glm.result import FitResult

    if isinstance(obj, FitResult):
        return _fit_report(obj, **options)
    if hasattr(obj, "describe") and hasattr(obj, "artifacts"):
        return _job_report(obj, **options)
    raise TypeError(f"report() takes a Job or a FitResult; got {type(obj).__name__}")


def _read_splits(output: Path) -> dict[str, SplitReport]:
    from smglm.glm.report_data import ReportData

    splits = {}
    for name in ("train", "test"):
        folder = output / name
        if (folder / "report.json").is_file():
            splits[name] = SplitReport(name, ReportData.from_dir(folder), folder)
    return splits


def _job_report(job: Any, *, log_lines: int = LOG_TAIL) -> Report:
    from smglm.glm.result import load_model

    state = job.describe()
    status = str(state.get("TrainingJobStatus"))
    result, splits = None, {}
    if status == "Completed":
        folder = Path(job.artifacts())
        result = load_model(folder / "model")
        splits = _read_splits(folder / "output")
    sections = model_sections(result, splits, job_state=state, backend=job.backend.name)
    try:
        lines = job.logs().splitlines()[-log_lines:]
    except Exception as exc:  # a view never fails on the log
        lines = [f"(log not available: {exc})"]
    text = "\n".join(lines)
    sections.append(Section("log", "Log (last lines)", f"<pre>{esc(text)}</pre>", text))
    return Report(f"Training job {job.name}", sections, result=result, splits=splits)


def _fit_report(
    result: FitResult,
    *,
    data: Any = None,
    test_data: Any = None,
    out: str | Path | None = None,
) -> Report:
    splits: dict[str, SplitReport] = {}
    if data is not None:
        folder = Path(out) if out else Path(tempfile.mkdtemp(prefix="smglm-report-"))
        splits = _write_splits(result, data, test_data, folder)
    elif result.path is not None and (Path(result.path).parent / "output").is_dir():
        splits = _read_splits(Path(result.path).parent / "output")
    cfg = result.config
    title = f"GLM {cfg.family}/{cfg.resolved_link}: {cfg.target} ~ " + (
        " + ".join(cfg.predictors) or "1"
    )
    return Report(title, model_sections(result, splits), result=result, splits=splits)


def _write_splits(
    result: FitResult, data: Any, test_data: Any, folder: Path
) -> dict[str, SplitReport]:
    """Score the data with the model and write each split's tables and PNGs, as the runtime."""
    from smglm.glm.fitting import split_train_test
    from smglm.glm.report_data import ReportData
    from smglm.glm.tables import read_table
    from smglm.runtime.reporting import score, write_report

    cfg = result.config
    train = read_table(data, what="data")
    test = read_table(test_data, what="test data") if test_data is not None else None
    if test is None and cfg.test is not None:
        train, test = split_train_test(train, cfg.test.fraction, cfg.test.seed)
    splits = {}
    for name, df in (("train", train), ("test", test)):
        if df is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scored = score(cfg, result.model, df, name)
        conv = result.convergence if name == "train" else None
        if write_report(cfg, scored, folder / name, convergence=conv):
            splits[name] = SplitReport(name, ReportData.from_dir(folder / name), folder / name)
    return splits
