"""The report of a GLM: tables, figures and their rendering, in one package.

Two entry points build a :class:`Report`:

- :func:`report` — in process, from a :class:`~smglm.glm.FitResult` and data
  (``FitResult.report(data=...)`` calls it);
- :func:`load` — from the folder a training job wrote (``Job.report()`` calls it).

The tables are plain functions on arrays (:func:`one_way`, :func:`lift`, :func:`lorenz`,
:func:`gini`, :func:`double_lift`, :func:`balance`, :func:`deviance_residuals`,
:func:`residual_bins`); :class:`ReportData` holds one split's tables; every figure is declared
once in :data:`FIGURES` (its table, drawing function, file stem, title and splits), which the
runtime's PNG writer, the report's sections and ``figures()``, the CLI and ``%sm_compare`` read.

Modules: ``ranking`` (Gini, Lorenz, lift, double lift), ``residuals``, ``one_way``,
``scoring`` (a split scored by a model; the amounts convention), ``data`` (ReportData),
``figures`` (drawing and the registry), ``render``/``tables``/``sections`` (HTML and text),
``document`` (the Report). Importing this package does not import matplotlib.
"""

from __future__ import annotations

from smglm.glm.report.data import REPORT_FORMAT, ReportData, build_report
from smglm.glm.report.document import Report, load, report
from smglm.glm.report.figures import FIGURES, FigureItem, FigureSpec, register_figure
from smglm.glm.report.one_way import MISSING_LABEL, one_way
from smglm.glm.report.ranking import double_lift, gini, lift, lorenz
from smglm.glm.report.residuals import balance, deviance_residuals, residual_bins
from smglm.glm.report.scoring import Scored, amounts, build_split, score
from smglm.glm.report.sections import Section, SplitReport

__all__ = [
    "FIGURES",
    "MISSING_LABEL",
    "REPORT_FORMAT",
    "FigureItem",
    "FigureSpec",
    "Report",
    "ReportData",
    "Scored",
    "Section",
    "SplitReport",
    "amounts",
    "balance",
    "build_report",
    "build_split",
    "deviance_residuals",
    "double_lift",
    "gini",
    "lift",
    "load",
    "lorenz",
    "one_way",
    "register_figure",
    "report",
    "residual_bins",
    "score",
]
