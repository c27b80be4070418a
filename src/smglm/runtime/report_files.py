"""The report files of a training job: each split's tables and PNGs, drawn by forked workers.

``train`` and ``evaluate`` write, for each data split, into ``output/data/<split>/``: the report
tables of :func:`smglm.glm.report.build_split` (``report.json`` and CSVs) and, when asked
(``images``: ``JobConfig.report_images``), the PNG of every figure of
:data:`smglm.glm.report.FIGURES`. Without the PNGs the report looks the same: the kernel draws
each figure from the tables when it is shown. Only the writing lives here (it forks, which
suits a batch process, not a notebook kernel); what the tables and figures are is the report
package's.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from smglm.config import GLMConfig
    from smglm.glm.report.scoring import Scored

__all__ = ["plot_workers", "render_plots", "write_report", "write_reports", "write_spark_reports"]

log = logging.getLogger(__name__)

#: A function that draws one report figure.
PlotJob = Callable[[], "Figure"]


def plot_workers() -> int:
    """Processes to draw a job's report plots with: the cores this process may use, at most 4."""
    from smglm.runtime.paths import usable_cores

    return max(1, min(4, usable_cores()))


def write_report(
    config: GLMConfig,
    scored: Scored,
    outdir: Path,
    *,
    convergence: pd.DataFrame | None = None,
    workers: int = 1,
    result: Any = None,
    images: bool = True,
) -> list[Path]:
    """Write the report tables and PNG plots of one split into ``outdir``; return the files.

    A failure here is logged with its traceback and does not fail the job: the model is the
    job's result, the report is an extra. ``workers``, ``result`` and ``images``: as in
    :func:`write_reports`.
    """
    splits = [(scored, outdir, convergence)]
    return write_reports(config, splits, workers=workers, result=result, images=images)[scored.name]


def write_reports(
    config: GLMConfig,
    splits: Sequence[tuple[Scored, Path, pd.DataFrame | None]],
    *,
    workers: int = 1,
    result: Any = None,
    images: bool = True,
) -> dict[str, list[Path]]:
    """Write the report of each ``(scored, outdir, convergence)`` split; return the files of
    each split, by name.

    The tables of every split are built and written first; then, with ``images``, all the
    splits' plots are drawn in one pass, by ``workers`` processes (forked: for the training
    runtime, not a notebook kernel; see :func:`render_plots`). Without ``images`` only the
    tables are written (the kernel draws the figures from them when the report is shown). A
    split whose report fails is logged with its traceback and gets no files; it does not fail
    the job. With ``result`` (the FitResult), the term views' tables and figures too (splines,
    level relativities, interactions, consistency, the penalty search).
    """
    from smglm.glm.report.scoring import build_split

    points = result is not None and bool(result.metrics.get("fit", {}).get("model_points"))
    what = "model points (rating cells; lift and residuals at cell granularity)"
    return _write_documents(
        [
            (
                scored.name,
                outdir,
                functools.partial(build_split, config, scored, convergence, result=result),
                f"{int(scored.keep.sum())} {what if points else 'rows'}",
            )
            for scored, outdir, convergence in splits
        ],
        workers,
        images,
    )


def write_spark_reports(
    config: GLMConfig,
    splits: Sequence[tuple[str, Path, Path, pd.DataFrame | None]],
    *,
    workers: int = 1,
    result: Any = None,
    images: bool = True,
) -> dict[str, list[Path]]:
    """Write the report of each ``(name, tables, outdir, convergence)`` split whose tables
    Spark computed (the ``spark`` engine: ``tables`` is a folder its driver wrote with
    ``spark_report.write_split``); return the files of each split, by name.

    Each ``outdir`` gets what :func:`write_reports` writes for a row-level fit: the report
    tables (with the term views built from Spark's sums and ``result``, the FitResult, and
    ``convergence`` for train) and, with ``images``, the PNG of every registered figure.
    ``tables`` and ``outdir`` may be the same folder. A split that fails is logged and gets no
    files.
    """
    from smglm.glm.report.spark_tables import read_spark_split

    return _write_documents(
        [
            (
                name,
                outdir,
                functools.partial(
                    read_spark_split, tables, config=config, result=result,
                    convergence=convergence, name=name,
                ),
                "Spark's tables",
            )
            for name, tables, outdir, convergence in splits
        ],
        workers,
        images,
    )  # fmt: skip


def _write_documents(
    splits: Sequence[tuple[str, Path, Callable[[], Any], str]], workers: int, images: bool = True
) -> dict[str, list[Path]]:
    """For each ``(name, outdir, build, what)``: build the split's report (``ReportData``),
    write its tables to ``outdir``; then, with ``images``, draw every split's figures in one
    pass. A split that fails is logged with its traceback and gets no files; it does not fail
    the job."""
    from smglm.glm.report.figures import figure_files, one_way_split_files

    files: dict[str, list[Path]] = {}
    jobs = []
    built: dict[str, Any] = {}
    for name, outdir, build, _ in splits:
        try:
            report = build()
            files[name] = list(report.to_dir(outdir))
            split_jobs = figure_files(report, outdir, name) if images else []
        except Exception:
            log.exception("%s: could not write the report to %s", name, outdir)
            files[name] = []
            continue
        built[name] = report
        jobs += [(name, path, make) for path, make in split_jobs]
    parents = {Path(outdir).parent for name, outdir, _, _ in splits if name in built}
    if images and built and len(parents) == 1:
        # the train/test one-ways, side by side, beside the splits' folders (the report shows
        # these; it draws them from the tables when they are absent)
        try:
            first = next(iter(built))
            jobs += [(first, path, make) for path, make in one_way_split_files(built, *parents)]
        except Exception:
            log.exception("could not list the train/test one-way plots")
    if jobs:
        try:
            render_plots([(path, make) for _, path, make in jobs], workers=workers)
            for name, path, _ in jobs:
                files[name].append(path)
        except Exception:
            log.exception("could not draw the report plots")
    for name, outdir, _, what in splits:
        if files[name]:
            log.info(
                "%s: report of %s written to %s (%d files%s)",
                name,
                what,
                outdir,
                len(files[name]),
                "" if images else "; tables only, report_images is off",
            )
    return files


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
    from smglm.glm.report.figures import save_figures

    for folder in {path.parent for path, _ in jobs}:
        folder.mkdir(parents=True, exist_ok=True)
    n = max(1, min(int(workers), len(jobs)))
    if n == 1 or not hasattr(os, "fork"):
        return save_figures(jobs, dpi=dpi)
    children = []
    for k in range(1, n):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which leaves with os._exit
            code = 1
            try:
                for path, make in jobs[k::n]:
                    save_figures([(path, make)], dpi=dpi)
                code = 0
            finally:
                os._exit(code)
        children.append((pid, jobs[k::n]))
    redraw = []
    try:
        for path, make in jobs[0::n]:
            save_figures([(path, make)], dpi=dpi)
        while children:
            pid, share = children[0]
            _, status = os.waitpid(pid, 0)
            children.pop(0)
            if os.waitstatus_to_exitcode(status) != 0:
                log.warning("a plot worker ended with status %s: drawing its plots here", status)
                redraw += share
    except BaseException:  # e.g. a stop (SIGTERM) while drawing: no worker outlives this process
        for pid, _ in children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        raise
    for path, make in redraw:
        save_figures([(path, make)], dpi=dpi)
    return [path for path, _ in jobs]
