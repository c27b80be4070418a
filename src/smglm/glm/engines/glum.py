"""glum, the first fitting engine: the estimator as smglm configures it, and its :func:`fit`.

Imported only where a fit happens (``import glum`` costs 1.5-2 s): the registry
(:data:`smglm.glm.engines.ENGINES`) declares this engine's capabilities without importing it.
glum has no probit link and its ``inverse`` is ``TweedieLink(2)`` (= 1/mu); both are provided
here. The family's glum distribution is :meth:`smglm.glm.families.FamilySpec.glum`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from glum import GeneralizedLinearRegressor, Link, TweedieLink
from scipy.special import ndtr, ndtri

from smglm.config import GLMConfig
from smglm.glm.engines import EngineFit
from smglm.glm.families import family_of
from smglm.glm.terms import BandsTerm, CategoricalTerm, InteractionTerm, SplineTerm

if TYPE_CHECKING:
    from smglm.glm.data import Prepared
    from smglm.glm.search import CVPath

__all__ = [
    "ProbitLink",
    "alias_bounds",
    "design_matrix",
    "fit",
    "glum_link",
    "make_estimator",
    "search",
]

_SQRT_2PI = np.sqrt(2.0 * np.pi)


def _pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * np.square(x)) / _SQRT_2PI


class ProbitLink(Link):
    """The probit link ``Phi^-1(mu)`` (glum has none)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProbitLink)

    def __hash__(self) -> int:
        return hash(type(self))

    def link(self, mu: Any) -> Any:
        return ndtri(mu)

    def derivative(self, mu: Any) -> Any:
        return 1.0 / _pdf(ndtri(mu))

    def inverse(self, lin_pred: Any) -> Any:
        eps = 50 * np.finfo(float).eps
        return np.clip(ndtr(lin_pred), eps, 1 - eps)

    def inverse_derivative(self, lin_pred: Any) -> Any:
        return _pdf(lin_pred)

    def inverse_derivative2(self, lin_pred: Any) -> Any:
        return -lin_pred * _pdf(lin_pred)


def glum_link(config: GLMConfig) -> Any:
    """glum's link for the config."""
    link = config.resolved_link
    if link == "probit":
        return ProbitLink()
    if link == "inverse":
        return TweedieLink(2)
    return link


def make_estimator(
    config: GLMConfig,
    *,
    lower_bounds: np.ndarray | None = None,
    upper_bounds: np.ndarray | None = None,
) -> GeneralizedLinearRegressor:
    """The glum estimator, configured as smglm fits: categoricals with their first level (the
    reference) dropped, ``alpha`` always explicit, a tight gradient tolerance."""
    return GeneralizedLinearRegressor(
        family=family_of(config).glum(),
        link=glum_link(config),
        alpha=config.penalty.alpha,
        l1_ratio=config.penalty.l1_ratio,
        fit_intercept=config.fit_intercept,
        drop_first=True,
        gradient_tol=config.tol,
        max_iter=config.max_iter,
        lower_bounds=lower_bounds,
        upper_bounds=upper_bounds,
        robust=False,
        expected_information=True,
        categorical_format="{name}[{category}]",
    )


def design_matrix(prepared: Prepared) -> Any:
    """The tabmat design of every estimated coefficient, columns named and ordered as
    :func:`smglm.glm.fitting.feature_names`: numeric columns and spline bases dense, levels
    and bands as sparse CategoricalMatrix with the first level (the reference) dropped; then
    the interactions: categorical x categorical as one CategoricalMatrix (its dropped first
    level is "either part at its reference"), numeric or spline x categorical as a sparse
    matrix, numeric or spline x numeric or spline dense. Fixed terms are not in it (they are
    in the offset)."""
    import tabmat

    X = prepared.X
    terms = prepared.estimated_terms
    bases = {  # each spline's basis, computed once (interactions reuse it)
        t.name: t.basis(X[t.name].to_numpy(dtype=float)) for t in terms if isinstance(t, SplineTerm)
    }
    if [t.name for t in terms] == list(X.columns) and not bases:
        frame = X  # main effects of raw columns: no copy
    else:
        columns: dict[str, Any] = {}
        for term in terms:
            if term.name in bases:
                columns.update(zip(term.columns, bases[term.name].T, strict=True))
            else:
                columns[term.name] = X[term.name]
        frame = pd.DataFrame(columns, index=X.index)
    parts = []
    if len(frame.columns):
        parts.append(
            tabmat.from_df(
                frame,
                drop_first=True,
                categorical_format="{name}[{category}]",
                cat_missing_method="fail",
            )
        )
    parts += [_interaction_matrix(inter, X, bases) for inter in prepared.interactions]
    if not parts:
        return tabmat.DenseMatrix(np.zeros((len(X), 0)))
    return parts[0] if len(parts) == 1 else tabmat.SplitMatrix(parts)


def _interaction_matrix(
    inter: InteractionTerm, X: pd.DataFrame, bases: dict[str, np.ndarray]
) -> Any:
    """An interaction's columns as a tabmat matrix (see :func:`design_matrix`)."""
    import scipy.sparse as sps
    import tabmat

    a: Any = inter.a
    b: Any = inter.b
    names = inter.columns
    a_levels = isinstance(a, (CategoricalTerm, BandsTerm))
    b_levels = isinstance(b, (CategoricalTerm, BandsTerm))

    def codes(term: Any) -> np.ndarray:
        return np.asarray(X[term.name].cat.codes.to_numpy(), dtype=np.int64)

    def dense(term: Any) -> np.ndarray:
        if term.name in bases:
            return bases[term.name]
        x = X[term.name].to_numpy(dtype=float)
        return term.basis(x) if isinstance(term, SplineTerm) else x[:, None]

    if a_levels and b_levels:
        ca, cb = codes(a), codes(b)
        nb = len(b.levels) - 1
        combined = np.where((ca > 0) & (cb > 0), 1 + (ca - 1) * nb + (cb - 1), 0)
        return tabmat.CategoricalMatrix(
            combined.astype(np.int32),
            categories=np.array(["(reference)", *names], dtype=object),
            drop_first=True,
            column_name=inter.name,
            column_name_format="{category}",
        )
    if a_levels or b_levels:
        lev, num = (a, b) if a_levels else (b, a)
        c = codes(lev)
        d = dense(num)
        n_lev, n_num = len(lev.levels) - 1, d.shape[1]
        rows = np.flatnonzero(c > 0)
        data, row_idx, col_idx = [], [], []
        for j in range(n_num):
            lev_col = c[rows] - 1
            # columns: a's slots outermost
            col = lev_col * n_num + j if a_levels else j * n_lev + lev_col
            data.append(d[rows, j])
            row_idx.append(rows)
            col_idx.append(col)
        mat = sps.csc_matrix(
            (np.concatenate(data), (np.concatenate(row_idx), np.concatenate(col_idx))),
            shape=(len(X), n_lev * n_num),
        )
        return tabmat.SparseMatrix(mat, column_names=names, term_names=[inter.name] * len(names))
    da, db = dense(a), dense(b)
    prod = (da[:, :, None] * db[:, None, :]).reshape(len(X), -1)
    return tabmat.DenseMatrix(
        np.asfortranarray(prod), column_names=names, term_names=[inter.name] * len(names)
    )


def fit(
    config: GLMConfig,
    prepared: Prepared,
    *,
    lower_bounds: np.ndarray | None = None,
    upper_bounds: np.ndarray | None = None,
) -> EngineFit:
    """Fit with glum (see :class:`smglm.glm.engines.Engine`). glum's warnings other than
    non-convergence are passed on; non-convergence sets ``converged`` to False."""
    # the design, built once: categoricals stay sparse, and glum does not convert (and box
    # into an object array) the DataFrame again for the fit, the predictions and the SEs
    design = design_matrix(prepared)
    aliased: list[int] = []
    t_fit = time.perf_counter()
    try:
        est, caught = _run(config, design, prepared, lower_bounds, upper_bounds)
    except np.linalg.LinAlgError:
        # a singular design (R would drop the aliased columns): hold them at 0 and fit again
        aliased, lower_bounds, upper_bounds = alias_bounds(
            design, prepared.weights, config.fit_intercept, lower_bounds, upper_bounds
        )
        if not aliased:
            raise
        est, caught = _run(config, design, prepared, lower_bounds, upper_bounds)
    seconds = time.perf_counter() - t_fit
    converged = int(est.n_iter_) < config.max_iter
    for w in caught:
        if "converge" in str(w.message).lower():
            converged = False
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    intercept = float(est.intercept_) if config.fit_intercept else 0.0
    return EngineFit(
        intercept=intercept,
        coef=np.asarray(est.coef_, dtype=float),
        feature_names=list(est.feature_names_),
        xb=_design_dot(est, design),
        information=lambda weights: _information(design, weights, config.fit_intercept),
        n_iter=int(est.n_iter_),
        converged=bool(converged),
        seconds=seconds,
        convergence=_convergence(est),
        native=est,
        aliased=[str(design.column_names[i]) for i in aliased],
    )


def _run(
    config: GLMConfig,
    design: Any,
    prepared: Prepared,
    lower_bounds: np.ndarray | None,
    upper_bounds: np.ndarray | None,
) -> tuple[GeneralizedLinearRegressor, list[warnings.WarningMessage]]:
    est = make_estimator(config, lower_bounds=lower_bounds, upper_bounds=upper_bounds)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(design, prepared.y, sample_weight=prepared.weights, offset=prepared.offset)
    return est, caught


def alias_bounds(
    design: Any,
    weights: np.ndarray,
    intercept: bool,
    lower: np.ndarray | None,
    upper: np.ndarray | None,
) -> tuple[list[int], np.ndarray | None, np.ndarray | None]:
    """The design's aliased columns (:func:`smglm.glm.stats.aliased_columns` on ``X' W X``
    with the prior weights), held at 0 by bounds (R drops them from the fit; glum's
    unconstrained solver fails on a singular design), and the bounds to fit with."""
    from smglm.glm.stats import aliased_columns

    info = _information(design, np.array(weights, dtype=float), intercept)  # a writable copy
    shift = int(intercept)
    aliased = [j - shift for j in aliased_columns(info) if j >= shift]
    if not aliased:
        return [], lower, upper
    p = info.shape[0] - shift
    lower = np.full(p, -np.inf) if lower is None else np.array(lower, dtype=float)
    upper = np.full(p, np.inf) if upper is None else np.array(upper, dtype=float)
    lower[aliased] = 0.0
    upper[aliased] = 0.0
    return aliased, lower, upper


def _design_dot(est: Any, design: Any) -> np.ndarray:
    """X @ coef on the tabmat design (categoricals stay sparse)."""
    eta = est.linear_predictor(design)  # includes the intercept, no offset
    return np.asarray(eta) - (float(est.intercept_) if est.fit_intercept else 0.0)


def _information(design: Any, weights: np.ndarray, intercept: bool) -> np.ndarray:
    """``X' diag(weights) X`` with the intercept's row and column first: one sandwich product
    on the tabmat design (categoricals stay sparse)."""
    info = design.sandwich(weights)
    if hasattr(info, "toarray"):  # a design of one categorical gives a sparse matrix
        info = info.toarray()
    info = np.asarray(info, dtype=float)
    if intercept:
        xw = design.transpose_matvec(weights)
        xw = np.asarray(xw.toarray() if hasattr(xw, "toarray") else xw, dtype=float).ravel()
        info = np.block([[np.array([[weights.sum()]]), xw[None, :]], [xw[:, None], info]])
    return info


def _convergence(est: Any) -> pd.DataFrame | None:
    diag = getattr(est, "diagnostics_", None)
    if not diag:
        return None
    rows = []
    for i, d in enumerate(diag, start=1):
        rows.append(
            {
                "iteration": int(d.get("n_iter", i)),
                "objective": float(d.get("objective_fct", np.nan)),
                "convergence": float(d.get("convergence", np.nan)),
            }
        )
    return pd.DataFrame(rows)


def search(
    config: GLMConfig,
    prepared: Prepared,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    lower_bounds: np.ndarray | None = None,
    upper_bounds: np.ndarray | None = None,
    n_jobs: int = 1,
) -> CVPath:
    """The penalty search's paths (:mod:`smglm.glm.search`): one glum
    ``GeneralizedLinearRegressorCV`` fit on the same design, weights and offset as
    :func:`fit`, with ``cv=folds`` (row positions), the l1_ratios and alphas of
    ``config.penalty.search``, and the plain fit's family, link, tolerance, iterations and
    bounds. glum fits each l1_ratio's whole alpha path on each fold (warm-started along the
    path), and once more on all the rows for its best l1_ratio."""
    from glum import GeneralizedLinearRegressorCV

    from smglm.glm.search import CVPath

    spec = config.penalty.search
    assert spec is not None
    design = design_matrix(prepared)
    est = GeneralizedLinearRegressorCV(
        family=family_of(config).glum(),
        link=glum_link(config),
        l1_ratio=list(spec.l1_ratio),
        n_alphas=spec.n_alphas,
        alphas=None if spec.alphas is None else np.asarray(spec.alphas, dtype=float),
        min_alpha_ratio=spec.min_alpha_ratio,
        fit_intercept=config.fit_intercept,
        drop_first=True,
        gradient_tol=config.tol,
        max_iter=config.max_iter,
        lower_bounds=lower_bounds,
        upper_bounds=upper_bounds,
        cv=[(np.asarray(tr), np.asarray(te)) for tr, te in folds],
        n_jobs=n_jobs,
        robust=False,
        expected_information=True,
        categorical_format="{name}[{category}]",
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(design, prepared.y, sample_weight=prepared.weights, offset=prepared.offset)
    seconds = time.perf_counter() - t0
    not_converged = 0
    for w in caught:
        if "converge" in str(w.message).lower():
            not_converged += 1
        elif not issubclass(w.category, RuntimeWarning):  # overflow along extreme alphas
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    n_l1 = len(spec.l1_ratio)
    alphas = np.asarray(est.alphas_, dtype=float).reshape(n_l1, -1)
    return CVPath(
        l1_ratios=np.asarray(spec.l1_ratio, dtype=float),
        alphas=alphas,
        deviance=np.asarray(est.deviance_path_, dtype=float),
        train_deviance=np.asarray(est.train_deviance_path_, dtype=float),
        seconds=seconds,
        n_not_converged=not_converged,
        engine_alpha=float(est.alpha_),
        engine_l1_ratio=float(est.l1_ratio_),
        native=est,
    )
