"""The fitting engines: what an engine is given, what it returns, and which engines exist.

smglm checks the data (:func:`smglm.glm.data.prepare`), then hands the validated config and the
prepared data to an engine. The engine returns the coefficients and what smglm needs for its
R-convention statistics (:class:`EngineFit`): smglm computes deviances, dispersion,
log-likelihood, AIC/BIC and standard errors itself, the same way whatever the engine.

Each engine declares what it can fit (:class:`Capabilities`: families, links, penalties, bounds,
kinds of terms); :func:`check_engine` turns a config the engine cannot fit into
:class:`~smglm.errors.Issue` objects, before any data is read or any job is launched.

Two engines: glum (the default, in memory) and Spark (``"spark"``: Spark MLlib's
``GeneralizedLinearRegression``, :mod:`smglm.glm.engines.spark`, which fits from the data
itself rather than from prepared rows). Adding one is a module with a ``fit`` function of
:class:`Engine`'s signature (returning an :class:`EngineFit`, its heavy libraries imported
inside ``fit``), plus its entry in :data:`ENGINES` declaring its capabilities. The family
objects (:mod:`smglm.glm.families`) say how each family maps to an engine
(``FamilySpec.glum()``, ``FamilySpec.spark_params(link)``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from smglm.config.families import FAMILIES, FAMILY_LINKS
from smglm.errors import ConfigError, Issue, did_you_mean

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from smglm.config import GLMConfig
    from smglm.glm.data import Prepared
    from smglm.glm.search import CVPath

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "Capabilities",
    "Engine",
    "EngineFit",
    "ModuleEngine",
    "check_engine",
    "get_engine",
]

#: The engine :func:`smglm.fit` and training jobs use.
DEFAULT_ENGINE = "glum"


@dataclass
class EngineFit:
    """What an engine returns from a fit.

    Attributes
    ----------
    intercept
        The intercept (0.0 without one).
    coef
        The coefficients, in the order of ``feature_names``.
    feature_names
        The coefficients' names; must equal :func:`smglm.glm.fitting.feature_names` of the
        prepared data (numeric columns by name, ``column[level]`` without the reference level).
    xb
        ``X @ coef`` on the training rows: the linear predictor without the intercept and the
        offset.
    information
        ``information(W)``: the weighted cross-product ``X' diag(W) X`` of the design, with a
        first row and column for the intercept when there is one. smglm calls it with R's
        working weights to get the standard errors.
    n_iter, converged, seconds
        The solver's iterations, whether it converged, and the seconds the fit took.
    convergence
        The objective per iteration (``iteration, objective, convergence``), or None.
    native
        The engine's own fitted object (glum's estimator), kept as ``FitResult.estimator``.
    aliased
        The coefficients left out of the fit because their column is a linear combination of
        earlier ones (:func:`smglm.glm.stats.aliased_columns`, R's ``NA`` coefficients); their
        ``coef`` is 0.
    """

    intercept: float
    coef: np.ndarray
    feature_names: list[str]
    xb: np.ndarray
    information: Callable[[np.ndarray], np.ndarray]
    n_iter: int
    converged: bool
    seconds: float
    convergence: pd.DataFrame | None = None
    native: Any = field(default=None, repr=False)
    aliased: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Capabilities:
    """What an engine can fit.

    Attributes
    ----------
    links
        For each family the engine fits, the links it takes with it.
    penalties
        The penalties it supports: ``"l1"`` (lasso part, ``l1_ratio > 0``) and ``"l2"`` (ridge
        part, ``l1_ratio < 1``), each only when ``penalty.alpha > 0``.
    bounds
        Whether it takes box constraints on coefficients (``constraints.bounds``).
    terms
        The kinds of terms it fits: ``"numeric"``, ``"categorical"``, ``"bands"``,
        ``"spline"``, ``"monotone"`` (a monotone spline), ``"interaction"``, ``"fixed"``.
    search
        Whether it runs a penalty search (``penalty.search``).
    penalized_bounds_away_from_zero
        Whether its penalized fits keep a coefficient within bounds that exclude 0 (e.g.
        ``[0.02, 0.05]``). glum's do not reliably: the solver starts at 0, its line search
        fails and it stops at ``max_iter`` outside the bound; a penalty search (whose fits
        are all penalized) with such a bound is refused.
    """

    links: Mapping[str, tuple[str, ...]]
    penalties: frozenset[str] = frozenset({"l1", "l2"})
    bounds: bool = True
    terms: frozenset[str] = frozenset(
        {"numeric", "categorical", "bands", "spline", "monotone", "interaction", "fixed"}
    )
    search: bool = True
    penalized_bounds_away_from_zero: bool = False

    @property
    def families(self) -> tuple[str, ...]:
        """The families the engine fits."""
        return tuple(self.links)

    def issues(self, config: GLMConfig, engine: str) -> list[Issue]:
        """What in ``config`` an engine called ``engine`` with these capabilities cannot fit."""
        out: list[Issue] = []
        family, link = config.family, config.resolved_link
        if family not in self.links:
            out.append(
                Issue(
                    "family",
                    f"engine {engine!r} cannot fit family {family!r}; it fits "
                    f"{list(self.families)}",
                    family,
                )
            )
        elif link not in self.links[family]:
            out.append(
                Issue(
                    "link",
                    f"engine {engine!r} cannot fit family {family!r} with link {link!r}; "
                    f"with this family it takes {list(self.links[family])}",
                    link,
                )
            )
        penalty = config.penalty
        if penalty.alpha > 0:
            for kind, used in (("l1", penalty.l1_ratio > 0), ("l2", penalty.l1_ratio < 1)):
                if used and kind not in self.penalties:
                    out.append(
                        Issue(
                            "penalty.l1_ratio",
                            f"engine {engine!r} has no {kind} penalty (l1_ratio "
                            f"{penalty.l1_ratio} with alpha {penalty.alpha} needs one); it "
                            f"supports {sorted(self.penalties) or 'no penalty'}",
                            penalty.l1_ratio,
                        )
                    )
        if config.constraints.bounds and not self.bounds:
            out.append(
                Issue(
                    "constraints.bounds",
                    f"engine {engine!r} takes no bounds on coefficients; remove "
                    f"{sorted(config.constraints.bounds)}",
                    dict(config.constraints.bounds),
                )
            )
        out += self._search_issues(config, engine)
        if config.categorical and "categorical" not in self.terms:
            out.append(
                Issue(
                    "categorical",
                    f"engine {engine!r} fits no categorical terms ({config.categorical}); it "
                    f"fits {sorted(self.terms)} terms",
                    list(config.categorical),
                )
            )
        kinds: dict[str, tuple[str, Any]] = {}
        for col, spec in config.terms.items():
            if spec.spline is not None:
                kind = "spline" if spec.spline.monotone is None else "monotone"
                kinds.setdefault(kind, (f"terms.{col}.spline", col))
            elif spec.bands is not None:
                kinds.setdefault("bands", (f"terms.{col}.bands", col))
        if config.interactions:
            kinds["interaction"] = ("interactions", [list(p) for p in config.interactions])
        if config.fixed:
            kinds["fixed"] = ("fixed", sorted(config.fixed))
        for kind, (field_, value) in kinds.items():
            if kind not in self.terms:
                out.append(
                    Issue(
                        field_,
                        f"engine {engine!r} fits no {kind} terms; it fits "
                        f"{sorted(self.terms)} terms",
                        value,
                    )
                )
        return out

    def _search_issues(self, config: GLMConfig, engine: str) -> list[Issue]:
        search = config.penalty.search
        if search is None:
            return []
        if not self.search:
            return [
                Issue(
                    "penalty.search",
                    f"engine {engine!r} has no penalty search; give penalty.alpha and "
                    "penalty.l1_ratio instead",
                )
            ]
        out = []
        if not self.penalized_bounds_away_from_zero:
            for term, (lo, hi) in config.constraints.bounds.items():
                if (lo is not None and lo > 0) or (hi is not None and hi < 0):
                    out.append(
                        Issue(
                            f"constraints.bounds.{term}",
                            f"bounds [{_bound(lo)}, {_bound(hi)}] exclude 0, which engine "
                            f"{engine!r} cannot hold in the penalized fits of penalty.search "
                            "(its solver starts at 0 and stops outside such bounds); with a "
                            "search, give bounds that allow 0 (e.g. [0, null] for a positive "
                            "effect), or remove penalty.search",
                            [lo, hi],
                        )
                    )
        return out


def _bound(value: float | None) -> str:
    return "null" if value is None else f"{value:g}"


class Engine(Protocol):
    """A fitting engine."""

    @property
    def name(self) -> str:
        """The engine's name, as in :data:`ENGINES`."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        """What the engine can fit."""
        ...

    def check(self, config: GLMConfig) -> list[Issue]:
        """What in ``config`` the engine cannot fit (empty when it can); cheap: no data, no
        heavy import."""
        ...

    def fit(
        self,
        config: GLMConfig,
        prepared: Prepared,
        *,
        lower_bounds: np.ndarray | None = None,
        upper_bounds: np.ndarray | None = None,
    ) -> EngineFit:
        """Fit ``config`` (validated and resolved) on ``prepared`` (checked data). The bounds,
        when given, are per coefficient in :func:`~smglm.glm.fitting.feature_names` order."""
        ...

    def search(
        self,
        config: GLMConfig,
        prepared: Prepared,
        folds: Sequence[tuple[np.ndarray, np.ndarray]],
        *,
        lower_bounds: np.ndarray | None = None,
        upper_bounds: np.ndarray | None = None,
    ) -> CVPath:
        """The penalty search's paths (``config.penalty.search``) on ``folds`` (row positions
        to fit on, to validate on): :class:`~smglm.glm.search.CVPath`. Called only when
        ``capabilities.search``; :mod:`smglm.glm.search` builds the folds and chooses."""
        ...


@dataclass(frozen=True)
class ModuleEngine:
    """An engine whose ``fit`` is the function of the same name in ``module``, imported on the
    first fit (so checking a config never imports the engine's libraries)."""

    name: str
    module: str
    capabilities: Capabilities

    def check(self, config: GLMConfig) -> list[Issue]:
        """What in ``config`` the engine cannot fit (see :meth:`Capabilities.issues`)."""
        return self.capabilities.issues(config, self.name)

    def fit(
        self,
        config: GLMConfig,
        prepared: Prepared,
        *,
        lower_bounds: np.ndarray | None = None,
        upper_bounds: np.ndarray | None = None,
    ) -> EngineFit:
        """Import ``module`` and run its ``fit``."""
        fit: Any = importlib.import_module(self.module).fit
        result: EngineFit = fit(
            config, prepared, lower_bounds=lower_bounds, upper_bounds=upper_bounds
        )
        return result

    def search(
        self,
        config: GLMConfig,
        prepared: Prepared,
        folds: Sequence[tuple[np.ndarray, np.ndarray]],
        *,
        lower_bounds: np.ndarray | None = None,
        upper_bounds: np.ndarray | None = None,
    ) -> CVPath:
        """Import ``module`` and run its ``search``."""
        search: Any = importlib.import_module(self.module).search
        path: CVPath = search(
            config, prepared, folds, lower_bounds=lower_bounds, upper_bounds=upper_bounds
        )
        return path


#: The links Spark's ``GeneralizedLinearRegression`` fits, per family (as
#: ``FamilySpec.spark_params`` maps them; inverse Gaussian and Tweedie through its tweedie
#: family with a link power): kept here so that checking a config imports no family code.
_SPARK_LINKS: dict[str, tuple[str, ...]] = {
    "gaussian": ("identity", "log", "inverse"),
    "binomial": ("logit", "probit", "cloglog"),
    "poisson": ("log", "identity", "sqrt"),
    "gamma": ("log", "inverse", "identity"),
    "inverse_gaussian": ("log", "identity", "inverse"),
    "tweedie": ("log", "identity", "inverse"),
}

#: The engines by name.
ENGINES: dict[str, Engine] = {
    "glum": ModuleEngine(
        name="glum",
        module="smglm.glm.engines.glum",
        capabilities=Capabilities(links={f: FAMILY_LINKS[f] for f in FAMILIES}),
    ),
    # Spark MLlib's GeneralizedLinearRegression (smglm.glm.engines.spark): no penalty (its
    # regParam is not glum's alpha), no bounds, no search, no splines; at most 4096 design
    # columns (checked by its driver once the levels are known)
    "spark": ModuleEngine(
        name="spark",
        module="smglm.glm.engines.spark",
        capabilities=Capabilities(
            links={
                f: links
                for f in FAMILIES
                if (links := tuple(x for x in FAMILY_LINKS[f] if x in _SPARK_LINKS.get(f, ())))
            },
            penalties=frozenset(),
            bounds=False,
            terms=frozenset({"numeric", "categorical", "bands", "interaction", "fixed"}),
            search=False,
        ),
    ),
}


def get_engine(name: str = DEFAULT_ENGINE) -> Engine:
    """The engine called ``name``; a :class:`~smglm.errors.ConfigError` naming the field
    ``engine`` when there is none."""
    engine = ENGINES.get(name)
    if engine is None:
        raise ConfigError([_unknown_engine(name)])
    return engine


def check_engine(config: GLMConfig, engine: str | Engine = DEFAULT_ENGINE) -> list[Issue]:
    """What in ``config`` the engine cannot fit (an unknown engine name is one issue);
    :func:`smglm.fit` and :func:`smglm.train` raise them as a
    :class:`~smglm.errors.ConfigError` before reading data or launching a job."""
    if isinstance(engine, str):
        if engine not in ENGINES:
            return [_unknown_engine(engine)]
        engine = ENGINES[engine]
    return engine.check(config)


def _unknown_engine(name: str) -> Issue:
    return Issue(
        "engine",
        f"unknown engine {name!r}; choose one of {sorted(ENGINES)}.{did_you_mean(name, ENGINES)}",
        name,
    )
