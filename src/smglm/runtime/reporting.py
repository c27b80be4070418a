"""Scoring a data split with the portable model, its metrics, and its report tables and plots.

``train`` and ``evaluate`` both write, for each data split, into ``output/data/<split>/``: the
report tables of :func:`smglm.glm.report.build_report` (``report.json`` and CSVs: one-way per
predictor, lift, Lorenz, residuals, convergence) and the PNG plots of
:func:`smglm.glm.plots.save_report_plots`. Amounts follow :func:`smglm.glm.fit`'s Gini: actual
``y * w``, predicted ``mu * w`` and exposure ``w * exposure`` over the rows with weight > 0.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from smglm.config import GLMConfig
    from smglm.glm.data import Prepared
    from smglm.glm.model import PortableModel

__all__ = [
    "Scored",
    "json_safe",
    "plot_workers",
    "score",
    "scored_from_fit",
    "split_metrics_of",
    "write_report",
    "write_reports",
]

log = logging.getLogger(__name__)


@dataclass
class Scored:
    """One data split, checked against the config and scored by the model."""

    name: str
    data: pd.DataFrame
    prep: Prepared
    mu: np.ndarray

    @property
    def keep(self) -> np.ndarray:
        """Rows that are observations (weight > 0)."""
        return np.asarray(self.prep.weights > 0)

    def amounts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Actual and predicted amounts and exposure of the kept rows (as the Gini takes them)."""
        k = self.keep
        w = self.prep.weights[k]
        expo = w * (self.prep.exposure[k] if self.prep.exposure is not None else 1.0)
        return self.prep.y[k] * w, self.mu[k] * w, expo


def score(config: GLMConfig, model: PortableModel, df: pd.DataFrame, name: str) -> Scored:
    """Check ``df`` against ``config`` and predict each row's mean with ``model`` (offset included).

    Levels not seen in training score as the reference level; their counts are logged.
    """
    from smglm.glm import prepare
    from smglm.glm.links import linkinv

    data = df.reset_index(drop=True)
    prep = prepare(config, data, what=f"{name} data")
    frame = prep.X.copy()
    if config.exposure and prep.exposure is not None:
        frame[config.exposure] = prep.exposure
    elif config.offset and prep.offset is not None:
        frame[config.offset] = prep.offset
    eta, unseen = model.linear_predictor(frame, use_offset=True)
    for column, count in unseen.items():
        log.warning(
            "%s: %d row(s) of %r have levels not seen in training; scored as the reference level",
            name,
            count,
            column,
        )
    return Scored(name=name, data=data.loc[prep.X.index], prep=prep, mu=linkinv(model.link, eta))


def split_metrics_of(
    config: GLMConfig, scored: Scored, n_params: int, *, null_intercept: float | None = None
) -> dict[str, Any]:
    """The metrics.json entry of a scored split (R conventions, see ``split_metrics``).

    The null model is the intercept-only model refitted on this data (R's ``null.deviance``),
    unless ``null_intercept`` fixes its intercept.
    """
    from smglm.glm.links import linkinv
    from smglm.glm.report import gini
    from smglm.glm.stats import Family, null_mean, split_metrics

    prep = scored.prep
    fam = Family(config.family, config.resolved_power, config.resolved_theta)
    link = config.resolved_link
    if null_intercept is None:
        mu0, _ = null_mean(
            fam, link, prep.y, prep.weights, prep.offset, intercept=config.fit_intercept
        )
    else:
        off = np.zeros_like(prep.y) if prep.offset is None else prep.offset
        mu0 = linkinv(link, null_intercept + off)
    actual, predicted, expo = scored.amounts()
    g = float(gini(actual, predicted, expo))
    metrics = split_metrics(fam, prep.y, scored.mu, prep.weights, mu0, n_params, g)
    return metrics.to_dict()


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None and numpy scalars as Python numbers (for JSON)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def scored_from_fit(result: Any, name: str) -> Scored | None:
    """The split ``name`` of a ``fit(..., keep_fitted=True)`` result as a :class:`Scored`,
    without checking and scoring the data again; None when the result did not keep it."""
    kept = (result.fitted or {}).get(name)
    if kept is None:
        return None
    data, prep, mu = kept
    rows = prep.X.index
    if not rows.equals(data.index):
        data = data.loc[rows]
    return Scored(name=name, data=data, prep=prep, mu=np.asarray(mu, dtype=np.float64))


def plot_workers() -> int:
    """Processes to draw a job's report plots with: the cores this process may use, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def write_report(
    config: GLMConfig,
    scored: Scored,
    outdir: Path,
    *,
    convergence: pd.DataFrame | None = None,
    workers: int = 1,
) -> list[Path]:
    """Write the report tables and PNG plots of one split into ``outdir``; return the files.

    A failure here is logged with its traceback and does not fail the job: the model is the
    job's result, the report is an extra. ``workers``: as in :func:`write_reports`.
    """
    return write_reports(config, [(scored, outdir, convergence)], workers=workers)[scored.name]


def write_reports(
    config: GLMConfig,
    splits: Sequence[tuple[Scored, Path, pd.DataFrame | None]],
    *,
    workers: int = 1,
) -> dict[str, list[Path]]:
    """Write the report of each ``(scored, outdir, convergence)`` split; return the files of
    each split, by name.

    The tables of every split are built and written first; then all the splits' plots are
    drawn in one pass, by ``workers`` processes (forked: for the training runtime, not a
    notebook kernel; see :func:`smglm.glm.plots.render_plots`). A split whose report fails is
    logged with its traceback and gets no files; it does not fail the job.
    """
    from smglm.glm.plots import render_plots, report_plot_jobs

    files: dict[str, list[Path]] = {}
    jobs = []
    for scored, outdir, convergence in splits:
        try:
            report = _build_report(config, scored, convergence)
            files[scored.name] = list(report.to_dir(outdir))
            split_jobs = report_plot_jobs(report, outdir)
        except Exception:
            log.exception("%s: could not write the report to %s", scored.name, outdir)
            files[scored.name] = []
            continue
        jobs += [(scored.name, path, make) for path, make in split_jobs]
    try:
        render_plots([(path, make) for _, path, make in jobs], workers=workers)
        for name, path, _ in jobs:
            files[name].append(path)
    except Exception:
        log.exception("could not draw the report plots")
    for scored, outdir, _ in splits:
        if files[scored.name]:
            log.info(
                "%s: report of %d rows written to %s (%d files)",
                scored.name,
                int(scored.keep.sum()),
                outdir,
                len(files[scored.name]),
            )
    return files


def _build_report(config: GLMConfig, scored: Scored, convergence: pd.DataFrame | None) -> Any:
    from smglm.glm.report import deviance_residuals
    from smglm.glm.report_data import build_report
    from smglm.glm.stats import Family, unit_deviance

    prep, k = scored.prep, scored.keep
    actual, predicted, expo = scored.amounts()
    y, mu, w = prep.y[k], scored.mu[k], prep.weights[k]
    fam = Family(config.family, config.resolved_power, config.resolved_theta)
    residuals = deviance_residuals(y, mu, w, unit_deviance(fam, y, mu))
    data = scored.data[list(config.predictors)]
    data = (data if k.all() else data.loc[k]).reset_index(drop=True)
    return build_report(
        data,
        predictors=list(config.predictors),
        actual=actual,
        predicted=predicted,
        exposure=expo,
        residuals=residuals,
        fitted=mu,
        convergence=convergence,
        categorical=[c for c in prep.categorical if c in config.predictors],
    )
