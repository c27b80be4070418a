"""``smglm.fit``: check the data, fit with an engine (glum), and compute R-convention inference
and metrics.

Standard errors are R's ``summary.glm`` ones: the inverse expected information times R's
dispersion (1 for poisson, binomial and negative binomial; Pearson otherwise), with prior
weights. With a penalty or an active bound they are the unpenalized likelihood's at the
estimate, which is indicative only: a penalized or bounded estimate has no such simple
sampling distribution.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smglm.config import GLMConfig, as_glm_config
from smglm.errors import ConfigError, DataError, Issue, did_you_mean
from smglm.glm.data import Prepared, prepare
from smglm.glm.engines import DEFAULT_ENGINE, EngineFit, check_engine, get_engine
from smglm.glm.families import FamilySpec, family_of
from smglm.glm.io import read_table
from smglm.glm.links import linkinv, mu_eta
from smglm.glm.model import CategoricalTerm, NumericTerm, PortableModel, Term
from smglm.glm.result import FitResult
from smglm.glm.stats import null_mean, split_metrics

__all__ = ["feature_names", "fit", "split_train_test"]

log = logging.getLogger(__name__)


def fit(
    config: GLMConfig | dict[str, Any] | str | Path,
    data: pd.DataFrame | str | Path,
    *,
    test_data: pd.DataFrame | str | Path | None = None,
    keep_fitted: bool = False,
) -> FitResult:
    """Fit a GLM in this process and return its coefficients, metrics and portable model.

    Parameters
    ----------
    config
        A :class:`~smglm.GLMConfig`, a dict, or a YAML/JSON file path.
    data
        A DataFrame, or a CSV/Parquet file or folder of files.
    test_data
        Held-out data; when absent and ``config.test`` is set, a random split of ``data``.
    keep_fitted
        Keep, per split, the data, its checked form and the fitted means in
        :attr:`FitResult.fitted` (the training runtime's report reuses them instead of scoring
        the data again). Off by default: they hold a copy of the data's predictors.

    Returns
    -------
    FitResult
    """
    t_start = time.perf_counter()
    cfg = as_glm_config(config).resolved()
    engine = get_engine(DEFAULT_ENGINE)
    issues = check_engine(cfg, engine)
    if issues:
        raise ConfigError(issues)
    df = read_table(data, what="data", columns=cfg.columns)
    test_df = (
        read_table(test_data, what="test data", columns=cfg.columns)
        if test_data is not None
        else None
    )
    if test_df is None and cfg.test is not None:
        df, test_df = split_train_test(df, cfg.test.fraction, cfg.test.seed)
    prep = prepare(cfg, df)
    log.info("fitting %s/%s GLM on %d rows", cfg.family, cfg.resolved_link, len(prep.y))
    names = feature_names(prep)
    lower, upper = _bounds(cfg, prep, names)

    res = engine.fit(cfg, prep, lower_bounds=lower, upper_bounds=upper)
    if res.feature_names != names:  # our term names must be the engine's columns
        raise RuntimeError(f"feature order mismatch: {res.feature_names} vs {names}")
    intercept, coef = res.intercept, res.coef
    model = _portable(cfg, prep, intercept, coef)

    fam = family_of(cfg)
    n_params = coef.size + int(cfg.fit_intercept)
    eta = intercept + res.xb + (0.0 if prep.offset is None else prep.offset)
    mu = linkinv(cfg.resolved_link, eta)
    mu0, b0 = null_mean(
        fam, cfg.resolved_link, prep.y, prep.weights, prep.offset, intercept=cfg.fit_intercept
    )
    train = split_metrics(fam, prep.y, mu, prep.weights, mu0, n_params, _gini(prep, mu))
    se = _standard_errors(
        res, prep, eta, mu, fam, cfg.resolved_link, train.dispersion, cfg.fit_intercept
    )
    coefs = _coefficient_table(cfg, prep, names, intercept, coef, se, fam)

    metrics: dict[str, Any] = {"train": train.to_dict()}
    fitted = {"train": (df, prep, mu)}
    if test_df is not None:
        tprep = prepare(cfg, test_df, what="test data")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mu_t = model.predict(_with_offset(tprep.X, cfg, tprep), use_offset=True)
        off_t = np.zeros_like(tprep.y) if tprep.offset is None else tprep.offset
        mu0_t = linkinv(cfg.resolved_link, (b0 if cfg.fit_intercept else 0.0) + off_t)
        metrics["test"] = split_metrics(
            fam, tprep.y, mu_t, tprep.weights, mu0_t, n_params, _gini(tprep, mu_t)
        ).to_dict()
        fitted["test"] = (test_df, tprep, mu_t)
    metrics["fit"] = {
        "iterations": res.n_iter,
        "converged": res.converged,
        "seconds": res.seconds,
        "total_seconds": time.perf_counter() - t_start,
        "n_dropped": prep.n_dropped,
    }
    return FitResult(
        config=cfg,
        model=model,
        coefficients=coefs,
        metrics=metrics,
        convergence=res.convergence,
        estimator=res.native,
        fitted=fitted if keep_fitted else None,
    )


def split_train_test(
    df: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A random split: ``fraction`` of the rows (at least one, at most n - 1) for testing."""
    n = len(df)
    if n < 2:
        raise DataError([Issue("test.fraction", f"cannot split {n} row(s) into train and test")])
    n_test = min(max(1, round(n * fraction)), n - 1)
    rng = np.random.default_rng(seed)
    is_test = np.zeros(n, dtype=bool)
    is_test[rng.choice(n, size=n_test, replace=False)] = True
    return df.loc[~is_test], df.loc[is_test]


def feature_names(prep: Prepared) -> list[str]:
    """The coefficient names in glum's column order: numeric columns by name, categorical
    levels as ``column[level]`` without the reference (which is the first level)."""
    names: list[str] = []
    for col in prep.X.columns:
        s = prep.X[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            names += [f"{col}[{lv}]" for lv in list(s.cat.categories)[1:]]
        else:
            names.append(str(col))
    return names


def _bounds(
    cfg: GLMConfig, prep: Prepared, names: list[str]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    bounds = cfg.constraints.bounds
    if not bounds:
        return None, None
    lower = np.full(len(names), -np.inf)
    upper = np.full(len(names), np.inf)
    index = {n: i for i, n in enumerate(names)}
    issues = []
    for term, (lo, hi) in bounds.items():
        if term in index:
            targets = [index[term]]
        elif term in prep.categorical:
            targets = [i for n, i in index.items() if n.startswith(f"{term}[")]
        elif term in {f"{c}[{r}]" for c, r in prep.references.items()}:
            issues.append(
                Issue(
                    f"constraints.bounds.{term}",
                    "is the reference level, whose coefficient is fixed at 0; bound the other "
                    "levels instead",
                    term,
                )
            )
            continue
        else:
            issues.append(
                Issue(
                    f"constraints.bounds.{term}",
                    f"{term!r} is not a term of this model; terms are numeric predictors, "
                    f"categorical columns and levels such as {names[:6]}."
                    f"{did_you_mean(term, names + prep.categorical)}",
                    term,
                )
            )
            continue
        for i in targets:
            lower[i] = -np.inf if lo is None else lo
            upper[i] = np.inf if hi is None else hi
    if issues:
        raise DataError(issues)
    return lower, upper


def _with_offset(X: pd.DataFrame, cfg: GLMConfig, prep: Prepared) -> pd.DataFrame:
    out = X.copy()
    if cfg.exposure and prep.exposure is not None:
        out[cfg.exposure] = prep.exposure
    elif cfg.offset and prep.offset is not None:
        out[cfg.offset] = prep.offset
    return out


def _gini(prep: Prepared, mu: np.ndarray) -> float:
    from smglm.glm.report.ranking import gini
    from smglm.glm.report.scoring import amounts

    return float(gini(*amounts(prep.y, mu, prep.weights, prep.exposure)))


def _portable(cfg: GLMConfig, prep: Prepared, intercept: float, coef: np.ndarray) -> PortableModel:
    from smglm._version import __version__

    terms: list[Term] = []
    i = 0
    for col in prep.X.columns:
        s = prep.X[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            levels = [str(lv) for lv in s.cat.categories]
            k = len(levels) - 1
            terms.append(
                CategoricalTerm(str(col), levels, levels[0], [0.0, *coef[i : i + k].tolist()])
            )
            i += k
        else:
            terms.append(NumericTerm(str(col), float(coef[i])))
            i += 1
    return PortableModel(
        family=cfg.family,
        link=cfg.resolved_link,
        intercept=intercept,
        terms=terms,
        target=cfg.target,
        weights=cfg.weights,
        offset=cfg.offset,
        exposure=cfg.exposure,
        tweedie_power=cfg.resolved_power,
        theta=cfg.resolved_theta,
        smglm_version=__version__,
    )


def _coefficient_table(
    cfg: GLMConfig,
    prep: Prepared,
    names: list[str],
    intercept: float,
    coef: np.ndarray,
    se: np.ndarray,
    fam: FamilySpec,
) -> pd.DataFrame:
    from scipy import stats

    estimates = np.concatenate([[intercept], coef]) if cfg.fit_intercept else coef
    terms = (["intercept"] if cfg.fit_intercept else []) + names
    statistic = estimates / se
    n_obs = int(np.count_nonzero(prep.weights > 0))
    df_resid = n_obs - len(estimates)
    if fam.has_dispersion and df_resid > 0:  # t statistics where the dispersion is estimated
        p_value = 2 * stats.t.sf(np.abs(statistic), df_resid)
        q = stats.t.ppf(0.975, df_resid)
    else:
        p_value = 2 * stats.norm.sf(np.abs(statistic))
        q = stats.norm.ppf(0.975)
    table = pd.DataFrame(
        {
            "term": terms,
            "estimate": estimates,
            "std_error": se,
            "statistic": statistic,
            "p_value": p_value,
            "ci_lower": estimates - q * se,
            "ci_upper": estimates + q * se,
        }
    )
    if cfg.resolved_link == "log":
        table["relativity"] = np.exp(estimates)
    return table


def _standard_errors(
    res: EngineFit,
    prep: Prepared,
    eta: np.ndarray,
    mu: np.ndarray,
    fam: FamilySpec,
    link: str,
    phi: float,
    intercept: bool,
) -> np.ndarray:
    """R's standard errors: sqrt(diag(phi * I^-1)), with I = X' W X the expected (Fisher)
    information, W = w * (dmu/deta)^2 / V(mu) and w the prior weights (the engine computes
    X' W X on its design)."""
    n_coef = res.coef.size + int(intercept)
    if not math.isfinite(phi):
        return np.full(n_coef, np.nan)
    W = prep.weights * mu_eta(link, eta) ** 2 / fam.variance(mu)
    info = res.information(W)
    # invert the scaled (correlation-like) matrix: its condition number says whether the
    # design is singular whatever the columns' scales
    d = np.sqrt(np.diag(info))
    scaled = info / np.outer(d, d) if np.all(d > 0) else None
    if scaled is None or not np.all(np.isfinite(scaled)) or np.linalg.cond(scaled) > 1e13:
        warnings.warn(
            "the design is singular: standard errors are not available (NaN)", stacklevel=3
        )
        return np.full(n_coef, np.nan)
    cov = phi * np.linalg.inv(scaled) / np.outer(d, d)
    return np.sqrt(np.clip(np.diag(cov), 0, None))
