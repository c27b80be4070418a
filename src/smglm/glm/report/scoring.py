"""A data split scored by a model: the rows kept, the model's means, and the report's amounts.

The amounts convention of every report table is written here, once (:func:`amounts`): the
actual amount of a row is ``y * w``, the predicted amount ``mu * w`` and its exposure
``w * exposure`` (``w`` alone without an exposure column), over the rows with weight > 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from smglm.config import GLMConfig
    from smglm.glm.data import Prepared
    from smglm.glm.model import PortableModel
    from smglm.glm.report.data import ReportData

__all__ = [
    "Scored",
    "amounts",
    "build_split",
    "score",
    "scored_from_fit",
    "split_metrics_of",
]

log = logging.getLogger(__name__)


def amounts(
    y: np.ndarray, mu: np.ndarray, weights: np.ndarray, exposure: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Actual amounts ``y * w``, predicted ``mu * w`` and exposure ``w * exposure`` of the rows
    with weight > 0: what the Gini, lift and one-way tables take (rates are amount / exposure)."""
    keep = weights > 0
    w = weights[keep]
    expo = w * (exposure[keep] if exposure is not None else 1.0)
    return y[keep] * w, mu[keep] * w, expo


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
        """Actual and predicted amounts and exposure of the kept rows (see :func:`amounts`)."""
        return amounts(self.prep.y, self.mu, self.prep.weights, self.prep.exposure)


def score(config: GLMConfig, model: PortableModel, df: pd.DataFrame, name: str) -> Scored:
    """Check ``df`` against ``config`` and predict each row's mean with ``model`` (offset included).

    Levels not seen in training score as the reference level; their counts are logged.
    """
    from smglm.glm.data import prepare
    from smglm.glm.links import linkinv

    data = df.reset_index(drop=True)
    prep = prepare(config, data, terms=model.main_terms, what=f"{name} data")
    frame = prep.X.copy()
    if config.exposure and prep.exposure is not None:
        frame[config.exposure] = prep.exposure
    elif config.offset and prep.data_offset is not None:
        frame[config.offset] = prep.data_offset  # the model adds its fixed terms itself
    eta, unseen = model.linear_predictor(frame, use_offset=True)
    for column, count in unseen.items():
        log.warning(
            "%s: %d row(s) of %r have levels not seen in training; scored as the reference level",
            name,
            count,
            column,
        )
    return Scored(name=name, data=data.loc[prep.X.index], prep=prep, mu=linkinv(model.link, eta))


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


def split_metrics_of(
    config: GLMConfig, scored: Scored, n_params: int, *, null_intercept: float | None = None
) -> dict[str, Any]:
    """The metrics.json entry of a scored split (R conventions, see ``split_metrics``).

    The null model is the intercept-only model refitted on this data (R's ``null.deviance``),
    unless ``null_intercept`` fixes its intercept.
    """
    from smglm.glm.families import family_of
    from smglm.glm.links import linkinv
    from smglm.glm.report.ranking import gini
    from smglm.glm.stats import null_mean, split_metrics

    prep = scored.prep
    fam = family_of(config)
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


def build_split(
    config: GLMConfig,
    scored: Scored,
    convergence: pd.DataFrame | None = None,
    *,
    result: Any = None,
) -> ReportData:
    """Every report table of one scored split: one-ways of the predictors, lift, Lorenz and
    Gini, balance, deviance residuals by fitted value, and ``convergence`` (the solver's trace).

    With ``result`` (the :class:`~smglm.glm.FitResult`), also the term views' tables
    (:func:`~smglm.glm.report.term_views.term_tables`): splines, level relativities,
    interactions, consistency over a time split, and the penalty search's path (train)."""
    from smglm.glm.families import family_of
    from smglm.glm.report.data import build_report
    from smglm.glm.report.residuals import deviance_residuals

    prep, k = scored.prep, scored.keep
    actual, predicted, expo = scored.amounts()
    y, mu, w = prep.y[k], scored.mu[k], prep.weights[k]
    residuals = deviance_residuals(y, mu, w, family_of(config).unit_deviance(y, mu))
    data = scored.data[list(config.predictors)]
    data = (data if k.all() else data.loc[k]).reset_index(drop=True)
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
    if result is not None:
        from smglm.glm.report.term_views import term_tables

        views = term_tables(config, scored, result)
        report.splines = views["splines"]
        report.levels = views["levels"]
        report.interactions = views["interactions"]
        report.consistency = views["consistency"]
        report.search = views["search"]
        report.link = views["link"]
        report.split_by = views.get("by")
    return report
