"""The penalty search (``penalty.search``): the cross-validation folds, the path of CV
deviances with its standard errors, the choice of alpha and l1_ratio, and the refit's config.

One training job does it all: :func:`run_search` builds the folds from the training data
(random, grouped, or forward in time), has the engine fit the whole regularization path on
each fold once (glum's ``GeneralizedLinearRegressorCV``, on the same design, weights and
offset as the plain fit), tabulates the validation deviance of every (l1_ratio, alpha) pair
and chooses one by ``rule``. :func:`smglm.fit` then fits all the training data with the
chosen alpha and l1_ratio, exactly as if ``penalty: {alpha: ..., l1_ratio: ...}`` had been
given, so the coefficients, standard errors and metrics are the usual ones.

The folds (``penalty.search.cv``):

- ``folds: k`` random folds of (nearly) equal size, drawn with ``seed``;
- ``group: column`` keeps all rows of one value of the column (e.g. a policy) in one fold;
  the groups are dealt to the folds so that the folds have about the same number of rows;
- ``by: column`` makes forward (time) folds: for each of the last ``k`` distinct values of
  the column, in sorted order, fit on the rows with smaller values and validate on the rows
  of that value (the past predicts the next period, never the other way round).

The CV deviance of a fold is glum's: the validation rows' mean unit deviance weighted by
the prior weights, ``sum(w * d(y, mu)) / sum(w)``; the path's ``cv_deviance`` is its mean
over the folds and ``cv_deviance_se`` the standard error of that mean (the standard
deviation across folds over the square root of their number). ``rule: min`` takes the
lowest mean CV deviance (glum's ``alpha_``); ``rule: 1se`` takes, for the l1_ratio of that
minimum, the largest alpha whose mean CV deviance is within one standard error of it (R
glmnet's ``lambda.1se``): a simpler model that predicts about as well.

numpy and pandas only: the engine's part is its ``search``
(:meth:`smglm.glm.engines.Engine.search`; glum's is :func:`smglm.glm.engines.glum.search`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from smglm.errors import DataError, Issue

if TYPE_CHECKING:
    from smglm.config import GLMConfig
    from smglm.config.terms import CVSpec, PenaltySearch
    from smglm.glm.data import Prepared
    from smglm.glm.engines import Engine

__all__ = [
    "SEARCH_COLUMNS",
    "CVPath",
    "Fold",
    "SearchOutcome",
    "check_folds",
    "choose",
    "fold_frame",
    "forward_folds",
    "grouped_folds",
    "make_folds",
    "path_table",
    "random_folds",
    "run_search",
    "search_summary",
]

log = logging.getLogger(__name__)


class Fold(NamedTuple):
    """One fold: the row positions to fit on and the row positions to validate on (a pair,
    as glum's and scikit-learn's ``cv=[(train, test), ...]`` take)."""

    train: np.ndarray
    test: np.ndarray


#: The columns of the path table (``FitResult.search``, ``search.csv``).
SEARCH_COLUMNS = (
    "l1_ratio",
    "alpha_index",
    "alpha",
    "cv_deviance",
    "cv_deviance_se",
    "train_deviance",
    "chosen",
)


@dataclass
class CVPath:
    """What the engine returns from a penalty search.

    Attributes
    ----------
    l1_ratios
        The l1_ratios searched, shape ``(n_l1,)``.
    alphas
        The alphas of each l1_ratio's path, largest first, shape ``(n_l1, n_alphas)``.
    deviance
        The validation deviance (weighted mean unit deviance) of each fold, l1_ratio and
        alpha, shape ``(n_folds, n_l1, n_alphas)``.
    train_deviance
        The same on each fold's training rows.
    seconds
        The seconds the engine took (all folds, all paths).
    n_not_converged
        How many times the engine warned that a fit stopped at ``max_iter``.
    engine_alpha, engine_l1_ratio
        The engine's own choice (lowest mean CV deviance), for checks.
    native
        The engine's fitted object (glum's ``GeneralizedLinearRegressorCV``).
    """

    l1_ratios: np.ndarray
    alphas: np.ndarray
    deviance: np.ndarray
    train_deviance: np.ndarray
    seconds: float = math.nan
    n_not_converged: int = 0
    engine_alpha: float = math.nan
    engine_l1_ratio: float = math.nan
    native: Any = field(default=None, repr=False)


@dataclass
class SearchOutcome:
    """A finished search: the config the refit uses (the chosen ``penalty.alpha`` and
    ``penalty.l1_ratio``, no search), the path table, and ``metrics["search"]``."""

    config: GLMConfig
    table: pd.DataFrame
    summary: dict[str, Any]
    path: CVPath = field(repr=False)


# -- folds ---------------------------------------------------------------------------------


def random_folds(n: int, folds: int, seed: int) -> list[Fold]:
    """``folds`` random folds of ``n`` rows, of sizes differing by at most one, drawn with
    ``seed``. Each fold's positions are sorted."""
    if n < folds:
        raise DataError(
            [
                Issue(
                    "penalty.search.cv.folds",
                    f"{folds} folds need at least {folds} rows; the training data has {n}",
                    folds,
                )
            ]
        )
    order = np.random.default_rng(seed).permutation(n)
    return _from_test_sets(n, [np.sort(part) for part in np.array_split(order, folds)])


def grouped_folds(groups: np.ndarray, folds: int, seed: int, *, column: str = "") -> list[Fold]:
    """Folds that keep every row of one group (one value of ``groups``) together, balanced
    by rows: the groups, shuffled with ``seed`` and then taken largest first, each go to the
    fold with the fewest rows so far."""
    codes, uniques = pd.factorize(pd.Series(groups, dtype=object), use_na_sentinel=True)
    field_ = "penalty.search.cv.group"
    if (codes < 0).any():
        raise DataError(
            [
                Issue(
                    field_,
                    f"column {column!r} has {int((codes < 0).sum())} missing value(s); every "
                    "row needs a group to be put in a fold",
                    column,
                )
            ]
        )
    n_groups = len(uniques)
    if n_groups < folds:
        raise DataError(
            [
                Issue(
                    "penalty.search.cv.folds",
                    f"{folds} folds need at least {folds} groups; column {column!r} "
                    f"(penalty.search.cv.group) has {n_groups}",
                    folds,
                )
            ]
        )
    sizes = np.bincount(codes, minlength=n_groups)
    shuffled = np.random.default_rng(seed).permutation(n_groups)
    order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]  # largest first, ties shuffled
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    rows = np.zeros(folds, dtype=np.int64)
    for g in order:
        k = int(np.argmin(rows))  # the emptiest fold (the first of equals)
        fold_of_group[g] = k
        rows[k] += sizes[g]
    fold_of_row = fold_of_group[codes]
    return _from_test_sets(len(codes), [np.flatnonzero(fold_of_row == k) for k in range(folds)])


def forward_folds(values: pd.Series | np.ndarray, folds: int, *, column: str = "") -> list[Fold]:
    """Forward (time) folds: for each of the last ``folds`` distinct values in sorted order,
    train on the rows with smaller values and validate on the rows of that value. Numbers,
    dates and text sort as such; text that is all numbers (``"9"``, ``"10"``) as numbers."""
    s = pd.Series(values)
    missing = s.isna().to_numpy()
    if missing.any():
        raise DataError(
            [
                Issue(
                    "penalty.search.cv.by",
                    f"column {column!r} has {int(missing.sum())} missing value(s); forward "
                    "folds need a value (e.g. a year) on every row",
                    column,
                )
            ]
        )
    if s.dtype == object or pd.api.types.is_string_dtype(s):  # "9", "10": as numbers
        as_numbers = pd.to_numeric(s, errors="coerce")
        if as_numbers.notna().all():
            s = as_numbers
    try:
        codes, uniques = pd.factorize(s, sort=True)
    except TypeError:  # values of mixed types: order them as text
        codes, uniques = pd.factorize(s.astype(str), sort=True)
    n_values = len(uniques)
    if n_values < folds + 1:
        shown = [_plain(v) for v in uniques[:10]]
        raise DataError(
            [
                Issue(
                    "penalty.search.cv.folds",
                    f"{folds} forward folds on column {column!r} (penalty.search.cv.by) need at "
                    f"least {folds + 1} distinct values (the first one only trains); it has "
                    f"{n_values}: {shown}. Lower penalty.search.cv.folds to at most "
                    f"{max(n_values - 1, 0)} or fold by another column",
                    folds,
                )
            ]
        )
    out = []
    for v in range(n_values - folds, n_values):
        out.append(Fold(np.flatnonzero(codes < v), np.flatnonzero(codes == v)))
    return out


def make_folds(df: pd.DataFrame, spec: CVSpec) -> list[Fold]:
    """The folds ``spec`` (``penalty.search.cv``) asks for on the rows of ``df``, which needs
    only the column of ``spec.group`` or ``spec.by`` (none for random folds)."""
    col = spec.by or spec.group
    if col is not None and col not in df.columns:
        field_ = "penalty.search.cv.by" if spec.by else "penalty.search.cv.group"
        raise DataError([Issue(field_, f"column {col!r} is not in the data", col)])
    if spec.by is not None:
        return forward_folds(df[spec.by], spec.folds, column=spec.by)
    if spec.group is not None:
        groups = df[spec.group].to_numpy(dtype=object)
        return grouped_folds(groups, spec.folds, spec.seed, column=spec.group)
    return random_folds(len(df), spec.folds, spec.seed)


def _from_test_sets(n: int, tests: Sequence[np.ndarray]) -> list[Fold]:
    out = []
    for test in tests:
        is_test = np.zeros(n, dtype=bool)
        is_test[test] = True
        out.append(Fold(np.flatnonzero(~is_test), np.asarray(test, dtype=np.int64)))
    return out


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _check_fold_weights(folds: Sequence[Fold], weights: np.ndarray, what: str) -> None:
    """Every fold needs rows of positive weight to fit on and to validate on."""
    issues = []
    for k, (train, test) in enumerate(folds, start=1):
        for part, rows in (("training", train), ("validation", test)):
            if rows.size == 0 or not float(weights[rows].sum()) > 0:
                issues.append(
                    Issue(
                        "penalty.search.cv",
                        f"fold {k} of {len(folds)} ({what}) has no {part} rows with a "
                        "positive weight; use fewer folds or another fold column",
                        k,
                    )
                )
    if issues:
        raise DataError(issues)


# -- the path table and the choice ---------------------------------------------------------


def path_table(path: CVPath) -> pd.DataFrame:
    """One row per (l1_ratio, alpha): the mean CV deviance over the folds, its standard
    error, the mean training deviance (``chosen`` all False; :func:`choose` sets it)."""
    n_folds, n_l1, n_alphas = path.deviance.shape
    with np.errstate(invalid="ignore"):
        mean = path.deviance.mean(axis=0)
        se = (
            path.deviance.std(axis=0, ddof=1) / math.sqrt(n_folds)
            if n_folds > 1
            else np.full_like(mean, np.nan)
        )
        train = path.train_deviance.mean(axis=0)
    return pd.DataFrame(
        {
            "l1_ratio": np.repeat(np.asarray(path.l1_ratios, dtype=float), n_alphas),
            "alpha_index": np.tile(np.arange(n_alphas), n_l1),
            "alpha": np.asarray(path.alphas, dtype=float).reshape(-1),
            "cv_deviance": mean.reshape(-1),
            "cv_deviance_se": se.reshape(-1),
            "train_deviance": train.reshape(-1),
            "chosen": np.zeros(n_l1 * n_alphas, dtype=bool),
        },
        columns=list(SEARCH_COLUMNS),
    )


def choose(table: pd.DataFrame, rule: str) -> int:
    """The row of ``table`` (:func:`path_table`) that ``rule`` chooses: ``min`` the lowest
    mean CV deviance (the first of equals, in the table's order, as glum); ``1se`` the
    largest alpha of that row's l1_ratio whose mean CV deviance is at most the minimum plus
    its standard error."""
    cv = table["cv_deviance"].to_numpy(dtype=float)
    finite = np.isfinite(cv)
    if not finite.any():
        raise DataError(
            [
                Issue(
                    "penalty.search",
                    "no alpha of the path has a finite CV deviance (every fit failed on some "
                    "fold); check the data, or give penalty.search.alphas",
                )
            ]
        )
    best = int(np.flatnonzero(finite)[np.argmin(cv[finite])])
    if rule == "min":
        return best
    se = float(table["cv_deviance_se"].iloc[best])
    limit = cv[best] + (se if math.isfinite(se) else 0.0)
    same = table["l1_ratio"].to_numpy() == table["l1_ratio"].iloc[best]
    within = np.flatnonzero(same & finite & (cv <= limit))
    alphas = table["alpha"].to_numpy(dtype=float)
    return int(within[np.argmax(alphas[within])])  # the largest alpha (the first of equals)


def search_summary(
    table: pd.DataFrame, row: int, spec: PenaltySearch, path: CVPath
) -> dict[str, Any]:
    """``metrics["search"]``: the chosen alpha and l1_ratio, the rule, the number of folds,
    the chosen row's mean CV deviance and its standard error, the number of fits."""
    n_folds, n_l1, n_alphas = path.deviance.shape
    chosen = table.iloc[row]
    return {
        "alpha": float(chosen["alpha"]),
        "l1_ratio": float(chosen["l1_ratio"]),
        "rule": spec.rule,
        "folds": int(n_folds),
        "cv_deviance": float(chosen["cv_deviance"]),
        "cv_deviance_se": float(chosen["cv_deviance_se"]),
        "n_fits": int(n_folds * n_l1 * n_alphas),
        "seconds": float(path.seconds),
    }


# -- the search in a fit -------------------------------------------------------------------


def fold_frame(df: pd.DataFrame, prepared: Prepared, spec: CVSpec) -> pd.DataFrame:
    """The fold column of ``spec`` (none for random folds) on the rows ``prepared`` kept
    (``missing: drop`` may have dropped some; the prepared predictors keep the data's row
    labels, which :func:`smglm.fit` makes unique for a search)."""
    col = spec.by or spec.group
    frame = df[[col]] if col is not None else pd.DataFrame(index=df.index)
    if len(frame) == len(prepared.y):
        return frame
    return frame.loc[prepared.X.index]


def check_folds(config: GLMConfig, df: pd.DataFrame, prepared: Prepared) -> None:
    """Build the folds of ``config.penalty.search`` on the training data, for the checks
    before a job is launched (too few groups or periods, missing fold values, a fold
    without weight): a :class:`~smglm.errors.DataError` as the job would raise."""
    spec = config.penalty.search
    if spec is None:
        return
    if len(df) != len(prepared.y) and not df.index.is_unique:
        return  # rows dropped and labels repeated: the job resets the labels, then checks
    folds = make_folds(fold_frame(df, prepared, spec.cv), spec.cv)
    _check_fold_weights(folds, prepared.weights, _fold_kind(spec.cv))


def _fold_kind(cv: CVSpec) -> str:
    if cv.by:
        return f"forward folds on {cv.by!r}"
    if cv.group:
        return f"grouped by {cv.group!r}"
    return f"random, seed {cv.seed}"


def run_search(
    config: GLMConfig,
    df: pd.DataFrame,
    prepared: Prepared,
    scaled: Prepared,
    *,
    lower_bounds: np.ndarray | None = None,
    upper_bounds: np.ndarray | None = None,
    engine: Engine | None = None,
) -> SearchOutcome:
    """Search the penalty of ``config`` (which has ``penalty.search``) on the training data.

    ``df`` is the training data as read (its fold column), ``prepared`` its checked form and
    ``scaled`` the form the engine fits (:func:`smglm.glm.fitting._rescaled`; the bounds are
    on its scale), so that the alphas mean what they mean in the refit. ``engine`` (default:
    the default engine) fits the paths (:meth:`smglm.glm.engines.Engine.search`).
    """
    from smglm.glm.engines import get_engine

    engine_search = (engine or get_engine()).search
    spec = config.penalty.search
    assert spec is not None
    folds = make_folds(fold_frame(df, prepared, spec.cv), spec.cv)
    what = _fold_kind(spec.cv)
    _check_fold_weights(folds, prepared.weights, what)
    log.info(
        "penalty search: %d folds (%s; validation rows %s), l1_ratio %s, %s alphas",
        len(folds),
        what,
        [int(t.size) for _, t in folds],
        spec.l1_ratio,
        len(spec.alphas) if spec.alphas else spec.n_alphas,
    )
    try:
        path = engine_search(
            config, scaled, folds, lower_bounds=lower_bounds, upper_bounds=upper_bounds
        )
    except np.linalg.LinAlgError as exc:
        raise DataError(
            [
                Issue(
                    "penalty.search",
                    f"the solver met a singular system on a fold ({exc}): the predictors "
                    f"{config.predictors} are (nearly) collinear on some fold's rows; drop or "
                    "group predictors, use fewer folds, or give larger penalty.search.alphas",
                )
            ]
        ) from None
    if path.n_not_converged:
        import warnings

        warnings.warn(
            f"penalty search: glum warned {path.n_not_converged} time(s) that a fit of the "
            f"path stopped at max_iter ({config.max_iter}) before converging; those CV "
            "deviances are approximate",
            stacklevel=3,
        )
    table = path_table(path)
    row = choose(table, spec.rule)
    table.loc[row, "chosen"] = True
    summary = search_summary(table, row, spec, path)
    log.info(
        "penalty search chose alpha=%.6g l1_ratio=%g (rule %s): CV deviance %.6g +/- %.3g "
        "over %d folds; %d fits in %.2f s",
        summary["alpha"],
        summary["l1_ratio"],
        spec.rule,
        summary["cv_deviance"],
        summary["cv_deviance_se"],
        summary["folds"],
        summary["n_fits"],
        path.seconds,
    )
    penalty = config.penalty.model_copy(
        update={"alpha": summary["alpha"], "l1_ratio": summary["l1_ratio"], "search": None}
    )
    refit = config.model_copy(update={"penalty": penalty})
    return SearchOutcome(config=refit, table=table, summary=summary, path=path)
