"""The portable model: ``model.json``, scored with numpy alone (no glum, no pickle).

Format (``format_version`` 2; version-1 files, which only have numeric and categorical terms,
still load)::

    {"format": "smglm.glm", "format_version": 2, "smglm_version": "0.1.0",
     "family": "poisson", "link": "log", "tweedie_power": null, "theta": null,
     "target": "claim_count", "weights": null, "offset": null, "exposure": "exposure",
     "intercept": -2.3,
     "terms": [{"name": "density_log", "type": "numeric", "coefficient": 0.09, "fixed": true},
               {"name": "area", "type": "categorical", "levels": ["C", "A", "B"],
                "reference": "C", "coefficients": [0.0, 0.12, -0.05]},
               {"name": "bonus_malus", "type": "bands", "cuts": [80, 100],
                "levels": ["[-Inf,80)", "[80,100)", "[100,Inf)"], "reference": "[-Inf,80)",
                "coefficients": [0.0, 0.2, 0.5]},
               {"name": "driver_age", "type": "spline", "kind": "natural",
                "knots": [30, 45], "boundary": [18, 90], "monotone": null,
                "coefficients": [-0.2, -0.4, -0.1]},
               {"name": "driver_age:area", "type": "interaction",
                "terms": ["driver_age", "area"], "coefficients": [[0, 0.1, 0], ...]}]}

Each term type and its scoring is in :mod:`smglm.glm.terms`. A level term's ``coefficients``
align with its ``levels``; the reference level's is 0 (a ``fixed`` term's are the fixed log
relativities). Scoring: ``eta = intercept + sum(terms) + offset`` (offset = log(exposure) when
the model was fitted with an exposure), ``mu = linkinv(eta)``. A level not seen in training
scores as the reference level and is counted in a warning; a missing value of a term with
``missing: level`` scores as the level ``(missing)``; a natural spline extrapolates linearly
beyond its boundary knots, a monotone one is held at its boundary values; a missing predictor
column is an error. When the offset or exposure column is absent, the prediction is per unit
exposure (offset 0).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smglm.errors import ModelError, did_you_mean
from smglm.glm.links import linkinv
from smglm.glm.terms import (
    InteractionTerm,
    MainTerm,
    NumericTerm,
    Term,
    numeric_values,
    term_from_dict,
)

__all__ = [
    "ALIASED_NOTE",
    "FORMAT_VERSION",
    "PortableModel",
    "UnseenLevelWarning",
]

FORMAT = "smglm.glm"
FORMAT_VERSION = 2
#: The format versions this smglm reads.
READABLE_VERSIONS = (1, 2)


#: The ``note`` of an aliased term in the coefficient table (R: "not defined because of
#: singularities").
ALIASED_NOTE = "aliased: not defined because of singularities"


class UnseenLevelWarning(UserWarning):
    """Scoring met categorical levels not seen in training; they scored as the reference."""


@dataclass(frozen=True)
class PortableModel:
    """A fitted GLM as plain numbers: family, link, intercept and terms
    (:mod:`smglm.glm.terms`: main terms, one per predictor column, then interactions)."""

    family: str
    link: str
    intercept: float
    terms: list[Term]
    target: str | None = None
    weights: str | None = None
    offset: str | None = None
    exposure: str | None = None
    tweedie_power: float | None = None
    theta: float | None = None
    smglm_version: str = field(default="", compare=False)
    #: The terms left out of the fit as linear combinations of earlier ones (R's ``NA``
    #: coefficients): scored as 0, shown without an estimate. In ``model.json`` only when some.
    aliased: list[str] = field(default_factory=list)

    # -- scoring -----------------------------------------------------------------------------
    @property
    def main_terms(self) -> list[MainTerm]:
        """The terms of one predictor column each (interactions excluded)."""
        return [t for t in self.terms if not isinstance(t, InteractionTerm)]

    @property
    def input_columns(self) -> list[str]:
        """The predictor columns scoring needs (offset/exposure are optional)."""
        return [t.name for t in self.main_terms]

    def term(self, name: str) -> Term:
        """The term called ``name`` (a predictor column, or ``a:b`` for an interaction)."""
        for t in self.terms:
            if t.name == name:
                return t
        names = [t.name for t in self.terms]
        raise ModelError(
            f"no term {name!r}; the model's terms are {names}.{did_you_mean(name, names)}"
        )

    def term_effect(self, name: str, values: Any) -> np.ndarray:
        """The contribution of main term ``name`` (a predictor column) to the linear predictor
        at the raw ``values`` (numbers or levels), e.g. a spline's curve on a grid; unseen
        levels give the reference's. Interactions are excluded."""
        term = self.term(name)
        if isinstance(term, InteractionTerm):
            raise ModelError(f"{name!r} is an interaction; term_effect takes a main term")
        col = values if isinstance(values, pd.Series) else pd.Series(list(np.ravel(values)))
        return np.asarray(term.effect(term.encode(col)), dtype=float)

    def linear_predictor(
        self, data: pd.DataFrame, *, use_offset: bool = True
    ) -> tuple[np.ndarray, dict[str, int]]:
        """``eta`` for each row, and the count of unseen levels per categorical column."""
        if not isinstance(data, pd.DataFrame):
            data = pd.DataFrame(data)
        missing = [c for c in self.input_columns if c not in data.columns]
        if missing:
            hint = did_you_mean(missing[0], [str(c) for c in data.columns])
            raise ModelError(
                f"missing column(s) {missing}: the model needs {self.input_columns}.{hint}"
            )
        n = len(data)
        eta = np.full(n, self.intercept, dtype=float)
        unseen: dict[str, int] = {}
        encoded: dict[str, np.ndarray] = {}
        for term in self.terms:
            if isinstance(term, InteractionTerm):
                eta += term.effect(encoded[term.a.name], encoded[term.b.name])
                continue
            enc = term.encode(data[term.name])
            encoded[term.name] = enc
            if not isinstance(term, (NumericTerm,)) and enc.ndim == 1:
                bad = int((enc < 0).sum())
                if bad:
                    unseen[term.name] = bad
            eta += term.effect(enc)
        if use_offset:
            if self.offset and self.offset in data.columns:
                eta += _numeric(data[self.offset], self.offset)
            elif self.exposure and self.exposure in data.columns:
                expo = _numeric(data[self.exposure], self.exposure)
                if (expo <= 0).any():
                    raise ModelError(
                        f"column {self.exposure!r} (exposure) must be > 0; got min {expo.min():g}"
                    )
                eta += np.log(expo)
        return eta, unseen

    def predict(self, data: pd.DataFrame, *, use_offset: bool = True) -> np.ndarray:
        """The predicted mean ``mu`` for each row of ``data``.

        Parameters
        ----------
        data
            A DataFrame (or a mapping of column name to values) with the predictor columns;
            the offset or exposure column is used when present (``use_offset``).
        """
        eta, unseen = self.linear_predictor(data, use_offset=use_offset)
        if unseen:
            detail = ", ".join(f"{c}: {k}" for c, k in unseen.items())
            warnings.warn(
                f"levels not seen in training scored as the reference level ({detail} rows)",
                UnseenLevelWarning,
                stacklevel=2,
            )
        return linkinv(self.link, eta)

    # -- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "smglm_version": self.smglm_version,
            "family": self.family,
            "link": self.link,
            "tweedie_power": self.tweedie_power,
            "theta": self.theta,
            "target": self.target,
            "weights": self.weights,
            "offset": self.offset,
            "exposure": self.exposure,
            "intercept": self.intercept,
            "terms": [t.to_dict() for t in self.terms],
        }
        if self.aliased:
            out["aliased"] = list(self.aliased)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PortableModel:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ModelError(
                f"not an smglm model: 'format' is {d.get('format') if isinstance(d, dict) else d!r}"
                f", expected {FORMAT!r}"
            )
        version = d.get("format_version")
        if version not in READABLE_VERSIONS or isinstance(version, bool):
            raise ModelError(
                f"model format_version {version!r} is not supported by smglm "
                f"{_version()}, which reads format_version {list(READABLE_VERSIONS)}; "
                "upgrade smglm to read newer models"
            )
        try:
            terms: list[Term] = []
            main: dict[str, MainTerm] = {}
            for t in d["terms"]:
                if version == 1 and t.get("type") not in ("numeric", "categorical"):
                    raise ModelError(f"term {t.get('name')!r} has unknown type {t.get('type')!r}")
                term = term_from_dict(t, main)
                if not isinstance(term, InteractionTerm):
                    main[term.name] = term
                terms.append(term)
            intercept = d["intercept"]
            return cls(
                family=str(d["family"]),
                link=str(d["link"]),
                intercept=0.0 if intercept is None else float(intercept),
                terms=terms,
                target=d.get("target"),
                weights=d.get("weights"),
                offset=d.get("offset"),
                exposure=d.get("exposure"),
                tweedie_power=d.get("tweedie_power"),
                theta=d.get("theta"),
                smglm_version=str(d.get("smglm_version", "")),
                aliased=[str(a) for a in d.get("aliased") or []],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"model.json is malformed: {type(exc).__name__}: {exc}") from None

    def save(self, path: str | Path) -> Path:
        """Write ``model.json`` (``path`` is the file, or a folder to put it in)."""
        p = Path(path)
        if p.is_dir():
            p = p / "model.json"
        p.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False), encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: str | Path) -> PortableModel:
        """Read ``model.json`` (``path`` is the file, or a model folder holding it)."""
        p = Path(path)
        if p.is_dir():
            p = p / "model.json"
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ModelError(f"cannot read model file {str(p)!r}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise ModelError(f"{str(p)!r} is not JSON (not UTF-8 text: {exc.reason})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{str(p)!r} is not JSON: {exc}") from None
        return cls.from_dict(data)


def _version() -> str:
    from smglm._version import __version__

    return __version__


def _numeric(col: pd.Series, name: str) -> np.ndarray:
    return numeric_values(col, name)
