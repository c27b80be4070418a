"""FitResult: a fitted GLM's coefficients, metrics and portable model; saving and loading the
model directory (``model.json``, ``coefficients.csv``, ``metrics.json``, ``config.yaml``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from smglm.config import GLMConfig
from smglm.errors import ModelError
from smglm.glm.io import EXACT_FLOATS
from smglm.glm.model import ALIASED_NOTE, PortableModel

if TYPE_CHECKING:
    from smglm.glm.report import Report

__all__ = ["FitResult", "json_safe", "load_model"]

MODEL_FILES = ("model.json", "coefficients.csv", "metrics.json", "config.yaml")
#: The penalty search's path table, next to ``coefficients.csv`` (:attr:`FitResult.search`).
SEARCH_FILE = "search.csv"
_SEARCH_DTYPES = {
    "l1_ratio": float,
    "alpha_index": int,
    "alpha": float,
    "cv_deviance": float,
    "cv_deviance_se": float,
    "train_deviance": float,
    "chosen": bool,
}


@dataclass
class FitResult:
    """A fitted GLM.

    Attributes
    ----------
    config
        The resolved GLMConfig (every default explicit).
    model
        The :class:`~smglm.glm.model.PortableModel` (what ``model.json`` holds).
    coefficients
        ``term, estimate, std_error, statistic, p_value, ci_lower, ci_upper`` (95% Wald;
        t-based where the dispersion is estimated, as R), plus ``relativity`` for log links,
        and ``note`` when some term needs one: ``aliased: ...`` (R's ``NA``: the column is a
        linear combination of earlier ones; no estimate, scored as 0), ``separated: ...`` (the
        data separate the target: the estimate is unbounded) or ``no standard error: ...``.
        :meth:`notes` sums them up as R's ``summary`` does.
    metrics
        ``{"train": {...}, "test": {...}, "fit": {...}}`` as in ``metrics.json``.
    convergence
        The solver's objective per iteration (None for a loaded model).
    estimator
        The fitted glum estimator (None for a loaded model).
    fitted
        With ``fit(..., keep_fitted=True)``: per split (``"train"``, ``"test"``), the data,
        its :class:`~smglm.glm.data.Prepared` form and the fitted means; else None.
    covariance
        The estimated coefficients' covariance matrix (R's ``vcov``: the dispersion times the
        inverse expected information), index and columns the estimated terms (``intercept``
        first); NaN rows and columns for aliased terms. Fixed terms are not in it.
        ``covariance.csv`` in the model directory; None when unknown.
    search
        With ``penalty.search``: the cross-validation path, one row per (l1_ratio, alpha):
        ``l1_ratio, alpha_index, alpha, cv_deviance, cv_deviance_se, train_deviance,
        chosen`` (``search.csv``; see :mod:`smglm.glm.search`). The chosen row's alpha and
        l1_ratio are those of the fitted model (``metrics["search"]``); None without a search.
    """

    config: GLMConfig
    model: PortableModel
    coefficients: pd.DataFrame
    metrics: dict[str, Any]
    convergence: pd.DataFrame | None = None
    estimator: Any = field(default=None, repr=False)
    path: Path | None = None
    fitted: dict[str, tuple[Any, Any, Any]] | None = field(default=None, repr=False, compare=False)
    covariance: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    search: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    # -- convenience ---------------------------------------------------------------------
    @property
    def fit_seconds(self) -> float:
        """Seconds glum spent fitting (data checks and statistics excluded)."""
        seconds = (self.metrics.get("fit") or {}).get("seconds")
        return math.nan if seconds is None else float(seconds)

    @property
    def engine(self) -> str:
        """The engine that fitted the model: ``"glum"``, or ``"spark"``
        (``metrics["fit"]["engine"]``)."""
        return str((self.metrics.get("fit") or {}).get("engine") or "glum")

    @property
    def n_coefficients(self) -> int:
        """The coefficient table's rows that were estimated (fixed terms excluded)."""
        table = self.coefficients
        if "note" not in table.columns:
            return len(table)
        return int((table["note"].fillna("").astype(str) != "fixed").sum())

    def predict(self, data: pd.DataFrame, *, use_offset: bool = True) -> np.ndarray:
        """Predicted means for ``data`` (see :meth:`PortableModel.predict`)."""
        return self.model.predict(data, use_offset=use_offset)

    def report(
        self, data: Any = None, test_data: Any = None, *, out: str | Path | None = None
    ) -> Report:
        """The fit's report (metrics, coefficients, convergence; with ``data=`` also one-ways,
        lift, Lorenz/Gini and residuals): HTML in a notebook, text elsewhere.

        See :func:`smglm.glm.report.report` for the arguments.
        """
        from smglm.glm.report import report

        return report(self, data, test_data, out=out)

    def summary(self) -> str:
        """A plain-text summary: the model, the coefficient table and the metrics."""
        cfg = self.config
        lines = [
            f"GLM {cfg.family}/{cfg.resolved_link}: {cfg.target} ~ "
            + (" + ".join(cfg.predictors) or "1"),
        ]
        if cfg.exposure or cfg.offset:
            lines[0] += f"  (offset: {'log(' + cfg.exposure + ')' if cfg.exposure else cfg.offset})"
        with pd.option_context("display.width", 120, "display.max_rows", 200):
            lines.append(self.coefficients.to_string(index=False, float_format=_fmt, na_rep="NA"))
        lines += self.notes()
        for split in ("train", "test"):
            m = self.metrics.get(split)
            if m:
                lines.append(
                    f"{split}: n={_num(m.get('n_obs'), 'd')}  "
                    f"deviance={_num(m.get('deviance'), '.6g')}  "
                    f"explained={_num(m.get('explained_deviance'), '.4f')}  "
                    f"AIC={_num(m.get('aic'), '.6g')}  gini={_num(m.get('gini'), '.4f')}  "
                    f"dispersion={_num(m.get('dispersion'), '.4g')}"
                )
        search = self.metrics.get("search")
        if search:
            lines.append(
                f"penalty search: alpha={_num(search.get('alpha'), '.6g')} "
                f"l1_ratio={_num(search.get('l1_ratio'), 'g')} (rule {search.get('rule')}, "
                f"{search.get('folds')} folds, CV deviance "
                f"{_num(search.get('cv_deviance'), '.6g')} +/- "
                f"{_num(search.get('cv_deviance_se'), '.3g')})"
            )
        f = self.metrics.get("fit", {})
        if f:
            lines.append(
                f"fit: {f.get('iterations')} iterations, converged={f.get('converged')}, "
                f"{_num(f.get('seconds'), '.2f')} s"
            )
        return "\n".join(lines)

    def notes(self) -> list[str]:
        """R's notes on the coefficients: the terms not defined because of singularities
        (aliased: a linear combination of earlier columns; estimate NaN, scored as 0) and those
        the data separate (their estimates run off to infinity)."""
        table = self.coefficients
        if "note" not in table.columns:
            return []
        notes = table["note"].fillna("").astype(str)
        aliased = table.loc[notes.str.startswith("aliased"), "term"].astype(str).tolist()
        separated = table.loc[notes.str.startswith("separated"), "term"].astype(str).tolist()
        no_se = table.loc[notes.str.startswith("no standard error"), "term"].astype(str).tolist()
        out = []
        if aliased:
            out.append(
                f"Coefficients: ({len(aliased)} not defined because of singularities: "
                f"{', '.join(aliased)})"
            )
        if separated:
            out.append(
                f"Separation: the data separate the target for {', '.join(separated)}; their "
                "estimates are unbounded and their standard errors meaningless"
            )
        if no_se:
            out.append(
                f"No standard errors for {', '.join(no_se)}: the information matrix is "
                "singular at the estimate"
            )
        return out

    def __repr__(self) -> str:
        m = self.metrics.get("train", {})
        return (
            f"FitResult({self.config.family}/{self.config.resolved_link}, "
            f"target={self.config.target!r}, terms={len(self.coefficients)}, "
            f"n_obs={m.get('n_obs')}, deviance={_num(m.get('deviance'), '.6g')})"
        )

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model directory: ``model.json``, ``coefficients.csv``, ``metrics.json``,
        ``config.yaml`` (and ``convergence.csv`` and ``covariance.csv`` when known,
        ``search.csv`` after a penalty search). Returns the folder."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save(out / "model.json")
        self.coefficients.to_csv(out / "coefficients.csv", index=False, float_format="%.17g")
        (out / "metrics.json").write_text(
            json.dumps(json_safe(self.metrics), indent=1), encoding="utf-8"
        )
        self.config.save(out / "config.yaml")
        if self.convergence is not None:
            self.convergence.to_csv(out / "convergence.csv", index=False, float_format="%.17g")
        if self.covariance is not None:
            self.covariance.to_csv(out / "covariance.csv", index_label="term", float_format="%.17g")
        if self.search is not None:
            self.search.to_csv(out / SEARCH_FILE, index=False, float_format="%.17g")
        return out


def load_model(path: str | Path) -> FitResult:
    """Read a model directory written by :meth:`FitResult.save` (or by a training job).

    ``path`` may also be a ``model.json`` file alone; then only ``model`` is filled and the
    coefficient table is rebuilt without standard errors.
    """
    p = Path(path)
    if p.is_file() and p.suffix == ".json":
        model = PortableModel.load(p)
        return FitResult(
            config=_config_from_model(model),
            model=model,
            coefficients=_bare_table(model),
            metrics={},
            path=p,
        )
    if not p.is_dir():
        raise ModelError(f"no model directory at {str(p)!r}")
    model = PortableModel.load(p / "model.json")
    config = (
        GLMConfig.from_file(p / "config.yaml")
        if (p / "config.yaml").exists()
        else _config_from_model(model)
    )
    coefs = (
        pd.read_csv(p / "coefficients.csv", keep_default_na=False, na_values=[""], **EXACT_FLOATS)
        if (p / "coefficients.csv").exists()
        else _bare_table(model)
    )
    metrics = (
        json.loads((p / "metrics.json").read_text(encoding="utf-8"))
        if (p / "metrics.json").exists()
        else {}
    )
    conv = (
        pd.read_csv(p / "convergence.csv", **EXACT_FLOATS)
        if (p / "convergence.csv").exists()
        else None
    )
    cov = (
        pd.read_csv(p / "covariance.csv", index_col="term", **EXACT_FLOATS)
        if (p / "covariance.csv").exists()
        else None
    )
    if cov is not None:
        cov.index = cov.index.astype(str)
        cov.columns = cov.columns.astype(str)
    search = (
        pd.read_csv(p / SEARCH_FILE, dtype=_SEARCH_DTYPES, **EXACT_FLOATS)
        if (p / SEARCH_FILE).exists()
        else None
    )
    return FitResult(
        config=config,
        model=model,
        coefficients=coefs,
        metrics=metrics,
        convergence=conv,
        path=p,
        covariance=cov,
        search=search,
    )


def _config_from_model(model: PortableModel) -> GLMConfig:
    return GLMConfig(
        target=model.target or "y",
        predictors=model.input_columns,
        family=model.family,
        link=model.link,
        weights=model.weights,
        offset=model.offset,
        exposure=model.exposure,
        tweedie_power=model.tweedie_power,
        theta=model.theta,
    )


def _bare_table(model: PortableModel) -> pd.DataFrame:
    rows: list[tuple[str, float]] = [("intercept", model.intercept)]
    fixed: list[str] = []
    for t in model.terms:
        names = t.columns
        rows += list(zip(names, t.coefficient_vector().tolist(), strict=True))
        if getattr(t, "fixed", False):
            fixed += names
    table = pd.DataFrame(rows, columns=["term", "estimate"])
    if model.aliased or fixed:
        aliased = table["term"].isin(model.aliased)
        table.loc[aliased, "estimate"] = math.nan
        table["note"] = np.where(
            aliased, ALIASED_NOTE, np.where(table["term"].isin(fixed), "fixed", "")
        )
    return table


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _num(value: Any, spec: str) -> str:
    """``value`` formatted with ``spec``; "n/a" when it is missing (None in ``metrics.json``:
    a NaN or infinite metric) or not a number."""
    if value is None or isinstance(value, bool):
        return "n/a" if value is None else str(value)
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        try:
            return format(float(value), spec) if spec != "d" else str(value)
        except (TypeError, ValueError):
            return "n/a"


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None and numpy scalars as Python numbers (for JSON,
    which has neither): what ``metrics.json`` holds."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    return obj
