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

from smglm.config import GLMConfig, TestSplit, as_glm_config
from smglm.errors import ConfigError, DataError, Issue, did_you_mean
from smglm.glm.data import Prepared, prepare
from smglm.glm.engines import DEFAULT_ENGINE, EngineFit, check_engine, get_engine
from smglm.glm.families import FamilySpec, family_of
from smglm.glm.io import read_table
from smglm.glm.links import linkinv, mu_eta
from smglm.glm.memory import check_fit_memory, memory_error
from smglm.glm.model import ALIASED_NOTE, PortableModel, UnseenLevelWarning
from smglm.glm.result import FitResult
from smglm.glm.stats import SplitMetrics, deviance, null_mean, split_metrics
from smglm.glm.terms import BandsTerm, CategoricalTerm, NumericTerm, SplineTerm, Term

__all__ = [
    "feature_names",
    "fit",
    "holdout_levels",
    "split_by_column",
    "split_test",
    "split_train_test",
]

log = logging.getLogger(__name__)


def fit(
    config: GLMConfig | dict[str, Any] | str | Path,
    data: pd.DataFrame | str | Path,
    *,
    test_data: pd.DataFrame | str | Path | None = None,
    keep_fitted: bool = False,
    engine: str = DEFAULT_ENGINE,
    aggregate: str = "auto",
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
    engine
        The fitting engine: ``"glum"`` (the default) or ``"spark"`` (Spark MLlib's
        ``GeneralizedLinearRegression`` in a local Spark session; ``pip install
        'smglm[spark]'``). The same config gives the same coefficients, statistics and
        portable model with either, within the engines' tolerances.
    aggregate
        Model points: ``"cells"`` aggregates the rows to rating cells before fitting (every
        predictor categorical or banded; exact, with row-level statistics), ``"rows"`` never
        does, ``"auto"`` (the default) does when the terms allow it and the data is large
        (:mod:`smglm.glm.points`).

    Returns
    -------
    FitResult
    """
    t_start = time.perf_counter()
    cfg = as_glm_config(config).resolved()
    issues = check_engine(cfg, engine)
    if issues:
        raise ConfigError(issues)
    if engine == "spark":
        from smglm.glm.engines.spark import fit_spark

        return fit_spark(cfg, data, test_data=test_data)
    from smglm.glm.points import fit_points

    points = fit_points(
        cfg, data, test_data=test_data, aggregate=aggregate, keep_fitted=keep_fitted
    )
    if points is not None:
        return points
    engine_ = get_engine(engine)
    df = read_table(data, what="data", columns=cfg.columns)
    test_df = (
        read_table(test_data, what="test data", columns=cfg.columns)
        if test_data is not None
        else None
    )
    if test_df is None and cfg.test is not None:
        df, test_df = split_test(df, cfg.test)
    if cfg.penalty.search is not None and not df.index.is_unique:
        df = df.reset_index(drop=True)  # the search finds its fold column's rows by label
    prep = prepare(cfg, df)
    log.info("fitting %s/%s GLM on %d rows", cfg.family, cfg.resolved_link, len(prep.y))
    names = feature_names(prep)
    lower, upper = _bounds(cfg, prep, names)
    n_coef = len(names) + int(cfg.fit_intercept)
    check_fit_memory(prep, n_coef)
    _check_null_model(cfg, prep)
    try:
        search = _search(cfg, engine_, df, prep, names, lower, upper)
        result = _fit_and_infer(
            cfg if search is None else search.config,
            engine_,
            df,
            prep,
            test_df,
            names,
            lower,
            upper,
            t_start,
            keep_fitted,
        )
    except MemoryError:
        raise memory_error(prep, n_coef) from None
    if search is not None:  # the refit with the chosen penalty; the config as given
        result.config = cfg
        result.search = search.table
        result.metrics["search"] = search.summary
        result.metrics["fit"]["search_seconds"] = search.path.seconds
        result.metrics["fit"]["total_seconds"] = time.perf_counter() - t_start
    return result


def _search(
    cfg: GLMConfig,
    engine: Any,
    df: pd.DataFrame,
    prep: Prepared,
    names: list[str],
    lower: np.ndarray | None,
    upper: np.ndarray | None,
) -> Any:
    """``penalty.search``: the folds, the CV paths and the choice
    (:func:`smglm.glm.search.run_search`, on the design the engine fits); None without one."""
    if cfg.penalty.search is None:
        return None
    from smglm.glm.search import run_search

    scaled, scales = _rescaled(prep, names)
    return run_search(
        cfg,
        df,
        prep,
        scaled,
        lower_bounds=None if lower is None else lower * scales,
        upper_bounds=None if upper is None else upper * scales,
        engine=engine,
    )


def _fit_and_infer(
    cfg: GLMConfig,
    engine: Any,
    df: pd.DataFrame,
    prep: Prepared,
    test_df: pd.DataFrame | None,
    names: list[str],
    lower: np.ndarray | None,
    upper: np.ndarray | None,
    t_start: float,
    keep_fitted: bool,
) -> FitResult:
    try:
        res, scales, info = _fit_engine(cfg, engine, prep, names, lower, upper)
    except np.linalg.LinAlgError as exc:
        raise DataError(
            [
                Issue(
                    "predictors",
                    f"the solver met a singular system ({exc}): the predictors "
                    f"{cfg.predictors} are (nearly) collinear or separate the target; drop or "
                    "rescale predictors, group levels, or set penalty.alpha > 0",
                )
            ]
        ) from None
    if res.feature_names != names:  # our term names must be the engine's columns
        raise RuntimeError(f"feature order mismatch: {res.feature_names} vs {names}")
    intercept, coef = res.intercept, res.coef / scales
    model = _portable(cfg, prep, intercept, coef, res.aliased)

    fam = family_of(cfg)
    n_params = coef.size + int(cfg.fit_intercept) - len(res.aliased)
    eta = intercept + res.xb + (0.0 if prep.offset is None else prep.offset)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        mu = linkinv(cfg.resolved_link, eta)
        mu0, b0 = null_mean(
            fam, cfg.resolved_link, prep.y, prep.weights, prep.offset, intercept=cfg.fit_intercept
        )
        train = split_metrics(fam, prep.y, mu, prep.weights, mu0, n_params, _gini(prep, mu))
    _check_finite(cfg, fam, intercept, coef, mu, train)
    separated = _separated(cfg, prep, names, mu)
    se, covariance = _inference(res, prep, eta, mu, fam, cfg, train.dispersion, names, info, scales)
    coefs = _coefficient_table(cfg, prep, names, intercept, coef, se, fam, res.aliased, separated)

    metrics: dict[str, Any] = {"train": train.to_dict()}
    fitted = {"train": (df, prep, mu)}
    if test_df is not None:
        tprep = prepare(cfg, test_df, terms=prep.terms, what="test data")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mu_t = model.predict(_with_offset(tprep.X, cfg, tprep), use_offset=True)
        for w in caught:
            if issubclass(w.category, UnseenLevelWarning):
                warnings.warn(f"test data: {w.message}", UnseenLevelWarning, stacklevel=3)
        off_t = np.zeros_like(tprep.y) if tprep.offset is None else tprep.offset
        mu0_t = linkinv(cfg.resolved_link, (b0 if cfg.fit_intercept else 0.0) + off_t)
        metrics["test"] = split_metrics(
            fam, tprep.y, mu_t, tprep.weights, mu0_t, n_params, _gini(tprep, mu_t)
        ).to_dict()
        fitted["test"] = (test_df, tprep, mu_t)
    metrics["fit"] = _fit_info(res, prep.n_dropped, t_start, separated)
    return FitResult(
        config=cfg,
        model=model,
        coefficients=coefs,
        metrics=metrics,
        convergence=res.convergence,
        estimator=res.native,
        fitted=fitted if keep_fitted else None,
        covariance=covariance,
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


def split_by_column(
    df: pd.DataFrame, by: str, holdout: list[Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A split by a column's values (``test: {by: ..., holdout: [...]}``): the rows whose
    ``by`` value is in ``holdout`` are the test data, every other row trains. Values compare
    as the data's level strings (:func:`smglm.glm.terms.level_strings`), so ``holdout:
    [2025]`` matches a year stored as integers, floats or text. A holdout value absent from
    the column, or a split leaving no training row, is a :class:`~smglm.errors.DataError`."""
    from smglm.glm.terms import level_strings

    if by not in df.columns:
        raise DataError(
            [
                Issue(
                    "test.by",
                    f"column {by!r} is not in the data."
                    f"{did_you_mean(by, [str(c) for c in df.columns])}",
                    by,
                )
            ]
        )
    values = level_strings(df[by])
    wanted = holdout_levels(by, holdout, values)
    is_test = np.isin(values, np.array(wanted, dtype=object))
    n_test = int(is_test.sum())
    if n_test == len(df):
        raise DataError(
            [
                Issue(
                    "test.holdout",
                    f"holds out every row ({n_test}): no row of column {by!r} is left to "
                    f"train on; hold out fewer values than {sorted(set(wanted))}",
                    holdout,
                )
            ]
        )
    return df.loc[~is_test], df.loc[is_test]


def holdout_levels(by: str, holdout: list[Any], values: Any) -> list[str]:
    """``holdout`` as the level strings of column ``by`` (whose values, as level strings, are
    ``values``); a DataError naming ``test.holdout`` for each value the column does not
    have, with the values it has."""
    wanted = [_level_text(v) for v in holdout]
    present = {v for v in pd.unique(np.asarray(values, dtype=object)) if isinstance(v, str)}
    absent = [h for h, w in zip(holdout, wanted, strict=True) if w not in present]
    if absent:
        shown = sorted(present, key=_natural_key)
        more = f" (and {len(shown) - 20} more)" if len(shown) > 20 else ""
        raise DataError(
            [
                Issue(
                    "test.holdout",
                    f"value {a!r} is not in column {by!r}; its values are {shown[:20]}{more}",
                    a,
                )
                for a in absent
            ]
        )
    return wanted


def split_test(df: pd.DataFrame, test: TestSplit) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train and test data of ``config.test``: by a column's values
    (:func:`split_by_column`) or at random (:func:`split_train_test`). Logs the sizes."""
    if test.by is not None:
        assert test.holdout is not None
        train, held = split_by_column(df, test.by, test.holdout)
        log.info(
            "test split by %s in %s: %d rows train, %d rows test",
            test.by,
            test.holdout,
            len(train),
            len(held),
        )
        return train, held
    train, held = split_train_test(df, test.fraction, test.seed)
    log.info(
        "random test split (fraction %g, seed %d): %d rows train, %d rows test",
        test.fraction,
        test.seed,
        len(train),
        len(held),
    )
    return train, held


def _level_text(value: Any) -> str:
    """A holdout value as :func:`~smglm.glm.terms.level_strings` writes the data's values
    (integer-valued numbers without '.0')."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _natural_key(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def feature_names(prep: Prepared) -> list[str]:
    """The estimated coefficients' names in the design's column order: the main terms in
    predictor order (numeric columns by name, levels and bands as ``column[level]`` without the
    reference, splines as ``column[s1]``...), then the interactions' (``a[x]:b[y]``...); fixed
    terms have none."""
    names: list[str] = []
    for term in prep.estimated_terms:
        names += term.columns
    for inter in prep.interactions:
        names += inter.columns
    return names


def _bounds(
    cfg: GLMConfig, prep: Prepared, names: list[str]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-coefficient bounds from ``constraints.bounds`` and the monotone splines' signs.

    A bound names a coefficient (``x``, ``area[B]``, ``age[s2]``, ``area[B]:region[north]``),
    a level term or spline column (all its coefficients), or an interaction ``a:b`` (all its
    columns). A monotone spline's coefficients are >= 0 (increasing) or <= 0 (decreasing),
    within the user's bounds."""
    bounds = cfg.constraints.bounds
    monotone = [t for t in prep.estimated_terms if isinstance(t, SplineTerm) and t.monotone]
    if not bounds and not monotone:
        return None, None
    lower = np.full(len(names), -np.inf)
    upper = np.full(len(names), np.inf)
    index = {n: i for i, n in enumerate(names)}
    groups: dict[str, list[str]] = {t.name: t.columns for t in prep.estimated_terms}
    groups.update({t.name: t.columns for t in prep.interactions})
    references = {
        f"{t.name}[{t.reference}]"
        for t in prep.terms
        if isinstance(t, (CategoricalTerm, BandsTerm)) and not t.fixed
    }
    issues = []
    for term, (lo, hi) in bounds.items():
        if term in index:
            targets = [index[term]]
        elif term in groups:
            targets = [index[n] for n in groups[term] if n in index]
        elif term in references:
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
                    f"{did_you_mean(term, names + list(groups))}",
                    term,
                )
            )
            continue
        for i in targets:
            lower[i] = -np.inf if lo is None else lo
            upper[i] = np.inf if hi is None else hi
    if issues:
        raise DataError(issues)
    for t in monotone:
        for n in t.columns:
            i = index[n]
            if t.monotone == "increasing":
                lower[i] = max(lower[i], 0.0)
            else:
                upper[i] = min(upper[i], 0.0)
            if lower[i] > upper[i]:
                raise DataError(
                    [
                        Issue(
                            f"constraints.bounds.{n}",
                            f"the bounds [{lower[i]:g}, {upper[i]:g}] contradict the "
                            f"{t.monotone} spline {t.name!r}, whose coefficients are "
                            f"{'>= 0' if t.monotone == 'increasing' else '<= 0'}",
                            n,
                        )
                    ]
                )
    return lower, upper


def _with_offset(X: pd.DataFrame, cfg: GLMConfig, prep: Prepared) -> pd.DataFrame:
    out = X.copy()
    if cfg.exposure and prep.exposure is not None:
        out[cfg.exposure] = prep.exposure
    elif cfg.offset and prep.data_offset is not None:
        out[cfg.offset] = prep.data_offset  # the model adds its fixed terms itself
    return out


def _gini(prep: Prepared, mu: np.ndarray) -> float:
    from smglm.glm.report.ranking import gini
    from smglm.glm.report.scoring import amounts

    return float(gini(*amounts(prep.y, mu, prep.weights, prep.exposure)))


def _portable(
    cfg: GLMConfig,
    prep: Prepared,
    intercept: float,
    coef: np.ndarray,
    aliased: list[str] | None = None,
) -> PortableModel:
    terms: list[Term] = []
    i = 0
    fitted: dict[str, Any] = {}
    for main in prep.terms:
        if not main.fixed:
            k = len(main.columns)
            main = main.with_coefficients(coef[i : i + k])
            i += k
        fitted[main.name] = main
        terms.append(main)
    for inter in prep.interactions:
        k = len(inter.columns)
        part = type(inter)(fitted[inter.a.name], fitted[inter.b.name])
        terms.append(part.with_coefficients(coef[i : i + k]))
        i += k
    return portable_model(cfg, intercept, terms, aliased)


def portable_model(
    cfg: GLMConfig, intercept: float, terms: list[Term], aliased: list[str] | None = None
) -> PortableModel:
    """The portable model of ``cfg`` (its family, link, roles and parameters) with these
    fitted ``terms`` (coefficients set) and ``intercept``; every engine's model is made here."""
    from smglm._version import __version__

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
        aliased=list(aliased or []),
    )


def _coefficient_table(
    cfg: GLMConfig,
    prep: Prepared,
    names: list[str],
    intercept: float,
    coef: np.ndarray,
    se: np.ndarray,
    fam: FamilySpec,
    aliased: list[str] | None = None,
    separated: dict[str, str] | None = None,
    *,
    n_obs: int | None = None,
) -> pd.DataFrame:
    """The coefficient table. An aliased term (R's ``NA``) has no estimate (NaN; its column is
    a linear combination of earlier ones, and the model scores it as 0); its ``note`` says so.
    The ``note`` column is there only when some term has a note. ``n_obs`` (default: the rows
    of ``prep`` with weight > 0) gives the t statistics' residual degrees of freedom (model
    points: the rows, not the cells)."""
    from scipy import stats

    aliased = aliased or []
    separated = separated or {}
    estimates = np.concatenate([[intercept], coef]) if cfg.fit_intercept else coef.copy()
    terms = (["intercept"] if cfg.fit_intercept else []) + names
    is_aliased = np.array([t in aliased for t in terms], dtype=bool)
    estimates = np.where(is_aliased, np.nan, estimates)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = estimates / se
    if n_obs is None:
        n_obs = int(np.count_nonzero(prep.weights > 0))
    df_resid = n_obs - (len(estimates) - len(aliased))
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
        with np.errstate(over="ignore"):
            table["relativity"] = np.exp(estimates)
    no_se = ~is_aliased & ~np.isfinite(se)
    fixed = _fixed_rows(prep)
    if aliased or separated or no_se.any() or fixed:
        table["note"] = [
            ALIASED_NOTE
            if t in aliased
            else separated.get(t, "") or (NO_SE_NOTE if missing else "")
            for t, missing in zip(terms, no_se, strict=True)
        ]
    if fixed:
        rows = pd.DataFrame({"term": [n for n, _ in fixed], "estimate": [v for _, v in fixed]})
        if "relativity" in table.columns:
            rows["relativity"] = np.exp(rows["estimate"])
        rows["note"] = FIXED_NOTE
        table = pd.concat([table, rows], ignore_index=True)[table.columns]
    return table


#: The ``note`` of a fixed term (not estimated: it entered the fit as an offset).
def _fit_info(
    res: EngineFit, n_dropped: int, t_start: float, separated: dict[str, str]
) -> dict[str, Any]:
    """``metrics["fit"]``: the solver's iterations, convergence and seconds, the rows dropped,
    and the aliased and separated terms when there are any."""
    info: dict[str, Any] = {
        "iterations": res.n_iter,
        "converged": res.converged,
        "seconds": res.seconds,
        "total_seconds": time.perf_counter() - t_start,
        "n_dropped": n_dropped,
    }
    if res.aliased:
        info["aliased"] = list(res.aliased)
    if separated:
        info["separated"] = list(separated)
    return info


FIXED_NOTE = "fixed"


def _fixed_rows(prep: Prepared) -> list[tuple[str, float]]:
    """(coefficient name, fixed value) of the fixed terms: a numeric's coefficient, every
    level's log relativity."""
    out: list[tuple[str, float]] = []
    for t in prep.terms:
        if t.fixed:
            out += list(zip(t.columns, t.coefficient_vector().tolist(), strict=True))
    return out


def _fit_engine(
    cfg: GLMConfig,
    engine: Any,
    prep: Prepared,
    names: list[str],
    lower: np.ndarray | None,
    upper: np.ndarray | None,
) -> tuple[EngineFit, np.ndarray, np.ndarray | None]:
    """The engine's fit on the rescaled data (:func:`_rescaled`), the scales, and the
    information matrix at the estimate when known (the standard errors reuse it).

    Aliased columns (R's ``NA`` coefficients) are found on the information matrix at the
    estimate (one Cholesky factorisation when there are none), confirmed on the prior weights
    (a column whose working weights vanish is separated, not aliased), and held at 0 in a
    second fit; an engine may also report the ones it held out itself (``EngineFit.aliased``).
    """
    from smglm.glm.stats import aliased_columns

    if not names:  # every predictor fixed: the intercept alone is estimated
        return _intercept_only(cfg, prep), np.ones(0), None
    scaled, scales = _rescaled(prep, names)
    lo = None if lower is None else lower * scales
    hi = None if upper is None else upper * scales
    res = engine.fit(cfg, scaled, lower_bounds=lo, upper_bounds=hi)
    if res.aliased:
        return res, scales, None
    fam = family_of(cfg)
    shift = int(cfg.fit_intercept)
    eta = res.intercept + res.xb + (0.0 if prep.offset is None else prep.offset)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        mu = linkinv(cfg.resolved_link, eta)
        W = prep.weights * mu_eta(cfg.resolved_link, eta) ** 2 / fam.variance(mu)
    if not np.all(np.isfinite(W)):
        return res, scales, None  # _check_finite reports it
    info = res.information(W)
    at_estimate = set(aliased_columns(info))
    held: list[int] = []
    if at_estimate:
        prior = set(aliased_columns(res.information(np.array(prep.weights, dtype=float))))
        held = sorted(j - shift for j in at_estimate & prior if j >= shift)
    if not held:
        return res, scales, info
    p = len(names)
    lo = np.full(p, -np.inf) if lo is None else lo.copy()
    hi = np.full(p, np.inf) if hi is None else hi.copy()
    lo[held] = 0.0
    hi[held] = 0.0
    res = engine.fit(cfg, scaled, lower_bounds=lo, upper_bounds=hi)
    res.aliased = [names[j] for j in held]
    return res, scales, None


def _intercept_only(cfg: GLMConfig, prep: Prepared) -> EngineFit:
    """The fit of a model with no estimated coefficient but the intercept (every predictor
    fixed, in the offset): the null model's intercept (R's ``glm(y ~ 1, offset = ...)``)."""
    fam = family_of(cfg)
    t0 = time.perf_counter()
    _, b0 = null_mean(
        fam, cfg.resolved_link, prep.y, prep.weights, prep.offset, intercept=cfg.fit_intercept
    )
    return EngineFit(
        intercept=b0 if cfg.fit_intercept else 0.0,
        coef=np.zeros(0),
        feature_names=[],
        xb=np.zeros_like(prep.y, dtype=float),
        information=lambda w: np.array([[float(np.sum(w))]]),
        n_iter=1,
        converged=True,
        seconds=time.perf_counter() - t0,
    )


#: A numeric predictor whose root mean square is outside this range is fitted rescaled.
_SCALE_RANGE = (1e-4, 1e6)


def _rescaled(prep: Prepared, names: list[str]) -> tuple[Prepared, np.ndarray]:
    """The prepared data with each numeric predictor of extreme scale (root mean square
    outside :data:`_SCALE_RANGE`) divided by a power of two near its scale, and the scale of
    each coefficient (1 for the others). The engine's gradient tolerance would otherwise stop
    at once on a column of tiny values; R's QR does not care about scales, and neither should
    smglm. A power of two keeps the rescaling exact."""
    import dataclasses

    scales = np.ones(len(names))
    X = prep.X
    index = {n: i for i, n in enumerate(names)}
    by_column: dict[str, float] = {}
    for term in prep.estimated_terms:
        col = term.name
        if not isinstance(term, NumericTerm) or col not in index:
            continue
        x = prep.X[col].to_numpy(dtype=float)
        rms = float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0
        if rms == 0.0 or _SCALE_RANGE[0] <= rms <= _SCALE_RANGE[1]:
            continue
        scale = 2.0 ** round(math.log2(rms))
        if X is prep.X:
            X = prep.X.copy()
        X[col] = x / scale
        scales[index[col]] = scale
        by_column[col] = scale
    if X is prep.X:
        return prep, scales
    for inter in prep.interactions:  # a product's column scales with its parts'
        scale = by_column.get(inter.a.name, 1.0) * by_column.get(inter.b.name, 1.0)
        for n in inter.columns:
            scales[index[n]] = scale
    return dataclasses.replace(prep, X=X), scales


#: The ``note`` of a term without a standard error although it was estimated.
NO_SE_NOTE = (
    "no standard error: the information matrix is singular at the estimate (fitted means at "
    "the edge of the family's range)"
)


def _check_null_model(cfg: GLMConfig, prep: Prepared) -> None:
    """Refuse, before fitting, a family (and its parameters) whose deviance or log-likelihood
    is not finite even at the intercept-only model: the fit could only end in non-finite
    results, after running to ``max_iter``."""
    fam = family_of(cfg)
    with np.errstate(all="ignore"):
        mu0, _ = null_mean(
            fam, cfg.resolved_link, prep.y, prep.weights, prep.offset, intercept=cfg.fit_intercept
        )
        dev0 = deviance(fam, prep.y, mu0, prep.weights)
        llf0 = fam.log_likelihood(prep.y, mu0, prep.weights, dev0) if fam.name != "tweedie" else 0.0
    if math.isfinite(dev0) and math.isfinite(llf0):
        return
    _check_finite(
        cfg,
        fam,
        0.0,
        np.zeros(0),
        mu0,
        SplitMetrics(0, dev0, dev0, math.nan, llf0, math.nan, math.nan, math.nan, 0, math.nan),
        "at the intercept-only model, before fitting",
    )


def _check_finite(
    cfg: GLMConfig,
    fam: FamilySpec,
    intercept: float,
    coef: np.ndarray,
    mu: np.ndarray,
    train: SplitMetrics,
    when: str = "",
) -> None:
    """A fit whose coefficients, fitted means, deviance or log-likelihood are not finite is a
    failure with the reason, not a result with empty metrics."""
    bad: list[str] = []
    if not math.isfinite(intercept):
        bad.append(f"the intercept is {intercept}")
    if not np.all(np.isfinite(coef)):
        bad.append(f"{int((~np.isfinite(coef)).sum())} coefficient(s) are not finite")
    if not np.all(np.isfinite(mu)):
        bad.append(f"{int((~np.isfinite(mu)).sum())} fitted mean(s) are not finite")
    for name in ("deviance", "null_deviance"):
        value = getattr(train, name)
        if not math.isfinite(value):
            bad.append(f"the {name.replace('_', ' ')} is {value}")
    if fam.name != "tweedie" and not math.isfinite(train.log_likelihood):  # tweedie: NaN, as R
        bad.append(f"the log-likelihood is {train.log_likelihood}")
    if not bad:
        return
    params = {
        k: v
        for k, v in (("theta", cfg.theta), ("tweedie_power", cfg.tweedie_power))
        if v is not None
    }
    where = f" and the family's parameters {params}" if params else ""
    raise DataError(
        [
            Issue(
                "fit",
                f"the {cfg.family}/{cfg.resolved_link} fit of {cfg.target!r} gave non-finite "
                f"results{' ' + when if when else ''} ({'; '.join(bad)}); check the target "
                f"and predictors for extreme values{where}, or rescale them",
            )
        ]
    )


def _separated(cfg: GLMConfig, prep: Prepared, names: list[str], mu: np.ndarray) -> dict[str, str]:
    """Terms whose estimate runs off to infinity because the data separate the target (R's
    "fitted probabilities numerically 0 or 1 occurred"), with their note; warns once naming
    them. Binomial: a level whose rows are all 0 or all 1, a numeric predictor that splits the
    0s from the 1s. Poisson, negative binomial and Tweedie with the log link: a level whose
    rows are all 0 (its mean is 0, its log -inf). A numeric predictor that separates a binomial
    target completely is an error: no coefficient of the model is then estimable."""
    fam = cfg.family
    counts = fam in ("poisson", "negative_binomial", "tweedie") and cfg.resolved_link == "log"
    if (fam != "binomial" and not counts) or cfg.penalty.alpha > 0:  # a penalty bounds them
        return {}
    used = prep.weights > 0
    y = prep.y[used]
    out: dict[str, str] = {}
    for main in prep.estimated_terms:
        if isinstance(main, SplineTerm):
            continue
        col = main.name
        s = prep.X[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            codes = s.cat.codes.to_numpy()[used]
            n_levels = len(s.cat.categories)
            rows = np.bincount(codes[codes >= 0], minlength=n_levels)
            ones = np.bincount(codes[codes >= 0], weights=y[codes >= 0], minlength=n_levels)
            nonzero = np.bincount(
                codes[codes >= 0], weights=(y[codes >= 0] != 0), minlength=n_levels
            )
            for i, level in enumerate(s.cat.categories):
                if rows[i] == 0 or i == 0:  # the reference level has no coefficient
                    continue
                term = f"{col}[{level}]"
                if nonzero[i] == 0:
                    out[term] = f"separated: the target is 0 on all {rows[i]} rows of this level"
                elif (
                    fam == "binomial"
                    and np.isclose(ones[i], rows[i])
                    and (y[codes == i] == 1).all()
                ):
                    out[term] = f"separated: the target is 1 on all {rows[i]} rows of this level"
        elif fam == "binomial" and set(np.unique(y)) <= {0.0, 1.0}:
            x = s.to_numpy(dtype=float)[used]
            x0, x1 = x[y == 0], x[y == 1]
            if x0.size and x1.size and (x0.max() < x1.min() or x1.max() < x0.min()):
                low, high = (0, 1) if x0.max() < x1.min() else (1, 0)
                cut = x0.max() if low == 0 else x1.max()
                raise DataError(
                    [
                        Issue(
                            "predictors",
                            f"column {str(col)!r} separates the target {cfg.target!r} completely"
                            f" (it is {low} wherever {col} <= {cut:g} and {high} above): the "
                            "maximum likelihood estimate does not exist (its coefficient is "
                            "infinite); drop the predictor (is it the target in disguise?) or "
                            "set penalty.alpha > 0",
                            str(col),
                        )
                    ]
                )
    out.update(_separated_cells(fam, prep, used, y))
    if fam == "binomial" and not out:
        m = mu[used]
        edge = (m < 1e-10) | (m > 1 - 1e-10)
        if edge.any():
            warnings.warn(
                f"fitted probabilities numerically 0 or 1 occurred on {int(edge.sum())} rows: "
                "the predictors separate the target (quasi-complete separation); some "
                "estimates are infinite in theory and their standard errors meaningless",
                stacklevel=4,
            )
    if out:
        warn_separated(out, stacklevel=5)
    return out


def warn_separated(separated: dict[str, str], *, stacklevel: int = 2, engine: str = "glum") -> None:
    """The warning for terms the data separate, in the same words for both engines; what to
    do differs: the Spark engine has no penalty to bound the estimates."""
    remedy = (
        "set penalty.alpha > 0"
        if engine == "glum"
        else "fit with engine: glum and penalty.alpha > 0"
    )
    warnings.warn(
        f"the data separate the target for {sorted(separated)}: their estimates run off to "
        "infinity and their standard errors are meaningless (see the coefficient table's "
        f"note); group those levels with others, drop the predictor, or {remedy}",
        stacklevel=stacklevel,
    )


def _separated_cells(fam: str, prep: Prepared, used: np.ndarray, y: np.ndarray) -> dict[str, str]:
    """The cells of categorical x categorical interactions (both parts levels or bands) whose
    rows all have the target 0 (or, binomial, all 1): as a main-effect level would, their
    coefficient runs off to infinity."""
    out: dict[str, str] = {}
    for inter in prep.interactions:
        a, b = inter.a, inter.b
        if not (
            isinstance(a, (CategoricalTerm, BandsTerm))
            and isinstance(b, (CategoricalTerm, BandsTerm))
        ):
            continue
        ca = prep.X[a.name].cat.codes.to_numpy()[used].astype(np.int64)
        cb = prep.X[b.name].cat.codes.to_numpy()[used].astype(np.int64)
        nb = len(b.levels) - 1
        ok = (ca > 0) & (cb > 0)
        cell = (ca[ok] - 1) * nb + (cb[ok] - 1)
        size = len(inter.columns)
        rows = np.bincount(cell, minlength=size)
        nonzero = np.bincount(cell, weights=(y[ok] != 0), minlength=size)
        ones = np.bincount(cell, weights=(y[ok] == 1), minlength=size)
        for k in np.flatnonzero(rows):
            term = inter.columns[k]
            if nonzero[k] == 0:
                out[term] = f"separated: the target is 0 on all {rows[k]} rows of this cell"
            elif fam == "binomial" and ones[k] == rows[k]:
                out[term] = f"separated: the target is 1 on all {rows[k]} rows of this cell"
    return out


def _inference(
    res: EngineFit,
    prep: Prepared,
    eta: np.ndarray,
    mu: np.ndarray,
    fam: FamilySpec,
    cfg: GLMConfig,
    phi: float,
    names: list[str],
    info: np.ndarray | None,
    scales: np.ndarray,
) -> tuple[np.ndarray, pd.DataFrame]:
    """The standard errors and the covariance matrix (labelled by term) of a fit on rescaled
    columns (:func:`_rescaled`), back on the columns' own scales."""
    se, cov = _standard_errors(
        res, prep, eta, mu, fam, cfg.resolved_link, phi, cfg.fit_intercept, names, info
    )
    all_scales = np.concatenate([np.ones(int(cfg.fit_intercept)), scales])
    se /= all_scales
    cov /= np.outer(all_scales, all_scales)
    labels = (["intercept"] if cfg.fit_intercept else []) + names
    return se, pd.DataFrame(cov, index=labels, columns=labels)


def _standard_errors(
    res: EngineFit,
    prep: Prepared,
    eta: np.ndarray,
    mu: np.ndarray,
    fam: FamilySpec,
    link: str,
    phi: float,
    intercept: bool,
    names: list[str] | None = None,
    info: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """R's standard errors: sqrt(diag(phi * I^-1)), with I = X' W X the expected (Fisher)
    information, W = w * (dmu/deta)^2 / V(mu) and w the prior weights (the engine computes
    X' W X on its design), and the covariance matrix ``phi * I^-1`` (R's ``vcov``). Aliased
    terms (left out of the fit) have none (NaN)."""
    n_coef = res.coef.size + int(intercept)
    nan_cov = np.full((n_coef, n_coef), np.nan)
    if not math.isfinite(phi):
        return np.full(n_coef, np.nan), nan_cov
    if info is None:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            W = prep.weights * mu_eta(link, eta) ** 2 / fam.variance(mu)
        info = res.information(W)
    terms = (["intercept"] if intercept else []) + list(names or res.feature_names)
    keep = np.array([t not in res.aliased for t in terms], dtype=bool)
    info = info[np.ix_(keep, keep)]
    out = np.full(n_coef, np.nan)
    # invert the scaled (correlation-like) matrix: its condition number says whether the
    # design is singular whatever the columns' scales
    d = np.sqrt(np.diag(info))
    scaled = info / np.outer(d, d) if np.all(d > 0) else None
    if scaled is None or not np.all(np.isfinite(scaled)) or np.linalg.cond(scaled) > 1e13:
        warnings.warn(
            "the information matrix is singular at the estimate (fitted means at the edge of "
            "the family's range, or predictors that are nearly collinear once weighted): "
            "standard errors are not available (NaN)",
            stacklevel=3,
        )
        return out, nan_cov
    cov = phi * np.linalg.inv(scaled) / np.outer(d, d)
    out[keep] = np.sqrt(np.clip(np.diag(cov), 0, None))
    full = nan_cov.copy()
    full[np.ix_(keep, keep)] = cov
    return out, full
