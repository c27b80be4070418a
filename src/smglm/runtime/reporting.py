"""Scoring a data split with the portable model, its metrics, and its report tables and plots.

``train`` and ``evaluate`` both write, for each data split, into ``output/data/<split>/``: the
report tables of :func:`smglm.glm.report.build_report` (``report.json`` and CSVs: one-way per
predictor, lift, Lorenz, residuals, convergence) and the PNG plots of
:func:`smglm.glm.plots.save_report_plots`. Amounts follow :func:`smglm.glm.fit`'s Gini: actual
``y * w``, predicted ``mu * w`` and exposure ``w * exposure`` over the rows with weight > 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from smglm.config import GLMConfig
    from smglm.glm.data import Prepared
    from smglm.glm.model import PortableModel

__all__ = ["Scored", "json_safe", "score", "split_metrics_of", "write_report"]

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


def write_report(
    config: GLMConfig,
    scored: Scored,
    outdir: Path,
    *,
    convergence: pd.DataFrame | None = None,
) -> list[Path]:
    """Write the report tables and PNG plots of one split into ``outdir``; return the files.

    A failure here is logged with its traceback and does not fail the job: the model is the
    job's result, the report is an extra.
    """
    try:
        return _write_report(config, scored, outdir, convergence)
    except Exception:
        log.exception("%s: could not write the report to %s", scored.name, outdir)
        return []


def _write_report(
    config: GLMConfig, scored: Scored, outdir: Path, convergence: pd.DataFrame | None
) -> list[Path]:
    from smglm.glm.plots import save_report_plots
    from smglm.glm.report import deviance_residuals
    from smglm.glm.report_data import build_report
    from smglm.glm.stats import Family, unit_deviance

    prep, k = scored.prep, scored.keep
    actual, predicted, expo = scored.amounts()
    y, mu, w = prep.y[k], scored.mu[k], prep.weights[k]
    fam = Family(config.family, config.resolved_power, config.resolved_theta)
    residuals = deviance_residuals(y, mu, w, unit_deviance(fam, y, mu))
    data = scored.data.loc[k, list(config.predictors)].reset_index(drop=True)
    report = build_report(
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
    files = list(report.to_dir(outdir))
    plots = save_report_plots(report, outdir)
    files += [Path(p) for p in (plots or [])]
    log.info(
        "%s: report of %d rows written to %s (%d files)", scored.name, len(y), outdir, len(files)
    )
    return files
